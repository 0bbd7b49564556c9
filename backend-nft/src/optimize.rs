//! The optimised lowering: verdict maps over an exact partition, so that a
//! new connection meets a bounded number of rules and lookups whatever the
//! number of flows, sets and hosts.
//!
//! Per base chain (`input`, `output`), after the same leading rules as the
//! plain lowering (established/related, loopback, ICMPv6 neighbour
//! discovery) and before the same tail (drop log, counted default):
//!
//! ```text
//! map in4_single { type ipv4_addr : verdict                                        # level 1
//!     elements = { 10.0.3.4 : jump in4_5d0c…, 10.0.3.9 : jump in4_a41e…, … } }
//! map in4_range { type ipv4_addr : verdict; flags interval
//!     elements = { 10.0.1.0/24 : jump in4_5d0c…, 10.0.2.7-10.0.2.9 : jump in4_a41e…, … } }
//! chain input { …
//!     ip saddr vmap @in4_single
//!     ip saddr vmap @in4_range
//!     meta nfproto ipv4 jump in4_any                                             # background
//!     ip6 saddr vmap @in6_single
//!     …
//! }
//! chain in4_5d0c… {                                                              # level 2
//!     meta l4proto . th dport vmap { tcp . 22 : jump f_admin-ssh, tcp . 80-81 : jump f_web,
//!                                    icmp . 0-65535 : jump b_icmp }
//! }
//! chain f_admin-ssh {                                                            # the flow
//!     counter accept comment "flow:admin-ssh"
//! }
//! ```
//!
//! * **Level 1** looks the *remote* address up (the source on input, the
//!   destination on output) in named single-field verdict maps per family:
//!   their elements are the intervals of the exact partition of that
//!   address space by every set the chain's rules match it against, each
//!   mapped to the chain of its class, single addresses in a map of their
//!   own (`_single`, a hash of fixed size, see `single_map_size`: one
//!   probe), wider intervals in an interval map (`_range`, an rbtree).
//!   Classes whose decisions are alike share a chain, named by a digest of
//!   what it decides (`in4_` and 16 hex digits), so that names do not
//!   depend on where in the address space a class lies.
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
//! **Membership changes.** The maps are named and the chains named by
//! content, so a change of members that needs no new decision (the usual
//! one: an address joins or leaves a group whose members already decide
//! alike) is a change of map elements only: rules, counters and
//! established connections stay. [`level1_after`] works it out from the
//! old maps and the old members by partitioning again only the addresses
//! whose membership changed, widened to the old elements they touch (see
//! [`windows`]); `tests/member_props.rs` checks it against a full
//! lowering.
//!
//! Trade-off: rules are per class, not per flow, so `nft list` reads less
//! directly than the plain lowering (the `# flow:` comments and per-flow
//! chains remain).
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
use nftables::schema::{self, NfListObject, NfObject, SetFlag, SetType, SetTypeValue};
use nftables::stmt::{JumpTarget, Reject, RejectType, Statement, VerdictMap};
use nftables::types::NfFamily;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A fast, non-cryptographic hasher for the lowering's own maps (keys are
/// the policy's names and numbers, never attacker-chosen in bulk): FxHash's
/// multiply-rotate, a word at a time.
#[derive(Default, Clone, Copy)]
struct Fx(u64);

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0; 8];
            w.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
        for &b in chunks.remainder() {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type HashMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<Fx>>;
type HashSet<K> = std::collections::HashSet<K, BuildHasherDefault<Fx>>;

/// The whole transaction of the optimised lowering.
pub(crate) fn lower(rs: &HostRuleset) -> Result<Vec<NfObject<'static>>, NftError> {
    lower::check_table_name(&rs.table)?;
    let lw = Lowerer {
        rs,
        log: lower::effective_log(rs)?,
    };
    let mut targets = Targets::default();
    let mut classes: Vec<(String, Vec<schema::Rule<'static>>)> = Vec::new();
    let mut maps: Vec<schema::Map<'static>> = Vec::new();
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
                d.emit(&lw, chain, &mut out, &mut classes, &mut maps);
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
    // After the chains their elements jump to.
    for m in maps {
        objs.push(add(NfListObject::Map(Box::new(m))));
    }
    for (chain, _) in &base {
        objs.push(add(NfListObject::Chain(lw.base_chain(*chain))));
    }
    for (_, rules) in base {
        objs.extend(rules.into_iter().map(|r| add(NfListObject::Rule(r))));
    }
    Ok(objs)
}

/// The packet rules of a chain (after its leading rules), `None` when
/// non-packet rules follow packet rules (lowered as in the plain lowering).
pub(crate) fn packet_rules(rules: &[Rule]) -> Option<&[Rule]> {
    let split = rules
        .iter()
        .position(|r| matches!(r.matches, RuleMatch::Packet(_)))
        .unwrap_or(rules.len());
    let packet = &rules[split..];
    packet
        .iter()
        .all(|r| matches!(r.matches, RuleMatch::Packet(_)))
        .then_some(packet)
}

/// One level-1 verdict map of the optimised lowering: its elements are
/// `(first, last, digest)`, the digest naming the level-2 chain the
/// element jumps to (`<prefix>_<digest as 16 hex digits>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Level1Map {
    /// The map (`in4_single`, `in4_range`, `out6_single`…).
    pub name: String,
    /// The address family of its keys.
    pub family: Family,
    /// Whether it has the interval flag (`_range`) or holds single
    /// addresses (`_single`, a hash).
    pub interval: bool,
    /// The elements, sorted, disjoint.
    pub elems: Vec<(u128, u128, u64)>,
}

