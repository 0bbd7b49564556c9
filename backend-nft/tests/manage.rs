//! `NftBackend` against the real nft and kernel, each test in a network
//! namespace of its own (`msnb-<pid>-<n>`, removed on drop, also on panic):
//! read-back equals the expected state for every rule shape the lowering
//! makes, plans (unchanged / element delta / replace) leave exactly the
//! desired table, element deltas keep handles and counters, a transaction
//! the kernel rejects changes nothing, snapshots restore exactly.
//!
//! Needs root, `ip` and `nft`. Run: `cargo test -p backend-nft --test manage`.

use backend_nft::{Nft, NftArtefact, NftBackend, NftPlanKind, NftRenderer, NftState};
use microseg_core::backend::{Backend, Renderer};
use microseg_core::document::Format;
use microseg_core::ir::{compile, compile_all_roles, Target};
use microseg_core::Policy;
use microseg_lab::Netns;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// A fresh namespace `msnb-<pid>-<n>` with its loopback up (deleted on
/// drop); panics, saying why, without root.
fn netns() -> Netns {
    Netns::with_loopback("msnb").unwrap_or_else(|e| panic!("{e}"))
}

fn backend(ns: &Netns, table: &str) -> NftBackend {
    NftBackend::new(Nft::in_netns(ns.name()), table)
}

fn list(ns: &Netns, family: &str, table: &str) -> String {
    Nft::in_netns(ns.name())
        .run(&["-j", "list", "table", family, table], None)
        .unwrap()
}

fn examples() -> Vec<Policy> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut out: Vec<Policy> = ["three-tier.toml", "dual-stack.toml"]
        .iter()
        .map(|f| Policy::from_file(dir.join(f)).unwrap())
        .collect();
    // Every rule shape: reject flows and default, log levels, literal endpoints,
    // v4-only roles under `any`, ICMP off.
    out.push(
        Policy::from_str_as(
            r#"
version = 1
table = "shapes"
[groups]
web = ["10.0.1.10-10.0.1.19", "2001:db8:1::10"]
adm = ["10.9.0.0/24", "2001:db8:9::/64"]
v4only = ["10.0.2.1"]
[roles.web]
[roles.v4only]
[[flows]]
name = "adm-ssh"
from = "adm"
to = ["web", "v4only"]
ports = ["tcp/22", "tcp/2500-3300", "tcp/443"]
log = true
[[flows]]
name = "no-smb"
from = "any"
to = "web"
ports = ["tcp/445", "udp/137-138", "icmp"]
action = "deny"
[[flows]]
name = "no-ntp"
from = "web"
to = ["203.0.113.0/24", "198.51.100.7"]
ports = ["udp/123", "tcp/25", "icmpv6"]
action = "reject"
[[flows]]
name = "pub"
from = "any"
to = "v4only"
ports = ["tcp/80"]
[baseline]
icmp = false
default = "reject"
log = { prefix = "T1", rate = "3/minute", burst = 7, level = "info" }
"#,
            Format::Toml,
            None,
        )
        .unwrap(),
    );
    out
}

fn render(p: &Policy, t: &Target) -> NftArtefact {
    NftRenderer.render(&compile(p, t).unwrap()).unwrap()
}

/// Random valid policies (deterministic).
fn generated(n: usize) -> Vec<Policy> {
    let mut runner = TestRunner::deterministic();
    let strategy = microseg_testgen::policy_doc();
    (0..n)
        .map(|_| Policy::from_doc(strategy.new_tree(&mut runner).unwrap().current()).unwrap())
        .collect()
}

/// Applies through plan + apply and checks that the listing is what was desired.
fn apply_and_check(b: &NftBackend, a: &NftArtefact, what: &str) -> NftPlanKind {
    let before = b.read().unwrap();
    let plan = b.plan(a, before.as_ref()).unwrap();
    b.apply(&plan)
        .unwrap_or_else(|e| panic!("{what}: {e}\nplan: {plan}"));
    let now = b.read().unwrap().expect("installed");
    let want = NftState::from_artefact(a);
    let drift = b.drift(Some(&want), Some(&now));
    assert!(
        drift.is_empty(),
        "{what}: listed table differs from the artefact: {drift:#?}"
    );
    assert_eq!(
        b.plan(a, Some(&now)).unwrap().kind(),
        NftPlanKind::Unchanged,
        "{what}: planning again is not a no-op"
    );
    plan.kind()
}

