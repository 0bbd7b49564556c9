//! The firewalld D-Bus API (firewalld.dbus(5)) over a blocking zbus connection.
//!
//! Every call is counted and, when it fails, named in the error together with
//! firewalld's own error text (`INVALID_RULE: …`).

use crate::settings::{IpsetSettings, IpsetTuple, PolicySettings, ZoneSettings};
use crate::FirewalldError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use zbus::blocking::Connection;
use zbus::zvariant::{DynamicType, OwnedObjectPath, OwnedValue, Value};

/// firewalld's well-known bus name.
pub const BUS_NAME: &str = "org.fedoraproject.FirewallD1";
const PATH: &str = "/org/fedoraproject/FirewallD1";
const CONFIG_PATH: &str = "/org/fedoraproject/FirewallD1/config";
const IF: &str = "org.fedoraproject.FirewallD1";
const IF_ZONE: &str = "org.fedoraproject.FirewallD1.zone";
const IF_POLICY: &str = "org.fedoraproject.FirewallD1.policy";
const IF_IPSET: &str = "org.fedoraproject.FirewallD1.ipset";
const IF_CONFIG: &str = "org.fedoraproject.FirewallD1.config";
const IF_CONFIG_ZONE: &str = "org.fedoraproject.FirewallD1.config.zone";
const IF_CONFIG_POLICY: &str = "org.fedoraproject.FirewallD1.config.policy";
const IF_CONFIG_IPSET: &str = "org.fedoraproject.FirewallD1.config.ipset";
const IF_PROPERTIES: &str = "org.freedesktop.DBus.Properties";
/// The default system bus socket (when `DBUS_SYSTEM_BUS_ADDRESS` is unset).
pub const DEFAULT_SYSTEM_BUS: &str = "unix:path=/run/dbus/system_bus_socket";
/// How long one call may take (a reload of a large configuration is slow).
const CALL_TIMEOUT: Duration = Duration::from_secs(300);

type Dict = HashMap<&'static str, Value<'static>>;

/// A connection to the bus firewalld is on.
pub(crate) struct Client {
    conn: Connection,
    address: String,
    calls: AtomicU64,
}

impl Client {
    /// Connects to `address`, or to the system bus (`DBUS_SYSTEM_BUS_ADDRESS` honoured).
    pub(crate) fn connect(address: Option<&str>) -> Result<Client, FirewalldError> {
        let shown = match address {
            Some(a) => a.to_string(),
            None => std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
                .unwrap_or_else(|_| DEFAULT_SYSTEM_BUS.to_string()),
        };
        let err = |source: zbus::Error| FirewalldError::Connect {
            address: shown.clone(),
            message: source.to_string(),
        };
        let builder = match address {
            Some(a) => zbus::blocking::connection::Builder::address(a).map_err(err)?,
            None => zbus::blocking::connection::Builder::system().map_err(err)?,
        };
        let conn = builder.method_timeout(CALL_TIMEOUT).build().map_err(err)?;
        Ok(Client {
            conn,
            address: shown,
            calls: AtomicU64::new(0),
        })
    }

    /// The bus address.
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// D-Bus calls made so far.
    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn call<B, R>(
        &self,
        dest: &str,
        path: &str,
        iface: &str,
        method: &str,
        what: &str,
        body: &B,
    ) -> Result<R, FirewalldError>
    where
        B: Serialize + DynamicType,
        R: DeserializeOwned + zbus::zvariant::Type,
    {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let name = || {
            let short = iface
                .strip_prefix("org.fedoraproject.FirewallD1.")
                .unwrap_or(iface);
            if what.is_empty() {
                format!("{short}.{method}")
            } else {
                format!("{short}.{method}({what})")
            }
        };
        let reply = self
            .conn
            .call_method(Some(dest), path, Some(iface), method, body)
            .map_err(|e| match e {
                zbus::Error::MethodError(ename, text, _) => FirewalldError::Call {
                    call: name(),
                    message: text.unwrap_or_else(|| ename.to_string()),
                },
                other => FirewalldError::Call {
                    call: name(),
                    message: other.to_string(),
                },
            })?;
        reply
            .body()
            .deserialize::<R>()
            .map_err(|e| FirewalldError::Reply {
                call: name(),
                detail: e.to_string(),
            })
    }

    fn fw<B, R>(
        &self,
        path: &str,
        iface: &str,
        method: &str,
        what: &str,
        body: &B,
    ) -> Result<R, FirewalldError>
    where
        B: Serialize + DynamicType,
        R: DeserializeOwned + zbus::zvariant::Type,
    {
        self.call(BUS_NAME, path, iface, method, what, body)
    }

