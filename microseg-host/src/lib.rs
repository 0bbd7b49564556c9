//! microseg-host: make the local host's firewall match a policy, safely.
//!
//! ```no_run
//! use backend_nft::{Nft, NftBackend};
//! use microseg_core::{ir::{compile, Target}, Policy};
//! use microseg_host::{ApplyOptions, Host, Persist, StateDir};
//! let policy = Policy::from_file("examples/three-tier.toml")?;
//! let ruleset = compile(&policy, &Target::Role("web".into()))?;
//! let host = Host::new(NftBackend::new(Nft::host(), &policy.table), StateDir::resolve(None));
//! let opts = ApplyOptions {
//!     ssh_connection: std::env::var("SSH_CONNECTION").ok(), // refuse to lock ourselves out
//!     persist: Persist::Off,
//!     ..ApplyOptions::default()
//! };
//! println!("{}", host.apply(&ruleset, &opts)?);   // plan, apply, record
//! println!("{}", host.status()?);                  // drift and hits per flow
//! host.rollback()?;                                // back to the state before the apply
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Backend-agnostic orchestration over [`HostBackend`] (the core's
//! [`Backend`](microseg_core::backend::Backend) plus what a host needs:
//! drift, hit counters, boot persistence). With the default feature `nft`,
//! `backend_nft::NftBackend` implements it; with the default feature
//! `firewalld`, `backend_firewalld::FirewalldBackend` (give it the policy's
//! table with `with_table`). Records name the backend they were made with.
//!
//! firewalld differs from nftables in three ways the host reports: the
//! change goes to firewalld's permanent configuration, which firewalld loads
//! at boot itself (no boot file; [`Persist`] does not apply, and a change
//! pending confirmation is permanent already); `status` shows drift and
//! firewalld's warnings but no hit counters (firewalld keeps none per rule);
//! `remove` also puts back the default zone the policy's zone replaced.
//!
//! * **State directory** ([`StateDir`]; `/var/lib/microseg`, or the
//!   `MICROSEG_STATE_DIR` environment variable, or a parameter): the snapshot
//!   taken before the last apply that changed something (`snapshot.json`,
//!   for [`Host::rollback`]), what was applied (`applied.json`, for drift in
//!   [`Host::status`]), a change waiting for confirmation (`pending.json`),
//!   the lock file and the confirm timer's log. Records are written
//!   atomically (temporary file + rename). They are small: the backend
//!   states they refer to are files of `states/` (written once), and the
//!   set members installed since are files of `members/`
//!   ([`members`]); what no record refers to is removed after each
//!   operation.
//! * **Generation** (`generation.json`): the backend's generation after
//!   the last apply (nft: the kernel's ruleset generation). While it is
//!   unchanged, the records are exactly what is installed: an apply plans
//!   against them without reading anything, and when the policy changed
//!   only set members ([`HostBackend::members`]), without rendering either.
//! * **Lock**: an exclusive `flock` on `lock` serialises applies, confirms,
//!   rollbacks and removes; a second one waits up to a bound, then fails
//!   with [`HostError::Busy`].
//! * **Anti-lockout** ([`guard`]): with `SSH_CONNECTION` given, an apply whose
//!   ruleset drops or rejects a new connection from the session's client to
//!   the session's server address and port is refused unless forced.
//! * **Confirm timeout**: the change is applied, recorded as pending, and a
//!   detached timer process (its own session, no terminal; it survives the
//!   shell that ran the apply) restores the snapshot unless
//!   [`Host::confirm`] clears the record in time. Boot persistence of a
//!   pending change waits for the confirmation.
//! * **Persistence** ([`persist`]): the rendered ruleset is written where the
//!   distribution's `nftables.service` can load it at boot (default
//!   `/etc/nftables.d/<table>.nft`, plus `include "/etc/nftables.d/*.nft"` in
//!   `/etc/nftables.conf`), atomically, keeping the previous file as
//!   `<file>.bak`.
//! * **Hardening** ([`sysctl`]): when the policy has `hardening`, its sysctl
//!   values are set (in the current network namespace) and written to a
//!   sysctl.d file (default `/etc/sysctl.d/99-<table>.conf`); the previous
//!   values and file are part of the snapshot, so rollback and the confirm
//!   timer restore them; `status` reports values that differ. Without
//!   `hardening`, sysctl is never touched.
//! * **`--role auto`** ([`auto`]): the host's addresses from `ip -j addr`,
//!   compiled for the one the policy manages.
#![forbid(unsafe_code)]

pub mod auto;
mod backend;
pub mod guard;
mod host;
pub mod members;
pub mod persist;
mod state;
pub mod sysctl;
mod timer;

pub use backend::{Difference, Generation, Hits, HostBackend, PlanKind};
pub use host::{
    ApplyOptions, ApplyReport, ConfirmOptions, ConfirmReport, Host, PendingInfo, RemoveReport,
    RollbackReport, Status, TimerOutcome,
};
pub use persist::Persist;
pub use state::{StateDir, StateLock, DEFAULT_STATE_DIR, STATE_DIR_ENV};
pub use timer::{detach, TimerCommand};

use std::path::PathBuf;
use std::time::Duration;

/// The errors of microseg-host.
///
/// ```
/// let e = microseg_host::HostError::NoSnapshot { dir: "/var/lib/microseg".into() };
/// assert!(e.to_string().contains("nothing to roll back"));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The backend failed (reading, planning, applying, restoring, removing).
    #[error("{backend}: {source}")]
    Backend {
        /// The backend (`nft`).
        backend: String,
        /// Its error (for nft: the command line and nft's stderr).
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A file or directory operation failed.
    #[error("{context} {}: {source}", path.display())]
    Io {
        /// What was being done.
        context: String,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A state file cannot be read back.
    #[error("state file {} cannot be used: {message} (move it away to start afresh)", path.display())]
    Record {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Another microseg holds the lock for longer than we wait.
    #[error(
        "another microseg operation holds {}{holder} and did not finish within {waited:?}; \
         try again when it is done (or wait longer with --lock-timeout)",
        path.display()
    )]
    Busy {
        /// The lock file.
        path: PathBuf,
        /// How long we waited.
        waited: Duration,
        /// ` (pid N)` when known.
        holder: String,
    },
    /// The apply would cut the running SSH session's client off.
    #[error("refusing to apply: {reason}; pass --force to apply anyway")]
    LockedOut {
        /// Who would lose access, and which rule decides.
        reason: String,
    },
    /// A change is waiting for confirmation.
    #[error("a change to {owned} is waiting for confirmation: {hint}")]
    Pending {
        /// What the change is to (`table inet microseg`).
        owned: String,
        /// What to do about it.
        hint: String,
    },
    /// `confirm` without a pending change.
    #[error("nothing to confirm: {detail}")]
    NoPending {
        /// Why (e.g. the timer already rolled the change back).
        detail: String,
    },
    /// `rollback` without a snapshot.
    #[error(
        "nothing to roll back: no snapshot in {} (no apply or remove has changed anything with \
         this state directory)",
        dir.display()
    )]
    NoSnapshot {
        /// The state directory.
        dir: PathBuf,
    },
    /// The records are for another backend or table than requested.
    #[error("{0}")]
    Mismatch(String),
    /// `--role auto` found no, or more than one, managed address.
    #[error("--role auto: {0}")]
    AutoTarget(String),
    /// A helper command (`ip -j addr`) failed.
    #[error("`{command}` failed: {message}")]
    Command {
        /// The command line.
        command: String,
        /// What went wrong (its stderr).
        message: String,
    },
    /// The confirm timer could not be started or did not detach.
    #[error("confirm timer: {0}")]
    Timer(String),
    /// Compiling the policy failed.
    #[error(transparent)]
    Compile(#[from] microseg_core::Error),
}

impl HostError {
    pub(crate) fn io(
        context: impl Into<String>,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        HostError::Io {
            context: context.into(),
            path: path.into(),
            source,
        }
    }

    pub(crate) fn backend<E: std::error::Error + Send + Sync + 'static>(
        backend: &str,
        e: E,
    ) -> Self {
        HostError::Backend {
            backend: backend.into(),
            source: Box::new(e),
        }
    }
}
