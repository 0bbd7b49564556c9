//! proptest strategies for microseg: random **valid** policy documents,
//! mutations of them, and connections biased to the boundaries of a policy's
//! address and port intervals.
//!
//! ```
//! use microseg_core::Policy;
//! use microseg_testgen::{connection, policy_doc};
//! use proptest::strategy::{Strategy, ValueTree};
//! use proptest::test_runner::TestRunner;
//!
//! let mut runner = TestRunner::deterministic();
//! let doc = policy_doc().new_tree(&mut runner).unwrap().current();
//! // Every generated document validates.
//! let policy = Policy::from_doc(doc).unwrap();
//! // Connections land on and around the ends of the policy's intervals.
//! let c = connection(&policy).new_tree(&mut runner).unwrap().current();
//! assert!(c.validate().is_ok());
//! let _ = policy.decide(&c);
//! ```
//!
//! Addresses come from a small universe so that overlaps and shared
//! boundaries are frequent: `10.0.0.0/22` (four /24s), `2001:db8::/118`, and
//! a few addresses outside both (`192.0.2.0/24`, `203.0.113.0/24`,
//! `2001:db8:ff::/120`). Ports cluster around well-known values and the ends
//! of the port space. Groups overlap, include each other (acyclically), mix
//! IPv4 and IPv6; roles overlap partially, hosts hold several roles, some
//! roles set their own egress; flows allow, deny or reject, with endpoints
//! that are groups, roles, literal addresses, lists or `any`.
//!
//! Property tests read their case count from [`cases`]
//! (`MICROSEG_PROPTEST_CASES`).
#![forbid(unsafe_code)]

use microseg_core::addr::AddrSet;
use microseg_core::doc::{
    BaselineDoc, FlowDoc, HardeningDoc, HardeningSettingsDoc, LogDoc, LogSettingsDoc, OneOrMany,
    PolicyDoc, RoleDoc,
};
use microseg_core::ports::{PortSet, Proto};
use microseg_core::semantics::Connection;
use microseg_core::Policy;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::Union;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The environment variable that overrides every property's case count.
pub const CASES_ENV: &str = "MICROSEG_PROPTEST_CASES";

