//! [`PolicyDoc`] → [`Policy`]: names checked and resolved, addresses and ports normalised.

use crate::addr::{parse_addr_entry, AddrSet};
use crate::diag::{suggestion, Diagnostic};
use crate::doc::*;
use crate::document::Pos;
use crate::interval::IntervalSet;
use crate::model::*;
use crate::ports::PortSet;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Longest group, service, role or flow name. Backends derive object names from
/// these (firewalld ipset names are limited to 31 characters:
/// `<table>-<name>-6` must fit), so `check` enforces it for every backend.
pub const NAME_MAX: usize = 20;
/// Longest table name (it prefixes every firewalld object name).
pub const TABLE_MAX: usize = 8;
/// Longest log prefix.
pub const LOG_PREFIX_MAX: usize = 32;
/// The default `baseline.egress`.
pub const DEFAULT_EGRESS: &[&str] = &["udp/53", "udp/123", "tcp/80", "tcp/443"];
/// The syslog levels nftables accepts.
pub const LOG_LEVELS: &[&str] = &[
    "emerg", "alert", "crit", "err", "warn", "notice", "info", "debug",
];

struct Ctx<'a> {
    pos: &'a HashMap<String, Pos>,
    errors: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn at(&self, path: &str) -> Option<Pos> {
        self.pos.get(path).copied()
    }
    fn key_at(&self, path: &str) -> Option<Pos> {
        self.at(&format!("{path}#key")).or_else(|| self.at(path))
    }
    fn broken(&self, path: &str) -> bool {
        self.pos.contains_key(&format!("{path}#broken"))
    }
    fn err(&mut self, pos: Option<Pos>, msg: impl Into<String>) {
        self.errors.push(Diagnostic::error(pos, msg));
    }

    fn check_name(&mut self, name: &str, what: &str, pos: Option<Pos>, max: usize) -> bool {
        if name == "any" {
            self.err(
                pos,
                format!("\"any\" is reserved (it means every address) and cannot name a {what}; choose another name"),
            );
            return false;
        }
        let mut chars = name.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok = name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !first_ok || !rest_ok {
            let fixed: String = name
                .to_ascii_lowercase()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            let fixed = fixed.trim_start_matches(|c: char| !c.is_ascii_lowercase());
            let hint = if fixed.is_empty() {
                String::new()
            } else {
                format!(" (like \"{fixed}\")")
            };
            self.err(
                pos,
                format!(
                    "invalid {what} name \"{name}\": names start with a lower-case letter, then lower-case letters, digits, '-' or '_'{hint}"
                ),
            );
            return false;
        }
        if name.len() > max {
            self.err(
                pos,
                format!(
                    "{what} name \"{name}\" is {} characters long; the limit is {max} (firewalld object names derive from it)",
                    name.len()
                ),
            );
            return false;
        }
        true
    }
}

