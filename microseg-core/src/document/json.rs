//! JSON → [`Node`], with a small hand-written recursive-descent parser (RFC 8259).
//!
//! The parser tracks line and character column as it goes, so every value,
//! key and error is located. It is strict: no comments, no trailing commas,
//! no content after the top-level value, and duplicate keys are errors.
//! Nesting is limited to [`MAX_DEPTH`] arrays/objects so that hostile input
//! can never overflow the stack.

use super::{Key, Node, NodeKind, Pos, SyntaxError};

/// Maximum number of nested arrays/objects.
const MAX_DEPTH: usize = 128;

/// Parses a JSON document into a [`Node`].
pub(super) fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut p = Parser {
        text,
        bytes: text.as_bytes(),
        i: 0,
        line: 1,
        col: 1,
        depth: 0,
    };
    // Tolerate a leading byte order mark.
    if text.starts_with('\u{feff}') {
        p.i = '\u{feff}'.len_utf8();
    }
    p.skip_ws()?;
    let node = p.value()?;
    p.skip_ws()?;
    if p.i < p.bytes.len() {
        return Err(p.err_here("unexpected content after the JSON value"));
    }
    Ok(node)
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    /// Byte offset of the next byte.
    i: usize,
    /// 1-based line of `i`.
    line: u32,
    /// 1-based character column of `i`.
    col: u32,
    /// Current number of open arrays/objects.
    depth: usize,
}

