//! Property tests ("for all" claims of microseg-core), on random valid
//! policies from `microseg-testgen` and connections biased to the boundaries
//! of their intervals.
//!
//! Every property prints its case count and run time (see them with
//! `cargo test -p microseg-core --test props -- --nocapture`). The defaults
//! below keep the whole file under a minute in a debug build on two cores;
//! `MICROSEG_PROPTEST_CASES=N` runs every property with `N` cases instead.

use microseg_core::addr::{parse_addr_entry, AddrSet};
use microseg_core::classes::{partition, port_classes, representative};
use microseg_core::doc::PolicyDoc;
use microseg_core::document::Format;
use microseg_core::interval::{Bound, IntervalSet};
use microseg_core::ir::{compile, Direction, HostRuleset, Target};
use microseg_core::ports::{PortSet, Proto};
use microseg_core::semantics::{Connection, Verdict};
use microseg_core::Policy;
use microseg_testgen as tg;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{TestCaseError, TestRunner};
use std::collections::HashMap;
use std::fmt::Debug;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Runs a property with `tg::cases(default)` cases and prints the case
/// count, the number of individual checks and the run time.
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

fn bump(checks: &AtomicUsize) {
    checks.fetch_add(1, Ordering::Relaxed);
}

// ---------------------------------------------------------------------------
// The generators themselves.

