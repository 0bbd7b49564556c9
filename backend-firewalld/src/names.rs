//! Object names and the ownership marker.
//!
//! ```
//! use backend_firewalld::names;
//! use microseg_core::addr::Family;
//! use microseg_core::ir::SetOrigin;
//! assert_eq!(names::zone("microseg"), "microseg");
//! assert_eq!(names::output_policy("microseg"), "microseg-out");
//! let group = SetOrigin::Group { name: "web".into() };
//! assert_eq!(names::ipset("microseg", &group, Family::V4), "microseg-web-4");
//! let flow = SetOrigin::Flow { flow: "admin-ssh".into(), side: "from".into() };
//! assert_eq!(names::ipset("microseg", &flow, Family::V6), "microseg-admin-sshF6");
//! // Every name fits firewalld's limits for the longest names `check` admits.
//! let longest = "a".repeat(microseg_core::NAME_MAX);
//! let table = "t".repeat(microseg_core::TABLE_MAX);
//! let flow = SetOrigin::Flow { flow: longest, side: "to".into() };
//! assert!(names::ipset(&table, &flow, Family::V6).len() <= names::IPSET_NAME_MAX);
//! ```
//!
//! Every object carries the policy's table name:
//!
//! | object | name | firewalld's limit |
//! |---|---|---|
//! | zone | `<table>` | 17 (`max_zone_name_len()`) |
//! | output policy | `<table>-out` | 18 (`max_policy_name_len()`) |
//! | group or role set | `<table>-<name>-4` / `-6` | 31 (kernel ipset names; firewalld checks 32) |
//! | flow endpoint set | `<table>-<flow>F4` / `F6` (from), `T4` / `T6` (to) | 31 |
//!
//! With `TABLE_MAX` = 8 and `NAME_MAX` = 20 the longest set name is 31
//! characters. Policy names are lower-case, so the upper-case `F`/`T` keeps
//! flow sets apart from group sets (`web-4` vs `webF4`), and the last two
//! characters always say which kind and family a set is.
//!
//! Ownership is not read from names: every object this backend creates
//! carries `[microseg table=<table>]` at the start of its description, and
//! only such objects are ever changed or removed. The zone's marker also
//! records the default zone found before the first apply
//! (`previous-default-zone=public`), so `remove` can restore it.

use microseg_core::addr::Family;
use microseg_core::ir::SetOrigin;

/// Longest zone name firewalld 1.3 accepts.
pub const ZONE_NAME_MAX: usize = 17;
/// Longest policy name firewalld 1.3 accepts.
pub const POLICY_NAME_MAX: usize = 18;
/// Longest ipset name that also works with firewalld's iptables backend
/// (kernel ipset names are 31 characters plus the terminating NUL).
pub const IPSET_NAME_MAX: usize = 31;

/// The zone of a table: the table name itself.
///
/// ```
/// assert_eq!(backend_firewalld::names::zone("msdual"), "msdual");
/// ```
pub fn zone(table: &str) -> String {
    table.to_string()
}

/// The output policy of a table (ingress zone `HOST`, egress zone `ANY`).
///
/// ```
/// assert_eq!(backend_firewalld::names::output_policy("msdual"), "msdual-out");
/// ```
pub fn output_policy(table: &str) -> String {
    format!("{table}-out")
}

/// The prefix every ipset of a table starts with.
///
/// ```
/// assert_eq!(backend_firewalld::names::ipset_prefix("msdual"), "msdual-");
/// ```
pub fn ipset_prefix(table: &str) -> String {
    format!("{table}-")
}

/// The ipset name for an IR set of one family (see the [module docs](self)).
///
/// ```
/// use backend_firewalld::names;
/// use microseg_core::{addr::Family, ir::SetOrigin};
/// let to = SetOrigin::Flow { flow: "scrape".into(), side: "to".into() };
/// assert_eq!(names::ipset("msdual", &to, Family::V4), "msdual-scrapeT4");
/// ```
pub fn ipset(table: &str, origin: &SetOrigin, family: Family) -> String {
    let digit = match family {
        Family::V4 => '4',
        Family::V6 => '6',
    };
    match origin {
        SetOrigin::Group { name } | SetOrigin::Role { name } => format!("{table}-{name}-{digit}"),
        SetOrigin::Flow { flow, side } => {
            let s = if side == "from" { 'F' } else { 'T' };
            format!("{table}-{flow}{s}{digit}")
        }
    }
}

