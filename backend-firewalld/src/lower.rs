//! IR → firewalld objects (pure).
//!
//! ```
//! use backend_firewalld::FirewalldRenderer;
//! use microseg_core::backend::Renderer;
//! use microseg_core::{Policy, document::Format, ir::{compile, Target}};
//! let p = Policy::from_str_as(r#"
//! version = 1
//! [groups]
//! web = ["10.0.1.10-10.0.1.19"]
//! admin = ["10.0.0.0/26"]
//! [roles.web]
//! [[flows]]
//! name = "admin-ssh"
//! from = "admin"
//! to = "web"
//! ports = ["tcp/22"]
//! "#, Format::Toml, None).unwrap();
//! let cfg = FirewalldRenderer.render(&compile(&p, &Target::Role("web".into())).unwrap()).unwrap();
//! assert_eq!(cfg.zone.name, "microseg");
//! assert_eq!(cfg.zone.target, "DROP");
//! assert_eq!(cfg.ipset("microseg-admin-4").unwrap().entries, ["10.0.0.0/26"]);
//! assert!(cfg.zone.rich_rules.contains(&
//!     r#"rule priority="-10000" family="ipv4" source ipset="microseg-admin-4" port port="22" protocol="tcp" accept"#.to_string()));
//! ```
//!
//! # Mapping
//!
//! * Input rules become rich rules of the zone `<table>` (target `DROP`, or
//!   `%%REJECT%%` for `default = "reject"`; `forward` off), which is made the
//!   default zone. Output rules become rich rules of the policy `<table>-out`
//!   (ingress zone `HOST`, egress zone `ANY`, target `DROP`/`REJECT`, priority
//!   −32768 so no other host-output policy is dispatched before it).
//! * Established/related and loopback rules are not written: firewalld's own
//!   `filter_INPUT`/`filter_OUTPUT` accept them before any zone or policy.
//! * firewalld orders rich rules by priority, not by position. The IR lists
//!   deny rules, then reject rules, then accepting rules (egress, ICMP,
//!   allow flows); they get priorities from −30000, −20000 and −10000 up, so
//!   every deny is evaluated before every reject, and every reject before
//!   every accept: deny wins whatever the flow order. Inside a class, rules
//!   share one priority (their verdicts are equal, so their order cannot
//!   matter), except that a logged rule gets a priority of its own, so the
//!   same rule logs as in the IR's first-match order.
//! * ICMPv6 neighbour discovery and packet-too-big are accepted at −32768 in
//!   both directions (firewalld's own `allow-host-ipv6` policy covers only
//!   part of it, and only inbound).
//! * Dropped new connections are logged by a log-only rich rule at 32766
//!   (after every other rule, before the target), rate-limited by the rule's
//!   own `limit`, so the limit throttles the log, not the drop.
//! * Rejected TCP connections get a TCP reset, as from the nft backend
//!   (`reject type="tcp-reset"` per family for reject flows, and at 32767 in
//!   front of a `REJECT` target); other protocols get the ICMP error of the
//!   rule (`reject`: port unreachable) or target (admin prohibited). The reset
//!   also matters on IPv6: Linux does not tie an ICMPv6 error that nft's
//!   reject sends for a TCP SYN to the connection, so the host's own output
//!   policy would drop it and the peer would see a timeout.
//! * Address sets become `hash:net` ipsets of one family holding the minimal
//!   CIDR cover of the set ([`AddrSet::cidrs_v4`](microseg_core::addr::AddrSet::cidrs_v4)).

use crate::names;
use crate::objects::{
    Action, Element, FirewalldConfig, IpsetObject, Log, PolicyObject, RichRule, ZoneObject,
};
use crate::FirewalldError;
use ipnet::IpNet;
use microseg_core::addr::Family;
use microseg_core::backend::Renderer;
use microseg_core::ir::{Direction, HostRuleset, PacketMatch, ProtoMatch, Rule, RuleMatch};
use microseg_core::semantics::Verdict;
use microseg_core::{LogSpec, LogTarget, RateUnit};
use std::collections::{BTreeMap, HashMap};

