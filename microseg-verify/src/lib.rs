//! Prove a policy on the real kernel: one network namespace per test host,
//! the compiled rules installed by a backend, real connections, and the
//! observed outcome of every probe held against the reference semantics.
//!
//! ```no_run
//! use microseg_core::Policy;
//! use microseg_verify::{plan_hosts, verify, Installer};
//! # fn install(_: &microseg_lab::Lab, _: &str, _: &microseg_core::ir::HostRuleset) -> Result<(), String> { Ok(()) }
//! let policy = Policy::from_file("examples/three-tier.toml").unwrap();
//! let report = verify(&policy, &install).unwrap();
//! println!("{}", report.to_text());
//! assert!(report.ok());
//! # let _ = plan_hosts;
//! ```
//!
//! Test hosts: one per role (an address that holds exactly that role where
//! possible, with an IPv6 address too when the role has one), one per named
//! group used in flows, and one outside host (a documentation address in no
//! group). Ports: both ends of every port range of the flows and egress lists,
//! plus closed control ports; ICMP and ICMPv6. Expected outcome per probe:
//! [`Policy::decide`]; observed: the connection opened (`accept`), was refused
//! (`reject`) or timed out / failed locally (`drop`). TCP, and UDP denied by
//! the receiver, must match the verdict exactly; ICMP, and UDP denied by the
//! sender (whose own reject fails the send like a drop), must match
//! allowed/denied.
#![forbid(unsafe_code)]

use microseg_core::addr::AddrSet;
use microseg_core::classes::representative;
use microseg_core::ir::{compile, HostRuleset, Target};
use microseg_core::ports::Proto;
use microseg_core::semantics::{Connection, Verdict};
use microseg_core::{Policy, Term};
use microseg_lab::{HostSpec, Lab, Outcome, Probe, Service};
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;

