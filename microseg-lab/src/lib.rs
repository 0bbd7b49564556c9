//! Test hosts in network namespaces: throw-away labs on the real kernel.
//!
//! ```no_run
//! use microseg_lab::{HostSpec, Lab, Outcome, Probe, Service};
//!
//! # fn main() -> Result<(), microseg_lab::LabError> {
//! let lab = Lab::new(&[
//!     HostSpec::new("web", ["203.0.113.10".parse().unwrap(), "2001:db8::10".parse().unwrap()]),
//!     HostSpec::new("db", ["198.51.100.20".parse().unwrap()]),
//! ])?;
//! lab.listen("db", &[Service::Tcp(5432), Service::Udp(53)])?;
//! // Load a ruleset into one host only.
//! let ruleset = "table inet t {\n chain i {\n  type filter hook input priority 0;\n  udp dport 53 drop\n }\n}\n";
//! lab.exec("db", "nft", &["-f", "-"], Some(ruleset.as_bytes()))?;
//! let db = "198.51.100.20".parse().unwrap();
//! let got = lab.probe_all(&[("web", db, Probe::Tcp(5432)), ("web", db, Probe::Udp(53))])?;
//! assert_eq!(got, [Outcome::Open, Outcome::Timeout]);
//! # Ok(()) }
//! // Dropping `lab` stops the listeners and deletes every namespace.
//! ```
//!
//! A [`Lab`] is one "switch" namespace holding a Linux bridge plus one namespace per
//! host, linked to the bridge by a veth pair (`eth0` on the host side). Each host gets
//! its addresses as /32 and /128 (IPv6 without DAD) and a host route to every other
//! lab address, and nothing else: no default route and no link to the machine's own
//! network, so probes can only reach lab hosts. Namespace names are
//! `msl-<pid>-<random>-sw` and `msl-<pid>-<random>-h-<host>`.
//!
//! Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN for `setns`, CAP_NET_RAW for ICMP
//! probes) and `ip` from iproute2. Listeners and probes run inside this process
//! on threads that entered the host's namespace; ICMP probes use raw sockets, so
//! no `ping` is needed. `ip` is always run with an argument vector, never a shell.
//!
//! Inside each host the ICMP error rate limits are switched off, so that many probes
//! in a row still see every "port unreachable".
//!
//! For a test that needs no links, only a place to load rulesets and run programs
//! in, [`Netns`] is a bare namespace deleted on drop; [`nft_in`] and
//! [`list_table_in`] run `nft` in any named namespace, and [`require_root`] fails
//! with a clear message when the process cannot create namespaces.
#![forbid(unsafe_code)]

mod cmd;
mod error;
mod listen;
mod netns;
mod ns;
mod probe;
mod tempdir;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub use error::LabError;
pub use netns::{list_table_in, nft_in, require_root, Netns};
pub use ns::cleanup_live_labs;
pub use tempdir::TempDir;

/// Default time a probe waits for an answer.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_millis(700);

/// Most probes [`Lab::probe_all`] runs at the same time.
pub const PROBE_THREADS: usize = 32;

/// Deadline for commands run by [`Lab::exec`].
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`Lab::new`] waits for links and addresses to become usable.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest host name accepted.
const MAX_HOST_NAME: usize = 32;

/// Most hosts in one lab.
const MAX_HOSTS: usize = 500;

/// One test host: a name and its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// 1 to 32 characters from `A-Z a-z 0-9 _ -`, unique within the lab.
    pub name: String,
    /// IPv4 and/or IPv6 addresses (added as /32 and /128), unique within the lab.
    pub addrs: Vec<IpAddr>,
}

impl HostSpec {
    /// A host named `name` with addresses `addrs`.
    pub fn new(name: impl Into<String>, addrs: impl IntoIterator<Item = IpAddr>) -> Self {
        HostSpec {
            name: name.into(),
            addrs: addrs.into_iter().collect(),
        }
    }
}

/// A service a host listens on, on every address (IPv4 and IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// Accepts connections and echoes back whatever it reads.
    Tcp(u16),
    /// Echoes every datagram back to its sender.
    Udp(u16),
}

