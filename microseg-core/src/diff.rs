//! The exact semantic difference between two policies: every new connection
//! whose verdict changes, as a short list of address × address × port blocks.
//!
//! ```
//! use microseg_core::{Policy, document::Format, diff::diff, semantics::Verdict};
//! let old = Policy::from_str_as(r#"
//! version = 1
//! [groups]
//! web = ["10.0.1.10-10.0.1.19"]
//! app = ["10.0.1.20"]
//! [roles.web]
//! [roles.app]
//! "#, Format::Toml, None).unwrap();
//! let new = Policy::from_str_as(r#"
//! version = 1
//! [groups]
//! web = ["10.0.1.10-10.0.1.19"]
//! app = ["10.0.1.20"]
//! [roles.web]
//! [roles.app]
//! [[flows]]
//! from = "web"
//! to = "app"
//! ports = ["tcp/8080"]
//! "#, Format::Toml, None).unwrap();
//! let d = diff(&old, &new);
//! assert_eq!(d.changes.len(), 1);
//! let change = &d.changes[0];
//! assert_eq!(change.from_label, "web (10.0.1.10-10.0.1.19)");
//! assert_eq!(change.to_label, "app (10.0.1.20)");
//! assert_eq!(change.ports.specs(), ["tcp/8080"]);
//! assert_eq!((change.old, change.new), (Verdict::Drop, Verdict::Accept));
//! // One concrete connection of the block, e.g. 10.0.1.11 -> 10.0.1.20 tcp/8080.
//! assert!(change.contains(&change.example));
//! assert!(new.decide(&change.example).allowed() && !old.decide(&change.example).allowed());
//! assert!(d.to_text().contains("+ web (10.0.1.10-10.0.1.19) -> app (10.0.1.20) tcp/8080: drop -> accept"));
//! // Nothing else changed: an identical policy, however written, diffs empty.
//! assert!(diff(&new, &new).is_empty());
//! ```
//!
//! # Exactness
//!
//! The address space is split with [`crate::classes::partition`] over every set
//! either policy's semantics looks at (the `from` and `to` of every flow, the
//! hosts of every role, and loopback), and the port space with
//! [`crate::classes::port_classes`] over every flow's ports and every role's egress
//! of both policies. For a connection between two addresses of distinct
//! classes (or distinct addresses of one class), [`Policy::decide`] reads
//! the same in each policy whatever the addresses: the actions and ports of
//! the flows whose `from` holds the source and whose `to` holds the
//! destination, whether each end is managed, the union of the source's
//! roles' egress and the baseline's ICMP switch and default (the pair's
//! *key*). Two connections whose sources share a class, whose destinations
//! share a class and whose protocols share a port class are therefore
//! decided alike in *both* policies, and working out the verdict of each
//! (key, port class) by the rules of `decide` is exact, not sampling (debug
//! builds check every such verdict against `decide` on a connection of the
//! pair).
//!
//! Only the pairs of classes whose keys can differ are looked at: those
//! under a flow of one policy that has no twin in the other (a flow with the
//! same `from`, `to`, action and ports: a twin adds the same to both keys),
//! those from a class whose egress or managed status changed, and those to
//! a class whose managed status changed; every pair when the baseline's
//! ICMP switch or default changed.
//!
//! Connections that `decide` always accepts are never part of a change: to a
//! loopback destination (`127.0.0.0/8`, `::1`) and from an address to itself.
//! [`Change::contains`] excludes them too, so `old.decide(c).verdict !=
//! new.decide(c).verdict` holds exactly when [`Diff::change_for`] finds `c`
//! (for connections that [`Connection::validate`] accepts, with TCP/UDP
//! ports 1-65535: port 0, which no port spec can name, is in no block).
//!
//! # Readability
//!
//! Changed triples with the same old and new verdict are merged: first the
//! port classes of one class pair, then, repeatedly until nothing merges,
//! destinations of blocks with the same sources and ports, sources of blocks
//! with the same destinations and ports, and ports of blocks with the same
//! sources and destinations. Every merge keeps a block a product of an address
//! set, an address set and a port set, so the result stays exact. Blocks are
//! disjoint (no connection lies in two) and single-family. Address sets are shown by name
//! when they equal (the part in their family of) a group or a role of either
//! policy.
//!
//! # Complexity
//!
//! Splitting the address space costs, for each distinct set, the elementary
//! intervals (between the bounds of all sets) it covers, then ordering the
//! classes; listing the classes under each flow's `from` and `to` costs
//! their number. Equal policies stop there. Otherwise each candidate pair
//! costs `O(m)` to collect its key in each policy (`m` the flows it falls
//! under, found by intersecting the flows of its source class with those of
//! its destination class), and each distinct key `O(P · k / 64)` once (`P`
//! port classes, `k` flow contents in the key). Blocks are merged as unions
//! of classes; an address set is built only to order distinct ones and to
//! report them. Two versions of a policy that differ in a few flows
//! therefore cost about the partition plus the pairs under the changed
//! flows, not the `C₄² + C₆²` pairs of `C` classes per family; a change of
//! the baseline's ICMP switch or default costs all of them.

