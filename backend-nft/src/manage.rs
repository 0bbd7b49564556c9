//! The live side: [`NftBackend`] reads the policy's table, plans the change
//! (nothing, set elements only, or a whole-table replacement), applies it in
//! one `nft -j -f -` transaction, restores snapshots and removes the table.

use crate::netlink::{self, BatchError, Interval, Netlink, SetChange};
use crate::state::{common_ends, differences, element_text, Elems, NftDifference};
use crate::{to_json_compact, Lowering, Nft, NftArtefact, NftError, NftState};
use microseg_core::backend::{Backend, Renderer};
use microseg_core::ir::HostRuleset;
use serde::Serialize;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::fmt;

/// The nftables backend on a live system: the table `inet <table>` through
/// `nft` on this host or in a network namespace ([`Nft::in_netns`]).
///
/// ```no_run
/// use backend_nft::{Nft, NftBackend};
/// use microseg_core::{backend::{Backend, Renderer}, ir::{compile, Target}, Policy};
/// let policy = Policy::from_file("examples/three-tier.toml")?;
/// let backend = NftBackend::new(Nft::in_netns("lab-web"), &policy.table);
/// let desired = backend.render(&compile(&policy, &Target::Role("web".into()))?)?;
/// let before = backend.read()?;                        // nft -j list table inet microseg
/// let plan = backend.plan(&desired, before.as_ref())?; // unchanged / elements / replace
/// println!("{plan}");
/// backend.apply(&plan)?;                               // one nft -j -f - transaction
/// backend.restore(before.as_ref())?;                   // put the snapshot back
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftBackend {
    /// How nft is run (this host, or inside a network namespace).
    pub nft: Nft,
    /// The table (family `inet`) the policy owns; nothing else is touched.
    pub table: String,
    /// The lowering [`Renderer::render`] uses (plain unless set with
    /// [`NftBackend::with_lowering`]).
    pub lowering: Lowering,
}

impl NftBackend {
    /// The backend for `table` through `nft`.
    ///
    /// ```
    /// let b = backend_nft::NftBackend::new(backend_nft::Nft::host(), "microseg");
    /// assert_eq!(b.table, "microseg");
    /// ```
    pub fn new(nft: Nft, table: impl Into<String>) -> NftBackend {
        NftBackend {
            nft,
            table: table.into(),
            lowering: Lowering::Plain,
        }
    }

    /// The same backend rendering with `lowering`.
    ///
    /// ```
    /// use backend_nft::{Lowering, Nft, NftBackend};
    /// let b = NftBackend::new(Nft::host(), "microseg").with_lowering(Lowering::Optimized);
    /// assert_eq!(b.lowering, Lowering::Optimized);
    /// ```
    pub fn with_lowering(mut self, lowering: Lowering) -> NftBackend {
        self.lowering = lowering;
        self
    }

    /// What differs between an expected state and the installed one (`None`:
    /// no table), ignoring handles and counter values: missing or unexpected
    /// sets, elements, chains and rules. Empty: no drift.
    ///
    /// ```
    /// # use backend_nft::{Nft, NftBackend, NftRenderer, NftState};
    /// # use microseg_core::{backend::Renderer, document::Format, ir::{compile, Target}, Policy};
    /// # let p = Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n", Format::Toml, None).unwrap();
    /// let a = NftRenderer.render(&compile(&p, &Target::Role("web".into())).unwrap()).unwrap();
    /// let b = NftBackend::new(Nft::host(), "microseg");
    /// let want = NftState::from_artefact(&a);
    /// assert!(b.drift(Some(&want), Some(&want)).is_empty());
    /// assert_eq!(b.drift(Some(&want), None)[0].object, "table inet microseg");
    /// ```
    pub fn drift(
        &self,
        expected: Option<&NftState>,
        current: Option<&NftState>,
    ) -> Vec<NftDifference> {
        differences(
            &self.table,
            expected.map(NftState::normal).as_ref(),
            current.map(NftState::normal).as_ref(),
            true,
        )
    }

