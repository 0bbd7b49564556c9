//! Anti-lockout: would the compiled ruleset cut off the SSH session that runs
//! the apply?
//!
//! ```
//! use microseg_core::{document::Format, ir::{compile, Target}, Policy};
//! use microseg_host::guard::{check, Lockout};
//! let p = Policy::from_str_as(r#"
//! version = 1
//! [groups]
//! admin = ["10.9.0.0/24"]
//! db = ["10.0.0.30"]
//! [roles.db]
//! [[flows]]
//! from = "admin"
//! to = "db"
//! ports = ["tcp/22"]
//! "#, Format::Toml, None).unwrap();
//! let db = compile(&p, &Target::Role("db".into())).unwrap();
//! // The admin's session survives…
//! assert!(matches!(check(&db, Some("10.9.0.5 50000 10.0.0.30 22")), Lockout::Keeps { .. }));
//! // …a session from elsewhere would be cut off.
//! let l = check(&db, Some("203.0.113.9 50000 10.0.0.30 22"));
//! assert!(l.refuses());
//! assert!(l.to_string().contains("203.0.113.9"));
//! assert!(matches!(check(&db, None), Lockout::NoSession));
//! ```
//!
//! `SSH_CONNECTION` is `client_ip client_port server_ip server_port`. The
//! check evaluates a *new* connection from the client to the server address
//! and port with the IR's own evaluator
//! ([`HostRuleset::decide`](microseg_core::ir::HostRuleset::decide), input
//! direction): the running session itself is established and survives, but
//! the next login must work too.

use microseg_core::ir::{Direction, HostRuleset};
use microseg_core::ports::Proto;
use microseg_core::semantics::{Connection, Verdict};
use serde::Serialize;
use std::fmt;
use std::net::IpAddr;

/// The session described by `SSH_CONNECTION`.
///
/// ```
/// let s: microseg_host::guard::SshSession = "::ffff:10.0.0.5 5000 10.0.0.30 22".parse().unwrap();
/// assert_eq!(s.client.to_string(), "10.0.0.5");
/// assert_eq!(s.server_port, 22);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SshSession {
    /// The client's address.
    pub client: IpAddr,
    /// The server address the client connected to.
    pub server: IpAddr,
    /// The server port.
    pub server_port: u16,
}

fn parse_addr(s: &str) -> Option<IpAddr> {
    // A link-local address may carry a zone (`fe80::1%eth0`).
    let s = s.split('%').next()?;
    let a: IpAddr = s.parse().ok()?;
    Some(match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    })
}

impl std::str::FromStr for SshSession {
    type Err = String;

    fn from_str(s: &str) -> Result<SshSession, String> {
        let bad = || {
            format!("SSH_CONNECTION={s:?} is not \"client_ip client_port server_ip server_port\"")
        };
        let f: Vec<&str> = s.split_whitespace().collect();
        let [client, _client_port, server, port] = f.as_slice() else {
            return Err(bad());
        };
        Ok(SshSession {
            client: parse_addr(client).ok_or_else(bad)?,
            server: parse_addr(server).ok_or_else(bad)?,
            server_port: port.parse().ok().filter(|p| *p > 0).ok_or_else(bad)?,
        })
    }
}

/// The outcome of the anti-lockout check.
///
/// ```
/// use microseg_host::guard::Lockout;
/// assert!(!Lockout::NoSession.refuses());
/// assert!(Lockout::Unreadable("x".into()).refuses());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Lockout {
    /// No SSH session to protect.
    NoSession,
    /// The session's client can still connect.
    Keeps {
        /// The session.
        session: SshSession,
        /// The rule that accepts a new connection (its origin label).
        by: String,
    },
    /// The session's client could not connect again.
    Loses {
        /// The session.
        session: SshSession,
        /// `drop` or `reject`.
        verdict: String,
        /// The rule that denies it, or `the default verdict`.
        by: String,
    },
    /// `SSH_CONNECTION` is set but cannot be read: the check cannot be made.
    Unreadable(String),
}

impl Lockout {
    /// True if an apply must be refused (unless forced).
    ///
    /// ```
    /// assert!(!microseg_host::guard::Lockout::NoSession.refuses());
    /// ```
    pub fn refuses(&self) -> bool {
        matches!(self, Lockout::Loses { .. } | Lockout::Unreadable(_))
    }
}