#[test]
fn every_rule_shape_reads_back_as_expected() {
    let ns = netns();
    let mut policies = examples();
    policies.extend(generated(15));
    let mut n = 0;
    for (i, p) in policies.iter().enumerate() {
        let b = backend(&ns, &p.table);
        for rs in compile_all_roles(p) {
            let a = NftRenderer.render(&rs).unwrap();
            apply_and_check(&b, &a, &format!("policy {i}, {}", rs.target));
            n += 1;
        }
        b.remove().unwrap();
        assert!(b.read().unwrap().is_none());
    }
    assert!(n > 40, "only {n} rulesets");
}

#[test]
fn mutations_reach_exactly_the_new_table() {
    let ns = netns();
    let mut runner = TestRunner::deterministic();
    let strategy = microseg_testgen::policy_pair();
    let mut kinds = std::collections::BTreeMap::new();
    for i in 0..16 {
        let (old, _, new) = strategy.new_tree(&mut runner).unwrap().current();
        let (old, new) = (
            Policy::from_doc(old).unwrap(),
            Policy::from_doc(new).unwrap(),
        );
        if old.table != new.table {
            continue;
        }
        let b = backend(&ns, &old.table);
        for role in old.roles.keys().filter(|r| new.roles.contains_key(*r)) {
            let t = Target::Role(role.clone());
            apply_and_check(&b, &render(&old, &t), &format!("pair {i} old, {t}"));
            let k = apply_and_check(&b, &render(&new, &t), &format!("pair {i} new, {t}"));
            *kinds.entry(format!("{k}")).or_insert(0) += 1;
        }
        b.remove().unwrap();
    }
    assert!(
        kinds.contains_key("element delta"),
        "no element delta among {kinds:?}"
    );
    assert!(
        kinds.contains_key("replace"),
        "no replacement among {kinds:?}"
    );
}

/// The handles and counter values of every rule, by handle.
fn rule_counters(listing: &Value) -> Vec<(u64, u64)> {
    listing["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("rule"))
        .map(|r| {
            let packets = r["expr"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|s| s.get("counter"))
                .map(|c| c["packets"].as_u64().unwrap())
                .sum();
            (r["handle"].as_u64().unwrap(), packets)
        })
        .collect()
}

const MEMBERS: &str = r#"
version = 1
table = "ms"
[groups]
web = [WEB]
app = ["10.0.1.20"]
[roles.app]
[[flows]]
name = "web-to-app"
from = "web"
to = "app"
ports = ["tcp/8080"]
"#;

fn members(web: &str) -> Policy {
    Policy::from_str_as(&MEMBERS.replace("WEB", web), Format::Toml, None).unwrap()
}

#[test]
fn element_delta_keeps_handles_and_counters() {
    let ns = netns();
    let b = backend(&ns, "ms");
    let app = Target::Role("app".into());
    apply_and_check(&b, &render(&members("\"10.0.1.10-10.0.1.15\""), &app), "v1");
    // Some traffic: a refused TCP connection over loopback counts on the loopback rules.
    let tcp = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns.name(),
            "bash",
            "-c",
            "echo > /dev/tcp/127.0.0.1/9 || true",
        ])
        .output()
        .expect("bash");
    assert!(
        tcp.status.success(),
        "{}",
        String::from_utf8_lossy(&tcp.stderr)
    );
    let before: Value = serde_json::from_str(&list(&ns, "inet", "ms")).unwrap();
    let counted = rule_counters(&before);
    assert!(
        counted.iter().any(|(_, p)| *p > 0),
        "no counter moved: {counted:?}"
    );
    // The range grows, an address and a network join: elements only.
    let v2 = render(
        &members("\"10.0.1.10-10.0.1.16\", \"10.0.1.30\", \"10.0.2.0/24\""),
        &app,
    );
    let plan = b.plan(&v2, b.read().unwrap().as_ref()).unwrap();
    assert_eq!(plan.kind(), NftPlanKind::Elements, "{plan}");
    let text = plan.to_string();
    assert!(text.contains("+ 10.0.1.10-10.0.1.16"), "{text}");
    assert!(text.contains("- 10.0.1.10-10.0.1.15"), "{text}");
    assert!(text.contains("+ 10.0.2.0/24"), "{text}");
    assert_eq!(apply_and_check(&b, &v2, "v2"), NftPlanKind::Elements);
    let after: Value = serde_json::from_str(&list(&ns, "inet", "ms")).unwrap();
    // Same table, same rules (handles), counters not reset.
    assert_eq!(
        before["nftables"][1]["table"]["handle"],
        after["nftables"][1]["table"]["handle"]
    );
    let now = rule_counters(&after);
    assert_eq!(now.len(), counted.len());
    for ((h0, p0), (h1, p1)) in counted.iter().zip(&now) {
        assert_eq!(h0, h1, "rule handles changed");
        assert!(p1 >= p0, "counter of rule {h0} went from {p0} to {p1}");
    }
    // And back: members leave.
    assert_eq!(
        apply_and_check(&b, &render(&members("\"10.0.1.10\""), &app), "v3"),
        NftPlanKind::Elements
    );
}

