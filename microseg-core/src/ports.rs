//! Port specs (`tcp/80`, `udp/53`, `tcp/2500-3300`, `icmp`, `icmpv6`) and port sets.
//!
//! ```
//! use microseg_core::ports::{PortSet, Proto};
//! let mut s = PortSet::default();
//! s.add_spec("tcp/80").unwrap();
//! s.add_spec("tcp/440-450").unwrap();
//! assert!(s.contains(Proto::Tcp(443)));
//! assert!(!s.contains(Proto::Udp(443)));
//! assert_eq!(s.to_string(), "tcp/80, tcp/440-450");
//! ```

use crate::interval::IntervalSet;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The protocol (and port) of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Proto {
    /// TCP to a destination port.
    Tcp(u16),
    /// UDP to a destination port.
    Udp(u16),
    /// ICMP (IPv4), any type.
    Icmp,
    /// ICMPv6, any type.
    Icmpv6,
}

impl Proto {
    /// True for ICMP and ICMPv6.
    pub fn is_icmp(self) -> bool {
        matches!(self, Proto::Icmp | Proto::Icmpv6)
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Proto::Tcp(p) => write!(f, "tcp/{p}"),
            Proto::Udp(p) => write!(f, "udp/{p}"),
            Proto::Icmp => f.write_str("icmp"),
            Proto::Icmpv6 => f.write_str("icmpv6"),
        }
    }
}

impl FromStr for Proto {
    type Err = String;
    /// Parses `tcp/443`, `udp/53`, `icmp` or `icmpv6` (one port, no range).
    fn from_str(s: &str) -> Result<Proto, String> {
        let mut set = PortSet::default();
        set.add_spec(s)?;
        let single = |r: &IntervalSet<u16>| match r.ranges() {
            [(a, b)] if a == b => Some(*a),
            _ => None,
        };
        if set.icmp {
            return Ok(Proto::Icmp);
        }
        if set.icmpv6 {
            return Ok(Proto::Icmpv6);
        }
        if let Some(p) = single(&set.tcp) {
            return Ok(Proto::Tcp(p));
        }
        if let Some(p) = single(&set.udp) {
            return Ok(Proto::Udp(p));
        }
        Err(format!(
            "{s:?} is a port range: give one port, like tcp/443"
        ))
    }
}

/// A set of TCP ports, UDP ports and the ICMP protocols.
#[derive(Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize, PartialOrd, Ord)]
pub struct PortSet {
    /// TCP destination ports.
    pub tcp: IntervalSet<u16>,
    /// UDP destination ports.
    pub udp: IntervalSet<u16>,
    /// ICMP (all types).
    pub icmp: bool,
    /// ICMPv6 (all types).
    pub icmpv6: bool,
}

impl fmt::Debug for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.specs();
        if v.is_empty() {
            f.write_str("(none)")
        } else {
            f.write_str(&v.join(", "))
        }
    }
}

const SPEC_HELP: &str = "expected tcp/PORT, udp/PORT, tcp/LOW-HIGH, icmp or icmpv6";

impl PortSet {
    /// Every port of every protocol.
    pub fn all() -> PortSet {
        PortSet {
            tcp: IntervalSet::range(1, 65535),
            udp: IntervalSet::range(1, 65535),
            icmp: true,
            icmpv6: true,
        }
    }

    /// Adds one port spec; the error says what would be right.
    pub fn add_spec(&mut self, spec: &str) -> Result<(), String> {
        let lower = spec.to_ascii_lowercase();
        match lower.as_str() {
            "icmp" => {
                self.icmp = true;
                return Ok(());
            }
            "icmpv6" | "ipv6-icmp" => {
                self.icmpv6 = true;
                return Ok(());
            }
            _ => {}
        }
        let Some((proto, ports)) = spec.split_once('/') else {
            if spec.parse::<u32>().is_ok() {
                return Err(format!(
                    "port spec {spec:?} has no protocol: did you mean \"tcp/{spec}\" or \"udp/{spec}\"?"
                ));
            }
            return Err(format!("{spec:?} is not a port spec: {SPEC_HELP}"));
        };
        let set = match proto {
            "tcp" => &mut self.tcp,
            "udp" => &mut self.udp,
            "icmp" | "icmpv6" => {
                return Err(format!(
                    "port spec {spec:?}: ICMP has no ports; write \"{proto}\" (all types)"
                ))
            }
            _ => {
                return Err(format!(
                    "port spec {spec:?}: unknown protocol {proto:?}, {SPEC_HELP}"
                ))
            }
        };
        let parse = |p: &str| -> Result<u16, String> {
            match p.parse::<u32>() {
                Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
                Ok(n) => Err(format!(
                    "port spec {spec:?}: port {n} is out of range, ports are 1-65535"
                )),
                Err(_) => Err(format!(
                    "port spec {spec:?}: {p:?} is not a port number, {SPEC_HELP}"
                )),
            }
        };
        let (lo, hi) = match ports.split_once('-') {
            Some((a, b)) => (parse(a)?, parse(b)?),
            None => {
                let p = parse(ports)?;
                (p, p)
            }
        };
        if lo > hi {
            return Err(format!(
                "port spec {spec:?} is reversed: did you mean \"{proto}/{hi}-{lo}\"?"
            ));
        }
        set.insert(lo, hi);
        Ok(())
    }

