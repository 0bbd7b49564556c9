//! Every rich rule the renderer writes is already in firewalld's canonical
//! form (`str(Rich_Rule(rule_str=r)) == r`, checked with firewalld's own
//! Python code), so what firewalld returns compares equal to what was
//! rendered and a second apply finds nothing to do.

use backend_firewalld::FirewalldRenderer;
use microseg_core::backend::Renderer;
use microseg_core::ir::{compile, Target};
use microseg_core::Policy;
use proptest::strategy::{Strategy, ValueTree};
use std::io::Write;
use std::process::{Command, Stdio};

const SCRIPT: &str = r#"
import json, sys
from firewall.core.rich import Rich_Rule
rules = json.load(sys.stdin)
print(json.dumps([str(Rich_Rule(rule_str=r)) for r in rules]))
"#;

fn firewalld_python() -> bool {
    Command::new("/usr/bin/python3")
        .args(["-c", "import firewall.core.rich"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn rendered_rules_are_canonical() {
    if !firewalld_python() {
        eprintln!("firewalld's Python modules are not installed: skipped");
        return;
    }
    let mut policies = Vec::new();
    for file in ["three-tier.toml", "dual-stack.toml"] {
        policies.push(
            Policy::from_file(format!("{}/../examples/{file}", env!("CARGO_MANIFEST_DIR")))
                .unwrap(),
        );
    }
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    for _ in 0..40 {
        let doc = microseg_testgen::policy_doc()
            .new_tree(&mut runner)
            .unwrap()
            .current();
        policies.push(Policy::from_doc(doc).unwrap());
    }
    let mut rules: Vec<String> = Vec::new();
    for p in &policies {
        for role in p.roles.keys() {
            let Ok(cfg) =
                FirewalldRenderer.render(&compile(p, &Target::Role(role.clone())).unwrap())
            else {
                continue;
            };
            rules.extend(cfg.zone.rich_rules.iter().cloned());
            rules.extend(cfg.policy.rich_rules.iter().cloned());
        }
    }
    rules.sort();
    rules.dedup();
    assert!(rules.len() > 100, "only {} rules", rules.len());
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&rules).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let canonical: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    for (mine, theirs) in rules.iter().zip(&canonical) {
        assert_eq!(mine, theirs);
    }
    assert_eq!(rules.len(), canonical.len());
}
