//! What the host needs from a backend beyond the core's `Backend` trait.

use crate::members::{MemberSets, Members, NamedMembers};
use microseg_core::backend::Backend;
use microseg_core::ir::HostRuleset;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};

/// How much an apply changes.
///
/// ```
/// assert_eq!(microseg_host::PlanKind::Incremental.to_string(), "incremental (set members only)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanKind {
    /// Nothing to change.
    Unchanged,
    /// Only set members change, in place (rules, counters and connections untouched).
    Incremental,
    /// Everything the policy owns is replaced atomically.
    Replace,
}

impl fmt::Display for PlanKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PlanKind::Unchanged => "unchanged",
            PlanKind::Incremental => "incremental (set members only)",
            PlanKind::Replace => "replace",
        })
    }
}

/// One difference between what was applied and what is installed.
///
/// ```
/// let d = microseg_host::Difference { object: "chain input".into(), detail: "unexpected rule 4".into() };
/// assert_eq!(d.to_string(), "chain input: unexpected rule 4");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    /// The object (`set web_v4`, `chain input`, `table inet microseg`).
    pub object: String,
    /// What differs.
    pub detail: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.object, self.detail)
    }
}

/// Hit counters summed over the rules of one flow (`flow:NAME`) or baseline
/// item (`baseline:default` counts what the policy dropped).
///
/// ```
/// let h = microseg_host::Hits { label: "flow:admin-ssh".into(), packets: 4, bytes: 240, rules: 1 };
/// assert_eq!(h.label, "flow:admin-ssh");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hits {
    /// `flow:NAME` or `baseline:WHAT`.
    pub label: String,
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
    /// Counted rules with this label.
    pub rules: usize,
}

/// A generation of what is installed: a counter that any change increments,
/// and what it counts in (for nft: the boot and the network namespace).
///
/// ```
/// let g = microseg_host::Generation { ruleset: "boot/netns:1".into(), id: 7 };
/// assert_eq!(g.clone(), g);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generation {
    /// What the counter counts in.
    pub ruleset: String,
    /// The counter.
    pub id: u64,
}

