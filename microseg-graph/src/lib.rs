//! A picture of a policy: who may reach whom, on which ports, as Graphviz DOT
//! or as SVG laid out and rendered in-process (no Graphviz binary needed).
//!
//! ```
//! use microseg_core::{document::Format, Policy};
//! let policy = Policy::from_str_as(r#"
//! version = 1
//! [groups]
//! web = ["10.0.1.10"]
//! app = ["10.0.1.20"]
//! [roles.web]
//! [roles.app]
//! [[flows]]
//! from = "web"
//! to = "app"
//! ports = ["tcp/8080"]
//! "#, Format::Toml, None).unwrap();
//! let g = microseg_graph::graph(&policy);
//! assert_eq!(g.edge("web", "app").unwrap().label(), "tcp/8080");
//! assert!(g.edge("app", "web").is_none());
//! assert!(g.to_dot().contains(r#""web" -> "app" [label="tcp/8080""#));
//! assert!(g.to_svg().unwrap().starts_with("<svg"));
//! ```
//!
//! # What is drawn
//!
//! **Nodes** are the rows of the exact reachability matrix
//! ([`microseg_core::matrix::matrix`]): every named group, every role (a role
//! named like its group is one node) and `outside` (every address in none of them).
//!
//! **Allow edges** come from the matrix cells alone. An edge A → B is drawn iff
//! the cell A → B permits a port that is not *summarised* for the pair, and it is
//! labelled with exactly the cell's ports minus the summarised ones
//! (`tcp/80,443`, `tcp/2500-3300`; `*` marks a port permitted for some address
//! pairs of A and B only, and an edge with only such ports is dashed). The
//! summarised ports S(A, B) are the baseline noise that would otherwise connect
//! nearly every pair; the caption states them once:
//!
//! 1. **Unfiltered pairs**: if neither A nor B holds an address of any role,
//!    S(A, B) is every port: the policy filters nothing between them.
//! 2. **Baseline ICMP**: with `baseline.icmp = true`, `icmp` and `icmpv6`.
//! 3. **Egress**: if B holds no address of any role, the egress ports of every
//!    role whose hosts overlap A.
//! 4. **Flows from `any`**: unless A is `outside`, the ports of every allow flow
//!    whose `from` includes `any` and whose `to` covers all of B. Such a flow is
//!    thus drawn once, from `outside`.
//!
//! Every summarised statement holds unless a deny/reject edge says otherwise.
//!
//! **Deny/reject edges** (red, dashed) come from the flows: one edge per
//! deny/reject flow from each node its `from` names to each node its `to` names
//! (a group or role term is its node, `any` is `outside`, an address literal is
//! every node whose addresses it overlaps), labelled `deny tcp/23` /
//! `reject tcp/23` and the flow's name.
#![forbid(unsafe_code)]

mod svg;

use microseg_core::addr::{parse_addr_entry, AddrSet};
use microseg_core::interval::IntervalSet;
use microseg_core::matrix::{matrix, Party};
use microseg_core::ports::PortSet;
use microseg_core::{Action, Policy, Term};
use std::collections::BTreeMap;

/// The errors of microseg-graph.
///
/// ```
/// let e = microseg_graph::GraphError::Layout("edge out of order".into());
/// assert_eq!(e.to_string(), "cannot lay out the graph: edge out of order");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// The layout engine gave up on the graph (it reports this by panicking).
    #[error("cannot lay out the graph: {0}")]
    Layout(String),
}

/// What a node stands for.
///
/// ```
/// assert_eq!(microseg_graph::NodeKind::GroupRole.as_str(), "group+role");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeKind {
    /// A named group that is not also a role.
    Group,
    /// A role with no group of the same name.
    Role,
    /// A group and the role named like it.
    GroupRole,
    /// Every address in no named group or role.
    Outside,
}

impl NodeKind {
    /// `group`, `role`, `group+role` or `outside`, as in the matrix.
    ///
    /// ```
    /// assert_eq!(microseg_graph::NodeKind::Outside.as_str(), "outside");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Group => "group",
            NodeKind::Role => "role",
            NodeKind::GroupRole => "group+role",
            NodeKind::Outside => "outside",
        }
    }
}