/// The case count for a property: `MICROSEG_PROPTEST_CASES` if set (and a
/// positive number), else `default`.
///
/// ```
/// // Unless the environment says otherwise, the property's own default holds.
/// if std::env::var(microseg_testgen::CASES_ENV).is_err() {
///     assert_eq!(microseg_testgen::cases(500), 500);
/// }
/// ```
pub fn cases(default: u32) -> u32 {
    std::env::var(CASES_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

/// A proptest configuration with [`cases`]`(default)` cases, no failure
/// persistence files and no forking.
///
/// ```
/// let config = microseg_testgen::config(64);
/// assert!(config.cases > 0);
/// assert!(config.failure_persistence.is_none());
/// ```
pub fn config(default: u32) -> proptest::test_runner::Config {
    proptest::test_runner::Config {
        cases: cases(default),
        failure_persistence: None,
        max_shrink_iters: 2048,
        ..proptest::test_runner::Config::default()
    }
}

// ---------------------------------------------------------------------------
// The address and port universe.

/// `10.0.0.0`: the base of the IPv4 universe (`10.0.0.0/22`).
pub const V4_BASE: u32 = 0x0a00_0000;
/// The size of the IPv4 universe.
pub const V4_SIZE: u32 = 1024;
/// `2001:db8::`: the base of the IPv6 universe (`2001:db8::/118`).
pub const V6_BASE: u128 = 0x2001_0db8_u128 << 96;
/// The size of the IPv6 universe.
pub const V6_SIZE: u128 = 1024;

/// Low bits that sit on or next to CIDR boundaries.
const EDGES: &[u32] = &[
    0, 1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 100, 127, 128, 129, 191, 192, 254, 255,
];

/// An offset into a universe of 1024 addresses, biased to CIDR edges.
fn offset() -> BoxedStrategy<u32> {
    prop_oneof![
        3 => (0..4u32, select(EDGES)).prop_map(|(net, low)| net * 256 + low),
        2 => 0..V4_SIZE,
    ]
    .boxed()
}

/// An IPv4 address of the universe.
pub fn ipv4() -> BoxedStrategy<Ipv4Addr> {
    offset().prop_map(|o| Ipv4Addr::from(V4_BASE + o)).boxed()
}

/// An IPv6 address of the universe.
pub fn ipv6() -> BoxedStrategy<Ipv6Addr> {
    offset()
        .prop_map(|o| Ipv6Addr::from(V6_BASE + o as u128))
        .boxed()
}

/// Address entries outside the universe (an unmanaged "internet").
const OUTSIDE: &[&str] = &[
    "192.0.2.1",
    "192.0.2.0/24",
    "203.0.113.0/25",
    "203.0.113.7-203.0.113.200",
    "2001:db8:ff::1",
    "2001:db8:ff::/120",
    "2001:db8:ff::10-2001:db8:ff::20",
];

fn cidr4() -> BoxedStrategy<String> {
    (offset(), 22u8..=32)
        .prop_map(|(o, len)| {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            format!("{}/{len}", Ipv4Addr::from((V4_BASE + o) & mask))
        })
        .boxed()
}

fn cidr6() -> BoxedStrategy<String> {
    (offset(), 118u8..=128)
        .prop_map(|(o, len)| {
            let mask = u128::MAX << (128 - len as u32);
            format!("{}/{len}", Ipv6Addr::from((V6_BASE + o as u128) & mask))
        })
        .boxed()
}

fn range4() -> BoxedStrategy<String> {
    (offset(), 0..80u32)
        .prop_map(|(o, span)| {
            let lo = V4_BASE + o;
            let hi = (lo + span).min(V4_BASE + V4_SIZE - 1);
            format!("{}-{}", Ipv4Addr::from(lo), Ipv4Addr::from(hi))
        })
        .boxed()
}

fn range6() -> BoxedStrategy<String> {
    (offset(), 0..80u32)
        .prop_map(|(o, span)| {
            let lo = V6_BASE + o as u128;
            let hi = (lo + span as u128).min(V6_BASE + V6_SIZE - 1);
            format!("{}-{}", Ipv6Addr::from(lo), Ipv6Addr::from(hi))
        })
        .boxed()
}

/// One address entry (no `@include`): an IPv4/IPv6 address, CIDR network or
/// range of the universe, now and then one outside it.
///
/// ```
/// use proptest::strategy::{Strategy, ValueTree};
/// let mut runner = proptest::test_runner::TestRunner::deterministic();
/// for _ in 0..50 {
///     let e = microseg_testgen::addr_entry().new_tree(&mut runner).unwrap().current();
///     assert!(microseg_core::addr::parse_addr_entry(&e).is_ok(), "{e}");
/// }
/// ```
pub fn addr_entry() -> BoxedStrategy<String> {
    prop_oneof![
        4 => ipv4().prop_map(|a| a.to_string()),
        3 => cidr4(),
        3 => range4(),
        2 => ipv6().prop_map(|a| a.to_string()),
        2 => cidr6(),
        2 => range6(),
        1 => select(OUTSIDE).prop_map(String::from),
    ]
    .boxed()
}

/// Ports near common values and the ends of the port space.
const PORTS: &[u16] = &[
    1, 2, 21, 22, 23, 53, 79, 80, 81, 123, 442, 443, 444, 1023, 1024, 5432, 8079, 8080, 8081,
    65534, 65535,
];

fn port() -> BoxedStrategy<u16> {
    prop_oneof![4 => select(PORTS), 1 => 1..=65535u16].boxed()
}

/// One port spec: `tcp/N`, `udp/N`, `tcp/A-B`, `udp/A-B`, `icmp` or `icmpv6`.
///
/// ```
/// use proptest::strategy::{Strategy, ValueTree};
/// let mut runner = proptest::test_runner::TestRunner::deterministic();
/// for _ in 0..50 {
///     let spec = microseg_testgen::port_spec().new_tree(&mut runner).unwrap().current();
///     assert!(microseg_core::ports::PortSet::default().add_spec(&spec).is_ok(), "{spec}");
/// }
/// ```
pub fn port_spec() -> BoxedStrategy<String> {
    let range = (port(), port()).prop_map(|(a, b)| (a.min(b), a.max(b)));
    prop_oneof![
        3 => port().prop_map(|p| format!("tcp/{p}")),
        2 => port().prop_map(|p| format!("udp/{p}")),
        2 => range.clone().prop_map(|(a, b)| format!("tcp/{a}-{b}")),
        1 => range.prop_map(|(a, b)| format!("udp/{a}-{b}")),
        1 => Just("icmp".to_string()),
        1 => Just("icmpv6".to_string()),
    ]
    .boxed()
}

fn port_specs(min: usize, max: usize) -> BoxedStrategy<Vec<String>> {
    vec(port_spec(), min..=max).boxed()
}

// ---------------------------------------------------------------------------
// Documents.

/// Size limits of generated documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// At most this many groups (at least one is always generated).
    pub groups: usize,
    /// At most this many entries per group.
    pub entries: usize,
    /// At most this many services.
    pub services: usize,
    /// At most this many roles.
    pub roles: usize,
    /// At most this many flows.
    pub flows: usize,
}

impl Default for Limits {
    /// 6 groups of up to 4 entries, 3 services, 5 roles, 10 flows.
    fn default() -> Limits {
        Limits {
            groups: 6,
            entries: 4,
            services: 3,
            roles: 5,
            flows: 10,
        }
    }
}

/// The names a flow can refer to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    /// Group names.
    pub groups: Vec<String>,
    /// Role names (roles named like a group appear in both lists).
    pub roles: Vec<String>,
    /// Service names.
    pub services: Vec<String>,
}