/// What a probe sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Probe {
    /// A TCP connect to this port.
    Tcp(u16),
    /// A datagram to this port, answered by a [`Service::Udp`] listener.
    Udp(u16),
    /// An ICMP (or ICMPv6) echo request.
    Icmp,
}

/// What a probe saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Connected, echoed or answered.
    Open,
    /// Actively refused: a TCP RST or an ICMP unreachable (e.g. an nft `reject`,
    /// or nobody listening).
    Refused,
    /// No answer within the timeout (e.g. an nft `drop`); a drop in the source's
    /// own output path also counts here.
    Timeout,
}

/// One host of a running lab.
#[derive(Debug)]
struct Host {
    name: String,
    ns: String,
    addrs: Vec<IpAddr>,
}

/// A set of test hosts in network namespaces; see the [crate docs](crate).
///
/// Dropping it stops its listeners and deletes its namespaces, also while a
/// test panics.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    switch: String,
    hosts: Vec<Host>,
    /// Namespaces to delete on drop (registered before they are created).
    namespaces: Vec<String>,
    stop: Arc<AtomicBool>,
    listeners: Mutex<Vec<JoinHandle<()>>>,
    probe_timeout: Duration,
}

fn validate(specs: &[HostSpec]) -> Result<(), LabError> {
    let invalid = |msg: String| Err(LabError::InvalidSpec(msg));
    if specs.is_empty() || specs.len() > MAX_HOSTS {
        return invalid(format!("a lab has 1 to {MAX_HOSTS} hosts"));
    }
    let mut names = HashSet::new();
    let mut addrs = HashSet::new();
    for spec in specs {
        let name = &spec.name;
        let safe = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if name.is_empty() || name.len() > MAX_HOST_NAME || !name.chars().all(safe) {
            return invalid(format!(
                "host name {name:?}: use 1 to {MAX_HOST_NAME} characters from A-Z a-z 0-9 _ -"
            ));
        }
        if !names.insert(name.as_str()) {
            return invalid(format!("host name {name:?} appears twice"));
        }
        for addr in &spec.addrs {
            if addr.is_unspecified() || addr.is_loopback() || addr.is_multicast() {
                return invalid(format!("host {name}: {addr} is not a unicast host address"));
            }
            if let IpAddr::V4(v4) = addr {
                if v4.is_broadcast() {
                    return invalid(format!("host {name}: {addr} is not a unicast host address"));
                }
            }
            if !addrs.insert(*addr) {
                return invalid(format!("address {addr} appears twice"));
            }
        }
    }
    Ok(())
}