    /// The installed table without the elements of its named sets, from
    /// the cheap terse ruleset listing ([`Nft::list_ruleset_terse`]); `None`
    /// when it is not installed. Enough to tell whether the table still has
    /// a recorded structure ([`NftState::same_structure`]).
    ///
    /// ```no_run
    /// # use backend_nft::{Nft, NftBackend, NftState};
    /// # let recorded: NftState = unimplemented!();
    /// let b = NftBackend::new(Nft::in_netns("lab1"), "microseg");
    /// if !b.installed_structure()?.is_some_and(|s| s.same_structure(&recorded)) {
    ///     println!("changed since the last apply");
    /// }
    /// # Ok::<(), backend_nft::NftError>(())
    /// ```
    pub fn installed_structure(&self) -> Result<Option<NftState>, NftError> {
        NftState::from_ruleset_listing(&self.table, &self.nft.list_ruleset_terse()?)
    }

    /// The generation of the ruleset nft works on (this host's or the
    /// namespace's), read over nfnetlink: every committed transaction, by
    /// anyone and on any table, increments it. `None` when it cannot be read.
    ///
    /// ```no_run
    /// let b = backend_nft::NftBackend::new(backend_nft::Nft::host(), "microseg");
    /// let before = b.generation();
    /// // … nothing commits …
    /// assert_eq!(b.generation(), before);
    /// ```
    pub fn generation(&self) -> Option<NftGeneration> {
        let ruleset = self.ruleset_identity()?;
        let id = Netlink::open(self.nft.netns()).ok()?.generation().ok()?;
        (id != 0).then_some(NftGeneration { ruleset, id })
    }

