//! The exact semantic diff: unit cases and the property that a connection's
//! permitted status changes exactly when it lies in a reported block.
//!
//! The property prints its case count (`-- --nocapture`);
//! `MICROSEG_PROPTEST_CASES=N` overrides the default.

use microseg_core::addr::AddrSet;
use microseg_core::diff::diff;
use microseg_core::document::Format;
use microseg_core::ports::{PortSet, Proto};
use microseg_core::semantics::{Connection, Verdict};
use microseg_core::Policy;
use microseg_testgen as tg;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use std::net::IpAddr;
use std::time::Instant;

fn policy(text: &str) -> Policy {
    Policy::from_str_as(text, Format::Toml, Some("test.toml")).unwrap_or_else(|e| panic!("{e}"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn conn(s: &str, d: &str, p: &str) -> Connection {
    Connection::new(ip(s), ip(d), p.parse().unwrap())
}

const BASE: &str = r#"
version = 1
[groups]
admin = ["10.0.0.0/28", "2001:db8:a::/64"]
web = ["10.0.1.10-10.0.1.19", "2001:db8:1::10"]
app = ["10.0.1.20-10.0.1.29"]
db = ["10.0.1.30", "10.0.1.31"]
[services]
http = ["tcp/80", "tcp/443"]
ssh = ["tcp/22"]
[roles.web]
[roles.app]
[roles.db]
[baseline]
egress = ["udp/53"]
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
name = "app-db"
from = "app"
to = "db"
ports = ["tcp/5432"]
"#;

#[test]
fn identical_policies_have_an_empty_diff() {
    let p = policy(BASE);
    let d = diff(&p, &p);
    assert!(d.is_empty(), "{}", d.to_text());
    assert!(d.to_text().starts_with("no change"));
    assert!(d.address_classes > 5 && d.port_classes > 3);
}

#[test]
fn the_same_policy_written_differently_has_an_empty_diff() {
    // Ranges as CIDRs and lists, flows reordered and split, services inlined,
    // the baseline's defaults spelled out, a role named like its group given
    // that group as hosts.
    let other = r#"
version = 1
[groups]
admin = ["2001:db8:a::/64", "10.0.0.0-10.0.0.15"]
web = ["2001:db8:1::10", "10.0.1.10/31", "10.0.1.12/30", "10.0.1.16/30"]
app = ["10.0.1.20-10.0.1.24", "10.0.1.25-10.0.1.29"]
db = ["10.0.1.30/31"]
[roles.db]
[roles.app]
hosts = ["app"]
[roles.web]
[baseline]
egress = ["udp/53"]
icmp = true
default = "drop"
[[flows]]
from = "app"
to = "db"
ports = ["tcp/5432"]
[[flows]]
from = "admin"
to = ["app", "db", "web", "web"]
ports = ["tcp/22"]
[[flows]]
from = "any"
to = "web"
ports = ["tcp/443"]
[[flows]]
from = ["0.0.0.0/0", "::/0"]
to = "web"
ports = ["tcp/80"]
"#;
    let d = diff(&policy(BASE), &policy(other));
    assert!(d.is_empty(), "{}", d.to_text());
}

#[test]
fn a_flow_added() {
    let old = policy(BASE);
    let new = policy(&format!("{BASE}\n[[flows]]\nname = \"web-app\"\nfrom = \"web\"\nto = \"app\"\nports = [\"tcp/8080-8081\"]\n"));
    let d = diff(&old, &new);
    assert_eq!(d.changes.len(), 1, "{}", d.to_text());
    let c = &d.changes[0];
    // Only web's IPv4 hosts: app has no IPv6 address.
    assert_eq!(c.from_label, "web (10.0.1.10-10.0.1.19)");
    assert_eq!(c.to_label, "app (10.0.1.20-10.0.1.29)");
    assert_eq!(c.ports.specs(), ["tcp/8080-8081"]);
    assert_eq!((c.old, c.new), (Verdict::Drop, Verdict::Accept));
    assert!(c.opened() && c.allowed_changed());
    assert!(c.contains(&conn("10.0.1.19", "10.0.1.20", "tcp/8081")));
    assert!(!c.contains(&conn("10.0.1.20", "10.0.1.21", "tcp/8080")));
    assert_eq!(new.decide(&c.example).verdict, Verdict::Accept);
    assert_eq!(old.decide(&c.example).verdict, Verdict::Drop);
    assert!(d.to_text().contains("+ web (10.0.1.10-10.0.1.19) -> app (10.0.1.20-10.0.1.29) tcp/8080-8081: drop -> accept"), "{}", d.to_text());
    // The serialised form is readable: ranges and specs, not integers.
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["changes"][0]["from"][0], "10.0.1.10-10.0.1.19");
    assert_eq!(json["changes"][0]["ports"][0], "tcp/8080-8081");
    assert_eq!(json["changes"][0]["old"], "drop");
    assert_eq!(json["changes"][0]["example"]["proto"], "tcp/8080");
}

#[test]
fn a_group_member_removed() {
    let old = policy(BASE);
    let new = policy(&BASE.replace(
        "db = [\"10.0.1.30\", \"10.0.1.31\"]",
        "db = [\"10.0.1.30\"]",
    ));
    let d = diff(&old, &new);
    // 10.0.1.31 is no longer managed: it loses its inbound restrictions and
    // its outbound ones, and the flows to it from managed hosts close.
    let lost = ip("10.0.1.31");
    for c in &d.changes {
        assert!(
            c.from.contains(lost) || c.to.contains(lost),
            "unrelated change: {}",
            d.to_text()
        );
    }
    let ssh_in = d
        .change_for(&conn("10.0.0.1", "10.0.1.31", "tcp/22"))
        .is_none();
    assert!(
        ssh_in,
        "admin ssh: admin is unmanaged, 10.0.1.31 now too: was accepted, still is"
    );
    let closed = d
        .change_for(&conn("10.0.1.20", "10.0.1.31", "tcp/5432"))
        .expect("app → db closed");
    assert!(closed.closed(), "{}", d.to_text());
    let opened = d
        .change_for(&conn("203.0.113.1", "10.0.1.31", "tcp/9999"))
        .expect("inbound opened");
    assert!(opened.opened());
    assert_eq!(opened.to_label, "10.0.1.31");
    let out = d
        .change_for(&conn("10.0.1.31", "203.0.113.1", "tcp/25"))
        .expect("outbound opened");
    assert!(out.opened());
    // Its own egress (udp/53) was allowed before and after.
    assert!(d
        .change_for(&conn("10.0.1.31", "203.0.113.1", "udp/53"))
        .is_none());
    // 10.0.1.30 is untouched.
    assert!(d
        .change_for(&conn("10.0.1.20", "10.0.1.30", "tcp/5432"))
        .is_none());
    // Self and loopback connections are never changes.
    assert!(d
        .change_for(&conn("10.0.1.31", "10.0.1.31", "tcp/25"))
        .is_none());
    assert!(d
        .change_for(&conn("10.0.1.31", "127.0.0.1", "tcp/25"))
        .is_none());
}

#[test]
fn a_deny_added() {
    let old = policy(BASE);
    let new = policy(&format!(
        "{BASE}\n[[flows]]\nname = \"no-ssh-db\"\nfrom = \"10.0.0.8/29\"\nto = \"db\"\nports = [\"tcp/22\"]\naction = \"reject\"\n"
    ));
    let d = diff(&old, &new);
    assert_eq!(d.changes.len(), 1, "{}", d.to_text());
    let c = &d.changes[0];
    assert_eq!(c.from.to_string(), "10.0.0.8/29");
    assert_eq!(c.to_label, "db (10.0.1.30/31)");
    assert_eq!(c.ports.specs(), ["tcp/22"]);
    assert_eq!((c.old, c.new), (Verdict::Accept, Verdict::Reject));
    assert!(
        d.to_text()
            .contains("- 10.0.0.8/29 -> db (10.0.1.30/31) tcp/22: accept -> reject"),
        "{}",
        d.to_text()
    );
}

#[test]
fn drop_versus_reject_is_reported_but_not_as_an_allowed_change() {
    let old = policy(BASE);
    let new = policy(&BASE.replace(
        "egress = [\"udp/53\"]",
        "egress = [\"udp/53\"]\ndefault = \"reject\"",
    ));
    let d = diff(&old, &new);
    assert!(!d.is_empty());
    assert!(d
        .changes
        .iter()
        .all(|c| (c.old, c.new) == (Verdict::Drop, Verdict::Reject)));
    assert_eq!(d.allowed_changes().count(), 0);
    assert!(d.to_text().contains("~ "));
}

#[test]
fn loopback_sources_are_ordinary_sources() {
    // A connection from 127.0.0.1 to a managed host is judged by the
    // receiver (only loopback *destinations* are short-cut).
    let old = policy("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n");
    let new = policy("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n[[flows]]\nfrom = \"127.0.0.0/8\"\nto = \"web\"\nports = [\"tcp/80\"]\n");
    let c = conn("127.0.0.1", "10.0.0.1", "tcp/80");
    assert_ne!(old.decide(&c).verdict, new.decide(&c).verdict);
    let d = diff(&old, &new);
    assert!(d.change_for(&c).is_some(), "{}", d.to_text());
}

#[test]
fn ipv6_and_icmp_blocks_are_single_family() {
    let old = policy(BASE);
    let new = policy(&BASE.replace("[baseline]", "[baseline]\nicmp = false"));
    let d = diff(&old, &new);
    assert!(!d.is_empty());
    for c in &d.changes {
        assert!(c.closed());
        match c.family() {
            microseg_core::addr::Family::V4 => assert_eq!(c.ports.specs(), ["icmp"]),
            microseg_core::addr::Family::V6 => assert_eq!(c.ports.specs(), ["icmpv6"]),
        }
    }
    assert!(d
        .change_for(&Connection::new(
            ip("10.0.1.10"),
            ip("10.0.1.20"),
            Proto::Icmp
        ))
        .is_some());
    assert!(d
        .change_for(&Connection::new(
            ip("2001:db8::1"),
            ip("2001:db8:1::10"),
            Proto::Icmpv6
        ))
        .is_some());
}

#[test]
fn a_duplicate_flow_removed_or_a_shadowed_flow_added_changes_nothing() {
    // The second copy of admin-ssh has a twin in the new policy, and the
    // new allow lies under a deny of the same ports: no verdict changes.
    let twice = format!(
        "{BASE}\n[[flows]]\nname = \"admin-ssh-again\"\nfrom = \"admin\"\nto = \"db\"\nservices = [\"ssh\"]\n"
    );
    assert!(diff(&policy(&twice), &policy(BASE)).is_empty());
    let denied = format!(
        "{BASE}\n[[flows]]\nname = \"no-web-app\"\nfrom = \"web\"\nto = \"app\"\nports = [\"tcp/8080\"]\naction = \"deny\"\n"
    );
    let shadowed = format!(
        "{denied}\n[[flows]]\nname = \"web-app\"\nfrom = \"web\"\nto = \"app\"\nports = [\"tcp/8080\"]\n"
    );
    let d = diff(&policy(&denied), &policy(&shadowed));
    assert!(d.is_empty(), "{}", d.to_text());
}

#[test]
fn a_role_egress_changed() {
    let old = policy(BASE);
    let new = policy(&BASE.replace("[roles.db]", "[roles.db]\negress = [\"tcp/25\"]"));
    let d = diff(&old, &new);
    assert!(!d.is_empty());
    for c in &d.changes {
        // Only connections from db's hosts, to anywhere, on the ports that
        // moved in or out of its egress.
        assert_eq!(c.from_label, "db (10.0.1.30/31)", "{}", d.to_text());
        assert!(
            c.ports.specs() == ["tcp/25"] || c.ports.specs() == ["udp/53"],
            "{}",
            d.to_text()
        );
    }
    let out = d
        .change_for(&conn("10.0.1.30", "198.51.100.7", "tcp/25"))
        .expect("smtp out opened");
    assert!(out.opened() && out.to_label.starts_with("any IPv4 except"));
    let dns = d
        .change_for(&conn("10.0.1.31", "198.51.100.7", "udp/53"))
        .expect("dns out closed");
    assert!(dns.closed());
    // db → app is judged by app's side too: closed there before and after.
    assert!(d
        .change_for(&conn("10.0.1.30", "10.0.1.20", "tcp/25"))
        .is_none());
}

/// The ends of the first intervals of a set (at most 6 addresses).
fn corners(s: &AddrSet) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for (a, b) in s.ranges_v4().take(3) {
        out.extend([IpAddr::V4(a), IpAddr::V4(b)]);
    }
    for (a, b) in s.ranges_v6().take(3) {
        out.extend([IpAddr::V6(a), IpAddr::V6(b)]);
    }
    out
}

/// The ends of the first port ranges of a set, and its ICMP protocols.
fn port_corners(p: &PortSet) -> Vec<Proto> {
    let mut out = Vec::new();
    for &(a, b) in p.tcp.ranges().iter().take(3) {
        out.extend([Proto::Tcp(a), Proto::Tcp(b)]);
    }
    for &(a, b) in p.udp.ranges().iter().take(3) {
        out.extend([Proto::Udp(a), Proto::Udp(b)]);
    }
    if p.icmp {
        out.push(Proto::Icmp);
    }
    if p.icmpv6 {
        out.push(Proto::Icmpv6);
    }
    out
}

/// 1000 policy pairs (the second a mutation of the first: a flow added,
/// removed or altered, a group member added or removed, the baseline or a
/// role's egress changed) × 64 boundary-biased connections of both: the
/// verdict changes exactly when the connection lies in a reported block,
/// with the block's old and new verdicts (so permitted status changes iff
/// the block has `allowed_changed()`); every block's example is in it and
/// decides as reported, and so do the corners of every block (ends of its
/// first address and port ranges); blocks are disjoint; the reverse diff swaps verdicts.
#[test]
fn diff_is_exact_on_mutated_pairs_1000() {
    let config = tg::config(1000);
    let cases = config.cases;
    let start = Instant::now();
    let strategy = tg::policy_pair().prop_flat_map(|(a, m, b)| {
        let pa = Policy::from_doc(a).expect("generated documents are valid");
        let pb = Policy::from_doc(b).expect("mutated documents are valid");
        let conns = vec(tg::connection_for(&[&pa, &pb]), 64);
        (Just(pa), Just(m), Just(pb), conns)
    });
    let changed = std::sync::atomic::AtomicUsize::new(0);
    let blocks = std::sync::atomic::AtomicUsize::new(0);
    let corner_checks = std::sync::atomic::AtomicUsize::new(0);
    let result = TestRunner::new(config).run(&strategy, |(old, _m, new, conns)| {
        let d = diff(&old, &new);
        let back = diff(&new, &old);
        blocks.fetch_add(d.changes.len(), std::sync::atomic::Ordering::Relaxed);
        for ch in &d.changes {
            prop_assert!(
                ch.contains(&ch.example),
                "example outside its block: {}",
                d.to_text()
            );
            // The corners of the block: every connection in it changed alike.
            let mut inside = vec![ch.example];
            for s in corners(&ch.from) {
                for t in corners(&ch.to) {
                    for p in port_corners(&ch.ports) {
                        let c = Connection::new(s, t, p);
                        if ch.contains(&c) {
                            inside.push(c);
                        }
                    }
                }
            }
            for c in &inside {
                prop_assert_eq!(
                    old.decide(c).verdict,
                    ch.old,
                    "old verdict of {} in block\n{}",
                    c,
                    d.to_text()
                );
                prop_assert_eq!(
                    new.decide(c).verdict,
                    ch.new,
                    "new verdict of {} in block\n{}",
                    c,
                    d.to_text()
                );
            }
            corner_checks.fetch_add(inside.len(), std::sync::atomic::Ordering::Relaxed);
        }
        for c in &conns {
            let (o, n) = (old.decide(c), new.decide(c));
            let hits: Vec<_> = d.changes.iter().filter(|ch| ch.contains(c)).collect();
            prop_assert!(
                hits.len() <= 1,
                "{} lies in {} blocks\n{}",
                c,
                hits.len(),
                d.to_text()
            );
            match hits.first() {
                Some(ch) => {
                    prop_assert_eq!(
                        (ch.old, ch.new),
                        (o.verdict, n.verdict),
                        "{} in block with other verdicts\n{}",
                        c,
                        d.to_text()
                    );
                    changed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                None => prop_assert_eq!(
                    o.verdict,
                    n.verdict,
                    "{} changed but no block holds it\n{}",
                    c,
                    d.to_text()
                ),
            }
            // The iff on permitted status.
            let in_allowed_block = d.allowed_changes().any(|ch| ch.contains(c));
            prop_assert_eq!(
                o.allowed() != n.allowed(),
                in_allowed_block,
                "{}\n{}",
                c,
                d.to_text()
            );
            match back.change_for(c) {
                Some(ch) => prop_assert_eq!((ch.old, ch.new), (n.verdict, o.verdict)),
                None => prop_assert!(hits.is_empty(), "reverse diff misses {}", c),
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("diff_is_exact_on_mutated_pairs: {e}");
    }
    eprintln!(
        "diff_is_exact_on_mutated_pairs: {cases} cases, {} blocks, {} block corners checked, {} random connections in a block, {:.2}s",
        blocks.into_inner(),
        corner_checks.into_inner(),
        changed.into_inner(),
        start.elapsed().as_secs_f64()
    );
}

/// 500 pairs of unrelated random policies × 64 boundary-biased connections:
/// the verdict changes exactly when the connection lies in a block with
/// those verdicts.
#[test]
fn diff_is_exact_on_unrelated_pairs_500() {
    let config = tg::config(500);
    let cases = config.cases;
    let start = Instant::now();
    let strategy = (tg::policy_doc(), tg::policy_doc()).prop_flat_map(|(a, b)| {
        let pa = Policy::from_doc(a).expect("generated documents are valid");
        let pb = Policy::from_doc(b).expect("generated documents are valid");
        let conns = vec(tg::connection_for(&[&pa, &pb]), 64);
        (Just(pa), Just(pb), conns)
    });
    let result = TestRunner::new(config).run(&strategy, |(old, new, conns)| {
        let d = diff(&old, &new);
        for c in &conns {
            let (o, n) = (old.decide(c).verdict, new.decide(c).verdict);
            match d.change_for(c) {
                Some(ch) => prop_assert_eq!((ch.old, ch.new), (o, n), "{}\n{}", c, d.to_text()),
                None => {
                    prop_assert_eq!(o, n, "{} changed but no block holds it\n{}", c, d.to_text())
                }
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("diff_is_exact_on_unrelated_pairs: {e}");
    }
    eprintln!(
        "diff_is_exact_on_unrelated_pairs: {cases} cases, {:.2}s",
        start.elapsed().as_secs_f64()
    );
}

/// 500 random policies: a policy diffs empty against itself and against
/// itself read back from TOML.
#[test]
fn diff_of_equal_policies_is_empty_500() {
    let config = tg::config(500);
    let cases = config.cases;
    let start = Instant::now();
    let result = TestRunner::new(config).run(&tg::policy_doc(), |doc| {
        let p = Policy::from_doc(doc.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(diff(&p, &p).is_empty());
        let q = Policy::from_str_as(&doc.to_toml(), Format::Toml, None)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let d = diff(&p, &q);
        prop_assert!(d.is_empty(), "{}", d.to_text());
        Ok(())
    });
    if let Err(e) = result {
        panic!("diff_of_equal_policies_is_empty: {e}");
    }
    eprintln!(
        "diff_of_equal_policies_is_empty: {cases} cases, {:.2}s",
        start.elapsed().as_secs_f64()
    );
}
