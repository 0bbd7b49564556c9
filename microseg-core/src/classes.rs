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
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Splits all addresses (both families) into classes of equal membership in `sets`.
/// Each class is single-family; the classes cover everything and are disjoint.
pub fn partition(sets: &[&AddrSet]) -> Vec<AddrSet> {
    let mut out = Vec::new();
    let v4: Vec<&IntervalSet<u32>> = sets.iter().map(|s| &s.v4).collect();
    for class in split(&v4) {
        out.push(AddrSet {
            v4: class,
            v6: IntervalSet::new(),
        });
    }
    let v6: Vec<&IntervalSet<u128>> = sets.iter().map(|s| &s.v6).collect();
    for class in split(&v6) {
        out.push(AddrSet {
            v4: IntervalSet::new(),
            v6: class,
        });
    }
    out
}

fn split<T: Bound>(sets: &[&IntervalSet<T>]) -> Vec<IntervalSet<T>> {
    // Elementary intervals between all boundaries.
    let mut starts: Vec<T> = vec![T::MIN];
    for s in sets {
        for &(lo, hi) in s.ranges() {
            starts.push(lo);
            if let Some(n) = hi.succ() {
                starts.push(n);
            }
        }
    }
    starts.sort_unstable();
    starts.dedup();
    let mut by_sig: BTreeMap<Vec<bool>, Vec<(T, T)>> = BTreeMap::new();
    for (i, &lo) in starts.iter().enumerate() {
        let hi = match starts.get(i + 1) {
            Some(n) => n.pred().expect("next start > lo"),
            None => T::MAX,
        };
        let sig: Vec<bool> = sets.iter().map(|s| s.contains(lo)).collect();
        by_sig.entry(sig).or_default().push((lo, hi));
    }
    by_sig.into_values().map(IntervalSet::from_ranges).collect()
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
        for class in split(&refs) {
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
