//! `microseg`: check, compile, query and show microsegmentation policies.
//!
//! ```text
//! microseg check examples/three-tier.toml
//! microseg compile examples/three-tier.toml --role web --format nft
//! microseg query examples/three-tier.toml --from 10.10.1.10 --to 10.10.1.30 --port tcp/5432
//! microseg matrix examples/three-tier.toml
//! ```
//!
//! A thin layer over the crates: every subcommand parses its flags, calls the
//! library and prints. Exit codes: 0 success, 1 the policy or system is not
//! as asked, 2 usage error.
#![forbid(unsafe_code)]

use backend_nft::NftRenderer;
use clap::{Parser, Subcommand, ValueEnum};
use microseg_core::backend::Renderer;
use microseg_core::ir::{self, Target};
use microseg_core::ports::Proto;
use microseg_core::semantics::{Connection, Decision, SideDecision};
use microseg_core::{Policy, Severity};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Errors of the command line layer.
#[derive(Debug, thiserror::Error)]
enum CliError {
    /// The policy or the request is not valid.
    #[error("{0}")]
    Core(#[from] microseg_core::Error),
    /// The nftables backend failed.
    #[error("{0}")]
    Nft(#[from] backend_nft::NftError),
    /// The verification lab failed.
    #[error("{0}")]
    Verify(#[from] microseg_verify::VerifyError),
    /// Bad usage that clap cannot see (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The check found errors (already printed).
    #[error("the policy has errors")]
    Reported,
}

#[derive(Parser)]
#[command(name = "microseg", version, about = "One declarative microsegmentation policy → least-privilege host firewalls")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse, validate and lint a policy; print a summary and warnings.
    Check {
        /// The policy file (.toml, .json, .yaml).
        policy: PathBuf,
        /// Print diagnostics and the summary as JSON.
        #[arg(long)]
        json: bool,
        /// Exit 1 on warnings too.
        #[arg(long)]
        strict: bool,
    },
    /// Print what a backend would install for a role or a host.
    Compile {
        /// The policy file.
        policy: PathBuf,
        #[command(flatten)]
        target: TargetArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = CompileFormat::Nft)]
        format: CompileFormat,
    },
    /// The decision for one new connection, and why.
    Query {
        /// The policy file.
        policy: PathBuf,
        /// Source address.
        #[arg(long)]
        from: IpAddr,
        /// Destination address.
        #[arg(long)]
        to: IpAddr,
        /// tcp/PORT, udp/PORT, icmp or icmpv6.
        #[arg(long)]
        port: String,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Build throw-away network namespaces, install the compiled rules, probe
    /// every host pair with real connections and compare with the policy (root).
    Verify {
        /// The policy file.
        policy: PathBuf,
        /// The backend that installs the rules.
        #[arg(long, value_enum, default_value_t = BackendKind::Nft)]
        backend: BackendKind,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Who may reach whom on which ports (roles and named groups).
    Matrix {
        /// The policy file.
        policy: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct TargetArgs {
    /// Compile for every host of this role.
    #[arg(long)]
    role: Option<String>,
    /// Compile for one host address (the union of its roles).
    #[arg(long)]
    host: Option<IpAddr>,
}

impl TargetArgs {
    fn target(&self) -> Target {
        match (&self.role, self.host) {
            (Some(r), _) => Target::Role(r.clone()),
            (None, Some(h)) => Target::Host(h),
            (None, None) => unreachable!("clap requires one of --role/--host"),
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendKind {
    /// nftables (the kernel's nf_tables through `nft -j`).
    Nft,
}

#[derive(Clone, Copy, ValueEnum)]
enum CompileFormat {
    /// An nft script for `nft -f` that replaces only the policy's table.
    Nft,
    /// A libnftables JSON document for `nft -j -f`.
    NftJson,
    /// The backend-neutral IR as JSON.
    Ir,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(CliError::Reported) => ExitCode::from(1),
        Err(CliError::Usage(m)) => {
            eprintln!("error: {m}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("{}", prefix_error(&e.to_string()));
            ExitCode::from(1)
        }
    }
}

/// Diagnostics already say `error:`; other messages get the prefix.
fn prefix_error(msg: &str) -> String {
    if msg.contains("error: ") {
        msg.to_string()
    } else {
        format!("error: {msg}")
    }
}

fn load(path: &PathBuf) -> Result<Policy, CliError> {
    Ok(Policy::from_file(path)?)
}

fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Check { policy, json, strict } => check(&policy, json, strict),
        Command::Compile { policy, target, format } => {
            let p = load(&policy)?;
            let rs = ir::compile(&p, &target.target())?;
            let out = match format {
                CompileFormat::Nft => backend_nft::to_nft_text(&NftRenderer.render(&rs)?),
                CompileFormat::NftJson => backend_nft::to_json(&NftRenderer.render(&rs)?),
                CompileFormat::Ir => serde_json::to_string_pretty(&rs).expect("IR serialises"),
            };
            print!("{out}");
            if !out.ends_with('\n') {
                println!();
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Query { policy, from, to, port, json } => {
            let p = load(&policy)?;
            let proto: Proto = port.parse().map_err(CliError::Usage)?;
            let c = Connection::new(from, to, proto);
            c.validate().map_err(CliError::Usage)?;
            let d = p.decide(&c);
            if json {
                println!("{}", serde_json::to_string_pretty(&query_json(&c, &d)).expect("serialises"));
            } else {
                print!("{}", query_text(&c, &d));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { policy, backend, json } => {
            let p = load(&policy)?;
            let BackendKind::Nft = backend;
            let install = |lab: &microseg_lab::Lab, host: &str, rs: &microseg_core::ir::HostRuleset| {
                let ns = lab.netns_name(host).map_err(|e| e.to_string())?;
                let art = NftRenderer.render(rs).map_err(|e| e.to_string())?;
                backend_nft::Nft::in_netns(ns).apply_json(&art).map_err(|e| e.to_string())
            };
            let report = microseg_verify::verify(&p, &install)?;
            if json {
                let v = serde_json::json!({ "ok": report.ok(), "mismatches": report.mismatches(), "report": report });
                println!("{}", serde_json::to_string_pretty(&v).expect("serialises"));
            } else {
                print!("{}", report.to_text());
            }
            Ok(if report.ok() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Matrix { policy, json } => {
            let p = load(&policy)?;
            let m = microseg_core::matrix::matrix(&p);
            if json {
                println!("{}", serde_json::to_string_pretty(&m).expect("serialises"));
            } else {
                print!("{}", m.to_text());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn check(path: &PathBuf, json: bool, strict: bool) -> Result<ExitCode, CliError> {
    let p = match Policy::from_file(path) {
        Ok(p) => p,
        Err(microseg_core::Error::Invalid(diags)) => {
            if json {
                let v = serde_json::json!({ "ok": false, "diagnostics": diags });
                println!("{}", serde_json::to_string_pretty(&v).expect("serialises"));
            } else {
                for d in &diags {
                    eprintln!("{d}");
                }
                let n = diags.iter().filter(|d| d.severity == Severity::Error).count();
                eprintln!("{}: {n} error{}", path.display(), if n == 1 { "" } else { "s" });
            }
            return Err(CliError::Reported);
        }
        Err(e) => return Err(e.into()),
    };
    let warnings = microseg_core::lint::lint(&p);
    let managed: u128 = p.managed.v4.ranges().iter().map(|&(a, b)| u128::from(b - a) + 1).sum::<u128>()
        + p.managed.v6.ranges().iter().map(|&(a, b)| (b - a).saturating_add(1)).sum::<u128>();
    if json {
        let v = serde_json::json!({
            "ok": true,
            "table": p.table,
            "groups": p.groups.len(),
            "services": p.services.len(),
            "roles": p.roles.len(),
            "flows": p.flows.len(),
            "managed_addresses": managed.to_string(),
            "diagnostics": warnings,
        });
        println!("{}", serde_json::to_string_pretty(&v).expect("serialises"));
    } else {
        for w in &warnings {
            eprintln!("{w}");
        }
        println!(
            "{}: ok — table {}, {} groups, {} services, {} roles, {} flows, {} managed addresses, {} warning{}",
            path.display(),
            p.table,
            p.groups.len(),
            p.services.len(),
            p.roles.len(),
            p.flows.len(),
            managed,
            warnings.len(),
            if warnings.len() == 1 { "" } else { "s" }
        );
    }
    if strict && !warnings.is_empty() {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn side_json(s: &Option<SideDecision>) -> serde_json::Value {
    match s {
        None => serde_json::Value::Null,
        Some(s) => serde_json::json!({
            "verdict": s.verdict.as_str(),
            "roles": s.roles,
            "reasons": s.reasons.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        }),
    }
}

fn query_json(c: &Connection, d: &Decision) -> serde_json::Value {
    serde_json::json!({
        "from": c.src.to_string(),
        "to": c.dst.to_string(),
        "port": c.proto.to_string(),
        "verdict": if d.allowed() { "allow" } else { "deny" },
        "action": d.verdict.as_str(),
        "loopback": d.loopback,
        "sender": side_json(&d.sender),
        "receiver": side_json(&d.receiver),
    })
}

fn query_text(c: &Connection, d: &Decision) -> String {
    let mut out = format!(
        "{c}: {} ({})\n",
        if d.allowed() { "ALLOW" } else { "DENY" },
        d.verdict.as_str()
    );
    if d.loopback {
        out.push_str("  loopback traffic is always accepted\n");
    }
    for (label, side, addr) in [("sender", &d.sender, c.src), ("receiver", &d.receiver, c.dst)] {
        match side {
            None if !d.loopback => out.push_str(&format!("  {label} {addr}: not managed by the policy (no check)\n")),
            None => {}
            Some(s) => out.push_str(&format!(
                "  {label} {addr} (roles {}): {} by {}\n",
                s.roles.join(", "),
                s.verdict.as_str(),
                s.reasons.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", ")
            )),
        }
    }
    out
}
