//! The optimised lowering on the real nft and kernel (root): every role of
//! the examples and of generated policies passes `nft -j -c -f` and `nft -c
//! -f`, loads through [`NftBackend`] (plan + apply), lists back exactly as
//! rendered (no drift, planning again is a no-op), and the text loads to the
//! same table; and `microseg verify`'s probes — real TCP/UDP/ICMP
//! connections between network namespaces — observe the policy through it.
//!
//! Run: `cargo test -p backend-nft --test optimized_kernel` (as root).

use backend_nft::{Lowering, Nft, NftArtefact, NftBackend, NftPlanKind, NftState};
use microseg_core::backend::Backend;
use microseg_core::document::Format;
use microseg_core::ir::compile_all_roles;
use microseg_core::Policy;
use microseg_lab::Netns;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use std::path::Path;

fn require_root() {
    microseg_lab::require_root("backend-nft/tests/optimized_kernel.rs")
        .unwrap_or_else(|e| panic!("{e}"));
}

fn examples() -> Vec<(String, Policy)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut out: Vec<(String, Policy)> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .filter_map(|p| {
            Policy::from_file(&p)
                .ok()
                .map(|pol| (p.file_name().unwrap().to_string_lossy().into_owned(), pol))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
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
[roles.part]
hosts = ["10.0.1.12-10.0.1.40"]
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
    let mut runner = TestRunner::deterministic();
    let strategy = microseg_testgen::policy_doc();
    for i in 0..25 {
        let doc = strategy.new_tree(&mut runner).unwrap().current();
        out.push((format!("generated-{i}"), Policy::from_doc(doc).unwrap()));
    }
    out
}

#[test]
fn optimized_rulesets_check_load_and_list_back_exactly() {
    let ns = Netns::new("msopt").unwrap_or_else(|e| panic!("{e}"));
    let nft = Nft::in_netns(ns.name());
    let mut n = 0;
    for (what, policy) in examples() {
        let b = NftBackend::new(nft.clone(), &policy.table).with_lowering(Lowering::Optimized);
        for rs in compile_all_roles(&policy) {
            let what = format!("{what}, {}", rs.target);
            let a: NftArtefact = Lowering::Optimized.render(&rs).unwrap();
            let text = backend_nft::to_nft_text(&a);
            nft.check_json(&a)
                .unwrap_or_else(|e| panic!("{what}: nft -j -c -f refused: {e}\n{text}"));
            nft.check_text(&a)
                .unwrap_or_else(|e| panic!("{what}: nft -c -f refused: {e}\n{text}"));
            // Through the backend (renders with the optimised lowering).
            let desired = microseg_core::backend::Renderer::render(&b, &rs).unwrap();
            assert_eq!(desired, a);
            let before = b.read().unwrap();
            let plan = b.plan(&a, before.as_ref()).unwrap();
            b.apply(&plan).unwrap_or_else(|e| panic!("{what}: {e}"));
            let now = b.read().unwrap().expect("installed");
            let drift = b.drift(Some(&NftState::from_artefact(&a)), Some(&now));
            assert!(
                drift.is_empty(),
                "{what}: listed differs: {drift:#?}\n{text}"
            );
            assert_eq!(
                b.plan(&a, Some(&now)).unwrap().kind(),
                NftPlanKind::Unchanged,
                "{what}: planning again is not a no-op"
            );
            // The text loads to exactly the same table.
            nft.apply_text(&a)
                .unwrap_or_else(|e| panic!("{what}: nft -f: {e}"));
            let again = b.read().unwrap().expect("installed");
            assert!(
                b.drift(Some(&now), Some(&again)).is_empty(),
                "{what}: text and JSON differ"
            );
            n += 1;
        }
        b.remove().unwrap();
    }
    eprintln!("optimized: {n} rulesets checked, loaded and listed back");
    assert!(n > 60, "only {n} rulesets");
}

/// `microseg verify`'s lab and probes with the optimised lowering installed:
/// every host pair on every port of the policy, observed == expected.
#[test]
fn optimized_rulesets_enforce_the_examples_on_the_kernel() {
    require_root();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for file in ["three-tier.toml", "dual-stack.toml"] {
        let policy = Policy::from_file(dir.join(file)).unwrap();
        let install = |lab: &microseg_lab::Lab, host: &str, rs: &microseg_core::ir::HostRuleset| {
            let ns = lab.netns_name(host).map_err(|e| e.to_string())?;
            let a = Lowering::Optimized.render(rs).map_err(|e| e.to_string())?;
            Nft::in_netns(ns).apply_json(&a).map_err(|e| e.to_string())
        };
        let report = microseg_verify::verify(&policy, &install).unwrap();
        assert!(
            report.ok(),
            "{file}: {} mismatches\n{}",
            report.mismatches(),
            report.to_text()
        );
        eprintln!("{file}: optimized lowering verified on the kernel");
    }
}
