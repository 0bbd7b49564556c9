//! Driving a running firewalld: read, plan, apply, restore, remove, status.
//!
//! ```no_run
//! use backend_firewalld::{FirewalldBackend, FirewalldRenderer};
//! use microseg_core::backend::{Backend, Renderer};
//! use microseg_core::{Policy, ir::{compile, Target}};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = Policy::from_file("examples/three-tier.toml")?;
//! let desired = FirewalldRenderer.render(&compile(&policy, &Target::Role("web".into()))?)?;
//! // The system bus (DBUS_SYSTEM_BUS_ADDRESS honoured), or an explicit address.
//! let fw = FirewalldBackend::connect(None)?;
//! let plan = fw.plan(&desired, fw.read()?.as_ref())?;
//! print!("{plan}");                       // --dry-run stops here
//! let report = fw.apply_report(&plan)?;    // on failure: restored, and the error names the call
//! println!("{report}");
//! assert!(fw.plan(&desired, fw.read()?.as_ref())?.is_empty()); // idempotent
//! # Ok(()) }
//! ```
//!
//! # How an apply works
//!
//! The backend owns, per table `T`: the zone `T`, the policy `T-out` and the
//! ipsets `T-…`, each marked `[microseg table=T]` in its description; and it
//! sets the default zone. A plan is the difference between what firewalld has
//! (permanent configuration *and* runtime, read over D-Bus) and what it should
//! have, as a short list of calls:
//!
//! 1. permanent configuration: one `config.addIPSet`/`config.ipset.update`
//!    per changed ipset (all entries in the one call), one
//!    `config.addZone2`/`config.zone.update2`, one
//!    `config.addPolicy`/`config.policy.update`, one `remove` per object that
//!    goes away;
//! 2. runtime: one `reload` when an object appears or disappears or a
//!    target, priority or ipset type changes (firewalld cannot create those at
//!    runtime); otherwise no reload, but one `ipset.setEntries` per ipset whose
//!    entries changed and one `zone.setZoneSettings2`/`policy.setPolicySettings`
//!    for changed rich rules;
//! 3. `setDefaultZone` when the zone is not the default yet.
//!
//! A membership change (addresses of a group) is therefore two calls per
//! changed ipset and no reload. A second apply of the same policy plans
//! nothing. If a call fails, everything the plan saw before is put back
//! (the owned objects in permanent configuration and runtime, and the default
//! zone) and the error names the failed call and firewalld's message.

use crate::dbus::Client;
use crate::names;
use crate::objects::FirewalldConfig;
use crate::settings::{IpsetSettings, PolicySettings, ZoneSettings};
use crate::{FirewalldError, FirewalldRenderer};
use microseg_core::backend::{Backend, Renderer};
use microseg_core::ir::HostRuleset;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

/// The objects of one table, as firewalld has them.
///
/// ```
/// use backend_firewalld::{settings::ZoneSettings, Objects};
/// let o = Objects { zone: Some(ZoneSettings::default()), ..Objects::default() };
/// assert!(!o.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Objects {
    /// The zone `<table>`.
    pub zone: Option<ZoneSettings>,
    /// The policy `<table>-out`.
    pub policy: Option<PolicySettings>,
    /// The ipsets `<table>-…`, by name.
    pub ipsets: BTreeMap<String, IpsetSettings>,
}

impl Objects {
    /// True if there is nothing.
    ///
    /// ```
    /// assert!(backend_firewalld::Objects::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.zone.is_none() && self.policy.is_none() && self.ipsets.is_empty()
    }
}

/// What a table owns in firewalld, and the default zone: enough to put it back
/// (serialisable, so a CLI can keep it for `rollback`).
///
/// ```
/// use backend_firewalld::{Objects, State};
/// let s = State { table: "microseg".into(), default_zone: "public".into(),
///     permanent: Objects::default(), runtime: Objects::default(), foreign: vec![] };
/// let json = serde_json::to_string(&s).unwrap();
/// assert_eq!(serde_json::from_str::<State>(&json).unwrap(), s);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The table.
    pub table: String,
    /// The default zone (`setDefaultZone` sets it at runtime and in firewalld.conf alike).
    pub default_zone: String,
    /// Owned objects in the permanent configuration.
    pub permanent: Objects,
    /// Owned objects in the runtime configuration.
    pub runtime: Objects,
    /// Objects that have the table's names but are not marked as the table's
    /// (this backend never changes them; a plan that needs them fails).
    pub foreign: Vec<String>,
}

impl State {
    /// True if any owned object exists (permanent or runtime).
    ///
    /// ```
    /// use backend_firewalld::{Objects, State};
    /// let s = State { table: "t".into(), default_zone: "public".into(),
    ///     permanent: Objects::default(), runtime: Objects::default(), foreign: vec![] };
    /// assert!(!s.is_installed());
    /// ```
    pub fn is_installed(&self) -> bool {
        !self.permanent.is_empty() || !self.runtime.is_empty()
    }

    /// The default zone found before this table took over, as its zone records it.
    ///
    /// ```
    /// use backend_firewalld::{names, settings::ZoneSettings, Objects, State};
    /// let zone = ZoneSettings { description: names::description("t", Some("home")), ..Default::default() };
    /// let s = State { table: "t".into(), default_zone: "t".into(),
    ///     permanent: Objects { zone: Some(zone), ..Objects::default() }, runtime: Objects::default(), foreign: vec![] };
    /// assert_eq!(s.previous_default_zone().as_deref(), Some("home"));
    /// ```
    pub fn previous_default_zone(&self) -> Option<String> {
        [&self.permanent.zone, &self.runtime.zone]
            .into_iter()
            .flatten()
            .find_map(|z| names::parse_marker(&z.description).and_then(|m| m.previous_default_zone))
    }

    /// The state an apply of `desired` leaves, as [`FirewalldBackend::snapshot`]
    /// reads it back — except for what depends on what was there before (the
    /// previous default zone in the zone's marker, interfaces and sources bound
    /// to the zone), which [`State::drift`] does not compare. What a host
    /// records as applied, to measure drift against later.
    ///
    /// ```
    /// # use backend_firewalld::{FirewalldRenderer, State};
    /// # use microseg_core::backend::Renderer;
    /// # use microseg_core::{Policy, document::Format, ir::{compile, Target}};
    /// # let p = Policy::from_str_as(include_str!("../../examples/three-tier.toml"), Format::Toml, None).unwrap();
    /// let desired = FirewalldRenderer.render(&compile(&p, &Target::Role("db".into())).unwrap()).unwrap();
    /// let expected = State::expected(&desired);
    /// assert_eq!(expected.default_zone, "microseg");
    /// assert_eq!(expected.permanent, expected.runtime);
    /// assert!(expected.drift(&expected).is_empty());
    /// ```
    pub fn expected(desired: &FirewalldConfig) -> State {
        let table = &desired.table;
        let objects = goal_objects(desired, names::description(table, None), None);
        State {
            table: table.clone(),
            default_zone: names::zone(table),
            permanent: objects.clone(),
            runtime: objects,
            foreign: Vec::new(),
        }
    }

