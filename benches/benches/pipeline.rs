//! criterion benchmarks of the pipeline on the synthetic estates S, M, L:
//! parse + validate, compile one role, compile all roles, render nft JSON
//! (plain and optimised), and the exact semantic diff of two policies that
//! differ in 1% of their flows.
//!
//! `cargo bench -p microseg-benches` (all), or e.g.
//! `cargo bench -p microseg-benches -- compile_one_role`.
//! The diff runs on every size.

use backend_nft::Lowering;
use criterion::{BenchmarkId, Criterion};
use microseg_benches::gen::{self, SIZES};
use microseg_benches::pipeline;
use std::hint::black_box;
use std::time::Duration;

fn bench(c: &mut Criterion) {
    for size in SIZES {
        let doc = gen::policy_doc(&size, gen::SEED);
        let text = gen::to_json(&doc);
        let policy = pipeline::parse(&text);
        let big = size.name == "L";
        let mut g = c.benchmark_group(format!("pipeline/{}", size.name));
        if big {
            g.sample_size(10).measurement_time(Duration::from_secs(20));
        } else {
            g.sample_size(20).measurement_time(Duration::from_secs(5));
        }
        g.bench_function("parse_validate", |b| {
            b.iter(|| pipeline::parse(black_box(&text)))
        });
        let mid = gen::role_name(size.roles / 2);
        for role in ["r0000", mid.as_str()] {
            g.bench_with_input(BenchmarkId::new("compile_one_role", role), role, |b, r| {
                b.iter(|| pipeline::compile_role(&policy, r))
            });
        }
        g.bench_function("compile_all_roles", |b| {
            b.iter(|| pipeline::compile_all(&policy))
        });
        let hub = pipeline::compile_role(&policy, "r0000");
        for lowering in [Lowering::Plain, Lowering::Optimized] {
            g.bench_with_input(
                BenchmarkId::new("render_nft_json_hub_role", format!("{lowering:?}")),
                &lowering,
                |b, l| b.iter(|| pipeline::render_json(&hub, *l)),
            );
        }
        g.bench_function("compile_and_render_all_roles_plain", |b| {
            b.iter(|| pipeline::compile_and_render_all(&policy, Lowering::Plain))
        });
        let other = pipeline::parse(&gen::to_json(&gen::changed_flows(&doc, 0.01, 9)));
        g.bench_function("diff_1pct_flows", |b| {
            b.iter(|| microseg_core::diff::diff(&policy, &other))
        });
        g.finish();
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
