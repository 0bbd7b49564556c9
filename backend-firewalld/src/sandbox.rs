//! A throw-away firewalld: a private `dbus-daemon` and `firewalld` running
//! inside a network namespace, with its permanent configuration in a
//! temporary folder (never `/etc/firewalld`).
//!
//! ```no_run
//! use backend_firewalld::sandbox::PrivateFirewalld;
//! # fn main() -> Result<(), backend_firewalld::FirewalldError> {
//! // Needs root. Creates its own namespace `msfw-<pid>-<n>`.
//! let fw = PrivateFirewalld::start()?;
//! let backend = fw.backend()?;
//! assert_eq!(backend.state()?, "RUNNING");
//! // Dropping `fw` stops firewalld and the bus, deletes the namespace and the folder.
//! # Ok(()) }
//! ```
//!
//! Layout of the temporary folder (`/tmp/msfw-<pid>-<n>-<time>/`): `bus.conf`
//! and `bus.sock` (the bus: `<type>system</type>`, `EXTERNAL` auth, a
//! permissive policy), `etc/` (firewalld's `--system-config`, with a
//! `firewalld.conf` of firewalld's defaults), `firewalld.log` and the
//! daemons' output. firewalld's default configuration (`/usr/lib/firewalld`)
//! is read as usual; nothing is written outside the folder.
//!
//! Both daemons run under `setpriv --pdeathsig KILL`, so they die with the
//! thread that started them even if the process is killed; keep the
//! [`PrivateFirewalld`] on the thread that made it. [`cleanup_stale`]
//! removes folders and namespaces left by processes that no longer exist.

use crate::backend::{ApplyReport, FirewalldBackend};
use crate::dbus::Client;
use crate::{FirewalldError, FirewalldRenderer};
use microseg_core::backend::Renderer;
use microseg_core::ir::HostRuleset;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::cell::RefCell;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long [`PrivateFirewalld::start`] waits for firewalld to be `RUNNING`.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a daemon gets to exit after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Prefix of every folder and namespace this module creates.
pub const NAME_TAG: &str = "msfw-";

/// firewalld.conf with firewalld 1.3's shipped defaults.
pub const DEFAULT_FIREWALLD_CONF: &str = "DefaultZone=public
CleanupOnExit=yes
CleanupModulesOnExit=no
Lockdown=no
IPv6_rpfilter=yes
IndividualCalls=no
LogDenied=off
FirewallBackend=nftables
FlushAllOnReload=yes
RFC3964_IPv4=yes
";

/// A firewalld on a private bus inside a network namespace; see the [module docs](self).
///
/// ```no_run
/// let fw = backend_firewalld::sandbox::PrivateFirewalld::start().unwrap();
/// let backend = fw.backend().unwrap();
/// assert_eq!(backend.default_zone().unwrap(), "public");
/// ```
#[derive(Debug)]
pub struct PrivateFirewalld {
    dir: PathBuf,
    netns: String,
    own_netns: bool,
    bus: Option<Child>,
    firewalld: Option<Child>,
    address: String,
}

fn sandbox_err(what: impl Into<String>) -> FirewalldError {
    FirewalldError::Sandbox(what.into())
}

fn unique_suffix() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{}-{n}-{nanos:x}", std::process::id())
}