/// Priority of the output policy among firewalld's policies (the lowest possible).
pub const OUTPUT_POLICY_PRIORITY: i32 = -32768;
/// Rich rule priority of the ICMPv6 neighbour discovery rules.
pub const ICMPV6_INFRA_PRIORITY: i32 = -32768;
/// First rich rule priority of deny (drop) rules.
pub const DENY_PRIORITY: i32 = -30000;
/// First rich rule priority of reject rules.
pub const REJECT_PRIORITY: i32 = -20000;
/// First rich rule priority of accepting rules (egress, ICMP, allow flows).
pub const ACCEPT_PRIORITY: i32 = -10000;
/// Rich rule priority of the default-drop log rule (after every other rule).
pub const DEFAULT_LOG_PRIORITY: i32 = 32766;
/// Rich rule priority of the default reject of TCP with a reset (last before the target).
pub const DEFAULT_TCP_RESET_PRIORITY: i32 = 32767;
/// Most priorities one verdict class may use (one per logged rule, plus one per run).
const CLASS_WIDTH: i32 = 9999;

/// The ICMPv6 types IPv6 needs, by firewalld name (the nft backend's
/// `nd-router-solicit`, `nd-router-advert`, `nd-neighbor-solicit`,
/// `nd-neighbor-advert`, `packet-too-big`).
pub const ICMPV6_INFRA_TYPES: [&str; 5] = [
    "router-solicitation",
    "router-advertisement",
    "neighbour-solicitation",
    "neighbour-advertisement",
    "packet-too-big",
];

/// The pure renderer: [`HostRuleset`] → [`FirewalldConfig`].
///
/// ```
/// use backend_firewalld::FirewalldRenderer;
/// use microseg_core::backend::Renderer;
/// use microseg_core::{Policy, document::Format, ir::{compile, Target}};
/// let p = Policy::from_str_as("version = 1\n[groups]\ndb = [\"10.0.0.30\"]\n[roles.db]\n", Format::Toml, None).unwrap();
/// let cfg = FirewalldRenderer.render(&compile(&p, &Target::Role("db".into())).unwrap()).unwrap();
/// assert_eq!(cfg.policy.name, "microseg-out");
/// assert_eq!(cfg.policy.ingress_zones, ["HOST"]);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct FirewalldRenderer;

impl Renderer for FirewalldRenderer {
    type Artefact = FirewalldConfig;
    type Error = FirewalldError;

    fn render(&self, ruleset: &HostRuleset) -> Result<FirewalldConfig, FirewalldError> {
        lower(ruleset)
    }
}