/// 500 generated documents and mutations of them: all validate (the other
/// properties rely on it; flow names stay unique after mutations).
#[test]
fn generated_documents_and_mutations_are_valid_500() {
    run(
        "generated_documents_and_mutations_are_valid",
        500,
        tg::policy_pair(),
        |(old, m, new), checks| {
            for doc in [&old, &new] {
                if let Err(e) = Policy::from_doc(doc.clone()) {
                    return Err(TestCaseError::fail(format!(
                        "invalid document (after {m:?}): {e}\n{}",
                        doc.to_toml()
                    )));
                }
                bump(checks);
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------
// Reference semantics == IR evaluator.

/// Compiled rulesets of one policy, by host and by role.
struct Rulesets<'a> {
    policy: &'a Policy,
    hosts: HashMap<IpAddr, HostRuleset>,
    roles: HashMap<String, HostRuleset>,
}

impl<'a> Rulesets<'a> {
    fn new(policy: &'a Policy) -> Self {
        Rulesets {
            policy,
            hosts: HashMap::new(),
            roles: HashMap::new(),
        }
    }

    fn host(&mut self, ip: IpAddr) -> &HostRuleset {
        let p = self.policy;
        self.hosts
            .entry(ip)
            .or_insert_with(|| compile(p, &Target::Host(ip)).expect("a managed host compiles"))
    }

    fn role(&mut self, name: &str) -> &HostRuleset {
        let p = self.policy;
        self.roles.entry(name.to_string()).or_insert_with(|| {
            compile(p, &Target::Role(name.to_string())).expect("a role compiles")
        })
    }

    /// Checks both sides of `c` against `decide_side`, per host and (for
    /// hosts of exactly one role) per role, and the composition of the host
    /// rulesets against `decide`.
    fn check(&mut self, c: &Connection, checks: &AtomicUsize) -> Result<(), TestCaseError> {
        let p = self.policy;
        let special = c.dst.is_loopback() || c.src == c.dst;
        let mut sides: [Option<Verdict>; 2] = [None, None];
        for (k, (dir, own)) in [(Direction::Output, c.src), (Direction::Input, c.dst)]
            .into_iter()
            .enumerate()
        {
            if !p.managed.contains(own) {
                continue;
            }
            let got = self.host(own).decide(dir, c).verdict;
            sides[k] = Some(got);
            if special {
                // `decide` short-cuts these; the rulesets' loopback rule must accept.
                prop_assert_eq!(
                    got,
                    Verdict::Accept,
                    "host {} {:?} {} (loopback/self)",
                    own,
                    dir,
                    c
                );
                continue;
            }
            let want = p.decide_side(dir.side(), c).verdict;
            prop_assert_eq!(got, want, "host ruleset {} {:?} {}", own, dir, c);
            bump(checks);
            let roles = p.roles_of(own);
            if roles.len() == 1 {
                let name = roles[0].name.clone();
                let got = self.role(&name).decide(dir, c).verdict;
                prop_assert_eq!(got, want, "role ruleset {} {:?} {}", name, dir, c);
                bump(checks);
            }
        }
        // Permitted iff every managed end's ruleset accepts.
        let composed = match sides {
            [Some(s), _] if s != Verdict::Accept => s,
            [_, Some(r)] => r,
            _ => Verdict::Accept,
        };
        prop_assert_eq!(
            composed,
            p.decide(c).verdict,
            "composed host rulesets vs decide: {}",
            c
        );
        bump(checks);
        Ok(())
    }
}

/// 1000 policies × 64 boundary-biased connections: for every managed end, the
/// host ruleset (`Target::Host`) and, for hosts of exactly one role, the role
/// ruleset decide like `decide_side` in both directions; loopback and
/// self-connections are accepted; the rulesets compose to `decide`.
#[test]
fn ir_agrees_with_reference_on_boundary_connections_1000() {
    run(
        "ir_agrees_with_reference_on_boundary_connections",
        1000,
        tg::policy_with_connections(64),
        |(p, conns), checks| {
            let mut rs = Rulesets::new(&p);
            for c in &conns {
                prop_assert!(
                    c.validate().is_ok(),
                    "generated an invalid connection {}",
                    c
                );
                rs.check(c, checks)?;
            }
            Ok(())
        },
    );
}

/// 1000 policies, exhaustively: every (source class, destination class, port
/// class) triple of the policy's exact partition, through both rulesets.
#[test]
fn ir_agrees_with_reference_on_every_class_1000() {
    run(
        "ir_agrees_with_reference_on_every_class",
        1000,
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
            let mut rs = Rulesets::new(&p);
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
                            rs.check(&c, checks)?;
                        }
                    }
                }
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------
// Normalisation: interval sets and address sets.

/// Values near the ends of `T` and near a few small numbers, so that
/// adjacency, overlap and the type's limits come up often.
fn edge_value<T: Bound + From<u16>>(small: u16) -> BoxedStrategy<T> {
    let near_max: Vec<T> = {
        let mut v = vec![T::MAX];
        let mut x = T::MAX;
        for _ in 0..3 {
            x = x.pred().expect("MAX > 3");
            v.push(x);
        }
        v
    };
    prop_oneof![
        4 => (0..small).prop_map(T::from),
        1 => select(near_max),
        1 => Just(T::MIN),
    ]
    .boxed()
}

fn ranges_of<T: Bound + From<u16>>(small: u16) -> BoxedStrategy<Vec<(T, T)>> {
    // Reversed pairs (lo > hi) are allowed: they stand for nothing.
    vec((edge_value::<T>(small), edge_value::<T>(small)), 0..6).boxed()
}

/// Every interval end of the inputs, one below and one above.
fn probes<T: Bound>(lists: &[&[(T, T)]]) -> Vec<T> {
    let mut out = vec![T::MIN, T::MAX];
    for list in lists {
        for &(a, b) in *list {
            for x in [a, b] {
                out.push(x);
                out.extend(x.pred());
                out.extend(x.succ());
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn in_ranges<T: Bound>(ranges: &[(T, T)], x: T) -> bool {
    ranges.iter().any(|&(a, b)| a <= x && x <= b)
}

/// Sorted, disjoint, not adjacent, non-empty intervals.
fn canonical<T: Bound>(s: &IntervalSet<T>) -> Result<(), TestCaseError> {
    let r = s.ranges();
    for &(a, b) in r {
        prop_assert!(a <= b, "reversed interval in {:?}", s);
    }
    for w in r.windows(2) {
        let next = w[0].1.succ();
        prop_assert!(
            next.is_some_and(|n| n < w[1].0),
            "overlapping or adjacent intervals in {:?}",
            s
        );
    }
    Ok(())
}

fn interval_normalisation<T: Bound>(
    input: &[(T, T)],
    checks: &AtomicUsize,
) -> Result<(), TestCaseError> {
    let s = IntervalSet::from_ranges(input.iter().copied());
    canonical(&s)?;
    let mut inserted = IntervalSet::new();
    for &(a, b) in input {
        inserted.insert(a, b);
    }
    prop_assert_eq!(&inserted, &s, "insert one by one vs from_ranges");
    let mut shuffled: Vec<(T, T)> = input.to_vec();
    shuffled.reverse();
    prop_assert_eq!(
        &IntervalSet::from_ranges(shuffled),
        &s,
        "order of the input matters"
    );
    for x in probes(&[input]) {
        prop_assert_eq!(
            s.contains(x),
            in_ranges(input, x),
            "membership of {:?} in {:?} from {:?}",
            x,
            s,
            input
        );
        bump(checks);
    }
    prop_assert_eq!(s.is_empty(), input.iter().all(|(a, b)| a > b));
    prop_assert_eq!(
        s.first(),
        input.iter().filter(|(a, b)| a <= b).map(|r| r.0).min()
    );
    Ok(())
}

fn interval_algebra<T: Bound>(
    a: &[(T, T)],
    b: &[(T, T)],
    c: &[(T, T)],
    checks: &AtomicUsize,
) -> Result<(), TestCaseError> {
    let (sa, sb, sc) = (
        IntervalSet::from_ranges(a.iter().copied()),
        IntervalSet::from_ranges(b.iter().copied()),
        IntervalSet::from_ranges(c.iter().copied()),
    );
    let (u, i, d, na) = (
        sa.union(&sb),
        sa.intersect(&sb),
        sa.difference(&sb),
        sa.complement(),
    );
    for s in [&u, &i, &d, &na] {
        canonical(s)?;
    }
    for x in probes(&[a, b]) {
        let (ia, ib) = (sa.contains(x), sb.contains(x));
        prop_assert_eq!(u.contains(x), ia || ib, "union at {:?}", x);
        prop_assert_eq!(i.contains(x), ia && ib, "intersection at {:?}", x);
        prop_assert_eq!(d.contains(x), ia && !ib, "difference at {:?}", x);
        prop_assert_eq!(na.contains(x), !ia, "complement at {:?}", x);
        bump(checks);
    }
    // Canonical forms: equal sets are equal values, so the laws hold structurally.
    prop_assert_eq!(&na.complement(), &sa, "double complement");
    prop_assert_eq!(&u, &sb.union(&sa), "union commutes");
    prop_assert_eq!(&i, &sb.intersect(&sa), "intersection commutes");
    prop_assert_eq!(&u.union(&sc), &sa.union(&sb.union(&sc)), "union associates");
    prop_assert_eq!(
        &i.intersect(&sc),
        &sa.intersect(&sb.intersect(&sc)),
        "intersection associates"
    );
    prop_assert_eq!(
        &sa.intersect(&sb.union(&sc)),
        &i.union(&sa.intersect(&sc)),
        "distributivity"
    );
    prop_assert_eq!(
        &u.complement(),
        &na.intersect(&sb.complement()),
        "De Morgan (union)"
    );
    prop_assert_eq!(
        &i.complement(),
        &na.union(&sb.complement()),
        "De Morgan (intersection)"
    );
    prop_assert_eq!(&d, &sa.intersect(&sb.complement()), "difference = a ∩ ¬b");
    prop_assert_eq!(&sa.union(&na), &IntervalSet::full(), "a ∪ ¬a is everything");
    prop_assert!(sa.intersect(&na).is_empty(), "a ∩ ¬a is empty");
    prop_assert_eq!(sa.is_subset(&sb), u == sb, "subset iff a ∪ b = b");
    prop_assert_eq!(
        sa.intersects(&sb),
        !i.is_empty(),
        "intersects iff a ∩ b ≠ ∅"
    );
    prop_assert!(i.is_subset(&sa) && sa.is_subset(&u) && d.is_subset(&sa));
    prop_assert_eq!(sa.is_full(), na.is_empty());
    Ok(())
}

/// 3000 random interval lists per bound type (u16, u32, u128): `from_ranges`
/// is canonical, order-independent, equal to inserting one by one, and
/// contains exactly the inputs' values at every boundary ±1.
#[test]
fn interval_set_normalisation_3000() {
    run(
        "interval_set_normalisation",
        3000,
        (
            ranges_of::<u16>(40),
            ranges_of::<u32>(40),
            ranges_of::<u128>(40),
        ),
        |(a, b, c), checks| {
            interval_normalisation(&a, checks)?;
            interval_normalisation(&b, checks)?;
            interval_normalisation(&c, checks)
        },
    );
}

/// 3000 random triples per bound type: union, intersection, difference and
/// complement are exact at every boundary ±1 and satisfy the set laws.
#[test]
fn interval_set_algebra_3000() {
    run(
        "interval_set_algebra",
        3000,
        (
            (
                ranges_of::<u16>(30),
                ranges_of::<u16>(30),
                ranges_of::<u16>(30),
            ),
            (
                ranges_of::<u32>(30),
                ranges_of::<u32>(30),
                ranges_of::<u32>(30),
            ),
            (
                ranges_of::<u128>(30),
                ranges_of::<u128>(30),
                ranges_of::<u128>(30),
            ),
        ),
        |((a, b, c), (d, e, f), (g, h, i)), checks| {
            interval_algebra(&a, &b, &c, checks)?;
            interval_algebra(&d, &e, &f, checks)?;
            interval_algebra(&g, &h, &i, checks)
        },
    );
}

/// Address entries of the test universe, plus entries touching the ends of
/// both address spaces.
fn addr_set() -> BoxedStrategy<AddrSet> {
    let edge = select(
        &[
            "0.0.0.0",
            "0.0.0.0/31",
            "0.0.0.1-0.0.0.6",
            "255.255.255.255",
            "255.255.255.0/24",
            "255.255.255.3-255.255.255.254",
            "0.0.0.0/0",
            "::",
            "::/127",
            "::1-::6",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:0-ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe",
            "::/0",
            "10.0.0.0/8",
        ][..],
    )
    .prop_map(String::from);
    vec(prop_oneof![6 => tg::addr_entry(), 1 => edge], 0..6)
        .prop_map(|entries| {
            let mut s = AddrSet::default();
            for e in entries {
                s.add(&parse_addr_entry(&e).expect("generated entries parse"));
            }
            s
        })
        .boxed()
}

fn addr_probes(sets: &[&AddrSet]) -> Vec<IpAddr> {
    let v4: Vec<&[(u32, u32)]> = sets.iter().map(|s| s.v4.ranges()).collect();
    let v6: Vec<&[(u128, u128)]> = sets.iter().map(|s| s.v6.ranges()).collect();
    probes(&v4)
        .into_iter()
        .map(|x| IpAddr::V4(Ipv4Addr::from(x)))
        .chain(
            probes(&v6)
                .into_iter()
                .map(|x| IpAddr::V6(Ipv6Addr::from(x))),
        )
        .collect()
}

/// 2000 random address sets: `cidrs_v4`/`cidrs_v6` are sorted, disjoint,
/// network-aligned prefixes covering exactly the set (checked as interval
/// sets and by membership at every boundary ±1 of the set and of each
/// prefix), with no two neighbours that merge into their supernet; the
/// readable `range_strings` parse back to the same set.
#[test]
fn addr_set_cidrs_cover_exactly_2000() {
    run(
        "addr_set_cidrs_cover_exactly",
        2000,
        addr_set(),
        |s, checks| {
            let v4 = s.cidrs_v4();
            let v6 = s.cidrs_v6();
            let cover4 = IntervalSet::from_ranges(
                v4.iter()
                    .map(|n| (u32::from(n.network()), u32::from(n.broadcast()))),
            );
            let cover6 = IntervalSet::from_ranges(
                v6.iter()
                    .map(|n| (u128::from(n.network()), u128::from(n.broadcast()))),
            );
            prop_assert_eq!(&cover4, &s.v4);
            prop_assert_eq!(&cover6, &s.v6);
            for w in v4.windows(2) {
                prop_assert!(
                    w[0].broadcast() < w[1].network(),
                    "IPv4 prefixes out of order or overlapping: {:?}",
                    v4
                );
                prop_assert!(
                    !(w[0].prefix_len() == w[1].prefix_len()
                        && w[0].prefix_len() > 0
                        && w[0].supernet() == w[1].supernet()),
                    "IPv4 cover not minimal: {} and {} merge",
                    w[0],
                    w[1]
                );
            }
            for w in v6.windows(2) {
                prop_assert!(
                    w[0].broadcast() < w[1].network(),
                    "IPv6 prefixes out of order or overlapping: {:?}",
                    v6
                );
                prop_assert!(
                    !(w[0].prefix_len() == w[1].prefix_len()
                        && w[0].prefix_len() > 0
                        && w[0].supernet() == w[1].supernet()),
                    "IPv6 cover not minimal: {} and {} merge",
                    w[0],
                    w[1]
                );
            }
            for n in &v4 {
                prop_assert_eq!(n.addr(), n.network(), "host bits set in {}", n);
            }
            for n in &v6 {
                prop_assert_eq!(n.addr(), n.network(), "host bits set in {}", n);
            }
            let mut probe_list = addr_probes(&[&s]);
            for n in &v4 {
                for x in [u32::from(n.network()), u32::from(n.broadcast())] {
                    probe_list.extend(
                        [x.checked_sub(1), Some(x), x.checked_add(1)]
                            .into_iter()
                            .flatten()
                            .map(|x| IpAddr::V4(x.into())),
                    );
                }
            }
            for n in &v6 {
                for x in [u128::from(n.network()), u128::from(n.broadcast())] {
                    probe_list.extend(
                        [x.checked_sub(1), Some(x), x.checked_add(1)]
                            .into_iter()
                            .flatten()
                            .map(|x| IpAddr::V6(x.into())),
                    );
                }
            }
            for a in probe_list {
                let in_cover = match a {
                    IpAddr::V4(a) => v4.iter().any(|n| n.contains(&a)),
                    IpAddr::V6(a) => v6.iter().any(|n| n.contains(&a)),
                };
                prop_assert_eq!(in_cover, s.contains(a), "CIDR cover membership of {}", a);
                bump(checks);
            }
            let mut back = AddrSet::default();
            for r in s.range_strings() {
                back.add(
                    &parse_addr_entry(&r)
                        .map_err(|e| TestCaseError::fail(format!("range string {r:?}: {}", e.0)))?,
                );
            }
            prop_assert_eq!(&back, &s, "range_strings do not parse back to the set");
            Ok(())
        },
    );
}

/// 2000 random pairs of address sets: `AddrSet` union, intersection,
/// difference, complement (`any − a`), subset and intersects are exact in
/// both families at every boundary ±1.
#[test]
fn addr_set_algebra_2000() {
    run(
        "addr_set_algebra",
        2000,
        (addr_set(), addr_set()),
        |(a, b), checks| {
            let (u, i, d, na) = (
                a.union(&b),
                a.intersect(&b),
                a.difference(&b),
                AddrSet::any().difference(&a),
            );
            for x in addr_probes(&[&a, &b]) {
                let (ia, ib) = (a.contains(x), b.contains(x));
                prop_assert_eq!(u.contains(x), ia || ib, "union at {}", x);
                prop_assert_eq!(i.contains(x), ia && ib, "intersection at {}", x);
                prop_assert_eq!(d.contains(x), ia && !ib, "difference at {}", x);
                prop_assert_eq!(na.contains(x), !ia, "complement at {}", x);
                bump(checks);
            }
            prop_assert_eq!(a.is_subset(&b), u == b);
            prop_assert_eq!(a.intersects(&b), !i.is_empty());
            prop_assert_eq!(&AddrSet::any().difference(&na), &a);
            prop_assert_eq!(a.is_any(), na.is_empty());
            for fam in microseg_core::addr::Family::BOTH {
                prop_assert_eq!(
                    a.only(fam)
                        .union(&a.only(if fam == microseg_core::addr::Family::V4 {
                            microseg_core::addr::Family::V6
                        } else {
                            microseg_core::addr::Family::V4
                        })),
                    a.clone()
                );
            }
            if let Some(e) = a.example() {
                prop_assert!(a.contains(e));
            } else {
                prop_assert!(a.is_empty());
            }
            Ok(())
        },
    );
}

/// 2000 random port lists: a port set's canonical `specs()` add back to the
/// same set, and membership is exact at every range end ±1.
#[test]
fn port_set_specs_round_trip_2000() {
    run(
        "port_set_specs_round_trip",
        2000,
        vec(tg::port_spec(), 0..6),
        |specs, checks| {
            let mut s = PortSet::default();
            for spec in &specs {
                s.add_spec(spec).map_err(TestCaseError::fail)?;
            }
            let mut back = PortSet::default();
            for spec in s.specs() {
                back.add_spec(&spec).map_err(TestCaseError::fail)?;
            }
            prop_assert_eq!(&back, &s);
            for spec in &specs {
                let mut one = PortSet::default();
                one.add_spec(spec).map_err(TestCaseError::fail)?;
                prop_assert!(one.is_subset(&s), "{} not in {}", spec, s);
                for &(lo, hi) in one.tcp.ranges() {
                    for p in [lo.checked_sub(1), Some(lo), Some(hi), hi.checked_add(1)]
                        .into_iter()
                        .flatten()
                        .filter(|&p| p > 0)
                    {
                        let want = specs.iter().any(|sp| {
                            let mut o = PortSet::default();
                            o.add_spec(sp).is_ok() && o.contains(Proto::Tcp(p))
                        });
                        prop_assert_eq!(s.contains(Proto::Tcp(p)), want, "tcp/{} in {}", p, s);
                        bump(checks);
                    }
                }
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------
// Round trips.

fn same_model(a: &Policy, b: &Policy) -> Result<(), TestCaseError> {
    prop_assert_eq!(&a.doc, &b.doc);
    prop_assert_eq!(&a.table, &b.table);
    prop_assert_eq!(&a.groups, &b.groups);
    prop_assert_eq!(&a.services, &b.services);
    prop_assert_eq!(&a.roles, &b.roles);
    prop_assert_eq!(&a.flows, &b.flows);
    prop_assert_eq!(&a.baseline, &b.baseline);
    prop_assert_eq!(&a.hardening, &b.hardening);
    prop_assert_eq!(&a.managed, &b.managed);
    Ok(())
}

/// 1000 random documents: `PolicyDoc` → `to_toml()` → parse (serde, and the
/// policy loader) gives the same `PolicyDoc`; likewise through `to_json()`
/// (read as JSON and as YAML);
/// the policies read back have the same model and take the same decisions
/// (verdicts and reasons) on 32 boundary-biased connections.
#[test]
fn doc_round_trips_through_toml_and_json_1000() {
    let strategy = tg::policy_doc().prop_flat_map(|doc| {
        let p = Policy::from_doc(doc.clone()).expect("generated documents are valid");
        (Just(doc), vec(tg::connection(&p), 32))
    });
    run(
        "doc_round_trips_through_toml_and_json",
        1000,
        strategy,
        |(doc, conns), checks| {
            let original = Policy::from_doc(doc.clone())
                .map_err(|e| TestCaseError::fail(format!("invalid: {e}")))?;
            prop_assert_eq!(&original.doc, &doc, "from_doc changed the document");
            let toml_text = doc.to_toml();
            let json_text = doc.to_json();
            let via_serde: PolicyDoc = toml::from_str(&toml_text)
                .map_err(|e| TestCaseError::fail(format!("TOML back: {e}\n{toml_text}")))?;
            prop_assert_eq!(&via_serde, &doc, "TOML serde round trip\n{}", toml_text);
            let via_serde: PolicyDoc = serde_json::from_str(&json_text)
                .map_err(|e| TestCaseError::fail(format!("JSON back: {e}\n{json_text}")))?;
            prop_assert_eq!(&via_serde, &doc, "JSON serde round trip\n{}", json_text);
            // JSON is YAML too: the YAML reader must agree.
            for (text, format) in [
                (&toml_text, Format::Toml),
                (&json_text, Format::Json),
                (&json_text, Format::Yaml),
            ] {
                let back = Policy::from_str_as(text, format, None).map_err(|e| {
                    TestCaseError::fail(format!("{format} does not load back: {e}\n{text}"))
                })?;
                same_model(&original, &back)?;
                for c in &conns {
                    prop_assert_eq!(
                        original.decide(c),
                        back.decide(c),
                        "{} after the {} round trip",
                        c,
                        format
                    );
                    bump(checks);
                }
            }
            Ok(())
        },
    );
}
