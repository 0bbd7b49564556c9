//! Temporary: stage timings for one size.
#![forbid(unsafe_code)]
use microseg_benches::{gen, measure, pipeline};
use std::time::Instant;
fn main() {
    let size = gen::Size::named(&std::env::args().nth(1).unwrap_or("S".into())).unwrap();
    let t = Instant::now();
    let doc = gen::policy_doc(&size, gen::SEED);
    let text = gen::to_json(&doc);
    eprintln!("gen {:?} ({} bytes)", t.elapsed(), text.len());
    let t = Instant::now();
    let p = pipeline::parse(&text);
    eprintln!("parse {:?}", t.elapsed());
    let t = Instant::now();
    let r0 = pipeline::compile_role(&p, "r0000");
    eprintln!("compile r0000 {:?}: {} in, {} out rules, {} sets", t.elapsed(), r0.input.len(), r0.output.len(), r0.sets.len());
    let t = Instant::now();
    let r5 = pipeline::compile_role(&p, &gen::role_name(size.roles / 2));
    eprintln!("compile mid {:?}: {} in, {} out", t.elapsed(), r5.input.len(), r5.output.len());
    if std::env::args().nth(2).as_deref() == Some("compile") {
        let t = Instant::now();
        let all = pipeline::compile_all(&p);
        eprintln!("compile all only {:?} {}", t.elapsed(), all.len());
        return;
    }
    let t = Instant::now();
    let mut hits = 0usize;
    for r in p.roles.values() { for f in &p.flows { if f.to.addrs.intersects(&r.hosts) { hits += 1; } if f.from.addrs.intersects(&r.hosts) { hits += 1; } } }
    eprintln!("R x F intersects {:?} ({hits} hits)", t.elapsed());
    let t = Instant::now();
    let all = pipeline::compile_all(&p);
    eprintln!("compile all {:?}", t.elapsed());
    let t = Instant::now();
    let n = pipeline::render_all(&all, backend_nft::Lowering::Plain);
    eprintln!("render plain all {:?} ({n} bytes)", t.elapsed());
    for lw in [backend_nft::Lowering::Plain, backend_nft::Lowering::Optimized] {
        let t = Instant::now();
        let docs: Vec<_> = all.iter().map(|r| lw.render(r).unwrap()).collect();
        eprintln!("{lw:?} documents {:?}", t.elapsed());
        let t = Instant::now();
        let n: usize = docs.iter().map(|d| backend_nft::to_json_compact(d).len()).sum();
        eprintln!("{lw:?} compact json {:?} ({n} bytes)", t.elapsed());
        if std::env::args().nth(2).as_deref() == Some("noopt") { break; }
    }
    eprintln!("peak {:?} KiB", measure::peak_rss_kib());
    if std::env::args().nth(2).as_deref() == Some("sets") {
        for role in ["r0000", "r0001", "r0050", "r0099"] {
            let rs = pipeline::compile_role(&p, role);
            let mut v: Vec<(usize, String)> = rs.sets.values().map(|s| (s.addrs.v4.ranges().len() + s.addrs.v6.ranges().len(), s.name.clone())).collect();
            v.sort(); v.reverse();
            let total: usize = v.iter().map(|x| x.0).sum();
            eprintln!("{role}: {} sets, {total} elements, top {:?}", v.len(), &v[..v.len().min(5)]);
            let a = backend_nft::Lowering::Optimized.render(&rs).unwrap();
            let text = backend_nft::to_nft_text(&a);
            for line in text.lines().filter(|l| l.contains("vmap")).take(0) { eprintln!("{}", &line[..line.len().min(200)]); }
            let mut chains = 0; let mut elems = 0;
            for l in text.lines() { if l.trim_start().starts_with("chain ") { chains += 1; } elems += l.matches(" : jump").count(); }
            eprintln!("  optimized: {chains} chains, {elems} map elements, {} bytes text", text.len());
        }
    }
    if std::env::args().nth(2).as_deref() == Some("diff") {
        let b = gen::changed_flows(&doc, 0.01, 9);
        let q = pipeline::parse(&gen::to_json(&b));
        let t = Instant::now();
        let d = microseg_core::diff::diff(&p, &q);
        eprintln!("diff {:?}: {} changes", t.elapsed(), d.changes.len());
    }
}
#[allow(dead_code)]
fn _x() {}
