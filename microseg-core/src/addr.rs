//! Address sets: IPv4 and IPv6 kept apart, each a merged interval set.
//!
//! ```
//! use microseg_core::addr::{AddrSet, parse_addr_entry};
//! let mut web = AddrSet::default();
//! web.add(&parse_addr_entry("10.10.1.10-10.10.1.19").unwrap());
//! web.add(&parse_addr_entry("2001:db8::/126").unwrap());
//! assert!(web.contains("10.10.1.15".parse().unwrap()));
//! // 10.10.1.10/31, 10.10.1.12/30 and 10.10.1.16/30
//! assert_eq!(web.cidrs_v4().len(), 3);
//! # let _ = web;
//! ```

use crate::interval::IntervalSet;
use ipnet::{IpNet, Ipv4Net, Ipv4Subnets, Ipv6Net, Ipv6Subnets};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IP family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// Both families, IPv4 first.
    pub const BOTH: [Family; 2] = [Family::V4, Family::V6];

    /// The family of an address.
    pub fn of(addr: IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// `"v4"` or `"v6"`.
    pub fn suffix(self) -> &'static str {
        match self {
            Family::V4 => "v4",
            Family::V6 => "v6",
        }
    }
}

/// A set of IPv4 and IPv6 addresses.
#[derive(Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize, PartialOrd, Ord)]
pub struct AddrSet {
    /// IPv4 addresses as `u32` intervals.
    pub v4: IntervalSet<u32>,
    /// IPv6 addresses as `u128` intervals.
    pub v6: IntervalSet<u128>,
}

impl fmt::Debug for AddrSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for AddrSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_any() {
            return f.write_str("any");
        }
        let parts = self.range_strings();
        if parts.is_empty() {
            return f.write_str("(none)");
        }
        f.write_str(&parts.join(", "))
    }
}

/// One parsed address entry (`@name` includes are resolved by the policy loader).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrEntry {
    /// An inclusive IPv4 range.
    V4(u32, u32),
    /// An inclusive IPv6 range.
    V6(u128, u128),
}

/// Why an address entry is invalid: the message says what would be right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrEntryError(pub String);

/// Parses an address, CIDR network or inclusive range.
///
/// A CIDR with host bits set is an error naming the intended network.
pub fn parse_addr_entry(text: &str) -> Result<AddrEntry, AddrEntryError> {
    let t = text.trim();
    if t != text || t.is_empty() {
        return Err(AddrEntryError(format!(
            "{text:?} is not an address: expected an IPv4/IPv6 address, CIDR network (10.0.0.0/24) or range (10.0.0.1-10.0.0.9)"
        )));
    }
    if let Some((lo, hi)) = t.split_once('-') {
        let lo_a: IpAddr = lo
            .trim()
            .parse()
            .map_err(|_| AddrEntryError(format!("range {text:?}: {lo:?} is not an IP address")))?;
        let hi_a: IpAddr = hi
            .trim()
            .parse()
            .map_err(|_| AddrEntryError(format!("range {text:?}: {hi:?} is not an IP address")))?;
        return match (lo_a, hi_a) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let (a, b) = (u32::from(a), u32::from(b));
                if a > b {
                    Err(AddrEntryError(format!(
                        "range {text:?} is reversed: the low end must come first ({hi}-{lo})"
                    )))
                } else {
                    Ok(AddrEntry::V4(a, b))
                }
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let (a, b) = (u128::from(a), u128::from(b));
                if a > b {
                    Err(AddrEntryError(format!(
                        "range {text:?} is reversed: the low end must come first ({hi}-{lo})"
                    )))
                } else {
                    Ok(AddrEntry::V6(a, b))
                }
            }
            _ => Err(AddrEntryError(format!(
                "range {text:?} mixes IPv4 and IPv6: both ends must be of the same family"
            ))),
        };
    }
    if let Some((a, len)) = t.split_once('/') {
        if let (Ok(addr), Ok(len)) = (a.parse::<IpAddr>(), len.parse::<u32>()) {
            let max = if addr.is_ipv4() { 32 } else { 128 };
            if len > max {
                let fam = if addr.is_ipv4() { "IPv4" } else { "IPv6" };
                return Err(AddrEntryError(format!(
                    "{text:?}: prefix length {len} is too long; {fam} prefixes are 0-{max}"
                )));
            }
        }
        let net: IpNet = t.parse().map_err(|_| {
            AddrEntryError(format!(
                "{text:?} is not a CIDR network: expected ADDRESS/PREFIX such as 10.0.0.0/24 or 2001:db8::/64"
            ))
        })?;
        if net.addr() != net.network() {
            return Err(AddrEntryError(format!(
                "{text:?} has host bits set: did you mean \"{}\"? (or list the address alone)",
                net.trunc()
            )));
        }
        return Ok(match net {
            IpNet::V4(n) => AddrEntry::V4(u32::from(n.network()), u32::from(n.broadcast())),
            IpNet::V6(n) => AddrEntry::V6(u128::from(n.network()), u128::from(n.broadcast())),
        });
    }
    match t.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => Ok(AddrEntry::V4(u32::from(a), u32::from(a))),
        Ok(IpAddr::V6(a)) => Ok(AddrEntry::V6(u128::from(a), u128::from(a))),
        Err(_) => Err(AddrEntryError(format!(
            "{text:?} is not an address: expected an IPv4/IPv6 address, CIDR network (10.0.0.0/24) or range (10.0.0.1-10.0.0.9)"
        ))),
    }
}