/// Lowers one ruleset (what [`FirewalldRenderer::render`] does).
///
/// ```
/// use microseg_core::{Policy, document::Format, ir::{compile, Target}};
/// let p = Policy::from_str_as("version = 1\n[groups]\ndb = [\"10.0.0.30\"]\n[roles.db]\n[baseline]\ndefault = \"reject\"\n",
///     Format::Toml, None).unwrap();
/// let cfg = backend_firewalld::lower::lower(&compile(&p, &Target::Role("db".into())).unwrap()).unwrap();
/// assert_eq!(cfg.zone.target, "%%REJECT%%");
/// assert_eq!(cfg.policy.target, "REJECT");
/// ```
pub fn lower(rs: &HostRuleset) -> Result<FirewalldConfig, FirewalldError> {
    let table = &rs.table;
    let zone_name = names::zone(table);
    let policy_name = names::output_policy(table);
    check_len("zone", &zone_name, names::ZONE_NAME_MAX)?;
    check_len("policy", &policy_name, names::POLICY_NAME_MAX)?;

    let mut notes = vec![
        "established/related packets and loopback traffic are accepted by firewalld's own filter_INPUT and filter_OUTPUT chains, before any zone or policy".to_string(),
        format!("zone {zone_name} becomes the default zone: interfaces and sources bound to other zones bypass it (status warns about them)"),
        format!("forwarded packets meet zone {zone_name}'s target (forward is off)"),
        "firewalld itself rejects output to 6to4/IPv4-compatible IPv6 destinations (::/96, ::ffff:0:0/96, 2002::/24, ...) while RFC3964_IPv4=yes in firewalld.conf".to_string(),
    ];

    // Address sets.
    let mut set_names: HashMap<&str, String> = HashMap::new();
    let mut ipsets: Vec<IpsetObject> = Vec::new();
    for (ir_name, set) in &rs.sets {
        let name = names::ipset(table, &set.origin, set.family);
        check_len("ipset", &name, names::IPSET_NAME_MAX)?;
        if let Some(other) = set_names.iter().find(|(_, n)| **n == name) {
            return Err(FirewalldError::Ir(format!(
                "IR sets {} and {ir_name} would both become ipset {name}",
                other.0
            )));
        }
        let entries = ipset_entries(&set.addrs, set.family);
        let mut options = BTreeMap::new();
        options.insert(
            "family".to_string(),
            match set.family {
                Family::V4 => "inet",
                Family::V6 => "inet6",
            }
            .to_string(),
        );
        if entries.len() > 65536 {
            options.insert("maxelem".to_string(), entries.len().to_string());
        }
        set_names.insert(ir_name.as_str(), name.clone());
        ipsets.push(IpsetObject {
            name,
            short: format!("microseg {ir_name}"),
            description: names::description(table, None),
            ipset_type: "hash:net".to_string(),
            options,
            entries,
        });
    }
    ipsets.sort_by(|a, b| a.name.cmp(&b.name));

    let log = rs.log.as_ref().map(LogPlan::new).transpose()?;
    if let Some(l) = &rs.log {
        if l.burst != 5 {
            notes.push(format!(
                "firewalld 1.3 rich-rule limits have no burst: logging bursts at nft's default of 5 packets, not {}",
                l.burst
            ));
        }
    }

    let mut origins = BTreeMap::new();
    let lw = Lowering {
        rs,
        set_names: &set_names,
        log: log.as_ref(),
    };
    let zone_rules = lw.direction(Direction::Input, &mut origins)?;
    let policy_rules = lw.direction(Direction::Output, &mut origins)?;

    let (zone_target, policy_target) = match rs.default {
        Verdict::Drop => ("DROP", "DROP"),
        Verdict::Reject => ("%%REJECT%%", "REJECT"),
        Verdict::Accept => {
            return Err(FirewalldError::Ir(
                "the default verdict must be drop or reject".into(),
            ))
        }
    };
    Ok(FirewalldConfig {
        table: table.clone(),
        compiled_for: rs.target.to_string(),
        zone: ZoneObject {
            name: zone_name,
            short: format!("microseg {table}"),
            description: names::description(table, None),
            target: zone_target.to_string(),
            forward: false,
            rich_rules: zone_rules,
        },
        policy: PolicyObject {
            name: policy_name,
            short: format!("microseg {table} output"),
            description: names::description(table, None),
            target: policy_target.to_string(),
            priority: OUTPUT_POLICY_PRIORITY,
            ingress_zones: vec!["HOST".to_string()],
            egress_zones: vec!["ANY".to_string()],
            rich_rules: policy_rules,
        },
        ipsets,
        origins,
        notes,
    })
}

fn check_len(what: &str, name: &str, max: usize) -> Result<(), FirewalldError> {
    if name.len() > max {
        return Err(FirewalldError::Unsupported {
            what: format!("{what} name {name}"),
            why: format!("{} characters; firewalld allows at most {max}", name.len()),
        });
    }
    Ok(())
}

/// The minimal CIDR cover of one family of a set, as firewalld ipset entries.
fn ipset_entries(addrs: &microseg_core::addr::AddrSet, family: Family) -> Vec<String> {
    let nets: Vec<IpNet> = match family {
        Family::V4 => addrs.cidrs_v4().into_iter().map(IpNet::V4).collect(),
        Family::V6 => addrs.cidrs_v6().into_iter().map(IpNet::V6).collect(),
    };
    let mut out = Vec::with_capacity(nets.len());
    for net in nets {
        if net.prefix_len() == 0 {
            // hash:net refuses /0: two halves cover the same.
            out.extend(net.subnets(1).expect("/1 exists").map(|n| n.to_string()));
        } else if net.prefix_len() == net.max_prefix_len() {
            out.push(net.addr().to_string());
        } else {
            out.push(net.to_string());
        }
    }
    out
}

/// The log element every logged rule carries.
struct LogPlan {
    prefix: String,
    level: Option<String>,
    group: Option<u16>,
    limit: String,
}

