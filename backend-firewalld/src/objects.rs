//! The firewalld objects a ruleset becomes (the artefact of this backend).
//!
//! ```
//! use backend_firewalld::objects::{Action, Element, RichRule};
//! let r = RichRule {
//!     priority: -100,
//!     family: Some("ipv4".into()),
//!     source_ipset: Some("microseg-admin-4".into()),
//!     element: Some(Element::Port { port: "22".into(), protocol: "tcp".into() }),
//!     action: Some(Action::Accept),
//!     ..RichRule::default()
//! };
//! // The canonical text firewalld stores and returns.
//! assert_eq!(r.to_string(),
//!     r#"rule priority="-100" family="ipv4" source ipset="microseg-admin-4" port port="22" protocol="tcp" accept"#);
//! ```
//!
//! Everything here is plain data that serialises to JSON
//! (`microseg compile --format firewalld`) and maps one to one onto
//! firewalld's D-Bus settings: a zone (`config.zone.update2` keys), a policy
//! (`config.policy.update` keys) and ipsets (`(ssssa{ss}as)`). Rich rules are
//! kept as the exact canonical strings firewalld's `Rich_Rule.__str__`
//! produces, so what firewalld returns compares equal to what was rendered.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Everything one ruleset installs in firewalld.
///
/// ```
/// # use backend_firewalld::FirewalldRenderer;
/// # use microseg_core::backend::Renderer;
/// # use microseg_core::{Policy, document::Format, ir::{compile, Target}};
/// # let p = Policy::from_str_as("version = 1\n[groups]\ndb = [\"10.0.0.30\"]\nweb = [\"10.0.0.10\"]\n[roles.db]\n[[flows]]\nfrom = \"web\"\nto = \"db\"\nports = [\"tcp/5432\"]\n", Format::Toml, None).unwrap();
/// let cfg = FirewalldRenderer.render(&compile(&p, &Target::Role("db".into())).unwrap()).unwrap();
/// assert_eq!(cfg.compiled_for, "role db");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewalldConfig {
    /// The policy's table: every object name starts with it.
    pub table: String,
    /// What the ruleset was compiled for (`role web`, `host 10.0.0.1`).
    pub compiled_for: String,
    /// The input side: made the default zone.
    pub zone: ZoneObject,
    /// The output side: a policy from `HOST` to `ANY`.
    pub policy: PolicyObject,
    /// Address sets, by name.
    pub ipsets: Vec<IpsetObject>,
    /// Which IR rule (`flow:NAME`, `baseline:WHAT`) each rich rule comes from.
    pub origins: BTreeMap<String, String>,
    /// What firewalld does itself, and where it cannot follow the policy exactly.
    pub notes: Vec<String>,
}

impl FirewalldConfig {
    /// The ipset named `name`.
    ///
    /// ```
    /// # use backend_firewalld::objects::*;
    /// # let cfg: FirewalldConfig = serde_json::from_str(r#"{"table":"t","compiled_for":"role r",
    /// #  "zone":{"name":"t","short":"","description":"","target":"DROP","forward":false,"rich_rules":[]},
    /// #  "policy":{"name":"t-out","short":"","description":"","target":"DROP","priority":-32000,
    /// #   "ingress_zones":["HOST"],"egress_zones":["ANY"],"rich_rules":[]},
    /// #  "ipsets":[],"origins":{},"notes":[]}"#).unwrap();
    /// assert!(cfg.ipset("t-web-4").is_none());
    /// ```
    pub fn ipset(&self, name: &str) -> Option<&IpsetObject> {
        self.ipsets.iter().find(|s| s.name == name)
    }

    /// The artefact as pretty JSON (what `compile --format firewalld` prints).
    ///
    /// ```
    /// # use backend_firewalld::objects::*;
    /// # let cfg: FirewalldConfig = serde_json::from_str(r#"{"table":"t","compiled_for":"role r",
    /// #  "zone":{"name":"t","short":"","description":"","target":"DROP","forward":false,"rich_rules":[]},
    /// #  "policy":{"name":"t-out","short":"","description":"","target":"DROP","priority":-32000,
    /// #   "ingress_zones":["HOST"],"egress_zones":["ANY"],"rich_rules":[]},
    /// #  "ipsets":[],"origins":{},"notes":[]}"#).unwrap();
    /// assert!(cfg.to_json().contains("\"zone\""));
    /// ```
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("plain data serialises")
    }
}

