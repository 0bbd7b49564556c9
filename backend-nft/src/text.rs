//! The libnftables JSON commands printed as an nft script (`nft -f -`).
//!
//! The script is printed from the same [`Nftables`] document that `nft -j`
//! loads, so the two cannot drift apart: one lowering, two spellings.

use nftables::expr::{Expression, MetaKey, NamedExpression, Payload, SetItem, Verdict};
use nftables::schema::{NfCmd, NfListObject, NfObject, Nftables};
use nftables::stmt::{Counter, Operator, Statement};
use std::fmt::Write as _;

/// The lower-case name serde gives a schema enum (`"l4proto"`, `"tcp reset"`).
macro_rules! name_of {
    ($v:expr) => {
        match serde_json::to_value($v) {
            Ok(serde_json::Value::String(s)) => s,
            other => unsupported!(&other.ok()),
        }
    };
}

/// Something this printer does not know: printed so that nft refuses the
/// script rather than loading a rule with a missing match.
macro_rules! unsupported {
    ($v:expr) => {
        format!(
            "<unsupported {}>",
            serde_json::to_string($v).unwrap_or_else(|e| e.to_string())
        )
    };
}

fn is_interface(e: &Expression) -> bool {
    matches!(
        e,
        Expression::Named(NamedExpression::Meta(m))
            if matches!(m.key, MetaKey::Iif | MetaKey::Oif | MetaKey::Iifname | MetaKey::Oifname)
    )
}

fn expr(e: &Expression, quote: bool) -> String {
    match e {
        Expression::String(s) if quote => format!("\"{s}\""),
        Expression::String(s) => s.to_string(),
        Expression::Number(n) => n.to_string(),
        Expression::Boolean(b) => b.to_string(),
        Expression::List(v) => v
            .iter()
            .map(|x| expr(x, quote))
            .collect::<Vec<_>>()
            .join(","),
        Expression::Range(r) => {
            format!("{}-{}", expr(&r.range[0], quote), expr(&r.range[1], quote))
        }
        Expression::Verdict(v) => match v {
            Verdict::Accept => "accept".into(),
            Verdict::Drop => "drop".into(),
            Verdict::Continue => "continue".into(),
            Verdict::Return => "return".into(),
            Verdict::Jump(t) => format!("jump {}", t.target),
            Verdict::Goto(t) => format!("goto {}", t.target),
        },
        Expression::Named(n) => match n {
            NamedExpression::Set(items) => {
                let maps = items.iter().any(|i| matches!(i, SetItem::Mapping(..)));
                let items: Vec<String> = items
                    .iter()
                    .map(|i| match i {
                        SetItem::Element(x) => expr(x, quote),
                        SetItem::Mapping(k, v) => {
                            format!("{} : {}", expr(k, quote), expr(v, quote))
                        }
                        other => unsupported!(other),
                    })
                    .collect();
                if maps && items.len() > 4 {
                    // Verdict maps can be long: four elements to a line.
                    let lines: Vec<String> = items.chunks(4).map(|c| c.join(", ")).collect();
                    format!("{{ {} }}", lines.join(",\n\t\t\t"))
                } else {
                    format!("{{ {} }}", items.join(", "))
                }
            }
            NamedExpression::Concat(parts) => parts
                .iter()
                .map(|x| expr(x, quote))
                .collect::<Vec<_>>()
                .join(" . "),
            NamedExpression::Prefix(p) => format!("{}/{}", expr(&p.addr, false), p.len),
            NamedExpression::Payload(Payload::PayloadField(f)) => {
                format!("{} {}", f.protocol, f.field)
            }
            NamedExpression::Meta(m) => match m.key {
                MetaKey::Iif | MetaKey::Oif => name_of!(&m.key),
                k => format!("meta {}", name_of!(&k)),
            },
            NamedExpression::CT(ct) if ct.family.is_none() && ct.dir.is_none() => {
                format!("ct {}", ct.key)
            }
            other => unsupported!(other),
        },
        other => unsupported!(other),
    }
}

