//! Exact partitions of the address and port spaces into classes that every
//! policy element treats alike.
//!
//! ```
//! use microseg_core::addr::AddrSet;
//! use microseg_core::classes::partition;
//! let a = AddrSet::single("10.0.0.1".parse().unwrap());
//! let atoms = partition(&[&a]);
//! // {10.0.0.1}, the rest of IPv4, all of IPv6.
//! assert_eq!(atoms.len(), 3);
//! ```
//!
//! Two addresses in one class are in exactly the same sets, so the reference
//! semantics cannot tell them apart: evaluating one representative per class
//! is exact. The matrix, lint and the semantic diff rest on this.

use crate::addr::{AddrSet, Family};
use crate::interval::{Bound, IntervalSet};
use crate::ports::{PortSet, Proto};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Splits all addresses (both families) into classes of equal membership in `sets`.
/// Each class is single-family; the classes cover everything and are disjoint.
/// Each family's classes are ordered by their membership (in `sets[0]` or
/// not, then in `sets[1]` or not, …; outside before inside).
///
/// The cost is that of sorting the sets' bounds plus, for each distinct set,
/// the number of elementary intervals (between consecutive bounds) it
/// covers: a set repeated (as by every flow naming one group) costs a hash
/// lookup and a comparison.
pub fn partition(sets: &[&AddrSet]) -> Vec<AddrSet> {
    Partition::new(sets).classes
}

/// A partition of the addresses (see [`partition`]) that also tells which
/// classes lie inside each of the sets it was made over.
pub(crate) struct Partition {
    /// The classes: IPv4 ones first, each family's ordered by membership
    /// signature, as [`partition`] returns them.
    pub(crate) classes: Vec<AddrSet>,
    /// Per input set: the ids of its distinct IPv4 part and IPv6 part
    /// (equal parts, equal ids).
    pub(crate) ids: Vec<(usize, usize)>,
    /// Per distinct IPv4 part: the classes inside it, ascending.
    inside_v4: Vec<Vec<usize>>,
    /// Per distinct IPv6 part: the classes inside it, ascending.
    inside_v6: Vec<Vec<usize>>,
}

impl Partition {
    pub(crate) fn new(sets: &[&AddrSet]) -> Partition {
        let v4: Vec<&IntervalSet<u32>> = sets.iter().map(|s| &s.v4).collect();
        let v4 = Split::new(&v4);
        let v6: Vec<&IntervalSet<u128>> = sets.iter().map(|s| &s.v6).collect();
        let mut v6 = Split::new(&v6);
        // IPv6 classes are numbered after the IPv4 ones.
        let n4 = v4.classes.len();
        for inside in &mut v6.inside {
            inside.iter_mut().for_each(|c| *c += n4);
        }
        let mut classes = Vec::with_capacity(n4 + v6.classes.len());
        classes.extend(v4.classes.into_iter().map(|c| AddrSet {
            v4: c,
            v6: IntervalSet::new(),
        }));
        classes.extend(v6.classes.into_iter().map(|c| AddrSet {
            v4: IntervalSet::new(),
            v6: c,
        }));
        Partition {
            classes,
            ids: v4.ids.into_iter().zip(v6.ids).collect(),
            inside_v4: v4.inside,
            inside_v6: v6.inside,
        }
    }

    /// The classes inside the IPv4 part and inside the IPv6 part of the
    /// input set with ids `(a, b)`, ascending.
    pub(crate) fn inside(&self, (a, b): (usize, usize)) -> (&[usize], &[usize]) {
        (&self.inside_v4[a], &self.inside_v6[b])
    }
}

/// The classes of equal membership in one family's (or protocol's) sets.
struct Split<T: Bound> {
    /// Ordered by membership signature (the vector "in `sets[0]`, in
    /// `sets[1]`, …", `false` before `true`), each the union of its
    /// elementary intervals.
    classes: Vec<IntervalSet<T>>,
    /// Per input set: the id of its distinct content.
    ids: Vec<usize>,
    /// Per distinct content: the classes inside it, ascending.
    inside: Vec<Vec<usize>>,
}

