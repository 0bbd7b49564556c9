//! Node tree → [`PolicyDoc`], checking types and keys and recording positions.
//!
//! Every structural problem is collected; the caller gets all of them at once.

use crate::diag::{suggestion, Diagnostic};
use crate::doc::*;
use crate::document::{Key, Node, NodeKind, Pos};
use std::collections::{BTreeMap, HashMap};

/// The loader's output: the document as far as it could be read, its positions,
/// and the problems found.
pub(crate) struct Loaded {
    pub doc: PolicyDoc,
    pub positions: HashMap<String, Pos>,
    pub errors: Vec<Diagnostic>,
}

struct Reader {
    positions: HashMap<String, Pos>,
    errors: Vec<Diagnostic>,
}

const TOP_KEYS: &[&str] = &[
    "version",
    "table",
    "groups",
    "services",
    "roles",
    "flows",
    "baseline",
    "hardening",
];
const ROLE_KEYS: &[&str] = &["hosts", "egress"];
const FLOW_KEYS: &[&str] = &["name", "from", "to", "services", "ports", "action", "log"];
const BASELINE_KEYS: &[&str] = &["icmp", "egress", "log", "default"];
const LOG_KEYS: &[&str] = &["prefix", "rate", "burst", "group", "level"];
const HARDENING_KEYS: &[&str] = &["redirects", "rp_filter", "syncookies"];

pub(crate) fn load(root: &Node) -> Loaded {
    let mut r = Reader {
        positions: HashMap::new(),
        errors: Vec::new(),
    };
    let doc = r.top(root);
    Loaded {
        doc,
        positions: r.positions,
        errors: r.errors,
    }
}

impl Reader {
    fn err(&mut self, pos: Option<Pos>, msg: impl Into<String>) {
        self.errors.push(Diagnostic::error(pos, msg));
    }

    /// Records that `path` could not be read, so later checks stay quiet about it.
    fn broken(&mut self, path: &str) {
        self.positions
            .insert(format!("{path}#broken"), Pos { line: 0, col: 0 });
    }

    fn mark(&mut self, path: &str, pos: Option<Pos>) {
        if let Some(p) = pos {
            self.positions.insert(path.to_string(), p);
        }
    }

