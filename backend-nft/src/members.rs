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
use crate::Lowering;
use microseg_core::ir::HostRuleset;
use serde_json::Value;
use std::hash::{Hash, Hasher};

/// A digest of everything `lowering` writes for `rs` but set elements,
/// `None` where set members shape more than elements (the optimised
/// lowering folds them into verdict maps).
///
/// It hashes the ruleset's own structure (its derived `Hash`), set members
/// left out, with a 128-bit two-lane hash: microseconds per thousand rules,
/// where serialising the ruleset would take milliseconds.
pub fn member_structure(lowering: Lowering, rs: &HostRuleset) -> Option<String> {
    if lowering != Lowering::Plain {
        return None;
    }
    let mut h = Digest::new();
    "microseg plain lowering/1".hash(&mut h);
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

fn element(e: nftables::expr::Expression<'static>) -> Value {
    serde_json::to_value(e).unwrap_or(Value::Null)
}

/// A 128-bit hash in two independent 64-bit lanes, a word at a time.
struct Digest {
    a: u64,
    b: u64,
    words: u64,
}

impl Digest {
    fn new() -> Digest {
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
    fn hex(&self) -> String {
        let fmix = |mut k: u64| {
            k ^= k >> 33;
            k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
            k ^= k >> 33;
            k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
            k ^ (k >> 33)
        };
        format!(
            "{:016x}{:016x}",
            fmix(self.a ^ self.words),
            fmix(self.b.wrapping_add(self.words))
        )
    }
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
