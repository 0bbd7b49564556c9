//! [`Netns`] on the real kernel: named per process and sequence, deleted on
//! drop and on panic, `nft` runs inside it with standard input. Needs root,
//! iproute2 and nftables; fails, loudly, without root.

use std::path::Path;

use microseg_lab::{list_table_in, nft_in, require_root, LabError, Netns};

fn netns(prefix: &str) -> Netns {
    Netns::new(prefix).unwrap_or_else(|e| panic!("{e}"))
}

fn exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// `ip -n NS -o link show dev lo`.
fn loopback(name: &str) -> String {
    let out = std::process::Command::new("ip")
        .args(["-n", name, "-o", "link", "show", "dev", "lo"])
        .output()
        .expect("run ip");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const RULESET: &str = "table inet mslt {\n chain input {\n  type filter hook input priority 0;\n  tcp dport 22 accept\n }\n}\n";

#[test]
fn names_carry_prefix_pid_and_sequence_and_drop_deletes() {
    let a = netns("mslt");
    let b = netns("mslt");
    let pid = std::process::id();
    for ns in [&a, &b] {
        let rest = ns.name().strip_prefix(&format!("mslt-{pid}-")).unwrap();
        assert!(rest.parse::<usize>().is_ok(), "{}", ns.name());
        assert!(exists(ns.name()), "{} missing", ns.name());
    }
    assert_ne!(a.name(), b.name());
    let lo = loopback(a.name());
    assert!(!lo.contains(",UP"), "lo is down by default: {lo}");
    let (name_a, name_b) = (a.name().to_string(), b.name().to_string());
    drop(a);
    assert!(!exists(&name_a), "{name_a} still there");
    assert!(exists(&name_b));
    drop(b);
    assert!(!exists(&name_b), "{name_b} still there");
}

#[test]
fn with_loopback_brings_lo_up() {
    let ns = Netns::with_loopback("mslt").unwrap_or_else(|e| panic!("{e}"));
    let lo = loopback(ns.name());
    assert!(lo.contains(",UP"), "{lo}");
}

#[test]
fn a_panicking_test_still_deletes_its_namespace() {
    let mut name = String::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let ns = netns("mslt");
        name = ns.name().to_string();
        panic!("test failure");
    }));
    assert!(result.is_err());
    assert!(!name.is_empty());
    assert!(!exists(&name), "{name} still there");
}

#[test]
fn nft_runs_inside_with_stdin_and_lists_tables() {
    let ns = netns("mslt");
    let check = ns.nft(&["-c", "-f", "-"], Some(RULESET.as_bytes()));
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(ns.list_table("inet", "mslt"), None, "-c loads nothing");
    let load = ns.nft(&["-f", "-"], Some(RULESET.as_bytes()));
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    let listed = ns.list_table("inet", "mslt").expect("table loaded");
    assert!(listed.starts_with("{\"nftables\""), "{listed}");
    assert!(listed.contains("\"dport\""), "{listed}");
    assert_eq!(list_table_in(ns.name(), "inet", "mslt"), Some(listed));
    // Only inside: another namespace does not see it.
    let other = netns("mslt");
    assert_eq!(other.list_table("inet", "mslt"), None);
    // Errors come back as output, not as a panic.
    let bad = ns.nft(&["-f", "-"], Some(b"table inet {"));
    assert!(!bad.status.success());
    assert!(!bad.stderr.is_empty());
}

#[test]
fn nft_in_a_missing_namespace_fails_with_stderr() {
    let out = nft_in("mslt-no-such-namespace", &["list", "ruleset"], None);
    assert!(!out.status.success());
    assert!(!out.stderr.is_empty());
}

#[test]
fn bad_prefixes_are_refused_before_anything_is_created() {
    for prefix in ["", "a/b", "a b", &"x".repeat(33)] {
        assert!(
            matches!(Netns::new(prefix), Err(LabError::InvalidSpec(_))),
            "{prefix:?}"
        );
    }
}

#[test]
fn root_check_passes_as_root_and_says_why_otherwise() {
    require_root("microseg-lab/tests/netns.rs").unwrap_or_else(|e| panic!("{e}"));
    let e = LabError::NotRoot {
        what: "tests/x.rs".into(),
        euid: 1000,
    };
    let msg = e.to_string();
    assert!(
        msg.starts_with("tests/x.rs: needs root (effective uid 1000)"),
        "{msg}"
    );
    assert!(msg.contains("run it as root"), "{msg}");
}