impl Names {
    /// The names defined by a document.
    ///
    /// ```
    /// use microseg_core::{document::Format, Policy};
    /// let text = "version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n";
    /// let doc = Policy::from_str_as(text, Format::Toml, None).unwrap().doc;
    /// let names = microseg_testgen::Names::of(&doc);
    /// assert_eq!(names.groups, ["web"]);
    /// assert_eq!(names.roles, ["web"]);
    /// ```
    pub fn of(doc: &PolicyDoc) -> Names {
        Names {
            groups: doc.groups.keys().cloned().collect(),
            roles: doc.roles.keys().cloned().collect(),
            services: doc.services.keys().cloned().collect(),
        }
    }
}

/// Group names: short and long (the 20-character limit), with digits, `-`
/// and `_`, and some that look like other things (`flow1`, `icmp`, `web_v4`
/// next to `web`). Drawn in a random order; past the pool, `gN`.
const GROUP_NAMES: &[&str] = &[
    "web",
    "app",
    "db",
    "g0",
    "flow1",
    "icmp",
    "a",
    "x-1_y",
    "web_v4",
    "long-group-name-20ch",
];

/// Role names that are not group names; past the pool, `rN`.
const ROLE_NAMES: &[&str] = &["frontend", "r0", "backend", "role-b", "r_9", "ops"];

/// Group `j`, written before names are drawn (see [`name_groups`]).
fn group_ref(j: usize) -> String {
    format!("%{j}")
}

/// Replaces group placeholders (`%J`, `@%J`) by the drawn names.
fn name_groups(entry: &str, names: &[String]) -> String {
    let (at, rest) = match entry.strip_prefix('@') {
        Some(r) => ("@", r),
        None => ("", entry),
    };
    match rest.strip_prefix('%').and_then(|j| j.parse::<usize>().ok()) {
        Some(j) => format!("{at}{}", names[j]),
        None => entry.to_string(),
    }
}

/// The entries of group `i`: address entries, and `@gJ` includes of groups
/// `J < i` only, so includes are acyclic.
fn group_entries(i: usize, max: usize) -> BoxedStrategy<Vec<String>> {
    let entry = if i == 0 {
        addr_entry()
    } else {
        prop_oneof![
            5 => addr_entry(),
            1 => (0..i).prop_map(|j| format!("@{}", group_ref(j))),
        ]
        .boxed()
    };
    vec(entry, 1..=max.max(1)).boxed()
}

/// How a generated role gets its hosts.
#[derive(Debug, Clone)]
enum RoleKind {
    /// Named like group `k`; `explicit` writes `hosts = ["gK"]`.
    LikeGroup { k: usize, explicit: bool },
    /// Its own name, hosts = groups and address entries.
    Own { hosts: Vec<String> },
}

fn host_term(groups: usize) -> BoxedStrategy<String> {
    prop_oneof![
        3 => (0..groups).prop_map(group_ref),
        1 => (0..groups).prop_map(|j| format!("@{}", group_ref(j))),
        2 => addr_entry(),
    ]
    .boxed()
}

fn role_kind(groups: usize) -> BoxedStrategy<RoleKind> {
    prop_oneof![
        2 => (0..groups, prop::bool::weighted(0.2)).prop_map(|(k, explicit)| RoleKind::LikeGroup { k, explicit }),
        2 => vec(host_term(groups), 1..=3).prop_map(|hosts| RoleKind::Own { hosts }),
    ]
    .boxed()
}

