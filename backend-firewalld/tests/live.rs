//! Against a real firewalld (1.x, nftables backend): each test starts its own
//! on a private D-Bus in a network namespace (backend_firewalld::sandbox) and
//! removes everything again, also on failure. Needs root; skipped otherwise.

use backend_firewalld::sandbox::{PrivateFirewalld, Sandboxes};
use backend_firewalld::{FirewalldBackend, FirewalldConfig, FirewalldError, FirewalldRenderer};
use microseg_core::backend::{Backend, Renderer};
use microseg_core::document::Format;
use microseg_core::ir::{compile, HostRuleset, Target};
use microseg_core::Policy;
use microseg_lab::Lab;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

fn root() -> bool {
    if !Path::new("/usr/sbin/firewalld").exists() {
        eprintln!(
            "firewalld is not installed (apt-get install firewalld): firewalld tests skipped"
        );
        return false;
    }
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.to_string())
        });
    let ok = uid.is_some_and(|l| l.split_whitespace().nth(2) == Some("0"));
    if !ok {
        eprintln!("not root: firewalld tests skipped");
    }
    ok
}

fn example_text(file: &str) -> String {
    std::fs::read_to_string(format!("{}/../examples/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn policy(text: &str) -> Policy {
    Policy::from_str_as(text, Format::Toml, None).unwrap()
}

fn render(p: &Policy, role: &str) -> FirewalldConfig {
    FirewalldRenderer
        .render(&compile(p, &Target::Role(role.into())).unwrap())
        .unwrap()
}

/// firewalld's permanent configuration: every file under --system-config
/// except the `*.old` backups firewalld itself keeps of what it overwrote or removed.
fn config_files(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if !p.to_string_lossy().ends_with(".old") {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, std::fs::read_to_string(&p).unwrap());
            }
        }
    }
    out
}

