//! A model of how firewalld (1.x, nftables backend) decides a new connection
//! with the emitted objects, read back from their text.
//!
//! ```
//! use backend_firewalld::{FirewalldRenderer, model::Model};
//! use microseg_core::backend::Renderer;
//! use microseg_core::{Policy, document::Format, ports::Proto};
//! use microseg_core::ir::{compile, Direction, Target};
//! use microseg_core::semantics::{Connection, Verdict};
//! let p = Policy::from_str_as(r#"
//! version = 1
//! [groups]
//! web = ["10.0.1.10"]
//! bad = ["10.9.9.9"]
//! [roles.web]
//! [[flows]]
//! from = "any"
//! to = "web"
//! ports = ["tcp/80"]
//! [[flows]]
//! from = "bad"
//! to = "web"
//! ports = ["tcp/80"]
//! action = "deny"
//! "#, Format::Toml, None).unwrap();
//! let rs = compile(&p, &Target::Role("web".into())).unwrap();
//! let cfg = FirewalldRenderer.render(&rs).unwrap();
//! let model = Model::new(&cfg).unwrap();
//! let web = "10.0.1.10".parse().unwrap();
//! let ok = Connection::new("10.2.2.2".parse().unwrap(), web, Proto::Tcp(80));
//! let bad = Connection::new("10.9.9.9".parse().unwrap(), web, Proto::Tcp(80));
//! assert_eq!(model.decide(Direction::Input, &ok).unwrap(), Verdict::Accept);
//! // The deny flow wins although it comes later: its priority is lower.
//! assert_eq!(model.decide(Direction::Input, &bad).unwrap(), Verdict::Drop);
//! assert_eq!(model.decide(Direction::Input, &bad).unwrap(), rs.decide(Direction::Input, &bad).verdict);
//! ```
//!
//! What is modelled, from firewalld's source (`core/nftables.py`,
//! `core/fw_policy.py`, `core/rich.py`):
//!
//! * `filter_INPUT`/`filter_OUTPUT` accept loopback first (a connection to a
//!   loopback address or to the host's own address goes over `lo`).
//! * Input goes to the default zone (assumed to be the emitted zone, with no
//!   interface or source bound to another zone). A zone's or policy's chain
//!   runs rich rules with priority < 0 in priority order (`_pre`), then
//!   priority-0 rules by kind (`_log`, `_deny`, `_allow`), then priority > 0
//!   (`_post`), then the target: `DROP`, `%%REJECT%%`/`REJECT` (reject),
//!   `ACCEPT`, `default` (ICMP accepted, the rest rejected) or, for policies,
//!   `CONTINUE`.
//! * Output runs every policy from `HOST` to `ANY` in priority order; a packet
//!   no policy decides is accepted (`filter_OUTPUT` has policy accept).
//!   With `RFC3964_IPv4` on, `filter_OUTPUT` first rejects IPv6 destinations in
//!   firewalld's 6to4/IPv4-compatible list.
//! * A rich rule matches its family, `source`/`destination` (`address` or
//!   `ipset`; an ipset only matches packets of its own family), and its element:
//!   `port` (protocol and destination port), `protocol` (`icmp`, `ipv6-icmp`,
//!   `tcp`, `udp`), `icmp-type` (never an echo-like connection, which is what
//!   the semantics' connections are). A rule without action only logs.
//! * Rules of equal priority are ordered by insertion in firewalld, which
//!   this backend does not control: if two matching rules of the lowest
//!   matching priority disagree, [`Model::decide`] reports the ambiguity as an
//!   error instead of picking one.

use crate::objects::{FirewalldConfig, PolicyObject};
use crate::FirewalldError;
use ipnet::IpNet;
use microseg_core::addr::Family;
use microseg_core::ir::Direction;
use microseg_core::ports::Proto;
use microseg_core::semantics::{Connection, Verdict};
use std::collections::HashMap;
use std::net::IpAddr;

/// A parsed rich rule (the parts the model needs).
///
/// ```
/// let r = backend_firewalld::model::parse_rich_rule(r#"rule priority="-1" drop"#).unwrap();
/// assert_eq!(r.priority, -1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRule {
    /// Priority.
    pub priority: i32,
    /// `ipv4`/`ipv6`.
    pub family: Option<Family>,
    /// Source match.
    pub source: Option<AddrMatch>,
    /// Destination match.
    pub destination: Option<AddrMatch>,
    /// Element.
    pub element: Option<ParsedElement>,
    /// True if the rule logs.
    pub logs: bool,
    /// The verdict, if any.
    pub action: Option<Verdict>,
}

