//! [`Host`]: apply, confirm, rollback, status and remove over a [`HostBackend`].

use crate::backend::{Difference, Generation, Hits, HostBackend, PlanKind};
use crate::guard::{self, Lockout};
use crate::members;
use crate::persist::{self, Persist};
use crate::state::{
    now_ms, Applied, GenerationRecord, MembersRecord, Pending, PersistJob, PersistRecord,
    RecordedState, Snapshot, StateDir, StateRef,
};
use crate::timer::{self, TimerCommand};
use crate::HostError;
use microseg_core::backend::Backend;
use microseg_core::ir::HostRuleset;
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::thread;
use std::time::Duration;

/// How long an operation waits for the lock by default.
const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// Extra time the timer gives an apply still in progress (it moves the
/// deadline to apply end + timeout when it is done).
const APPLY_GRACE: Duration = Duration::from_secs(60);

/// How long the timer waits for the lock before restoring.
const TIMER_LOCK_TIMEOUT: Duration = Duration::from_secs(120);

/// What a plan was made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Basis {
    /// The record, exact: nothing was committed since the last operation.
    Generation,
    /// The record, its structure checked against what is installed.
    Record,
    /// A full read of what is installed.
    Read,
}

impl Basis {
    /// Said under the plan.
    fn note(self) -> &'static str {
        match self {
            Basis::Generation => GENERATION_NOTE,
            Basis::Record => RECORD_NOTE,
            Basis::Read => "",
        }
    }
}

/// What is known before planning: the generation of what is installed,
/// and the record when it is exactly what is installed (or, when the
/// desired structure differs from it, the replacement and the record's
/// bytes).
struct Early<B: HostBackend> {
    at: Option<Generation>,
    exact: Option<Recorded<B>>,
    replace: Option<(B::Plan, RecordedState, RecordedRx<B>)>,
}

/// A record decoding on a thread of its own.
type RecordedRx<B> = std::sync::mpsc::Receiver<Result<Option<Recorded<B>>, HostError>>;

/// [`Early`] before the ruleset is rendered: the record still decoding.
struct EarlyStart<B: HostBackend> {
    at: Option<Generation>,
    /// The structure digest recorded with the generation.
    structure: Option<String>,
    exact: Option<RecordedRx<B>>,
}

/// The state the last operation left installed (for `backend` and `key`),
/// from the records of `state`, decoded and as recorded (`None`: no such
/// record, or nothing installed).
fn recorded<B: HostBackend>(
    state: &StateDir,
    backend: &str,
    key: &str,
) -> Result<Option<Recorded<B>>, HostError> {
    match state.applied()? {
        Some(a) if a.backend == backend && a.key == key => match a.expected {
            Some(r) => Ok(Some((load::<B>(state, backend, &r)?, r))),
            None => Ok(None),
        },
        _ => Ok(None),
    }
}

/// A state of `backend` as recorded in `state`: its file, with the
/// members of its sets from the members file where it names one.
fn load<B: HostBackend>(
    state: &StateDir,
    backend: &str,
    r: &RecordedState,
) -> Result<B::State, HostError> {
    let decode = |text: &str| -> Result<B::State, HostError> {
        serde_json::from_str(text).map_err(|e| HostError::Record {
            path: state.path().into(),
            message: format!("a saved {backend} state cannot be read: {e}"),
        })
    };
    let r = match r {
        RecordedState::Inline(raw) => return decode(raw.get()),
        RecordedState::File(r) => r,
    };
    let mut s = decode(&state.state_text(r)?)?;
    if let Some(m) = &r.members {
        let sets = state.members(m)?;
        if !B::with_members(&mut s, &sets) {
            return Err(HostError::Record {
                path: state.path().into(),
                message: format!("the members file {m} does not fit the saved {backend} state"),
            });
        }
        dispose(sets);
    }
    Ok(s)
}

/// A recorded state, decoded and as recorded.
type Recorded<B> = (<B as Backend>::State, RecordedState);

/// A plan, and what it was made from.
struct Planned<B: HostBackend> {
    /// The installed state planned against.
    current: Option<B::State>,
    /// The same as recorded, when it comes from the record.
    current_raw: Option<RecordedState>,
    /// For a replacement planned from structure digests: the record, still
    /// decoding, for the plan's detailed reasons.
    details: Option<RecordedRx<B>>,
    basis: Basis,
    /// The generation it was observed at.
    at: Option<Generation>,
    plan: B::Plan,
}

/// Said under a plan made against the record when nothing changed since.
const GENERATION_NOTE: &str = "  (planned against the record of the last operation: nothing \
was committed to the ruleset since, by anyone)\n";

/// An element delta planned from the policy's set members, and what it
/// was planned from.
struct MembersPlan<'r, B: HostBackend> {
    plan: B::Plan,
    /// The policy's sets and members.
    view: members::MemberSets<'r>,
    /// The generation it was planned at (the recorded one).
    at: Generation,
    /// The structure digest recorded with the generation (unchanged by a
    /// members-only change).
    structure: Option<String>,
    /// The members file recorded with it.
    members_file: String,
    /// The state the last apply recorded (the rollback point of this one).
    expected: StateRef,
    /// The members recorded in `members_file`.
    old: members::NamedMembers<'static>,
}

/// Said under an element delta planned from the policy's set members.
const MEMBERS_NOTE: &str = "  (planned from the policy's set members against those the last \
operation installed: nothing was committed to the ruleset since, by anyone)\n";

/// Said under a plan made against the record of the last operation.
const RECORD_NOTE: &str = "  (planned against the record of the last operation: the installed \
rules, chains and set definitions were checked against it, set members were not; \
`microseg status` compares everything, `apply --refresh` plans from a full read)\n";

/// How often the timer looks at the pending record.
const TIMER_POLL: Duration = Duration::from_millis(100);

/// The local host's firewall, managed through a backend and a state directory.
///
/// ```no_run
/// use backend_nft::{Nft, NftBackend};
/// use microseg_host::{Host, StateDir};
/// let host = Host::new(NftBackend::new(Nft::host(), "microseg"), StateDir::resolve(None))
///     .with_lock_timeout(std::time::Duration::from_secs(5));
/// let status = host.status()?;
/// if status.drifted() { eprintln!("{status}"); }
/// # Ok::<(), microseg_host::HostError>(())
/// ```
#[derive(Debug)]
pub struct Host<B: HostBackend> {
    backend: B,
    state: StateDir,
    lock_timeout: Duration,
}

/// Options of [`Host::apply`].
///
/// ```
/// let o = microseg_host::ApplyOptions { dry_run: true, ..Default::default() };
/// assert!(!o.force);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Only plan: change nothing, record nothing.
    pub dry_run: bool,
    /// Apply even if the SSH session would lose access.
    pub force: bool,
    /// The value of `SSH_CONNECTION` (`None`: not in an SSH session).
    pub ssh_connection: Option<String>,
    /// Roll back unless confirmed in time.
    pub confirm: Option<ConfirmOptions>,
    /// Boot persistence.
    pub persist: Persist,
    /// Where the ruleset came from (the policy file), for the records.
    pub source: String,
    /// After taking the lock and reading the installed state, wait this long
    /// before planning and applying (demonstrates the lock; tests use it).
    pub hold_lock: Option<Duration>,
    /// Read everything installed before planning (the whole table with
    /// its set members) instead of the record of the last operation, which
    /// is used when the installed rules, chains and set definitions still
    /// match it.
    pub refresh: bool,
    /// Where the hardening sysctl.d file goes (`Default`:
    /// `/etc/sysctl.d/99-<table>.conf`; `Off`: set the values only). Only
    /// used when the policy has `hardening`.
    pub sysctl_file: Persist,
}

/// `--confirm-timeout`: how long, and the timer program.
///
/// ```
/// let c = microseg_host::ConfirmOptions {
///     timeout: std::time::Duration::from_secs(60),
///     timer: microseg_host::TimerCommand { program: "/usr/bin/microseg".into(), args: vec!["__confirm-timer".into()] },
/// };
/// # let _ = c;
/// ```
#[derive(Debug, Clone)]
pub struct ConfirmOptions {
    /// Time to confirm after the apply.
    pub timeout: Duration,
    /// The detached program that restores the snapshot unless confirmed.
    pub timer: TimerCommand,
}