impl AddrSet {
    /// Every IPv4 and IPv6 address (the endpoint `any`).
    pub fn any() -> AddrSet {
        AddrSet {
            v4: IntervalSet::full(),
            v6: IntervalSet::full(),
        }
    }

    /// The set holding one address.
    pub fn single(addr: IpAddr) -> AddrSet {
        let mut s = AddrSet::default();
        s.insert_addr(addr);
        s
    }

    /// Adds one parsed entry.
    pub fn add(&mut self, e: &AddrEntry) {
        match *e {
            AddrEntry::V4(a, b) => self.v4.insert(a, b),
            AddrEntry::V6(a, b) => self.v6.insert(a, b),
        }
    }

    /// Adds one address.
    pub fn insert_addr(&mut self, addr: IpAddr) {
        match addr {
            IpAddr::V4(a) => self.v4.insert(u32::from(a), u32::from(a)),
            IpAddr::V6(a) => self.v6.insert(u128::from(a), u128::from(a)),
        }
    }

    /// True if `addr` is in the set.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) => self.v4.contains(u32::from(a)),
            IpAddr::V6(a) => self.v6.contains(u128::from(a)),
        }
    }

    /// True if the set has no address.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// True if the set is every address of both families.
    pub fn is_any(&self) -> bool {
        self.v4.is_full() && self.v6.is_full()
    }

    /// True if the set has no address of `family`.
    pub fn is_empty_in(&self, family: Family) -> bool {
        match family {
            Family::V4 => self.v4.is_empty(),
            Family::V6 => self.v6.is_empty(),
        }
    }

    /// True if the set holds every address of `family`.
    pub fn is_full_in(&self, family: Family) -> bool {
        match family {
            Family::V4 => self.v4.is_full(),
            Family::V6 => self.v6.is_full(),
        }
    }

    /// The part of the set in `family`.
    pub fn only(&self, family: Family) -> AddrSet {
        match family {
            Family::V4 => AddrSet {
                v4: self.v4.clone(),
                v6: IntervalSet::new(),
            },
            Family::V6 => AddrSet {
                v4: IntervalSet::new(),
                v6: self.v6.clone(),
            },
        }
    }

    /// Union.
    pub fn union(&self, o: &AddrSet) -> AddrSet {
        AddrSet {
            v4: self.v4.union(&o.v4),
            v6: self.v6.union(&o.v6),
        }
    }

    /// Intersection.
    pub fn intersect(&self, o: &AddrSet) -> AddrSet {
        AddrSet {
            v4: self.v4.intersect(&o.v4),
            v6: self.v6.intersect(&o.v6),
        }
    }

    /// Difference.
    pub fn difference(&self, o: &AddrSet) -> AddrSet {
        AddrSet {
            v4: self.v4.difference(&o.v4),
            v6: self.v6.difference(&o.v6),
        }
    }

    /// Subset test.
    pub fn is_subset(&self, o: &AddrSet) -> bool {
        self.v4.is_subset(&o.v4) && self.v6.is_subset(&o.v6)
    }

    /// True if the sets share an address.
    pub fn intersects(&self, o: &AddrSet) -> bool {
        self.v4.intersects(&o.v4) || self.v6.intersects(&o.v6)
    }

    /// Some address of the set (the lowest IPv4 one, else the lowest IPv6 one).
    pub fn example(&self) -> Option<IpAddr> {
        self.v4
            .first()
            .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
            .or_else(|| self.v6.first().map(|a| IpAddr::V6(Ipv6Addr::from(a))))
    }

    /// IPv4 intervals as address pairs.
    pub fn ranges_v4(&self) -> impl Iterator<Item = (Ipv4Addr, Ipv4Addr)> + '_ {
        self.v4
            .ranges()
            .iter()
            .map(|&(a, b)| (Ipv4Addr::from(a), Ipv4Addr::from(b)))
    }

    /// IPv6 intervals as address pairs.
    pub fn ranges_v6(&self) -> impl Iterator<Item = (Ipv6Addr, Ipv6Addr)> + '_ {
        self.v6
            .ranges()
            .iter()
            .map(|&(a, b)| (Ipv6Addr::from(a), Ipv6Addr::from(b)))
    }

    /// The minimal list of IPv4 CIDR prefixes covering exactly the IPv4 part.
    pub fn cidrs_v4(&self) -> Vec<Ipv4Net> {
        self.ranges_v4()
            .flat_map(|(a, b)| Ipv4Subnets::new(a, b, 0))
            .collect()
    }

    /// The minimal list of IPv6 CIDR prefixes covering exactly the IPv6 part.
    pub fn cidrs_v6(&self) -> Vec<Ipv6Net> {
        self.ranges_v6()
            .flat_map(|(a, b)| Ipv6Subnets::new(a, b, 0))
            .collect()
    }

    /// Both families' minimal CIDR covers.
    pub fn cidrs(&self) -> Vec<IpNet> {
        self.cidrs_v4()
            .into_iter()
            .map(IpNet::V4)
            .chain(self.cidrs_v6().into_iter().map(IpNet::V6))
            .collect()
    }

    /// Human-readable intervals: `10.0.0.1`, `10.0.0.0/24` when a range is one prefix, else `a-b`.
    pub fn range_strings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (a, b) in self.ranges_v4() {
            out.push(fmt_range(IpAddr::V4(a), IpAddr::V4(b)));
        }
        for (a, b) in self.ranges_v6() {
            out.push(fmt_range(IpAddr::V6(a), IpAddr::V6(b)));
        }
        out
    }
}