/// One node: a group, a role or `outside`.
///
/// ```
/// # let policy = microseg_core::Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n", microseg_core::document::Format::Toml, None).unwrap();
/// let g = microseg_graph::graph(&policy);
/// let web = g.node("web").unwrap();
/// assert_eq!(web.kind, microseg_graph::NodeKind::GroupRole);
/// assert_eq!(web.subtitle(), "role");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Group or role name, or `outside`.
    pub name: String,
    /// What it stands for.
    pub kind: NodeKind,
    /// The roles whose hosts overlap its addresses (empty: the policy filters
    /// nothing on these addresses).
    pub roles: Vec<String>,
}

impl Node {
    /// The second line of the node's label: `role`, `group: web, app`,
    /// `group, no role` or `every other address`.
    ///
    /// ```
    /// # let policy = microseg_core::Policy::from_str_as("version = 1\n[groups]\nadmin = [\"10.0.0.1\"]\n", microseg_core::document::Format::Toml, None).unwrap();
    /// let g = microseg_graph::graph(&policy);
    /// assert_eq!(g.node("admin").unwrap().subtitle(), "group, no role");
    /// assert_eq!(g.node("outside").unwrap().subtitle(), "every other address");
    /// ```
    pub fn subtitle(&self) -> String {
        match self.kind {
            NodeKind::Role | NodeKind::GroupRole => "role".into(),
            NodeKind::Outside => "every other address".into(),
            NodeKind::Group if self.roles.is_empty() => "group, no role".into(),
            NodeKind::Group => format!("group: {}", self.roles.join(", ")),
        }
    }

    /// True if some of its addresses hold a role (the policy filters them).
    ///
    /// ```
    /// # let policy = microseg_core::Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n", microseg_core::document::Format::Toml, None).unwrap();
    /// let g = microseg_graph::graph(&policy);
    /// assert!(g.node("web").unwrap().is_managed());
    /// assert!(!g.node("outside").unwrap().is_managed());
    /// ```
    pub fn is_managed(&self) -> bool {
        !self.roles.is_empty()
    }
}

/// An allowed connection: the ports of a matrix cell that are not summarised.
///
/// ```
/// # let policy = microseg_core::Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\napp = [\"10.0.0.2\"]\n[roles.web]\n[roles.app]\n[[flows]]\nfrom = \"web\"\nto = \"app\"\nports = [\"tcp/8080\", \"tcp/8443\"]\n", microseg_core::document::Format::Toml, None).unwrap();
/// let g = microseg_graph::graph(&policy);
/// let e = g.edge("web", "app").unwrap();
/// assert_eq!(e.always.specs(), ["tcp/8080", "tcp/8443"]);
/// assert!(e.sometimes.is_empty());
/// assert_eq!(e.label(), "tcp/8080,8443");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// Source node.
    pub from: String,
    /// Destination node.
    pub to: String,
    /// Drawn ports permitted for every address pair of the two.
    pub always: PortSet,
    /// Drawn ports permitted for some address pairs only (`*` in the label).
    pub sometimes: PortSet,
}

impl Edge {
    /// The edge's label, e.g. `tcp/80,443`, `tcp/6379*` or `tcp/9100 icmp*`.
    ///
    /// ```
    /// # let policy = microseg_core::Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\napp = [\"10.0.0.2\"]\n[roles.web]\n[roles.app]\n[[flows]]\nfrom = \"web\"\nto = \"app\"\nports = [\"tcp/8080\"]\n", microseg_core::document::Format::Toml, None).unwrap();
    /// let g = microseg_graph::graph(&policy);
    /// assert_eq!(g.edges[0].label(), "tcp/8080");
    /// ```
    pub fn label(&self) -> String {
        ports_label(&self.always, &self.sometimes)
    }