/// The zone that holds the input rules; it becomes the default zone.
///
/// ```
/// # use backend_firewalld::FirewalldRenderer;
/// # use microseg_core::backend::Renderer;
/// # use microseg_core::{Policy, document::Format, ir::{compile, Target}};
/// # let p = Policy::from_str_as("version = 1\n[groups]\ndb = [\"10.0.0.30\"]\nweb = [\"10.0.0.10\"]\n[roles.db]\n[[flows]]\nfrom = \"web\"\nto = \"db\"\nports = [\"tcp/5432\"]\n", Format::Toml, None).unwrap();
/// let cfg = FirewalldRenderer.render(&compile(&p, &Target::Role("db".into())).unwrap()).unwrap();
/// assert_eq!((cfg.zone.name.as_str(), cfg.zone.target.as_str()), ("microseg", "DROP"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneObject {
    /// Zone name (= the table).
    pub name: String,
    /// Short description.
    pub short: String,
    /// Description, starting with the ownership marker.
    pub description: String,
    /// `DROP` or `%%REJECT%%` (firewalld's spelling of REJECT for zones).
    pub target: String,
    /// Intra-zone forwarding (always off: forwarding is dropped).
    pub forward: bool,
    /// Rich rules, canonical text.
    pub rich_rules: Vec<String>,
}

/// The policy that holds the output rules.
///
/// ```
/// # use backend_firewalld::FirewalldRenderer;
/// # use microseg_core::backend::Renderer;
/// # use microseg_core::{Policy, document::Format, ir::{compile, Target}};
/// # let p = Policy::from_str_as("version = 1\n[groups]\ndb = [\"10.0.0.30\"]\nweb = [\"10.0.0.10\"]\n[roles.db]\n[[flows]]\nfrom = \"web\"\nto = \"db\"\nports = [\"tcp/5432\"]\n", Format::Toml, None).unwrap();
/// let cfg = FirewalldRenderer.render(&compile(&p, &Target::Role("db".into())).unwrap()).unwrap();
/// assert_eq!((cfg.policy.ingress_zones[0].as_str(), cfg.policy.egress_zones[0].as_str()), ("HOST", "ANY"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyObject {
    /// Policy name (`<table>-out`).
    pub name: String,
    /// Short description.
    pub short: String,
    /// Description, starting with the ownership marker.
    pub description: String,
    /// `DROP` or `REJECT`.
    pub target: String,
    /// Policy priority (negative: dispatched before positive-priority policies).
    pub priority: i32,
    /// `["HOST"]`.
    pub ingress_zones: Vec<String>,
    /// `["ANY"]`.
    pub egress_zones: Vec<String>,
    /// Rich rules, canonical text.
    pub rich_rules: Vec<String>,
}

/// An address set (`hash:net`, one family).
///
/// ```
/// # use backend_firewalld::FirewalldRenderer;
/// # use microseg_core::backend::Renderer;
/// # use microseg_core::{Policy, document::Format, ir::{compile, Target}};
/// # let p = Policy::from_str_as("version = 1\n[groups]\ndb = [\"10.0.0.30\"]\nweb = [\"10.0.0.10\"]\n[roles.db]\n[[flows]]\nfrom = \"web\"\nto = \"db\"\nports = [\"tcp/5432\"]\n", Format::Toml, None).unwrap();
/// let cfg = FirewalldRenderer.render(&compile(&p, &Target::Role("db".into())).unwrap()).unwrap();
/// assert_eq!(cfg.ipset("microseg-web-4").unwrap().entries, ["10.0.0.10"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpsetObject {
    /// Ipset name.
    pub name: String,
    /// Short description (the IR set it implements).
    pub short: String,
    /// Description, starting with the ownership marker.
    pub description: String,
    /// Always `hash:net`.
    #[serde(rename = "type")]
    pub ipset_type: String,
    /// `family` = `inet` or `inet6` (and `maxelem` for very large sets).
    pub options: BTreeMap<String, String>,
    /// Minimal CIDR cover of the set (plain addresses for /32 and /128).
    pub entries: Vec<String>,
}

/// The element of a rich rule (what it matches besides addresses).
///
/// ```
/// use backend_firewalld::objects::{Action, Element, Log, RichRule};
/// let r = RichRule { element: Some(Element::Port { port: "2500-3300".into(), protocol: "tcp".into() }), action: Some(Action::Accept), ..RichRule::default() };
/// assert_eq!(r.to_string(), r#"rule port port="2500-3300" protocol="tcp" accept"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Element {
    /// `port port="80" protocol="tcp"` (a port or `low-high`).
    Port {
        /// `80` or `2500-3300`.
        port: String,
        /// `tcp` or `udp`.
        protocol: String,
    },
    /// `protocol value="icmp"`.
    Protocol {
        /// `icmp`, `ipv6-icmp`, …
        value: String,
    },
    /// `icmp-type name="neighbour-solicitation"`.
    IcmpType {
        /// firewalld's ICMP type name.
        name: String,
    },
}