    /// Which ruleset generations count in: the boot and the network
    /// namespace (a reboot or a new namespace starts counting again).
    fn ruleset_identity(&self) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let ns = match self.nft.netns() {
            Some(name) => format!("/run/netns/{name}"),
            None => "/proc/self/ns/net".to_string(),
        };
        let ino = std::fs::metadata(ns).ok()?.ino();
        Some(format!("{}/netns:{ino}", boot.trim()))
    }

    /// Applies `plan` like [`Backend::apply`] and returns the ruleset's
    /// generation after it when that is provably this plan's own (the
    /// generation `at` plus one), else `None`.
    ///
    /// `at` is the generation at which what the plan was made from was
    /// observed (`None`: unknown; then the current one guards the element
    /// batch, and no generation is returned for a delta).
    ///
    /// An element delta of interval address sets (what membership changes
    /// are) goes as one nfnetlink batch, not through nft: nft 1.0.6 would
    /// first fetch every element of every interval set of the table. The
    /// batch carries the generation: if anything was committed since, the
    /// kernel refuses it ([`NftError::Elements`] with `generation_changed`)
    /// and nothing changes. Everything else is one `nft -j -f -` transaction.
    ///
    /// ```no_run
    /// # use backend_nft::{Nft, NftBackend};
    /// # use microseg_core::backend::{Backend, Renderer};
    /// # let ruleset: microseg_core::ir::HostRuleset = unimplemented!();
    /// let b = NftBackend::new(Nft::in_netns("lab1"), "microseg");
    /// let at = b.generation();
    /// let plan = b.plan(&b.render(&ruleset)?, b.read()?.as_ref())?;
    /// let after = b.apply_at(&plan, at.as_ref())?;
    /// # let _ = after;
    /// # Ok::<(), backend_nft::NftError>(())
    /// ```
    pub fn apply_at(
        &self,
        plan: &NftPlan,
        at: Option<&NftGeneration>,
    ) -> Result<Option<NftGeneration>, NftError> {
        let nl = Netlink::open(self.nft.netns()).ok();
        let result = self.apply_with(nl.as_ref(), plan, at);
        // Closing the socket waits for the kernel to free what the commit
        // released (an RCU grace period, milliseconds, after a delete): the
        // change is done, so that wait is not the caller's.
        if let Some(nl) = nl {
            std::thread::spawn(move || drop(nl));
        }
        result
    }

    /// [`apply_at`](Self::apply_at) over the socket `nl` (`None`: none
    /// could be opened).
    fn apply_with(
        &self,
        nl: Option<&Netlink>,
        plan: &NftPlan,
        at: Option<&NftGeneration>,
    ) -> Result<Option<NftGeneration>, NftError> {
        let ruleset = self.ruleset_identity();
        let current = || -> Option<u32> { nl?.generation().ok().filter(|g| *g != 0) };
        let after = |id: u32| ruleset.clone().map(|ruleset| NftGeneration { ruleset, id });
        let stale = at.is_some_and(|a| Some(&a.ruleset) != ruleset.as_ref());
        let known = at.filter(|_| !stale).map(|a| a.id);
        match plan {
            NftPlan::Unchanged { .. } => {
                return Ok(known.filter(|k| current() == Some(*k)).and_then(after));
            }
            NftPlan::Elements { table, sets } => {
                let refuse = |message: String, generation_changed| NftError::Elements {
                    table: table.clone(),
                    message,
                    generation_changed,
                };
                if stale {
                    return Err(refuse(
                        "the ruleset is not the one the plan was made from (reboot or another \
                         network namespace)"
                            .into(),
                        true,
                    ));
                }
                let guard = known.or_else(current);
                if let (Some(n), Some(g), Some(changes)) = (nl, guard, interval_changes(sets)) {
                    return match n.change_elements(g, table, &changes) {
                        Ok(()) => Ok(known
                            .and_then(|k| current().filter(|c| *c == k.wrapping_add(1)))
                            .and_then(after)),
                        Err(e) => Err(refuse(
                            e.to_string(),
                            matches!(e, BatchError::GenerationChanged),
                        )),
                    };
                }
            }
            NftPlan::Replace { .. } => {}
        }
        // A replacement leaves the same table whatever was there: the
        // generation before it is the one read now, unless `at` is known.
        let before = match plan {
            NftPlan::Replace { .. } => known.or_else(current),
            _ => known,
        };
        Backend::apply(self, plan)?;
        Ok(before
            .and_then(|b| current().filter(|c| *c == b.wrapping_add(1)))
            .and_then(after))
    }

    /// The plan that replaces the table with `desired`, for `reasons`,
    /// whatever is installed.
    ///
    /// ```
    /// # use backend_nft::{Nft, NftBackend, NftPlanKind, NftRenderer};
    /// # use microseg_core::{backend::Renderer, document::Format, ir::{compile, Target}, Policy};
    /// # let p = Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n", Format::Toml, None).unwrap();
    /// let a = NftRenderer.render(&compile(&p, &Target::Role("web".into())).unwrap()).unwrap();
    /// let plan = NftBackend::new(Nft::host(), "microseg").replace_plan(&a, vec!["new rules".into()]);
    /// assert_eq!(plan.kind(), NftPlanKind::Replace);
    /// assert!(plan.to_string().contains("new rules"));
    /// ```
    pub fn replace_plan(&self, desired: &NftArtefact, reasons: Vec<String>) -> NftPlan {
        NftPlan::Replace {
            table: self.table.clone(),
            replacement: NftReplacement::Artefact(to_json_compact(desired)),
            reasons,
        }
    }

    /// [`Backend::plan`] for a `desired` artefact whose installed form
    /// ([`NftState::from_artefact`]) is already at hand as `expected`.
    ///
    /// ```
    /// # use backend_nft::{Nft, NftBackend, NftPlanKind, NftRenderer, NftState};
    /// # use microseg_core::{backend::Renderer, document::Format, ir::{compile, Target}, Policy};
    /// # let p = Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n", Format::Toml, None).unwrap();
    /// let a = NftRenderer.render(&compile(&p, &Target::Role("web".into())).unwrap()).unwrap();
    /// let expected = NftState::from_artefact(&a);
    /// let b = NftBackend::new(Nft::host(), "microseg");
    /// let plan = b.plan_expected(&a, &expected, Some(&expected)).unwrap();
    /// assert_eq!(plan.kind(), NftPlanKind::Unchanged);
    /// ```
    pub fn plan_expected(
        &self,
        desired: &NftArtefact,
        expected: &NftState,
        current: Option<&NftState>,
    ) -> Result<NftPlan, NftError> {
        self.plan_to(
            expected,
            || Cow::Borrowed(expected),
            || NftReplacement::Artefact(to_json_compact(desired)),
            current,
        )
    }

    /// Plans the change from `current` to the state `desired` leaves
    /// (see [`Backend::plan`]); also used to restore snapshots. `skeleton`
    /// is `desired` at least without its set elements
    /// ([`NftState::skeleton_of`]): the structures are compared first, and
    /// the elements (`desired()` in full) only when they are equal.
    fn plan_to<'d>(
        &self,
        skeleton: &NftState,
        desired: impl FnOnce() -> Cow<'d, NftState>,
        replace: impl FnOnce() -> NftReplacement,
        current: Option<&NftState>,
    ) -> Result<NftPlan, NftError> {
        if skeleton.table() != self.table {
            return Err(NftError::TableMismatch {
                expected: self.table.clone(),
                found: skeleton.table().into(),
            });
        }
        let Some(current) = current else {
            return Ok(NftPlan::Replace {
                table: self.table.clone(),
                replacement: replace(),
                reasons: vec![format!("table inet {} is not installed", self.table)],
            });
        };
        if current.table() != self.table {
            return Err(NftError::TableMismatch {
                expected: self.table.clone(),
                found: current.table().into(),
            });
        }
        // Two states of artefacts compare alike as they are; the normal form
        // (handles, counters, order) is needed only otherwise.
        if !skeleton.same_but_elements(current) {
            let (ws, hs) = (skeleton.structure(), current.structure());
            if ws != hs {
                let reasons = differences(&self.table, Some(&ws), Some(&hs), false)
                    .into_iter()
                    .map(|d| d.to_string())
                    .collect();
                return Ok(NftPlan::Replace {
                    table: self.table.clone(),
                    replacement: replace(),
                    reasons,
                });
            }
        }
        // The structures are equal: only elements can differ. Sets listed
        // alike are equal; the others are compared as sets.
        let desired = desired();
        let (want, have) = (desired.set_elements(), current.set_elements());
        let mut sets = Vec::new();
        for (name, (header, w)) in &want {
            let h = have.get(name).map_or(&[][..], |(_, h)| h);
            if w == &h {
                continue;
            }
            // Only the middle that differs is compared as a set: elements
            // of an interval set never overlap, so an element of the common
            // head or tail has no equal in the middle.
            let (head, tail) = common_ends(w, h);
            let (w, h) = (
                Elems::of(&w[head..w.len() - tail]),
                Elems::of(&h[head..h.len() - tail]),
            );
            let add: Vec<Value> = w.minus(&h).cloned().collect();
            let delete: Vec<Value> = h.minus(&w).cloned().collect();
            if !add.is_empty() || !delete.is_empty() {
                let interval = header["flags"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|f| f == "interval"));
                // Sets of addresses, and verdict maps keyed by addresses
                // (the optimised lowering's level 1).
                let data = header.get("map");
                sets.push(SetDelta {
                    set: name.to_string(),
                    add,
                    delete,
                    key: header["type"]
                        .as_str()
                        .filter(|t| matches!(*t, "ipv4_addr" | "ipv6_addr"))
                        .filter(|_| data.is_none_or(|d| d == "verdict"))
                        .map(str::to_string),
                    interval,
                });
            }
        }
        if sets.is_empty() {
            return Ok(NftPlan::Unchanged {
                table: self.table.clone(),
            });
        }
        Ok(NftPlan::Elements {
            table: self.table.clone(),
            sets,
        })
    }
}

