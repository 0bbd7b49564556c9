//! Kernel benchmarks (root; network namespaces, removed afterwards): apply
//! versus raw `nft`, an element delta versus a full apply, and the rate of
//! new TCP connections through the plain and the optimised ruleset of L and
//! through an empty ruleset.
//!
//! ```no_run
//! let results = microseg_benches::kernel::run(&microseg_benches::kernel::Options::default())?;
//! println!("{}", results.markdown());
//! # Ok::<(), String>(())
//! ```
//!
//! Every loop is bounded (a fixed count of connections, each with a 1 s
//! timeout); traffic goes only between the two namespaces of a
//! [`microseg_lab::Lab`] (no default route, no link to the host network).

use crate::gen::{self, SIZE_L};
use crate::measure;
use crate::pipeline;
use backend_nft::{Lowering, Nft, NftBackend};
use microseg_core::backend::Backend;
use microseg_core::ir::{Direction, HostRuleset};
use microseg_core::semantics::{Connection, Verdict};
use microseg_core::{ports::Proto, Policy};
use microseg_host::{ApplyOptions, Host, Persist, StateDir};
use microseg_lab::{HostSpec, Lab};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to run.
///
/// ```
/// let o = microseg_benches::kernel::Options::default();
/// assert_eq!((o.connections, o.rounds, o.applies), (10_000, 7, 5));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Connections per configuration and round.
    pub connections: usize,
    /// Rounds (configurations interleaved in each).
    pub rounds: usize,
    /// Repetitions of each apply measurement.
    pub applies: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            connections: 10_000,
            rounds: 7,
            applies: 5,
        }
    }
}

/// One connection-rate configuration.
///
/// ```
/// let r = microseg_benches::kernel::Rate { config: "empty".into(), rules: 0, per_second: 1000.0, rounds: vec![1000.0] };
/// assert_eq!(r.config, "empty");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    /// `empty`, `conntrack only`, `plain`, `optimised`.
    pub config: String,
    /// Rules a new connection's first packet meets before its verdict on
    /// the server's input chain (model path), for information.
    pub rules: usize,
    /// Median rate over the rounds, connections per second.
    pub per_second: f64,
    /// The rate of each round.
    pub rounds: Vec<f64>,
}

/// The apply measurements of one lowering.
///
/// ```no_run
/// # let a: microseg_benches::kernel::ApplyFigures = unimplemented!();
/// println!("{:.1}x", a.apply_replace_ms / a.delta_ms);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApplyFigures {
    /// `optimized` (the default of `apply`) or `plain`.
    pub lowering: String,
    /// Bytes of its compact nft JSON.
    pub json_bytes: usize,
    /// Raw `nft -j -f -` of the document, table absent (median, ms).
    pub raw_fresh_ms: f64,
    /// `microseg` apply (render, read, plan, snapshot, apply, record): a
    /// first apply, no table and no records (ms).
    pub apply_fresh_ms: f64,
    /// Raw `nft -j -f -` replacing an installed table of another structure (ms).
    pub raw_replace_ms: f64,
    /// `microseg` apply replacing an installed table of another structure (ms).
    pub apply_replace_ms: f64,
    /// The same with `refresh` (planned from a full read), ms.
    pub apply_refresh_ms: f64,
    /// Reading the installed table (`nft -j list table`), ms.
    pub read_ms: f64,
    /// Checking the installed structure against the record (`nft -t -j list ruleset`), ms.
    pub check_ms: f64,
    /// `microseg` apply of a one-address change: an element delta (ms).
    pub delta_ms: f64,
    /// The same change with a boot file written (the full path: render,
    /// plan against the record, the whole ruleset to the boot file).
    pub delta_persist_ms: f64,
    /// A full apply (replacing) with a boot file written.
    pub apply_replace_persist_ms: f64,
    /// The same delta's `nft -j -f -` transaction alone (ms).
    pub raw_delta_ms: f64,
    /// The same delta's nfnetlink batch alone (`NftBackend::apply_at`), ms.
    pub batch_delta_ms: f64,
    /// What the delta changed (from the plan).
    pub delta_plan: String,
}