    /// What differs between `self` (what should be installed, e.g. from
    /// [`State::expected`] or a snapshot) and `current`: the changes an apply
    /// would make to put it back, permanent configuration, runtime and default
    /// zone alike. Empty: no drift. The previous default zone recorded in the
    /// zone's marker and the zone's interface and source bindings are not
    /// compared (an apply keeps them).
    ///
    /// ```
    /// # use backend_firewalld::{FirewalldRenderer, State, Change};
    /// # use microseg_core::backend::Renderer;
    /// # use microseg_core::{Policy, document::Format, ir::{compile, Target}};
    /// # let p = Policy::from_str_as(include_str!("../../examples/three-tier.toml"), Format::Toml, None).unwrap();
    /// # let desired = FirewalldRenderer.render(&compile(&p, &Target::Role("db".into())).unwrap()).unwrap();
    /// let expected = State::expected(&desired);
    /// let mut current = expected.clone();
    /// current.default_zone = "public".into();
    /// current.runtime.zone.as_mut().unwrap().rich_rules.push("rule added by hand".into());
    /// let drift = expected.drift(&current);
    /// assert!(drift.iter().any(|c| matches!(c, Change::DefaultZone { .. })));
    /// assert!(drift.iter().any(|c| matches!(c, Change::Runtime { .. })));
    /// ```
    pub fn drift(&self, current: &State) -> Vec<Change> {
        let mut want = self.clone();
        let marker_table = |z: &ZoneSettings| names::parse_marker(&z.description).map(|m| m.table);
        for (w, c) in [
            (&mut want.permanent.zone, &current.permanent.zone),
            (&mut want.runtime.zone, &current.runtime.zone),
        ] {
            if let (Some(w), Some(c)) = (w.as_mut(), c) {
                if marker_table(w).is_some() && marker_table(w) == marker_table(c) {
                    w.description = c.description.clone();
                    w.interfaces = c.interfaces.clone();
                    w.sources = c.sources.clone();
                }
            }
        }
        let goal = Goal {
            permanent: want.permanent,
            runtime: want.runtime,
            default_zone: want.default_zone,
        };
        transition(current.clone(), &goal).changes
    }
}

/// One change of a plan (what `--dry-run` shows and an apply reports).
///
/// ```
/// use backend_firewalld::Change;
/// let c = Change::Entries { ipset: "microseg-web-4".into(), added: vec!["10.0.0.9".into()], removed: vec![] };
/// assert!(c.to_string().starts_with("~ ipset microseg-web-4: entries only, no reload"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// An object is created.
    Create {
        /// `zone microseg`, `ipset microseg-web-4`, …
        object: String,
        /// A summary (`3 entries`, `12 rich rules`).
        detail: String,
    },
    /// An object's settings change (permanent, and runtime or by reload).
    Update {
        /// The object.
        object: String,
        /// What changes (`+ rule …`, `- rule …`, `target DROP -> %%REJECT%%`).
        details: Vec<String>,
    },
    /// Only an ipset's entries change: no reload.
    Entries {
        /// The ipset.
        ipset: String,
        /// Entries added.
        added: Vec<String>,
        /// Entries removed.
        removed: Vec<String>,
    },
    /// An object is removed.
    Remove {
        /// The object.
        object: String,
    },
    /// The runtime differs from the permanent configuration (drift) and is
    /// corrected without a reload.
    Runtime {
        /// The object.
        object: String,
    },
    /// firewalld reloads its permanent configuration into the runtime.
    Reload {
        /// Why.
        reason: String,
    },
    /// The default zone changes.
    DefaultZone {
        /// From.
        from: String,
        /// To.
        to: String,
    },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Create { object, detail } => write!(f, "+ {object} ({detail})"),
            Change::Update { object, details } => {
                write!(f, "~ {object}")?;
                for d in details {
                    write!(f, "\n    {d}")?;
                }
                Ok(())
            }
            Change::Entries {
                ipset,
                added,
                removed,
            } => {
                write!(
                    f,
                    "~ ipset {ipset}: entries only, no reload ({} added, {} removed)",
                    added.len(),
                    removed.len()
                )?;
                for a in added.iter().take(20) {
                    write!(f, "\n    + {a}")?;
                }
                for r in removed.iter().take(20) {
                    write!(f, "\n    - {r}")?;
                }
                if added.len() > 20 || removed.len() > 20 {
                    write!(f, "\n    …")?;
                }
                Ok(())
            }
            Change::Remove { object } => write!(f, "- {object}"),
            Change::Runtime { object } => write!(
                f,
                "~ {object}: runtime differs from the permanent configuration; set at runtime"
            ),
            Change::Reload { reason } => write!(f, "! reload ({reason})"),
            Change::DefaultZone { from, to } => write!(f, "~ default zone {from} -> {to}"),
        }
    }
}

/// One D-Bus call of a plan.
#[derive(Debug, Clone)]
enum Op {
    AddIpset(String, IpsetSettings),
    UpdateIpset(String, IpsetSettings),
    RemoveIpset(String),
    AddZone(String, ZoneSettings),
    UpdateZone(String, ZoneSettings),
    RemoveZone(String),
    AddPolicy(String, PolicySettings),
    UpdatePolicy(String, PolicySettings),
    RemovePolicy(String),
    Reload,
    RuntimeEntries(String, Vec<String>),
    RuntimeZone(String, ZoneSettings),
    RuntimePolicy(String, PolicySettings),
    SetDefaultZone(String),
}

/// The changes that make firewalld match a [`FirewalldConfig`] (or a saved
/// [`State`]); its `Display` is the `--dry-run` output.
///
/// ```no_run
/// # use backend_firewalld::{FirewalldBackend, FirewalldConfig};
/// # let fw = FirewalldBackend::connect(None).unwrap();
/// # let desired: FirewalldConfig = unimplemented!();
/// let plan = fw.plan_config(&desired, None).unwrap();
/// print!("{plan}");
/// ```
#[derive(Debug, Clone)]
pub struct Plan {
    table: String,
    changes: Vec<Change>,
    ops: Vec<Op>,
    saved: State,
    warnings: Vec<String>,
}

impl Plan {
    /// The table.
    ///
    /// ```no_run
    /// # use backend_firewalld::{FirewalldBackend, FirewalldConfig};
    /// # let fw = FirewalldBackend::connect(None).unwrap();
    /// # let desired: FirewalldConfig = unimplemented!();
    /// let plan = fw.plan_config(&desired, None).unwrap();
    /// assert_eq!(plan.table(), desired.table);
    /// ```
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The changes, in the order they are made.
    ///
    /// ```no_run
    /// # use backend_firewalld::{FirewalldBackend, FirewalldConfig};
    /// # let fw = FirewalldBackend::connect(None).unwrap();
    /// # let desired: FirewalldConfig = unimplemented!();
    /// let plan = fw.plan_config(&desired, None).unwrap();
    /// for c in plan.changes() { println!("{c}"); }
    /// ```
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// True if firewalld already matches: applying does nothing.
    ///
    /// ```no_run
    /// # use backend_firewalld::{FirewalldBackend, FirewalldConfig};
    /// # let fw = FirewalldBackend::connect(None).unwrap();
    /// # let desired: FirewalldConfig = unimplemented!();
    /// let plan = fw.plan_config(&desired, None).unwrap();
    /// if plan.is_empty() { println!("up to date"); }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// True if the plan reloads firewalld.
    ///
    /// ```no_run
    /// # use backend_firewalld::{FirewalldBackend, FirewalldConfig};
    /// # let fw = FirewalldBackend::connect(None).unwrap();
    /// # let desired: FirewalldConfig = unimplemented!();
    /// let plan = fw.plan_config(&desired, None).unwrap();
    /// println!("reload: {}", plan.reloads());
    /// ```
    pub fn reloads(&self) -> bool {
        self.ops.iter().any(|o| matches!(o, Op::Reload))
    }

