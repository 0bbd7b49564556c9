//! A deterministic synthetic estate: roles with their own host groups,
//! zones, shared infrastructure, hub services and flows with a skewed
//! (Zipf-like) choice of destinations, so that a few roles receive many
//! flows as real databases, DNS or NTP servers do.
//!
//! ```
//! use microseg_benches::gen::{policy_doc, SIZE_S};
//! let doc = policy_doc(&SIZE_S, 7);
//! // Ten roles, plus the infrastructure's: admins, backup, jump, monitoring.
//! assert_eq!(doc.roles.len(), 14);
//! assert_eq!(doc.flows.len(), 100);
//! // Same seed, same estate.
//! assert_eq!(doc, policy_doc(&SIZE_S, 7));
//! let policy = microseg_core::Policy::from_doc(doc).unwrap();
//! assert!(policy.managed.v6.ranges().len() > 0);
//! ```
//!
//! Addresses: role `rNNNN` owns the IPv4 block `10.X.Y.0/22` and the IPv6
//! block `2001:db8:N::/64`; its host group holds `addresses / roles`
//! entries — 70 % single IPv4 addresses, 10 % IPv4 ranges, 5 % IPv4 CIDRs,
//! 15 % IPv6 addresses and ranges — one free address between entries, so
//! that no two entries merge and every entry is one set element.
//! Infrastructure (admins, monitoring, backup, jump hosts) lives in
//! `172.16.0.0/16` and `2001:db8:ffff::/48`.
//!
//! Flows (exactly `flows`): 88 % role → role on one to three services,
//! the destination drawn with probability falling like `u³` (role `r0000`
//! receives about `roles^(-1/3)` of them); some from zones (a group
//! including a hundred roles' groups), from the admins or monitoring to a
//! list of roles, from `any` to public roles; a few deny and reject flows;
//! and one flow from every zone to `r0000` (NTP), which gives that role a
//! set holding every address of the estate.

use microseg_core::doc::{BaselineDoc, FlowDoc, OneOrMany, PolicyDoc, RoleDoc};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The size of a synthetic estate.
///
/// ```
/// assert_eq!(microseg_benches::gen::SIZE_L.addresses, 100_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    /// `S`, `M` or `L`.
    pub name: &'static str,
    /// Roles (each with its own host group).
    pub roles: usize,
    /// Address entries in the role groups.
    pub addresses: usize,
    /// Flows.
    pub flows: usize,
}

/// 10 roles, 1k addresses, 100 flows.
///
/// ```
/// assert_eq!(microseg_benches::gen::SIZE_S.roles, 10);
/// ```
pub const SIZE_S: Size = Size {
    name: "S",
    roles: 10,
    addresses: 1_000,
    flows: 100,
};

/// 100 roles, 10k addresses, 1k flows.
///
/// ```
/// assert_eq!(microseg_benches::gen::SIZE_M.flows, 1_000);
/// ```
pub const SIZE_M: Size = Size {
    name: "M",
    roles: 100,
    addresses: 10_000,
    flows: 1_000,
};

/// 1,000 roles, 100k addresses (IPv4, IPv6, ranges, CIDRs), 10k flows.
///
/// ```
/// assert_eq!(microseg_benches::gen::SIZE_L.roles, 1_000);
/// ```
pub const SIZE_L: Size = Size {
    name: "L",
    roles: 1_000,
    addresses: 100_000,
    flows: 10_000,
};

/// The three sizes, smallest first.
///
/// ```
/// assert_eq!(microseg_benches::gen::SIZES.map(|s| s.name), ["S", "M", "L"]);
/// ```
pub const SIZES: [Size; 3] = [SIZE_S, SIZE_M, SIZE_L];

impl Size {
    /// The size named `S`, `M` or `L` (case-insensitive).
    ///
    /// ```
    /// assert_eq!(microseg_benches::gen::Size::named("m").unwrap().roles, 100);
    /// ```
    pub fn named(name: &str) -> Option<Size> {
        SIZES
            .into_iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
    }
}

/// The seed the benchmarks and the report use.
///
/// ```
/// assert_eq!(microseg_benches::gen::SEED, 2024);
/// ```
pub const SEED: u64 = 2024;

