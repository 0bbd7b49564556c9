//! The nft model against the IR: for random valid policies (from
//! `microseg-testgen`) and connections biased to the boundaries of their
//! intervals, the model evaluator reading the emitted JSON document (not
//! the IR) decides every new connection exactly like the IR's `decide` —
//! per role and per host, in both directions, for the plain and the
//! optimised lowering — and names the same flow or baseline item (the rule
//! comment the model reaches is the label of the IR's deciding rule).
//!
//! Every property prints its case count, checks and run time (see them with
//! `cargo test -p backend-nft --test model_props -- --nocapture`). The
//! defaults keep the file under a minute in a debug build on two cores;
//! `MICROSEG_PROPTEST_CASES=N` runs every property with `N` cases instead.

use backend_nft::model::{NftModel, Packet};
use backend_nft::Lowering;
use microseg_core::addr::AddrSet;
use microseg_core::classes::{partition, port_classes, representative};
use microseg_core::ir::{compile, Direction, HostRuleset, Target};
use microseg_core::ports::{PortSet, Proto};
use microseg_core::semantics::Connection;
use microseg_core::Policy;
use microseg_testgen as tg;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use std::collections::HashMap;
use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

fn run<S>(
    name: &str,
    default: u32,
    strategy: S,
    test: impl Fn(S::Value, &AtomicUsize) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    let config = tg::config(default);
    let cases = config.cases;
    let checks = AtomicUsize::new(0);
    let start = Instant::now();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |v| test(v, &checks));
    let took = start.elapsed();
    match result {
        Ok(()) => eprintln!(
            "{name}: {cases} cases, {} checks, {:.2}s",
            checks.load(Ordering::Relaxed),
            took.as_secs_f64()
        ),
        Err(e) => panic!("{name} failed after {:.2}s: {e}", took.as_secs_f64()),
    }
}

/// A compiled ruleset with the models of both lowerings.
struct Compiled {
    ir: HostRuleset,
    models: Vec<(Lowering, NftModel)>,
}

impl Compiled {
    fn new(ir: HostRuleset) -> Result<Compiled, TestCaseError> {
        let mut models = Vec::new();
        for lowering in [Lowering::Plain, Lowering::Optimized] {
            let a = lowering
                .render(&ir)
                .map_err(|e| TestCaseError::fail(format!("{lowering:?} render: {e}")))?;
            let m = NftModel::from_document(a.document()).map_err(|e| {
                TestCaseError::fail(format!(
                    "{lowering:?} model of {}: {e}\n{}",
                    ir.target,
                    backend_nft::to_nft_text(&a)
                ))
            })?;
            models.push((lowering, m));
        }
        Ok(Compiled { ir, models })
    }

