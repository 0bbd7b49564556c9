//! The state directory: records written atomically, and the lock.

use crate::HostError;
use nix::fcntl::{Flock, FlockArg};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The state directory when neither a parameter nor [`STATE_DIR_ENV`] names one.
///
/// ```
/// assert_eq!(microseg_host::DEFAULT_STATE_DIR, "/var/lib/microseg");
/// ```
pub const DEFAULT_STATE_DIR: &str = "/var/lib/microseg";

/// The environment variable that overrides [`DEFAULT_STATE_DIR`].
///
/// ```
/// assert_eq!(microseg_host::STATE_DIR_ENV, "MICROSEG_STATE_DIR");
/// ```
pub const STATE_DIR_ENV: &str = "MICROSEG_STATE_DIR";

const LOCK: &str = "lock";
const SNAPSHOT: &str = "snapshot.json";
const APPLIED: &str = "applied.json";
const PENDING: &str = "pending.json";
const GENERATION: &str = "generation.json";
const TIMER_LOG: &str = "timer.log";
/// Recorded backend states, one file each, referred to by the records.
const STATES: &str = "states";
/// Recorded set members ([`crate::members`]), referred to by the records.
const MEMBERS: &str = "members";

/// Format of the records; bumped on incompatible changes.
const RECORD_VERSION: u32 = 2;

/// The oldest format still read: version 1 held backend states inline
/// ([`RecordedState::Inline`]); records are always written in the current one.
const OLDEST_RECORD_VERSION: u32 = 1;

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Where microseg keeps what it needs between runs.
///
/// ```
/// let dir = microseg_host::StateDir::resolve(Some("/tmp/ms-state".into()));
/// assert_eq!(dir.path(), std::path::Path::new("/tmp/ms-state"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDir {
    path: PathBuf,
}

/// The exclusive lock of a state directory, held until dropped.
///
/// ```no_run
/// let dir = microseg_host::StateDir::resolve(None);
/// let lock = dir.lock(std::time::Duration::from_secs(5))?;
/// // … nobody else applies meanwhile …
/// drop(lock);
/// # Ok::<(), microseg_host::HostError>(())
/// ```
#[derive(Debug)]
pub struct StateLock {
    _flock: Flock<File>,
}

/// A previous state, enough to put it back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    pub(crate) version: u32,
    pub(crate) backend: String,
    pub(crate) key: String,
    pub(crate) taken_ms: u64,
    /// The backend's state (`None`: nothing was installed).
    pub(crate) state: Option<RecordedState>,
    /// The boot file and what it held before (`None`: persistence was off).
    pub(crate) persist: Option<PersistRecord>,
    /// The hardening sysctl values and file before (`None`: the policy has no hardening).
    #[serde(default)]
    pub(crate) sysctl: Option<crate::sysctl::SysctlSnapshot>,
}

/// A boot file and its content before we wrote it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PersistRecord {
    pub(crate) path: PathBuf,
    pub(crate) previous: Option<String>,
}

/// What the last operation left installed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Applied {
    pub(crate) version: u32,
    pub(crate) backend: String,
    pub(crate) key: String,
    /// `apply`, `confirm`, `rollback`, `timer-rollback`, `remove`.
    pub(crate) event: String,
    pub(crate) target: String,
    pub(crate) source: String,
    pub(crate) at_ms: u64,
    /// The state expected to be installed (`None`: nothing).
    pub(crate) expected: Option<RecordedState>,
    /// The boot file written for it, if any.
    pub(crate) persist: Option<PathBuf>,
    /// The hardening applied with it, if any (for `status`).
    #[serde(default)]
    pub(crate) hardening: Option<microseg_core::Hardening>,
}

/// The generation of what is installed right after the last operation
/// (written after, and removed before, `applied.json`): while the backend
/// still reports it, nothing has changed since and the record is exact.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct GenerationRecord {
    pub(crate) version: u32,
    pub(crate) backend: String,
    pub(crate) key: String,
    pub(crate) generation: crate::Generation,
    /// A digest of the installed structure, set members aside
    /// ([`HostBackend::structure_digest`](crate::HostBackend::structure_digest)).
    #[serde(default)]
    pub(crate) structure: Option<String>,
    /// The members of the installed sets, where the backend has
    /// [`HostBackend::members`](crate::HostBackend::members).
    #[serde(default)]
    pub(crate) members: Option<MembersRecord>,
}