impl Level1Map {
    /// The chain an element's digest names.
    pub fn chain(&self, digest: u64) -> String {
        let prefix = self
            .name
            .rsplit_once('_')
            .map_or(self.name.as_str(), |(p, _)| p);
        chain_name(prefix, digest)
    }
}

/// The two maps of a decision from its level-1 elements.
fn maps_of(
    prefix: &str,
    fam: Family,
    elems: impl Iterator<Item = (u128, u128, u64)>,
) -> [Level1Map; 2] {
    let (single, range): (Vec<_>, Vec<_>) = elems.partition(|(lo, hi, _)| lo == hi);
    [
        Level1Map {
            name: map_name(prefix, MapKind::Single),
            family: fam,
            interval: false,
            elems: single,
        },
        Level1Map {
            name: map_name(prefix, MapKind::Range),
            family: fam,
            interval: true,
            elems: range,
        },
    ]
}

/// The level-1 maps the optimised lowering writes for `rs`; `None` when
/// it writes named sets too (a chain interleaves non-packet rules) or
/// names a decision's chains by their order (see [`Decision::build`]).
pub(crate) fn level1_maps(rs: &HostRuleset) -> Result<Option<Vec<Level1Map>>, NftError> {
    let mut targets = Targets::default();
    let mut out = Vec::new();
    for dir in [Direction::Input, Direction::Output] {
        let Some(packet) = packet_rules(rs.rules(dir)) else {
            return Ok(None);
        };
        for fam in Family::BOTH {
            let d = Decision::build(rs, dir, fam, packet, &mut targets)?;
            if !d.remote {
                continue;
            }
            let Some(h) = &d.hashes else {
                return Ok(None);
            };
            out.extend(maps_of(
                d.prefix,
                fam,
                d.level1.iter().map(|&(lo, hi, t)| (lo, hi, h[t as usize])),
            ));
        }
    }
    Ok(Some(out))
}