    /// True if the plan only changes ipset entries (permanent and runtime), without reload.
    ///
    /// ```no_run
    /// # use backend_firewalld::{FirewalldBackend, FirewalldConfig};
    /// # let fw = FirewalldBackend::connect(None).unwrap();
    /// # let desired: FirewalldConfig = unimplemented!();
    /// let plan = fw.plan_config(&desired, None).unwrap();
    /// if plan.only_ipset_entries() { assert!(!plan.reloads()); }
    /// ```
    pub fn only_ipset_entries(&self) -> bool {
        !self.is_empty()
            && self
                .ops
                .iter()
                .all(|o| matches!(o, Op::UpdateIpset(..) | Op::RuntimeEntries(..)))
            && self
                .changes
                .iter()
                .all(|c| matches!(c, Change::Entries { .. }))
    }

    /// The D-Bus calls the plan makes (object paths looked up on the way not counted).
    ///
    /// ```no_run
    /// # use backend_firewalld::{FirewalldBackend, FirewalldConfig};
    /// # let fw = FirewalldBackend::connect(None).unwrap();
    /// # let desired: FirewalldConfig = unimplemented!();
    /// let plan = fw.plan_config(&desired, None).unwrap();
    /// println!("{} calls", plan.write_calls());
    /// ```
    pub fn write_calls(&self) -> usize {
        self.ops.len()
    }

    /// Why firewalld may still not enforce the policy fully after the plan
    /// (interfaces or sources bound to other zones bypass the default zone).
    ///
    /// ```no_run
    /// # use backend_firewalld::{FirewalldBackend, FirewalldConfig};
    /// # let fw = FirewalldBackend::connect(None).unwrap();
    /// # let desired: FirewalldConfig = unimplemented!();
    /// let plan = fw.plan_config(&desired, None).unwrap();
    /// for w in plan.warnings() { eprintln!("warning: {w}"); }
    /// ```
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// What firewalld had when the plan was made (what a failed apply restores).
    ///
    /// ```no_run
    /// # use backend_firewalld::{FirewalldBackend, FirewalldConfig};
    /// # let fw = FirewalldBackend::connect(None).unwrap();
    /// # let desired: FirewalldConfig = unimplemented!();
    /// let plan = fw.plan_config(&desired, None).unwrap();
    /// let before = plan.saved().clone();
    /// ```
    pub fn saved(&self) -> &State {
        &self.saved
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            writeln!(f, "firewalld (table {}): no changes", self.table)?;
        } else {
            writeln!(
                f,
                "firewalld (table {}): {} D-Bus calls",
                self.table,
                self.ops.len()
            )?;
            for c in &self.changes {
                writeln!(f, "{c}")?;
            }
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}

/// What an apply did; its `Display` is a short report.
///
/// ```no_run
/// # use backend_firewalld::{FirewalldBackend, FirewalldConfig};
/// # let fw = FirewalldBackend::connect(None).unwrap();
/// # let desired: FirewalldConfig = unimplemented!();
/// let report = fw.apply_report(&fw.plan_config(&desired, None).unwrap()).unwrap();
/// println!("{report}");
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    /// The changes made (empty: nothing to do).
    pub changes: Vec<Change>,
    /// D-Bus calls made, object path look-ups included.
    pub calls: u64,
    /// True if firewalld was reloaded.
    pub reloaded: bool,
    /// Wall time.
    pub elapsed: Duration,
}

impl ApplyReport {
    /// True if nothing changed.
    ///
    /// ```no_run
    /// # use backend_firewalld::{FirewalldBackend, FirewalldConfig};
    /// # let fw = FirewalldBackend::connect(None).unwrap();
    /// # let desired: FirewalldConfig = unimplemented!();
    /// let again = fw.apply_report(&fw.plan_config(&desired, None).unwrap()).unwrap();
    /// assert!(again.unchanged());
    /// ```
    pub fn unchanged(&self) -> bool {
        self.changes.is_empty()
    }
}

impl fmt::Display for ApplyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.unchanged() {
            return write!(f, "firewalld: no changes");
        }
        writeln!(
            f,
            "firewalld: {} changes, {} D-Bus calls, {} in {:.2?}",
            self.changes.len(),
            self.calls,
            if self.reloaded {
                "reloaded"
            } else {
                "no reload"
            },
            self.elapsed
        )?;
        for c in &self.changes {
            writeln!(f, "{c}")?;
        }
        Ok(())
    }
}

/// What `status` reports; its `Display` is the `microseg status` text.
///
/// ```no_run
/// # let fw = backend_firewalld::FirewalldBackend::connect(None).unwrap();
/// let st = fw.status(None).unwrap();
/// if !st.drift.is_empty() { std::process::exit(1); }
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The bus address.
    pub bus: String,
    /// firewalld's `state` property (`RUNNING`).
    pub state: String,
    /// The table looked at (`None`: nothing of microseg is installed).
    pub table: Option<String>,
    /// True if the table's objects exist.
    pub installed: bool,
    /// The runtime default zone.
    pub default_zone: String,
    /// True if the default zone is the table's zone.
    pub default_zone_is_ours: bool,
    /// Objects installed (`zone microseg: 14 rich rules`, …).
    pub objects: Vec<String>,
    /// Differences: to the desired configuration when one was given, else
    /// between runtime and permanent configuration. Empty: no drift.
    pub drift: Vec<Change>,
    /// Things that make firewalld deviate from the policy.
    pub warnings: Vec<String>,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "firewalld on {}: {}", self.bus, self.state)?;
        match &self.table {
            None => writeln!(f, "no microseg table installed")?,
            Some(t) => {
                writeln!(
                    f,
                    "table {t}: {}",
                    if self.installed {
                        "installed"
                    } else {
                        "not installed"
                    }
                )?;
                writeln!(
                    f,
                    "default zone: {}{}",
                    self.default_zone,
                    if self.default_zone_is_ours {
                        ""
                    } else {
                        " (not the table's zone!)"
                    }
                )?;
                for o in &self.objects {
                    writeln!(f, "  {o}")?;
                }
                if self.drift.is_empty() {
                    writeln!(f, "no drift")?;
                } else {
                    writeln!(f, "drift:")?;
                    for d in &self.drift {
                        writeln!(f, "  {d}")?;
                    }
                }
            }
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}