/// A ruleset generation: the kernel's generation counter, and the ruleset
/// (boot and network namespace) it counts in.
///
/// ```
/// let g = backend_nft::NftGeneration { ruleset: "boot/netns:1".into(), id: 7 };
/// assert_eq!(g.to_string(), "7 (boot/netns:1)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NftGeneration {
    /// The boot id and the network namespace's inode.
    pub ruleset: String,
    /// The kernel's generation counter (`nft monitor` prints it).
    pub id: u32,
}

impl fmt::Display for NftGeneration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.id, self.ruleset)
    }
}

/// The intervals of an element delta, when every set is a set (or verdict
/// map) of addresses and every element an address, range or prefix of its
/// family (a single address where the set has no interval flag), a map's
/// element with a jump to a chain (else `None`: the delta goes through
/// nft), and the batch stays small.
fn interval_changes(sets: &[SetDelta]) -> Option<Vec<SetChange<'_>>> {
    let mut out = Vec::with_capacity(sets.len());
    let mut count = 0;
    for s in sets {
        let key = s.key.as_deref()?;
        let conv = |e: &Value| -> Option<Interval> {
            Interval::of(e)
                .filter(|i| i.fits(key))
                .filter(|i| s.interval || i.is_single())
        };
        fn with_jump(
            e: &Value,
            conv: impl Fn(&Value) -> Option<Interval>,
        ) -> Option<(Interval, Option<&str>)> {
            match e {
                Value::Array(kv) if kv.len() == 2 => {
                    let chain = kv[1].get("jump")?.get("target")?.as_str()?;
                    netlink::chain_name_ok(chain).then_some(())?;
                    Some((conv(&kv[0])?, Some(chain)))
                }
                _ => Some((conv(e)?, None)),
            }
        }
        let elem = |e| with_jump(e, conv);
        let add: Vec<(Interval, Option<&str>)> = s.add.iter().map(elem).collect::<Option<_>>()?;
        let delete: Vec<Interval> = s
            .delete
            .iter()
            .map(|e| elem(e).map(|(i, _)| i))
            .collect::<Option<_>>()?;
        // A map's elements all carry a verdict, a set's none.
        let jumps = add.iter().filter(|(_, j)| j.is_some()).count();
        if jumps != 0 && jumps != add.len() {
            return None;
        }
        count += add.len() + delete.len();
        out.push(SetChange {
            set: &s.set,
            interval: s.interval,
            add,
            delete,
        });
    }
    // Headers and names per set, then the intervals.
    let bytes = out.len() * 2 * 128 + count * crate::netlink::INTERVAL_BYTES;
    (bytes + bytes / 64 < crate::netlink::BATCH_LIMIT).then_some(out)
}

