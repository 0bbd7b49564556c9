//! Unit tests of the reference semantics and of the IR evaluator agreeing with it.

use microseg_core::classes::{partition, port_classes, representative};
use microseg_core::document::Format;
use microseg_core::ir::{compile, Direction, Target};
use microseg_core::ports::{PortSet, Proto};
use microseg_core::semantics::{Connection, Reason, Side, Verdict};
use microseg_core::{addr::AddrSet, Policy};
use std::net::IpAddr;

fn policy(text: &str) -> Policy {
    Policy::from_str_as(text, Format::Toml, Some("test.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn verdict(p: &Policy, s: &str, d: &str, port: &str) -> Verdict {
    p.decide(&Connection::new(ip(s), ip(d), port.parse().unwrap()))
        .verdict
}

const BASE: &str = r#"
version = 1
[groups]
admin = ["10.0.0.0/28", "2001:db8:a::/64"]
web = ["10.0.1.10-10.0.1.19", "2001:db8:1::10"]
app = ["10.0.1.20-10.0.1.29"]
db = ["10.0.1.30"]
ops = ["10.0.1.15-10.0.1.25"]   # straddles web and app
[services]
http = ["tcp/80", "tcp/443"]
ssh = ["tcp/22"]
[roles.web]
[roles.app]
[roles.db]
[roles.ops]
egress = ["udp/53"]
[baseline]
egress = ["tcp/443"]
icmp = false
[[flows]]
name = "public-web"
from = "any"
to = "web"
services = ["http"]
[[flows]]
name = "admin-ssh"
from = "admin"
to = ["web", "app", "db"]
services = ["ssh"]
[[flows]]
name = "ops-to-db"
from = "ops"
to = "db"
ports = ["tcp/5432"]
[[flows]]
name = "no-web-db"
from = "web"
to = "db"
ports = ["tcp/5432"]
action = "deny"
[[flows]]
name = "rej-app-ssh"
from = "203.0.113.0/24"
to = "app"
ports = ["tcp/22", "tcp/8080"]
action = "reject"
[[flows]]
name = "web-icmp"
from = "admin"
to = "web"
ports = ["icmp", "icmpv6"]
"#;

#[test]
fn unmanaged_source_only_receiver_decides() {
    let p = policy(BASE);
    assert_eq!(
        verdict(&p, "203.0.113.9", "10.0.1.11", "tcp/443"),
        Verdict::Accept
    );
    assert_eq!(
        verdict(&p, "203.0.113.9", "10.0.1.11", "tcp/22"),
        Verdict::Drop
    );
    let d = p.decide(&Connection::new(
        ip("203.0.113.9"),
        ip("10.0.1.11"),
        Proto::Tcp(443),
    ));
    assert!(d.sender.is_none());
    assert_eq!(
        d.receiver.unwrap().reasons,
        vec![Reason::Flow {
            name: "public-web".into(),
            action: microseg_core::Action::Allow
        }]
    );
}

#[test]
fn unmanaged_both_sides_permitted() {
    let p = policy(BASE);
    assert_eq!(
        verdict(&p, "203.0.113.9", "198.51.100.1", "tcp/25"),
        Verdict::Accept
    );
}

#[test]
fn sender_side_needs_egress_or_flow() {
    let p = policy(BASE);
    // app (not ops) → outside: baseline egress tcp/443 only.
    assert_eq!(
        verdict(&p, "10.0.1.27", "203.0.113.1", "tcp/443"),
        Verdict::Accept
    );
    assert_eq!(
        verdict(&p, "10.0.1.27", "203.0.113.1", "tcp/25"),
        Verdict::Drop
    );
    assert_eq!(
        verdict(&p, "10.0.1.27", "203.0.113.1", "udp/53"),
        Verdict::Drop
    );
}

#[test]
fn partial_overlap_is_exact() {
    let p = policy(BASE);
    // ops covers 10.0.1.15-25: only those hosts may open tcp/5432 to db.
    assert_eq!(
        verdict(&p, "10.0.1.24", "10.0.1.30", "tcp/5432"),
        Verdict::Accept
    );
    assert_eq!(
        verdict(&p, "10.0.1.26", "10.0.1.30", "tcp/5432"),
        Verdict::Drop
    );
    // 10.0.1.15 is web AND ops: the deny from web wins over ops' allow.
    assert_eq!(
        verdict(&p, "10.0.1.15", "10.0.1.30", "tcp/5432"),
        Verdict::Drop
    );
}

#[test]
fn multi_role_egress_is_a_union() {
    let p = policy(BASE);
    // 10.0.1.22 is app (egress tcp/443 from baseline) and ops (egress udp/53).
    assert_eq!(
        verdict(&p, "10.0.1.22", "203.0.113.1", "udp/53"),
        Verdict::Accept
    );
    assert_eq!(
        verdict(&p, "10.0.1.22", "203.0.113.1", "tcp/443"),
        Verdict::Accept
    );
    // 10.0.1.27 is only app.
    assert_eq!(
        verdict(&p, "10.0.1.27", "203.0.113.1", "udp/53"),
        Verdict::Drop
    );
}

#[test]
fn deny_and_reject_precedence() {
    let p = policy(BASE);
    assert_eq!(
        verdict(&p, "203.0.113.5", "10.0.1.21", "tcp/22"),
        Verdict::Reject
    );
    // Admin SSH is allowed from admin, but 203.0.113.x is not admin: reject.
    assert_eq!(
        verdict(&p, "10.0.0.5", "10.0.1.21", "tcp/22"),
        Verdict::Accept
    );
}

#[test]
fn deny_overrides_egress_and_icmp() {
    let p = policy(
        r#"
version = 1
[groups]
a = ["10.1.0.1"]
[roles.a]
[[flows]]
from = "a"
to = "any"
ports = ["tcp/443", "icmp"]
action = "deny"
"#,
    );
    assert_eq!(
        verdict(&p, "10.1.0.1", "203.0.113.1", "tcp/443"),
        Verdict::Drop
    );
    assert_eq!(
        verdict(&p, "10.1.0.1", "203.0.113.1", "icmp"),
        Verdict::Drop
    );
    assert_eq!(
        verdict(&p, "10.1.0.1", "203.0.113.1", "udp/53"),
        Verdict::Accept
    );
    assert_eq!(
        verdict(&p, "203.0.113.1", "10.1.0.1", "icmp"),
        Verdict::Accept
    );
}

#[test]
fn icmp_baseline() {
    let p = policy(BASE);
    // icmp = false: only the web-icmp flow admits ICMP, and only to web.
    assert_eq!(
        verdict(&p, "10.0.0.1", "10.0.1.10", "icmp"),
        Verdict::Accept
    );
    assert_eq!(verdict(&p, "10.0.0.1", "10.0.1.21", "icmp"), Verdict::Drop);
    assert_eq!(
        verdict(&p, "2001:db8:a::1", "2001:db8:1::10", "icmpv6"),
        Verdict::Accept
    );
}

#[test]
fn ipv6() {
    let p = policy(BASE);
    assert_eq!(
        verdict(&p, "2001:db8:a::5", "2001:db8:1::10", "tcp/22"),
        Verdict::Accept
    );
    assert_eq!(
        verdict(&p, "2001:db8:b::5", "2001:db8:1::10", "tcp/22"),
        Verdict::Drop
    );
    assert_eq!(
        verdict(&p, "2001:db8:b::5", "2001:db8:1::10", "tcp/80"),
        Verdict::Accept
    );
}

#[test]
fn loopback_and_self() {
    let p = policy(BASE);
    assert_eq!(
        verdict(&p, "10.0.1.30", "127.0.0.1", "tcp/9999"),
        Verdict::Accept
    );
    assert_eq!(
        verdict(&p, "10.0.1.30", "10.0.1.30", "tcp/9999"),
        Verdict::Accept
    );
}

#[test]
fn default_reject() {
    let p = policy(&BASE.replace("icmp = false", "icmp = false\ndefault = \"reject\""));
    assert_eq!(
        verdict(&p, "203.0.113.9", "10.0.1.11", "tcp/22"),
        Verdict::Reject
    );
}

/// Every class pair × every port class: IR evaluators (per host and per
/// single-role host) agree with the reference semantics on each side.
fn assert_ir_agrees(p: &Policy) {
    let mut sets: Vec<&AddrSet> = Vec::new();
    for f in &p.flows {
        sets.push(&f.from.addrs);
        sets.push(&f.to.addrs);
    }
    for r in p.roles.values() {
        sets.push(&r.hosts);
    }
    let classes = partition(&sets);
    let mut ports: Vec<&PortSet> = p.flows.iter().map(|f| &f.ports).collect();
    ports.extend(p.roles.values().map(|r| &r.egress));
    let pcs = port_classes(&ports);
    let mut checked = 0;
    for sc in &classes {
        for dc in &classes {
            let Some(s) = representative(sc, None) else {
                continue;
            };
            let Some(d) = representative(dc, Some(s)) else {
                continue;
            };
            for (proto, _) in &pcs {
                let c = Connection::new(s, d, *proto);
                if c.validate().is_err() || s == d {
                    continue;
                }
                for (dir, own) in [(Direction::Input, d), (Direction::Output, s)] {
                    if !p.managed.contains(own) {
                        continue;
                    }
                    let want = p.decide_side(dir.side(), &c).verdict;
                    let host = compile(p, &Target::Host(own)).unwrap();
                    assert_eq!(
                        host.decide(dir, &c).verdict,
                        want,
                        "host ruleset {own} {dir:?} {c}"
                    );
                    let roles = p.roles_of(own);
                    if roles.len() == 1 {
                        let rs = compile(p, &Target::Role(roles[0].name.clone())).unwrap();
                        assert_eq!(
                            rs.decide(dir, &c).verdict,
                            want,
                            "role {} {dir:?} {c}",
                            roles[0].name
                        );
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 50, "only {checked} checks");
}

#[test]
fn ir_agrees_with_semantics_base() {
    assert_ir_agrees(&policy(BASE));
}

#[test]
fn ir_agrees_with_semantics_examples() {
    for f in ["three-tier.toml", "dual-stack.toml"] {
        let path = format!("{}/../examples/{f}", env!("CARGO_MANIFEST_DIR"));
        assert_ir_agrees(&Policy::from_file(&path).unwrap());
    }
}

#[test]
fn side_api() {
    let p = policy(BASE);
    let c = Connection::new(ip("10.0.1.11"), ip("10.0.1.30"), Proto::Tcp(5432));
    assert_eq!(p.decide_side(Side::Sender, &c).verdict, Verdict::Drop);
}
