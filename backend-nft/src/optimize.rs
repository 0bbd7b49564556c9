//! The optimised lowering: verdict maps over an exact partition, so that a
//! new connection meets a bounded number of rules and lookups whatever the
//! number of flows, sets and hosts.
//!
//! Per base chain (`input`, `output`), after the same leading rules as the
//! plain lowering (established/related, loopback, ICMPv6 neighbour
//! discovery) and before the same tail (drop log, counted default):
//!
//! ```text
//! ip saddr vmap { 10.0.3.4 : jump in4_0, 10.0.3.9 : jump in4_1, … }               # level 1
//! ip saddr vmap { 10.0.1.0/24 : jump in4_0, 10.0.2.7-10.0.2.9 : jump in4_1, … }
//! meta nfproto ipv4 jump in4_any                                                 # background
//! ip6 saddr vmap { 2001:db8::/64 : jump in6_0, … }
//! chain in4_0 {                                                                  # level 2
//!     meta l4proto . th dport vmap { tcp . 22 : jump f_admin-ssh, tcp . 80-81 : jump f_web,
//!                                    icmp . 0-65535 : jump b_icmp }
//! }
//! chain f_admin-ssh {                                                            # the flow
//!     counter accept comment "flow:admin-ssh"
//! }
//! ```
//!
//! * **Level 1** looks the *remote* address up (the source on input, the
//!   destination on output) in single-field maps per family: its elements
//!   are the intervals of the exact partition of that address space
//!   by every set the chain's rules match it against, each mapped to the
//!   chain of its class, single addresses in a map of their own (a hash,
//!   one probe), wider intervals in an interval map (an rbtree). Classes
//!   whose decisions are alike share a chain.
//!   Addresses in none of those sets (the background: only rules that do
//!   not restrict the remote address apply, such as baseline ICMP and
//!   egress) get no element; one `jump` after the lookup takes them, and
//!   every class that decides like the background, to the background
//!   chain. A class's rules include the background's, so a packet that
//!   misses in its class's chain misses in the background chain too: the
//!   fall-through after a miss changes nothing.
//! * **Level 2**, per class, looks up `meta l4proto . th dport` — prefixed by
//!   the host's *own* address (`ip daddr` on input, `ip saddr` on output)
//!   only where a rule of the class restricts it — in one concatenated
//!   interval map whose disjoint elements carry the first-match result of
//!   the plain rule list. ICMP elements span every `th dport` value (in an
//!   ICMP packet those bytes are the checksum), so the type never matters.
//! * A hit jumps to the chain of the deciding flow (`f_NAME`) or baseline
//!   item (`b_egress`, `b_icmp`), which logs under the rate limit if the flow
//!   says so, counts and decides, with the same comment as the plain rule:
//!   hit counters per flow stay exact and `status` reads them as before. A
//!   miss at either level falls through to the counted default.
//!
//! So a new connection costs at most: the leading rules, one hash and one
//! rbtree lookup (a single address listed as such: the hash lookup alone),
//! one jump and one pipapo lookup in a small map (plus, on a miss, the
//! background jump and lookup), one jump, a counter and the verdict;
//! independent of the number of flows and addresses.
//!
//! Trade-offs: the maps are anonymous (the `nftables` crate's schema cannot
//! declare a named verdict map), so a policy change replaces the table
//! instead of patching set elements, and counters restart then; rules are
//! per class, not per flow, so `nft list` reads less directly than the plain
//! lowering (the `# flow:` comments and per-flow chains remain).
//!
//! A chain whose IR rules interleave non-packet rules with packet rules (the
//! compiler never makes one) is lowered as in the plain lowering.

use crate::lower::{self, add, counter, interval, match_eq, meta, payload, string, Chain, Lowerer};
use crate::NftError;
use microseg_core::addr::Family;
use microseg_core::interval::IntervalSet;
use microseg_core::ir::{Direction, HostRuleset, Origin, ProtoMatch, Rule, RuleMatch};
use microseg_core::semantics::Verdict;
use nftables::expr::{Expression, MetaKey, NamedExpression, Range, SetItem, Verdict as VExpr};
use nftables::schema::{self, NfListObject, NfObject};
use nftables::stmt::{JumpTarget, Reject, RejectType, Statement, VerdictMap};
use nftables::types::NfFamily;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