/// The ownership marker at the start of every description this backend writes.
///
/// ```
/// assert_eq!(backend_firewalld::names::marker("microseg"), "[microseg table=microseg]");
/// ```
pub fn marker(table: &str) -> String {
    format!("[microseg table={table}]")
}

/// The description of an owned object.
///
/// ```
/// let d = backend_firewalld::names::description("microseg", None);
/// assert!(d.starts_with("[microseg table=microseg]"));
/// let d = backend_firewalld::names::description("microseg", Some("public"));
/// assert!(d.starts_with("[microseg table=microseg previous-default-zone=public]"));
/// ```
pub fn description(table: &str, previous_default_zone: Option<&str>) -> String {
    let head = match previous_default_zone {
        Some(z) => format!("[microseg table={table} previous-default-zone={z}]"),
        None => marker(table),
    };
    format!("{head} Managed by microseg: changes made here are overwritten by the next apply.")
}

/// What an ownership marker says.
///
/// ```
/// use backend_firewalld::names::{parse_marker, Marker};
/// assert_eq!(parse_marker("[microseg table=t] x"), Some(Marker { table: "t".into(), previous_default_zone: None }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    /// The table that owns the object.
    pub table: String,
    /// The default zone before microseg took over (zones only).
    pub previous_default_zone: Option<String>,
}

/// Reads the ownership marker of a description, if it has one.
///
/// ```
/// use backend_firewalld::names::{description, parse_marker};
/// let m = parse_marker(&description("web", Some("public"))).unwrap();
/// assert_eq!(m.table, "web");
/// assert_eq!(m.previous_default_zone.as_deref(), Some("public"));
/// assert!(parse_marker("Unsolicited incoming network packets are dropped.").is_none());
/// ```
pub fn parse_marker(description: &str) -> Option<Marker> {
    let rest = description.strip_prefix("[microseg ")?;
    let (inner, _) = rest.split_once(']')?;
    let mut table = None;
    let mut previous = None;
    for kv in inner.split_whitespace() {
        match kv.split_once('=') {
            Some(("table", t)) if !t.is_empty() => table = Some(t.to_string()),
            Some(("previous-default-zone", z)) if !z.is_empty() => previous = Some(z.to_string()),
            _ => {}
        }
    }
    Some(Marker {
        table: table?,
        previous_default_zone: previous,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_never_collide() {
        let g = SetOrigin::Group {
            name: "webf".into(),
        };
        let f = SetOrigin::Flow {
            flow: "web".into(),
            side: "from".into(),
        };
        assert_ne!(ipset("t", &g, Family::V4), ipset("t", &f, Family::V4));
        let to = SetOrigin::Flow {
            flow: "web".into(),
            side: "to".into(),
        };
        assert_ne!(ipset("t", &f, Family::V4), ipset("t", &to, Family::V4));
        assert_ne!(ipset("t", &f, Family::V4), ipset("t", &f, Family::V6));
    }

    #[test]
    fn longest_names_fit() {
        let table = "t".repeat(microseg_core::TABLE_MAX);
        assert!(zone(&table).len() <= ZONE_NAME_MAX);
        assert!(output_policy(&table).len() <= POLICY_NAME_MAX);
        let name = "n".repeat(microseg_core::NAME_MAX);
        for origin in [
            SetOrigin::Group { name: name.clone() },
            SetOrigin::Role { name: name.clone() },
            SetOrigin::Flow {
                flow: name.clone(),
                side: "from".into(),
            },
        ] {
            assert_eq!(ipset(&table, &origin, Family::V6).len(), IPSET_NAME_MAX);
        }
    }
}