fn statement(s: &Statement) -> String {
    match s {
        Statement::Match(m) => {
            let left = expr(&m.left, false);
            let right = expr(&m.right, is_interface(&m.left));
            match m.op {
                Operator::EQ | Operator::IN => format!("{left} {right}"),
                Operator::NEQ => format!("{left} != {right}"),
                other => unsupported!(&other),
            }
        }
        Statement::Counter(Counter::Anonymous(None)) => "counter".into(),
        Statement::Counter(Counter::Anonymous(Some(c))) => format!(
            "counter packets {} bytes {}",
            c.packets.unwrap_or(0),
            c.bytes.unwrap_or(0)
        ),
        Statement::VerdictMap(v) => {
            format!("{} vmap {}", expr(&v.key, false), expr(&v.data, false))
        }
        Statement::Jump(t) => format!("jump {}", t.target),
        Statement::Goto(t) => format!("goto {}", t.target),
        Statement::Accept(_) => "accept".into(),
        Statement::Drop(_) => "drop".into(),
        Statement::Reject(None) => "reject".into(),
        Statement::Reject(Some(r)) => match (&r._type, &r.expr) {
            (None, None) => "reject".into(),
            (Some(t), None) => format!("reject with {}", name_of!(t)),
            (Some(t), Some(code)) => format!("reject with {} {}", name_of!(t), name_of!(code)),
            (None, Some(_)) => unsupported!(s),
        },
        Statement::Limit(l) if l.inv != Some(true) => {
            let unit = l
                .rate_unit
                .as_deref()
                .map(|u| format!(" {u}"))
                .unwrap_or_default();
            let per = l.per.as_deref().unwrap_or("second");
            let mut t = format!("limit rate {}{unit}/{per}", l.rate);
            if let Some(b) = l.burst {
                let bu = if unit.is_empty() {
                    "packets".to_string()
                } else {
                    l.burst_unit.as_deref().unwrap_or("bytes").to_string()
                };
                let _ = write!(t, " burst {b} {bu}");
            }
            t
        }
        Statement::Log(None) => "log".into(),
        Statement::Log(Some(l))
            if l.flags.is_none() && l.snaplen.is_none() && l.queue_threshold.is_none() =>
        {
            let mut t = String::from("log");
            if let Some(p) = &l.prefix {
                let _ = write!(t, " prefix \"{p}\"");
            }
            if let Some(g) = l.group {
                let _ = write!(t, " group {g}");
            }
            if let Some(level) = &l.level {
                let _ = write!(t, " level {}", name_of!(level));
            }
            t
        }
        other => unsupported!(other),
    }
}

/// Statements as one line of nft text.
pub(crate) fn statements(stmts: &[Statement]) -> String {
    stmts.iter().map(statement).collect::<Vec<_>>().join(" ")
}

/// Prints a set's elements, four to a line.
fn elements(items: &[Expression]) -> String {
    let parts: Vec<String> = items.iter().map(|e| expr(e, false)).collect();
    parts
        .chunks(4)
        .map(|c| c.join(", "))
        .collect::<Vec<_>>()
        .join(",\n\t\t\t     ")
}

