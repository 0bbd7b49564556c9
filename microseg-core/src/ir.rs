//! The intermediate representation: one [`HostRuleset`] per role or per host.
//!
//! ```
//! use microseg_core::{Policy, document::Format, ir::{compile, Target, Direction}};
//! use microseg_core::{ports::Proto, semantics::{Connection, Verdict}};
//! let p = Policy::from_str_as(r#"
//! version = 1
//! [groups]
//! web = ["10.0.1.10-10.0.1.19"]
//! app = ["10.0.1.20"]
//! [roles.web]
//! [roles.app]
//! [[flows]]
//! name = "web-to-app"
//! from = "web"
//! to = "app"
//! ports = ["tcp/8080"]
//! "#, Format::Toml, None).unwrap();
//! let web = compile(&p, &Target::Role("web".into())).unwrap();
//! // The flow is an output rule on web (and an input rule on app).
//! let c = Connection::new("10.0.1.11".parse().unwrap(), "10.0.1.20".parse().unwrap(), Proto::Tcp(8080));
//! assert_eq!(web.decide(Direction::Output, &c).verdict, Verdict::Accept);
//! assert_eq!(web.decide(Direction::Input, &c).verdict, Verdict::Drop);
//! ```
//!
//! A ruleset has named single-family address sets, and an ordered rule list
//! per direction: established/related, loopback and ICMPv6 neighbour
//! discovery first, then deny flows, reject flows, baseline egress (output),
//! baseline ICMP and allow flows; whatever falls through meets the default
//! verdict (counted, and logged under the rate limit when logging is on).
//! Rules carry their provenance, so every backend can name the flow a rule
//! came from.

use crate::addr::{AddrSet, Family};
use crate::interval::IntervalSet;
use crate::model::{Action, Flow, Hardening, LogSpec, Policy};
use crate::ports::{PortSet, Proto};
use crate::semantics::{Connection, Side, Verdict};
use crate::Error;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

/// What a ruleset is compiled for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum Target {
    /// Every host of one role (exact for hosts that hold only this role).
    Role(String),
    /// One host address: the union of all its roles.
    Host(IpAddr),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Role(r) => write!(f, "role {r}"),
            Target::Host(h) => write!(f, "host {h}"),
        }
    }
}

/// Packet direction on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Packets to the host (the receiver side).
    Input,
    /// Packets from the host (the sender side).
    Output,
}

impl Direction {
    /// The side of the semantics this direction implements.
    pub fn side(self) -> Side {
        match self {
            Direction::Input => Side::Receiver,
            Direction::Output => Side::Sender,
        }
    }
}

/// Where a named set's addresses come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum SetOrigin {
    /// A group (or a role named like it).
    Group {
        /// Group name.
        name: String,
    },
    /// A role's hosts.
    Role {
        /// Role name.
        name: String,
    },
    /// A flow endpoint that is not one group (a list, or literal addresses).
    Flow {
        /// Flow name.
        flow: String,
        /// `from` or `to`.
        side: String,
    },
}

/// A named single-family address set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct NamedSet {
    /// Set name, unique in the ruleset (`web_v4`, `_admin-ssh_to_v6`).
    pub name: String,
    /// Family of every element.
    pub family: Family,
    /// The addresses (only of `family`).
    pub addrs: AddrSet,
    /// Provenance.
    pub origin: SetOrigin,
}

/// The protocol part of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "proto", content = "ports", rename_all = "lowercase")]
pub enum ProtoMatch {
    /// TCP to these destination ports.
    Tcp(IntervalSet<u16>),
    /// UDP to these destination ports.
    Udp(IntervalSet<u16>),
    /// ICMP, every type.
    Icmp,
    /// ICMPv6, every type.
    Icmpv6,
}

