//! The graphs of the examples: edges exactly the matrix cells under the
//! documented rule, deny/reject edges exactly the flows, DOT parseable, SVG
//! well-formed, and the pictures in docs/ equal to the current rendering.
//!
//! `MICROSEG_GRAPH_WRITE_DOCS=1 cargo test -p microseg-graph --test examples`
//! rewrites docs/three-tier.svg and docs/dual-stack.svg.

use microseg_core::addr::AddrSet;
use microseg_core::matrix::{matrix, Party};
use microseg_core::ports::PortSet;
use microseg_core::{Action, Policy, Term};
use microseg_graph::{graph, ports_label, Graph};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

const EXAMPLES: [&str; 2] = ["three-tier", "dual-stack"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn policy(name: &str) -> Policy {
    Policy::from_file(root().join("examples").join(format!("{name}.toml"))).unwrap()
}

fn ports(specs: &[&str]) -> PortSet {
    let mut p = PortSet::default();
    for s in specs {
        p.add_spec(s).unwrap();
    }
    p
}

/// The rule of the crate documentation, written again from its text: the ports
/// of the cell `a` → `b` that are stated once in the caption instead of drawn.
fn rule(p: &Policy, a: &Party, b: &Party) -> PortSet {
    let holds_role = |s: &AddrSet| p.roles.values().any(|r| r.hosts.intersects(s));
    if !holds_role(&a.addrs) && !holds_role(&b.addrs) {
        return PortSet::all();
    }
    let mut s = PortSet::default();
    if p.baseline.icmp {
        s = s.union(&ports(&["icmp", "icmpv6"]));
    }
    if !holds_role(&b.addrs) {
        for r in p.roles.values() {
            if r.hosts.intersects(&a.addrs) {
                s = s.union(&r.egress);
            }
        }
    }
    if a.name != "outside" {
        for f in &p.flows {
            let from_any = f.from.terms.contains(&Term::Any);
            if f.action == Action::Allow
                && from_any
                && !b.addrs.is_empty()
                && b.addrs.is_subset(&f.to.addrs)
            {
                s = s.union(&f.ports);
            }
        }
    }
    s
}

type Drawn = BTreeMap<(String, String), (PortSet, PortSet)>;

fn drawn(g: &Graph) -> Drawn {
    let mut out = Drawn::new();
    for e in &g.edges {
        let old = out.insert(
            (e.from.clone(), e.to.clone()),
            (e.always.clone(), e.sometimes.clone()),
        );
        assert!(old.is_none(), "two edges {} -> {}", e.from, e.to);
    }
    out
}

#[test]
fn edges_are_exactly_the_matrix_cells_under_the_rule() {
    for name in EXAMPLES {
        let p = policy(name);
        let m = matrix(&p);
        let g = graph(&p);
        let party = |n: &str| m.parties.iter().find(|x| x.name == n).unwrap();
        // Nodes: the matrix's rows, in order.
        let nodes: Vec<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
        let rows: Vec<&str> = m.parties.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(nodes, rows, "{name}");
        let mut expected = Drawn::new();
        for c in &m.cells {
            let s = rule(&p, party(&c.from), party(&c.to));
            let always = c.always.difference(&s);
            let sometimes = c.sometimes.difference(&s);
            if !always.is_empty() || !sometimes.is_empty() {
                expected.insert((c.from.clone(), c.to.clone()), (always, sometimes));
            }
            // Nothing the matrix permits is lost: it is drawn or summarised.
            let cell = c.always.union(&c.sometimes);
            let shown = g
                .edge(&c.from, &c.to)
                .map(|e| e.always.union(&e.sometimes))
                .unwrap_or_default();
            assert!(
                cell.is_subset(&shown.union(&s)),
                "{name}: {} -> {}",
                c.from,
                c.to
            );
            // And nothing is drawn that the matrix does not permit.
            assert!(shown.is_subset(&cell), "{name}: {} -> {}", c.from, c.to);
        }
        assert_eq!(drawn(&g), expected, "{name}");
        for e in &g.edges {
            assert_eq!(e.label(), ports_label(&e.always, &e.sometimes));
        }
    }
}

#[test]
fn three_tier_draws_the_guide_picture() {
    let g = graph(&policy("three-tier"));
    let edges: BTreeSet<(&str, &str, String)> = g
        .edges
        .iter()
        .map(|e| (e.from.as_str(), e.to.as_str(), e.label()))
        .collect();
    let expected: BTreeSet<(&str, &str, String)> = [
        ("outside", "web", "tcp/80,443"),
        ("web", "app", "tcp/8080"),
        ("app", "db", "tcp/3306,5432"),
        ("db", "backup", "tcp/2500-3300"),
        ("admin", "web", "tcp/22"),
        ("admin", "app", "tcp/22"),
        ("admin", "db", "tcp/22"),
    ]
    .into_iter()
    .map(|(a, b, l)| (a, b, l.to_string()))
    .collect();
    assert_eq!(edges, expected);
    assert!(g.blocks.is_empty());
    assert_eq!(
        g.summary.lines(),
        [
            "icmp, icmpv6: allowed between all nodes (baseline)",
            "traffic among admin, backup, outside: not filtered (no role there)",
            "egress of app, db, web to any node of no role: tcp/80,443 udp/53,123",
            "from any address to web: tcp/80,443 (flow public-web, drawn from outside only)",
        ]
    );
}

#[test]
fn dual_stack_draws_partial_ports_and_the_reject_flow() {
    let g = graph(&policy("dual-stack"));
    assert_eq!(g.edge("lb", "web").unwrap().label(), "tcp/443");
    let e = g.edge("lb", "servers").unwrap();
    assert_eq!(e.label(), "tcp/443*");
    assert!(e.is_partial());
    assert_eq!(g.edge("web", "api").unwrap().label(), "tcp/9000-9002");
    assert_eq!(g.edge("api", "store").unwrap().label(), "tcp/6379");
    // A group that may reach itself gets a self-edge.
    assert!(g.edge("servers", "servers").is_some());
    // Egress to nodes of no role is summarised, not drawn.
    assert!(g.edge("store", "outside").is_none());
    assert!(g.edge("web", "admin").is_none());
    assert!(!g.summary.icmp);
    assert_eq!(g.summary.egress.len(), 2);
}

#[test]
fn deny_and_reject_edges_are_the_flows() {
    for name in EXAMPLES {
        let p = policy(name);
        let g = graph(&p);
        let mut expected = BTreeSet::new();
        for f in p.flows.iter().filter(|f| f.action != Action::Allow) {
            for a in &f.from.terms {
                for b in &f.to.terms {
                    let node = |t: &Term| match t {
                        Term::Any => "outside".to_string(),
                        Term::Group(n) | Term::Role(n) => n.clone(),
                        Term::Address(a) => panic!("no address literals in the examples: {a}"),
                    };
                    let label = format!(
                        "{} {}",
                        f.action.as_str(),
                        ports_label(&f.ports, &PortSet::default())
                    );
                    expected.insert((node(a), node(b), f.name.clone(), label));
                }
            }
        }
        let got: BTreeSet<_> = g
            .blocks
            .iter()
            .map(|b| (b.from.clone(), b.to.clone(), b.flow.clone(), b.label()))
            .collect();
        assert_eq!(got, expected, "{name}");
        assert_eq!(got.len(), g.blocks.len(), "{name}: duplicate deny edges");
    }
    let g = graph(&policy("dual-stack"));
    assert_eq!(g.blocks.len(), 1);
    assert_eq!(g.blocks[0].label(), "reject tcp/23");
    assert_eq!(g.blocks[0].note(), "(no-telnet, logged)");
}

#[test]
fn address_literals_and_deny_flows() {
    let p = Policy::from_str_as(
        r#"
version = 1
[groups]
web = ["10.0.1.0/28"]
jump = ["10.0.9.1"]
[roles.web]
[[flows]]
name = "no-ftp"
from = ["10.0.1.5", "jump"]
to = "10.0.1.3"
ports = ["tcp/21"]
action = "deny"
[[flows]]
from = "jump"
to = "web"
ports = ["tcp/22"]
"#,
        microseg_core::document::Format::Toml,
        None,
    )
    .unwrap();
    let g = graph(&p);
    let got: Vec<(&str, &str, String)> = g
        .blocks
        .iter()
        .map(|b| (b.from.as_str(), b.to.as_str(), b.label()))
        .collect();
    assert_eq!(
        got,
        [
            ("jump", "web", "deny tcp/21".to_string()),
            ("web", "web", "deny tcp/21".to_string())
        ]
    );
    // The deny flow removes tcp/21 from the jump -> web cell for one host only.
    assert_eq!(g.edge("jump", "web").unwrap().label(), "tcp/22");
    assert!(g
        .to_dot()
        .contains("\"jump\" -> \"web\" [label=\"deny tcp/21\\n(no-ftp)\""));
    g.to_svg().unwrap();
}

#[test]
fn dot_is_parseable_and_stable() {
    for name in EXAMPLES {
        let g = graph(&policy(name));
        let dot = g.to_dot();
        assert_eq!(dot, graph(&policy(name)).to_dot());
        let mut parser = layout::gv::DotParser::new(&dot);
        let ast = parser
            .process()
            .unwrap_or_else(|e| panic!("{name}: {e}\n{dot}"));
        let mut builder = layout::gv::GraphBuilder::new();
        builder.visit_graph(&ast);
        let mut vg = builder.get();
        assert_eq!(vg.num_nodes(), g.nodes.len());
        let mut svg = layout::backends::svg::SVGWriter::new();
        vg.do_it(false, false, false, &mut svg);
        for n in &g.nodes {
            assert!(dot.contains(&format!("  \"{}\" [label=\"{}\\n", n.name, n.name)));
        }
        for e in &g.edges {
            assert!(dot.contains(&format!(
                "  \"{}\" -> \"{}\" [label=\"{}\"",
                e.from,
                e.to,
                e.label()
            )));
        }
        assert_eq!(dot.matches(" -> ").count(), g.edges.len() + g.blocks.len());
    }
}

#[test]
fn dot_quotes_names() {
    let p = Policy::from_str_as(
        "version = 1\ntable = \"my-table\"\n[groups]\nweb-1 = [\"10.0.0.1\"]\n",
        microseg_core::document::Format::Toml,
        None,
    )
    .unwrap();
    let dot = graph(&p).to_dot();
    assert!(dot.starts_with("digraph \"my-table\" {"));
    assert!(dot.contains("  \"web-1\" [label=\"web-1\\ngroup, no role\""));
    layout::gv::DotParser::new(&dot).process().unwrap();
}

#[test]
fn svg_is_well_formed_and_names_every_node() {
    for name in EXAMPLES {
        let g = graph(&policy(name));
        let svg = g.to_svg().unwrap();
        assert!(svg.starts_with("<svg"), "{name}");
        assert_eq!(svg, g.to_svg().unwrap(), "{name}: rendering is not stable");
        let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let texts: BTreeSet<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("tspan"))
            .filter_map(|n| n.text())
            .collect();
        for n in &g.nodes {
            assert!(
                texts.contains(n.name.as_str()),
                "{name}: node {} not in the SVG",
                n.name
            );
        }
        for e in &g.edges {
            assert!(
                texts.contains(e.label().as_str()),
                "{name}: label {} not in the SVG",
                e.label()
            );
        }
        for b in &g.blocks {
            assert!(
                texts.contains(b.label().as_str()),
                "{name}: label {} not in the SVG",
                b.label()
            );
        }
        // One arrow per edge (layout-rs turns back edges around: their head is at the start).
        let arrows = doc.descendants().filter(|n| {
            n.has_tag_name("path")
                && (n.attribute("marker-end").is_some() || n.attribute("marker-start").is_some())
        });
        assert_eq!(arrows.count(), g.edges.len() + g.blocks.len(), "{name}");
    }
}

