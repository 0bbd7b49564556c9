//! Real-kernel tests: these need root (CAP_NET_ADMIN) and iproute2 + nftables.
//! They fail, loudly, when not run as root: CI runs them as root.

use std::net::IpAddr;
use std::process::Command;

use microseg_lab::{HostSpec, Lab, LabError, Outcome, Probe, Service};

fn require_root() {
    microseg_lab::require_root("microseg-lab/tests/lab.rs").unwrap_or_else(|e| panic!("{e}"));
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn netns_list() -> String {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Loads a ruleset the way callers do: `ip netns exec NS nft -f -`.
fn nft_load(netns: &str, ruleset: &str) {
    let out = microseg_lab::nft_in(netns, &["-f", "-"], Some(ruleset.as_bytes()));
    assert!(
        out.status.success(),
        "nft -f - failed for:\n{ruleset}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn three_hosts() -> Vec<HostSpec> {
    vec![
        HostSpec::new("a", [ip("203.0.113.1"), ip("2001:db8::1")]),
        HostSpec::new("b", [ip("198.51.100.2"), ip("2001:db8::2")]),
        HostSpec::new("c", [ip("203.0.113.3"), ip("2001:db8:1::3")]),
    ]
}

/// Before the change: tracks connections, allows everything.
const RULESET_V1: &str = "
table inet msl_test {
    chain input {
        type filter hook input priority 0; policy accept;
        ct state established,related accept
    }
}
";

/// After the change (replaced in one transaction: nft 1.0.6 has no `destroy`).
const RULESET_V2: &str = "
table inet msl_test
delete table inet msl_test
table inet msl_test {
    chain input {
        type filter hook input priority 0; policy accept;
        ct state established,related accept
        tcp dport 81 drop
        tcp dport 82 reject with tcp reset
        udp dport 53 reject
        icmp type echo-request drop
        icmpv6 type echo-request reject
    }
}
";

#[test]
fn probes_see_listeners_and_nft_verdicts() {
    require_root();
    let lab = Lab::new(&three_hosts()).expect("build lab");
    let names: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|h| lab.netns_name(h).unwrap().to_string())
        .collect();
    let listed = netns_list();
    for name in &names {
        assert!(
            listed.contains(name.as_str()),
            "{name} missing in:\n{listed}"
        );
    }

    let web = [
        Service::Tcp(80),
        Service::Tcp(81),
        Service::Tcp(82),
        Service::Udp(53),
    ];
    lab.listen("b", &web).unwrap();
    lab.listen("c", &[Service::Tcp(80), Service::Udp(53)])
        .unwrap();

    // Everything open across hosts, over IPv4 and IPv6.
    let mut probes = Vec::new();
    for to in [
        "198.51.100.2",
        "2001:db8::2",
        "203.0.113.3",
        "2001:db8:1::3",
    ] {
        for p in [Probe::Tcp(80), Probe::Udp(53), Probe::Icmp] {
            probes.push(("a", ip(to), p));
        }
    }
    for to in ["203.0.113.1", "2001:db8::1"] {
        probes.push(("c", ip(to), Probe::Icmp));
    }
    let got = lab.probe_all(&probes).unwrap();
    for (probe, outcome) in probes.iter().zip(&got) {
        assert_eq!(*outcome, Outcome::Open, "{probe:?}");
    }

    // Nobody listening: RST / port unreachable, many in a row (no ICMP rate limit).
    let mut closed = Vec::new();
    for port in 1000..1040 {
        for to in ["198.51.100.2", "2001:db8::2"] {
            closed.push(("a", ip(to), Probe::Udp(port)));
            closed.push(("c", ip(to), Probe::Tcp(port)));
        }
    }
    let got = lab.probe_all(&closed).unwrap();
    assert!(got.iter().all(|o| *o == Outcome::Refused), "{got:?}");

    // A connection established under one ruleset must survive a change to another.
    let b = lab.netns_name("b").unwrap();
    nft_load(b, RULESET_V1);
    let mut held = lab.open_stream("a", ip("2001:db8::2"), 82).unwrap();
    held.ping().unwrap();
    let mut held4 = lab.open_stream("c", ip("198.51.100.2"), 81).unwrap();
    held4.ping().unwrap();
    nft_load(b, RULESET_V2);
    let listed = lab.exec("b", "nft", &["list", "ruleset"], None).unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains("msl_test"));
    // Only b got the ruleset.
    let other = lab.exec("a", "nft", &["list", "ruleset"], None).unwrap();
    assert!(other.stdout.is_empty());

    let cases = [
        (Probe::Tcp(80), Outcome::Open, Outcome::Open),
        (Probe::Tcp(81), Outcome::Timeout, Outcome::Timeout),
        (Probe::Tcp(82), Outcome::Refused, Outcome::Refused),
        (Probe::Udp(53), Outcome::Refused, Outcome::Refused),
        (Probe::Icmp, Outcome::Timeout, Outcome::Refused),
    ];
    let mut probes = Vec::new();
    let mut want = Vec::new();
    for (probe, v4, v6) in cases {
        probes.push(("a", ip("198.51.100.2"), probe));
        want.push(v4);
        probes.push(("c", ip("2001:db8::2"), probe));
        want.push(v6);
    }
    // c is untouched.
    probes.push(("a", ip("203.0.113.3"), Probe::Udp(53)));
    want.push(Outcome::Open);
    let started = std::time::Instant::now();
    let got = lab.probe_all(&probes).unwrap();
    assert_eq!(got, want, "{probes:?}");
    assert!(
        started.elapsed() < 3 * lab.probe_timeout(),
        "probes ran in parallel"
    );

    held.ping()
        .expect("held IPv6 connection survives the ruleset");
    held4
        .ping()
        .expect("held IPv4 connection survives the ruleset");
    // The single-probe form agrees.
    assert_eq!(
        lab.probe("a", ip("2001:db8::2"), Probe::Tcp(82)).unwrap(),
        Outcome::Refused
    );

    drop(lab);
    let listed = netns_list();
    for name in &names {
        assert!(
            !listed.contains(name.as_str()),
            "{name} still there:\n{listed}"
        );
    }
    // The connection object outlives the lab without hanging anything.
    drop(held);
}

#[test]
fn hosts_are_isolated_and_errors_are_explained() {
    require_root();
    let mut lab = Lab::new(&[
        HostSpec::new("x", [ip("203.0.113.20")]),
        HostSpec::new("y", [ip("2001:db8::20")]),
    ])
    .unwrap();
    lab.set_probe_timeout(std::time::Duration::from_millis(300));
    let routes = lab.exec("x", "ip", &["-4", "route", "show"], None).unwrap();
    let routes = String::from_utf8_lossy(&routes.stdout).to_string();
    assert!(!routes.contains("default"), "{routes}");
    let routes6 = lab
        .exec("y", "ip", &["-6", "route", "show", "default"], None)
        .unwrap();
    assert!(routes6.stdout.is_empty());
    let knob = lab
        .exec("x", "cat", &["/proc/sys/net/ipv4/icmp_ratelimit"], None)
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&knob.stdout).trim(), "0");

    // Outside addresses are not probed at all.
    assert!(matches!(
        lab.probe("x", ip("192.0.2.1"), Probe::Icmp),
        Err(LabError::UnknownAddress(_))
    ));
    assert!(matches!(
        lab.probe("nope", ip("203.0.113.20"), Probe::Icmp),
        Err(LabError::UnknownHost(_))
    ));
    // Own address works (loopback path).
    assert_eq!(
        lab.probe("x", ip("203.0.113.20"), Probe::Icmp).unwrap(),
        Outcome::Open
    );

    let err = lab
        .exec("x", "nft", &["-f", "-"], Some(b"this is not nft\n"))
        .unwrap_err();
    match &err {
        LabError::Command {
            command, stderr, ..
        } => {
            assert!(command.contains("nft -f -"), "{command}");
            assert!(!stderr.is_empty());
        }
        other => panic!("unexpected {other:?}"),
    }
    // A second listener on the same port is refused.
    lab.listen("x", &[Service::Tcp(7)]).unwrap();
    assert!(lab.listen("x", &[Service::Tcp(7)]).is_err());
}