fn run(program: &str, args: &[&str]) -> Result<(), FirewalldError> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| sandbox_err(format!("cannot run {program}: {e}")))?;
    if !out.status.success() {
        return Err(sandbox_err(format!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

impl PrivateFirewalld {
    /// Starts a firewalld in a namespace of its own (deleted on drop).
    ///
    /// ```no_run
    /// let fw = backend_firewalld::sandbox::PrivateFirewalld::start().unwrap();
    /// println!("{}", fw.bus_address());
    /// ```
    pub fn start() -> Result<PrivateFirewalld, FirewalldError> {
        let ns = format!("{NAME_TAG}{}", unique_suffix());
        run("ip", &["netns", "add", &ns])?;
        Self::launch(ns, true, DEFAULT_FIREWALLD_CONF)
    }

    /// Starts a firewalld inside an existing namespace (e.g. a
    /// `microseg_lab` host's), which is left in place on drop.
    ///
    /// ```no_run
    /// let fw = backend_firewalld::sandbox::PrivateFirewalld::start_in("msl-1-2-h-web").unwrap();
    /// ```
    pub fn start_in(netns: &str) -> Result<PrivateFirewalld, FirewalldError> {
        if !Path::new("/run/netns").join(netns).exists() {
            return Err(sandbox_err(format!(
                "network namespace {netns} does not exist"
            )));
        }
        Self::launch(netns.to_string(), false, DEFAULT_FIREWALLD_CONF)
    }

    fn launch(
        netns: String,
        own_netns: bool,
        conf: &str,
    ) -> Result<PrivateFirewalld, FirewalldError> {
        let dir = std::env::temp_dir().join(format!("{NAME_TAG}{}", unique_suffix()));
        let sock = dir.join("bus.sock");
        let mut me = PrivateFirewalld {
            address: format!("unix:path={}", sock.display()),
            dir,
            netns,
            own_netns,
            bus: None,
            firewalld: None,
        };
        // From here on, Drop cleans up whatever exists.
        let io = |what: &str, e: std::io::Error| sandbox_err(format!("{what}: {e}"));
        fs::create_dir_all(me.dir.join("etc"))
            .map_err(|e| io("cannot create the temporary folder", e))?;
        fs::write(me.dir.join("etc/firewalld.conf"), conf)
            .map_err(|e| io("cannot write firewalld.conf", e))?;
        let bus_conf = format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#,
            sock.display()
        );
        fs::write(me.dir.join("bus.conf"), bus_conf).map_err(|e| io("cannot write bus.conf", e))?;
        let out = |name: &str| -> Result<Stdio, FirewalldError> {
            Ok(fs::File::create(me.dir.join(name))
                .map_err(|e| io("cannot create a log file", e))?
                .into())
        };

        // dbus-daemon (outside the namespace: a unix socket does not care).
        let bus_conf_path = me.dir.join("bus.conf");
        let bus = Command::new("setpriv")
            .args([
                "--pdeathsig",
                "KILL",
                "--",
                "dbus-daemon",
                "--nofork",
                "--nopidfile",
            ])
            .arg(format!("--config-file={}", bus_conf_path.display()))
            .stdin(Stdio::null())
            .stdout(out("dbus.out")?)
            .stderr(out("dbus.err")?)
            .spawn()
            .map_err(|e| {
                io(
                    "cannot start dbus-daemon (setpriv, dbus-daemon installed?)",
                    e,
                )
            })?;
        me.bus = Some(bus);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            if let Some(status) = me.bus.as_mut().and_then(|b| b.try_wait().ok().flatten()) {
                return Err(sandbox_err(format!(
                    "dbus-daemon exited ({status}): {}",
                    me.read("dbus.err")
                )));
            }
            if Instant::now() > deadline {
                return Err(sandbox_err(
                    "dbus-daemon did not create its socket within 10 s",
                ));
            }
            sleep(Duration::from_millis(20));
        }

        // firewalld inside the namespace, on the private bus.
        let etc = me.dir.join("etc");
        let log = me.dir.join("firewalld.log");
        let fw = Command::new("ip")
            .args([
                "netns",
                "exec",
                &me.netns,
                "setpriv",
                "--pdeathsig",
                "KILL",
                "--",
            ])
            .args([
                "/usr/sbin/firewalld",
                "--nofork",
                "--nopid",
                "--system-config",
            ])
            .arg(&etc)
            .args(["--log-target", "file", "--log-file"])
            .arg(&log)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &me.address)
            .stdin(Stdio::null())
            .stdout(out("firewalld.out")?)
            .stderr(out("firewalld.err")?)
            .spawn()
            .map_err(|e| io("cannot start firewalld", e))?;
        me.firewalld = Some(fw);
        me.wait_running()?;
        Ok(me)
    }

    fn wait_running(&mut self) -> Result<(), FirewalldError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut client = None;
        loop {
            if let Some(status) = self
                .firewalld
                .as_mut()
                .and_then(|f| f.try_wait().ok().flatten())
            {
                return Err(sandbox_err(format!(
                    "firewalld exited ({status}) while starting: {} {}",
                    self.read("firewalld.err"),
                    self.read("firewalld.log")
                )));
            }
            if client.is_none() {
                client = Client::connect(Some(&self.address)).ok();
            }
            if let Some(c) = &client {
                if c.firewalld_on_bus().unwrap_or(false) && c.state().is_ok_and(|s| s == "RUNNING")
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(sandbox_err(format!(
                    "firewalld was not RUNNING within {START_TIMEOUT:?}: {}",
                    self.read("firewalld.log")
                )));
            }
            sleep(Duration::from_millis(100));
        }
    }

    fn read(&self, name: &str) -> String {
        fs::read_to_string(self.dir.join(name))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// The private bus's address (`unix:path=…/bus.sock`).
    ///
    /// ```no_run
    /// # let fw = backend_firewalld::sandbox::PrivateFirewalld::start().unwrap();
    /// assert!(fw.bus_address().starts_with("unix:path="));
    /// ```
    pub fn bus_address(&self) -> &str {
        &self.address
    }

    /// firewalld's `--system-config` folder (its permanent XML configuration).
    ///
    /// ```no_run
    /// # let fw = backend_firewalld::sandbox::PrivateFirewalld::start().unwrap();
    /// assert!(fw.config_dir().join("firewalld.conf").exists());
    /// ```
    pub fn config_dir(&self) -> PathBuf {
        self.dir.join("etc")
    }

    /// The network namespace firewalld runs in.
    ///
    /// ```no_run
    /// # let fw = backend_firewalld::sandbox::PrivateFirewalld::start().unwrap();
    /// println!("ip netns exec {} nft list ruleset", fw.netns());
    /// ```
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// firewalld's log so far.
    ///
    /// ```no_run
    /// # let fw = backend_firewalld::sandbox::PrivateFirewalld::start().unwrap();
    /// println!("{}", fw.log());
    /// ```
    pub fn log(&self) -> String {
        self.read("firewalld.log")
    }

    /// A backend connected to this firewalld.
    ///
    /// ```no_run
    /// # let fw = backend_firewalld::sandbox::PrivateFirewalld::start().unwrap();
    /// let backend = fw.backend().unwrap();
    /// ```
    pub fn backend(&self) -> Result<FirewalldBackend, FirewalldError> {
        FirewalldBackend::connect(Some(&self.address))
    }
}