impl LogPlan {
    fn new(spec: &LogSpec) -> Result<LogPlan, FirewalldError> {
        if spec.prefix.contains('=') || spec.prefix.contains('"') {
            return Err(FirewalldError::Unsupported {
                what: format!("log prefix {:?}", spec.prefix),
                why: "firewalld's rich-rule parser splits attributes at '=' and quotes: use a prefix without them".into(),
            });
        }
        let unit = match spec.unit {
            RateUnit::Second => "s",
            RateUnit::Minute => "m",
            RateUnit::Hour => "h",
            RateUnit::Day => "d",
        };
        if spec.rate == 1 && spec.unit == RateUnit::Day {
            return Err(FirewalldError::Unsupported {
                what: "log rate 1/day".into(),
                why: "firewalld rejects a limit of 1/d as too slow: use 2/day or more".into(),
            });
        }
        let (level, group) = match &spec.target {
            LogTarget::Kernel => (None, None),
            LogTarget::Group(g) => (None, Some(*g)),
            LogTarget::Level(l) => {
                let fw = match l.as_str() {
                    "err" => "error",
                    "warn" => "warning",
                    "emerg" | "alert" | "crit" | "notice" | "info" | "debug" => l.as_str(),
                    other => {
                        return Err(FirewalldError::Unsupported {
                            what: format!("log level {other:?}"),
                            why: "firewalld rich rules know emerg, alert, crit, error, warning, notice, info and debug".into(),
                        })
                    }
                };
                (Some(fw.to_string()), None)
            }
        };
        Ok(LogPlan {
            prefix: spec.prefix.clone(),
            level,
            group,
            limit: format!("{}/{unit}", spec.rate),
        })
    }

    fn element(&self, what: &str) -> Log {
        let prefix = format!("{} {what}: ", self.prefix);
        match self.group {
            Some(group) => Log::NfLog {
                group,
                prefix,
                limit: self.limit.clone(),
            },
            None => Log::Log {
                prefix,
                level: self.level.clone(),
                limit: self.limit.clone(),
            },
        }
    }
}

struct Lowering<'a> {
    rs: &'a HostRuleset,
    set_names: &'a HashMap<&'a str, String>,
    log: Option<&'a LogPlan>,
}

