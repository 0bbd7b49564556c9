//! backend-nft: the microseg IR lowered to nftables, as a libnftables JSON
//! document (built with the `nftables` crate's schema types) and as an nft
//! script with the same content.
//!
//! ```
//! use backend_nft::{to_json, to_nft_text, NftRenderer};
//! use microseg_core::{backend::Renderer, document::Format, ir::{compile, Target}, Policy};
//! let policy = Policy::from_str_as(r#"
//! version = 1
//! [groups]
//! web = ["10.0.1.10-10.0.1.19"]
//! app = ["10.0.1.20"]
//! [roles.web]
//! [roles.app]
//! [[flows]]
//! name = "web-to-app"
//! from = "web"
//! to = "app"
//! ports = ["tcp/8080"]
//! "#, Format::Toml, None).unwrap();
//! let ruleset = compile(&policy, &Target::Role("app".into())).unwrap();
//! let artefact = NftRenderer.render(&ruleset).unwrap();
//! let text = to_nft_text(&artefact);
//! assert!(text.contains("ip saddr @web_v4 tcp dport 8080 counter accept comment \"flow:web-to-app\""));
//! assert!(to_json(&artefact).contains("\"comment\": \"flow:web-to-app\""));
//! ```
//!
//! The document replaces the policy's table `inet <table>` and nothing else,
//! in one transaction: `add table` + `delete table` + `add table` (nft 1.0.6
//! has no `destroy`), then the named address sets, the base chains `input`,
//! `output` and `forward` (priority filter, policy drop) and their rules.
//! It never flushes the ruleset, so other tables (container runtimes,
//! libvirt) survive. Every rule carries a `counter` (except the log rules,
//! so that counters summed per comment give hits per flow) and the comment
//! [`Origin::label`](microseg_core::ir::Origin::label) (`flow:web-to-app`,
//! `baseline:egress`, `baseline:default`) so hits can be read back per flow.
//!
//! Load the JSON with `nft -j -f -` ([`Nft::apply_json`]) or the script with
//! `nft -f -` ([`Nft::apply_text`]).
//!
//! On a live system, [`NftBackend`] implements the core's
//! [`Backend`](microseg_core::backend::Backend): it reads only the policy's
//! table (`nft -j list table inet T`, as an [`NftState`]), plans
//! ([`NftPlan`]: unchanged, an element delta when only set members differ —
//! rules, counters and established connections untouched — or an atomic
//! replacement), applies a plan as one `nft -j -f -` transaction (nft's
//! stderr in the error), restores snapshots and removes the table. Drift
//! ([`NftBackend::drift`]) and plans compare a normal form that ignores
//! handles and counter values; hit counters are summed per rule comment
//! ([`NftState::hits`]). The lowering writes every rule the way `nft list`
//! prints it back, so a listed snapshot restores exactly.
#![forbid(unsafe_code)]

mod addr_text;
mod exec;
mod json_write;
pub use microseg_core::reserved as keywords;
mod lower;
mod manage;
pub mod members;
pub mod model;
mod netlink;
mod optimize;
mod state;
mod text;

pub use exec::Nft;
pub use keywords::is_nft_keyword;
pub use manage::{NftBackend, NftGeneration, NftPlan, NftPlanKind, NftReplacement, SetDelta};
pub use state::{Hits, NftDifference, NftState};

use microseg_core::backend::Renderer;
use microseg_core::ir::{HostRuleset, Target};
use nftables::schema::{NfCmd, NfListObject, NfObject, Nftables};
use std::borrow::Cow;

/// Name of the input base chain (hook input).
///
/// ```
/// assert_eq!(backend_nft::CHAIN_INPUT, "input");
/// ```
pub const CHAIN_INPUT: &str = "input";

/// Name of the output base chain (hook output).
///
/// ```
/// assert_eq!(backend_nft::CHAIN_OUTPUT, "output");
/// ```
pub const CHAIN_OUTPUT: &str = "output";

/// Name of the forward base chain (hook forward): forwarding is dropped.
///
/// ```
/// assert_eq!(backend_nft::CHAIN_FORWARD, "forward");
/// ```
pub const CHAIN_FORWARD: &str = "forward";