/// The logging part of a rich rule.
///
/// ```
/// use backend_firewalld::objects::{Action, Element, Log, RichRule};
/// let r = RichRule { priority: 32766, log: Some(Log::NfLog { group: 1, prefix: "ms input drop: ".into(), limit: "10/s".into() }), ..RichRule::default() };
/// assert_eq!(r.to_string(), r#"rule priority="32766" nflog group="1" prefix="ms input drop: " limit value="10/s""#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Log {
    /// `log prefix=".." level=".." limit value=".."` (kernel log).
    Log {
        /// Log prefix.
        prefix: String,
        /// firewalld level name (`warning`, `info`, …), if set.
        level: Option<String>,
        /// `10/s` style limit.
        limit: String,
    },
    /// `nflog group=".." prefix=".." limit value=".."` (NFLOG group).
    NfLog {
        /// NFLOG group.
        group: u16,
        /// Log prefix.
        prefix: String,
        /// `10/s` style limit.
        limit: String,
    },
}

/// The verdict of a rich rule.
///
/// ```
/// use backend_firewalld::objects::{Action, Element, Log, RichRule};
/// let r = RichRule { family: Some("ipv6".into()), element: Some(Element::Protocol { value: "tcp".into() }), action: Some(Action::RejectWithTcpReset), ..RichRule::default() };
/// assert_eq!(r.to_string(), r#"rule family="ipv6" protocol value="tcp" reject type="tcp-reset""#);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `accept`.
    Accept,
    /// `drop`.
    Drop,
    /// `reject` (ICMP port unreachable).
    Reject,
    /// `reject type="tcp-reset"` (TCP only; needs a family).
    RejectWithTcpReset,
}

/// A rich rule (the subset of firewalld.richlanguage(5) this backend writes).
///
/// ```
/// use backend_firewalld::objects::{Action, Element, Log, RichRule};
/// let r = RichRule { priority: -30000, family: Some("ipv4".into()), source_ipset: Some("t-bad-4".into()), element: Some(Element::Protocol { value: "icmp".into() }), action: Some(Action::Drop), ..RichRule::default() };
/// assert_eq!(r.to_string(), r#"rule priority="-30000" family="ipv4" source ipset="t-bad-4" protocol value="icmp" drop"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct RichRule {
    /// Priority, -32768..=32767 (0 = firewalld's log/deny/allow chains).
    pub priority: i32,
    /// `ipv4` or `ipv6`.
    pub family: Option<String>,
    /// `source ipset=".."`.
    pub source_ipset: Option<String>,
    /// `destination ipset=".."`.
    pub destination_ipset: Option<String>,
    /// Port, protocol or ICMP type.
    pub element: Option<Element>,
    /// Logging.
    pub log: Option<Log>,
    /// Verdict (`None`: log only, then evaluation continues).
    pub action: Option<Action>,
}

impl fmt::Display for RichRule {
    /// firewalld's canonical form (`Rich_Rule.__str__` in firewall/core/rich.py).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("rule")?;
        if self.priority != 0 {
            write!(f, " priority=\"{}\"", self.priority)?;
        }
        if let Some(fam) = &self.family {
            write!(f, " family=\"{fam}\"")?;
        }
        if let Some(s) = &self.source_ipset {
            write!(f, " source ipset=\"{s}\"")?;
        }
        if let Some(d) = &self.destination_ipset {
            write!(f, " destination ipset=\"{d}\"")?;
        }
        match &self.element {
            Some(Element::Port { port, protocol }) => {
                write!(f, " port port=\"{port}\" protocol=\"{protocol}\"")?
            }
            Some(Element::Protocol { value }) => write!(f, " protocol value=\"{value}\"")?,
            Some(Element::IcmpType { name }) => write!(f, " icmp-type name=\"{name}\"")?,
            None => {}
        }
        match &self.log {
            Some(Log::Log {
                prefix,
                level,
                limit,
            }) => {
                f.write_str(" log")?;
                if !prefix.is_empty() {
                    write!(f, " prefix=\"{prefix}\"")?;
                }
                if let Some(l) = level {
                    write!(f, " level=\"{l}\"")?;
                }
                write!(f, " limit value=\"{limit}\"")?;
            }
            Some(Log::NfLog {
                group,
                prefix,
                limit,
            }) => {
                write!(f, " nflog group=\"{group}\"")?;
                if !prefix.is_empty() {
                    write!(f, " prefix=\"{prefix}\"")?;
                }
                write!(f, " limit value=\"{limit}\"")?;
            }
            None => {}
        }
        match self.action {
            Some(Action::Accept) => f.write_str(" accept")?,
            Some(Action::Drop) => f.write_str(" drop")?,
            Some(Action::Reject) => f.write_str(" reject")?,
            Some(Action::RejectWithTcpReset) => f.write_str(" reject type=\"tcp-reset\"")?,
            None => {}
        }
        Ok(())
    }
}