/// A [`Backend`] that [`Host`](crate::Host) can drive: snapshots serialise
/// to the state directory, and it can compare, count and persist.
///
/// ```no_run
/// use microseg_host::HostBackend;
/// use backend_nft::{Nft, NftBackend};
/// let b = NftBackend::new(Nft::host(), "microseg");
/// assert_eq!(b.name(), "nft");
/// assert_eq!(b.owned(), "table inet microseg");
/// let current = microseg_core::backend::Backend::read(&b)?;
/// if let Some(s) = &current {
///     for h in b.hits(s) { println!("{} {}", h.label, h.packets); }
/// }
/// # Ok::<(), backend_nft::NftError>(())
/// ```
pub trait HostBackend:
    Backend<
        State: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
        Plan: Send + 'static,
    > + microseg_core::backend::Renderer<Artefact: Sync + Send + 'static>
    + Sync
{
    /// The backend's name in records and messages (`nft`).
    fn name(&self) -> &'static str;
    /// What the policy owns, for messages (`table inet microseg`).
    fn owned(&self) -> String;
    /// The key that ties records to what they describe (the table name).
    fn key(&self) -> String;
    /// The state `desired` leaves once applied, in the form [`Backend::read`]
    /// returns (what drift is measured against).
    fn expected(&self, desired: &Self::Artefact) -> Self::State;
    /// The encoded [`expected`](Self::expected) state of `desired`, where
    /// the backend writes it faster than working the state out and
    /// encoding it (`None`, the default: it does not). It must decode to
    /// the same state.
    fn expected_bytes(&self, desired: &Self::Artefact) -> Option<Vec<u8>> {
        let _ = desired;
        None
    }
    /// A digest of what `desired` installs, set members aside: equal for
    /// two artefacts of the same structure, different otherwise (then a
    /// plan between them is a replacement). Recorded with the generation, so
    /// that an apply of another structure need not read the record first.
    /// `None` (the default): no digests.
    fn structure_digest(&self, desired: &Self::Artefact) -> Option<String> {
        let _ = desired;
        None
    }
    /// The plan that replaces what is installed with `desired`, for
    /// `reasons`, without looking at what is installed (`None`, the
    /// default: the backend has no such plan).
    fn replace_plan(&self, desired: &Self::Artefact, reasons: Vec<String>) -> Option<Self::Plan> {
        let _ = (desired, reasons);
        None
    }
    /// [`Backend::plan`] when the state `desired` leaves is at hand as
    /// `expected` ([`expected`](Self::expected)); the default ignores it.
    fn plan_expected(
        &self,
        desired: &Self::Artefact,
        expected: &Self::State,
        current: Option<&Self::State>,
    ) -> Result<Self::Plan, Self::Error> {
        let _ = expected;
        self.plan(desired, current)
    }
    /// How much a plan changes.
    fn plan_kind(&self, plan: &Self::Plan) -> PlanKind;
    /// What differs between the expected state and the installed one
    /// (`None`: nothing installed / nothing expected); empty when in sync.
    fn drift(
        &self,
        expected: Option<&Self::State>,
        current: Option<&Self::State>,
    ) -> Vec<Difference>;
    /// Hit counters per flow and baseline item.
    fn hits(&self, current: &Self::State) -> Vec<Hits>;
    /// The text to persist for loading at boot.
    fn boot_text(&self, desired: &Self::Artefact) -> String;
    /// Where the boot text goes by default (`None`: the backend persists itself).
    fn default_persist_path(&self) -> Option<PathBuf>;
    /// Advice after persisting to `path` (e.g. the include line the boot
    /// loader needs); `default` is true for [`default_persist_path`](Self::default_persist_path).
    fn persist_notes(&self, path: &Path, default: bool) -> Vec<String>;
    /// A cheap look at what is installed: everything but set members (the
    /// nft backend: `nft -t -j list ruleset`, milliseconds where reading a
    /// table of 100,000s of set elements takes seconds). `None` (the
    /// default): no such look, or nothing installed.
    fn glance(&self) -> Result<Option<Self::State>, Self::Error> {
        Ok(None)
    }
    /// Whether a [`glance`](Self::glance) shows `recorded` (what the last
    /// operation left, from the state directory) in everything but set
    /// members: then an apply plans against the record. `false` by default.
    fn glance_matches(&self, glance: &Self::State, recorded: &Self::State) -> bool {
        let _ = (glance, recorded);
        false
    }
    /// The generation of everything installed (the nft backend: the
    /// kernel's ruleset generation, which every committed transaction by
    /// anyone increments). Equal to the one recorded after the last
    /// operation, nothing has changed since, and an apply plans against the
    /// record without looking. `None` (the default): no such thing.
    fn generation(&self) -> Option<Generation> {
        None
    }
    /// Applies `plan` made from what was observed at generation `at`
    /// (`None`: unknown), refusing without change where it can tell that
    /// something was committed since; returns the generation after it when
    /// that is provably this plan's own. The default: [`Backend::apply`],
    /// no generation.
    fn apply_at(
        &self,
        plan: &Self::Plan,
        at: Option<&Generation>,
    ) -> Result<Option<Generation>, Self::Error> {
        let _ = at;
        self.apply(plan).map(|()| None)
    }
    /// A digest of everything this backend installs for `ruleset` but
    /// what set members shape (set elements; for the optimised nft
    /// lowering, the elements of its address maps); `None` (the default):
    /// no member path. Cheap: it is worked out before anything else.
    fn member_structure(&self, ruleset: &HostRuleset) -> Option<String> {
        let _ = ruleset;
        None
    }
    /// What an apply of `ruleset` records for the next one (its
    /// [`member_structure`](Self::member_structure) and the members of
    /// the sets and maps it installs, with whatever the backend needs to
    /// plan a change of them); `None` (the default): nothing.
    fn members<'r>(&self, ruleset: &'r HostRuleset) -> Option<MemberSets<'r>> {
        let _ = ruleset;
        None
    }
    /// The plan that takes what an apply recorded as `recorded`
    /// ([`members`](Self::members)) to what `ruleset` installs, changing
    /// members and nothing else (no change: unchanged), and the members to
    /// record then; `None` (the default): no such plan, the full path.
    fn members_plan<'r>(
        &self,
        ruleset: &'r HostRuleset,
        recorded: &NamedMembers,
    ) -> Option<(Self::Plan, NamedMembers<'r>)> {
        let _ = (ruleset, recorded);
        None
    }
    /// Writes `sets`' members into `state` (a recorded state whose sets
    /// have since changed members by [`members_plan`](Self::members_plan));
    /// `false` (the default) when it cannot.
    fn with_members(state: &mut Self::State, sets: &NamedMembers) -> bool
    where
        Self: Sized,
    {
        let _ = (state, sets);
        false
    }
    /// `Some(why)` when the backend's own configuration survives a reboot
    /// (firewalld's permanent configuration): no boot file is written or
    /// removed, whatever [`Persist`](crate::Persist) asks, and `why` says so.
    /// `None` (the default): boot files as above.
    fn persists_itself(&self) -> Option<String> {
        None
    }
    /// `Some(why)` when the backend has no hit counters ([`hits`](Self::hits)
    /// is always empty); `None` (the default) otherwise.
    fn no_hits(&self) -> Option<String> {
        None
    }
    /// What, outside what the policy owns, keeps the host from enforcing it
    /// (for `status`); best effort, empty by default.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
    /// What `remove` changed besides removing what the policy owns (e.g. the
    /// default zone put back); read after the remove. Empty by default.
    fn remove_notes(&self) -> Vec<String> {
        Vec::new()
    }
}