    /// True if every drawn port holds for some address pairs only (drawn dashed).
    ///
    /// ```
    /// # let policy = microseg_core::Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\napp = [\"10.0.0.2\"]\n[roles.web]\n[roles.app]\n[[flows]]\nfrom = \"web\"\nto = \"app\"\nports = [\"tcp/8080\"]\n", microseg_core::document::Format::Toml, None).unwrap();
    /// let g = microseg_graph::graph(&policy);
    /// assert!(!g.edges[0].is_partial());
    /// ```
    pub fn is_partial(&self) -> bool {
        self.always.is_empty()
    }
}

/// A deny or reject flow drawn from one of its sources to one of its destinations.
///
/// ```
/// # let policy = microseg_core::Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n[[flows]]\nname = \"no-telnet\"\nfrom = \"any\"\nto = \"web\"\nports = [\"tcp/23\"]\naction = \"reject\"\n", microseg_core::document::Format::Toml, None).unwrap();
/// let g = microseg_graph::graph(&policy);
/// let b = &g.blocks[0];
/// assert_eq!((b.from.as_str(), b.to.as_str()), ("outside", "web"));
/// assert_eq!(b.label(), "reject tcp/23");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Source node (`outside` for `any`).
    pub from: String,
    /// Destination node (`outside` for `any`).
    pub to: String,
    /// The flow's name.
    pub flow: String,
    /// Deny or reject.
    pub action: Action,
    /// The flow's ports.
    pub ports: PortSet,
    /// The flow logs what it matches.
    pub log: bool,
}

impl Block {
    /// `deny tcp/23` or `reject tcp/23`.
    ///
    /// ```
    /// # let policy = microseg_core::Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n[[flows]]\nfrom = \"any\"\nto = \"web\"\nports = [\"tcp/23\", \"tcp/21\"]\naction = \"deny\"\n", microseg_core::document::Format::Toml, None).unwrap();
    /// let g = microseg_graph::graph(&policy);
    /// assert_eq!(g.blocks[0].label(), "deny tcp/21,23");
    /// ```
    pub fn label(&self) -> String {
        format!(
            "{} {}",
            self.action.as_str(),
            ports_label(&self.ports, &PortSet::default())
        )
    }

    /// The second label line: the flow's name, and `logged` if it logs.
    ///
    /// ```
    /// # let policy = microseg_core::Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n[[flows]]\nname = \"no-telnet\"\nfrom = \"any\"\nto = \"web\"\nports = [\"tcp/23\"]\naction = \"reject\"\nlog = true\n", microseg_core::document::Format::Toml, None).unwrap();
    /// let g = microseg_graph::graph(&policy);
    /// assert_eq!(g.blocks[0].note(), "(no-telnet, logged)");
    /// ```
    pub fn note(&self) -> String {
        if self.log {
            format!("({}, logged)", self.flow)
        } else {
            format!("({})", self.flow)
        }
    }
}

/// Roles sharing one egress list, summarised in the caption.
///
/// ```
/// # let policy = microseg_core::Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n", microseg_core::document::Format::Toml, None).unwrap();
/// let g = microseg_graph::graph(&policy);
/// assert_eq!(g.summary.egress[0].roles, ["web"]);
/// assert_eq!(g.summary.egress[0].ports.specs(), ["tcp/80", "tcp/443", "udp/53", "udp/123"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Egress {
    /// The roles, sorted.
    pub roles: Vec<String>,
    /// Their egress ports (to addresses of no role).
    pub ports: PortSet,
}

/// An allow flow from `any`, drawn from `outside` only and summarised in the caption.
///
/// ```
/// # let policy = microseg_core::Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n[[flows]]\nname = \"public\"\nfrom = \"any\"\nto = \"web\"\nports = [\"tcp/443\"]\n", microseg_core::document::Format::Toml, None).unwrap();
/// let g = microseg_graph::graph(&policy);
/// let f = &g.summary.from_any[0];
/// assert_eq!((f.flow.as_str(), f.to.as_str()), ("public", "web"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromAny {
    /// The flow's name.
    pub flow: String,
    /// Its destinations as written (`web`, `web,app`).
    pub to: String,
    /// Its ports.
    pub ports: PortSet,
}