/// The set members installed by the last operation, and the digest of
/// everything else installed with them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MembersRecord {
    /// [`MemberSets::structure`](crate::members::MemberSets::structure).
    pub(crate) structure: String,
    /// The members file (in `members/`).
    pub(crate) file: String,
}

/// A recorded backend state: a file of `states/` (JSON, written once and
/// never changed), with the members of its sets replaced by those of a
/// file of `members/` when set members changed since (an element delta
/// planned from the IR records only the new members).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StateRef {
    /// The state's file in `states/`.
    pub(crate) file: String,
    /// The members file in `members/` whose sets' members replace the
    /// state's (`None`: the state as it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) members: Option<String>,
}

/// A backend state in a record: a [`StateRef`], or (records of version 1,
/// written before states had files of their own) the state itself.
#[derive(Debug, Clone)]
pub(crate) enum RecordedState {
    /// In a file of `states/`.
    File(StateRef),
    /// In the record itself.
    Inline(Box<serde_json::value::RawValue>),
}

impl Serialize for RecordedState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RecordedState::File(r) => r.serialize(s),
            RecordedState::Inline(raw) => raw.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for RecordedState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        Ok(match serde_json::from_str::<StateRef>(raw.get()) {
            Ok(r) => RecordedState::File(r),
            Err(_) => RecordedState::Inline(raw),
        })
    }
}

/// A change waiting for `confirm`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Pending {
    pub(crate) version: u32,
    pub(crate) id: String,
    pub(crate) backend: String,
    pub(crate) key: String,
    pub(crate) target: String,
    pub(crate) created_ms: u64,
    /// When the timer restores the snapshot.
    pub(crate) deadline_ms: u64,
    pub(crate) timer_pid: Option<u32>,
    /// What the timer (or `rollback`) restores.
    pub(crate) snapshot: Snapshot,
    /// The boot file to write on `confirm`.
    pub(crate) persist: Option<PersistJob>,
}

/// A boot file write deferred to `confirm`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PersistJob {
    pub(crate) path: PathBuf,
    pub(crate) text: String,
}

impl StateDir {
    /// The state directory: `explicit` if given, else `$MICROSEG_STATE_DIR`
    /// if set and not empty, else [`DEFAULT_STATE_DIR`].
    ///
    /// ```
    /// let d = microseg_host::StateDir::resolve(Some("/srv/ms".into()));
    /// assert_eq!(d.path().to_str(), Some("/srv/ms"));
    /// ```
    pub fn resolve(explicit: Option<PathBuf>) -> StateDir {
        let path = explicit
            .or_else(|| {
                std::env::var_os(STATE_DIR_ENV)
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        StateDir { path }
    }

    /// The directory.
    ///
    /// ```
    /// let d = microseg_host::StateDir::resolve(Some("/x".into()));
    /// assert_eq!(d.path(), std::path::Path::new("/x"));
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The confirm timer's log file.
    ///
    /// ```
    /// let d = microseg_host::StateDir::resolve(Some("/x".into()));
    /// assert_eq!(d.timer_log(), std::path::Path::new("/x/timer.log"));
    /// ```
    pub fn timer_log(&self) -> PathBuf {
        self.path.join(TIMER_LOG)
    }

    /// Creates the directory (mode 0700) if needed.
    pub(crate) fn ensure(&self) -> Result<(), HostError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.path)
            .map_err(|e| HostError::io("cannot create the state directory", &self.path, e))
    }