/// The level-1 maps of `rs` and what changed in them, from the maps
/// `old` of a ruleset of the same rules (equal
/// [`member_structure`](crate::members::member_structure)) whose sets had
/// the members `old_sets` gives (by set name, as `u128` intervals).
///
/// Only the addresses whose membership changed, widened to the old
/// elements they touch, are partitioned again: elsewhere every address
/// meets the same rules as before, so its element stays. `None` when the
/// change is not one of level-1 elements alone: a set of the host's own
/// addresses changed (level 2 depends on it), a class now decides what no
/// chain of the old ruleset decides, or a chain is no longer used.
pub(crate) fn level1_after(
    rs: &HostRuleset,
    old_sets: &dyn Fn(&str) -> Option<OldSet>,
    old: &[Level1Map],
) -> Result<Option<Vec<MapChange>>, NftError> {
    let mut targets = Targets::default();
    let mut changes = Vec::new();
    // The old maps of the decisions seen.
    let mut maps = 0;
    let index = set_index(rs);
    // Each set's old members, asked once.
    let mut asked: HashMap<&str, Option<OldSet>> = HashMap::default();
    for dir in [Direction::Input, Direction::Output] {
        let Some(packet) = packet_rules(rs.rules(dir)) else {
            return Ok(None);
        };
        for fam in Family::BOTH {
            let pre = prepare(&index, fam, packet)?;
            // The addresses whose membership in a remote set changed; a
            // change of the host's own sets changes level 2 (and the
            // background chain).
            let mut affected: Vec<(u128, u128)> = Vec::new();
            let mut seen: HashSet<(&str, bool)> = HashSet::default();
            let mut remote = false;
            for p in &pre {
                let (r, own) = match dir {
                    Direction::Input => (p.src, p.dst),
                    Direction::Output => (p.dst, p.src),
                };
                remote |= r.is_some();
                for (name, is_remote) in [(r, true), (own, false)] {
                    let Some(name) = name else { continue };
                    if !seen.insert((name, is_remote)) {
                        continue;
                    }
                    let before = match asked.entry(name).or_insert_with(|| old_sets(name)) {
                        None => return Ok(None),
                        Some(OldSet::Unchanged) => continue,
                        Some(OldSet::Was(before)) => before,
                    };
                    let now = ranges_of(fam, &index[name].addrs);
                    if *before != now {
                        if !is_remote {
                            return Ok(None);
                        }
                        // Every address in exactly one of the two is in an
                        // interval one of them lacks as such.
                        let (a, b) = sorted_difference(before, &now);
                        affected.extend(a);
                        affected.extend(b);
                    }
                }
            }
            if !remote {
                for p in &pre {
                    targets.id(p.rule);
                }
                continue;
            }
            let prefix = prefix_of(dir, fam);
            let find = |kind| old.iter().find(|m| m.name == map_name(prefix, kind));
            let (Some(os), Some(or)) = (find(MapKind::Single), find(MapKind::Range)) else {
                return Ok(None);
            };
            maps += 2;
            if affected.is_empty() {
                // Nothing this decision looks at changed: its maps stay
                // (its targets are still counted, in order).
                for p in &pre {
                    targets.id(p.rule);
                }
                continue;
            }
            // Own sets as intervals (level 2 reads them); remote sets are
            // read where they meet a window, in their own form.
            let mut own_sets: HashMap<&str, Vec<(u128, u128)>> = HashMap::default();
            let mut remote_ids: HashMap<&str, u32> = HashMap::default();
            let mut remote_sets: Vec<&str> = Vec::new();
            let mut rules_of_set: Vec<Vec<u32>> = Vec::new();
            for (i, p) in pre.iter().enumerate() {
                let (r, own) = match dir {
                    Direction::Input => (p.src, p.dst),
                    Direction::Output => (p.dst, p.src),
                };
                if let Some(n) = own {
                    own_sets
                        .entry(n)
                        .or_insert_with(|| ranges_of(fam, &index[n].addrs));
                }
                if let Some(n) = r {
                    let id = *remote_ids.entry(n).or_insert_with(|| {
                        remote_sets.push(n);
                        rules_of_set.push(Vec::new());
                        remote_sets.len() as u32 - 1
                    });
                    rules_of_set[id as usize].push(i as u32);
                }
            }
            // The classifier asks only whether a rule restricts the remote
            // address: an empty list marks those that do.
            const RESTRICTS: &[(u128, u128)] = &[];
            let fr: Vec<FRule> = pre
                .iter()
                .map(|p| {
                    let (r, own) = match dir {
                        Direction::Input => (p.src, p.dst),
                        Direction::Output => (p.dst, p.src),
                    };
                    FRule {
                        remote: r.map(|_| RESTRICTS),
                        own: own.map(|n| own_sets[n].as_slice()),
                        proto: p.proto,
                        target: targets.id(p.rule),
                    }
                })
                .collect();
            let max = max_of(fam);
            let two = Two {
                single: &os.elems,
                range: &or.elems,
            };
            let windows = windows(affected, &two);
            let classifier = Classifier::new(&fr, max);
            let target_names = targets.names();
            let mut tables: HashMap<Vec<u32>, Option<u64>> = HashMap::default();
            let (mut added, mut removed) = (Vec::new(), Vec::new());
            for &(wlo, whi) in &windows {
                two.overlapping(wlo, whi, &mut removed);
                let clipped: Vec<(u32, Vec<(u128, u128)>)> = remote_sets
                    .iter()
                    .enumerate()
                    .map(|(id, n)| (id as u32, clipped(fam, &index[n].addrs, wlo, whi)))
                    .filter(|(_, v)| !v.is_empty())
                    .collect();
                let part = partition(wlo, whi, clipped.iter().map(|(id, v)| (*id, v.as_slice())));
                for &(lo, hi, class) in &part.segs {
                    let mut active: Vec<u32> = part.classes[class as usize]
                        .iter()
                        .flat_map(|&s| rules_of_set[s as usize].iter().copied())
                        .collect();
                    active.sort_unstable();
                    let active = &active;
                    let hash = match tables.get(active) {
                        Some(h) => *h,
                        None => {
                            let h = classifier
                                .table(active)
                                .map(|t| chain_hash(&t, target_names));
                            tables.insert(active.clone(), h);
                            h
                        }
                    };
                    let Some(hash) = hash else { continue };
                    // Windows do not touch: no element merges across two.
                    match added.last_mut() {
                        Some((_, last_hi, h)) if *h == hash && *last_hi + 1 == lo => *last_hi = hi,
                        _ => added.push((lo, hi, hash)),
                    }
                }
            }
            removed.sort_unstable();
            // Elements recomputed as they were are no change.
            let (add, del) = sorted_difference(&removed, &added);
            // The chains stay those of the old ruleset: each new digest
            // is an old chain's, each chain that lost elements keeps one.
            let count = |v: &[(u128, u128, u64)], h: u64| v.iter().filter(|e| e.2 == h).count();
            let mut hashes: Vec<u64> = add.iter().chain(&del).map(|e| e.2).collect();
            hashes.sort_unstable();
            hashes.dedup();
            for h in hashes {
                let before = two.count(h);
                if before == 0 || before - count(&del, h) + count(&add, h) == 0 {
                    return Ok(None);
                }
            }
            for (map, interval) in [(os, false), (or, true)] {
                let pick = |v: &[(u128, u128, u64)]| -> Vec<(u128, u128, u64)> {
                    v.iter()
                        .filter(|e| (e.0 != e.1) == interval)
                        .copied()
                        .collect()
                };
                let (a, d) = (pick(&add), pick(&del));
                // The hash of single addresses has the size of its element
                // count (see `single_map_size`): a change that moves the
                // count past a power of two is a new map.
                let after = map.elems.len() + a.len() - d.len();
                if !interval && single_map_size(after) != single_map_size(map.elems.len()) {
                    return Ok(None);
                }
                if !a.is_empty() || !d.is_empty() {
                    changes.push(MapChange {
                        map: map.name.clone(),
                        family: fam,
                        interval,
                        add: a,
                        delete: d,
                    });
                }
            }
        }
    }
    if maps != old.len() {
        return Ok(None);
    }
    Ok(Some(changes))
}