/// Runs firewall-cmd against the sandbox's bus (to check from outside the backend).
fn firewall_cmd(fw: &PrivateFirewalld, args: &[&str]) -> String {
    let out = Command::new("firewall-cmd")
        .args(args)
        .env("DBUS_SYSTEM_BUS_ADDRESS", fw.bus_address())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn nft_set(fw: &PrivateFirewalld, set: &str) -> String {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            fw.netns(),
            "nft",
            "list",
            "set",
            "inet",
            "firewalld",
            set,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn verify_with_firewalld(file: &str) {
    if !root() {
        return;
    }
    let start = Instant::now();
    let p = policy(&example_text(file));
    let fws = Sandboxes::new();
    let install = |lab: &Lab, host: &str, rs: &HostRuleset| -> Result<(), String> {
        let ns = lab.netns_name(host).map_err(|e| e.to_string())?;
        let report = fws.install(ns, rs).map_err(|e| e.to_string())?;
        assert!(
            report.reloaded && !report.unchanged(),
            "first apply on {host}: {report}"
        );
        Ok(())
    };
    let report = microseg_verify::verify(&p, &install).unwrap();
    let text = report.to_text();
    eprintln!("{text}");
    assert!(
        report.ok(),
        "{file}: {} mismatches\n{text}",
        report.mismatches()
    );
    let managed = report.hosts.iter().filter(|h| h.target.is_some()).count();
    assert!(managed >= 3);
    assert_eq!(fws.len(), managed, "one firewalld per managed test host");
    assert!(report.probes.len() > 100);
    eprintln!(
        "{file}: {} probes, {:.1?}",
        report.probes.len(),
        start.elapsed()
    );
}

#[test]
fn three_tier_matrix_holds_with_firewalld_on_every_role() {
    verify_with_firewalld("three-tier.toml");
}

#[test]
fn dual_stack_matrix_holds_with_firewalld_on_every_role() {
    verify_with_firewalld("dual-stack.toml");
}

#[test]
fn second_apply_changes_nothing_and_membership_changes_skip_the_reload() {
    if !root() {
        return;
    }
    let fw = PrivateFirewalld::start().unwrap();
    let be = fw.backend().unwrap();
    let text = example_text("three-tier.toml");
    let cfg = render(&policy(&text), "app");

    let first = be
        .apply_report(&be.plan_config(&cfg, None).unwrap())
        .unwrap();
    assert!(first.reloaded, "{first}");
    assert_eq!(be.default_zone().unwrap(), "microseg");
    eprintln!("first apply: {first}");

    let again = be.plan_config(&cfg, be.read().unwrap().as_ref()).unwrap();
    assert!(again.is_empty(), "{again}");
    assert!(again.to_string().contains("no changes"));
    let second = be.apply_report(&again).unwrap();
    assert!(second.unchanged() && !second.reloaded);
    assert_eq!(second.calls, 0);

    // A runtime-only setting elsewhere: any reload would drop it.
    assert_eq!(
        firewall_cmd(&fw, &["--zone=public", "--add-service=http"]),
        "success"
    );

    // Membership: one more web server.
    let more = text.replace(
        r#"web    = ["10.10.1.10-10.10.1.19"]"#,
        r#"web    = ["10.10.1.10-10.10.1.19", "10.10.1.100"]"#,
    );
    assert_ne!(more, text);
    let cfg2 = render(&policy(&more), "app");
    let plan = be.plan_config(&cfg2, None).unwrap();
    eprintln!("membership plan:\n{plan}");
    assert!(plan.only_ipset_entries(), "{plan}");
    assert!(!plan.reloads());
    assert_eq!(
        plan.write_calls(),
        2,
        "permanent update + runtime setEntries:\n{plan}"
    );
    let r = be.apply_report(&plan).unwrap();
    assert!(!r.reloaded);
    assert_eq!(
        firewall_cmd(&fw, &["--zone=public", "--query-service=http"]),
        "yes",
        "no reload happened"
    );
    assert!(
        firewall_cmd(&fw, &["--ipset=microseg-web-4", "--get-entries"]).contains("10.10.1.100")
    );
    assert!(firewall_cmd(
        &fw,
        &["--permanent", "--ipset=microseg-web-4", "--get-entries"]
    )
    .contains("10.10.1.100"));
    assert!(
        nft_set(&fw, "microseg-web-4").contains("10.10.1.100"),
        "{}",
        nft_set(&fw, "microseg-web-4")
    );
    assert!(be.plan_config(&cfg2, None).unwrap().is_empty());

    // A rule change on existing objects: permanent update + runtime update, no reload.
    let port = more.replace(r#"app      = ["tcp/8080"]"#, r#"app      = ["tcp/8081"]"#);
    let cfg3 = render(&policy(&port), "app");
    let plan = be.plan_config(&cfg3, None).unwrap();
    eprintln!("rule plan:\n{plan}");
    assert!(!plan.reloads(), "{plan}");
    be.apply_report(&plan).unwrap();
    assert_eq!(
        firewall_cmd(&fw, &["--zone=public", "--query-service=http"]),
        "yes",
        "no reload happened"
    );
    let runtime_rules = firewall_cmd(&fw, &["--zone=microseg", "--list-rich-rules"]);
    assert!(
        runtime_rules.contains("port=\"8081\"") && !runtime_rules.contains("port=\"8080\""),
        "{runtime_rules}"
    );
    assert!(be.plan_config(&cfg3, None).unwrap().is_empty());

    // Nothing drifted; then a change made by hand at runtime is found and put right without reload.
    let status = be.status(Some(&cfg3)).unwrap();
    assert!(
        status.drift.is_empty() && status.default_zone_is_ours && status.installed,
        "{status}"
    );
    assert_eq!(
        firewall_cmd(&fw, &["--zone=microseg", "--add-service=ssh"]),
        "success"
    );
    let status = be.status(None).unwrap();
    assert!(!status.drift.is_empty(), "{status}");
    eprintln!("{status}");
    let plan = be.plan_config(&cfg3, None).unwrap();
    assert!(!plan.reloads(), "{plan}");
    be.apply_report(&plan).unwrap();
    assert_eq!(
        firewall_cmd(&fw, &["--zone=microseg", "--query-service=ssh"]),
        "no"
    );
    assert_eq!(
        firewall_cmd(&fw, &["--zone=public", "--query-service=http"]),
        "yes",
        "no reload happened"
    );
    assert!(be.status(None).unwrap().drift.is_empty());

    // A target change needs the reload (firewalld cannot change it at runtime).
    let reject = format!("{port}default = \"reject\"\n");
    let cfg4 = render(&policy(&reject), "app");
    let plan = be.plan_config(&cfg4, None).unwrap();
    assert!(plan.reloads(), "{plan}");
    be.apply_report(&plan).unwrap();
    assert!(be.plan_config(&cfg4, None).unwrap().is_empty());
}

#[test]
fn remove_leaves_the_permanent_configuration_as_it_was() {
    if !root() {
        return;
    }
    let fw = PrivateFirewalld::start().unwrap();
    let be = fw.backend().unwrap().with_table("microseg");
    let files_before = config_files(&fw.config_dir());
    let state_before = be.snapshot("microseg").unwrap();
    assert!(be.read().unwrap().is_none());

    let cfg = render(&policy(&example_text("three-tier.toml")), "db");
    be.apply_report(&be.plan_config(&cfg, None).unwrap())
        .unwrap();
    let files_applied = config_files(&fw.config_dir());
    assert!(
        files_applied.contains_key("zones/microseg.xml"),
        "{:?}",
        files_applied.keys()
    );
    assert!(files_applied.contains_key("policies/microseg-out.xml"));
    assert!(files_applied["firewalld.conf"].contains("DefaultZone=microseg"));
    assert!(be.read().unwrap().is_some());
    // Drops are logged under the limit: the limit comes before the log in the same rule.
    let ruleset = Command::new("ip")
        .args(["netns", "exec", fw.netns(), "nft", "list", "ruleset"])
        .output()
        .unwrap();
    let ruleset = String::from_utf8_lossy(&ruleset.stdout).to_string();
    assert!(
        ruleset.contains(r#"limit rate 10/second log prefix "microseg input drop: " group 1"#),
        "{ruleset}"
    );
    assert!(ruleset.contains(r#"limit rate 10/second log prefix "microseg output drop: " group 1"#));

    let removed = be.remove_report().unwrap();
    eprintln!("remove: {removed}");
    assert!(removed.reloaded);
    assert_eq!(config_files(&fw.config_dir()), files_before);
    assert_eq!(be.snapshot("microseg").unwrap(), state_before);
    assert_eq!(be.default_zone().unwrap(), "public");
    assert!(!firewall_cmd(&fw, &["--get-zones"]).contains("microseg"));
    let ruleset = Command::new("ip")
        .args(["netns", "exec", fw.netns(), "nft", "list", "ruleset"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&ruleset.stdout).contains("microseg"));
    // Nothing left to remove.
    assert!(be.remove_report().unwrap().unchanged());
    assert!(be.read().unwrap().is_none());
}

fn expect_apply_failed(e: FirewalldError, call: &str, text: &str) {
    match e {
        FirewalldError::ApplyFailed {
            call: c,
            message,
            restore_error,
        } => {
            assert!(c.contains(call), "failed call {c:?}, expected {call:?}");
            assert!(
                message.contains(text),
                "firewalld's message {message:?} lacks {text:?}"
            );
            assert!(restore_error.is_none(), "restore failed: {restore_error:?}");
        }
        other => panic!("expected ApplyFailed, got {other}"),
    }
}

#[test]
fn a_failed_call_mid_apply_restores_the_previous_configuration() {
    if !root() {
        return;
    }
    let fw = PrivateFirewalld::start().unwrap();
    let be = fw.backend().unwrap();
    let bad_rule = r#"rule family="ipv4" port port="70000" protocol="tcp" accept"#.to_string();
    let text = example_text("three-tier.toml");

    // From nothing: ipsets and zone are created, the policy is refused.
    let files0 = config_files(&fw.config_dir());
    let state0 = be.snapshot("microseg").unwrap();
    let mut cfg = render(&policy(&text), "web");
    cfg.policy.rich_rules.push(bad_rule.clone());
    let plan = be.plan_config(&cfg, None).unwrap();
    eprintln!("failing plan:\n{plan}");
    let e = be.apply_report(&plan).unwrap_err();
    eprintln!("error: {e}");
    expect_apply_failed(e, "addPolicy(microseg-out)", "INVALID_PORT");
    assert_eq!(be.snapshot("microseg").unwrap(), state0);
    assert_eq!(config_files(&fw.config_dir()), files0);
    assert_eq!(be.default_zone().unwrap(), "public");

    // Over an installed version: sets and zone are updated, the policy is refused.
    let v1 = render(&policy(&text), "web");
    be.apply_report(&be.plan_config(&v1, None).unwrap())
        .unwrap();
    let files1 = config_files(&fw.config_dir());
    let state1 = be.snapshot("microseg").unwrap();
    let changed = text
        .replace(
            r#"admin  = ["10.10.0.0/26"]"#,
            r#"admin  = ["10.10.0.0/26", "10.10.9.9"]"#,
        )
        .replace(
            r#"http     = ["tcp/80", "tcp/443"]"#,
            r#"http     = ["tcp/80", "tcp/443", "tcp/8443"]"#,
        );
    let mut v2 = render(&policy(&changed), "web");
    v2.policy.rich_rules.push(bad_rule);
    let plan = be.plan_config(&v2, None).unwrap();
    eprintln!("failing plan:\n{plan}");
    let e = be.apply_report(&plan).unwrap_err();
    expect_apply_failed(e, "config.policy.update(microseg-out)", "INVALID_PORT");
    assert_eq!(be.snapshot("microseg").unwrap(), state1);
    assert_eq!(config_files(&fw.config_dir()), files1);
    assert_eq!(be.default_zone().unwrap(), "microseg");

    // Rollback: a good v2 applied, then the state saved before it put back.
    let good = render(&policy(&changed), "web");
    be.apply_report(&be.plan_config(&good, None).unwrap())
        .unwrap();
    assert_ne!(be.snapshot("microseg").unwrap(), state1);
    be.restore(Some(&state1)).unwrap();
    assert_eq!(be.snapshot("microseg").unwrap(), state1);
    assert_eq!(config_files(&fw.config_dir()), files1);
}

#[test]
fn objects_of_others_are_never_touched() {
    if !root() {
        return;
    }
    let fw = PrivateFirewalld::start().unwrap();
    // Someone else's ipset with one of our names: the plan refuses it.
    assert_eq!(
        firewall_cmd(
            &fw,
            &[
                "--permanent",
                "--new-ipset=microseg-admin-4",
                "--type=hash:net"
            ]
        ),
        "success"
    );
    let be = fw.backend().unwrap();
    let cfg = render(&policy(&example_text("three-tier.toml")), "web");
    match be.plan_config(&cfg, None) {
        Err(FirewalldError::NotOwned { object, .. }) => {
            assert_eq!(object, "ipset microseg-admin-4")
        }
        other => panic!("expected NotOwned, got {other:?}"),
    }
    // And remove leaves it alone. (The bus from DBUS_SYSTEM_BUS_ADDRESS, as for the system bus.)
    std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", fw.bus_address());
    let be = FirewalldBackend::connect(None)
        .unwrap()
        .with_table("microseg");
    std::env::remove_var("DBUS_SYSTEM_BUS_ADDRESS");
    assert_eq!(be.bus_address(), fw.bus_address());
    be.remove_report().unwrap();
    assert!(firewall_cmd(&fw, &["--permanent", "--get-ipsets"]).contains("microseg-admin-4"));
    let status = be.status(None).unwrap();
    assert!(
        status
            .warnings
            .iter()
            .any(|w| w.contains("microseg-admin-4")),
        "{status}"
    );

    // An interface bound to another zone bypasses the default zone: the plan says so.
    assert_eq!(
        firewall_cmd(&fw, &["--zone=trusted", "--add-interface=lo"]),
        "success"
    );
    let cfg = render(
        &policy(&example_text("three-tier.toml").replace("microseg", "other")),
        "web",
    );
    let plan = be.plan_config(&cfg, None).unwrap();
    assert!(
        plan.warnings()
            .iter()
            .any(|w| w.contains("zone trusted has interfaces lo")),
        "{plan}"
    );
}
