//! The reference semantics of policy-format.md: the decision for one new connection.
//!
//! ```
//! use microseg_core::{Policy, document::Format, ports::Proto, semantics::{Connection, Verdict}};
//! let p = Policy::from_str_as(r#"
//! version = 1
//! [groups]
//! db = ["10.0.0.30"]
//! [roles.db]
//! "#, Format::Toml, None).unwrap();
//! // Nothing allows tcp/5432 into db: the receiver side's default drops it.
//! let d = p.decide(&Connection::new("203.0.113.5".parse().unwrap(), "10.0.0.30".parse().unwrap(), Proto::Tcp(5432)));
//! assert_eq!(d.verdict, Verdict::Drop);
//! // db may open DNS to anywhere (baseline egress); the outside is unmanaged.
//! let d = p.decide(&Connection::new("10.0.0.30".parse().unwrap(), "203.0.113.53".parse().unwrap(), Proto::Udp(53)));
//! assert_eq!(d.verdict, Verdict::Accept);
//! ```
//!
//! * Sender side (when the source is managed, over the union of its roles):
//!   a matching deny/reject flow denies; else baseline egress, ICMP or a
//!   matching allow flow accepts; else the default verdict.
//! * Receiver side (when the destination is managed): the same without egress.
//! * Permitted iff both sides that apply accept. Loopback (a destination in
//!   127.0.0.0/8 or ::1, or source = destination) is always accepted.
//! * Among matching deny and reject flows, deny (drop) wins, so the outcome
//!   never depends on the order of flows.

use crate::model::{Action, DefaultAction, Policy};
use crate::ports::Proto;
use serde::Serialize;
use std::fmt;
use std::net::IpAddr;

/// One new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Connection {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Protocol and destination port.
    pub proto: Proto,
}

impl Connection {
    /// A connection.
    pub fn new(src: IpAddr, dst: IpAddr, proto: Proto) -> Connection {
        Connection { src, dst, proto }
    }

    /// Checks that both addresses are of one family and the protocol fits it.
    pub fn validate(&self) -> Result<(), String> {
        match (self.src, self.dst, self.proto) {
            (IpAddr::V4(_), IpAddr::V6(_), _) | (IpAddr::V6(_), IpAddr::V4(_), _) => Err(format!(
                "{} and {} are of different IP families: a connection is IPv4 or IPv6 end to end",
                self.src, self.dst
            )),
            (IpAddr::V4(_), _, Proto::Icmpv6) => {
                Err("icmpv6 between IPv4 addresses: use icmp".into())
            }
            (IpAddr::V6(_), _, Proto::Icmp) => {
                Err("icmp between IPv6 addresses: use icmpv6".into())
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {} {}", self.src, self.dst, self.proto)
    }
}

/// What happens to a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Accepted.
    Accept,
    /// Dropped silently.
    Drop,
    /// Rejected with an ICMP error / TCP reset.
    Reject,
}

impl Verdict {
    /// `accept`, `drop` or `reject`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Drop => "drop",
            Verdict::Reject => "reject",
        }
    }

    /// The verdict of a default action.
    pub fn from_default(d: DefaultAction) -> Verdict {
        match d {
            DefaultAction::Drop => Verdict::Drop,
            DefaultAction::Reject => Verdict::Reject,
        }
    }
}

/// Why a side decided as it did.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Reason {
    /// A flow matched.
    Flow {
        /// Flow name.
        name: String,
        /// Its action.
        action: Action,
    },
    /// The role's egress list (baseline or the role's own).
    Egress {
        /// The role.
        role: String,
    },
    /// Baseline ICMP.
    Icmp,
    /// Loopback traffic.
    Loopback,
    /// Nothing matched: the default verdict.
    Default,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Flow { name, action } => write!(f, "flow \"{name}\" ({})", action.as_str()),
            Reason::Egress { role } => write!(f, "egress of role \"{role}\""),
            Reason::Icmp => f.write_str("baseline icmp"),
            Reason::Loopback => f.write_str("loopback"),
            Reason::Default => f.write_str("default"),
        }
    }
}

/// The decision of one side (sender or receiver).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SideDecision {
    /// The side's verdict.
    pub verdict: Verdict,
    /// The roles of the side's address.
    pub roles: Vec<String>,
    /// What decided: every matching flow of the deciding kind, or egress/ICMP/default.
    pub reasons: Vec<Reason>,
}

/// The decision for a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The final verdict.
    pub verdict: Verdict,
    /// The sender side, when the source is managed.
    pub sender: Option<SideDecision>,
    /// The receiver side, when the destination is managed.
    pub receiver: Option<SideDecision>,
    /// True when loopback decided.
    pub loopback: bool,
}

impl Decision {
    /// True if the connection is permitted.
    pub fn allowed(&self) -> bool {
        self.verdict == Verdict::Accept
    }
}

/// Which side of a connection a ruleset judges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The sending host (output chain).
    Sender,
    /// The receiving host (input chain).
    Receiver,
}