impl Lowering<'_> {
    /// The rich rules of one direction, in priority order.
    fn direction(
        &self,
        dir: Direction,
        origins: &mut BTreeMap<String, String>,
    ) -> Result<Vec<String>, FirewalldError> {
        let mut out: Vec<(RichRule, String)> = Vec::new();
        let mut classes = Classes::default();
        for rule in self.rs.rules(dir) {
            match &rule.matches {
                RuleMatch::Established | RuleMatch::Loopback => {
                    // firewalld accepts these itself, before any zone or policy.
                    if rule.verdict != Verdict::Accept {
                        return Err(FirewalldError::Ir(format!(
                            "{} must accept (firewalld accepts it itself)",
                            rule.origin.label()
                        )));
                    }
                }
                RuleMatch::Icmpv6Infra => {
                    for t in ICMPV6_INFRA_TYPES {
                        out.push((
                            RichRule {
                                priority: ICMPV6_INFRA_PRIORITY,
                                family: Some("ipv6".into()),
                                element: Some(Element::IcmpType { name: t.into() }),
                                action: Some(action(rule.verdict)),
                                ..RichRule::default()
                            },
                            rule.origin.label(),
                        ));
                    }
                }
                RuleMatch::Packet(m) => {
                    let priority = classes.next(rule)?;
                    for r in self.packet(m, rule, priority)? {
                        out.push((r, rule.origin.label()));
                    }
                }
            }
        }
        if self.rs.default == Verdict::Reject {
            for family in ["ipv4", "ipv6"] {
                out.push((
                    RichRule {
                        priority: DEFAULT_TCP_RESET_PRIORITY,
                        family: Some(family.into()),
                        element: Some(Element::Protocol {
                            value: "tcp".into(),
                        }),
                        action: Some(Action::RejectWithTcpReset),
                        ..RichRule::default()
                    },
                    "baseline:default".into(),
                ));
            }
        }
        if let Some(log) = self.log {
            let what = match dir {
                Direction::Input => "input drop",
                Direction::Output => "output drop",
            };
            out.push((
                RichRule {
                    priority: DEFAULT_LOG_PRIORITY,
                    log: Some(log.element(what)),
                    ..RichRule::default()
                },
                "baseline:log".into(),
            ));
        }
        out.sort_by_key(|(r, _)| r.priority);
        let mut rules: Vec<String> = Vec::with_capacity(out.len());
        for (r, label) in out {
            let text = r.to_string();
            match origins.get_mut(&text) {
                Some(l) => {
                    if !l.split(", ").any(|x| x == label) {
                        l.push_str(", ");
                        l.push_str(&label);
                    }
                }
                None => {
                    origins.insert(text.clone(), label);
                }
            }
            if !rules.contains(&text) {
                rules.push(text);
            }
        }
        Ok(rules)
    }

    fn ipset_of(
        &self,
        ir_name: &Option<String>,
        family: Option<Family>,
        label: &str,
    ) -> Result<Option<String>, FirewalldError> {
        let Some(n) = ir_name else { return Ok(None) };
        let set = self
            .rs
            .sets
            .get(n)
            .ok_or_else(|| FirewalldError::Ir(format!("{label} uses unknown set {n}")))?;
        if family.is_some_and(|f| f != set.family) {
            return Err(FirewalldError::Ir(format!(
                "{label} matches set {n} of the other family"
            )));
        }
        Ok(Some(self.set_names[n.as_str()].clone()))
    }

    // rich: rule priority=P [family=F] [source ipset=S] [destination ipset=D] port|protocol [log] accept|drop|reject
    fn packet(
        &self,
        m: &PacketMatch,
        rule: &Rule,
        priority: i32,
    ) -> Result<Vec<RichRule>, FirewalldError> {
        let label = rule.origin.label();
        let family = m.family.or(m.proto.family());
        let base = RichRule {
            priority,
            family: family.map(|f| match f {
                Family::V4 => "ipv4".to_string(),
                Family::V6 => "ipv6".to_string(),
            }),
            source_ipset: self.ipset_of(&m.src, family, &label)?,
            destination_ipset: self.ipset_of(&m.dst, family, &label)?,
            element: None,
            log: match (rule.log, self.log) {
                (true, Some(l)) => Some(l.element(match &rule.origin {
                    microseg_core::ir::Origin::Flow { name, .. } => name,
                    microseg_core::ir::Origin::Baseline { what } => what,
                })),
                _ => None,
            },
            action: Some(action(rule.verdict)),
        };
        if (base.source_ipset.is_some() || base.destination_ipset.is_some())
            && base.family.is_none()
        {
            return Err(FirewalldError::Ir(format!(
                "{label} matches a set without a family"
            )));
        }
        let elements: Vec<Element> = match &m.proto {
            ProtoMatch::Tcp(ports) | ProtoMatch::Udp(ports) => {
                let protocol = if matches!(m.proto, ProtoMatch::Tcp(_)) {
                    "tcp"
                } else {
                    "udp"
                };
                if ports.is_empty() {
                    return Err(FirewalldError::Ir(format!("{label} has no ports")));
                }
                ports
                    .ranges()
                    .iter()
                    .map(|&(lo, hi)| Element::Port {
                        port: if lo == hi {
                            lo.to_string()
                        } else {
                            format!("{lo}-{hi}")
                        },
                        protocol: protocol.to_string(),
                    })
                    .collect()
            }
            ProtoMatch::Icmp => vec![Element::Protocol {
                value: "icmp".into(),
            }],
            ProtoMatch::Icmpv6 => vec![Element::Protocol {
                value: "ipv6-icmp".into(),
            }],
        };
        let tcp_reset = rule.verdict == Verdict::Reject && matches!(m.proto, ProtoMatch::Tcp(_));
        let families: Vec<Option<String>> = match (&base.family, tcp_reset) {
            // A reject type needs a family.
            (None, true) => vec![Some("ipv4".into()), Some("ipv6".into())],
            (f, _) => vec![f.clone()],
        };
        let mut out = Vec::new();
        for e in elements {
            for family in &families {
                out.push(RichRule {
                    family: family.clone(),
                    element: Some(e.clone()),
                    action: Some(if tcp_reset {
                        Action::RejectWithTcpReset
                    } else {
                        action(rule.verdict)
                    }),
                    ..base.clone()
                });
            }
        }
        Ok(out)
    }
}

fn action(v: Verdict) -> Action {
    match v {
        Verdict::Accept => Action::Accept,
        Verdict::Drop => Action::Drop,
        Verdict::Reject => Action::Reject,
    }
}

/// Assigns priorities: one band per verdict class (drop < reject < accept),
/// a new priority inside the band for every logged rule and the rule after it.
#[derive(Default)]
struct Classes {
    current: Option<(usize, i32)>,
    prev_log: bool,
}

