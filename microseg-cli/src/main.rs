//! `microseg`: check, compile, query and show microsegmentation policies,
//! and apply them to this host.
//!
//! ```text
//! microseg check examples/three-tier.toml
//! microseg compile examples/three-tier.toml --role web --format nft
//! microseg query examples/three-tier.toml --from 10.10.1.10 --to 10.10.1.30 --port tcp/5432
//! microseg matrix examples/three-tier.toml
//! microseg apply examples/three-tier.toml --role auto --dry-run
//! microseg apply examples/three-tier.toml --role web --confirm-timeout 60
//! microseg confirm
//! microseg status
//! microseg rollback
//! microseg remove
//! microseg compile examples/three-tier.toml --role app --format firewalld
//! microseg apply examples/three-tier.toml --role app --backend firewalld
//! microseg verify examples/three-tier.toml --backend firewalld
//! ```
//!
//! `--backend firewalld` drives the firewalld on the D-Bus system bus
//! (`DBUS_SYSTEM_BUS_ADDRESS` selects another bus); the state directory's
//! records name the backend, and `confirm`, `rollback`, `status` and
//! `remove` use the recorded one unless `--backend` says otherwise.
//!
//! A thin layer over the crates: every subcommand parses its flags, calls the
//! library and prints. Exit codes: 0 success, 1 the policy or system is not
//! as asked, 2 usage error.
#![forbid(unsafe_code)]

use backend_firewalld::{FirewalldBackend, FirewalldError, FirewalldRenderer};
use clap::{Parser, Subcommand, ValueEnum};
use microseg_core::backend::Renderer;
use microseg_core::ir::{self, Target};
use microseg_core::ports::Proto;
use microseg_core::semantics::Connection;
use microseg_core::{Policy, Severity};
use microseg_host::{ApplyOptions, ConfirmOptions, Host, Persist, StateDir, TimerCommand};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Writes to stdout; a closed pipe (`microseg … | head`) ends the program
/// quietly instead of panicking like `print!` does.
fn emit(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write the output: {e}");
        std::process::exit(1);
    }
}

macro_rules! out {
    ($($arg:tt)*) => { emit(&format!($($arg)*)) };
}

macro_rules! outln {
    ($($arg:tt)*) => { emit(&(format!($($arg)*) + "\n")) };
}

