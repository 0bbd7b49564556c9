//! The policy document as written: the serde data model shared by TOML, JSON and YAML.
//!
//! ```
//! use microseg_core::doc::PolicyDoc;
//! let doc: PolicyDoc = toml::from_str("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n").unwrap();
//! assert_eq!(doc.groups["web"], vec!["10.0.0.1".to_string()]);
//! let again: PolicyDoc = toml::from_str(&doc.to_toml()).unwrap();
//! assert_eq!(doc, again);
//! ```
//!
//! Loading a policy goes through [`crate::document::Node`] (for positions and
//! for reporting every problem at once); this type is what the loader
//! produces and what serialises back to any format.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The policy document.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDoc {
    /// Format version, must be 1.
    pub version: i64,
    /// nftables table name / firewalld prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Address groups.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, Vec<String>>,
    /// Services.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub services: BTreeMap<String, Vec<String>>,
    /// Roles.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: BTreeMap<String, RoleDoc>,
    /// Flows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flows: Vec<FlowDoc>,
    /// Baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineDoc>,
    /// Hardening.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardening: Option<HardeningDoc>,
}

/// A role as written.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleDoc {
    /// Group names or address entries; default: the group of the role's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// Egress port specs replacing the baseline's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<String>>,
}

/// One endpoint or a list of endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single endpoint.
    One(String),
    /// A list.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The endpoints as a slice-like vector.
    pub fn items(&self) -> Vec<&str> {
        match self {
            OneOrMany::One(s) => vec![s.as_str()],
            OneOrMany::Many(v) => v.iter().map(|s| s.as_str()).collect(),
        }
    }
}

/// A flow as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowDoc {
    /// Optional name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Sources.
    pub from: OneOrMany,
    /// Destinations.
    pub to: OneOrMany,
    /// Service names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// Port specs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// `allow` (default), `deny` or `reject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Log matching new connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<bool>,
}

/// The baseline as written.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineDoc {
    /// Accept ICMP/ICMPv6 (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp: Option<bool>,
    /// Egress port specs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<String>>,
    /// Drop logging: settings, or `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<LogDoc>,
    /// `drop` (default) or `reject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
}

/// `log = false` or a table of settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LogDoc {
    /// `false` (off) or `true` (defaults).
    Switch(bool),
    /// Settings.
    Settings(LogSettingsDoc),
}

/// Log settings as written.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettingsDoc {
    /// Prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Rate, `N/second|minute|hour|day`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    /// Burst in packets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<i64>,
    /// NFLOG group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<i64>,
    /// Syslog level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
}

/// `hardening = true` or a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HardeningDoc {
    /// `true`: the guide's settings; `false`: leave sysctl alone.
    Switch(bool),
    /// Individual settings.
    Settings(HardeningSettingsDoc),
}

/// Hardening settings as written.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardeningSettingsDoc {
    /// ICMP redirects accepted/sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirects: Option<bool>,
    /// `strict`, `loose` or `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rp_filter: Option<String>,
    /// TCP SYN cookies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syncookies: Option<bool>,
}

impl PolicyDoc {
    /// The document as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("a policy document always serialises to TOML")
    }

    /// The document as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a policy document always serialises to JSON")
    }
}
