//! A sampled real-kernel property: random small policies (microseg-testgen),
//! every role's (or multi-role host's) nft JSON loaded into its own network
//! namespace, and real TCP/UDP/ICMP probes between the test hosts held
//! against `Policy::decide` (microseg-verify). Needs root.
//!
//! `MICROSEG_KERNEL_CASES` sets the number of policies (default 4 in the
//! normal run; raise it for long runs).

use backend_nft::{Nft, NftRenderer};
use microseg_core::backend::Renderer;
use microseg_core::ir::HostRuleset;
use microseg_core::Policy;
use microseg_lab::Lab;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, TestRng, TestRunner};

fn install(lab: &Lab, host: &str, rs: &HostRuleset) -> Result<(), String> {
    let ns = lab.netns_name(host).map_err(|e| e.to_string())?;
    let art = NftRenderer.render(rs).map_err(|e| e.to_string())?;
    Nft::in_netns(ns)
        .apply_json(&art)
        .map_err(|e| e.to_string())
}

#[test]
fn random_policies_hold_on_the_kernel() {
    let cases: usize = std::env::var("MICROSEG_KERNEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    // A fixed seed: CI sees the same policies every run; long runs vary via the count.
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(proptest::test_runner::RngAlgorithm::ChaCha, &[7; 32]),
    );
    let strategy = microseg_testgen::policy_doc();
    let (mut tested, mut probes) = (0, 0);
    let mut attempts = 0;
    while tested < cases && attempts < cases * 20 {
        attempts += 1;
        let doc = strategy.new_tree(&mut runner).expect("a policy").current();
        let policy = Policy::from_doc(doc.clone()).expect("generated policies are valid");
        if policy.roles.values().all(|r| r.hosts.is_empty()) {
            continue;
        }
        let report = match microseg_verify::verify(&policy, &install) {
            Ok(r) => r,
            // Policies with nothing to test (no role with a usable host) are skipped.
            Err(microseg_verify::VerifyError::Nothing(_)) => continue,
            Err(e) => panic!("verify failed: {e}\npolicy:\n{}", doc.to_toml()),
        };
        assert!(
            report.ok(),
            "kernel disagrees with the semantics:\n{}\npolicy:\n{}",
            report.to_text(),
            doc.to_toml()
        );
        tested += 1;
        probes += report.probes.len();
    }
    println!("kernel property: {tested} random policies, {probes} probes, all matched");
    assert_eq!(tested, cases, "too few testable policies generated");
}