fn egress() -> BoxedStrategy<Option<Vec<String>>> {
    prop_oneof![3 => Just(None), 2 => port_specs(0, 3).prop_map(Some)].boxed()
}

/// One endpoint term: a group (now and then written `@group`), a role, a
/// literal address entry or `any`.
pub fn endpoint_term(names: &Names) -> BoxedStrategy<String> {
    let mut options: Vec<(u32, BoxedStrategy<String>)> =
        vec![(3, addr_entry()), (1, Just("any".to_string()).boxed())];
    if !names.groups.is_empty() {
        options.push((6, select(names.groups.clone()).boxed()));
        options.push((
            1,
            select(names.groups.clone())
                .prop_map(|g| format!("@{g}"))
                .boxed(),
        ));
    }
    if !names.roles.is_empty() {
        options.push((3, select(names.roles.clone()).boxed()));
    }
    Union::new_weighted(options).boxed()
}

/// `from` or `to`: one term, or a list of one to three.
pub fn endpoint(names: &Names) -> BoxedStrategy<OneOrMany> {
    prop_oneof![
        3 => endpoint_term(names).prop_map(OneOrMany::One),
        2 => vec(endpoint_term(names), 1..=3).prop_map(OneOrMany::Many),
    ]
    .boxed()
}

/// A flow's action as written: mostly absent (allow), else `allow`, `deny`,
/// `reject` or the alias `drop`.
pub fn action() -> BoxedStrategy<Option<String>> {
    prop_oneof![
        4 => Just(None),
        2 => Just(Some("allow".to_string())),
        3 => Just(Some("deny".to_string())),
        2 => Just(Some("reject".to_string())),
        1 => Just(Some("drop".to_string())),
    ]
    .boxed()
}

/// One flow over `names`. A generated flow is named `PENDING` or unnamed;
/// [`renumber_flows`] gives named flows unique names.
pub fn flow_doc(names: &Names) -> BoxedStrategy<FlowDoc> {
    let services = if names.services.is_empty() {
        Just(Vec::new()).boxed()
    } else {
        prop_oneof![
            2 => Just(Vec::new()),
            1 => prop::sample::subsequence(names.services.clone(), 1..=names.services.len().min(2)),
        ]
        .boxed()
    };
    (
        prop::bool::weighted(0.6),
        endpoint(names),
        endpoint(names),
        services,
        port_specs(0, 3),
        action(),
        prop_oneof![3 => Just(None), 1 => any::<bool>().prop_map(Some)],
    )
        .prop_map(|(named, from, to, services, mut ports, action, log)| {
            if services.is_empty() && ports.is_empty() {
                ports.push("tcp/22".to_string());
            }
            FlowDoc {
                name: named.then(|| "PENDING".to_string()),
                from,
                to,
                services,
                ports,
                action,
                log,
            }
        })
        .boxed()
}

/// Gives every named flow the unique name `fI` (its 0-based index); unnamed
/// flows stay unnamed (the policy names them `flowN`).
pub fn renumber_flows(doc: &mut PolicyDoc) {
    for (i, f) in doc.flows.iter_mut().enumerate() {
        if f.name.is_some() {
            f.name = Some(format!("f{i}"));
        }
    }
}

fn log_doc() -> BoxedStrategy<LogDoc> {
    let target = prop_oneof![
        Just((None, None)),
        (0..=65535i64).prop_map(|g| (Some(g), None)),
        select(&["info", "warn", "debug"][..]).prop_map(|l| (None, Some(l.to_string()))),
    ];
    prop_oneof![
        1 => any::<bool>().prop_map(LogDoc::Switch),
        2 => (
            prop::option::of(
                select(&["microseg-drop", "drop: ", "x", "!#%&'()*+,-./:;<>?@[]^_`{|}~"][..])
                    .prop_map(String::from)
            ),
            prop::option::of(select(&["10/second", "5/minute", "1/hour", "100/day"][..]).prop_map(String::from)),
            prop::option::of(1..=100i64),
            target,
        )
            .prop_map(|(prefix, rate, burst, (group, level))| {
                LogDoc::Settings(LogSettingsDoc {
                    prefix,
                    rate,
                    burst,
                    group,
                    level,
                })
            }),
    ]
    .boxed()
}