fn host_len(addr: &IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

impl Lab {
    /// Builds the lab: namespaces, bridge, veth pairs, addresses and routes, and
    /// waits until links are up and addresses usable (at most 5 s).
    ///
    /// Also installs, once per process, a SIGINT/SIGTERM/SIGHUP handler that
    /// deletes the namespaces of live labs and exits with status 130 (skipped if
    /// the program already has a `ctrlc` handler; see [`cleanup_live_labs`]).
    /// On error, whatever was created is deleted again.
    pub fn new(hosts: &[HostSpec]) -> Result<Lab, LabError> {
        validate(hosts)?;
        ns::install_signal_cleanup();
        let prefix = ns::new_prefix();
        let mut lab = Lab {
            switch: format!("{prefix}sw"),
            hosts: hosts
                .iter()
                .map(|h| Host {
                    name: h.name.clone(),
                    ns: format!("{prefix}h-{}", h.name),
                    addrs: h.addrs.clone(),
                })
                .collect(),
            prefix,
            namespaces: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            listeners: Mutex::new(Vec::new()),
            probe_timeout: DEFAULT_PROBE_TIMEOUT,
        };
        lab.build()?;
        Ok(lab)
    }

    fn add_netns(&mut self, name: &str) -> Result<(), LabError> {
        ns::register(name);
        self.namespaces.push(name.to_string());
        cmd::ip(&["netns", "add", name], None).map(drop)
    }

    fn build(&mut self) -> Result<(), LabError> {
        let switch = self.switch.clone();
        self.add_netns(&switch)?;
        let host_ns: Vec<String> = self.hosts.iter().map(|h| h.ns.clone()).collect();
        for name in &host_ns {
            self.add_netns(name)?;
        }
        cmd::ip(
            &[
                "-n",
                &switch,
                "link",
                "add",
                "br0",
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ],
            None,
        )?;
        let mut switch_batch = String::from("link set lo up\nlink set br0 up\n");
        for (i, host) in self.hosts.iter().enumerate() {
            let port = format!("p{i}");
            let args = [
                "-n", &host.ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port,
                "netns", &switch,
            ];
            cmd::ip(&args, None)?;
            switch_batch.push_str(&format!("link set {port} master br0\nlink set {port} up\n"));
        }
        cmd::ip(
            &["-n", &switch, "-batch", "-"],
            Some(switch_batch.as_bytes()),
        )?;
        for host in &self.hosts {
            let mut batch = String::from("link set lo up\nlink set eth0 up\n");
            for addr in &host.addrs {
                let nodad = if addr.is_ipv6() { " nodad" } else { "" };
                batch.push_str(&format!(
                    "address add {addr}/{} dev eth0{nodad}\n",
                    host_len(addr)
                ));
            }
            for other in self.hosts.iter().filter(|o| o.name != host.name) {
                for addr in &other.addrs {
                    batch.push_str(&format!(
                        "route add {addr}/{} dev eth0 scope link\n",
                        host_len(addr)
                    ));
                }
            }
            cmd::ip(&["-n", &host.ns, "-batch", "-"], Some(batch.as_bytes()))?;
            ns::in_netns(&host.ns, disable_icmp_rate_limits)?;
        }
        self.wait_ready()
    }

    /// Polls until every veth is up on both sides and no global address is tentative.
    fn wait_ready(&self) -> Result<(), LabError> {
        let start = Instant::now();
        let mut pending: Vec<&Host> = self.hosts.iter().collect();
        let mut switch_ready = false;
        loop {
            if !switch_ready {
                let out = cmd::ip(
                    &["-n", &self.switch, "-o", "link", "show", "master", "br0"],
                    None,
                )?;
                let up = String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter(|l| l.contains(" state UP "))
                    .count();
                switch_ready = up == self.hosts.len();
            }
            let mut still = Vec::new();
            for host in pending {
                let link = cmd::ip(&["-n", &host.ns, "-o", "link", "show", "dev", "eth0"], None)?;
                let addrs = cmd::ip(
                    &["-n", &host.ns, "-o", "address", "show", "dev", "eth0"],
                    None,
                )?;
                let addrs = String::from_utf8_lossy(&addrs.stdout);
                let settled = addrs.lines().all(|l| {
                    l.contains("scope link")
                        || !(l.contains("tentative") || l.contains("dadfailed"))
                });
                if !(String::from_utf8_lossy(&link.stdout).contains(" state UP ") && settled) {
                    still.push(host);
                }
            }
            pending = still;
            if switch_ready && pending.is_empty() {
                return Ok(());
            }
            if start.elapsed() >= READY_TIMEOUT {
                let mut missing: Vec<String> =
                    pending.iter().map(|h| format!("host {}", h.name)).collect();
                if !switch_ready {
                    missing.push("switch ports".into());
                }
                return Err(LabError::NotReady {
                    waited: start.elapsed(),
                    detail: format!("not up: {}", missing.join(", ")),
                });
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn host(&self, name: &str) -> Result<&Host, LabError> {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .ok_or_else(|| LabError::UnknownHost(name.to_string()))
    }

    fn check_target(&self, to: IpAddr) -> Result<(), LabError> {
        if self.hosts.iter().any(|h| h.addrs.contains(&to)) {
            Ok(())
        } else {
            Err(LabError::UnknownAddress(to))
        }
    }

    /// The prefix shared by this lab's namespace names, e.g. `msl-4242-9f3a0-`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The host names, in the order given to [`Lab::new`].
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.hosts.iter().map(|h| h.name.as_str())
    }

    /// The addresses of `host`.
    pub fn addrs(&self, host: &str) -> Result<&[IpAddr], LabError> {
        Ok(&self.host(host)?.addrs)
    }

    /// The network namespace of `host`, for `ip netns exec NAME ...` or `ip -n NAME ...`.
    pub fn netns_name(&self, host: &str) -> Result<&str, LabError> {
        Ok(&self.host(host)?.ns)
    }

    /// Runs `ip netns exec NS program args...` (no shell), feeding `stdin` if given.
    /// A non-zero exit status is a [`LabError::Command`] with its stderr; a command
    /// still running after 30 s is killed.
    pub fn exec(
        &self,
        host: &str,
        program: &str,
        args: &[&str],
        stdin: Option<&[u8]>,
    ) -> Result<Output, LabError> {
        let mut argv = vec!["netns", "exec", &self.host(host)?.ns, program];
        argv.extend_from_slice(args);
        cmd::run("ip", &argv, stdin, EXEC_TIMEOUT)
    }

    /// The time a probe waits for an answer ([`DEFAULT_PROBE_TIMEOUT`] unless set).
    pub fn probe_timeout(&self) -> Duration {
        self.probe_timeout
    }

    /// Sets the time a probe waits for an answer (at least 1 ms).
    pub fn set_probe_timeout(&mut self, timeout: Duration) {
        self.probe_timeout = timeout.max(Duration::from_millis(1));
    }

    /// Starts listeners in `host` on `0.0.0.0` and `[::]` for each service: TCP accepts
    /// and echoes bytes, UDP echoes datagrams. They run until the lab is dropped.
    /// Listening twice on the same service fails (address in use).
    pub fn listen(&self, host: &str, services: &[Service]) -> Result<(), LabError> {
        let ns = &self.host(host)?.ns;
        let bound = ns::in_netns(ns, || {
            let mut all = Vec::new();
            for service in services {
                all.extend(listen::bind(*service)?);
            }
            Ok(all)
        })?;
        let mut listeners = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for socket in bound {
            listeners.push(listen::serve(socket, Arc::clone(&self.stop))?);
        }
        Ok(())
    }

    /// Probes `to` (an address of a lab host) from `from`, waiting at most the
    /// probe timeout.
    pub fn probe(&self, from: &str, to: IpAddr, probe: Probe) -> Result<Outcome, LabError> {
        let mut got = self.probe_all(&[(from, to, probe)])?;
        Ok(got.remove(0))
    }

    /// Runs many probes in parallel (at most [`PROBE_THREADS`] at once) and returns
    /// their outcomes in order. Takes about `ceil(n / 32)` probe timeouts at worst.
    pub fn probe_all(&self, probes: &[(&str, IpAddr, Probe)]) -> Result<Vec<Outcome>, LabError> {
        let mut jobs = Vec::with_capacity(probes.len());
        for &(from, to, probe) in probes {
            self.check_target(to)?;
            jobs.push((self.host(from)?.ns.as_str(), to, probe));
        }
        let next = AtomicUsize::new(0);
        let timeout = self.probe_timeout;
        let workers = PROBE_THREADS.min(jobs.len());
        let mut results: Vec<Option<Outcome>> = vec![None; jobs.len()];
        thread::scope(|s| {
            let mut handles = Vec::new();
            for _ in 0..workers {
                let (next, jobs) = (&next, &jobs);
                let handle = thread::Builder::new()
                    .name("msl-probe".into())
                    .spawn_scoped(s, move || {
                        let mut done = Vec::new();
                        let mut current: Option<&str> = None;
                        loop {
                            let i = next.fetch_add(1, Ordering::SeqCst);
                            let Some(&(ns, to, probe)) = jobs.get(i) else {
                                return Ok(done);
                            };
                            if current != Some(ns) {
                                ns::enter(ns)?;
                                current = Some(ns);
                            }
                            done.push((i, probe::run(to, probe, timeout)?));
                        }
                    });
                handles.push(handle.map_err(|e| LabError::io("cannot spawn a probe thread", e)));
            }
            let mut first_error = None;
            for handle in handles {
                let outcome = handle.and_then(|h| match h.join() {
                    Ok(r) => r,
                    Err(panic) => std::panic::resume_unwind(panic),
                });
                match outcome {
                    Ok(done) => done.into_iter().for_each(|(i, o)| results[i] = Some(o)),
                    Err(e) => {
                        // Let the other workers stop early.
                        next.store(usize::MAX / 2, Ordering::SeqCst);
                        first_error.get_or_insert(e);
                    }
                }
            }
            first_error.map_or(Ok(()), Err)
        })?;
        results
            .into_iter()
            .map(|r| r.ok_or_else(|| LabError::io("probe", std::io::Error::other("probe not run"))))
            .collect()
    }

    /// Opens a TCP connection from `from` to a [`Service::Tcp`] listener at `to:port`
    /// and keeps it ESTABLISHED, e.g. to check that it survives a ruleset change.
    ///
    /// Kernel fact: conntrack starts tracking in a namespace only once some loaded rule
    /// uses `ct`. A connection opened while the host had no such rule is picked up
    /// mid-stream as `ct state new` by the first ruleset that does, so only a *change*
    /// from one ct-using ruleset to another keeps it `established`.
    pub fn open_stream(
        &self,
        from: &str,
        to: IpAddr,
        port: u16,
    ) -> Result<HeldConnection, LabError> {
        self.check_target(to)?;
        let peer = SocketAddr::new(to, port);
        let timeout = self.probe_timeout;
        let stream = ns::in_netns(&self.host(from)?.ns, || {
            TcpStream::connect_timeout(&peer, timeout)
                .map_err(|e| LabError::io(format!("cannot connect from {from} to {peer}"), e))
        })?;
        Ok(HeldConnection {
            stream,
            peer,
            timeout,
            counter: 0,
        })
    }

    /// Deletes namespaces left behind by labs of processes that no longer exist
    /// (names `msl-<pid>-...` whose pid is gone) and returns their names.
    pub fn cleanup_stale() -> Result<Vec<String>, LabError> {
        ns::cleanup_stale()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let listeners = std::mem::take(
            &mut *self
                .listeners
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for handle in listeners {
            let _ = handle.join();
        }
        for name in self.namespaces.iter().rev() {
            if let Err(e) = ns::delete(name) {
                eprintln!("microseg-lab: cannot delete network namespace {name}: {e}");
            }
            ns::unregister(name);
        }
    }
}

/// Switches off ICMP error rate limiting in the calling thread's namespace
/// (`/proc/sys/net` follows the thread's namespace). Missing IPv6 knobs are skipped.
fn disable_icmp_rate_limits() -> Result<(), LabError> {
    let knobs = [
        ("/proc/sys/net/ipv4/icmp_ratelimit", "0"),
        ("/proc/sys/net/ipv4/icmp_ratemask", "0"),
        ("/proc/sys/net/ipv6/icmp/ratelimit", "0"),
        ("/proc/sys/net/ipv6/icmp/ratemask", "\n"),
    ];
    for (path, value) in knobs {
        match std::fs::write(path, value) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(LabError::io(format!("cannot write {path}"), e)),
        }
    }
    Ok(())
}

/// An ESTABLISHED TCP connection to an echoing [`Service::Tcp`] listener,
/// made by [`Lab::open_stream`].
#[derive(Debug)]
pub struct HeldConnection {
    stream: TcpStream,
    peer: SocketAddr,
    timeout: Duration,
    counter: u8,
}

impl HeldConnection {
    /// Sends one byte and waits (probe timeout) for the same byte to come back.
    /// After a failure the connection's byte stream may be out of step: open a new one.
    pub fn ping(&mut self) -> Result<(), LabError> {
        self.counter = self.counter.wrapping_add(1);
        let sent = [self.counter];
        let mut got = [0u8];
        let peer = self.peer;
        let result = (|| {
            self.stream.set_write_timeout(Some(self.timeout))?;
            self.stream.set_read_timeout(Some(self.timeout))?;
            self.stream.write_all(&sent)?;
            self.stream.read_exact(&mut got)?;
            if got == sent {
                Ok(())
            } else {
                Err(std::io::Error::other(format!(
                    "echo mismatch: sent {sent:?}, got {got:?}"
                )))
            }
        })();
        result.map_err(|e| LabError::io(format!("held connection to {peer}"), e))
    }

    /// The listener's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }
}