/// What is true of (nearly) every pair and therefore not drawn: the caption.
///
/// ```
/// # let policy = microseg_core::Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\nadmin = [\"10.0.9.0/24\"]\n[roles.web]\n", microseg_core::document::Format::Toml, None).unwrap();
/// let g = microseg_graph::graph(&policy);
/// assert!(g.summary.icmp);
/// assert_eq!(g.summary.unfiltered, ["admin", "outside"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    /// Nodes holding no address of any role; nothing among them is filtered.
    pub unfiltered: Vec<String>,
    /// The baseline accepts ICMP and ICMPv6 everywhere.
    pub icmp: bool,
    /// Egress of the roles to addresses of no role, grouped by equal port sets.
    pub egress: Vec<Egress>,
    /// Allow flows from `any`, drawn from `outside` only.
    pub from_any: Vec<FromAny>,
}

impl Summary {
    /// The caption lines, one statement each.
    ///
    /// ```
    /// # let policy = microseg_core::Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n[baseline]\negress = [\"udp/53\"]\n", microseg_core::document::Format::Toml, None).unwrap();
    /// let g = microseg_graph::graph(&policy);
    /// assert_eq!(g.summary.lines(), [
    ///     "icmp, icmpv6: allowed between all nodes (baseline)",
    ///     "traffic among outside: not filtered (no role there)",
    ///     "egress of web to any node of no role: udp/53",
    /// ]);
    /// ```
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.icmp {
            out.push("icmp, icmpv6: allowed between all nodes (baseline)".to_string());
        }
        if !self.unfiltered.is_empty() {
            out.push(format!(
                "traffic among {}: not filtered (no role there)",
                self.unfiltered.join(", ")
            ));
        }
        for e in &self.egress {
            out.push(format!(
                "egress of {} to any node of no role: {}",
                e.roles.join(", "),
                ports_label(&e.ports, &PortSet::default())
            ));
        }
        for f in &self.from_any {
            out.push(format!(
                "from any address to {}: {} (flow {}, drawn from outside only)",
                f.to,
                ports_label(&f.ports, &PortSet::default()),
                f.flow
            ));
        }
        out
    }
}

/// The picture of a policy: nodes, allow edges, deny/reject edges and the caption.
///
/// ```
/// # let policy = microseg_core::Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n[[flows]]\nfrom = \"any\"\nto = \"web\"\nports = [\"tcp/443\"]\n", microseg_core::document::Format::Toml, None).unwrap();
/// let g = microseg_graph::graph(&policy);
/// let names: Vec<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
/// assert_eq!(names, ["web", "outside"]);
/// assert_eq!(g.edge("outside", "web").unwrap().label(), "tcp/443");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    /// The policy's table name (the picture's title).
    pub table: String,
    /// Nodes, in matrix order (groups, roles without a group, `outside`).
    pub nodes: Vec<Node>,
    /// Allow edges, in matrix (row-major) order.
    pub edges: Vec<Edge>,
    /// Deny/reject edges, in flow order.
    pub blocks: Vec<Block>,
    /// What is not drawn.
    pub summary: Summary,
}

impl Graph {
    /// The node of a name.
    ///
    /// ```
    /// # let policy = microseg_core::Policy::from_str_as("version = 1\n", microseg_core::document::Format::Toml, None).unwrap();
    /// assert!(microseg_graph::graph(&policy).node("outside").is_some());
    /// ```
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The allow edge from one node to another, if drawn.
    ///
    /// ```
    /// # let policy = microseg_core::Policy::from_str_as("version = 1\n", microseg_core::document::Format::Toml, None).unwrap();
    /// assert!(microseg_graph::graph(&policy).edge("outside", "outside").is_none());
    /// ```
    pub fn edge(&self, from: &str, to: &str) -> Option<&Edge> {
        self.edges.iter().find(|e| e.from == from && e.to == to)
    }