#[test]
fn an_estate_with_nothing_allowed_still_renders() {
    let p = Policy::from_str_as(
        "version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n[baseline]\nicmp = false\negress = []\n",
        microseg_core::document::Format::Toml,
        None,
    )
    .unwrap();
    let g = graph(&p);
    assert!(g.edges.is_empty());
    let svg = g.to_svg().unwrap();
    roxmltree::Document::parse(&svg).unwrap();
    assert!(svg.contains(">web</tspan>") && svg.contains(">outside</tspan>"));
}

#[test]
fn docs_pictures_are_current() {
    let write = std::env::var_os("MICROSEG_GRAPH_WRITE_DOCS").is_some();
    for name in EXAMPLES {
        let svg = graph(&policy(name)).to_svg().unwrap();
        let path = root().join("docs").join(format!("{name}.svg"));
        if write {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &svg).unwrap();
        } else {
            let current = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                current == svg,
                "{} is stale: run MICROSEG_GRAPH_WRITE_DOCS=1 cargo test -p microseg-graph --test examples",
                path.display()
            );
        }
    }
}

#[test]
fn dense_estates_with_cycles_render() {
    // Every role reaches every role (both ways, and itself), some through
    // address literals, plus deny flows both ways: many cycles and self-edges.
    let names = ["a", "b", "c", "d", "e", "f"];
    let mut doc = String::from("version = 1\n[groups]\n");
    for (i, n) in names.iter().enumerate() {
        doc.push_str(&format!(
            "{n} = [\"10.0.{i}.0/24\", \"2001:db8:{i}::/64\"]\n"
        ));
    }
    doc.push_str("ab = [\"@a\", \"@b\"]\n");
    for n in names {
        doc.push_str(&format!("[roles.{n}]\n"));
    }
    for (i, x) in names.iter().enumerate() {
        for (j, y) in names.iter().enumerate() {
            doc.push_str(&format!(
                "[[flows]]\nfrom = \"{x}\"\nto = \"{y}\"\nports = [\"tcp/{}\"]\n",
                1000 + i * 10 + j
            ));
        }
    }
    doc.push_str("[[flows]]\nfrom = \"10.0.1.7\"\nto = [\"ab\", \"any\"]\nports = [\"tcp/23\"]\naction = \"deny\"\n");
    doc.push_str("[[flows]]\nfrom = \"f\"\nto = \"a\"\nports = [\"udp/9\"]\naction = \"reject\"\n");
    let p = Policy::from_str_as(&doc, microseg_core::document::Format::Toml, None).unwrap();
    let g = graph(&p);
    assert!(g.edges.len() > 36);
    // 10.0.1.7 lies in b and ab; `any` is drawn as outside.
    let blocks: Vec<(&str, &str)> = g
        .blocks
        .iter()
        .map(|b| (b.from.as_str(), b.to.as_str()))
        .collect();
    assert_eq!(
        blocks,
        [
            ("ab", "ab"),
            ("ab", "outside"),
            ("b", "ab"),
            ("b", "outside"),
            ("f", "a")
        ]
    );
    let svg = g.to_svg().unwrap();
    roxmltree::Document::parse(&svg).unwrap();
    layout::gv::DotParser::new(&g.to_dot()).process().unwrap();
}