/// The errors of backend-nft.
///
/// ```
/// use backend_nft::{NftError, NftRenderer};
/// use microseg_core::{backend::Renderer, ir::{compile, Target}, document::Format, Policy};
/// let p = Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n",
///     Format::Toml, None).unwrap();
/// let mut rs = compile(&p, &Target::Role("web".into())).unwrap();
/// rs.table = "drop".into(); // an nft keyword: `nft list table inet drop` cannot be typed
/// let err = NftRenderer.render(&rs).unwrap_err();
/// assert!(matches!(err, NftError::TableName { .. }));
/// assert!(err.to_string().contains("keyword"));
/// ```
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// The table name cannot be written in an nft script.
    #[error(
        "table name \"{name}\" cannot be used with nftables: it must be a letter followed by \
         letters, digits, '-' or '_', and not an nft keyword (nft has no quoting for names, so \
         `nft list table inet {name}` could not even be typed); choose another `table`"
    )]
    TableName {
        /// The table name.
        name: String,
    },
    /// A log prefix holds a character nft cannot take in a quoted string.
    #[error(
        "log prefix {prefix:?} contains {found:?}: nft scripts have no escapes and read '$' as a \
         variable; use printable ASCII without quotes, backslashes or '$'"
    )]
    LogPrefix {
        /// The prefix.
        prefix: String,
        /// The offending character.
        found: char,
    },
    /// A syslog level nftables does not know.
    #[error(
        "unknown log level \"{level}\"; nftables knows emerg, alert, crit, err, warn, notice, \
         info, debug and audit"
    )]
    LogLevel {
        /// The level.
        level: String,
    },
    /// A rule names a set the ruleset does not define (an IR bug).
    #[error("rule {rule} matches set \"{set}\", which the ruleset does not define")]
    UnknownSet {
        /// The set name.
        set: String,
        /// The rule's origin label.
        rule: String,
    },
    /// A rule restricted to one family matches a set of the other (an IR bug).
    #[error("rule {rule} matches set \"{set}\" of the other IP family")]
    SetFamily {
        /// The set name.
        set: String,
        /// The rule's origin label.
        rule: String,
    },
    /// A TCP or UDP rule with no port (an IR bug).
    #[error("rule {rule} matches an empty port list")]
    EmptyPorts {
        /// The rule's origin label.
        rule: String,
    },
    /// A command could not be started.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A command failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr (nft's error with the offending line).
        stderr: String,
    },
    /// A plan or snapshot is for another table than the backend manages.
    #[error("table mismatch: this backend manages table inet {expected}, not {found}")]
    TableMismatch {
        /// The backend's table.
        expected: String,
        /// The table of the artefact or snapshot.
        found: String,
    },
    /// A listing or saved snapshot of the table cannot be used.
    #[error("snapshot of table inet {table} cannot be used: {message}")]
    State {
        /// The table.
        table: String,
        /// What is wrong with it.
        message: String,
    },
    /// A command printed JSON that could not be read.
    #[error("`{command}` printed JSON that cannot be read: {source}")]
    Output {
        /// The command line.
        command: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The [model](crate::model) met something outside the subset it interprets.
    #[error("nft model: {message}")]
    Model {
        /// What it met.
        message: String,
    },
    /// An element delta sent over nfnetlink was not applied; nothing changed.
    #[error("element delta on table inet {table} not applied: {message}")]
    Elements {
        /// The table.
        table: String,
        /// What the kernel or the socket said.
        message: String,
        /// The ruleset changed since the generation the delta was planned at.
        generation_changed: bool,
    },
}

/// Which lowering of the IR to nftables a renderer uses.
///
/// ```
/// use backend_nft::{Lowering, NftRenderer};
/// use microseg_core::{document::Format, ir::{compile, Target}, Policy};
/// let p = Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\nadm = [\"10.9.0.0/24\"]\n\
///     [roles.web]\n[[flows]]\nname = \"ssh\"\nfrom = \"adm\"\nto = \"web\"\nports = [\"tcp/22\"]\n",
///     Format::Toml, None).unwrap();
/// let rs = compile(&p, &Target::Role("web".into())).unwrap();
/// let plain = Lowering::Plain.render(&rs).unwrap();
/// let optimized = Lowering::Optimized.render(&rs).unwrap();
/// assert!(backend_nft::to_nft_text(&plain).contains("ip saddr @adm_v4 tcp dport 22"));
/// let text = backend_nft::to_nft_text(&optimized);
/// // Level 1: the source's class; other sources meet the background (here: ICMP).
/// assert!(text.contains("ip saddr vmap @in4_range"), "{text}");
/// assert!(text.contains("map in4_range {\n\t\ttype ipv4_addr : verdict\n\t\tflags interval\n\t\t\
///     elements = { 10.9.0.0/24 : jump in4_"), "{text}");
/// assert!(text.contains("meta nfproto ipv4 jump in4_any"), "{text}");
/// // Level 2: protocol and port, to the deciding flow's chain.
/// assert!(text.contains("meta l4proto . th dport vmap { tcp . 22 : jump f_ssh"), "{text}");
/// assert!(text.contains("chain f_ssh {\n\t\t# flow:ssh\n\t\tcounter accept comment \"flow:ssh\""), "{text}");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Lowering {
    /// One nft rule per IR rule, with named address sets ([`NftRenderer`]):
    /// address changes apply as set element deltas.
    #[default]
    Plain,
    /// Verdict maps over an exact partition ([`NftOptimizedRenderer`]): a
    /// bounded number of rules and lookups per new connection, whatever the
    /// number of flows and addresses; its level-1 maps are named, so an
    /// address change that keeps the decisions applies as element deltas
    /// of those maps.
    Optimized,
}

