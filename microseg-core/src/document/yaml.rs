//! YAML → [`Node`], using `saphyr`'s position-marked loader ([`MarkedYaml`]).
//!
//! Scalars are typed by saphyr with the YAML 1.2 core schema (quoted scalars
//! are always strings). Aliases are resolved (saphyr copies the anchored
//! node; the copy is located at the alias). Rejected: mapping keys that are
//! not strings, duplicate keys, tags other than the core-schema `!!` ones,
//! empty documents and streams of several documents.
//!
//! saphyr's parser recurses once per nesting level, so a pathologically
//! nested input could overflow the stack. Two guards prevent that: a cheap
//! pre-scan bounds the block nesting depth from the indentation structure
//! (flow nesting is capped by saphyr itself at 255 levels), and the parse
//! runs on a helper thread with a generous stack. A panic inside saphyr, if
//! one ever happened, is reported as a [`SyntaxError`] instead of unwinding.

use std::collections::HashSet;

use saphyr::{LoadableYamlNode, MarkedYaml, Marker, Scalar, ScanError, YamlData};

use super::{Key, Node, NodeKind, Pos, SyntaxError};

/// Maximum number of nested sequences/mappings accepted in the result.
const MAX_DEPTH: usize = 128;

/// Maximum number of distinct columns at which block collections may start
/// (see [`block_columns`]); bounds the block nesting depth saphyr recurses into.
const MAX_BLOCK_COLUMNS: usize = 256;

/// Stack size of the parser thread (only reserved, not committed). After the
/// pre-scan the nesting saphyr can see is at most about 4 × 256 block levels
/// + 2 × 255 flow levels, at roughly 3 KiB of stack each in debug builds.
const PARSER_STACK: usize = 32 * 1024 * 1024;

/// Parses a YAML document into a [`Node`].
pub(super) fn parse(text: &str) -> Result<Node, SyntaxError> {
    if block_columns(text) > MAX_BLOCK_COLUMNS {
        return Err(SyntaxError {
            pos: None,
            message: format!(
                "YAML document is nested too deeply (more than {MAX_BLOCK_COLUMNS} indentation levels)"
            ),
        });
    }
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("yaml-parser".into())
            .stack_size(PARSER_STACK)
            .spawn_scoped(scope, || parse_on_this_thread(text));
        match handle {
            Ok(handle) => handle.join().unwrap_or_else(|_| {
                Err(SyntaxError {
                    pos: None,
                    message: "internal error in the YAML parser".to_string(),
                })
            }),
            Err(e) => Err(SyntaxError {
                pos: None,
                message: format!("could not start the YAML parser: {e}"),
            }),
        }
    })
}

fn parse_on_this_thread(text: &str) -> Result<Node, SyntaxError> {
    let docs = MarkedYaml::load_from_str(text).map_err(|e| scan_error(&e))?;
    let mut docs = docs.into_iter();
    let Some(doc) = docs.next() else {
        return Err(empty_document());
    };
    if let Some(second) = docs.next() {
        return Err(SyntaxError {
            pos: pos_of_marker(second.span.start),
            message: "multiple YAML documents in one file are not supported".to_string(),
        });
    }
    if matches!(doc.data, YamlData::BadValue | YamlData::Value(Scalar::Null)) && is_blank(text) {
        return Err(empty_document());
    }
    convert(&doc, 0)
}

fn empty_document() -> SyntaxError {
    SyntaxError {
        pos: Some(Pos { line: 1, col: 1 }),
        message: "empty document".to_string(),
    }
}

/// Whether `text` has no content: only blank lines, comments, directives and
/// document markers.
fn is_blank(text: &str) -> bool {
    text.split(['\n', '\r']).all(|line| {
        let line = line.trim_start_matches('\u{feff}').trim();
        let rest = line
            .strip_prefix("---")
            .or_else(|| line.strip_prefix("..."))
            .unwrap_or(line)
            .trim_start();
        rest.is_empty() || rest.starts_with('#') || line.starts_with('%')
    })
}