/// A baseline section, or none: ICMP on/off, egress lists (empty too),
/// default drop/reject, logging variations.
pub fn baseline_doc() -> BoxedStrategy<Option<BaselineDoc>> {
    prop_oneof![
        1 => Just(None),
        3 => (
            prop::option::of(any::<bool>()),
            prop::option::of(port_specs(0, 4)),
            prop::option::of(log_doc()),
            prop::option::of(select(&["drop", "reject"][..]).prop_map(String::from)),
        )
            .prop_map(|(icmp, egress, log, default)| Some(BaselineDoc { icmp, egress, log, default })),
    ]
    .boxed()
}

fn hardening_doc() -> BoxedStrategy<Option<HardeningDoc>> {
    prop_oneof![
        4 => Just(None),
        1 => any::<bool>().prop_map(|b| Some(HardeningDoc::Switch(b))),
        1 => (
            prop::option::of(any::<bool>()),
            prop::option::of(select(&["strict", "loose", "off"][..]).prop_map(String::from)),
            prop::option::of(any::<bool>()),
        )
            .prop_map(|(redirects, rp_filter, syncookies)| {
                Some(HardeningDoc::Settings(HardeningSettingsDoc {
                    redirects,
                    rp_filter,
                    syncookies,
                }))
            }),
    ]
    .boxed()
}

/// Random valid policy documents with the default [`Limits`].
///
/// ```
/// use proptest::strategy::{Strategy, ValueTree};
/// let mut runner = proptest::test_runner::TestRunner::deterministic();
/// let doc = microseg_testgen::policy_doc().new_tree(&mut runner).unwrap().current();
/// assert_eq!(doc.version, 1);
/// assert!(!doc.groups.is_empty());
/// assert!(microseg_core::Policy::from_doc(doc).is_ok());
/// ```
pub fn policy_doc() -> BoxedStrategy<PolicyDoc> {
    policy_doc_with(Limits::default())
}

/// Random valid policy documents within `limits`.
pub fn policy_doc_with(limits: Limits) -> BoxedStrategy<PolicyDoc> {
    let Limits {
        groups: max_groups,
        entries,
        services: max_services,
        roles: max_roles,
        flows: max_flows,
    } = limits;
    (1..=max_groups.max(1), 0..=max_services)
        .prop_flat_map(move |(ng, ns)| {
            let groups: Vec<BoxedStrategy<Vec<String>>> =
                (0..ng).map(|i| group_entries(i, entries)).collect();
            let services = vec(port_specs(1, 3), ns);
            let roles = vec((role_kind(ng), egress()), 0..=max_roles);
            let table = prop_oneof![
                4 => Just(None),
                1 => select(&["ms", "microseg", "fw-1"][..]).prop_map(|t| Some(t.to_string())),
            ];
            let names = (
                Just(GROUP_NAMES.to_vec()).prop_shuffle(),
                Just(ROLE_NAMES.to_vec()).prop_shuffle(),
            );
            (
                groups,
                services,
                roles,
                table,
                (baseline_doc(), hardening_doc()),
                names,
            )
        })
        .prop_flat_map(
            move |(groups, services, roles, table, (baseline, hardening), (gpool, rpool))| {
                let gname = |i: usize| match gpool.get(i) {
                    Some(n) => n.to_string(),
                    None => format!("g{i}"),
                };
                let gnames: Vec<String> = (0..groups.len()).map(gname).collect();
                let mut doc = PolicyDoc {
                    version: 1,
                    table,
                    baseline,
                    hardening,
                    ..PolicyDoc::default()
                };
                for (i, entries) in groups.into_iter().enumerate() {
                    let entries = entries.iter().map(|e| name_groups(e, &gnames)).collect();
                    doc.groups.insert(gnames[i].clone(), entries);
                }
                for (i, specs) in services.into_iter().enumerate() {
                    doc.services.insert(format!("s{i}"), specs);
                }
                for (i, (kind, egress)) in roles.into_iter().enumerate() {
                    let (name, hosts) = match kind {
                        RoleKind::LikeGroup { k, explicit } => {
                            let name = gnames[k].clone();
                            let hosts = explicit.then(|| vec![name.clone()]);
                            (name, hosts)
                        }
                        RoleKind::Own { hosts } => {
                            let name = match rpool.get(i) {
                                Some(n) => n.to_string(),
                                None => format!("r{i}"),
                            };
                            let hosts = hosts.iter().map(|h| name_groups(h, &gnames)).collect();
                            (name, Some(hosts))
                        }
                    };
                    doc.roles.insert(name, RoleDoc { hosts, egress });
                }
                let names = Names::of(&doc);
                (Just(doc), vec(flow_doc(&names), 0..=max_flows))
            },
        )
        .prop_map(|(mut doc, flows)| {
            doc.flows = flows;
            renumber_flows(&mut doc);
            doc
        })
        .boxed()
}