impl<T: Bound + Hash> Split<T> {
    /// Partition refinement over the elementary intervals between all
    /// bounds: every distinct set splits each class it meets into the part
    /// inside it and the rest. The cost is the number of elementary
    /// intervals each distinct set covers (there are no per-interval
    /// signature vectors, which cost intervals × sets), plus ordering the
    /// classes by signature.
    fn new(sets: &[&IntervalSet<T>]) -> Split<T> {
        // Distinct sets, numbered in the order they first occur in `sets`.
        let mut by_content: HashMap<ByContent<&IntervalSet<T>>, usize> = HashMap::new();
        let mut distinct: Vec<&IntervalSet<T>> = Vec::new();
        let ids: Vec<usize> = sets
            .iter()
            .map(|&s| {
                *by_content.entry(ByContent(s)).or_insert_with(|| {
                    distinct.push(s);
                    distinct.len() - 1
                })
            })
            .collect();
        // Elementary intervals between all boundaries: `starts[e]..starts[e + 1]`.
        let mut starts: Vec<T> = vec![T::MIN];
        for s in &distinct {
            for &(lo, hi) in s.ranges() {
                starts.push(lo);
                if let Some(n) = hi.succ() {
                    starts.push(n);
                }
            }
        }
        starts.sort_unstable();
        starts.dedup();
        let n = starts.len();
        // The elementary intervals a set covers, as index ranges.
        let covered: Vec<Vec<std::ops::Range<usize>>> = distinct
            .iter()
            .map(|s| {
                let at = |x: T| starts.binary_search(&x).expect("a boundary");
                s.ranges()
                    .iter()
                    .map(|&(lo, hi)| at(lo)..hi.succ().map_or(n, at))
                    .collect()
            })
            .collect();

        // Refinement: `class[e]` is the class of elementary interval `e`.
        let mut class: Vec<usize> = vec![0; n];
        // Per class: the distinct set that last split it (+1) and the class
        // its members inside that set moved to.
        let mut split_by: Vec<usize> = vec![0];
        let mut moved_to: Vec<usize> = vec![0];
        for (id, ranges) in covered.iter().enumerate() {
            for r in ranges {
                for c in &mut class[r.clone()] {
                    if split_by[*c] != id + 1 {
                        split_by[*c] = id + 1;
                        moved_to[*c] = split_by.len();
                        split_by.push(0);
                        moved_to.push(0);
                    }
                    *c = moved_to[*c];
                }
            }
        }
        // Number the classes left (some were emptied) and collect their intervals.
        let mut number: Vec<usize> = vec![usize::MAX; split_by.len()];
        let mut ranges: Vec<Vec<(T, T)>> = Vec::new();
        for (e, c) in class.iter_mut().enumerate() {
            if number[*c] == usize::MAX {
                number[*c] = ranges.len();
                ranges.push(Vec::new());
            }
            *c = number[*c];
            let hi = match starts.get(e + 1) {
                Some(next) => next.pred().expect("next start > start"),
                None => T::MAX,
            };
            ranges[*c].push((starts[e], hi));
        }
        // The classes inside each distinct set, and each class's signature:
        // the distinct sets holding it, ascending. Ordering classes by it
        // orders them by their membership in `sets`: a repeated set repeats
        // the membership at its first occurrence, so the first position
        // where two classes differ is the first occurrence of a distinct
        // set, and distinct sets are numbered in that order.
        let mut inside: Vec<Vec<usize>> = vec![Vec::new(); distinct.len()];
        let mut signature: Vec<Vec<usize>> = vec![Vec::new(); ranges.len()];
        for (id, covered) in covered.iter().enumerate() {
            for r in covered {
                for &c in &class[r.clone()] {
                    if signature[c].last() != Some(&id) {
                        signature[c].push(id);
                        inside[id].push(c);
                    }
                }
            }
        }
        let mut order: Vec<usize> = (0..ranges.len()).collect();
        order.sort_by(|&a, &b| signature_cmp(&signature[a], &signature[b]));
        let mut rank = vec![0; order.len()];
        for (r, &c) in order.iter().enumerate() {
            rank[c] = r;
        }
        for classes in &mut inside {
            classes.iter_mut().for_each(|c| *c = rank[*c]);
            classes.sort_unstable();
        }
        let classes = order
            .into_iter()
            .map(|c| IntervalSet::from_ranges(std::mem::take(&mut ranges[c])))
            .collect();
        Split {
            classes,
            ids,
            inside,
        }
    }
}

