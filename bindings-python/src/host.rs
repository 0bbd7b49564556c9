//! Backend operations on the local host through microseg-host: plan, apply
//! (lock, snapshot, anti-lockout, confirm timer, boot persistence), confirm,
//! rollback, status and remove.
//!
//! ```text
//! >>> host = microseg.Host(state_dir="/var/lib/microseg")
//! >>> host.apply(policy, role="auto", dry_run=True)["plan"]
//! 'replace'
//! ```

use crate::convert::json_to_py;
use crate::errors::{backend_error, core_error, nft_error, request_error};
use crate::{target_of, PyPolicy};
use backend_firewalld::sandbox::PrivateFirewalld;
use backend_firewalld::{FirewalldBackend, FirewalldError};
use backend_nft::{Lowering, Nft, NftBackend, NftError};
use microseg_core::backend::Backend;
use microseg_core::ir::{self, HostRuleset, Target};
use microseg_core::Policy;
use microseg_host::{
    ApplyOptions, ApplyReport, ConfirmOptions, ConfirmReport, Host, HostError, Persist,
    RemoveReport, RollbackReport, StateDir, Status, TimerCommand, TimerOutcome,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde::Serialize;
use std::ffi::OsString;
use std::fmt::Display;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

/// The table managed when none is given and the state directory records none.
const DEFAULT_TABLE: &str = "microseg";

/// The firewall backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Nft,
    Firewalld,
}