/// The intervals of `addrs` of family `fam` that meet `[lo, hi]`, clipped
/// to it.
fn clipped(
    fam: Family,
    addrs: &microseg_core::addr::AddrSet,
    lo: u128,
    hi: u128,
) -> Vec<(u128, u128)> {
    fn clip<T: Copy + Into<u128>>(r: &[(T, T)], lo: u128, hi: u128) -> Vec<(u128, u128)> {
        let from = r.partition_point(|&(_, b)| b.into() < lo);
        r[from..]
            .iter()
            .map(|&(a, b)| (a.into(), b.into()))
            .take_while(|&(a, _)| a <= hi)
            .map(|(a, b)| (a.max(lo), b.min(hi)))
            .collect()
    }
    match fam {
        Family::V4 => clip(addrs.v4.ranges(), lo, hi),
        Family::V6 => clip(addrs.v6.ranges(), lo, hi),
    }
}

/// The old elements of a decision's two maps, each sorted: single
/// addresses and wider intervals (disjoint from each other).
struct Two<'a> {
    single: &'a [(u128, u128, u64)],
    range: &'a [(u128, u128, u64)],
}

impl Two<'_> {
    /// The element ending last before `lo`.
    fn before(&self, lo: u128) -> Option<(u128, u128, u64)> {
        [self.single, self.range]
            .into_iter()
            .filter_map(|v| {
                let i = v.partition_point(|e| e.1 < lo);
                i.checked_sub(1).map(|i| v[i])
            })
            .max_by_key(|e| e.1)
    }

    /// The element starting first after `hi`.
    fn after(&self, hi: u128) -> Option<(u128, u128, u64)> {
        [self.single, self.range]
            .into_iter()
            .filter_map(|v| v.get(v.partition_point(|e| e.0 <= hi)).copied())
            .min_by_key(|e| e.0)
    }

    /// Appends the elements overlapping `[lo, hi]`.
    fn overlapping(&self, lo: u128, hi: u128, out: &mut Vec<(u128, u128, u64)>) {
        for v in [self.single, self.range] {
            let from = v.partition_point(|e| e.1 < lo);
            out.extend(v[from..].iter().take_while(|e| e.0 <= hi));
        }
    }

    /// How many elements jump to the chain of digest `h`.
    fn count(&self, h: u64) -> usize {
        self.single
            .iter()
            .chain(self.range)
            .filter(|e| e.2 == h)
            .count()
    }
}

/// `maps` with `changes` made: what the optimised lowering writes for the
/// ruleset [`level1_after`] worked the changes out for.
pub(crate) fn apply_changes(maps: &[Level1Map], changes: &[MapChange]) -> Vec<Level1Map> {
    maps.iter()
        .map(|m| {
            let mut m = m.clone();
            for c in changes.iter().filter(|c| c.map == m.name) {
                m.elems.retain(|e| !c.delete.contains(e));
                m.elems.extend(c.add.iter().copied());
                m.elems.sort_unstable();
            }
            m
        })
        .collect()
}

/// A set's members before a change, as [`members::level1_after`](crate::members::level1_after) asks for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OldSet {
    /// The same members as now.
    Unchanged,
    /// These members (sorted, disjoint, inclusive intervals).
    Was(Vec<(u128, u128)>),
}

/// The element changes of one level-1 map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapChange {
    /// The map.
    pub map: String,
    /// Its family.
    pub family: Family,
    /// Whether it has the interval flag.
    pub interval: bool,
    /// Elements to add.
    pub add: Vec<(u128, u128, u64)>,
    /// Elements to delete.
    pub delete: Vec<(u128, u128, u64)>,
}

/// The elements of sorted list `new` that `old` lacks, and those of `old`
/// that `new` lacks.
fn sorted_difference<T: Ord + Copy>(old: &[T], new: &[T]) -> (Vec<T>, Vec<T>) {
    let (mut only_new, mut only_old) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(x), Some(y)) if x == y => {
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x < y => {
                only_old.push(*x);
                i += 1;
            }
            (Some(x), None) => {
                only_old.push(*x);
                i += 1;
            }
            (_, Some(y)) => {
                only_new.push(*y);
                j += 1;
            }
            (None, None) => break,
        }
    }
    (only_new, only_old)
}