/// Compares two membership signatures given as the ascending numbers of
/// the sets holding a class, as the boolean vectors they stand for compare
/// (`false < true`, lexicographic).
fn signature_cmp(a: &[usize], b: &[usize]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        match x.cmp(y) {
            Ordering::Equal => {}
            // At position `x`, `a` is in and `b` is not: `a` is greater.
            Ordering::Less => return Ordering::Greater,
            Ordering::Greater => return Ordering::Less,
        }
    }
    // One a prefix of the other: the longer is in one more set.
    a.len().cmp(&b.len())
}

/// Splits the protocol/port space into classes of equal membership in `sets`.
/// Returns one representative [`Proto`] and the class's [`PortSet`] each.
pub fn port_classes(sets: &[&PortSet]) -> Vec<(Proto, PortSet)> {
    let mut out = Vec::new();
    let full = IntervalSet::range(1u16, 65535);
    for tcp in [true, false] {
        let parts: Vec<IntervalSet<u16>> = sets
            .iter()
            .map(|s| if tcp { s.tcp.clone() } else { s.udp.clone() })
            .collect();
        let refs: Vec<&IntervalSet<u16>> = parts.iter().collect();
        for class in Split::new(&refs).classes {
            let class = class.intersect(&full);
            let Some(first) = class.first() else { continue };
            let (proto, set) = if tcp {
                (
                    Proto::Tcp(first),
                    PortSet {
                        tcp: class,
                        ..PortSet::default()
                    },
                )
            } else {
                (
                    Proto::Udp(first),
                    PortSet {
                        udp: class,
                        ..PortSet::default()
                    },
                )
            };
            out.push((proto, set));
        }
    }
    out.push((
        Proto::Icmp,
        PortSet {
            icmp: true,
            ..PortSet::default()
        },
    ));
    out.push((
        Proto::Icmpv6,
        PortSet {
            icmpv6: true,
            ..PortSet::default()
        },
    ));
    out
}

/// A set as a hash key: equal by content, hashed by its size and a few of
/// its ranges, so that big sets (an endpoint naming a zone of a hundred
/// roles' hosts is named by many flows) hash in constant time.
#[derive(PartialEq, Eq)]
struct ByContent<S>(S);

fn fingerprint<T: Bound + Hash, H: Hasher>(s: &IntervalSet<T>, h: &mut H) {
    let r = s.ranges();
    r.len().hash(h);
    if let (Some(first), Some(last)) = (r.first(), r.last()) {
        (first, &r[r.len() / 2], last).hash(h);
    }
}

impl<T: Bound + Hash> Hash for ByContent<&IntervalSet<T>> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        fingerprint(self.0, h);
    }
}

/// A representative address of a class, avoiding loopback addresses and `avoid`
/// where the class allows. `None` if the class is empty.
pub fn representative(class: &AddrSet, avoid: Option<IpAddr>) -> Option<IpAddr> {
    // Prefer an inner address (lo+1) over a network-looking lower end.
    let mut candidates: Vec<IpAddr> = Vec::new();
    for &(lo, hi) in class.v4.ranges().iter().take(4) {
        if hi > lo {
            candidates.push(IpAddr::V4(Ipv4Addr::from(lo + 1)));
        }
        candidates.push(IpAddr::V4(Ipv4Addr::from(lo)));
        candidates.push(IpAddr::V4(Ipv4Addr::from(hi)));
    }
    for &(lo, hi) in class.v6.ranges().iter().take(4) {
        if hi > lo {
            candidates.push(IpAddr::V6(Ipv6Addr::from(lo + 1)));
        }
        candidates.push(IpAddr::V6(Ipv6Addr::from(lo)));
        candidates.push(IpAddr::V6(Ipv6Addr::from(hi)));
    }
    // Loopback addresses outside 127.0.0.0/8 and ::1 do not exist; avoid them and `avoid`.
    let ok = |a: &IpAddr| !a.is_loopback() && Some(*a) != avoid;
    candidates.iter().copied().find(ok).or_else(|| {
        // The class may be all loopback or a single avoided address: search a bit further.
        let non_loop = class.difference(&loopback());
        let non_loop = match avoid {
            Some(a) => non_loop.difference(&AddrSet::single(a)),
            None => non_loop,
        };
        non_loop.example()
    })
}

/// 127.0.0.0/8 and ::1.
pub fn loopback() -> AddrSet {
    let mut s = AddrSet::default();
    s.v4.insert(0x7f00_0000, 0x7fff_ffff);
    s.v6.insert(1, 1);
    s
}

