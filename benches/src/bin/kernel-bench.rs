//! Kernel benchmarks (root): apply vs raw nft, element delta vs full
//! apply, new-connection rate through the plain and the optimised ruleset
//! of L and through an empty ruleset. Not a test: run it on purpose.
//!
//! `cargo run -p microseg-benches --release --bin kernel-bench [-- --connections N --rounds N]`
//! prints the markdown section and writes `target/kernel-bench.json`.
#![forbid(unsafe_code)]

use microseg_benches::kernel::{self, Options};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut opts = Options::default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num = |what: &str| -> usize {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{what} needs a number"))
        };
        match a.as_str() {
            "--connections" => opts.connections = num("--connections").clamp(100, 100_000),
            "--rounds" => opts.rounds = num("--rounds").clamp(1, 10),
            "--applies" => opts.applies = num("--applies").clamp(1, 10),
            other => {
                eprintln!("unknown argument {other}; use --connections N, --rounds N, --applies N");
                return ExitCode::from(2);
            }
        }
    }
    if let Err(e) = kernel::require_root() {
        eprintln!("kernel-bench: {e}");
        return ExitCode::from(1);
    }
    match kernel::run(&opts) {
        Ok(k) => {
            print!("{}", k.markdown());
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/kernel-bench.json");
            let _ = std::fs::write(path, serde_json::to_string_pretty(&k).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kernel-bench: {e}");
            ExitCode::from(1)
        }
    }
}