/// A mutation of a document, as done by [`mutated`].
#[derive(Debug, Clone, PartialEq)]
pub enum Mutation {
    /// A flow appended.
    AddFlow(FlowDoc),
    /// The flow at this index removed.
    RemoveFlow(usize),
    /// The flow at this index replaced (action, ports, endpoints altered).
    AlterFlow(usize, FlowDoc),
    /// An address entry added to a group.
    AddMember(String, String),
    /// The entry at this index removed from a group (of two or more entries).
    RemoveMember(String, usize),
    /// The baseline replaced.
    Baseline(Option<BaselineDoc>),
    /// A role's egress replaced.
    RoleEgress(String, Option<Vec<String>>),
}

impl Mutation {
    /// Applies the mutation (indices are taken modulo the current lengths).
    pub fn apply(&self, doc: &PolicyDoc) -> PolicyDoc {
        let mut d = doc.clone();
        match self {
            Mutation::AddFlow(f) => d.flows.push(f.clone()),
            Mutation::RemoveFlow(i) => {
                if !d.flows.is_empty() {
                    let n = d.flows.len();
                    d.flows.remove(i % n);
                }
            }
            Mutation::AlterFlow(i, f) => {
                if !d.flows.is_empty() {
                    let n = d.flows.len();
                    d.flows[i % n] = f.clone();
                }
            }
            Mutation::AddMember(g, e) => {
                if let Some(list) = d.groups.get_mut(g) {
                    list.push(e.clone());
                }
            }
            Mutation::RemoveMember(g, i) => {
                if let Some(list) = d.groups.get_mut(g) {
                    if list.len() >= 2 {
                        let n = list.len();
                        list.remove(i % n);
                    }
                }
            }
            Mutation::Baseline(b) => d.baseline = b.clone(),
            Mutation::RoleEgress(r, e) => {
                if let Some(role) = d.roles.get_mut(r) {
                    role.egress = e.clone();
                }
            }
        }
        renumber_flows(&mut d);
        d
    }
}

/// Small random edits of `doc` that keep it valid: add, remove or alter a
/// flow (a narrower or wider variant of an existing one as often as a fresh
/// one), add or remove a group member, change the baseline or a role's egress.
pub fn mutation(doc: &PolicyDoc) -> BoxedStrategy<Mutation> {
    let names = Names::of(doc);
    let mut options: Vec<(u32, BoxedStrategy<Mutation>)> = vec![
        (3, flow_doc(&names).prop_map(Mutation::AddFlow).boxed()),
        (1, baseline_doc().prop_map(Mutation::Baseline).boxed()),
    ];
    if !doc.flows.is_empty() {
        let flows = doc.flows.clone();
        let n = flows.len();
        options.push((2, (0..n).prop_map(Mutation::RemoveFlow).boxed()));
        options.push((
            2,
            (0..n, flow_doc(&names))
                .prop_map(|(i, f)| Mutation::AlterFlow(i, f))
                .boxed(),
        ));
        // Same flow, one aspect changed: action, ports, from or to.
        let tweak = (0..n, 0..4u8, action(), port_specs(1, 2), endpoint(&names)).prop_map(
            move |(i, what, action, ports, ep)| {
                let mut f = flows[i].clone();
                match what {
                    0 => f.action = action,
                    1 => {
                        f.ports = ports;
                    }
                    2 => f.from = ep,
                    _ => f.to = ep,
                }
                Mutation::AlterFlow(i, f)
            },
        );
        options.push((4, tweak.boxed()));
    }
    let groups: Vec<String> = doc.groups.keys().cloned().collect();
    options.push((
        3,
        (select(groups), addr_entry())
            .prop_map(|(g, e)| Mutation::AddMember(g, e))
            .boxed(),
    ));
    let removable: Vec<(String, usize)> = doc
        .groups
        .iter()
        .filter(|(_, v)| v.len() >= 2)
        .map(|(k, v)| (k.clone(), v.len()))
        .collect();
    if !removable.is_empty() {
        options.push((
            3,
            (select(removable), any::<prop::sample::Index>())
                .prop_map(|((g, n), i)| Mutation::RemoveMember(g, i.index(n)))
                .boxed(),
        ));
    }
    if !doc.roles.is_empty() {
        let roles: Vec<String> = doc.roles.keys().cloned().collect();
        options.push((
            1,
            (select(roles), egress())
                .prop_map(|(r, e)| Mutation::RoleEgress(r, e))
                .boxed(),
        ));
    }
    Union::new_weighted(options).boxed()
}

