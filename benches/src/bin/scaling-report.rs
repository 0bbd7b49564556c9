//! Writes `docs/scaling.md` and `docs/scaling.png`: time and peak memory of
//! the pipeline against size (S, M, L), each size measured in a child
//! process of its own, and the machine it ran on.
//!
//! `cargo run -p microseg-benches --release --bin scaling-report [-- --kernel] [--sizes S,M,L] [--runs N]`
//!
//! `--kernel` adds the kernel benchmarks (root; see `kernel-bench`);
//! `--reuse` takes the sizes' figures from the last run
//! (`target/scaling-results.json`) instead of measuring them again;
//! `--reuse-kernel` the kernel figures too (the report only written again).
#![forbid(unsafe_code)]

use microseg_benches::gen::Size;
use microseg_benches::kernel::{self, KernelResults, Options};
use microseg_benches::measure::Machine;
use microseg_benches::report::{self, SizeResult};
use std::path::PathBuf;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Child mode: measure one size, print one JSON line.
    if let [flag, size, runs] = args.as_slice() {
        if flag == "--child" {
            let size = Size::named(size).expect("a size name");
            let r = report::measure_size(&size, runs.parse().unwrap_or(3));
            println!("{}", serde_json::to_string(&r).expect("serialises"));
            return ExitCode::SUCCESS;
        }
    }
    let mut sizes = vec!["S".to_string(), "M".into(), "L".into()];
    let mut runs = 3usize;
    let mut with_kernel = false;
    let mut reuse = false;
    let mut reuse_kernel = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--kernel" => with_kernel = true,
            "--reuse" => reuse = true,
            "--reuse-kernel" => {
                reuse = true;
                reuse_kernel = true;
            }
            "--sizes" => {
                sizes = it
                    .next()
                    .map(|v| v.split(',').map(String::from).collect())
                    .unwrap_or_default()
            }
            "--runs" => {
                runs = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(3)
                    .clamp(1, 20)
            }
            other => {
                eprintln!(
                    "unknown argument {other}; use --kernel, --reuse, --reuse-kernel, --sizes S,M,L, \
                     --runs N"
                );
                return ExitCode::from(2);
            }
        }
    }
    let exe = std::env::current_exe().expect("own path");
    let saved = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/scaling-results.json");
    let mut results: Vec<SizeResult> = Vec::new();
    if reuse {
        // The sizes of the last run (target/scaling-results.json), not measured again.
        let v: serde_json::Value = std::fs::read(&saved)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        results = serde_json::from_value(v["sizes"].clone()).unwrap_or_default();
        if results.is_empty() {
            eprintln!("--reuse: no results in {}", saved.display());
            return ExitCode::from(1);
        }
        sizes.clear();
    }
    for s in &sizes {
        if Size::named(s).is_none() {
            eprintln!("unknown size {s}");
            return ExitCode::from(2);
        }
        eprintln!("scaling-report: measuring {s} in a child process…");
        let out = Command::new(&exe)
            .args(["--child", s, &runs.to_string()])
            .output()
            .expect("run the child");
        if !out.status.success() {
            eprintln!(
                "scaling-report: size {s} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return ExitCode::from(1);
        }
        let r: SizeResult =
            serde_json::from_slice(&out.stdout).expect("the child prints one result");
        eprintln!("{}", serde_json::to_string(&r).unwrap_or_default());
        results.push(r);
    }
    let kernel: Option<KernelResults> = if reuse_kernel {
        // The kernel figures of the last run too: the report written again.
        let v: serde_json::Value = std::fs::read(&saved)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        match serde_json::from_value(v["kernel"].clone()) {
            Ok(Some(k)) => Some(k),
            _ => {
                eprintln!("--reuse-kernel: no kernel results in {}", saved.display());
                return ExitCode::from(1);
            }
        }
    } else if with_kernel {
        if let Err(e) = kernel::require_root() {
            eprintln!("scaling-report: {e}");
            return ExitCode::from(1);
        }
        match kernel::run(&Options::default()) {
            Ok(k) => Some(k),
            Err(e) => {
                eprintln!("scaling-report: kernel benchmarks: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        None
    };
    let _ = std::fs::write(
        &saved,
        serde_json::to_string_pretty(&serde_json::json!({"sizes": results, "kernel": kernel}))
            .unwrap_or_default(),
    );
    let machine = Machine::this();
    let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let mut command = String::from("cargo run -p microseg-benches --release --bin scaling-report");
    let mut flags = Vec::new();
    if with_kernel || reuse_kernel {
        flags.push("--kernel".to_string());
    }
    if reuse {
        flags.push("--reuse".to_string());
    } else if runs != 3 {
        flags.push(format!("--runs {runs}"));
    }
    if !flags.is_empty() {
        command.push_str(&format!(" -- {}", flags.join(" ")));
    }
    let md = report::markdown(&machine, &results, kernel.as_ref(), &command);
    let md_path = docs.join("scaling.md");
    let png_path = docs.join("scaling.png");
    if let Err(e) = std::fs::write(&md_path, md) {
        eprintln!("cannot write {}: {e}", md_path.display());
        return ExitCode::from(1);
    }
    let label = format!("{} cores, {}, {}", machine.cores, machine.cpu, machine.date);
    if let Err(e) = report::plot(&results, &png_path.to_string_lossy(), &label) {
        eprintln!("cannot draw {}: {e}", png_path.display());
        return ExitCode::from(1);
    }
    eprintln!("wrote {} and {}", md_path.display(), png_path.display());
    ExitCode::SUCCESS
}