#[test]
fn a_rejected_transaction_changes_nothing() {
    let ns = netns();
    let b = backend(&ns, "ms");
    let app = Target::Role("app".into());
    apply_and_check(&b, &render(&members("\"10.0.1.10\""), &app), "v1");
    let before = list(&ns, "inet", "ms");
    // Fault: a rule matching a set the document does not define.
    let good = render(&members("\"10.0.1.11\""), &app);
    let text = backend_nft::to_json(&good).replace("@web_v4", "@missing_v4");
    let doc: nftables::schema::Nftables = serde_json::from_str(&text).unwrap();
    let bad = NftArtefact::from_document("ms", app.clone(), doc);
    let plan = b.plan(&bad, b.read().unwrap().as_ref()).unwrap();
    assert_eq!(plan.kind(), NftPlanKind::Replace, "{plan}");
    let err = b.apply(&plan).unwrap_err().to_string();
    assert!(err.contains("nft -j -f -"), "{err}");
    assert!(
        err.contains("missing_v4") || err.contains("No such file"),
        "nft's stderr: {err}"
    );
    // Byte for byte, handles included.
    assert_eq!(list(&ns, "inet", "ms"), before);
    // A bad element delta (deleting what is not there) is refused whole too.
    let mut current = b.read().unwrap().unwrap();
    let json = serde_json::to_string(&current)
        .unwrap()
        .replace("10.0.1.10", "10.0.1.99");
    current = serde_json::from_str(&json).unwrap();
    let plan = b.plan(&good, Some(&current)).unwrap();
    assert_eq!(plan.kind(), NftPlanKind::Elements, "{plan}");
    assert!(b.apply(&plan).is_err());
    assert_eq!(list(&ns, "inet", "ms"), before);
}

#[test]
fn snapshots_restore_exactly_and_foreign_tables_stay() {
    let ns = netns();
    Nft::in_netns(ns.name())
        .run(
            &["-f", "-"],
            Some(
                "table inet foreign {\n\tset s {\n\t\ttype ipv4_addr\n\t\telements = { 192.0.2.1 }\n\t}\n\
                 \tchain c {\n\t\ttype filter hook input priority 10; policy accept;\n\t\tip saddr @s counter\n\t}\n}\n\
                 table ip other {\n\tchain d {\n\t\tcounter\n\t}\n}\n",
            ),
        )
        .unwrap();
    let foreign = (list(&ns, "inet", "foreign"), list(&ns, "ip", "other"));
    let b = backend(&ns, "ms");
    let app = Target::Role("app".into());
    assert!(b.read().unwrap().is_none());
    apply_and_check(&b, &render(&members("\"10.0.1.10\""), &app), "v1");
    // A hand-made change inside our table is part of the snapshot.
    Nft::in_netns(ns.name())
        .run(
            &[
                "add", "rule", "inet", "ms", "input", "tcp", "dport", "9999", "counter", "accept",
            ],
            None,
        )
        .unwrap();
    let saved = b.read().unwrap().unwrap();
    let saved_listing = list(&ns, "inet", "ms");
    apply_and_check(
        &b,
        &render(&members("\"10.0.1.11\""), &app),
        "v2 (replace: the manual rule goes)",
    );
    b.restore(Some(&saved)).unwrap();
    let restored = b.read().unwrap().unwrap();
    assert!(b.drift(Some(&saved), Some(&restored)).is_empty());
    // Counter values come back too; only handles differ.
    let strip = |s: &str| {
        let v: Value = serde_json::from_str(s).unwrap();
        serde_json::to_string(&strip_handles(&v)).unwrap()
    };
    assert_eq!(strip(&list(&ns, "inet", "ms")), strip(&saved_listing));
    // Restoring "nothing installed" removes our table only.
    b.restore(None).unwrap();
    assert!(b.read().unwrap().is_none());
    b.remove().unwrap(); // idempotent
    assert_eq!(
        (list(&ns, "inet", "foreign"), list(&ns, "ip", "other")),
        foreign
    );
}

fn strip_handles(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| k.as_str() != "handle")
                .map(|(k, v)| (k.clone(), strip_handles(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_handles).collect()),
        o => o.clone(),
    }
}