/// A document and a valid mutation of it: `(old, mutation, new)`.
///
/// ```
/// use proptest::strategy::{Strategy, ValueTree};
/// let mut runner = proptest::test_runner::TestRunner::deterministic();
/// let (old, _m, new) = microseg_testgen::policy_pair().new_tree(&mut runner).unwrap().current();
/// assert!(microseg_core::Policy::from_doc(old).is_ok());
/// assert!(microseg_core::Policy::from_doc(new).is_ok());
/// ```
pub fn policy_pair() -> BoxedStrategy<(PolicyDoc, Mutation, PolicyDoc)> {
    policy_doc()
        .prop_flat_map(|doc| (Just(doc.clone()), mutation(&doc)))
        .prop_map(|(doc, m)| {
            let new = m.apply(&doc);
            (doc, m, new)
        })
        .boxed()
}

/// Random edits of `doc` (see [`mutation`]), applied.
pub fn mutated(doc: &PolicyDoc) -> BoxedStrategy<PolicyDoc> {
    let doc = doc.clone();
    mutation(&doc).prop_map(move |m| m.apply(&doc)).boxed()
}

// ---------------------------------------------------------------------------
// Connections.

/// The interesting points of one or more policies: every interval end of
/// every address set and port set, one step inside and one step outside,
/// plus fixed landmarks (the ends of the address spaces, loopback, the
/// universe's edges).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Boundaries {
    /// IPv4 addresses as integers.
    pub v4: Vec<u32>,
    /// IPv6 addresses as integers.
    pub v6: Vec<u128>,
    /// Managed IPv4 addresses: the ends, the second and the middle of every
    /// interval of hosts (so that both ends of a connection are often managed).
    pub managed_v4: Vec<u32>,
    /// Managed IPv6 addresses, likewise.
    pub managed_v6: Vec<u128>,
    /// TCP/UDP ports (1-65535).
    pub ports: Vec<u16>,
}

fn around<T: Copy + Ord>(
    out: &mut BTreeSet<T>,
    lo: T,
    hi: T,
    pred: impl Fn(T) -> Option<T>,
    succ: impl Fn(T) -> Option<T>,
) {
    for x in [Some(lo), Some(hi), pred(lo), succ(lo), pred(hi), succ(hi)]
        .into_iter()
        .flatten()
    {
        out.insert(x);
    }
}

impl Boundaries {
    /// The boundaries of every address and port set of the policies.
    pub fn of(policies: &[&Policy]) -> Boundaries {
        let mut v4: BTreeSet<u32> = [
            0,
            1,
            V4_BASE - 1,
            V4_BASE,
            V4_BASE + V4_SIZE - 1,
            V4_BASE + V4_SIZE,
            0x7f00_0001,
            0xc000_0201,
            u32::MAX,
        ]
        .into_iter()
        .collect();
        let mut v6: BTreeSet<u128> = [
            0,
            1,
            2,
            V6_BASE - 1,
            V6_BASE,
            V6_BASE + V6_SIZE - 1,
            V6_BASE + V6_SIZE,
            u128::MAX,
        ]
        .into_iter()
        .collect();
        let mut ports: BTreeSet<u16> = [1, 2, 22, 80, 443, 65534, 65535].into_iter().collect();
        let mut addr = |s: &AddrSet| {
            for &(lo, hi) in s.v4.ranges() {
                around(&mut v4, lo, hi, |x| x.checked_sub(1), |x| x.checked_add(1));
            }
            for &(lo, hi) in s.v6.ranges() {
                around(&mut v6, lo, hi, |x| x.checked_sub(1), |x| x.checked_add(1));
            }
        };
        for p in policies {
            for s in p.groups.values() {
                addr(s);
            }
            for r in p.roles.values() {
                addr(&r.hosts);
            }
            for f in &p.flows {
                addr(&f.from.addrs);
                addr(&f.to.addrs);
            }
            addr(&p.managed);
        }
        let mut port_set = |s: &PortSet| {
            for set in [&s.tcp, &s.udp] {
                for &(lo, hi) in set.ranges() {
                    around(
                        &mut ports,
                        lo,
                        hi,
                        |x| x.checked_sub(1),
                        |x| x.checked_add(1),
                    );
                }
            }
        };
        for p in policies {
            p.services.values().for_each(&mut port_set);
            p.flows.iter().for_each(|f| port_set(&f.ports));
            p.roles.values().for_each(|r| port_set(&r.egress));
            port_set(&p.baseline.egress);
        }
        ports.remove(&0);
        let (mut managed_v4, mut managed_v6) = (BTreeSet::new(), BTreeSet::new());
        for p in policies {
            for &(lo, hi) in p.managed.v4.ranges() {
                managed_v4.extend([lo, hi, lo.saturating_add(1).min(hi), lo + (hi - lo) / 2]);
            }
            for &(lo, hi) in p.managed.v6.ranges() {
                managed_v6.extend([lo, hi, lo.saturating_add(1).min(hi), lo + (hi - lo) / 2]);
            }
        }
        let v4: Vec<u32> = v4.into_iter().collect();
        let v6: Vec<u128> = v6.into_iter().collect();
        Boundaries {
            managed_v4: if managed_v4.is_empty() {
                v4.clone()
            } else {
                managed_v4.into_iter().collect()
            },
            managed_v6: if managed_v6.is_empty() {
                v6.clone()
            } else {
                managed_v6.into_iter().collect()
            },
            v4,
            v6,
            ports: ports.into_iter().collect(),
        }
    }