    /// The caption: legend, then [`Summary::lines`].
    ///
    /// ```
    /// # let policy = microseg_core::Policy::from_str_as("version = 1\n", microseg_core::document::Format::Toml, None).unwrap();
    /// let caption = microseg_graph::graph(&policy).caption();
    /// assert!(caption[0].starts_with("policy microseg"));
    /// ```
    pub fn caption(&self) -> Vec<String> {
        let mut out = vec![
            format!("policy {}: who may open new connections to whom", self.table),
            "arrow: allowed, labelled with its ports; * = for some address pairs only (dashed if all are)".into(),
            "red dashed: a deny/reject flow".into(),
            "not drawn (true unless a red edge says otherwise):".into(),
        ];
        out.extend(self.summary.lines().into_iter().map(|l| format!("  {l}")));
        out
    }

    /// The graph in Graphviz DOT syntax, nodes and edges in a stable order.
    ///
    /// ```
    /// # let policy = microseg_core::Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n[[flows]]\nfrom = \"any\"\nto = \"web\"\nports = [\"tcp/443\"]\n", microseg_core::document::Format::Toml, None).unwrap();
    /// let dot = microseg_graph::graph(&policy).to_dot();
    /// assert!(dot.starts_with("digraph \"microseg\" {"));
    /// assert!(dot.contains("\"outside\" -> \"web\" [label=\"tcp/443\""));
    /// ```
    pub fn to_dot(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!("digraph {} {{\n", quote(&self.table)));
        let caption: Vec<String> = self.caption().iter().map(|l| escape(l)).collect();
        out.push_str(&format!(
            "  graph [rankdir=LR, nodesep=0.3, ranksep=0.5, fontname=\"Helvetica\", fontsize=11, labelloc=b, labeljust=l, label=\"{}\\l\"];\n",
            caption.join("\\l")
        ));
        out.push_str(
            "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fontsize=12];\n",
        );
        out.push_str("  edge [fontname=\"Helvetica\", fontsize=10];\n");
        for n in &self.nodes {
            let st = style::node(n);
            let shape = if n.kind == NodeKind::Outside {
                ", shape=ellipse"
            } else {
                ""
            };
            out.push_str(&format!(
                "  {} [label=\"{}\\n{}\"{shape}, color=\"{}\", fillcolor=\"{}\"];\n",
                quote(&n.name),
                escape(&n.name),
                escape(&n.subtitle()),
                st.stroke,
                st.fill
            ));
        }
        for e in &self.edges {
            let dashed = if e.is_partial() { ", style=dashed" } else { "" };
            out.push_str(&format!(
                "  {} -> {} [label=\"{}\", color=\"{c}\", fontcolor=\"{c}\"{dashed}];\n",
                quote(&e.from),
                quote(&e.to),
                escape(&e.label()),
                c = style::ALLOW
            ));
        }
        for b in &self.blocks {
            out.push_str(&format!(
                "  {} -> {} [label=\"{}\\n{}\", color=\"{c}\", fontcolor=\"{c}\", style=dashed, penwidth=2];\n",
                quote(&b.from),
                quote(&b.to),
                escape(&b.label()),
                escape(&b.note()),
                c = style::BLOCK
            ));
        }
        out.push_str("}\n");
        out
    }

    /// The graph as an SVG document, laid out left to right and rendered in-process.
    ///
    /// ```
    /// # let policy = microseg_core::Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n", microseg_core::document::Format::Toml, None).unwrap();
    /// let svg = microseg_graph::graph(&policy).to_svg().unwrap();
    /// assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    /// assert!(svg.contains(">web</tspan>"));
    /// ```
    pub fn to_svg(&self) -> Result<String, GraphError> {
        svg::render(self)
    }
}

/// Node and edge colours, shared by the DOT and SVG outputs.
mod style {
    use super::{Node, NodeKind};

    /// Allow edges.
    pub const ALLOW: &str = "#1e3a8a";
    /// Deny/reject edges.
    pub const BLOCK: &str = "#dc2626";

    /// A node's colours.
    pub struct NodeStyle {
        pub stroke: &'static str,
        pub fill: &'static str,
    }