/// What a [`NftPlan::Replace`] loads.
///
/// ```
/// # use backend_nft::{NftReplacement, NftState};
/// # let listing = serde_json::json!({"nftables": [{"table": {"family": "inet", "name": "ms"}}]});
/// let r = NftReplacement::Snapshot(Box::new(NftState::from_listing("ms", &listing).unwrap()));
/// # let _ = r;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum NftReplacement {
    /// A rendered artefact, as its compact nft JSON document (its own
    /// add + delete + add transaction; see [`to_json_compact`]).
    Artefact(String),
    /// A snapshot ([`NftState::restore_document`]).
    Snapshot(Box<NftState>),
}

/// The element changes of one set.
///
/// ```
/// let d = backend_nft::SetDelta { set: "web_v4".into(),
///     add: vec![serde_json::json!("10.0.0.2")], delete: vec![], key: None, interval: true };
/// assert_eq!(d.to_string(), "set web_v4: + 10.0.0.2");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetDelta {
    /// The set.
    pub set: String,
    /// Elements to add (as `nft -j` writes them).
    pub add: Vec<Value>,
    /// Elements to delete.
    pub delete: Vec<Value>,
    /// The key type when the set (or verdict map) is one of addresses
    /// (`ipv4_addr`, `ipv6_addr`): such a delta goes over nfnetlink
    /// ([`NftBackend::apply_at`]); `None`: through nft.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Whether the set has the interval flag.
    #[serde(skip)]
    pub interval: bool,
}

impl fmt::Display for SetDelta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let map = self.add.iter().chain(&self.delete).any(Value::is_array);
        write!(f, "{} {}:", if map { "map" } else { "set" }, self.set)?;
        for e in &self.add {
            write!(f, " + {}", element_text(e))?;
        }
        for e in &self.delete {
            write!(f, " - {}", element_text(e))?;
        }
        Ok(())
    }
}

/// The kind of a plan.
///
/// ```
/// use backend_nft::NftPlanKind;
/// assert_eq!(NftPlanKind::Elements.to_string(), "element delta");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NftPlanKind {
    /// Nothing to do.
    Unchanged,
    /// Only set elements change: added and deleted in place; rules, counters
    /// and connections are untouched.
    Elements,
    /// The table is replaced atomically (add + delete + add).
    Replace,
}

impl fmt::Display for NftPlanKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NftPlanKind::Unchanged => "unchanged",
            NftPlanKind::Elements => "element delta",
            NftPlanKind::Replace => "replace",
        })
    }
}