/// An address match of a rich rule.
///
/// ```
/// use backend_firewalld::model::{parse_rich_rule, AddrKind};
/// let r = parse_rich_rule(r#"rule family="ipv4" source NOT ipset="s" accept"#).unwrap();
/// let m = r.source.unwrap();
/// assert!(m.invert);
/// assert_eq!(m.what, AddrKind::Ipset("s".into()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrMatch {
    /// `NOT`.
    pub invert: bool,
    /// What is matched.
    pub what: AddrKind,
}

/// An address or an ipset.
///
/// ```
/// use backend_firewalld::model::{parse_rich_rule, AddrKind};
/// let r = parse_rich_rule(r#"rule family="ipv4" destination address="10.0.0.0/8" accept"#).unwrap();
/// assert_eq!(r.destination.unwrap().what, AddrKind::Address("10.0.0.0/8".parse().unwrap()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrKind {
    /// `address="10.0.0.0/8"`.
    Address(IpNet),
    /// `ipset="name"`.
    Ipset(String),
}

/// A rich rule element.
///
/// ```
/// use backend_firewalld::model::{parse_rich_rule, ParsedElement};
/// let r = parse_rich_rule(r#"rule family="ipv4" protocol value="icmp" accept"#).unwrap();
/// assert_eq!(r.element, Some(ParsedElement::Protocol("icmp".into())));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedElement {
    /// Destination port range of a protocol.
    Port {
        /// `tcp` or `udp`.
        protocol: String,
        /// First port.
        lo: u16,
        /// Last port.
        hi: u16,
    },
    /// `protocol value=".."`.
    Protocol(String),
    /// `icmp-type name=".."`.
    IcmpType(String),
}

/// Splits rich-rule text into words and `name=value` pairs (quotes removed).
fn tokens(text: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut word = String::new();
        let mut quoted = false;
        while let Some(&c) = chars.peek() {
            if c == '"' {
                quoted = !quoted;
                chars.next();
                continue;
            }
            if c.is_whitespace() && !quoted {
                break;
            }
            word.push(c);
            chars.next();
        }
        if quoted {
            return Err("unterminated quote".into());
        }
        match word.split_once('=') {
            Some((k, v)) => out.push((k.to_string(), Some(v.to_string()))),
            None => out.push((word, None)),
        }
    }
    Ok(out)
}