impl Kind {
    fn parse(s: &str) -> PyResult<Kind> {
        match s {
            "nftables" | "nft" => Ok(Kind::Nft),
            "firewalld" => Ok(Kind::Firewalld),
            other => Err(request_error(format!(
                "unknown backend {other:?}: use \"nftables\" or \"firewalld\""
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Nft => "nftables",
            Kind::Firewalld => "firewalld",
        }
    }
}

/// The local host's firewall, managed through a backend and a state
/// directory (records, lock, snapshot for rollback).
#[pyclass(frozen, module = "microseg", name = "Host")]
pub struct PyHost {
    kind: Kind,
    state_dir: Option<PathBuf>,
    netns: Option<String>,
    bus_address: Option<String>,
    lock_timeout: Duration,
}

/// A host manager over either backend.
enum AnyHost {
    Nft(Host<NftBackend>),
    Firewalld(Host<FirewalldBackend>),
}

/// Calls the same method on either kind of host.
macro_rules! each {
    ($h:expr, $x:ident => $e:expr) => {
        match $h {
            AnyHost::Nft($x) => $e,
            AnyHost::Firewalld($x) => $e,
        }
    };
}

impl AnyHost {
    fn apply(&self, rs: &HostRuleset, opts: &ApplyOptions) -> Result<ApplyReport, HostError> {
        each!(self, h => h.apply(rs, opts))
    }
    fn confirm(&self) -> Result<ConfirmReport, HostError> {
        each!(self, h => h.confirm())
    }
    fn rollback(&self) -> Result<RollbackReport, HostError> {
        each!(self, h => h.rollback())
    }
    fn status(&self) -> Result<Status, HostError> {
        each!(self, h => h.status())
    }
    fn remove(&self, persist: &Persist) -> Result<RemoveReport, HostError> {
        each!(self, h => h.remove(persist))
    }
    fn run_timer(&self, id: &str) -> Result<TimerOutcome, HostError> {
        each!(self, h => h.run_timer(id))
    }
}

fn firewalld_error(e: FirewalldError) -> HostError {
    HostError::Backend {
        backend: "firewalld".into(),
        source: Box::new(e),
    }
}

/// A host error as the Python exception: `PolicyError`/`RequestError` for
/// compile problems, else `BackendError` with `kind` naming the case.
fn host_error(py: Python<'_>, e: HostError) -> PyErr {
    let kind = match &e {
        HostError::Backend { .. } => "backend",
        HostError::Io { .. } => "io",
        HostError::Record { .. } => "record",
        HostError::Busy { .. } => "busy",
        HostError::LockedOut { .. } => "locked-out",
        HostError::Pending { .. } => "pending",
        HostError::NoPending { .. } => "no-pending",
        HostError::NoSnapshot { .. } => "no-snapshot",
        HostError::Mismatch(_) => "mismatch",
        HostError::AutoTarget(_) => "auto-target",
        HostError::Command { .. } => "command",
        HostError::Timer(_) => "timer",
        HostError::Compile(_) => "compile",
    };
    match e {
        HostError::Compile(c) => core_error(py, c),
        HostError::AutoTarget(m) => request_error(format!("role auto: {m}")),
        HostError::Backend { backend, source } => match source.downcast::<NftError>() {
            Ok(nft) => {
                let err = nft_error(*nft);
                prefix_backend(py, &err, &backend);
                set_kind(py, &err, kind);
                err
            }
            Err(other) => with_kind(
                py,
                backend_error(format!("{backend}: {other}"), None, None),
                kind,
            ),
        },
        HostError::Command { command, message } => with_kind(
            py,
            backend_error(
                format!("`{command}` failed: {message}"),
                Some(command),
                Some(message),
            ),
            kind,
        ),
        other => with_kind(py, backend_error(other.to_string(), None, None), kind),
    }
}

fn set_kind(py: Python<'_>, err: &PyErr, kind: &str) {
    let _ = err.value(py).setattr("kind", kind);
}

fn with_kind(py: Python<'_>, err: PyErr, kind: &str) -> PyErr {
    set_kind(py, &err, kind);
    err
}

/// Puts `backend: ` before the message of an nft error (as the CLI prints it).
fn prefix_backend(py: Python<'_>, err: &PyErr, backend: &str) {
    let value = err.value(py);
    if let Ok(msg) = value.str() {
        let text = format!("{backend}: {msg}");
        let _ = value.setattr("args", (text,));
    }
}

/// A report as a dict: its JSON form plus `text` (as the CLI prints it).
fn report<'py, R: Serialize + Display>(
    py: Python<'py>,
    r: &R,
    extra: &[(&str, serde_json::Value)],
) -> PyResult<Bound<'py, PyAny>> {
    let mut v = serde_json::to_value(r).expect("reports serialise");
    if let Some(m) = v.as_object_mut() {
        m.insert("text".into(), serde_json::Value::String(r.to_string()));
        for (k, x) in extra {
            m.insert((*k).into(), x.clone());
        }
    }
    json_to_py(py, &v)
}

/// `persist`: not given, `None` or `True` = the backend's default place (as the
/// CLI), `False` = off, or a path.
fn persist_of(value: Option<&Bound<'_, PyAny>>) -> PyResult<Persist> {
    match value {
        None => Ok(Persist::Default),
        Some(v) if v.is_none() => Ok(Persist::Default),
        Some(v) => {
            if let Ok(b) = v.extract::<bool>() {
                return Ok(if b { Persist::Default } else { Persist::Off });
            }
            let p: PathBuf = v
                .extract()
                .map_err(|_| request_error("persist must be True, False or a path"))?;
            Ok(Persist::To(p))
        }
    }
}

/// `role="auto"`: this host's one managed address (`ip -j addr show`).
fn auto_target(policy: &Policy) -> Result<Target, HostError> {
    let addrs = microseg_host::auto::local_addresses()?;
    microseg_host::auto::auto_target(policy, &addrs)
}

impl PyHost {
    fn nft(&self) -> Nft {
        match &self.netns {
            Some(ns) => Nft::in_netns(ns.clone()),
            None => Nft::host(),
        }
    }

    fn state(&self) -> StateDir {
        StateDir::resolve(self.state_dir.clone())
    }

    /// The host manager for `table` (firewalld: connects to the bus; call
    /// with the GIL released).
    fn any_host(&self, table: &str) -> Result<AnyHost, HostError> {
        self.any_host_with(table, Lowering::Plain)
    }

    /// [`any_host`](Self::any_host), rendering nftables rulesets with `lowering`.
    fn any_host_with(&self, table: &str, lowering: Lowering) -> Result<AnyHost, HostError> {
        Ok(match self.kind {
            Kind::Nft => AnyHost::Nft(
                Host::new(
                    NftBackend::new(self.nft(), table).with_lowering(lowering),
                    self.state(),
                )
                .with_lock_timeout(self.lock_timeout),
            ),
            Kind::Firewalld => AnyHost::Firewalld(
                Host::new(
                    FirewalldBackend::connect(self.bus_address.as_deref())
                        .map_err(firewalld_error)?
                        .with_table(table),
                    self.state(),
                )
                .with_lock_timeout(self.lock_timeout),
            ),
        })
    }

