//! Boot persistence: the rendered ruleset written where the boot-time loader
//! reads it, atomically, keeping the previous file.
//!
//! ```
//! use microseg_host::persist::{read_existing, write_boot_file};
//! let dir = std::env::temp_dir().join(format!("ms-persist-doc-{}", std::process::id()));
//! let file = dir.join("microseg.nft");
//! assert_eq!(write_boot_file(&file, "table inet microseg {}\n").unwrap(), None);
//! // The second write keeps the first as `microseg.nft.bak`.
//! let backup = write_boot_file(&file, "table inet microseg { }\n").unwrap().unwrap();
//! assert_eq!(std::fs::read_to_string(backup).unwrap(), "table inet microseg {}\n");
//! assert_eq!(read_existing(&file).unwrap().unwrap(), "table inet microseg { }\n");
//! # std::fs::remove_dir_all(dir).unwrap();
//! ```
//!
//! For nftables the default is `/etc/nftables.d/<table>.nft`. The distribution's
//! `nftables.service` runs `nft -f /etc/nftables.conf` at boot (Fedora/RHEL:
//! `/etc/sysconfig/nftables.conf`), so that file needs, once, at its end (after
//! any `flush ruleset`):
//!
//! ```text
//! include "/etc/nftables.d/*.nft"
//! ```
//!
//! The file replaces only the policy's table (`table inet T` / `delete table
//! inet T` / `table inet T { … }`), so it loads whatever else is defined. The
//! file ends in `.nft` and its backup in `.nft.bak`, which that glob skips.

use crate::state::write_atomic;
use crate::HostError;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Whether, and where, an apply persists the ruleset for boot.
///
/// ```
/// use microseg_host::Persist;
/// assert_eq!(Persist::default(), Persist::Default);
/// let p = Persist::To("/tmp/x.nft".into());
/// # let _ = p;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Persist {
    /// The backend's default place (nft: `/etc/nftables.d/<table>.nft`); for
    /// `remove`, the file the last apply wrote.
    #[default]
    Default,
    /// This file.
    To(PathBuf),
    /// Do not persist (the change is lost at reboot).
    Off,
}

/// The backup of `path`: `path` + `.bak`.
///
/// ```
/// let b = microseg_host::persist::backup_path(std::path::Path::new("/etc/nftables.d/ms.nft"));
/// assert_eq!(b, std::path::Path::new("/etc/nftables.d/ms.nft.bak"));
/// ```
pub fn backup_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".bak");
    PathBuf::from(s)
}

/// The content of `path`, `None` if it does not exist.
///
/// ```
/// assert_eq!(microseg_host::persist::read_existing(std::path::Path::new("/nonexistent/x")).unwrap(), None);
/// ```
pub fn read_existing(path: &Path) -> Result<Option<String>, HostError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(HostError::io("cannot read the boot file", path, e)),
    }
}

/// Writes `text` to `path` atomically (temporary file + rename; the directory
/// is created if needed), after copying what was there to
/// [`backup_path`]. Returns the backup's path if one was made.
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("ms-persist-doc2-{}", std::process::id()));
/// let f = dir.join("a.nft");
/// assert!(microseg_host::persist::write_boot_file(&f, "x\n").unwrap().is_none());
/// # std::fs::remove_dir_all(dir).unwrap();
/// ```
pub fn write_boot_file(path: &Path, text: &str) -> Result<Option<PathBuf>, HostError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|e| HostError::io("cannot create the directory of the boot file", dir, e))?;
    }
    let backup = match read_existing(path)? {
        Some(old) if old == text => None,
        Some(old) => {
            let b = backup_path(path);
            write_atomic(&b, old.as_bytes(), 0o644)?;
            Some(b)
        }
        None => None,
    };
    write_atomic(path, text.as_bytes(), 0o644)?;
    Ok(backup)
}

/// Puts back what a boot file held (`None`: it did not exist, so remove it).
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("ms-persist-doc3-{}", std::process::id()));
/// let f = dir.join("a.nft");
/// microseg_host::persist::write_boot_file(&f, "new\n").unwrap();
/// microseg_host::persist::restore_boot_file(&f, None).unwrap();
/// assert!(!f.exists());
/// # std::fs::remove_dir_all(dir).unwrap();
/// ```
pub fn restore_boot_file(path: &Path, previous: Option<&str>) -> Result<(), HostError> {
    match previous {
        Some(text) => write_boot_file(path, text).map(drop),
        None => remove_boot_file(path).map(drop),
    }
}

/// Removes a boot file, keeping its content as the backup. Returns true if
/// there was one.
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("ms-persist-doc4-{}", std::process::id()));
/// let f = dir.join("a.nft");
/// microseg_host::persist::write_boot_file(&f, "x\n").unwrap();
/// assert!(microseg_host::persist::remove_boot_file(&f).unwrap());
/// assert!(!microseg_host::persist::remove_boot_file(&f).unwrap());
/// # std::fs::remove_dir_all(dir).unwrap();
/// ```
pub fn remove_boot_file(path: &Path) -> Result<bool, HostError> {
    let Some(old) = read_existing(path)? else {
        return Ok(false);
    };
    write_atomic(&backup_path(path), old.as_bytes(), 0o644)?;
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(HostError::io("cannot remove the boot file", path, e)),
    }
}