    /// Both directions, both lowerings: same verdict and same label as the IR.
    /// ICMP runs with several checksums (what `th dport` reads in ICMP).
    fn check(&self, c: &Connection, checks: &AtomicUsize) -> Result<(), TestCaseError> {
        for dir in [Direction::Input, Direction::Output] {
            let hit = self.ir.decide(dir, c);
            let label = match hit.rule {
                Some(i) => self.ir.rules(dir)[i].origin.label(),
                None => "baseline:default".to_string(),
            };
            let sums: &[u16] = if c.proto.is_icmp() {
                &[0, 0xffff, 0x1234]
            } else {
                &[0]
            };
            for (lowering, model) in &self.models {
                for &sum in sums {
                    let mut p = Packet::new_connection(dir, c);
                    p.icmp_checksum = sum;
                    let d = model.evaluate(&p).map_err(|e| {
                        TestCaseError::fail(format!(
                            "{lowering:?} {} {dir:?} {c}: {e}",
                            self.ir.target
                        ))
                    })?;
                    prop_assert_eq!(
                        d.verdict,
                        hit.verdict,
                        "{:?} lowering of {}, {:?} {} (checksum {}): model path {:?}",
                        lowering,
                        self.ir.target,
                        dir,
                        c,
                        sum,
                        d.path
                    );
                    prop_assert_eq!(
                        d.comment.as_deref(),
                        Some(label.as_str()),
                        "{:?} lowering of {}, {:?} {}: deciding rule",
                        lowering,
                        self.ir.target,
                        dir,
                        c
                    );
                    checks.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }
}

/// The rulesets of one policy: every role, and hosts as they come up.
struct Rulesets<'a> {
    policy: &'a Policy,
    roles: Vec<Compiled>,
    hosts: HashMap<IpAddr, Compiled>,
}

impl<'a> Rulesets<'a> {
    fn new(policy: &'a Policy) -> Result<Self, TestCaseError> {
        let roles = policy
            .roles
            .keys()
            .map(|r| {
                Compiled::new(compile(policy, &Target::Role(r.clone())).expect("a role compiles"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Rulesets {
            policy,
            roles,
            hosts: HashMap::new(),
        })
    }

    fn check(&mut self, c: &Connection, checks: &AtomicUsize) -> Result<(), TestCaseError> {
        for r in &self.roles {
            r.check(c, checks)?;
        }
        for own in [c.src, c.dst] {
            if !self.policy.managed.contains(own) {
                continue;
            }
            if !self.hosts.contains_key(&own) {
                let ir = compile(self.policy, &Target::Host(own)).expect("a managed host compiles");
                self.hosts.insert(own, Compiled::new(ir)?);
            }
            self.hosts[&own].check(c, checks)?;
        }
        Ok(())
    }
}

/// 1000 policies × 48 boundary-biased connections: every role's and every
/// managed end's ruleset, both directions, both lowerings.
#[test]
fn model_of_both_lowerings_agrees_with_ir_on_boundary_connections_1000() {
    run(
        "model_of_both_lowerings_agrees_with_ir_on_boundary_connections",
        1000,
        tg::policy_with_connections(48),
        |(p, conns), checks| {
            let mut rs = Rulesets::new(&p)?;
            for c in &conns {
                rs.check(c, checks)?;
            }
            Ok(())
        },
    );
}

/// 300 policies, exhaustively: one representative of every (source class,
/// destination class, port class) of the policy's exact partition, through
/// every role's ruleset in both lowerings.
#[test]
fn model_of_both_lowerings_agrees_with_ir_on_every_class_300() {
    run(
        "model_of_both_lowerings_agrees_with_ir_on_every_class",
        300,
        tg::policy_doc().prop_map(|d| Policy::from_doc(d).expect("generated documents are valid")),
        |p, checks| {
            let mut sets: Vec<&AddrSet> = Vec::new();
            for f in &p.flows {
                sets.push(&f.from.addrs);
                sets.push(&f.to.addrs);
            }
            for r in p.roles.values() {
                sets.push(&r.hosts);
            }
            let classes = partition(&sets);
            let mut ports: Vec<&PortSet> = p.flows.iter().map(|f| &f.ports).collect();
            ports.extend(p.roles.values().map(|r| &r.egress));
            let pcs = port_classes(&ports);
            let rs = Rulesets::new(&p)?;
            for sc in &classes {
                let Some(s) = representative(sc, None) else {
                    continue;
                };
                for dc in &classes {
                    let Some(d) = representative(dc, Some(s)) else {
                        continue;
                    };
                    for (proto, _) in &pcs {
                        let c = Connection::new(s, d, *proto);
                        if c.validate().is_ok() {
                            for r in &rs.roles {
                                r.check(&c, checks)?;
                            }
                        }
                    }
                }
            }
            Ok(())
        },
    );
}

/// The model itself on hand-written documents: dependencies, negation,
/// jumps, gotos, returns, vmaps, policies, several base chains, and what it
/// refuses.
#[test]
fn model_semantics_on_hand_written_documents() {
    let doc = |rules: &str| -> nftables::schema::Nftables<'static> {
        serde_json::from_str(&format!(
            r#"{{"nftables": [
              {{"add": {{"table": {{"family": "inet", "name": "t"}}}}}},
              {{"add": {{"chain": {{"family": "inet", "table": "t", "name": "c"}}}}}},
              {{"add": {{"rule": {{"family": "inet", "table": "t", "chain": "c", "comment": "in-c",
                 "expr": [{{"match": {{"op": "==", "left": {{"payload": {{"protocol": "udp", "field": "dport"}}}}, "right": 53}}}}, {{"drop": null}}]}}}}}},
              {{"add": {{"chain": {{"family": "inet", "table": "t", "name": "input",
                 "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}}}}}},
              {rules}]}}"#
        ))
        .unwrap()
    };
    let rule = |expr: &str, comment: &str| {
        format!(
            r#"{{"add": {{"rule": {{"family": "inet", "table": "t", "chain": "input", "comment": "{comment}", "expr": {expr}}}}}}}"#
        )
    };
    let c = |s: &str, d: &str, p: Proto| Connection::new(s.parse().unwrap(), d.parse().unwrap(), p);
    let v4 = |p| c("10.0.0.1", "10.0.0.2", p);
    let v6 = |p| c("2001:db8::1", "2001:db8::2", p);
    use microseg_core::semantics::Verdict::*;

    // `ip saddr` never matches IPv6; `!=` needs the field to exist.
    let m = NftModel::from_document(&doc(&[
        rule(r#"[{"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": "10.0.0.9"}}, {"accept": null}]"#, "not9"),
    ].join(","))).unwrap();
    assert_eq!(
        m.decide(Direction::Input, &v4(Proto::Tcp(1)))
            .unwrap()
            .verdict,
        Accept
    );
    let d = m.decide(Direction::Input, &v6(Proto::Tcp(1))).unwrap();
    assert_eq!((d.verdict, d.comment), (Drop, None), "policy drop");

    // jump returns, goto does not; a vmap picks the element's verdict.
    let m = NftModel::from_document(&doc(&[
        rule(r#"[{"jump": {"target": "c"}}]"#, "j"),
        rule(r#"[{"vmap": {"key": {"concat": [{"meta": {"key": "l4proto"}}, {"payload": {"protocol": "th", "field": "dport"}}]},
                 "data": {"set": [[{"concat": ["tcp", {"range": [20, 30]}]}, {"accept": null}],
                                  [{"concat": ["icmp", {"range": [0, 65535]}]}, {"goto": {"target": "c"}}]]}}}]"#, "vm"),
        rule(r#"[{"counter": null}, {"reject": null}]"#, "last"),
    ].join(","))).unwrap();
    assert_eq!(
        m.decide(Direction::Input, &v4(Proto::Udp(53)))
            .unwrap()
            .comment
            .as_deref(),
        Some("in-c")
    );
    assert_eq!(
        m.decide(Direction::Input, &v4(Proto::Tcp(25)))
            .unwrap()
            .comment
            .as_deref(),
        Some("vm")
    );
    let d = m.decide(Direction::Input, &v4(Proto::Tcp(31))).unwrap();
    assert_eq!((d.verdict, d.comment.as_deref()), (Reject, Some("last")));
    // goto c, c ends: back to the base chain's caller, i.e. its policy.
    let d = m.decide(Direction::Input, &v4(Proto::Icmp)).unwrap();
    assert_eq!((d.verdict, d.comment), (Drop, None));

    // Overlapping vmap elements are an error, and so is a limit that decides.
    let m = NftModel::from_document(&doc(&rule(
        r#"[{"vmap": {"key": {"payload": {"protocol": "tcp", "field": "dport"}},
             "data": {"set": [[{"range": [1, 10]}, {"accept": null}], [{"range": [5, 20]}, {"drop": null}]]}}}]"#,
        "ov",
    )))
    .unwrap();
    assert!(m.decide(Direction::Input, &v4(Proto::Tcp(7))).is_err());
    assert!(m.decide(Direction::Input, &v4(Proto::Tcp(2))).is_ok());
    assert!(NftModel::from_document(&doc(&rule(
        r#"[{"limit": {"rate": 1, "per": "second"}}, {"accept": null}]"#,
        "lim"
    )))
    .is_err());
    // Something outside the subset is refused, not ignored.
    assert!(NftModel::from_document(&doc(&rule(
        r#"[{"match": {"op": "==", "left": {"meta": {"key": "mark"}}, "right": 1}}, {"accept": null}]"#,
        "mark"
    )))
    .is_err());
    // ICMP through `th dport` reads the checksum.
    let m = NftModel::from_document(&doc(&rule(
        r#"[{"match": {"op": "==", "left": {"payload": {"protocol": "th", "field": "dport"}}, "right": 7}}, {"accept": null}]"#,
        "th",
    )))
    .unwrap();
    let mut p = Packet::new_connection(Direction::Input, &v4(Proto::Icmp));
    assert_eq!(m.evaluate(&p).unwrap().verdict, Drop);
    p.icmp_checksum = 7;
    assert_eq!(m.evaluate(&p).unwrap().verdict, Accept);
}