fn fmt_range(a: IpAddr, b: IpAddr) -> String {
    if a == b {
        return a.to_string();
    }
    let nets: Vec<IpNet> = match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => Ipv4Subnets::new(a, b, 0).map(IpNet::V4).collect(),
        (IpAddr::V6(a), IpAddr::V6(b)) => Ipv6Subnets::new(a, b, 0).map(IpNet::V6).collect(),
        _ => unreachable!("ranges are single-family"),
    };
    if nets.len() == 1 {
        nets[0].to_string()
    } else {
        format!("{a}-{b}")
    }
}

/// True for loopback addresses (127.0.0.0/8, ::1).
pub fn is_loopback(addr: IpAddr) -> bool {
    addr.is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(entries: &[&str]) -> AddrSet {
        let mut s = AddrSet::default();
        for e in entries {
            s.add(&parse_addr_entry(e).unwrap());
        }
        s
    }

    #[test]
    fn host_bits_name_the_network() {
        let e = parse_addr_entry("10.10.1.10/28").unwrap_err();
        assert!(e.0.contains("did you mean \"10.10.1.0/28\""), "{}", e.0);
    }

    #[test]
    fn ranges() {
        assert!(parse_addr_entry("10.0.0.9-10.0.0.1")
            .unwrap_err()
            .0
            .contains("reversed"));
        assert!(parse_addr_entry("10.0.0.1-2001:db8::1")
            .unwrap_err()
            .0
            .contains("mixes"));
        assert_eq!(
            parse_addr_entry("10.0.0.1-10.0.0.9").unwrap(),
            AddrEntry::V4(0x0a000001, 0x0a000009)
        );
    }

    #[test]
    fn cidr_cover_is_exact() {
        let s = set(&["10.10.1.10-10.10.1.19"]);
        let c: Vec<String> = s.cidrs_v4().iter().map(|n| n.to_string()).collect();
        assert_eq!(c, ["10.10.1.10/31", "10.10.1.12/30", "10.10.1.16/30"]);
        let s = set(&["::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"]);
        assert_eq!(s.cidrs_v6().len(), 1);
    }

    #[test]
    fn display() {
        assert_eq!(
            set(&["10.0.0.0/24", "10.0.1.0/24"]).to_string(),
            "10.0.0.0/23"
        );
        assert_eq!(set(&["10.0.0.1-10.0.0.3"]).to_string(), "10.0.0.1-10.0.0.3");
        assert_eq!(AddrSet::any().to_string(), "any");
    }
}
