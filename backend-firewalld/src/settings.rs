//! firewalld's settings of zones, policies and ipsets, as read from and
//! written to D-Bus (`a{sv}` dictionaries and the ipset tuple).
//!
//! ```
//! use backend_firewalld::settings::ZoneSettings;
//! let a = ZoneSettings { rich_rules: vec!["rule b".into(), "rule a".into()], ..ZoneSettings::default() };
//! let b = ZoneSettings { rich_rules: vec!["rule a".into(), "rule b".into()], ..ZoneSettings::default() };
//! // firewalld keeps lists as sets: order never matters.
//! assert!(a.same_as(&b));
//! ```

use crate::objects::{IpsetObject, PolicyObject, ZoneObject};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use zbus::zvariant::{OwnedValue, Value};

/// A zone's settings (`getSettings2` / `update2` keys of firewalld 1.x).
///
/// ```
/// let z = backend_firewalld::settings::ZoneSettings { target: "DROP".into(), ..Default::default() };
/// assert!(z.rich_rules.is_empty() && !z.forward);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ZoneSettings {
    /// `version`.
    pub version: String,
    /// `short`.
    pub short: String,
    /// `description`.
    pub description: String,
    /// `target` (`default`, `ACCEPT`, `DROP`, `%%REJECT%%`).
    pub target: String,
    /// `services`.
    pub services: Vec<String>,
    /// `ports` (port, protocol).
    pub ports: Vec<(String, String)>,
    /// `icmp_blocks`.
    pub icmp_blocks: Vec<String>,
    /// `masquerade`.
    pub masquerade: bool,
    /// `forward_ports` (port, protocol, to-port, to-addr).
    pub forward_ports: Vec<(String, String, String, String)>,
    /// `interfaces`.
    pub interfaces: Vec<String>,
    /// `sources`.
    pub sources: Vec<String>,
    /// `rules_str`.
    pub rich_rules: Vec<String>,
    /// `protocols`.
    pub protocols: Vec<String>,
    /// `source_ports` (port, protocol).
    pub source_ports: Vec<(String, String)>,
    /// `icmp_block_inversion`.
    pub icmp_block_inversion: bool,
    /// `forward`.
    pub forward: bool,
}

/// A policy's settings (`getSettings` / `update` keys of firewalld 1.x).
///
/// ```
/// let p = backend_firewalld::settings::PolicySettings { priority: -32768, ..Default::default() };
/// assert!(p.same_runtime(&Default::default()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PolicySettings {
    /// `version`.
    pub version: String,
    /// `short`.
    pub short: String,
    /// `description`.
    pub description: String,
    /// `target` (`CONTINUE`, `ACCEPT`, `DROP`, `REJECT`).
    pub target: String,
    /// `services`.
    pub services: Vec<String>,
    /// `ports`.
    pub ports: Vec<(String, String)>,
    /// `icmp_blocks`.
    pub icmp_blocks: Vec<String>,
    /// `masquerade`.
    pub masquerade: bool,
    /// `forward_ports`.
    pub forward_ports: Vec<(String, String, String, String)>,
    /// `rich_rules`.
    pub rich_rules: Vec<String>,
    /// `protocols`.
    pub protocols: Vec<String>,
    /// `source_ports`.
    pub source_ports: Vec<(String, String)>,
    /// `priority`.
    pub priority: i32,
    /// `ingress_zones`.
    pub ingress_zones: Vec<String>,
    /// `egress_zones`.
    pub egress_zones: Vec<String>,
}

/// An ipset's settings (the `(ssssa{ss}as)` tuple).
///
/// ```
/// let s = backend_firewalld::settings::IpsetSettings { ipset_type: "hash:net".into(), ..Default::default() };
/// assert!(s.entries.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IpsetSettings {
    /// Version.
    pub version: String,
    /// Short description.
    pub short: String,
    /// Description.
    pub description: String,
    /// Type (`hash:net`).
    pub ipset_type: String,
    /// Create options (`family`, `maxelem`, …).
    pub options: BTreeMap<String, String>,
    /// Entries.
    pub entries: Vec<String>,
}

/// The D-Bus form of [`IpsetSettings`].
pub(crate) type IpsetTuple = (
    String,
    String,
    String,
    String,
    HashMap<String, String>,
    Vec<String>,
);

fn sorted<T: Ord + Clone>(v: &[T]) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort();
    v.dedup();
    v
}

fn get<T: TryFrom<OwnedValue>>(d: &HashMap<String, OwnedValue>, key: &str) -> Option<T> {
    d.get(key)
        .and_then(|v| v.try_clone().ok())
        .and_then(|v| T::try_from(v).ok())
}

