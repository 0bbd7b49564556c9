//! The model of the emitted firewalld objects decides every connection, in
//! both directions, exactly as the IR does — for random policies, per role
//! and per host.

use backend_firewalld::model::Model;
use backend_firewalld::{FirewalldError, FirewalldRenderer};
use microseg_core::backend::Renderer;
use microseg_core::ir::{compile, Direction, HostRuleset, Target};
use microseg_core::semantics::{Connection, Verdict};
use microseg_core::Policy;
use proptest::prelude::*;

/// The rulesets of a policy: every role, and every role's first host.
fn rulesets(p: &Policy) -> Vec<HostRuleset> {
    let mut out = Vec::new();
    for (name, role) in &p.roles {
        out.push(compile(p, &Target::Role(name.clone())).expect("role compiles"));
        if let Some(h) = role.hosts.example() {
            out.push(compile(p, &Target::Host(h)).expect("host compiles"));
        }
    }
    out
}

fn check(rs: &HostRuleset, conns: &[Connection]) -> Result<(), TestCaseError> {
    let cfg = match FirewalldRenderer.render(rs) {
        Ok(c) => c,
        Err(FirewalldError::Unsupported { .. }) => return Ok(()),
        Err(e) => return Err(TestCaseError::fail(format!("render {}: {e}", rs.target))),
    };
    let model = Model::new(&cfg).map_err(|e| TestCaseError::fail(e.to_string()))?;
    for c in conns {
        for dir in [Direction::Input, Direction::Output] {
            let ir = rs.decide(dir, c).verdict;
            let fw = model.decide(dir, c).map_err(|e| {
                TestCaseError::fail(format!("{}: {e}\n{}", rs.target, cfg.to_json()))
            })?;
            prop_assert_eq!(
                fw,
                ir,
                "{} {:?} {}: firewalld model {:?}, IR {:?}\n{}",
                rs.target,
                dir,
                c,
                fw,
                ir,
                cfg.to_json()
            );
        }
        prop_assert_ne!(
            model.decide_forward(c),
            Verdict::Accept,
            "forwarding must not be accepted"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(microseg_testgen::config(200))]

    #[test]
    fn model_equals_ir_both_directions((policy, conns) in microseg_testgen::policy_with_connections(48)) {
        for rs in rulesets(&policy) {
            check(&rs, &conns)?;
        }
    }

    /// With firewalld's RFC3964_IPv4 on, output differs from the IR only by
    /// rejecting its fixed list of IPv6 destinations.
    #[test]
    fn rfc3964_only_touches_its_list((policy, conns) in microseg_testgen::policy_with_connections(24)) {
        for rs in rulesets(&policy) {
            let Ok(cfg) = FirewalldRenderer.render(&rs) else { continue };
            let plain = Model::new(&cfg).unwrap();
            let rfc = Model::new(&cfg).unwrap().with_rfc3964(true);
            for c in &conns {
                let a = plain.decide(Direction::Output, c).unwrap();
                let b = rfc.decide(Direction::Output, c).unwrap();
                if a != b {
                    prop_assert_eq!(b, Verdict::Reject);
                    let in_list = ["::/96", "::ffff:0.0.0.0/96", "2002::/16"]
                        .iter()
                        .any(|n| n.parse::<ipnet::IpNet>().unwrap().contains(&c.dst));
                    prop_assert!(in_list, "{}", c);
                }
                prop_assert_eq!(plain.decide(Direction::Input, c).unwrap(), rfc.decide(Direction::Input, c).unwrap());
            }
        }
    }
}

/// The examples, on every host address class of the policy (not just random draws).
#[test]
fn examples_equal_ir_on_boundaries() {
    use proptest::strategy::{Strategy, ValueTree};
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for file in ["three-tier.toml", "dual-stack.toml"] {
        let path = format!("{}/../examples/{file}", env!("CARGO_MANIFEST_DIR"));
        let policy = Policy::from_file(&path).unwrap();
        let conns: Vec<Connection> = (0..4000)
            .map(|_| {
                microseg_testgen::connection(&policy)
                    .new_tree(&mut runner)
                    .unwrap()
                    .current()
            })
            .collect();
        for rs in rulesets(&policy) {
            check(&rs, &conns).unwrap();
        }
    }
}

/// The property can fail: give deny rules the accept band's priority and
/// the model and the IR part ways (firewalld would let the denied traffic in,
/// or its order would be undefined).
#[test]
fn priorities_are_what_makes_deny_win() {
    use microseg_core::ports::Proto;
    let p = Policy::from_str_as(
        r#"
version = 1
[groups]
web = ["10.0.1.10"]
bad = ["10.9.9.0/24"]
[roles.web]
[[flows]]
from = "any"
to = "web"
ports = ["tcp/443"]
[[flows]]
from = "bad"
to = "web"
ports = ["tcp/443"]
action = "deny"
"#,
        microseg_core::document::Format::Toml,
        None,
    )
    .unwrap();
    let rs = compile(&p, &Target::Role("web".into())).unwrap();
    let mut cfg = FirewalldRenderer.render(&rs).unwrap();
    let c = Connection::new(
        "10.9.9.9".parse().unwrap(),
        "10.0.1.10".parse().unwrap(),
        Proto::Tcp(443),
    );
    assert_eq!(
        Model::new(&cfg)
            .unwrap()
            .decide(Direction::Input, &c)
            .unwrap(),
        Verdict::Drop
    );
    for r in &mut cfg.zone.rich_rules {
        *r = r.replace("priority=\"-30000\"", "priority=\"-9999\"");
    }
    assert_eq!(
        Model::new(&cfg)
            .unwrap()
            .decide(Direction::Input, &c)
            .unwrap(),
        Verdict::Accept
    );
    for r in &mut cfg.zone.rich_rules {
        *r = r.replace("priority=\"-9999\"", "priority=\"-10000\"");
    }
    // Same priority, different verdicts: firewalld's order decides; the model refuses to guess.
    assert!(Model::new(&cfg)
        .unwrap()
        .decide(Direction::Input, &c)
        .is_err());
}
