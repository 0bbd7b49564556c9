//! End-to-end tests of the `microseg` binary.

use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_microseg"))
}

fn example(name: &str) -> String {
    format!("{}/../examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("microseg runs")
}

fn query(policy: &str, from: &str, to: &str, port: &str) -> serde_json::Value {
    let out = run(&[
        "query", policy, "--from", from, "--to", to, "--port", port, "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("query --json prints JSON")
}

#[test]
fn check_three_tier_ok() {
    let out = run(&["check", &example("three-tier.toml")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ok"), "{stdout}");
    assert!(stdout.contains("3 roles, 5 flows"), "{stdout}");
}

#[test]
fn check_dual_stack_ok() {
    let out = run(&["check", &example("dual-stack.toml")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The functional tests of the guide's Step 6 (and the rest of its claims).
#[test]
fn guide_step6_queries() {
    let p = example("three-tier.toml");
    let cases = [
        ("10.10.1.10", "10.10.1.20", "tcp/8080", "allow"), // web → app
        ("10.10.1.10", "10.10.1.30", "tcp/5432", "deny"),  // web → db blocked
        ("10.10.1.20", "10.10.1.30", "tcp/5432", "allow"), // app → db
        ("10.10.1.20", "1.1.1.1", "tcp/25", "deny"),       // app → internet random port
        ("203.0.113.7", "10.10.1.10", "tcp/443", "allow"), // outside → web
        ("203.0.113.7", "10.10.1.20", "tcp/8080", "deny"), // outside → app
        ("203.0.113.7", "10.10.1.30", "tcp/5432", "deny"), // outside → db
        ("10.10.0.5", "10.10.1.30", "tcp/22", "allow"),    // admin → db ssh
        ("10.10.1.30", "10.10.2.50", "tcp/2500", "allow"), // db → backup (veeam)
        ("10.10.1.20", "10.10.2.50", "tcp/2500", "deny"),  // app → backup
        ("10.10.1.20", "10.10.1.30", "tcp/3306", "allow"), // app → db mysql
        ("10.10.1.30", "10.10.1.20", "tcp/8080", "deny"),  // db → app
    ];
    for (from, to, port, want) in cases {
        let v = query(&p, from, to, port);
        assert_eq!(v["verdict"], want, "{from} -> {to} {port}: {v}");
    }
}

#[test]
fn query_explains() {
    let v = query(
        &example("three-tier.toml"),
        "10.10.1.10",
        "10.10.1.30",
        "tcp/5432",
    );
    // web may not send it (default), db may not receive it either.
    assert_eq!(v["sender"]["verdict"], "drop");
    assert_eq!(v["sender"]["reasons"][0], "default");
    let v = query(
        &example("three-tier.toml"),
        "10.10.1.20",
        "10.10.1.30",
        "tcp/5432",
    );
    assert_eq!(v["receiver"]["reasons"][0], "flow \"app-to-db\" (allow)");
    let out = run(&[
        "query",
        &example("three-tier.toml"),
        "--from",
        "10.10.1.20",
        "--to",
        "10.10.1.30",
        "--port",
        "tcp/5432",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ALLOW") && text.contains("app-to-db"),
        "{text}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = run(&[
        "query",
        &example("three-tier.toml"),
        "--from",
        "10.0.0.1",
        "--to",
        "2001:db8::1",
        "--port",
        "tcp/1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["compile", &example("three-tier.toml")]);
    assert_eq!(out.status.code(), Some(2), "--role or --host is required");
    let out = run(&[
        "query",
        &example("three-tier.toml"),
        "--from",
        "10.0.0.1",
        "--to",
        "10.0.0.2",
        "--port",
        "80",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tcp/80"));
}

#[test]
fn unknown_role_exits_1_with_suggestion() {
    let out = run(&["compile", &example("three-tier.toml"), "--role", "wbe"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean \"web\""));
}

#[test]
fn invalid_policy_exits_1_located() {
    let dir = std::env::temp_dir().join(format!("microseg-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.toml");
    std::fs::write(
        &f,
        "version = 1\n[groups]\nweb = [\"10.10.1.10/28\"]\n[roles.wbe]\n",
    )
    .unwrap();
    let out = run(&["check", f.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:3:8: error:") && err.contains("did you mean \"10.10.1.0/28\""),
        "{err}"
    );
    assert!(
        err.contains("bad.toml:4:8: error: role \"wbe\" has no hosts"),
        "{err}"
    );
}

#[test]
fn matrix_three_tier() {
    let out = run(&["matrix", &example("three-tier.toml"), "--json"]);
    assert!(out.status.success());
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cell = |from: &str, to: &str| {
        m["cells"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["from"] == from && c["to"] == to)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        cell("web", "app")["always"],
        serde_json::json!(["tcp/8080", "icmp"])
    );
    assert_eq!(
        cell("app", "db")["always"],
        serde_json::json!(["tcp/3306", "tcp/5432", "icmp"])
    );
    assert_eq!(cell("outside", "db")["always"], serde_json::json!(["icmp"]));
    assert_eq!(
        cell("admin", "db")["always"],
        serde_json::json!(["tcp/22", "icmp"])
    );
    let out = run(&["matrix", &example("three-tier.toml")]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("web"));
}

#[test]
fn compiled_rulesets_pass_nft_check() {
    // A throw-away network namespace `mscli-<pid>-<n>`, deleted on drop (also on panic).
    let ns = microseg_lab::Netns::new("mscli").unwrap_or_else(|e| panic!("{e}"));
    for (file, roles) in [
        ("three-tier.toml", &["web", "app", "db"][..]),
        ("dual-stack.toml", &["web", "api", "store"][..]),
    ] {
        for role in roles {
            for (format, nft_args) in [
                ("nft", &["-c", "-f", "-"][..]),
                ("nft-json", &["-j", "-c", "-f", "-"][..]),
            ] {
                let out = run(&[
                    "compile",
                    &example(file),
                    "--role",
                    role,
                    "--format",
                    format,
                ]);
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let res = ns.nft(nft_args, Some(&out.stdout));
                assert!(
                    res.status.success(),
                    "{file} role {role} --format {format} rejected by nft: {}\n{}",
                    String::from_utf8_lossy(&res.stderr),
                    String::from_utf8_lossy(&out.stdout)
                );
            }
        }
    }
    // Per-host compile of a host too.
    let out = run(&[
        "compile",
        &example("three-tier.toml"),
        "--host",
        "10.10.1.31",
        "--format",
        "nft",
    ]);
    assert!(ns
        .nft(&["-c", "-f", "-"], Some(&out.stdout))
        .status
        .success());
}

#[test]
fn graph_svg_and_dot() {
    let out = run(&["graph", &example("three-tier.toml")]);
    assert!(out.status.success());
    let svg = String::from_utf8_lossy(&out.stdout);
    assert!(
        svg.starts_with("<svg") || svg.starts_with("<?xml"),
        "{}",
        &svg[..80.min(svg.len())]
    );
    let checked_in = std::fs::read_to_string(format!(
        "{}/../docs/three-tier.svg",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    assert_eq!(
        svg.trim_end(),
        checked_in.trim_end(),
        "docs/three-tier.svg is the command's output"
    );
    let out = run(&["graph", &example("three-tier.toml"), "--format", "dot"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"web\" -> \"app\""));
}

#[test]
fn compile_sysctl_of_hardening() {
    let dir = std::env::temp_dir().join(format!("microseg-cli-sysctl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("h.toml");
    std::fs::write(&f, "version = 1\nhardening = { rp_filter = \"loose\" }\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n").unwrap();
    let out = run(&[
        "compile",
        f.to_str().unwrap(),
        "--role",
        "web",
        "--format",
        "sysctl",
    ]);
    std::fs::remove_dir_all(&dir).ok();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("net.ipv4.conf.all.rp_filter = 2"), "{text}");
    assert!(
        text.contains("net.ipv4.conf.all.accept_redirects = 0"),
        "{text}"
    );
    assert!(text.contains("net.ipv4.tcp_syncookies = 1"), "{text}");
}

#[test]
fn diff_reports_exact_classes_with_examples() {
    let dir = std::env::temp_dir().join(format!("microseg-cli-diff-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let old = example("three-tier.toml");
    let text = std::fs::read_to_string(&old).unwrap();
    let new = dir.join("new.toml");
    std::fs::write(
        &new,
        text.replace(
            "services = [\"postgres\", \"mysql\"]",
            "services = [\"postgres\"]",
        )
        .replace(
            "backup = [\"10.10.2.50\"]",
            "backup = [\"10.10.2.50\", \"10.10.2.51\"]",
        ),
    )
    .unwrap();
    let out = run(&["diff", &old, new.to_str().unwrap(), "--json", "--exit-code"]);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(
        out.status.code(),
        Some(1),
        "--exit-code: 1 when they differ"
    );
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let changes = d["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "{d:#}");
    // Each example connection really changes its decision.
    for c in changes {
        let ex = &c["example"];
        let proto = ex["proto"].as_object().map(|o| {
            let (k, v) = o.iter().next().unwrap();
            format!("{}/{}", k.to_lowercase(), v)
        });
        let port = proto.unwrap_or_else(|| ex["proto"].as_str().unwrap().to_lowercase());
        let src = ex["src"].as_str().unwrap();
        let dst = ex["dst"].as_str().unwrap();
        let before = query(&old, src, dst, &port)["verdict"].clone();
        assert_ne!(
            before,
            serde_json::json!(if c["new"] == "accept" {
                "allow"
            } else {
                "deny"
            }),
            "{c}"
        );
    }
    let same = run(&["diff", &old, &old, "--exit-code"]);
    assert_eq!(same.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&same.stdout).contains("no change"));
}

#[test]
fn closed_stdout_is_not_a_panic() {
    // `microseg compile … | head -1`: the reader goes away early.
    let mut child = bin()
        .args([
            "compile",
            &example("dual-stack.toml"),
            "--role",
            "web",
            "--format",
            "nft-json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}