/// The changes that make the installed table what is desired.
///
/// ```
/// # use backend_nft::{Nft, NftBackend, NftPlanKind, NftRenderer, NftState};
/// # use microseg_core::{backend::{Backend, Renderer}, document::Format, ir::{compile, Target}, Policy};
/// let policy = |web: &str| Policy::from_str_as(&format!(
///     "version = 1\n[groups]\nweb = [{web}]\nadm = [\"10.9.0.1\"]\n[roles.adm]\n\
///      [[flows]]\nfrom = \"adm\"\nto = \"web\"\nports = [\"tcp/22\"]\n"), Format::Toml, None).unwrap();
/// let art = |web: &str| NftRenderer.render(&compile(&policy(web), &Target::Role("adm".into())).unwrap()).unwrap();
/// let b = NftBackend::new(Nft::host(), "microseg");
/// let installed = NftState::from_artefact(&art("\"10.0.0.1\""));
/// // Same rules, one more member: an element delta.
/// let plan = b.plan(&art("\"10.0.0.1\", \"10.0.0.7\""), Some(&installed)).unwrap();
/// assert_eq!(plan.kind(), NftPlanKind::Elements);
/// assert!(plan.to_string().contains("set web_v4: + 10.0.0.7"));
/// // Nothing installed yet: a replacement.
/// assert_eq!(b.plan(&art("\"10.0.0.1\""), None).unwrap().kind(), NftPlanKind::Replace);
/// assert_eq!(b.plan(&art("\"10.0.0.1\""), Some(&installed)).unwrap().kind(), NftPlanKind::Unchanged);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum NftPlan {
    /// The installed table is already as desired.
    Unchanged {
        /// The table.
        table: String,
    },
    /// Only set elements differ.
    Elements {
        /// The table.
        table: String,
        /// Per set, the elements to add and to delete.
        sets: Vec<SetDelta>,
    },
    /// The table is replaced in one transaction.
    Replace {
        /// The table.
        table: String,
        /// What is loaded.
        replacement: NftReplacement,
        /// Why (what differs beyond set elements, or that nothing is installed).
        reasons: Vec<String>,
    },
}

impl NftPlan {
    /// The kind of plan.
    ///
    /// ```
    /// let p = backend_nft::NftPlan::Unchanged { table: "ms".into() };
    /// assert_eq!(p.kind(), backend_nft::NftPlanKind::Unchanged);
    /// ```
    pub fn kind(&self) -> NftPlanKind {
        match self {
            NftPlan::Unchanged { .. } => NftPlanKind::Unchanged,
            NftPlan::Elements { .. } => NftPlanKind::Elements,
            NftPlan::Replace { .. } => NftPlanKind::Replace,
        }
    }

    /// The `nft -j -f -` document the plan loads (`None` when unchanged).
    ///
    /// ```
    /// let p = backend_nft::NftPlan::Elements { table: "ms".into(), sets: vec![backend_nft::SetDelta {
    ///     set: "web_v4".into(), add: vec![serde_json::json!("10.0.0.2")], delete: vec![serde_json::json!("10.0.0.1")],
    ///     key: None, interval: true }] };
    /// let doc: serde_json::Value = serde_json::from_str(&p.to_json().unwrap()).unwrap();
    /// assert_eq!(doc["nftables"][0]["delete"]["element"]["elem"][0], "10.0.0.1");
    /// assert_eq!(doc["nftables"][1]["add"]["element"]["elem"][0], "10.0.0.2");
    /// ```
    pub fn to_json(&self) -> Option<String> {
        match self {
            NftPlan::Unchanged { .. } => None,
            NftPlan::Elements { table, sets } => {
                // Deletes first: an interval that grows is deleted and re-added,
                // and the new one must not overlap the old.
                let element = |s: &SetDelta, elems: &[Value]| json!({"element": {"family": "inet", "table": table, "name": s.set, "elem": elems}});
                let mut cmds = Vec::new();
                for s in sets.iter().filter(|s| !s.delete.is_empty()) {
                    cmds.push(json!({ "delete": element(s, &s.delete) }));
                }
                for s in sets.iter().filter(|s| !s.add.is_empty()) {
                    cmds.push(json!({ "add": element(s, &s.add) }));
                }
                Some(json!({ "nftables": cmds }).to_string())
            }
            NftPlan::Replace { replacement, .. } => Some(match replacement {
                NftReplacement::Artefact(json) => json.clone(),
                NftReplacement::Snapshot(s) => s.restore_document().to_string(),
            }),
        }
    }
}