    fn table<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        allowed: Option<&[&str]>,
        what: &str,
    ) -> Option<&'n [(Key, Node)]> {
        self.mark(path, node.pos);
        match &node.kind {
            NodeKind::Table(entries) => {
                if let Some(allowed) = allowed {
                    for (k, _) in entries {
                        if !allowed.contains(&k.name.as_str()) {
                            let hint = suggestion(&k.name, allowed.iter().copied());
                            let hint = if hint.is_empty() {
                                format!("; allowed keys: {}", allowed.join(", "))
                            } else {
                                hint
                            };
                            self.err(k.pos, format!("unknown key \"{}\" in {what}{hint}", k.name));
                        }
                    }
                }
                Some(entries)
            }
            other => {
                self.err(
                    node.pos,
                    format!("{what} must be a table, found {}", other.type_name()),
                );
                None
            }
        }
    }

    fn string(&mut self, node: &Node, path: &str, what: &str) -> Option<String> {
        self.mark(path, node.pos);
        match &node.kind {
            NodeKind::Str(s) => Some(s.clone()),
            other => {
                self.err(
                    node.pos,
                    format!("{what} must be a string, found {}", other.type_name()),
                );
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, path: &str, what: &str) -> Option<bool> {
        self.mark(path, node.pos);
        match &node.kind {
            NodeKind::Bool(b) => Some(*b),
            NodeKind::Str(s) if s == "true" || s == "false" => {
                self.err(
                    node.pos,
                    format!("{what} must be a boolean: write {s} without quotes"),
                );
                None
            }
            other => {
                self.err(
                    node.pos,
                    format!("{what} must be true or false, found {}", other.type_name()),
                );
                None
            }
        }
    }

    fn int(&mut self, node: &Node, path: &str, what: &str) -> Option<i64> {
        self.mark(path, node.pos);
        match &node.kind {
            NodeKind::Int(i) => Some(*i),
            other => {
                self.err(
                    node.pos,
                    format!("{what} must be an integer, found {}", other.type_name()),
                );
                None
            }
        }
    }

    /// A list of strings; each element's position is recorded as `path[i]`.
    fn strings(
        &mut self,
        node: &Node,
        path: &str,
        what: &str,
        example: &str,
    ) -> Option<Vec<String>> {
        self.mark(path, node.pos);
        match &node.kind {
            NodeKind::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    match self.string(
                        item,
                        &format!("{path}[{i}]"),
                        &format!("each entry of {what}"),
                    ) {
                        Some(s) => out.push(s),
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            }
            NodeKind::Str(s) => {
                self.err(
                    node.pos,
                    format!("{what} must be a list: write [\"{s}\"] instead of \"{s}\""),
                );
                None
            }
            other => {
                self.err(
                    node.pos,
                    format!(
                        "{what} must be a list of strings like {example}, found {}",
                        other.type_name()
                    ),
                );
                None
            }
        }
    }

    fn one_or_many(&mut self, node: &Node, path: &str, what: &str) -> Option<OneOrMany> {
        self.mark(path, node.pos);
        match &node.kind {
            NodeKind::Str(s) => Some(OneOrMany::One(s.clone())),
            NodeKind::Array(_) => self
                .strings(node, path, what, "[\"web\", \"app\"]")
                .map(OneOrMany::Many),
            other => {
                self.err(
                    node.pos,
                    format!(
                        "{what} must be an endpoint name or a list of them (like \"web\" or [\"web\", \"10.0.0.5\"]), found {}",
                        other.type_name()
                    ),
                );
                None
            }
        }
    }

    fn top(&mut self, root: &Node) -> PolicyDoc {
        let mut doc = PolicyDoc::default();
        let Some(entries) = self.table(root, "", Some(TOP_KEYS), "the policy document") else {
            return doc;
        };
        let mut version_seen = false;
        for (k, v) in entries {
            self.mark(&format!("{}#key", k.name), k.pos);
            match k.name.as_str() {
                "version" => {
                    version_seen = true;
                    // A mistyped version is reported once; don't also call it unsupported.
                    doc.version = self.int(v, "version", "version").unwrap_or(1);
                }
                "table" => doc.table = self.string(v, "table", "table"),
                "groups" => {
                    doc.groups =
                        self.named_lists(v, "groups", "group", "[\"10.0.0.0/24\", \"10.0.1.5\"]")
                }
                "services" => {
                    doc.services =
                        self.named_lists(v, "services", "service", "[\"tcp/80\", \"udp/53\"]")
                }
                "roles" => doc.roles = self.roles(v),
                "flows" => doc.flows = self.flows(v),
                "baseline" => doc.baseline = self.baseline(v),
                "hardening" => doc.hardening = self.hardening(v),
                _ => {}
            }
        }
        if !version_seen {
            self.err(
                root.pos.or(Some(Pos { line: 1, col: 1 })),
                "missing required key \"version\": add `version = 1` at the top",
            );
            doc.version = 1;
        }
        doc
    }

    fn named_lists(
        &mut self,
        node: &Node,
        path: &str,
        what: &str,
        example: &str,
    ) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        let Some(entries) = self.table(node, path, None, path) else {
            return out;
        };
        for (k, v) in entries {
            let p = format!("{path}.{}", k.name);
            self.mark(&format!("{p}#key"), k.pos);
            if let Some(list) = self.strings(v, &p, &format!("{what} \"{}\"", k.name), example) {
                out.insert(k.name.clone(), list);
            } else {
                out.insert(k.name.clone(), Vec::new());
                self.broken(&p);
            }
        }
        out
    }

    fn roles(&mut self, node: &Node) -> BTreeMap<String, RoleDoc> {
        let mut out = BTreeMap::new();
        let Some(entries) = self.table(node, "roles", None, "roles") else {
            return out;
        };
        for (k, v) in entries {
            let p = format!("roles.{}", k.name);
            self.mark(&format!("{p}#key"), k.pos);
            let mut role = RoleDoc::default();
            if let Some(fields) =
                self.table(v, &p, Some(ROLE_KEYS), &format!("role \"{}\"", k.name))
            {
                for (fk, fv) in fields {
                    let fp = format!("{p}.{}", fk.name);
                    match fk.name.as_str() {
                        "hosts" => {
                            role.hosts = self.strings(fv, &fp, "hosts", "[\"web\", \"10.0.0.5\"]")
                        }
                        "egress" => {
                            role.egress =
                                self.strings(fv, &fp, "egress", "[\"udp/53\", \"tcp/443\"]")
                        }
                        _ => {}
                    }
                }
            }
            out.insert(k.name.clone(), role);
        }
        out
    }

    fn flows(&mut self, node: &Node) -> Vec<FlowDoc> {
        self.mark("flows", node.pos);
        let items = match &node.kind {
            NodeKind::Array(items) => items,
            other => {
                self.err(
                    node.pos,
                    format!(
                        "flows must be a list of tables (TOML: [[flows]]), found {}",
                        other.type_name()
                    ),
                );
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let p = format!("flows[{i}]");
            let Some(fields) = self.table(item, &p, Some(FLOW_KEYS), &format!("flow #{}", i + 1))
            else {
                continue;
            };
            let mut flow = FlowDoc {
                name: None,
                from: OneOrMany::Many(Vec::new()),
                to: OneOrMany::Many(Vec::new()),
                services: Vec::new(),
                ports: Vec::new(),
                action: None,
                log: None,
            };
            let (mut has_from, mut has_to) = (false, false);
            for (fk, fv) in fields {
                let fp = format!("{p}.{}", fk.name);
                self.mark(&format!("{fp}#key"), fk.pos);
                match fk.name.as_str() {
                    "name" => flow.name = self.string(fv, &fp, "flow name"),
                    "from" => {
                        has_from = true;
                        match self.one_or_many(fv, &fp, "from") {
                            Some(e) => flow.from = e,
                            None => self.broken(&fp),
                        }
                    }
                    "to" => {
                        has_to = true;
                        match self.one_or_many(fv, &fp, "to") {
                            Some(e) => flow.to = e,
                            None => self.broken(&fp),
                        }
                    }
                    "services" => {
                        flow.services = match &fv.kind {
                            NodeKind::Str(s) => {
                                self.mark(&fp, fv.pos);
                                self.mark(&format!("{fp}[0]"), fv.pos);
                                vec![s.clone()]
                            }
                            _ => self
                                .strings(fv, &fp, "services", "[\"http\", \"ssh\"]")
                                .unwrap_or_else(|| {
                                    self.broken(&fp);
                                    Vec::new()
                                }),
                        }
                    }
                    "ports" => {
                        flow.ports = match &fv.kind {
                            NodeKind::Str(s) => {
                                self.mark(&fp, fv.pos);
                                self.mark(&format!("{fp}[0]"), fv.pos);
                                vec![s.clone()]
                            }
                            _ => self
                                .strings(fv, &fp, "ports", "[\"tcp/8080\"]")
                                .unwrap_or_else(|| {
                                    self.broken(&fp);
                                    Vec::new()
                                }),
                        }
                    }
                    "action" => flow.action = self.string(fv, &fp, "action"),
                    "log" => flow.log = self.boolean(fv, &fp, "log"),
                    _ => {}
                }
            }
            if !has_from {
                self.broken(&format!("{p}.from"));
                self.err(
                    item.pos,
                    format!(
                        "flow #{} has no \"from\": add from = \"GROUP\" (or \"any\")",
                        i + 1
                    ),
                );
            }
            if !has_to {
                self.broken(&format!("{p}.to"));
                self.err(
                    item.pos,
                    format!(
                        "flow #{} has no \"to\": add to = \"GROUP\" (or \"any\")",
                        i + 1
                    ),
                );
            }
            out.push(flow);
        }
        out
    }

    fn baseline(&mut self, node: &Node) -> Option<BaselineDoc> {
        let fields = self.table(node, "baseline", Some(BASELINE_KEYS), "baseline")?;
        let mut b = BaselineDoc::default();
        for (k, v) in fields {
            let p = format!("baseline.{}", k.name);
            self.mark(&format!("{p}#key"), k.pos);
            match k.name.as_str() {
                "icmp" => b.icmp = self.boolean(v, &p, "baseline.icmp"),
                "egress" => {
                    b.egress = self.strings(v, &p, "baseline.egress", "[\"udp/53\", \"tcp/443\"]")
                }
                "default" => b.default = self.string(v, &p, "baseline.default"),
                "log" => {
                    b.log = match &v.kind {
                        NodeKind::Bool(x) => {
                            self.mark(&p, v.pos);
                            Some(LogDoc::Switch(*x))
                        }
                        NodeKind::Table(_) => self.log(v, &p).map(LogDoc::Settings),
                        other => {
                            self.err(
                                v.pos,
                                format!(
                                    "baseline.log must be false or a table like {{ prefix = \"microseg\", rate = \"10/second\" }}, found {}",
                                    other.type_name()
                                ),
                            );
                            None
                        }
                    }
                }
                _ => {}
            }
        }
        Some(b)
    }

    fn log(&mut self, node: &Node, path: &str) -> Option<LogSettingsDoc> {
        let fields = self.table(node, path, Some(LOG_KEYS), "log settings")?;
        let mut l = LogSettingsDoc::default();
        for (k, v) in fields {
            let p = format!("{path}.{}", k.name);
            self.mark(&format!("{p}#key"), k.pos);
            match k.name.as_str() {
                "prefix" => l.prefix = self.string(v, &p, "log prefix"),
                "rate" => l.rate = self.string(v, &p, "log rate"),
                "level" => l.level = self.string(v, &p, "log level"),
                "burst" => l.burst = self.int(v, &p, "log burst"),
                "group" => l.group = self.int(v, &p, "log group"),
                _ => {}
            }
        }
        Some(l)
    }

    fn hardening(&mut self, node: &Node) -> Option<HardeningDoc> {
        if let NodeKind::Bool(b) = node.kind {
            self.mark("hardening", node.pos);
            return Some(HardeningDoc::Switch(b));
        }
        if !matches!(node.kind, NodeKind::Table(_)) {
            self.err(
                node.pos,
                format!(
                    "hardening must be true or a table like {{ rp_filter = \"loose\" }}, found {}",
                    node.kind.type_name()
                ),
            );
            return None;
        }
        let fields = self.table(node, "hardening", Some(HARDENING_KEYS), "hardening")?;
        let mut h = HardeningSettingsDoc::default();
        for (k, v) in fields {
            let p = format!("hardening.{}", k.name);
            match k.name.as_str() {
                "redirects" => h.redirects = self.boolean(v, &p, "hardening.redirects"),
                "rp_filter" => h.rp_filter = self.string(v, &p, "hardening.rp_filter"),
                "syncookies" => h.syncookies = self.boolean(v, &p, "hardening.syncookies"),
                _ => {}
            }
        }
        Some(HardeningDoc::Settings(h))
    }
}