/// A small deterministic generator (SplitMix64).
///
/// ```
/// let mut r = microseg_benches::gen::Rng::new(1);
/// let a = r.below(10);
/// assert!(a < 10);
/// ```
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    ///
    /// ```
    /// let _ = microseg_benches::gen::Rng::new(42);
    /// ```
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    /// The next 64 random bits.
    ///
    /// ```
    /// let mut r = microseg_benches::gen::Rng::new(3);
    /// assert_ne!(r.next_u64(), r.next_u64());
    /// ```
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    ///
    /// ```
    /// let mut r = microseg_benches::gen::Rng::new(3);
    /// assert!(r.below(5) < 5);
    /// ```
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A number in `[0, 1)`.
    ///
    /// ```
    /// let mut r = microseg_benches::gen::Rng::new(3);
    /// let x = r.unit();
    /// assert!((0.0..1.0).contains(&x));
    /// ```
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A role index skewed to the first roles (`P(i) ~ u³`).
    fn skewed(&mut self, n: usize) -> usize {
        let u = self.unit();
        ((u * u * u) * n as f64) as usize % n
    }
}

/// The name of role `i` (and of its host group).
///
/// ```
/// assert_eq!(microseg_benches::gen::role_name(7), "r0007");
/// ```
pub fn role_name(i: usize) -> String {
    format!("r{i:04}")
}

/// The IPv4 block of role `i`: `10.0.0.0 + i * 1024`.
fn v4_base(i: usize) -> u32 {
    u32::from(Ipv4Addr::new(10, 0, 0, 0)) + (i as u32) * 1024
}

/// The IPv6 block of role `i`: `2001:db8:i::/64` (`i` < 65535).
fn v6_base(i: usize) -> u128 {
    (0x2001_0db8_u128 << 96) | ((i as u128 + 1) << 64)
}

const SERVICES: &[(&str, &[&str])] = &[
    ("http", &["tcp/80", "tcp/443"]),
    ("ssh", &["tcp/22"]),
    ("postgres", &["tcp/5432"]),
    ("mysql", &["tcp/3306"]),
    ("redis", &["tcp/6379"]),
    ("kafka", &["tcp/9092-9094"]),
    ("dns", &["udp/53", "tcp/53"]),
    ("ntp", &["udp/123"]),
    ("ldap", &["tcp/389", "tcp/636"]),
    ("smb", &["tcp/445", "udp/137-138"]),
    ("grpc", &["tcp/50051"]),
    ("amqp", &["tcp/5671-5672"]),
    ("metrics", &["tcp/9100", "tcp/9090"]),
    ("syslog", &["udp/514", "tcp/6514"]),
    ("backup", &["tcp/2500-3300"]),
    ("mongo", &["tcp/27017"]),
    ("elastic", &["tcp/9200", "tcp/9300"]),
    ("app", &["tcp/8080"]),
    ("app-tls", &["tcp/8443"]),
    ("rdp", &["tcp/3389"]),
];

/// The host group of role `i` with `n` entries.
fn hosts(rng: &mut Rng, i: usize, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    let (mut v4, mut v6) = (v4_base(i) + 1, v6_base(i) + 1);
    let v4_end = v4_base(i) + 1023;
    for _ in 0..n {
        let k = rng.below(100);
        if k < 85 && v4 + 24 < v4_end {
            let a = Ipv4Addr::from(v4);
            if k < 70 {
                out.push(a.to_string());
                v4 += 2;
            } else if k < 80 {
                let len = 2 + rng.below(12) as u32;
                out.push(format!("{a}-{}", Ipv4Addr::from(v4 + len - 1)));
                v4 += len + 1;
            } else {
                // A /30 or /29, aligned; the address after it stays free.
                let bits = if rng.below(2) == 0 { 2 } else { 3 };
                let size = 1u32 << bits;
                let start = (v4 + size - 1) & !(size - 1);
                out.push(format!("{}/{}", Ipv4Addr::from(start), 32 - bits));
                v4 = start + size + 1;
            }
        } else {
            let a = Ipv6Addr::from(v6);
            if k < 95 {
                out.push(a.to_string());
                v6 += 2;
            } else {
                let len = 2 + rng.below(30) as u128;
                out.push(format!("{a}-{}", Ipv6Addr::from(v6 + len - 1)));
                v6 += len + 1;
            }
        }
    }
    out
}

