//! The seam between the IR and the systems that enforce it.
//!
//! ```
//! use microseg_core::backend::Renderer;
//! use microseg_core::ir::HostRuleset;
//! /// A toy renderer: one line per input rule.
//! struct Lines;
//! impl Renderer for Lines {
//!     type Artefact = String;
//!     type Error = std::convert::Infallible;
//!     fn render(&self, rs: &HostRuleset) -> Result<String, Self::Error> {
//!         Ok(rs.input.iter().map(|r| r.origin.label()).collect::<Vec<_>>().join("\n"))
//!     }
//! }
//! ```
//!
//! A backend turns a [`HostRuleset`](crate::ir::HostRuleset) into its own
//! artefact (pure: [`Renderer`]), and drives a system ([`Backend`]): read what
//! is installed, plan the changes from current to desired, apply them
//! (atomically where the system allows), and remove what the policy owns.

use crate::ir::HostRuleset;

/// IR → backend artefact, without touching any system.
pub trait Renderer {
    /// What the backend installs (an nft JSON document, firewalld objects…).
    type Artefact;
    /// The backend's error type.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Renders one ruleset.
    fn render(&self, ruleset: &HostRuleset) -> Result<Self::Artefact, Self::Error>;
}

/// A backend that manages a live system.
///
/// `State` is a snapshot of what the policy owns on the system (enough to
/// restore it exactly: `rollback` and failed applies use it).
pub trait Backend: Renderer {
    /// What is installed now (only what the policy owns).
    type State;
    /// The plan from current to desired.
    type Plan: std::fmt::Display;
    /// Reads what the policy owns on the system; `None` if nothing is installed.
    fn read(&self) -> Result<Option<Self::State>, Self::Error>;
    /// Computes the changes that make `current` into `desired`.
    fn plan(
        &self,
        desired: &Self::Artefact,
        current: Option<&Self::State>,
    ) -> Result<Self::Plan, Self::Error>;
    /// Carries out a plan; all or nothing where the system allows.
    fn apply(&self, plan: &Self::Plan) -> Result<(), Self::Error>;
    /// Puts back a snapshot taken by [`Backend::read`] (`None`: nothing installed).
    fn restore(&self, saved: Option<&Self::State>) -> Result<(), Self::Error>;
    /// Removes everything the policy installed, nothing else.
    fn remove(&self) -> Result<(), Self::Error>;
}