type Dict = HashMap<&'static str, Value<'static>>;

impl ZoneSettings {
    /// The settings an emitted zone should have; `interfaces` and `sources`
    /// are not the policy's business and are carried over from `current`.
    ///
    /// ```
    /// # use backend_firewalld::{objects::ZoneObject, settings::ZoneSettings};
    /// let z = ZoneObject { name: "t".into(), short: "s".into(), description: "d".into(), target: "DROP".into(),
    ///     forward: false, rich_rules: vec![] };
    /// let cur = ZoneSettings { interfaces: vec!["eth0".into()], services: vec!["ssh".into()], ..Default::default() };
    /// let want = ZoneSettings::from_object(&z, "d".into(), Some(&cur));
    /// assert_eq!(want.interfaces, ["eth0"]);
    /// assert!(want.services.is_empty());
    /// ```
    pub fn from_object(
        z: &ZoneObject,
        description: String,
        current: Option<&ZoneSettings>,
    ) -> ZoneSettings {
        ZoneSettings {
            short: z.short.clone(),
            description,
            target: z.target.clone(),
            rich_rules: z.rich_rules.clone(),
            forward: z.forward,
            interfaces: current.map(|c| c.interfaces.clone()).unwrap_or_default(),
            sources: current.map(|c| c.sources.clone()).unwrap_or_default(),
            ..ZoneSettings::default()
        }
    }

    /// Equal as firewalld sees it (lists compared as sets).
    ///
    /// ```
    /// # use backend_firewalld::settings::ZoneSettings;
    /// assert!(!ZoneSettings { target: "DROP".into(), ..Default::default() }.same_as(&ZoneSettings::default()));
    /// ```
    pub fn same_as(&self, o: &ZoneSettings) -> bool {
        self.version == o.version
            && self.short == o.short
            && self.description == o.description
            && self.target == o.target
            && sorted(&self.interfaces) == sorted(&o.interfaces)
            && sorted(&self.sources) == sorted(&o.sources)
            && self.same_runtime(o)
    }

    /// Equal in what a runtime update (`setZoneSettings2`) can change.
    ///
    /// ```
    /// # use backend_firewalld::settings::ZoneSettings;
    /// let a = ZoneSettings { target: "DROP".into(), ..Default::default() };
    /// assert!(a.same_runtime(&ZoneSettings::default()));
    /// ```
    pub fn same_runtime(&self, o: &ZoneSettings) -> bool {
        sorted(&self.services) == sorted(&o.services)
            && sorted(&self.ports) == sorted(&o.ports)
            && sorted(&self.icmp_blocks) == sorted(&o.icmp_blocks)
            && self.masquerade == o.masquerade
            && sorted(&self.forward_ports) == sorted(&o.forward_ports)
            && sorted(&self.rich_rules) == sorted(&o.rich_rules)
            && sorted(&self.protocols) == sorted(&o.protocols)
            && sorted(&self.source_ports) == sorted(&o.source_ports)
            && self.icmp_block_inversion == o.icmp_block_inversion
            && self.forward == o.forward
    }

    pub(crate) fn from_dict(d: &HashMap<String, OwnedValue>) -> ZoneSettings {
        ZoneSettings {
            version: get(d, "version").unwrap_or_default(),
            short: get(d, "short").unwrap_or_default(),
            description: get(d, "description").unwrap_or_default(),
            target: get(d, "target").unwrap_or_default(),
            services: get(d, "services").unwrap_or_default(),
            ports: get(d, "ports").unwrap_or_default(),
            icmp_blocks: get(d, "icmp_blocks").unwrap_or_default(),
            masquerade: get(d, "masquerade").unwrap_or_default(),
            forward_ports: get(d, "forward_ports").unwrap_or_default(),
            interfaces: get(d, "interfaces").unwrap_or_default(),
            sources: get(d, "sources").unwrap_or_default(),
            rich_rules: get(d, "rules_str").unwrap_or_default(),
            protocols: get(d, "protocols").unwrap_or_default(),
            source_ports: get(d, "source_ports").unwrap_or_default(),
            icmp_block_inversion: get(d, "icmp_block_inversion").unwrap_or_default(),
            forward: get(d, "forward").unwrap_or_default(),
        }
    }

