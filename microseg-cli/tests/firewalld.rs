//! `microseg … --backend firewalld` and `microseg compile --format firewalld`.
//!
//! The kernel tests start their own firewalld on a private D-Bus inside a
//! throw-away network namespace (`backend_firewalld::sandbox`) and run the
//! `microseg` binary there (`ip netns exec NS microseg … --backend
//! firewalld`) with `DBUS_SYSTEM_BUS_ADDRESS` pointing at the private bus and
//! `MICROSEG_STATE_DIR` in a temporary directory: the machine's own firewall,
//! bus, state and /etc are never touched. Daemons, namespaces and
//! directories are removed on drop, also when a test fails.
//!
//! Needs root, `ip` (iproute2), firewalld, dbus-daemon and setpriv
//! (util-linux). Run: `cargo test -p microseg-cli --test firewalld`.

use backend_firewalld::sandbox::{self, PrivateFirewalld};
use microseg_lab::TempDir;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn example(file: &str) -> String {
    format!("{}/../examples/{file}", env!("CARGO_MANIFEST_DIR"))
}

fn require_root_and_firewalld() {
    microseg_lab::require_root(
        "microseg-cli/tests/firewalld.rs (it starts private firewalld daemons in network namespaces)",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        Path::new("/usr/sbin/firewalld").exists(),
        "microseg-cli/tests/firewalld.rs needs firewalld (apt-get install firewalld dbus; keep \
         firewalld.service masked: the tests start private daemons)"
    );
    sandbox::cleanup_stale();
}

/// A private firewalld and a state directory; `microseg` runs in its namespace, on its bus.
struct Site {
    fw: PrivateFirewalld,
    dir: TempDir,
}

impl Site {
    fn new() -> Site {
        require_root_and_firewalld();
        let fw = PrivateFirewalld::start().expect("a private firewalld starts");
        Site {
            fw,
            dir: TempDir::new("msfwcli").unwrap(),
        }
    }

    /// `ip netns exec NS microseg ARGS` with the private bus and state dir (plus `env`).
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = Command::new("ip");
        c.args([
            "netns",
            "exec",
            self.fw.netns(),
            env!("CARGO_BIN_EXE_microseg"),
        ])
        .args(args)
        .env_remove("SSH_CONNECTION")
        .env("DBUS_SYSTEM_BUS_ADDRESS", self.fw.bus_address())
        .env("MICROSEG_STATE_DIR", self.dir.path("state"));
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("run microseg")
    }

    /// Runs and expects exit status `code`; returns stdout and stderr.
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
            "microseg {args:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- firewalld log\n{}",
            self.fw.log()
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

    /// firewall-cmd on the private bus (to look from outside microseg).
    fn firewall_cmd(&self, args: &[&str]) -> String {
        let out = Command::new("firewall-cmd")
            .args(args)
            .env("DBUS_SYSTEM_BUS_ADDRESS", self.fw.bus_address())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The entries of ipset `name`, runtime and permanent.
    fn entries(&self, name: &str) -> (String, String) {
        let ipset = format!("--ipset={name}");
        (
            self.firewall_cmd(&[&ipset, "--get-entries"]),
            self.firewall_cmd(&["--permanent", &ipset, "--get-entries"]),
        )
    }

    /// firewalld's permanent configuration: every file under --system-config
    /// except the `*.old` backups firewalld itself keeps.
    fn config_files(&self) -> BTreeMap<String, String> {
        let dir = self.fw.config_dir();
        let mut out = BTreeMap::new();
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if !p.to_string_lossy().ends_with(".old") {
                    let rel = p.strip_prefix(&dir).unwrap().display().to_string();
                    out.insert(rel, std::fs::read_to_string(&p).unwrap());
                }
            }
        }
        out
    }
}

/// A policy in table `ms` whose web group is `web`, with hardening.
fn policy(web: &str) -> String {
    format!(
        r#"version = 1
table = "ms"
hardening = true
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
[[flows]]
name = "admin-ssh"
from = "admin"
to = ["app", "db"]
ports = ["tcp/22"]
"#
    )
}