/// The whole transaction of the optimised lowering.
pub(crate) fn lower(rs: &HostRuleset) -> Result<Vec<NfObject<'static>>, NftError> {
    lower::check_table_name(&rs.table)?;
    let lw = Lowerer {
        rs,
        log: lower::effective_log(rs)?,
    };
    let mut targets = Targets::default();
    let mut classes: Vec<(String, Vec<schema::Rule<'static>>)> = Vec::new();
    let mut base: Vec<(Chain, Vec<schema::Rule<'static>>)> = Vec::new();
    let mut need_sets = false;
    for (chain, dir) in [
        (Chain::Input, Direction::Input),
        (Chain::Output, Direction::Output),
    ] {
        let rules = rs.rules(dir);
        let split = rules
            .iter()
            .position(|r| matches!(r.matches, RuleMatch::Packet(_)))
            .unwrap_or(rules.len());
        let (lead, packet) = rules.split_at(split);
        let mut out = Vec::new();
        if packet
            .iter()
            .any(|r| !matches!(r.matches, RuleMatch::Packet(_)))
        {
            need_sets = true;
            for r in rules {
                out.extend(lw.rule(chain, r)?);
            }
        } else {
            for r in lead {
                out.extend(lw.rule(chain, r)?);
            }
            for fam in Family::BOTH {
                let d = Decision::build(rs, dir, fam, packet, &mut targets)?;
                d.emit(&lw, chain, &mut out, &mut classes);
            }
        }
        out.extend(lw.chain_tail(chain)?);
        base.push((chain, out));
    }
    base.push((Chain::Forward, lw.chain_tail(Chain::Forward)?));

    let mut objs = lower::table_commands(&rs.table);
    if need_sets {
        for set in rs.sets.values() {
            objs.push(add(NfListObject::Set(Box::new(lw.set(set)?))));
        }
    }
    for (name, rules) in targets.chains(&lw)? {
        objs.push(add(NfListObject::Chain(regular_chain(&lw, name))));
        objs.extend(rules.into_iter().map(|r| add(NfListObject::Rule(r))));
    }
    for (name, rules) in classes {
        objs.push(add(NfListObject::Chain(regular_chain(&lw, name))));
        objs.extend(rules.into_iter().map(|r| add(NfListObject::Rule(r))));
    }
    for (chain, _) in &base {
        objs.push(add(NfListObject::Chain(lw.base_chain(*chain))));
    }
    for (_, rules) in base {
        objs.extend(rules.into_iter().map(|r| add(NfListObject::Rule(r))));
    }
    Ok(objs)
}

// nft-syntax: chain in4_0 { … }
fn regular_chain(lw: &Lowerer, name: String) -> schema::Chain<'static> {
    schema::Chain {
        family: NfFamily::INet,
        table: lw.table(),
        name: Cow::Owned(name),
        newname: None,
        handle: None,
        _type: None,
        hook: None,
        prio: None,
        dev: None,
        policy: None,
    }
}

/// What a decided connection meets: the chain of one flow or baseline item.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct TargetKey {
    label: String,
    name: String,
    verdict: Verdict,
    log: bool,
}

/// The target chains, in order of first use.
#[derive(Debug, Default)]
struct Targets {
    ids: HashMap<TargetKey, u32>,
    keys: Vec<(TargetKey, String)>,
}

impl Targets {
    fn id(&mut self, rule: &Rule) -> u32 {
        let (name, prefix) = match &rule.origin {
            Origin::Flow { name, .. } => (name.clone(), "f_"),
            Origin::Baseline { what } => (what.clone(), "b_"),
        };
        let key = TargetKey {
            label: rule.origin.label(),
            name: name.clone(),
            verdict: rule.verdict,
            log: rule.log,
        };
        if let Some(&id) = self.ids.get(&key) {
            return id;
        }
        let mut chain = format!("{prefix}{name}");
        let mut n = 1;
        while self.keys.iter().any(|(_, c)| *c == chain) {
            n += 1;
            chain = format!("{prefix}{name}_{n}");
        }
        let id = self.keys.len() as u32;
        self.ids.insert(key.clone(), id);
        self.keys.push((key, chain));
        id
    }

