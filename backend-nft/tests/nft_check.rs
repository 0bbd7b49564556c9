//! The rendered rulesets against the real nft and kernel, each test in a
//! fresh network namespace of its own (`msnft-<pid>-<n>`, removed on drop,
//! also when a test panics).
//!
//! Needs root (CAP_NET_ADMIN), `ip` (iproute2) and `nft` (nftables ≥ 1.0.6).
//! Without root every test fails with a message saying so: these checks are
//! the evidence that what we generate loads, so they never pass silently.
//!
//! Run: `cargo test -p backend-nft --test nft_check` (as root).

use backend_nft::{to_nft_text, Nft, NftArtefact, NftError, NftRenderer};
use microseg_core::backend::Renderer;
use microseg_core::document::Format;
use microseg_core::ir::compile_all_roles;
use microseg_core::Policy;
use microseg_lab::Netns;
use serde_json::Value;
use std::path::Path;

/// A fresh namespace `msnft-<pid>-<n>` (deleted on drop); panics, saying
/// why, without root.
fn netns() -> Netns {
    Netns::new("msnft").unwrap_or_else(|e| panic!("{e}"))
}

fn policies() -> Vec<(String, Policy)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut out: Vec<(String, Policy)> = ["three-tier.toml", "dual-stack.toml"]
        .iter()
        .map(|f| (f.to_string(), Policy::from_file(dir.join(f)).unwrap()))
        .collect();
    // What the examples do not cover: deny, a reject default with kernel
    // logging, multi-range ports, a flagged allow, mixed-family flow sets.
    out.push((
        "inline".into(),
        Policy::from_str_as(
            r#"
version = 1
table = "ms-x_1"
[groups]
web = ["10.0.1.10-10.0.1.19", "2001:db8:1::10"]
adm = ["10.9.0.0/24", "2001:db8:9::/64"]
ops = ["10.8.0.1", "10.8.0.3-10.8.0.200"]
[roles.web]
[roles.adm]
[[flows]]
name = "admin-ssh"
from = ["adm", "ops"]
to = "web"
ports = ["tcp/22", "tcp/2500-3300", "tcp/443", "icmp", "icmpv6"]
log = true
[[flows]]
name = "no-smb"
from = "any"
to = "web"
ports = ["tcp/445", "udp/137-138"]
action = "deny"
[[flows]]
name = "no-ntp"
from = "web"
to = "any"
ports = ["udp/123", "tcp/25"]
action = "reject"
log = true
[baseline]
icmp = false
default = "reject"
log = { prefix = "x", rate = "1/hour", burst = 3 }
"#,
            Format::Toml,
            Some("inline"),
        )
        .unwrap(),
    ));
    out
}