fn scan_error(e: &ScanError) -> SyntaxError {
    let info = e.info().split_whitespace().collect::<Vec<_>>().join(" ");
    SyntaxError {
        pos: pos_of_marker(*e.marker()),
        message: if info.is_empty() {
            "invalid YAML".to_string()
        } else {
            info
        },
    }
}

/// saphyr markers have 1-based lines and 0-based character columns.
fn pos_of_marker(m: Marker) -> Option<Pos> {
    let line = u32::try_from(m.line()).unwrap_or(u32::MAX).max(1);
    let col = u32::try_from(m.col()).unwrap_or(u32::MAX - 1) + 1;
    Some(Pos { line, col })
}

fn err(node: &MarkedYaml<'_>, message: String) -> SyntaxError {
    SyntaxError {
        pos: pos_of_marker(node.span.start),
        message,
    }
}

fn convert(y: &MarkedYaml<'_>, depth: usize) -> Result<Node, SyntaxError> {
    let pos = pos_of_marker(y.span.start);
    let kind = match &y.data {
        YamlData::Value(s) => scalar(s),
        YamlData::Representation(v, style, tag) => {
            match Scalar::parse_from_cow_and_metadata(v.clone(), *style, tag.as_ref()) {
                Some(s) => scalar(&s),
                None => return Err(err(y, bad_value_message(tag.as_deref()))),
            }
        }
        YamlData::Sequence(items) => {
            if depth >= MAX_DEPTH {
                return Err(too_deep(y));
            }
            let items = items
                .iter()
                .map(|item| convert(item, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            NodeKind::Array(items)
        }
        YamlData::Mapping(map) => {
            if depth >= MAX_DEPTH {
                return Err(too_deep(y));
            }
            let mut entries: Vec<(Key, Node)> = Vec::with_capacity(map.len());
            for (k, v) in map {
                let name = key_name(k)?;
                let key_pos = pos_of_marker(k.span.start);
                if let Some((first, _)) = entries.iter().find(|(e, _)| e.name == name) {
                    let first = first
                        .pos
                        .map_or_else(String::new, |p| format!(" (first at {p})"));
                    return Err(SyntaxError {
                        pos: key_pos,
                        message: format!("duplicate key \"{}\"{first}", name.escape_debug()),
                    });
                }
                let value = convert(v, depth + 1)?;
                entries.push((Key { name, pos: key_pos }, value));
            }
            NodeKind::Table(entries)
        }
        YamlData::Tagged(tag, _) => {
            return Err(err(y, format!("YAML tag {tag} is not supported")));
        }
        YamlData::Alias(_) => return Err(err(y, "unresolved YAML alias".to_string())),
        YamlData::BadValue => return Err(err(y, bad_value_message(None))),
    };
    Ok(Node { pos, kind })
}

fn too_deep(y: &MarkedYaml<'_>) -> SyntaxError {
    err(
        y,
        format!("nesting is too deep (more than {MAX_DEPTH} sequences/mappings)"),
    )
}

fn bad_value_message(tag: Option<&saphyr::Tag>) -> String {
    match tag {
        Some(tag) => format!("value does not match its tag {tag}"),
        None => "invalid value (it does not match its tag, or is an unknown alias)".to_string(),
    }
}

/// The name of a mapping key, which must be a string scalar.
fn key_name(k: &MarkedYaml<'_>) -> Result<String, SyntaxError> {
    let found = match &k.data {
        YamlData::Value(Scalar::String(s)) => return Ok(s.to_string()),
        YamlData::Value(s) => {
            let type_name = scalar(s).type_name();
            let repr = match s {
                Scalar::Boolean(b) => Some(b.to_string()),
                Scalar::Integer(i) => Some(i.to_string()),
                Scalar::FloatingPoint(f) => Some(f.0.to_string()),
                Scalar::Null | Scalar::String(_) => None,
            };
            match repr {
                Some(r) => format!("{type_name} `{r}` (quote it to make it a string: \"{r}\")"),
                None => type_name.to_string(),
            }
        }
        YamlData::Sequence(_) => "a list".to_string(),
        YamlData::Mapping(_) => "a table".to_string(),
        YamlData::Tagged(tag, _) => format!("a value tagged {tag}"),
        YamlData::Representation(..) | YamlData::Alias(_) | YamlData::BadValue => {
            "an invalid value".to_string()
        }
    };
    Err(err(
        k,
        format!("mapping keys must be strings, found {found}"),
    ))
}

fn scalar(s: &Scalar<'_>) -> NodeKind {
    match s {
        Scalar::Null => NodeKind::Null,
        Scalar::Boolean(b) => NodeKind::Bool(*b),
        Scalar::Integer(i) => NodeKind::Int(*i),
        Scalar::FloatingPoint(f) => NodeKind::Float(f.0),
        Scalar::String(s) => NodeKind::Str(s.to_string()),
    }
}

/// An upper bound of the number of distinct columns at which a block
/// collection may start.
///
/// A block collection starts at a line's indentation or right after one of
/// the compact indicators `- `, `? `, `: ` that open the line. Nested block
/// collections start at strictly increasing columns, with two exceptions
/// that can never be directly nested in each other: a sequence used as a
/// mapping value (same column as the mapping) and a mapping whose first key
/// follows node properties on its line (`- &a key: v`). So the block nesting
/// depth is at most about four times this count. Lines inside scalars only
/// make the bound larger, never smaller.
fn block_columns(text: &str) -> usize {
    let mut columns = HashSet::new();
    for line in text.split(['\n', '\r']) {
        let mut chars = line.chars().peekable();
        let mut col = 0usize;
        while chars.next_if(|&c| c == ' ' || c == '\t').is_some() {
            col += 1;
        }
        columns.insert(col);
        while let Some(&c) = chars.peek() {
            if !matches!(c, '-' | '?' | ':') {
                break;
            }
            let mut ahead = chars.clone();
            ahead.next();
            if !matches!(ahead.peek(), None | Some(' ' | '\t')) {
                break;
            }
            chars = ahead;
            col += 1;
            while chars.next_if(|&c| c == ' ' || c == '\t').is_some() {
                col += 1;
            }
            columns.insert(col);
        }
    }
    columns.len()
}

#[cfg(test)]
mod tests {
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

    fn items(n: &Node) -> &[Node] {
        match &n.kind {
            NodeKind::Array(a) => a,
            other => panic!("not an array: {other:?}"),
        }
    }

    fn err(text: &str) -> SyntaxError {
        parse(text).unwrap_err()
    }

    #[test]
    fn values_and_positions() {
        let text = "\
version: 1
zones:
  web:
    cidrs: [10.0.0.0/8, \"192.168.0.0/16\"]
rules:
  - from: web
    ports: {tcp: [80, 443]}
    on: true
  - nothing: ~
    pi: 3.5
    quoted: '42'
";
        let n = parse(text).unwrap();
        assert_eq!(n.pos, p(1, 1));
        let names: Vec<_> = entries(&n).iter().map(|(k, _)| k.name.as_str()).collect();
        assert_eq!(names, ["version", "zones", "rules"]);
        assert_eq!(key(&n, "version").pos, p(1, 1));
        assert_eq!(get(&n, "version").pos, p(1, 10));
        assert_eq!(get(&n, "version").kind, NodeKind::Int(1));
        let zones = get(&n, "zones");
        assert_eq!(zones.pos, p(3, 3));
        assert_eq!(key(zones, "web").pos, p(3, 3));
        let cidrs = get(get(zones, "web"), "cidrs");
        assert_eq!(cidrs.pos, p(4, 12));
        assert_eq!(items(cidrs)[0].pos, p(4, 13));
        assert_eq!(items(cidrs)[0].kind, NodeKind::Str("10.0.0.0/8".into()));
        assert_eq!(items(cidrs)[1].pos, p(4, 25));
        let rules = items(get(&n, "rules"));
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].pos, p(6, 5));
        assert_eq!(key(&rules[0], "ports").pos, p(7, 5));
        let ports = get(&rules[0], "ports");
        assert_eq!(ports.pos, p(7, 12));
        assert_eq!(key(ports, "tcp").pos, p(7, 13));
        let tcp = items(get(ports, "tcp"));
        assert_eq!(tcp[1].pos, p(7, 23));
        assert_eq!(tcp[1].kind, NodeKind::Int(443));
        assert_eq!(get(&rules[0], "on").kind, NodeKind::Bool(true));
        assert_eq!(get(&rules[1], "nothing").kind, NodeKind::Null);
        assert_eq!(get(&rules[1], "pi").kind, NodeKind::Float(3.5));
        assert_eq!(get(&rules[1], "quoted").kind, NodeKind::Str("42".into()));
        assert_eq!(get(&rules[1], "quoted").pos, p(11, 13));
    }

    #[test]
    fn core_schema_typing() {
        let n = parse(
            "a: yes\nb: 0x1F\nc: 0o17\nd: .inf\ne: -.5\nf: \"true\"\ng:\nh: !!str 12\ni: 99999999999999999999\nj: False\n",
        )
        .unwrap();
        assert_eq!(get(&n, "a").kind, NodeKind::Str("yes".into()));
        assert_eq!(get(&n, "b").kind, NodeKind::Int(31));
        assert_eq!(get(&n, "c").kind, NodeKind::Int(15));
        assert_eq!(get(&n, "d").kind, NodeKind::Float(f64::INFINITY));
        assert_eq!(get(&n, "e").kind, NodeKind::Float(-0.5));
        assert_eq!(get(&n, "f").kind, NodeKind::Str("true".into()));
        assert_eq!(get(&n, "g").kind, NodeKind::Null);
        assert_eq!(get(&n, "h").kind, NodeKind::Str("12".into()));
        assert!(matches!(get(&n, "i").kind, NodeKind::Float(_)));
        assert_eq!(get(&n, "j").kind, NodeKind::Bool(false));
    }

    #[test]
    fn unicode_columns() {
        let text = "clé: héhé\n\"日本\": [ü, 😀, x]\n";
        let n = parse(text).unwrap();
        assert_eq!(get(&n, "clé").pos, p(1, 6));
        assert_eq!(key(&n, "日本").pos, p(2, 1));
        let list = items(get(&n, "日本"));
        assert_eq!(list[1].pos, p(2, 11));
        assert_eq!(list[2].pos, p(2, 14));
        let e = err("é: [1, 2\n");
        assert!(e.pos.is_some());
        let e = err("éé: {a: 1}}\n");
        assert_eq!(e.pos, p(1, 11), "{}", e.message);
    }

    #[test]
    fn duplicate_keys() {
        let e = err("a: 1\nb: 2\na: 3\n");
        assert_eq!(e.pos, p(3, 1));
        assert!(e.message.contains("duplicate"), "{}", e.message);
        let e = err("x:\n  y: 1\n  'y': 2\n");
        assert_eq!(e.pos, p(3, 3));
        let e = err("{a: 1, a: 2}");
        assert_eq!(e.pos, p(1, 8));
        assert!(parse("a: {a: 1}").is_ok());
    }

    #[test]
    fn non_string_keys() {
        let e = err("ports:\n  80: http\n");
        assert_eq!(e.pos, p(2, 3));
        assert_eq!(
            e.message,
            "mapping keys must be strings, found an integer `80` (quote it to make it a string: \"80\")"
        );
        let e = err("true: 1\n");
        assert!(e.message.contains("a boolean"), "{}", e.message);
        let e = err("~: 1\n");
        assert_eq!(e.message, "mapping keys must be strings, found null");
        let e = err("? [a, b]\n: 1\n");
        assert_eq!(e.message, "mapping keys must be strings, found a list");
        assert_eq!(e.pos, p(1, 3));
        assert!(parse("\"80\": http\n").is_ok());
    }

    #[test]
    fn aliases_are_resolved() {
        let text = "base: &b\n  a: 1\nother: *b\nlist: [&x 5, *x]\n";
        let n = parse(text).unwrap();
        assert_eq!(get(&n, "other").kind, get(&n, "base").kind);
        assert_eq!(get(&n, "other").pos, p(3, 8));
        assert_eq!(items(get(&n, "list"))[1].kind, NodeKind::Int(5));
        let e = err("a: *nope\n");
        assert_eq!(e.pos, p(1, 4));
        assert!(e.message.contains("unknown anchor"), "{}", e.message);
        // Billion laughs is bounded by saphyr's alias budget.
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let r = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{r}, *a{r}, *a{r}, *a{r}, *a{r}, *a{r}, *a{r}, *a{r}, *a{r}, *a{r}]\n"
            ));
        }
        assert!(parse(&bomb).is_err());
    }

    #[test]
    fn documents() {
        assert_eq!(err("").message, "empty document");
        assert_eq!(err("# nothing\n\n").message, "empty document");
        assert_eq!(err("---\n...\n").message, "empty document");
        let e = err("a: 1\n---\nb: 2\n");
        assert_eq!(
            e.message,
            "multiple YAML documents in one file are not supported"
        );
        assert_eq!(e.pos.unwrap().line, 3);
        assert!(parse("---\na: 1\n...\n").is_ok());
        assert_eq!(parse("~").unwrap().kind, NodeKind::Null);
        assert_eq!(
            parse("- 1").unwrap().kind,
            NodeKind::Array(vec![Node {
                pos: p(1, 3),
                kind: NodeKind::Int(1)
            }])
        );
    }

    #[test]
    fn tags() {
        let e = err("a: !custom 5\n");
        assert_eq!(e.message, "YAML tag !custom is not supported");
        assert_eq!(e.pos, p(1, 4));
        let e = err("a: !!int foo\n");
        assert!(e.message.contains("invalid value"), "{}", e.message);
        assert_eq!(e.pos, p(1, 4));
        let n = parse("a: !!float 1").unwrap();
        assert_eq!(get(&n, "a").kind, NodeKind::Float(1.0));
    }

    #[test]
    fn syntax_errors() {
        let e = err("a: [1, 2\n");
        assert!(e.pos.is_some());
        assert!(!e.message.is_empty());
        let e = err("a: b: c\n");
        assert_eq!(e.pos, p(1, 5));
        assert_eq!(e.message, "mapping values are not allowed in this context");
        let e = err("a:\n  - 1\n - 2\n");
        assert_eq!(e.pos.unwrap().line, 3);
        let e = err("a: \"unterminated\n");
        assert!(e.pos.is_some());
    }

    #[test]
    fn deep_nesting() {
        let ok = format!("{}x", "- ".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
        let e = err(&format!("{}x", "- ".repeat(MAX_DEPTH + 1)));
        assert!(e.message.contains("nesting is too deep"), "{}", e.message);
        let e = err(&format!("{}x", "- ".repeat(100_000)));
        assert!(e.message.contains("nested too deeply"), "{}", e.message);
        assert!(parse(&"[".repeat(100_000)).is_err());
        assert!(parse(&format!("a: {}", "[b: ".repeat(250))).is_err());
        let mut stairs = String::new();
        for i in 0..2000 {
            stairs.push_str(&" ".repeat(i));
            stairs.push_str("a:\n");
        }
        assert!(parse(&stairs).is_err());
        // Worst case that passes the pre-scan: deep block nesting plus the
        // maximum flow nesting saphyr accepts. Must not overflow the stack.
        let worst = format!(
            "{}{}{}",
            "- ".repeat(MAX_BLOCK_COLUMNS - 1),
            "[".repeat(255),
            "]".repeat(255)
        );
        let e = err(&worst);
        assert!(e.message.contains("nesting is too deep"), "{}", e.message);
    }

    #[test]
    fn block_columns_bound() {
        assert_eq!(block_columns("a: 1\nb:\n  c: 2\n  - x\n"), 3);
        assert_eq!(block_columns("- - ? x\n"), 4);
        assert_eq!(block_columns("-x: 1\n"), 1);
    }
}