impl Lowering {
    /// Renders a ruleset with this lowering.
    ///
    /// ```
    /// # use backend_nft::Lowering;
    /// # use microseg_core::{document::Format, ir::{compile, Target}, Policy};
    /// # let p = Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n", Format::Toml, None).unwrap();
    /// let a = Lowering::Optimized.render(&compile(&p, &Target::Role("web".into())).unwrap()).unwrap();
    /// assert_eq!(a.table(), "microseg");
    /// ```
    pub fn render(self, ruleset: &HostRuleset) -> Result<NftArtefact, NftError> {
        match self {
            Lowering::Plain => NftRenderer.render(ruleset),
            Lowering::Optimized => NftOptimizedRenderer.render(ruleset),
        }
    }
}

/// Renders a [`HostRuleset`] with the optimised lowering (pure): per chain
/// and family one verdict-map lookup of the remote address, one of the
/// protocol and port (and the host's own address where it matters), then a
/// jump to the deciding flow's chain, which counts and decides. See
/// [`Lowering::Optimized`].
///
/// ```
/// use backend_nft::NftOptimizedRenderer;
/// use microseg_core::{backend::Renderer, document::Format, ir::{compile, Target}, Policy};
/// let p = Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n",
///     Format::Toml, None).unwrap();
/// let a = NftOptimizedRenderer.render(&compile(&p, &Target::Role("web".into())).unwrap()).unwrap();
/// // The flows' (here: the baseline's) chains keep their comments and counters.
/// assert!(a.rule_comments().contains(&"baseline:egress".to_string()));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NftOptimizedRenderer;

impl Renderer for NftOptimizedRenderer {
    type Artefact = NftArtefact;
    type Error = NftError;

    fn render(&self, ruleset: &HostRuleset) -> Result<NftArtefact, NftError> {
        let objects = optimize::lower(ruleset)?;
        Ok(NftArtefact {
            table: ruleset.table.clone(),
            target: ruleset.target.clone(),
            document: Nftables {
                objects: Cow::Owned(objects),
            },
        })
    }
}

/// Renders a [`HostRuleset`] to an [`NftArtefact`] (pure: touches no system).
///
/// ```
/// use backend_nft::NftRenderer;
/// use microseg_core::{backend::Renderer, document::Format, ir::{compile, Target}, Policy};
/// let p = Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n",
///     Format::Toml, None).unwrap();
/// let artefact = NftRenderer.render(&compile(&p, &Target::Role("web".into())).unwrap()).unwrap();
/// assert_eq!(artefact.table(), "microseg");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NftRenderer;

impl Renderer for NftRenderer {
    type Artefact = NftArtefact;
    type Error = NftError;

    fn render(&self, ruleset: &HostRuleset) -> Result<NftArtefact, NftError> {
        let objects = lower::lower(ruleset)?;
        Ok(NftArtefact {
            table: ruleset.table.clone(),
            target: ruleset.target.clone(),
            document: Nftables {
                objects: Cow::Owned(objects),
            },
        })
    }
}

/// The rendered ruleset: one libnftables JSON transaction that replaces the
/// table `inet <table>`.
///
/// ```
/// use backend_nft::NftRenderer;
/// use microseg_core::{backend::Renderer, document::Format, ir::{compile, Target}, Policy};
/// let p = Policy::from_str_as("version = 1\ntable = \"ms\"\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n",
///     Format::Toml, None).unwrap();
/// let a = NftRenderer.render(&compile(&p, &Target::Role("web".into())).unwrap()).unwrap();
/// assert_eq!(a.table(), "ms");
/// assert!(a.rule_comments().contains(&"baseline:default".to_string()));
/// let doc: &nftables::schema::Nftables = a.document();
/// assert!(!doc.objects.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftArtefact {
    table: String,
    target: Target,
    document: Nftables<'static>,
}