/// (chain, comment) of every rule in a `nft -j list table` output, in order.
fn listed_rules(list: &Value) -> Vec<(String, String)> {
    list["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("rule"))
        .map(|r| {
            (
                r["chain"].as_str().unwrap().to_string(),
                r["comment"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn listed_sets(list: &Value) -> Vec<String> {
    list["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("set"))
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

/// (chain, comment) of every rule of the artefact, in document order.
fn rendered_rules(a: &NftArtefact) -> Vec<(String, String)> {
    let doc: Value = serde_json::from_str(&backend_nft::to_json(a)).unwrap();
    doc["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("add").and_then(|a| a.get("rule")))
        .map(|r| {
            (
                r["chain"].as_str().unwrap().to_string(),
                r["comment"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A listing without handles and with zeroed counters, for comparisons.
fn normalised(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| k.as_str() != "handle")
                .map(|(k, v)| match k.as_str() {
                    "counter" => (k.clone(), serde_json::json!({"packets": 0, "bytes": 0})),
                    _ => (k.clone(), normalised(v)),
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(normalised).collect()),
        other => other.clone(),
    }
}

#[test]
fn every_role_checks_loads_twice_and_lists_back() {
    for (file, policy) in policies() {
        let ns = netns();
        let nft = Nft::in_netns(ns.name());
        for rs in compile_all_roles(&policy) {
            let what = format!("{file}, {}", rs.target);
            let a = NftRenderer.render(&rs).unwrap();
            nft.check_text(&a).unwrap_or_else(|e| {
                panic!(
                    "{what}: nft -c -f - refused the text: {e}\n{}",
                    to_nft_text(&a)
                )
            });
            nft.check_json(&a)
                .unwrap_or_else(|e| panic!("{what}: nft -j -c -f - refused the JSON: {e}"));
            // First load (for later roles the table exists: replaced), then again.
            nft.apply_json(&a)
                .unwrap_or_else(|e| panic!("{what}: first load: {e}"));
            nft.apply_json(&a)
                .unwrap_or_else(|e| panic!("{what}: second load over the existing table: {e}"));
            let list = nft.list_table(a.table()).unwrap().expect("table exists");
            let mut sets = listed_sets(&list);
            sets.sort();
            let mut want = a.set_names();
            want.sort();
            assert_eq!(sets, want, "{what}: sets");
            // Same rules, same order, each once: the second load replaced, not appended.
            assert_eq!(listed_rules(&list), rendered_rules(&a), "{what}: rules");
            for rs_rule in rs.input.iter().chain(&rs.output) {
                let label = rs_rule.origin.label();
                assert!(
                    listed_rules(&list).iter().any(|(_, c)| *c == label),
                    "{what}: {label} missing"
                );
            }
            // The text loads to exactly the same table.
            nft.apply_text(&a)
                .unwrap_or_else(|e| panic!("{what}: nft -f -: {e}"));
            let from_text = nft.list_table(a.table()).unwrap().unwrap();
            assert_eq!(
                normalised(&from_text),
                normalised(&list),
                "{what}: text and JSON differ"
            );
        }
    }
}

#[test]
fn a_foreign_table_is_left_alone() {
    let ns = netns();
    let nft = Nft::in_netns(ns.name());
    nft.run(
        &["-f", "-"],
        Some("table inet foreign {\n\tchain c {\n\t}\n}\ntable ip other {\n\tchain d {\n\t\tcounter\n\t}\n}\n"),
    )
    .unwrap();
    let before = (
        nft.list_table("foreign").unwrap().unwrap(),
        nft.run(&["-j", "list", "table", "ip", "other"], None)
            .unwrap(),
    );
    let (_, policy) = policies().into_iter().next().unwrap();
    for rs in compile_all_roles(&policy) {
        let a = NftRenderer.render(&rs).unwrap();
        nft.apply_json(&a).unwrap();
        nft.apply_json(&a).unwrap();
        nft.apply_text(&a).unwrap();
    }
    let after = (
        nft.list_table("foreign").unwrap().unwrap(),
        nft.run(&["-j", "list", "table", "ip", "other"], None)
            .unwrap(),
    );
    // Handles included: the tables were not even recreated.
    assert_eq!(before, after);
    let tables = nft.run(&["list", "tables"], None).unwrap();
    assert!(tables.contains("table inet foreign"), "{tables}");
    assert!(tables.contains("table inet microseg"), "{tables}");
}

#[test]
fn keywords_we_refuse_are_keywords_to_this_nft() {
    let ns = netns();
    let nft = Nft::in_netns(ns.name());
    nft.run(&["-c", "-f", "-"], Some("table inet microseg\n"))
        .expect("an ordinary name is accepted");
    for word in backend_nft::keywords::nft_1_0_6() {
        let r = nft.run(&["-c", "-f", "-"], Some(&format!("table inet {word}\n")));
        assert!(
            matches!(r, Err(NftError::Command { .. })),
            "nft accepts `table inet {word}`: drop it from the keyword list"
        );
    }
}

#[test]
fn nft_errors_carry_the_command_and_stderr() {
    let ns = netns();
    let e = Nft::in_netns(ns.name())
        .run(
            &["-c", "-f", "-"],
            Some("table inet t {\n\tchain c {\n\t\tbogus\n\t}\n}\n"),
        )
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("ip netns exec {} nft -c -f -", ns.name())),
        "{msg}"
    );
    assert!(msg.contains("bogus"), "{msg}");
    assert_eq!(
        Nft::in_netns(ns.name()).list_table("nothere").unwrap(),
        None
    );
}
