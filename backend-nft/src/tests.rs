//! Unit tests of the lowering: rule shapes, log/limit order, comments,
//! counters, reject variants, sets, and the text spelling.

use crate::{to_json, to_nft_text, NftArtefact, NftError, NftRenderer};
use microseg_core::backend::Renderer;
use microseg_core::document::Format;
use microseg_core::ir::{compile, compile_all_roles, HostRuleset, RuleMatch, Target};
use microseg_core::Policy;
use serde_json::Value;

const MIXED: &str = r#"
version = 1
table = "t1"
[groups]
web = ["10.0.1.10-10.0.1.19", "2001:db8:1::10"]
adm = ["10.9.0.0/24"]
[roles.web]
[[flows]]
name = "adm-ssh"
from = "adm"
to = "web"
ports = ["tcp/22", "tcp/2500-3300", "tcp/443"]
log = true
[[flows]]
name = "no-smb"
from = "any"
to = "web"
ports = ["tcp/445", "udp/137-138"]
action = "deny"
[[flows]]
name = "no-ntp"
from = "web"
to = "any"
ports = ["udp/123", "tcp/25"]
action = "reject"
[baseline]
default = "reject"
log = { prefix = "T1", rate = "3/minute", burst = 7, group = 5 }
"#;

fn policy(text: &str) -> Policy {
    Policy::from_str_as(text, Format::Toml, None).unwrap()
}

fn ruleset(text: &str, role: &str) -> HostRuleset {
    compile(&policy(text), &Target::Role(role.into())).unwrap()
}

fn render(rs: &HostRuleset) -> NftArtefact {
    NftRenderer.render(rs).unwrap()
}

