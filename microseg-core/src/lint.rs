//! Warnings about valid policies that are probably not what was meant.
//!
//! ```
//! use microseg_core::{Policy, document::Format, lint::lint};
//! let p = Policy::from_str_as(r#"
//! version = 1
//! [groups]
//! web = ["10.0.1.10"]
//! spare = ["10.0.9.9"]
//! [roles.web]
//! "#, Format::Toml, None).unwrap();
//! let w: Vec<String> = lint(&p).into_iter().map(|d| d.message).collect();
//! assert!(w.iter().any(|m| m.contains("group \"spare\" is never used")));
//! assert!(w.iter().any(|m| m.contains("no admin can reach role \"web\" over SSH")));
//! ```

use crate::addr::AddrSet;
use crate::diag::Diagnostic;
use crate::model::{Action, Policy, Term};
use crate::ports::Proto;
use crate::semantics::Connection;
use std::collections::BTreeSet;

/// All lint warnings of a policy, located where the document has positions.
pub fn lint(p: &Policy) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let at = |path: &str| {
        p.positions
            .get(&format!("{path}#key"))
            .or_else(|| p.positions.get(path))
    };
    let mut warn = |path: &str, msg: String| {
        let mut d = Diagnostic::warning(at(path), msg);
        d.file = p.positions.file.clone();
        out.push(d);
    };

    // Unused groups and services.
    let mut used_groups: BTreeSet<&str> = BTreeSet::new();
    for entries in p.doc.groups.values() {
        for e in entries {
            if let Some(n) = e.strip_prefix('@') {
                used_groups.insert(n);
            }
        }
    }
    for (name, r) in &p.doc.roles {
        match &r.hosts {
            None => {
                used_groups.insert(name);
            }
            Some(h) => used_groups.extend(h.iter().map(|s| s.strip_prefix('@').unwrap_or(s))),
        }
    }
    for f in &p.flows {
        for t in f.from.terms.iter().chain(&f.to.terms) {
            if let Term::Group(g) = t {
                used_groups.insert(g);
            }
        }
    }
    for g in p.groups.keys() {
        if !used_groups.contains(g.as_str()) {
            warn(
                &format!("groups.{g}"),
                format!("group \"{g}\" is never used (no role, flow or include names it)"),
            );
        }
    }
    let used_services: BTreeSet<&str> = p
        .doc
        .flows
        .iter()
        .flat_map(|f| f.services.iter().map(|s| s.as_str()))
        .collect();
    for s in p.services.keys() {
        if !used_services.contains(s.as_str()) {
            warn(
                &format!("services.{s}"),
                format!("service \"{s}\" is never used by a flow"),
            );
        }
    }

    // Flows that match nothing, are shadowed or redundant.
    for f in &p.flows {
        let path = format!("flows[{}]", f.index);
        let from_managed = f.from.addrs.intersects(&p.managed);
        let to_managed = f.to.addrs.intersects(&p.managed);
        if !from_managed && !to_managed {
            warn(
                &path,
                format!(
                    "flow \"{}\" matches nothing: neither its sources ({}) nor its destinations ({}) are hosts of any role, so no host enforces it",
                    f.name,
                    f.from.label(),
                    f.to.label()
                ),
            );
            continue;
        }
        let families_meet = (!f.from.addrs.v4.is_empty() && !f.to.addrs.v4.is_empty())
            || (!f.from.addrs.v6.is_empty() && !f.to.addrs.v6.is_empty());
        if !families_meet {
            warn(
                &path,
                format!(
                    "flow \"{}\" matches nothing: its sources and destinations share no IP family",
                    f.name
                ),
            );
            continue;
        }
        for g in &p.flows {
            if g.index == f.index {
                continue;
            }
            let covers = f.from.addrs.is_subset(&g.from.addrs)
                && f.to.addrs.is_subset(&g.to.addrs)
                && f.ports.is_subset(&g.ports);
            if !covers {
                continue;
            }
            if f.action == Action::Allow && g.action != Action::Allow {
                warn(
                    &path,
                    format!(
                        "flow \"{}\" is shadowed: {} flow \"{}\" denies everything it allows, and deny wins",
                        f.name,
                        g.action.as_str(),
                        g.name
                    ),
                );
                break;
            }
            let same_kind = (f.action == Action::Allow) == (g.action == Action::Allow);
            let strictly_bigger = !(g.from.addrs.is_subset(&f.from.addrs)
                && g.to.addrs.is_subset(&f.to.addrs)
                && g.ports.is_subset(&f.ports));
            if same_kind && (strictly_bigger || g.index < f.index) {
                warn(
                    &path,
                    format!(
                        "flow \"{}\" is redundant: flow \"{}\" already covers it",
                        f.name, g.name
                    ),
                );
                break;
            }
        }
    }

    // Overlapping roles.
    let roles: Vec<_> = p.roles.values().collect();
    for (i, a) in roles.iter().enumerate() {
        for b in &roles[i + 1..] {
            let both = a.hosts.intersect(&b.hosts);
            if !both.is_empty() {
                warn(
                    &format!("roles.{}", b.name),
                    format!(
                        "roles \"{}\" and \"{}\" share hosts ({both}); those hosts need the union of both rulesets: compile or apply them with --host (or --role auto)",
                        a.name, b.name
                    ),
                );
            }
        }
    }

    // Lockout risk: a role no one may reach on tcp/22.
    for r in p.roles.values() {
        if !ssh_reachable(p, &r.hosts) {
            warn(
                &format!("roles.{}", r.name),
                format!(
                    "no admin can reach role \"{}\" over SSH (no allowed flow gives tcp/22 to its hosts): applying it remotely locks you out",
                    r.name
                ),
            );
        }
    }
    out
}

fn ssh_reachable(p: &Policy, hosts: &AddrSet) -> bool {
    p.flows
        .iter()
        .filter(|f| f.action == Action::Allow && f.ports.contains(Proto::Tcp(22)))
        .any(|f| {
            let targets = f.to.addrs.intersect(hosts);
            let Some(d) = targets.example() else {
                return false;
            };
            let srcs = f
                .from
                .addrs
                .difference(&AddrSet::single(d))
                .difference(&crate::classes::loopback());
            let srcs = match d {
                std::net::IpAddr::V4(_) => srcs.only(crate::addr::Family::V4),
                std::net::IpAddr::V6(_) => srcs.only(crate::addr::Family::V6),
            };
            let Some(s) = srcs.example() else {
                return false;
            };
            p.decide(&Connection::new(s, d, Proto::Tcp(22))).allowed()
        })
}
