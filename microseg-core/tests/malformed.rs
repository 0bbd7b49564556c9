//! The malformed-policy corpus: every policy file in `tests/malformed/` (at the
//! workspace root) must be rejected with exactly the located errors listed in
//! its `.expect` sidecar.
//!
//! Sidecar format, one item per line (blank lines and `#` comments ignored):
//!
//! * `LINE:COL: error: MESSAGE` — an error at that position whose message
//!   contains `MESSAGE` must be reported;
//! * `error: MESSAGE` — the same, for an error that has no position;
//! * `nopos` — the case may report errors without a position.
//!
//! The number of errors reported must equal the number of expected lines, so a
//! multi-error case also checks that every error is reported in one run.
//! Cases in `tests/malformed/pending/` are known library problems and skipped.
//! Set `MALFORMED_VERBOSE=1` (with `--nocapture`) to print every case's output.

use microseg_core::{Diagnostic, Error, Policy, Severity};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// Policy file extensions of the corpus.
const EXTENSIONS: &[&str] = &["toml", "json", "yaml", "yml"];
/// The corpus must not shrink below this.
const MIN_CASES: usize = 45;

/// One expected diagnostic.
struct Expected {
    /// `"LINE:COL"`, or `None` for an error without a position.
    pos: Option<String>,
    /// A substring of the message.
    message: String,
    /// The line as written in the sidecar, for reports.
    text: String,
}

/// The parsed `.expect` sidecar of a case.
struct Expectation {
    errors: Vec<Expected>,
    nopos: bool,
}

fn corpus_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/malformed");
    dir.canonicalize().unwrap_or(dir)
}

fn is_case(path: &Path) -> bool {
    path.is_file()
        && path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e))
}

/// `NN-short-description.ext`: two digits, a dash, lower-case words.
fn well_named(path: &Path) -> bool {
    let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
        return false;
    };
    let b = stem.as_bytes();
    b.len() > 3
        && b[0].is_ascii_digit()
        && b[1].is_ascii_digit()
        && b[2] == b'-'
        && stem[3..]
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn read_expectation(case: &Path) -> Result<Expectation, String> {
    let sidecar = case.with_extension("expect");
    let text = std::fs::read_to_string(&sidecar)
        .map_err(|e| format!("cannot read {}: {e}", sidecar.display()))?;
    let mut exp = Expectation {
        errors: Vec::new(),
        nopos: false,
    };
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "nopos" {
            exp.nopos = true;
            continue;
        }
        let (head, message) = line
            .split_once("error: ")
            .ok_or_else(|| format!("{}: bad line {line:?}", sidecar.display()))?;
        let head = head.trim();
        let pos = if head.is_empty() {
            None
        } else {
            let p = head.strip_suffix(':').unwrap_or(head);
            let ok = p
                .split_once(':')
                .is_some_and(|(l, c)| l.parse::<u32>().is_ok() && c.parse::<u32>().is_ok());
            if !ok {
                return Err(format!("{}: bad position in {line:?}", sidecar.display()));
            }
            Some(p.to_string())
        };
        exp.errors.push(Expected {
            pos,
            message: message.to_string(),
            text: line.to_string(),
        });
    }
    if exp.errors.is_empty() {
        return Err(format!("{}: no expected errors", sidecar.display()));
    }
    Ok(exp)
}

fn matches(d: &Diagnostic, e: &Expected) -> bool {
    let pos = d.pos.map(|p| p.to_string());
    d.severity == Severity::Error && pos == e.pos && d.message.contains(&e.message)
}

/// Loads one case and checks it against its sidecar.
fn check(case: &Path) -> Result<(), String> {
    let exp = read_expectation(case)?;
    let loaded = catch_unwind(AssertUnwindSafe(|| Policy::from_file(case)));
    let diags = match loaded {
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(non-string payload)".to_string());
            return Err(format!("panicked: {what}"));
        }
        Ok(Ok(_)) => return Err("was ACCEPTED".to_string()),
        Ok(Err(Error::Invalid(diags))) => diags,
        Ok(Err(other)) => return Err(format!("wrong error kind: {other}")),
    };
    let rendered = Error::Invalid(diags.clone()).to_string();
    if std::env::var_os("MALFORMED_VERBOSE").is_some() {
        println!("{rendered}");
    }
    let mut problems = Vec::new();
    let file = case.display().to_string();
    for d in &diags {
        if d.file.as_deref() != Some(file.as_str()) {
            problems.push(format!("no/wrong file name: {d}"));
        }
        if d.pos.is_none() && !exp.nopos {
            problems.push(format!("no position: {d}"));
        }
    }
    let mut used = vec![false; diags.len()];
    for e in &exp.errors {
        let found = (0..diags.len()).find(|&i| !used[i] && matches(&diags[i], e));
        match found {
            Some(i) => {
                used[i] = true;
                let line = diags[i].to_string();
                if !rendered.lines().any(|l| l == line) {
                    problems.push(format!("not in rendered output: {line}"));
                }
            }
            None => problems.push(format!("missing: {}", e.text)),
        }
    }
    let errors = diags
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    if errors != exp.errors.len() {
        problems.push(format!(
            "{errors} errors reported, {} expected",
            exp.errors.len()
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\n    actual output:\n      {}",
            problems.join("\n    "),
            rendered.replace('\n', "\n      ")
        ))
    }
}

#[test]
fn malformed_policies_are_rejected_with_located_errors() {
    let dir = corpus_dir();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    cases.sort();
    let mut failures = Vec::new();
    // Every sidecar belongs to a case.
    for p in &cases {
        if p.extension().is_some_and(|e| e == "expect")
            && !EXTENSIONS.iter().any(|x| p.with_extension(x).is_file())
        {
            failures.push(format!("{}: sidecar without a case", p.display()));
        }
    }
    cases.retain(|p| is_case(p));
    for case in &cases {
        if !well_named(case) {
            failures.push(format!(
                "{}: name is not NN-short-description.ext",
                case.display()
            ));
        }
        if let Err(msg) = check(case) {
            failures.push(format!("{}:\n    {msg}", case.display()));
        }
    }
    println!("malformed corpus: {} cases checked", cases.len());
    assert!(
        failures.is_empty(),
        "{} of {} malformed cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert!(
        cases.len() >= MIN_CASES,
        "only {} malformed cases, expected at least {MIN_CASES}",
        cases.len()
    );
}