/// A change waiting for confirmation.
///
/// ```
/// let p = microseg_host::PendingInfo { id: "x".into(), deadline_ms: 0, remaining_secs: 1.5, timer_pid: Some(42), timer_running: true };
/// assert!(p.to_string().contains("1.5 s"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingInfo {
    /// The change's id.
    pub id: String,
    /// When the timer restores the previous state (ms since the epoch).
    pub deadline_ms: u64,
    /// Seconds left (negative: overdue).
    pub remaining_secs: f64,
    /// The timer's pid.
    pub timer_pid: Option<u32>,
    /// Whether that process still exists.
    pub timer_running: bool,
}

impl fmt::Display for PendingInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pid = self
            .timer_pid
            .map(|p| {
                format!(
                    " (timer pid {p}{})",
                    if self.timer_running {
                        ""
                    } else {
                        ", not running!"
                    }
                )
            })
            .unwrap_or_default();
        if self.remaining_secs >= 0.0 {
            write!(
                f,
                "run `microseg confirm` within {:.1} s to keep this change, or the previous state is restored{pid}",
                self.remaining_secs
            )
        } else {
            write!(
                f,
                "confirmation overdue by {:.1} s{pid}",
                -self.remaining_secs
            )
        }
    }
}

/// What [`Host::apply`] did (or, for a dry run, would do); `Display` prints
/// it for people, `Serialize` for programs.
///
/// ```no_run
/// # use backend_nft::{Nft, NftBackend};
/// # let host = microseg_host::Host::new(NftBackend::new(Nft::host(), "t"), microseg_host::StateDir::resolve(None));
/// # let rs: microseg_core::ir::HostRuleset = unimplemented!();
/// let r = host.apply(&rs, &microseg_host::ApplyOptions::default())?;
/// if r.plan == microseg_host::PlanKind::Incremental { println!("only set members changed"); }
/// print!("{r}");
/// # Ok::<(), microseg_host::HostError>(())
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    /// The backend.
    pub backend: String,
    /// What the policy owns (`table inet microseg`).
    pub owned: String,
    /// What the ruleset was compiled for.
    pub target: String,
    /// How much changes.
    pub plan: PlanKind,
    /// The plan, for people.
    pub plan_text: String,
    /// Nothing was changed.
    pub dry_run: bool,
    /// The change was made.
    pub applied: bool,
    /// The anti-lockout check.
    pub lockout: Lockout,
    /// Applied although the check refused.
    pub forced: bool,
    /// The boot file written.
    pub persisted: Option<PathBuf>,
    /// The boot file that `confirm` writes.
    pub persist_on_confirm: Option<PathBuf>,
    /// The backup of the previous boot file.
    pub backup: Option<PathBuf>,
    /// Advice.
    pub notes: Vec<String>,
    /// The pending confirmation.
    pub pending: Option<PendingInfo>,
    /// Hardening sysctl values that differed from the policy's (and were set,
    /// unless a dry run).
    pub sysctl: Vec<crate::sysctl::SysctlDifference>,
}

impl fmt::Display for ApplyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.plan_text)?;
        for d in &self.sysctl {
            writeln!(f, "sysctl {}: {} -> {}", d.key, d.have, d.want)?;
        }
        if self.dry_run {
            writeln!(
                f,
                "dry run: nothing changed ({} for {})",
                self.owned, self.target
            )?;
        } else if self.applied {
            writeln!(
                f,
                "applied: {} for {} ({})",
                self.owned, self.target, self.plan
            )?;
        }
        match (&self.lockout, self.forced) {
            (Lockout::NoSession, _) => {}
            (l, true) => writeln!(f, "warning: {l} (forced)")?,
            (l, false) if l.refuses() => writeln!(f, "an apply would be refused: {l}")?,
            (l, false) => writeln!(f, "SSH: {l}")?,
        }
        if let Some(p) = &self.persisted {
            write!(f, "persisted for boot: {}", p.display())?;
            match &self.backup {
                Some(b) => writeln!(f, " (previous file kept as {})", b.display())?,
                None => writeln!(f)?,
            }
        }
        if let Some(p) = &self.persist_on_confirm {
            writeln!(f, "persisted for boot once confirmed: {}", p.display())?;
        }
        if let Some(p) = &self.pending {
            writeln!(f, "{p}")?;
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        Ok(())
    }
}

/// What [`Host::confirm`] did.
///
/// ```no_run
/// # use backend_nft::{Nft, NftBackend};
/// # let host = microseg_host::Host::new(NftBackend::new(Nft::host(), "t"), microseg_host::StateDir::resolve(None));
/// let r = host.confirm()?;
/// if let Some(p) = &r.persisted { println!("boot file {}", p.display()); }
/// # Ok::<(), microseg_host::HostError>(())
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct ConfirmReport {
    /// What the policy owns.
    pub owned: String,
    /// The boot file written now.
    pub persisted: Option<PathBuf>,
    /// Its backup.
    pub backup: Option<PathBuf>,
    /// The timer that will now exit without restoring.
    pub timer_pid: Option<u32>,
    /// Advice.
    pub notes: Vec<String>,
}

impl fmt::Display for ConfirmReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "confirmed: the change to {} is kept", self.owned)?;
        if let Some(p) = &self.persisted {
            write!(f, "persisted for boot: {}", p.display())?;
            match &self.backup {
                Some(b) => writeln!(f, " (previous file kept as {})", b.display())?,
                None => writeln!(f)?,
            }
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        Ok(())
    }
}

/// What [`Host::rollback`] did.
///
/// ```no_run
/// # use backend_nft::{Nft, NftBackend};
/// # let host = microseg_host::Host::new(NftBackend::new(Nft::host(), "t"), microseg_host::StateDir::resolve(None));
/// let r = host.rollback()?;
/// println!("{}", if r.installed { "restored" } else { "removed: nothing was installed before" });
/// # Ok::<(), microseg_host::HostError>(())
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct RollbackReport {
    /// What the policy owns.
    pub owned: String,
    /// The restored state had the policy installed (false: it was absent, so it was removed).
    pub installed: bool,
    /// When the snapshot was taken (ms since the epoch).
    pub taken_ms: u64,
    /// The boot file put back.
    pub boot_file: Option<PathBuf>,
    /// A pending confirmation was cancelled.
    pub cancelled_pending: bool,
}

impl fmt::Display for RollbackReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ago = now_ms().saturating_sub(self.taken_ms) as f64 / 1000.0;
        if self.installed {
            writeln!(
                f,
                "rolled back: {} restored as it was {ago:.1} s ago",
                self.owned
            )?;
        } else {
            writeln!(
                f,
                "rolled back: {} was not installed {ago:.1} s ago, so it is removed",
                self.owned
            )?;
        }
        if self.cancelled_pending {
            writeln!(f, "the pending confirmation is cancelled")?;
        }
        if let Some(p) = &self.boot_file {
            writeln!(f, "boot file {} put back as it was", p.display())?;
        }
        Ok(())
    }
}

/// What [`Host::remove`] did.
///
/// ```no_run
/// # use backend_nft::{Nft, NftBackend};
/// # let host = microseg_host::Host::new(NftBackend::new(Nft::host(), "t"), microseg_host::StateDir::resolve(None));
/// let r = host.remove(&microseg_host::Persist::Off)?;
/// assert!(!r.was_installed || r.owned == "table inet t");
/// # Ok::<(), microseg_host::HostError>(())
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct RemoveReport {
    /// What the policy owns.
    pub owned: String,
    /// It was installed (and is now gone).
    pub was_installed: bool,
    /// The boot file removed (kept as `.bak`).
    pub boot_file: Option<PathBuf>,
    /// What else the backend put back (firewalld: the default zone).
    pub notes: Vec<String>,
}