    /// Connections between boundary points (now and then anywhere in the
    /// universe, to oneself, or to loopback), of one family end to end, with
    /// ports at port-range boundaries and ICMP of the right family.
    pub fn connections(&self) -> BoxedStrategy<Connection> {
        let port = prop_oneof![5 => select(self.ports.clone()), 1 => 1..=65535u16];
        let proto4 = prop_oneof![
            5 => port.clone().prop_map(Proto::Tcp),
            3 => port.clone().prop_map(Proto::Udp),
            1 => Just(Proto::Icmp),
        ];
        let proto6 = prop_oneof![
            5 => port.clone().prop_map(Proto::Tcp),
            3 => port.prop_map(Proto::Udp),
            1 => Just(Proto::Icmpv6),
        ];
        let a4 = prop_oneof![
            6 => select(self.v4.clone()).prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
            4 => select(self.managed_v4.clone()).prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
            2 => ipv4().prop_map(IpAddr::V4),
        ];
        let a6 = prop_oneof![
            6 => select(self.v6.clone()).prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
            4 => select(self.managed_v6.clone()).prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
            2 => ipv6().prop_map(IpAddr::V6),
        ];
        // 0..30: 0 = to itself, 1 = to loopback, else as drawn.
        let shape = |(s, d, p, k): (IpAddr, IpAddr, Proto, u8)| {
            let d = match (k, s) {
                (0, _) => s,
                (1, IpAddr::V4(_)) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                (1, IpAddr::V6(_)) => IpAddr::V6(Ipv6Addr::LOCALHOST),
                _ => d,
            };
            Connection::new(s, d, p)
        };
        prop_oneof![
            3 => (a4.clone(), a4, proto4, 0..30u8).prop_map(shape),
            2 => (a6.clone(), a6, proto6, 0..30u8).prop_map(shape),
        ]
        .boxed()
    }
}

/// Connections biased to the boundaries of `policy` (see [`Boundaries`]).
pub fn connection(policy: &Policy) -> BoxedStrategy<Connection> {
    Boundaries::of(&[policy]).connections()
}

/// Connections biased to the boundaries of all of `policies` (for comparing
/// two policies).
pub fn connection_for(policies: &[&Policy]) -> BoxedStrategy<Connection> {
    Boundaries::of(policies).connections()
}

/// A generated policy (validated) with `n` boundary-biased connections.
///
/// ```
/// use proptest::strategy::{Strategy, ValueTree};
/// let mut runner = proptest::test_runner::TestRunner::deterministic();
/// let (policy, conns) = microseg_testgen::policy_with_connections(8).new_tree(&mut runner).unwrap().current();
/// assert_eq!(conns.len(), 8);
/// # let _ = policy;
/// ```
pub fn policy_with_connections(n: usize) -> BoxedStrategy<(Policy, Vec<Connection>)> {
    policy_doc()
        .prop_map(|doc| Policy::from_doc(doc).expect("generated documents are valid"))
        .prop_flat_map(move |p| {
            let conns = vec(connection(&p), n);
            (Just(p), conns)
        })
        .boxed()
}
