//! Element deltas over nfnetlink (`NftBackend::apply_at`) against the real
//! kernel, each test in a network namespace of its own: random membership
//! changes (addresses, ranges, prefixes, both ends of both address spaces)
//! leave exactly the table nft itself loads from the new document; a batch
//! planned at a stale generation, or one the kernel refuses, changes
//! nothing; the generation grows by one per transaction. The same for the
//! optimised lowering, whose level-1 verdict maps (a hash of single
//! addresses, an interval map of the rest) take element deltas with their
//! jumps.
//!
//! Needs root, `ip` and `nft`. Run: `cargo test -p backend-nft --test netlink`.

use backend_nft::{Lowering, Nft, NftArtefact, NftBackend, NftError, NftPlan, NftPlanKind};
use backend_nft::{NftState, SetDelta};
use microseg_core::backend::Backend;
use microseg_core::document::Format;
use microseg_core::ir::{compile, Target};
use microseg_core::Policy;
use microseg_lab::Netns;
use serde_json::json;

fn netns() -> Netns {
    Netns::new("msnl").unwrap_or_else(|e| panic!("{e}"))
}

fn artefact(web: &[String]) -> NftArtefact {
    artefact_as(Lowering::Plain, web)
}

fn artefact_as(lowering: Lowering, web: &[String]) -> NftArtefact {
    let members: Vec<String> = web.iter().map(|m| format!("\"{m}\"")).collect();
    let p = Policy::from_str_as(
        &format!(
            "version = 1\ntable = \"nl\"\n[groups]\nweb = [{}]\nadm = [\"10.9.0.1\", \"2001:db8:9::1\"]\n\
             [roles.adm]\n[[flows]]\nfrom = \"adm\"\nto = \"web\"\nports = [\"tcp/22\"]\n",
            members.join(", ")
        ),
        Format::Toml,
        None,
    )
    .unwrap();
    lowering
        .render(&compile(&p, &Target::Role("adm".into())).unwrap())
        .unwrap()
}