    /// Takes the exclusive lock, waiting at most `timeout` for another holder.
    ///
    /// ```
    /// # let tmp = std::env::temp_dir().join(format!("ms-lock-doc-{}", std::process::id()));
    /// let dir = microseg_host::StateDir::resolve(Some(tmp.clone()));
    /// let held = dir.lock(std::time::Duration::from_secs(1)).unwrap();
    /// // A second holder (even in this process) waits, then gives up.
    /// let busy = dir.lock(std::time::Duration::from_millis(50)).unwrap_err();
    /// assert!(matches!(busy, microseg_host::HostError::Busy { .. }));
    /// drop(held);
    /// assert!(dir.lock(std::time::Duration::ZERO).is_ok());
    /// # std::fs::remove_dir_all(tmp).unwrap();
    /// ```
    pub fn lock(&self, timeout: Duration) -> Result<StateLock, HostError> {
        self.ensure()?;
        let path = self.path.join(LOCK);
        let start = Instant::now();
        let mut pause = Duration::from_millis(5);
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(&path)
                .map_err(|e| HostError::io("cannot open the lock file", &path, e))?;
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(mut flock) => {
                    // For the messages of those who wait: who holds it.
                    let _ = flock.set_len(0);
                    let _ = flock.rewind();
                    let _ = write!(flock, "{}", std::process::id());
                    return Ok(StateLock { _flock: flock });
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {}
                Err((_, e)) => {
                    return Err(HostError::io("cannot lock", &path, std::io::Error::from(e)))
                }
            }
            if start.elapsed() >= timeout {
                let holder = fs::read_to_string(&path)
                    .ok()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .map(|pid| format!(" (pid {pid})"))
                    .unwrap_or_default();
                return Err(HostError::Busy {
                    path,
                    waited: start.elapsed(),
                    holder,
                });
            }
            thread::sleep(pause.min(timeout.saturating_sub(start.elapsed())));
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    fn read_record<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, HostError> {
        let path = self.path.join(name);
        let mut text = String::new();
        match File::open(&path) {
            Ok(mut f) => f
                .read_to_string(&mut text)
                .map_err(|e| HostError::io("cannot read", &path, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(HostError::io("cannot read", &path, e)),
        };
        /// The version alone (the rest skipped), before the record is read
        /// as what it should be.
        #[derive(serde::Deserialize)]
        struct Versioned {
            version: Option<u64>,
        }
        let version = serde_json::from_str::<Versioned>(&text)
            .map_err(|e| HostError::Record {
                path: path.clone(),
                message: e.to_string(),
            })?
            .version;
        if !version.is_some_and(|v| {
            (u64::from(OLDEST_RECORD_VERSION)..=u64::from(RECORD_VERSION)).contains(&v)
        }) {
            return Err(HostError::Record {
                path,
                message: format!(
                    "record version {version:?}, this microseg reads versions \
                     {OLDEST_RECORD_VERSION} to {RECORD_VERSION}"
                ),
            });
        }
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| HostError::Record {
                path,
                message: e.to_string(),
            })
    }

    fn write_record<T: Serialize>(&self, name: &str, record: &T) -> Result<(), HostError> {
        let bytes = self.encode(name, record)?;
        self.write_encoded(name, &bytes)
    }

    /// A record as written: compact JSON (a record may hold a table with
    /// 100,000s of set elements; `jq .` shows it indented).
    fn encode<T: Serialize>(&self, name: &str, record: &T) -> Result<Vec<u8>, HostError> {
        serde_json::to_vec(record).map_err(|e| HostError::Record {
            path: self.path.join(name),
            message: e.to_string(),
        })
    }

    fn write_encoded(&self, name: &str, bytes: &[u8]) -> Result<(), HostError> {
        self.ensure()?;
        write_atomic(&self.path.join(name), bytes, 0o600)
    }

    pub(crate) fn encode_snapshot(&self, s: &Snapshot) -> Result<Vec<u8>, HostError> {
        self.encode(SNAPSHOT, s)
    }

    pub(crate) fn write_encoded_snapshot(&self, bytes: &[u8]) -> Result<(), HostError> {
        self.write_encoded(SNAPSHOT, bytes)
    }

    pub(crate) fn encode_applied(&self, a: &Applied) -> Result<Vec<u8>, HostError> {
        self.encode(APPLIED, a)
    }

    pub(crate) fn write_encoded_applied(&self, bytes: &[u8]) -> Result<(), HostError> {
        self.remove_record(GENERATION)?;
        self.write_encoded(APPLIED, bytes)
    }

    /// The generation recorded after the last operation, if any.
    pub(crate) fn generation(&self) -> Result<Option<GenerationRecord>, HostError> {
        self.read_record(GENERATION)
    }

    /// Records the generation the last operation left (after `applied.json`).
    pub(crate) fn write_generation(&self, g: &GenerationRecord) -> Result<(), HostError> {
        self.write_record(GENERATION, g)
    }

    fn remove_record(&self, name: &str) -> Result<(), HostError> {
        let path = self.path.join(name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(HostError::io("cannot remove", &path, e)),
        }
    }

    pub(crate) fn snapshot(&self) -> Result<Option<Snapshot>, HostError> {
        self.read_record(SNAPSHOT)
    }

    pub(crate) fn write_snapshot(&self, s: &Snapshot) -> Result<(), HostError> {
        self.write_record(SNAPSHOT, s)
    }

    pub(crate) fn applied(&self) -> Result<Option<Applied>, HostError> {
        self.read_record(APPLIED)
    }

    pub(crate) fn write_applied(&self, a: &Applied) -> Result<(), HostError> {
        self.remove_record(GENERATION)?;
        self.write_record(APPLIED, a)
    }

    pub(crate) fn pending(&self) -> Result<Option<Pending>, HostError> {
        self.read_record(PENDING)
    }

    pub(crate) fn write_pending(&self, p: &Pending) -> Result<(), HostError> {
        self.write_record(PENDING, p)
    }

    pub(crate) fn clear_pending(&self) -> Result<(), HostError> {
        self.remove_record(PENDING)
    }

    /// The backend and key (table) the records are about, if any:
    /// pending change first, then the last operation, then the snapshot.
    ///
    /// ```
    /// # let tmp = std::env::temp_dir().join(format!("ms-rec-doc-{}", std::process::id()));
    /// let dir = microseg_host::StateDir::resolve(Some(tmp));
    /// assert_eq!(dir.recorded().unwrap(), None);
    /// ```
    pub fn recorded(&self) -> Result<Option<(String, String)>, HostError> {
        if let Some(p) = self.pending()? {
            return Ok(Some((p.backend, p.key)));
        }
        if let Some(a) = self.applied()? {
            return Ok(Some((a.backend, a.key)));
        }
        Ok(self.snapshot()?.map(|s| (s.backend, s.key)))
    }

    /// Appends a line to the timer log.
    pub(crate) fn log(&self, line: &str) {
        let path = self.timer_log();
        if let Ok(mut f) = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
        {
            let _ = writeln!(f, "{} pid {}: {line}", now_ms() / 1000, std::process::id());
        }
    }

    /// Writes a backend state (its JSON) to a new file of `states/`.
    pub(crate) fn store_state(&self, json: &[u8]) -> Result<StateRef, HostError> {
        Ok(StateRef {
            file: self.store(STATES, "json", json)?,
            members: None,
        })
    }

    /// The JSON of a recorded state's file (its members file aside).
    pub(crate) fn state_text(&self, r: &StateRef) -> Result<String, HostError> {
        let path = self.file_path(STATES, &r.file)?;
        fs::read_to_string(&path).map_err(|e| HostError::io("cannot read", &path, e))
    }

    /// Writes a members file ([`crate::members::encode`]) to `members/`.
    pub(crate) fn store_members(&self, bytes: &[u8]) -> Result<String, HostError> {
        self.store(MEMBERS, "bin", bytes)
    }

    /// The sets of a members file: a full one, or a delta file with the
    /// changes of its chain of delta files made to the full one it builds on.
    pub(crate) fn members(
        &self,
        name: &str,
    ) -> Result<crate::members::NamedMembers<'static>, HostError> {
        use crate::members::{decode_file, MembersFile, MAX_CHAIN};
        let mut chain = Vec::new();
        let mut name = name.to_string();
        loop {
            let path = self.file_path(MEMBERS, &name)?;
            let bytes = fs::read(&path).map_err(|e| HostError::io("cannot read", &path, e))?;
            let bad = |message: String| HostError::Record {
                path: path.clone(),
                message,
            };
            match decode_file(&bytes).map_err(bad)? {
                MembersFile::Full(mut sets) => {
                    chain.reverse();
                    crate::members::patch(&mut sets, &chain)
                        .map_err(|e| bad(format!("the delta files on it do not fit it: {e}")))?;
                    return Ok(sets);
                }
                MembersFile::Delta { base, deltas, .. } => {
                    if chain.len() > MAX_CHAIN as usize {
                        return Err(bad("too many delta files in a row".into()));
                    }
                    chain.push(deltas);
                    name = base;
                }
            }
        }
    }

    /// How many delta files lead from members file `name` to a full one
    /// (0: it is one).
    pub(crate) fn members_depth(&self, name: &str) -> Result<u32, HostError> {
        Ok(self.members_header(name)?.map_or(0, |(_, depth)| depth))
    }

    /// The base and depth of members file `name` when it is a delta file,
    /// from its first bytes.
    fn members_header(&self, name: &str) -> Result<Option<(String, u32)>, HostError> {
        let path = self.file_path(MEMBERS, name)?;
        let mut head = Vec::with_capacity(512);
        File::open(&path)
            .and_then(|f| f.take(512).read_to_end(&mut head))
            .map_err(|e| HostError::io("cannot read", &path, e))?;
        Ok(crate::members::delta_header(&head))
    }

    /// `dir/name`, for a name the records give (a plain file name only).
    fn file_path(&self, dir: &str, name: &str) -> Result<PathBuf, HostError> {
        let plain = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
            && !name.starts_with('.');
        if !plain {
            return Err(HostError::Record {
                path: self.path.join(dir),
                message: format!("a record names the file {name:?}, which is not a file name"),
            });
        }
        Ok(self.path.join(dir).join(name))
    }

    /// Writes `bytes` to a new file of `dir` (atomically, synced); its name.
    fn store(&self, dir: &str, ext: &str, bytes: &[u8]) -> Result<String, HostError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = self.path.join(dir);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&path)
            .map_err(|e| HostError::io("cannot create", &path, e))?;
        let name = format!(
            "{:x}-{:x}-{:x}.{ext}",
            now_ms(),
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        write_atomic(&path.join(&name), bytes, 0o600)?;
        Ok(name)
    }