impl Classes {
    fn next(&mut self, rule: &Rule) -> Result<i32, FirewalldError> {
        let (class, base) = match rule.verdict {
            Verdict::Drop => (0, DENY_PRIORITY),
            Verdict::Reject => (1, REJECT_PRIORITY),
            Verdict::Accept => (2, ACCEPT_PRIORITY),
        };
        let run = match self.current {
            Some((c, _)) if c > class => {
                return Err(FirewalldError::Ir(format!(
                    "{} ({}) comes after a rule with a weaker verdict: the IR must list deny, reject, then accepting rules",
                    rule.origin.label(),
                    rule.verdict.as_str()
                )))
            }
            Some((c, run)) if c == class => {
                if rule.log || self.prev_log {
                    run + 1
                } else {
                    run
                }
            }
            _ => 0,
        };
        if run > CLASS_WIDTH {
            return Err(FirewalldError::Unsupported {
                what: "more than 9999 logged rules of one verdict".into(),
                why: "they would not fit the rich-rule priority band".into(),
            });
        }
        self.current = Some((class, run));
        self.prev_log = rule.log;
        Ok(base + run)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use microseg_core::addr::AddrSet;
    use microseg_core::document::Format;
    use microseg_core::ir::{compile, Target};
    use microseg_core::Policy;

    fn render(toml: &str, role: &str) -> Result<FirewalldConfig, FirewalldError> {
        let p = Policy::from_str_as(toml, Format::Toml, None).unwrap();
        lower(&compile(&p, &Target::Role(role.into())).unwrap())
    }

    fn priority(rule: &str) -> i32 {
        crate::model::parse_rich_rule(rule).unwrap().priority
    }

    const BASE: &str = r#"
version = 1
[groups]
web = ["10.0.1.10-10.0.1.19", "2001:db8:1::10"]
bad = ["10.9.9.0/24"]
meh = ["10.8.8.0/24"]
[roles.web]
[baseline]
egress = []
icmp = false
"#;

    #[test]
    fn deny_reject_and_accept_get_ordered_bands() {
        let toml = format!(
            "{BASE}
[[flows]]
from = \"any\"
to = \"web\"
ports = [\"udp/53\"]
[[flows]]
from = \"bad\"
to = \"web\"
ports = [\"udp/53\"]
action = \"deny\"
[[flows]]
from = \"meh\"
to = \"web\"
ports = [\"udp/53\"]
action = \"reject\"
"
        );
        let cfg = render(&toml, "web").unwrap();
        let find = |needle: &str| -> i32 {
            priority(
                cfg.zone
                    .rich_rules
                    .iter()
                    .find(|r| r.contains(needle))
                    .unwrap(),
            )
        };
        assert_eq!(find(" drop"), DENY_PRIORITY);
        assert_eq!(find(" reject"), REJECT_PRIORITY);
        assert_eq!(find("protocol=\"udp\" accept"), ACCEPT_PRIORITY);
    }

    #[test]
    fn logged_rules_get_a_priority_of_their_own() {
        let toml = format!(
            "{BASE}
[baseline.log]
prefix = \"ms\"
rate = \"5/minute\"
level = \"warn\"
[[flows]]
name = \"a\"
from = \"any\"
to = \"web\"
ports = [\"tcp/1\"]
log = true
[[flows]]
name = \"b\"
from = \"any\"
to = \"web\"
ports = [\"tcp/2\"]
[[flows]]
name = \"c\"
from = \"any\"
to = \"web\"
ports = [\"tcp/3\"]
[[flows]]
name = \"d\"
from = \"any\"
to = \"web\"
ports = [\"tcp/4\"]
log = true
"
        );
        let cfg = render(&toml, "web").unwrap();
        let p = |port: &str| -> i32 {
            priority(
                cfg.zone
                    .rich_rules
                    .iter()
                    .find(|r| r.contains(&format!("port port=\"{port}\"")))
                    .unwrap(),
            )
        };
        assert_eq!(p("1"), ACCEPT_PRIORITY);
        assert_eq!(p("2"), ACCEPT_PRIORITY + 1);
        assert_eq!(
            p("3"),
            ACCEPT_PRIORITY + 1,
            "unlogged neighbours share a priority"
        );
        assert_eq!(p("4"), ACCEPT_PRIORITY + 2);
        let a = cfg
            .zone
            .rich_rules
            .iter()
            .find(|r| r.contains("port=\"1\""))
            .unwrap();
        assert!(
            a.contains(r#"log prefix="ms a: " level="warning" limit value="5/m" accept"#),
            "{a}"
        );
        let last = cfg.zone.rich_rules.last().unwrap();
        assert_eq!(
            last,
            r#"rule priority="32766" log prefix="ms input drop: " level="warning" limit value="5/m""#
        );
        assert_eq!(cfg.origins[a], "flow:a");
    }

    #[test]
    fn rejects_reset_tcp_per_family() {
        let toml = format!(
            "{BASE}
default = \"reject\"
[[flows]]
name = \"no-telnet\"
from = \"any\"
to = \"web\"
ports = [\"tcp/23\", \"udp/23\"]
action = \"reject\"
"
        );
        let cfg = render(&toml, "web").unwrap();
        let rules = &cfg.zone.rich_rules;
        for fam in ["ipv4", "ipv6"] {
            assert!(rules.contains(&format!(
                r#"rule priority="-20000" family="{fam}" port port="23" protocol="tcp" reject type="tcp-reset""#
            )));
            assert!(rules.contains(&format!(
                r#"rule priority="32767" family="{fam}" protocol value="tcp" reject type="tcp-reset""#
            )));
        }
        assert!(rules.contains(
            &r#"rule priority="-20000" port port="23" protocol="udp" reject"#.to_string()
        ));
        assert_eq!(cfg.zone.target, "%%REJECT%%");
        assert!(cfg
            .policy
            .rich_rules
            .iter()
            .any(|r| r.starts_with(r#"rule priority="32767""#)));
    }

    #[test]
    fn icmpv6_infrastructure_is_accepted_both_ways() {
        let cfg = render(BASE, "web").unwrap();
        for rules in [&cfg.zone.rich_rules, &cfg.policy.rich_rules] {
            for t in ICMPV6_INFRA_TYPES {
                let r =
                    format!(r#"rule priority="-32768" family="ipv6" icmp-type name="{t}" accept"#);
                assert!(rules.contains(&r), "{r}");
            }
        }
        assert_eq!(cfg.zone.target, "DROP");
        assert!(!cfg.zone.forward);
        assert_eq!(cfg.policy.priority, OUTPUT_POLICY_PRIORITY);
    }

    #[test]
    fn ipsets_hold_minimal_covers() {
        let toml = format!(
            "{BASE}
[[flows]]
from = \"web\"
to = [\"10.1.0.1\", \"10.1.0.2-10.1.0.5\", \"2001:db8::/126\"]
ports = [\"tcp/1\"]
"
        );
        let cfg = render(&toml, "web").unwrap();
        let v4 = cfg.ipset("microseg-flow1T4").unwrap();
        assert_eq!(v4.entries, ["10.1.0.1", "10.1.0.2/31", "10.1.0.4/31"]);
        assert_eq!(v4.options["family"], "inet");
        assert_eq!(v4.ipset_type, "hash:net");
        let v6 = cfg.ipset("microseg-flow1T6").unwrap();
        assert_eq!(v6.entries, ["2001:db8::/126"]);
        assert_eq!(v6.options["family"], "inet6");
        let mut all = AddrSet::default();
        all.add(&microseg_core::addr::parse_addr_entry("0.0.0.0/0").unwrap());
        assert_eq!(
            ipset_entries(&all, Family::V4),
            ["0.0.0.0/1", "128.0.0.0/1"]
        );
    }

    #[test]
    fn what_firewalld_cannot_say_is_an_error() {
        // `check` rejects both in a policy; the lowering refuses them too.
        let p =
            Policy::from_str_as(&format!("{BASE}\n[baseline.log]\n"), Format::Toml, None).unwrap();
        let logged = compile(&p, &Target::Role("web".into())).unwrap();
        let mut eq = logged.clone();
        eq.log.as_mut().unwrap().prefix = "a=b".into();
        assert!(matches!(
            lower(&eq),
            Err(FirewalldError::Unsupported { .. })
        ));
        let mut slow = logged;
        let spec = slow.log.as_mut().unwrap();
        (spec.rate, spec.unit) = (1, RateUnit::Day);
        assert!(matches!(
            lower(&slow),
            Err(FirewalldError::Unsupported { .. })
        ));
        let burst = format!("{BASE}\n[baseline.log]\nburst = 9\n");
        assert!(render(&burst, "web")
            .unwrap()
            .notes
            .iter()
            .any(|n| n.contains("burst")));
    }
}