    /// The table to act on: given, else the one the state directory records, else `microseg`.
    fn table_or_recorded(&self, py: Python<'_>, table: Option<String>) -> PyResult<String> {
        if let Some(t) = table {
            return Ok(t);
        }
        let state = self.state();
        let recorded = py
            .detach(|| state.recorded())
            .map_err(|e| host_error(py, e))?;
        Ok(recorded
            .map(|(_, key)| key)
            .unwrap_or_else(|| DEFAULT_TABLE.to_string()))
    }

    /// The program the confirm timer runs: this Python with `-m microseg._timer`.
    fn timer_command(&self, py: Python<'_>, table: &str) -> PyResult<TimerCommand> {
        let exe: PathBuf = py.import("sys")?.getattr("executable")?.extract()?;
        let mut args: Vec<OsString> = [
            "-m",
            "microseg._timer",
            "--backend",
            self.kind.name(),
            "--table",
            table,
        ]
        .iter()
        .map(OsString::from)
        .collect();
        if let Some(ns) = &self.netns {
            args.push("--netns".into());
            args.push(ns.into());
        }
        if let Some(bus) = &self.bus_address {
            args.push("--bus".into());
            args.push(bus.into());
        }
        Ok(TimerCommand { program: exe, args })
    }
}

#[pymethods]
impl PyHost {
    /// `backend`: `"nftables"` (or `"nft"`) or `"firewalld"`. `state_dir`:
    /// records, lock and snapshots (default `$MICROSEG_STATE_DIR`, else
    /// `/var/lib/microseg`). `netns`: run `nft` inside this named network
    /// namespace (`ip netns exec`; nftables only). `bus_address`: the D-Bus
    /// bus firewalld is on (default `$DBUS_SYSTEM_BUS_ADDRESS`, else the
    /// system bus; firewalld only). `lock_timeout`: seconds to wait for
    /// another microseg operation.
    #[new]
    #[pyo3(signature = (backend = "nftables", state_dir = None, netns = None, lock_timeout = 30.0,
                        bus_address = None))]
    fn new(
        backend: &str,
        state_dir: Option<PathBuf>,
        netns: Option<String>,
        lock_timeout: f64,
        bus_address: Option<String>,
    ) -> PyResult<PyHost> {
        if !(lock_timeout.is_finite() && lock_timeout >= 0.0) {
            return Err(request_error(
                "lock_timeout must be a number of seconds >= 0",
            ));
        }
        let kind = Kind::parse(backend)?;
        match kind {
            Kind::Nft if bus_address.is_some() => {
                return Err(request_error("bus_address is for backend=\"firewalld\""))
            }
            Kind::Firewalld if netns.is_some() => {
                return Err(request_error(
                    "netns is for backend=\"nftables\": firewalld is reached over its bus (bus_address)",
                ))
            }
            _ => {}
        }
        Ok(PyHost {
            kind,
            state_dir,
            netns,
            bus_address,
            lock_timeout: Duration::from_secs_f64(lock_timeout),
        })
    }

    /// The backend (`"nftables"` or `"firewalld"`).
    #[getter]
    fn backend(&self) -> &'static str {
        self.kind.name()
    }

    /// The state directory in use.
    #[getter]
    fn state_dir(&self) -> PathBuf {
        self.state().path().to_path_buf()
    }

    /// The compile target for `role`/`host` on this host: `role="auto"`
    /// picks the one address of this host (`ip -j addr show`) that the
    /// policy manages. Returns `{"kind": "role"|"host", "value": ...}`.
    #[pyo3(signature = (policy, role = None, host = None))]
    fn target<'py>(
        &self,
        py: Python<'py>,
        policy: &PyPolicy,
        role: Option<&str>,
        host: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let p = policy.policy();
        let t = self.resolve(py, &p, role, host)?;
        json_to_py(py, &serde_json::to_value(&t).expect("targets serialise"))
    }

    /// The plan for making this host's firewall match the policy (changes
    /// nothing): `apply(..., dry_run=True)`.
    #[pyo3(signature = (policy, role = None, host = None, optimize = false, lowering = None))]
    fn plan<'py>(
        &self,
        py: Python<'py>,
        policy: &PyPolicy,
        role: Option<&str>,
        host: Option<&str>,
        optimize: bool,
        lowering: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.apply(
            py, policy, role, host, true, false, None, None, None, None, None, false, optimize,
            lowering,
        )
    }

    /// Makes this host's firewall match the policy compiled for `role`
    /// (`"auto"`: from the host's addresses) or `host`: plan, anti-lockout
    /// check (refused unless `force` when `ssh_connection` — default: the
    /// `SSH_CONNECTION` environment variable — would lose access), snapshot,
    /// one atomic transaction, records. `confirm_timeout` (seconds): the
    /// change rolls itself back unless `confirm()` runs in time. `persist`:
    /// `True` (default, as the CLI) = the backend's boot file (nft:
    /// `/etc/nftables.d/TABLE.nft`), `False` = not persisted, or a path.
    /// `sysctl_file` (policies with `hardening`): the same for the sysctl.d
    /// file (default `/etc/sysctl.d/99-TABLE.conf`; `False`: set the values
    /// only). `dry_run`: only plan. `refresh`: plan from a full read of the
    /// installed state, not from the record of the last operation (used when
    /// the installed rules, chains and set definitions still match it).
    /// `lowering` (nftables): `"optimized"` (the default: verdict maps over
    /// an exact partition, a bounded number of rules and lookups per new
    /// connection) or `"plain"` (one rule per flow and direction with named
    /// sets); both take membership changes as element deltas. `optimize=True`
    /// is the same as `lowering="optimized"`. Returns the report as a dict (`plan` is
    /// `"unchanged"`, `"incremental"` or `"replace"`; `changed`; `text`).
    /// Releases the GIL.
    #[pyo3(signature = (policy, role = None, host = None, dry_run = false, force = false,
                        confirm_timeout = None, persist = None, ssh_connection = None, source = None,
                        sysctl_file = None, refresh = false, optimize = false, lowering = None))]
    #[allow(clippy::too_many_arguments)]
    fn apply<'py>(
        &self,
        py: Python<'py>,
        policy: &PyPolicy,
        role: Option<&str>,
        host: Option<&str>,
        dry_run: bool,
        force: bool,
        confirm_timeout: Option<f64>,
        persist: Option<&Bound<'py, PyAny>>,
        ssh_connection: Option<String>,
        source: Option<String>,
        sysctl_file: Option<&Bound<'py, PyAny>>,
        refresh: bool,
        optimize: bool,
        lowering: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if (optimize || lowering.is_some()) && self.kind != Kind::Nft {
            return Err(request_error(
                "lowering and optimize are choices of the nftables backend; firewalld has its \
                 own objects",
            ));
        }
        let lowering =
            match (lowering, optimize) {
                (None, _) | (Some("optimized"), _) => Lowering::Optimized,
                (Some("plain"), false) => Lowering::Plain,
                (Some("plain"), true) => return Err(request_error(
                    "optimize=True asks for the optimized lowering, lowering=\"plain\" for the \
                     other: give one",
                )),
                (Some(other), _) => {
                    return Err(request_error(format!(
                        "unknown lowering {other:?}: use \"optimized\" (the default) or \"plain\""
                    )))
                }
            };
        let p = policy.policy();
        let target = self.resolve(py, &p, role, host)?;
        let ssh_connection = match ssh_connection {
            Some(s) if s.is_empty() => None,
            Some(s) => Some(s),
            None => std::env::var("SSH_CONNECTION")
                .ok()
                .filter(|s| !s.is_empty()),
        };
        let confirm = match confirm_timeout {
            None => None,
            Some(t) if t.is_finite() && t > 0.0 => Some(ConfirmOptions {
                timeout: Duration::from_secs_f64(t),
                timer: self.timer_command(py, &p.table)?,
            }),
            Some(_) => {
                return Err(request_error(
                    "confirm_timeout must be a number of seconds > 0",
                ))
            }
        };
        let opts = ApplyOptions {
            dry_run,
            force,
            ssh_connection,
            confirm,
            persist: persist_of(persist)?,
            source: source
                .or_else(|| p.positions.file.clone())
                .unwrap_or_else(|| "<python>".into()),
            sysctl_file: persist_of(sysctl_file)?,
            refresh,
            ..ApplyOptions::default()
        };
        let result = py.detach(|| {
            let rs = ir::compile(&p, &target)?;
            self.any_host_with(&p.table, lowering)?.apply(&rs, &opts)
        });
        let r = result.map_err(|e| host_error(py, e))?;
        let changed = r.plan != microseg_host::PlanKind::Unchanged || !r.sysctl.is_empty();
        report(py, &r, &[("changed", changed.into())])
    }

    /// Keeps a change applied with `confirm_timeout` (the timer then exits
    /// without restoring) and writes its deferred boot file.
    #[pyo3(signature = (table = None))]
    fn confirm<'py>(&self, py: Python<'py>, table: Option<String>) -> PyResult<Bound<'py, PyAny>> {
        let table = self.table_or_recorded(py, table)?;
        let r = py
            .detach(|| self.any_host(&table)?.confirm())
            .map_err(|e| host_error(py, e))?;
        report(py, &r, &[])
    }

    /// Restores the state saved before the last apply or remove that
    /// changed something (boot file included); cancels a pending change.
    #[pyo3(signature = (table = None))]
    fn rollback<'py>(&self, py: Python<'py>, table: Option<String>) -> PyResult<Bound<'py, PyAny>> {
        let table = self.table_or_recorded(py, table)?;
        let r = py
            .detach(|| self.any_host(&table)?.rollback())
            .map_err(|e| host_error(py, e))?;
        report(py, &r, &[])
    }

    /// What is installed, drift from what was applied, hit counters per
    /// flow, and any pending change.
    #[pyo3(signature = (table = None))]
    fn status<'py>(&self, py: Python<'py>, table: Option<String>) -> PyResult<Bound<'py, PyAny>> {
        let table = self.table_or_recorded(py, table)?;
        let s = py
            .detach(|| self.any_host(&table)?.status())
            .map_err(|e| host_error(py, e))?;
        let drifted = s.drifted();
        report(py, &s, &[("drifted", drifted.into())])
    }

    /// Removes everything the policy installed (its table), nothing else,
    /// and its boot file (`persist=True`, the default: the one the last apply
    /// wrote; `False`: none; or a path).
    /// `dry_run`: only report whether there is something to remove.
    #[pyo3(signature = (table = None, dry_run = false, persist = None))]
    fn remove<'py>(
        &self,
        py: Python<'py>,
        table: Option<String>,
        dry_run: bool,
        persist: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let table = self.table_or_recorded(py, table)?;
        if dry_run {
            let s = py
                .detach(|| self.any_host(&table)?.status())
                .map_err(|e| host_error(py, e))?;
            let d = PyDict::new(py);
            d.set_item("owned", &s.owned)?;
            d.set_item("was_installed", s.installed)?;
            d.set_item("changed", s.installed)?;
            d.set_item("dry_run", true)?;
            let text = if s.installed {
                format!("dry run: {} would be removed\n", s.owned)
            } else {
                format!("nothing to remove: {} is not installed\n", s.owned)
            };
            d.set_item("text", text)?;
            return Ok(d.into_any());
        }
        let persist = match persist {
            None => Persist::Default,
            Some(v) => persist_of(Some(v))?,
        };
        let r = py
            .detach(|| self.any_host(&table)?.remove(&persist))
            .map_err(|e| host_error(py, e))?;
        let changed = r.was_installed;
        report(
            py,
            &r,
            &[("changed", changed.into()), ("dry_run", false.into())],
        )
    }

    /// What is installed, as text: nftables: the table as the kernel lists
    /// it without counter values (`nft -s list table inet TABLE`);
    /// firewalld: the owned objects (zone, policy, ipsets, permanent and
    /// runtime) as JSON. `None` if nothing is installed.
    #[pyo3(signature = (table = None))]
    fn installed_text(&self, py: Python<'_>, table: Option<String>) -> PyResult<Option<String>> {
        let table = self.table_or_recorded(py, table)?;
        match self.kind {
            Kind::Nft => {
                let nft = self.nft();
                let r =
                    py.detach(
                        || match nft.run(&["-s", "list", "table", "inet", &table], None) {
                            Ok(out) => Ok(Some(out)),
                            Err(NftError::Command { stderr, .. })
                                if stderr.contains("No such file or directory") =>
                            {
                                Ok(None)
                            }
                            Err(e) => Err(e),
                        },
                    );
                r.map_err(nft_error)
            }
            Kind::Firewalld => {
                let bus = self.bus_address.as_deref();
                let r = py.detach(|| {
                    let fw = FirewalldBackend::connect(bus)?.with_table(&table);
                    Backend::read(&fw)
                });
                let state = r.map_err(|e| host_error(py, firewalld_error(e)))?;
                Ok(state
                    .filter(|s| s.is_installed())
                    .map(|s| serde_json::to_string_pretty(&s).expect("states serialise") + "\n"))
            }
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "<microseg.Host backend={:?} state_dir={:?}{}>",
            self.kind.name(),
            self.state().path().display().to_string(),
            self.netns
                .as_ref()
                .map(|n| format!(" netns={n:?}"))
                .or_else(|| self
                    .bus_address
                    .as_ref()
                    .map(|b| format!(" bus_address={b:?}")))
                .unwrap_or_default()
        )
    }
}

