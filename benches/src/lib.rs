//! microseg-benches: a synthetic policy generator, the stages of the
//! compile pipeline as functions the criterion benchmarks and the scaling
//! report share, kernel benchmarks and the scaling report itself.
//!
//! ```
//! use microseg_benches::{gen, pipeline};
//! let text = gen::to_json(&gen::policy_doc(&gen::SIZE_S, gen::SEED));
//! let policy = pipeline::parse(&text);
//! let rulesets = pipeline::compile_all(&policy);
//! assert_eq!(rulesets.len(), policy.roles.len());
//! let bytes = pipeline::render_all(&rulesets, backend_nft::Lowering::Plain);
//! assert!(bytes > 0);
//! ```
//!
//! * `cargo bench -p microseg-benches` — criterion: parse+validate, compile
//!   one role, compile all roles, render nft JSON, exact diff.
//! * `cargo run -p microseg-benches --release --bin scaling-report` — writes
//!   `docs/scaling.md` and `docs/scaling.png` (each size measured in a child
//!   process of its own, for its peak memory); `--kernel` adds the kernel
//!   benchmarks (root).
//! * `cargo run -p microseg-benches --release --bin kernel-bench` — the
//!   kernel benchmarks alone (root; network namespaces).
#![forbid(unsafe_code)]

pub mod gen;
pub mod kernel;
pub mod measure;
pub mod pipeline;
pub mod report;