pub(crate) fn resolve(
    doc: PolicyDoc,
    pos: &HashMap<String, Pos>,
    mut errors: Vec<Diagnostic>,
) -> Result<Policy, Vec<Diagnostic>> {
    let mut cx = Ctx {
        pos,
        errors: Vec::new(),
    };

    if doc.version != 1 {
        cx.err(
            cx.at("version"),
            format!(
                "unsupported version {}: this is policy format version 1, write `version = 1`",
                doc.version
            ),
        );
    }
    let table = doc.table.clone().unwrap_or_else(|| "microseg".to_string());
    if doc.table.is_some()
        && cx.check_name(&table, "table", cx.at("table"), TABLE_MAX)
        && crate::reserved::is_nft_keyword(&table)
    {
        cx.err(
            cx.at("table"),
            format!("table name \"{table}\" is an nftables keyword, which nft cannot use as a table name; choose another name"),
        );
    }

    // Groups, with @includes.
    for name in doc.groups.keys() {
        cx.check_name(
            name,
            "group",
            cx.key_at(&format!("groups.{name}")),
            NAME_MAX,
        );
    }
    let groups = resolve_groups(&doc, &mut cx);

    // Services.
    let mut services = BTreeMap::new();
    for (name, specs) in &doc.services {
        let path = format!("services.{name}");
        cx.check_name(name, "service", cx.key_at(&path), NAME_MAX);
        let set = port_list(&mut cx, specs, &path);
        if specs.is_empty() && !cx.broken(&path) {
            cx.err(
                cx.at(&path),
                format!(
                    "service \"{name}\" is empty: list at least one port spec, like [\"tcp/8080\"]"
                ),
            );
        }
        services.insert(name.clone(), set);
    }

    // Baseline.
    let baseline = resolve_baseline(&doc, &table, &mut cx);

    // Roles.
    let mut roles = BTreeMap::new();
    for (name, rd) in &doc.roles {
        let path = format!("roles.{name}");
        if cx.check_name(name, "role", cx.key_at(&path), NAME_MAX) && name == "auto" {
            cx.err(
                cx.key_at(&path),
                "\"auto\" is reserved for roles (`--role auto` detects the host's roles); choose another role name",
            );
        }
        let hosts = match &rd.hosts {
            None => match groups.get(name) {
                Some(set) => set.clone(),
                None => {
                    let hint = suggestion(name, groups.keys().map(|s| s.as_str()));
                    cx.err(
                        cx.key_at(&path),
                        format!(
                            "role \"{name}\" has no hosts: there is no group \"{name}\"{hint}; define the group or set hosts = [\"GROUP\" or address, ...]"
                        ),
                    );
                    AddrSet::default()
                }
            },
            Some(list) => {
                let hp = format!("{path}.hosts");
                if list.is_empty() && !cx.broken(&hp) {
                    cx.err(cx.at(&hp), format!("role \"{name}\" has an empty hosts list: name a group or list addresses"));
                }
                let set = endpoint_terms(&mut cx, list, &hp, &groups, None, false).addrs;
                if let Some(g) = groups.get(name) {
                    if *g != set && !set.is_empty() {
                        cx.err(
                            cx.at(&hp),
                            format!(
                                "role \"{name}\" is named like group \"{name}\" but has other hosts ({set} vs {g}); rename the role or drop its hosts to use the group"
                            ),
                        );
                    }
                }
                set
            }
        };
        let (egress, egress_is_baseline) = match &rd.egress {
            Some(specs) => (port_list(&mut cx, specs, &format!("{path}.egress")), false),
            None => (baseline.egress.clone(), true),
        };
        roles.insert(
            name.clone(),
            Role {
                name: name.clone(),
                hosts,
                egress,
                egress_is_baseline,
            },
        );
    }

    // Flows.
    let mut flows = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, fd) in doc.flows.iter().enumerate() {
        let path = format!("flows[{i}]");
        let name = match &fd.name {
            Some(n) => {
                let np = format!("{path}.name");
                if cx.check_name(n, "flow", cx.at(&np), NAME_MAX)
                    && n.strip_prefix("flow")
                        .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
                {
                    cx.err(
                        cx.at(&np),
                        format!("flow name \"{n}\" is reserved for unnamed flows (flowN); choose a descriptive name"),
                    );
                }
                if let Some(first) = names.get(n) {
                    cx.err(
                        cx.at(&np),
                        format!("duplicate flow name \"{n}\" (first used by flow #{}); flow names must be unique", first + 1),
                    );
                }
                n.clone()
            }
            None => format!("flow{}", i + 1),
        };
        names.entry(name.clone()).or_insert(i);
        let from = endpoint(&mut cx, &fd.from, &format!("{path}.from"), &groups, &roles);
        let to = endpoint(&mut cx, &fd.to, &format!("{path}.to"), &groups, &roles);
        let mut ports = PortSet::default();
        for (j, s) in fd.services.iter().enumerate() {
            match services.get(s) {
                Some(set) => ports = ports.union(set),
                None => {
                    let hint = suggestion(s, services.keys().map(|s| s.as_str()));
                    let hint = if hint.is_empty() && (s.contains('/') || s.starts_with("icmp")) {
                        format!(": \"{s}\" looks like a port spec; put it in ports = [\"{s}\"]")
                    } else if hint.is_empty() {
                        format!(
                            "; define it under [services] (known: {})",
                            list_or_none(services.keys())
                        )
                    } else {
                        hint
                    };
                    cx.err(
                        cx.at(&format!("{path}.services[{j}]")),
                        format!("unknown service \"{s}\"{hint}"),
                    );
                }
            }
        }
        ports = ports.union(&port_list(&mut cx, &fd.ports, &format!("{path}.ports")));
        if fd.services.is_empty()
            && fd.ports.is_empty()
            && !cx.broken(&format!("{path}.services"))
            && !cx.broken(&format!("{path}.ports"))
        {
            cx.err(
                cx.at(&path),
                format!("flow \"{name}\" has neither services nor ports: add services = [\"NAME\"] or ports = [\"tcp/PORT\"]"),
            );
        }
        let action = match fd.action.as_deref() {
            None | Some("allow") => Action::Allow,
            Some("deny") | Some("drop") => Action::Deny,
            Some("reject") => Action::Reject,
            Some(other) => {
                let hint = suggestion(other, ["allow", "deny", "reject"]);
                cx.err(
                    cx.at(&format!("{path}.action")),
                    format!(
                        "unknown action \"{other}\"{hint}; the actions are allow, deny and reject"
                    ),
                );
                Action::Allow
            }
        };
        flows.push(Flow {
            index: i,
            name,
            from,
            to,
            ports,
            action,
            log: fd.log.unwrap_or(false),
        });
    }

    let hardening = match &doc.hardening {
        None | Some(HardeningDoc::Switch(false)) => None,
        Some(HardeningDoc::Switch(true)) => Some(Hardening::GUIDE),
        Some(HardeningDoc::Settings(s)) => {
            let rp = match s.rp_filter.as_deref() {
                None | Some("strict") => RpFilter::Strict,
                Some("loose") => RpFilter::Loose,
                Some("off") => RpFilter::Off,
                Some(other) => {
                    cx.err(
                        cx.at("hardening.rp_filter"),
                        format!(
                            "unknown rp_filter \"{other}\": use \"strict\", \"loose\" or \"off\""
                        ),
                    );
                    RpFilter::Strict
                }
            };
            Some(Hardening {
                redirects: s.redirects.unwrap_or(false),
                rp_filter: rp,
                syncookies: s.syncookies.unwrap_or(true),
            })
        }
    };

    errors.extend(cx.errors);
    if !errors.is_empty() {
        errors.sort_by_key(|d| d.pos);
        return Err(errors);
    }
    // One sort of every role's ranges, not a union per role.
    let managed = AddrSet {
        v4: IntervalSet::from_ranges(
            roles
                .values()
                .flat_map(|r| r.hosts.v4.ranges().iter().copied()),
        ),
        v6: IntervalSet::from_ranges(
            roles
                .values()
                .flat_map(|r| r.hosts.v6.ranges().iter().copied()),
        ),
    };
    Ok(Policy {
        doc,
        table,
        groups,
        services,
        roles,
        flows,
        baseline,
        hardening,
        managed,
        positions: Positions {
            file: None,
            by_path: pos.clone(),
        },
    })
}