impl PyHost {
    fn resolve(
        &self,
        py: Python<'_>,
        policy: &Policy,
        role: Option<&str>,
        host: Option<&str>,
    ) -> PyResult<Target> {
        if role == Some("auto") && host.is_none() && !policy.roles.contains_key("auto") {
            if let Some(ns) = &self.netns {
                return Err(request_error(format!(
                    "role auto reads this process's addresses, not those of netns {ns:?}: give role or host"
                )));
            }
            return py
                .detach(|| auto_target(policy))
                .map_err(|e| host_error(py, e));
        }
        target_of(role, host)
    }
}

/// The confirm timer (`python -m microseg._timer`): waits for the deadline
/// of pending change `id` and restores its snapshot unless confirmed.
/// Returns the outcome (`confirmed`, `superseded`, `rolled-back`).
#[pyfunction]
#[pyo3(signature = (backend, table, state_dir, id, netns = None, bus = None))]
fn _run_timer(
    py: Python<'_>,
    backend: &str,
    table: &str,
    state_dir: PathBuf,
    id: &str,
    netns: Option<String>,
    bus: Option<String>,
) -> PyResult<String> {
    let h = PyHost {
        kind: Kind::parse(backend)?,
        state_dir: Some(state_dir),
        netns,
        bus_address: bus,
        lock_timeout: Duration::from_secs(30),
    };
    let outcome = py
        .detach(|| h.any_host(table)?.run_timer(id))
        .map_err(|e| host_error(py, e))?;
    Ok(serde_json::to_value(outcome)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| outcome.to_string()))
}