/// One private firewalld per network namespace, started on first use and
/// kept until dropped: what `microseg verify --backend firewalld` installs
/// rulesets with (one firewalld per test host, each on its own bus).
///
/// ```no_run
/// use backend_firewalld::sandbox::Sandboxes;
/// use microseg_core::{Policy, ir::{compile, Target}};
/// let policy = Policy::from_file("examples/three-tier.toml").unwrap();
/// let fws = Sandboxes::new();
/// // With microseg-verify: `verify(&policy, &|lab, host, rs| fws.install(lab.netns_name(host)?, rs) ...)`.
/// let rs = compile(&policy, &Target::Role("web".into())).unwrap();
/// let report = fws.install("msl-1-2-h-web", &rs).unwrap();
/// assert!(!report.unchanged());
/// ```
#[derive(Debug, Default)]
pub struct Sandboxes {
    running: RefCell<Vec<PrivateFirewalld>>,
}

impl Sandboxes {
    /// No firewalld yet.
    ///
    /// ```
    /// assert!(backend_firewalld::sandbox::Sandboxes::new().is_empty());
    /// ```
    pub fn new() -> Sandboxes {
        Sandboxes::default()
    }

    /// Renders `ruleset` and applies it to the firewalld of `netns`
    /// (started first if there is none yet), then checks that a second
    /// plan is empty (an error otherwise: the apply would not be idempotent).
    ///
    /// ```no_run
    /// # use backend_firewalld::sandbox::Sandboxes;
    /// # let (fws, rs): (Sandboxes, microseg_core::ir::HostRuleset) = unimplemented!();
    /// let report = fws.install("msl-1-2-h-db", &rs).unwrap();
    /// ```
    pub fn install(
        &self,
        netns: &str,
        ruleset: &HostRuleset,
    ) -> Result<ApplyReport, FirewalldError> {
        let cfg = FirewalldRenderer.render(ruleset)?;
        let known = self
            .running
            .borrow()
            .iter()
            .position(|f| f.netns() == netns);
        let index = match known {
            Some(i) => i,
            None => {
                let fw = PrivateFirewalld::start_in(netns)?;
                let mut running = self.running.borrow_mut();
                running.push(fw);
                running.len() - 1
            }
        };
        let running = self.running.borrow();
        let backend = running[index].backend()?;
        let report = backend.apply_report(&backend.plan_config(&cfg, None)?)?;
        let again = backend.plan_config(&cfg, None)?;
        if !again.is_empty() {
            return Err(sandbox_err(format!(
                "a second apply in {netns} would still change:\n{again}"
            )));
        }
        Ok(report)
    }

