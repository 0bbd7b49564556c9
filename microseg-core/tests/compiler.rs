//! [`Compiler`] (the per-flow preparation done once, with an index of the
//! flows' spans) against [`compile`]: for random valid policies from
//! `microseg-testgen`, every role and every host that holds a role get
//! exactly the same ruleset.

use microseg_core::ir::{compile, Compiler, Target};
use microseg_core::Policy;
use microseg_testgen as tg;
use proptest::prelude::*;

fn targets(policy: &Policy) -> Vec<Target> {
    let mut t: Vec<Target> = policy
        .roles
        .keys()
        .map(|r| Target::Role(r.clone()))
        .collect();
    for role in policy.roles.values() {
        for (lo, hi) in role.hosts.ranges_v4() {
            t.push(Target::Host(lo.into()));
            t.push(Target::Host(hi.into()));
        }
        for (lo, hi) in role.hosts.ranges_v6() {
            t.push(Target::Host(lo.into()));
            t.push(Target::Host(hi.into()));
        }
    }
    t
}

proptest! {
    #![proptest_config(tg::config(200))]

    #[test]
    fn compiler_compiles_what_compile_compiles(doc in tg::policy_doc_with(tg::Limits {
        groups: 8,
        entries: 6,
        services: 3,
        roles: 6,
        flows: 24,
    })) {
        let policy = Policy::from_doc(doc).unwrap();
        let compiler = Compiler::new(&policy);
        for target in targets(&policy) {
            let expected = compile(&policy, &target);
            let got = compiler.compile(&target);
            match (got, expected) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a, b, "{}", target),
                (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
                (a, b) => prop_assert!(false, "{target}: {a:?} vs {b:?}"),
            }
        }
    }
}

#[test]
fn compiler_on_the_examples() {
    for f in ["three-tier.toml", "dual-stack.toml"] {
        let path = format!("{}/../examples/{f}", env!("CARGO_MANIFEST_DIR"));
        let policy = Policy::from_file(&path).unwrap();
        let compiler = Compiler::new(&policy);
        for target in targets(&policy) {
            assert_eq!(
                compiler.compile(&target).unwrap(),
                compile(&policy, &target).unwrap(),
                "{f}: {target}"
            );
        }
    }
}