impl Policy {
    /// The decision for one new connection (the reference semantics).
    pub fn decide(&self, c: &Connection) -> Decision {
        if c.dst.is_loopback() || c.src == c.dst {
            return Decision {
                verdict: Verdict::Accept,
                sender: None,
                receiver: None,
                loopback: true,
            };
        }
        let sender = self
            .managed
            .contains(c.src)
            .then(|| self.decide_side(Side::Sender, c));
        let receiver = self
            .managed
            .contains(c.dst)
            .then(|| self.decide_side(Side::Receiver, c));
        let verdict = match (&sender, &receiver) {
            (Some(s), _) if s.verdict != Verdict::Accept => s.verdict,
            (_, Some(r)) => r.verdict,
            _ => Verdict::Accept,
        };
        Decision {
            verdict,
            sender,
            receiver,
            loopback: false,
        }
    }

    /// One side's decision, for a side whose address is managed.
    pub fn decide_side(&self, side: Side, c: &Connection) -> SideDecision {
        let own = match side {
            Side::Sender => c.src,
            Side::Receiver => c.dst,
        };
        let roles = self.roles_of(own);
        let role_names: Vec<String> = roles.iter().map(|r| r.name.clone()).collect();
        let matching = |action: Action| -> Vec<Reason> {
            self.flows
                .iter()
                .filter(|f| {
                    f.action == action
                        && f.from.addrs.contains(c.src)
                        && f.to.addrs.contains(c.dst)
                        && f.ports.contains(c.proto)
                })
                .map(|f| Reason::Flow {
                    name: f.name.clone(),
                    action,
                })
                .collect()
        };
        let side_decision = |verdict, reasons| SideDecision {
            verdict,
            roles: role_names.clone(),
            reasons,
        };
        let denied = matching(Action::Deny);
        if !denied.is_empty() {
            return side_decision(Verdict::Drop, denied);
        }
        let rejected = matching(Action::Reject);
        if !rejected.is_empty() {
            return side_decision(Verdict::Reject, rejected);
        }
        let mut reasons = Vec::new();
        if side == Side::Sender {
            for r in &roles {
                if r.egress.contains(c.proto) {
                    reasons.push(Reason::Egress {
                        role: r.name.clone(),
                    });
                }
            }
        }
        if c.proto.is_icmp() && self.baseline.icmp {
            reasons.push(Reason::Icmp);
        }
        reasons.extend(matching(Action::Allow));
        if !reasons.is_empty() {
            return side_decision(Verdict::Accept, reasons);
        }
        side_decision(
            Verdict::from_default(self.baseline.default),
            vec![Reason::Default],
        )
    }
}

fn side_json(s: &Option<SideDecision>) -> serde_json::Value {
    match s {
        None => serde_json::Value::Null,
        Some(s) => serde_json::json!({
            "verdict": s.verdict.as_str(),
            "roles": s.roles,
            "reasons": s.reasons.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        }),
    }
}

impl Decision {
    /// The object `microseg query --json` prints (and the Python bindings return):
    /// `verdict` is `allow` or `deny`, `action` the verdict, and each side's
    /// verdict, roles and reasons.
    ///
    /// ```
    /// use microseg_core::{Policy, document::Format, ports::Proto, semantics::Connection};
    /// let p = Policy::from_str_as("version = 1\n", Format::Toml, None).unwrap();
    /// let c = Connection::new("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), Proto::Tcp(22));
    /// assert_eq!(p.decide(&c).to_json(&c)["verdict"], "allow");
    /// ```
    pub fn to_json(&self, c: &Connection) -> serde_json::Value {
        serde_json::json!({
            "from": c.src.to_string(),
            "to": c.dst.to_string(),
            "port": c.proto.to_string(),
            "verdict": if self.allowed() { "allow" } else { "deny" },
            "action": self.verdict.as_str(),
            "loopback": self.loopback,
            "sender": side_json(&self.sender),
            "receiver": side_json(&self.receiver),
        })
    }

    /// The decision and its reasons for people (`microseg query`).
    pub fn to_text(&self, c: &Connection) -> String {
        let mut out = format!(
            "{c}: {} ({})\n",
            if self.allowed() { "ALLOW" } else { "DENY" },
            self.verdict.as_str()
        );
        if self.loopback {
            out.push_str("  loopback traffic is always accepted\n");
        }
        for (label, side, addr) in [
            ("sender", &self.sender, c.src),
            ("receiver", &self.receiver, c.dst),
        ] {
            match side {
                None if !self.loopback => out.push_str(&format!(
                    "  {label} {addr}: not managed by the policy (no check)\n"
                )),
                None => {}
                Some(s) => out.push_str(&format!(
                    "  {label} {addr} (roles {}): {} by {}\n",
                    s.roles.join(", "),
                    s.verdict.as_str(),
                    s.reasons
                        .iter()
                        .map(|r| r.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
        out
    }
}
