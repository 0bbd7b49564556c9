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
///
/// To compile many targets of one policy, [`Compiler`] does the per-flow
/// preparation once instead of on every call.
pub fn compile(policy: &Policy, target: &Target) -> Result<HostRuleset, Error> {
    // The spans only: for one target a scan of them costs less than the
    // index a `Compiler` builds.
    compile_with(policy, target, &Spans::of(policy))
}

/// Compiles many targets of one policy: the preparation [`compile`] does on
/// every call (the span of every flow endpoint) is done once, in
/// [`Compiler::new`], with an index of the spans that finds the flows which
/// may touch a target's hosts without a look at every flow. Each ruleset is
/// exactly the one [`compile`] returns. A compiler is `Sync`: threads may
/// share one.
///
/// ```
/// use microseg_core::{Policy, document::Format, ir::{compile, Compiler, Target}};
/// let p = Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n\
///     adm = [\"10.9.0.0/24\"]\n[roles.web]\n[roles.adm]\n[[flows]]\nfrom = \"adm\"\n\
///     to = \"web\"\nports = [\"tcp/22\"]\n", Format::Toml, None).unwrap();
/// let compiler = Compiler::new(&p);
/// for role in p.roles.keys() {
///     let target = Target::Role(role.clone());
///     assert_eq!(compiler.compile(&target).unwrap(), compile(&p, &target).unwrap());
/// }
/// ```
pub struct Compiler<'p> {
    policy: &'p Policy,
    spans: Spans,
}