/// The windows to partition again: the affected intervals, widened to
/// the old elements that overlap them (an element is recomputed whole)
/// and to the one next to each end (it may now merge with what changed),
/// merged where they overlap or touch.
///
/// An old element beyond those is untouched: its addresses meet the same
/// rules as before, and it was not adjacent to an element of its own chain
/// (elements are maximal runs), nor is it now: the element next to it
/// keeps the chain of that old neighbour.
fn windows(mut affected: Vec<(u128, u128)>, old: &Two) -> Vec<(u128, u128)> {
    affected.sort_unstable();
    let mut out: Vec<(u128, u128)> = Vec::new();
    let mut over = Vec::new();
    for (mut lo, mut hi) in affected {
        if let Some(e) = old.before(lo) {
            if e.1 + 1 == lo {
                lo = e.0;
            }
        }
        over.clear();
        old.overlapping(lo, hi, &mut over);
        for e in &over {
            lo = lo.min(e.0);
            hi = hi.max(e.1);
        }
        if let Some(e) = old.after(hi) {
            if hi.checked_add(1) == Some(e.0) {
                hi = e.1;
            }
        }
        match out.last_mut() {
            Some(last) if last.1.saturating_add(1) >= lo => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
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

/// The chains a decided connection meets: one per flow or baseline item
/// (and verdict and logging), in order of first use; their names are
/// worked out when asked for.
#[derive(Debug, Default)]
struct Targets<'r> {
    /// By (a flow?, name, verdict, log).
    ids: HashMap<(bool, &'r str, Verdict, bool), u32>,
    /// The first rule of each target.
    rules: Vec<&'r Rule>,
    /// The chain names of the first targets.
    names: Vec<String>,
    /// The chain names taken.
    taken: HashSet<String>,
}

/// A rule's flow or baseline item: (a flow?, its name).
fn origin_name(rule: &Rule) -> (bool, &str) {
    match &rule.origin {
        Origin::Flow { name, .. } => (true, name.as_str()),
        Origin::Baseline { what } => (false, what.as_str()),
    }
}

impl<'r> Targets<'r> {
    fn id(&mut self, rule: &'r Rule) -> u32 {
        let (flow, name) = origin_name(rule);
        let fast = (flow, name, rule.verdict, rule.log);
        if let Some(&id) = self.ids.get(&fast) {
            return id;
        }
        let id = self.rules.len() as u32;
        self.ids.insert(fast, id);
        self.rules.push(rule);
        id
    }

    /// The chain names, by target: `f_NAME` or `b_NAME`, with `_2`, `_3`…
    /// for a name taken by an earlier target.
    fn names(&mut self) -> &[String] {
        for rule in &self.rules[self.names.len()..] {
            let (flow, name) = origin_name(rule);
            let prefix = if flow { "f_" } else { "b_" };
            let mut chain = format!("{prefix}{name}");
            let mut n = 1;
            while self.taken.contains(&chain) {
                n += 1;
                chain = format!("{prefix}{name}_{n}");
            }
            self.taken.insert(chain.clone());
            self.names.push(chain);
        }
        &self.names
    }

    /// Every target chain with its rules: the log rule when flagged, then
    /// the counted verdict (TCP resets for reject), all with the label.
    fn chains(
        &mut self,
        lw: &Lowerer,
    ) -> Result<Vec<(String, Vec<schema::Rule<'static>>)>, NftError> {
        self.names();
        let mut out = Vec::new();
        for (rule, chain) in self.rules.iter().zip(&self.names) {
            let name = || Cow::Owned(chain.clone());
            let label = || Some(rule.origin.label());
            let mut rules = Vec::new();
            if rule.log {
                // nft-syntax: limit rate 10/second burst 5 packets log prefix "microseg web: "
                let prefix = format!("{} {}: ", lw.log.prefix, origin_name(rule).1);
                rules.push(lw.rule_in(name(), vec![lw.limit(), lw.log_stmt(prefix)?], label()));
            }
            match rule.verdict {
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
            ids: HashMap::default(),
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

/// The partition of `start..=max` by rule sets (intervals outside it are
/// clipped).
fn partition<'a>(
    start: u128,
    max: u128,
    items: impl Iterator<Item = (u32, &'a [(u128, u128)])>,
) -> Partition {
    let mut ev: Vec<(u128, u32, bool)> = Vec::new();
    for (rule, ranges) in items {
        // Only the intervals that reach into the window.
        let from = ranges.partition_point(|&(_, hi)| hi < start);
        for &(lo, hi) in &ranges[from..] {
            if lo > max {
                break;
            }
            ev.push((lo.max(start), rule, true));
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
    let mut start = start;
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

/// The level-2 decision of one class of remote addresses (ordered by
/// content: the chains are named in that order, so that their names do not
/// depend on which addresses come first).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
    /// `in4`, `in6`, `out4`, `out6`: the prefix of its chains' and maps' names.
    prefix: &'static str,
    /// Whether a rule restricts the remote address: level 1 is needed.
    remote: bool,
    /// Per level-2 chain, the digest its name carries (`None`: two were
    /// alike, the chains are named by their order).
    hashes: Option<Vec<u64>>,
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

/// A packet rule of one chain that applies to one family, by set name.
struct Pre<'r> {
    src: Option<&'r str>,
    dst: Option<&'r str>,
    rule: &'r Rule,
    proto: &'r ProtoMatch,
}

/// The packet rules of `rules` that apply to `fam`, checked.
fn prepare<'r>(
    sets: &SetIndex<'r>,
    fam: Family,
    rules: &'r [Rule],
) -> Result<Vec<Pre<'r>>, NftError> {
    let mut pre = Vec::new();
    for r in rules {
        let RuleMatch::Packet(m) = &r.matches else {
            unreachable!("only packet rules reach the decision")
        };
        let label = || r.origin.label();
        if let ProtoMatch::Tcp(s) | ProtoMatch::Udp(s) = &m.proto {
            if s.is_empty() {
                return Err(NftError::EmptyPorts { rule: label() });
            }
        }
        let rule_fam = m.family.or(m.proto.family());
        let mut applies = rule_fam.is_none_or(|f| f == fam);
        for name in [&m.src, &m.dst].into_iter().flatten() {
            let set = sets
                .get(name.as_str())
                .ok_or_else(|| NftError::UnknownSet {
                    set: name.clone(),
                    rule: label(),
                })?;
            if rule_fam.is_some_and(|f| f != set.family) {
                return Err(NftError::SetFamily {
                    set: name.clone(),
                    rule: label(),
                });
            }
            // `ip saddr @x_v4` never matches an IPv6 packet.
            applies &= set.family == fam;
        }
        if applies {
            pre.push(Pre {
                src: m.src.as_deref(),
                dst: m.dst.as_deref(),
                rule: r,
                proto: &m.proto,
            });
        }
    }
    Ok(pre)
}

/// The ruleset's sets by name (hashed: looked up per rule and family).
type SetIndex<'r> = HashMap<&'r str, &'r microseg_core::ir::NamedSet>;

fn set_index(rs: &HostRuleset) -> SetIndex<'_> {
    rs.sets.values().map(|s| (s.name.as_str(), s)).collect()
}

/// The sets the rules name, as `u128` intervals, converted once per set.
fn set_ranges<'r>(
    rs: &'r HostRuleset,
    fam: Family,
    pre: &[Pre<'r>],
) -> HashMap<&'r str, Vec<(u128, u128)>> {
    let mut cache = HashMap::default();
    for p in pre {
        for name in [p.src, p.dst].into_iter().flatten() {
            cache
                .entry(name)
                .or_insert_with(|| ranges_of(fam, &rs.sets[name].addrs));
        }
    }
    cache
}

/// The rules with their remote and own address sets.
fn frules<'a, 'r: 'a>(
    pre: &'a [Pre<'r>],
    cache: &'a HashMap<&str, Vec<(u128, u128)>>,
    dir: Direction,
    targets: &mut Targets<'r>,
) -> Vec<FRule<'a>> {
    pre.iter()
        .map(|p| {
            let src = p.src.map(|n| cache[n].as_slice());
            let dst = p.dst.map(|n| cache[n].as_slice());
            let (remote, own) = match dir {
                Direction::Input => (src, dst),
                Direction::Output => (dst, src),
            };
            FRule {
                remote,
                own,
                proto: p.proto,
                target: targets.id(p.rule),
            }
        })
        .collect()
}

/// What decides the level-2 table of a class of remote addresses.
struct Classifier<'a> {
    frules: &'a [FRule<'a>],
    /// The rules that do not restrict the remote address.
    always: Vec<u32>,
    /// The decision of remote addresses in no class, if it decides anything.
    background: Option<Level2>,
    max: u128,
}