/// A random choice of one to three services.
fn services(rng: &mut Rng) -> Vec<String> {
    let n = 1 + rng.below(3);
    let mut v: Vec<String> = (0..n)
        .map(|_| SERVICES[rng.below(SERVICES.len())].0.to_string())
        .collect();
    v.sort();
    v.dedup();
    v
}

fn flow(from: OneOrMany, to: OneOrMany, services: Vec<String>) -> FlowDoc {
    FlowDoc {
        name: None,
        from,
        to,
        services,
        ports: Vec::new(),
        action: None,
        log: None,
    }
}

/// The synthetic policy of `size`, deterministic in `seed`.
///
/// ```
/// let doc = microseg_benches::gen::policy_doc(&microseg_benches::gen::SIZE_S, 1);
/// assert_eq!(doc.groups["r0000"].len(), 100);
/// ```
pub fn policy_doc(size: &Size, seed: u64) -> PolicyDoc {
    let mut rng = Rng::new(seed);
    let r = size.roles;
    let mut doc = PolicyDoc {
        version: 1,
        baseline: Some(BaselineDoc {
            icmp: Some(true),
            egress: Some(vec!["udp/53".into(), "tcp/443".into()]),
            log: None,
            default: None,
        }),
        ..PolicyDoc::default()
    };
    for (name, specs) in SERVICES {
        doc.services.insert(
            name.to_string(),
            specs.iter().map(|s| s.to_string()).collect(),
        );
    }
    let per_role = size.addresses / r;
    let extra = size.addresses % r;
    for i in 0..r {
        let n = per_role + usize::from(i < extra);
        doc.groups.insert(role_name(i), hosts(&mut rng, i, n));
        let egress = (rng.below(20) == 0).then(|| vec!["tcp/443".into(), "udp/123".into()]);
        doc.roles.insert(
            role_name(i),
            RoleDoc {
                hosts: None,
                egress,
            },
        );
    }
    // Infrastructure groups.
    let infra = |third: u8, n: u32, v6: u16| -> Vec<String> {
        let mut v: Vec<String> = (0..n)
            .map(|k| Ipv4Addr::new(172, 16, third, (2 * k + 1) as u8).to_string())
            .collect();
        v.push(format!("2001:db8:ffff:{v6:x}::/64"));
        v
    };
    doc.groups.insert("admins".into(), infra(1, 20, 1));
    doc.groups.insert("monitoring".into(), infra(2, 50, 2));
    doc.groups.insert("backup".into(), infra(3, 10, 3));
    doc.groups.insert("jump".into(), infra(4, 4, 4));
    for g in ["admins", "monitoring", "backup", "jump"] {
        doc.roles.insert(g.into(), RoleDoc::default());
    }
    // Zones: a group including up to a hundred roles' groups.
    let zones: Vec<String> = (0..r.div_ceil(100))
        .map(|z| format!("zone{z:02}"))
        .collect();
    for (z, name) in zones.iter().enumerate() {
        let members = (z * 100..((z + 1) * 100).min(r))
            .map(|i| format!("@{}", role_name(i)))
            .collect();
        doc.groups.insert(name.clone(), members);
    }
    let one = |s: String| OneOrMany::One(s);
    let role_list = |rng: &mut Rng, k: usize| {
        let mut v: Vec<String> = (0..k).map(|_| role_name(rng.below(r))).collect();
        v.sort();
        v.dedup();
        OneOrMany::Many(v)
    };
    let mut flows: Vec<FlowDoc> = Vec::with_capacity(size.flows);
    // The NTP hub: every zone may reach r0000.
    flows.push(flow(
        OneOrMany::Many(zones.clone()),
        one(role_name(0)),
        vec!["ntp".into()],
    ));
    while flows.len() < size.flows {
        let k = rng.below(100);
        let svc = services(&mut rng);
        let mut f = flow(one(String::new()), one(String::new()), svc);
        match k {
            0..=87 => {
                let a = rng.below(r);
                let mut b = rng.skewed(r);
                if a == b {
                    b = (b + 1) % r;
                }
                f.from = one(role_name(a));
                f.to = one(role_name(b));
                if rng.below(10) == 0 {
                    f.ports = vec![format!("tcp/{}", 10_000 + rng.below(20_000))];
                }
            }
            88..=90 => {
                f.from = one(zones[rng.below(zones.len())].clone());
                f.to = one(role_name(rng.skewed(r)));
            }
            91..=93 => {
                f.from = one("admins".into());
                let k = 5 + rng.below(20);
                f.to = role_list(&mut rng, k);
                f.services = vec!["ssh".into(), "rdp".into()];
            }
            94..=95 => {
                f.from = one("monitoring".into());
                let k = 5 + rng.below(40);
                f.to = role_list(&mut rng, k);
                f.services = vec!["metrics".into()];
            }
            96 if rng.below(4) == 0 => {
                // Internet-facing services: about one flow in 400.
                f.from = one("any".into());
                f.to = one(role_name(rng.below(r)));
                f.services = vec!["http".into()];
            }
            96..=97 => {
                f.from = one(zones[rng.below(zones.len())].clone());
                f.to = one(role_name(rng.skewed(r)));
                f.services = vec!["smb".into()];
                f.action = Some("deny".into());
            }
            _ => {
                f.from = one(role_name(rng.below(r)));
                f.to = one(if rng.below(2) == 0 {
                    "backup".into()
                } else {
                    "jump".into()
                });
                f.services = vec!["backup".into()];
                if rng.below(3) == 0 {
                    f.action = Some("reject".into());
                    f.log = Some(true);
                }
            }
        }
        flows.push(f);
    }
    for (i, f) in flows.iter_mut().enumerate() {
        f.name = Some(format!("f{i:05}"));
    }
    doc.flows = flows;
    doc
}