#[cfg(feature = "nft")]
mod nft {
    use super::*;
    use backend_nft::members::{Level1Map, OldSet};
    use backend_nft::{
        Lowering, NftArtefact, NftBackend, NftGeneration, NftPlan, NftPlanKind, NftState,
    };
    use microseg_core::addr::Family;
    use std::collections::HashMap;

    fn to_nft(g: &Generation) -> Option<NftGeneration> {
        Some(NftGeneration {
            ruleset: g.ruleset.clone(),
            id: u32::try_from(g.id).ok()?,
        })
    }

    fn from_nft(g: NftGeneration) -> Generation {
        Generation {
            ruleset: g.ruleset,
            id: u64::from(g.id),
        }
    }

    /// The elements the plain lowering writes for set members `m`
    /// (`None`: map elements, see [`map_of`]).
    fn elements(m: &Members) -> Option<Vec<serde_json::Value>> {
        match m {
            Members::V4(r) => Some(backend_nft::members::elements_v4(r)),
            Members::V6(r) => Some(backend_nft::members::elements_v6(r)),
            Members::MapV4(_) | Members::MapV6(_) => None,
        }
    }

    /// Under the optimised lowering, the policy's sets are recorded under
    /// this prefix next to the level-1 maps (it is the basis of the next
    /// change: what changed membership); nft names never hold a ':'.
    const BASIS: &str = "policy:";

    /// A recorded level-1 map (`None`: set members).
    fn map_of(name: &str, m: &Members) -> Option<Level1Map> {
        let (family, elems) = match m {
            Members::MapV4(r) => (
                Family::V4,
                r.iter()
                    .map(|&(a, b, d)| (u128::from(a), u128::from(b), d))
                    .collect(),
            ),
            Members::MapV6(r) => (Family::V6, r.to_vec()),
            Members::V4(_) | Members::V6(_) => return None,
        };
        Some(Level1Map {
            name: name.to_string(),
            family,
            interval: name.ends_with("_range"),
            elems,
        })
    }