/// Parses one rich rule (the subset of firewalld.richlanguage(5) that
/// selects packets by address, port, protocol or ICMP type).
///
/// ```
/// use backend_firewalld::model::{parse_rich_rule, ParsedElement};
/// let r = parse_rich_rule(r#"rule priority="-5" family="ipv4" source ipset="s" port port="20-21" protocol="tcp" drop"#).unwrap();
/// assert_eq!(r.priority, -5);
/// assert_eq!(r.element, Some(ParsedElement::Port { protocol: "tcp".into(), lo: 20, hi: 21 }));
/// assert!(parse_rich_rule("rule masquerade").is_err());
/// ```
pub fn parse_rich_rule(text: &str) -> Result<ParsedRule, FirewalldError> {
    let bad = |why: String| FirewalldError::Model(format!("rich rule {text:?}: {why}"));
    let toks = tokens(text).map_err(&bad)?;
    let mut rule = ParsedRule {
        priority: 0,
        family: None,
        source: None,
        destination: None,
        element: None,
        logs: false,
        action: None,
    };
    let mut i = 0;
    // The element whose attributes follow.
    let mut current = String::new();
    let mut invert = false;
    let mut port: (Option<String>, Option<String>) = (None, None);
    while i < toks.len() {
        let (word, value) = &toks[i];
        i += 1;
        match value {
            None => {
                match word.as_str() {
                    "rule" | "limit" => {}
                    "source" | "destination" => invert = false,
                    "NOT" | "not" => {
                        invert = true;
                        continue;
                    }
                    "port" => port = (None, None),
                    "protocol" | "icmp-type" => {}
                    "log" | "nflog" | "audit" => rule.logs = true,
                    "accept" => rule.action = Some(Verdict::Accept),
                    "drop" => rule.action = Some(Verdict::Drop),
                    "reject" => rule.action = Some(Verdict::Reject),
                    other => return Err(bad(format!("the model does not know element {other:?}"))),
                }
                current = word.clone();
            }
            Some(v) => match (current.as_str(), word.as_str()) {
                ("rule", "priority") => {
                    rule.priority = v.parse().map_err(|_| bad(format!("priority {v:?}")))?;
                }
                ("rule", "family") => {
                    rule.family = Some(match v.as_str() {
                        "ipv4" => Family::V4,
                        "ipv6" => Family::V6,
                        _ => return Err(bad(format!("family {v:?}"))),
                    });
                }
                ("source" | "destination", "address" | "ipset") => {
                    let what = if word == "ipset" {
                        AddrKind::Ipset(v.clone())
                    } else {
                        AddrKind::Address(
                            parse_net(v).ok_or_else(|| bad(format!("address {v:?}")))?,
                        )
                    };
                    let m = Some(AddrMatch { invert, what });
                    if current == "source" {
                        rule.source = m;
                    } else {
                        rule.destination = m;
                    }
                }
                ("port", "port") => port.0 = Some(v.clone()),
                ("port", "protocol") => port.1 = Some(v.clone()),
                ("protocol", "value") => rule.element = Some(ParsedElement::Protocol(v.clone())),
                ("icmp-type", "name") => rule.element = Some(ParsedElement::IcmpType(v.clone())),
                ("log" | "nflog" | "audit", _) | ("limit", "value") => {}
                ("reject", "type") => {}
                (el, attr) => return Err(bad(format!("unexpected attribute {attr}= of {el:?}"))),
            },
        }
        if let (Some(p), Some(proto)) = (&port.0, &port.1) {
            let (lo, hi) = match p.split_once('-') {
                Some((a, b)) => (a.parse().ok(), b.parse().ok()),
                None => (p.parse().ok(), p.parse().ok()),
            };
            let (Some(lo), Some(hi)) = (lo, hi) else {
                return Err(bad(format!("port {p:?}")));
            };
            rule.element = Some(ParsedElement::Port {
                protocol: proto.clone(),
                lo,
                hi,
            });
            port = (None, None);
        }
    }
    if port.0.is_some() || port.1.is_some() {
        return Err(bad("port needs both port= and protocol=".into()));
    }
    Ok(rule)
}

fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// firewalld's `RFC3964_IPv4` reject list for IPv6 destinations (nftables.py).
const RFC3964: [&str; 9] = [
    "::/96",
    "::ffff:0.0.0.0/96",
    "2002::/24",
    "2002:a00::/24",
    "2002:7f00::/24",
    "2002:a9fe::/32",
    "2002:ac10::/28",
    "2002:c0a8::/32",
    "2002:e000::/19",
];

struct Chain {
    rules: Vec<ParsedRule>,
    target: String,
}

/// The model of a [`FirewalldConfig`] installed in a firewalld that has
/// nothing else bound (see the [module docs](self)).
///
/// ```
/// # use backend_firewalld::{FirewalldRenderer, model::Model};
/// # use microseg_core::backend::Renderer;
/// # use microseg_core::{Policy, document::Format, ports::Proto, semantics::{Connection, Verdict}};
/// # use microseg_core::ir::{compile, Direction, Target};
/// let p = Policy::from_str_as("version = 1\n[groups]\ndb = [\"10.0.0.30\"]\n[roles.db]\n", Format::Toml, None).unwrap();
/// let cfg = FirewalldRenderer.render(&compile(&p, &Target::Role("db".into())).unwrap()).unwrap();
/// let c = Connection::new("10.0.0.9".parse().unwrap(), "10.0.0.30".parse().unwrap(), Proto::Tcp(22));
/// assert_eq!(Model::new(&cfg).unwrap().decide(Direction::Input, &c).unwrap(), Verdict::Drop);
/// ```
pub struct Model {
    zone: Chain,
    policies: Vec<(i32, Chain)>,
    ipsets: HashMap<String, (Family, Vec<IpNet>)>,
    rfc3964: bool,
}

