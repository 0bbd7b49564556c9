//! TOML → [`Node`], using the span-preserving `toml::de::DeTable` parser.
//!
//! Positions come from the byte spans `toml` records for every key and value:
//! a table opened by a `[header]` is located at its `[`, an implicit table
//! (from `[a.b]` or a dotted key `a.b = 1`) at the key that created it, and the
//! root table at 1:1. Entries are returned in document order (sorted by the
//! position of their key), whatever the map order of the `toml` crate is.

use std::ops::Range;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::{pos_of_offset, Key, Node, NodeKind, SyntaxError};

/// Parses a TOML document into a [`Node`] table.
pub(super) fn parse(text: &str) -> Result<Node, SyntaxError> {
    let root = DeTable::parse(text).map_err(|e| SyntaxError {
        pos: e.span().map(|s| pos_of_offset(text, s.start)),
        message: one_line(e.message()),
    })?;
    let span = root.span();
    table(text, root.get_ref(), span)
}

/// Converts a `toml` table (with the span of the table itself) to a [`Node`].
fn table(text: &str, t: &DeTable<'_>, span: Range<usize>) -> Result<Node, SyntaxError> {
    let mut entries: Vec<(&Spanned<_>, &Spanned<DeValue<'_>>)> = t.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    let mut out = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        let key = Key {
            name: k.get_ref().to_string(),
            pos: Some(pos_of_offset(text, k.span().start)),
        };
        out.push((key, value(text, v)?));
    }
    Ok(Node {
        pos: Some(pos_of_offset(text, span.start)),
        kind: NodeKind::Table(out),
    })
}

/// Converts one spanned `toml` value to a [`Node`].
///
/// Recursion is bounded: the `toml` parser itself rejects documents nested
/// more deeply than its recursion limit.
fn value(text: &str, v: &Spanned<DeValue<'_>>) -> Result<Node, SyntaxError> {
    let span = v.span();
    let pos = Some(pos_of_offset(text, span.start));
    let kind = match v.get_ref() {
        DeValue::String(s) => NodeKind::Str(s.to_string()),
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => NodeKind::Int(n),
            Err(_) => {
                return Err(SyntaxError {
                    pos,
                    message: format!("integer {i} does not fit in 64 bits"),
                })
            }
        },
        DeValue::Float(f) => match f.as_str().parse::<f64>() {
            Ok(x) if x.is_finite() || f.as_str().contains("inf") || f.as_str().contains("nan") => {
                NodeKind::Float(x)
            }
            _ => {
                return Err(SyntaxError {
                    pos,
                    message: format!("float {f} is out of range"),
                })
            }
        },
        DeValue::Boolean(b) => NodeKind::Bool(*b),
        DeValue::Datetime(d) => NodeKind::Other(format!("TOML date/time {d}")),
        DeValue::Array(a) => {
            let items = a
                .iter()
                .map(|item| value(text, item))
                .collect::<Result<Vec<_>, _>>()?;
            NodeKind::Array(items)
        }
        DeValue::Table(t) => return table(text, t, span),
    };
    Ok(Node { pos, kind })
}

