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
//! assert_eq!(change.example.to_string(), "10.0.1.10 -> 10.0.1.20 tcp/8080");
//! assert!(d.to_text().contains("+ web (10.0.1.10-10.0.1.19) -> app (10.0.1.20) tcp/8080: drop -> accept"));
//! // Nothing else changed: an identical policy, however written, diffs empty.
//! assert!(diff(&new, &new).is_empty());
//! ```
//!
//! # Exactness
//!
//! The address space is split with [`classes::partition`] over every set
//! either policy's semantics looks at (the `from` and `to` of every flow, the
//! hosts of every role, and loopback), and the port space with
//! [`classes::port_classes`] over every flow's ports and every role's egress
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
//! (for connections that [`Connection::validate`] accepts).
//!
//! # Readability
//!
//! Changed triples with the same old and new verdict are merged: first the
//! port classes of one class pair, then, repeatedly until nothing merges,
//! destinations of blocks with the same sources and ports, sources of blocks
//! with the same destinations and ports, and ports of blocks with the same
//! sources and destinations. Every merge keeps a block a product of an address
//! set, an address set and a port set, so the result stays exact. Blocks of
//! one change are disjoint and single-family. Address sets are shown by name
//! when they equal a group or a role of either policy.
//!
//! # Complexity
//!
//! With `C` address classes per family, `P` port classes, `F` flows and `R`
//! roles (both policies together), `diff` makes `2·P·(C₄² + C₆²)` calls of
//! `decide`, each `O((F + R) · log n)`: quadratic in the number of distinct
//! address boundaries. A policy with a few hundred flows diffs in well under a
//! second in release builds.

use crate::addr::{AddrSet, Family};
use crate::classes::{family_of, loopback, partition, port_classes, representative};
use crate::model::Policy;
use crate::ports::{PortSet, Proto};
use crate::semantics::{Connection, Verdict};
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One block of changed connections: every connection from an address of
/// `from` to an address of `to` with a protocol/port in `ports` (other than
/// to itself or to loopback) had verdict `old` and now has `new`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Source addresses (one family), serialised as range strings.
    #[serde(serialize_with = "ser_addrs")]
    pub from: AddrSet,
    /// `from` for people: a group or role name with its addresses, `any`,
    /// `any IPv4 except …`, or the addresses.
    pub from_label: String,
    /// Destination addresses (same family as `from`), serialised as range strings.
    #[serde(serialize_with = "ser_addrs")]
    pub to: AddrSet,
    /// `to` for people (as `from_label`).
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
    let mut pairs: BTreeMap<(usize, usize, Verdict, Verdict), (PortSet, Connection)> = BTreeMap::new();
    for (si, sc) in classes.iter().enumerate() {
        let Some(s) = src_rep[si] else { continue };
        let fam = Family::of(s);
        for (di, dc) in classes.iter().enumerate() {
            if !is_dst[di] || family_of(dc) != fam {
                continue;
            }
            let d = if si == di {
                // Within one class: any two distinct addresses (not the same one).
                match representative(dc, Some(s)) {
                    Some(d) => d,
                    None => continue,
                }
            } else {
                match representative(dc, None) {
                    Some(d) => d,
                    None => continue,
                }
            };
            debug_assert!(sc.contains(s) && dc.contains(d));
            for (proto, pset) in &pclasses {
                let fits = match proto {
                    Proto::Icmp => fam == Family::V4,
                    Proto::Icmpv6 => fam == Family::V6,
                    _ => true,
                };
                if !fits {
                    continue;
                }
                let c = Connection::new(s, d, *proto);
                let (o, n) = (old.decide(&c).verdict, new.decide(&c).verdict);
                if o != n {
                    pairs
                        .entry((si, di, o, n))
                        .and_modify(|(ports, _)| *ports = ports.union(pset))
                        .or_insert_with(|| (pset.clone(), c));
                }
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
        blocks = merge(blocks, |b| (b.from.clone(), AddrSet::default(), b.ports.clone()), |a, b| {
            a.to = a.to.union(&b.to)
        });
        blocks = merge(blocks, |b| (AddrSet::default(), b.to.clone(), b.ports.clone()), |a, b| {
            a.from = a.from.union(&b.from)
        });
        blocks = merge(blocks, |b| (b.from.clone(), b.to.clone(), PortSet::default()), |a, b| {
            a.ports = a.ports.union(&b.ports)
        });
        if blocks.len() == before {
            break;
        }
    }

    let mut changes: Vec<Change> = blocks
        .into_iter()
        .map(|b| Change {
            from_label: label(&b.from, old, new),
            to_label: label(&b.to, old, new),
            from: b.from,
            to: b.to,
            ports: b.ports,
            old: b.old,
            new: b.new,
            example: b.example,
        })
        .collect();
    changes.sort_by(|a, b| {
        (a.family(), &a.from, &a.to, &a.ports, a.old, a.new).cmp(&(b.family(), &b.from, &b.to, &b.ports, b.old, b.new))
    });
    Diff {
        changes,
        address_classes: classes.len(),
        port_classes: pclasses.len(),
    }
}

type Key = (AddrSet, AddrSet, PortSet);

/// Merges blocks with equal `key` and equal verdicts, combining with `join`.
fn merge(blocks: Vec<Block>, key: impl Fn(&Block) -> Key, join: impl Fn(&mut Block, &Block)) -> Vec<Block> {
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

/// A set for people: `name (addresses)` when it equals a group or role of
/// either policy, `any`, `any IPv4`, `any IPv6 except …` when that is
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
    let mut names: Vec<&str> = Vec::new();
    for p in [new, old] {
        for (name, g) in &p.groups {
            if g == set && !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
        for (name, r) in &p.roles {
            if &r.hosts == set && !names.contains(&name.as_str()) {
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
