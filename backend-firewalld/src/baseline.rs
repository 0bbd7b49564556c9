//! The usual way to configure firewalld from a tool, for comparison: one
//! D-Bus call per address and per rich rule, as `firewall-cmd
//! --permanent --ipset=… --add-entry=…` / `--add-rich-rule=…` loops and the
//! common Ansible module do it.
//!
//! ```no_run
//! use backend_firewalld::{baseline, sandbox::PrivateFirewalld, FirewalldRenderer};
//! use microseg_core::backend::Renderer;
//! use microseg_core::{Policy, ir::{compile, Target}};
//! let p = Policy::from_file("examples/three-tier.toml").unwrap();
//! let cfg = FirewalldRenderer.render(&compile(&p, &Target::Role("web".into())).unwrap()).unwrap();
//! let fw = PrivateFirewalld::start().unwrap();
//! let calls = baseline::apply_one_call_per_item(&fw.backend().unwrap(), &cfg).unwrap();
//! println!("{calls} D-Bus calls");
//! ```
//!
//! Only for benchmarks: it assumes nothing of the table is installed, makes
//! no plan and restores nothing on failure.

use crate::backend::FirewalldBackend;
use crate::names;
use crate::objects::FirewalldConfig;
use crate::settings::{IpsetSettings, PolicySettings, ZoneSettings};
use crate::FirewalldError;

/// Creates the objects empty, then adds every ipset entry and every rich rule
/// with a call of its own (a policy's rule: read settings, update, as
/// `firewall-cmd --permanent --policy=… --add-rich-rule` does, since
/// firewalld has no per-rule call for policies), reloads and sets the
/// default zone. Returns the number of D-Bus calls.
///
/// ```no_run
/// # use backend_firewalld::{baseline, FirewalldBackend, FirewalldConfig};
/// # let fw = FirewalldBackend::connect(None).unwrap();
/// # let cfg: FirewalldConfig = unimplemented!();
/// let calls = baseline::apply_one_call_per_item(&fw, &cfg).unwrap();
/// ```
pub fn apply_one_call_per_item(
    fw: &FirewalldBackend,
    cfg: &FirewalldConfig,
) -> Result<u64, FirewalldError> {
    let c = fw.client();
    let before = c.calls();
    for s in &cfg.ipsets {
        let empty = IpsetSettings {
            entries: vec![],
            ..IpsetSettings::from_object(s)
        };
        c.add_ipset(&s.name, &empty)?;
        for e in &s.entries {
            c.add_ipset_entry(&s.name, e)?;
        }
    }
    let zone = ZoneSettings {
        rich_rules: vec![],
        ..ZoneSettings::from_object(
            &cfg.zone,
            names::description(&cfg.table, Some("public")),
            None,
        )
    };
    c.add_zone(&cfg.zone.name, &zone)?;
    for r in &cfg.zone.rich_rules {
        c.add_zone_rich_rule(&cfg.zone.name, r)?;
    }
    let policy = PolicySettings {
        rich_rules: vec![],
        ..PolicySettings::from_object(&cfg.policy)
    };
    c.add_policy(&cfg.policy.name, &policy)?;
    for r in &cfg.policy.rich_rules {
        let mut p = c.policy(&cfg.policy.name)?;
        p.rich_rules.push(r.clone());
        c.update_policy(&cfg.policy.name, &p)?;
    }
    c.reload()?;
    if c.default_zone()? != cfg.zone.name {
        c.set_default_zone(&cfg.zone.name)?;
    }
    Ok(c.calls() - before)
}