impl Parser<'_> {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    fn err_at(pos: Pos, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            pos: Some(pos),
            message: message.into(),
        }
    }

    fn err_here(&self, message: impl Into<String>) -> SyntaxError {
        Self::err_at(self.pos(), message)
    }

    fn eof(&self) -> SyntaxError {
        self.err_here("unexpected end of input")
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.i).copied()
    }

    /// Advances over one byte, keeping line and column up to date.
    fn bump(&mut self) {
        let Some(&b) = self.bytes.get(self.i) else {
            return;
        };
        self.i += 1;
        if b == b'\n' {
            self.line = self.line.saturating_add(1);
            self.col = 1;
        } else if b & 0xC0 != 0x80 {
            // Not a UTF-8 continuation byte: a new character starts here.
            // The column of the *next* character is what we track, so count
            // this one only once (at its first byte).
            self.col = self.col.saturating_add(1);
        }
    }

    /// The character at the current offset, for error messages.
    fn current_char(&self) -> Option<char> {
        self.text.get(self.i..).and_then(|s| s.chars().next())
    }

    /// A description of what is at the current offset, for error messages.
    fn found(&self) -> String {
        match self.current_char() {
            None => "end of input".to_string(),
            Some(c) => describe_char(c),
        }
    }

    fn skip_ws(&mut self) -> Result<(), SyntaxError> {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\n' | b'\r') => self.bump(),
                Some(b'/') if matches!(self.bytes.get(self.i + 1), Some(b'/' | b'*')) => {
                    return Err(self.err_here("comments are not allowed in JSON"));
                }
                _ => return Ok(()),
            }
        }
    }

    fn value(&mut self) -> Result<Node, SyntaxError> {
        let pos = self.pos();
        let kind = match self.peek() {
            None => return Err(self.eof()),
            Some(b'{') => self.object()?,
            Some(b'[') => self.array()?,
            Some(b'"') => NodeKind::Str(self.string()?),
            Some(b'-' | b'0'..=b'9') => self.number()?,
            Some(b't') if self.eat_literal("true") => NodeKind::Bool(true),
            Some(b'f') if self.eat_literal("false") => NodeKind::Bool(false),
            Some(b'n') if self.eat_literal("null") => NodeKind::Null,
            Some(b',') if self.depth > 0 => {
                return Err(self.err_here("expected a value, found ','"));
            }
            Some(_) => {
                let word = self.word();
                let found = if word.is_empty() {
                    self.found()
                } else {
                    format!("\"{}\"", word.escape_debug())
                };
                return Err(self.err_here(format!(
                    "expected a JSON value (object, array, string, number, true, false or null), found {found}"
                )));
            }
        };
        Ok(Node {
            pos: Some(pos),
            kind,
        })
    }

    /// The run of identifier-like characters at the current offset (`True`, `NaN`, ...).
    fn word(&self) -> &str {
        let rest = self.text.get(self.i..).unwrap_or("");
        let end = rest
            .char_indices()
            .find(|&(_, c)| !(c.is_alphanumeric() || c == '_' || c == '.' || c == '+'))
            .map_or(rest.len(), |(i, _)| i);
        let word = &rest[..end];
        if word.chars().count() > 20 {
            let cut = word.char_indices().nth(20).map_or(word.len(), |(i, _)| i);
            &word[..cut]
        } else {
            word
        }
    }

    /// Consumes `lit` if the input continues with it, not followed by more letters.
    fn eat_literal(&mut self, lit: &str) -> bool {
        let rest = &self.bytes[self.i..];
        if rest.starts_with(lit.as_bytes())
            && !rest
                .get(lit.len())
                .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
        {
            for _ in 0..lit.len() {
                self.bump();
            }
            true
        } else {
            false
        }
    }

    fn enter(&mut self) -> Result<(), SyntaxError> {
        if self.depth >= MAX_DEPTH {
            return Err(self.err_here(format!(
                "nesting is too deep (more than {MAX_DEPTH} arrays/objects)"
            )));
        }
        self.depth += 1;
        Ok(())
    }

    fn object(&mut self) -> Result<NodeKind, SyntaxError> {
        self.enter()?;
        self.bump(); // '{'
        let mut entries: Vec<(Key, Node)> = Vec::new();
        self.skip_ws()?;
        if self.peek() == Some(b'}') {
            self.bump();
            self.depth -= 1;
            return Ok(NodeKind::Table(entries));
        }
        loop {
            // Key.
            let key_pos = self.pos();
            match self.peek() {
                Some(b'"') => {}
                None => return Err(self.eof()),
                Some(_) => {
                    return Err(self.err_here(format!(
                        "expected a string key in double quotes, found {}",
                        self.found()
                    )))
                }
            }
            let name = self.string()?;
            if let Some((first, _)) = entries.iter().find(|(k, _)| k.name == name) {
                let first = first
                    .pos
                    .map_or_else(String::new, |p| format!(" (first at {p})"));
                return Err(Self::err_at(
                    key_pos,
                    format!("duplicate key \"{}\"{first}", name.escape_debug()),
                ));
            }
            self.skip_ws()?;
            match self.peek() {
                Some(b':') => self.bump(),
                None => return Err(self.eof()),
                Some(_) => {
                    return Err(self.err_here(format!(
                        "expected ':' after object key, found {}",
                        self.found()
                    )))
                }
            }
            self.skip_ws()?;
            let value = self.value()?;
            entries.push((
                Key {
                    name,
                    pos: Some(key_pos),
                },
                value,
            ));
            self.skip_ws()?;
            match self.peek() {
                Some(b',') => {
                    let comma = self.pos();
                    self.bump();
                    self.skip_ws()?;
                    if self.peek() == Some(b'}') {
                        return Err(Self::err_at(comma, "trailing comma is not allowed in JSON"));
                    }
                }
                Some(b'}') => {
                    self.bump();
                    self.depth -= 1;
                    return Ok(NodeKind::Table(entries));
                }
                None => return Err(self.eof()),
                Some(_) => {
                    return Err(self.err_here(format!(
                        "expected ',' or '}}' after object member, found {}",
                        self.found()
                    )))
                }
            }
        }
    }

    fn array(&mut self) -> Result<NodeKind, SyntaxError> {
        self.enter()?;
        self.bump(); // '['
        let mut items = Vec::new();
        self.skip_ws()?;
        if self.peek() == Some(b']') {
            self.bump();
            self.depth -= 1;
            return Ok(NodeKind::Array(items));
        }
        loop {
            items.push(self.value()?);
            self.skip_ws()?;
            match self.peek() {
                Some(b',') => {
                    let comma = self.pos();
                    self.bump();
                    self.skip_ws()?;
                    if self.peek() == Some(b']') {
                        return Err(Self::err_at(comma, "trailing comma is not allowed in JSON"));
                    }
                }
                Some(b']') => {
                    self.bump();
                    self.depth -= 1;
                    return Ok(NodeKind::Array(items));
                }
                None => return Err(self.eof()),
                Some(_) => {
                    return Err(self.err_here(format!(
                        "expected ',' or ']' after array element, found {}",
                        self.found()
                    )))
                }
            }
        }
    }

    /// Parses a string starting at the opening quote.
    fn string(&mut self) -> Result<String, SyntaxError> {
        let open = self.pos();
        self.bump(); // '"'
        let mut out = String::new();
        loop {
            // Copy the run of plain characters in one go.
            let start = self.i;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.bump();
            }
            out.push_str(&self.text[start..self.i]);
            match self.peek() {
                None => {
                    return Err(Self::err_at(
                        open,
                        "unterminated string (unexpected end of input)",
                    ))
                }
                Some(b'"') => {
                    self.bump();
                    return Ok(out);
                }
                Some(b'\\') => {
                    let esc_pos = self.pos();
                    self.bump();
                    let Some(e) = self.peek() else {
                        return Err(self.eof());
                    };
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            self.bump();
                            out.push(self.unicode_escape(esc_pos)?);
                            continue;
                        }
                        _ => {
                            let shown = self
                                .current_char()
                                .map_or_else(String::new, |c| c.escape_debug().to_string());
                            return Err(Self::err_at(
                                esc_pos,
                                format!("invalid escape sequence '\\{shown}' in string"),
                            ));
                        }
                    };
                    self.bump();
                    out.push(c);
                }
                Some(b'\n' | b'\r') => {
                    return Err(self
                        .err_here("line break inside a string (unterminated string, or use \\n)"))
                }
                Some(b) => {
                    return Err(self.err_here(format!(
                        "control character U+{b:04X} must be escaped in a string"
                    )))
                }
            }
        }
    }

    /// Reads the 4 hex digits after `\u`; handles surrogate pairs.
    fn unicode_escape(&mut self, esc_pos: Pos) -> Result<char, SyntaxError> {
        let hi = self.hex4()?;
        if (0xDC00..0xE000).contains(&hi) {
            return Err(Self::err_at(
                esc_pos,
                format!("invalid \\u escape: lone low surrogate \\u{hi:04X}"),
            ));
        }
        if !(0xD800..0xDC00).contains(&hi) {
            // Not a surrogate: always a valid scalar value.
            return char::from_u32(hi).ok_or_else(|| Self::err_at(esc_pos, "invalid \\u escape"));
        }
        // High surrogate: a `\uDC00`-`\uDFFF` escape must follow.
        if self.bytes.get(self.i) != Some(&b'\\') || self.bytes.get(self.i + 1) != Some(&b'u') {
            return Err(Self::err_at(
                esc_pos,
                format!("invalid \\u escape: high surrogate \\u{hi:04X} not followed by a low surrogate"),
            ));
        }
        self.bump();
        self.bump();
        let lo = self.hex4()?;
        if !(0xDC00..0xE000).contains(&lo) {
            return Err(Self::err_at(
                esc_pos,
                format!("invalid \\u escape: high surrogate \\u{hi:04X} not followed by a low surrogate"),
            ));
        }
        let c = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
        char::from_u32(c).ok_or_else(|| Self::err_at(esc_pos, "invalid \\u escape"))
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = match self.peek() {
                None => return Err(self.eof()),
                Some(b) => match (b as char).to_digit(16) {
                    Some(d) => d,
                    None => {
                        return Err(self.err_here(format!(
                            "expected 4 hexadecimal digits after \\u, found {}",
                            self.found()
                        )))
                    }
                },
            };
            v = v * 16 + d;
            self.bump();
        }
        Ok(v)
    }

    fn digits(&mut self) -> usize {
        let mut n = 0;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.bump();
            n += 1;
        }
        n
    }

    fn number(&mut self) -> Result<NodeKind, SyntaxError> {
        let start = self.i;
        let start_pos = self.pos();
        if self.peek() == Some(b'-') {
            self.bump();
        }
        match self.peek() {
            Some(b'0') => {
                self.bump();
                if matches!(self.peek(), Some(b'0'..=b'9')) {
                    return Err(Self::err_at(
                        start_pos,
                        "invalid number: leading zeros are not allowed in JSON",
                    ));
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => {
                return Err(self.err_here(format!(
                    "invalid number: expected a digit, found {}",
                    self.found()
                )))
            }
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            integer = false;
            self.bump();
            if self.digits() == 0 {
                return Err(self.err_here(format!(
                    "invalid number: expected a digit after '.', found {}",
                    self.found()
                )));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            integer = false;
            self.bump();
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.bump();
            }
            if self.digits() == 0 {
                return Err(self.err_here(format!(
                    "invalid number: expected a digit in the exponent, found {}",
                    self.found()
                )));
            }
        }
        let lexeme = &self.text[start..self.i];
        if integer {
            if let Ok(n) = lexeme.parse::<i64>() {
                return Ok(NodeKind::Int(n));
            }
        }
        match lexeme.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(NodeKind::Float(x)),
            _ => Err(Self::err_at(
                start_pos,
                format!("number {lexeme} is out of range"),
            )),
        }
    }
}