/// What firewalld should end up with.
struct Goal {
    permanent: Objects,
    runtime: Objects,
    default_zone: String,
}

/// The firewalld backend: a connection to firewalld's D-Bus API.
///
/// ```no_run
/// use backend_firewalld::FirewalldBackend;
/// // An explicit bus (a test's private dbus-daemon), for the table "microseg".
/// let fw = FirewalldBackend::connect(Some("unix:path=/tmp/t/bus.sock")).unwrap().with_table("microseg");
/// println!("{}", fw.status(None).unwrap());
/// ```
pub struct FirewalldBackend {
    client: Client,
    table: Option<String>,
}

impl FirewalldBackend {
    /// Connects to firewalld on `bus_address` (a D-Bus address such as
    /// `unix:path=/run/dbus/system_bus_socket`), or on the system bus when
    /// `None` (`DBUS_SYSTEM_BUS_ADDRESS` honoured). Fails with
    /// [`FirewalldError::NotRunning`] if firewalld is not on that bus.
    ///
    /// ```no_run
    /// let fw = backend_firewalld::FirewalldBackend::connect(None).unwrap();
    /// ```
    pub fn connect(bus_address: Option<&str>) -> Result<FirewalldBackend, FirewalldError> {
        let client = Client::connect(bus_address)?;
        if !client.firewalld_on_bus()? {
            return Err(FirewalldError::NotRunning {
                address: client.address().to_string(),
            });
        }
        Ok(FirewalldBackend {
            client,
            table: None,
        })
    }

    /// True if firewalld owns its name on the bus (`NameHasOwner`); an error
    /// only if the bus itself cannot be reached.
    ///
    /// ```no_run
    /// if !backend_firewalld::FirewalldBackend::is_running(None).unwrap() {
    ///     eprintln!("firewalld is not running");
    /// }
    /// ```
    pub fn is_running(bus_address: Option<&str>) -> Result<bool, FirewalldError> {
        Client::connect(bus_address)?.firewalld_on_bus()
    }

    /// Fixes the table `read`, `remove` and `status` look at (otherwise the
    /// one installed table is found by its marker).
    ///
    /// ```no_run
    /// let fw = backend_firewalld::FirewalldBackend::connect(None).unwrap().with_table("msdual");
    /// ```
    pub fn with_table(mut self, table: &str) -> FirewalldBackend {
        self.table = Some(table.to_string());
        self
    }

    /// The table fixed by [`with_table`](Self::with_table), if any.
    ///
    /// ```no_run
    /// let fw = backend_firewalld::FirewalldBackend::connect(None).unwrap().with_table("msdual");
    /// assert_eq!(fw.fixed_table(), Some("msdual"));
    /// ```
    pub fn fixed_table(&self) -> Option<&str> {
        self.table.as_deref()
    }

    /// The bus address in use.
    ///
    /// ```no_run
    /// # let fw = backend_firewalld::FirewalldBackend::connect(None).unwrap();
    /// println!("{}", fw.bus_address());
    /// ```
    pub fn bus_address(&self) -> &str {
        self.client.address()
    }

    /// D-Bus calls made through this backend so far.
    ///
    /// ```no_run
    /// # let fw = backend_firewalld::FirewalldBackend::connect(None).unwrap();
    /// let before = fw.calls();
    /// ```
    pub fn calls(&self) -> u64 {
        self.client.calls()
    }

    /// firewalld's `state` property (`RUNNING` once it has started).
    ///
    /// ```no_run
    /// # let fw = backend_firewalld::FirewalldBackend::connect(None).unwrap();
    /// assert_eq!(fw.state().unwrap(), "RUNNING");
    /// ```
    pub fn state(&self) -> Result<String, FirewalldError> {
        self.client.state()
    }

    /// The runtime default zone.
    ///
    /// ```no_run
    /// # let fw = backend_firewalld::FirewalldBackend::connect(None).unwrap();
    /// println!("{}", fw.default_zone().unwrap());
    /// ```
    pub fn default_zone(&self) -> Result<String, FirewalldError> {
        self.client.default_zone()
    }