    /// Every target chain with its rules: the log rule when flagged, then
    /// the counted verdict (TCP resets for reject), all with the label.
    fn chains(&self, lw: &Lowerer) -> Result<Vec<(String, Vec<schema::Rule<'static>>)>, NftError> {
        let mut out = Vec::new();
        for (key, chain) in &self.keys {
            let name = || Cow::Owned(chain.clone());
            let label = || Some(key.label.clone());
            let mut rules = Vec::new();
            if key.log {
                // nft-syntax: limit rate 10/second burst 5 packets log prefix "microseg web: "
                let prefix = format!("{} {}: ", lw.log.prefix, key.name);
                rules.push(lw.rule_in(name(), vec![lw.limit(), lw.log_stmt(prefix)?], label()));
            }
            match key.verdict {
                Verdict::Reject => {
                    // nft-syntax: meta l4proto tcp counter reject with tcp reset
                    rules.push(lw.rule_in(
                        name(),
                        vec![
                            match_eq(meta(MetaKey::L4proto), string("tcp")),
                            counter(),
                            Statement::Reject(Some(Reject::new(Some(RejectType::TCPReset), None))),
                        ],
                        label(),
                    ));
                    // nft-syntax: counter reject
                    rules.push(lw.rule_in(
                        name(),
                        vec![counter(), Statement::Reject(None)],
                        label(),
                    ));
                }
                // nft-syntax: counter accept|drop
                v => rules.push(lw.rule_in(
                    name(),
                    vec![counter(), lower::verdict(v, false)],
                    label(),
                )),
            }
            out.push((chain.clone(), rules));
        }
        Ok(out)
    }
}

/// A packet rule of one family, with its address sets as `u128` intervals.
struct FRule<'a> {
    remote: Option<&'a [(u128, u128)]>,
    own: Option<&'a [(u128, u128)]>,
    proto: &'a ProtoMatch,
    target: u32,
}

/// Interned things, by first appearance.
struct Interner<K> {
    ids: HashMap<K, u32>,
    items: Vec<K>,
}

impl<K: std::hash::Hash + Eq + Clone> Interner<K> {
    fn new() -> Self {
        Interner {
            ids: HashMap::new(),
            items: Vec::new(),
        }
    }

    fn id(&mut self, k: &K) -> u32 {
        if let Some(&id) = self.ids.get(k) {
            return id;
        }
        let id = self.items.len() as u32;
        self.ids.insert(k.clone(), id);
        self.items.push(k.clone());
        id
    }
}

/// An exact partition of `0..=max` by rule sets: segments (merged when
/// adjacent and of one class) and, per class, the rules whose set holds it.
struct Partition {
    segs: Vec<(u128, u128, u32)>,
    classes: Vec<Vec<u32>>,
}

fn partition<'a>(max: u128, items: impl Iterator<Item = (u32, &'a [(u128, u128)])>) -> Partition {
    let mut ev: Vec<(u128, u32, bool)> = Vec::new();
    for (rule, ranges) in items {
        for &(lo, hi) in ranges {
            ev.push((lo, rule, true));
            if hi < max {
                ev.push((hi + 1, rule, false));
            }
        }
    }
    ev.sort_unstable();
    let mut interner: Interner<Vec<u32>> = Interner::new();
    let mut active: Vec<u32> = Vec::new();
    let mut segs: Vec<(u128, u128, u32)> = Vec::new();
    let push =
        |segs: &mut Vec<(u128, u128, u32)>, lo: u128, hi: u128, class: u32| match segs.last_mut() {
            Some(last) if last.2 == class && last.1 + 1 == lo => last.1 = hi,
            _ => segs.push((lo, hi, class)),
        };
    let mut start = 0u128;
    let mut k = 0;
    loop {
        let Some(&(p, _, _)) = ev.get(k) else {
            let c = interner.id(&active);
            push(&mut segs, start, max, c);
            break;
        };
        if p > start {
            let c = interner.id(&active);
            push(&mut segs, start, p - 1, c);
            start = p;
        }
        while let Some(&(q, rule, add)) = ev.get(k) {
            if q != p {
                break;
            }
            match (active.binary_search(&rule), add) {
                (Err(i), true) => active.insert(i, rule),
                (Ok(i), false) => {
                    active.remove(i);
                }
                // A rule's intervals are disjoint and not adjacent: cannot happen.
                _ => {}
            }
            k += 1;
        }
    }
    Partition {
        segs,
        classes: interner.items,
    }
}

/// First-match results over TCP ports, UDP ports and ICMP, by target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct PortTable {
    tcp: Vec<(u16, u16, u32)>,
    udp: Vec<(u16, u16, u32)>,
    icmp: Option<u32>,
}