impl Hardening {
    /// The guide's settings: no redirects, strict rp_filter, SYN cookies on.
    pub const GUIDE: Hardening = Hardening {
        redirects: false,
        rp_filter: RpFilter::Strict,
        syncookies: true,
    };
}

fn list_or_none<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = names.map(|s| s.as_str()).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn port_list(cx: &mut Ctx, specs: &[String], path: &str) -> PortSet {
    let mut set = PortSet::default();
    for (j, spec) in specs.iter().enumerate() {
        if let Err(msg) = set.add_spec(spec) {
            cx.err(cx.at(&format!("{path}[{j}]")).or(cx.at(path)), msg);
        }
    }
    set
}

fn resolve_groups(doc: &PolicyDoc, cx: &mut Ctx) -> BTreeMap<String, AddrSet> {
    // Depth-first with an explicit stack of names being resolved, for cycle reports.
    fn visit(
        name: &str,
        doc: &PolicyDoc,
        cx: &mut Ctx,
        done: &mut BTreeMap<String, AddrSet>,
        stack: &mut Vec<String>,
        reported: &mut HashSet<String>,
    ) -> AddrSet {
        if let Some(s) = done.get(name) {
            return s.clone();
        }
        let path = format!("groups.{name}");
        let mut set = AddrSet::default();
        let entries = &doc.groups[name];
        stack.push(name.to_string());
        for (j, e) in entries.iter().enumerate() {
            let ep = format!("{path}[{j}]");
            if let Some(inc) = e.strip_prefix('@') {
                if !doc.groups.contains_key(inc) {
                    let mut hint = suggestion(inc, doc.groups.keys().map(|s| s.as_str()));
                    if hint.is_empty() {
                        hint = format!("; known groups: {}", list_or_none(doc.groups.keys()));
                    }
                    cx.err(
                        cx.at(&ep),
                        format!("group \"{name}\" includes unknown group \"@{inc}\"{hint}"),
                    );
                    continue;
                }
                if let Some(k) = stack.iter().position(|s| s == inc) {
                    let mut cycle: Vec<String> = stack[k..].to_vec();
                    cycle.push(inc.to_string());
                    let mut members: Vec<String> = cycle[..cycle.len() - 1].to_vec();
                    members.sort();
                    if reported.insert(members.join(",")) {
                        cx.err(
                            cx.at(&ep),
                            format!(
                                "include cycle: {}; a group cannot include itself, directly or through others",
                                cycle.iter().map(|c| format!("@{c}")).collect::<Vec<_>>().join(" → ")
                            ),
                        );
                    }
                    continue;
                }
                let inner = visit(inc, doc, cx, done, stack, reported);
                set = set.union(&inner);
            } else {
                match parse_addr_entry(e) {
                    Ok(a) => set.add(&a),
                    Err(err) => {
                        let known = doc.groups.contains_key(e.as_str());
                        let msg = if known {
                            format!("{} — to include group \"{e}\", write \"@{e}\"", err.0)
                        } else if looks_like_name(e) {
                            let hint = suggestion(e, doc.groups.keys().map(|s| s.as_str()));
                            format!("\"{e}\" is not an address; to include a group write \"@name\"{hint}")
                        } else {
                            err.0
                        };
                        cx.err(cx.at(&ep), format!("group \"{name}\": {msg}"));
                    }
                }
            }
        }
        stack.pop();
        if entries.is_empty() && !cx.broken(&path) {
            cx.err(
                cx.at(&path),
                format!("group \"{name}\" is empty: list at least one address, network or range"),
            );
        }
        done.insert(name.to_string(), set.clone());
        set
    }
    let mut done = BTreeMap::new();
    let mut reported = HashSet::new();
    for name in doc.groups.keys() {
        let mut stack = Vec::new();
        visit(name, doc, cx, &mut done, &mut stack, &mut reported);
    }
    done
}