impl Model {
    /// Parses the objects' rules and ipset entries.
    ///
    /// ```
    /// # use backend_firewalld::{FirewalldRenderer, model::Model};
    /// # use microseg_core::backend::Renderer;
    /// # use microseg_core::{Policy, document::Format, ir::{compile, Target}};
    /// # let p = Policy::from_str_as("version = 1\n[groups]\ndb = [\"10.0.0.30\"]\n[roles.db]\n", Format::Toml, None).unwrap();
    /// let cfg = FirewalldRenderer.render(&compile(&p, &Target::Role("db".into())).unwrap()).unwrap();
    /// assert!(Model::new(&cfg).is_ok());
    /// ```
    pub fn new(cfg: &FirewalldConfig) -> Result<Model, FirewalldError> {
        let parse_all = |rules: &[String]| -> Result<Vec<ParsedRule>, FirewalldError> {
            rules.iter().map(|r| parse_rich_rule(r)).collect()
        };
        let mut ipsets = HashMap::new();
        for s in &cfg.ipsets {
            if s.ipset_type != "hash:net" && s.ipset_type != "hash:ip" {
                return Err(FirewalldError::Model(format!(
                    "ipset {}: type {} is not modelled",
                    s.name, s.ipset_type
                )));
            }
            let family = match s.options.get("family").map(String::as_str) {
                Some("inet6") => Family::V6,
                _ => Family::V4,
            };
            let mut nets = Vec::with_capacity(s.entries.len());
            for e in &s.entries {
                let net = parse_net(e).ok_or_else(|| {
                    FirewalldError::Model(format!("ipset {}: entry {e:?}", s.name))
                })?;
                if Family::of(net.addr()) != family {
                    return Err(FirewalldError::Model(format!(
                        "ipset {}: entry {e} is not of the set's family",
                        s.name
                    )));
                }
                nets.push(net);
            }
            ipsets.insert(s.name.clone(), (family, nets));
        }
        let policy = |p: &PolicyObject| -> Result<(i32, Chain), FirewalldError> {
            Ok((
                p.priority,
                Chain {
                    rules: parse_all(&p.rich_rules)?,
                    target: p.target.clone(),
                },
            ))
        };
        let mut policies = Vec::new();
        if p_is_host_output(&cfg.policy) {
            policies.push(policy(&cfg.policy)?);
        }
        policies.sort_by_key(|(p, _)| *p);
        Ok(Model {
            zone: Chain {
                rules: parse_all(&cfg.zone.rich_rules)?,
                target: cfg.zone.target.clone(),
            },
            policies,
            ipsets,
            rfc3964: false,
        })
    }

    /// Models firewalld's `RFC3964_IPv4=yes` (its default), which rejects
    /// output to a fixed list of IPv6 destinations before any policy.
    ///
    /// ```
    /// # use backend_firewalld::{FirewalldRenderer, model::Model};
    /// # use microseg_core::backend::Renderer;
    /// # use microseg_core::{Policy, document::Format, ports::Proto, semantics::{Connection, Verdict}};
    /// # use microseg_core::ir::{compile, Direction, Target};
    /// # let p = Policy::from_str_as("version = 1\n[groups]\ndb = [\"2001:db8::30\"]\n[roles.db]\n", Format::Toml, None).unwrap();
    /// # let cfg = FirewalldRenderer.render(&compile(&p, &Target::Role("db".into())).unwrap()).unwrap();
    /// let c = Connection::new("2001:db8::30".parse().unwrap(), "2002:a00::1".parse().unwrap(), Proto::Udp(53));
    /// assert_eq!(Model::new(&cfg).unwrap().decide(Direction::Output, &c).unwrap(), Verdict::Accept);
    /// assert_eq!(Model::new(&cfg).unwrap().with_rfc3964(true).decide(Direction::Output, &c).unwrap(), Verdict::Reject);
    /// ```
    pub fn with_rfc3964(mut self, on: bool) -> Model {
        self.rfc3964 = on;
        self
    }

    /// The verdict for a new connection in one direction on the host.
    ///
    /// ```
    /// # use backend_firewalld::{FirewalldRenderer, model::Model};
    /// # use microseg_core::backend::Renderer;
    /// # use microseg_core::{Policy, document::Format, ports::Proto, semantics::{Connection, Verdict}};
    /// # use microseg_core::ir::{compile, Direction, Target};
    /// # let p = Policy::from_str_as("version = 1\n[groups]\ndb = [\"10.0.0.30\"]\n[roles.db]\n", Format::Toml, None).unwrap();
    /// # let cfg = FirewalldRenderer.render(&compile(&p, &Target::Role("db".into())).unwrap()).unwrap();
    /// let c = Connection::new("10.0.0.30".parse().unwrap(), "203.0.113.53".parse().unwrap(), Proto::Udp(53));
    /// // baseline egress
    /// assert_eq!(Model::new(&cfg).unwrap().decide(Direction::Output, &c).unwrap(), Verdict::Accept);
    /// ```
    pub fn decide(&self, dir: Direction, c: &Connection) -> Result<Verdict, FirewalldError> {
        if c.dst.is_loopback() || c.src == c.dst {
            return Ok(Verdict::Accept);
        }
        match dir {
            Direction::Input => Ok(self.run(&self.zone, c, false)?.unwrap_or(Verdict::Accept)),
            Direction::Output => {
                if self.rfc3964
                    && c.dst.is_ipv6()
                    && RFC3964
                        .iter()
                        .any(|n| n.parse::<IpNet>().expect("constant").contains(&c.dst))
                {
                    return Ok(Verdict::Reject);
                }
                for (_, chain) in &self.policies {
                    if let Some(v) = self.run(chain, c, true)? {
                        return Ok(v);
                    }
                }
                Ok(Verdict::Accept)
            }
        }
    }

