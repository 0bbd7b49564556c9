//! The one error type of this crate.

use std::io;
use std::net::IpAddr;
use std::time::Duration;

/// Everything that can go wrong while building, using or removing a [`Lab`](crate::Lab)
/// or a [`Netns`](crate::Netns).
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// An external command (`ip ...`, `ip netns exec ...`) exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line, for humans (it was run without a shell).
        command: String,
        /// How it ended, e.g. `exit status: 1`.
        status: String,
        /// Its standard error, lossily decoded and trimmed.
        stderr: String,
    },
    /// An external command did not finish in time and was killed.
    #[error("`{command}` did not finish within {timeout:?} and was killed")]
    CommandTimeout {
        /// The command line, for humans.
        command: String,
        /// The time it was given.
        timeout: Duration,
    },
    /// A system call failed (spawning a command, `setns`, a socket operation, ...).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The host specification given to [`Lab::new`](crate::Lab::new) is not acceptable.
    #[error("invalid lab specification: {0}")]
    InvalidSpec(String),
    /// No host of this name exists in the lab.
    #[error("unknown lab host `{0}`")]
    UnknownHost(String),
    /// The address belongs to no host of the lab (probes only go to lab hosts).
    #[error("{0} is not an address of any lab host")]
    UnknownAddress(IpAddr),
    /// The process is not root, which network namespaces need (see
    /// [`require_root`](crate::require_root)).
    #[error(
        "{what}: needs root (effective uid {euid}) to create network namespaces (CAP_NET_ADMIN, \
         CAP_SYS_ADMIN); run it as root, e.g. `sudo -E cargo test`"
    )]
    NotRoot {
        /// What needed root, e.g. a test file or `creating network namespace NAME`.
        what: String,
        /// The process's effective uid.
        euid: u32,
    },
    /// The lab's links or addresses did not become usable in time.
    #[error("lab network not ready after {waited:?}: {detail}")]
    NotReady {
        /// How long we waited.
        waited: Duration,
        /// What was still missing.
        detail: String,
    },
}

impl LabError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        LabError::Io {
            context: context.into(),
            source,
        }
    }
}