/// `doc` with `fraction` of its flows changed (deterministic in `seed`):
/// each picked flow gets another service or another destination.
///
/// ```
/// use microseg_benches::gen::{changed_flows, policy_doc, SIZE_S};
/// let a = policy_doc(&SIZE_S, 1);
/// let b = changed_flows(&a, 0.05, 2);
/// let differ = a.flows.iter().zip(&b.flows).filter(|(x, y)| x != y).count();
/// assert!(differ >= 1 && differ <= 5);
/// ```
pub fn changed_flows(doc: &PolicyDoc, fraction: f64, seed: u64) -> PolicyDoc {
    let mut rng = Rng::new(seed);
    let mut out = doc.clone();
    let n = ((doc.flows.len() as f64) * fraction).round().max(1.0) as usize;
    let roles: Vec<String> = doc.roles.keys().cloned().collect();
    for _ in 0..n {
        let i = 1 + rng.below(out.flows.len() - 1);
        let f = &mut out.flows[i];
        if rng.below(2) == 0 {
            f.ports = vec![format!("tcp/{}", 40_000 + rng.below(20_000))];
        } else {
            f.to = OneOrMany::One(roles[rng.below(roles.len())].clone());
        }
    }
    out
}

/// The document as JSON text (the input of the parse benchmarks).
///
/// ```
/// let doc = microseg_benches::gen::policy_doc(&microseg_benches::gen::SIZE_S, 1);
/// let text = microseg_benches::gen::to_json(&doc);
/// assert!(text.starts_with('{'));
/// ```
pub fn to_json(doc: &PolicyDoc) -> String {
    serde_json::to_string(doc).expect("policy documents serialise")
}

/// Per-role summary used by reports: how many flows name each role as `to`.
///
/// ```
/// let doc = microseg_benches::gen::policy_doc(&microseg_benches::gen::SIZE_S, 1);
/// let counts = microseg_benches::gen::inbound_counts(&doc);
/// assert!(counts["r0000"] >= 1);
/// ```
pub fn inbound_counts(doc: &PolicyDoc) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for f in &doc.flows {
        let names: Vec<&String> = match &f.to {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v.iter().collect(),
        };
        for n in names {
            *m.entry(n.clone()).or_insert(0) += 1;
        }
    }
    m
}