impl fmt::Display for Lockout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lockout::NoSession => write!(
                f,
                "no SSH session (SSH_CONNECTION unset): nothing to protect"
            ),
            Lockout::Keeps { session, by } => write!(
                f,
                "the SSH client {} keeps access to {} tcp/{} (accepted by {by})",
                session.client, session.server, session.server_port
            ),
            Lockout::Loses {
                session,
                verdict,
                by,
            } => {
                write!(
                f,
                "the SSH client {} would lose access: a new connection {} -> {} tcp/{} would be \
                 {} by {by} of the compiled ruleset",
                session.client,
                session.client,
                session.server,
                session.server_port,
                if verdict == "reject" { "rejected" } else { "dropped" },
            )
            }
            Lockout::Unreadable(m) => write!(f, "{m}, so the SSH session cannot be checked"),
        }
    }
}

/// Checks `ruleset` against the session in `ssh_connection` (the value of
/// `SSH_CONNECTION`, `None` if unset).
///
/// ```
/// # use microseg_core::{document::Format, ir::{compile, Target}, Policy};
/// # let p = Policy::from_str_as("version = 1\n[groups]\ndb = [\"10.0.0.30\"]\n[roles.db]\n", Format::Toml, None).unwrap();
/// let db = compile(&p, &Target::Role("db".into())).unwrap();
/// let l = microseg_host::guard::check(&db, Some("10.9.0.5 50000 10.0.0.30 22"));
/// assert!(l.to_string().contains("the default verdict"));
/// assert!(microseg_host::guard::check(&db, Some("garbage")).refuses());
/// ```
pub fn check(ruleset: &HostRuleset, ssh_connection: Option<&str>) -> Lockout {
    let Some(text) = ssh_connection.filter(|s| !s.trim().is_empty()) else {
        return Lockout::NoSession;
    };
    let session: SshSession = match text.parse() {
        Ok(s) => s,
        Err(e) => return Lockout::Unreadable(e),
    };
    if session.client.is_ipv4() != session.server.is_ipv4() {
        return Lockout::Unreadable(format!(
            "SSH_CONNECTION={text:?} mixes IPv4 and IPv6 addresses"
        ));
    }
    let c = Connection::new(
        session.client,
        session.server,
        Proto::Tcp(session.server_port),
    );
    let hit = ruleset.decide(Direction::Input, &c);
    let by = match hit.rule {
        Some(i) => format!("rule {}", ruleset.input[i].origin.label()),
        None => "the default verdict".to_string(),
    };
    match hit.verdict {
        Verdict::Accept => Lockout::Keeps { session, by },
        v => Lockout::Loses {
            session,
            verdict: v.as_str().to_string(),
            by,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sessions() {
        let s: SshSession = "10.0.0.5 40000 10.0.0.30 2222".parse().unwrap();
        assert_eq!(
            (s.client.to_string(), s.server.to_string(), s.server_port),
            ("10.0.0.5".into(), "10.0.0.30".into(), 2222)
        );
        let s: SshSession = "fe80::1%eth0 1 fe80::2%eth0 22".parse().unwrap();
        assert_eq!(s.server.to_string(), "fe80::2");
        for bad in [
            "",
            "1.2.3.4 1 5.6.7.8",
            "x 1 5.6.7.8 22",
            "1.2.3.4 1 5.6.7.8 0",
            "1.2.3.4 1 5.6.7.8 70000",
        ] {
            assert!(bad.parse::<SshSession>().is_err(), "{bad}");
        }
    }

    #[test]
    fn loses_message_names_the_verdict() {
        let s: SshSession = "1.2.3.4 1 5.6.7.8 22".parse().unwrap();
        let l = Lockout::Loses {
            session: s,
            verdict: "drop".into(),
            by: "the default verdict".into(),
        };
        assert!(
            l.to_string()
                .contains("would be dropped by the default verdict"),
            "{l}"
        );
        let l = Lockout::Loses {
            session: s,
            verdict: "reject".into(),
            by: "rule flow:x".into(),
        };
        assert!(
            l.to_string().contains("would be rejected by rule flow:x"),
            "{l}"
        );
    }
}