    /// Recorded map elements `m` with `changes` made (`None`: they do not
    /// fit: a deleted element missing, an added one there).
    fn patched<'c>(
        m: &Members,
        changes: impl Iterator<Item = &'c backend_nft::members::MapChange>,
    ) -> Option<Members<'static>> {
        /// Deletes then adds, keeping `v` sorted.
        fn patch<T: Ord + Copy>(
            v: &mut Vec<T>,
            delete: impl Iterator<Item = T>,
            add: impl Iterator<Item = T>,
        ) -> Option<()> {
            for d in delete {
                let i = v.binary_search(&d).ok()?;
                v.remove(i);
            }
            for a in add {
                let i = v.binary_search(&a).err()?;
                v.insert(i, a);
            }
            Some(())
        }
        match m {
            Members::MapV4(r) => {
                let mut v = r.to_vec();
                // IPv4 maps hold IPv4 keys only.
                let k = |e: &(u128, u128, u64)| (e.0 as u32, e.1 as u32, e.2);
                for c in changes {
                    patch(&mut v, c.delete.iter().map(k), c.add.iter().map(k))?;
                }
                Some(Members::MapV4(Cow::Owned(v)))
            }
            Members::MapV6(r) => {
                let mut v = r.to_vec();
                for c in changes {
                    patch(&mut v, c.delete.iter().copied(), c.add.iter().copied())?;
                }
                Some(Members::MapV6(Cow::Owned(v)))
            }
            Members::V4(_) | Members::V6(_) => None,
        }
    }

    /// A level-1 map as recorded.
    fn map_members(m: Level1Map) -> (Cow<'static, str>, Members<'static>) {
        let members = match m.family {
            // IPv4 maps hold IPv4 keys only.
            Family::V4 => Members::MapV4(Cow::Owned(
                m.elems
                    .iter()
                    .map(|&(a, b, d)| (a as u32, b as u32, d))
                    .collect(),
            )),
            Family::V6 => Members::MapV6(Cow::Owned(m.elems)),
        };
        (Cow::Owned(m.name), members)
    }

    /// The policy's sets with their members, named `prefix` + set name.
    fn ir_sets<'r>(ruleset: &'r HostRuleset, prefix: &str) -> NamedMembers<'r> {
        ruleset
            .sets
            .values()
            .map(|s| {
                let m = match s.family {
                    Family::V4 => Members::V4(Cow::Borrowed(s.addrs.v4.ranges())),
                    Family::V6 => Members::V6(Cow::Borrowed(s.addrs.v6.ranges())),
                };
                let name = if prefix.is_empty() {
                    Cow::Borrowed(s.name.as_str())
                } else {
                    Cow::Owned(format!("{prefix}{}", s.name))
                };
                (name, m)
            })
            .collect()
    }

    /// The element delta of `sets`' changes.
    fn elements_plan(table: &str, sets: Vec<backend_nft::SetDelta>) -> NftPlan {
        let table = table.to_string();
        if sets.is_empty() {
            NftPlan::Unchanged { table }
        } else {
            NftPlan::Elements { table, sets }
        }
    }

    /// Where nftables.service (Debian, Ubuntu, Fedora, Arch…) reads
    /// `/etc/nftables.conf` (Fedora/RHEL: `/etc/sysconfig/nftables.conf`).
    const NFT_CONF: &str = "/etc/nftables.conf";
    /// The directory our boot files go to.
    const NFT_DIR: &str = "/etc/nftables.d";

    impl HostBackend for NftBackend {
        fn name(&self) -> &'static str {
            "nft"
        }

        fn owned(&self) -> String {
            format!("table inet {}", self.table)
        }

        fn key(&self) -> String {
            self.table.clone()
        }

        fn expected(&self, desired: &NftArtefact) -> NftState {
            NftState::from_artefact(desired)
        }

        fn plan_expected(
            &self,
            desired: &NftArtefact,
            expected: &NftState,
            current: Option<&NftState>,
        ) -> Result<NftPlan, backend_nft::NftError> {
            NftBackend::plan_expected(self, desired, expected, current)
        }

        fn structure_digest(&self, desired: &NftArtefact) -> Option<String> {
            Some(NftState::structure_digest_of(desired))
        }

        fn expected_bytes(&self, desired: &NftArtefact) -> Option<Vec<u8>> {
            Some(NftState::json_of(desired))
        }

        fn replace_plan(&self, desired: &NftArtefact, reasons: Vec<String>) -> Option<NftPlan> {
            Some(NftBackend::replace_plan(self, desired, reasons))
        }

        fn glance(&self) -> Result<Option<NftState>, backend_nft::NftError> {
            self.installed_structure()
        }

        fn glance_matches(&self, glance: &NftState, recorded: &NftState) -> bool {
            glance.same_structure(recorded)
        }

        fn generation(&self) -> Option<Generation> {
            NftBackend::generation(self).map(from_nft)
        }

        /// Element deltas over nfnetlink guarded by `at`
        /// ([`NftBackend::apply_at`]).
        fn apply_at(
            &self,
            plan: &NftPlan,
            at: Option<&Generation>,
        ) -> Result<Option<Generation>, backend_nft::NftError> {
            NftBackend::apply_at(self, plan, at.and_then(to_nft).as_ref()).map(|g| g.map(from_nft))
        }

        fn member_structure(&self, ruleset: &HostRuleset) -> Option<String> {
            backend_nft::members::member_structure(self.lowering, ruleset)
        }

        /// The plain lowering's sets; the optimised lowering's level-1
        /// maps and the policy's sets ([`backend_nft::members`]).
        fn members<'r>(&self, ruleset: &'r HostRuleset) -> Option<MemberSets<'r>> {
            let structure = self.member_structure(ruleset)?;
            let sets = match self.lowering {
                Lowering::Plain => ir_sets(ruleset, ""),
                Lowering::Optimized => {
                    let maps = backend_nft::members::level1_maps(ruleset).ok()??;
                    let mut sets: NamedMembers = maps.into_iter().map(map_members).collect();
                    sets.extend(ir_sets(ruleset, BASIS));
                    sets
                }
            };
            Some(MemberSets { structure, sets })
        }

        fn members_plan<'r>(
            &self,
            ruleset: &'r HostRuleset,
            recorded: &NamedMembers,
        ) -> Option<(NftPlan, NamedMembers<'r>)> {
            match self.lowering {
                Lowering::Plain => {
                    let new = ir_sets(ruleset, "");
                    let sets = crate::members::deltas(recorded, &new)?
                        .into_iter()
                        .map(|d| {
                            Some(backend_nft::SetDelta {
                                set: d.set,
                                add: elements(&d.add)?,
                                delete: elements(&d.delete)?,
                                key: Some(
                                    match d.add {
                                        Members::V6(_) => "ipv6_addr",
                                        _ => "ipv4_addr",
                                    }
                                    .into(),
                                ),
                                interval: true,
                            })
                        })
                        .collect::<Option<Vec<_>>>()?;
                    Some((elements_plan(&self.table, sets), new))
                }
                Lowering::Optimized => {
                    // The recorded maps, then the policy's sets as recorded,
                    // in the order of the policy's sets now (else not a
                    // change of members alone): only those that changed
                    // are worked on.
                    let maps = recorded.iter().take_while(|(n, _)| !n.starts_with(BASIS));
                    let old_maps: Vec<Level1Map> =
                        maps.map(|(n, m)| map_of(n, m)).collect::<Option<_>>()?;
                    let basis = &recorded[old_maps.len()..];
                    if basis.len() != ruleset.sets.len() {
                        return None;
                    }
                    let mut changed: HashMap<&str, &Members> = HashMap::new();
                    for ((name, m), set) in basis.iter().zip(ruleset.sets.values()) {
                        if name.strip_prefix(BASIS) != Some(set.name.as_str()) {
                            return None;
                        }
                        let same = match m {
                            Members::V4(r) => **r == *set.addrs.v4.ranges(),
                            Members::V6(r) => **r == *set.addrs.v6.ranges(),
                            _ => return None,
                        };
                        if !same {
                            changed.insert(set.name.as_str(), m);
                        }
                    }
                    // A set's recorded members: unchanged, or what they were.
                    let old_sets = |name: &str| -> Option<OldSet> {
                        Some(match changed.get(name) {
                            None => OldSet::Unchanged,
                            Some(Members::V4(r)) => OldSet::Was(
                                r.iter()
                                    .map(|&(a, b)| (u128::from(a), u128::from(b)))
                                    .collect(),
                            ),
                            Some(Members::V6(r)) => OldSet::Was(r.to_vec()),
                            Some(_) => return None,
                        })
                    };
                    let changes = backend_nft::members::level1_after(ruleset, &old_sets, &old_maps)
                        .ok()??;
                    let sets = changes
                        .iter()
                        .map(|c| {
                            let map = old_maps.iter().find(|m| m.name == c.map)?;
                            Some(backend_nft::SetDelta {
                                set: c.map.clone(),
                                add: backend_nft::members::map_elements(map, &c.add),
                                delete: backend_nft::members::map_elements(map, &c.delete),
                                key: Some(
                                    match c.family {
                                        Family::V4 => "ipv4_addr",
                                        Family::V6 => "ipv6_addr",
                                    }
                                    .into(),
                                ),
                                interval: c.interval,
                            })
                        })
                        .collect::<Option<Vec<_>>>()?;
                    // The recorded maps with the changes made, then the
                    // policy's sets now.
                    let mut new: NamedMembers = Vec::with_capacity(recorded.len());
                    for (name, m) in recorded.iter().filter(|(n, _)| !n.starts_with(BASIS)) {
                        let mine = changes.iter().filter(|c| c.map == *name);
                        new.push((Cow::Owned(name.to_string()), patched(m, mine)?));
                    }
                    new.extend(ir_sets(ruleset, BASIS));
                    Some((elements_plan(&self.table, sets), new))
                }
            }
        }

        fn with_members(state: &mut NftState, sets: &NamedMembers) -> bool {
            sets.iter().all(|(name, m)| {
                if name.starts_with(BASIS) {
                    return true;
                }
                match (elements(m), map_of(name, m)) {
                    (Some(elems), _) => state.set_elements_to(name, elems),
                    (None, Some(map)) => state.map_elements_to(
                        name,
                        backend_nft::members::map_elements(&map, &map.elems),
                    ),
                    (None, None) => false,
                }
            })
        }

        fn plan_kind(&self, plan: &NftPlan) -> PlanKind {
            match plan.kind() {
                NftPlanKind::Unchanged => PlanKind::Unchanged,
                NftPlanKind::Elements => PlanKind::Incremental,
                NftPlanKind::Replace => PlanKind::Replace,
            }
        }

        fn drift(
            &self,
            expected: Option<&NftState>,
            current: Option<&NftState>,
        ) -> Vec<Difference> {
            NftBackend::drift(self, expected, current)
                .into_iter()
                .map(|d| Difference {
                    object: d.object,
                    detail: d.detail,
                })
                .collect()
        }

        fn hits(&self, current: &NftState) -> Vec<Hits> {
            current
                .hits()
                .into_iter()
                .map(|h| Hits {
                    label: h.label,
                    packets: h.packets,
                    bytes: h.bytes,
                    rules: h.rules,
                })
                .collect()
        }

        fn boot_text(&self, desired: &NftArtefact) -> String {
            backend_nft::to_nft_text(desired)
        }

        fn default_persist_path(&self) -> Option<PathBuf> {
            Some(Path::new(NFT_DIR).join(format!("{}.nft", self.table)))
        }

        fn persist_notes(&self, path: &Path, default: bool) -> Vec<String> {
            let include = if default {
                format!("include \"{NFT_DIR}/*.nft\"")
            } else {
                format!("include \"{}\"", path.display())
            };
            let conf = std::fs::read_to_string(NFT_CONF).unwrap_or_default();
            let wanted = if default {
                NFT_DIR.to_string()
            } else {
                path.display().to_string()
            };
            if conf
                .lines()
                .any(|l| l.trim_start().starts_with("include") && l.contains(&wanted))
            {
                Vec::new()
            } else {
                vec![format!(
                    "nftables.service loads {NFT_CONF} at boot: add the line `{include}` at its \
                     end (after any `flush ruleset`) so that this ruleset is loaded at boot"
                )]
            }
        }
    }
}