use crate::addr::{AddrSet, Family};
use crate::classes::{family_of, loopback, port_classes, representative, Partition};
use crate::interval::{Bound, IntervalSet};
use crate::model::{Action, DefaultAction, Flow, Policy};
use crate::ports::{PortSet, Proto};
use crate::semantics::{Connection, Verdict};
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use std::cell::OnceCell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::rc::Rc;

/// One block of changed connections: every connection from an address of
/// `from` to an address of `to` with a protocol/port in `ports` (other than
/// to itself or to loopback) had verdict `old` and now has `new`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Source addresses (one family), serialised as range strings.
    #[serde(serialize_with = "ser_addrs")]
    pub from: AddrSet,
    /// `from` for people: the name of each group or role (of either policy)
    /// whose addresses in this family are exactly `from`, with the addresses;
    /// `any IPv4`, `any IPv6 except …`, or just the addresses.
    pub from_label: String,
    /// Destination addresses (same family as `from`), serialised as range strings.
    #[serde(serialize_with = "ser_addrs")]
    pub to: AddrSet,
    /// `to` for people, as `from_label`; an `any … except …` label leaves
    /// loopback out of the exceptions (loopback destinations never change).
    pub to_label: String,
    /// Protocols and ports, serialised as canonical specs (`tcp/80`, `icmp`).
    #[serde(serialize_with = "ser_ports")]
    pub ports: PortSet,
    /// The verdict under the old policy.
    pub old: Verdict,
    /// The verdict under the new policy.
    pub new: Verdict,
    /// One connection of the block (`src`, `dst`, `proto` as `tcp/80`).
    #[serde(serialize_with = "ser_conn")]
    pub example: Connection,
}

impl Change {
    /// True if the connection lies in this block. Connections to loopback
    /// and to the source itself never do: `decide` always accepts them.
    pub fn contains(&self, c: &Connection) -> bool {
        !(c.dst.is_loopback() || c.src == c.dst)
            && self.from.contains(c.src)
            && self.to.contains(c.dst)
            && self.ports.contains(c.proto)
    }

    /// True if whether the connections are permitted changed (not only how
    /// they are refused: drop ↔ reject).
    pub fn allowed_changed(&self) -> bool {
        (self.old == Verdict::Accept) != (self.new == Verdict::Accept)
    }

    /// True if the block is newly permitted.
    pub fn opened(&self) -> bool {
        self.new == Verdict::Accept && self.old != Verdict::Accept
    }

    /// True if the block is no longer permitted.
    pub fn closed(&self) -> bool {
        self.old == Verdict::Accept && self.new != Verdict::Accept
    }

    /// The IP family of the block.
    pub fn family(&self) -> Family {
        family_of(&self.from)
    }

    /// `+` opened, `-` closed, `~` refused differently (drop ↔ reject).
    pub fn sign(&self) -> char {
        if self.opened() {
            '+'
        } else if self.closed() {
            '-'
        } else {
            '~'
        }
    }
}

/// The semantic difference of two policies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diff {
    /// The changed blocks, IPv4 first, then by source, destination and ports.
    pub changes: Vec<Change>,
    /// How many address classes (both families) the address space was split into.
    pub address_classes: usize,
    /// How many port classes were compared.
    pub port_classes: usize,
}

impl Diff {
    /// True if the two policies decide every new connection alike.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// The block holding `c`, if its verdict changed.
    pub fn change_for(&self, c: &Connection) -> Option<&Change> {
        self.changes.iter().find(|ch| ch.contains(c))
    }

    /// The blocks whose permitted status changed (opened or closed).
    pub fn allowed_changes(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.allowed_changed())
    }

    /// One line per block: `+` opened, `-` closed, `~` drop ↔ reject.
    ///
    /// ```text
    /// 1 change (1 opened, 0 closed, 0 drop/reject):
    /// + web (10.0.1.10-10.0.1.19) -> app (10.0.1.20) tcp/8080: drop -> accept (e.g. 10.0.1.10 -> 10.0.1.20 tcp/8080)
    /// ```
    pub fn to_text(&self) -> String {
        if self.is_empty() {
            return "no change: both policies decide every new connection alike\n".to_string();
        }
        let opened = self.changes.iter().filter(|c| c.opened()).count();
        let closed = self.changes.iter().filter(|c| c.closed()).count();
        let n = self.changes.len();
        let mut out = format!(
            "{n} change{} ({opened} opened, {closed} closed, {} drop/reject):\n",
            if n == 1 { "" } else { "s" },
            n - opened - closed
        );
        for c in &self.changes {
            let _ = writeln!(
                out,
                "{} {} -> {} {}: {} -> {} (e.g. {})",
                c.sign(),
                c.from_label,
                c.to_label,
                c.ports.specs().join(", "),
                c.old.as_str(),
                c.new.as_str(),
                c.example
            );
        }
        out
    }
}

