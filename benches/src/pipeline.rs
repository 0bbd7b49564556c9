//! The stages of the pipeline, as the benchmarks and the report run them.
//!
//! ```
//! use microseg_benches::{gen, pipeline};
//! let doc = gen::policy_doc(&gen::SIZE_S, 1);
//! let p = pipeline::parse(&gen::to_json(&doc));
//! let rs = pipeline::compile_role(&p, "r0000");
//! assert!(!rs.input.is_empty());
//! ```

use backend_nft::Lowering;
use microseg_core::document::Format;
use microseg_core::ir::{compile, compile_all_roles, Compiler, HostRuleset, Target};
use microseg_core::Policy;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Parses and validates a JSON policy document.
///
/// ```
/// let p = microseg_benches::pipeline::parse(r#"{"version": 1}"#);
/// assert!(p.roles.is_empty());
/// ```
pub fn parse(text: &str) -> Policy {
    Policy::from_str_as(text, Format::Json, None).expect("the synthetic policy is valid")
}

/// Compiles one role.
///
/// ```
/// # use microseg_benches::{gen, pipeline};
/// # let p = pipeline::parse(&gen::to_json(&gen::policy_doc(&gen::SIZE_S, 1)));
/// assert_eq!(pipeline::compile_role(&p, "r0001").roles, ["r0001"]);
/// ```
pub fn compile_role(policy: &Policy, role: &str) -> HostRuleset {
    compile(policy, &Target::Role(role.to_string())).expect("the role exists")
}

/// Compiles every role.
///
/// ```
/// # use microseg_benches::{gen, pipeline};
/// # let p = pipeline::parse(&gen::to_json(&gen::policy_doc(&gen::SIZE_S, 1)));
/// assert_eq!(pipeline::compile_all(&p).len(), p.roles.len());
/// ```
pub fn compile_all(policy: &Policy) -> Vec<HostRuleset> {
    compile_all_roles(policy)
}

/// Renders every ruleset to its nft JSON text; returns the total length.
///
/// ```
/// # use microseg_benches::{gen, pipeline};
/// # let p = pipeline::parse(&gen::to_json(&gen::policy_doc(&gen::SIZE_S, 1)));
/// let rs = pipeline::compile_all(&p);
/// assert!(pipeline::render_all(&rs, backend_nft::Lowering::Optimized) > 0);
/// ```
pub fn render_all(rulesets: &[HostRuleset], lowering: Lowering) -> usize {
    rulesets
        .iter()
        .map(|rs| render_json(rs, lowering).len())
        .sum()
}

/// One ruleset's nft JSON text, compact (as `apply` hands it to nft).
///
/// ```
/// # use microseg_benches::{gen, pipeline};
/// # let p = pipeline::parse(&gen::to_json(&gen::policy_doc(&gen::SIZE_S, 1)));
/// let json = pipeline::render_json(&pipeline::compile_role(&p, "r0000"), backend_nft::Lowering::Plain);
/// assert!(json.contains("\"nftables\""));
/// ```
pub fn render_json(rs: &HostRuleset, lowering: Lowering) -> String {
    let a = lowering.render(rs).expect("the synthetic rulesets render");
    backend_nft::to_json_compact(&a)
}

/// Compiles and renders every role one after the other, keeping nothing
/// but the total JSON length (how `compile` for a whole estate streams).
///
/// ```
/// # use microseg_benches::{gen, pipeline};
/// # let p = pipeline::parse(&gen::to_json(&gen::policy_doc(&gen::SIZE_S, 1)));
/// assert!(pipeline::compile_and_render_all(&p, backend_nft::Lowering::Plain) > 0);
/// ```
pub fn compile_and_render_all(policy: &Policy, lowering: Lowering) -> usize {
    compile_and_render_all_threads(policy, lowering, 1)
}

/// [`compile_and_render_all`] on `threads` threads (with 1, on the calling
/// thread); the same total.
///
/// One [`Compiler`] serves every thread (the per-flow preparation is done
/// once). The roles are handed out one at a time from a shared counter —
/// the hub role costs some twenty ordinary ones, so fixed halves would
/// leave one thread idle — and each thread renders every document it
/// compiles into one buffer of its own, kept across roles.
///
/// ```
/// # use microseg_benches::{gen, pipeline};
/// # let p = pipeline::parse(&gen::to_json(&gen::policy_doc(&gen::SIZE_S, 1)));
/// let lowering = backend_nft::Lowering::Plain;
/// assert_eq!(
///     pipeline::compile_and_render_all_threads(&p, lowering, 2),
///     pipeline::compile_and_render_all(&p, lowering)
/// );
/// ```
pub fn compile_and_render_all_threads(
    policy: &Policy,
    lowering: Lowering,
    threads: usize,
) -> usize {
    let compiler = Compiler::new(policy);
    let roles: Vec<&String> = policy.roles.keys().collect();
    let next = AtomicUsize::new(0);
    let worker = || {
        let mut buf = String::new();
        let mut total = 0;
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(role) = roles.get(i) else {
                return total;
            };
            let rs = compiler
                .compile(&Target::Role(role.to_string()))
                .expect("the role exists");
            let a = lowering.render(&rs).expect("the synthetic rulesets render");
            buf.clear();
            backend_nft::write_json_compact(&a, &mut buf);
            total += buf.len();
        }
    };
    if threads <= 1 {
        return worker();
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|_| s.spawn(worker)).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a worker panicked"))
            .sum()
    })
}
