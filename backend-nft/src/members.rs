//! Set members straight from the IR, for an element delta planned without
//! rendering.
//!
//! The plain lowering writes every named set of the IR as an nft set of the
//! same name whose elements are the set's intervals, one element each (see
//! `Lowerer::set`); nothing else it writes depends on the members. So two
//! rulesets whose [`member_structure`] digests are equal render to the
//! same table but for set elements, and the element delta between them is
//! the difference of their sets' intervals.
//!
//! The optimised lowering folds members into the elements of its named
//! level-1 verdict maps ([`level1_maps`]); for two rulesets of equal digests,
//! [`level1_after`] works out the element changes of those maps from the old
//! maps and the old members, partitioning again only the addresses whose
//! membership changed (`None` when the change needs more than elements).
//!
//! ```
//! use backend_nft::{members, Lowering, NftState};
//! use microseg_core::{document::Format, ir::{compile, Target}, Policy};
//! let rs = |web: &str| {
//!     let p = Policy::from_str_as(&format!("version = 1\n[groups]\nweb = [{web}]\nadm = [\"10.9.0.1\"]\n\
//!         [roles.adm]\n[[flows]]\nfrom = \"adm\"\nto = \"web\"\nports = [\"tcp/22\"]\n"),
//!         Format::Toml, None).unwrap();
//!     compile(&p, &Target::Role("adm".into())).unwrap()
//! };
//! let (a, b) = (rs("\"10.0.0.1\""), rs("\"10.0.0.1\", \"10.0.0.2-10.0.0.3\""));
//! // Only members differ: equal digests.
//! assert_eq!(members::member_structure(Lowering::Plain, &a), members::member_structure(Lowering::Plain, &b));
//! // The state `a` leaves, with `b`'s members written in, is the state `b` leaves.
//! let mut s = NftState::from_artefact(&Lowering::Plain.render(&a).unwrap());
//! let web = &b.sets["web_v4"];
//! assert!(s.set_elements_to("web_v4", members::elements_v4(web.addrs.v4.ranges())));
//! assert_eq!(s, NftState::from_artefact(&Lowering::Plain.render(&b).unwrap()));
//! ```

use crate::addr_text::ipv6_text;
use crate::lower::{interval, ipv4_text};
use crate::{optimize, Lowering, NftError};
use microseg_core::addr::Family;
use microseg_core::ir::{Direction, HostRuleset};
pub use optimize::{Level1Map, MapChange, OldSet};
use serde_json::Value;
use std::hash::{Hash, Hasher};

/// A digest of the ruleset but its set members, for `lowering`.
///
/// Plain lowering: equal digests mean the same table but for set
/// elements. Optimised lowering: equal digests mean the same rules, so a
/// change of members changes only level-1 map elements unless
/// [`level1_after`] finds otherwise; `None` where that lowering also
/// writes named sets (a chain interleaves non-packet rules: the compiler
/// never makes one).
///
/// It hashes the ruleset's own structure (its derived `Hash`), set members
/// left out, with a 128-bit two-lane hash: microseconds per thousand rules,
/// where serialising the ruleset would take milliseconds.
pub fn member_structure(lowering: Lowering, rs: &HostRuleset) -> Option<String> {
    let mut h = Digest::new();
    match lowering {
        Lowering::Plain => "microseg plain lowering/1".hash(&mut h),
        Lowering::Optimized => {
            for dir in [Direction::Input, Direction::Output] {
                optimize::packet_rules(rs.rules(dir))?;
            }
            "microseg optimised lowering/1".hash(&mut h)
        }
    }
    rs.table.hash(&mut h);
    rs.target.hash(&mut h);
    rs.roles.hash(&mut h);
    rs.hosts.hash(&mut h);
    rs.sets.len().hash(&mut h);
    for s in rs.sets.values() {
        (&s.name, &s.family, &s.origin).hash(&mut h);
    }
    rs.input.hash(&mut h);
    rs.output.hash(&mut h);
    rs.default.hash(&mut h);
    rs.log.hash(&mut h);
    rs.hardening.hash(&mut h);
    Some(h.hex())
}

/// The elements the plain lowering writes for IPv4 intervals.
pub fn elements_v4(ranges: &[(u32, u32)]) -> Vec<Value> {
    ranges
        .iter()
        .map(|&(a, b)| {
            element(interval(u128::from(a), u128::from(b), 32, |x| {
                ipv4_text(x as u32)
            }))
        })
        .collect()
}

/// The elements the plain lowering writes for IPv6 intervals.
pub fn elements_v6(ranges: &[(u128, u128)]) -> Vec<Value> {
    ranges
        .iter()
        .map(|&(a, b)| element(interval(a, b, 128, ipv6_text)))
        .collect()
}