fn ser_addrs<S: Serializer>(a: &AddrSet, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(a.range_strings())
}

fn ser_ports<S: Serializer>(p: &PortSet, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(p.specs())
}

fn ser_conn<S: Serializer>(c: &Connection, s: S) -> Result<S::Ok, S::Error> {
    let mut st = s.serialize_struct("Connection", 3)?;
    st.serialize_field("src", &c.src.to_string())?;
    st.serialize_field("dst", &c.dst.to_string())?;
    st.serialize_field("proto", &c.proto.to_string())?;
    st.end()
}

/// A block under construction.
#[derive(Clone)]
struct Block {
    from: Rc<Union>,
    to: Rc<Union>,
    ports: PortSet,
    old: Verdict,
    new: Verdict,
    example: Connection,
}

/// The exact semantic difference of `old` and `new` (see the module docs).
pub fn diff(old: &Policy, new: &Policy) -> Diff {
    let lo = loopback();
    let mut sets: Vec<&AddrSet> = vec![&lo];
    let mut port_sets: Vec<&PortSet> = Vec::new();
    // Where each policy's sets start in `sets`.
    let mut first = [0; 2];
    for (k, p) in [old, new].into_iter().enumerate() {
        first[k] = sets.len();
        for f in &p.flows {
            sets.push(&f.from.addrs);
            sets.push(&f.to.addrs);
            port_sets.push(&f.ports);
        }
        for r in p.roles.values() {
            sets.push(&r.hosts);
            port_sets.push(&r.egress);
        }
    }
    let part = Partition::new(&sets);
    let classes = &part.classes;
    let pclasses = port_classes(&port_sets);
    let family: Vec<Family> = classes.iter().map(family_of).collect();

    // A source representative per class (loopback sources are real sources:
    // `decide` only short-cuts loopback destinations), and the destination
    // classes (never loopback).
    let src_rep: Vec<_> = classes
        .iter()
        .map(|c| representative(c, None).or_else(|| c.example()))
        .collect();
    let is_dst: Vec<bool> = classes.iter().map(|c| !c.is_subset(&lo)).collect();

    // What each policy reads for each class.
    let mut interner = Interner::new(&pclasses);
    let view_old = View::new(old, &part, first[0], &mut interner);
    let view_new = View::new(new, &part, first[1], &mut interner);

    // Step 1: a block for each (source class, destination class) pair whose
    // keys may differ and each change of verdicts on it: the port classes
    // that changed so, and an example. The blocks come ordered by source
    // class, destination class and verdicts (which decides the examples
    // that merging keeps).
    let shared: Vec<Rc<Union>> = (0..classes.len()).map(|c| Union::new(vec![c])).collect();
    let mut memo = Memo::default();
    let mut changed_by_ids: HashMap<(usize, usize), Vec<PortChange>> = HashMap::new();
    let mut blocks: Vec<Block> = Vec::new();
    let mut visit = |si: usize, di: usize| {
        let Some(s) = src_rep[si] else { return };
        let fam = Family::of(s);
        if !is_dst[di] || family[di] != fam {
            return;
        }
        let (key_old, key_new) = (view_old.key(si, di, fam), view_new.key(si, di, fam));
        if key_old == key_new {
            // Both policies read the same for this pair: nothing changed.
            return;
        }
        // Within one class: two distinct addresses (never one to itself).
        let avoid = (si == di).then_some(s);
        let Some(d) = representative(&classes[di], avoid) else {
            return;
        };
        debug_assert!(classes[si].contains(s) && classes[di].contains(d));
        debug_assert!(s != d && !d.is_loopback());
        let io = memo.id(key_old, old, s, d, &pclasses, &interner);
        let inew = memo.id(key_new, new, s, d, &pclasses, &interner);
        let changed = changed_by_ids
            .entry((io, inew))
            .or_insert_with(|| port_changes(&memo.verdicts[io], &memo.verdicts[inew], &pclasses));
        for (o, n, ports, proto) in changed.iter() {
            blocks.push(Block {
                from: shared[si].clone(),
                to: shared[di].clone(),
                ports: ports.clone(),
                old: *o,
                new: *n,
                example: Connection::new(s, d, *proto),
            });
        }
    };
    match candidates(&view_old, &view_new, &part, &family) {
        None => {
            for si in 0..classes.len() {
                for di in 0..classes.len() {
                    visit(si, di);
                }
            }
        }
        Some(list) => {
            for (si, di) in list {
                visit(si, di);
            }
        }
    }

    // Step 2: merge products along one coordinate at a time, until stable.
    loop {
        let before = blocks.len();
        blocks = merge(blocks, Along::To, classes);
        blocks = merge(blocks, Along::From, classes);
        blocks = merge(blocks, Along::Ports, classes);
        if blocks.len() == before {
            break;
        }
    }

    let names = Names::new(old, new, !blocks.is_empty());
    let mut changes: Vec<Change> = blocks
        .into_iter()
        .map(|b| (b.from.set(classes).clone(), b.to.set(classes).clone(), b))
        .map(|(from, to, b)| Change {
            from_label: names.label(&from),
            to_label: names.dst_label(&to),
            from,
            to,
            ports: b.ports,
            old: b.old,
            new: b.new,
            example: b.example,
        })
        .collect();
    changes.sort_by(|a, b| {
        (a.family(), &a.from, &a.to, &a.ports, a.old, a.new).cmp(&(
            b.family(),
            &b.from,
            &b.to,
            &b.ports,
            b.old,
            b.new,
        ))
    });
    Diff {
        changes,
        address_classes: classes.len(),
        port_classes: pclasses.len(),
    }
}

