//! Prints a synthetic estate of the benchmarks (`microseg-benches`) as a JSON
//! policy: `cargo run --release --example bench_policy -- L > l.json`
//! (sizes `S`, `M`, `L`; `L` is the largest: 1,000 roles, 100k addresses,
//! 10k flows). `bench/bench_compile.py` compiles it through Python.

use microseg_benches::gen;

fn main() {
    let name = std::env::args().nth(1).unwrap_or_else(|| "L".into());
    let Some(size) = gen::Size::named(&name) else {
        eprintln!("unknown size {name:?}: use S, M or L");
        std::process::exit(2);
    };
    print!("{}", gen::to_json(&gen::policy_doc(&size, gen::SEED)));
}