impl NftArtefact {
    /// An artefact from a hand-made document (e.g. to load something the
    /// renderer would never produce, such as a fault in a test).
    ///
    /// ```
    /// use backend_nft::NftArtefact;
    /// use microseg_core::ir::Target;
    /// let doc: nftables::schema::Nftables = serde_json::from_str(
    ///     r#"{"nftables": [{"add": {"table": {"family": "inet", "name": "ms"}}}]}"#).unwrap();
    /// let a = NftArtefact::from_document("ms", Target::Role("web".into()), doc);
    /// assert_eq!(a.table(), "ms");
    /// ```
    pub fn from_document(
        table: impl Into<String>,
        target: Target,
        document: Nftables<'static>,
    ) -> NftArtefact {
        NftArtefact {
            table: table.into(),
            target,
            document,
        }
    }

    /// The table (in family `inet`) the document replaces.
    ///
    /// ```
    /// # use backend_nft::NftRenderer;
    /// # use microseg_core::{backend::Renderer, document::Format, ir::{compile, Target}, Policy};
    /// # let p = Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n", Format::Toml, None).unwrap();
    /// let a = NftRenderer.render(&compile(&p, &Target::Role("web".into())).unwrap()).unwrap();
    /// assert_eq!(a.table(), "microseg");
    /// ```
    pub fn table(&self) -> &str {
        &self.table
    }

    /// What the ruleset was compiled for.
    ///
    /// ```
    /// # use backend_nft::NftRenderer;
    /// # use microseg_core::{backend::Renderer, document::Format, ir::{compile, Target}, Policy};
    /// # let p = Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n", Format::Toml, None).unwrap();
    /// let a = NftRenderer.render(&compile(&p, &Target::Role("web".into())).unwrap()).unwrap();
    /// assert_eq!(a.target(), &Target::Role("web".into()));
    /// ```
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The libnftables JSON document (the `nftables` crate's schema types).
    ///
    /// ```
    /// # use backend_nft::NftRenderer;
    /// # use microseg_core::{backend::Renderer, document::Format, ir::{compile, Target}, Policy};
    /// # let p = Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n", Format::Toml, None).unwrap();
    /// let a = NftRenderer.render(&compile(&p, &Target::Role("web".into())).unwrap()).unwrap();
    /// // add table, delete table, add table, then sets, chains and rules.
    /// assert!(a.document().objects.len() > 3);
    /// ```
    pub fn document(&self) -> &Nftables<'static> {
        &self.document
    }

    /// The document, by value.
    ///
    /// ```
    /// # use backend_nft::NftRenderer;
    /// # use microseg_core::{backend::Renderer, document::Format, ir::{compile, Target}, Policy};
    /// # let p = Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n", Format::Toml, None).unwrap();
    /// let a = NftRenderer.render(&compile(&p, &Target::Role("web".into())).unwrap()).unwrap();
    /// let doc: nftables::schema::Nftables<'static> = a.into_document();
    /// # let _ = doc;
    /// ```
    pub fn into_document(self) -> Nftables<'static> {
        self.document
    }

    /// The comment of every rule, in document order (duplicates kept).
    ///
    /// ```
    /// # use backend_nft::NftRenderer;
    /// # use microseg_core::{backend::Renderer, document::Format, ir::{compile, Target}, Policy};
    /// # let p = Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n", Format::Toml, None).unwrap();
    /// let a = NftRenderer.render(&compile(&p, &Target::Role("web".into())).unwrap()).unwrap();
    /// assert_eq!(a.rule_comments()[0], "baseline:established");
    /// ```
    pub fn rule_comments(&self) -> Vec<String> {
        self.document
            .objects
            .iter()
            .filter_map(|o| match o {
                NfObject::CmdObject(NfCmd::Add(NfListObject::Rule(r))) => {
                    r.comment.as_deref().map(String::from)
                }
                _ => None,
            })
            .collect()
    }

    /// The names of the named sets, in document order.
    ///
    /// ```
    /// # use backend_nft::NftRenderer;
    /// # use microseg_core::{backend::Renderer, document::Format, ir::{compile, Target}, Policy};
    /// # let p = Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\nadm = [\"10.9.0.0/24\"]\n[roles.web]\n[[flows]]\nfrom = \"adm\"\nto = \"web\"\nports = [\"tcp/22\"]\n", Format::Toml, None).unwrap();
    /// let a = NftRenderer.render(&compile(&p, &Target::Role("web".into())).unwrap()).unwrap();
    /// assert_eq!(a.set_names(), ["adm_v4"]);
    /// ```
    pub fn set_names(&self) -> Vec<String> {
        self.document
            .objects
            .iter()
            .filter_map(|o| match o {
                NfObject::CmdObject(NfCmd::Add(NfListObject::Set(s))) => Some(s.name.to_string()),
                _ => None,
            })
            .collect()
    }
}