/// The (source class, destination class) pairs whose keys can differ,
/// sorted; `None` for all pairs (the baselines' ICMP or default differ, or
/// the pairs found would be most of them).
///
/// A key differs only where something it holds differs: the source's
/// egress (or whether it is managed), whether the destination is managed,
/// or the flow contents matching the pair. A flow whose `from`, `to`,
/// action and ports are those of a flow of the other policy (its twin)
/// adds the same content to both keys wherever it matches, so only the
/// pairs under a flow without a twin can differ by their flows.
fn candidates(
    old: &View,
    new: &View,
    part: &Partition,
    family: &[Family],
) -> Option<Vec<(usize, usize)>> {
    let (bo, bn) = (&old.policy.baseline, &new.policy.baseline);
    if bo.icmp != bn.icmp || bo.default != bn.default {
        return None;
    }
    // The flows without a twin, by their (from, to) sets.
    let in_old: HashSet<FlowKey> = old.flows.iter().copied().collect();
    let in_new: HashSet<FlowKey> = new.flows.iter().copied().collect();
    let lone: HashSet<(SetId, SetId)> = old
        .flows
        .iter()
        .filter(|f| !in_new.contains(f))
        .chain(new.flows.iter().filter(|f| !in_old.contains(f)))
        .map(|&(from, to, _)| (from, to))
        .collect();
    let products: Vec<[(&[usize], &[usize]); 2]> = lone
        .into_iter()
        .map(|(from, to)| {
            let (from, to) = (part.inside(from), part.inside(to));
            [(from.0, to.0), (from.1, to.1)]
        })
        .collect();
    // The classes whose egress or managed status differ: rows and columns.
    let n = family.len();
    let rows: Vec<usize> = (0..n).filter(|&c| old.egress[c] != new.egress[c]).collect();
    let columns: Vec<usize> = (0..n)
        .filter(|&c| old.egress[c].is_some() != new.egress[c].is_some())
        .collect();
    let found = products
        .iter()
        .flatten()
        .map(|(s, d)| s.len() * d.len())
        .sum::<usize>()
        + (rows.len() + columns.len()) * n;
    if found >= n * n / 4 {
        return None;
    }
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(found);
    for (sources, dests) in products.into_iter().flatten() {
        out.extend(
            sources
                .iter()
                .flat_map(|&s| dests.iter().map(move |&d| (s, d))),
        );
    }
    let same_family = |c: usize| (0..n).filter(move |&x| family[x] == family[c]);
    for c in rows {
        out.extend(same_family(c).map(|d| (c, d)));
    }
    for c in columns {
        out.extend(same_family(c).map(|s| (s, c)));
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

/// The port classes that changed from one verdict to another: the verdicts,
/// the union of the classes, and the protocol of the first class.
type PortChange = (Verdict, Verdict, PortSet, Proto);

/// The changes between two verdict vectors over the port classes, by
/// verdicts (ascending).
fn port_changes(
    old: &[Verdict],
    new: &[Verdict],
    pclasses: &[(Proto, PortSet)],
) -> Vec<PortChange> {
    let mut by: BTreeMap<(Verdict, Verdict), Vec<usize>> = BTreeMap::new();
    for (i, (o, n)) in old.iter().zip(new).enumerate() {
        if o != n {
            by.entry((*o, *n)).or_default().push(i);
        }
    }
    by.into_iter()
        .map(|((o, n), classes)| {
            let ports = union_ports(classes.iter().map(|&i| &pclasses[i].1));
            (o, n, ports, pclasses[classes[0]].0)
        })
        .collect()
}

/// Bits over port classes.
type Bits = Vec<u64>;

/// The ids of an address set's IPv4 and IPv6 parts in a [`Partition`].
type SetId = (usize, usize);

fn bit(b: &[u64], i: usize) -> bool {
    b[i / 64] >> (i % 64) & 1 == 1
}

/// Ids for flow contents (action and ports) and egress sets, shared by both
/// policies so that their keys compare, with the port classes inside each.
struct Interner {
    /// The port classes: tcp and udp ranges (low, high, class), by port.
    tcp: Vec<(u16, u16, usize)>,
    udp: Vec<(u16, u16, usize)>,
    icmp: Vec<usize>,
    icmpv6: Vec<usize>,
    n: usize,
    contents: HashMap<(Action, PortSet), usize>,
    /// By content id: its action and port classes.
    content_bits: Vec<(Action, Bits)>,
    egress: HashMap<PortSet, usize>,
    /// By egress id: its port classes.
    egress_bits: Vec<Bits>,
}

impl Interner {
    fn new(pclasses: &[(Proto, PortSet)]) -> Interner {
        let (mut tcp, mut udp, mut icmp, mut icmpv6) = (vec![], vec![], vec![], vec![]);
        for (i, (_, p)) in pclasses.iter().enumerate() {
            tcp.extend(p.tcp.ranges().iter().map(|&(lo, hi)| (lo, hi, i)));
            udp.extend(p.udp.ranges().iter().map(|&(lo, hi)| (lo, hi, i)));
            if p.icmp {
                icmp.push(i);
            }
            if p.icmpv6 {
                icmpv6.push(i);
            }
        }
        tcp.sort_unstable();
        udp.sort_unstable();
        Interner {
            tcp,
            udp,
            icmp,
            icmpv6,
            n: pclasses.len(),
            contents: HashMap::new(),
            content_bits: Vec::new(),
            egress: HashMap::new(),
            egress_bits: Vec::new(),
        }
    }

    /// The port classes inside `p` (a union of port classes).
    fn bits(&self, p: &PortSet) -> Bits {
        let mut inside = Vec::new();
        pieces_in(&self.tcp, p.tcp.ranges(), &mut inside);
        pieces_in(&self.udp, p.udp.ranges(), &mut inside);
        if p.icmp {
            inside.extend(&self.icmp);
        }
        if p.icmpv6 {
            inside.extend(&self.icmpv6);
        }
        let mut b = vec![0u64; self.n.div_ceil(64)];
        for i in inside {
            b[i / 64] |= 1 << (i % 64);
        }
        b
    }

    fn content(&mut self, f: &Flow) -> usize {
        if let Some(&id) = self.contents.get(&(f.action, f.ports.clone())) {
            return id;
        }
        let id = self.content_bits.len();
        self.content_bits.push((f.action, self.bits(&f.ports)));
        self.contents.insert((f.action, f.ports.clone()), id);
        id
    }

    fn egress(&mut self, p: PortSet) -> usize {
        if let Some(&id) = self.egress.get(&p) {
            return id;
        }
        let id = self.egress_bits.len();
        self.egress_bits.push(self.bits(&p));
        self.egress.insert(p, id);
        id
    }
}

/// Pushes the class of every piece (low, high, class) that meets one of
/// `ranges`: the classes inside them when they are a union of classes.
fn pieces_in<T: Bound>(pieces: &[(T, T, usize)], ranges: &[(T, T)], out: &mut Vec<usize>) {
    let mut i = 0;
    for &(lo, hi) in ranges {
        i += pieces[i..].partition_point(|p| p.1 < lo);
        while let Some(&(plo, phi, c)) = pieces.get(i) {
            if plo > hi {
                break;
            }
            debug_assert!(lo <= plo && phi <= hi, "a class partly inside a set");
            out.push(c);
            i += 1;
        }
    }
}

/// Everything [`Policy::decide`] reads for a connection from `s` to `d`
/// (not loopback, `s ≠ d`) besides the protocol: the actions and ports of
/// the flows with `s ∈ from` and `d ∈ to`, whether `s` is managed and the
/// union of its roles' egress, whether `d` is managed, the family (which
/// protocols fit), and the baseline's ICMP switch and default. Connections
/// with equal keys and protocols get equal verdicts, in either policy.
#[derive(Clone, PartialEq, Eq, Hash)]
struct PairKey {
    /// Interned flow contents, ascending.
    flows: Vec<usize>,
    /// The interned egress union of the source's roles, if it is managed.
    src: Option<usize>,
    dst_managed: bool,
    family: Family,
    icmp: bool,
    default: DefaultAction,
}

/// A flow as the keys see it: the ids of its `from` and `to` sets and of
/// its content.
type FlowKey = (SetId, SetId, usize);

/// What one policy makes of each address class.
struct View<'a> {
    policy: &'a Policy,
    /// Per flow.
    flows: Vec<FlowKey>,
    /// Per address class: the flows whose `from` holds it, ascending.
    from: Vec<Vec<usize>>,
    /// Per address class: the flows whose `to` holds it, ascending.
    to: Vec<Vec<usize>>,
    /// Per address class: the interned egress union of its roles, if managed.
    egress: Vec<Option<usize>>,
}

impl<'a> View<'a> {
    /// The view of `policy`, whose sets (each flow's `from` and `to`, then
    /// each role's hosts) begin at `first` among those `part` was made over.
    fn new(
        policy: &'a Policy,
        part: &Partition,
        first: usize,
        interner: &mut Interner,
    ) -> View<'a> {
        let n = part.classes.len();
        let (mut from, mut to) = (vec![Vec::new(); n], vec![Vec::new(); n]);
        let mut flows = Vec::with_capacity(policy.flows.len());
        for (i, f) in policy.flows.iter().enumerate() {
            let (a, b) = (part.ids[first + 2 * i], part.ids[first + 2 * i + 1]);
            for (set, by_class) in [(a, &mut from), (b, &mut to)] {
                let (v4, v6) = part.inside(set);
                for &c in v4.iter().chain(v6) {
                    by_class[c].push(i);
                }
            }
            flows.push((a, b, interner.content(f)));
        }
        let roles = first + 2 * policy.flows.len();
        let mut union: Vec<Option<PortSet>> = vec![None; n];
        for (i, r) in policy.roles.values().enumerate() {
            let (v4, v6) = part.inside(part.ids[roles + i]);
            for &c in v4.iter().chain(v6) {
                let u = union[c].get_or_insert_with(PortSet::default);
                *u = u.union(&r.egress);
            }
        }
        let egress = union
            .into_iter()
            .map(|u| u.map(|u| interner.egress(u)))
            .collect();
        View {
            policy,
            flows,
            from,
            to,
            egress,
        }
    }

    fn key(&self, si: usize, di: usize, family: Family) -> PairKey {
        let mut flows: Vec<usize> = Vec::new();
        intersect(&self.from[si], &self.to[di], |f| {
            flows.push(self.flows[f].2)
        });
        flows.sort_unstable();
        flows.dedup();
        PairKey {
            flows,
            src: self.egress[si],
            dst_managed: self.egress[di].is_some(),
            family,
            icmp: self.policy.baseline.icmp,
            default: self.policy.baseline.default,
        }
    }
}