#[cfg(feature = "firewalld")]
mod firewalld {
    use super::*;
    use backend_firewalld::{names, Change, FirewalldBackend, FirewalldConfig, Plan, State};

    /// A change that would undo drift, as the difference it undoes.
    pub(super) fn difference(c: &Change) -> Difference {
        let some = |v: &[String]| {
            let mut s = v.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
            if v.len() > 5 {
                s.push_str(", …");
            }
            s
        };
        let (object, detail) = match c {
            Change::Create { object, .. } => (object.clone(), "missing".to_string()),
            Change::Update { object, details } => (
                object.clone(),
                format!("an apply would change: {}", details.join("; ")),
            ),
            Change::Entries {
                ipset,
                added,
                removed,
            } => {
                let mut d = Vec::new();
                if !added.is_empty() {
                    d.push(format!("{} entries missing ({})", added.len(), some(added)));
                }
                if !removed.is_empty() {
                    d.push(format!(
                        "{} unexpected entries ({})",
                        removed.len(),
                        some(removed)
                    ));
                }
                (format!("ipset {ipset}"), d.join("; "))
            }
            Change::Remove { object } => (object.clone(), "present, not expected".to_string()),
            Change::Runtime { object } => (
                object.clone(),
                "changed at runtime (the permanent configuration is as applied)".to_string(),
            ),
            Change::Reload { reason } => (
                "runtime configuration".to_string(),
                format!("differs from the permanent one: {reason}"),
            ),
            Change::DefaultZone { from, to } => (
                "default zone".to_string(),
                format!("is {from}, expected {to}"),
            ),
        };
        Difference { object, detail }
    }