#[test]
fn invalid_specs_are_rejected_before_touching_the_kernel() {
    for hosts in [
        vec![],
        vec![HostSpec::new("bad name", [])],
        vec![HostSpec::new("../x", [])],
        vec![HostSpec::new("a".repeat(33), [])],
        vec![HostSpec::new("d", []), HostSpec::new("d", [])],
        vec![HostSpec::new("d", [ip("::")])],
        vec![HostSpec::new("d", [ip("127.0.0.1")])],
        vec![
            HostSpec::new("d", [ip("203.0.113.5")]),
            HostSpec::new("e", [ip("203.0.113.5")]),
        ],
    ] {
        assert!(
            matches!(Lab::new(&hosts), Err(LabError::InvalidSpec(_))),
            "{hosts:?}"
        );
    }
}

#[test]
fn namespaces_are_deleted_when_a_test_panics() {
    require_root();
    let mut names = Vec::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let lab = Lab::new(&[HostSpec::new("p", [ip("198.51.100.9")])]).unwrap();
        lab.listen("p", &[Service::Udp(9)]).unwrap();
        names.push(lab.netns_name("p").unwrap().to_string());
        names.push(format!("{}sw", lab.prefix()));
        panic!("boom");
    }));
    assert!(result.is_err());
    let listed = netns_list();
    assert_eq!(names.len(), 2);
    for name in &names {
        assert!(
            !listed.contains(name.as_str()),
            "{name} still there:\n{listed}"
        );
    }
}

