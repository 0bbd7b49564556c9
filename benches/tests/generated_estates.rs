//! The synthetic estates compile, and on them the model of both nft
//! lowerings decides like the IR on the hub and an ordinary role of S (a
//! sample of connections between the
//! estate's hosts, the infrastructure and outside addresses, on the
//! services' ports): equivalence at a size the random policies of
//! `backend-nft/tests/model_props.rs` do not reach.

use backend_nft::model::NftModel;
use backend_nft::Lowering;
use microseg_benches::{gen, pipeline};
use microseg_core::ir::Direction;
use microseg_core::ports::Proto;
use microseg_core::semantics::Connection;
use std::net::IpAddr;

fn check(size: &gen::Size, roles: &[&str]) -> usize {
    let doc = gen::policy_doc(size, gen::SEED);
    let policy = pipeline::parse(&gen::to_json(&doc));
    let mut addrs: Vec<IpAddr> = Vec::new();
    for r in policy.roles.values().take(12) {
        addrs.extend(r.hosts.ranges_v4().take(2).map(|(a, _)| IpAddr::V4(a)));
        addrs.extend(r.hosts.ranges_v6().take(1).map(|(a, _)| IpAddr::V6(a)));
    }
    addrs.extend(
        [
            "203.0.113.9",
            "2001:db8:ffff:1::5",
            "172.16.1.1",
            "10.255.0.1",
        ]
        .map(|a| a.parse::<IpAddr>().unwrap()),
    );
    let protos = [
        Proto::Tcp(22),
        Proto::Tcp(443),
        Proto::Tcp(5432),
        Proto::Tcp(9093),
        Proto::Udp(123),
        Proto::Udp(53),
        Proto::Tcp(445),
        Proto::Tcp(2999),
        Proto::Icmp,
        Proto::Icmpv6,
    ];
    let mut checks = 0;
    for role in roles {
        let rs = pipeline::compile_role(&policy, role);
        let models: Vec<(Lowering, NftModel)> = [Lowering::Plain, Lowering::Optimized]
            .into_iter()
            .map(|l| {
                (
                    l,
                    NftModel::from_document(l.render(&rs).unwrap().document()).unwrap(),
                )
            })
            .collect();
        let own: Vec<IpAddr> = rs
            .hosts
            .ranges_v4()
            .take(2)
            .map(|(a, _)| IpAddr::V4(a))
            .collect();
        for &a in own.iter().chain(&addrs) {
            for &b in own.iter().chain(&addrs) {
                for &p in &protos {
                    let c = Connection::new(a, b, p);
                    if c.validate().is_err() {
                        continue;
                    }
                    for dir in [Direction::Input, Direction::Output] {
                        let want = rs.decide(dir, &c).verdict;
                        for (l, m) in &models {
                            let got = m
                                .decide(dir, &c)
                                .unwrap_or_else(|e| panic!("{l:?} {role} {dir:?} {c}: {e}"));
                            assert_eq!(got.verdict, want, "{l:?} {role} {dir:?} {c}");
                            checks += 1;
                        }
                    }
                }
            }
        }
    }
    checks
}

#[test]
fn model_of_both_lowerings_agrees_with_ir_on_the_estates() {
    let n = check(&gen::SIZE_S, &["r0000", "r0003", "admins"]);
    eprintln!("generated estate S: {n} checks");
}

#[test]
fn the_estates_have_their_sizes() {
    for size in [gen::SIZE_S, gen::SIZE_M] {
        let doc = gen::policy_doc(&size, gen::SEED);
        let role_groups: usize = (0..size.roles)
            .map(|i| doc.groups[&gen::role_name(i)].len())
            .sum();
        assert_eq!(role_groups, size.addresses);
        assert_eq!(doc.flows.len(), size.flows);
        let p = pipeline::parse(&gen::to_json(&doc));
        assert_eq!(p.roles.len(), size.roles + 4);
        assert!(p.managed.v6.ranges().len() > 10, "IPv6 hosts");
    }
}
