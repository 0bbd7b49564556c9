//! The validated policy: names resolved, addresses and ports normalised.
//!
//! ```
//! let policy = microseg_core::Policy::from_str_as(r#"
//! version = 1
//! [groups]
//! web = ["10.0.0.10-10.0.0.19"]
//! [services]
//! http = ["tcp/80"]
//! [roles.web]
//! [[flows]]
//! from = "any"
//! to = "web"
//! services = ["http"]
//! "#, microseg_core::document::Format::Toml, None).unwrap();
//! assert_eq!(policy.table, "microseg");
//! assert!(policy.managed.contains("10.0.0.12".parse().unwrap()));
//! assert_eq!(policy.flows[0].name, "flow1");
//! ```

use crate::addr::AddrSet;
use crate::doc::PolicyDoc;
use crate::document::Pos;
use crate::ports::PortSet;
use serde::Serialize;
use std::collections::BTreeMap;
use std::collections::HashMap;

/// A validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The document as written (for round trips and reports).
    pub doc: PolicyDoc,
    /// The nftables table the policy owns; prefix of firewalld objects.
    pub table: String,
    /// Address groups, includes resolved.
    pub groups: BTreeMap<String, AddrSet>,
    /// Services.
    pub services: BTreeMap<String, PortSet>,
    /// Roles.
    pub roles: BTreeMap<String, Role>,
    /// Flows in document order.
    pub flows: Vec<Flow>,
    /// Baseline rules.
    pub baseline: Baseline,
    /// Kernel hardening, if the policy sets it.
    pub hardening: Option<Hardening>,
    /// Every address that is a host of some role.
    pub managed: AddrSet,
    /// Positions of document elements, for located warnings.
    pub positions: Positions,
}

/// A role: a ruleset that hosts receive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Role {
    /// Role name.
    pub name: String,
    /// The hosts that hold the role.
    pub hosts: AddrSet,
    /// New connections the role's hosts may open to any address.
    pub egress: PortSet,
    /// True if `egress` came from the baseline (the role set none).
    pub egress_is_baseline: bool,
}

/// What a flow does with matching new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Accept.
    Allow,
    /// Drop silently.
    Deny,
    /// Drop with an ICMP error / TCP reset.
    Reject,
}

impl Action {
    /// `allow`, `deny` or `reject`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::Reject => "reject",
        }
    }
}

/// One term of an endpoint as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum Term {
    /// `any`.
    Any,
    /// A named group.
    Group(String),
    /// A role (its hosts).
    Role(String),
    /// A literal address entry.
    Address(String),
}

/// The `from` or `to` of a flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// The union of the terms' addresses.
    pub addrs: AddrSet,
    /// The terms as written.
    pub terms: Vec<Term>,
}

impl Endpoint {
    /// The terms as text (`web`, `any`, `10.0.0.1`).
    pub fn label(&self) -> String {
        let v: Vec<String> = self
            .terms
            .iter()
            .map(|t| match t {
                Term::Any => "any".to_string(),
                Term::Group(n) | Term::Role(n) => n.clone(),
                Term::Address(a) => a.clone(),
            })
            .collect();
        v.join(",")
    }
}

/// An allowed (or denied) connection class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flow {
    /// 0-based position in the document.
    pub index: usize,
    /// The flow's name, or `flowN` (1-based) when unnamed.
    pub name: String,
    /// Sources.
    pub from: Endpoint,
    /// Destinations.
    pub to: Endpoint,
    /// Protocols and ports (services and ports unioned).
    pub ports: PortSet,
    /// Allow, deny or reject.
    pub action: Action,
    /// Log new connections that match.
    pub log: bool,
}

/// The verdict for new connections no rule allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultAction {
    /// Drop silently.
    Drop,
    /// Reject (ICMP error / TCP reset).
    Reject,
}

/// Unit of a log rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RateUnit {
    /// Per second.
    Second,
    /// Per minute.
    Minute,
    /// Per hour.
    Hour,
    /// Per day.
    Day,
}

impl RateUnit {
    /// `second`, `minute`, `hour`, `day`.
    pub fn as_str(self) -> &'static str {
        match self {
            RateUnit::Second => "second",
            RateUnit::Minute => "minute",
            RateUnit::Hour => "hour",
            RateUnit::Day => "day",
        }
    }
}

/// Where log lines go.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogTarget {
    /// The kernel log at its default level.
    Kernel,
    /// The kernel log at a syslog level (`info`, `warn`, …).
    Level(String),
    /// An NFLOG group (ulogd, tcpdump nflog:N).
    Group(u16),
}

/// Rate-limited logging of dropped (or flagged) new connections.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct LogSpec {
    /// Log prefix.
    pub prefix: String,
    /// Packets per unit.
    pub rate: u32,
    /// Rate unit.
    pub unit: RateUnit,
    /// Burst in packets.
    pub burst: u32,
    /// Kernel log level or NFLOG group.
    pub target: LogTarget,
}

/// Rules every role gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Baseline {
    /// Accept ICMP and ICMPv6.
    pub icmp: bool,
    /// New connections any managed host may open to any address (roles may replace it).
    pub egress: PortSet,
    /// Drop logging, if on.
    pub log: Option<LogSpec>,
    /// The default verdict.
    pub default: DefaultAction,
}

/// Reverse-path filtering mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RpFilter {
    /// Strict (1).
    Strict,
    /// Loose (2).
    Loose,
    /// Off (0).
    Off,
}

/// Kernel network hardening settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub struct Hardening {
    /// Accept and send ICMP redirects (the guide: false).
    pub redirects: bool,
    /// Reverse-path filtering (the guide: strict).
    pub rp_filter: RpFilter,
    /// TCP SYN cookies (the guide: true).
    pub syncookies: bool,
}

/// Positions of document elements by path (`flows[2].to`, `groups.web`).
#[derive(Debug, Clone, Default)]
pub struct Positions {
    /// The file name, if the document came from a file.
    pub file: Option<String>,
    /// Position by path.
    pub by_path: HashMap<String, Pos>,
}

impl Positions {
    /// The position of `path`, if known.
    pub fn get(&self, path: &str) -> Option<Pos> {
        self.by_path.get(path).copied()
    }
}

impl Policy {
    /// The roles whose hosts include `addr`.
    pub fn roles_of(&self, addr: std::net::IpAddr) -> Vec<&Role> {
        self.roles
            .values()
            .filter(|r| r.hosts.contains(addr))
            .collect()
    }

    /// The address set named by a group or role name.
    pub fn named_addrs(&self, name: &str) -> Option<&AddrSet> {
        self.groups
            .get(name)
            .or_else(|| self.roles.get(name).map(|r| &r.hosts))
    }
}