    pub fn node(n: &Node) -> NodeStyle {
        match n.kind {
            NodeKind::Role | NodeKind::GroupRole => NodeStyle {
                stroke: "#1d4ed8",
                fill: "#dbeafe",
            },
            NodeKind::Group if n.is_managed() => NodeStyle {
                stroke: "#6d28d9",
                fill: "#ede9fe",
            },
            NodeKind::Group => NodeStyle {
                stroke: "#4b5563",
                fill: "#f3f4f6",
            },
            NodeKind::Outside => NodeStyle {
                stroke: "#4b5563",
                fill: "#ffffff",
            },
        }
    }
}

/// A DOT double-quoted string.
fn quote(s: &str) -> String {
    format!("\"{}\"", escape(s))
}

/// The inside of a DOT double-quoted string (`"` and `\` escaped, newlines as `\n`).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// Ports compactly, one protocol after the other: `tcp/22,80,443 udp/53 icmp`.
/// Ports of `sometimes` carry a `*`.
///
/// ```
/// use microseg_core::ports::PortSet;
/// let mut a = PortSet::default();
/// for s in ["tcp/80", "tcp/443", "tcp/2500-3300", "udp/53"] { a.add_spec(s).unwrap(); }
/// let mut s = PortSet::default();
/// for p in ["tcp/8080", "icmp"] { s.add_spec(p).unwrap(); }
/// assert_eq!(microseg_graph::ports_label(&a, &s), "tcp/80,443,2500-3300,8080* udp/53 icmp*");
/// assert_eq!(microseg_graph::ports_label(&PortSet::default(), &PortSet::default()), "");
/// ```
pub fn ports_label(always: &PortSet, sometimes: &PortSet) -> String {
    fn ranges(name: &str, a: &IntervalSet<u16>, s: &IntervalSet<u16>) -> Option<String> {
        let mut items: Vec<(u16, u16, &str)> =
            a.ranges().iter().map(|&(l, h)| (l, h, "")).collect();
        items.extend(s.ranges().iter().map(|&(l, h)| (l, h, "*")));
        if items.is_empty() {
            return None;
        }
        items.sort();
        let parts: Vec<String> = items
            .iter()
            .map(|&(l, h, mark)| {
                if l == h {
                    format!("{l}{mark}")
                } else {
                    format!("{l}-{h}{mark}")
                }
            })
            .collect();
        Some(format!("{name}/{}", parts.join(",")))
    }
    let mut out: Vec<String> = Vec::new();
    out.extend(ranges("tcp", &always.tcp, &sometimes.tcp));
    out.extend(ranges("udp", &always.udp, &sometimes.udp));
    for (name, a, s) in [
        ("icmp", always.icmp, sometimes.icmp),
        ("icmpv6", always.icmpv6, sometimes.icmpv6),
    ] {
        if a {
            out.push(name.into());
        } else if s {
            out.push(format!("{name}*"));
        }
    }
    out.join(" ")
}