/// Calls `f` with each element of both ascending lists.
fn intersect(a: &[usize], b: &[usize], mut f: impl FnMut(usize)) {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if small.len() * 16 < large.len() {
        // Skewed: look each element of the short list up in the long one.
        let mut rest = large;
        for &x in small {
            let i = rest.partition_point(|&y| y < x);
            if rest.get(i) == Some(&x) {
                f(x);
            }
            rest = &rest[i..];
        }
        return;
    }
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            Ordering::Less => i += 1,
            Ordering::Greater => j += 1,
            Ordering::Equal => {
                f(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
}

/// Verdict vectors over the port classes, by [`PairKey`].
#[derive(Default)]
struct Memo {
    ids: HashMap<PairKey, usize>,
    /// By id: the verdict of each port class (`Accept` for a protocol of the
    /// other family, which no connection of the pair can have).
    verdicts: Vec<Vec<Verdict>>,
}

impl Memo {
    /// The id of `key`; the first time, works out the verdict of every port
    /// class from the key, as `policy.decide` does for `s → d` (a pair with
    /// this key; debug builds check it against `decide`).
    fn id(
        &mut self,
        key: PairKey,
        policy: &Policy,
        s: IpAddr,
        d: IpAddr,
        pclasses: &[(Proto, PortSet)],
        interner: &Interner,
    ) -> usize {
        if let Some(&id) = self.ids.get(&key) {
            return id;
        }
        let verdicts = verdicts(&key, pclasses, interner);
        if cfg!(debug_assertions) {
            for ((proto, _), v) in pclasses.iter().zip(&verdicts) {
                let c = Connection::new(s, d, *proto);
                if c.validate().is_ok() {
                    debug_assert_eq!(policy.decide(&c).verdict, *v, "{c}");
                }
            }
        }
        let id = self.verdicts.len();
        self.verdicts.push(verdicts);
        self.ids.insert(key, id);
        id
    }
}

/// The verdict of each port class for a pair with `key`: the semantics of
/// [`Policy::decide`] over what it reads.
fn verdicts(key: &PairKey, pclasses: &[(Proto, PortSet)], interner: &Interner) -> Vec<Verdict> {
    let words = pclasses.len().div_ceil(64);
    let (mut deny, mut reject, mut allow) = (vec![0u64; words], vec![0; words], vec![0; words]);
    for &c in &key.flows {
        let (action, bits) = &interner.content_bits[c];
        let acc = match action {
            Action::Deny => &mut deny,
            Action::Reject => &mut reject,
            Action::Allow => &mut allow,
        };
        for (a, b) in acc.iter_mut().zip(bits) {
            *a |= b;
        }
    }
    let egress = key.src.map(|e| &interner.egress_bits[e]);
    let default = Verdict::from_default(key.default);
    pclasses
        .iter()
        .enumerate()
        .map(|(i, (proto, _))| {
            let fits = match proto {
                Proto::Icmp => key.family == Family::V4,
                Proto::Icmpv6 => key.family == Family::V6,
                _ => true,
            };
            if !fits {
                return Verdict::Accept;
            }
            // One side: a deny flow drops, else a reject flow rejects, else
            // egress (sender only), ICMP or an allow flow accepts.
            let side = |egress: bool| {
                if bit(&deny, i) {
                    Verdict::Drop
                } else if bit(&reject, i) {
                    Verdict::Reject
                } else if egress || bit(&allow, i) || (proto.is_icmp() && key.icmp) {
                    Verdict::Accept
                } else {
                    default
                }
            };
            let sender = egress.map(|e| side(bit(e, i)));
            match sender {
                Some(v) if v != Verdict::Accept => v,
                _ if key.dst_managed => side(false),
                _ => Verdict::Accept,
            }
        })
        .collect()
}

/// The coordinate along which [`merge`] unites blocks.
#[derive(Clone, Copy)]
enum Along {
    /// Destinations, of blocks with the same sources and ports.
    To,
    /// Sources, of blocks with the same destinations and ports.
    From,
    /// Ports, of blocks with the same sources and destinations.
    Ports,
}

/// A block's coordinates by rank: its sources' and destinations' ranks
/// among the address sets of the blocks being merged.
type Ranked = (usize, usize);

impl Along {
    /// Orders blocks by the two other coordinates, then the verdicts.
    fn cmp(self, (a, ra): (&Block, Ranked), (b, rb): (&Block, Ranked)) -> Ordering {
        match self {
            Along::To => (ra.0, &a.ports, a.old, a.new).cmp(&(rb.0, &b.ports, b.old, b.new)),
            Along::From => (ra.1, &a.ports, a.old, a.new).cmp(&(rb.1, &b.ports, b.old, b.new)),
            Along::Ports => (ra, a.old, a.new).cmp(&(rb, b.old, b.new)),
        }
    }
}

/// Merges the blocks equal but `along` one coordinate and in their
/// verdicts: each group becomes its first block (in `blocks` order, so its
/// example) with the union of the group's coordinates `along`. The result
/// is ordered by the other coordinates and the verdicts.
fn merge(blocks: Vec<Block>, along: Along, classes: &[AddrSet]) -> Vec<Block> {
    let ranks = rank(&blocks, classes);
    let key = |i: usize| (&blocks[i], ranks[i]);
    let mut order: Vec<usize> = (0..blocks.len()).collect();
    // Stable: the blocks of a group stay in `blocks` order.
    order.sort_by(|&a, &b| along.cmp(key(a), key(b)));
    let mut ends: Vec<usize> = Vec::new();
    for i in 1..order.len() {
        if along.cmp(key(order[i - 1]), key(order[i])) != Ordering::Equal {
            ends.push(i);
        }
    }
    ends.push(order.len());
    let mut slots: Vec<Option<Block>> = blocks.into_iter().map(Some).collect();
    let mut take = |i: usize| slots[order[i]].take().expect("each block once");
    let mut out = Vec::with_capacity(ends.len());
    let mut start = 0;
    for end in ends.into_iter().filter(|&e| e > 0) {
        let mut first = take(start);
        if end > start + 1 {
            let rest: Vec<Block> = (start + 1..end).map(&mut take).collect();
            let all = std::iter::once(&first).chain(&rest);
            // All at once: adding the sets one by one to a growing union
            // would cost the union's size for each.
            match along {
                Along::To => first.to = Union::of(all.map(|b| &*b.to)),
                Along::From => first.from = Union::of(all.map(|b| &*b.from)),
                Along::Ports => first.ports = union_ports(all.map(|b| &b.ports)),
            }
        }
        out.push(first);
        start = end;
    }
    out
}

/// The rank of each block's sources and destinations among all of the
/// blocks' address sets (equal sets, equal ranks), so that ordering blocks
/// compares each distinct set with a few others only, and builds no other.
fn rank(blocks: &[Block], classes: &[AddrSet]) -> Vec<Ranked> {
    let mut by_ptr: HashMap<*const Union, usize> = HashMap::new();
    let mut by_classes: HashMap<&[usize], usize> = HashMap::new();
    let mut distinct: Vec<&Union> = Vec::new();
    let mut ids: Vec<usize> = Vec::with_capacity(2 * blocks.len());
    for u in blocks.iter().flat_map(|b| [&b.from, &b.to]) {
        let id = *by_ptr.entry(Rc::as_ptr(u)).or_insert_with(|| {
            *by_classes.entry(&u.classes).or_insert_with(|| {
                distinct.push(u);
                distinct.len() - 1
            })
        });
        ids.push(id);
    }
    let mut order: Vec<usize> = (0..distinct.len()).collect();
    order.sort_by(|&a, &b| distinct[a].set(classes).cmp(distinct[b].set(classes)));
    let mut rank = vec![0; order.len()];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r;
    }
    ids.chunks(2).map(|c| (rank[c[0]], rank[c[1]])).collect()
}

/// The union of port sets, all at once.
fn union_ports<'a>(sets: impl Iterator<Item = &'a PortSet>) -> PortSet {
    let sets: Vec<&PortSet> = sets.collect();
    PortSet {
        tcp: IntervalSet::from_ranges(sets.iter().flat_map(|p| p.tcp.ranges()).copied()),
        udp: IntervalSet::from_ranges(sets.iter().flat_map(|p| p.udp.ranges()).copied()),
        icmp: sets.iter().any(|p| p.icmp),
        icmpv6: sets.iter().any(|p| p.icmpv6),
    }
}