    /// True if the connection protocol/port is in the set.
    pub fn contains(&self, p: Proto) -> bool {
        match p {
            Proto::Tcp(n) => self.tcp.contains(n),
            Proto::Udp(n) => self.udp.contains(n),
            Proto::Icmp => self.icmp,
            Proto::Icmpv6 => self.icmpv6,
        }
    }

    /// True if the set has nothing.
    pub fn is_empty(&self) -> bool {
        self.tcp.is_empty() && self.udp.is_empty() && !self.icmp && !self.icmpv6
    }

    /// Union.
    pub fn union(&self, o: &PortSet) -> PortSet {
        PortSet {
            tcp: self.tcp.union(&o.tcp),
            udp: self.udp.union(&o.udp),
            icmp: self.icmp || o.icmp,
            icmpv6: self.icmpv6 || o.icmpv6,
        }
    }

    /// Intersection.
    pub fn intersect(&self, o: &PortSet) -> PortSet {
        PortSet {
            tcp: self.tcp.intersect(&o.tcp),
            udp: self.udp.intersect(&o.udp),
            icmp: self.icmp && o.icmp,
            icmpv6: self.icmpv6 && o.icmpv6,
        }
    }

    /// Difference.
    pub fn difference(&self, o: &PortSet) -> PortSet {
        PortSet {
            tcp: self.tcp.difference(&o.tcp),
            udp: self.udp.difference(&o.udp),
            icmp: self.icmp && !o.icmp,
            icmpv6: self.icmpv6 && !o.icmpv6,
        }
    }

    /// Subset test.
    pub fn is_subset(&self, o: &PortSet) -> bool {
        self.difference(o).is_empty()
    }

    /// Some connection protocol in the set, if any.
    pub fn example(&self) -> Option<Proto> {
        if let Some(p) = self.tcp.first() {
            return Some(Proto::Tcp(p));
        }
        if let Some(p) = self.udp.first() {
            return Some(Proto::Udp(p));
        }
        if self.icmp {
            return Some(Proto::Icmp);
        }
        self.icmpv6.then_some(Proto::Icmpv6)
    }

    /// The set as canonical specs (`tcp/80`, `tcp/2500-3300`, `icmp`).
    pub fn specs(&self) -> Vec<String> {
        let mut v = Vec::new();
        for (name, set) in [("tcp", &self.tcp), ("udp", &self.udp)] {
            for &(a, b) in set.ranges() {
                if a == b {
                    v.push(format!("{name}/{a}"));
                } else {
                    v.push(format!("{name}/{a}-{b}"));
                }
            }
        }
        if self.icmp {
            v.push("icmp".into());
        }
        if self.icmpv6 {
            v.push("icmpv6".into());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_errors_say_what_is_right() {
        let mut s = PortSet::default();
        assert!(s
            .add_spec("80")
            .unwrap_err()
            .contains("did you mean \"tcp/80\""));
        assert!(s.add_spec("tcp/0").unwrap_err().contains("1-65535"));
        assert!(s.add_spec("tcp/70000").unwrap_err().contains("1-65535"));
        assert!(s.add_spec("tcp/90-80").unwrap_err().contains("tcp/80-90"));
        assert!(s
            .add_spec("sctp/80")
            .unwrap_err()
            .contains("unknown protocol"));
        assert!(s
            .add_spec("tcp/http")
            .unwrap_err()
            .contains("not a port number"));
        assert!(s.add_spec("icmp/8").unwrap_err().contains("no ports"));
        assert!(s.is_empty());
    }

    #[test]
    fn proto_parse() {
        assert_eq!("tcp/22".parse::<Proto>().unwrap(), Proto::Tcp(22));
        assert_eq!("icmpv6".parse::<Proto>().unwrap(), Proto::Icmpv6);
        assert!("tcp/1-2".parse::<Proto>().is_err());
    }
}
