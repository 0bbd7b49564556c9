//! The claim an element delta planned from the IR rests on
//! (`backend_nft::members`): for random policies and random edits of them
//! (from `microseg-testgen`: flows added, removed or altered, members added
//! or removed, baseline and egress changes), whenever the plain lowering's
//! member digests of a role's two rulesets are equal, the state the old
//! ruleset leaves with the new members written in is exactly the state the
//! new ruleset leaves — so the delta of the sets' intervals is the whole
//! change. And two renderings of another structure never share a digest.
//!
//! `MICROSEG_PROPTEST_CASES=N` runs it with `N` cases.

use backend_nft::members::{elements_v4, elements_v6, member_structure};
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
            prop_assert!(member_structure(Lowering::Optimized, &a).is_none());
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
