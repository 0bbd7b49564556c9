//! The policy document as a format-neutral tree of values with source positions.
//!
//! ```
//! use microseg_core::document::{parse_document, Format, NodeKind};
//! let node = parse_document("version = 1\n", Format::Toml).unwrap();
//! let NodeKind::Table(entries) = &node.kind else { panic!() };
//! assert_eq!(entries[0].0.name, "version");
//! assert_eq!(entries[0].1.pos.unwrap().line, 1);
//! ```
//!
//! TOML, JSON and YAML are all parsed into [`Node`]; the policy loader then
//! works on this tree alone, so every format gets the same validation and the
//! same located error messages.

mod json;
mod toml_doc;
mod yaml;

use std::fmt;

/// A 1-based line and column in the source text (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Pos {
    /// 1-based line number.
    pub line: u32,
    /// 1-based column number, in characters.
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A key of a table, with the position of the key itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The key text.
    pub name: String,
    /// Where the key starts.
    pub pos: Option<Pos>,
}

/// A value of the document with the position where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Where the value starts, when the input format has positions.
    pub pos: Option<Pos>,
    /// The value.
    pub kind: NodeKind,
}

/// The value of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A table / object / mapping, keys in document order.
    Table(Vec<(Key, Node)>),
    /// An array / sequence.
    Array(Vec<Node>),
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A floating point number.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A null (JSON `null`, YAML `~`); TOML has none.
    Null,
    /// Any other value (TOML dates) — rejected by the loader with its description.
    Other(String),
}

impl NodeKind {
    /// A short name of the value's type for error messages (`"a string"`, `"a table"`).
    pub fn type_name(&self) -> &'static str {
        match self {
            NodeKind::Table(_) => "a table",
            NodeKind::Array(_) => "a list",
            NodeKind::Str(_) => "a string",
            NodeKind::Int(_) => "an integer",
            NodeKind::Float(_) => "a float",
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Null => "null",
            NodeKind::Other(_) => "a date/time",
        }
    }
}

/// The input formats of a policy document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// TOML (the primary format).
    Toml,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

impl Format {
    /// The format a file name implies: `.json`, `.yaml`/`.yml`, anything else TOML.
    pub fn from_path(path: &std::path::Path) -> Format {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
        {
            Some(e) if e == "json" => Format::Json,
            Some(e) if e == "yaml" || e == "yml" => Format::Yaml,
            _ => Format::Toml,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Toml => "TOML",
            Format::Json => "JSON",
            Format::Yaml => "YAML",
        })
    }
}

/// A syntax error of the input text, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Where the parser stopped, when known.
    pub pos: Option<Pos>,
    /// What is wrong (one line, no position prefix).
    pub message: String,
}

/// Parses `text` in `format` into a [`Node`] tree.
///
/// Duplicate keys in one table are syntax errors in every format.
pub fn parse_document(text: &str, format: Format) -> Result<Node, SyntaxError> {
    match format {
        Format::Toml => toml_doc::parse(text),
        Format::Json => json::parse(text),
        Format::Yaml => yaml::parse(text),
    }
}

/// Converts a byte offset into `text` to a 1-based line and character column.
pub fn pos_of_offset(text: &str, offset: usize) -> Pos {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() as u32 + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = before[line_start..].chars().count() as u32 + 1;
    Pos { line, col }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}