    /// Removes the files of `states/` and `members/` that no record refers
    /// to any more (best effort; under the lock, after the records are
    /// written). Records that cannot be read keep everything.
    pub(crate) fn collect_garbage(&self) {
        let (Ok(applied), Ok(snapshot), Ok(pending), Ok(generation)) = (
            self.applied(),
            self.snapshot(),
            self.pending(),
            self.generation(),
        ) else {
            return;
        };
        let mut keep = std::collections::HashSet::new();
        for r in [
            applied.and_then(|a| a.expected),
            snapshot.and_then(|s| s.state),
            pending.and_then(|p| p.snapshot.state),
        ]
        .into_iter()
        .flatten()
        .filter_map(|r| match r {
            RecordedState::File(r) => Some(r),
            RecordedState::Inline(_) => None,
        }) {
            keep.insert((STATES, r.file));
            if let Some(m) = r.members {
                keep.insert((MEMBERS, m));
            }
        }
        if let Some(m) = generation.and_then(|g| g.members) {
            keep.insert((MEMBERS, m.file));
        }
        // The files delta files build on.
        let mut todo: Vec<String> = keep
            .iter()
            .filter(|(dir, _)| *dir == MEMBERS)
            .map(|(_, name)| name.clone())
            .collect();
        while let Some(name) = todo.pop() {
            if !self.path.join(MEMBERS).join(&name).exists() {
                continue;
            }
            match self.members_header(&name) {
                Ok(Some((base, _))) => {
                    if keep.insert((MEMBERS, base.clone())) {
                        todo.push(base);
                    }
                }
                Ok(None) => {}
                // Unreadable: keep everything.
                Err(_) => return,
            }
        }
        for dir in [STATES, MEMBERS] {
            let Ok(entries) = fs::read_dir(self.path.join(dir)) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !keep.contains(&(dir, name)) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }

    pub(crate) fn record_version() -> u32 {
        RECORD_VERSION
    }
}

/// Writes `path` atomically: a temporary file in the same directory, synced,
/// then renamed over `path` (the directory is synced too).
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), HostError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        HostError::io("cannot write", path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> StateDir {
        let p = std::env::temp_dir().join(format!("ms-state-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        StateDir::resolve(Some(p))
    }

    #[test]
    fn records_round_trip_and_are_versioned() {
        let d = tmp("records");
        assert!(d.applied().unwrap().is_none());
        let a = Applied {
            version: RECORD_VERSION,
            backend: "nft".into(),
            key: "ms".into(),
            event: "apply".into(),
            target: "role web".into(),
            source: "p.toml".into(),
            at_ms: 1,
            expected: None,
            persist: None,
            hardening: Some(microseg_core::Hardening::GUIDE),
        };
        d.write_applied(&a).unwrap();
        assert_eq!(d.applied().unwrap().unwrap().key, "ms");
        assert_eq!(d.recorded().unwrap(), Some(("nft".into(), "ms".into())));
        fs::write(d.path().join(APPLIED), "{\"version\": 99}").unwrap();
        let e = d.applied().unwrap_err().to_string();
        assert!(e.contains("record version"), "{e}");
        fs::write(d.path().join(APPLIED), "not json").unwrap();
        assert!(matches!(d.applied(), Err(HostError::Record { .. })));
        let mode = fs::metadata(d.path()).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o700
        );
        fs::remove_dir_all(d.path()).unwrap();
    }

    #[test]
    fn members_delta_files_build_on_their_base_and_keep_it_from_the_garbage() {
        use crate::members::{self, MemberDelta, Members};
        use std::borrow::Cow;
        let d = tmp("members-chain");
        let v4 = |v: &[(u32, u32)]| Members::V4(Cow::Owned(v.to_vec()));
        let map = |v: &[(u32, u32, u64)]| Members::MapV4(Cow::Owned(v.to_vec()));
        let full = vec![
            (Cow::Borrowed("in4_single"), map(&[(1, 1, 7), (9, 9, 8)])),
            (Cow::Borrowed("policy:web_v4"), v4(&[(1, 1), (9, 9)])),
        ];
        let base = d.store_members(&members::encode(&full)).unwrap();
        assert_eq!(d.members_depth(&base).unwrap(), 0);
        // Two delta files: 5 joins, then 1 leaves.
        let step = |m: Members<'static>, add, delete| MemberDelta {
            set: match m {
                Members::MapV4(_) => "in4_single".into(),
                _ => "policy:web_v4".into(),
            },
            add,
            delete,
        };
        let one = d
            .store_members(&members::encode_delta(
                &base,
                1,
                &[
                    step(map(&[]), map(&[(5, 5, 7)]), map(&[])),
                    step(v4(&[]), v4(&[(5, 5)]), v4(&[])),
                ],
            ))
            .unwrap();
        let two = d
            .store_members(&members::encode_delta(
                &one,
                2,
                &[
                    step(map(&[]), map(&[]), map(&[(1, 1, 7)])),
                    step(v4(&[]), v4(&[]), v4(&[(1, 1)])),
                ],
            ))
            .unwrap();
        assert_eq!(d.members_depth(&two).unwrap(), 2);
        assert_eq!(
            d.members(&two).unwrap(),
            vec![
                (Cow::Borrowed("in4_single"), map(&[(5, 5, 7), (9, 9, 8)])),
                (Cow::Borrowed("policy:web_v4"), v4(&[(5, 5), (9, 9)])),
            ]
        );
        assert_eq!(d.members(&base).unwrap(), full);
        // A delta file on a base it does not fit is refused, not misread.
        let bad = d
            .store_members(&members::encode_delta(
                &base,
                1,
                &[step(v4(&[]), v4(&[]), v4(&[(5, 5)]))],
            ))
            .unwrap();
        let e = d.members(&bad).unwrap_err().to_string();
        assert!(e.contains("do not fit"), "{e}");
        // Only the last file is recorded: the garbage keeps its chain.
        d.write_generation(&GenerationRecord {
            version: RECORD_VERSION,
            backend: "nft".into(),
            key: "ms".into(),
            generation: crate::Generation {
                ruleset: "r".into(),
                id: 1,
            },
            structure: None,
            members: Some(MembersRecord {
                structure: "s".into(),
                file: two.clone(),
            }),
        })
        .unwrap();
        d.collect_garbage();
        let mut left: Vec<String> = fs::read_dir(d.path().join(MEMBERS))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut want = vec![base.clone(), one, two.clone()];
        want.sort();
        assert_eq!(left, want);
        assert_eq!(d.members(&two).unwrap()[1].1, v4(&[(5, 5), (9, 9)]));
        // A chain whose base is gone is an error that names the file.
        fs::remove_file(d.path().join(MEMBERS).join(&base)).unwrap();
        let e = d.members(&two).unwrap_err().to_string();
        assert!(e.contains(&base), "{e}");
        fs::remove_dir_all(d.path()).unwrap();
    }

    #[test]
    fn lock_is_exclusive_and_names_the_holder() {
        let d = tmp("lock");
        let held = d.lock(Duration::from_secs(1)).unwrap();
        let start = Instant::now();
        let e = d.lock(Duration::from_millis(120)).unwrap_err();
        assert!(start.elapsed() >= Duration::from_millis(120));
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("(pid {})", std::process::id())),
            "{msg}"
        );
        // Released on drop: a waiter gets it.
        let waiter = {
            let d = d.clone();
            thread::spawn(move || d.lock(Duration::from_secs(5)).map(drop))
        };
        thread::sleep(Duration::from_millis(50));
        drop(held);
        waiter.join().unwrap().unwrap();
        fs::remove_dir_all(d.path()).unwrap();
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary_file() {
        let d = tmp("atomic");
        d.ensure().unwrap();
        let f = d.path().join("x");
        write_atomic(&f, b"one", 0o644).unwrap();
        write_atomic(&f, b"two", 0o644).unwrap();
        assert_eq!(fs::read_to_string(&f).unwrap(), "two");
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["x"]);
        fs::remove_dir_all(d.path()).unwrap();
    }
}