fn looks_like_name(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !s.contains(':')
}

fn endpoint(
    cx: &mut Ctx,
    e: &OneOrMany,
    path: &str,
    groups: &BTreeMap<String, AddrSet>,
    roles: &BTreeMap<String, Role>,
) -> Endpoint {
    let items: Vec<String> = e.items().into_iter().map(String::from).collect();
    if items.is_empty() && !cx.broken(path) {
        cx.err(
            cx.at(path),
            "endpoint list is empty: name at least one group, role, address or \"any\"".to_string(),
        );
    }
    // A lone string has no `path[0]` position; endpoint_terms falls back to `path`.
    let mut ep = endpoint_terms(cx, &items, path, groups, Some(roles), true);
    ep.terms.dedup();
    ep
}

/// Resolves a list of endpoint terms; errors are located at `path[i]` (or `path`).
fn endpoint_terms(
    cx: &mut Ctx,
    items: &[String],
    path: &str,
    groups: &BTreeMap<String, AddrSet>,
    roles: Option<&BTreeMap<String, Role>>,
    allow_any: bool,
) -> Endpoint {
    let mut addrs = AddrSet::default();
    let mut terms = Vec::new();
    for (j, item) in items.iter().enumerate() {
        let pos = cx.at(&format!("{path}[{j}]")).or(cx.at(path));
        if item == "any" {
            if allow_any {
                addrs = AddrSet::any();
                terms.push(Term::Any);
            } else {
                cx.err(pos, "a role's hosts cannot be \"any\": list the role's servers (a group or addresses)");
            }
            continue;
        }
        let name = item.strip_prefix('@').unwrap_or(item);
        if let Some(set) = groups.get(name) {
            addrs = addrs.union(set);
            terms.push(Term::Group(name.to_string()));
            continue;
        }
        if let Some(r) = roles.and_then(|r| r.get(name)) {
            addrs = addrs.union(&r.hosts);
            terms.push(Term::Role(name.to_string()));
            continue;
        }
        if item.starts_with('@') || looks_like_name(item) {
            let mut candidates: Vec<&str> = groups.keys().map(|s| s.as_str()).collect();
            if let Some(r) = roles {
                candidates.extend(r.keys().map(|s| s.as_str()));
            }
            if allow_any {
                candidates.push("any");
            }
            let hint = suggestion(name, candidates.iter().copied());
            let what = if roles.is_some() {
                "group or role"
            } else {
                "group"
            };
            let hint = if hint.is_empty() {
                format!(
                    "; known: {}",
                    if candidates.is_empty() {
                        "none".to_string()
                    } else {
                        candidates.join(", ")
                    }
                )
            } else {
                hint
            };
            cx.err(pos, format!("unknown {what} \"{name}\"{hint}"));
            continue;
        }
        match parse_addr_entry(item) {
            Ok(a) => {
                let mut one = AddrSet::default();
                one.add(&a);
                addrs = addrs.union(&one);
                terms.push(Term::Address(item.clone()));
            }
            Err(e) => cx.err(pos, e.0),
        }
    }
    Endpoint { addrs, terms }
}