/// Errors of a verification run.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The lab could not be built or probed.
    #[error("test network: {0}")]
    Lab(#[from] microseg_lab::LabError),
    /// Compiling a ruleset failed.
    #[error("compile: {0}")]
    Compile(#[from] microseg_core::Error),
    /// The backend could not install a ruleset into a test host.
    #[error("installing the rules of {host} failed: {message}")]
    Install {
        /// The test host.
        host: String,
        /// The backend's error.
        message: String,
    },
    /// The policy gives nothing to test.
    #[error("{0}")]
    Nothing(String),
}

/// Installs a compiled ruleset into one test host of a lab (a backend's job).
pub trait Installer {
    /// Installs `ruleset` into `host` of `lab`.
    fn install(&self, lab: &Lab, host: &str, ruleset: &HostRuleset) -> Result<(), String>;
}

impl<F> Installer for F
where
    F: Fn(&Lab, &str, &HostRuleset) -> Result<(), String>,
{
    fn install(&self, lab: &Lab, host: &str, ruleset: &HostRuleset) -> Result<(), String> {
        self(lab, host, ruleset)
    }
}

/// One planned test host.
#[derive(Debug, Clone, Serialize)]
pub struct TestHost {
    /// Host name (role or group name, or `outside`).
    pub name: String,
    /// Its addresses (one IPv4 and/or one IPv6).
    pub addrs: Vec<IpAddr>,
    /// What it gets installed, if managed.
    #[serde(skip)]
    pub target: Option<Target>,
}

/// Picks the test hosts of a policy.
pub fn plan_hosts(policy: &Policy) -> Result<Vec<TestHost>, VerifyError> {
    let mut hosts: Vec<TestHost> = Vec::new();
    let mut taken: BTreeSet<IpAddr> = BTreeSet::new();
    let pick = |set: &AddrSet, prefer: &AddrSet, taken: &mut BTreeSet<IpAddr>| -> Vec<IpAddr> {
        let mut out = Vec::new();
        for fam in microseg_core::addr::Family::BOTH {
            let all = set.only(fam);
            let preferred = all.intersect(prefer);
            let mut chosen = None;
            for candidates in [&preferred, &all] {
                let mut c = candidates.clone();
                for t in taken.iter() {
                    c = c.difference(&AddrSet::single(*t));
                }
                if let Some(a) = representative(&c, None) {
                    chosen = Some(a);
                    break;
                }
            }
            if let Some(a) = chosen {
                taken.insert(a);
                out.push(a);
            }
        }
        out
    };
    // Roles: prefer addresses that hold exactly this role.
    for (name, role) in &policy.roles {
        let others = policy
            .roles
            .values()
            .filter(|r| r.name != *name)
            .fold(AddrSet::default(), |acc, r| acc.union(&r.hosts));
        let only_this = role.hosts.difference(&others);
        let addrs = pick(&role.hosts, &only_this, &mut taken);
        if addrs.is_empty() {
            continue;
        }
        let single = addrs.iter().all(|a| policy.roles_of(*a).len() == 1);
        let (addrs, target) = if single {
            (addrs, Some(Target::Role(name.clone())))
        } else {
            // A multi-role host: per-host rules for one address.
            (vec![addrs[0]], Some(Target::Host(addrs[0])))
        };
        hosts.push(TestHost {
            name: name.clone(),
            addrs,
            target,
        });
    }
    // Named groups used in flows that are not roles: prefer unmanaged addresses.
    let mut used: BTreeSet<String> = BTreeSet::new();
    for f in &policy.flows {
        for t in f.from.terms.iter().chain(&f.to.terms) {
            if let Term::Group(g) = t {
                if !policy.roles.contains_key(g) {
                    used.insert(g.clone());
                }
            }
        }
    }
    let unmanaged = AddrSet::any().difference(&policy.managed);
    for g in used {
        let set = &policy.groups[&g];
        let addrs = pick(set, &unmanaged, &mut taken);
        if addrs.is_empty() {
            continue;
        }
        // A group host with a managed address gets that address alone and the
        // rules of that host; otherwise it is unmanaged and keeps both families.
        let managed = addrs.iter().copied().find(|a| policy.managed.contains(*a));
        let (addrs, target) = match managed {
            Some(a) => (vec![a], Some(Target::Host(a))),
            None => (addrs, None),
        };
        hosts.push(TestHost {
            name: g,
            addrs,
            target,
        });
    }
    // The outside world: documentation addresses in no group or role.
    let named = policy
        .groups
        .values()
        .fold(policy.managed.clone(), |acc, g| acc.union(g));
    let mut doc = AddrSet::default();
    for e in [
        "203.0.113.0/24",
        "198.51.100.0/24",
        "192.0.2.0/24",
        "2001:db8:ffff:ffff::/64",
        "2001:db8::/32",
    ] {
        doc.add(&microseg_core::addr::parse_addr_entry(e).expect("valid"));
    }
    let outside = doc.difference(&named);
    let addrs = pick(&outside, &outside, &mut taken);
    if !addrs.is_empty() {
        hosts.push(TestHost {
            name: "outside".into(),
            addrs,
            target: None,
        });
    }
    if hosts.iter().filter(|h| h.target.is_some()).count() == 0 {
        return Err(VerifyError::Nothing(
            "the policy has no role with hosts to test".into(),
        ));
    }
    Ok(hosts)
}

/// The protocols and ports to probe: both ends of every range, plus closed control ports.
pub fn plan_ports(policy: &Policy) -> Vec<Proto> {
    let mut ports: BTreeSet<Proto> = BTreeSet::new();
    let mut add = |set: &microseg_core::ports::PortSet| {
        for &(lo, hi) in set.tcp.ranges() {
            ports.insert(Proto::Tcp(lo));
            ports.insert(Proto::Tcp(hi));
        }
        for &(lo, hi) in set.udp.ranges() {
            ports.insert(Proto::Udp(lo));
            ports.insert(Proto::Udp(hi));
        }
    };
    for f in &policy.flows {
        add(&f.ports);
    }
    for r in policy.roles.values() {
        add(&r.egress);
    }
    // Closed control ports: the first ports in no list at all.
    let all = policy
        .flows
        .iter()
        .map(|f| &f.ports)
        .chain(policy.roles.values().map(|r| &r.egress))
        .fold(microseg_core::ports::PortSet::default(), |acc, p| {
            acc.union(p)
        });
    for (tcp, candidates) in [(true, [9u16, 7777]), (false, [9u16, 7777])] {
        for c in candidates {
            let p = if tcp { Proto::Tcp(c) } else { Proto::Udp(c) };
            if !all.contains(p) {
                ports.insert(p);
                break;
            }
        }
    }
    ports.insert(Proto::Icmp);
    ports.insert(Proto::Icmpv6);
    ports.into_iter().collect()
}

/// One probe's expectation and outcome.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeResult {
    /// Source test host.
    pub from: String,
    /// Destination test host.
    pub to: String,
    /// The connection.
    pub connection: Connection,
    /// What the policy says.
    pub expected: Verdict,
    /// What the kernel did.
    pub observed: Verdict,
    /// True if they agree.
    pub ok: bool,
}