    /// `org.freedesktop.DBus.NameHasOwner(org.fedoraproject.FirewallD1)`.
    pub(crate) fn firewalld_on_bus(&self) -> Result<bool, FirewalldError> {
        self.call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "NameHasOwner",
            BUS_NAME,
            &(BUS_NAME,),
        )
    }

    fn property(&self, path: &str, iface: &str, name: &str) -> Result<OwnedValue, FirewalldError> {
        self.fw(
            path,
            IF_PROPERTIES,
            "Get",
            &format!("{iface}.{name}"),
            &(iface, name),
        )
    }

    /// The daemon's `state` property (`RUNNING`, `INIT`, `FAILED`).
    pub(crate) fn state(&self) -> Result<String, FirewalldError> {
        let v = self.property(PATH, IF, "state")?;
        String::try_from(v).map_err(|e| FirewalldError::Reply {
            call: "Properties.Get(state)".into(),
            detail: e.to_string(),
        })
    }

    /// A string property of firewalld.conf (`DefaultZone`, `RFC3964_IPv4`, `FirewallBackend`…).
    pub(crate) fn conf(&self, name: &str) -> Result<String, FirewalldError> {
        let v = self.property(CONFIG_PATH, IF_CONFIG, name)?;
        String::try_from(v).map_err(|e| FirewalldError::Reply {
            call: format!("Properties.Get({name})"),
            detail: e.to_string(),
        })
    }

    /// The runtime default zone.
    pub(crate) fn default_zone(&self) -> Result<String, FirewalldError> {
        self.fw(PATH, IF, "getDefaultZone", "", &())
    }

    /// Sets the default zone (runtime and firewalld.conf).
    pub(crate) fn set_default_zone(&self, zone: &str) -> Result<(), FirewalldError> {
        self.fw(PATH, IF, "setDefaultZone", zone, &(zone,))
    }

    /// Reloads the permanent configuration into the runtime.
    pub(crate) fn reload(&self) -> Result<(), FirewalldError> {
        self.fw(PATH, IF, "reload", "", &())
    }

    /// Zones with interfaces or sources: zone → {"interfaces": [..], "sources": [..]}.
    pub(crate) fn active_zones(
        &self,
    ) -> Result<HashMap<String, HashMap<String, Vec<String>>>, FirewalldError> {
        self.fw(PATH, IF_ZONE, "getActiveZones", "", &())
    }

    // -- permanent configuration --

    pub(crate) fn zone_names(&self) -> Result<Vec<String>, FirewalldError> {
        self.fw(CONFIG_PATH, IF_CONFIG, "getZoneNames", "", &())
    }

    fn zone_path(&self, name: &str) -> Result<OwnedObjectPath, FirewalldError> {
        self.fw(CONFIG_PATH, IF_CONFIG, "getZoneByName", name, &(name,))
    }

    pub(crate) fn zone(&self, name: &str) -> Result<ZoneSettings, FirewalldError> {
        let p = self.zone_path(name)?;
        let d: HashMap<String, OwnedValue> =
            self.fw(p.as_str(), IF_CONFIG_ZONE, "getSettings2", name, &())?;
        Ok(ZoneSettings::from_dict(&d))
    }

    pub(crate) fn add_zone(&self, name: &str, s: &ZoneSettings) -> Result<(), FirewalldError> {
        let _: OwnedObjectPath = self.fw(
            CONFIG_PATH,
            IF_CONFIG,
            "addZone2",
            name,
            &(name, s.permanent_dict()),
        )?;
        Ok(())
    }

    pub(crate) fn update_zone(&self, name: &str, s: &ZoneSettings) -> Result<(), FirewalldError> {
        let p = self.zone_path(name)?;
        self.fw(
            p.as_str(),
            IF_CONFIG_ZONE,
            "update2",
            name,
            &(s.permanent_dict(),),
        )
    }

    pub(crate) fn remove_zone(&self, name: &str) -> Result<(), FirewalldError> {
        let p = self.zone_path(name)?;
        self.fw(p.as_str(), IF_CONFIG_ZONE, "remove", name, &())
    }

    /// `config.zone.addRichRule` (one rule; for the one-call-per-item baseline).
    pub(crate) fn add_zone_rich_rule(&self, name: &str, rule: &str) -> Result<(), FirewalldError> {
        let p = self.zone_path(name)?;
        self.fw(p.as_str(), IF_CONFIG_ZONE, "addRichRule", name, &(rule,))
    }

    pub(crate) fn policy_names(&self) -> Result<Vec<String>, FirewalldError> {
        self.fw(CONFIG_PATH, IF_CONFIG, "getPolicyNames", "", &())
    }

    fn policy_path(&self, name: &str) -> Result<OwnedObjectPath, FirewalldError> {
        self.fw(CONFIG_PATH, IF_CONFIG, "getPolicyByName", name, &(name,))
    }

    pub(crate) fn policy(&self, name: &str) -> Result<PolicySettings, FirewalldError> {
        let p = self.policy_path(name)?;
        let d: HashMap<String, OwnedValue> =
            self.fw(p.as_str(), IF_CONFIG_POLICY, "getSettings", name, &())?;
        Ok(PolicySettings::from_dict(&d))
    }

    pub(crate) fn add_policy(&self, name: &str, s: &PolicySettings) -> Result<(), FirewalldError> {
        let _: OwnedObjectPath = self.fw(
            CONFIG_PATH,
            IF_CONFIG,
            "addPolicy",
            name,
            &(name, s.permanent_dict()),
        )?;
        Ok(())
    }

    pub(crate) fn update_policy(
        &self,
        name: &str,
        s: &PolicySettings,
    ) -> Result<(), FirewalldError> {
        let p = self.policy_path(name)?;
        self.fw(
            p.as_str(),
            IF_CONFIG_POLICY,
            "update",
            name,
            &(s.permanent_dict(),),
        )
    }

    pub(crate) fn remove_policy(&self, name: &str) -> Result<(), FirewalldError> {
        let p = self.policy_path(name)?;
        self.fw(p.as_str(), IF_CONFIG_POLICY, "remove", name, &())
    }

    pub(crate) fn ipset_names(&self) -> Result<Vec<String>, FirewalldError> {
        self.fw(CONFIG_PATH, IF_CONFIG, "getIPSetNames", "", &())
    }

    fn ipset_path(&self, name: &str) -> Result<OwnedObjectPath, FirewalldError> {
        self.fw(CONFIG_PATH, IF_CONFIG, "getIPSetByName", name, &(name,))
    }

    pub(crate) fn ipset(&self, name: &str) -> Result<IpsetSettings, FirewalldError> {
        let p = self.ipset_path(name)?;
        let t: IpsetTuple = self.fw(p.as_str(), IF_CONFIG_IPSET, "getSettings", name, &())?;
        Ok(IpsetSettings::from_tuple(t))
    }

    pub(crate) fn add_ipset(&self, name: &str, s: &IpsetSettings) -> Result<(), FirewalldError> {
        let _: OwnedObjectPath = self.fw(
            CONFIG_PATH,
            IF_CONFIG,
            "addIPSet",
            name,
            &(name, s.to_tuple()),
        )?;
        Ok(())
    }

    pub(crate) fn update_ipset(&self, name: &str, s: &IpsetSettings) -> Result<(), FirewalldError> {
        let p = self.ipset_path(name)?;
        self.fw(
            p.as_str(),
            IF_CONFIG_IPSET,
            "update",
            name,
            &(s.to_tuple(),),
        )
    }

    pub(crate) fn remove_ipset(&self, name: &str) -> Result<(), FirewalldError> {
        let p = self.ipset_path(name)?;
        self.fw(p.as_str(), IF_CONFIG_IPSET, "remove", name, &())
    }

    /// `config.ipset.addEntry` (one entry; for the one-call-per-item baseline).
    pub(crate) fn add_ipset_entry(&self, name: &str, entry: &str) -> Result<(), FirewalldError> {
        let p = self.ipset_path(name)?;
        self.fw(p.as_str(), IF_CONFIG_IPSET, "addEntry", name, &(entry,))
    }

    // -- runtime --

    pub(crate) fn runtime_zones(&self) -> Result<Vec<String>, FirewalldError> {
        self.fw(PATH, IF_ZONE, "getZones", "", &())
    }

    pub(crate) fn runtime_zone(&self, name: &str) -> Result<ZoneSettings, FirewalldError> {
        let d: HashMap<String, OwnedValue> =
            self.fw(PATH, IF_ZONE, "getZoneSettings2", name, &(name,))?;
        Ok(ZoneSettings::from_dict(&d))
    }

    pub(crate) fn set_runtime_zone(
        &self,
        name: &str,
        s: &ZoneSettings,
    ) -> Result<(), FirewalldError> {
        let d: Dict = s.runtime_dict();
        self.fw(PATH, IF_ZONE, "setZoneSettings2", name, &(name, d))
    }

    pub(crate) fn runtime_policies(&self) -> Result<Vec<String>, FirewalldError> {
        self.fw(PATH, IF_POLICY, "getPolicies", "", &())
    }

    pub(crate) fn runtime_policy(&self, name: &str) -> Result<PolicySettings, FirewalldError> {
        let d: HashMap<String, OwnedValue> =
            self.fw(PATH, IF_POLICY, "getPolicySettings", name, &(name,))?;
        Ok(PolicySettings::from_dict(&d))
    }

    pub(crate) fn set_runtime_policy(
        &self,
        name: &str,
        s: &PolicySettings,
    ) -> Result<(), FirewalldError> {
        let d: Dict = s.runtime_dict();
        self.fw(PATH, IF_POLICY, "setPolicySettings", name, &(name, d))
    }

    pub(crate) fn runtime_ipsets(&self) -> Result<Vec<String>, FirewalldError> {
        self.fw(PATH, IF_IPSET, "getIPSets", "", &())
    }

    pub(crate) fn runtime_ipset(&self, name: &str) -> Result<IpsetSettings, FirewalldError> {
        let t: IpsetTuple = self.fw(PATH, IF_IPSET, "getIPSetSettings", name, &(name,))?;
        Ok(IpsetSettings::from_tuple(t))
    }

    pub(crate) fn set_runtime_entries(
        &self,
        name: &str,
        entries: &[String],
    ) -> Result<(), FirewalldError> {
        self.fw(PATH, IF_IPSET, "setEntries", name, &(name, entries))
    }
}