/// Prints the document as an nft script.
pub(crate) fn print(doc: &Nftables, header: &str) -> String {
    let mut prelude = Vec::new();
    let mut block_table: Option<String> = None;
    let mut sets = Vec::new();
    let mut chains: Vec<(String, String, Vec<String>)> = Vec::new();
    let mut other = Vec::new();
    for obj in doc.objects.iter() {
        match obj {
            NfObject::CmdObject(NfCmd::Add(NfListObject::Table(t))) => {
                let family = name_of!(&t.family);
                if let Some(prev) = block_table.replace(format!("table {family} {}", t.name)) {
                    prelude.push(prev);
                }
            }
            NfObject::CmdObject(NfCmd::Delete(NfListObject::Table(t))) => {
                if let Some(prev) = block_table.take() {
                    prelude.push(prev);
                }
                prelude.push(format!("delete table {} {}", name_of!(&t.family), t.name));
            }
            NfObject::CmdObject(NfCmd::Add(NfListObject::Set(s))) => {
                let mut t = format!("\tset {} {{\n\t\ttype {}\n", s.name, name_of!(&s.set_type));
                if let Some(size) = s.size {
                    let _ = writeln!(t, "\t\tsize {size}");
                }
                if let Some(flags) = &s.flags {
                    let mut f: Vec<String> = flags.iter().map(|f| name_of!(f)).collect();
                    f.sort();
                    let _ = writeln!(t, "\t\tflags {}", f.join(","));
                }
                if let Some(elem) = &s.elem {
                    let _ = writeln!(t, "\t\telements = {{ {} }}", elements(elem));
                }
                t.push_str("\t}\n");
                sets.push(t);
            }
            NfObject::CmdObject(NfCmd::Add(NfListObject::Map(m)))
                if crate::lower::is_verdict_type(&m.map) =>
            {
                // nft-syntax: map in4_range { type ipv4_addr : verdict; flags interval; elements = { … } }
                let mut t = format!(
                    "\tmap {} {{\n\t\ttype {} : verdict\n",
                    m.name,
                    name_of!(&m.set_type)
                );
                if let Some(size) = m.size {
                    let _ = writeln!(t, "\t\tsize {size}");
                }
                if let Some(flags) = &m.flags {
                    let mut f: Vec<String> = flags.iter().map(|f| name_of!(f)).collect();
                    f.sort();
                    let _ = writeln!(t, "\t\tflags {}", f.join(","));
                }
                if let Some(elem) = &m.elem {
                    let items: Vec<String> = elem
                        .iter()
                        .map(|e| match e {
                            Expression::List(kv) if kv.len() == 2 => {
                                format!("{} : {}", expr(&kv[0], false), expr(&kv[1], false))
                            }
                            other => unsupported!(other),
                        })
                        .collect();
                    let lines: Vec<String> = items.chunks(4).map(|c| c.join(", ")).collect();
                    let _ = writeln!(t, "\t\telements = {{ {} }}", lines.join(",\n\t\t\t     "));
                }
                t.push_str("\t}\n");
                sets.push(t);
            }
            NfObject::CmdObject(NfCmd::Add(NfListObject::Chain(c))) => {
                let mut head = String::new();
                if let (Some(ty), Some(hook)) = (&c._type, &c.hook) {
                    let prio = match c.prio {
                        Some(0) | None => "filter".to_string(),
                        Some(p) => p.to_string(),
                    };
                    let _ = write!(
                        head,
                        "type {} hook {} priority {prio};",
                        name_of!(ty),
                        name_of!(hook)
                    );
                    if let Some(p) = &c.policy {
                        let _ = write!(head, " policy {};", name_of!(p));
                    }
                }
                chains.push((c.name.to_string(), head, Vec::new()));
            }
            NfObject::CmdObject(NfCmd::Add(NfListObject::Rule(r))) => {
                let mut line: Vec<String> = r.expr.iter().map(statement).collect();
                if let Some(c) = &r.comment {
                    line.push(format!("comment \"{c}\""));
                }
                let line = line.join(" ");
                match chains.iter_mut().find(|(name, _, _)| *name == r.chain) {
                    Some((_, _, rules)) => {
                        // A `# label` line above each run of rules from one flow or baseline item.
                        let label = r.comment.as_deref().unwrap_or("");
                        let prev = rules
                            .iter()
                            .rev()
                            .find_map(|l: &String| l.strip_prefix("# "));
                        if !label.is_empty() && prev != Some(label) {
                            rules.push(format!("# {label}"));
                        }
                        rules.push(line);
                    }
                    None => other.push(format!("add rule inet {} {} {line}", r.table, r.chain)),
                }
            }
            o => other.push(unsupported!(o)),
        }
    }
    let mut out = String::new();
    for line in header.lines() {
        let _ = writeln!(out, "# {line}");
    }
    for line in &prelude {
        let _ = writeln!(out, "{line}");
    }
    if let Some(table) = block_table {
        let _ = writeln!(out, "{table} {{");
        let mut first = true;
        for s in &sets {
            if !first {
                out.push('\n');
            }
            first = false;
            out.push_str(s);
        }
        for (name, head, rules) in &chains {
            if !first {
                out.push('\n');
            }
            first = false;
            let _ = writeln!(out, "\tchain {name} {{");
            if !head.is_empty() {
                let _ = writeln!(out, "\t\t{head}");
            }
            for r in rules {
                let _ = writeln!(out, "\t\t{r}");
            }
            out.push_str("\t}\n");
        }
        out.push_str("}\n");
    }
    for line in &other {
        let _ = writeln!(out, "{line}");
    }
    out
}