/// The family of a single-family class.
pub fn family_of(class: &AddrSet) -> Family {
    if class.v4.is_empty() {
        Family::V6
    } else {
        Family::V4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// The definition: the elementary intervals between all bounds, grouped
    /// by the vector of their membership in `sets`, ordered by it.
    fn by_definition<T: Bound>(sets: &[&IntervalSet<T>]) -> Vec<IntervalSet<T>> {
        let mut starts: Vec<T> = vec![T::MIN];
        for s in sets {
            for &(lo, hi) in s.ranges() {
                starts.push(lo);
                starts.extend(hi.succ());
            }
        }
        starts.sort_unstable();
        starts.dedup();
        let mut by_sig: BTreeMap<Vec<bool>, Vec<(T, T)>> = BTreeMap::new();
        for (i, &lo) in starts.iter().enumerate() {
            let hi = starts.get(i + 1).map_or(T::MAX, |n| n.pred().unwrap());
            let sig: Vec<bool> = sets.iter().map(|s| s.contains(lo)).collect();
            by_sig.entry(sig).or_default().push((lo, hi));
        }
        by_sig.into_values().map(IntervalSet::from_ranges).collect()
    }

    fn cases() -> u32 {
        std::env::var("MICROSEG_PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000)
    }

    /// Sets of a few short ranges near both ends of `u32`, so that bounds
    /// meet, overlap and touch the ends.
    fn set() -> impl Strategy<Value = IntervalSet<u32>> {
        let start = prop_oneof![0u32..40, (u32::MAX - 40)..=u32::MAX];
        vec((start, 0u32..12), 0..4).prop_map(|v| {
            IntervalSet::from_ranges(v.into_iter().map(|(lo, len)| (lo, lo.saturating_add(len))))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: cases(),
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Refinement finds the classes of the definition, in its order (with
        /// repeated sets, as flows naming one group repeat it), and the
        /// classes inside each set.
        #[test]
        fn split_is_the_membership_partition_in_order(
            pool in vec(set(), 1..6),
            picks in vec(0usize..6, 0..12),
        ) {
            let sets: Vec<&IntervalSet<u32>> =
                picks.iter().map(|&i| &pool[i % pool.len()]).collect();
            let split = Split::new(&sets);
            prop_assert_eq!(&split.classes, &by_definition(&sets));
            for (i, s) in sets.iter().enumerate() {
                let inside: Vec<usize> = (0..split.classes.len())
                    .filter(|&c| split.classes[c].is_subset(s))
                    .collect();
                prop_assert_eq!(&split.inside[split.ids[i]], &inside);
            }
        }

        /// Both families: IPv4 classes first, IPv6 ones numbered after them.
        #[test]
        fn partition_lists_the_classes_inside_each_set(
            pool in vec((set(), set()), 1..5),
            picks in vec(0usize..5, 0..8),
        ) {
            let pool: Vec<AddrSet> = pool
                .into_iter()
                .map(|(a, b)| AddrSet {
                    v4: a,
                    v6: IntervalSet::from_ranges(b.ranges().iter().map(|&(lo, hi)| {
                        (u128::from(lo) << 96, u128::from(hi) << 96)
                    })),
                })
                .collect();
            let sets: Vec<&AddrSet> = picks.iter().map(|&i| &pool[i % pool.len()]).collect();
            let part = Partition::new(&sets);
            let v4: Vec<&IntervalSet<u32>> = sets.iter().map(|s| &s.v4).collect();
            let v6: Vec<&IntervalSet<u128>> = sets.iter().map(|s| &s.v6).collect();
            let expected: Vec<AddrSet> = by_definition(&v4)
                .into_iter()
                .map(|v4| AddrSet { v4, ..AddrSet::default() })
                .chain(by_definition(&v6).into_iter().map(|v6| AddrSet { v6, ..AddrSet::default() }))
                .collect();
            prop_assert_eq!(&part.classes, &expected);
            for (i, s) in sets.iter().enumerate() {
                let (a, b) = part.inside(part.ids[i]);
                let inside: Vec<usize> = a.iter().chain(b).copied().collect();
                let expected: Vec<usize> = (0..part.classes.len())
                    .filter(|&c| part.classes[c].is_subset(s))
                    .collect();
                prop_assert_eq!(inside, expected);
            }
        }
    }
}