impl ProtoMatch {
    /// True if the connection's protocol matches.
    pub fn matches(&self, p: Proto) -> bool {
        match (self, p) {
            (ProtoMatch::Tcp(s), Proto::Tcp(n)) | (ProtoMatch::Udp(s), Proto::Udp(n)) => {
                s.contains(n)
            }
            (ProtoMatch::Icmp, Proto::Icmp) | (ProtoMatch::Icmpv6, Proto::Icmpv6) => true,
            _ => false,
        }
    }

    /// The family an ICMP match implies.
    pub fn family(&self) -> Option<Family> {
        match self {
            ProtoMatch::Icmp => Some(Family::V4),
            ProtoMatch::Icmpv6 => Some(Family::V6),
            _ => None,
        }
    }
}

/// A match on a new connection's addresses and protocol.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct PacketMatch {
    /// Restrict to one family (always set when an address set is matched).
    pub family: Option<Family>,
    /// Source address must be in this named set.
    pub src: Option<String>,
    /// Destination address must be in this named set.
    pub dst: Option<String>,
    /// Protocol and ports.
    pub proto: ProtoMatch,
}

/// What a rule matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum RuleMatch {
    /// `ct state established,related`.
    Established,
    /// Loopback interface (`iif lo` / `oif lo`).
    Loopback,
    /// ICMPv6 neighbour discovery and packet-too-big (IPv6 breaks without them).
    Icmpv6Infra,
    /// A new connection.
    Packet(PacketMatch),
}

/// Where a rule comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Origin {
    /// A baseline rule: `established`, `loopback`, `icmpv6-nd`, `icmp`, `egress`.
    Baseline {
        /// Which one.
        what: String,
    },
    /// A flow.
    Flow {
        /// 0-based flow index.
        index: usize,
        /// Flow name.
        name: String,
    },
}

impl Origin {
    /// `flow:NAME` or `baseline:WHAT` (the rule comment backends emit).
    pub fn label(&self) -> String {
        match self {
            Origin::Baseline { what } => format!("baseline:{what}"),
            Origin::Flow { name, .. } => format!("flow:{name}"),
        }
    }
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Rule {
    /// What it matches.
    #[serde(rename = "match")]
    pub matches: RuleMatch,
    /// What it does.
    pub verdict: Verdict,
    /// Log matching new connections (rate-limited with the baseline's settings).
    pub log: bool,
    /// Provenance.
    pub origin: Origin,
}

/// The ruleset a role or host receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostRuleset {
    /// The table the policy owns.
    pub table: String,
    /// What it was compiled for.
    pub target: Target,
    /// The roles it implements.
    pub roles: Vec<String>,
    /// The addresses it is exact for.
    pub hosts: AddrSet,
    /// Named sets, by name.
    pub sets: BTreeMap<String, NamedSet>,
    /// Input rules, in order.
    pub input: Vec<Rule>,
    /// Output rules, in order.
    pub output: Vec<Rule>,
    /// Verdict for what no rule decides.
    pub default: Verdict,
    /// Logging of defaulted packets and of flows with `log`.
    pub log: Option<LogSpec>,
    /// Kernel hardening the host gets with the rules (`None`: sysctl is left alone).
    pub hardening: Option<Hardening>,
}

/// The result of evaluating a ruleset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The verdict.
    pub verdict: Verdict,
    /// The index of the deciding rule, or `None` for the default.
    pub rule: Option<usize>,
}

impl HostRuleset {
    /// The rules of a direction.
    pub fn rules(&self, dir: Direction) -> &[Rule] {
        match dir {
            Direction::Input => &self.input,
            Direction::Output => &self.output,
        }
    }

    /// Evaluates a new connection in `dir` (first matching rule wins).
    pub fn decide(&self, dir: Direction, c: &Connection) -> Hit {
        for (i, r) in self.rules(dir).iter().enumerate() {
            if self.rule_matches(r, c) {
                return Hit {
                    verdict: r.verdict,
                    rule: Some(i),
                };
            }
        }
        Hit {
            verdict: self.default,
            rule: None,
        }
    }