/// The picture of a policy (see the crate documentation for what is drawn).
///
/// ```
/// # let policy = microseg_core::Policy::from_str_as("version = 1\n", microseg_core::document::Format::Toml, None).unwrap();
/// let g = microseg_graph::graph(&policy);
/// assert_eq!(g.nodes.len(), 1);
/// assert!(g.edges.is_empty());
/// ```
pub fn graph(policy: &Policy) -> Graph {
    let m = matrix(policy);
    let roles_of = |addrs: &AddrSet| -> Vec<String> {
        policy
            .roles
            .values()
            .filter(|r| r.hosts.intersects(addrs))
            .map(|r| r.name.clone())
            .collect()
    };
    let nodes: Vec<Node> = m
        .parties
        .iter()
        .map(|p| Node {
            name: p.name.clone(),
            kind: match p.kind.as_str() {
                "group" => NodeKind::Group,
                "role" => NodeKind::Role,
                "group+role" => NodeKind::GroupRole,
                _ => NodeKind::Outside,
            },
            roles: roles_of(&p.addrs),
        })
        .collect();
    let party = |name: &str| m.parties.iter().find(|p| p.name == name);

    let mut edges = Vec::new();
    for c in &m.cells {
        let (Some(a), Some(b)) = (party(&c.from), party(&c.to)) else {
            continue;
        };
        let s = summarised(policy, a, b);
        let always = c.always.difference(&s);
        let sometimes = c.sometimes.difference(&s);
        if !always.is_empty() || !sometimes.is_empty() {
            edges.push(Edge {
                from: c.from.clone(),
                to: c.to.clone(),
                always,
                sometimes,
            });
        }
    }

    let mut blocks = Vec::new();
    for f in policy.flows.iter().filter(|f| f.action != Action::Allow) {
        let from = term_nodes(&f.from.terms, &m.parties);
        let to = term_nodes(&f.to.terms, &m.parties);
        for a in &from {
            for b in &to {
                blocks.push(Block {
                    from: a.clone(),
                    to: b.clone(),
                    flow: f.name.clone(),
                    action: f.action,
                    ports: f.ports.clone(),
                    log: f.log,
                });
            }
        }
    }

    let unfiltered = nodes
        .iter()
        .filter(|n| !n.is_managed())
        .map(|n| n.name.clone())
        .collect();
    let mut by_ports: BTreeMap<PortSet, Vec<String>> = BTreeMap::new();
    for r in policy.roles.values().filter(|r| !r.egress.is_empty()) {
        by_ports
            .entry(r.egress.clone())
            .or_default()
            .push(r.name.clone());
    }
    let mut egress: Vec<Egress> = by_ports
        .into_iter()
        .map(|(ports, roles)| Egress { roles, ports })
        .collect();
    egress.sort_by(|a, b| a.roles.cmp(&b.roles));
    let from_any = policy
        .flows
        .iter()
        .filter(|f| f.action == Action::Allow && f.from.terms.contains(&Term::Any))
        .map(|f| FromAny {
            flow: f.name.clone(),
            to: f.to.label(),
            ports: f.ports.clone(),
        })
        .collect();

    Graph {
        table: policy.table.clone(),
        nodes,
        edges,
        blocks,
        summary: Summary {
            unfiltered,
            icmp: policy.baseline.icmp,
            egress,
            from_any,
        },
    }
}

/// The ports not drawn for the pair `a` → `b`: the rule of the crate documentation.
fn summarised(policy: &Policy, a: &Party, b: &Party) -> PortSet {
    let a_managed = a.addrs.intersects(&policy.managed);
    let b_managed = b.addrs.intersects(&policy.managed);
    // 1. Nothing between addresses of no role is filtered.
    if !a_managed && !b_managed {
        return PortSet::all();
    }
    let mut s = PortSet::default();
    // 2. Baseline ICMP.
    if policy.baseline.icmp {
        s.icmp = true;
        s.icmpv6 = true;
    }
    // 3. Egress of the roles of `a` to addresses of no role.
    if !b_managed {
        for r in policy
            .roles
            .values()
            .filter(|r| r.hosts.intersects(&a.addrs))
        {
            s = s.union(&r.egress);
        }
    }
    // 4. Allow flows from `any`, drawn from `outside` only.
    if a.kind != "outside" && !b.addrs.is_empty() {
        for f in &policy.flows {
            if f.action == Action::Allow
                && f.from.terms.contains(&Term::Any)
                && b.addrs.is_subset(&f.to.addrs)
            {
                s = s.union(&f.ports);
            }
        }
    }
    s
}

/// The nodes a flow endpoint names: a group or role term is its node, `any` is
/// `outside`, an address literal is every node whose addresses it overlaps.
fn term_nodes(terms: &[Term], parties: &[Party]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in terms {
        match t {
            Term::Any => out.push("outside".into()),
            Term::Group(n) | Term::Role(n) => out.push(n.clone()),
            Term::Address(a) => {
                let mut set = AddrSet::default();
                if let Ok(e) = parse_addr_entry(a) {
                    set.add(&e);
                }
                out.extend(
                    parties
                        .iter()
                        .filter(|p| p.addrs.intersects(&set))
                        .map(|p| p.name.clone()),
                );
            }
        }
    }
    // Matrix order, each once.
    let mut ordered: Vec<String> = parties
        .iter()
        .filter(|p| out.contains(&p.name))
        .map(|p| p.name.clone())
        .collect();
    ordered.dedup();
    ordered
}