/// Test support: a firewalld on a private D-Bus bus inside a throw-away
/// network namespace (backend-firewalld's sandbox). Stopped, and the
/// namespace deleted, by `close()` (or when garbage-collected).
#[pyclass(frozen, module = "microseg._native", name = "_PrivateFirewalld")]
struct PyPrivateFirewalld {
    inner: Mutex<Option<PrivateFirewalld>>,
    bus_address: String,
    netns: String,
}

#[pymethods]
impl PyPrivateFirewalld {
    /// Starts it (a few seconds); needs root, firewalld and dbus-daemon.
    #[new]
    fn new(py: Python<'_>) -> PyResult<PyPrivateFirewalld> {
        let fw = py
            .detach(PrivateFirewalld::start)
            .map_err(|e| backend_error(e.to_string(), None, None))?;
        Ok(PyPrivateFirewalld {
            bus_address: fw.bus_address().to_string(),
            netns: fw.netns().to_string(),
            inner: Mutex::new(Some(fw)),
        })
    }

    /// The bus address (for `Host(backend="firewalld", bus_address=...)`).
    #[getter]
    fn bus_address(&self) -> String {
        self.bus_address.clone()
    }

    /// The network namespace firewalld runs in.
    #[getter]
    fn netns(&self) -> String {
        self.netns.clone()
    }

    /// Stops firewalld and the bus and deletes the namespace.
    fn close(&self, py: Python<'_>) {
        let fw = self.inner.lock().unwrap_or_else(|e| e.into_inner()).take();
        py.detach(move || drop(fw));
    }
}

/// Adds the host classes and functions to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyHost>()?;
    m.add_class::<PyPrivateFirewalld>()?;
    m.add_function(wrap_pyfunction!(_run_timer, m)?)?;
    Ok(())
}
