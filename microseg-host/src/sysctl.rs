//! Kernel hardening on the host: the policy's sysctl settings written to a
//! sysctl.d file (for boot) and set now, with a snapshot to roll back.
//!
//! ```no_run
//! use microseg_core::Hardening;
//! use microseg_host::sysctl;
//! let path = std::path::Path::new("/etc/sysctl.d/99-microseg.conf");
//! let before = sysctl::snapshot(Some(path))?;           // values and file as they are
//! sysctl::apply(&Hardening::GUIDE, "microseg", Some(path))?;
//! assert!(sysctl::differences(&Hardening::GUIDE)?.is_empty());
//! sysctl::restore(&before)?;                              // rollback
//! # Ok::<(), microseg_host::HostError>(())
//! ```
//!
//! Every key (`net.ipv4.conf.{all,default}.*`, `net.ipv6.conf.*`,
//! `net.ipv4.tcp_syncookies`) is scoped per network namespace by the kernel:
//! run inside a namespace, only that namespace changes. Without `hardening`
//! in the policy, nothing here runs.

use crate::persist;
use crate::HostError;
use microseg_core::hardening::{proc_path, settings, sysctl_file};
use microseg_core::Hardening;
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

/// The default sysctl.d file of a policy table.
///
/// ```
/// assert_eq!(microseg_host::sysctl::default_path("microseg"),
///            std::path::Path::new("/etc/sysctl.d/99-microseg.conf"));
/// ```
pub fn default_path(table: &str) -> PathBuf {
    PathBuf::from(format!("/etc/sysctl.d/99-{table}.conf"))
}

/// The values and the file as they were before an apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SysctlSnapshot {
    /// Each key and its value then.
    pub values: Vec<(String, String)>,
    /// The sysctl.d file and its content then (`None` content: it did not exist).
    pub file: Option<(PathBuf, Option<String>)>,
}

/// A key whose value is not the policy's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SysctlDifference {
    /// The sysctl key.
    pub key: String,
    /// The policy's value.
    pub want: String,
    /// The value now.
    pub have: String,
}

fn read_key(key: &str) -> Result<String, HostError> {
    let path = proc_path(key);
    fs::read_to_string(&path)
        .map(|v| v.trim().to_string())
        .map_err(|e| HostError::io("cannot read sysctl", path, e))
}

fn write_key(key: &str, value: &str) -> Result<(), HostError> {
    let path = proc_path(key);
    fs::write(&path, format!("{value}\n")).map_err(|e| HostError::io("cannot set sysctl", path, e))
}

/// Reads the current values of every hardening key, and the file at `path`.
pub fn snapshot(path: Option<&Path>) -> Result<SysctlSnapshot, HostError> {
    let mut values = Vec::new();
    for (key, _) in settings(&Hardening::GUIDE) {
        values.push((key.to_string(), read_key(key)?));
    }
    let file = match path {
        Some(p) => Some((p.to_path_buf(), persist::read_existing(p)?)),
        None => None,
    };
    Ok(SysctlSnapshot { values, file })
}

/// Writes the sysctl.d file (atomically, keeping `<file>.bak`) and sets the
/// values now. On a failure part-way, the values already set are put back.
pub fn apply(h: &Hardening, table: &str, path: Option<&Path>) -> Result<(), HostError> {
    let before = snapshot(None)?;
    if let Some(p) = path {
        persist::write_boot_file(p, &sysctl_file(h, table))?;
    }
    for (key, value) in settings(h) {
        if let Err(e) = write_key(key, &value) {
            let _ = restore_values(&before.values);
            return Err(e);
        }
    }
    Ok(())
}

fn restore_values(values: &[(String, String)]) -> Result<(), HostError> {
    let mut first_err = None;
    for (k, v) in values {
        if let Err(e) = write_key(k, v) {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Puts back the values and the file of a snapshot.
pub fn restore(s: &SysctlSnapshot) -> Result<(), HostError> {
    restore_values(&s.values)?;
    if let Some((path, previous)) = &s.file {
        persist::restore_boot_file(path, previous.as_deref())?;
    }
    Ok(())
}

/// The keys whose current value differs from the policy's.
pub fn differences(h: &Hardening) -> Result<Vec<SysctlDifference>, HostError> {
    let mut out = Vec::new();
    for (key, want) in settings(h) {
        let have = read_key(key)?;
        if have != want {
            out.push(SysctlDifference {
                key: key.to_string(),
                want,
                have,
            });
        }
    }
    Ok(out)
}