impl fmt::Display for RemoveReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.was_installed {
            writeln!(
                f,
                "removed: {} (nothing else touched; `microseg rollback` reinstalls it)",
                self.owned
            )?;
        } else {
            writeln!(f, "nothing to remove: {} is not installed", self.owned)?;
        }
        if let Some(p) = &self.boot_file {
            writeln!(
                f,
                "boot file {} removed (kept as {})",
                p.display(),
                persist::backup_path(p).display()
            )?;
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        Ok(())
    }
}

/// What is installed, whether it drifted, and the hit counters.
///
/// ```no_run
/// # use backend_nft::{Nft, NftBackend};
/// # let host = microseg_host::Host::new(NftBackend::new(Nft::host(), "t"), microseg_host::StateDir::resolve(None));
/// let s = host.status()?;
/// for h in s.hits.iter().filter(|h| h.label.starts_with("flow:")) {
///     println!("{} {}", h.label, h.packets);
/// }
/// std::process::exit(if s.drifted() { 1 } else { 0 });
/// # Ok::<(), microseg_host::HostError>(())
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The backend.
    pub backend: String,
    /// What the policy owns.
    pub owned: String,
    /// It is installed.
    pub installed: bool,
    /// The last operation: `apply`, `confirm`, `rollback`, `timer-rollback`, `remove`.
    pub last_event: Option<String>,
    /// What it was compiled for.
    pub target: Option<String>,
    /// The policy file.
    pub source: Option<String>,
    /// When (ms since the epoch).
    pub at_ms: Option<u64>,
    /// Differences from what was applied (`None`: nothing recorded to compare with).
    pub drift: Option<Vec<Difference>>,
    /// Hit counters per flow and baseline item.
    pub hits: Vec<Hits>,
    /// A change waiting for confirmation.
    pub pending: Option<PendingInfo>,
    /// Hardening sysctl values that differ from what was applied.
    pub sysctl_drift: Vec<crate::sysctl::SysctlDifference>,
    /// Why `hits` is empty when the backend keeps no counters (firewalld).
    pub no_hits: Option<String>,
    /// What, outside what the policy owns, keeps the host from enforcing it
    /// (firewalld: interfaces bound to other zones, its own settings).
    pub warnings: Vec<String>,
}

impl Status {
    /// True if what is installed differs from what was applied.
    ///
    /// ```
    /// # let s = microseg_host::Status { backend: "nft".into(), owned: "t".into(), installed: false,
    /// #   last_event: None, target: None, source: None, at_ms: None, drift: None, hits: vec![], pending: None,
    /// #   sysctl_drift: vec![], no_hits: None, warnings: vec![] };
    /// assert!(!s.drifted());
    /// ```
    pub fn drifted(&self) -> bool {
        self.drift.as_ref().is_some_and(|d| !d.is_empty()) || !self.sysctl_drift.is_empty()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} ({}): {}",
            self.owned,
            self.backend,
            if self.installed {
                "installed"
            } else {
                "not installed"
            }
        )?;
        if let (Some(e), Some(at)) = (&self.last_event, self.at_ms) {
            let ago = now_ms().saturating_sub(at) as f64 / 1000.0;
            write!(f, "last operation: {e}, {ago:.0} s ago")?;
            if let (Some(t), Some(s)) = (&self.target, &self.source) {
                if !t.is_empty() {
                    write!(f, " ({t} from {s})")?;
                }
            }
            writeln!(f)?;
        }
        match &self.drift {
            None => writeln!(
                f,
                "drift: unknown (nothing applied with this state directory)"
            )?,
            Some(d) if d.is_empty() => writeln!(f, "drift: none (installed = applied)")?,
            Some(d) => {
                writeln!(f, "DRIFT: {} difference(s) from what was applied:", d.len())?;
                for x in d {
                    writeln!(f, "  {x}")?;
                }
            }
        }
        for d in &self.sysctl_drift {
            writeln!(
                f,
                "SYSCTL DRIFT: {} is {}, the policy sets {}",
                d.key, d.have, d.want
            )?;
        }
        if let Some(p) = &self.pending {
            writeln!(f, "pending: {p}")?;
        }
        if let (true, Some(why)) = (self.installed, &self.no_hits) {
            writeln!(f, "hits: none ({why})")?;
        } else if self.installed {
            writeln!(f, "hits:")?;
            let width = self.hits.iter().map(|h| h.label.len()).max().unwrap_or(0);
            let (flows, base): (Vec<&Hits>, Vec<&Hits>) =
                self.hits.iter().partition(|h| h.label.starts_with("flow:"));
            for h in flows.into_iter().chain(base) {
                writeln!(
                    f,
                    "  {:width$}  {:>10} packets {:>12} bytes",
                    h.label, h.packets, h.bytes
                )?;
            }
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}

/// How a confirm timer ended.
///
/// ```
/// assert_eq!(microseg_host::TimerOutcome::RolledBack.to_string(),
///     "not confirmed: the previous state was restored");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimerOutcome {
    /// `confirm` (or `rollback`) cleared the record in time.
    Confirmed,
    /// Another change replaced the record.
    Superseded,
    /// The deadline passed: the snapshot was restored.
    RolledBack,
}

impl fmt::Display for TimerOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimerOutcome::Confirmed => "confirmed (or rolled back) in time",
            TimerOutcome::Superseded => "superseded by another change",
            TimerOutcome::RolledBack => "not confirmed: the previous state was restored",
        })
    }
}

/// Drops `t` on a thread of its own: freeing a state of 100,000s of set
/// elements takes a while, and nobody waits for it.
fn dispose<T: Send + 'static>(t: T) {
    let _ = thread::Builder::new().spawn(move || drop(t));
}