/// The table as nft lists it (text: no handles).
fn listing(ns: &Netns) -> String {
    let out = ns.nft(&["list", "table", "inet", "nl"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A small deterministic generator.
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Random members from a few neighbourhoods, so that intervals touch,
/// overlap, grow, shrink and split between rounds; with both ends of both
/// address spaces.
fn members(r: &mut Lcg) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..r.below(12) {
        let base = [0u32, 0x0a00_0000, 0x0a00_0100, u32::MAX - 40][r.below(4) as usize];
        let a = base.saturating_add(r.below(40) as u32);
        let ip = |x: u32| std::net::Ipv4Addr::from(x).to_string();
        out.push(match r.below(3) {
            0 => ip(a),
            1 => format!("{}-{}", ip(a), ip(a.saturating_add(r.below(20) as u32))),
            _ => format!("{}/30", ip(a & !3)),
        });
    }
    for _ in 0..r.below(6) {
        let base = [0u128, 0x2001_0db8 << 96, u128::MAX - 300][r.below(3) as usize];
        let a = base.saturating_add(r.below(300) as u128);
        let ip = |x: u128| std::net::Ipv6Addr::from(x).to_string();
        out.push(match r.below(3) {
            0 => ip(a),
            1 => format!("{}-{}", ip(a), ip(a.saturating_add(r.below(70) as u128))),
            _ => format!("{}/126", ip(a & !3)),
        });
    }
    if out.is_empty() {
        out.push("10.0.0.1".into());
    }
    out
}

#[test]
fn random_member_changes_leave_exactly_what_nft_loads() {
    random_member_changes(Lowering::Plain);
}

#[test]
fn random_member_changes_of_verdict_maps_leave_exactly_what_nft_loads() {
    random_member_changes(Lowering::Optimized);
}

fn random_member_changes(lowering: Lowering) {
    let (ours, theirs) = (netns(), netns());
    let b = NftBackend::new(Nft::in_netns(ours.name()), "nl");
    let reference = NftBackend::new(Nft::in_netns(theirs.name()), "nl");
    let mut r = Lcg(7);
    let mut netlink_deltas = 0;
    for round in 0..40 {
        let web = members(&mut r);
        let a = artefact_as(lowering, &web);
        let before = b.read().unwrap();
        let plan = b.plan(&a, before.as_ref()).unwrap();
        let at = b.generation().expect("generation");
        let after = b
            .apply_at(&plan, Some(&at))
            .unwrap_or_else(|e| panic!("round {round} {web:?}: {e}\n{plan}"));
        if plan.kind() == NftPlanKind::Elements {
            netlink_deltas += 1;
        }
        if plan.kind() != NftPlanKind::Unchanged {
            assert_eq!(
                after.map(|g| g.id),
                Some(at.id + 1),
                "round {round}: one transaction"
            );
        } else {
            assert_eq!(after, Some(at));
        }
        // The same document loaded by nft into a fresh table elsewhere.
        reference.remove().unwrap();
        reference.nft.apply_json(&a).unwrap();
        assert_eq!(
            listing(&ours),
            listing(&theirs),
            "round {round}: members {web:?}\nplan: {plan}"
        );
        let now = b.read().unwrap();
        assert!(b
            .drift(Some(&NftState::from_artefact(&a)), now.as_ref())
            .is_empty());
    }
    assert!(
        netlink_deltas >= 20,
        "{lowering:?}: only {netlink_deltas} rounds were element deltas"
    );
}

#[test]
fn large_deltas_span_several_messages_or_go_through_nft() {
    large_deltas(Lowering::Plain);
}

#[test]
fn large_deltas_of_verdict_maps_span_several_messages_or_go_through_nft() {
    large_deltas(Lowering::Optimized);
}

fn large_deltas(lowering: Lowering) {
    let artefact = |web: &[String]| artefact_as(lowering, web);
    let (ours, theirs) = (netns(), netns());
    let b = NftBackend::new(Nft::in_netns(ours.name()), "nl");
    let reference = NftBackend::new(Nft::in_netns(theirs.name()), "nl");
    // The optimised lowering's hash of single addresses has a size that
    // changes at powers of two of its count (a new map, so a replacement):
    // 4,200 more addresses keep every step below within (4,096, 8,192].
    let (ballast, large) = match lowering {
        Lowering::Plain => (0, 6_000),
        Lowering::Optimized => (4_200, 3_900),
    };
    let spread = |n: u32, from: u32| -> Vec<String> {
        (0..n)
            .map(|i| 0x0a00_0000 + from + 2 * i)
            .chain((0..ballast).map(|i| 0x0a10_0000 + 2 * i))
            .map(|a| std::net::Ipv4Addr::from(a).to_string())
            .chain(["2001:db8::1".to_string()])
            .collect()
    };
    b.apply_at(&b.plan(&artefact(&spread(10, 0)), None).unwrap(), None)
        .unwrap();
    // 1,500 intervals: about 60 kB, several element messages in one batch;
    // 6,000 (3,900 and 1,500 deleted): too large for one batch, so one nft
    // transaction.
    for (n, from) in [(1_500, 0), (large, 100_000), (10, 0)] {
        let a = artefact(&spread(n, from));
        let plan = b.plan(&a, b.read().unwrap().as_ref()).unwrap();
        assert_eq!(plan.kind(), NftPlanKind::Elements, "{n}");
        let at = b.generation().unwrap();
        let after = b.apply_at(&plan, Some(&at)).unwrap();
        assert_eq!(after.map(|g| g.id), Some(at.id + 1), "{n}: one transaction");
        reference.remove().unwrap();
        reference.nft.apply_json(&a).unwrap();
        assert!(
            listing(&ours) == listing(&theirs),
            "{n} addresses from {from}"
        );
    }
    if lowering == Lowering::Optimized {
        // Down to one address: a map of another size, replaced.
        let a = artefact_as(lowering, &["10.0.0.1".to_string()]);
        let plan = b.plan(&a, b.read().unwrap().as_ref()).unwrap();
        assert_eq!(plan.kind(), NftPlanKind::Replace);
        b.apply_at(&plan, None).unwrap();
        reference.remove().unwrap();
        reference.nft.apply_json(&a).unwrap();
        assert!(listing(&ours) == listing(&theirs));
        assert!(listing(&ours).contains("size 1024"));
    }
}

#[test]
fn a_stale_generation_changes_nothing() {
    let ns = netns();
    let b = NftBackend::new(Nft::in_netns(ns.name()), "nl");
    let one = artefact(&["10.0.0.1".into()]);
    b.apply_at(&b.plan(&one, None).unwrap(), None).unwrap();
    let at = b.generation().unwrap();
    let current = b.read().unwrap();
    let plan = b
        .plan(
            &artefact(&["10.0.0.1".into(), "10.0.0.5".into()]),
            current.as_ref(),
        )
        .unwrap();
    assert_eq!(plan.kind(), NftPlanKind::Elements);
    // Someone commits elsewhere in the ruleset meanwhile.
    Nft::in_netns(ns.name())
        .run(&["add", "table", "ip", "other"], None)
        .unwrap();
    let before = listing(&ns);
    match b.apply_at(&plan, Some(&at)) {
        Err(NftError::Elements {
            generation_changed: true,
            ..
        }) => {}
        other => panic!("expected a generation mismatch, got {other:?}"),
    }
    assert_eq!(listing(&ns), before);
    assert_eq!(b.generation().map(|g| g.id), Some(at.id + 1));
    // Guarded by the current generation it goes through (the plan was made
    // from the table as it still is; only another table changed).
    let now = b.generation().unwrap();
    assert_eq!(
        b.apply_at(&plan, Some(&now)).unwrap().map(|g| g.id),
        Some(at.id + 2)
    );
    assert!(listing(&ns).to_string().contains("10.0.0.5"));
}

#[test]
fn a_refused_batch_changes_nothing() {
    let ns = netns();
    let b = NftBackend::new(Nft::in_netns(ns.name()), "nl");
    let one = artefact(&["10.0.0.1".into(), "2001:db8::1".into()]);
    b.apply_at(&b.plan(&one, None).unwrap(), None).unwrap();
    let before = listing(&ns);
    let at = b.generation().unwrap();
    // An add that would go through, and a delete of a member that is not there.
    let plan = NftPlan::Elements {
        table: "nl".into(),
        sets: vec![
            SetDelta {
                set: "web_v4".into(),
                add: vec![json!("10.0.0.9")],
                delete: vec![],
                key: Some("ipv4_addr".into()),
                interval: true,
            },
            SetDelta {
                set: "web_v6".into(),
                add: vec![],
                delete: vec![json!("2001:db8::7")],
                key: Some("ipv6_addr".into()),
                interval: true,
            },
        ],
    };
    let err = b.apply_at(&plan, Some(&at)).unwrap_err();
    assert!(
        matches!(&err, NftError::Elements { generation_changed: false, message, .. } if message.contains("web_v6")),
        "{err}"
    );
    assert_eq!(listing(&ns), before);
    assert_eq!(b.generation().as_ref(), Some(&at), "nothing committed");
    // A generation of another ruleset (another namespace) is refused.
    let elsewhere_ns = netns();
    let other = NftBackend::new(Nft::in_netns(elsewhere_ns.name()), "nl");
    let elsewhere = other.generation().unwrap();
    assert_ne!(elsewhere.ruleset, at.ruleset);
    assert!(matches!(
        b.apply_at(&plan, Some(&elsewhere)),
        Err(NftError::Elements {
            generation_changed: true,
            ..
        })
    ));
}