/// A union of address classes: the sources or destinations of a block.
struct Union {
    /// The classes, ascending (distinct, non-empty classes: equal lists,
    /// equal sets).
    classes: Vec<usize>,
    /// Their addresses, once needed.
    set: OnceCell<AddrSet>,
}

impl Union {
    fn new(classes: Vec<usize>) -> Rc<Union> {
        Rc::new(Union {
            classes,
            set: OnceCell::new(),
        })
    }

    /// The union of unions.
    fn of<'a>(unions: impl Iterator<Item = &'a Union>) -> Rc<Union> {
        let mut classes: Vec<usize> = unions.flat_map(|u| u.classes.iter().copied()).collect();
        classes.sort_unstable();
        classes.dedup();
        Union::new(classes)
    }

    /// The addresses.
    fn set(&self, classes: &[AddrSet]) -> &AddrSet {
        self.set.get_or_init(|| match self.classes[..] {
            [c] => classes[c].clone(),
            _ => AddrSet {
                v4: IntervalSet::from_ranges(
                    self.classes
                        .iter()
                        .flat_map(|&c| classes[c].v4.ranges())
                        .copied(),
                ),
                v6: IntervalSet::from_ranges(
                    self.classes
                        .iter()
                        .flat_map(|&c| classes[c].v6.ranges())
                        .copied(),
                ),
            },
        })
    }
}