/// The level-1 verdict maps the optimised lowering writes for `rs`
/// (`None`: it has no member path, see [`member_structure`]). Costs what
/// the lowering's partition of the address space costs.
///
/// ```
/// use backend_nft::{members, Lowering, NftState};
/// use microseg_core::{document::Format, ir::{compile, Target}, Policy};
/// let rs = |web: &str| {
///     let p = Policy::from_str_as(&format!("version = 1\n[groups]\nweb = [{web}]\nadm = [\"10.9.0.1\"]\n\
///         [roles.adm]\n[[flows]]\nfrom = \"adm\"\nto = \"web\"\nports = [\"tcp/22\"]\n"),
///         Format::Toml, None).unwrap();
///     compile(&p, &Target::Role("adm".into())).unwrap()
/// };
/// let (a, b) = (rs("\"10.0.0.1\""), rs("\"10.0.0.1\", \"10.0.0.2-10.0.0.3\""));
/// let old = members::level1_maps(&a).unwrap().unwrap();
/// // b's maps from a's, given a's set members.
/// let old_sets = |name: &str| a.sets.get(name).map(|s| members::OldSet::Was(s.addrs.v4.ranges()
///     .iter().map(|&(x, y)| (u128::from(x), u128::from(y))).collect()));
/// let changes = members::level1_after(&b, &old_sets, &old).unwrap().unwrap();
/// let new = members::apply_changes(&old, &changes);
/// assert_eq!(new, members::level1_maps(&b).unwrap().unwrap());
/// // The state `a` leaves, with those maps written in, is the state `b` leaves.
/// let mut s = NftState::from_artefact(&Lowering::Optimized.render(&a).unwrap());
/// for m in &new {
///     assert!(s.map_elements_to(&m.name, members::map_elements(m, &m.elems)));
/// }
/// assert_eq!(s, NftState::from_artefact(&Lowering::Optimized.render(&b).unwrap()));
/// ```
pub fn level1_maps(rs: &HostRuleset) -> Result<Option<Vec<Level1Map>>, NftError> {
    optimize::level1_maps(rs)
}

/// The element changes of the level-1 maps from those (`old`) the
/// optimised lowering wrote for a ruleset of the same
/// [`member_structure`] whose sets had the members `old_sets` gives (by
/// set name: unchanged, or the old intervals; `None`: no such set then)
/// to those it writes for `rs` ([`apply_changes`] makes them); only the
/// addresses whose membership changed are partitioned again. `None`: not a change of level-1 elements
/// alone (a set of the host's own addresses changed, or the chains a
/// change needs are not those installed).
pub fn level1_after(
    rs: &HostRuleset,
    old_sets: &dyn Fn(&str) -> Option<OldSet>,
    old: &[Level1Map],
) -> Result<Option<Vec<MapChange>>, NftError> {
    optimize::level1_after(rs, old_sets, old)
}

/// `maps` with `changes` ([`level1_after`]) made.
pub fn apply_changes(maps: &[Level1Map], changes: &[MapChange]) -> Vec<Level1Map> {
    optimize::apply_changes(maps, changes)
}

/// The elements (as `nft -j` writes them) of `map` for `elems` of it:
/// `[address, {"jump": {"target": chain}}]`.
pub fn map_elements(map: &Level1Map, elems: &[(u128, u128, u64)]) -> Vec<Value> {
    elems
        .iter()
        .map(|&(a, b, digest)| {
            let key = match map.family {
                Family::V4 => element(interval(a, b, 32, |x| ipv4_text(x as u32))),
                Family::V6 => element(interval(a, b, 128, ipv6_text)),
            };
            serde_json::json!([key, {"jump": {"target": map.chain(digest)}}])
        })
        .collect()
}

fn element(e: nftables::expr::Expression<'static>) -> Value {
    serde_json::to_value(e).unwrap_or(Value::Null)
}

/// A 128-bit hash in two independent 64-bit lanes, a word at a time.
pub(crate) struct Digest {
    a: u64,
    b: u64,
    words: u64,
}

impl Digest {
    pub(crate) fn new() -> Digest {
        Digest {
            a: 0x243f_6a88_85a3_08d3,
            b: 0x1319_8a2e_0370_7344,
            words: 0,
        }
    }

    fn mix(&mut self, w: u64) {
        self.a = (self.a ^ w)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29);
        self.b = (self.b.rotate_left(23) ^ w).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
        self.words += 1;
    }

    /// Both lanes through murmur3's finaliser, with the word count.
    pub(crate) fn hex(&self) -> String {
        format!(
            "{:016x}{:016x}",
            fmix(self.a ^ self.words),
            fmix(self.b.wrapping_add(self.words))
        )
    }

    /// The first lane, finalised: a 64-bit digest.
    pub(crate) fn value64(&self) -> u64 {
        fmix(self.a ^ self.words)
    }
}

/// murmur3's 64-bit finaliser.
fn fmix(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

impl Hasher for Digest {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0; 8];
            w.copy_from_slice(c);
            self.mix(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        let mut w = [0; 8];
        w[..rest.len()].copy_from_slice(rest);
        // The length closes every write, so that no two splits of the
        // same bytes hash alike.
        self.mix(u64::from_le_bytes(w) ^ ((bytes.len() as u64) << 56));
    }

    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }

    fn write_u16(&mut self, i: u16) {
        self.mix(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }

    fn write_u128(&mut self, i: u128) {
        self.mix(i as u64);
        self.mix((i >> 64) as u64);
    }

    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }

    fn finish(&self) -> u64 {
        self.a ^ self.b
    }
}