impl fmt::Display for NftPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NftPlan::Unchanged { table } => {
                writeln!(f, "unchanged: table inet {table} is already as desired")
            }
            NftPlan::Elements { table, sets } => {
                let (add, del) = sets
                    .iter()
                    .fold((0, 0), |(a, d), s| (a + s.add.len(), d + s.delete.len()));
                writeln!(
                    f,
                    "element delta on table inet {table}: {add} element(s) added, {del} deleted \
                     (rules, counters and established connections untouched)"
                )?;
                for s in sets {
                    writeln!(f, "  {s}")?;
                }
                Ok(())
            }
            NftPlan::Replace {
                table,
                replacement,
                reasons,
            } => {
                let what = match replacement {
                    NftReplacement::Artefact(_) => "the compiled ruleset",
                    NftReplacement::Snapshot(_) => "the saved snapshot",
                };
                writeln!(
                    f,
                    "replace table inet {table} with {what}, atomically (add + delete + add in one transaction):"
                )?;
                const SHOWN: usize = 20;
                for r in reasons.iter().take(SHOWN) {
                    writeln!(f, "  {r}")?;
                }
                if reasons.len() > SHOWN {
                    writeln!(f, "  … and {} more differences", reasons.len() - SHOWN)?;
                }
                Ok(())
            }
        }
    }
}

impl Renderer for NftBackend {
    type Artefact = NftArtefact;
    type Error = NftError;

    fn render(&self, ruleset: &HostRuleset) -> Result<NftArtefact, NftError> {
        self.lowering.render(ruleset)
    }
}

impl Backend for NftBackend {
    type State = NftState;
    type Plan = NftPlan;

    /// `nft -j list table inet <table>`: only the policy's own table.
    fn read(&self) -> Result<Option<NftState>, NftError> {
        self.nft
            .list_table(&self.table)?
            .map(|listing| NftState::from_listing(&self.table, &listing))
            .transpose()
    }

    /// Unchanged when the installed table equals the desired one (handles and
    /// counter values aside); an element delta when only set elements differ;
    /// else a replacement of the whole table.
    fn plan(&self, desired: &NftArtefact, current: Option<&NftState>) -> Result<NftPlan, NftError> {
        // Structure first, without the set elements: a replacement needs no
        // element comparison (100,000s of them in a large estate).
        self.plan_to(
            &NftState::skeleton_of(desired),
            || Cow::Owned(NftState::from_artefact(desired)),
            || NftReplacement::Artefact(to_json_compact(desired)),
            current,
        )
    }

    /// One `nft -j -f -` transaction: all or nothing; nft's stderr is in the error.
    fn apply(&self, plan: &NftPlan) -> Result<(), NftError> {
        match plan.to_json() {
            None => Ok(()),
            Some(doc) => self.nft.run(&["-j", "-f", "-"], Some(&doc)).map(drop),
        }
    }

    /// Puts a snapshot back in one transaction (as an element delta when only
    /// elements differ, so counters survive), or removes the table for `None`.
    fn restore(&self, saved: Option<&NftState>) -> Result<(), NftError> {
        match saved {
            None => self.remove(),
            Some(s) => {
                let current = self.read()?;
                let plan = self.plan_to(
                    s,
                    || Cow::Borrowed(s),
                    || NftReplacement::Snapshot(Box::new(s.clone())),
                    current.as_ref(),
                )?;
                self.apply(&plan)
            }
        }
    }

    /// `add table` + `delete table` in one transaction: removes the table if
    /// it exists, succeeds if it does not, touches nothing else.
    fn remove(&self) -> Result<(), NftError> {
        let t = json!({"table": {"family": "inet", "name": self.table}});
        let doc = json!({"nftables": [{"add": t}, {"delete": t}]});
        self.nft
            .run(&["-j", "-f", "-"], Some(&doc.to_string()))
            .map(drop)
    }
}
