//! Network namespace plumbing: entering one from a helper thread, naming,
//! the registry of live namespaces, stale and signal cleanup.

use std::collections::hash_map::RandomState;
use std::fs::File;
use std::hash::BuildHasher;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once, PoisonError};
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

use nix::sched::{setns, CloneFlags};

use crate::cmd;
use crate::LabError;

/// Where `ip netns` keeps its named namespaces.
pub(crate) const NETNS_DIR: &str = "/run/netns";

/// Every namespace name this crate creates starts with this.
pub(crate) const NAME_TAG: &str = "msl-";

/// Moves the *calling thread* into the named network namespace.
/// Only ever called on threads this crate spawned for that purpose.
pub(crate) fn enter(ns: &str) -> Result<(), LabError> {
    let path = Path::new(NETNS_DIR).join(ns);
    let file = File::open(&path)
        .map_err(|e| LabError::io(format!("cannot open {}", path.display()), e))?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| {
        LabError::io(
            format!("setns into network namespace {ns}"),
            io::Error::from(e),
        )
    })
}

/// Runs `f` on a fresh thread that first entered namespace `ns`; sockets
/// created by `f` belong to `ns` for their whole life.
pub(crate) fn in_netns<T: Send>(
    ns: &str,
    f: impl FnOnce() -> Result<T, LabError> + Send,
) -> Result<T, LabError> {
    thread::scope(|s| {
        let worker = thread::Builder::new()
            .name("msl-netns".into())
            .spawn_scoped(s, || {
                enter(ns)?;
                f()
            })
            .map_err(|e| LabError::io("cannot spawn a thread", e))?;
        match worker.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// A fresh prefix `msl-<pid>-<random hex><counter>-`, unique per run and per lab.
pub(crate) fn new_prefix() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let random = RandomState::new().hash_one((nanos, n, std::process::id()));
    format!(
        "{NAME_TAG}{}-{:04x}{n}-",
        std::process::id(),
        random & 0xffff
    )
}

/// Namespaces of labs and [`Netns`](crate::Netns) values alive in this process,
/// for the signal handler.
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

pub(crate) fn register(ns: &str) {
    LIVE.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(ns.to_string());
}

pub(crate) fn unregister(ns: &str) {
    LIVE.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .retain(|n| n != ns);
}

/// Deletes a named namespace and tells whether it did; a namespace that is
/// already gone (perhaps deleted by someone else meanwhile) is not an error.
pub(crate) fn delete(ns: &str) -> Result<bool, LabError> {
    let path = Path::new(NETNS_DIR).join(ns);
    if !path.exists() {
        return Ok(false);
    }
    match cmd::ip(&["netns", "delete", ns], None) {
        Ok(_) => Ok(true),
        Err(_) if !path.exists() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes the namespaces of every [`Lab`](crate::Lab) and [`Netns`](crate::Netns)
/// still alive in this process and returns how many were deleted.
///
/// The values stay usable but their namespaces are gone. This is what the
/// SIGINT/SIGTERM/SIGHUP handler installed by [`Lab::new`](crate::Lab::new) runs;
/// a program that installs its own `ctrlc` handler first (ours then cannot be
/// installed) should call it from there.
pub fn cleanup_live_labs() -> usize {
    let names = std::mem::take(&mut *LIVE.lock().unwrap_or_else(PoisonError::into_inner));
    names
        .iter()
        .filter(|ns| matches!(delete(ns), Ok(true)))
        .count()
}

/// Installs (once per process, if no other `ctrlc` handler exists) a handler
/// for SIGINT, SIGTERM and SIGHUP that deletes live namespaces and exits with 130.
pub(crate) fn install_signal_cleanup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            cleanup_live_labs();
            std::process::exit(130);
        });
    });
}

/// The pid encoded in a namespace name made by [`new_prefix`].
pub(crate) fn owner_pid(ns: &str) -> Option<u32> {
    ns.strip_prefix(NAME_TAG)?.split('-').next()?.parse().ok()
}

/// See [`Lab::cleanup_stale`](crate::Lab::cleanup_stale). Names deleted meanwhile
/// by another process are skipped.
pub(crate) fn cleanup_stale() -> Result<Vec<String>, LabError> {
    let entries = match std::fs::read_dir(NETNS_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(LabError::io(format!("cannot list {NETNS_DIR}"), e)),
    };
    let mut deleted = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| LabError::io(format!("cannot list {NETNS_DIR}"), e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Some(pid) = owner_pid(&name) else {
            continue;
        };
        if Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        if delete(&name)? {
            deleted.push(name);
        }
    }
    deleted.sort();
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_unique_and_carry_the_pid() {
        let a = new_prefix();
        let b = new_prefix();
        assert_ne!(a, b);
        assert!(a.starts_with(NAME_TAG) && a.ends_with('-'));
        assert_eq!(owner_pid(&format!("{a}sw")), Some(std::process::id()));
        assert_eq!(owner_pid("msl-x-1"), None);
        assert_eq!(owner_pid("other-12-1"), None);
    }
}