impl<'a> Classifier<'a> {
    fn new(frules: &'a [FRule<'a>], max: u128) -> Classifier<'a> {
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
        let background = level2(frules, &always, max);
        let background = match &background {
            Level2::Ports(t) if t.is_empty() => None,
            Level2::Own(groups) if groups.is_empty() => None,
            _ => Some(background),
        };
        Classifier {
            frules,
            always,
            background,
            max,
        }
    }

    /// The level-2 table of the class whose remote sets hold the rules
    /// `active`; `None`: it needs no level-1 element (no rule, nothing
    /// decided, or decided like the background).
    fn table(&self, active: &[u32]) -> Option<Level2> {
        if active.is_empty() {
            return None;
        }
        let mut applicable: Vec<u32> = active.iter().chain(&self.always).copied().collect();
        applicable.sort_unstable();
        let l2 = level2(self.frules, &applicable, self.max);
        match &l2 {
            _ if self.background.as_ref() == Some(&l2) => None,
            Level2::Ports(t) if t.is_empty() => None,
            Level2::Own(groups) if groups.is_empty() => None,
            _ => Some(l2),
        }
    }
}

fn prefix_of(dir: Direction, fam: Family) -> &'static str {
    match (dir, fam) {
        (Direction::Input, Family::V4) => "in4",
        (Direction::Input, Family::V6) => "in6",
        (Direction::Output, Family::V4) => "out4",
        (Direction::Output, Family::V6) => "out6",
    }
}