    /// Every key, for `config.addZone2` and `config.zone.update2`.
    pub(crate) fn permanent_dict(&self) -> Dict {
        let mut d = self.runtime_dict();
        d.insert("version", Value::from(self.version.clone()));
        d.insert("short", Value::from(self.short.clone()));
        d.insert("description", Value::from(self.description.clone()));
        d.insert("target", Value::from(self.target.clone()));
        d.insert("interfaces", Value::from(self.interfaces.clone()));
        d.insert("sources", Value::from(self.sources.clone()));
        d
    }

    /// The keys `zone.setZoneSettings2` can change at runtime (not bindings).
    pub(crate) fn runtime_dict(&self) -> Dict {
        let mut d = Dict::new();
        d.insert("services", Value::from(self.services.clone()));
        d.insert("ports", Value::from(self.ports.clone()));
        d.insert("icmp_blocks", Value::from(self.icmp_blocks.clone()));
        d.insert("masquerade", Value::from(self.masquerade));
        d.insert("forward_ports", Value::from(self.forward_ports.clone()));
        d.insert("rules_str", Value::from(self.rich_rules.clone()));
        d.insert("protocols", Value::from(self.protocols.clone()));
        d.insert("source_ports", Value::from(self.source_ports.clone()));
        d.insert(
            "icmp_block_inversion",
            Value::from(self.icmp_block_inversion),
        );
        d.insert("forward", Value::from(self.forward));
        d
    }
}

impl PolicySettings {
    /// The settings an emitted policy should have.
    ///
    /// ```
    /// # use backend_firewalld::{objects::PolicyObject, settings::PolicySettings};
    /// let p = PolicyObject { name: "t-out".into(), short: "s".into(), description: "d".into(), target: "DROP".into(),
    ///     priority: -32768, ingress_zones: vec!["HOST".into()], egress_zones: vec!["ANY".into()], rich_rules: vec![] };
    /// assert_eq!(PolicySettings::from_object(&p).priority, -32768);
    /// ```
    pub fn from_object(p: &PolicyObject) -> PolicySettings {
        PolicySettings {
            short: p.short.clone(),
            description: p.description.clone(),
            target: p.target.clone(),
            rich_rules: p.rich_rules.clone(),
            priority: p.priority,
            ingress_zones: p.ingress_zones.clone(),
            egress_zones: p.egress_zones.clone(),
            ..PolicySettings::default()
        }
    }

    /// Equal as firewalld sees it (lists compared as sets).
    ///
    /// ```
    /// # use backend_firewalld::settings::PolicySettings;
    /// assert!(PolicySettings::default().same_as(&PolicySettings::default()));
    /// ```
    pub fn same_as(&self, o: &PolicySettings) -> bool {
        self.version == o.version
            && self.short == o.short
            && self.description == o.description
            && self.target == o.target
            && self.priority == o.priority
            && self.same_runtime(o)
    }

    /// Equal in what a runtime update (`setPolicySettings`) can change.
    ///
    /// ```
    /// # use backend_firewalld::settings::PolicySettings;
    /// let a = PolicySettings { priority: -1, ..Default::default() };
    /// assert!(a.same_runtime(&PolicySettings::default()));
    /// ```
    pub fn same_runtime(&self, o: &PolicySettings) -> bool {
        sorted(&self.services) == sorted(&o.services)
            && sorted(&self.ports) == sorted(&o.ports)
            && sorted(&self.icmp_blocks) == sorted(&o.icmp_blocks)
            && self.masquerade == o.masquerade
            && sorted(&self.forward_ports) == sorted(&o.forward_ports)
            && sorted(&self.rich_rules) == sorted(&o.rich_rules)
            && sorted(&self.protocols) == sorted(&o.protocols)
            && sorted(&self.source_ports) == sorted(&o.source_ports)
            && sorted(&self.ingress_zones) == sorted(&o.ingress_zones)
            && sorted(&self.egress_zones) == sorted(&o.egress_zones)
    }

    pub(crate) fn from_dict(d: &HashMap<String, OwnedValue>) -> PolicySettings {
        PolicySettings {
            version: get(d, "version").unwrap_or_default(),
            short: get(d, "short").unwrap_or_default(),
            description: get(d, "description").unwrap_or_default(),
            target: get(d, "target").unwrap_or_default(),
            services: get(d, "services").unwrap_or_default(),
            ports: get(d, "ports").unwrap_or_default(),
            icmp_blocks: get(d, "icmp_blocks").unwrap_or_default(),
            masquerade: get(d, "masquerade").unwrap_or_default(),
            forward_ports: get(d, "forward_ports").unwrap_or_default(),
            rich_rules: get(d, "rich_rules").unwrap_or_default(),
            protocols: get(d, "protocols").unwrap_or_default(),
            source_ports: get(d, "source_ports").unwrap_or_default(),
            priority: get(d, "priority").unwrap_or(-1),
            ingress_zones: get(d, "ingress_zones").unwrap_or_default(),
            egress_zones: get(d, "egress_zones").unwrap_or_default(),
        }
    }

