//! Located diagnostics: errors and warnings about a policy document.
//!
//! ```
//! use microseg_core::diag::{Diagnostic, Severity};
//! use microseg_core::document::Pos;
//! let d = Diagnostic::error(Some(Pos { line: 3, col: 7 }), "unknown group \"wbe\": did you mean \"web\"?")
//!     .in_file("policy.toml");
//! assert_eq!(d.to_string(), "policy.toml:3:7: error: unknown group \"wbe\": did you mean \"web\"?");
//! assert_eq!(d.severity, Severity::Error);
//! ```

use crate::document::Pos;
use serde::Serialize;
use std::fmt;

/// Error or warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The policy is invalid; nothing may be compiled or applied.
    Error,
    /// The policy is valid but probably not what was meant (lint).
    Warning,
}

/// One problem found in a policy document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file the document came from, if any.
    pub file: Option<String>,
    /// Line and column, when the input format has positions.
    pub pos: Option<Pos>,
    /// What is wrong and what would be right.
    pub message: String,
}

impl Diagnostic {
    /// An error at `pos`.
    pub fn error(pos: Option<Pos>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            file: None,
            pos,
            message: message.into(),
        }
    }

    /// A warning at `pos`.
    pub fn warning(pos: Option<Pos>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            file: None,
            pos,
            message: message.into(),
        }
    }

    /// Sets the file name.
    pub fn in_file(mut self, file: impl Into<String>) -> Diagnostic {
        self.file = Some(file.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match (&self.file, self.pos) {
            (Some(file), Some(p)) => write!(f, "{file}:{p}: ")?,
            (Some(file), None) => write!(f, "{file}: ")?,
            (None, Some(p)) => write!(f, "{p}: ")?,
            (None, None) => {}
        }
        write!(f, "{sev}: {}", self.message)
    }
}

/// Renders diagnostics one per line.
pub fn render(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The closest candidate to `word` (edit distance ≤ 2, or a case-insensitive match).
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = if c.eq_ignore_ascii_case(word) {
            0
        } else {
            levenshtein(word, c)
        };
        let limit = if word.len() <= 3 { 1 } else { 2 };
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// `: did you mean "x"?` or the empty string.
pub fn suggestion<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    match did_you_mean(word, candidates) {
        Some(c) => format!(": did you mean \"{c}\"?"),
        None => String::new(),
    }
}

/// Optimal-string-alignment distance: edits and adjacent transpositions.
fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("wbe", ["web", "app", "db"]), Some("web"));
        assert_eq!(
            did_you_mean("postgress", ["postgres", "mysql"]),
            Some("postgres")
        );
        assert_eq!(did_you_mean("zzzzzz", ["web"]), None);
    }
}
