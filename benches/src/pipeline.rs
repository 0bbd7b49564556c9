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
use microseg_core::ir::{compile, compile_all_roles, HostRuleset, Target};
use microseg_core::Policy;

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
    policy
        .roles
        .keys()
        .map(|r| render_json(&compile_role(policy, r), lowering).len())
        .sum()
}