    /// Every key, for `config.addPolicy` and `config.policy.update`.
    pub(crate) fn permanent_dict(&self) -> Dict {
        let mut d = self.runtime_dict();
        d.insert("version", Value::from(self.version.clone()));
        d.insert("short", Value::from(self.short.clone()));
        d.insert("description", Value::from(self.description.clone()));
        d.insert("target", Value::from(self.target.clone()));
        d.insert("priority", Value::from(self.priority));
        d
    }

    /// The keys `policy.setPolicySettings` can change at runtime.
    pub(crate) fn runtime_dict(&self) -> Dict {
        let mut d = Dict::new();
        d.insert("services", Value::from(self.services.clone()));
        d.insert("ports", Value::from(self.ports.clone()));
        d.insert("icmp_blocks", Value::from(self.icmp_blocks.clone()));
        d.insert("masquerade", Value::from(self.masquerade));
        d.insert("forward_ports", Value::from(self.forward_ports.clone()));
        d.insert("rich_rules", Value::from(self.rich_rules.clone()));
        d.insert("protocols", Value::from(self.protocols.clone()));
        d.insert("source_ports", Value::from(self.source_ports.clone()));
        d.insert("ingress_zones", Value::from(self.ingress_zones.clone()));
        d.insert("egress_zones", Value::from(self.egress_zones.clone()));
        d
    }
}

impl IpsetSettings {
    /// The settings of an emitted ipset.
    ///
    /// ```
    /// # use backend_firewalld::{objects::IpsetObject, settings::IpsetSettings};
    /// let s = IpsetObject { name: "t-web-4".into(), short: "s".into(), description: "d".into(),
    ///     ipset_type: "hash:net".into(), options: [("family".to_string(), "inet".to_string())].into(),
    ///     entries: vec!["10.0.0.0/24".into()] };
    /// assert_eq!(IpsetSettings::from_object(&s).entries, ["10.0.0.0/24"]);
    /// ```
    pub fn from_object(s: &IpsetObject) -> IpsetSettings {
        IpsetSettings {
            version: String::new(),
            short: s.short.clone(),
            description: s.description.clone(),
            ipset_type: s.ipset_type.clone(),
            options: s.options.clone(),
            entries: s.entries.clone(),
        }
    }

    /// Equal as firewalld sees it (entries compared as sets).
    ///
    /// ```
    /// # use backend_firewalld::settings::IpsetSettings;
    /// let a = IpsetSettings { entries: vec!["b".into(), "a".into()], ..Default::default() };
    /// let b = IpsetSettings { entries: vec!["a".into(), "b".into()], ..Default::default() };
    /// assert!(a.same_as(&b));
    /// ```
    pub fn same_as(&self, o: &IpsetSettings) -> bool {
        self.same_except_entries(o) && self.same_entries(o)
    }

    /// Equal apart from the entries.
    ///
    /// ```
    /// # use backend_firewalld::settings::IpsetSettings;
    /// let a = IpsetSettings { entries: vec!["a".into()], ..Default::default() };
    /// assert!(a.same_except_entries(&IpsetSettings::default()));
    /// ```
    pub fn same_except_entries(&self, o: &IpsetSettings) -> bool {
        self.version == o.version
            && self.short == o.short
            && self.description == o.description
            && self.ipset_type == o.ipset_type
            && self.options == o.options
    }

    /// Same entries (as sets).
    ///
    /// ```
    /// # use backend_firewalld::settings::IpsetSettings;
    /// assert!(IpsetSettings::default().same_entries(&IpsetSettings::default()));
    /// ```
    pub fn same_entries(&self, o: &IpsetSettings) -> bool {
        sorted(&self.entries) == sorted(&o.entries)
    }

    pub(crate) fn from_tuple(t: IpsetTuple) -> IpsetSettings {
        IpsetSettings {
            version: t.0,
            short: t.1,
            description: t.2,
            ipset_type: t.3,
            options: t.4.into_iter().collect(),
            entries: t.5,
        }
    }

    pub(crate) fn to_tuple(&self) -> IpsetTuple {
        (
            self.version.clone(),
            self.short.clone(),
            self.description.clone(),
            self.ipset_type.clone(),
            self.options.clone().into_iter().collect(),
            self.entries.clone(),
        )
    }
}