/// The names of address sets, for labels: each group and role of either
/// policy (the new one's first) by its part in each family.
struct Names<'a> {
    by_set: HashMap<AddrSet, Vec<&'a str>>,
}

impl<'a> Names<'a> {
    /// The names of `old` and `new` (none unless `needed`).
    fn new(old: &'a Policy, new: &'a Policy, needed: bool) -> Names<'a> {
        let mut by_set: HashMap<AddrSet, Vec<&'a str>> = HashMap::new();
        for p in [new, old].into_iter().filter(|_| needed) {
            let named = p
                .groups
                .iter()
                .chain(p.roles.iter().map(|(n, r)| (n, &r.hosts)));
            for (name, g) in named {
                for fam in Family::BOTH {
                    let part = g.only(fam);
                    if part.is_empty() {
                        continue;
                    }
                    let names = by_set.entry(part).or_default();
                    if !names.contains(&name.as_str()) {
                        names.push(name);
                    }
                }
            }
        }
        Names { by_set }
    }

    /// A destination set for people: loopback destinations are never part of a
    /// change, so the label may count them in when that reads shorter
    /// (`any IPv4 except 10.0.0.1` rather than `… except 10.0.0.1, 127.0.0.0/8`).
    fn dst_label(&self, set: &AddrSet) -> String {
        let plain = self.label(set);
        let with_lo = set.union(&loopback().only(family_of(set)));
        if with_lo == *set {
            return plain;
        }
        let alt = self.label(&with_lo);
        if alt.len() < plain.len() && alt.starts_with("any") {
            alt
        } else {
            plain
        }
    }

    /// A set (non-empty, one family) for people: `name (addresses)` when it
    /// equals a group or role of either policy (its part in the set's
    /// family), `any`, `any IPv4`, `any IPv6 except …` when that is shorter,
    /// else the addresses.
    fn label(&self, set: &AddrSet) -> String {
        if set.is_any() {
            return "any".to_string();
        }
        let fam = family_of(set);
        let fam_name = match fam {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        };
        if set.is_full_in(fam) && set.is_empty_in(other(fam)) {
            return format!("any {fam_name}");
        }
        let plain = if set.is_empty_in(other(fam)) {
            let rest = AddrSet::any().only(fam).difference(set);
            // As many strings as ranges.
            let ranges = |s: &AddrSet| s.v4.ranges().len() + s.v6.ranges().len();
            if ranges(&rest) < ranges(set) {
                format!("any {fam_name} except {rest}")
            } else {
                set.to_string()
            }
        } else {
            set.to_string()
        };
        match self.by_set.get(set) {
            None => plain,
            Some(names) => format!("{} ({plain})", names.join("/")),
        }
    }
}

fn other(f: Family) -> Family {
    match f {
        Family::V4 => Family::V6,
        Family::V6 => Family::V4,
    }
}
