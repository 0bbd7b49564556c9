//! A bare network namespace for tests ([`Netns`]), running `nft` inside a
//! namespace, and the root check that goes with them.

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::{cmd, ns, LabError, EXEC_TIMEOUT};

/// Longest prefix [`Netns::new`] accepts.
const MAX_PREFIX: usize = 32;

/// Numbers the namespaces of this process, whatever their prefix.
static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A bare network namespace that exists as long as the value does.
///
/// ```no_run
/// use microseg_lab::Netns;
///
/// # fn main() -> Result<(), microseg_lab::LabError> {
/// let ns = Netns::new("mytest")?; // `ip netns add mytest-<pid>-<n>`
/// let ruleset = b"table inet t {\n chain i {\n  type filter hook input priority 0;\n }\n}\n";
/// let out = ns.nft(&["-f", "-"], Some(ruleset));
/// assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
/// assert!(ns.list_table("inet", "t").is_some());
/// assert!(ns.list_table("inet", "other").is_none());
/// // Anything else runs there with `ip netns exec <ns.name()> ...` or `ip -n <ns.name()> ...`.
/// # Ok(()) }
/// // Dropping `ns` deletes the namespace, also while a test panics.
/// ```
///
/// Unlike a [`Lab`](crate::Lab) host it has no links or addresses (only a
/// loopback, down unless made by [`Netns::with_loopback`]): a place to load
/// and list rulesets and to run programs that must not touch the machine's
/// own network. Its name is `<prefix>-<pid>-<n>`, `n` counting the
/// namespaces this process created, so names are unique per process and
/// per test. [`Netns::new`] installs the same SIGINT/SIGTERM/SIGHUP handler
/// as [`Lab::new`](crate::Lab::new), so an interrupted test run deletes it
/// too (see [`cleanup_live_labs`](crate::cleanup_live_labs)).
///
/// Needs root ([`require_root`]) and `ip` from iproute2.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace `<prefix>-<pid>-<n>`; `prefix` has 1 to 32
    /// characters from `A-Z a-z 0-9 _ -`.
    ///
    /// Fails with [`LabError::NotRoot`] unless the process runs as root.
    pub fn new(prefix: &str) -> Result<Netns, LabError> {
        let safe = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if prefix.is_empty() || prefix.len() > MAX_PREFIX || !prefix.chars().all(safe) {
            return Err(LabError::InvalidSpec(format!(
                "namespace prefix {prefix:?}: use 1 to {MAX_PREFIX} characters from A-Z a-z 0-9 _ -"
            )));
        }
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        require_root(&format!("creating network namespace {name}"))?;
        ns::install_signal_cleanup();
        ns::register(&name);
        if let Err(e) = cmd::ip(&["netns", "add", &name], None) {
            ns::unregister(&name);
            return Err(e);
        }
        Ok(Netns { name })
    }

    /// Like [`Netns::new`], then brings the loopback interface up
    /// (`ip -n NAME link set lo up`).
    pub fn with_loopback(prefix: &str) -> Result<Netns, LabError> {
        let netns = Netns::new(prefix)?;
        cmd::ip(&["-n", &netns.name, "link", "set", "lo", "up"], None)?;
        Ok(netns)
    }

    /// The namespace's name, for `ip netns exec NAME ...` or `ip -n NAME ...`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `nft args...` in this namespace; see [`nft_in`].
    pub fn nft(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        nft_in(&self.name, args, stdin)
    }

    /// `nft -j list table FAMILY TABLE` in this namespace; see [`list_table_in`].
    pub fn list_table(&self, family: &str, table: &str) -> Option<String> {
        list_table_in(&self.name, family, table)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ns::delete(&self.name) {
            eprintln!(
                "microseg-lab: cannot delete network namespace {}: {e}",
                self.name
            );
        }
        ns::unregister(&self.name);
    }
}

/// Runs `ip netns exec NETNS nft args...` (an argument vector, never a shell),
/// feeding `stdin` if given, and returns its output whatever its exit status.
///
/// `netns` is any named namespace: a [`Netns`] or a lab host's
/// ([`Lab::netns_name`](crate::Lab::netns_name)). If `ip` cannot be started
/// the output has exit status 127, and if `nft` still runs after 30 s it is
/// killed and the output has exit status 124; either way its stderr says why.
///
/// ```no_run
/// let out = microseg_lab::nft_in("some-netns", &["-c", "-f", "-"], Some(b"table ip t\n"));
/// assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
/// ```
pub fn nft_in(netns: &str, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut argv = vec!["netns", "exec", netns, "nft"];
    argv.extend_from_slice(args);
    cmd::run_unchecked("ip", &argv, stdin, EXEC_TIMEOUT).unwrap_or_else(|e| {
        let code = match e {
            LabError::CommandTimeout { .. } => 124,
            _ => 127,
        };
        Output {
            status: ExitStatus::from_raw(code << 8),
            stdout: Vec::new(),
            stderr: e.to_string().into_bytes(),
        }
    })
}

/// `nft -j list table FAMILY TABLE` in `netns` ([`nft_in`]): the JSON listing,
/// or `None` if `nft` fails (usually: no such table).
///
/// ```no_run
/// assert_eq!(microseg_lab::list_table_in("some-netns", "inet", "absent"), None);
/// ```
pub fn list_table_in(netns: &str, family: &str, table: &str) -> Option<String> {
    let out = nft_in(netns, &["-j", "list", "table", family, table], None);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Fails with [`LabError::NotRoot`], saying that `what` needs root, unless
/// the process's effective uid is 0.
///
/// Network namespaces need CAP_NET_ADMIN and CAP_SYS_ADMIN; tests on the
/// real kernel call this first so that they fail with a clear message
/// rather than with whatever `ip` says.
///
/// ```no_run
/// microseg_lab::require_root("tests/kernel.rs").unwrap_or_else(|e| panic!("{e}"));
/// ```
pub fn require_root(what: &str) -> Result<(), LabError> {
    let euid = nix::unistd::geteuid();
    if euid.is_root() {
        return Ok(());
    }
    Err(LabError::NotRoot {
        what: what.to_string(),
        euid: euid.as_raw(),
    })
}