#[test]
fn stale_namespaces_of_dead_processes_are_removed() {
    require_root();
    // No process has this pid (above any pid_max).
    let stale = format!("msl-999999999-t{}-sw", std::process::id());
    // Another test process running `cleanup_stale` right now may delete it first
    // (even while `ip netns add` is still binding it): retry a few times.
    for attempt in 1.. {
        let status = Command::new("ip")
            .args(["netns", "add", &stale])
            .status()
            .unwrap();
        if status.success() {
            break;
        }
        assert!(attempt < 5, "cannot create {stale}");
    }
    let deleted = Lab::cleanup_stale().unwrap();
    assert!(!netns_list().contains(&stale), "{stale} still there");
    // Nothing of a live process is touched.
    let ours = format!("msl-{}-", std::process::id());
    assert!(deleted.iter().all(|n| !n.starts_with(&ours)), "{deleted:?}");
}

/// Kernel fact pinned here for `microseg verify`: conntrack only starts tracking in a
/// namespace once some rule uses `ct`, so a connection opened while the ruleset was
/// empty is "new" (not "established") to the first ruleset and meets its rules.
#[test]
fn connections_opened_before_any_ct_rule_are_new_to_the_first_ruleset() {
    require_root();
    let lab = Lab::new(&[
        HostSpec::new("cl", [ip("203.0.113.40")]),
        HostSpec::new("sv", [ip("203.0.113.41")]),
    ])
    .unwrap();
    lab.listen("sv", &[Service::Tcp(82)]).unwrap();
    let mut held = lab.open_stream("cl", ip("203.0.113.41"), 82).unwrap();
    held.ping().unwrap();
    let ruleset = "table inet t {
        chain i {
            type filter hook input priority 0;
            ct state established accept
            tcp dport 82 reject with tcp reset
        }
    }";
    lab.exec("sv", "nft", &["-f", "-"], Some(ruleset.as_bytes()))
        .unwrap();
    assert!(held.ping().is_err());
}
