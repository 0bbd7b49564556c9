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
//! of both policies. Two connections whose sources share a class, whose
//! destinations share a class and whose protocols share a port class are
//! decided alike by [`Policy::decide`] in *both* policies, so evaluating one
//! representative of each (source class, destination class, port class)
//! triple with `decide` is exact, not sampling.
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
//! With `C` address classes per family, `P` port classes, `F` flows and `R`
//! roles (both policies together), each (source class, destination class)
//! pair costs `O(F / 64 + m)` word operations (`m` the flows it falls under)
//! to find what `decide` reads for it in each policy: the actions and ports
//! of those flows, whether the ends are managed, the source's egress, the
//! baseline. Where both policies read the same, nothing can differ and
//! `decide` is not called; otherwise it runs once per port class for each
//! distinct reading, at most `2·P·(C₄² + C₆²)` times, each `O((F + R) · log n)`.
//! A diff of two versions of a policy therefore costs little more than the
//! `C₄² + C₆²` pairs.

use crate::addr::{AddrSet, Family};
use crate::classes::{family_of, loopback, partition, port_classes, representative};
use crate::model::{Action, DefaultAction, Flow, Policy};
use crate::ports::{PortSet, Proto};
use crate::semantics::{Connection, Verdict};
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;

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
    /// How many address classes (both families) were compared.
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
    from: AddrSet,
    to: AddrSet,
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
    for p in [old, new] {
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
    let classes = partition(&sets);
    let pclasses = port_classes(&port_sets);

    // A source representative per class (loopback sources are real sources:
    // `decide` only short-cuts loopback destinations), and the destination
    // classes (never loopback).
    let src_rep: Vec<_> = classes
        .iter()
        .map(|c| representative(c, None).or_else(|| c.example()))
        .collect();
    let is_dst: Vec<bool> = classes.iter().map(|c| !c.is_subset(&lo)).collect();

    // Step 1: the changed port classes of each (source class, destination class).
    let mut interner = Interner::default();
    let view_old = View::new(old, &classes, &mut interner);
    let view_new = View::new(new, &classes, &mut interner);
    let mut memo = Memo::default();
    let mut changed_by_ids: HashMap<(usize, usize), Vec<PortChange>> = HashMap::new();
    let mut pairs: BTreeMap<(usize, usize, Verdict, Verdict), (PortSet, Connection)> =
        BTreeMap::new();
    for (si, sc) in classes.iter().enumerate() {
        let Some(s) = src_rep[si] else { continue };
        let fam = Family::of(s);
        for (di, dc) in classes.iter().enumerate() {
            if !is_dst[di] || family_of(dc) != fam {
                continue;
            }
            let (key_old, key_new) = (view_old.key(si, di, fam), view_new.key(si, di, fam));
            if key_old == key_new {
                // Both policies read the same for this pair: nothing changed.
                continue;
            }
            // Within one class: two distinct addresses (never one to itself).
            let avoid = (si == di).then_some(s);
            let Some(d) = representative(dc, avoid) else {
                continue;
            };
            debug_assert!(sc.contains(s) && dc.contains(d) && s != d && !d.is_loopback());
            let io = memo.id(key_old, old, s, d, &pclasses);
            let inew = memo.id(key_new, new, s, d, &pclasses);
            let changed = changed_by_ids.entry((io, inew)).or_insert_with(|| {
                let (vo, vn) = (&memo.verdicts[io], &memo.verdicts[inew]);
                (0..pclasses.len())
                    .filter(|&i| vo[i] != vn[i])
                    .map(|i| (i, vo[i], vn[i]))
                    .collect()
            });
            for &(pi, o, n) in changed.iter() {
                let (proto, pset) = &pclasses[pi];
                pairs
                    .entry((si, di, o, n))
                    .and_modify(|(ports, _)| *ports = ports.union(pset))
                    .or_insert_with(|| (pset.clone(), Connection::new(s, d, *proto)));
            }
        }
    }
    let mut blocks: Vec<Block> = pairs
        .into_iter()
        .map(|((si, di, o, n), (ports, example))| Block {
            from: classes[si].clone(),
            to: classes[di].clone(),
            ports,
            old: o,
            new: n,
            example,
        })
        .collect();

    // Step 2: merge products along one coordinate at a time, until stable.
    loop {
        let before = blocks.len();
        blocks = merge(
            blocks,
            |b| (b.from.clone(), AddrSet::default(), b.ports.clone()),
            |a, b| a.to = a.to.union(&b.to),
        );
        blocks = merge(
            blocks,
            |b| (AddrSet::default(), b.to.clone(), b.ports.clone()),
            |a, b| a.from = a.from.union(&b.from),
        );
        blocks = merge(
            blocks,
            |b| (b.from.clone(), b.to.clone(), PortSet::default()),
            |a, b| a.ports = a.ports.union(&b.ports),
        );
        if blocks.len() == before {
            break;
        }
    }

    let mut changes: Vec<Change> = blocks
        .into_iter()
        .map(|b| Change {
            from_label: label(&b.from, old, new),
            to_label: dst_label(&b.to, old, new),
            from: b.from,
            to: b.to,
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

/// A changed port class: its index, the old and the new verdict.
type PortChange = (usize, Verdict, Verdict);

/// Bits over a policy's flows or roles.
type Bits = Vec<u64>;

fn bits(n: usize, member: impl Fn(usize) -> bool) -> Bits {
    let mut b = vec![0u64; n.div_ceil(64)];
    for i in (0..n).filter(|&i| member(i)) {
        b[i / 64] |= 1 << (i % 64);
    }
    b
}

/// Ids for flow contents (action and ports) and egress sets, shared by both
/// policies so that their keys compare.
#[derive(Default)]
struct Interner {
    contents: HashMap<(Action, PortSet), usize>,
    egress: HashMap<PortSet, usize>,
}

impl Interner {
    fn content(&mut self, f: &Flow) -> usize {
        let n = self.contents.len();
        *self
            .contents
            .entry((f.action, f.ports.clone()))
            .or_insert(n)
    }

    fn egress(&mut self, p: PortSet) -> usize {
        let n = self.egress.len();
        *self.egress.entry(p).or_insert(n)
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
    /// Bits over interned flow contents.
    flows: Bits,
    /// The interned egress union of the source's roles, if it is managed.
    src: Option<usize>,
    dst_managed: bool,
    family: Family,
    icmp: bool,
    default: DefaultAction,
}

/// What one policy makes of each address class.
struct View<'a> {
    policy: &'a Policy,
    /// Per address class: the flows whose `from` holds it.
    from: Vec<Bits>,
    /// Per address class: the flows whose `to` holds it.
    to: Vec<Bits>,
    /// Per flow: its interned content.
    content: Vec<usize>,
    /// Per address class: the interned egress union of its roles, if managed.
    egress: Vec<Option<usize>>,
}

impl<'a> View<'a> {
    fn new(policy: &'a Policy, classes: &[AddrSet], interner: &mut Interner) -> View<'a> {
        // Each class lies inside or outside every set of both policies, so
        // any one of its addresses tells.
        let members: Vec<Option<IpAddr>> = classes.iter().map(|c| c.example()).collect();
        let nf = policy.flows.len();
        let per_class = |test: &dyn Fn(IpAddr, usize) -> bool| -> Vec<Bits> {
            members
                .iter()
                .map(|m| bits(nf, |i| m.is_some_and(|a| test(a, i))))
                .collect()
        };
        let from = per_class(&|a, i| policy.flows[i].from.addrs.contains(a));
        let to = per_class(&|a, i| policy.flows[i].to.addrs.contains(a));
        let content = policy.flows.iter().map(|f| interner.content(f)).collect();
        let egress = members
            .iter()
            .map(|m| {
                let roles = m.map(|a| policy.roles_of(a)).unwrap_or_default();
                if roles.is_empty() {
                    return None;
                }
                let union = roles
                    .iter()
                    .fold(PortSet::default(), |acc, r| acc.union(&r.egress));
                Some(interner.egress(union))
            })
            .collect();
        View {
            policy,
            from,
            to,
            content,
            egress,
        }
    }

    fn key(&self, si: usize, di: usize, family: Family) -> PairKey {
        let mut flows: Bits = Vec::new();
        for (w, (a, b)) in self.from[si].iter().zip(&self.to[di]).enumerate() {
            let mut word = a & b;
            while word != 0 {
                let bit = word.trailing_zeros() as usize;
                word &= word - 1;
                let c = self.content[w * 64 + bit];
                if flows.len() <= c / 64 {
                    flows.resize(c / 64 + 1, 0);
                }
                flows[c / 64] |= 1 << (c % 64);
            }
        }
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

/// Verdict vectors over the port classes, by [`PairKey`].
#[derive(Default)]
struct Memo {
    ids: HashMap<PairKey, usize>,
    /// By id: the verdict of each port class (`Accept` for a protocol of the
    /// other family, which no connection of the pair can have).
    verdicts: Vec<Vec<Verdict>>,
}

impl Memo {
    /// The id of `key`; the first time, evaluates `policy.decide` on `s → d`
    /// (a pair with this key) for every port class.
    fn id(
        &mut self,
        key: PairKey,
        policy: &Policy,
        s: IpAddr,
        d: IpAddr,
        pclasses: &[(Proto, PortSet)],
    ) -> usize {
        if let Some(&id) = self.ids.get(&key) {
            return id;
        }
        let family = key.family;
        let verdicts = pclasses
            .iter()
            .map(|(proto, _)| {
                let fits = match proto {
                    Proto::Icmp => family == Family::V4,
                    Proto::Icmpv6 => family == Family::V6,
                    _ => true,
                };
                if fits {
                    policy.decide(&Connection::new(s, d, *proto)).verdict
                } else {
                    Verdict::Accept
                }
            })
            .collect();
        let id = self.verdicts.len();
        self.verdicts.push(verdicts);
        self.ids.insert(key, id);
        id
    }
}

type Key = (AddrSet, AddrSet, PortSet);

/// Merges blocks with equal `key` and equal verdicts, combining with `join`.
fn merge(
    blocks: Vec<Block>,
    key: impl Fn(&Block) -> Key,
    join: impl Fn(&mut Block, &Block),
) -> Vec<Block> {
    let mut by: BTreeMap<(Key, Verdict, Verdict), Block> = BTreeMap::new();
    for b in blocks {
        match by.entry((key(&b), b.old, b.new)) {
            std::collections::btree_map::Entry::Occupied(mut e) => join(e.get_mut(), &b),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(b);
            }
        }
    }
    by.into_values().collect()
}

/// A destination set for people: loopback destinations are never part of a
/// change, so the label may count them in when that reads shorter
/// (`any IPv4 except 10.0.0.1` rather than `… except 10.0.0.1, 127.0.0.0/8`).
fn dst_label(set: &AddrSet, old: &Policy, new: &Policy) -> String {
    let plain = label(set, old, new);
    let with_lo = set.union(&loopback().only(family_of(set)));
    if with_lo == *set {
        return plain;
    }
    let alt = label(&with_lo, old, new);
    if alt.len() < plain.len() && alt.starts_with("any") {
        alt
    } else {
        plain
    }
}

/// A set for people: `name (addresses)` when it equals a group or role of
/// either policy (its part in the set's family), `any`, `any IPv4`, `any IPv6 except …` when that is
/// shorter, else the addresses.
fn label(set: &AddrSet, old: &Policy, new: &Policy) -> String {
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
    // Blocks are single-family: a group matches when its part in the family does.
    let mut names: Vec<&str> = Vec::new();
    for p in [new, old] {
        let named = p
            .groups
            .iter()
            .chain(p.roles.iter().map(|(n, r)| (n, &r.hosts)));
        for (name, g) in named {
            if g.only(fam) == *set && !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
    }
    let plain = if set.is_empty_in(other(fam)) {
        let rest = AddrSet::any().only(fam).difference(set);
        let (n_set, n_rest) = (set.range_strings().len(), rest.range_strings().len());
        if n_rest < n_set {
            format!("any {fam_name} except {rest}")
        } else {
            set.to_string()
        }
    } else {
        set.to_string()
    };
    if names.is_empty() {
        plain
    } else {
        format!("{} ({plain})", names.join("/"))
    }
}

fn other(f: Family) -> Family {
    match f {
        Family::V4 => Family::V6,
        Family::V6 => Family::V4,
    }
}