    /// The table of a backend that a [`Host`](crate::Host) drives
    /// (`FirewalldBackend::with_table`; `microseg` when none was fixed).
    fn table(b: &FirewalldBackend) -> &str {
        b.fixed_table().unwrap_or("microseg")
    }

    /// firewalld as a host backend: records are keyed by the table, the
    /// snapshot is what the table owns in firewalld (permanent and runtime)
    /// plus the default zone, drift is what an apply would change back.
    /// firewalld persists its permanent configuration itself, and keeps no
    /// per-rule counters. Give the backend its table with
    /// [`FirewalldBackend::with_table`].
    ///
    /// ```no_run
    /// use backend_firewalld::FirewalldBackend;
    /// use microseg_host::{Host, HostBackend, StateDir};
    /// // The system bus (DBUS_SYSTEM_BUS_ADDRESS honoured).
    /// let fw = FirewalldBackend::connect(None)?.with_table("microseg");
    /// assert_eq!(fw.name(), "firewalld");
    /// let host = Host::new(fw, StateDir::resolve(None));
    /// print!("{}", host.status().unwrap());
    /// # Ok::<(), backend_firewalld::FirewalldError>(())
    /// ```
    impl HostBackend for FirewalldBackend {
        fn name(&self) -> &'static str {
            "firewalld"
        }