/// Whether process `pid` exists and is not a zombie.
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) S …`: the state follows the last parenthesis.
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok(),
    }
}

fn pending_info(p: &Pending) -> PendingInfo {
    let running = p.timer_pid.is_some_and(running);
    PendingInfo {
        id: p.id.clone(),
        deadline_ms: p.deadline_ms,
        remaining_secs: (p.deadline_ms as f64 - now_ms() as f64) / 1000.0,
        timer_pid: p.timer_pid,
        timer_running: running,
    }
}

fn new_id() -> String {
    format!("{:x}-{:x}", now_ms(), std::process::id())
}

impl<B: HostBackend> Host<B> {
    /// A host managed through `backend`, with records in `state`.
    ///
    /// ```
    /// use backend_nft::{Nft, NftBackend};
    /// let host = microseg_host::Host::new(NftBackend::new(Nft::host(), "microseg"),
    ///     microseg_host::StateDir::resolve(Some("/tmp/ms".into())));
    /// assert_eq!(host.backend().table, "microseg");
    /// ```
    pub fn new(backend: B, state: StateDir) -> Host<B> {
        Host {
            backend,
            state,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        }
    }

    /// Waits at most `timeout` for the lock (default 30 s).
    ///
    /// ```
    /// # use backend_nft::{Nft, NftBackend};
    /// let host = microseg_host::Host::new(NftBackend::new(Nft::host(), "t"), microseg_host::StateDir::resolve(None))
    ///     .with_lock_timeout(std::time::Duration::ZERO);
    /// # let _ = host;
    /// ```
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Host<B> {
        self.lock_timeout = timeout;
        self
    }

    /// The backend.
    ///
    /// ```
    /// # use backend_nft::{Nft, NftBackend};
    /// # let host = microseg_host::Host::new(NftBackend::new(Nft::host(), "t"), microseg_host::StateDir::resolve(None));
    /// assert_eq!(host.backend().table, "t");
    /// ```
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The state directory.
    ///
    /// ```
    /// # use backend_nft::{Nft, NftBackend};
    /// # let host = microseg_host::Host::new(NftBackend::new(Nft::host(), "t"), microseg_host::StateDir::resolve(Some("/x".into())));
    /// assert_eq!(host.state_dir().path(), std::path::Path::new("/x"));
    /// ```
    pub fn state_dir(&self) -> &StateDir {
        &self.state
    }

    fn be<E: std::error::Error + Send + Sync + 'static>(&self, e: E) -> HostError {
        HostError::backend(self.backend.name(), e)
    }

    fn encode_state(&self, s: &B::State) -> Result<Vec<u8>, HostError> {
        serde_json::to_vec(s).map_err(|e| HostError::Record {
            path: self.state.path().into(),
            message: format!("cannot serialise the {} state: {e}", self.backend.name()),
        })
    }

    /// Records a state in a file of its own.
    fn store_state(&self, s: &B::State) -> Result<RecordedState, HostError> {
        Ok(RecordedState::File(
            self.state.store_state(&self.encode_state(s)?)?,
        ))
    }

    fn decode_state(&self, v: Option<&RecordedState>) -> Result<Option<B::State>, HostError> {
        v.map(|v| load::<B>(&self.state, self.backend.name(), v))
            .transpose()
    }

    fn check_snapshot(&self, s: &Snapshot) -> Result<(), HostError> {
        if s.backend != self.backend.name() || s.key != self.backend.key() {
            return Err(HostError::Mismatch(format!(
                "the saved state in {} is of {} backend, table/object \"{}\", not {} \"{}\"",
                self.state.path().display(),
                s.backend,
                s.key,
                self.backend.name(),
                self.backend.key()
            )));
        }
        Ok(())
    }

    /// Makes the host's firewall match `ruleset`: renders it, checks the SSH
    /// session (refuses unless forced), takes the lock, reads and plans
    /// (unchanged, incremental, replace), saves the snapshot, applies in one
    /// transaction, records what was applied, and persists for boot (at
    /// `confirm` when a confirmation is required). A failed apply changes
    /// nothing (the backend applies all or nothing) and keeps the previous
    /// rollback point.
    ///
    /// ```no_run
    /// # use backend_nft::{Nft, NftBackend};
    /// # use microseg_core::{ir::{compile, Target}, Policy};
    /// # let policy = Policy::from_file("p.toml")?;
    /// let host = microseg_host::Host::new(NftBackend::new(Nft::host(), &policy.table),
    ///     microseg_host::StateDir::resolve(None));
    /// let rs = compile(&policy, &Target::Role("web".into()))?;
    /// let dry = host.apply(&rs, &microseg_host::ApplyOptions { dry_run: true, ..Default::default() })?;
    /// print!("{dry}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn apply(
        &self,
        ruleset: &HostRuleset,
        opts: &ApplyOptions,
    ) -> Result<ApplyReport, HostError> {
        let lockout = guard::check(ruleset, opts.ssh_connection.as_deref());
        if lockout.refuses() && !opts.force && !opts.dry_run {
            return Err(HostError::LockedOut {
                reason: lockout.to_string(),
            });
        }
        let self_persisting = self.backend.persists_itself();
        let persist_path = match &opts.persist {
            _ if self_persisting.is_some() => None,
            Persist::Default => self.backend.default_persist_path(),
            Persist::To(p) => Some(p.clone()),
            Persist::Off => None,
        };
        let mut report = ApplyReport {
            backend: self.backend.name().into(),
            owned: self.backend.owned(),
            target: ruleset.target.to_string(),
            plan: PlanKind::Unchanged,
            plan_text: String::new(),
            dry_run: opts.dry_run,
            applied: false,
            forced: lockout.refuses() && opts.force,
            lockout,
            persisted: None,
            persist_on_confirm: None,
            backup: None,
            notes: self_persisting.iter().cloned().collect(),
            pending: None,
            sysctl: match &ruleset.hardening {
                Some(h) => crate::sysctl::differences(h)?,
                None => Vec::new(),
            },
        };
        let sysctl_path = match &opts.sysctl_file {
            Persist::Default => Some(crate::sysctl::default_path(&ruleset.table)),
            Persist::To(p) => Some(p.clone()),
            Persist::Off => None,
        };
        if opts.dry_run {
            // The plan an apply would make, from the same basis.
            if let Some(m) = self.plan_members(ruleset, opts, persist_path.is_some())? {
                report.plan = self.backend.plan_kind(&m.plan);
                report.plan_text = m.plan.to_string();
                report.plan_text.push_str(MEMBERS_NOTE);
                return Ok(report);
            }
            let desired = self.backend.render(ruleset).map_err(|e| self.be(e))?;
            let expected = self.backend.expected(&desired);
            let early = self.early(opts.refresh)?;
            let planned = self.current_and_plan(&desired, &|| &expected, early, opts.refresh)?;
            report.plan = self.backend.plan_kind(&planned.plan);
            report.plan_text = planned.plan.to_string();
            report.plan_text.push_str(planned.basis.note());
            if let Some(p) = &persist_path {
                report.notes.push(format!(
                    "an apply would persist the ruleset to {}",
                    p.display()
                ));
            }
            return Ok(report);
        }

        let _lock = self.state.lock(self.lock_timeout)?;
        if let Some(p) = self.state.pending()? {
            let info = pending_info(&p);
            let hint = if info.timer_running {
                format!(
                    "the timer restores the previous state in {:.1} s; run `microseg confirm` to \
                     keep it or `microseg rollback` to undo it, then apply again",
                    info.remaining_secs.max(0.0)
                )
            } else {
                "its confirm timer is gone (a reboot?); run `microseg rollback` to restore the \
                 state from before it, then apply again"
                    .to_string()
            };
            return Err(HostError::Pending {
                owned: self.backend.owned(),
                hint,
            });
        }
        if persist_path.is_none() && self.apply_members(ruleset, opts, &mut report)? {
            return Ok(report);
        }
        // The ruleset is rendered on the other core while the generation is
        // read and, if nothing changed since the last operation, its record
        // decoded (on a thread of its own: not waited for when the rendered
        // structure differs from the recorded one, a replacement anyway).
        let (rendered, early) = thread::scope(|s| {
            let rendered = s.spawn(|| {
                let desired = self.backend.render(ruleset).map_err(|e| self.be(e))?;
                let digest = self.backend.structure_digest(&desired);
                Ok::<_, HostError>((desired, digest))
            });
            let early = self.early_start(opts.refresh);
            let rendered = rendered
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (rendered, early)
        });
        let (desired, digest) = rendered?;
        let early_start = early?;
        // The state the ruleset leaves, for the plan and the record.
        let expected_state_cell = OnceLock::new();
        let expected_state = || expected_state_cell.get_or_init(|| self.backend.expected(&desired));
        let mut refresh = opts.refresh;
        // The record of it is encoded on the other core while the plan is
        // made and applied.
        let expected_cell = OnceLock::new();
        let expected =
            || match expected_cell.get_or_init(|| match self.backend.expected_bytes(&desired) {
                Some(bytes) => Ok(bytes),
                None => self.encode_state(expected_state()),
            }) {
                Ok(bytes) => Ok(bytes),
                Err(e) => Err(HostError::Record {
                    path: self.state.path().into(),
                    message: e.to_string(),
                }),
            };
        // The boot file's text, only where one is written.
        let boot_text_cell = OnceLock::new();
        let boot_text = || boot_text_cell.get_or_init(|| self.backend.boot_text(&desired));
        let result = thread::scope(|s| {
            let mut report = report;
            // Worked out on the other core while the record decodes.
            s.spawn(|| {
                let _ = expected();
            });
            let mut early = Some(self.early_finish(early_start, &desired, digest.as_deref())?);
            loop {
                let early = match early.take() {
                    Some(e) => e,
                    None => self.early(refresh)?,
                };
                let planned = self.current_and_plan(&desired, &expected_state, early, refresh)?;
                if let Some(hold) = opts.hold_lock {
                    thread::sleep(hold);
                }
                let Planned {
                    current,
                    current_raw,
                    details,
                    basis,
                    at,
                    plan,
                } = planned;
                let from_record = basis != Basis::Read;
                report.plan = self.backend.plan_kind(&plan);
                report.plan_text = plan.to_string();
                report.plan_text.push_str(basis.note());
                let persist_record = match &persist_path {
                    Some(p) => Some(PersistRecord {
                        path: p.clone(),
                        previous: persist::read_existing(p)?,
                    }),
                    None => None,
                };
                let snapshot = Snapshot {
                    version: StateDir::record_version(),
                    backend: self.backend.name().into(),
                    key: self.backend.key(),
                    taken_ms: now_ms(),
                    // Encoded now only for a pending change (its timer needs it
                    // before the apply); else while the backend applies.
                    state: match (&opts.confirm, &current_raw) {
                        (Some(_), Some(r)) => Some(r.clone()),
                        (Some(_), None) => {
                            current.as_ref().map(|s| self.store_state(s)).transpose()?
                        }
                        (None, _) => None,
                    },
                    persist: persist_record,
                    sysctl: match ruleset.hardening {
                        Some(_) => Some(crate::sysctl::snapshot(sysctl_path.as_deref())?),
                        None => None,
                    },
                };
                let sysctl_changes = !report.sysctl.is_empty();

                let confirm = opts
                    .confirm
                    .as_ref()
                    .filter(|_| report.plan != PlanKind::Unchanged || sysctl_changes);
                if opts.confirm.is_some() && confirm.is_none() {
                    report
                        .notes
                        .push("nothing changes, so there is nothing to confirm".into());
                }
                let mut pending = None;
                if let Some(c) = confirm {
                    let mut p = Pending {
                        version: StateDir::record_version(),
                        id: new_id(),
                        backend: self.backend.name().into(),
                        key: self.backend.key(),
                        target: ruleset.target.to_string(),
                        created_ms: now_ms(),
                        deadline_ms: now_ms() + (c.timeout + APPLY_GRACE).as_millis() as u64,
                        timer_pid: None,
                        snapshot: snapshot.clone(),
                        persist: persist_path.as_ref().map(|path| PersistJob {
                            path: path.clone(),
                            text: boot_text().clone(),
                        }),
                    };
                    // Written before the timer starts: it exits when it finds no record of its own.
                    self.state.write_pending(&p)?;
                    match timer::spawn(&c.timer, self.state.path(), &p.id, &self.state.timer_log())
                    {
                        Ok(pid) => p.timer_pid = Some(pid),
                        Err(e) => {
                            let _ = self.state.clear_pending();
                            return Err(e);
                        }
                    }
                    self.state.write_pending(&p)?;
                    pending = Some((p, c.timeout));
                }

                if let Some(h) = &ruleset.hardening {
                    if let Err(e) = crate::sysctl::apply(h, &ruleset.table, sysctl_path.as_deref())
                    {
                        if let Some(s) = &snapshot.sysctl {
                            let _ = crate::sysctl::restore(s);
                        }
                        if pending.is_some() {
                            let _ = self.state.clear_pending();
                        }
                        return Err(e);
                    }
                }
                let at_ms = now_ms();
                let changes = report.plan != PlanKind::Unchanged || sysctl_changes;
                // The records are encoded on the other core while the backend applies.
                let state = &self.state;
                let (applied_result, records) = thread::scope(|s| {
                    let details = s.spawn(|| {
                        // The reasons of a replacement planned from digests,
                        // worked out while the backend applies.
                        let recorded = details?.recv().ok()?.ok()??;
                        let plan = self
                            .backend
                            .plan_expected(&desired, expected_state(), Some(&recorded.0))
                            .ok()?;
                        dispose(recorded);
                        Some(plan.to_string())
                    });
                    let records = s.spawn(|| {
                        if persist_path.is_some() {
                            boot_text();
                        }
                        let snapshot = changes
                            .then(|| match (&snapshot.state, &current_raw, &current) {
                                (None, Some(r), _) => state.encode_snapshot(&Snapshot {
                                    state: Some(r.clone()),
                                    ..snapshot.clone()
                                }),
                                (None, None, Some(c)) => state.encode_snapshot(&Snapshot {
                                    state: Some(self.store_state(c)?),
                                    ..snapshot.clone()
                                }),
                                _ => state.encode_snapshot(&snapshot),
                            })
                            .transpose()?;
                        let applied = Applied {
                            version: StateDir::record_version(),
                            backend: self.backend.name().into(),
                            key: self.backend.key(),
                            event: "apply".into(),
                            target: ruleset.target.to_string(),
                            source: opts.source.clone(),
                            at_ms,
                            expected: Some(RecordedState::File(state.store_state(expected()?)?)),
                            persist: persist_path.clone(),
                            hardening: ruleset.hardening,
                        };
                        // The members installed, for the next apply.
                        let members = match self.backend.members(ruleset) {
                            Some(view) => Some(MembersRecord {
                                file: state.store_members(&members::encode(&view.sets))?,
                                structure: view.structure,
                            }),
                            None => None,
                        };
                        Ok::<_, HostError>((snapshot, state.encode_applied(&applied)?, members))
                    });
                    let result = self.backend.apply_at(&plan, at.as_ref());
                    let records = records
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                    let details = details
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                    if let Some(text) = details {
                        report.plan_text = text;
                        report.plan_text.push_str(basis.note());
                    }
                    (result, records)
                });
                let generation = match applied_result {
                    Ok(g) => g,
                    Err(e) => {
                        // All or nothing: put the sysctl values and file back too.
                        if let Some(s) = &snapshot.sysctl {
                            let _ = crate::sysctl::restore(s);
                        }
                        if pending.is_some() {
                            // The timer finds no record and exits; nothing was changed.
                            let _ = self.state.clear_pending();
                        }
                        if from_record {
                            // Set members differ from the record (changed by hand), or
                            // something was committed meanwhile: the transaction
                            // changed nothing; read everything and plan again.
                            refresh = true;
                            continue;
                        }
                        return Err(self.be(e));
                    }
                };
                report.applied = true;
                let (snapshot_bytes, applied_bytes, members) = records?;
                if let Some(bytes) = snapshot_bytes {
                    self.state.write_encoded_snapshot(&bytes)?;
                }
                self.state.write_encoded_applied(&applied_bytes)?;
                if let Some(generation) = generation {
                    self.state.write_generation(&GenerationRecord {
                        version: StateDir::record_version(),
                        backend: self.backend.name().into(),
                        key: self.backend.key(),
                        generation,
                        structure: digest.clone(),
                        members,
                    })?;
                }
                self.state.collect_garbage();
                let default_path = matches!(opts.persist, Persist::Default);
                if let Some((mut p, timeout)) = pending {
                    p.deadline_ms = now_ms() + timeout.as_millis() as u64;
                    self.state.write_pending(&p)?;
                    report.pending = Some(pending_info(&p));
                    report.persist_on_confirm = persist_path;
                    if self_persisting.is_some() {
                        report.notes.push(format!(
                        "the change is already in {}'s permanent configuration: should this host \
                     restart before `microseg confirm`, the timer is gone and the change stays; \
                     run `microseg rollback` then",
                        self.backend.name()
                    ));
                    }
                } else if self_persisting.is_some() {
                    // Said in the notes already.
                } else if let Some(path) = persist_path {
                    report.backup = persist::write_boot_file(&path, boot_text())?;
                    report
                        .notes
                        .extend(self.backend.persist_notes(&path, default_path));
                    report.persisted = Some(path);
                } else {
                    report
                        .notes
                        .push("not persisted: the change is lost at reboot (--no-persist)".into());
                }
                dispose((current, plan));
                return Ok(report);
            }
        });
        dispose((desired, expected_state_cell));
        result
    }

    /// The element delta of a policy that changed only set members since
    /// the last apply, when nothing was committed to what is installed
    /// since, by anyone: planned from the IR and the members the last apply
    /// recorded, without rendering, working out or reading any state.
    /// `None`: not such a change, or an apply that must not take this path
    /// (a pending confirmation, `refresh`, hardening, a boot file to write).
    fn plan_members<'r>(
        &self,
        ruleset: &'r HostRuleset,
        opts: &ApplyOptions,
        persist: bool,
    ) -> Result<Option<MembersPlan<'r, B>>, HostError> {
        if opts.refresh
            || opts.confirm.is_some()
            || opts.hold_lock.is_some()
            || ruleset.hardening.is_some()
            || persist
        {
            return Ok(None);
        }
        let (name, key) = (self.backend.name(), self.backend.key());
        // The record of the last operation first: the members file it names
        // is read on the other core while the ruleset's digest and the
        // generation are worked out.
        let Some(record) = self
            .state
            .generation()?
            .filter(|r| r.backend == name && r.key == key)
        else {
            return Ok(None);
        };
        let Some(recorded) = &record.members else {
            return Ok(None);
        };
        let (structure, at, old) = thread::scope(|s| {
            let old = s.spawn(|| self.state.members(&recorded.file));
            let structure = self.backend.member_structure(ruleset);
            let at = self.backend.generation();
            let old = old
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (structure, at, old)
        });
        let (Some(structure), Some(at), Ok(old)) = (structure, at, old) else {
            return Ok(None);
        };
        if record.generation != at || recorded.structure != structure {
            dispose(old);
            return Ok(None);
        }
        let members_file = recorded.file.clone();
        let Some(RecordedState::File(expected)) = self
            .state
            .applied()?
            .filter(|a| a.backend == name && a.key == key)
            .and_then(|a| a.expected)
        else {
            dispose(old);
            return Ok(None);
        };
        let planned = self.backend.members_plan(ruleset, &old);
        let Some((plan, sets)) = planned else {
            dispose(old);
            return Ok(None);
        };
        Ok(Some(MembersPlan {
            plan,
            view: members::MemberSets { structure, sets },
            at,
            structure: record.structure,
            members_file,
            expected,
            old,
        }))
    }

    /// Records the members `new` that follow those of members file `base`
    /// (`old`): as a delta file on it, unless the chain of delta files is
    /// long already or the changes are not small; else as a full file.
    fn store_members_after(
        &self,
        base: &str,
        old: &members::NamedMembers,
        new: &members::NamedMembers,
    ) -> Result<String, HostError> {
        let depth = self.state.members_depth(base).unwrap_or(members::MAX_CHAIN);
        if depth < members::MAX_CHAIN {
            if let Some(deltas) = members::deltas(old, new) {
                let changed: usize = deltas.iter().map(|d| d.add.len() + d.delete.len()).sum();
                let total: usize = new.iter().map(|(_, m)| m.len()).sum();
                if changed * 8 <= total.max(64) {
                    return self.state.store_members(&members::encode_delta(
                        base,
                        depth + 1,
                        &deltas,
                    ));
                }
            }
        }
        self.state.store_members(&members::encode(new))
    }

    /// Applies a [`plan_members`](Self::plan_members) plan and writes the
    /// records: they refer to the last apply's state with the new members.
    /// `false`: there is no such plan, or the backend refused it without
    /// changing anything; the full path then.
    fn apply_members(
        &self,
        ruleset: &HostRuleset,
        opts: &ApplyOptions,
        report: &mut ApplyReport,
    ) -> Result<bool, HostError> {
        let Some(MembersPlan {
            plan,
            view,
            at,
            structure,
            members_file,
            expected,
            old,
        }) = self.plan_members(ruleset, opts, false)?
        else {
            return Ok(false);
        };
        let (name, key) = (self.backend.name(), self.backend.key());
        let kind = self.backend.plan_kind(&plan);
        let changes = kind != PlanKind::Unchanged;
        // The new members are recorded while the backend applies.
        let (result, file) = thread::scope(|s| {
            let file = s.spawn(|| {
                changes
                    .then(|| self.store_members_after(&members_file, &old, &view.sets))
                    .transpose()
            });
            let result = self.backend.apply_at(&plan, Some(&at));
            let file = file
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (result, file)
        });
        let Ok(generation) = result else {
            // Refused as a whole: nothing changed.
            return Ok(false);
        };
        report.plan = kind;
        report.plan_text = plan.to_string();
        report.plan_text.push_str(MEMBERS_NOTE);
        report.applied = true;
        let file = file?;
        let version = StateDir::record_version();
        if changes {
            self.state.write_snapshot(&Snapshot {
                version,
                backend: name.into(),
                key: key.clone(),
                taken_ms: now_ms(),
                state: Some(RecordedState::File(expected.clone())),
                persist: None,
                sysctl: None,
            })?;
        }
        let members_file = file.clone().unwrap_or(members_file);
        self.state.write_applied(&Applied {
            version,
            backend: name.into(),
            key: key.clone(),
            event: "apply".into(),
            target: ruleset.target.to_string(),
            source: opts.source.clone(),
            at_ms: now_ms(),
            expected: Some(RecordedState::File(StateRef {
                file: expected.file,
                members: file.or(expected.members),
            })),
            persist: None,
            hardening: None,
        })?;
        if let Some(generation) = generation {
            self.state.write_generation(&GenerationRecord {
                version,
                backend: name.into(),
                key,
                generation,
                structure,
                members: Some(MembersRecord {
                    structure: view.structure.clone(),
                    file: members_file,
                }),
            })?;
        }
        self.state.collect_garbage();
        dispose(old);
        if self.backend.persists_itself().is_none() {
            report
                .notes
                .push("not persisted: the change is lost at reboot (--no-persist)".into());
        }
        dispose(plan);
        Ok(true)
    }

    /// The generation of what is installed and, unless `refresh`, when
    /// it is still the one recorded after the last operation (nothing
    /// changed since), that operation's record.
    fn early(&self, refresh: bool) -> Result<Early<B>, HostError> {
        let start = self.early_start(refresh)?;
        Ok(Early {
            at: start.at,
            exact: match start.exact {
                Some(rx) => rx.recv().unwrap_or(Ok(None))?,
                None => None,
            },
            replace: None,
        })
    }

    /// The generation, the recorded generation's structure digest, and the
    /// record decoding on a thread of its own when the generation is still
    /// the recorded one.
    fn early_start(&self, refresh: bool) -> Result<EarlyStart<B>, HostError> {
        let at = self.backend.generation();
        let record = match &at {
            Some(g) if !refresh => self.state.generation()?.filter(|r| {
                r.backend == self.backend.name()
                    && r.key == self.backend.key()
                    && &r.generation == g
            }),
            _ => None,
        };
        let exact = record.as_ref().map(|_| {
            let (tx, rx) = std::sync::mpsc::channel();
            let fallback = tx.clone();
            let (state, name, key) = (self.state.clone(), self.backend.name(), self.backend.key());
            let spawned = thread::Builder::new().spawn(move || {
                let _ = tx.send(recorded::<B>(&state, name, &key));
            });
            if spawned.is_err() {
                // No thread to be had: here, then.
                let _ = fallback.send(self.recorded());
            }
            rx
        });
        Ok(EarlyStart {
            at,
            structure: record.and_then(|r| r.structure),
            exact,
        })
    }

    /// [`early`](Self::early) once `desired` is rendered: when its structure
    /// digest differs from the recorded one, the plan is a replacement and
    /// the record is not waited for (only its bytes are kept, for the
    /// snapshot).
    fn early_finish(
        &self,
        start: EarlyStart<B>,
        desired: &B::Artefact,
        digest: Option<&str>,
    ) -> Result<Early<B>, HostError> {
        let EarlyStart {
            at,
            structure,
            exact,
        } = start;
        let differs = matches!((&structure, digest), (Some(r), Some(d)) if r != d);
        let raw = match (&exact, differs) {
            (Some(_), true) => match self.state.applied()? {
                Some(a) if a.backend == self.backend.name() && a.key == self.backend.key() => {
                    a.expected
                }
                _ => None,
            },
            _ => None,
        };
        let reasons = vec![
            "the policy changes rules, chains or set definitions of the last apply, not only \
             set members"
                .to_string(),
        ];
        let replace = match raw {
            Some(raw) => self
                .backend
                .replace_plan(desired, reasons)
                .map(|plan| (plan, raw)),
            None => None,
        };
        Ok(match (replace, exact) {
            (Some((plan, raw)), Some(rx)) => Early {
                at,
                exact: None,
                replace: Some((plan, raw, rx)),
            },
            (_, exact) => Early {
                at,
                exact: match exact {
                    Some(rx) => rx.recv().unwrap_or(Ok(None))?,
                    None => None,
                },
                replace: None,
            },
        })
    }

    /// The installed state to plan against, where it comes from, the
    /// generation it was observed at, and the plan to `desired` (whose
    /// installed form is `expected`).
    ///
    /// When nothing changed since the last operation (`early.exact`), its
    /// record is what is installed. Else, unless `refresh`, the backend's
    /// cheap look at what is installed ([`HostBackend::glance`], on the
    /// other core) runs while the record is read and the plan against it
    /// made; when the look matches the record, that plan stands. Else the
    /// installed state is read in full.
    fn current_and_plan<'e>(
        &self,
        desired: &B::Artefact,
        expected: &dyn Fn() -> &'e B::State,
        early: Early<B>,
        refresh: bool,
    ) -> Result<Planned<B>, HostError> {
        let Early { at, exact, replace } = early;
        if let Some((plan, raw, details)) = replace {
            return Ok(Planned {
                plan,
                current: None,
                current_raw: Some(raw),
                details: Some(details),
                basis: Basis::Generation,
                at,
            });
        }
        let plan = |current: Option<&B::State>| {
            // Nothing installed: a replacement, whatever the state it leaves
            // (not worked out for it).
            if current.is_none() {
                let reason = format!("{} is not installed", self.backend.owned());
                if let Some(p) = self.backend.replace_plan(desired, vec![reason]) {
                    return Ok(p);
                }
            }
            self.backend
                .plan_expected(desired, expected(), current)
                .map_err(|e| self.be(e))
        };
        if let Some((recorded, raw)) = exact {
            return Ok(Planned {
                plan: plan(Some(&recorded))?,
                current: Some(recorded),
                current_raw: Some(raw),
                details: None,
                basis: Basis::Generation,
                at,
            });
        }
        // Without a record of this backend's last operation there is
        // nothing to check the installed structure against.
        let (name, key) = (self.backend.name(), self.backend.key());
        let has_record = self
            .state
            .applied()?
            .is_some_and(|a| a.backend == name && a.key == key && a.expected.is_some());
        if !refresh && has_record {
            let planned = thread::scope(|s| {
                let glance = s.spawn(|| self.backend.glance());
                let recorded = self.recorded();
                let matches = |g: &Result<Option<B::State>, B::Error>, r: &B::State| matches!(g, Ok(Some(g)) if self.backend.glance_matches(g, r));
                // The plan against the record is made while the look runs;
                // once it is back, only if the look matches.
                let (glance, plan) = match &recorded {
                    Ok(Some((r, _))) if glance.is_finished() => {
                        let glance = glance
                            .join()
                            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                        let plan = matches(&glance, r).then(|| plan(Some(r)));
                        (glance, plan)
                    }
                    Ok(Some((r, _))) => {
                        let plan = plan(Some(r));
                        let glance = glance
                            .join()
                            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                        (glance, Some(plan))
                    }
                    _ => (
                        glance
                            .join()
                            .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                        None,
                    ),
                };
                (glance, recorded, plan)
            });
            if let (glance, Ok(Some((recorded, raw))), Some(plan)) = planned {
                let glance = glance.map_err(|e| self.be(e))?;
                if glance.is_some_and(|g| self.backend.glance_matches(&g, &recorded)) {
                    return Ok(Planned {
                        plan: plan?,
                        current: Some(recorded),
                        current_raw: Some(raw),
                        details: None,
                        basis: Basis::Record,
                        at,
                    });
                }
            } else if let (_, Err(e), _) = planned {
                return Err(e);
            }
        }
        let current = self.backend.read().map_err(|e| self.be(e))?;
        Ok(Planned {
            plan: plan(current.as_ref())?,
            current,
            current_raw: None,
            details: None,
            basis: Basis::Read,
            at,
        })
    }

    /// The state the last operation left installed, from the records, and
    /// as recorded (`None`: no record of this backend and key, or nothing
    /// installed).
    fn recorded(&self) -> Result<Option<Recorded<B>>, HostError> {
        recorded::<B>(&self.state, self.backend.name(), &self.backend.key())
    }

    /// Keeps a pending change: clears the record (the timer then exits
    /// without restoring) and writes the deferred boot file.
    ///
    /// ```no_run
    /// # use backend_nft::{Nft, NftBackend};
    /// # let host = microseg_host::Host::new(NftBackend::new(Nft::host(), "t"), microseg_host::StateDir::resolve(None));
    /// println!("{}", host.confirm()?);
    /// # Ok::<(), microseg_host::HostError>(())
    /// ```
    pub fn confirm(&self) -> Result<ConfirmReport, HostError> {
        let _lock = self.state.lock(self.lock_timeout)?;
        let Some(p) = self.state.pending()? else {
            let detail = match self.state.applied()? {
                Some(a) if a.event == "timer-rollback" => format!(
                    "the confirm timer already restored the previous state, {:.1} s ago",
                    now_ms().saturating_sub(a.at_ms) as f64 / 1000.0
                ),
                _ => "no change is waiting for confirmation".into(),
            };
            return Err(HostError::NoPending { detail });
        };
        if p.backend != self.backend.name() || p.key != self.backend.key() {
            return Err(HostError::Mismatch(format!(
                "the pending change is for {} \"{}\", not {} \"{}\"",
                p.backend,
                p.key,
                self.backend.name(),
                self.backend.key()
            )));
        }
        let info = pending_info(&p);
        if info.remaining_secs < 0.0 {
            let what = if info.timer_running {
                "the timer is restoring the previous state"
            } else {
                "its confirm timer is gone (a reboot?): run `microseg rollback` to restore the \
                 previous state"
            };
            return Err(HostError::NoPending {
                detail: format!(
                    "too late: the deadline passed {:.1} s ago and {what}",
                    -info.remaining_secs
                ),
            });
        }
        let mut report = ConfirmReport {
            owned: self.backend.owned(),
            persisted: None,
            backup: None,
            timer_pid: p.timer_pid,
            notes: Vec::new(),
        };
        if let Some(why) = self.backend.persists_itself() {
            report.notes.push(why);
        }
        if let Some(job) = &p.persist {
            report.backup = persist::write_boot_file(&job.path, &job.text)?;
            let default = self.backend.default_persist_path().as_ref() == Some(&job.path);
            report
                .notes
                .extend(self.backend.persist_notes(&job.path, default));
            report.persisted = Some(job.path.clone());
        }
        self.state.clear_pending()?;
        if let Some(mut a) = self.state.applied()? {
            a.event = "confirm".into();
            a.at_ms = now_ms();
            self.state.write_applied(&a)?;
        }
        self.state.collect_garbage();
        Ok(report)
    }

    /// Restores the state saved before the last apply (or remove) that
    /// changed something, the boot file included; cancels a pending
    /// confirmation.
    ///
    /// ```no_run
    /// # use backend_nft::{Nft, NftBackend};
    /// # let host = microseg_host::Host::new(NftBackend::new(Nft::host(), "t"), microseg_host::StateDir::resolve(None));
    /// println!("{}", host.rollback()?);
    /// # Ok::<(), microseg_host::HostError>(())
    /// ```
    pub fn rollback(&self) -> Result<RollbackReport, HostError> {
        let _lock = self.state.lock(self.lock_timeout)?;
        let pending = self.state.pending()?;
        let snap = match &pending {
            Some(p) => p.snapshot.clone(),
            None => self
                .state
                .snapshot()?
                .ok_or_else(|| HostError::NoSnapshot {
                    dir: self.state.path().into(),
                })?,
        };
        self.check_snapshot(&snap)?;
        let saved = self.decode_state(snap.state.as_ref())?;
        self.backend
            .restore(saved.as_ref())
            .map_err(|e| self.be(e))?;
        if let Some(s) = &snap.sysctl {
            crate::sysctl::restore(s)?;
        }
        let mut boot_file = None;
        if let Some(r) = &snap.persist {
            persist::restore_boot_file(&r.path, r.previous.as_deref())?;
            boot_file = Some(r.path.clone());
        }
        if pending.is_some() {
            self.state.clear_pending()?;
        }
        let last = self.state.applied()?;
        self.state.write_applied(&Applied {
            version: StateDir::record_version(),
            backend: self.backend.name().into(),
            key: self.backend.key(),
            event: "rollback".into(),
            target: last.as_ref().map(|a| a.target.clone()).unwrap_or_default(),
            source: last.as_ref().map(|a| a.source.clone()).unwrap_or_default(),
            at_ms: now_ms(),
            expected: snap.state.clone(),
            persist: snap
                .persist
                .as_ref()
                .filter(|r| r.previous.is_some())
                .map(|r| r.path.clone()),
            hardening: None,
        })?;
        self.state.collect_garbage();
        Ok(RollbackReport {
            owned: self.backend.owned(),
            installed: saved.is_some(),
            taken_ms: snap.taken_ms,
            boot_file,
            cancelled_pending: pending.is_some(),
        })
    }

    /// What is installed, drift from what was last applied (handles and
    /// counter values aside), hit counters per flow, and any pending change.
    ///
    /// ```no_run
    /// # use backend_nft::{Nft, NftBackend};
    /// # let host = microseg_host::Host::new(NftBackend::new(Nft::host(), "t"), microseg_host::StateDir::resolve(None));
    /// let s = host.status()?;
    /// println!("{}", serde_json::to_string_pretty(&s).unwrap());
    /// # Ok::<(), microseg_host::HostError>(())
    /// ```
    pub fn status(&self) -> Result<Status, HostError> {
        let current = self.backend.read().map_err(|e| self.be(e))?;
        let applied = self
            .state
            .applied()?
            .filter(|a| a.backend == self.backend.name() && a.key == self.backend.key());
        let drift = match &applied {
            Some(a) => {
                let expected = self.decode_state(a.expected.as_ref())?;
                Some(self.backend.drift(expected.as_ref(), current.as_ref()))
            }
            None => None,
        };
        let pending = self
            .state
            .pending()?
            .filter(|p| p.backend == self.backend.name() && p.key == self.backend.key());
        Ok(Status {
            backend: self.backend.name().into(),
            owned: self.backend.owned(),
            installed: current.is_some(),
            last_event: applied.as_ref().map(|a| a.event.clone()),
            target: applied.as_ref().map(|a| a.target.clone()),
            source: applied.as_ref().map(|a| a.source.clone()),
            at_ms: applied.as_ref().map(|a| a.at_ms),
            drift,
            hits: current
                .as_ref()
                .map(|c| self.backend.hits(c))
                .unwrap_or_default(),
            pending: pending.as_ref().map(pending_info),
            sysctl_drift: match applied.as_ref().and_then(|a| a.hardening) {
                Some(h) => crate::sysctl::differences(&h)?,
                None => Vec::new(),
            },
            no_hits: self.backend.no_hits(),
            warnings: self.backend.warnings(),
        })
    }

    /// Removes everything the policy installed, nothing else, and its boot
    /// file (`Persist::Default`: the one the last apply wrote, else the
    /// backend's default place). The removed state becomes the rollback point.
    ///
    /// ```no_run
    /// # use backend_nft::{Nft, NftBackend};
    /// # let host = microseg_host::Host::new(NftBackend::new(Nft::host(), "t"), microseg_host::StateDir::resolve(None));
    /// println!("{}", host.remove(&microseg_host::Persist::Default)?);
    /// # Ok::<(), microseg_host::HostError>(())
    /// ```
    pub fn remove(&self, persist: &Persist) -> Result<RemoveReport, HostError> {
        let _lock = self.state.lock(self.lock_timeout)?;
        let current = self.backend.read().map_err(|e| self.be(e))?;
        let applied = self
            .state
            .applied()?
            .filter(|a| a.backend == self.backend.name() && a.key == self.backend.key());
        let path = match persist {
            _ if self.backend.persists_itself().is_some() => None,
            Persist::Default => applied
                .as_ref()
                .and_then(|a| a.persist.clone())
                .or_else(|| self.backend.default_persist_path()),
            Persist::To(p) => Some(p.clone()),
            Persist::Off => None,
        };
        if let Some(c) = &current {
            let persist = match &path {
                Some(p) => Some(PersistRecord {
                    path: p.clone(),
                    previous: persist::read_existing(p)?,
                }),
                None => None,
            };
            self.state.write_snapshot(&Snapshot {
                version: StateDir::record_version(),
                backend: self.backend.name().into(),
                key: self.backend.key(),
                taken_ms: now_ms(),
                state: Some(self.store_state(c)?),
                persist,
                sysctl: None,
            })?;
        }
        self.backend.remove().map_err(|e| self.be(e))?;
        let mut boot_file = None;
        if let Some(p) = &path {
            if persist::remove_boot_file(p)? {
                boot_file = Some(p.clone());
            }
        }
        self.state.clear_pending()?;
        self.state.write_applied(&Applied {
            version: StateDir::record_version(),
            backend: self.backend.name().into(),
            key: self.backend.key(),
            event: "remove".into(),
            target: String::new(),
            source: String::new(),
            at_ms: now_ms(),
            expected: None,
            persist: None,
            hardening: None,
        })?;
        self.state.collect_garbage();
        Ok(RemoveReport {
            owned: self.backend.owned(),
            was_installed: current.is_some(),
            boot_file,
            notes: if current.is_some() {
                self.backend.remove_notes()
            } else {
                Vec::new()
            },
        })
    }

    /// The confirm timer (run by the detached program of
    /// [`TimerCommand`]): detaches, waits for the deadline of pending change
    /// `id`, and restores its snapshot unless the record was cleared
    /// (`confirm`, `rollback`) or replaced meanwhile. Progress goes to the
    /// state directory's `timer.log`.
    ///
    /// ```no_run
    /// # use backend_nft::{Nft, NftBackend};
    /// # let host = microseg_host::Host::new(NftBackend::new(Nft::host(), "t"), microseg_host::StateDir::resolve(None));
    /// let outcome = host.run_timer("18c2f-1a2b")?;
    /// println!("{outcome}");
    /// # Ok::<(), microseg_host::HostError>(())
    /// ```
    pub fn run_timer(&self, id: &str) -> Result<TimerOutcome, HostError> {
        timer::detach()?;
        self.state.log(&format!("timer for change {id} started"));
        let result = self.timer_body(id);
        match &result {
            Ok(o) => self.state.log(&format!("change {id}: {o}")),
            Err(e) => self.state.log(&format!("change {id}: timer failed: {e}")),
        }
        result
    }

    fn timer_body(&self, id: &str) -> Result<TimerOutcome, HostError> {
        loop {
            match self.state.pending()? {
                None => return Ok(TimerOutcome::Confirmed),
                Some(p) if p.id != id => return Ok(TimerOutcome::Superseded),
                Some(p) => {
                    let now = now_ms();
                    if now >= p.deadline_ms {
                        break;
                    }
                    thread::sleep(TIMER_POLL.min(Duration::from_millis(p.deadline_ms - now)));
                }
            }
        }
        let _lock = self.state.lock(TIMER_LOCK_TIMEOUT)?;
        let p = match self.state.pending()? {
            None => return Ok(TimerOutcome::Confirmed),
            Some(p) if p.id != id => return Ok(TimerOutcome::Superseded),
            Some(p) => p,
        };
        self.check_snapshot(&p.snapshot)?;
        let saved = self.decode_state(p.snapshot.state.as_ref())?;
        self.backend
            .restore(saved.as_ref())
            .map_err(|e| self.be(e))?;
        if let Some(s) = &p.snapshot.sysctl {
            crate::sysctl::restore(s)?;
        }
        self.state.clear_pending()?;
        let last = self.state.applied()?;
        self.state.write_applied(&Applied {
            version: StateDir::record_version(),
            backend: self.backend.name().into(),
            key: self.backend.key(),
            event: "timer-rollback".into(),
            target: last.as_ref().map(|a| a.target.clone()).unwrap_or_default(),
            source: last.as_ref().map(|a| a.source.clone()).unwrap_or_default(),
            at_ms: now_ms(),
            expected: p.snapshot.state.clone(),
            persist: last.and_then(|a| a.persist),
            hardening: None,
        })?;
        self.state.collect_garbage();
        Ok(TimerOutcome::RolledBack)
    }
}
