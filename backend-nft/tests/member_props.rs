//! The claim an element delta planned from the IR rests on
//! (`backend_nft::members`): for random policies and random edits of them
//! (from `microseg-testgen`: flows added, removed or altered, members added
//! or removed, baseline and egress changes), whenever the plain lowering's
//! member digests of a role's two rulesets are equal, the state the old
//! ruleset leaves with the new members written in is exactly the state the
//! new ruleset leaves — so the delta of the sets' intervals is the whole
//! change. And two renderings of another structure never share a digest.
//!
//! For the optimised lowering: whenever the member digests are equal and
//! `members::level1_after` computes the new level-1 maps from the old
//! ones and the old set members (partitioning only what changed), they are
//! exactly the maps of the new ruleset, its element changes take the old
//! maps to the new, and the old state with them written in is exactly the
//! new state.
//!
//! `MICROSEG_PROPTEST_CASES=N` runs it with `N` cases.

use backend_nft::members::{
    apply_changes, elements_v4, elements_v6, level1_after, level1_maps, map_elements,
    member_structure, OldSet,
};
use backend_nft::{Lowering, NftState};
use microseg_core::addr::Family;
use microseg_core::ir::{compile, Target};
use microseg_core::Policy;
use microseg_testgen as tg;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use std::sync::atomic::{AtomicUsize, Ordering};

