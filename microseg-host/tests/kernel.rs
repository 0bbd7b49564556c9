//! `Host` over the nft backend on the real kernel, in a throw-away network
//! namespace (`mshk-<pid>-<n>`) with a temporary state directory: what a
//! failed apply leaves behind (nothing), through a backend whose renderer
//! is made to produce a document the kernel rejects (the one place a test
//! hook is needed: the real renderer never produces such a document).
//!
//! Needs root, `ip`, `nft` and util-linux `setsid`.
//! Run: `cargo test -p microseg-host --test kernel`.

use backend_nft::{Nft, NftArtefact, NftBackend, NftError, NftPlan, NftState};
use microseg_core::backend::{Backend, Renderer};
use microseg_core::document::Format;
use microseg_core::ir::{compile, HostRuleset, Target};
use microseg_core::Policy;
use microseg_host::{
    ApplyOptions, ConfirmOptions, Difference, Hits, Host, HostBackend, HostError, Persist,
    PlanKind, StateDir, TimerCommand,
};
use microseg_lab::{Netns, TempDir};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The nft backend, but with a renderer that can be told to break the
/// document: a rule then matches a set the document does not define.
struct Faulty {
    inner: NftBackend,
    fault: AtomicBool,
}

impl Renderer for Faulty {
    type Artefact = NftArtefact;
    type Error = NftError;
    fn render(&self, rs: &HostRuleset) -> Result<NftArtefact, NftError> {
        let good = self.inner.render(rs)?;
        if !self.fault.load(Ordering::SeqCst) {
            return Ok(good);
        }
        let json = backend_nft::to_json(&good).replace("@web_v4", "@missing_v4");
        let doc = serde_json::from_str(&json).unwrap();
        Ok(NftArtefact::from_document(
            good.table(),
            good.target().clone(),
            doc,
        ))
    }
}

impl Backend for Faulty {
    type State = NftState;
    type Plan = NftPlan;
    fn read(&self) -> Result<Option<NftState>, NftError> {
        self.inner.read()
    }
    fn plan(&self, d: &NftArtefact, c: Option<&NftState>) -> Result<NftPlan, NftError> {
        self.inner.plan(d, c)
    }
    fn apply(&self, p: &NftPlan) -> Result<(), NftError> {
        self.inner.apply(p)
    }
    fn restore(&self, s: Option<&NftState>) -> Result<(), NftError> {
        self.inner.restore(s)
    }
    fn remove(&self) -> Result<(), NftError> {
        self.inner.remove()
    }
}

impl HostBackend for Faulty {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn owned(&self) -> String {
        self.inner.owned()
    }
    fn key(&self) -> String {
        self.inner.key()
    }
    fn expected(&self, d: &NftArtefact) -> NftState {
        self.inner.expected(d)
    }
    fn plan_kind(&self, p: &NftPlan) -> PlanKind {
        self.inner.plan_kind(p)
    }
    fn drift(&self, e: Option<&NftState>, c: Option<&NftState>) -> Vec<Difference> {
        HostBackend::drift(&self.inner, e, c)
    }
    fn hits(&self, c: &NftState) -> Vec<Hits> {
        self.inner.hits(c)
    }
    fn boot_text(&self, d: &NftArtefact) -> String {
        self.inner.boot_text(d)
    }
    fn default_persist_path(&self) -> Option<PathBuf> {
        None
    }
    fn persist_notes(&self, _: &Path, _: bool) -> Vec<String> {
        Vec::new()
    }
}

const POLICY: &str = r#"
version = 1
table = "ms"
[groups]
web = [WEB]
app = ["10.0.1.20"]
[roles.app]
[[flows]]
name = "web-to-app"
from = "web"
to = "app"
ports = ["tcp/8080"]
"#;

fn ruleset(web: &str, extra_port: bool) -> HostRuleset {
    let mut text = POLICY.replace("WEB", web);
    if extra_port {
        text = text.replace("tcp/8080", "tcp/8080\", \"tcp/8443");
    }
    let p = Policy::from_str_as(&text, Format::Toml, None).unwrap();
    compile(&p, &Target::Role("app".into())).unwrap()
}

#[test]
fn a_failed_apply_changes_nothing_and_keeps_the_records() {
    let ns = Netns::new("mshk").unwrap_or_else(|e| panic!("{e}"));
    let dir = TempDir::new("mshk").unwrap_or_else(|e| panic!("{e}"));
    let backend = Faulty {
        inner: NftBackend::new(Nft::in_netns(ns.name()), "ms"),
        fault: AtomicBool::new(false),
    };
    let host = Host::new(backend, StateDir::resolve(Some(dir.path("state"))))
        .with_lock_timeout(Duration::from_secs(5));
    let boot = dir.path("boot.nft");
    let opts = ApplyOptions {
        persist: Persist::To(boot.clone()),
        source: "inline".into(),
        ..ApplyOptions::default()
    };
    let r = host.apply(&ruleset("\"10.0.1.10\"", false), &opts).unwrap();
    assert_eq!(r.plan, PlanKind::Replace);
    let r = host.apply(&ruleset("\"10.0.1.10\"", true), &opts).unwrap();
    assert_eq!(r.plan, PlanKind::Replace);
    let records = |name: &str| std::fs::read_to_string(dir.path("state").join(name)).unwrap();
    let (snapshot, applied, boot_text) = (
        records("snapshot.json"),
        records("applied.json"),
        std::fs::read_to_string(&boot).unwrap(),
    );
    let listing = || {
        Nft::in_netns(ns.name())
            .run(&["-j", "list", "table", "inet", "ms"], None)
            .unwrap()
    };
    let before = listing();

    host.backend().fault.store(true, Ordering::SeqCst);
    for confirm in [false, true] {
        let opts = ApplyOptions {
            confirm: confirm.then(|| ConfirmOptions {
                timeout: Duration::from_secs(30),
                // A stand-in timer: it makes itself a session leader and waits.
                timer: TimerCommand {
                    program: "setsid".into(),
                    args: vec!["sh".into(), "-c".into(), "sleep 2".into()],
                },
            }),
            ..opts.clone()
        };
        let e = host
            .apply(&ruleset("\"10.0.1.11\"", false), &opts)
            .unwrap_err();
        assert!(matches!(e, HostError::Backend { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("nft -j -f -") && msg.contains("Error: No such file or directory"),
            "the error carries nft's stderr: {msg}"
        );
        assert_eq!(listing(), before, "byte-identical (confirm: {confirm})");
        assert_eq!(
            records("snapshot.json"),
            snapshot,
            "the rollback point is kept"
        );
        assert_eq!(records("applied.json"), applied);
        assert_eq!(std::fs::read_to_string(&boot).unwrap(), boot_text);
        assert!(
            !dir.path("state/pending.json").exists(),
            "no pending change left behind"
        );
    }
    // The host is still usable: status has no drift, rollback goes to v1.
    host.backend().fault.store(false, Ordering::SeqCst);
    let st = host.status().unwrap();
    assert!(!st.drifted(), "{st}");
    assert!(st.hits.iter().any(|h| h.label == "flow:web-to-app"));
    host.rollback().unwrap();
    assert!(!listing().contains("8443"));
    host.remove(&Persist::To(boot.clone())).unwrap();
    assert!(!boot.exists());
}