    fn rule_matches(&self, r: &Rule, c: &Connection) -> bool {
        match &r.matches {
            // New connections only: never established.
            RuleMatch::Established => false,
            RuleMatch::Loopback => c.dst.is_loopback() || c.src == c.dst,
            // The connections of the semantics are echo-like; infrastructure
            // types are not new connections.
            RuleMatch::Icmpv6Infra => false,
            RuleMatch::Packet(m) => {
                let fam = Family::of(c.src);
                if m.family.is_some_and(|f| f != fam) || m.proto.family().is_some_and(|f| f != fam)
                {
                    return false;
                }
                let in_set = |name: &Option<String>, a: IpAddr| match name {
                    None => true,
                    Some(n) => self.sets.get(n).is_some_and(|s| s.addrs.contains(a)),
                };
                in_set(&m.src, c.src) && in_set(&m.dst, c.dst) && m.proto.matches(c.proto)
            }
        }
    }
}

/// Compiles the ruleset for a role or a host.
pub fn compile(policy: &Policy, target: &Target) -> Result<HostRuleset, Error> {
    compile_with(policy, target, &Spans::of(policy))
}

/// The lowest and highest address of a set, per family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    v4: Option<(u32, u32)>,
    v6: Option<(u128, u128)>,
}

impl Span {
    fn of(a: &AddrSet) -> Span {
        let ends = |r: &[(u32, u32)]| Some((r.first()?.0, r.last()?.1));
        let ends6 = |r: &[(u128, u128)]| Some((r.first()?.0, r.last()?.1));
        Span {
            v4: ends(a.v4.ranges()),
            v6: ends6(a.v6.ranges()),
        }
    }

    /// False only if the sets cannot share an address.
    fn overlaps(&self, o: &Span) -> bool {
        let apart4 = |a: (u32, u32), b: (u32, u32)| a.1 < b.0 || b.1 < a.0;
        let apart6 = |a: (u128, u128), b: (u128, u128)| a.1 < b.0 || b.1 < a.0;
        matches!((self.v4, o.v4), (Some(a), Some(b)) if !apart4(a, b))
            || matches!((self.v6, o.v6), (Some(a), Some(b)) if !apart6(a, b))
    }
}

/// Per flow (by position), the spans of `from` and `to`: kept together in
/// one small array, a first test of whether a flow touches a role's hosts
/// costs no cache miss on the flow's own (possibly large) address sets.
struct Spans {
    from: Vec<Span>,
    to: Vec<Span>,
}

impl Spans {
    fn of(policy: &Policy) -> Spans {
        Spans {
            from: policy
                .flows
                .iter()
                .map(|f| Span::of(&f.from.addrs))
                .collect(),
            to: policy.flows.iter().map(|f| Span::of(&f.to.addrs)).collect(),
        }
    }
}