/// The name of a level-2 chain: `in4_` and the digest of its decision.
fn chain_name(prefix: &str, hash: u64) -> String {
    format!("{prefix}_{hash:016x}")
}

/// A digest of a level-2 decision, targets by chain name: stable across
/// runs and versions (an explicit encoding, not a derived `Hash`).
fn chain_hash(l2: &Level2, targets: &[String]) -> u64 {
    use std::hash::Hasher;
    let mut h = crate::members::Digest::new();
    let table = |h: &mut crate::members::Digest, t: &PortTable| {
        for (tag, v) in [(1u8, &t.tcp), (2, &t.udp)] {
            h.write_u8(tag);
            h.write_u64(v.len() as u64);
            for &(lo, hi, id) in v {
                h.write_u16(lo);
                h.write_u16(hi);
                h.write(targets[id as usize].as_bytes());
            }
        }
        match t.icmp {
            Some(id) => {
                h.write_u8(3);
                h.write(targets[id as usize].as_bytes());
            }
            None => h.write_u8(4),
        }
    };
    match l2 {
        Level2::Ports(t) => {
            h.write_u8(10);
            table(&mut h, t);
        }
        Level2::Own(groups) => {
            h.write_u8(11);
            h.write_u64(groups.len() as u64);
            for (own, t) in groups {
                h.write_u64(own.len() as u64);
                for &(a, b) in own {
                    h.write_u128(a);
                    h.write_u128(b);
                }
                table(&mut h, t);
            }
        }
    }
    h.value64()
}

