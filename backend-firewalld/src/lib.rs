//! microseg's firewalld backend: the IR becomes firewalld's own objects (a
//! zone made the default zone, an output policy, ipsets and prioritised rich
//! rules), driven over firewalld's D-Bus API with zbus — never nft rules
//! behind firewalld's back.
//!
//! ```
//! use backend_firewalld::{FirewalldRenderer, model::Model};
//! use microseg_core::backend::Renderer;
//! use microseg_core::ir::{compile, Direction, Target};
//! use microseg_core::{Policy, ports::Proto, semantics::{Connection, Verdict}};
//! let policy = Policy::from_str_as(include_str!("../../examples/three-tier.toml"),
//!     microseg_core::document::Format::Toml, None).unwrap();
//! let rs = compile(&policy, &Target::Role("app".into())).unwrap();
//! let cfg = FirewalldRenderer.render(&rs).unwrap();
//! // `microseg compile --format firewalld` prints this.
//! let json = cfg.to_json();
//! assert!(json.contains("\"microseg-out\""));
//! // The objects decide as the IR does, in both directions.
//! let web_to_app = Connection::new("10.10.1.11".parse().unwrap(), "10.10.1.21".parse().unwrap(), Proto::Tcp(8080));
//! let model = Model::new(&cfg).unwrap();
//! assert_eq!(model.decide(Direction::Input, &web_to_app).unwrap(), Verdict::Accept);
//! let app_to_web = Connection::new("10.10.1.21".parse().unwrap(), "10.10.1.11".parse().unwrap(), Proto::Tcp(8080));
//! assert_eq!(model.decide(Direction::Output, &app_to_web).unwrap(), Verdict::Drop);
//! ```
//!
//! * [`lower`]: IR → [`objects::FirewalldConfig`] (pure, serialisable) and why
//!   deny wins in firewalld's priority-ordered rich rules.
//! * [`model`]: firewalld's decision for the emitted objects, held equal to
//!   the IR's by property tests.
//! * [`backend`]: the zbus client behind [`microseg_core::backend::Backend`]:
//!   read, plan, apply (few calls, reload only when needed, restore on
//!   failure), remove, status.
//! * [`sandbox`]: a throw-away firewalld on a private bus inside a network
//!   namespace (tests, benchmarks, `microseg verify --backend firewalld`).
#![forbid(unsafe_code)]

pub mod backend;
pub mod baseline;
mod dbus;
pub mod lower;
pub mod model;
pub mod names;
pub mod objects;
pub mod sandbox;
pub mod settings;

pub use backend::{ApplyReport, Change, FirewalldBackend, Objects, Plan, State, Status};
pub use dbus::{BUS_NAME, DEFAULT_SYSTEM_BUS};
pub use lower::FirewalldRenderer;
pub use objects::FirewalldConfig;

/// The errors of the firewalld backend.
///
/// ```
/// let e = backend_firewalld::FirewalldError::Call {
///     call: "config.zone.update2(microseg)".into(),
///     message: "INVALID_RULE: bad rule".into(),
/// };
/// assert_eq!(e.to_string(), "D-Bus call config.zone.update2(microseg) failed: INVALID_RULE: bad rule");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum FirewalldError {
    /// The ruleset needs something firewalld cannot express.
    #[error("firewalld cannot express {what}: {why}")]
    Unsupported {
        /// What.
        what: String,
        /// Why, and what would work.
        why: String,
    },
    /// The IR is not shaped as the backend expects (a bug elsewhere).
    #[error("invalid ruleset: {0}")]
    Ir(String),
    /// The model met something it does not model.
    #[error("model: {0}")]
    Model(String),
    /// The bus cannot be reached.
    #[error("cannot connect to the D-Bus bus at {address}: {message}")]
    Connect {
        /// The bus address.
        address: String,
        /// zbus's error.
        message: String,
    },
    /// firewalld is not on the bus.
    #[error("firewalld is not running on the bus at {address} (nobody owns org.fedoraproject.FirewallD1)")]
    NotRunning {
        /// The bus address.
        address: String,
    },
    /// A D-Bus call failed; `message` is firewalld's error text.
    #[error("D-Bus call {call} failed: {message}")]
    Call {
        /// The call, e.g. `config.zone.update2(microseg)`.
        call: String,
        /// firewalld's error text, e.g. `INVALID_RULE: …`.
        message: String,
    },
    /// A reply did not have the expected type.
    #[error("unexpected reply to {call}: {detail}")]
    Reply {
        /// The call.
        call: String,
        /// What was wrong.
        detail: String,
    },
    /// An apply failed; the configuration saved before it was restored
    /// (unless `restore_error` says otherwise).
    #[error("apply failed at D-Bus call {call}: {message}; {}", match .restore_error {
        None => "the previous configuration was restored".to_string(),
        Some(e) => format!("restoring the previous configuration failed too: {e}"),
    })]
    ApplyFailed {
        /// The call that failed.
        call: String,
        /// firewalld's error text.
        message: String,
        /// Why the restore failed, if it did.
        restore_error: Option<String>,
    },
    /// An object with one of the table's names exists and is not microseg's.
    #[error("{object} exists in firewalld and is not managed by microseg (table {table}); rename or remove it, or choose another table name")]
    NotOwned {
        /// The object.
        object: String,
        /// The table.
        table: String,
    },
    /// Several microseg tables are installed and none was named.
    #[error("several microseg tables are installed in firewalld ({}); name one", .tables.join(", "))]
    AmbiguousTable {
        /// The tables.
        tables: Vec<String>,
    },
    /// A private firewalld could not be started or stopped.
    #[error("sandbox: {0}")]
    Sandbox(String),
}
