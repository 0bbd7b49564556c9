//! The policy's `hardening` on the real kernel, inside a throw-away network
//! namespace: apply sets the sysctl values there (and writes the sysctl.d
//! file), status reports drift, rollback restores the previous values and
//! file, and a policy without `hardening` leaves sysctl alone. Needs root.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use microseg_lab::Netns;

const KEYS: &[(&str, &str)] = &[
    ("net.ipv4.conf.all.accept_redirects", "0"),
    ("net.ipv4.conf.default.accept_redirects", "0"),
    ("net.ipv6.conf.all.accept_redirects", "0"),
    ("net.ipv6.conf.default.accept_redirects", "0"),
    ("net.ipv4.conf.all.send_redirects", "0"),
    ("net.ipv4.conf.default.send_redirects", "0"),
    ("net.ipv4.conf.all.rp_filter", "1"),
    ("net.ipv4.conf.default.rp_filter", "1"),
    ("net.ipv4.tcp_syncookies", "1"),
];

/// A namespace `mshard-<pid>-<n>` and a directory of the same name in the
/// temporary directory, both removed on drop (also on panic).
struct Fixture {
    ns: Netns,
    dir: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let ns = Netns::new("mshard").unwrap_or_else(|e| panic!("{e}"));
        let dir = std::env::temp_dir().join(ns.name());
        std::fs::create_dir_all(&dir).unwrap();
        Fixture { ns, dir }
    }

    fn sysctl_get(&self, key: &str) -> String {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let out = Command::new("ip")
            .args(["netns", "exec", self.ns.name(), "cat", &path])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn sysctl_set(&self, key: &str, value: &str) {
        let st = Command::new("ip")
            .args([
                "netns",
                "exec",
                self.ns.name(),
                "sysctl",
                "-q",
                "-w",
                &format!("{key}={value}"),
            ])
            .status()
            .unwrap();
        assert!(st.success());
    }

    fn values(&self) -> Vec<String> {
        KEYS.iter().map(|(k, _)| self.sysctl_get(k)).collect()
    }

    fn microseg(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                self.ns.name(),
                env!("CARGO_BIN_EXE_microseg"),
            ])
            .args(args)
            .env_remove("SSH_CONNECTION")
            .env("MICROSEG_STATE_DIR", self.dir.join("state"))
            .output()
            .unwrap()
    }

    fn policy(&self, name: &str, hardening: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(
            &p,
            format!("version = 1\ntable = \"mshard\"\n{hardening}\n[groups]\nweb = [\"203.0.113.10\"]\nadmin = [\"203.0.113.200\"]\n[roles.web]\n[[flows]]\nfrom = \"admin\"\nto = \"web\"\nports = [\"tcp/22\"]\n"),
        )
        .unwrap();
        p
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // The namespace goes when the `ns` field is dropped, right after.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn host_values() -> Vec<String> {
    KEYS.iter()
        .map(|(k, _)| {
            std::fs::read_to_string(format!("/proc/sys/{}", k.replace('.', "/")))
                .unwrap()
                .trim()
                .to_string()
        })
        .collect()
}

#[test]
fn apply_sets_rollback_restores_inside_the_namespace() {
    let f = Fixture::new();
    // Start from values unlike the guide's.
    for (k, v) in [
        ("net.ipv4.conf.all.accept_redirects", "1"),
        ("net.ipv4.conf.all.rp_filter", "0"),
        ("net.ipv4.conf.default.rp_filter", "2"),
        ("net.ipv4.tcp_syncookies", "0"),
    ] {
        f.sysctl_set(k, v);
    }
    let before = f.values();
    let host_before = host_values();
    let file = f.dir.join("99-mshard.conf");
    let policy = f.policy("p.toml", "hardening = true");
    let file_arg = file.to_str().unwrap();

    let dry = ok(&f.microseg(&[
        "apply",
        policy.to_str().unwrap(),
        "--role",
        "web",
        "--no-persist",
        "--sysctl-file",
        file_arg,
        "--dry-run",
    ]));
    assert!(
        dry.contains("sysctl net.ipv4.tcp_syncookies: 0 -> 1"),
        "{dry}"
    );
    assert_eq!(f.values(), before, "a dry run changes nothing");
    assert!(!file.exists());

    ok(&f.microseg(&[
        "apply",
        policy.to_str().unwrap(),
        "--role",
        "web",
        "--no-persist",
        "--sysctl-file",
        file_arg,
    ]));
    let want: Vec<String> = KEYS.iter().map(|(_, v)| v.to_string()).collect();
    assert_eq!(f.values(), want, "the policy's values inside the namespace");
    let text = std::fs::read_to_string(&file).unwrap();
    for (k, v) in KEYS {
        assert!(text.contains(&format!("{k} = {v}")), "{text}");
    }
    assert_eq!(
        host_values(),
        host_before,
        "the machine's own namespace is untouched"
    );

    let st = f.microseg(&["status"]);
    assert_eq!(
        st.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&st.stdout)
    );
    f.sysctl_set("net.ipv4.conf.all.rp_filter", "2");
    let st = f.microseg(&["status"]);
    assert_eq!(st.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&st.stdout)
        .contains("SYSCTL DRIFT: net.ipv4.conf.all.rp_filter is 2, the policy sets 1"));
    f.sysctl_set("net.ipv4.conf.all.rp_filter", "1");

    ok(&f.microseg(&["rollback"]));
    assert_eq!(f.values(), before, "rollback restores the previous values");
    assert!(
        !file.exists(),
        "rollback restores the previous file (there was none)"
    );
    ok(&f.microseg(&["remove", "--no-persist"]));
}

#[test]
fn without_hardening_sysctl_is_left_alone() {
    let f = Fixture::new();
    f.sysctl_set("net.ipv4.conf.all.rp_filter", "2");
    f.sysctl_set("net.ipv4.tcp_syncookies", "0");
    let before = f.values();
    let policy = f.policy("p.toml", "");
    let file = f.dir.join("99-mshard.conf");
    let out = ok(&f.microseg(&[
        "apply",
        policy.to_str().unwrap(),
        "--role",
        "web",
        "--no-persist",
        "--sysctl-file",
        file.to_str().unwrap(),
    ]));
    assert!(!out.contains("sysctl"), "{out}");
    assert_eq!(f.values(), before);
    assert!(!Path::new(&file).exists());
    ok(&f.microseg(&["remove", "--no-persist"]));
}