/// The `add rule` objects of a chain, as JSON values.
fn rules(a: &NftArtefact, chain: &str) -> Vec<Value> {
    let doc: Value = serde_json::from_str(&to_json(a)).unwrap();
    doc["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("add").and_then(|a| a.get("rule")))
        .filter(|r| r["chain"] == chain)
        .cloned()
        .collect()
}

/// The statement kinds of a rule (`match`, `counter`, `limit`, `log`, `accept`…).
fn kinds(rule: &Value) -> Vec<String> {
    rule["expr"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_object().unwrap().keys().next().unwrap().clone())
        .collect()
}

fn is_verdict(k: &str) -> bool {
    matches!(k, "accept" | "drop" | "reject")
}

fn mixed() -> NftArtefact {
    render(&ruleset(MIXED, "web"))
}

#[test]
fn transaction_replaces_only_the_policy_table() {
    let doc: Value = serde_json::from_str(&to_json(&mixed())).unwrap();
    let objs = doc["nftables"].as_array().unwrap();
    let table = serde_json::json!({"family": "inet", "name": "t1"});
    assert_eq!(objs[0], serde_json::json!({"add": {"table": table}}));
    assert_eq!(objs[1], serde_json::json!({"delete": {"table": table}}));
    assert_eq!(objs[2], serde_json::json!({"add": {"table": table}}));
    let text = to_json(&mixed());
    assert!(!text.contains("flush"), "never flush anything");
    for o in &objs[3..] {
        let (cmd, body) = o.as_object().unwrap().iter().next().unwrap();
        assert_eq!(cmd, "add");
        let inner = body.as_object().unwrap().values().next().unwrap();
        assert_eq!(inner["table"], "t1");
        assert_eq!(inner["family"], "inet");
    }
}

#[test]
fn base_chains_drop_by_policy() {
    let doc: Value = serde_json::from_str(&to_json(&mixed())).unwrap();
    let chains: Vec<&Value> = doc["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["add"].get("chain"))
        .collect();
    let names: Vec<&str> = chains.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["input", "output", "forward"]);
    for c in chains {
        assert_eq!(c["hook"], c["name"]);
        assert_eq!(c["type"], "filter");
        assert_eq!(c["prio"], 0);
        assert_eq!(c["policy"], "drop");
    }
}

#[test]
fn every_rule_has_a_comment_and_verdict_rules_a_counter() {
    for role in ["web"] {
        let a = render(&ruleset(MIXED, role));
        for chain in ["input", "output", "forward"] {
            for r in rules(&a, chain) {
                let c = r["comment"].as_str().unwrap();
                assert!(c.starts_with("flow:") || c.starts_with("baseline:"), "{c}");
                let k = kinds(&r);
                if k.iter().any(|k| is_verdict(k)) {
                    // … counter verdict: the counter counts exactly the packets the verdict takes.
                    assert_eq!(k[k.len() - 2], "counter", "{r}");
                    assert!(is_verdict(k.last().unwrap()), "{r}");
                    assert_eq!(k.iter().filter(|k| *k == "counter").count(), 1);
                } else {
                    assert!(
                        k.contains(&"log".to_string()),
                        "a rule without verdict logs: {r}"
                    );
                    assert!(
                        !k.contains(&"counter".to_string()),
                        "log rules are not counted twice: {r}"
                    );
                }
            }
        }
    }
}

#[test]
fn logged_rules_limit_before_log_then_the_same_match_with_the_verdict() {
    let a = mixed();
    let input = rules(&a, "input");
    let i = input
        .iter()
        .position(|r| r["comment"] == "flow:adm-ssh")
        .unwrap();
    let (log, verdict) = (&input[i], &input[i + 1]);
    assert_eq!(kinds(log), ["match", "match", "limit", "log"]);
    assert_eq!(kinds(verdict), ["match", "match", "counter", "accept"]);
    assert_eq!(log["expr"][0], verdict["expr"][0]);
    assert_eq!(log["expr"][1], verdict["expr"][1]);
    assert_eq!(
        log["expr"][2]["limit"],
        serde_json::json!({"rate": 3, "per": "minute", "burst": 7})
    );
    assert_eq!(
        log["expr"][3]["log"],
        serde_json::json!({"prefix": "T1 adm-ssh: ", "group": 5})
    );
    assert_eq!(verdict["comment"], "flow:adm-ssh");
    // Both ends of the chain's tail: the drop log, limited, then the counted default.
    let n = input.len();
    assert_eq!(kinds(&input[n - 3]), ["limit", "log"]);
    assert_eq!(input[n - 3]["comment"], "baseline:log");
    assert_eq!(input[n - 3]["expr"][1]["log"]["prefix"], "T1 input drop: ");
    let text = to_nft_text(&a);
    assert!(text.contains(
        "\t\t# flow:adm-ssh\n\
         \t\tip saddr @adm_v4 tcp dport { 22, 443, 2500-3300 } limit rate 3/minute burst 7 packets \
         log prefix \"T1 adm-ssh: \" group 5 comment \"flow:adm-ssh\"\n\
         \t\tip saddr @adm_v4 tcp dport { 22, 443, 2500-3300 } counter accept comment \"flow:adm-ssh\"\n"
    ));
}

#[test]
fn reject_variants() {
    let a = mixed();
    let text = to_nft_text(&a);
    // TCP rules reset, others get the inet default (icmpx port-unreachable).
    assert!(text.contains(
        "ip saddr @web_v4 tcp dport 25 counter reject with tcp reset comment \"flow:no-ntp\""
    ));
    assert!(text.contains("\t\tudp dport 123 counter reject comment \"flow:no-ntp\""));
    assert!(text.contains("ip6 saddr @web_v6 udp dport 123 counter reject comment \"flow:no-ntp\""));
    // Deny is a silent drop.
    assert!(text.contains("tcp dport 445 counter drop comment \"flow:no-smb\""));
    assert!(text.contains("udp dport 137-138 counter drop comment \"flow:no-smb\""));
    // Default reject: TCP reset for TCP, then a plain reject, in every chain.
    for chain in ["input", "output", "forward"] {
        let r = rules(&a, chain);
        let n = r.len();
        assert_eq!(kinds(&r[n - 2]), ["match", "counter", "reject"]);
        assert_eq!(r[n - 2]["expr"][0]["match"]["right"], "tcp");
        assert_eq!(
            r[n - 2]["expr"][2]["reject"],
            serde_json::json!({"type": "tcp reset"})
        );
        assert_eq!(kinds(&r[n - 1]), ["counter", "reject"]);
        assert_eq!(r[n - 1]["expr"][1]["reject"], Value::Null);
        assert_eq!(r[n - 1]["comment"], "baseline:default");
        assert_eq!(r[n - 2]["comment"], "baseline:default");
    }
}

#[test]
fn default_drop_and_forward_chain() {
    let a = render(&ruleset(
        "version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n[baseline]\nlog = false\n",
        "web",
    ));
    let fwd = rules(&a, "forward");
    assert_eq!(fwd.len(), 1, "forward: only the counted default");
    assert_eq!(kinds(&fwd[0]), ["counter", "drop"]);
    assert_eq!(fwd[0]["comment"], "baseline:default");
    assert!(!to_nft_text(&a).contains("log"), "log = false: no log rule");
}

#[test]
fn builtin_rules() {
    let a = mixed();
    let text = to_nft_text(&a);
    assert!(text.contains(
        "\t\tct state established,related counter accept comment \"baseline:established\"\n"
    ));
    assert!(text.contains("\t\tiif \"lo\" counter accept comment \"baseline:loopback\"\n"));
    assert!(text.contains("\t\toif \"lo\" counter accept comment \"baseline:loopback\"\n"));
    assert!(text.contains(
        "\t\ticmpv6 type { nd-router-solicit, nd-router-advert, \
         nd-neighbor-solicit, nd-neighbor-advert, packet-too-big } counter accept comment \"baseline:icmpv6-nd\""
    ));
    // Baseline ICMP: family-restricted so l4proto 1 in IPv6 (or 58 in IPv4) does not
    // match; the family match last, so that `nft list` shows (and restores) it.
    assert!(text
        .contains("meta l4proto icmp meta nfproto ipv4 counter accept comment \"baseline:icmp\""));
    assert!(text.contains(
        "meta l4proto ipv6-icmp meta nfproto ipv6 counter accept comment \"baseline:icmp\""
    ));
    // Established in JSON: `ct state in [established, related]`.
    let first = &rules(&a, "input")[0];
    assert_eq!(
        first["expr"][0],
        serde_json::json!({"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}})
    );
}

#[test]
fn family_match_only_when_no_address_implies_it() {
    // public: from any, to a v4-only role → `meta nfproto ipv4 tcp dport 80`.
    let a = render(&ruleset(
        "version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n[[flows]]\nname = \"pub\"\nfrom = \"any\"\nto = \"web\"\nports = [\"tcp/80\"]\n",
        "web",
    ));
    let text = to_nft_text(&a);
    assert!(
        text.contains("\t\tmeta nfproto ipv4 tcp dport 80 counter accept comment \"flow:pub\"\n"),
        "{text}"
    );
    // With a set, `ip saddr` implies IPv4: no nfproto.
    let text = to_nft_text(&mixed());
    assert!(!text.contains("meta nfproto ipv4 ip saddr"));
    assert!(text.contains("\t\tip saddr @adm_v4 tcp dport"));
}

#[test]
fn set_elements_are_addresses_prefixes_or_ranges() {
    let a = render(&ruleset(
        r#"
version = 1
[groups]
web = ["10.0.0.1"]
src = ["10.1.0.0/24", "10.2.0.1-10.2.0.9", "10.3.0.7", "2001:db8::/64", "2001:db8:1::1-2001:db8:1::3"]
[roles.web]
[[flows]]
from = "src"
to = "web"
ports = ["udp/53"]
"#,
        "web",
    ));
    assert_eq!(a.set_names(), ["src_v4"]); // web is v4-only: no v6 rule, no v6 set
    let doc: Value = serde_json::from_str(&to_json(&a)).unwrap();
    let set = doc["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|o| o["add"].get("set"))
        .unwrap();
    assert_eq!(set["type"], "ipv4_addr");
    assert_eq!(set["flags"], serde_json::json!(["interval"]));
    assert_eq!(
        set["elem"],
        serde_json::json!([
            {"prefix": {"addr": "10.1.0.0", "len": 24}},
            {"range": ["10.2.0.1", "10.2.0.9"]},
            "10.3.0.7"
        ])
    );
    let text = to_nft_text(&a);
    assert!(text.contains(
        "\tset src_v4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { 10.1.0.0/24, 10.2.0.1-10.2.0.9, 10.3.0.7 }\n\t}\n"
    ));
}

#[test]
fn flow_sets_with_leading_underscore_and_dash() {
    let a = render(&ruleset(
        r#"
version = 1
[groups]
web = ["10.0.0.1", "2001:db8::1"]
adm = ["10.9.0.0/24", "2001:db8:9::/64"]
ops = ["10.8.0.1"]
[roles.web]
[[flows]]
name = "admin-ssh"
from = ["adm", "ops"]
to = "web"
ports = ["tcp/22"]
"#,
        "web",
    ));
    assert_eq!(a.set_names(), ["_admin-ssh_from_v4", "_admin-ssh_from_v6"]);
    let text = to_nft_text(&a);
    assert!(text.contains("\tset _admin-ssh_from_v4 {\n"));
    assert!(text.contains("ip saddr @_admin-ssh_from_v4 tcp dport 22"));
    assert!(text.contains("ip6 saddr @_admin-ssh_from_v6 tcp dport 22"));
    assert!(text.contains("elements = { 10.8.0.1, 10.9.0.0/24 }"));
}

#[test]
fn log_targets() {
    let with = |log: &str| {
        let rs = ruleset(
            &format!(
                "version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n[[flows]]\nname = \"f\"\nfrom = \"any\"\nto = \"web\"\nports = [\"tcp/1\"]\nlog = true\n[baseline]\nlog = {log}\n"
            ),
            "web",
        );
        to_nft_text(&render(&rs))
    };
    // Kernel log: no level, no group.
    let t = with("{ prefix = \"k\" }");
    assert!(
        t.contains("limit rate 10/second burst 5 packets log prefix \"k f: \" comment \"flow:f\""),
        "{t}"
    );
    let t = with("{ prefix = \"k\", level = \"warn\" }");
    assert!(t.contains("log prefix \"k input drop: \" level warn comment \"baseline:log\""));
    // nft: "log level audit doesn't support any further options": no prefix.
    // (The core no longer accepts `audit`; the lowering still copes with it.)
    let mut rs = ruleset(
        "version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n[[flows]]\nname = \"f\"\nfrom = \"any\"\nto = \"web\"\nports = [\"tcp/1\"]\nlog = true\n[baseline]\nlog = { prefix = \"k\", level = \"info\" }\n",
        "web",
    );
    rs.log.as_mut().unwrap().target = microseg_core::LogTarget::Level("audit".into());
    let t = to_nft_text(&render(&rs));
    assert!(
        t.contains("limit rate 10/second burst 5 packets log level audit comment \"flow:f\""),
        "{t}"
    );
    // Drop logging off but a flow flagged: the flow is still logged, with the core's defaults.
    let t = with("false");
    assert!(t.contains(
        "limit rate 10/second burst 5 packets log prefix \"microseg f: \" comment \"flow:f\""
    ));
    assert!(!t.contains("baseline:log"));
}

#[test]
fn refusals() {
    let mut rs = ruleset(MIXED, "web");
    rs.table = "counter".into();
    assert!(matches!(
        NftRenderer.render(&rs),
        Err(NftError::TableName { .. })
    ));

    // The core refuses such a prefix too; the lowering does not rely on it.
    let mut rs = ruleset(
        "version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n[baseline]\nlog = { prefix = \"ab\" }\n",
        "web",
    );
    rs.log.as_mut().unwrap().prefix = "a$b".into();
    let e = NftRenderer.render(&rs).unwrap_err();
    assert!(matches!(e, NftError::LogPrefix { found: '$', .. }), "{e}");

    let mut rs = ruleset(MIXED, "web");
    rs.log.as_mut().unwrap().target = microseg_core::LogTarget::Level("loud".into());
    assert!(matches!(
        NftRenderer.render(&rs),
        Err(NftError::LogLevel { .. })
    ));

    let mut rs = ruleset(MIXED, "web");
    rs.sets.remove("adm_v4");
    let e = NftRenderer.render(&rs).unwrap_err();
    assert!(
        matches!(&e, NftError::UnknownSet { set, rule } if set == "adm_v4" && rule == "flow:adm-ssh"),
        "{e}"
    );

    let mut rs = ruleset(MIXED, "web");
    for r in &mut rs.input {
        if let RuleMatch::Packet(p) = &mut r.matches {
            if p.src.is_some() {
                p.family = Some(microseg_core::addr::Family::V6);
            }
        }
    }
    assert!(matches!(
        NftRenderer.render(&rs),
        Err(NftError::SetFamily { .. })
    ));
}

#[test]
fn text_has_one_line_per_json_rule_and_the_table_prelude() {
    for (file, text) in examples() {
        let p = Policy::from_str_as(&text, Format::Toml, Some(&file)).unwrap();
        for rs in compile_all_roles(&p) {
            let a = render(&rs);
            let t = to_nft_text(&a);
            let prelude = format!(
                "table inet {0}\ndelete table inet {0}\ntable inet {0} {{\n",
                rs.table
            );
            assert!(t.contains(&prelude), "{file}: {t}");
            let rule_lines = t.lines().filter(|l| l.contains(" comment \"")).count();
            assert_eq!(rule_lines, a.rule_comments().len(), "{file}");
            assert!(!t.contains("<unsupported"), "{file}: {t}");
            // Every flow of the role shows up as a `# flow:NAME` line.
            for r in rs.input.iter().chain(&rs.output) {
                assert!(t.contains(&format!("\t\t# {}\n", r.origin.label())));
            }
        }
    }
}

fn examples() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    ["three-tier.toml", "dual-stack.toml"]
        .iter()
        .map(|f| {
            let path = dir.join(f);
            (f.to_string(), std::fs::read_to_string(&path).unwrap())
        })
        .collect()
}

/// Members of `web` in a small policy whose role `adm` matches the set.
fn with_web(members: &[String]) -> NftArtefact {
    let quoted: Vec<String> = members.iter().map(|m| format!("\"{m}\"")).collect();
    render(&ruleset(
        &format!(
            "version = 1\n[groups]\nweb = [{}]\nadm = [\"10.9.0.1\"]\n[roles.adm]\n\
             [[flows]]\nfrom = \"adm\"\nto = \"web\"\nports = [\"tcp/22\"]\n",
            quoted.join(", ")
        ),
        "adm",
    ))
}

#[test]
fn a_member_change_in_a_large_set_plans_exactly_that_change() {
    use crate::{Nft, NftBackend, NftPlan, NftState};
    use microseg_core::backend::Backend;
    let mut members: Vec<String> = (0..3000)
        .map(|i| format!("10.{}.{}.1", i / 250, i % 250))
        .collect();
    let before = with_web(&members);
    let installed = NftState::from_artefact(&before);
    // One address added in the middle, one deleted near the end.
    members.insert(1500, "10.6.0.9".into());
    members.retain(|m| m != "10.11.150.1");
    let after = with_web(&members);
    let b = NftBackend::new(Nft::host(), "microseg");
    let plan = b.plan(&after, Some(&installed)).unwrap();
    let NftPlan::Elements { sets, .. } = &plan else {
        panic!("{plan}");
    };
    assert_eq!(sets.len(), 1, "{plan}");
    assert_eq!(sets[0].add, vec![serde_json::json!("10.6.0.9")]);
    assert_eq!(sets[0].delete, vec![serde_json::json!("10.11.150.1")]);
    assert_eq!(sets[0].key.as_deref(), Some("ipv4_addr"));
    // Planned against the installed form at hand: the same plan.
    let expected = NftState::from_artefact(&after);
    assert_eq!(
        b.plan_expected(&after, &expected, Some(&installed))
            .unwrap(),
        plan
    );
}

#[test]
fn elements_compare_by_the_addresses_they_cover() {
    use crate::{Nft, NftBackend, NftState};
    let a = NftState::from_artefact(&with_web(&["10.0.0.0/30".into()]));
    // The same set, written as a range, as a listing might show it.
    let text = serde_json::to_string(&a).unwrap().replace(
        r#"{"prefix":{"addr":"10.0.0.0","len":30}}"#,
        r#"{"range":["10.0.0.0","10.0.0.3"]}"#,
    );
    assert!(text.contains("range"), "{text}");
    let b: NftState = serde_json::from_str(&text).unwrap();
    let backend = NftBackend::new(Nft::host(), "microseg");
    assert!(backend.drift(Some(&a), Some(&b)).is_empty());
    assert!(a.same_but_elements(&b) && a.same_structure(&b));
    // Members differ only in elements; another policy in structure.
    let other = NftState::from_artefact(&with_web(&["10.0.0.1".into(), "2001:db8::1".into()]));
    assert!(a.same_but_elements(&other));
    assert!(!a.same_but_elements(&NftState::from_artefact(&mixed())));
}

#[test]
fn structure_digests_tell_structures_apart_and_ignore_members() {
    use crate::{Lowering, NftState};
    let mut artefacts = Vec::new();
    for (_, text) in examples() {
        let p = policy(&text);
        for rs in compile_all_roles(&p) {
            artefacts.push(Lowering::Plain.render(&rs).unwrap());
            artefacts.push(Lowering::Optimized.render(&rs).unwrap());
        }
    }
    artefacts.push(mixed());
    let mut seen = std::collections::BTreeMap::new();
    for a in &artefacts {
        let full = NftState::from_artefact(a);
        let d = NftState::structure_digest_of(a);
        // Equal digests only for states alike but for their set elements.
        if let Some(other) = seen.insert(d, full.clone()) {
            let other: NftState = other;
            assert!(other.same_but_elements(&full));
        }
    }
    assert!(seen.len() > 4, "{}", seen.len());
    // Members only: the same digest; a rule more: another.
    let a = with_web(&["10.0.0.1".into()]);
    let b = with_web(&["10.0.0.1".into(), "10.0.0.9".into(), "2001:db8::1".into()]);
    assert_eq!(
        NftState::structure_digest_of(&a),
        NftState::structure_digest_of(&b)
    );
    assert_ne!(
        NftState::structure_digest_of(&a),
        NftState::structure_digest_of(&mixed())
    );
}

#[test]
fn state_json_written_from_the_artefact_is_the_state() {
    use crate::{Lowering, NftState};
    let mut n = 0;
    for (_, text) in examples() {
        let p = policy(&text);
        for rs in compile_all_roles(&p) {
            for l in [Lowering::Plain, Lowering::Optimized] {
                let a = l.render(&rs).unwrap();
                let s: NftState = serde_json::from_slice(&NftState::json_of(&a)).unwrap();
                assert_eq!(s, NftState::from_artefact(&a), "{l:?}");
                n += 1;
            }
        }
    }
    assert!(n > 8, "{n}");
}