impl Decision {
    fn build<'r>(
        rs: &'r HostRuleset,
        dir: Direction,
        fam: Family,
        rules: &'r [Rule],
        targets: &mut Targets<'r>,
    ) -> Result<Decision, NftError> {
        let pre = prepare(&set_index(rs), fam, rules)?;
        let cache = set_ranges(rs, fam, &pre);
        let frules = frules(&pre, &cache, dir, targets);
        let max = max_of(fam);
        // Partitioned by the distinct remote sets (many rules share one),
        // each class then mapped to the rules whose set holds it.
        let mut set_ids: HashMap<*const (u128, u128), u32> = HashMap::default();
        let mut sets: Vec<&[(u128, u128)]> = Vec::new();
        let mut rules_of_set: Vec<Vec<u32>> = Vec::new();
        for (i, r) in frules.iter().enumerate() {
            if let Some(s) = r.remote {
                let id = *set_ids.entry(s.as_ptr()).or_insert_with(|| {
                    sets.push(s);
                    rules_of_set.push(Vec::new());
                    sets.len() as u32 - 1
                });
                rules_of_set[id as usize].push(i as u32);
            }
        }
        let part = partition(
            0,
            max,
            sets.iter().enumerate().map(|(id, s)| (id as u32, *s)),
        );
        let classifier = Classifier::new(&frules, max);
        let mut tables: Interner<Level2> = Interner::new();
        let class_table: Vec<Option<u32>> = part
            .classes
            .iter()
            .map(|active_sets| {
                let mut active: Vec<u32> = active_sets
                    .iter()
                    .flat_map(|&s| rules_of_set[s as usize].iter().copied())
                    .collect();
                active.sort_unstable();
                classifier.table(&active).map(|l2| tables.id(&l2))
            })
            .collect();
        // The chains in the order of their decisions' content.
        let mut order: Vec<u32> = (0..tables.items.len() as u32).collect();
        order.sort_by(|&a, &b| tables.items[a as usize].cmp(&tables.items[b as usize]));
        let mut rank = vec![0u32; order.len()];
        for (r, &t) in order.iter().enumerate() {
            rank[t as usize] = r as u32;
        }
        let mut level1: Vec<(u128, u128, u32)> = Vec::new();
        for &(lo, hi, class) in &part.segs {
            let Some(t) = class_table[class as usize].map(|t| rank[t as usize]) else {
                continue;
            };
            match level1.last_mut() {
                Some(last) if last.2 == t && last.1 + 1 == lo => last.1 = hi,
                _ => level1.push((lo, hi, t)),
            }
        }
        let prefix = prefix_of(dir, fam);
        let target_names: Vec<String> = targets.names().to_vec();
        let mut items: Vec<Option<Level2>> = tables.items.into_iter().map(Some).collect();
        let level2: Vec<Level2> = order
            .iter()
            .map(|&t| items[t as usize].take().expect("each table once"))
            .collect();
        // Chains are named by a digest of what they decide, so that a
        // change of members that keeps the decisions keeps the names; in
        // the (astronomically unlikely) case of two digests alike, by
        // their order instead, and such a ruleset has no member path.
        let hashes: Vec<u64> = level2
            .iter()
            .map(|t| chain_hash(t, &target_names))
            .collect();
        let distinct = {
            let mut h = hashes.clone();
            h.sort_unstable();
            h.windows(2).all(|w| w[0] != w[1])
        };
        let level2 = level2
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let name = if distinct {
                    chain_name(prefix, hashes[i])
                } else {
                    format!("{prefix}_{i}")
                };
                (name, t)
            })
            .collect();
        Ok(Decision {
            dir,
            fam,
            prefix,
            remote: frules.iter().any(|r| r.remote.is_some()),
            level1,
            level2,
            hashes: distinct.then_some(hashes),
            background: classifier.background.map(|t| (format!("{prefix}_any"), t)),
            target_names,
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
        maps: &mut Vec<schema::Map<'static>>,
    ) {
        // nft-syntax: ip saddr vmap @in4_single
        // nft-syntax: ip saddr vmap @in4_range
        // Single addresses in a map of their own, which nft makes a hash
        // (one probe), the intervals in an interval map (an rbtree, whose
        // lookups cost a walk over its depth): the partition is exact, so
        // an address is in at most one of the two, and one that misses the
        // first after a miss in its class's chain misses the second too.
        // Both maps are named, and there whenever a rule restricts the
        // remote address (even when empty), so that a change of members
        // changes only their elements.
        if self.remote {
            let item = |&(lo, hi, t): &(u128, u128, u32)| {
                Expression::List(vec![
                    self.addr(lo, hi),
                    Expression::Verdict(VExpr::Jump(JumpTarget {
                        target: Cow::Owned(self.level2[t as usize].0.clone()),
                    })),
                ])
            };
            let (single, wide): (Vec<_>, Vec<_>) =
                self.level1.iter().partition(|(lo, hi, _)| lo == hi);
            for (kind, part) in [(MapKind::Single, single), (MapKind::Range, wide)] {
                let name = map_name(self.prefix, kind);
                let elems: Vec<Expression<'static>> = part.into_iter().map(item).collect();
                let size = (kind == MapKind::Single).then(|| single_map_size(elems.len()));
                maps.push(schema::Map {
                    family: NfFamily::INet,
                    table: lw.table(),
                    name: Cow::Owned(name.clone()),
                    handle: None,
                    set_type: SetTypeValue::Single(match self.fam {
                        Family::V4 => SetType::Ipv4Addr,
                        Family::V6 => SetType::Ipv6Addr,
                    }),
                    map: lower::verdict_type(),
                    policy: None,
                    flags: (kind == MapKind::Range)
                        .then(|| std::collections::HashSet::from([SetFlag::Interval])),
                    elem: (!elems.is_empty()).then(|| Cow::Owned(elems)),
                    timeout: None,
                    gc_interval: None,
                    size,
                    comment: None,
                });
                base.push(lw.rule_in(
                    Cow::Borrowed(chain.name()),
                    vec![Statement::VerdictMap(VerdictMap {
                        key: self.addr_payload(true),
                        data: string(format!("@{name}")),
                    })],
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

/// The two level-1 maps of a chain and family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MapKind {
    /// Single addresses: a hash.
    Single,
    /// Wider intervals: an interval map.
    Range,
}

/// The `size` of a `_single` map of `n` elements: twice the power of two
/// at or above `n`, at least 1,024 (so between 2 and 4 times `n`).
///
/// A set with a size is a hash of fixed size in the kernel (`nft_hash`,
/// not the resizable `nft_rhash`). Adding a `jump` element to a verdict map
/// makes the kernel check every jump of the table at commit, walking every
/// verdict map, and a fixed hash walks several times faster than a
/// resizable one: at 100,000 elements that halves the commit of a
/// one-address change. The kernel refuses elements beyond the size, so the
/// size is a function of the count that changes only at powers of two;
/// the member path re-renders when it would ([`level1_after`]).
pub(crate) fn single_map_size(n: usize) -> u32 {
    let n = u32::try_from(n).unwrap_or(u32::MAX).max(1);
    n.checked_next_power_of_two()
        .and_then(|p| p.checked_mul(2))
        .unwrap_or(u32::MAX)
        .max(1024)
}

/// The name of a level-1 map: `in4_single`, `out6_range`… (set names of the
/// plain lowering end in `_v4` or `_v6`: never one of these).
pub(crate) fn map_name(prefix: &str, kind: MapKind) -> String {
    match kind {
        MapKind::Single => format!("{prefix}_single"),
        MapKind::Range => format!("{prefix}_range"),
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
    let part = partition(0, max, own.into_iter());
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
        let p = partition(0, 100, [(0u32, &a[..]), (1, &b[..])].into_iter());
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
        let p = partition(0, 100, [(0u32, &c[..])].into_iter());
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