        fn owned(&self) -> String {
            let t = table(self);
            format!(
                "firewalld zone {}, policy {} and ipsets {}*",
                names::zone(t),
                names::output_policy(t),
                names::ipset_prefix(t)
            )
        }

        fn key(&self) -> String {
            table(self).to_string()
        }

        fn expected(&self, desired: &FirewalldConfig) -> State {
            State::expected(desired)
        }

        fn plan_kind(&self, plan: &Plan) -> PlanKind {
            if plan.is_empty() {
                PlanKind::Unchanged
            } else if plan.only_ipset_entries() {
                PlanKind::Incremental
            } else {
                PlanKind::Replace
            }
        }

        fn drift(&self, expected: Option<&State>, current: Option<&State>) -> Vec<Difference> {
            match (expected, current) {
                (None, None) => Vec::new(),
                (Some(_), None) => vec![Difference {
                    object: self.owned(),
                    detail: "not installed (expected installed)".into(),
                }],
                (None, Some(_)) => vec![Difference {
                    object: self.owned(),
                    detail: "installed (expected not installed)".into(),
                }],
                (Some(e), Some(c)) => e.drift(c).iter().map(difference).collect(),
            }
        }

        fn hits(&self, _current: &State) -> Vec<Hits> {
            Vec::new()
        }

        fn boot_text(&self, desired: &FirewalldConfig) -> String {
            desired.to_json()
        }

        fn default_persist_path(&self) -> Option<PathBuf> {
            None
        }

        fn persist_notes(&self, _path: &Path, _default: bool) -> Vec<String> {
            Vec::new()
        }

        fn persists_itself(&self) -> Option<String> {
            Some(
                "firewalld keeps the change in its permanent configuration and loads it at boot: \
                 no boot file is written (--persist/--no-persist do not apply to firewalld)"
                    .into(),
            )
        }

        fn no_hits(&self) -> Option<String> {
            Some("firewalld keeps no per-rule counters".into())
        }

        fn warnings(&self) -> Vec<String> {
            match self.status(None) {
                Ok(s) => s.warnings,
                Err(e) => vec![format!("cannot read firewalld's status: {e}")],
            }
        }

        fn remove_notes(&self) -> Vec<String> {
            match self.default_zone() {
                Ok(z) => vec![format!("firewalld's default zone is {z}")],
                Err(e) => vec![format!("cannot read firewalld's default zone: {e}")],
            }
        }
    }
}

#[cfg(all(test, feature = "firewalld"))]
mod tests {
    use super::firewalld::difference;
    use backend_firewalld::Change;

    #[test]
    fn firewalld_drift_reads_as_differences() {
        let d = difference(&Change::Entries {
            ipset: "ms-web-4".into(),
            added: vec!["10.0.0.1".into()],
            removed: vec!["10.0.0.9".into(), "10.0.0.10".into()],
        });
        assert_eq!(
            d.to_string(),
            "ipset ms-web-4: 1 entries missing (10.0.0.1); 2 unexpected entries (10.0.0.9, 10.0.0.10)"
        );
        let d = difference(&Change::DefaultZone {
            from: "public".into(),
            to: "ms".into(),
        });
        assert_eq!(d.to_string(), "default zone: is public, expected ms");
        let d = difference(&Change::Runtime {
            object: "zone ms".into(),
        });
        assert_eq!(d.object, "zone ms");
    }
}
