//! microseg-core: the policy model, validation with located errors, reference
//! semantics, the per-role/per-host IR and its evaluator, lint and exact diff.
//!
//! ```
//! use microseg_core::{Policy, ports::Proto, semantics::Connection};
//! let policy = Policy::from_str_as(r#"
//! version = 1
//! [groups]
//! web = ["10.0.1.10"]
//! app = ["10.0.1.20"]
//! [services]
//! app = ["tcp/8080"]
//! [roles.web]
//! [roles.app]
//! [[flows]]
//! from = "web"
//! to = "app"
//! services = ["app"]
//! "#, microseg_core::document::Format::Toml, Some("example.toml")).unwrap();
//! let c = Connection::new("10.0.1.10".parse().unwrap(), "10.0.1.20".parse().unwrap(), Proto::Tcp(8080));
//! assert!(policy.decide(&c).allowed());
//! let c = Connection::new("10.0.1.20".parse().unwrap(), "10.0.1.10".parse().unwrap(), Proto::Tcp(8080));
//! assert!(!policy.decide(&c).allowed());
//! ```
//!
//! Data flows one way: document text → [`document::Node`] → [`doc::PolicyDoc`]
//! → [`Policy`] → [`ir::HostRuleset`] → a backend's artefact.
#![forbid(unsafe_code)]

pub mod addr;
pub mod backend;
pub mod classes;
pub mod diag;
pub mod diff;
pub mod doc;
pub mod document;
pub mod hardening;
pub mod interval;
pub mod ir;
pub mod lint;
mod load;
pub mod matrix;
mod model;
pub mod ports;
pub mod reserved;
mod resolve;
pub mod semantics;

pub use diag::{Diagnostic, Severity};
pub use model::*;
pub use resolve::{parse_rate, DEFAULT_EGRESS, LOG_LEVELS, NAME_MAX, TABLE_MAX};

use document::Format;
use std::path::Path;

/// The errors of microseg-core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The policy document is invalid; every problem found, located.
    #[error("{}", diag::render(.0))]
    Invalid(Vec<Diagnostic>),
    /// The policy file could not be read.
    #[error("cannot read policy {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A query or compile request does not fit the policy (unknown role, bad address…).
    #[error("{0}")]
    Request(String),
}

impl Policy {
    /// Parses and validates a policy document. `file` names it in diagnostics.
    pub fn from_str_as(text: &str, format: Format, file: Option<&str>) -> Result<Policy, Error> {
        let locate = |mut ds: Vec<Diagnostic>| {
            if let Some(f) = file {
                for d in &mut ds {
                    d.file = Some(f.to_string());
                }
            }
            Error::Invalid(ds)
        };
        let node = document::parse_document(text, format).map_err(|e| {
            locate(vec![Diagnostic::error(
                e.pos,
                format!("{format} syntax error: {}", e.message),
            )])
        })?;
        let loaded = load::load(&node);
        let mut policy =
            resolve::resolve(loaded.doc, &loaded.positions, loaded.errors).map_err(locate)?;
        policy.positions.file = file.map(String::from);
        Ok(policy)
    }

    /// Reads, parses and validates a policy file; the format follows the extension
    /// (`.json`, `.yaml`/`.yml`, else TOML).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Policy, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.display().to_string(),
            source,
        })?;
        Policy::from_str_as(
            &text,
            Format::from_path(path),
            Some(&path.display().to_string()),
        )
    }

    /// Builds a policy from an already-typed document (e.g. from the Python bindings).
    pub fn from_doc(doc: doc::PolicyDoc) -> Result<Policy, Error> {
        let json = serde_json::to_string(&doc).map_err(|e| Error::Request(e.to_string()))?;
        Policy::from_str_as(&json, Format::Json, None)
    }
}