    /// The verdict for a forwarded packet: the zone's target (its rich rules
    /// belong to the zone's input policy, and `forward` is off).
    ///
    /// ```
    /// # use backend_firewalld::{FirewalldRenderer, model::Model};
    /// # use microseg_core::backend::Renderer;
    /// # use microseg_core::{Policy, document::Format, ports::Proto, semantics::{Connection, Verdict}};
    /// # use microseg_core::ir::{compile, Target};
    /// # let p = Policy::from_str_as("version = 1\n[groups]\ndb = [\"10.0.0.30\"]\n[roles.db]\n", Format::Toml, None).unwrap();
    /// # let cfg = FirewalldRenderer.render(&compile(&p, &Target::Role("db".into())).unwrap()).unwrap();
    /// let c = Connection::new("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), Proto::Tcp(22));
    /// assert_eq!(Model::new(&cfg).unwrap().decide_forward(&c), Verdict::Drop);
    /// ```
    pub fn decide_forward(&self, c: &Connection) -> Verdict {
        match self.zone.target.as_str() {
            "ACCEPT" => Verdict::Accept,
            "DROP" => Verdict::Drop,
            "default" if c.proto.is_icmp() => Verdict::Accept,
            _ => Verdict::Reject,
        }
    }

    /// One zone or policy chain; `None` if it continues (policy target `CONTINUE`).
    fn run(
        &self,
        chain: &Chain,
        c: &Connection,
        policy: bool,
    ) -> Result<Option<Verdict>, FirewalldError> {
        // _pre: priority < 0, ascending.
        let mut pre: Vec<&ParsedRule> = chain.rules.iter().filter(|r| r.priority < 0).collect();
        pre.sort_by_key(|r| r.priority);
        if let Some(v) = self.first(&pre, c)? {
            return Ok(Some(v));
        }
        // priority 0: _deny (drop, reject) before _allow (accept).
        let zero = |want: &[Verdict]| -> Vec<&ParsedRule> {
            chain
                .rules
                .iter()
                .filter(|r| r.priority == 0 && r.action.is_some_and(|a| want.contains(&a)))
                .collect()
        };
        for group in [
            zero(&[Verdict::Drop, Verdict::Reject]),
            zero(&[Verdict::Accept]),
        ] {
            let hits: Vec<Verdict> = group
                .iter()
                .filter(|r| self.matches(r, c))
                .filter_map(|r| r.action)
                .collect();
            if let Some(&v) = hits.first() {
                if hits.iter().any(|h| *h != v) {
                    return Err(FirewalldError::Model(format!(
                        "{c}: priority-0 rules of one chain disagree ({hits:?}); their order is up to firewalld"
                    )));
                }
                return Ok(Some(v));
            }
        }
        let mut post: Vec<&ParsedRule> = chain.rules.iter().filter(|r| r.priority > 0).collect();
        post.sort_by_key(|r| r.priority);
        if let Some(v) = self.first(&post, c)? {
            return Ok(Some(v));
        }
        Ok(match chain.target.as_str() {
            "ACCEPT" => Some(Verdict::Accept),
            "DROP" => Some(Verdict::Drop),
            "REJECT" | "%%REJECT%%" => Some(Verdict::Reject),
            "CONTINUE" if policy => None,
            "default" | "{chain}_{zone}" if !policy => Some(if c.proto.is_icmp() {
                Verdict::Accept
            } else {
                Verdict::Reject
            }),
            other => {
                return Err(FirewalldError::Model(format!(
                    "target {other:?} is not modelled"
                )));
            }
        })
    }

