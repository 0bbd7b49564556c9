//! A temporary directory for tests ([`TempDir`]): state directories,
//! policies and boot files, removed when the value is dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::LabError;

/// Numbers the directories of this process, whatever their prefix.
static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A directory under the system's temporary directory that exists as long
/// as the value does (removed on drop, also while a test panics).
///
/// ```
/// use microseg_lab::TempDir;
///
/// # fn main() -> Result<(), microseg_lab::LabError> {
/// let dir = TempDir::new("mytest")?; // $TMPDIR/mytest-<pid>-<n>
/// let policy = dir.write("p.toml", "version = 1\n")?;
/// assert_eq!(std::fs::read_to_string(&policy).unwrap(), "version = 1\n");
/// assert_eq!(dir.path("state"), dir.root().join("state"));
/// let root = dir.root().to_path_buf();
/// drop(dir);
/// assert!(!root.exists());
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `<tmp>/<prefix>-<pid>-<n>` (emptied first if a crashed run
    /// left it), `n` counting the directories this process created.
    pub fn new(prefix: &str) -> Result<TempDir, LabError> {
        let p = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p)
            .map_err(|e| LabError::io(format!("cannot create {}", p.display()), e))?;
        Ok(TempDir(p))
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.0
    }

    /// `name` inside the directory (not created).
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `text` to `name` inside the directory; its path as text (for
    /// command lines).
    pub fn write(&self, name: &str, text: &str) -> Result<String, LabError> {
        let p = self.path(name);
        std::fs::write(&p, text)
            .map_err(|e| LabError::io(format!("cannot write {}", p.display()), e))?;
        Ok(p.display().to_string())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
