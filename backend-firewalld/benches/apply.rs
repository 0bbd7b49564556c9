//! Applying a policy with 2,000 addresses in its groups to a real firewalld
//! (private bus, own network namespace): this backend (bulk settings, one
//! reload) vs one D-Bus call per address and per rich rule (what
//! `firewall-cmd` loops and the common Ansible module do). Needs root.
//!
//! `cargo bench -p backend-firewalld --bench apply` prints criterion's
//! timings and, at the end, the ratio of the medians.

use backend_firewalld::sandbox::PrivateFirewalld;
use backend_firewalld::{baseline, FirewalldBackend, FirewalldConfig, FirewalldRenderer};
use criterion::{Criterion, SamplingMode};
use microseg_core::backend::Renderer;
use microseg_core::document::Format;
use microseg_core::ir::{compile, Target};
use microseg_core::Policy;
use std::cell::RefCell;
use std::fmt::Write;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// 2,000 scattered addresses (no two adjacent, so none merge into a prefix)
/// in three client groups, and a web tier that serves them.
fn policy() -> Policy {
    let addrs = |base: u32, n: u32| -> String {
        (0..n)
            .map(|i| format!("\"{}\"", Ipv4Addr::from(base + 2 * i)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut doc = String::from("version = 1\ntable = \"bench\"\n[groups]\n");
    writeln!(doc, "web = [\"10.10.1.10-10.10.1.19\"]").unwrap();
    writeln!(doc, "db = [\"10.10.1.30-10.10.1.39\"]").unwrap();
    writeln!(
        doc,
        "clients = [{}]",
        addrs(u32::from(Ipv4Addr::new(10, 100, 0, 1)), 1000)
    )
    .unwrap();
    writeln!(
        doc,
        "partners = [{}]",
        addrs(u32::from(Ipv4Addr::new(10, 110, 0, 1)), 600)
    )
    .unwrap();
    writeln!(
        doc,
        "admins = [{}]",
        addrs(u32::from(Ipv4Addr::new(10, 120, 0, 1)), 400)
    )
    .unwrap();
    doc.push_str(
        r#"
[roles.web]
[roles.db]
[[flows]]
name = "clients-web"
from = "clients"
to = "web"
ports = ["tcp/80", "tcp/443"]
[[flows]]
name = "partners-api"
from = "partners"
to = "web"
ports = ["tcp/8443", "tcp/9000-9010"]
[[flows]]
name = "admin-ssh"
from = "admins"
to = ["web", "db"]
ports = ["tcp/22"]
[[flows]]
name = "web-db"
from = "web"
to = "db"
ports = ["tcp/5432"]
[[flows]]
name = "no-partner-ssh"
from = "partners"
to = "web"
ports = ["tcp/22"]
action = "deny"
log = true
"#,
    );
    Policy::from_str_as(&doc, Format::Toml, None).expect("bench policy is valid")
}

fn clean(fw: &FirewalldBackend) {
    fw.remove_report().expect("remove");
}

fn main() {
    if !nix_is_root() {
        eprintln!("benches/apply: needs root (network namespaces, firewalld); skipped");
        return;
    }
    let policy = policy();
    let cfg: FirewalldConfig = FirewalldRenderer
        .render(&compile(&policy, &Target::Role("web".into())).unwrap())
        .unwrap();
    let entries: usize = cfg.ipsets.iter().map(|s| s.entries.len()).sum();
    let rules = cfg.zone.rich_rules.len() + cfg.policy.rich_rules.len();
    println!(
        "policy: {entries} ipset entries in {} ipsets, {rules} rich rules",
        cfg.ipsets.len()
    );

    let sandbox = PrivateFirewalld::start().expect("private firewalld");
    let fw = sandbox.backend().unwrap().with_table("bench");

    let ours = RefCell::new(Vec::new());
    let theirs = RefCell::new(Vec::new());
    let calls = RefCell::new((0u64, 0u64));

    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args();
    let mut g = c.benchmark_group("apply-2000-addresses");
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function("microseg (bulk settings, one reload)", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                clean(&fw);
                let before = fw.calls();
                let start = Instant::now();
                let plan = fw.plan_config(&cfg, None).unwrap();
                fw.apply_report(&plan).unwrap();
                let t = start.elapsed();
                calls.borrow_mut().0 = fw.calls() - before;
                ours.borrow_mut().push(t);
                total += t;
            }
            total
        })
    });
    g.bench_function("one D-Bus call per address and rich rule", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                clean(&fw);
                let start = Instant::now();
                let n = baseline::apply_one_call_per_item(&fw, &cfg).unwrap();
                let t = start.elapsed();
                calls.borrow_mut().1 = n;
                theirs.borrow_mut().push(t);
                total += t;
            }
            total
        })
    });
    g.finish();
    clean(&fw);
    c.final_summary();

    let median = |v: &RefCell<Vec<Duration>>| {
        let mut v = v.borrow().clone();
        v.sort();
        v[v.len() / 2]
    };
    let (a, b) = (median(&ours), median(&theirs));
    let (ca, cb) = *calls.borrow();
    println!(
        "microseg: median {a:.3?} ({ca} D-Bus calls, reading the current state included); one call per item: median {b:.3?} ({cb} D-Bus calls)"
    );
    println!(
        "ratio (one-call-per-item / microseg): {:.1}x",
        b.as_secs_f64() / a.as_secs_f64()
    );
}

fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}