    /// Tables with a zone marked as microseg's.
    ///
    /// ```no_run
    /// # let fw = backend_firewalld::FirewalldBackend::connect(None).unwrap();
    /// println!("{:?}", fw.installed_tables().unwrap());
    /// ```
    pub fn installed_tables(&self) -> Result<Vec<String>, FirewalldError> {
        let mut out = BTreeSet::new();
        for z in self.client.zone_names()? {
            if let Some(m) = names::parse_marker(&self.client.zone(&z)?.description) {
                if m.table == z {
                    out.insert(m.table);
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    /// The table to look at: the fixed one, or the one installed.
    fn table(&self) -> Result<Option<String>, FirewalldError> {
        if let Some(t) = &self.table {
            return Ok(Some(t.clone()));
        }
        let tables = self.installed_tables()?;
        match tables.len() {
            0 => Ok(None),
            1 => Ok(tables.into_iter().next()),
            _ => Err(FirewalldError::AmbiguousTable { tables }),
        }
    }

    /// Reads what `table` owns in firewalld (permanent and runtime) and the
    /// default zone, whether or not anything is installed.
    ///
    /// ```no_run
    /// # let fw = backend_firewalld::FirewalldBackend::connect(None).unwrap();
    /// let s = fw.snapshot("microseg").unwrap();
    /// println!("installed: {}", s.is_installed());
    /// ```
    pub fn snapshot(&self, table: &str) -> Result<State, FirewalldError> {
        let c = &self.client;
        let zone = names::zone(table);
        let policy = names::output_policy(table);
        let prefix = names::ipset_prefix(table);
        let owned =
            |description: &str| names::parse_marker(description).is_some_and(|m| m.table == table);
        let mut foreign = Vec::new();
        let mut permanent = Objects::default();
        if c.zone_names()?.contains(&zone) {
            let z = c.zone(&zone)?;
            if owned(&z.description) {
                permanent.zone = Some(z);
            } else {
                foreign.push(format!("zone {zone}"));
            }
        }
        if c.policy_names()?.contains(&policy) {
            let p = c.policy(&policy)?;
            if owned(&p.description) {
                permanent.policy = Some(p);
            } else {
                foreign.push(format!("policy {policy}"));
            }
        }
        for name in c.ipset_names()? {
            if !name.starts_with(&prefix) {
                continue;
            }
            let s = c.ipset(&name)?;
            if owned(&s.description) {
                permanent.ipsets.insert(name, s);
            } else {
                foreign.push(format!("ipset {name}"));
            }
        }
        let is_foreign = |what: &str| foreign.contains(&what.to_string());
        let mut runtime = Objects::default();
        if !is_foreign(&format!("zone {zone}")) && c.runtime_zones()?.contains(&zone) {
            let z = c.runtime_zone(&zone)?;
            if permanent.zone.is_some() || owned(&z.description) {
                runtime.zone = Some(z);
            }
        }
        if !is_foreign(&format!("policy {policy}")) && c.runtime_policies()?.contains(&policy) {
            let p = c.runtime_policy(&policy)?;
            if permanent.policy.is_some() || owned(&p.description) {
                runtime.policy = Some(p);
            }
        }
        for name in c.runtime_ipsets()? {
            if !name.starts_with(&prefix) || is_foreign(&format!("ipset {name}")) {
                continue;
            }
            let s = c.runtime_ipset(&name)?;
            if permanent.ipsets.contains_key(&name) || owned(&s.description) {
                runtime.ipsets.insert(name, s);
            }
        }
        Ok(State {
            table: table.to_string(),
            default_zone: c.default_zone()?,
            permanent,
            runtime,
            foreign,
        })
    }

    /// Plans the change from `current` to `desired`; reads firewalld when
    /// `current` is `None` or of another table.
    ///
    /// ```no_run
    /// # use backend_firewalld::{FirewalldBackend, FirewalldRenderer};
    /// # use microseg_core::backend::Renderer;
    /// # use microseg_core::{Policy, ir::{compile, Target}};
    /// # let p = Policy::from_file("examples/three-tier.toml").unwrap();
    /// # let desired = FirewalldRenderer.render(&compile(&p, &Target::Role("db".into())).unwrap()).unwrap();
    /// # let fw = FirewalldBackend::connect(None).unwrap();
    /// let plan = fw.plan_config(&desired, None).unwrap();
    /// println!("{plan}");
    /// ```
    pub fn plan_config(
        &self,
        desired: &FirewalldConfig,
        current: Option<&State>,
    ) -> Result<Plan, FirewalldError> {
        let current = match current {
            Some(s) if s.table == desired.table => s.clone(),
            _ => self.snapshot(&desired.table)?,
        };
        let table = &desired.table;
        let wanted: Vec<String> = std::iter::once(format!("zone {}", desired.zone.name))
            .chain(std::iter::once(format!("policy {}", desired.policy.name)))
            .chain(desired.ipsets.iter().map(|s| format!("ipset {}", s.name)))
            .collect();
        if let Some(f) = current.foreign.iter().find(|f| wanted.contains(f)) {
            return Err(FirewalldError::NotOwned {
                object: f.clone(),
                table: table.clone(),
            });
        }
        let zone_name = names::zone(table);
        let previous = current
            .previous_default_zone()
            .or_else(|| Some(current.default_zone.clone()).filter(|z| *z != zone_name));
        let objects = goal_objects(
            desired,
            names::description(table, previous.as_deref()),
            current.permanent.zone.as_ref(),
        );
        let goal = Goal {
            runtime: objects.clone(),
            permanent: objects,
            default_zone: zone_name,
        };
        let mut plan = transition(current, &goal);
        plan.warnings = self.bypasses(&desired.zone.name)?;
        Ok(plan)
    }

    /// Carries out a plan and reports what changed. On a failed call the
    /// state saved in the plan is restored and the error
    /// ([`FirewalldError::ApplyFailed`]) names the call and firewalld's message.
    ///
    /// ```no_run
    /// # use backend_firewalld::{FirewalldBackend, FirewalldRenderer};
    /// # use microseg_core::backend::Renderer;
    /// # use microseg_core::{Policy, ir::{compile, Target}};
    /// # let p = Policy::from_file("examples/three-tier.toml").unwrap();
    /// # let desired = FirewalldRenderer.render(&compile(&p, &Target::Role("db".into())).unwrap()).unwrap();
    /// # let fw = FirewalldBackend::connect(None).unwrap();
    /// let report = fw.apply_report(&fw.plan_config(&desired, None).unwrap()).unwrap();
    /// if report.unchanged() { println!("already up to date"); }
    /// ```
    pub fn apply_report(&self, plan: &Plan) -> Result<ApplyReport, FirewalldError> {
        match self.carry_out(plan) {
            Ok(report) => Ok(report),
            Err(e) => {
                let (call, message) = match e {
                    FirewalldError::Call { call, message } => (call, message),
                    other => ("(reply)".to_string(), other.to_string()),
                };
                let restore = self.restore_state(&plan.saved);
                Err(FirewalldError::ApplyFailed {
                    call,
                    message,
                    restore_error: restore.err().map(|e| e.to_string()),
                })
            }
        }
    }

    /// Puts back a saved state: the table's objects (permanent and runtime)
    /// and the default zone.
    ///
    /// ```no_run
    /// # let fw = backend_firewalld::FirewalldBackend::connect(None).unwrap();
    /// let saved = fw.snapshot("microseg").unwrap();
    /// // ... apply something ...
    /// fw.restore_state(&saved).unwrap();
    /// ```
    pub fn restore_state(&self, saved: &State) -> Result<ApplyReport, FirewalldError> {
        let current = self.snapshot(&saved.table)?;
        let goal = Goal {
            permanent: saved.permanent.clone(),
            runtime: saved.runtime.clone(),
            default_zone: saved.default_zone.clone(),
        };
        self.carry_out(&transition(current, &goal))
    }

    /// Removes the table's objects and restores the default zone recorded in
    /// its zone (or `public`, or the first other zone, if that is gone).
    ///
    /// ```no_run
    /// # let fw = backend_firewalld::FirewalldBackend::connect(None).unwrap().with_table("microseg");
    /// let report = fw.remove_report().unwrap();
    /// println!("{report}");
    /// ```
    pub fn remove_report(&self) -> Result<ApplyReport, FirewalldError> {
        let Some(table) = self.table()? else {
            return Ok(ApplyReport {
                changes: vec![],
                calls: 0,
                reloaded: false,
                elapsed: Duration::ZERO,
            });
        };
        let current = self.snapshot(&table)?;
        let zone = names::zone(&table);
        let zones: Vec<String> = self
            .client
            .zone_names()?
            .into_iter()
            .filter(|z| *z != zone)
            .collect();
        let fallback = |z: &String| zones.contains(z);
        let back = current
            .previous_default_zone()
            .filter(fallback)
            .or_else(|| Some("public".to_string()).filter(fallback))
            .or_else(|| zones.first().cloned())
            .ok_or_else(|| {
                FirewalldError::Ir("firewalld has no zone to make the default".into())
            })?;
        let goal = Goal {
            permanent: Objects::default(),
            runtime: Objects::default(),
            default_zone: if current.default_zone == zone {
                back
            } else {
                current.default_zone.clone()
            },
        };
        self.carry_out(&transition(current, &goal))
    }

    /// What is installed, whether it drifted, and what bypasses it.
    /// With `desired`, drift is the plan from firewalld to `desired`;
    /// without, the difference between runtime and permanent configuration.
    ///
    /// ```no_run
    /// # let fw = backend_firewalld::FirewalldBackend::connect(None).unwrap();
    /// let st = fw.status(None).unwrap();
    /// print!("{st}");
    /// ```
    pub fn status(&self, desired: Option<&FirewalldConfig>) -> Result<Status, FirewalldError> {
        let c = &self.client;
        let table = match desired {
            Some(d) => Some(d.table.clone()),
            None => self.table()?,
        };
        let mut warnings = Vec::new();
        if c.conf("FirewallBackend")? != "nftables" {
            warnings.push(
                "FirewallBackend is not nftables: this backend is tested with nftables only"
                    .to_string(),
            );
        }
        if c.conf("RFC3964_IPv4")? == "yes" {
            warnings.push(
                "RFC3964_IPv4=yes: firewalld rejects output to 6to4/IPv4-compatible IPv6 destinations (2002::/16 ranges, ::/96, ::ffff:0:0/96) whatever the policy allows".to_string(),
            );
        }
        let default_zone = c.default_zone()?;
        let Some(table) = table else {
            return Ok(Status {
                bus: c.address().to_string(),
                state: c.state()?,
                table: None,
                installed: false,
                default_zone,
                default_zone_is_ours: false,
                objects: vec![],
                drift: vec![],
                warnings,
            });
        };
        let zone = names::zone(&table);
        warnings.extend(self.bypasses(&zone)?);
        let state = self.snapshot(&table)?;
        let mut objects = Vec::new();
        if let Some(z) = &state.permanent.zone {
            objects.push(format!(
                "zone {zone}: target {}, {} rich rules",
                z.target,
                z.rich_rules.len()
            ));
        }
        if let Some(p) = &state.permanent.policy {
            objects.push(format!(
                "policy {}: target {}, priority {}, {} rich rules",
                names::output_policy(&table),
                p.target,
                p.priority,
                p.rich_rules.len()
            ));
        }
        for (n, s) in &state.permanent.ipsets {
            objects.push(format!("ipset {n}: {} entries", s.entries.len()));
        }
        for f in &state.foreign {
            warnings.push(format!("{f} has this table's name but is not microseg's"));
        }
        let drift = match desired {
            Some(d) => self.plan_config(d, Some(&state))?.changes,
            None => {
                let goal = Goal {
                    permanent: state.permanent.clone(),
                    runtime: state.permanent.clone(),
                    default_zone: state.default_zone.clone(),
                };
                transition(state.clone(), &goal).changes
            }
        };
        Ok(Status {
            bus: c.address().to_string(),
            state: c.state()?,
            table: Some(table),
            installed: state.is_installed(),
            default_zone_is_ours: default_zone == zone,
            default_zone,
            objects,
            drift,
            warnings,
        })
    }

    /// Interfaces and sources bound to other zones: their traffic never meets `zone`.
    fn bypasses(&self, zone: &str) -> Result<Vec<String>, FirewalldError> {
        let mut out = Vec::new();
        for (z, bound) in self.client.active_zones()? {
            if z == zone {
                continue;
            }
            for (kind, items) in bound {
                if !items.is_empty() {
                    out.push(format!(
                        "zone {z} has {kind} {}: their traffic bypasses zone {zone}",
                        items.join(", ")
                    ));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Makes a plan's calls and reports them (no restore on failure).
    fn carry_out(&self, plan: &Plan) -> Result<ApplyReport, FirewalldError> {
        let start = Instant::now();
        let calls = self.client.calls();
        self.execute(&plan.ops)?;
        Ok(ApplyReport {
            changes: plan.changes.clone(),
            calls: self.client.calls() - calls,
            reloaded: plan.reloads(),
            elapsed: start.elapsed(),
        })
    }

    fn execute(&self, ops: &[Op]) -> Result<(), FirewalldError> {
        let c = &self.client;
        for op in ops {
            match op {
                Op::AddIpset(n, s) => c.add_ipset(n, s)?,
                Op::UpdateIpset(n, s) => c.update_ipset(n, s)?,
                Op::RemoveIpset(n) => c.remove_ipset(n)?,
                Op::AddZone(n, s) => c.add_zone(n, s)?,
                Op::UpdateZone(n, s) => c.update_zone(n, s)?,
                Op::RemoveZone(n) => c.remove_zone(n)?,
                Op::AddPolicy(n, s) => c.add_policy(n, s)?,
                Op::UpdatePolicy(n, s) => c.update_policy(n, s)?,
                Op::RemovePolicy(n) => c.remove_policy(n)?,
                Op::Reload => c.reload()?,
                Op::RuntimeEntries(n, e) => c.set_runtime_entries(n, e)?,
                Op::RuntimeZone(n, s) => c.set_runtime_zone(n, s)?,
                Op::RuntimePolicy(n, s) => c.set_runtime_policy(n, s)?,
                Op::SetDefaultZone(z) => c.set_default_zone(z)?,
            }
        }
        Ok(())
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }
}

/// The objects `desired` becomes, with the zone's `description`; interfaces
/// and sources bound to the zone are kept from `current_zone`.
fn goal_objects(
    desired: &FirewalldConfig,
    description: String,
    current_zone: Option<&ZoneSettings>,
) -> Objects {
    Objects {
        zone: Some(ZoneSettings::from_object(
            &desired.zone,
            description,
            current_zone,
        )),
        policy: Some(PolicySettings::from_object(&desired.policy)),
        ipsets: desired
            .ipsets
            .iter()
            .map(|s| (s.name.clone(), IpsetSettings::from_object(s)))
            .collect(),
    }
}

fn set_diff(old: &[String], new: &[String]) -> (Vec<String>, Vec<String>) {
    let o: BTreeSet<&String> = old.iter().collect();
    let n: BTreeSet<&String> = new.iter().collect();
    (
        n.difference(&o).map(|s| (*s).clone()).collect(),
        o.difference(&n).map(|s| (*s).clone()).collect(),
    )
}

fn zone_details(c: &ZoneSettings, t: &ZoneSettings) -> Vec<String> {
    let mut d = Vec::new();
    if c.target != t.target {
        d.push(format!("target {} -> {}", c.target, t.target));
    }
    if c.description != t.description || c.short != t.short || c.version != t.version {
        d.push("description".into());
    }
    let (add, rm) = set_diff(&c.rich_rules, &t.rich_rules);
    d.extend(add.iter().map(|r| format!("+ {r}")));
    d.extend(rm.iter().map(|r| format!("- {r}")));
    let mut rest_c = c.clone();
    rest_c.rich_rules = t.rich_rules.clone();
    rest_c.target = t.target.clone();
    rest_c.description = t.description.clone();
    rest_c.short = t.short.clone();
    rest_c.version = t.version.clone();
    if !rest_c.same_as(t) {
        d.push("services, ports, protocols, forwarding or bindings".into());
    }
    d
}

fn policy_details(c: &PolicySettings, t: &PolicySettings) -> Vec<String> {
    let mut d = Vec::new();
    if c.target != t.target {
        d.push(format!("target {} -> {}", c.target, t.target));
    }
    if c.priority != t.priority {
        d.push(format!("priority {} -> {}", c.priority, t.priority));
    }
    if c.description != t.description || c.short != t.short || c.version != t.version {
        d.push("description".into());
    }
    let (add, rm) = set_diff(&c.rich_rules, &t.rich_rules);
    d.extend(add.iter().map(|r| format!("+ {r}")));
    d.extend(rm.iter().map(|r| format!("- {r}")));
    let mut rest = c.clone();
    rest.rich_rules = t.rich_rules.clone();
    rest.target = t.target.clone();
    rest.priority = t.priority;
    rest.description = t.description.clone();
    rest.short = t.short.clone();
    rest.version = t.version.clone();
    if !rest.same_as(t) {
        d.push("services, ports, protocols or zones".into());
    }
    d
}

/// Why the runtime cannot follow `goal` without a reload (`None`: it can).
fn needs_reload(cur: &Objects, goal: &Objects, table: &str) -> Option<String> {
    let zone = names::zone(table);
    let policy = names::output_policy(table);
    match (&cur.zone, &goal.zone) {
        (None, Some(_)) => return Some(format!("zone {zone} is new")),
        (Some(_), None) => return Some(format!("zone {zone} goes away")),
        (Some(c), Some(g)) if c.target != g.target => {
            return Some(format!("zone {zone} changes target"))
        }
        _ => {}
    }
    match (&cur.policy, &goal.policy) {
        (None, Some(_)) => return Some(format!("policy {policy} is new")),
        (Some(_), None) => return Some(format!("policy {policy} goes away")),
        (Some(c), Some(g)) if c.target != g.target || c.priority != g.priority => {
            return Some(format!("policy {policy} changes target or priority"))
        }
        _ => {}
    }
    for (n, g) in &goal.ipsets {
        match cur.ipsets.get(n) {
            None => return Some(format!("ipset {n} is new")),
            Some(c) if c.ipset_type != g.ipset_type || c.options != g.options => {
                return Some(format!("ipset {n} changes type or options"))
            }
            _ => {}
        }
    }
    if let Some(n) = cur.ipsets.keys().find(|n| !goal.ipsets.contains_key(*n)) {
        return Some(format!("ipset {n} goes away"));
    }
    None
}

/// The calls that take firewalld from `current` to `goal`.
fn transition(current: State, goal: &Goal) -> Plan {
    let table = current.table.clone();
    let zone = names::zone(&table);
    let policy = names::output_policy(&table);
    let mut ops = Vec::new();
    let mut changes = Vec::new();
    let mut default = current.default_zone.clone();

    // Move the default away from a zone that is going away first.
    if goal.default_zone != zone && default == zone {
        ops.push(Op::SetDefaultZone(goal.default_zone.clone()));
        changes.push(Change::DefaultZone {
            from: default.clone(),
            to: goal.default_zone.clone(),
        });
        default = goal.default_zone.clone();
    }

    // Permanent configuration: sets first (rules refer to them), then zone and policy.
    let cur = &current.permanent;
    let mut touched: BTreeSet<String> = BTreeSet::new();
    for (n, g) in &goal.permanent.ipsets {
        match cur.ipsets.get(n) {
            None => {
                ops.push(Op::AddIpset(n.clone(), g.clone()));
                changes.push(Change::Create {
                    object: format!("ipset {n}"),
                    detail: format!(
                        "{} {}, {} entries",
                        g.ipset_type,
                        g.options
                            .get("family")
                            .map(String::as_str)
                            .unwrap_or("inet"),
                        g.entries.len()
                    ),
                });
            }
            Some(c) if !c.same_as(g) => {
                ops.push(Op::UpdateIpset(n.clone(), g.clone()));
                if c.same_except_entries(g) {
                    let (added, removed) = set_diff(&c.entries, &g.entries);
                    changes.push(Change::Entries {
                        ipset: n.clone(),
                        added,
                        removed,
                    });
                } else {
                    changes.push(Change::Update {
                        object: format!("ipset {n}"),
                        details: vec![format!(
                            "type/options/description {} {:?} -> {} {:?}",
                            c.ipset_type, c.options, g.ipset_type, g.options
                        )],
                    });
                }
            }
            Some(_) => continue,
        }
        touched.insert(format!("ipset {n}"));
    }
    match (&cur.zone, &goal.permanent.zone) {
        (None, Some(g)) => {
            ops.push(Op::AddZone(zone.clone(), g.clone()));
            changes.push(Change::Create {
                object: format!("zone {zone}"),
                detail: format!("target {}, {} rich rules", g.target, g.rich_rules.len()),
            });
            touched.insert(format!("zone {zone}"));
        }
        (Some(c), Some(g)) if !c.same_as(g) => {
            ops.push(Op::UpdateZone(zone.clone(), g.clone()));
            changes.push(Change::Update {
                object: format!("zone {zone}"),
                details: zone_details(c, g),
            });
            touched.insert(format!("zone {zone}"));
        }
        _ => {}
    }
    match (&cur.policy, &goal.permanent.policy) {
        (None, Some(g)) => {
            ops.push(Op::AddPolicy(policy.clone(), g.clone()));
            changes.push(Change::Create {
                object: format!("policy {policy}"),
                detail: format!(
                    "target {}, priority {}, {} rich rules",
                    g.target,
                    g.priority,
                    g.rich_rules.len()
                ),
            });
            touched.insert(format!("policy {policy}"));
        }
        (Some(c), Some(g)) if !c.same_as(g) => {
            ops.push(Op::UpdatePolicy(policy.clone(), g.clone()));
            changes.push(Change::Update {
                object: format!("policy {policy}"),
                details: policy_details(c, g),
            });
            touched.insert(format!("policy {policy}"));
        }
        _ => {}
    }
    // Removals: policy and zone before the sets they refer to.
    if cur.policy.is_some() && goal.permanent.policy.is_none() {
        ops.push(Op::RemovePolicy(policy.clone()));
        changes.push(Change::Remove {
            object: format!("policy {policy}"),
        });
    }
    if cur.zone.is_some() && goal.permanent.zone.is_none() {
        ops.push(Op::RemoveZone(zone.clone()));
        changes.push(Change::Remove {
            object: format!("zone {zone}"),
        });
    }
    for n in cur
        .ipsets
        .keys()
        .filter(|n| !goal.permanent.ipsets.contains_key(*n))
    {
        ops.push(Op::RemoveIpset(n.clone()));
        changes.push(Change::Remove {
            object: format!("ipset {n}"),
        });
    }

    // Runtime: a reload when objects appear, vanish or change kind; else set calls.
    let reload = needs_reload(&current.runtime, &goal.runtime, &table);
    let base = match &reload {
        Some(reason) => {
            ops.push(Op::Reload);
            changes.push(Change::Reload {
                reason: reason.clone(),
            });
            &goal.permanent
        }
        None => &current.runtime,
    };
    for (n, g) in &goal.runtime.ipsets {
        if let Some(b) = base.ipsets.get(n) {
            if !b.same_entries(g) {
                ops.push(Op::RuntimeEntries(n.clone(), g.entries.clone()));
                if !touched.contains(&format!("ipset {n}")) {
                    changes.push(Change::Runtime {
                        object: format!("ipset {n}"),
                    });
                }
            }
        }
    }
    if let (Some(b), Some(g)) = (&base.zone, &goal.runtime.zone) {
        if !b.same_runtime(g) {
            ops.push(Op::RuntimeZone(zone.clone(), g.clone()));
            if !touched.contains(&format!("zone {zone}")) {
                changes.push(Change::Runtime {
                    object: format!("zone {zone}"),
                });
            }
        }
    }
    if let (Some(b), Some(g)) = (&base.policy, &goal.runtime.policy) {
        if !b.same_runtime(g) {
            ops.push(Op::RuntimePolicy(policy.clone(), g.clone()));
            if !touched.contains(&format!("policy {policy}")) {
                changes.push(Change::Runtime {
                    object: format!("policy {policy}"),
                });
            }
        }
    }

    // The default zone last (the zone must exist at runtime).
    if default != goal.default_zone {
        ops.push(Op::SetDefaultZone(goal.default_zone.clone()));
        changes.push(Change::DefaultZone {
            from: default,
            to: goal.default_zone.clone(),
        });
    }
    Plan {
        table,
        changes,
        ops,
        saved: current,
        warnings: Vec::new(),
    }
}

impl Renderer for FirewalldBackend {
    type Artefact = FirewalldConfig;
    type Error = FirewalldError;

    fn render(&self, ruleset: &HostRuleset) -> Result<FirewalldConfig, FirewalldError> {
        FirewalldRenderer.render(ruleset)
    }
}

impl Backend for FirewalldBackend {
    type State = State;
    type Plan = Plan;

    fn read(&self) -> Result<Option<State>, FirewalldError> {
        let Some(table) = self.table()? else {
            return Ok(None);
        };
        let s = self.snapshot(&table)?;
        Ok(s.is_installed().then_some(s))
    }

    fn plan(
        &self,
        desired: &FirewalldConfig,
        current: Option<&State>,
    ) -> Result<Plan, FirewalldError> {
        self.plan_config(desired, current)
    }

    fn apply(&self, plan: &Plan) -> Result<(), FirewalldError> {
        self.apply_report(plan).map(|_| ())
    }

    fn restore(&self, saved: Option<&State>) -> Result<(), FirewalldError> {
        match saved {
            Some(s) => self.restore_state(s).map(|_| ()),
            None => self.remove_report().map(|_| ()),
        }
    }

    fn remove(&self) -> Result<(), FirewalldError> {
        self.remove_report().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipset(entries: &[&str]) -> IpsetSettings {
        IpsetSettings {
            short: "s".into(),
            description: names::description("t", None),
            ipset_type: "hash:net".into(),
            options: [("family".to_string(), "inet".to_string())].into(),
            entries: entries.iter().map(|e| e.to_string()).collect(),
            ..IpsetSettings::default()
        }
    }

    fn objects(rules: &[&str], entries: &[&str]) -> Objects {
        Objects {
            zone: Some(ZoneSettings {
                description: names::description("t", Some("public")),
                target: "DROP".into(),
                rich_rules: rules.iter().map(|r| r.to_string()).collect(),
                ..ZoneSettings::default()
            }),
            policy: Some(PolicySettings {
                description: names::description("t", None),
                target: "DROP".into(),
                priority: -32768,
                ingress_zones: vec!["HOST".into()],
                egress_zones: vec!["ANY".into()],
                ..PolicySettings::default()
            }),
            ipsets: [("t-web-4".to_string(), ipset(entries))].into(),
        }
    }

    fn state(default: &str, permanent: Objects, runtime: Objects) -> State {
        State {
            table: "t".into(),
            default_zone: default.into(),
            permanent,
            runtime,
            foreign: vec![],
        }
    }

    fn goal(o: &Objects, default: &str) -> Goal {
        Goal {
            permanent: o.clone(),
            runtime: o.clone(),
            default_zone: default.into(),
        }
    }

    fn kinds(p: &Plan) -> Vec<String> {
        p.ops
            .iter()
            .map(|o| format!("{o:?}").split('(').next().unwrap().to_string())
            .collect()
    }

    #[test]
    fn equal_state_plans_nothing() {
        let o = objects(&["rule a"], &["10.0.0.1"]);
        let p = transition(state("t", o.clone(), o.clone()), &goal(&o, "t"));
        assert!(p.is_empty() && p.changes().is_empty());
        assert!(p.to_string().contains("no changes"));
    }

    #[test]
    fn membership_is_two_calls_without_reload() {
        let old = objects(&["rule a"], &["10.0.0.1"]);
        let new = objects(&["rule a"], &["10.0.0.1", "10.0.0.9"]);
        let p = transition(state("t", old.clone(), old), &goal(&new, "t"));
        assert_eq!(kinds(&p), ["UpdateIpset", "RuntimeEntries"]);
        assert!(p.only_ipset_entries() && !p.reloads());
        assert_eq!(
            p.changes(),
            [Change::Entries {
                ipset: "t-web-4".into(),
                added: vec!["10.0.0.9".into()],
                removed: vec![]
            }]
        );
    }

    #[test]
    fn rule_changes_update_runtime_without_reload() {
        let old = objects(&["rule a"], &["10.0.0.1"]);
        let new = objects(&["rule b"], &["10.0.0.1"]);
        let p = transition(state("t", old.clone(), old), &goal(&new, "t"));
        assert_eq!(kinds(&p), ["UpdateZone", "RuntimeZone"]);
        assert!(!p.reloads() && !p.only_ipset_entries());
    }

    #[test]
    fn new_objects_reload_and_take_the_default_zone_last() {
        let new = objects(&["rule a"], &["10.0.0.1"]);
        let p = transition(
            state("public", Objects::default(), Objects::default()),
            &goal(&new, "t"),
        );
        assert_eq!(
            kinds(&p),
            [
                "AddIpset",
                "AddZone",
                "AddPolicy",
                "Reload",
                "SetDefaultZone"
            ]
        );
    }

    #[test]
    fn removal_gives_the_default_zone_back_first() {
        let old = objects(&["rule a"], &["10.0.0.1"]);
        let p = transition(
            state("t", old.clone(), old),
            &goal(&Objects::default(), "public"),
        );
        assert_eq!(
            kinds(&p),
            [
                "SetDefaultZone",
                "RemovePolicy",
                "RemoveZone",
                "RemoveIpset",
                "Reload"
            ]
        );
    }

    #[test]
    fn target_changes_need_a_reload() {
        let old = objects(&["rule a"], &["10.0.0.1"]);
        let mut new = old.clone();
        new.zone.as_mut().unwrap().target = "%%REJECT%%".into();
        let p = transition(state("t", old.clone(), old), &goal(&new, "t"));
        assert_eq!(kinds(&p), ["UpdateZone", "Reload"]);
    }

    #[test]
    fn runtime_drift_is_corrected_at_runtime() {
        let good = objects(&["rule a"], &["10.0.0.1"]);
        let drifted = objects(&["rule a", "rule added by hand"], &[]);
        let p = transition(state("t", good.clone(), drifted), &goal(&good, "t"));
        assert_eq!(kinds(&p), ["RuntimeEntries", "RuntimeZone"]);
        assert!(p
            .changes()
            .iter()
            .all(|c| matches!(c, Change::Runtime { .. })));
    }
}
