//! Where the time of `Host::apply` goes on L's hub role (root; a
//! namespace of its own): `cargo run -p microseg-benches --release --example apply_timing`.
#![forbid(unsafe_code)]

use backend_nft::{Lowering, Nft, NftBackend};
use microseg_benches::{gen, pipeline};
use microseg_core::backend::Backend;
use microseg_core::Policy;
use microseg_host::{ApplyOptions, Host, Persist, StateDir};
use std::process::Command;
use std::time::Instant;

fn main() {
    let doc = gen::policy_doc(&gen::SIZE_L, gen::SEED);
    let policy = pipeline::parse(&gen::to_json(&doc));
    let hub = pipeline::compile_role(&policy, "r0000");
    let ns = format!("msat-{}", std::process::id());
    let ok = Command::new("ip")
        .args(["netns", "add", &ns])
        .status()
        .map(|s| s.success());
    assert_eq!(ok.ok(), Some(true), "ip netns add");
    let state = std::env::temp_dir().join(format!("msat-state-{}", std::process::id()));
    let nft = Nft::in_netns(&ns);
    let host = Host::new(
        NftBackend::new(nft.clone(), &policy.table),
        StateDir::resolve(Some(state.clone())),
    );
    let opts = ApplyOptions {
        persist: Persist::Off,
        ..ApplyOptions::default()
    };
    let mut changed = doc.clone();
    changed
        .groups
        .get_mut("r0005")
        .expect("r0005")
        .push("10.0.23.200".into());
    let rs2 = pipeline::compile_role(&Policy::from_doc(changed).expect("valid"), "r0000");
    let t = Instant::now();
    let r = host.apply(&hub, &opts).expect("apply");
    eprintln!("fresh apply: {:?} {}", t.elapsed(), r.plan);
    let mut before_doc = doc.clone();
    before_doc.flows.push(microseg_core::doc::FlowDoc {
        name: Some("bench-new".into()),
        from: microseg_core::doc::OneOrMany::One("r0001".into()),
        to: microseg_core::doc::OneOrMany::One("r0000".into()),
        services: vec![],
        ports: vec!["tcp/8443".into()],
        action: None,
        log: None,
    });
    let before = pipeline::compile_role(&Policy::from_doc(before_doc).expect("valid"), "r0000");
    let other = Lowering::Plain.render(&before).expect("render");
    let raw = |doc: &str| {
        let t = Instant::now();
        let mut c = Command::new("ip")
            .args(["netns", "exec", &ns, "nft", "-j", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("nft");
        use std::io::Write;
        c.stdin
            .take()
            .expect("stdin")
            .write_all(doc.as_bytes())
            .expect("write");
        assert!(c.wait().expect("wait").success());
        t.elapsed()
    };
    for _ in 0..2 {
        host.apply(&before, &opts).expect("apply");
        let t = Instant::now();
        let r = host.apply(&hub, &opts).expect("apply");
        eprintln!("replacing apply: {:?} {}", t.elapsed(), r.plan);
        let t = Instant::now();
        let r = host.apply(&rs2, &opts).expect("apply");
        eprintln!("one-address apply: {:?} {}", t.elapsed(), r.plan,);
        let t = Instant::now();
        let r = host.apply(&rs2, &opts).expect("apply");
        eprintln!("unchanged apply: {:?} {}", t.elapsed(), r.plan);
        let t = Instant::now();
        let r = host.apply(&hub, &opts).expect("apply");
        eprintln!("one-address back: {:?} {}", t.elapsed(), r.plan);
    }
    let plain = Lowering::Plain.render(&hub).expect("render");
    let j = backend_nft::to_json_compact(&plain);
    raw(&backend_nft::to_json_compact(&other));
    eprintln!("raw replace: {:?}", raw(&j));
    let b = NftBackend::new(nft, &policy.table);
    let t = Instant::now();
    let installed = b.read().expect("read").expect("installed");
    let _ = b
        .installed_structure()
        .expect("listing")
        .is_some_and(|s| s.same_structure(&installed));
    eprintln!("read + check: {:?}", t.elapsed());
    let _ = b.remove();
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    let _ = std::fs::remove_dir_all(&state);
}