/// A short, printable description of a character for error messages.
fn describe_char(c: char) -> String {
    if c.is_control() || (c.is_whitespace() && c != ' ') {
        format!("U+{:04X}", c as u32)
    } else {
        format!("'{c}'")
    }
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
        let text = "{\n  \"version\": 1,\n  \"zones\": {\"web\": [\"10.0.0.0/8\", 2.5, -3e2]},\n  \"on\": true, \"off\": false, \"nil\": null\n}";
        let n = parse(text).unwrap();
        assert_eq!(n.pos, p(1, 1));
        let es = entries(&n);
        let names: Vec<_> = es.iter().map(|(k, _)| k.name.as_str()).collect();
        assert_eq!(names, ["version", "zones", "on", "off", "nil"]);
        assert_eq!(es[0].0.pos, p(2, 3));
        assert_eq!(es[0].1.pos, p(2, 14));
        assert_eq!(es[0].1.kind, NodeKind::Int(1));
        let zones = get(&n, "zones");
        assert_eq!(zones.pos, p(3, 12));
        assert_eq!(entries(zones)[0].0.pos, p(3, 13));
        let web = items(get(zones, "web"));
        assert_eq!(web[0].pos, p(3, 21));
        assert_eq!(web[0].kind, NodeKind::Str("10.0.0.0/8".into()));
        assert_eq!(web[1].pos, p(3, 35));
        assert_eq!(web[1].kind, NodeKind::Float(2.5));
        assert_eq!(web[2].kind, NodeKind::Float(-300.0));
        assert_eq!(get(&n, "on").kind, NodeKind::Bool(true));
        assert_eq!(get(&n, "off").kind, NodeKind::Bool(false));
        assert_eq!(get(&n, "nil").kind, NodeKind::Null);
        assert_eq!(es[3].0.pos, p(4, 15));
    }

    #[test]
    fn scalar_documents() {
        assert_eq!(parse(" 42 ").unwrap().kind, NodeKind::Int(42));
        assert_eq!(parse(" 42 ").unwrap().pos, p(1, 2));
        assert_eq!(parse("\"x\"").unwrap().kind, NodeKind::Str("x".into()));
        assert_eq!(parse("[]").unwrap().kind, NodeKind::Array(vec![]));
        assert_eq!(parse("{}").unwrap().kind, NodeKind::Table(vec![]));
        assert_eq!(parse("\u{feff}{}").unwrap().kind, NodeKind::Table(vec![]));
    }

    #[test]
    fn numbers() {
        let n = |s: &str| parse(s).unwrap().kind;
        assert_eq!(n("0"), NodeKind::Int(0));
        assert_eq!(n("-0"), NodeKind::Int(0));
        assert_eq!(n("-9223372036854775808"), NodeKind::Int(i64::MIN));
        assert_eq!(n("9223372036854775807"), NodeKind::Int(i64::MAX));
        assert_eq!(
            n("9223372036854775808"),
            NodeKind::Float(9223372036854775808.0)
        );
        assert_eq!(n("1.0"), NodeKind::Float(1.0));
        assert_eq!(n("1E2"), NodeKind::Float(100.0));
        assert_eq!(n("1e-2"), NodeKind::Float(0.01));
        assert_eq!(n("0.5e+1"), NodeKind::Float(5.0));
        for bad in [
            "01", "-", "1.", ".5", "1e", "1e+", "+1", "-a", "0x10", "1.e3",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(err("1e999").message, "number 1e999 is out of range");
        assert_eq!(err("[1, 007]").pos, p(1, 5));
    }

    #[test]
    fn strings_and_escapes() {
        let n = parse(r#""a\"b\\c\/d\b\f\n\r\t \u0041\u00e9\u20AC \ud83d\ude00 é""#).unwrap();
        assert_eq!(
            n.kind,
            NodeKind::Str("a\"b\\c/d\u{8}\u{c}\n\r\t Aé€ 😀 é".into())
        );
        let e = err(r#"{"a": "x\qy"}"#);
        assert_eq!(e.pos, p(1, 9));
        assert_eq!(e.message, "invalid escape sequence '\\q' in string");
        let e = err(r#""\ud83d""#);
        assert_eq!(e.pos, p(1, 2));
        assert!(e.message.contains("surrogate"), "{}", e.message);
        let e = err(r#""\ud83d\u0041""#);
        assert!(e.message.contains("surrogate"), "{}", e.message);
        let e = err(r#""\ude00""#);
        assert!(e.message.contains("lone low surrogate"), "{}", e.message);
        let e = err(r#""\u12G4""#);
        assert_eq!(e.pos, p(1, 6));
        assert!(e.message.contains("hexadecimal"), "{}", e.message);
        let e = err("\"a\tb\"");
        assert_eq!(
            e.message,
            "control character U+0009 must be escaped in a string"
        );
        assert_eq!(e.pos, p(1, 3));
        let e = err("[\"abc\n\"]");
        assert_eq!(e.pos, p(1, 6));
        let e = err("[\"abc");
        assert_eq!(e.pos, p(1, 2));
        assert!(e.message.contains("unterminated string"), "{}", e.message);
    }

    #[test]
    fn structural_errors() {
        let e = err("{\"a\": 1 \"b\": 2}");
        assert_eq!(
            e.message,
            "expected ',' or '}' after object member, found '\"'"
        );
        assert_eq!(e.pos, p(1, 9));
        let e = err("[1 2]");
        assert_eq!(
            e.message,
            "expected ',' or ']' after array element, found '2'"
        );
        assert_eq!(e.pos, p(1, 4));
        let e = err("{\"a\": 1,\n }");
        assert_eq!(e.message, "trailing comma is not allowed in JSON");
        assert_eq!(e.pos, p(1, 8));
        let e = err("[1, 2, ]");
        assert_eq!(e.message, "trailing comma is not allowed in JSON");
        assert_eq!(e.pos, p(1, 6));
        let e = err("{\"a\": [1,\n");
        assert_eq!(e.message, "unexpected end of input");
        assert_eq!(e.pos, p(2, 1));
        let e = err("");
        assert_eq!(e.message, "unexpected end of input");
        assert_eq!(e.pos, p(1, 1));
        let e = err("{a: 1}");
        assert_eq!(
            e.message,
            "expected a string key in double quotes, found 'a'"
        );
        let e = err("{\"a\" 1}");
        assert_eq!(e.message, "expected ':' after object key, found '1'");
        assert_eq!(e.pos, p(1, 6));
        let e = err("{} {}");
        assert_eq!(e.message, "unexpected content after the JSON value");
        assert_eq!(e.pos, p(1, 4));
        let e = err("[True]");
        assert!(e.message.ends_with("found \"True\""), "{}", e.message);
        assert_eq!(e.pos, p(1, 2));
        assert!(err("[truex]").message.contains("\"truex\""));
        assert!(err("[NaN]").message.contains("\"NaN\""));
        let e = err("[1,,2]");
        assert_eq!(e.message, "expected a value, found ','");
        assert_eq!(e.pos, p(1, 4));
        let e = err("{\n// c\n}");
        assert_eq!(e.message, "comments are not allowed in JSON");
        assert_eq!(e.pos, p(2, 1));
    }

    #[test]
    fn duplicate_keys() {
        let e = err("{\"a\": 1,\n \"b\": {\"a\": 2},\n \"a\": 3}");
        assert_eq!(e.message, "duplicate key \"a\" (first at 1:2)");
        assert_eq!(e.pos, p(3, 2));
        // The same name in different objects is fine.
        assert!(parse("{\"a\": {\"a\": 1}}").is_ok());
        // Escapes are decoded before comparing.
        let e = err(r#"{"a": 1, "\u0061": 2}"#);
        assert_eq!(e.message, "duplicate key \"a\" (first at 1:2)");
    }

    #[test]
    fn unicode_columns() {
        let text = "{\"clé\": \"日本語\", \"ü\": [1, 😀]}";
        let e = err(text);
        assert_eq!(e.pos, p(1, 25));
        assert_eq!(
            e.message,
            "expected a JSON value (object, array, string, number, true, false or null), found '😀'"
        );
        let text = "{\"clé\": \"日本語\", \"ü\": [1, 2]}";
        let n = parse(text).unwrap();
        let es = entries(&n);
        assert_eq!(es[0].0.pos, p(1, 2));
        assert_eq!(es[0].1.pos, p(1, 9));
        assert_eq!(es[1].0.pos, p(1, 16));
        assert_eq!(items(&es[1].1)[1].pos, p(1, 25));
    }

    #[test]
    fn depth_limit() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        let e = err(&deep);
        assert!(e.message.contains("nesting is too deep"), "{}", e.message);
        assert_eq!(e.pos, p(1, MAX_DEPTH as u32 + 1));
        let deep = "{\"a\":".repeat(100_000);
        assert!(parse(&deep).is_err());
    }

    /// Feeds garbage, mutated and truncated documents to all three parsers:
    /// none may panic (or overflow the stack).
    #[test]
    fn no_panic_on_garbage() {
        let seeds = [
            r#"{"a": [1, -2.5e3, "x\u00e9\ud83d\ude00\n", true, false, null], "b": {}}"#,
            "version = 1\n[zones.web]\ncidrs = [\"10.0.0.0/8\"]\n[[rules]]\nx = { a = 1979-05-27T07:32:00Z }\ny = \"\"\"m\nl\"\"\" # c\n",
            "%YAML 1.2\n---\na: &x\n  - b: [1, {c: d}]\n    ? e\n    : 'f'\nz: *x\ns: |\n  text\nt: !!int 3\n...\n",
            "'''lit''' \\ \u{0} \u{feff} é 😀 \r\n\t",
        ];
        let alphabet: Vec<char> = "[]{}:,-?\"'\\#&*!|>%@`=.0123456789aeEux+_ \n\r\t\u{0}\u{7f}é😀"
            .chars()
            .collect();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize
        };
        let mut inputs: Vec<String> = Vec::new();
        for seed in seeds {
            // Every truncation.
            for (i, _) in seed.char_indices() {
                inputs.push(seed[..i].to_string());
            }
            // Deterministic pseudo-random mutations.
            let chars: Vec<char> = seed.chars().collect();
            for _ in 0..300 {
                let mut mutated = chars.clone();
                for _ in 0..3 {
                    let at = next() % mutated.len();
                    let c = alphabet[next() % alphabet.len()];
                    match next() % 3 {
                        0 => mutated[at] = c,
                        1 => mutated.insert(at, c),
                        _ => {
                            mutated.remove(at);
                        }
                    }
                }
                inputs.push(mutated.into_iter().collect());
            }
        }
        // Pure garbage.
        for len in 0..200 {
            inputs.push(
                (0..len)
                    .map(|_| alphabet[next() % alphabet.len()])
                    .collect(),
            );
        }
        // Pathological nesting.
        for deep in [
            "[",
            "{",
            "{\"a\":",
            "- ",
            "a:\n ",
            "? ",
            "[a: ",
            "x = [",
            "x = {a = ",
        ] {
            inputs.push(deep.repeat(5_000));
        }
        for input in &inputs {
            let _ = parse(input);
            let _ = super::super::toml_doc::parse(input);
            let _ = super::super::yaml::parse(input);
        }
    }
}