/// The result of a verification run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The test hosts.
    pub hosts: Vec<TestHost>,
    /// Every probe.
    pub probes: Vec<ProbeResult>,
}

impl Report {
    /// True if every probe matched.
    pub fn ok(&self) -> bool {
        self.probes.iter().all(|p| p.ok)
    }

    /// Number of mismatching probes.
    pub fn mismatches(&self) -> usize {
        self.probes.iter().filter(|p| !p.ok).count()
    }

    /// The matrix: one line per host pair, with the ports each way, and
    /// `expected≠observed` marks on mismatches.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "test hosts:");
        for h in &self.hosts {
            let addrs: Vec<String> = h.addrs.iter().map(|a| a.to_string()).collect();
            let what = match &h.target {
                Some(t) => format!("rules of {t}"),
                None => "no rules (unmanaged)".into(),
            };
            let _ = writeln!(out, "  {:<10} {:<40} {what}", h.name, addrs.join(" "));
        }
        let _ = writeln!(
            out,
            "\nfrom       to         allowed (observed; ✗ = expected≠observed)"
        );
        for a in &self.hosts {
            for b in &self.hosts {
                if a.name == b.name {
                    continue;
                }
                let cells: Vec<&ProbeResult> = self
                    .probes
                    .iter()
                    .filter(|p| p.from == a.name && p.to == b.name)
                    .collect();
                if cells.is_empty() {
                    continue;
                }
                let mut allowed: Vec<String> = Vec::new();
                let mut bad: Vec<String> = Vec::new();
                for p in &cells {
                    let fam = if p.connection.dst.is_ipv6() {
                        "[v6]"
                    } else {
                        ""
                    };
                    if p.observed == Verdict::Accept {
                        allowed.push(format!("{}{fam}", p.connection.proto));
                    }
                    if !p.ok {
                        bad.push(format!(
                            "✗ {}{fam} expected {} observed {}",
                            p.connection.proto,
                            p.expected.as_str(),
                            p.observed.as_str()
                        ));
                    }
                }
                allowed.dedup();
                let shown = if allowed.is_empty() {
                    "-".to_string()
                } else {
                    allowed.join(" ")
                };
                let _ = writeln!(out, "{:<10} {:<10} {shown}", a.name, b.name);
                for m in bad {
                    let _ = writeln!(out, "{:<21}{m}", "");
                }
            }
        }
        let n = self.probes.len();
        let _ = writeln!(
            out,
            "\n{} probes: {} matched, {} mismatched",
            n,
            n - self.mismatches(),
            self.mismatches()
        );
        out
    }
}