#[test]
fn equal_member_digests_mean_the_same_table_but_for_set_elements() {
    let config = tg::config(256);
    let cases = config.cases;
    let (same, differ, member_edits) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    let mut runner = TestRunner::new(config);
    let result = runner.run(&tg::policy_pair(), |(old, mutation, new)| {
        let (Ok(old), Ok(new)) = (Policy::from_doc(old), Policy::from_doc(new)) else {
            return Ok(());
        };
        let member_edit = matches!(
            mutation,
            tg::Mutation::AddMember(..) | tg::Mutation::RemoveMember(..)
        );
        for role in old.roles.keys() {
            let target = Target::Role(role.clone());
            let (Ok(a), Ok(b)) = (compile(&old, &target), compile(&new, &target)) else {
                continue;
            };
            let (da, db) = (
                member_structure(Lowering::Plain, &a),
                member_structure(Lowering::Plain, &b),
            );
            prop_assert!(da.is_some() && db.is_some());
            prop_assert_eq!(&da, &member_structure(Lowering::Plain, &a), "deterministic");
            let render = |rs| {
                Lowering::Plain
                    .render(rs)
                    .map_err(|e| TestCaseError::fail(format!("render: {e}")))
            };
            let (ra, rb) = (render(&a)?, render(&b)?);
            let expected = NftState::from_artefact(&rb);
            if da != db {
                differ.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            same.fetch_add(1, Ordering::Relaxed);
            if member_edit {
                member_edits.fetch_add(1, Ordering::Relaxed);
            }
            prop_assert_eq!(
                NftState::structure_digest_of(&ra),
                NftState::structure_digest_of(&rb)
            );
            let mut patched = NftState::from_artefact(&ra);
            for set in b.sets.values() {
                let elems = match set.family {
                    Family::V4 => elements_v4(set.addrs.v4.ranges()),
                    Family::V6 => elements_v6(set.addrs.v6.ranges()),
                };
                prop_assert!(patched.set_elements_to(&set.name, elems), "{}", set.name);
            }
            prop_assert_eq!(
                &patched,
                &expected,
                "role {}: {:?}\n{}",
                role,
                mutation,
                backend_nft::to_nft_text(&rb)
            );
        }
        Ok(())
    });
    let (same, differ, member_edits) = (
        same.load(Ordering::Relaxed),
        differ.load(Ordering::Relaxed),
        member_edits.load(Ordering::Relaxed),
    );
    eprintln!(
        "{cases} cases: {same} role pairs with equal digests ({member_edits} after a member \
         edit), {differ} with different ones"
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    // Not vacuous: both branches are taken, member edits included.
    assert!(same > 0 && differ > 0 && member_edits > 0);
}

#[test]
fn level1_maps_after_a_member_change_are_those_of_the_new_ruleset() {
    let config = tg::config(256);
    let cases = config.cases;
    let (spliced, refused, differ) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    let mut runner = TestRunner::new(config);
    let result = runner.run(&tg::policy_pair(), |(old, mutation, new)| {
        let (Ok(old), Ok(new)) = (Policy::from_doc(old), Policy::from_doc(new)) else {
            return Ok(());
        };
        for role in old.roles.keys() {
            let target = Target::Role(role.clone());
            let (Ok(a), Ok(b)) = (compile(&old, &target), compile(&new, &target)) else {
                continue;
            };
            let (da, db) = (
                member_structure(Lowering::Optimized, &a),
                member_structure(Lowering::Optimized, &b),
            );
            if da.is_none() || da != db {
                differ.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let fail = |e: backend_nft::NftError| TestCaseError::fail(e.to_string());
            let Some(before) = level1_maps(&a).map_err(fail)? else {
                continue;
            };
            let old_sets = |name: &str| {
                a.sets.get(name).map(|s| {
                    OldSet::Was(match s.family {
                        Family::V4 => s
                            .addrs
                            .v4
                            .ranges()
                            .iter()
                            .map(|&(x, y)| (u128::from(x), u128::from(y)))
                            .collect(),
                        Family::V6 => s.addrs.v6.ranges().to_vec(),
                    })
                })
            };
            let Some(changes) = level1_after(&b, &old_sets, &before).map_err(fail)? else {
                refused.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            spliced.fetch_add(1, Ordering::Relaxed);
            let after = level1_maps(&b).map_err(fail)?;
            // The element changes take the old maps to the new ones, and
            // change nothing twice.
            let new = apply_changes(&before, &changes);
            prop_assert_eq!(Some(&new), after.as_ref(), "role {}: {:?}", role, mutation);
            for c in &changes {
                let old_map = before.iter().find(|m| m.name == c.map).unwrap();
                prop_assert!(c.delete.iter().all(|e| old_map.elems.contains(e)));
                prop_assert!(c.add.iter().all(|e| !old_map.elems.contains(e)));
                prop_assert!(c.add.iter().all(|e| (e.0 != e.1) == c.interval));
            }
            let render = |rs| {
                Lowering::Optimized
                    .render(rs)
                    .map_err(|e| TestCaseError::fail(format!("render: {e}")))
            };
            let (ra, rb) = (render(&a)?, render(&b)?);
            let mut patched = NftState::from_artefact(&ra);
            for m in &new {
                prop_assert!(patched.map_elements_to(&m.name, map_elements(m, &m.elems)));
            }
            let want = NftState::from_artefact(&rb);
            prop_assert_eq!(
                &patched,
                &want,
                "role {}: {:?}\n{}",
                role,
                mutation,
                backend_nft::to_nft_text(&rb)
            );
        }
        Ok(())
    });
    let (spliced, refused, differ) = (
        spliced.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        differ.load(Ordering::Relaxed),
    );
    eprintln!(
        "{cases} cases: {spliced} role pairs spliced, {refused} refused (not level-1 elements \
         alone), {differ} of other rules"
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(spliced > 0 && differ > 0);
}

/// The hash of single addresses has a size fixed by its element count
/// (the kernel refuses elements past it), which changes at powers of two:
/// a member change across one is not an element change, whatever else
/// holds; one within the same power of two is.
#[test]
fn a_member_change_past_a_power_of_two_of_single_addresses_is_a_new_map() {
    use microseg_core::document::Format;
    // `n` isolated client addresses (no two adjacent: each its own element).
    let policy = |n: u32| {
        let clients: Vec<String> = (0..n)
            .map(|i| format!("\"10.1.{}.{}\"", i / 100, 2 * (i % 100) + 1))
            .collect();
        let text = format!(
            "version = 1\n[groups]\ndb = [\"10.9.0.1\"]\nclients = [{}]\n\
             [services]\npg = [\"tcp/5432\"]\n[roles.db]\n\
             [[flows]]\nname = \"pg\"\nfrom = \"clients\"\nto = \"db\"\nservices = [\"pg\"]\n",
            clients.join(", ")
        );
        let p = Policy::from_str_as(&text, Format::Toml, None).unwrap();
        compile(&p, &Target::Role("db".into())).unwrap()
    };
    let single = |rs| {
        let maps = level1_maps(rs).unwrap().unwrap();
        maps.into_iter().find(|m| m.name == "in4_single").unwrap()
    };
    let size = |rs| {
        let text = backend_nft::to_nft_text(&Lowering::Optimized.render(rs).unwrap());
        let at = text.find("map in4_single").unwrap();
        let line = text[at..]
            .lines()
            .find(|l| l.trim().starts_with("size"))
            .unwrap();
        line.trim().to_string()
    };
    let (r1023, r1024, r1025) = (policy(1023), policy(1024), policy(1025));
    assert_eq!(single(&r1024).elems.len(), 1024);
    assert_eq!(
        (size(&r1023), size(&r1024)),
        ("size 2048".into(), "size 2048".into())
    );
    assert_eq!(size(&r1025), "size 4096");
    let was = |rs: &microseg_core::ir::HostRuleset| {
        let old: Vec<(String, Vec<(u128, u128)>)> = rs
            .sets
            .values()
            .map(|s| {
                let v = s.addrs.v4.ranges().iter();
                (
                    s.name.clone(),
                    v.map(|&(x, y)| (x.into(), y.into())).collect(),
                )
            })
            .collect();
        move |name: &str| {
            old.iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| OldSet::Was(v.clone()))
        }
    };
    let before = level1_maps(&r1024).unwrap().unwrap();
    // Down to 1,023: the same size, an element change.
    let changes = level1_after(&r1023, &was(&r1024), &before)
        .unwrap()
        .unwrap();
    assert_eq!(
        Some(apply_changes(&before, &changes)),
        level1_maps(&r1023).unwrap()
    );
    // Up to 1,025: a map of another size, so no element change.
    assert_eq!(level1_after(&r1025, &was(&r1024), &before).unwrap(), None);
}