impl PortTable {
    fn of<'a>(rules: impl Iterator<Item = &'a FRule<'a>>) -> PortTable {
        let (mut ct, mut cu) = (IntervalSet::<u16>::new(), IntervalSet::<u16>::new());
        let mut t = PortTable::default();
        for r in rules {
            let (claimed, out, set) = match r.proto {
                ProtoMatch::Tcp(s) => (&mut ct, &mut t.tcp, s),
                ProtoMatch::Udp(s) => (&mut cu, &mut t.udp, s),
                ProtoMatch::Icmp | ProtoMatch::Icmpv6 => {
                    t.icmp.get_or_insert(r.target);
                    continue;
                }
            };
            for &(lo, hi) in set.difference(claimed).ranges() {
                out.push((lo, hi, r.target));
            }
            *claimed = claimed.union(set);
        }
        for v in [&mut t.tcp, &mut t.udp] {
            v.sort_unstable();
            let mut merged: Vec<(u16, u16, u32)> = Vec::with_capacity(v.len());
            for &(lo, hi, id) in v.iter() {
                match merged.last_mut() {
                    Some(last) if last.2 == id && u32::from(last.1) + 1 == u32::from(lo) => {
                        last.1 = hi
                    }
                    _ => merged.push((lo, hi, id)),
                }
            }
            *v = merged;
        }
        t
    }

    fn is_empty(&self) -> bool {
        self.tcp.is_empty() && self.udp.is_empty() && self.icmp.is_none()
    }
}

/// The level-2 decision of one class of remote addresses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Level2 {
    /// The host's own address does not matter.
    Ports(PortTable),
    /// Per group of own-address intervals (disjoint), a port table.
    Own(Vec<(Vec<(u128, u128)>, PortTable)>),
}

/// The decision structure of one chain and family.
struct Decision {
    dir: Direction,
    fam: Family,
    /// Level 1: remote intervals → level-2 chain index.
    level1: Vec<(u128, u128, u32)>,
    /// Level 2 chains: (name, decision, target chain names).
    level2: Vec<(String, Level2)>,
    /// The chain of remote addresses in no class, if it decides anything.
    background: Option<(String, Level2)>,
    /// Target ids → chain names.
    target_names: Vec<String>,
}

fn ranges_of(fam: Family, s: &microseg_core::addr::AddrSet) -> Vec<(u128, u128)> {
    match fam {
        Family::V4 => {
            s.v4.ranges()
                .iter()
                .map(|&(a, b)| (u128::from(a), u128::from(b)))
                .collect()
        }
        Family::V6 => s.v6.ranges().to_vec(),
    }
}

fn max_of(fam: Family) -> u128 {
    match fam {
        Family::V4 => u128::from(u32::MAX),
        Family::V6 => u128::MAX,
    }
}

