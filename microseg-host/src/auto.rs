//! `--role auto`: compile for the one address of this host that the policy manages.
//!
//! ```
//! use microseg_core::{document::Format, ir::Target, Policy};
//! use microseg_host::auto::{auto_target, parse_ip_addr_json};
//! let p = Policy::from_str_as("version = 1\n[groups]\napp = [\"10.0.1.20-10.0.1.29\"]\n[roles.app]\n",
//!     Format::Toml, None).unwrap();
//! let addrs = parse_ip_addr_json(r#"[
//!   {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1"}]},
//!   {"ifname": "eth0", "addr_info": [{"family": "inet", "local": "10.0.1.21"},
//!                                    {"family": "inet6", "local": "fe80::1"}]}]"#).unwrap();
//! assert_eq!(auto_target(&p, &addrs).unwrap(), Target::Host("10.0.1.21".parse().unwrap()));
//! ```

use crate::HostError;
use microseg_core::ir::Target;
use microseg_core::Policy;
use serde::Serialize;
use std::net::IpAddr;
use std::process::Command;

/// One address of this host.
///
/// ```
/// let a = microseg_host::auto::LocalAddr { interface: "eth0".into(), addr: "10.0.0.1".parse().unwrap() };
/// assert_eq!(a.to_string(), "10.0.0.1 (eth0)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocalAddr {
    /// The interface it is on.
    pub interface: String,
    /// The address.
    pub addr: IpAddr,
}

impl std::fmt::Display for LocalAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.addr, self.interface)
    }
}

/// Reads the output of `ip -j addr show`.
///
/// ```
/// let a = microseg_host::auto::parse_ip_addr_json(
///     r#"[{"ifname": "eth0", "addr_info": [{"local": "2001:db8::5"}]}]"#).unwrap();
/// assert_eq!(a[0].addr.to_string(), "2001:db8::5");
/// ```
pub fn parse_ip_addr_json(text: &str) -> Result<Vec<LocalAddr>, HostError> {
    let bad = |m: String| HostError::Command {
        command: "ip -j addr show".into(),
        message: m,
    };
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(format!("unreadable JSON: {e}")))?;
    let links = v
        .as_array()
        .ok_or_else(|| bad("expected a JSON array of interfaces".into()))?;
    let mut out = Vec::new();
    for link in links {
        let interface = link
            .get("ifname")
            .and_then(|n| n.as_str())
            .unwrap_or("?")
            .to_string();
        for info in link
            .get("addr_info")
            .and_then(|a| a.as_array())
            .into_iter()
            .flatten()
        {
            let Some(local) = info.get("local").and_then(|l| l.as_str()) else {
                continue;
            };
            let addr: IpAddr = local
                .parse()
                .map_err(|_| bad(format!("{interface}: {local:?} is not an address")))?;
            out.push(LocalAddr {
                interface: interface.clone(),
                addr,
            });
        }
    }
    Ok(out)
}

/// This host's addresses (`ip -j addr show`, in the caller's network namespace).
///
/// ```no_run
/// for a in microseg_host::auto::local_addresses()? { println!("{a}"); }
/// # Ok::<(), microseg_host::HostError>(())
/// ```
pub fn local_addresses() -> Result<Vec<LocalAddr>, HostError> {
    let command = "ip -j addr show";
    let out = Command::new("ip")
        .args(["-j", "addr", "show"])
        .output()
        .map_err(|e| HostError::Command {
            command: command.into(),
            message: format!("cannot run it: {e} (is iproute2 installed?)"),
        })?;
    if !out.status.success() {
        return Err(HostError::Command {
            command: command.into(),
            message: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    parse_ip_addr_json(&String::from_utf8_lossy(&out.stdout))
}

/// The target for `--role auto`: the single address in `addrs` that holds a
/// role of the policy (loopback ignored). None or several: an error that
/// lists what was found and says what to do.
///
/// ```
/// # use microseg_core::{document::Format, Policy};
/// # use microseg_host::auto::{auto_target, LocalAddr};
/// let p = Policy::from_str_as("version = 1\n[groups]\napp = [\"10.0.1.20-10.0.1.29\"]\n[roles.app]\n",
///     Format::Toml, None).unwrap();
/// let a = |s: &str| LocalAddr { interface: "eth0".into(), addr: s.parse().unwrap() };
/// let none = auto_target(&p, &[a("192.0.2.1")]).unwrap_err().to_string();
/// assert!(none.contains("no address of this host"), "{none}");
/// let two = auto_target(&p, &[a("10.0.1.20"), a("10.0.1.21")]).unwrap_err().to_string();
/// assert!(two.contains("--host"), "{two}");
/// ```
pub fn auto_target(policy: &Policy, addrs: &[LocalAddr]) -> Result<Target, HostError> {
    let usable: Vec<&LocalAddr> = addrs.iter().filter(|a| !a.addr.is_loopback()).collect();
    let managed: Vec<(&LocalAddr, Vec<String>)> = usable
        .iter()
        .map(|a| {
            let roles: Vec<String> = policy
                .roles_of(a.addr)
                .iter()
                .map(|r| r.name.clone())
                .collect();
            (*a, roles)
        })
        .filter(|(_, roles)| !roles.is_empty())
        .collect();
    match managed.as_slice() {
        [(one, _)] => Ok(Target::Host(one.addr)),
        [] => {
            let found = if usable.is_empty() {
                "none besides loopback".to_string()
            } else {
                usable
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            Err(HostError::AutoTarget(format!(
                "no address of this host is managed by the policy (addresses found: {found}; \
                 roles: {}); choose with --role ROLE or --host IP",
                policy.roles.keys().cloned().collect::<Vec<_>>().join(", ")
            )))
        }
        many => Err(HostError::AutoTarget(format!(
            "{} addresses of this host are managed by the policy: {}; choose one with --host IP \
             (or a role with --role ROLE)",
            many.len(),
            many.iter()
                .map(|(a, roles)| format!("{a} holds {}", roles.join("+")))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use microseg_core::document::Format;

    #[test]
    fn real_ip_json_shape() {
        // Trimmed from `ip -j addr show` (iproute2 6.1).
        let text = r#"[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP"],"addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host"},{"family":"inet6","local":"::1","prefixlen":128,"scope":"host"}]},{"ifindex":2,"ifname":"eth0","link_type":"ether","addr_info":[{"family":"inet","local":"10.10.1.30","prefixlen":32,"scope":"global"},{"family":"inet6","local":"2001:db8::30","prefixlen":128,"scope":"global","nodad":true}]},{"ifindex":3,"ifname":"d0","addr_info":[]}]"#;
        let a = parse_ip_addr_json(text).unwrap();
        assert_eq!(a.len(), 4);
        assert_eq!(a[2].interface, "eth0");
        assert!(parse_ip_addr_json("{}").is_err());
        assert!(
            parse_ip_addr_json("[{\"ifname\":\"x\",\"addr_info\":[{\"local\":\"nope\"}]}]")
                .is_err()
        );
    }

    #[test]
    fn several_roles_on_one_address_is_one_target() {
        let p = Policy::from_str_as(
            "version = 1\n[groups]\nweb = [\"10.0.0.0/24\"]\napp = [\"10.0.0.5\"]\n[roles.web]\n[roles.app]\n",
            Format::Toml,
            None,
        )
        .unwrap();
        let a = LocalAddr {
            interface: "eth0".into(),
            addr: "10.0.0.5".parse().unwrap(),
        };
        assert_eq!(
            auto_target(&p, &[a]).unwrap(),
            Target::Host("10.0.0.5".parse().unwrap())
        );
    }
}