/// Collapses a possibly multi-line message into one line.
fn one_line(message: &str) -> String {
    let parts: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if parts.is_empty() {
        "invalid TOML".to_string()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::super::Pos;
    use super::*;

    fn p(line: u32, col: u32) -> Option<Pos> {
        Some(Pos { line, col })
    }

    fn entries(n: &Node) -> &[(Key, Node)] {
        match &n.kind {
            NodeKind::Table(e) => e,
            other => panic!("not a table: {other:?}"),
        }
    }

    fn get<'a>(n: &'a Node, name: &str) -> &'a Node {
        entries(n)
            .iter()
            .find(|(k, _)| k.name == name)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("no key {name}"))
    }

    fn key<'a>(n: &'a Node, name: &str) -> &'a Key {
        entries(n)
            .iter()
            .find(|(k, _)| k.name == name)
            .map(|(k, _)| k)
            .unwrap_or_else(|| panic!("no key {name}"))
    }

    #[test]
    fn scalars_and_positions() {
        let text = "version = 1\nname = \"x\"\npi = 3.5\non = true\nhex = 0xff\n";
        let n = parse(text).unwrap();
        assert_eq!(n.pos, p(1, 1));
        let names: Vec<_> = entries(&n).iter().map(|(k, _)| k.name.as_str()).collect();
        assert_eq!(names, ["version", "name", "pi", "on", "hex"]);
        assert_eq!(get(&n, "version").kind, NodeKind::Int(1));
        assert_eq!(get(&n, "version").pos, p(1, 11));
        assert_eq!(key(&n, "name").pos, p(2, 1));
        assert_eq!(get(&n, "name").kind, NodeKind::Str("x".into()));
        assert_eq!(get(&n, "name").pos, p(2, 8));
        assert_eq!(get(&n, "pi").kind, NodeKind::Float(3.5));
        assert_eq!(get(&n, "on").kind, NodeKind::Bool(true));
        assert_eq!(get(&n, "hex").kind, NodeKind::Int(255));
    }

    #[test]
    fn document_order_is_kept() {
        let n = parse("zeta = 1\nalpha = 2\n[mid]\nb = 1\na = 2\n[aaa]\n").unwrap();
        let names: Vec<_> = entries(&n).iter().map(|(k, _)| k.name.as_str()).collect();
        assert_eq!(names, ["zeta", "alpha", "mid", "aaa"]);
        let mid = get(&n, "mid");
        let names: Vec<_> = entries(mid).iter().map(|(k, _)| k.name.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
    }

    #[test]
    fn nested_positions() {
        let text = "\
[zones.web]
cidrs = [\"10.0.0.0/8\", \"192.168.0.0/16\"]

[[rules]]
from = \"web\"
ports = { tcp = [80, 443] }

[[rules]]
a.b.c = -7
";
        let n = parse(text).unwrap();
        let zones = get(&n, "zones");
        assert_eq!(key(&n, "zones").pos, p(1, 2));
        assert_eq!(zones.pos, p(1, 2)); // implicit table: at the key creating it
        assert_eq!(key(zones, "web").pos, p(1, 8));
        let web = get(zones, "web");
        assert_eq!(web.pos, p(1, 1)); // header table: at its '['
        let cidrs = get(web, "cidrs");
        assert_eq!(cidrs.pos, p(2, 9));
        let NodeKind::Array(items) = &cidrs.kind else {
            panic!()
        };
        assert_eq!(items[1].pos, p(2, 24));

        let rules = get(&n, "rules");
        assert_eq!(key(&n, "rules").pos, p(4, 3));
        let NodeKind::Array(rules) = &rules.kind else {
            panic!()
        };
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].pos, p(4, 1));
        assert_eq!(rules[1].pos, p(8, 1));
        let ports = get(&rules[0], "ports");
        assert_eq!(ports.pos, p(6, 9));
        assert_eq!(key(ports, "tcp").pos, p(6, 11));
        let NodeKind::Array(tcp) = &get(ports, "tcp").kind else {
            panic!()
        };
        assert_eq!(tcp[1].pos, p(6, 22));
        assert_eq!(tcp[1].kind, NodeKind::Int(443));
        let a = get(&rules[1], "a");
        assert_eq!(key(&rules[1], "a").pos, p(9, 1));
        let c = get(get(a, "b"), "c");
        assert_eq!(key(get(a, "b"), "c").pos, p(9, 5));
        assert_eq!(c.kind, NodeKind::Int(-7));
        assert_eq!(c.pos, p(9, 9));
    }

    #[test]
    fn unicode_columns() {
        let text = "\"clé\" = \"héhé\"\nx = { \"ü\" = 'ñ', y = 2 }\n";
        let n = parse(text).unwrap();
        assert_eq!(key(&n, "clé").pos, p(1, 1));
        assert_eq!(get(&n, "clé").pos, p(1, 9));
        assert_eq!(get(&n, "clé").kind, NodeKind::Str("héhé".into()));
        let x = get(&n, "x");
        assert_eq!(key(x, "y").pos, p(2, 18));
        assert_eq!(get(x, "y").pos, p(2, 22));
    }

    #[test]
    fn dates_are_other() {
        let n = parse("d = 1979-05-27\nt = 07:32:00\n").unwrap();
        let NodeKind::Other(desc) = &get(&n, "d").kind else {
            panic!()
        };
        assert!(desc.contains("1979-05-27"), "{desc}");
        assert!(matches!(get(&n, "t").kind, NodeKind::Other(_)));
        assert_eq!(get(&n, "t").pos, p(2, 5));
    }

    #[test]
    fn special_numbers() {
        let n =
            parse("a = inf\nb = -inf\nc = nan\nd = 1_000\ne = +5\nf = 0b101\ng = 0o17\n").unwrap();
        assert_eq!(get(&n, "a").kind, NodeKind::Float(f64::INFINITY));
        assert_eq!(get(&n, "b").kind, NodeKind::Float(f64::NEG_INFINITY));
        assert!(matches!(get(&n, "c").kind, NodeKind::Float(x) if x.is_nan()));
        assert_eq!(get(&n, "d").kind, NodeKind::Int(1000));
        assert_eq!(get(&n, "e").kind, NodeKind::Int(5));
        assert_eq!(get(&n, "f").kind, NodeKind::Int(5));
        assert_eq!(get(&n, "g").kind, NodeKind::Int(15));
        let n = parse("m = -9223372036854775808").unwrap();
        assert_eq!(get(&n, "m").kind, NodeKind::Int(i64::MIN));
    }

    #[test]
    fn overflow_is_an_error() {
        let e = parse("a = 1\nbig = 9223372036854775808\n").unwrap_err();
        assert_eq!(e.pos, p(2, 7));
        assert!(e.message.contains("64 bits"), "{}", e.message);
        let e = parse("f = 1e999\n").unwrap_err();
        assert_eq!(e.pos, p(1, 5));
        assert!(e.message.contains("out of range"), "{}", e.message);
    }

    #[test]
    fn duplicate_keys() {
        let e = parse("a = 1\nb = 2\na = 3\n").unwrap_err();
        assert_eq!(e.pos, p(3, 1));
        assert!(e.message.contains("duplicate key"), "{}", e.message);
        let e = parse("[t]\nx = 1\n[t]\ny = 2\n").unwrap_err();
        assert_eq!(e.pos, p(3, 2));
        assert!(e.message.contains("duplicate key"), "{}", e.message);
        let e = parse("x = { a = 1, a = 2 }\n").unwrap_err();
        assert_eq!(e.pos, p(1, 14));
    }

    #[test]
    fn syntax_errors_are_located_and_one_line() {
        for (text, pos) in [
            ("a = 1\nb = \n", p(2, 5)),
            ("a = [1, 2\n", p(1, 10)),
            ("a = \"unterminated\n", p(1, 18)),
            ("key\n", p(1, 4)),
            ("= 1\n", p(1, 1)),
            ("a = 1 b = 2\n", p(1, 9)),
        ] {
            let e = parse(text).unwrap_err();
            assert!(!e.message.contains('\n'), "{text:?}: {}", e.message);
            assert!(!e.message.is_empty());
            assert_eq!(e.pos, pos, "{text:?}: {}", e.message);
        }
    }

    #[test]
    fn error_message_example() {
        let e = parse("a = [1, 2\n").unwrap_err();
        assert_eq!(e.message, "unclosed array, expected `]`");
    }

    #[test]
    fn empty_document() {
        let n = parse("").unwrap();
        assert_eq!(n.kind, NodeKind::Table(vec![]));
        assert_eq!(n.pos, p(1, 1));
        let n = parse("# only a comment\n").unwrap();
        assert_eq!(n.kind, NodeKind::Table(vec![]));
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let deep = format!("a = {}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse(&deep).is_err());
        let deep = format!("a = {}", "{b = ".repeat(10_000));
        assert!(parse(&deep).is_err());
    }
}
