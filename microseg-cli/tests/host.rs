//! `microseg apply / confirm / rollback / status / remove` on the real kernel.
//!
//! Every test runs the `microseg` binary inside throw-away network namespaces
//! (`ip netns exec NS microseg …`: bare ones named `mshost-<pid>-<n>`, or
//! microseg-lab hosts when connections are needed), with its own temporary
//! state directory and boot-file path, so the machine's own ruleset, state
//! and /etc are never touched. Namespaces and directories are removed on
//! drop, also when a test fails.
//!
//! Needs root, `ip` (iproute2), `nft` (nftables) and `bash`.
//! Run: `cargo test -p microseg-cli --test host`.

use microseg_lab::{list_table_in, nft_in, HostSpec, Lab, Netns, Outcome, Probe, Service, TempDir};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn require_root() {
    microseg_lab::require_root("microseg-cli/tests/host.rs").unwrap_or_else(|e| panic!("{e}"));
}

/// A bare network namespace `mshost-<pid>-<n>`, removed on drop.
fn netns() -> Netns {
    Netns::new("mshost").unwrap_or_else(|e| panic!("{e}"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Where and how `microseg` runs: a namespace and a state directory (and
/// the nftables lowering `apply` is given, unless a test gives its own).
struct Site {
    ns: String,
    dir: TempDir,
    lowering: Option<&'static str>,
}

impl Site {
    fn new(ns: &str) -> Site {
        Site {
            ns: ns.to_string(),
            dir: TempDir::new("mshost").unwrap(),
            lowering: None,
        }
    }

    /// A site whose applies use `--lowering LOWERING`.
    fn with_lowering(ns: &str, lowering: &'static str) -> Site {
        Site {
            lowering: Some(lowering),
            ..Site::new(ns)
        }
    }

    fn state(&self) -> String {
        self.dir.path("state").display().to_string()
    }

    fn boot(&self) -> String {
        self.dir.path("boot/ms.nft").display().to_string()
    }

    /// `ip netns exec NS microseg ARGS --state-dir … --lock-timeout 10`
    /// (plus `env`), without SSH_CONNECTION unless given.
    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, env!("CARGO_BIN_EXE_microseg")])
            .args(args)
            .env_remove("SSH_CONNECTION")
            .env_remove("MICROSEG_STATE_DIR");
        if args.first().is_some_and(|a| *a != "__confirm-timer") {
            c.args(["--state-dir", &self.state()]);
        }
        if args
            .first()
            .is_some_and(|a| ["apply", "confirm", "rollback", "remove"].contains(a))
            && !args.contains(&"--lock-timeout")
        {
            c.args(["--lock-timeout", "10"]);
        }
        if let Some(l) = self.lowering {
            if args.first() == Some(&"apply")
                && !args
                    .iter()
                    .any(|a| *a == "--lowering" || *a == "--optimize")
            {
                c.args(["--lowering", l]);
            }
        }
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        self.command(args, env).output().expect("run microseg")
    }

    /// Runs and expects exit status `code`; returns stdout.
    fn expect(&self, code: i32, args: &[&str]) -> String {
        self.expect_env(code, args, &[])
    }

    fn expect_env(&self, code: i32, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.run(args, env);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(
            out.status.code(),
            Some(code),
            "microseg {args:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        format!("{stdout}{stderr}")
    }

    fn status_json(&self) -> Value {
        let out = self.run(&["status", "--json"], &[]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "status --json: {e}: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    fn nft(&self, args: &[&str]) -> Output {
        nft_in(&self.ns, args, None)
    }

    /// Writes `text` to `name` in the site's directory; returns its path.
    fn write(&self, name: &str, text: &str) -> String {
        self.dir.write(name, text).unwrap()
    }

    /// `nft -j list table FAMILY NAME` (None if absent).
    fn list(&self, family: &str, table: &str) -> Option<String> {
        list_table_in(&self.ns, family, table)
    }
}

/// A spawned `microseg` (`ip netns exec` execs it: the pid is its own),
/// killed and reaped if the test fails before waiting for it, so that it
/// does not write into a state directory the failing test removed.
struct Spawned(Option<std::process::Child>);

impl Spawned {
    fn new(child: std::process::Child) -> Spawned {
        Spawned(Some(child))
    }

    fn wait_with_output(mut self) -> std::io::Result<Output> {
        self.0
            .take()
            .expect("not waited for yet")
            .wait_with_output()
    }
}

impl std::ops::Deref for Spawned {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        self.0.as_ref().expect("not waited for yet")
    }
}

impl std::ops::DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        self.0.as_mut().expect("not waited for yet")
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A listing without handles and counter values (what `rollback` must reproduce).
/// A listing with counter values blanked, handles kept.
fn counters_blanked(listing: &str) -> Value {
    fn blank(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for (k, v) in m.iter_mut() {
                    match k.as_str() {
                        "counter" => *v = Value::Null,
                        _ => blank(v),
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(blank),
            _ => {}
        }
    }
    let mut v: Value = serde_json::from_str(listing).unwrap();
    blank(&mut v);
    v
}

fn normalised(listing: &str) -> Value {
    fn strip(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(k, _)| k.as_str() != "handle" && k.as_str() != "metainfo")
                    .map(|(k, v)| match k.as_str() {
                        "counter" => (k.clone(), Value::Null),
                        _ => (k.clone(), strip(v)),
                    })
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
            o => o.clone(),
        }
    }
    strip(&serde_json::from_str(listing).unwrap())
}

/// A three-role policy in table `ms`; `web` and `extra` vary between tests.
fn policy(web: &str, admin_ssh: bool) -> String {
    let ssh = if admin_ssh {
        "[[flows]]\nname = \"admin-ssh\"\nfrom = \"admin\"\nto = [\"app\", \"db\"]\nports = [\"tcp/22\"]\n"
    } else {
        ""
    };
    format!(
        r#"version = 1
table = "ms"
[groups]
admin = ["10.10.0.0/26"]
web = [{web}]
app = ["10.10.1.20-10.10.1.29"]
db = ["10.10.1.30-10.10.1.39"]
[roles.app]
[roles.db]
[[flows]]
name = "web-to-app"
from = "web"
to = "app"
ports = ["tcp/8080"]
[[flows]]
name = "app-to-db"
from = "app"
to = "db"
ports = ["tcp/5432"]
{ssh}"#
    )
}

const FOREIGN: &str = "table inet foreign {\n\tset s {\n\t\ttype ipv4_addr\n\t\telements = { 192.0.2.1 }\n\t}\n\
    \tchain c {\n\t\ttype filter hook input priority 10; policy accept;\n\t\tip saddr @s counter\n\t}\n}\n\
    table ip other {\n\tchain d {\n\t\ttype filter hook output priority 5; policy accept;\n\t\tcounter\n\t}\n}\n";

#[test]
fn foreign_tables_are_byte_identical_through_apply_update_rollback_remove() {
    let ns = netns();
    let s = Site::with_lowering(ns.name(), "plain");
    let f = s.write("foreign.nft", FOREIGN);
    assert!(s.nft(&["-f", &f]).status.success());
    let foreign = || {
        (
            s.list("inet", "foreign").unwrap(),
            s.list("ip", "other").unwrap(),
        )
    };
    let before = foreign();
    let v1 = s.write("v1.toml", &policy("\"10.10.1.10\"", true));
    let v2 = s.write("v2.toml", &policy("\"10.10.1.10\", \"10.10.1.11\"", true));
    let boot = s.boot();

    let out = s.expect(0, &["apply", &v1, "--role", "app", "--persist", &boot]);
    assert!(
        out.contains("applied: table inet ms for role app (replace)"),
        "{out}"
    );
    assert_eq!(foreign(), before, "after apply");
    // The boot file loads (checked in the namespace) and replaces only our table.
    assert!(s.nft(&["-c", "-f", &boot]).status.success());
    assert!(std::fs::read_to_string(&boot)
        .unwrap()
        .contains("delete table inet ms\n"));

    let out = s.expect(0, &["apply", &v2, "--role", "app", "--persist", &boot]);
    assert!(out.contains("element delta"), "{out}");
    // The set is of intervals: .10 and .11 become one prefix.
    assert!(
        out.contains("set web_v4: + 10.10.1.10/31 - 10.10.1.10"),
        "{out}"
    );
    assert!(s.list("inet", "ms").unwrap().contains("\"len\": 31"));
    assert!(
        Path::new(&format!("{boot}.bak")).exists(),
        "the previous boot file is kept"
    );
    assert_eq!(foreign(), before, "after the incremental update");

    let out = s.expect(0, &["rollback"]);
    assert!(out.contains("rolled back"), "{out}");
    assert_eq!(foreign(), before, "after rollback");
    assert!(!s.list("inet", "ms").unwrap().contains("\"len\": 31"));

    let out = s.expect(0, &["remove"]);
    assert!(out.contains("removed: table inet ms"), "{out}");
    assert_eq!(foreign(), before, "after remove");
    assert!(s.list("inet", "ms").is_none());
    assert!(
        !Path::new(&boot).exists(),
        "the boot file goes with the table"
    );
    let tables = String::from_utf8_lossy(&s.nft(&["list", "tables"]).stdout).into_owned();
    assert_eq!(tables, "table inet foreign\ntable ip other\n");
    let out = s.expect(0, &["status"]);
    assert!(out.contains("not installed"), "{out}");
}

#[test]
fn a_membership_change_on_a_live_host_is_an_element_delta() {
    membership_change_on_a_live_host("optimized", "map in4_single: + 10.10.1.12 : jump in4_");
}

#[test]
fn a_membership_change_on_a_live_host_is_an_element_delta_in_the_plain_lowering() {
    membership_change_on_a_live_host("plain", "set web_v4: + 10.10.1.12");
}

/// The change from one web server to two, with `lowering`: the plan shows
/// `delta`; rules (handles), counters and established connections stay.
fn membership_change_on_a_live_host(lowering: &'static str, delta: &str) {
    require_root();
    let mut lab = Lab::new(&[
        HostSpec::new("app", [ip("10.10.1.20")]),
        HostSpec::new("web1", [ip("10.10.1.10")]),
        HostSpec::new("web2", [ip("10.10.1.12")]),
    ])
    .expect("lab");
    lab.set_probe_timeout(Duration::from_millis(400));
    lab.listen("app", &[Service::Tcp(8080), Service::Tcp(9)])
        .unwrap();
    let s = Site::with_lowering(lab.netns_name("app").unwrap(), lowering);
    let v1 = s.write("v1.toml", &policy("\"10.10.1.10\"", true));
    // (.12, not .11: .10 and .11 would merge into 10.10.1.10/31.)
    let v2 = s.write("v2.toml", &policy("\"10.10.1.10\", \"10.10.1.12\"", true));
    s.expect(0, &["apply", &v1, "--role", "app", "--no-persist"]);
    let app = ip("10.10.1.20");
    // Traffic for several rules: accepted, defaulted.
    let got = lab
        .probe_all(&[
            ("web1", app, Probe::Tcp(8080)),
            ("web2", app, Probe::Tcp(8080)),
            ("web1", app, Probe::Tcp(9)),
        ])
        .unwrap();
    assert_eq!(got, [Outcome::Open, Outcome::Timeout, Outcome::Timeout]);
    // Opened after the first apply: the table's `ct state` rule tracks it.
    let mut held = lab.open_stream("web1", app, 8080).unwrap();
    held.ping().unwrap();
    let hits = |s: &Site| -> Vec<(String, u64)> {
        s.status_json()["status"]["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h["label"].as_str().unwrap().to_string(),
                    h["packets"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let before = hits(&s);
    let count =
        |h: &[(String, u64)], l: &str| h.iter().find(|(x, _)| x == l).map(|(_, n)| *n).unwrap();
    assert!(
        count(&before, "flow:web-to-app") > 0 && count(&before, "baseline:default") > 0,
        "{before:?}"
    );
    let listing = s.list("inet", "ms").unwrap();

    let dry = s.expect(
        0,
        &["apply", &v2, "--role", "app", "--dry-run", "--no-persist"],
    );
    assert!(dry.contains("element delta on table inet ms"), "{dry}");
    assert!(dry.contains(delta), "{dry}");
    assert!(dry.contains("dry run: nothing changed"), "{dry}");
    // Handles included; counter values aside (a probe's retransmitted SYN
    // may still be counted meanwhile).
    assert_eq!(
        counters_blanked(&s.list("inet", "ms").unwrap()),
        counters_blanked(&listing),
        "a dry run changes nothing"
    );

    let out = s.expect(0, &["apply", &v2, "--role", "app", "--no-persist"]);
    assert!(out.contains("(incremental (set members only))"), "{out}");
    held.ping()
        .expect("the established connection survives the update");
    let after = hits(&s);
    assert_eq!(before.len(), after.len());
    for ((l0, n0), (l1, n1)) in before.iter().zip(&after) {
        assert_eq!(l0, l1);
        assert!(n1 >= n0, "{l0}: counter reset from {n0} to {n1}");
    }
    // Same rules (handles): only the set (or map) changed.
    let rules = |l: &str| -> Vec<Value> {
        serde_json::from_str::<Value>(l).unwrap()["nftables"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|o| o.get("rule").map(|r| r["handle"].clone()))
            .collect()
    };
    assert_eq!(rules(&listing), rules(&s.list("inet", "ms").unwrap()));
    // The new member gets in.
    assert_eq!(
        lab.probe("web2", app, Probe::Tcp(8080)).unwrap(),
        Outcome::Open
    );
    held.ping().unwrap();
    assert_eq!(s.status_json()["drifted"], false);
}

#[test]
fn a_transaction_the_kernel_rejects_leaves_the_table_identical() {
    kernel_rejects("optimized", "in4_single");
}

#[test]
fn a_transaction_the_kernel_rejects_leaves_the_table_identical_in_the_plain_lowering() {
    kernel_rejects("plain", "web_v4");
}

/// A delta refused by the kernel because `set` (of the `lowering`) was
/// changed by hand in between changes nothing.
fn kernel_rejects(lowering: &'static str, set: &str) {
    let ns = netns();
    let s = Site::with_lowering(ns.name(), lowering);
    let v1 = s.write("v1.toml", &policy("\"10.10.1.10\", \"10.10.1.12\"", true));
    let v2 = s.write("v2.toml", &policy("\"10.10.1.11\"", true));
    s.expect(0, &["apply", &v1, "--role", "app", "--no-persist"]);
    let snapshot = std::fs::read_to_string(s.dir.path("state/snapshot.json")).unwrap();
    // The apply reads the table (--refresh: a full read, so a refused
    // transaction is final instead of retried from a full read), holds the
    // lock for a moment, then sends an element delta (delete .10 and .12,
    // add .11) as one nfnetlink batch guarded by the ruleset generation it
    // read the table at. Meanwhile someone deletes .10 by hand: the kernel
    // refuses the whole batch.
    let child = s
        .command(
            &[
                "apply",
                &v2,
                "--role",
                "app",
                "--no-persist",
                "--refresh",
                "--test-hold-lock-ms",
                "700",
            ],
            &[],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map(Spawned::new)
        .unwrap();
    wait_lock_holder(&s, child.id());
    std::thread::sleep(Duration::from_millis(150)); // it has read the table by now
    let del = s.nft(&["delete", "element", "inet", "ms", set, "{ 10.10.1.10 }"]);
    assert!(
        del.status.success(),
        "{}",
        String::from_utf8_lossy(&del.stderr)
    );
    let before = s.list("inet", "ms").unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("element delta on table inet ms not applied")
            && stderr.contains("the ruleset changed since it was read"),
        "stderr: {stderr}"
    );
    assert_eq!(
        s.list("inet", "ms").unwrap(),
        before,
        "byte-identical, handles included"
    );
    // The rollback point and the records are those of the last good apply.
    assert_eq!(
        std::fs::read_to_string(s.dir.path("state/snapshot.json")).unwrap(),
        snapshot
    );
    let st = s.status_json();
    assert_eq!(st["drifted"], true, "the manual delete is drift: {st}");
    assert!(st["status"]["pending"].is_null());
}

/// Waits (at most 10 s) until process `pid` holds the state directory's lock
/// (the holder writes its pid into the lock file; `ip netns exec` execs
/// microseg in its own process).
fn wait_lock_holder(s: &Site, pid: u32) {
    let lock = s.dir.path("state/lock");
    assert!(
        wait_for(Duration::from_secs(10), || std::fs::read_to_string(&lock)
            .is_ok_and(|t| t.trim() == pid.to_string())),
        "process {pid} never took the lock"
    );
}

/// Whether a process exists and is not a zombie.
fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit(')')
                .next()
                .map(|rest| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// Polls `f` every 50 ms until true, at most `within`.
fn wait_for(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

#[test]
fn an_unconfirmed_change_rolls_back_after_the_shell_is_gone() {
    require_root();
    let mut lab = Lab::new(&[
        HostSpec::new("db", [ip("10.10.1.30")]),
        HostSpec::new("admin", [ip("10.10.0.5")]),
    ])
    .expect("lab");
    lab.set_probe_timeout(Duration::from_millis(400));
    lab.listen("db", &[Service::Tcp(22)]).unwrap();
    let s = Site::new(lab.netns_name("db").unwrap());
    let v1 = s.write("v1.toml", &policy("\"10.10.1.10\"", true));
    let v2 = s.write("v2.toml", &policy("\"10.10.1.10\"", false)); // no admin SSH
    let db = ip("10.10.1.30");
    s.expect(0, &["apply", &v1, "--role", "db", "--no-persist"]);
    let good = normalised(&s.list("inet", "ms").unwrap());
    assert_eq!(
        lab.probe("admin", db, Probe::Tcp(22)).unwrap(),
        Outcome::Open
    );

    // The apply runs in a shell of its own process group, which is killed
    // (SIGKILL, whole group) as soon as the apply has returned.
    let apply = s.command(
        &[
            "apply",
            &v2,
            "--role",
            "db",
            "--no-persist",
            "--confirm-timeout",
            "2",
        ],
        &[],
    );
    let line = apply
        .get_args()
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut shell = Command::new("sh")
        .args(["-c", &format!("ip {line}; echo APPLY-EXIT=$?; sleep 30")])
        .env_remove("SSH_CONNECTION")
        .env_remove("MICROSEG_STATE_DIR")
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut reader = BufReader::new(shell.stdout.take().unwrap());
    let mut output = String::new();
    loop {
        let mut l = String::new();
        assert!(
            reader.read_line(&mut l).unwrap() > 0,
            "the shell ended early: {output}"
        );
        output.push_str(&l);
        if l.starts_with("APPLY-EXIT=") {
            break;
        }
    }
    let pgid = nix::unistd::Pid::from_raw(shell.id() as i32);
    nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL).unwrap();
    shell.wait().unwrap();
    drop(reader);
    assert!(output.contains("APPLY-EXIT=0"), "{output}");
    assert!(output.contains("run `microseg confirm` within"), "{output}");

    // The new ruleset is active: the admin is locked out.
    assert_eq!(
        lab.probe("admin", db, Probe::Tcp(22)).unwrap(),
        Outcome::Timeout
    );
    let st = s.status_json();
    let timer = st["status"]["pending"]["timer_pid"]
        .as_u64()
        .expect("a timer");
    assert!(alive(timer), "the timer died with the shell: {st}");
    // …in its own session, not the killed group.
    let sid = nix::unistd::getsid(Some(nix::unistd::Pid::from_raw(timer as i32))).unwrap();
    assert_eq!(sid.as_raw() as u64, timer);

    // Not confirmed: about 2 s after the apply the previous ruleset is back.
    assert!(
        wait_for(Duration::from_secs(6), || s.status_json()["status"]
            ["pending"]
            .is_null()),
        "still pending after 6 s; timer log: {}",
        std::fs::read_to_string(s.dir.path("state/timer.log")).unwrap_or_default()
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1900),
        "restored too early ({waited:?})"
    );
    assert_eq!(normalised(&s.list("inet", "ms").unwrap()), good);
    let st = s.status_json();
    assert_eq!(st["status"]["last_event"], "timer-rollback", "{st}");
    assert_eq!(st["drifted"], false, "{st}");
    assert_eq!(
        lab.probe("admin", db, Probe::Tcp(22)).unwrap(),
        Outcome::Open,
        "admin access is back"
    );
    assert!(
        wait_for(Duration::from_secs(2), || !alive(timer)),
        "the timer exits"
    );
    let out = s.expect(1, &["confirm"]);
    assert!(out.contains("already restored the previous state"), "{out}");
    let log = std::fs::read_to_string(s.dir.path("state/timer.log")).unwrap();
    assert!(
        log.contains("not confirmed: the previous state was restored"),
        "{log}"
    );
}

#[test]
fn a_change_confirmed_in_time_stays_and_is_persisted() {
    let ns = netns();
    let s = Site::new(ns.name());
    let v1 = s.write("v1.toml", &policy("\"10.10.1.10\"", true));
    let v2 = s.write("v2.toml", &policy("\"10.10.1.10\"", false));
    let boot = s.boot();
    s.expect(0, &["apply", &v1, "--role", "db", "--persist", &boot]);
    let boot_v1 = std::fs::read_to_string(&boot).unwrap();
    let out = s.expect(
        0,
        &[
            "apply",
            &v2,
            "--role",
            "db",
            "--persist",
            &boot,
            "--confirm-timeout",
            "2",
        ],
    );
    assert!(
        out.contains(&format!("persisted for boot once confirmed: {boot}")),
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(&boot).unwrap(),
        boot_v1,
        "not persisted before confirm"
    );
    let new = normalised(&s.list("inet", "ms").unwrap());
    let timer = s.status_json()["status"]["pending"]["timer_pid"]
        .as_u64()
        .unwrap();
    // Another apply must not pile up on a pending change.
    let out = s.expect(1, &["apply", &v1, "--role", "db", "--no-persist"]);
    assert!(out.contains("waiting for confirmation"), "{out}");
    let out = s.expect(0, &["confirm"]);
    assert!(
        out.contains("confirmed: the change to table inet ms is kept"),
        "{out}"
    );
    assert!(std::fs::read_to_string(&boot)
        .unwrap()
        .contains("# microseg ruleset for role db"));
    assert_ne!(
        std::fs::read_to_string(&boot).unwrap(),
        boot_v1,
        "persisted on confirm"
    );
    assert!(
        wait_for(Duration::from_secs(2), || !alive(timer)),
        "the timer exits once confirmed"
    );
    std::thread::sleep(Duration::from_millis(2300)); // past the deadline
    assert_eq!(
        normalised(&s.list("inet", "ms").unwrap()),
        new,
        "still the new ruleset"
    );
    let st = s.status_json();
    assert_eq!(st["status"]["last_event"], "confirm", "{st}");
    assert_eq!(st["drifted"], false);
    let out = s.expect(1, &["confirm"]);
    assert!(out.contains("nothing to confirm"), "{out}");
}

#[test]
fn concurrent_applies_are_serialised_by_the_lock() {
    let ns = netns();
    let s = Site::new(ns.name());
    let a = s.write("a.toml", &policy("\"10.10.1.10\"", true));
    let b = s.write("b.toml", &policy("\"10.10.1.11\"", false));
    let start = Instant::now();
    // A takes the lock and holds it for 1.2 s between reading and applying.
    let first = s
        .command(
            &[
                "apply",
                &a,
                "--role",
                "app",
                "--no-persist",
                "--test-hold-lock-ms",
                "1200",
            ],
            &[],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map(Spawned::new)
        .unwrap();
    wait_lock_holder(&s, first.id());
    // C gives up quickly and says why; B waits its turn.
    let mut c = s.command(
        &[
            "apply",
            &b,
            "--role",
            "app",
            "--no-persist",
            "--lock-timeout",
            "0.2",
        ],
        &[],
    );
    let second = s
        .command(&["apply", &b, "--role", "app", "--no-persist"], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map(Spawned::new)
        .unwrap();
    let c = c.output().unwrap();
    let c_err = String::from_utf8_lossy(&c.stderr);
    assert_eq!(c.status.code(), Some(1), "{c_err}");
    assert!(
        c_err.contains("another microseg operation holds") && c_err.contains("(pid "),
        "{c_err}"
    );
    // When each one ends (their output is small: the pipes do not fill up).
    let (mut first, mut second) = (first, second);
    let (mut a_done, mut b_done) = (None, None);
    while a_done.is_none() || b_done.is_none() {
        if a_done.is_none() && first.try_wait().unwrap().is_some() {
            a_done = Some(start.elapsed());
        }
        if b_done.is_none() && second.try_wait().unwrap().is_some() {
            b_done = Some(start.elapsed());
        }
        assert!(start.elapsed() < Duration::from_secs(20), "applies hang");
        std::thread::sleep(Duration::from_millis(5));
    }
    let (a_done, b_done) = (a_done.unwrap(), b_done.unwrap());
    let first = first.wait_with_output().unwrap();
    let second = second.wait_with_output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    // A held the lock 1.2 s; B, started meanwhile, only finished after A.
    assert!(a_done >= Duration::from_millis(1200), "{a_done:?}");
    assert!(
        b_done >= a_done,
        "B ended at {b_done:?}, before A ({a_done:?})"
    );
    // B planned against A's result (a replacement: A's flows differ from B's).
    let b_out = String::from_utf8_lossy(&second.stdout);
    assert!(
        b_out.contains("replace table inet ms") && !b_out.contains("is not installed"),
        "{b_out}"
    );
    // The final table is B's, whole.
    let listing = s.list("inet", "ms").unwrap();
    assert!(
        listing.contains("10.10.1.11") && !listing.contains("10.10.1.10\""),
        "{listing}"
    );
    assert!(!listing.contains("admin-ssh"), "{listing}");
    assert_eq!(s.status_json()["drifted"], false);
    // B's snapshot is A's table: B read it after A had applied.
    s.expect(0, &["rollback"]);
    let listing = s.list("inet", "ms").unwrap();
    assert!(
        listing.contains("admin-ssh") && listing.contains("10.10.1.10"),
        "{listing}"
    );
}

#[test]
fn anti_lockout_refuses_unless_forced() {
    require_root();
    let mut lab = Lab::new(&[
        HostSpec::new("db", [ip("10.10.1.30")]),
        HostSpec::new("admin", [ip("10.10.0.5")]),
        HostSpec::new("outsider", [ip("203.0.113.9")]),
    ])
    .expect("lab");
    lab.set_probe_timeout(Duration::from_millis(400));
    lab.listen("db", &[Service::Tcp(22)]).unwrap();
    let s = Site::new(lab.netns_name("db").unwrap());
    let p = s.write("p.toml", &policy("\"10.10.1.10\"", true));
    let db = ip("10.10.1.30");
    let outsider = [("SSH_CONNECTION", "203.0.113.9 50022 10.10.1.30 22")];
    let out = s.expect_env(1, &["apply", &p, "--role", "db", "--no-persist"], &outsider);
    assert!(
        out.contains("refusing to apply: the SSH client 203.0.113.9 would lose access"),
        "{out}"
    );
    assert!(
        out.contains("dropped by the default verdict") && out.contains("--force"),
        "{out}"
    );
    assert!(s.list("inet", "ms").is_none(), "nothing applied");
    let out = s.expect_env(
        0,
        &["apply", &p, "--role", "db", "--no-persist", "--dry-run"],
        &outsider,
    );
    assert!(out.contains("an apply would be refused"), "{out}");
    // An unreadable SSH_CONNECTION cannot be checked: refused too.
    let out = s.expect_env(
        1,
        &["apply", &p, "--role", "db", "--no-persist"],
        &[("SSH_CONNECTION", "junk")],
    );
    assert!(out.contains("cannot be checked"), "{out}");
    // The admin's session is safe: applied. The guard's verdict is the kernel's.
    let admin = [("SSH_CONNECTION", "10.10.0.5 50022 10.10.1.30 22")];
    let out = s.expect_env(0, &["apply", &p, "--role", "db", "--no-persist"], &admin);
    assert!(
        out.contains("keeps access") && out.contains("flow:admin-ssh"),
        "{out}"
    );
    assert_eq!(
        lab.probe("admin", db, Probe::Tcp(22)).unwrap(),
        Outcome::Open
    );
    assert_eq!(
        lab.probe("outsider", db, Probe::Tcp(22)).unwrap(),
        Outcome::Timeout
    );
    // Forced: applied, with a warning.
    s.expect(0, &["remove", "--no-persist"]);
    let out = s.expect_env(
        0,
        &["apply", &p, "--role", "db", "--no-persist", "--force"],
        &outsider,
    );
    assert!(
        out.contains("warning: the SSH client 203.0.113.9 would lose access")
            && out.contains("(forced)"),
        "{out}"
    );
    assert!(s.list("inet", "ms").is_some());
}

#[test]
fn rollback_restores_remove_removes_only_ours_and_status_finds_drift() {
    let ns = netns();
    let s = Site::with_lowering(ns.name(), "plain");
    let f = s.write("foreign.nft", FOREIGN);
    assert!(s.nft(&["-f", &f]).status.success());
    let foreign = s.list("inet", "foreign").unwrap();
    let v1 = s.write("v1.toml", &policy("\"10.10.1.10\"", true));
    let v2 = s.write("v2.toml", &policy("\"10.10.1.10\"", false));
    let out = s.expect(1, &["rollback"]);
    assert!(out.contains("nothing to roll back"), "{out}");
    s.expect(0, &["apply", &v1, "--role", "db", "--no-persist"]);
    let one = normalised(&s.list("inet", "ms").unwrap());
    let out = s.expect(0, &["apply", &v2, "--role", "db", "--no-persist"]);
    assert!(
        out.contains("replace table inet ms") && out.contains("flow:admin-ssh"),
        "{out}"
    );
    assert_ne!(normalised(&s.list("inet", "ms").unwrap()), one);
    s.expect(0, &["rollback"]);
    assert_eq!(
        normalised(&s.list("inet", "ms").unwrap()),
        one,
        "rollback restores v1"
    );
    let out = s.expect(0, &["status"]);
    assert!(
        out.contains("drift: none") && out.contains("flow:admin-ssh"),
        "{out}"
    );

    // A rule added by hand into our table is drift: exit 1, named.
    assert!(s
        .nft(&["add", "rule", "inet", "ms", "input", "tcp", "dport", "9999", "accept"])
        .status
        .success());
    let out = s.expect(1, &["status"]);
    assert!(
        out.contains("DRIFT")
            && out.contains("chain input: unexpected rule")
            && out.contains("tcp dport 9999 accept"),
        "{out}"
    );
    let st = s.status_json();
    assert_eq!(st["drifted"], true);
    assert_eq!(st["status"]["drift"][0]["object"], "chain input");
    // A deleted set element too.
    assert!(s
        .nft(&[
            "delete",
            "element",
            "inet",
            "ms",
            "admin_v4",
            "{ 10.10.0.0/26 }"
        ])
        .status
        .success());
    let out = s.expect(1, &["status"]);
    assert!(
        out.contains("set admin_v4: missing elements 10.10.0.0/26"),
        "{out}"
    );
    // Re-applying repairs it (a replacement: rules differ).
    s.expect(0, &["apply", &v1, "--role", "db", "--no-persist"]);
    s.expect(0, &["status"]);

    // remove: our table only.
    s.expect(0, &["remove", "--no-persist"]);
    assert!(s.list("inet", "ms").is_none());
    assert_eq!(s.list("inet", "foreign").unwrap(), foreign);
    let out = s.expect(0, &["remove", "--no-persist"]);
    assert!(out.contains("nothing to remove"), "{out}");
    // …and rollback puts it back.
    s.expect(0, &["rollback"]);
    assert_eq!(normalised(&s.list("inet", "ms").unwrap()), one);
}

#[test]
fn apply_plans_against_its_record_and_refresh_reads_everything() {
    let ns = netns();
    let s = Site::with_lowering(ns.name(), "plain");
    let two = s.write("two.toml", &policy("\"10.10.1.10\", \"10.10.1.12\"", true));
    let one = s.write("one.toml", &policy("\"10.10.1.10\"", true));
    s.expect(0, &["apply", &two, "--role", "app", "--no-persist"]);
    // Nothing committed since, by anyone (the ruleset generation is still
    // the recorded one): apply plans against the record without looking,
    // and the delta goes as one nfnetlink batch.
    let apply = |file: &str| s.expect(0, &["apply", file, "--role", "app", "--no-persist"]);
    let out = apply(&one);
    assert!(
        out.contains("element delta")
            && out.contains("- 10.10.1.12")
            && out.contains("nothing was committed to the ruleset since"),
        "{out}"
    );
    s.expect(0, &["status"]);
    let out = apply(&two);
    assert!(
        out.contains("+ 10.10.1.12") && out.contains("nothing was committed"),
        "{out}"
    );
    s.expect(0, &["status"]);
    // Another table changed: the generation moved, so the structure is
    // checked instead; the apply records the generation again.
    assert!(s.nft(&["add", "table", "ip", "other"]).status.success());
    let out = apply(&two);
    assert!(
        out.contains("unchanged") && out.contains("set members were not"),
        "{out}"
    );
    assert!(apply(&two).contains("nothing was committed"));
    let hand_delete = || {
        let out = s.nft(&[
            "delete",
            "element",
            "inet",
            "ms",
            "web_v4",
            "{ 10.10.1.12 }",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // A member deleted by hand: the rules, chains and set definitions still
    // match the record, so apply plans against the record (and says so)…
    hand_delete();
    let out = s.expect(0, &["apply", &two, "--role", "app", "--no-persist"]);
    assert!(
        out.contains("unchanged") && out.contains("planned against the record"),
        "{out}"
    );
    // …status compares everything…
    let out = s.expect(1, &["status"]);
    assert!(
        out.contains("set web_v4: missing elements 10.10.1.12"),
        "{out}"
    );
    // …and --refresh reads everything: the member comes back as a delta.
    let out = s.expect(
        0,
        &["apply", &two, "--role", "app", "--no-persist", "--refresh"],
    );
    assert!(
        out.contains("element delta") && out.contains("+ 10.10.1.12"),
        "{out}"
    );
    assert!(!out.contains("planned against the record"), "{out}");
    s.expect(0, &["status"]);
    // A record that is wrong about a member the next delta deletes: the
    // transaction fails as a whole, apply reads everything and plans again.
    hand_delete();
    let out = s.expect(0, &["apply", &one, "--role", "app", "--no-persist"]);
    assert!(out.contains("unchanged"), "{out}");
    s.expect(0, &["status"]);
    // A rule added by hand is seen by the cheap check: a replacement.
    assert!(s
        .nft(&["add", "rule", "inet", "ms", "input", "tcp", "dport", "9999", "accept"])
        .status
        .success());
    let out = s.expect(0, &["apply", &one, "--role", "app", "--no-persist"]);
    assert!(
        out.contains("replace table inet ms") && out.contains("tcp dport 9999 accept"),
        "{out}"
    );
    s.expect(0, &["status"]);
}

/// A policy change of set members only, with nothing committed since the
/// last apply: the delta is planned from the policy's members and those the
/// last apply recorded (no rendering, no state read), and the records it
/// leaves are exact: status compares clean, rollback restores the state
/// before it, and only files the records refer to are kept.
#[test]
fn a_member_change_is_planned_from_the_policy_and_its_records_are_exact() {
    member_change_from_the_policy(
        "optimized",
        &[
            "map in4_single: - 10.10.1.12 : jump in4_",
            "map in4_range: + 10.10.1.13-10.10.1.15 : jump in4_",
        ],
        &[
            "map in4_single: - 10.10.1.10 : jump in4_",
            "+ 10.10.1.10/31 : jump in4_",
            "+ 10.10.1.64/30 : jump in4_",
            "- 10.10.1.13-10.10.1.15 : jump in4_",
        ],
    );
}

#[test]
fn a_member_change_is_planned_from_the_policy_and_its_records_are_exact_in_the_plain_lowering() {
    member_change_from_the_policy(
        "plain",
        &["set web_v4: + 10.10.1.13-10.10.1.15 - 10.10.1.12"],
        &[
            "+ 10.10.1.10/31",
            "+ 10.10.1.64/30",
            "- 10.10.1.10 - 10.10.1.13-10.10.1.15",
        ],
    );
}

/// The member path with `lowering`: the deltas from v1 to v2 and from v2
/// to v3 show `to_v2` and `to_v3`.
fn member_change_from_the_policy(lowering: &'static str, to_v2: &[&str], to_v3: &[&str]) {
    let ns = netns();
    let s = Site::with_lowering(ns.name(), lowering);
    let shows = |out: &str, parts: &[&str]| parts.iter().all(|p| out.contains(p));
    let v1 = s.write("v1.toml", &policy("\"10.10.1.10\", \"10.10.1.12\"", true));
    let v2 = s.write(
        "v2.toml",
        &policy("\"10.10.1.10\", \"10.10.1.13-10.10.1.15\"", true),
    );
    let v3 = s.write(
        "v3.toml",
        &policy("\"10.10.1.10-10.10.1.11\", \"10.10.1.64/30\"", true),
    );
    let apply = |file: &str| s.expect(0, &["apply", file, "--role", "app", "--no-persist"]);
    let from_members = "planned from the policy's set members";
    let out = apply(&v1);
    assert!(
        out.contains("replace") && !out.contains(from_members),
        "{out}"
    );
    let v1_listing = normalised(&s.list("inet", "ms").unwrap());
    // The dry run plans from the same basis as the apply, and changes nothing.
    let dry = s.expect(
        0,
        &["apply", &v2, "--role", "app", "--no-persist", "--dry-run"],
    );
    assert!(shows(&dry, to_v2) && dry.contains(from_members), "{dry}");
    assert_eq!(normalised(&s.list("inet", "ms").unwrap()), v1_listing);
    // An apply that writes a boot file takes the full path (the boot file
    // holds the whole ruleset), and its dry run says the same.
    let dry = s.expect(0, &["apply", &v2, "--role", "app", "--dry-run"]);
    assert!(
        dry.contains("element delta") && !dry.contains(from_members),
        "{dry}"
    );
    let out = apply(&v2);
    assert!(
        out.contains("element delta") && shows(&out, to_v2) && out.contains(from_members),
        "{out}"
    );
    s.expect(0, &["status"]);
    let v2_listing = normalised(&s.list("inet", "ms").unwrap());
    // A widened interval is deleted and added again.
    let out = apply(&v3);
    assert!(shows(&out, to_v3) && out.contains(from_members), "{out}");
    s.expect(0, &["status"]);
    let out = apply(&v3);
    assert!(
        out.contains("unchanged") && out.contains(from_members),
        "{out}"
    );
    s.expect(0, &["status"]);
    // The rollback point of a delta is the state before it.
    s.expect(0, &["rollback"]);
    assert_eq!(normalised(&s.list("inet", "ms").unwrap()), v2_listing);
    s.expect(0, &["status"]);
    // After the rollback the generation is not one an apply recorded:
    // the record is checked against what is installed first.
    let out = apply(&v1);
    assert!(
        out.contains("element delta") && !out.contains(from_members),
        "{out}"
    );
    assert_eq!(normalised(&s.list("inet", "ms").unwrap()), v1_listing);
    s.expect(0, &["status"]);
    // Something committed in between, anywhere: not planned from members.
    assert!(s.nft(&["add", "table", "ip", "other"]).status.success());
    let out = apply(&v2);
    assert!(
        out.contains("element delta") && !out.contains(from_members),
        "{out}"
    );
    s.expect(0, &["status"]);
    // A change of rules: a replacement, whatever the members.
    let no_ssh = s.write("no-ssh.toml", &policy("\"10.10.1.10\"", false));
    let out = apply(&no_ssh);
    assert!(
        out.contains("replace") && !out.contains(from_members),
        "{out}"
    );
    s.expect(0, &["status"]);
    let out = apply(&v3);
    assert!(out.contains("replace"), "{out}");
    let out = apply(&v1);
    assert!(out.contains(from_members), "{out}");
    s.expect(0, &["status"]);
    // A member change records its members as the change from the last
    // apply's (a delta file on its members file), up to 16 in a row; then
    // a full file again.
    let files = |dir: &str| {
        std::fs::read_dir(s.dir.path("state").join(dir))
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect::<Vec<_>>()
    };
    let deltas = || {
        files("members")
            .iter()
            .filter(|f| f.starts_with(b"microseg-members-delta/1"))
            .count()
    };
    assert_eq!(deltas(), 1);
    for i in 0..20 {
        let out = apply(if i % 2 == 0 { &v2 } else { &v1 });
        assert!(out.contains(from_members), "{out}");
    }
    s.expect(0, &["status"]);
    assert!((4..=16).contains(&deltas()), "{} delta files", deltas());
    // Only what the records refer to is kept: the state of the last full
    // apply (also the rollback point's), the members files of the
    // generation record and the rollback point, and those they build on.
    assert!(
        files("states").len() <= 2,
        "{} state files",
        files("states").len()
    );
    assert!(
        files("members").len() <= 17,
        "{} members files",
        files("members").len()
    );
    // The records decode after all this: rollback to before the last delta.
    s.expect(0, &["rollback"]);
    s.expect(0, &["status"]);
}

/// Records written by a microseg whose records held states inline
/// (version 1) are still read: status, rollback and apply work on them,
/// and the next records are written in the current form.
#[test]
fn records_of_version_1_are_read_and_replaced() {
    let ns = netns();
    let s = Site::new(ns.name());
    let one = s.write("one.toml", &policy("\"10.10.1.10\"", true));
    let two = s.write("two.toml", &policy("\"10.10.1.10\", \"10.10.1.12\"", false));
    s.expect(0, &["apply", &one, "--role", "app", "--no-persist"]);
    let installed_one = normalised(&s.list("inet", "ms").unwrap());
    s.expect(0, &["apply", &two, "--role", "app", "--no-persist"]);
    let state = s.dir.path("state");
    // Back to version 1: each state in the record that refers to it.
    let inline = |record: &str, field: &str| {
        let path = state.join(record);
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let file = v[field]["file"].as_str().unwrap().to_string();
        assert!(v[field].get("members").is_none(), "{v}");
        let text = std::fs::read_to_string(state.join("states").join(file)).unwrap();
        v[field] = serde_json::from_str(&text).unwrap();
        v["version"] = 1.into();
        std::fs::write(&path, v.to_string()).unwrap();
    };
    inline("applied.json", "expected");
    inline("snapshot.json", "state");
    std::fs::remove_file(state.join("generation.json")).unwrap();
    std::fs::remove_dir_all(state.join("states")).unwrap();
    s.expect(0, &["status"]);
    s.expect(0, &["rollback"]);
    assert_eq!(normalised(&s.list("inet", "ms").unwrap()), installed_one);
    s.expect(0, &["status"]);
    let out = s.expect(0, &["apply", &two, "--role", "app", "--no-persist"]);
    assert!(out.contains("replace"), "{out}");
    s.expect(0, &["status"]);
    let applied: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("applied.json")).unwrap())
            .unwrap();
    assert_eq!(applied["version"], 2);
    assert!(applied["expected"]["file"].is_string(), "{applied}");
    s.expect(0, &["rollback"]);
    assert_eq!(normalised(&s.list("inet", "ms").unwrap()), installed_one);
}

#[test]
fn role_auto_picks_the_managed_address() {
    let ns = netns();
    let s = Site::new(ns.name());
    let p = s.write("p.toml", &policy("\"10.10.1.10\"", true));
    let ipn = |args: &[&str]| {
        assert!(Command::new("ip")
            .args(["-n", ns.name()])
            .args(args)
            .status()
            .unwrap()
            .success())
    };
    ipn(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"]);
    ipn(&["addr", "add", "192.0.2.7/24", "dev", "d0"]);
    let out = s.expect(
        1,
        &["apply", &p, "--role", "auto", "--dry-run", "--no-persist"],
    );
    assert!(
        out.contains("--role auto: no address of this host is managed")
            && out.contains("192.0.2.7 (d0)"),
        "{out}"
    );
    ipn(&["addr", "add", "10.10.1.33/32", "dev", "d0"]);
    let out = s.expect(
        0,
        &["apply", &p, "--role", "auto", "--dry-run", "--no-persist"],
    );
    assert!(out.contains("for host 10.10.1.33"), "{out}");
    ipn(&["addr", "add", "10.10.1.21/32", "dev", "d0"]);
    let out = s.expect(1, &["apply", &p, "--role", "auto", "--no-persist"]);
    assert!(
        out.contains("2 addresses of this host are managed") && out.contains("--host"),
        "{out}"
    );
    let out = s.expect(0, &["apply", &p, "--host", "10.10.1.21", "--no-persist"]);
    assert!(out.contains("for host 10.10.1.21"), "{out}");
}

#[test]
fn usage_errors_exit_2_and_broken_state_is_a_clear_error() {
    let bin = env!("CARGO_BIN_EXE_microseg");
    let dir = TempDir::new("mshost").unwrap();
    let p = dir
        .write("p.toml", &policy("\"10.10.1.10\"", true))
        .unwrap();
    for args in [
        vec!["apply", p.as_str()],
        vec![
            "apply",
            p.as_str(),
            "--role",
            "app",
            "--confirm-timeout",
            "soon",
        ],
        vec![
            "apply",
            p.as_str(),
            "--role",
            "app",
            "--persist",
            "/tmp/x",
            "--no-persist",
        ],
        vec!["apply", p.as_str(), "--role", "app", "--host", "10.0.0.1"],
        vec!["status", "--bogus"],
    ] {
        let out = Command::new(bin).args(&args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new(bin)
        .args([
            "apply",
            &p,
            "--role",
            "app",
            "--confirm-timeout",
            "0",
            "--dry-run",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // A corrupt record: exit 1 and the file named, no panic.
    let state = dir.path("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("applied.json"), "{ not json").unwrap();
    let out = Command::new(bin)
        .args(["confirm", "--state-dir"])
        .arg(&state)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("applied.json") && err.contains("cannot be used"),
        "{err}"
    );
    for cmd in ["apply", "confirm", "rollback", "status", "remove"] {
        let out = Command::new(bin).args([cmd, "--help"]).output().unwrap();
        assert!(out.status.success(), "{cmd} --help");
    }
}

/// `apply` installs the optimised lowering by default (`--optimize` says
/// the same; `--lowering plain` the other); membership changes are element
/// deltas of its maps; switching lowerings replaces the table, and
/// rollback switches back.
#[test]
fn apply_installs_the_optimised_lowering_by_default() {
    let ns = netns();
    let s = Site::new(ns.name());
    let v1 = s.write("v1.toml", &policy("\"10.10.1.10\"", true));
    let v2 = s.write("v2.toml", &policy("\"10.10.1.10\", \"10.10.1.12\"", true));
    let vmaps = || s.list("inet", "ms").unwrap().contains("\"vmap\"");
    let apply = |file: &str, extra: &[&str]| {
        let mut args = vec!["apply", file, "--role", "app", "--no-persist"];
        args.extend_from_slice(extra);
        s.expect(0, &args)
    };
    let out = apply(&v1, &[]);
    assert!(out.contains("replace table inet ms"), "{out}");
    assert!(vmaps());
    // Drift is measured against it, and hits are counted per flow (in the
    // flows' own chains).
    let status = s.expect(0, &["status"]);
    assert!(
        status.contains("flow:web-to-app") && status.contains("flow:admin-ssh"),
        "{status}"
    );
    assert!(apply(&v1, &["--optimize"]).contains("unchanged"));
    // A membership change: an element of its address map.
    let out = apply(&v2, &["--dry-run"]);
    assert!(
        out.contains("element delta") && out.contains("map in4_single: + 10.10.1.12 : jump in4_"),
        "{out}"
    );
    let out = apply(&v2, &[]);
    assert!(out.contains("incremental (set members only)"), "{out}");
    s.expect(0, &["status"]);
    // To the plain lowering, and rollback to the optimised one.
    assert!(apply(&v2, &["--lowering", "plain"]).contains("replace table inet ms"));
    assert!(!vmaps());
    s.expect(0, &["status"]);
    s.expect(0, &["rollback"]);
    assert!(vmaps());
    s.expect(0, &["status"]);
    let err = s.expect(
        2,
        &[
            "apply",
            &v1,
            "--role",
            "app",
            "--optimize",
            "--lowering",
            "plain",
        ],
    );
    assert!(err.contains("cannot be used with"), "{err}");
    let err = s.expect(
        2,
        &[
            "apply",
            &v1,
            "--role",
            "app",
            "--backend",
            "firewalld",
            "--optimize",
        ],
    );
    assert!(
        err.contains("--lowering and --optimize are choices of the nftables backend"),
        "{err}"
    );
}