    /// The verdict of the lowest-priority matching rules with an action, in
    /// priority-sorted `rules`; an error if rules of that priority disagree.
    fn first(
        &self,
        rules: &[&ParsedRule],
        c: &Connection,
    ) -> Result<Option<Verdict>, FirewalldError> {
        let mut found: Option<(i32, Verdict)> = None;
        for r in rules {
            if let Some((p, _)) = found {
                if r.priority != p {
                    break;
                }
            }
            let Some(a) = r.action else { continue };
            if !self.matches(r, c) {
                continue;
            }
            match found {
                None => found = Some((r.priority, a)),
                Some((p, v)) if v != a => {
                    return Err(FirewalldError::Model(format!(
                        "{c}: two matching rules of priority {p} disagree ({} vs {}); their order is up to firewalld",
                        v.as_str(),
                        a.as_str()
                    )))
                }
                Some(_) => {}
            }
        }
        Ok(found.map(|(_, v)| v))
    }

    fn matches(&self, r: &ParsedRule, c: &Connection) -> bool {
        let fam = Family::of(c.src);
        if r.family.is_some_and(|f| f != fam) {
            return false;
        }
        let addr_ok = |m: &Option<AddrMatch>, a: IpAddr| -> bool {
            let Some(m) = m else { return true };
            let inside = match &m.what {
                AddrKind::Address(net) => {
                    if Family::of(net.addr()) != fam {
                        // nft: `ip saddr ..` never matches an IPv6 packet, inverted or not.
                        return false;
                    }
                    net.contains(&a)
                }
                AddrKind::Ipset(name) => match self.ipsets.get(name) {
                    Some((f, nets)) => {
                        if *f != fam {
                            return false;
                        }
                        nets.iter().any(|n| n.contains(&a))
                    }
                    // firewalld refuses rules with unknown ipsets; never matches here.
                    None => return false,
                },
            };
            inside != m.invert
        };
        if !addr_ok(&r.source, c.src) || !addr_ok(&r.destination, c.dst) {
            return false;
        }
        match &r.element {
            None => true,
            Some(ParsedElement::Port { protocol, lo, hi }) => match c.proto {
                Proto::Tcp(p) => protocol == "tcp" && (*lo..=*hi).contains(&p),
                Proto::Udp(p) => protocol == "udp" && (*lo..=*hi).contains(&p),
                _ => false,
            },
            Some(ParsedElement::Protocol(v)) => matches!(
                (v.as_str(), c.proto),
                ("icmp", Proto::Icmp)
                    | ("ipv6-icmp", Proto::Icmpv6)
                    | ("tcp", Proto::Tcp(_))
                    | ("udp", Proto::Udp(_))
            ),
            // Connections of the semantics are echo-like; ND/PTB types are not.
            Some(ParsedElement::IcmpType(name)) => {
                matches!(
                    (name.as_str(), c.proto),
                    ("echo-request", Proto::Icmp | Proto::Icmpv6)
                )
            }
        }
    }
}

fn p_is_host_output(p: &PolicyObject) -> bool {
    p.ingress_zones.iter().any(|z| z == "HOST") && p.egress_zones.iter().any(|z| z == "ANY")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_the_renderer_writes() {
        let r = parse_rich_rule(
            r#"rule priority="-10000" family="ipv6" source ipset="t-aF6" destination ipset="t-bT6" port port="80" protocol="tcp" nflog group="1" prefix="microseg a: " limit value="10/s" accept"#,
        )
        .unwrap();
        assert_eq!(r.family, Some(Family::V6));
        assert!(r.logs);
        assert_eq!(r.action, Some(Verdict::Accept));
        assert_eq!(
            r.destination,
            Some(AddrMatch {
                invert: false,
                what: AddrKind::Ipset("t-bT6".into())
            })
        );
        let l = parse_rich_rule(
            r#"rule priority="32767" log prefix="x input drop: " level="info" limit value="5/m""#,
        )
        .unwrap();
        assert_eq!(l.action, None);
        assert!(l.logs);
        let n =
            parse_rich_rule(r#"rule family="ipv4" source NOT address="10.0.0.0/8" drop"#).unwrap();
        assert!(n.source.unwrap().invert);
    }

    #[test]
    fn rejects_what_it_does_not_model() {
        assert!(parse_rich_rule(
            r#"rule family="ipv4" forward-port port="80" protocol="tcp" to-port="8080""#
        )
        .is_err());
        assert!(parse_rich_rule(r#"rule port port="80" drop"#).is_err());
    }
}