/// Errors of the command line layer.
#[derive(Debug, thiserror::Error)]
enum CliError {
    /// The policy or the request is not valid.
    #[error("{0}")]
    Core(#[from] microseg_core::Error),
    /// The nftables backend failed.
    #[error("{0}")]
    Nft(#[from] backend_nft::NftError),
    /// The firewalld backend failed (or firewalld is not running).
    #[error("{}", firewalld_message(.0))]
    Firewalld(#[from] FirewalldError),
    /// The verification lab failed.
    #[error("{0}")]
    Verify(#[from] microseg_verify::VerifyError),
    /// Applying to this host failed or was refused.
    #[error("{0}")]
    Host(#[from] microseg_host::HostError),
    /// Bad usage that clap cannot see (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The check found errors (already printed).
    #[error("the policy has errors")]
    Reported,
}

#[derive(Parser)]
#[command(
    name = "microseg",
    version,
    about = "One declarative microsegmentation policy → least-privilege host firewalls"
)]
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
        /// nftables formats: the optimised lowering (verdict maps over an exact
        /// partition: a bounded number of lookups per new connection, whatever
        /// the number of flows and addresses).
        #[arg(long)]
        optimize: bool,
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
        /// nftables: the lowering installed, as `apply --lowering`
        /// (default: optimized, what `apply` installs).
        #[arg(long, value_enum, value_name = "LOWERING")]
        lowering: Option<LoweringArg>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The exact semantic difference between two policies: the connection
    /// classes that become allowed or denied, each with an example.
    Diff {
        /// The old policy.
        old: PathBuf,
        /// The new policy.
        new: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Exit 1 when the policies differ (like `git diff --exit-code`).
        #[arg(long)]
        exit_code: bool,
    },
    /// Draw the segmentation: roles and groups as nodes, allowed flows as edges.
    Graph {
        /// The policy file.
        policy: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = GraphFormat::Svg)]
        format: GraphFormat,
    },
    /// Who may reach whom on which ports (roles and named groups).
    Matrix {
        /// The policy file.
        policy: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make this host's firewall match the policy (root): plan, snapshot,
    /// one atomic transaction, record, persist for boot.
    ///
    /// Only set members changed: an incremental update (counters and
    /// connections untouched); otherwise the policy's table is replaced
    /// atomically. Refused (exit 1) when SSH_CONNECTION is set and the
    /// session's client could not log in again, unless --force.
    ///
    /// --backend firewalld: the policy's zone (made the default zone), output
    /// policy and ipsets in firewalld's permanent configuration and runtime
    /// (membership changes touch ipset entries only, without a reload);
    /// firewalld loads them at boot itself, so no boot file is written.
    Apply {
        /// The policy file.
        policy: PathBuf,
        #[command(flatten)]
        target: ApplyTarget,
        /// The backend that enforces the rules.
        #[arg(long, value_enum, default_value_t = BackendKind::Nft)]
        backend: BackendKind,
        /// Print the plan (replace or element delta, with the elements); change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Restore the previous state unless `microseg confirm` runs within SECS seconds
        /// (a detached timer does it, even if this shell is cut off).
        #[arg(long, value_name = "SECS", value_parser = parse_secs)]
        confirm_timeout: Option<Duration>,
        /// Apply even if the running SSH session's client would lose access.
        #[arg(long)]
        force: bool,
        /// Plan from a full read of what is installed (every set member)
        /// instead of the record of the last operation, which is used when
        /// the installed rules, chains and set definitions still match it.
        #[arg(long)]
        refresh: bool,
        /// nftables: how rules are laid out. `optimized` (the default):
        /// verdict maps over an exact partition, a bounded number of rules
        /// and lookups per new connection whatever the number of flows and
        /// addresses; `plain`: one rule per flow and direction with named
        /// sets, as `compile` prints by default. Both take membership
        /// changes as element deltas.
        #[arg(long, value_enum, value_name = "LOWERING")]
        lowering: Option<LoweringArg>,
        /// The same as `--lowering optimized` (the default).
        #[arg(long, conflicts_with = "lowering")]
        optimize: bool,
        #[command(flatten)]
        persist: PersistArgs,
        /// With `hardening` in the policy: write its sysctl.d file to PATH
        /// (default /etc/sysctl.d/99-TABLE.conf); the values are set either way.
        #[arg(long, value_name = "PATH", conflicts_with = "no_sysctl_file")]
        sysctl_file: Option<PathBuf>,
        /// With `hardening`: set the sysctl values now but write no sysctl.d file.
        #[arg(long)]
        no_sysctl_file: bool,
        #[command(flatten)]
        state: StateArgs,
        /// Test hook: hold the lock this long before applying.
        #[arg(long, hide = true, value_name = "MS")]
        test_hold_lock_ms: Option<u64>,
    },
    /// Keep the change applied with --confirm-timeout.
    Confirm {
        #[command(flatten)]
        state: StateArgs,
    },
    /// Restore the state saved before the last apply (or remove) that changed something.
    Rollback {
        /// The backend (default: the one the state directory records).
        #[arg(long, value_enum)]
        backend: Option<BackendKind>,
        #[command(flatten)]
        state: StateArgs,
    },
    /// What is installed, whether it drifted from what was applied (exit 1 if
    /// so), and hit counters per flow.
    Status {
        /// The backend (default: the one the state directory records, else nft).
        #[arg(long, value_enum)]
        backend: Option<BackendKind>,
        /// The policy's table (default: the one recorded by the last apply, else `microseg`).
        #[arg(long)]
        table: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Remove everything the policy installed (its table and boot file), nothing else.
    Remove {
        /// The backend (default: the one the state directory records, else nft).
        #[arg(long, value_enum)]
        backend: Option<BackendKind>,
        /// The policy's table (default: the one recorded by the last apply, else `microseg`).
        #[arg(long)]
        table: Option<String>,
        #[command(flatten)]
        persist: PersistArgs,
        #[command(flatten)]
        state: StateArgs,
    },
    /// The confirm timer (started detached by `apply --confirm-timeout`).
    #[command(name = "__confirm-timer", hide = true)]
    ConfirmTimer {
        /// The state directory.
        #[arg(long)]
        state_dir: PathBuf,
        /// The pending change.
        #[arg(long)]
        id: String,
    },
}

#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct ApplyTarget {
    /// Compile for every host of this role; `auto`: for the one address of
    /// this host (`ip -j addr`) that the policy manages.
    #[arg(long)]
    role: Option<String>,
    /// Compile for one host address (the union of its roles).
    #[arg(long)]
    host: Option<IpAddr>,
}

#[derive(clap::Args)]
struct PersistArgs {
    /// Write the ruleset for boot to PATH (default for nft: /etc/nftables.d/TABLE.nft,
    /// loaded by nftables.service once /etc/nftables.conf has
    /// `include "/etc/nftables.d/*.nft"`); the previous file is kept as PATH.bak.
    #[arg(long, value_name = "PATH", conflicts_with = "no_persist")]
    persist: Option<PathBuf>,
    /// Do not write a boot file (the change is lost at reboot). Neither
    /// option applies to firewalld, which persists its own configuration.
    #[arg(long)]
    no_persist: bool,
}

impl PersistArgs {
    fn choice(&self) -> Persist {
        match (&self.persist, self.no_persist) {
            (Some(p), _) => Persist::To(p.clone()),
            (None, true) => Persist::Off,
            (None, false) => Persist::Default,
        }
    }
}

#[derive(clap::Args)]
struct StateArgs {
    /// Where snapshots and records live (default: $MICROSEG_STATE_DIR, else /var/lib/microseg).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Wait at most SECS for another microseg apply/confirm/rollback/remove to finish.
    #[arg(long, value_name = "SECS", value_parser = parse_secs, default_value = "30")]
    lock_timeout: Duration,
}

impl StateArgs {
    fn dir(&self) -> StateDir {
        StateDir::resolve(self.state_dir.clone())
    }
}

/// Seconds: a non-negative number (decimals allowed), at most a day.
fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(0.0..=86_400.0).contains(&v) {
        return Err(format!("{s} is out of range: 0 to 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(v))
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
enum GraphFormat {
    /// Graphviz DOT.
    Dot,
    /// SVG, laid out and drawn in-process.
    Svg,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendKind {
    /// nftables (the kernel's nf_tables through `nft -j`).
    Nft,
    /// firewalld over D-Bus (the system bus; DBUS_SYSTEM_BUS_ADDRESS selects another).
    Firewalld,
}

impl BackendKind {
    /// The backend a record names (`HostBackend::name`).
    fn from_record(name: &str) -> Option<BackendKind> {
        match name {
            "nft" => Some(BackendKind::Nft),
            "firewalld" => Some(BackendKind::Firewalld),
            _ => None,
        }
    }
}

/// How the nftables backend lowers a ruleset.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LoweringArg {
    /// One nft rule per flow and direction, with named address sets.
    Plain,
    /// Verdict maps over an exact partition of the address space: a bounded
    /// number of rules and lookups per new connection, whatever the number
    /// of flows and addresses; its address maps are named, so membership
    /// changes are element deltas.
    Optimized,
}

impl From<LoweringArg> for backend_nft::Lowering {
    fn from(l: LoweringArg) -> backend_nft::Lowering {
        match l {
            LoweringArg::Plain => backend_nft::Lowering::Plain,
            LoweringArg::Optimized => backend_nft::Lowering::Optimized,
        }
    }
}

/// What `apply` and `verify` install with the nftables backend unless told
/// otherwise: the optimised lowering (proven equal to the plain one).
const DEFAULT_LOWERING: backend_nft::Lowering = backend_nft::Lowering::Optimized;

#[derive(Clone, Copy, ValueEnum)]
enum CompileFormat {
    /// An nft script for `nft -f` that replaces only the policy's table.
    Nft,
    /// A libnftables JSON document for `nft -j -f`.
    NftJson,
    /// The backend-neutral IR as JSON.
    Ir,
    /// The sysctl.d file of the policy's `hardening` (empty without it).
    Sysctl,
    /// The firewalld objects (zone, output policy, ipsets, rich rules) as JSON.
    Firewalld,
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
        Command::Check {
            policy,
            json,
            strict,
        } => check(&policy, json, strict),
        Command::Compile {
            policy,
            target,
            format,
            optimize,
        } => {
            let p = load(&policy)?;
            let rs = ir::compile(&p, &target.target())?;
            let lowering = if optimize {
                backend_nft::Lowering::Optimized
            } else {
                backend_nft::Lowering::Plain
            };
            let out = match format {
                CompileFormat::Nft => backend_nft::to_nft_text(&lowering.render(&rs)?),
                CompileFormat::NftJson => backend_nft::to_json(&lowering.render(&rs)?),
                CompileFormat::Ir => serde_json::to_string_pretty(&rs).expect("IR serialises"),
                CompileFormat::Firewalld => FirewalldRenderer.render(&rs)?.to_json(),
                CompileFormat::Sysctl => match &p.hardening {
                    Some(h) => microseg_core::hardening::sysctl_file(h, &p.table),
                    None => {
                        eprintln!("note: the policy has no `hardening` key: sysctl is left alone");
                        String::new()
                    }
                },
            };
            if out.is_empty() {
                return Ok(ExitCode::SUCCESS);
            }
            out!("{out}");
            if !out.ends_with('\n') {
                outln!("");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Query {
            policy,
            from,
            to,
            port,
            json,
        } => {
            let p = load(&policy)?;
            let proto: Proto = port.parse().map_err(CliError::Usage)?;
            let c = Connection::new(from, to, proto);
            c.validate().map_err(CliError::Usage)?;
            let d = p.decide(&c);
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&d.to_json(&c)).expect("serialises")
                );
            } else {
                out!("{}", d.to_text(&c));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify {
            policy,
            backend,
            lowering,
            json,
        } => {
            if lowering.is_some() && backend != BackendKind::Nft {
                return Err(CliError::Usage(
                    "--lowering is a choice of the nftables backend; firewalld has its own \
                     objects"
                        .into(),
                ));
            }
            let lowering = lowering.map_or(DEFAULT_LOWERING, Into::into);
            let p = load(&policy)?;
            let report = match backend {
                BackendKind::Nft => {
                    let install =
                        |lab: &microseg_lab::Lab,
                         host: &str,
                         rs: &microseg_core::ir::HostRuleset| {
                            let ns = lab.netns_name(host).map_err(|e| e.to_string())?;
                            let art = lowering.render(rs).map_err(|e| e.to_string())?;
                            backend_nft::Nft::in_netns(ns)
                                .apply_json(&art)
                                .map_err(|e| e.to_string())
                        };
                    microseg_verify::verify(&p, &install)?
                }
                BackendKind::Firewalld => verify_firewalld(&p)?,
            };
            if json {
                let v = serde_json::json!({ "ok": report.ok(), "mismatches": report.mismatches(), "report": report });
                outln!("{}", serde_json::to_string_pretty(&v).expect("serialises"));
            } else {
                out!("{}", report.to_text());
            }
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Apply {
            policy,
            target,
            backend,
            dry_run,
            confirm_timeout,
            force,
            refresh,
            lowering,
            optimize,
            persist,
            sysctl_file,
            no_sysctl_file,
            state,
            test_hold_lock_ms,
        } => {
            if (optimize || lowering.is_some()) && backend != BackendKind::Nft {
                return Err(CliError::Usage(
                    "--lowering and --optimize are choices of the nftables backend; firewalld \
                     has its own objects"
                        .into(),
                ));
            }
            let p = load(&policy)?;
            let target = match (target.role.as_deref(), target.host) {
                (Some("auto"), _) => {
                    microseg_host::auto::auto_target(&p, &microseg_host::auto::local_addresses()?)?
                }
                (Some(r), _) => Target::Role(r.to_string()),
                (None, Some(h)) => Target::Host(h),
                (None, None) => unreachable!("clap requires one of --role/--host"),
            };
            let rs = ir::compile(&p, &target)?;
            let confirm = match confirm_timeout {
                Some(t) if t.is_zero() => {
                    return Err(CliError::Usage(
                        "--confirm-timeout must be more than 0 seconds".into(),
                    ))
                }
                Some(timeout) => Some(ConfirmOptions {
                    timeout,
                    timer: TimerCommand {
                        program: std::env::current_exe().map_err(|e| {
                            CliError::Usage(format!(
                                "cannot find the microseg executable for the confirm timer: {e}"
                            ))
                        })?,
                        args: vec!["__confirm-timer".into()],
                    },
                }),
                None => None,
            };
            let opts = ApplyOptions {
                dry_run,
                force,
                ssh_connection: std::env::var("SSH_CONNECTION").ok(),
                confirm,
                persist: persist.choice(),
                source: policy.display().to_string(),
                hold_lock: test_hold_lock_ms.map(Duration::from_millis),
                refresh,
                sysctl_file: match (sysctl_file, no_sysctl_file) {
                    (Some(p), _) => Persist::To(p),
                    (None, true) => Persist::Off,
                    (None, false) => Persist::Default,
                },
            };
            let lowering = lowering.map_or(DEFAULT_LOWERING, Into::into);
            let host = host_with(backend, &p.table, &state, lowering)?;
            let report = each!(&host, h => h.apply(&rs, &opts))?;
            out!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Confirm { state } => {
            let (backend, table) = recorded(&state.dir(), None, None)?;
            let host = host(backend, &table, &state)?;
            out!("{}", each!(&host, h => h.confirm())?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Rollback { backend, state } => {
            let (backend, table) = recorded(&state.dir(), backend, None)?;
            let host = host(backend, &table, &state)?;
            out!("{}", each!(&host, h => h.rollback())?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Status {
            backend,
            table,
            json,
            state,
        } => {
            let (backend, table) = recorded(&state.dir(), backend, table)?;
            let host = host(backend, &table, &state)?;
            let status = each!(&host, h => h.status())?;
            if json {
                let v = serde_json::json!({ "drifted": status.drifted(), "status": status });
                outln!("{}", serde_json::to_string_pretty(&v).expect("serialises"));
            } else {
                out!("{status}");
            }
            Ok(if status.drifted() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Remove {
            backend,
            table,
            persist,
            state,
        } => {
            let (backend, table) = recorded(&state.dir(), backend, table)?;
            let host = host(backend, &table, &state)?;
            out!("{}", each!(&host, h => h.remove(&persist.choice()))?);
            Ok(ExitCode::SUCCESS)
        }
        Command::ConfirmTimer { state_dir, id } => {
            // Detach first: from here on, the caller's terminal and shell may go.
            microseg_host::detach()?;
            let dir = StateDir::resolve(Some(state_dir));
            let Some((name, table)) = dir.recorded()? else {
                return Ok(ExitCode::SUCCESS);
            };
            let backend = BackendKind::from_record(&name).ok_or_else(|| {
                CliError::Usage(format!("the records are of unknown backend {name}"))
            })?;
            let state = StateArgs {
                state_dir: Some(dir.path().into()),
                lock_timeout: Duration::from_secs(30),
            };
            let host = host(backend, &table, &state)?;
            each!(&host, h => h.run_timer(&id))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Diff {
            old,
            new,
            json,
            exit_code,
        } => {
            let (a, b) = (load(&old)?, load(&new)?);
            let d = microseg_core::diff::diff(&a, &b);
            if json {
                outln!("{}", serde_json::to_string_pretty(&d).expect("serialises"));
            } else {
                out!("{}", d.to_text());
            }
            Ok(if exit_code && !d.is_empty() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Graph { policy, format } => {
            let p = load(&policy)?;
            let g = microseg_graph::graph(&p);
            match format {
                GraphFormat::Dot => out!("{}", g.to_dot()),
                GraphFormat::Svg => out!(
                    "{}",
                    g.to_svg().map_err(|e| CliError::Usage(e.to_string()))?
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Matrix { policy, json } => {
            let p = load(&policy)?;
            let m = microseg_core::matrix::matrix(&p);
            if json {
                outln!("{}", serde_json::to_string_pretty(&m).expect("serialises"));
            } else {
                out!("{}", m.to_text());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The local host driven through one of the backends.
enum AnyHost {
    Nft(Host<backend_nft::NftBackend>),
    Firewalld(Host<FirewalldBackend>),
}

/// `each!(&host, h => h.status())`: the same call on whichever backend drives the host.
macro_rules! each {
    ($host:expr, $h:ident => $call:expr) => {
        match $host {
            AnyHost::Nft($h) => $call,
            AnyHost::Firewalld($h) => $call,
        }
    };
}
use each;

/// The host driven through `backend` for `table`; for firewalld, connected
/// to the system bus (`DBUS_SYSTEM_BUS_ADDRESS` honoured).
fn host(backend: BackendKind, table: &str, state: &StateArgs) -> Result<AnyHost, CliError> {
    host_with(backend, table, state, backend_nft::Lowering::Plain)
}

/// [`host`], rendering nftables rulesets with `lowering`.
fn host_with(
    backend: BackendKind,
    table: &str,
    state: &StateArgs,
    lowering: backend_nft::Lowering,
) -> Result<AnyHost, CliError> {
    Ok(match backend {
        BackendKind::Nft => AnyHost::Nft(
            Host::new(
                backend_nft::NftBackend::new(backend_nft::Nft::host(), table)
                    .with_lowering(lowering),
                state.dir(),
            )
            .with_lock_timeout(state.lock_timeout),
        ),
        BackendKind::Firewalld => AnyHost::Firewalld(
            Host::new(
                FirewalldBackend::connect(None)?.with_table(table),
                state.dir(),
            )
            .with_lock_timeout(state.lock_timeout),
        ),
    })
}

/// firewalld's errors, with what to do when it cannot be reached.
fn firewalld_message(e: &FirewalldError) -> String {
    match e {
        FirewalldError::Connect { address, message } => format!(
            "firewalld is not running on the bus at {address}: cannot connect to that bus \
             ({message}); start firewalld (and D-Bus), or point DBUS_SYSTEM_BUS_ADDRESS at the \
             bus it is on"
        ),
        FirewalldError::NotRunning { .. } => format!(
            "{e}; start firewalld (systemctl start firewalld), or point \
             DBUS_SYSTEM_BUS_ADDRESS at the bus it is on"
        ),
        other => other.to_string(),
    }
}

/// `verify --backend firewalld`: one private firewalld (on its own bus) per
/// managed test host, started in the host's namespace when its rules are
/// installed and stopped when the report is made. The daemons die with the
/// thread that started them, so everything happens on this one.
fn verify_firewalld(p: &Policy) -> Result<microseg_verify::Report, CliError> {
    for gone in backend_firewalld::sandbox::cleanup_stale() {
        eprintln!("note: removed {gone}, left by an earlier run");
    }
    // On SIGINT/SIGTERM/SIGHUP: the lab's namespaces and the daemons' folders
    // go (the daemons themselves die with this process).
    let _ = ctrlc::set_handler(|| {
        microseg_lab::cleanup_live_labs();
        let own = format!(
            "{}{}-",
            backend_firewalld::sandbox::NAME_TAG,
            std::process::id()
        );
        if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(&own) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        std::process::exit(130);
    });
    let daemons = backend_firewalld::sandbox::Sandboxes::new();
    let install = |lab: &microseg_lab::Lab, host: &str, rs: &microseg_core::ir::HostRuleset| {
        let ns = lab.netns_name(host).map_err(|e| e.to_string())?;
        daemons
            .install(ns, rs)
            .map(|_| ())
            .map_err(|e| format!("firewalld: {e}"))
    };
    let report = microseg_verify::verify(p, &install);
    drop(daemons);
    Ok(report?)
}

/// The backend and table the state directory's records are about; `backend`
/// and `table` override, and without records nft and the policy format's
/// default table are used.
fn recorded(
    dir: &StateDir,
    backend: Option<BackendKind>,
    table: Option<String>,
) -> Result<(BackendKind, String), CliError> {
    let recorded = dir.recorded()?;
    let recorded_backend = match &recorded {
        Some((name, _)) => Some(BackendKind::from_record(name).ok_or_else(|| {
            CliError::Usage(format!(
                "the records in {} are of backend {name}, which this microseg cannot drive",
                dir.path().display()
            ))
        })?),
        None => None,
    };
    let table = table
        .or(recorded.map(|(_, t)| t))
        .unwrap_or_else(|| "microseg".into());
    Ok((
        backend.or(recorded_backend).unwrap_or(BackendKind::Nft),
        table,
    ))
}

fn check(path: &PathBuf, json: bool, strict: bool) -> Result<ExitCode, CliError> {
    let p = match Policy::from_file(path) {
        Ok(p) => p,
        Err(microseg_core::Error::Invalid(diags)) => {
            if json {
                let v = serde_json::json!({ "ok": false, "diagnostics": diags });
                outln!("{}", serde_json::to_string_pretty(&v).expect("serialises"));
            } else {
                for d in &diags {
                    eprintln!("{d}");
                }
                let n = diags
                    .iter()
                    .filter(|d| d.severity == Severity::Error)
                    .count();
                eprintln!(
                    "{}: {n} error{}",
                    path.display(),
                    if n == 1 { "" } else { "s" }
                );
            }
            return Err(CliError::Reported);
        }
        Err(e) => return Err(e.into()),
    };
    let warnings = microseg_core::lint::lint(&p);
    let managed: u128 = p
        .managed
        .v4
        .ranges()
        .iter()
        .map(|&(a, b)| u128::from(b - a) + 1)
        .sum::<u128>()
        + p.managed
            .v6
            .ranges()
            .iter()
            .map(|&(a, b)| (b - a).saturating_add(1))
            .sum::<u128>();
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
        outln!("{}", serde_json::to_string_pretty(&v).expect("serialises"));
    } else {
        for w in &warnings {
            eprintln!("{w}");
        }
        outln!(
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