    /// Number of firewalld instances running.
    ///
    /// ```
    /// assert_eq!(backend_firewalld::sandbox::Sandboxes::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.running.borrow().len()
    }

    /// True if none runs.
    ///
    /// ```
    /// assert!(backend_firewalld::sandbox::Sandboxes::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` with the firewalld of `netns`, if one runs there.
    ///
    /// ```no_run
    /// # let fws = backend_firewalld::sandbox::Sandboxes::new();
    /// let log = fws.with("msl-1-2-h-db", |fw| fw.log());
    /// ```
    pub fn with<R>(&self, netns: &str, f: impl FnOnce(&PrivateFirewalld) -> R) -> Option<R> {
        self.running
            .borrow()
            .iter()
            .find(|fw| fw.netns() == netns)
            .map(f)
    }
}

fn stop(child: &mut Child) {
    let pid = Pid::from_raw(child.id() as i32);
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl Drop for PrivateFirewalld {
    fn drop(&mut self) {
        if let Some(mut f) = self.firewalld.take() {
            stop(&mut f);
        }
        if let Some(mut b) = self.bus.take() {
            stop(&mut b);
        }
        if self.own_netns {
            let _ = run("ip", &["netns", "del", &self.netns]);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Removes folders and namespaces of sandboxes whose process is gone
/// (`msfw-<pid>-…`); returns what it removed.
///
/// ```no_run
/// for gone in backend_firewalld::sandbox::cleanup_stale() {
///     eprintln!("removed stale {gone}");
/// }
/// ```
pub fn cleanup_stale() -> Vec<String> {
    let dead = |name: &str| -> bool {
        name.strip_prefix(NAME_TAG)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| !Path::new("/proc").join(pid.to_string()).exists())
    };
    let mut removed = Vec::new();
    if let Ok(entries) = fs::read_dir(std::env::temp_dir()) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if dead(&name) && fs::remove_dir_all(e.path()).is_ok() {
                removed.push(e.path().display().to_string());
            }
        }
    }
    if let Ok(entries) = fs::read_dir("/run/netns") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if dead(&name) && run("ip", &["netns", "del", &name]).is_ok() {
                removed.push(format!("netns {name}"));
            }
        }
    }
    removed
}