/// Builds the lab, installs the rules with `installer`, probes and compares.
/// The lab (every namespace) is removed before this returns, also on error.
pub fn verify(policy: &Policy, installer: &dyn Installer) -> Result<Report, VerifyError> {
    let hosts = plan_hosts(policy)?;
    let ports = plan_ports(policy);
    let specs: Vec<HostSpec> = hosts
        .iter()
        .map(|h| HostSpec::new(h.name.clone(), h.addrs.iter().copied()))
        .collect();
    let lab = Lab::new(&specs)?;
    let services: Vec<Service> = ports
        .iter()
        .filter_map(|p| match p {
            Proto::Tcp(n) => Some(Service::Tcp(*n)),
            Proto::Udp(n) => Some(Service::Udp(*n)),
            _ => None,
        })
        .collect();
    for h in &hosts {
        lab.listen(&h.name, &services)?;
    }
    for h in &hosts {
        if let Some(t) = &h.target {
            let rs = compile(policy, t)?;
            installer
                .install(&lab, &h.name, &rs)
                .map_err(|message| VerifyError::Install {
                    host: h.name.clone(),
                    message,
                })?;
        }
    }
    let mut plan: Vec<(String, String, Connection)> = Vec::new();
    for a in &hosts {
        for b in &hosts {
            if a.name == b.name {
                continue;
            }
            for &src in &a.addrs {
                for &dst in &b.addrs {
                    for &proto in &ports {
                        let c = Connection::new(src, dst, proto);
                        if c.validate().is_ok() {
                            plan.push((a.name.clone(), b.name.clone(), c));
                        }
                    }
                }
            }
        }
    }
    let probes: Vec<(&str, IpAddr, Probe)> = plan
        .iter()
        .map(|(from, _, c)| {
            let probe = match c.proto {
                Proto::Tcp(p) => Probe::Tcp(p),
                Proto::Udp(p) => Probe::Udp(p),
                Proto::Icmp | Proto::Icmpv6 => Probe::Icmp,
            };
            (from.as_str(), c.dst, probe)
        })
        .collect();
    let outcomes = lab.probe_all(&probes)?;
    let results = plan
        .into_iter()
        .zip(outcomes)
        .map(|((from, to, c), outcome)| {
            let expected = policy.decide(&c).verdict;
            let observed = match outcome {
                Outcome::Open => Verdict::Accept,
                Outcome::Refused => Verdict::Reject,
                Outcome::Timeout => Verdict::Drop,
            };
            // A sending host's own reject of UDP/ICMP is not observable as such:
            // the kernel fails the send (EPERM) exactly as for a drop. There,
            // and for ICMP, only allowed/denied is compared.
            let decision = policy.decide(&c);
            let sender_denies = decision
                .sender
                .as_ref()
                .is_some_and(|s| s.verdict != Verdict::Accept);
            let exact = matches!(c.proto, Proto::Tcp(_))
                || (matches!(c.proto, Proto::Udp(_)) && !sender_denies);
            let ok = if exact {
                expected == observed
            } else {
                (expected == Verdict::Accept) == (observed == Verdict::Accept)
            };
            ProbeResult {
                from,
                to,
                connection: c,
                expected,
                observed,
                ok,
            }
        })
        .collect();
    drop(lab);
    Ok(Report {
        hosts,
        probes: results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the sampled kernel property: a group whose IPv4 pick is
    /// unmanaged but whose IPv6 pick is managed got the IPv4 address with the
    /// IPv6 host's rules. A test host's address must be its target's.
    #[test]
    fn a_group_host_carries_the_address_it_is_compiled_for() {
        let p = Policy::from_str_as(
            r#"
version = 1
[groups]
g = ["10.0.2.2", "2001:db8::14c"]
[roles.ops]
hosts = ["2001:db8::/118"]
[[flows]]
from = "g"
to = "ops"
ports = ["tcp/22"]
"#,
            microseg_core::document::Format::Toml,
            None,
        )
        .unwrap();
        let hosts = plan_hosts(&p).unwrap();
        for h in &hosts {
            if let Some(Target::Host(a)) = &h.target {
                assert_eq!(h.addrs, vec![*a], "{h:?}");
            }
        }
        let g = hosts.iter().find(|h| h.name == "g").unwrap();
        assert!(g.target.is_some(), "g's IPv6 pick is managed: {g:?}");
    }
}
