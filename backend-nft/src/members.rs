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
use serde::Serialize;
use serde_json::Value;
use std::io;

/// A digest of everything `lowering` writes for `rs` but set elements,
/// `None` where set members shape more than elements (the optimised
/// lowering folds them into verdict maps).
pub fn member_structure(lowering: Lowering, rs: &HostRuleset) -> Option<String> {
    if lowering != Lowering::Plain {
        return None;
    }
    /// The ruleset without set members (serialised only to be hashed).
    #[derive(Serialize)]
    struct Skeleton<'a> {
        lowering: &'static str,
        table: &'a str,
        target: &'a microseg_core::ir::Target,
        roles: &'a [String],
        hosts: &'a microseg_core::addr::AddrSet,
        sets: Vec<(
            &'a str,
            &'a microseg_core::addr::Family,
            &'a microseg_core::ir::SetOrigin,
        )>,
        input: &'a [microseg_core::ir::Rule],
        output: &'a [microseg_core::ir::Rule],
        default: &'a microseg_core::semantics::Verdict,
        log: &'a Option<microseg_core::LogSpec>,
        hardening: &'a Option<microseg_core::Hardening>,
    }
    let skeleton = Skeleton {
        lowering: "plain/1",
        table: &rs.table,
        target: &rs.target,
        roles: &rs.roles,
        hosts: &rs.hosts,
        sets: rs
            .sets
            .values()
            .map(|s| (s.name.as_str(), &s.family, &s.origin))
            .collect(),
        input: &rs.input,
        output: &rs.output,
        default: &rs.default,
        log: &rs.log,
        hardening: &rs.hardening,
    };
    let mut h = Fnv128::new();
    serde_json::to_writer(&mut h, &skeleton).ok()?;
    Some(format!("{:032x}", h.0))
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

/// FNV-1a, 128 bits, as an `io::Write` sink.
struct Fnv128(u128);

impl Fnv128 {
    fn new() -> Fnv128 {
        Fnv128(0x6c62_272e_07bb_0142_62b8_2175_6295_c58d)
    }
}

impl io::Write for Fnv128 {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        for b in bytes {
            self.0 ^= u128::from(*b);
            self.0 = self
                .0
                .wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
