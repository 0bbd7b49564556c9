//! Who may reach whom on which ports, exactly, by named groups and roles.
//!
//! ```
//! use microseg_core::{Policy, document::Format, matrix::matrix};
//! let p = Policy::from_str_as(r#"
//! version = 1
//! [groups]
//! web = ["10.0.1.10"]
//! app = ["10.0.1.20"]
//! [roles.web]
//! [roles.app]
//! [baseline]
//! egress = []
//! icmp = false
//! [[flows]]
//! from = "web"
//! to = "app"
//! ports = ["tcp/8080"]
//! "#, Format::Toml, None).unwrap();
//! let m = matrix(&p);
//! let cell = m.cell("web", "app").unwrap();
//! assert_eq!(cell.always.specs(), ["tcp/8080"]);
//! assert!(m.cell("app", "web").unwrap().always.is_empty());
//! ```
//!
//! Rows and columns are the named groups and roles (a role named like a group
//! is one entry) plus `outside` (every address in none of them). A cell holds
//! the ports permitted for every source and destination pair of the two
//! (`always`) and those permitted only for some pairs (`sometimes`). It is
//! computed over address and port classes (see [`crate::classes`]), not by sampling.

use crate::addr::AddrSet;
use crate::classes::{loopback, partition, port_classes, representative};
use crate::model::Policy;
use crate::ports::PortSet;
use crate::semantics::Connection;
use serde::Serialize;

/// One row or column.
#[derive(Debug, Clone, Serialize)]
pub struct Party {
    /// Group or role name, or `outside`.
    pub name: String,
    /// `group`, `role`, `group+role` or `outside`.
    pub kind: String,
    /// Its addresses.
    #[serde(skip)]
    pub addrs: AddrSet,
}

/// One cell.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    /// Source row name.
    pub from: String,
    /// Destination column name.
    pub to: String,
    /// Ports permitted for every pair.
    #[serde(serialize_with = "ser_ports")]
    pub always: PortSet,
    /// Ports permitted for some pairs only.
    #[serde(serialize_with = "ser_ports")]
    pub sometimes: PortSet,
}

fn ser_ports<S: serde::Serializer>(p: &PortSet, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(p.specs())
}

/// The matrix.
#[derive(Debug, Clone, Serialize)]
pub struct Matrix {
    /// Rows and columns, in order.
    pub parties: Vec<Party>,
    /// Cells, row-major.
    pub cells: Vec<Cell>,
}

impl Matrix {
    /// The cell of a row and column by name.
    pub fn cell(&self, from: &str, to: &str) -> Option<&Cell> {
        self.cells.iter().find(|c| c.from == from && c.to == to)
    }
}

/// Computes the matrix of a policy.
pub fn matrix(policy: &Policy) -> Matrix {
    let mut parties: Vec<Party> = Vec::new();
    for (name, addrs) in &policy.groups {
        let kind = if policy.roles.contains_key(name) {
            "group+role"
        } else {
            "group"
        };
        parties.push(Party {
            name: name.clone(),
            kind: kind.into(),
            addrs: addrs.clone(),
        });
    }
    for (name, role) in &policy.roles {
        if !policy.groups.contains_key(name) {
            parties.push(Party {
                name: name.clone(),
                kind: "role".into(),
                addrs: role.hosts.clone(),
            });
        }
    }
    let named = parties
        .iter()
        .fold(AddrSet::default(), |acc, p| acc.union(&p.addrs));
    parties.push(Party {
        name: "outside".into(),
        kind: "outside".into(),
        addrs: AddrSet::any().difference(&named).difference(&loopback()),
    });

    // Address classes over everything the semantics looks at.
    let mut sets: Vec<&AddrSet> = Vec::new();
    for f in &policy.flows {
        sets.push(&f.from.addrs);
        sets.push(&f.to.addrs);
    }
    for r in policy.roles.values() {
        sets.push(&r.hosts);
    }
    for p in &parties {
        sets.push(&p.addrs);
    }
    let lo = loopback();
    sets.push(&lo);
    let classes = partition(&sets);
    let mut port_sets: Vec<&PortSet> = policy.flows.iter().map(|f| &f.ports).collect();
    port_sets.extend(policy.roles.values().map(|r| &r.egress));
    let pclasses = port_classes(&port_sets);

    // Allowed ports for each (source class, destination class) pair.
    let allowed = |sc: &AddrSet, dc: &AddrSet| -> Option<PortSet> {
        let s = representative(sc, None)?;
        let d = representative(dc, Some(s))?;
        if d == s || d.is_loopback() || s.is_loopback() {
            return None;
        }
        let mut out = PortSet::default();
        for (proto, set) in &pclasses {
            let c = Connection::new(s, d, *proto);
            if c.validate().is_ok() && policy.decide(&c).allowed() {
                out = out.union(set);
            }
        }
        Some(out)
    };

    let mut cells = Vec::new();
    for src in &parties {
        let src_classes: Vec<&AddrSet> = classes
            .iter()
            .filter(|c| c.is_subset(&src.addrs) && !c.is_empty())
            .collect();
        for dst in &parties {
            let dst_classes: Vec<&AddrSet> = classes
                .iter()
                .filter(|c| c.is_subset(&dst.addrs) && !c.is_empty())
                .collect();
            let mut always: Option<PortSet> = None;
            let mut union = PortSet::default();
            let (mut seen_v4, mut seen_v6) = (false, false);
            for sc in &src_classes {
                for dc in &dst_classes {
                    let fam = crate::classes::family_of(sc);
                    if fam != crate::classes::family_of(dc) {
                        continue;
                    }
                    if let Some(p) = allowed(sc, dc) {
                        // The other family's ICMP cannot occur between these
                        // classes: leave it out of the union, and neutral
                        // (present) for the intersection.
                        let p = restrict_icmp(p, fam);
                        union = union.union(&p);
                        let mut neutral = p.clone();
                        match fam {
                            crate::addr::Family::V4 => {
                                seen_v4 = true;
                                neutral.icmpv6 = true;
                            }
                            crate::addr::Family::V6 => {
                                seen_v6 = true;
                                neutral.icmp = true;
                            }
                        }
                        always = Some(match always {
                            None => neutral,
                            Some(a) => a.intersect(&neutral),
                        });
                    }
                }
            }
            let mut always = always.unwrap_or_default();
            always.icmp &= seen_v4;
            always.icmpv6 &= seen_v6;
            cells.push(Cell {
                from: src.name.clone(),
                to: dst.name.clone(),
                sometimes: union.difference(&always),
                always,
            });
        }
    }
    Matrix { parties, cells }
}

fn restrict_icmp(mut p: PortSet, fam: crate::addr::Family) -> PortSet {
    match fam {
        crate::addr::Family::V4 => p.icmpv6 = false,
        crate::addr::Family::V6 => p.icmp = false,
    }
    p
}

impl Matrix {
    /// A plain-text table: one line per cell that permits anything.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let w = self
            .parties
            .iter()
            .map(|p| p.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        out.push_str(&format!(
            "{:<w$}  {:<w$}  allowed (* = only for some hosts of the pair)\n",
            "from", "to"
        ));
        for c in &self.cells {
            if c.always.is_empty() && c.sometimes.is_empty() {
                continue;
            }
            let mut ports = c.always.specs();
            ports.extend(c.sometimes.specs().into_iter().map(|s| format!("{s}*")));
            out.push_str(&format!(
                "{:<w$}  {:<w$}  {}\n",
                c.from,
                c.to,
                ports.join(", ")
            ));
        }
        out
    }
}