/// Everything the kernel benchmarks measured.
///
/// ```no_run
/// # let k: microseg_benches::kernel::KernelResults = unimplemented!();
/// println!("{}", k.markdown());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelResults {
    /// The role applied (the hub of L).
    pub role: String,
    /// Its set elements.
    pub elements: usize,
    /// Per lowering, the default (`optimized`) first.
    pub applies: Vec<ApplyFigures>,
    /// Server address, client address and port of the connection-rate test.
    pub connection: String,
    /// Connection rates.
    pub rates: Vec<Rate>,
    /// The address of the second client, one the optimised ruleset finds
    /// in its interval map rather than among single addresses.
    #[serde(default)]
    pub ranged_client: Option<String>,
}

impl KernelResults {
    /// The kernel section of the scaling report, with the targets.
    ///
    /// ```no_run
    /// # let k: microseg_benches::kernel::KernelResults = unimplemented!();
    /// assert!(k.markdown().contains("raw nft"));
    /// ```
    pub fn markdown(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "Role `{}` of L: {} set elements in the plain lowering. Each figure is the median \
             of the runs, each lowering in a network namespace of its own; `microseg apply` is \
             `Host::apply` with that lowering: read the ruleset's generation over nfnetlink; \
             when it is still the one recorded after the last apply (nothing committed since, \
             by anyone) and the policy changed only set members, plan the element delta from \
             the IR and the members that apply recorded, without rendering (plain: the \
             difference of the sets' intervals; optimised: its address maps' elements, \
             partitioning again only the addresses whose membership changed); else render \
             from the IR and, with the generation unchanged, plan against the last apply's \
             record; else check the installed table's rules, chains and set definitions \
             against the record with `nft -t -j list ruleset`, or read the whole table where \
             there is no record, it does not match, or with `--refresh`; plan; snapshot and \
             records in a temporary state directory; a replacement as one `nft -j -f -` \
             transaction, an element delta as one nfnetlink batch guarded by the generation. \
             Persistence off. \"Replacing\" is a policy change that is not only members: the \
             hub under the policy with one more flow into it is applied, then the hub of L.\n",
            self.role, self.elements,
        );
        let _ = writeln!(
            o,
            "| lowering | measurement | raw nft | microseg apply | ratio | target |"
        );
        let _ = writeln!(o, "|---|---|---:|---:|---:|---|");
        for a in &self.applies {
            let l = match a.lowering.as_str() {
                "optimized" => format!("optimised (default), {:.1} MB", a.json_bytes as f64 / 1e6),
                other => format!("{other}, {:.1} MB", a.json_bytes as f64 / 1e6),
            };
            let _ = writeln!(
                o,
                "| {l} | full apply, first (no table, no records) | {:.0} ms | {:.0} ms | {:.2}× | ≤ 1.2× |",
                a.raw_fresh_ms,
                a.apply_fresh_ms,
                a.apply_fresh_ms / a.raw_fresh_ms
            );
            let _ = writeln!(
                o,
                "| {l} | full apply, replacing another ruleset | {:.0} ms | {:.0} ms | {:.2}× | ≤ 1.2× |",
                a.raw_replace_ms,
                a.apply_replace_ms,
                a.apply_replace_ms / a.raw_replace_ms
            );
            let _ = writeln!(
                o,
                "| {l} | full apply, replacing, `--refresh` (full read first) | {:.0} ms | {:.0} ms | {:.2}× | (≤ 1.2×) |",
                a.raw_replace_ms,
                a.apply_refresh_ms,
                a.apply_refresh_ms / a.raw_replace_ms
            );
            let _ = writeln!(
                o,
                "| {l} | one-address change (element delta) vs full apply | — | {:.0} ms vs {:.0} ms | {:.1}× faster | ≥ 50× |",
                a.delta_ms,
                a.apply_replace_ms,
                a.apply_replace_ms / a.delta_ms
            );
            let _ = writeln!(
                o,
                "| {l} | the same with a boot file written (the whole ruleset as nft text) vs a full apply with one | — | {:.0} ms vs {:.0} ms | {:.1}× faster | |",
                a.delta_persist_ms,
                a.apply_replace_persist_ms,
                a.apply_replace_persist_ms / a.delta_persist_ms
            );
            let _ = writeln!(
                o,
                "| {l} | one-address change: its transaction alone (one nfnetlink batch) vs a full load | {:.1} ms vs {:.0} ms | — | {:.0}× faster | (≥ 50×) |",
                a.batch_delta_ms,
                a.raw_replace_ms,
                a.raw_replace_ms / a.batch_delta_ms
            );
            let _ = writeln!(
                o,
                "| {l} | the same delta through nft 1.0.6 (`nft -j -f -`) vs a full load | {:.0} ms vs {:.0} ms | — | {:.1}× faster | |",
                a.raw_delta_ms,
                a.raw_replace_ms,
                a.raw_replace_ms / a.raw_delta_ms
            );
        }
        for a in &self.applies {
            let _ = writeln!(
                o,
                "\n{}: reading the installed table (`nft -j list table`) takes {:.0} ms; checking \
                 its structure against the record (`nft -t -j list ruleset`) {:.0} ms. The \
                 delta's plan: {}",
                a.lowering,
                a.read_ms,
                a.check_ms,
                a.delta_plan.trim()
            );
        }
        o.push('\n');
        let empty = self
            .rates
            .iter()
            .find(|r| r.config == "empty")
            .map_or(1.0, |r| r.per_second);
        let _ = writeln!(
            o,
            "New TCP connections between two namespaces ({}), connect + RST close, one at a \
             time, bounded count (an attempt unanswered within 200 ms is retried and its wait \
             not counted); \"server\": the hub's ruleset on the server's input hook, the \
             client unfiltered; \"both ends\": the client's role ruleset on its output hook \
             too{}:\n",
            self.connection,
            match &self.ranged_client {
                Some(r) => format!(
                    "; the last row connects from {r} instead, an address the optimised ruleset \
                     finds in its map of address intervals (an rbtree) after a miss in its map \
                     of single addresses (a hash), where the first client's address is found"
                ),
                None => String::new(),
            }
        );
        let _ = writeln!(o, "| ruleset | rules before the verdict (server input) | connections/s (median) | rounds | vs empty |");
        let _ = writeln!(o, "|---|---:|---:|---|---:|");
        for r in &self.rates {
            let rounds: Vec<String> = r.rounds.iter().map(|x| format!("{x:.0}")).collect();
            let _ = writeln!(
                o,
                "| {} | {} | {:.0} | {} | {:.0}% |",
                r.config,
                r.rules,
                r.per_second,
                rounds.join(", "),
                100.0 * r.per_second / empty
            );
        }
        o
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn sh(cmd: &str, args: &[&str], input: Option<&str>) -> Result<String, String> {
    use std::io::Write;
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs every kernel benchmark (needs root).
///
/// ```no_run
/// let k = microseg_benches::kernel::run(&Default::default())?;
/// assert!(k.rates.len() >= 3);
/// # Ok::<(), String>(())
/// ```
pub fn run(opts: &Options) -> Result<KernelResults, String> {
    let doc = gen::policy_doc(&SIZE_L, gen::SEED);
    let policy = pipeline::parse(&gen::to_json(&doc));
    let role = "r0000";
    let hub = pipeline::compile_role(&policy, role);
    let elements = hub
        .sets
        .values()
        .map(|s| s.addrs.v4.ranges().len() + s.addrs.v6.ranges().len())
        .sum();
    // The ruleset replaced: the hub under the policy with one more flow into
    // it (another structure: a policy change that is not only members).
    let mut before_doc = doc.clone();
    before_doc.flows.push(microseg_core::doc::FlowDoc {
        name: Some("bench-new".into()),
        from: microseg_core::doc::OneOrMany::One("r0001".into()),
        to: microseg_core::doc::OneOrMany::One(role.into()),
        services: vec![],
        ports: vec!["tcp/8443".into()],
        action: None,
        log: None,
    });
    let before_policy = Policy::from_doc(before_doc).map_err(|e| e.to_string())?;
    let before = pipeline::compile_role(&before_policy, role);
    let mut applies = Vec::new();
    for lowering in [Lowering::Optimized, Lowering::Plain] {
        applies.push(measure_applies(
            opts, lowering, &doc, &policy, &hub, &before,
        )?);
    }

    // --- connection rate --------------------------------------------------
    let (server, client, port, client_role) = pick_connection(&policy, &hub)?;
    let client_rs = pipeline::compile_role(&policy, &client_role);
    eprintln!("kernel: connections {client} ({client_role}) -> {server} ({role}) tcp/{port}");
    let ranged = pick_ranged_client(&policy, &hub, server, client, port)?;
    match ranged {
        Some(r) => {
            eprintln!("kernel: connections from an address range: {r} -> {server} tcp/{port}")
        }
        None => eprintln!("kernel: no client in an address range found"),
    }
    let rates = connection_rates(opts, &hub, &client_rs, server, client, ranged, port)?;
    Ok(KernelResults {
        role: role.into(),
        elements,
        applies,
        connection: format!("{client} ({client_role}) → {server} ({role}) tcp/{port}"),
        ranged_client: ranged.map(|r| r.to_string()),
        rates,
    })
}

/// The apply measurements of the hub with `lowering` (a namespace and
/// state directory of their own): first and replacing applies against raw
/// nft, reads, and the one-address change.
fn measure_applies(
    opts: &Options,
    lowering: Lowering,
    doc: &microseg_core::doc::PolicyDoc,
    policy: &Policy,
    hub: &HostRuleset,
    before: &HostRuleset,
) -> Result<ApplyFigures, String> {
    let role = "r0000";
    let installed = lowering.render(hub).map_err(|e| e.to_string())?;
    let json = backend_nft::to_json_compact(&installed);
    eprintln!(
        "kernel: {role} of L, {lowering:?} lowering, {} bytes of JSON",
        json.len()
    );

    // --- apply vs raw nft -------------------------------------------------
    let ns = microseg_lab::Netns::new("msbench").map_err(|e| e.to_string())?;
    let nft = Nft::in_netns(ns.name());
    let state_dir = std::env::temp_dir().join(format!("msbench-state-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state_dir);
    let host = Host::new(
        NftBackend::new(nft.clone(), &policy.table).with_lowering(lowering),
        StateDir::resolve(Some(state_dir.clone())),
    );
    let apply_opts = ApplyOptions {
        persist: Persist::Off,
        ..ApplyOptions::default()
    };
    let remove = || NftBackend::new(nft.clone(), &policy.table).remove();
    let before_json =
        backend_nft::to_json_compact(&lowering.render(before).map_err(|e| e.to_string())?);
    let (mut raw_fresh, mut apply_fresh, mut raw_replace, mut apply_replace) =
        (vec![], vec![], vec![], vec![]);
    let (mut apply_refresh, mut read, mut check) = (vec![], vec![], vec![]);
    // Each timed step starts on a quiet machine: an apply frees its
    // 100,000s of elements on a thread of its own after it returns.
    let settle = || std::thread::sleep(Duration::from_millis(400));
    let raw = |doc: &str| -> Result<f64, String> {
        settle();
        let t = Instant::now();
        sh(
            "ip",
            &["netns", "exec", ns.name(), "nft", "-j", "-f", "-"],
            Some(doc),
        )?;
        Ok(ms(t.elapsed()))
    };
    let refresh_opts = ApplyOptions {
        refresh: true,
        ..apply_opts.clone()
    };
    for i in 0..opts.applies {
        eprintln!("kernel: apply round {}", i + 1);
        remove().map_err(|e| e.to_string())?;
        raw_fresh.push(raw(&json)?);
        remove().map_err(|e| e.to_string())?;
        // A first apply: no table and no records.
        let _ = std::fs::remove_dir_all(&state_dir);
        settle();
        let t = Instant::now();
        host.apply(hub, &apply_opts).map_err(|e| e.to_string())?;
        apply_fresh.push(ms(t.elapsed()));
        // Replace: the previous policy's ruleset installed, then this one.
        raw(&before_json)?;
        raw_replace.push(raw(&json)?);
        host.apply(before, &apply_opts).map_err(|e| e.to_string())?;
        settle();
        let t = Instant::now();
        let report = host.apply(hub, &apply_opts).map_err(|e| e.to_string())?;
        apply_replace.push(ms(t.elapsed()));
        if report.plan != microseg_host::PlanKind::Replace {
            return Err(format!("expected a replacement, got {}", report.plan));
        }
        host.apply(before, &apply_opts).map_err(|e| e.to_string())?;
        settle();
        let t = Instant::now();
        host.apply(hub, &refresh_opts).map_err(|e| e.to_string())?;
        apply_refresh.push(ms(t.elapsed()));
        let backend = NftBackend::new(nft.clone(), &policy.table);
        settle();
        let t = Instant::now();
        let installed = backend.read().map_err(|e| e.to_string())?;
        read.push(ms(t.elapsed()));
        let installed = installed.ok_or("the table is not installed")?;
        settle();
        let t = Instant::now();
        if !backend
            .installed_structure()
            .map_err(|e| e.to_string())?
            .is_some_and(|s| s.same_structure(&installed))
        {
            return Err("the installed table does not have its own structure".into());
        }
        check.push(ms(t.elapsed()));
    }

    // --- one-address change: element delta --------------------------------
    let mut deltas = vec![];
    let (mut deltas_persist, mut replace_persist) = (vec![], vec![]);
    let persist_opts = ApplyOptions {
        persist: microseg_host::Persist::To(state_dir.join("boot.nft")),
        ..apply_opts.clone()
    };
    let mut raw_deltas = vec![];
    let mut batch_deltas = vec![];
    let mut delta_plan = String::new();
    for i in 0..opts.applies {
        // A free address at the end of role r0005's block, away from its entries.
        let mut changed = doc.clone();
        let extra = format!("10.0.23.{}", 200 - 2 * i);
        changed
            .groups
            .get_mut("r0005")
            .ok_or("no group r0005")?
            .push(extra);
        let p2 = Policy::from_doc(changed).map_err(|e| e.to_string())?;
        let rs2 = pipeline::compile_role(&p2, role);
        // The delta's transaction alone, then back.
        let backend = NftBackend::new(nft.clone(), &policy.table);
        let desired = lowering.render(&rs2).map_err(|e| e.to_string())?;
        let current = backend.read().map_err(|e| e.to_string())?;
        let plan = backend
            .plan(&desired, current.as_ref())
            .map_err(|e| e.to_string())?;
        raw_deltas.push(raw(&plan.to_json().ok_or("an empty plan")?)?);
        let now = backend.read().map_err(|e| e.to_string())?;
        let back = backend
            .plan(&installed, now.as_ref())
            .map_err(|e| e.to_string())?;
        raw(&back.to_json().ok_or("an empty plan")?)?;
        // The delta's nfnetlink batch alone, then back.
        let current = backend.read().map_err(|e| e.to_string())?;
        let plan = backend
            .plan(&desired, current.as_ref())
            .map_err(|e| e.to_string())?;
        let at = backend.generation();
        settle();
        let t = Instant::now();
        backend
            .apply_at(&plan, at.as_ref())
            .map_err(|e| e.to_string())?;
        batch_deltas.push(ms(t.elapsed()));
        let now = backend.read().map_err(|e| e.to_string())?;
        let back = backend
            .plan(&installed, now.as_ref())
            .map_err(|e| e.to_string())?;
        backend.apply_at(&back, None).map_err(|e| e.to_string())?;
        // Through microseg, after an apply of the hub has recorded the
        // generation (the steps above committed behind its back).
        host.apply(hub, &apply_opts).map_err(|e| e.to_string())?;
        settle();
        let t = Instant::now();
        let report = host.apply(&rs2, &apply_opts).map_err(|e| e.to_string())?;
        deltas.push(ms(t.elapsed()));
        if report.plan != microseg_host::PlanKind::Incremental
            || !report
                .plan_text
                .contains("planned from the policy's set members")
        {
            return Err(format!(
                "expected an element delta planned from the set members, got {}:\n{}",
                report.plan, report.plan_text
            ));
        }
        delta_plan = report
            .plan_text
            .lines()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        // Back to the original, also as a delta.
        host.apply(hub, &apply_opts).map_err(|e| e.to_string())?;
        // With a boot file: the delta, then a replacement.
        settle();
        let t = Instant::now();
        host.apply(&rs2, &persist_opts).map_err(|e| e.to_string())?;
        deltas_persist.push(ms(t.elapsed()));
        host.apply(before, &persist_opts)
            .map_err(|e| e.to_string())?;
        settle();
        let t = Instant::now();
        host.apply(hub, &persist_opts).map_err(|e| e.to_string())?;
        replace_persist.push(ms(t.elapsed()));
    }
    let _ = std::fs::remove_dir_all(&state_dir);
    drop(ns);
    Ok(ApplyFigures {
        lowering: match lowering {
            Lowering::Plain => "plain".into(),
            Lowering::Optimized => "optimized".into(),
        },
        json_bytes: json.len(),
        raw_fresh_ms: median(raw_fresh),
        apply_fresh_ms: median(apply_fresh),
        raw_replace_ms: median(raw_replace),
        apply_replace_ms: median(apply_replace),
        apply_refresh_ms: median(apply_refresh),
        read_ms: median(read),
        check_ms: median(check),
        delta_ms: median(deltas),
        delta_persist_ms: median(deltas_persist),
        apply_replace_persist_ms: median(replace_persist),
        raw_delta_ms: median(raw_deltas),
        batch_delta_ms: median(batch_deltas),
        delta_plan,
    })
}

/// The allowed IPv4 TCP connection into the hub whose deciding rule sits
/// deepest in the hub's input chain (the plain lowering's worst case among
/// allowed connections), from a host of exactly one role.
fn pick_connection(
    policy: &Policy,
    hub: &HostRuleset,
) -> Result<(IpAddr, IpAddr, u16, String), String> {
    let server = hub
        .hosts
        .ranges_v4()
        .next()
        .map(|(a, _)| IpAddr::V4(a))
        .ok_or("the hub has no IPv4 host")?;
    let mut best: Option<(usize, IpAddr, u16, String)> = None;
    for (i, rule) in hub.input.iter().enumerate().rev() {
        let microseg_core::ir::RuleMatch::Packet(m) = &rule.matches else {
            continue;
        };
        let (microseg_core::ir::ProtoMatch::Tcp(ports), Some(src)) = (&m.proto, &m.src) else {
            continue;
        };
        if rule.verdict != Verdict::Accept {
            continue;
        }
        let Some(set) = hub.sets.get(src) else {
            continue;
        };
        let Some((a, _)) = set.addrs.ranges_v4().next() else {
            continue;
        };
        let client = IpAddr::V4(a);
        let Some(port) = ports.first() else { continue };
        let roles = policy.roles_of(client);
        if roles.len() != 1 || client == server {
            continue;
        }
        let c = Connection::new(client, server, Proto::Tcp(port));
        let hit = hub.decide(Direction::Input, &c);
        if hit.rule != Some(i) || !policy.decide(&c).allowed() {
            continue;
        }
        best = Some((i, client, port, roles[0].name.clone()));
        break;
    }
    let (_, client, port, role) = best.ok_or("no allowed TCP connection into the hub")?;
    Ok((server, client, port, role))
}

/// A connection-rate configuration: a name, the server's and (if any) the
/// client's document, the rules met, and whether the second client (the
/// one in an address range) connects.
type Config = (&'static str, Option<(String, Option<String>)>, usize, bool);

/// A second client for the optimised ruleset's other level-1 path: an
/// address of one role allowed to open `port` on the hub that the hub's
/// optimised input chain finds in its interval map (after a miss in the
/// map of single addresses: one rule more than `client`'s path).
fn pick_ranged_client(
    policy: &Policy,
    hub: &HostRuleset,
    server: IpAddr,
    client: IpAddr,
    port: u16,
) -> Result<Option<IpAddr>, String> {
    let art = Lowering::Optimized.render(hub).map_err(|e| e.to_string())?;
    let model =
        backend_nft::model::NftModel::from_document(art.document()).map_err(|e| e.to_string())?;
    let rules = |a: IpAddr| {
        model
            .decide(
                Direction::Input,
                &Connection::new(a, server, Proto::Tcp(port)),
            )
            .map(|d| d.rules)
            .ok()
    };
    let Some(single) = rules(client) else {
        return Ok(None);
    };
    for set in hub.sets.values() {
        for (lo, hi) in set.addrs.ranges_v4().filter(|(lo, hi)| lo < hi).take(50) {
            let mid = u32::from(lo) + (u32::from(hi) - u32::from(lo)) / 2;
            let a = IpAddr::V4(std::net::Ipv4Addr::from(mid));
            if a == server || a == client || policy.roles_of(a).len() != 1 {
                continue;
            }
            let c = Connection::new(a, server, Proto::Tcp(port));
            if policy.decide(&c).allowed() && rules(a) == Some(single + 1) {
                return Ok(Some(a));
            }
        }
    }
    Ok(None)
}

fn connection_rates(
    opts: &Options,
    server_rs: &HostRuleset,
    client_rs: &HostRuleset,
    server: IpAddr,
    client: IpAddr,
    ranged: Option<IpAddr>,
    port: u16,
) -> Result<Vec<Rate>, String> {
    let mut hosts = vec![
        HostSpec::new("server", [server]),
        HostSpec::new("client", [client]),
    ];
    hosts.extend(ranged.map(|r| HostSpec::new("ranged", [r])));
    let lab = Lab::new(&hosts).map_err(|e| e.to_string())?;
    let rns = match ranged {
        Some(_) => Some(
            lab.netns_name("ranged")
                .map_err(|e| e.to_string())?
                .to_string(),
        ),
        None => None,
    };
    let sns = lab
        .netns_name("server")
        .map_err(|e| e.to_string())?
        .to_string();
    let cns = lab
        .netns_name("client")
        .map_err(|e| e.to_string())?
        .to_string();
    // Short CLOSE timeouts so that bounded runs do not fill conntrack.
    for ns in [Some(&sns), Some(&cns), rns.as_ref()].into_iter().flatten() {
        let _ = sh(
            "ip",
            &[
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                "net.netfilter.nf_conntrack_tcp_timeout_close=1",
            ],
            None,
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let addr = SocketAddr::new(server, port);
    let server_thread = {
        let (stop, sns) = (Arc::clone(&stop), sns.clone());
        std::thread::spawn(move || -> Result<(), String> {
            enter(&sns)?;
            let l = TcpListener::bind(SocketAddr::new(
                IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                port,
            ))
            .map_err(|e| e.to_string())?;
            for s in l.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                drop(s);
            }
            Ok(())
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let configs: Vec<Config> = {
        let ct_only = |table: &str| {
            format!(
                r#"{{"nftables": [{{"add": {{"table": {{"family": "inet", "name": "{table}"}}}}}},
                {{"add": {{"chain": {{"family": "inet", "table": "{table}", "name": "input", "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}}}}},
                {{"add": {{"chain": {{"family": "inet", "table": "{table}", "name": "output", "type": "filter", "hook": "output", "prio": 0, "policy": "accept"}}}}}},
                {{"add": {{"rule": {{"family": "inet", "table": "{table}", "chain": "input", "expr": [{{"match": {{"op": "in", "left": {{"ct": {{"key": "state"}}}}, "right": ["established", "related"]}}}}, {{"accept": null}}]}}}}}},
                {{"add": {{"rule": {{"family": "inet", "table": "{table}", "chain": "output", "expr": [{{"match": {{"op": "in", "left": {{"ct": {{"key": "state"}}}}, "right": ["established", "related"]}}}}, {{"accept": null}}]}}}}}}]}}"#
            )
        };
        let doc = |l: Lowering, rs: &HostRuleset| -> Result<String, String> {
            Ok(backend_nft::to_json_compact(
                &l.render(rs).map_err(|e| e.to_string())?,
            ))
        };
        // Rules the connection's first packet meets on the server's input hook (the model's count).
        let met = |l: Lowering, client: IpAddr| -> usize {
            let c = Connection::new(client, server, Proto::Tcp(port));
            l.render(server_rs)
                .map_err(|e| e.to_string())
                .and_then(|a| {
                    backend_nft::model::NftModel::from_document(a.document())
                        .and_then(|m| m.decide(Direction::Input, &c))
                        .map_err(|e| e.to_string())
                })
                .map_or_else(
                    |e| {
                        eprintln!("kernel: model of the {l:?} ruleset: {e}");
                        0
                    },
                    |d| d.rules,
                )
        };
        let (plain_s, plain_c) = (
            doc(Lowering::Plain, server_rs)?,
            doc(Lowering::Plain, client_rs)?,
        );
        let (opt_s, opt_c) = (
            doc(Lowering::Optimized, server_rs)?,
            doc(Lowering::Optimized, client_rs)?,
        );
        let (met_plain, met_opt) = (
            met(Lowering::Plain, client),
            met(Lowering::Optimized, client),
        );
        let mut configs = vec![
            ("empty", None, 0, false),
            // The hub's ruleset on the server only: what the L ruleset costs
            // the host that enforces it.
            (
                "conntrack only, server",
                Some((ct_only(&server_rs.table), None)),
                1,
                false,
            ),
            (
                "plain, server",
                Some((plain_s.clone(), None)),
                met_plain,
                false,
            ),
            (
                "optimised, server",
                Some((opt_s.clone(), None)),
                met_opt,
                false,
            ),
            // Both ends filtered (the client's role ruleset on its output
            // hook too): two connection-tracking tables on the same two cores.
            (
                "conntrack only, both ends",
                Some((ct_only(&server_rs.table), Some(ct_only(&client_rs.table)))),
                1,
                false,
            ),
            (
                "plain, both ends",
                Some((plain_s, Some(plain_c))),
                met_plain,
                false,
            ),
            (
                "optimised, both ends",
                Some((opt_s.clone(), Some(opt_c))),
                met_opt,
                false,
            ),
        ];
        if let Some(r) = ranged {
            // The other level-1 path: a miss among single addresses, then
            // the interval map (the empty ruleset's rate is the same
            // from either client: same lab, same path).
            configs.push((
                "optimised, server, client in an address range",
                Some((opt_s, None)),
                met(Lowering::Optimized, r),
                true,
            ));
        }
        configs
    };
    let mut rounds: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    let table = server_rs.table.clone();
    for round in 0..opts.rounds {
        // Every other round in reverse order, so that no configuration
        // always runs first or last (the machine drifts within a round).
        let mut order: Vec<usize> = (0..configs.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for k in order {
            let (name, docs, _, from_range) = &configs[k];
            for ns in [&sns, &cns] {
                let t = format!(
                    r#"{{"nftables": [{{"add": {{"table": {{"family": "inet", "name": "{table}"}}}}}}, {{"delete": {{"table": {{"family": "inet", "name": "{table}"}}}}}}]}}"#
                );
                sh(
                    "ip",
                    &["netns", "exec", ns, "nft", "-j", "-f", "-"],
                    Some(&t),
                )?;
            }
            if let Some((s, c)) = docs {
                sh(
                    "ip",
                    &["netns", "exec", &sns, "nft", "-j", "-f", "-"],
                    Some(s),
                )?;
                if let Some(c) = c {
                    sh(
                        "ip",
                        &["netns", "exec", &cns, "nft", "-j", "-f", "-"],
                        Some(c),
                    )?;
                }
            }
            std::thread::sleep(Duration::from_millis(1500));
            let n = opts.connections;
            let cns2 = match (from_range, &rns) {
                (true, Some(r)) => r.clone(),
                _ => cns.clone(),
            };
            let rate = std::thread::spawn(move || -> Result<f64, String> {
                enter(&cns2)?;
                // Warm up, then measure.
                connect_loop(addr, 200)?;
                let t = Instant::now();
                let (retries, lost) = connect_loop(addr, n)?;
                if retries > 0 {
                    eprintln!("kernel: {retries} connection attempt(s) unanswered, retried ({lost:?} not counted)");
                }
                Ok(n as f64 / t.elapsed().saturating_sub(lost).as_secs_f64())
            })
            .join()
            .map_err(|_| "client thread panicked".to_string())??;
            eprintln!(
                "kernel: round {} {name}: {rate:.0} connections/s",
                round + 1
            );
            rounds[k].push(rate);
        }
    }
    stop.store(true, Ordering::SeqCst);
    // Wake the accept loop (no ruleset left that could stop it).
    let cns2 = cns.clone();
    let _ = std::thread::spawn(move || {
        let _ = enter(&cns2);
        let _ = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1));
    })
    .join();
    let _ = server_thread.join();
    drop(lab);
    Ok(configs
        .iter()
        .zip(rounds)
        .map(|((name, _, rules, _), r)| Rate {
            config: name.to_string(),
            rules: *rules,
            per_second: median(r.clone()),
            rounds: r,
        })
        .collect())
}

/// `n` connections, one at a time; each closed with a reset (no
/// TIME_WAIT). A connection attempt that gets no answer within 200 ms (a
/// lost SYN) is retried; more than 1% of them is an error. Returns the
/// retries and the time spent waiting for them.
fn connect_loop(addr: SocketAddr, n: usize) -> Result<(usize, Duration), String> {
    use socket2::{Domain, Socket, Type};
    let mut retries = 0;
    let mut lost = Duration::ZERO;
    for i in 0..n {
        loop {
            let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)
                .map_err(|e| e.to_string())?;
            s.set_linger(Some(Duration::ZERO))
                .map_err(|e| e.to_string())?;
            let t = Instant::now();
            match s.connect_timeout(&addr.into(), Duration::from_millis(200)) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut && retries < n / 100 + 1 => {
                    retries += 1;
                    lost += t.elapsed();
                }
                Err(e) => return Err(format!("connection {i} to {addr}: {e}")),
            }
        }
    }
    Ok((retries, lost))
}

/// Moves the calling thread into a named network namespace.
fn enter(ns: &str) -> Result<(), String> {
    let f = std::fs::File::open(format!("/run/netns/{ns}")).map_err(|e| e.to_string())?;
    nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string())
}

/// Refuses to run without root, saying why.
///
/// ```no_run
/// microseg_benches::kernel::require_root()?;
/// # Ok::<(), String>(())
/// ```
pub fn require_root() -> Result<(), String> {
    microseg_lab::require_root("the kernel benchmarks (network namespaces, nftables rules)")
        .map_err(|e| e.to_string())
}

/// Peak memory of this process, for the log.
///
/// ```
/// assert!(microseg_benches::kernel::peak_mib() > 0.0);
/// ```
pub fn peak_mib() -> f64 {
    measure::peak_rss_kib().unwrap_or(0) as f64 / 1024.0
}