/// The libnftables JSON text of an artefact, the input of `nft -j -f -`.
///
/// ```
/// # use backend_nft::NftRenderer;
/// # use microseg_core::{backend::Renderer, document::Format, ir::{compile, Target}, Policy};
/// # let p = Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n", Format::Toml, None).unwrap();
/// let a = NftRenderer.render(&compile(&p, &Target::Role("web".into())).unwrap()).unwrap();
/// let json: serde_json::Value = serde_json::from_str(&backend_nft::to_json(&a)).unwrap();
/// assert_eq!(json["nftables"][1]["delete"]["table"]["name"], "microseg");
/// ```
pub fn to_json(artefact: &NftArtefact) -> String {
    // The schema types are plain structs, enums and strings: serialising cannot fail.
    serde_json::to_string_pretty(&artefact.document)
        .expect("nftables schema types serialise to JSON")
}

/// The same JSON without indentation: what [`Nft::apply_json`],
/// [`Nft::check_json`] and [`NftBackend`] hand to `nft -j -f -` (smaller,
/// faster to write and for nft to read).
///
/// The text is exactly `serde_json::to_string(artefact.document())`, written
/// by a dedicated writer over the `nftables` schema types (several times
/// faster than the generic serialiser on documents of many set elements).
///
/// ```
/// # use backend_nft::NftRenderer;
/// # use microseg_core::{backend::Renderer, document::Format, ir::{compile, Target}, Policy};
/// # let p = Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n", Format::Toml, None).unwrap();
/// let a = NftRenderer.render(&compile(&p, &Target::Role("web".into())).unwrap()).unwrap();
/// let compact = backend_nft::to_json_compact(&a);
/// assert!(!compact.contains('\n'));
/// assert_eq!(compact, serde_json::to_string(a.document()).unwrap());
/// let (x, y): (serde_json::Value, serde_json::Value) =
///     (serde_json::from_str(&compact).unwrap(), serde_json::from_str(&backend_nft::to_json(&a)).unwrap());
/// assert_eq!(x, y);
/// ```
pub fn to_json_compact(artefact: &NftArtefact) -> String {
    let mut out = String::with_capacity(json_write::estimate_len(&artefact.document));
    json_write::write_document(&artefact.document, &mut out);
    out
}

/// Appends the text of [`to_json_compact`] to `out`: to render many
/// artefacts through one buffer (cleared by the caller between them)
/// without allocating a string for each.
///
/// ```
/// # use backend_nft::NftRenderer;
/// # use microseg_core::{backend::Renderer, document::Format, ir::{compile, Target}, Policy};
/// # let p = Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n", Format::Toml, None).unwrap();
/// let a = NftRenderer.render(&compile(&p, &Target::Role("web".into())).unwrap()).unwrap();
/// let mut buf = String::new();
/// backend_nft::write_json_compact(&a, &mut buf);
/// assert_eq!(buf, backend_nft::to_json_compact(&a));
/// ```
pub fn write_json_compact(artefact: &NftArtefact, out: &mut String) {
    json_write::write_document(&artefact.document, out);
}

/// The artefact as an nft script, the input of `nft -f -`: the same
/// transaction as [`to_json`] (`table inet T` / `delete table inet T` /
/// `table inet T { … }`), with a `# flow:NAME` line above each flow's rules.
///
/// ```
/// # use backend_nft::NftRenderer;
/// # use microseg_core::{backend::Renderer, document::Format, ir::{compile, Target}, Policy};
/// # let p = Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n", Format::Toml, None).unwrap();
/// let a = NftRenderer.render(&compile(&p, &Target::Role("web".into())).unwrap()).unwrap();
/// let text = backend_nft::to_nft_text(&a);
/// assert!(text.contains("table inet microseg\ndelete table inet microseg\ntable inet microseg {\n"));
/// assert!(text.contains("\t\t# baseline:established\n\t\tct state established,related counter accept"));
/// ```
pub fn to_nft_text(artefact: &NftArtefact) -> String {
    let header = format!(
        "microseg ruleset for {}: replaces table inet {} and nothing else.\n\
         Generated; load with `nft -f FILE` (same content as the JSON for `nft -j -f`).",
        artefact.target, artefact.table
    );
    text::print(&artefact.document, &header)
}

#[cfg(test)]
mod tests;