impl Decision {
    fn build(
        rs: &HostRuleset,
        dir: Direction,
        fam: Family,
        rules: &[Rule],
        targets: &mut Targets,
    ) -> Result<Decision, NftError> {
        // The sets as u128 intervals, converted once per set.
        let mut cache: HashMap<&str, Vec<(u128, u128)>> = HashMap::new();
        struct Pre {
            src: Option<String>,
            dst: Option<String>,
            idx: usize,
        }
        let mut pre = Vec::new();
        for (idx, r) in rules.iter().enumerate() {
            let RuleMatch::Packet(m) = &r.matches else {
                unreachable!("only packet rules reach the decision")
            };
            let label = r.origin.label();
            if let ProtoMatch::Tcp(s) | ProtoMatch::Udp(s) = &m.proto {
                if s.is_empty() {
                    return Err(NftError::EmptyPorts { rule: label });
                }
            }
            let rule_fam = m.family.or(m.proto.family());
            let mut applies = rule_fam.is_none_or(|f| f == fam);
            for name in [&m.src, &m.dst].into_iter().flatten() {
                let set = rs.sets.get(name).ok_or_else(|| NftError::UnknownSet {
                    set: name.clone(),
                    rule: label.clone(),
                })?;
                if rule_fam.is_some_and(|f| f != set.family) {
                    return Err(NftError::SetFamily {
                        set: name.clone(),
                        rule: label.clone(),
                    });
                }
                // `ip saddr @x_v4` never matches an IPv6 packet.
                applies &= set.family == fam;
                if applies {
                    cache
                        .entry(name.as_str())
                        .or_insert_with(|| ranges_of(fam, &set.addrs));
                }
            }
            if applies {
                pre.push(Pre {
                    src: m.src.clone(),
                    dst: m.dst.clone(),
                    idx,
                });
            }
        }
        let frules: Vec<FRule> = pre
            .iter()
            .map(|p| {
                let r = &rules[p.idx];
                let RuleMatch::Packet(m) = &r.matches else {
                    unreachable!()
                };
                let src = p.src.as_deref().map(|n| cache[n].as_slice());
                let dst = p.dst.as_deref().map(|n| cache[n].as_slice());
                let (remote, own) = match dir {
                    Direction::Input => (src, dst),
                    Direction::Output => (dst, src),
                };
                FRule {
                    remote,
                    own,
                    proto: &m.proto,
                    target: targets.id(r),
                }
            })
            .collect();
        let max = max_of(fam);
        let part = partition(
            max,
            frules
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.remote.map(|s| (i as u32, s))),
        );
        let always: Vec<u32> = (0..frules.len() as u32)
            .filter(|&i| frules[i as usize].remote.is_none())
            .collect();
        // The background: remote addresses in none of the rules' remote
        // sets meet only the rules that do not restrict the remote address.
        // A class's rules include those, so where a class's chain finds
        // nothing, the background finds nothing either: classes that decide
        // like the background need no level-1 element, the background is
        // one jump after the level-1 lookup, and falling through to it after
        // a class's miss changes nothing.
        let background = level2(&frules, &always, max);
        let background = match &background {
            Level2::Ports(t) if t.is_empty() => None,
            Level2::Own(groups) if groups.is_empty() => None,
            _ => Some(background),
        };
        let mut tables: Interner<Level2> = Interner::new();
        let mut class_table: Vec<Option<u32>> = Vec::with_capacity(part.classes.len());
        for active in &part.classes {
            if active.is_empty() {
                class_table.push(None);
                continue;
            }
            let mut applicable: Vec<u32> = active.iter().chain(&always).copied().collect();
            applicable.sort_unstable();
            let l2 = level2(&frules, &applicable, max);
            let same_as_background = background.as_ref() == Some(&l2);
            class_table.push(match &l2 {
                _ if same_as_background => None,
                Level2::Ports(t) if t.is_empty() => None,
                Level2::Own(groups) if groups.is_empty() => None,
                _ => Some(tables.id(&l2)),
            });
        }
        let mut level1: Vec<(u128, u128, u32)> = Vec::new();
        for &(lo, hi, class) in &part.segs {
            let Some(t) = class_table[class as usize] else {
                continue;
            };
            match level1.last_mut() {
                Some(last) if last.2 == t && last.1 + 1 == lo => last.1 = hi,
                _ => level1.push((lo, hi, t)),
            }
        }
        let prefix = match (dir, fam) {
            (Direction::Input, Family::V4) => "in4",
            (Direction::Input, Family::V6) => "in6",
            (Direction::Output, Family::V4) => "out4",
            (Direction::Output, Family::V6) => "out6",
        };
        let level2 = tables
            .items
            .into_iter()
            .enumerate()
            .map(|(i, t)| (format!("{prefix}_{i}"), t))
            .collect();
        Ok(Decision {
            dir,
            fam,
            level1,
            level2,
            background: background.map(|t| (format!("{prefix}_any"), t)),
            target_names: targets.keys.iter().map(|(_, c)| c.clone()).collect(),
        })
    }

    fn show(&self, x: u128) -> String {
        match self.fam {
            Family::V4 => lower::ipv4_text(x as u32),
            Family::V6 => crate::addr_text::ipv6_text(x),
        }
    }

    fn addr(&self, lo: u128, hi: u128) -> Expression<'static> {
        let bits = match self.fam {
            Family::V4 => 32,
            Family::V6 => 128,
        };
        interval(lo, hi, bits, |x| self.show(x))
    }

    fn addr_payload(&self, remote: bool) -> Expression<'static> {
        let proto = match self.fam {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        };
        let src = (self.dir == Direction::Input) == remote;
        payload(proto, if src { "saddr" } else { "daddr" })
    }

    fn jump(&self, target: u32) -> Expression<'static> {
        Expression::Verdict(VExpr::Jump(JumpTarget {
            target: Cow::Owned(self.target_names[target as usize].clone()),
        }))
    }

    /// `tcp . 22`, `udp . 1000-2000`, `icmp . 0-65535` entries of a port table.
    fn port_entries(&self, t: &PortTable) -> Vec<([Expression<'static>; 2], u32)> {
        let port = |lo: u16, hi: u16| {
            if lo == hi {
                Expression::Number(u32::from(lo))
            } else {
                Expression::Range(Box::new(Range {
                    range: [
                        Expression::Number(u32::from(lo)),
                        Expression::Number(u32::from(hi)),
                    ],
                }))
            }
        };
        let mut out = Vec::new();
        for (name, v) in [("tcp", &t.tcp), ("udp", &t.udp)] {
            for &(lo, hi, id) in v {
                out.push(([string(name), port(lo, hi)], id));
            }
        }
        if let Some(id) = t.icmp {
            let name = match self.fam {
                Family::V4 => "icmp",
                Family::V6 => "ipv6-icmp",
            };
            out.push(([string(name), port(0, 65535)], id));
        }
        out
    }

    fn emit(
        &self,
        lw: &Lowerer,
        chain: Chain,
        base: &mut Vec<schema::Rule<'static>>,
        classes: &mut Vec<(String, Vec<schema::Rule<'static>>)>,
    ) {
        // nft-syntax: ip saddr vmap { 10.0.0.7 : jump in4_0, … }
        // nft-syntax: ip saddr vmap { 10.0.0.0/24 : jump in4_0, 10.0.2.7-10.0.2.9 : jump in4_1, … }
        // Single addresses in a map of their own, which nft makes a hash
        // (one probe), the intervals in an interval map (an rbtree, whose
        // lookups cost a walk over its depth): the partition is exact, so
        // an address is in at most one of the two, and one that misses the
        // first after a miss in its class's chain misses the second too.
        let item = |&(lo, hi, t): &(u128, u128, u32)| {
            SetItem::Mapping(
                self.addr(lo, hi),
                Expression::Verdict(VExpr::Jump(JumpTarget {
                    target: Cow::Owned(self.level2[t as usize].0.clone()),
                })),
            )
        };
        let (single, wide): (Vec<_>, Vec<_>) = self.level1.iter().partition(|(lo, hi, _)| lo == hi);
        for part in [single, wide] {
            if !part.is_empty() {
                base.push(lw.rule_in(
                    Cow::Borrowed(chain.name()),
                    vec![vmap(
                        self.addr_payload(true),
                        part.into_iter().map(item).collect(),
                    )],
                    None,
                ));
            }
        }
        if let Some((name, _)) = &self.background {
            // nft-syntax: meta nfproto ipv4 jump in4_any
            let nfproto = match self.fam {
                Family::V4 => "ipv4",
                Family::V6 => "ipv6",
            };
            base.push(lw.rule_in(
                Cow::Borrowed(chain.name()),
                vec![
                    match_eq(meta(MetaKey::Nfproto), string(nfproto)),
                    Statement::Jump(JumpTarget {
                        target: Cow::Owned(name.clone()),
                    }),
                ],
                None,
            ));
        }
        for (name, l2) in self.level2.iter().chain(&self.background) {
            let l4 = || meta(MetaKey::L4proto);
            let dport = || payload("th", "dport");
            let (key, items): (Expression<'static>, Vec<SetItem<'static>>) = match l2 {
                // nft-syntax: meta l4proto . th dport vmap { tcp . 22 : jump f_ssh, … }
                Level2::Ports(t) => (
                    concat(vec![l4(), dport()]),
                    self.port_entries(t)
                        .into_iter()
                        .map(|([p, d], id)| SetItem::Mapping(concat(vec![p, d]), self.jump(id)))
                        .collect(),
                ),
                // nft-syntax: ip daddr . meta l4proto . th dport vmap { 10.0.0.5 . tcp . 22 : jump f_ssh, … }
                Level2::Own(groups) => {
                    let mut items = Vec::new();
                    for (own, t) in groups {
                        let entries = self.port_entries(t);
                        for &(lo, hi) in own {
                            for ([p, d], id) in &entries {
                                items.push(SetItem::Mapping(
                                    concat(vec![self.addr(lo, hi), p.clone(), d.clone()]),
                                    self.jump(*id),
                                ));
                            }
                        }
                    }
                    (concat(vec![self.addr_payload(false), l4(), dport()]), items)
                }
            };
            let rule = lw.rule_in(Cow::Owned(name.clone()), vec![vmap(key, items)], None);
            classes.push((name.clone(), vec![rule]));
        }
    }
}

fn concat(v: Vec<Expression<'static>>) -> Expression<'static> {
    Expression::Named(NamedExpression::Concat(v))
}

fn vmap(key: Expression<'static>, items: Vec<SetItem<'static>>) -> Statement<'static> {
    Statement::VerdictMap(VerdictMap {
        key,
        data: Expression::Named(NamedExpression::Set(items)),
    })
}

/// The level-2 decision for the rules `applicable` (indices in rule order).
fn level2(rules: &[FRule], applicable: &[u32], max: u128) -> Level2 {
    let own: Vec<(u32, &[(u128, u128)])> = applicable
        .iter()
        .filter_map(|&i| rules[i as usize].own.map(|s| (i, s)))
        .collect();
    if own.is_empty() {
        return Level2::Ports(PortTable::of(
            applicable.iter().map(|&i| &rules[i as usize]),
        ));
    }
    let part = partition(max, own.into_iter());
    let tables: Vec<PortTable> = part
        .classes
        .iter()
        .map(|active| {
            PortTable::of(applicable.iter().filter_map(|&i| {
                let r = &rules[i as usize];
                (r.own.is_none() || active.binary_search(&i).is_ok()).then_some(r)
            }))
        })
        .collect();
    let mut groups: BTreeMap<&PortTable, Vec<(u128, u128)>> = BTreeMap::new();
    for &(lo, hi, class) in &part.segs {
        let v = groups.entry(&tables[class as usize]).or_default();
        match v.last_mut() {
            Some(last) if last.1 + 1 == lo => last.1 = hi,
            _ => v.push((lo, hi)),
        }
    }
    if groups.len() == 1 {
        let (t, v) = groups.iter().next().expect("one group");
        if v.as_slice() == [(0, max)] {
            return Level2::Ports((*t).clone());
        }
    }
    Level2::Own(
        groups
            .into_iter()
            .filter(|(t, _)| !t.is_empty())
            .map(|(t, v)| (v, t.clone()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_is_exact_and_merged() {
        let a = [(10u128, 19u128), (30, 30)];
        let b = [(15u128, 40u128)];
        let p = partition(100, [(0u32, &a[..]), (1, &b[..])].into_iter());
        let class = |x: u128| {
            let &(_, _, c) = p.segs.iter().find(|s| s.0 <= x && x <= s.1).unwrap();
            p.classes[c as usize].clone()
        };
        assert_eq!(class(0), Vec::<u32>::new());
        assert_eq!(class(10), [0]);
        assert_eq!(class(15), [0, 1]);
        assert_eq!(class(20), [1]);
        assert_eq!(class(30), [0, 1]);
        assert_eq!(class(41), Vec::<u32>::new());
        assert_eq!(p.segs.first().unwrap().0, 0);
        assert_eq!(p.segs.last().unwrap().1, 100);
        for w in p.segs.windows(2) {
            assert_eq!(w[0].1 + 1, w[1].0);
            assert_ne!(w[0].2, w[1].2, "adjacent segments of one class are merged");
        }
        // Up to the end of the space.
        let c = [(90u128, 100u128)];
        let p = partition(100, [(0u32, &c[..])].into_iter());
        assert_eq!(p.segs, [(0, 89, 0), (90, 100, 1)]);
    }

    #[test]
    fn port_tables_first_match_and_merge() {
        let tcp = |r: &[(u16, u16)]| ProtoMatch::Tcp(IntervalSet::from_ranges(r.iter().copied()));
        let (a, b) = (tcp(&[(20, 30)]), tcp(&[(25, 40), (41, 41)]));
        let rules = [
            FRule {
                remote: None,
                own: None,
                proto: &a,
                target: 0,
            },
            FRule {
                remote: None,
                own: None,
                proto: &b,
                target: 1,
            },
            FRule {
                remote: None,
                own: None,
                proto: &ProtoMatch::Icmp,
                target: 2,
            },
        ];
        let t = PortTable::of(rules.iter());
        assert_eq!(t.tcp, [(20, 30, 0), (31, 41, 1)]);
        assert_eq!(t.icmp, Some(2));
    }
}