fn resolve_baseline(doc: &PolicyDoc, table: &str, cx: &mut Ctx) -> Baseline {
    let b = doc.baseline.clone().unwrap_or_default();
    let egress = match &b.egress {
        Some(specs) => port_list(cx, specs, "baseline.egress"),
        None => {
            let mut s = PortSet::default();
            for spec in DEFAULT_EGRESS {
                s.add_spec(spec).expect("default egress specs are valid");
            }
            s
        }
    };
    let default = match b.default.as_deref() {
        None | Some("drop") => DefaultAction::Drop,
        Some("reject") => DefaultAction::Reject,
        Some(other) => {
            let hint = suggestion(other, ["drop", "reject"]);
            cx.err(
                cx.at("baseline.default"),
                format!("unknown default \"{other}\"{hint}; use \"drop\" or \"reject\""),
            );
            DefaultAction::Drop
        }
    };
    let default_log = LogSpec {
        prefix: table.to_string(),
        rate: 10,
        unit: RateUnit::Second,
        burst: 5,
        target: LogTarget::Kernel,
    };
    let log = match &b.log {
        None | Some(LogDoc::Switch(true)) => Some(default_log),
        Some(LogDoc::Switch(false)) => None,
        Some(LogDoc::Settings(s)) => Some(resolve_log(s, default_log, cx)),
    };
    Baseline {
        icmp: b.icmp.unwrap_or(true),
        egress,
        log,
        default,
    }
}