fn wait_for(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

#[test]
fn compile_format_firewalld_prints_the_objects_for_a_role_of_each_example() {
    for (file, role) in [("three-tier.toml", "app"), ("dual-stack.toml", "web")] {
        let out = Command::new(env!("CARGO_BIN_EXE_microseg"))
            .args(["compile", &example(file), "--role", role])
            .args(["--format", "firewalld"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{file}: {stderr}");
        let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let table = v["table"].as_str().unwrap();
        assert_eq!(v["compiled_for"], format!("role {role}"), "{file}");
        // The zone: the table's name, dropping (or rejecting) what no rule allows.
        assert_eq!(v["zone"]["name"], table);
        assert!(["DROP", "%%REJECT%%"].contains(&v["zone"]["target"].as_str().unwrap()));
        let marker = format!("[microseg table={table}]");
        assert!(v["zone"]["description"]
            .as_str()
            .unwrap()
            .starts_with(&marker));
        // The output policy from HOST to ANY.
        assert_eq!(v["policy"]["name"], format!("{table}-out"));
        assert_eq!(v["policy"]["ingress_zones"], serde_json::json!(["HOST"]));
        assert_eq!(v["policy"]["egress_zones"], serde_json::json!(["ANY"]));
        // Rich rules with priorities; ipsets that carry the table's prefix.
        let rules: Vec<&str> = ["zone", "policy"]
            .iter()
            .flat_map(|o| v[o]["rich_rules"].as_array().unwrap())
            .map(|r| r.as_str().unwrap())
            .collect();
        assert!(rules.len() > 5, "{file}: {rules:?}");
        assert!(rules.iter().all(|r| r.starts_with("rule priority=")));
        let ipsets = v["ipsets"].as_array().unwrap();
        assert!(!ipsets.is_empty(), "{file}");
        for s in ipsets {
            let name = s["name"].as_str().unwrap();
            assert!(name.starts_with(&format!("{table}-")), "{name}");
            assert_eq!(s["type"], "hash:net", "{s}");
            assert!(rules
                .iter()
                .any(|r| r.contains(&format!("ipset=\"{name}\""))));
        }
        // Every rich rule is traced back to a flow or baseline item.
        assert!(!v["origins"].as_object().unwrap().is_empty());
        if file == "dual-stack.toml" {
            assert!(
                ipsets
                    .iter()
                    .any(|s| s["name"].as_str().unwrap().ends_with("-6")),
                "IPv6 sets apart"
            );
        }
    }
}

#[test]
fn without_firewalld_the_error_says_so() {
    let dir = TempDir::new("msfwcli").unwrap();
    let p = dir.write("p.toml", &policy("\"10.10.1.10\"")).unwrap();
    let bus = format!("unix:path={}", dir.path("no-bus.sock").display());
    for args in [
        vec![
            "apply",
            p.as_str(),
            "--role",
            "app",
            "--backend",
            "firewalld",
        ],
        vec!["status", "--backend", "firewalld"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_microseg"))
            .args(&args)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus)
            .env("MICROSEG_STATE_DIR", dir.path("state"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(&format!("firewalld is not running on the bus at {bus}")),
            "{err}"
        );
    }
}

#[test]
fn verify_three_tier_with_firewalld_holds() {
    require_root_and_firewalld();
    let start = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_microseg"))
        .args(["verify", &example("three-tier.toml")])
        .args(["--backend", "firewalld"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    // The matrix, observed with firewalld enforcing it, and every probe matched.
    let row = |from: &str, to: &str| -> String {
        stdout
            .lines()
            .find(|l| l.split_whitespace().take(2).eq([from, to]))
            .unwrap_or_else(|| panic!("no row {from} -> {to}:\n{stdout}"))
            .split_whitespace()
            .skip(2)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(row("web", "app"), "tcp/8080 icmp");
    assert_eq!(row("app", "db"), "tcp/3306 tcp/5432 icmp");
    assert_eq!(row("web", "db"), "icmp");
    assert_eq!(row("outside", "web"), "tcp/80 tcp/443 icmp");
    let summary = stdout.lines().last().unwrap();
    assert!(
        summary.ends_with(" matched, 0 mismatched") && summary.contains(" probes: "),
        "{summary}"
    );
    eprintln!(
        "{stdout}verify --backend firewalld: {:.1?}",
        start.elapsed()
    );
    // Nothing left behind: no daemons' folders or namespaces of that run.
    let tag = format!("{}{pid}-", sandbox::NAME_TAG);
    for dir in [std::env::temp_dir(), PathBuf::from("/run/netns")] {
        let left: Vec<String> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with(&tag))
            .collect();
        assert!(left.is_empty(), "left in {}: {left:?}", dir.display());
    }
}

#[test]
fn apply_status_rollback_remove_through_the_cli() {
    let s = Site::new();
    let before = s.config_files();
    assert!(before["firewalld.conf"].contains("DefaultZone=public"));
    let v1 = s.dir.write("v1.toml", &policy("\"10.10.1.10\"")).unwrap();
    let v2 = s
        .dir
        .write("v2.toml", &policy("\"10.10.1.10\", \"10.10.1.12\""))
        .unwrap();
    let sysctl_file = s.dir.path("99-ms.conf").display().to_string();
    let apply = |code: i32, file: &str, extra: &[&str]| -> String {
        let mut args = vec!["apply", file, "--role", "app", "--backend", "firewalld"];
        args.extend_from_slice(&["--sysctl-file", &sysctl_file]);
        args.extend_from_slice(extra);
        s.expect(code, &args)
    };
    let owned = "firewalld zone ms, policy ms-out and ipsets ms-*";

    let out = s.expect(0, &["status", "--backend", "firewalld"]);
    assert!(out.contains("not installed"), "{out}");

    // Dry run: the plan, nothing changed.
    let out = apply(0, &v1, &["--dry-run"]);
    assert!(out.contains("+ zone ms (target DROP"), "{out}");
    assert!(out.contains("+ ipset ms-web-4"), "{out}");
    assert!(out.contains("~ default zone public -> ms"), "{out}");
    assert!(out.contains("dry run: nothing changed"), "{out}");
    assert_eq!(s.config_files(), before, "a dry run changes nothing");

    // Apply: objects, default zone, hardening; firewalld persists itself.
    let out = apply(0, &v1, &[]);
    assert!(
        out.contains(&format!("applied: {owned} for role app (replace)")),
        "{out}"
    );
    assert!(out.contains("no boot file is written"), "{out}");
    assert_eq!(s.firewall_cmd(&["--get-default-zone"]), "ms");
    assert!(s.config_files().contains_key("zones/ms.xml"));
    assert!(std::fs::read_to_string(&sysctl_file)
        .unwrap()
        .contains("net.ipv4.tcp_syncookies"));
    let (runtime, permanent) = s.entries("ms-web-4");
    assert_eq!(
        (runtime.as_str(), permanent.as_str()),
        ("10.10.1.10", "10.10.1.10")
    );

    // A second apply changes nothing.
    let out = apply(0, &v1, &[]);
    assert!(out.contains("firewalld (table ms): no changes"), "{out}");
    assert!(out.contains("(unchanged)"), "{out}");

    // Status (backend from the records): no drift, no counters, firewalld's warnings.
    let out = s.expect(0, &["status"]);
    assert!(
        out.contains(&format!("{owned} (firewalld): installed")),
        "{out}"
    );
    assert!(out.contains("drift: none"), "{out}");
    assert!(
        out.contains("hits: none (firewalld keeps no per-rule counters)"),
        "{out}"
    );
    let st = s.status_json();
    assert_eq!(st["drifted"], false, "{st}");
    assert_eq!(st["status"]["backend"], "firewalld");
    assert_eq!(st["status"]["hits"], serde_json::json!([]));
    // The records are firewalld's: nft sees nothing applied, nor can it roll back.
    let out = s.expect(0, &["status", "--backend", "nft"]);
    assert!(out.contains("table inet ms (nft): not installed"), "{out}");
    let out = s.expect(1, &["rollback", "--backend", "nft"]);
    assert!(out.contains("is of firewalld backend"), "{out}");

    // A membership change: ipset entries only, no reload.
    let out = apply(0, &v2, &["--dry-run"]);
    assert!(
        out.contains("~ ipset ms-web-4: entries only, no reload (1 added, 0 removed)"),
        "{out}"
    );
    assert!(out.contains("+ 10.10.1.12"), "{out}");
    assert!(
        !out.lines().any(|l| l.starts_with("~ zone")
            || l.starts_with("~ policy")
            || l.starts_with("! reload")),
        "{out}"
    );
    let out = apply(0, &v2, &[]);
    assert!(out.contains("(incremental (set members only))"), "{out}");
    let (runtime, permanent) = s.entries("ms-web-4");
    assert!(runtime.contains("10.10.1.12") && permanent.contains("10.10.1.12"));

    // Rollback: the state before the last apply.
    let out = s.expect(0, &["rollback"]);
    assert!(
        out.contains(&format!("rolled back: {owned} restored")),
        "{out}"
    );
    let (runtime, permanent) = s.entries("ms-web-4");
    assert_eq!(
        (runtime.as_str(), permanent.as_str()),
        ("10.10.1.10", "10.10.1.10")
    );
    s.expect(0, &["status"]);

    // Drift made by hand at runtime: status finds it (exit 1), an apply puts it right.
    assert_eq!(
        s.firewall_cmd(&["--zone=ms", "--add-service=ssh"]),
        "success"
    );
    let out = s.expect(1, &["status"]);
    assert!(out.contains("DRIFT") && out.contains("zone ms"), "{out}");
    let out = apply(0, &v1, &[]);
    assert!(out.contains("zone ms: runtime differs"), "{out}");
    s.expect(0, &["status"]);

    // Anti-lockout: an SSH client outside `admin` would lose port 22.
    let refused = s.expect_env(
        1,
        &["apply", &v2, "--role", "app", "--backend", "firewalld"],
        &[("SSH_CONNECTION", "192.0.2.7 50000 10.10.1.20 22")],
    );
    assert!(refused.contains("refusing to apply"), "{refused}");
    assert!(!s.entries("ms-web-4").0.contains("10.10.1.12"));

    // Not confirmed in time: the detached timer restores the previous state.
    let out = apply(0, &v2, &["--confirm-timeout", "1"]);
    assert!(out.contains("microseg confirm"), "{out}");
    assert!(out.contains("permanent configuration"), "{out}");
    assert!(s.entries("ms-web-4").0.contains("10.10.1.12"));
    assert!(
        wait_for(Duration::from_secs(15), || s.status_json()["status"]
            ["last_event"]
            == "timer-rollback"),
        "the timer did not roll back: {}",
        std::fs::read_to_string(s.dir.path("state/timer.log")).unwrap_or_default()
    );
    let (runtime, permanent) = s.entries("ms-web-4");
    assert_eq!(
        (runtime.as_str(), permanent.as_str()),
        ("10.10.1.10", "10.10.1.10")
    );
    // Confirmed in time: kept.
    apply(0, &v2, &["--confirm-timeout", "60"]);
    let out = s.expect(0, &["confirm"]);
    assert!(
        out.contains(&format!("confirmed: the change to {owned} is kept")),
        "{out}"
    );
    assert!(s.entries("ms-web-4").1.contains("10.10.1.12"));

    // Remove: firewalld's permanent configuration and default zone as found.
    let out = s.expect(0, &["remove"]);
    assert!(out.contains(&format!("removed: {owned}")), "{out}");
    assert!(out.contains("firewalld's default zone is public"), "{out}");
    assert_eq!(s.config_files(), before);
    assert_eq!(s.firewall_cmd(&["--get-default-zone"]), "public");
    assert!(!s
        .firewall_cmd(&["--get-zones"])
        .split_whitespace()
        .any(|z| z == "ms"));
    let out = s.expect(0, &["status"]);
    assert!(out.contains("not installed"), "{out}");
}
