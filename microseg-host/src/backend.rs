//! What the host needs from a backend beyond the core's `Backend` trait.

use microseg_core::backend::Backend;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
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
pub trait HostBackend: Backend<State: Serialize + DeserializeOwned + Clone> {
    /// The backend's name in records and messages (`nft`).
    fn name(&self) -> &'static str;
    /// What the policy owns, for messages (`table inet microseg`).
    fn owned(&self) -> String;
    /// The key that ties records to what they describe (the table name).
    fn key(&self) -> String;
    /// The state `desired` leaves once applied, in the form [`Backend::read`]
    /// returns (what drift is measured against).
    fn expected(&self, desired: &Self::Artefact) -> Self::State;
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
}

#[cfg(feature = "nft")]
mod nft {
    use super::*;
    use backend_nft::{NftArtefact, NftBackend, NftPlan, NftPlanKind, NftState};

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