fn resolve_log(s: &LogSettingsDoc, mut log: LogSpec, cx: &mut Ctx) -> LogSpec {
    let p = "baseline.log";
    if let Some(prefix) = &s.prefix {
        let bad = prefix.chars().find(|c| {
            !(c.is_ascii_graphic() || *c == ' ')
                || *c == '"'
                || *c == '\\'
                || *c == '$'
                || *c == '='
        });
        if let Some(c) = bad {
            cx.err(
                cx.at(&format!("{p}.prefix")),
                format!("log prefix contains {c:?}: use printable ASCII without quotes, backslashes, '$' or '=' (every backend must carry it)"),
            );
        } else if prefix.len() > LOG_PREFIX_MAX {
            cx.err(
                cx.at(&format!("{p}.prefix")),
                format!(
                    "log prefix is {} characters long; the limit is {LOG_PREFIX_MAX}",
                    prefix.len()
                ),
            );
        } else {
            log.prefix = prefix.clone();
        }
    }
    if let Some(rate) = &s.rate {
        match parse_rate(rate) {
            Ok((n, u)) => {
                log.rate = n;
                log.unit = u;
            }
            Err(m) => cx.err(cx.at(&format!("{p}.rate")), m),
        }
    }
    if let Some(b) = s.burst {
        if (1..=100_000).contains(&b) {
            log.burst = b as u32;
        } else {
            cx.err(
                cx.at(&format!("{p}.burst")),
                format!("log burst {b} is out of range: use 1-100000 packets"),
            );
        }
    }
    match (s.group, &s.level) {
        (Some(_), Some(_)) => cx.err(
            cx.at(&format!("{p}.level")).or(cx.at(p)),
            "log group and level are mutually exclusive (nftables logs to an NFLOG group or to the kernel log at a level): keep one of them",
        ),
        (Some(g), None) => {
            if (0..=65535).contains(&g) {
                log.target = LogTarget::Group(g as u16);
            } else {
                cx.err(cx.at(&format!("{p}.group")), format!("log group {g} is out of range: NFLOG groups are 0-65535"));
            }
        }
        (None, Some(level)) => {
            if LOG_LEVELS.contains(&level.as_str()) {
                log.target = LogTarget::Level(level.clone());
            } else {
                let hint = suggestion(level, LOG_LEVELS.iter().copied());
                cx.err(
                    cx.at(&format!("{p}.level")),
                    format!("unknown log level \"{level}\"{hint}; levels are {}", LOG_LEVELS.join(", ")),
                );
            }
        }
        (None, None) => {}
    }
    log
}

/// Parses `N/second` (also `minute`, `hour`, `day`).
pub fn parse_rate(s: &str) -> Result<(u32, RateUnit), String> {
    let err = || {
        format!("log rate \"{s}\" is not a rate: write N/second, N/minute, N/hour or N/day, like \"10/second\"")
    };
    let (n, u) = s.split_once('/').ok_or_else(err)?;
    let n: u32 = n.trim().parse().map_err(|_| err())?;
    if n == 0 {
        return Err(format!(
            "log rate \"{s}\" is zero: use at least 1/{}",
            u.trim()
        ));
    }
    let unit = match u.trim() {
        "second" | "s" | "sec" => RateUnit::Second,
        "minute" | "m" | "min" => RateUnit::Minute,
        "hour" | "h" => RateUnit::Hour,
        "day" | "d" => RateUnit::Day,
        _ => return Err(err()),
    };
    if n == 1 && unit == RateUnit::Day {
        // firewalld (and iptables-era limits) refuse 1/day.
        return Err(format!(
            "log rate \"{s}\" is too slow for the firewalld backend: use 2/day or more"
        ));
    }
    Ok((n, unit))
}