fn compile_with(policy: &Policy, target: &Target, spans: &Spans) -> Result<HostRuleset, Error> {
    let (roles, hosts, egress) = match target {
        Target::Role(name) => {
            let role = policy.roles.get(name).ok_or_else(|| {
                let hint = crate::diag::suggestion(name, policy.roles.keys().map(|s| s.as_str()));
                Error::Request(format!(
                    "unknown role \"{name}\"{hint}; roles: {}",
                    policy.roles.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            })?;
            (
                vec![role.name.clone()],
                role.hosts.clone(),
                role.egress.clone(),
            )
        }
        Target::Host(ip) => {
            let roles = policy.roles_of(*ip);
            if roles.is_empty() {
                return Err(Error::Request(format!(
                    "host {ip} holds no role of this policy (no role's hosts contain it)"
                )));
            }
            let egress = roles
                .iter()
                .fold(PortSet::default(), |acc, r| acc.union(&r.egress));
            (
                roles.iter().map(|r| r.name.clone()).collect(),
                AddrSet::single(*ip),
                egress,
            )
        }
    };
    let mut b = Builder {
        policy,
        hosts: &hosts,
        span: Span::of(&hosts),
        spans,
        sets: BTreeMap::new(),
    };
    let input = b.chain(Direction::Input, None);
    let output = b.chain(Direction::Output, Some(&egress));
    let sets = b.sets;
    Ok(HostRuleset {
        table: policy.table.clone(),
        target: target.clone(),
        roles,
        hosts,
        sets,
        input,
        output,
        default: Verdict::from_default(policy.baseline.default),
        log: policy.baseline.log.clone(),
        hardening: policy.hardening,
    })
}

/// Compiles every role.
pub fn compile_all_roles(policy: &Policy) -> Vec<HostRuleset> {
    let spans = Spans::of(policy);
    policy
        .roles
        .keys()
        .map(|r| {
            compile_with(policy, &Target::Role(r.clone()), &spans).expect("every role compiles")
        })
        .collect()
}

struct Builder<'a> {
    policy: &'a Policy,
    hosts: &'a AddrSet,
    span: Span,
    spans: &'a Spans,
    sets: BTreeMap<String, NamedSet>,
}

fn baseline(what: &str) -> Origin {
    Origin::Baseline { what: what.into() }
}

impl Builder<'_> {
    fn chain(&mut self, dir: Direction, egress: Option<&PortSet>) -> Vec<Rule> {
        let mut rules = vec![
            Rule {
                matches: RuleMatch::Established,
                verdict: Verdict::Accept,
                log: false,
                origin: baseline("established"),
            },
            Rule {
                matches: RuleMatch::Loopback,
                verdict: Verdict::Accept,
                log: false,
                origin: baseline("loopback"),
            },
            Rule {
                matches: RuleMatch::Icmpv6Infra,
                verdict: Verdict::Accept,
                log: false,
                origin: baseline("icmpv6-nd"),
            },
        ];
        // The flows whose own side (`to` on input, `from` on output) may
        // touch these hosts, by their spans; `flow_rules` checks exactly.
        let own_spans = match dir {
            Direction::Input => &self.spans.to,
            Direction::Output => &self.spans.from,
        };
        let flows: Vec<&Flow> = self
            .policy
            .flows
            .iter()
            .zip(own_spans)
            .filter(|(_, sp)| sp.overlaps(&self.span))
            .map(|(f, _)| f)
            .collect();
        for action in [Action::Deny, Action::Reject] {
            for f in flows.iter().filter(|f| f.action == action) {
                self.flow_rules(dir, f, &mut rules);
            }
        }
        if let Some(eg) = egress {
            push_protos(
                &mut rules,
                None,
                None,
                None,
                eg,
                Verdict::Accept,
                false,
                baseline("egress"),
            );
        }
        if self.policy.baseline.icmp {
            let icmp = PortSet {
                icmp: true,
                icmpv6: true,
                ..PortSet::default()
            };
            push_protos(
                &mut rules,
                None,
                None,
                None,
                &icmp,
                Verdict::Accept,
                false,
                baseline("icmp"),
            );
        }
        for f in flows.iter().filter(|f| f.action == Action::Allow) {
            self.flow_rules(dir, f, &mut rules);
        }
        rules
    }

    /// The rules of one flow in one direction; nothing if the flow does not
    /// touch these hosts on that side.
    fn flow_rules(&mut self, dir: Direction, f: &Flow, out: &mut Vec<Rule>) {
        let own = match dir {
            Direction::Input => &f.to,
            Direction::Output => &f.from,
        };
        if !own.addrs.intersects(self.hosts) {
            return;
        }
        let verdict = match f.action {
            Action::Allow => Verdict::Accept,
            Action::Deny => Verdict::Drop,
            Action::Reject => Verdict::Reject,
        };
        let origin = Origin::Flow {
            index: f.index,
            name: f.name.clone(),
        };
        let hosts: &AddrSet = self.hosts;
        // Per family, without copying either set.
        let subset_in = |a: &AddrSet, b: &AddrSet, fam: Family| match fam {
            Family::V4 => a.v4.is_subset(&b.v4),
            Family::V6 => a.v6.is_subset(&b.v6),
        };
        let intersects_in = |a: &AddrSet, b: &AddrSet, fam: Family| match fam {
            Family::V4 => a.v4.intersects(&b.v4),
            Family::V6 => a.v6.intersects(&b.v6),
        };
        let unrestricted = |fam: Family, ep: &crate::model::Endpoint, own_side: bool| {
            if own_side {
                subset_in(hosts, &ep.addrs, fam)
            } else {
                ep.addrs.is_full_in(fam)
            }
        };
        // Both families unrestricted on both sides: one family-less rule for tcp/udp.
        let free = Family::BOTH.iter().all(|&fam| {
            unrestricted(fam, &f.from, dir == Direction::Output)
                && unrestricted(fam, &f.to, dir == Direction::Input)
                && !hosts.is_empty_in(fam)
        });
        if free {
            push_protos(out, None, None, None, &f.ports, verdict, f.log, origin);
            return;
        }
        for fam in Family::BOTH {
            if hosts.is_empty_in(fam)
                || f.from.addrs.is_empty_in(fam)
                || f.to.addrs.is_empty_in(fam)
            {
                continue;
            }
            if !intersects_in(&own.addrs, hosts, fam) {
                continue;
            }
            let src = if unrestricted(fam, &f.from, dir == Direction::Output) {
                None
            } else {
                Some(self.set_for(f, "from", fam))
            };
            let dst = if unrestricted(fam, &f.to, dir == Direction::Input) {
                None
            } else {
                Some(self.set_for(f, "to", fam))
            };
            push_protos(
                out,
                Some(fam),
                src,
                dst,
                &f.ports,
                verdict,
                f.log,
                origin.clone(),
            );
        }
    }

    /// The named set for a flow endpoint in one family: the group's (or role's)
    /// own set when the endpoint is exactly one of them, else a flow-derived set.
    fn set_for(&mut self, f: &Flow, side: &str, fam: Family) -> String {
        let ep = if side == "from" { &f.from } else { &f.to };
        let (name, origin) = match ep.terms.as_slice() {
            [crate::model::Term::Group(g)] => (
                format!("{g}_{}", fam.suffix()),
                SetOrigin::Group { name: g.clone() },
            ),
            [crate::model::Term::Role(r)] => (
                format!("{r}_{}", fam.suffix()),
                SetOrigin::Role { name: r.clone() },
            ),
            _ => (
                format!("_{}_{side}_{}", f.name, fam.suffix()),
                SetOrigin::Flow {
                    flow: f.name.clone(),
                    side: side.into(),
                },
            ),
        };
        self.sets.entry(name.clone()).or_insert_with(|| NamedSet {
            name: name.clone(),
            family: fam,
            addrs: ep.addrs.only(fam),
            origin,
        });
        name
    }
}

#[allow(clippy::too_many_arguments)]
fn push_protos(
    out: &mut Vec<Rule>,
    family: Option<Family>,
    src: Option<String>,
    dst: Option<String>,
    ports: &PortSet,
    verdict: Verdict,
    log: bool,
    origin: Origin,
) {
    let mut protos = Vec::new();
    if !ports.tcp.is_empty() {
        protos.push(ProtoMatch::Tcp(ports.tcp.clone()));
    }
    if !ports.udp.is_empty() {
        protos.push(ProtoMatch::Udp(ports.udp.clone()));
    }
    if ports.icmp && family != Some(Family::V6) {
        protos.push(ProtoMatch::Icmp);
    }
    if ports.icmpv6 && family != Some(Family::V4) {
        protos.push(ProtoMatch::Icmpv6);
    }
    for proto in protos {
        out.push(Rule {
            matches: RuleMatch::Packet(PacketMatch {
                family,
                src: src.clone(),
                dst: dst.clone(),
                proto,
            }),
            verdict,
            log,
            origin: origin.clone(),
        });
    }
}