impl<'p> Compiler<'p> {
    /// Prepares the compilation of `policy`'s targets.
    pub fn new(policy: &'p Policy) -> Compiler<'p> {
        Compiler {
            policy,
            spans: Spans::of(policy).indexed(),
        }
    }

    /// Compiles the ruleset for a role or a host (as [`compile`]).
    pub fn compile(&self, target: &Target) -> Result<HostRuleset, Error> {
        compile_with(self.policy, target, &self.spans)
    }
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
}

/// Per flow (by position), the spans of `from` and `to`: kept together in
/// one small array, a first test of whether a flow touches a role's hosts
/// costs no cache miss on the flow's own (possibly large) address sets.
struct Spans {
    from: Vec<Span>,
    to: Vec<Span>,
    /// With a [`Compiler`]: per side (`from`, `to`), the spans indexed.
    index: Option<[SideIndex; 2]>,
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
            index: None,
        }
    }

    /// Adds the index (a sort of the spans: worth it when compiling many targets).
    fn indexed(mut self) -> Spans {
        let side = |spans: &[Span]| SideIndex {
            v4: SpanIndex::new(spans.iter().map(|s| s.v4)),
            v6: SpanIndex::new(spans.iter().map(|s| s.v6)),
        };
        self.index = Some([side(&self.from), side(&self.to)]);
        self
    }

    /// The positions, in order, of the flows whose endpoint on one side
    /// (`to` if `to`, else `from`) has a span that meets `span` in a family:
    /// the flows that may touch a set of that span there.
    fn may_touch(&self, to: bool, span: &Span) -> Vec<usize> {
        let Some(index) = &self.index else {
            let own = if to { &self.to } else { &self.from };
            return (0..own.len())
                .filter(|&i| meets(own[i].v4, span.v4) || meets(own[i].v6, span.v6))
                .collect();
        };
        let ix = &index[usize::from(to)];
        let mut out = Vec::new();
        ix.v4.query(span.v4, &mut out);
        ix.v6.query(span.v6, &mut out);
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// True if both spans are there and meet.
fn meets<T: Ord>(a: Option<(T, T)>, b: Option<(T, T)>) -> bool {
    matches!((a, b), (Some(a), Some(b)) if !(a.1 < b.0 || b.1 < a.0))
}

/// The spans of one side of the flows, per family.
struct SideIndex {
    v4: SpanIndex<u32>,
    v6: SpanIndex<u128>,
}

/// Spans `(lo, hi, flow)` of one family, to find those that meet an
/// interval: the narrow ones (nine in ten: an endpoint is mostly a group
/// of hosts in one block) sorted by `lo`, where those meeting `lo..=hi`
/// start at `lo - reach` at the earliest; the wide ones in a list.
struct SpanIndex<T> {
    narrow: Vec<(T, T, usize)>,
    /// The width of the widest narrow span.
    reach: T,
    wide: Vec<(T, T, usize)>,
}

impl<T> SpanIndex<T>
where
    T: Copy + Ord + Default + std::ops::Sub<Output = T>,
{
    fn new(spans: impl Iterator<Item = Option<(T, T)>>) -> SpanIndex<T> {
        let all: Vec<(T, T, usize)> = spans
            .enumerate()
            .filter_map(|(i, s)| s.map(|(lo, hi)| (lo, hi, i)))
            .collect();
        // The widest tenth (and anything as wide) is scanned; the rest is sorted.
        let mut widths: Vec<T> = all.iter().map(|&(lo, hi, _)| hi - lo).collect();
        let reach = if widths.is_empty() {
            T::default()
        } else {
            let k = widths.len() * 9 / 10;
            *widths.select_nth_unstable(k).1
        };
        let (mut narrow, wide): (Vec<_>, Vec<_>) =
            all.into_iter().partition(|&(lo, hi, _)| hi - lo <= reach);
        narrow.sort_unstable_by_key(|&(lo, _, _)| lo);
        SpanIndex {
            narrow,
            reach,
            wide,
        }
    }

    /// Appends the flows whose span meets `span`.
    fn query(&self, span: Option<(T, T)>, out: &mut Vec<usize>) {
        let Some((lo, hi)) = span else {
            return;
        };
        // A narrow span (l, h) that meets lo..=hi has h >= lo and h - l <=
        // reach: it starts at lo - reach or later.
        let from = if lo > self.reach {
            lo - self.reach
        } else {
            T::default()
        };
        let start = self.narrow.partition_point(|&(l, _, _)| l < from);
        for &(l, h, i) in &self.narrow[start..] {
            if l > hi {
                break;
            }
            if h >= lo {
                out.push(i);
            }
        }
        out.extend(
            self.wide
                .iter()
                .filter(|&&(l, h, _)| !(h < lo || hi < l))
                .map(|&(_, _, i)| i),
        );
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
    let compiler = Compiler::new(policy);
    policy
        .roles
        .keys()
        .map(|r| {
            compiler
                .compile(&Target::Role(r.clone()))
                .expect("every role compiles")
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
        let flows: Vec<&Flow> = self
            .spans
            .may_touch(dir == Direction::Input, &self.span)
            .into_iter()
            .map(|i| &self.policy.flows[i])
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
        let hosts: &AddrSet = self.hosts;
        let (own, own_is_from) = match dir {
            Direction::Input => (&f.to, false),
            Direction::Output => (&f.from, true),
        };
        // Per family, without copying either set; each test made at most
        // once, and only when needed.
        let mut meets = [None::<bool>; 2];
        let mut meets_in = |fam: Family| {
            *meets[fam as usize].get_or_insert_with(|| match fam {
                Family::V4 => own.addrs.v4.intersects(&hosts.v4),
                Family::V6 => own.addrs.v6.intersects(&hosts.v6),
            })
        };
        if !meets_in(Family::V4) && !meets_in(Family::V6) {
            return;
        }
        let verdict = match f.action {
            Action::Allow => Verdict::Accept,
            Action::Deny => Verdict::Drop,
            Action::Reject => Verdict::Reject,
        };
        // The own side is unrestricted in a family when it holds every one
        // of these hosts there; the other side, when it is every address.
        let mut own_holds_hosts = [None::<bool>; 2];
        let mut unrestricted = |fam: Family, from: bool| {
            if from == own_is_from {
                *own_holds_hosts[fam as usize].get_or_insert_with(|| match fam {
                    Family::V4 => hosts.v4.is_subset(&own.addrs.v4),
                    Family::V6 => hosts.v6.is_subset(&own.addrs.v6),
                })
            } else {
                let ep = if from { &f.from } else { &f.to };
                ep.addrs.is_full_in(fam)
            }
        };
        // Both families unrestricted on both sides: one family-less rule for tcp/udp.
        let free = Family::BOTH.iter().all(|&fam| {
            unrestricted(fam, true) && unrestricted(fam, false) && !hosts.is_empty_in(fam)
        });
        let origin = Origin::Flow {
            index: f.index,
            name: f.name.clone(),
        };
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
            if !meets_in(fam) {
                continue;
            }
            let src = if unrestricted(fam, true) {
                None
            } else {
                Some(self.set_for(f, "from", fam))
            };
            let dst = if unrestricted(fam, false) {
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
        use crate::model::Term;
        let ep = if side == "from" { &f.from } else { &f.to };
        // `NAME_v4` for one group or role, else `_FLOW_SIDE_v4` (built by
        // hand: this runs for every rule of every role).
        let mut name = String::with_capacity(f.name.len() + 16);
        match ep.terms.as_slice() {
            [Term::Group(n) | Term::Role(n)] => name.push_str(n),
            _ => {
                name.push('_');
                name.push_str(&f.name);
                name.push('_');
                name.push_str(side);
            }
        }
        name.push('_');
        name.push_str(fam.suffix());
        if !self.sets.contains_key(&name) {
            let origin = match ep.terms.as_slice() {
                [Term::Group(g)] => SetOrigin::Group { name: g.clone() },
                [Term::Role(r)] => SetOrigin::Role { name: r.clone() },
                _ => SetOrigin::Flow {
                    flow: f.name.clone(),
                    side: side.into(),
                },
            };
            self.sets.insert(
                name.clone(),
                NamedSet {
                    name: name.clone(),
                    family: fam,
                    addrs: ep.addrs.only(fam),
                    origin,
                },
            );
        }
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
    let protos = [
        (!ports.tcp.is_empty()).then(|| ProtoMatch::Tcp(ports.tcp.clone())),
        (!ports.udp.is_empty()).then(|| ProtoMatch::Udp(ports.udp.clone())),
        (ports.icmp && family != Some(Family::V6)).then_some(ProtoMatch::Icmp),
        (ports.icmpv6 && family != Some(Family::V4)).then_some(ProtoMatch::Icmpv6),
    ];
    let mut protos = protos.into_iter().flatten().peekable();
    // The names and the origin are cloned for every rule but the last, which takes them.
    let (mut src, mut dst, mut origin) = (src, dst, Some(origin));
    while let Some(proto) = protos.next() {
        let last = protos.peek().is_none();
        let (src, dst, origin) = if last {
            (src.take(), dst.take(), origin.take())
        } else {
            (src.clone(), dst.clone(), origin.clone())
        };
        out.push(Rule {
            matches: RuleMatch::Packet(PacketMatch {
                family,
                src,
                dst,
                proto,
            }),
            verdict,
            log,
            origin: origin.expect("taken only for the last rule"),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }

        /// A random span (absent one time in eight) within `0..universe`.
        fn span(&mut self, universe: u64, narrow: bool) -> Option<(u32, u32)> {
            if self.below(8) == 0 {
                return None;
            }
            let lo = self.below(universe);
            let w = if narrow {
                self.below(20)
            } else {
                self.below(universe)
            };
            let hi = lo.saturating_add(w).min(u64::from(u32::MAX));
            Some((lo as u32, hi as u32))
        }

        fn spans(&mut self, universe: u64, narrow_one_in: u64) -> Span {
            let narrow = self.below(narrow_one_in) != 0;
            let v4 = self.span(universe, narrow);
            let narrow = self.below(narrow_one_in) != 0;
            let v6 = self
                .span(universe, narrow)
                .map(|(a, b)| (u128::from(a) << 64, (u128::from(b) << 64) | 0xffff));
            Span { v4, v6 }
        }
    }

    /// The index finds exactly the spans a scan finds, in flow order.
    #[test]
    fn span_index_finds_what_a_scan_finds() {
        let mut rng = Rng(0x853c_49e6_748f_ea9b);
        for round in 0..300 {
            let n = 1 + rng.below(60) as usize;
            let universe = [50, 1000, u64::from(u32::MAX)][round % 3];
            let spans: Vec<Span> = (0..n).map(|_| rng.spans(universe, 5)).collect();
            let scan = Spans {
                from: spans.clone(),
                to: spans.iter().rev().copied().collect(),
                index: None,
            };
            let indexed = Spans {
                from: scan.from.clone(),
                to: scan.to.clone(),
                index: None,
            }
            .indexed();
            for _ in 0..20 {
                let q = rng.spans(universe, 3);
                for to in [false, true] {
                    assert_eq!(indexed.may_touch(to, &q), scan.may_touch(to, &q), "{q:?}");
                }
            }
        }
    }
}
