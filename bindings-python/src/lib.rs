//! Python bindings of microseg: the extension module `microseg._native`,
//! re-exported by the Python package `microseg` (see `python/microseg/`).
//!
//! ```text
//! >>> import microseg
//! >>> p = microseg.Policy.from_file("examples/three-tier.toml")
//! >>> p.query("10.10.1.10", "10.10.1.20", "tcp/8080")["verdict"]
//! 'allow'
//! >>> print(p.compile(role="web", format="nft"))
//! ```
//!
//! A thin layer: every function is a few calls into the crates, the same
//! calls `microseg` (the CLI) makes, so results are the CLI's. Errors become
//! the exception classes of `microseg._errors` (pure Python, so that they can
//! carry typed attributes and inherit from the standard exceptions):
//! `PolicyError` (invalid policy; `.diagnostics`), `RequestError` (a request
//! that does not fit the policy: unknown role, bad address; a `ValueError`),
//! `BackendError` (a backend failed; `.command`, `.stderr` where known).
//!
//! The GIL is released around parsing, compiling, diffing and every backend
//! operation, so several policies can be compiled or applied from threads.

mod convert;
mod errors;
mod host;

use backend_firewalld::FirewalldRenderer;
use convert::{diagnostic_dict, json_to_py};
use errors::{core_error, request_error};
use microseg_core::backend::Renderer;
use microseg_core::document::Format;
use microseg_core::ir::{self, HostRuleset, Target};
use microseg_core::ports::Proto;
use microseg_core::semantics::Connection;
use microseg_core::Policy;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyType};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// A validated microseg policy (immutable).
///
/// Load one with `Policy.from_file`, `Policy.from_text` or `Policy.from_dict`.
#[pyclass(frozen, module = "microseg", name = "Policy")]
pub struct PyPolicy {
    inner: Arc<Policy>,
}

/// What `compile` prints.
#[derive(Clone, Copy)]
enum CompileFormat {
    Nft,
    NftJson,
    Ir,
    Firewalld,
    Sysctl,
}

impl CompileFormat {
    fn parse(s: &str) -> PyResult<CompileFormat> {
        match s {
            "nft" => Ok(CompileFormat::Nft),
            "nft-json" => Ok(CompileFormat::NftJson),
            "ir" => Ok(CompileFormat::Ir),
            "firewalld" => Ok(CompileFormat::Firewalld),
            "sysctl" => Ok(CompileFormat::Sysctl),
            other => Err(request_error(format!(
                "unknown compile format {other:?}: use \"nft\", \"nft-json\", \"ir\", \"firewalld\" or \"sysctl\""
            ))),
        }
    }
}

/// The input format named by `format` (`toml`, `json`, `yaml`/`yml`).
fn parse_format(format: &str) -> PyResult<Format> {
    match format.to_ascii_lowercase().as_str() {
        "toml" => Ok(Format::Toml),
        "json" => Ok(Format::Json),
        "yaml" | "yml" => Ok(Format::Yaml),
        other => Err(request_error(format!(
            "unknown policy format {other:?}: use \"toml\", \"json\" or \"yaml\""
        ))),
    }
}

/// Parses an IP address argument.
fn parse_ip(what: &str, s: &str) -> PyResult<IpAddr> {
    s.trim()
        .parse()
        .map_err(|_| request_error(format!("{what}: {s:?} is not an IPv4 or IPv6 address")))
}

/// `role` or `host` (exactly one) as a compile target.
pub(crate) fn target_of(role: Option<&str>, host: Option<&str>) -> PyResult<Target> {
    match (role, host) {
        (Some(r), None) => Ok(Target::Role(r.to_string())),
        (None, Some(h)) => Ok(Target::Host(parse_ip("host", h)?)),
        (Some(_), Some(_)) => Err(request_error("give role or host, not both")),
        (None, None) => Err(request_error("give role=NAME or host=ADDRESS")),
    }
}

/// Compiles and renders, as `microseg compile` prints it (ending in a newline,
/// or empty: `sysctl` for a policy without `hardening`).
fn render(
    policy: &Policy,
    target: &Target,
    format: CompileFormat,
    lowering: backend_nft::Lowering,
) -> Result<String, errors::Failure> {
    let rs: HostRuleset = ir::compile(policy, target)?;
    let mut out = match format {
        CompileFormat::Nft => backend_nft::to_nft_text(&lowering.render(&rs)?),
        CompileFormat::NftJson => backend_nft::to_json(&lowering.render(&rs)?),
        CompileFormat::Ir => serde_json::to_string_pretty(&rs).expect("the IR serialises"),
        CompileFormat::Firewalld => FirewalldRenderer.render(&rs)?.to_json(),
        CompileFormat::Sysctl => match &policy.hardening {
            Some(h) => microseg_core::hardening::sysctl_file(h, &policy.table),
            None => String::new(),
        },
    };
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

impl PyPolicy {
    fn wrap(p: Policy) -> PyPolicy {
        PyPolicy { inner: Arc::new(p) }
    }

    /// The policy, shared (for other modules of the crate).
    pub(crate) fn policy(&self) -> Arc<Policy> {
        Arc::clone(&self.inner)
    }
}

#[pymethods]
impl PyPolicy {
    /// Reads, parses and validates a policy file; the format follows the
    /// extension (`.json`, `.yaml`/`.yml`, else TOML). Diagnostics name the
    /// path as given.
    #[classmethod]
    fn from_file(_cls: &Bound<'_, PyType>, py: Python<'_>, path: PathBuf) -> PyResult<PyPolicy> {
        let p = py.detach(|| Policy::from_file(&path));
        p.map(PyPolicy::wrap).map_err(|e| core_error(py, e))
    }

    /// Parses and validates a policy document given as text.
    #[classmethod]
    #[pyo3(signature = (text, format = "toml", filename = None))]
    fn from_text(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        text: String,
        format: &str,
        filename: Option<String>,
    ) -> PyResult<PyPolicy> {
        let format = parse_format(format)?;
        let p = py.detach(|| Policy::from_str_as(&text, format, filename.as_deref()));
        p.map(PyPolicy::wrap).map_err(|e| core_error(py, e))
    }

    /// Validates a policy document given as a dict (as loaded from JSON or
    /// YAML). It goes through JSON, so validation and messages are those of a
    /// JSON file; diagnostics carry no line or column (the text they would
    /// point into is generated).
    #[classmethod]
    #[pyo3(signature = (document, filename = None))]
    fn from_dict(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        document: &Bound<'_, PyAny>,
        filename: Option<String>,
    ) -> PyResult<PyPolicy> {
        if !document.is_instance_of::<PyDict>() {
            return Err(request_error(format!(
                "from_dict needs a dict, got {}",
                document.get_type().name()?
            )));
        }
        let json: String = py
            .import("json")?
            .call_method1("dumps", (document,))?
            .extract()?;
        let p = py.detach(|| Policy::from_str_as(&json, Format::Json, filename.as_deref()));
        p.map(PyPolicy::wrap).map_err(|e| match e {
            microseg_core::Error::Invalid(mut ds) => {
                for d in &mut ds {
                    d.pos = None;
                }
                core_error(py, microseg_core::Error::Invalid(ds))
            }
            e => core_error(py, e),
        })
    }

    /// The file the policy was read from, if any.
    #[getter]
    fn file(&self) -> Option<String> {
        self.inner.positions.file.clone()
    }

    /// The nftables table the policy owns (prefix of firewalld objects).
    #[getter]
    fn table(&self) -> String {
        self.inner.table.clone()
    }

    /// Role names, sorted.
    #[getter]
    fn roles(&self) -> Vec<String> {
        self.inner.roles.keys().cloned().collect()
    }

    /// Group names, sorted.
    #[getter]
    fn groups(&self) -> Vec<String> {
        self.inner.groups.keys().cloned().collect()
    }

    /// Service names, sorted.
    #[getter]
    fn services(&self) -> Vec<String> {
        self.inner.services.keys().cloned().collect()
    }

    /// Flow names in document order (`flowN` for unnamed flows).
    #[getter]
    fn flows(&self) -> Vec<String> {
        self.inner.flows.iter().map(|f| f.name.clone()).collect()
    }

    /// The roles whose hosts include `address`.
    fn roles_of(&self, address: &str) -> PyResult<Vec<String>> {
        let ip = parse_ip("address", address)?;
        Ok(self
            .inner
            .roles_of(ip)
            .into_iter()
            .map(|r| r.name.clone())
            .collect())
    }

    /// The document as a dict (defaults not filled in).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = serde_json::to_value(&self.inner.doc).expect("the document serialises");
        json_to_py(py, &v)
    }

    /// The lint warnings (`microseg check`): a list of diagnostic dicts.
    fn check<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let warnings = microseg_core::lint::lint(&self.inner);
        let items = warnings
            .iter()
            .map(|d| diagnostic_dict(py, d))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// The object `microseg check --json` prints for this (valid) policy.
    fn summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let p = &self.inner;
        let warnings = microseg_core::lint::lint(p);
        let managed: u128 = p
            .managed
            .v4
            .ranges()
            .iter()
            .map(|&(a, b)| u128::from(b - a) + 1)
            .sum::<u128>()
            + p.managed
                .v6
                .ranges()
                .iter()
                .map(|&(a, b)| (b - a).saturating_add(1))
                .sum::<u128>();
        let v = serde_json::json!({
            "ok": true,
            "table": p.table,
            "groups": p.groups.len(),
            "services": p.services.len(),
            "roles": p.roles.len(),
            "flows": p.flows.len(),
            "managed_addresses": managed.to_string(),
            "diagnostics": warnings,
        });
        json_to_py(py, &v)
    }

    /// What a backend would install for a role or a host, as
    /// `microseg compile` prints it: `format` is `nft` (an nft script),
    /// `nft-json` (libnftables JSON), `ir` (the backend-neutral IR as JSON),
    /// `firewalld` (the firewalld objects as JSON) or `sysctl` (the sysctl.d
    /// file of the policy's `hardening`; empty without it). `optimize`: the
    /// nftables formats in the optimised lowering (`compile --optimize`).
    /// Releases the GIL.
    #[pyo3(signature = (role = None, host = None, format = "nft", optimize = false))]
    fn compile(
        &self,
        py: Python<'_>,
        role: Option<&str>,
        host: Option<&str>,
        format: &str,
        optimize: bool,
    ) -> PyResult<String> {
        let format = CompileFormat::parse(format)?;
        let target = target_of(role, host)?;
        let policy = &*self.inner;
        let lowering = if optimize {
            backend_nft::Lowering::Optimized
        } else {
            backend_nft::Lowering::Plain
        };
        py.detach(|| render(policy, &target, format, lowering))
            .map_err(|e| e.into_py_err(py))
    }

    /// The decision for one new connection by the reference semantics, and
    /// why: the object `microseg query --json` prints (`"verdict"` is
    /// `"allow"` or `"deny"`). `port` is `tcp/N`, `udp/N`, `icmp` or `icmpv6`.
    fn query<'py>(
        &self,
        py: Python<'py>,
        src: &str,
        dst: &str,
        port: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let src = parse_ip("src", src)?;
        let dst = parse_ip("dst", dst)?;
        let proto: Proto = port.parse().map_err(request_error)?;
        let c = Connection::new(src, dst, proto);
        c.validate().map_err(request_error)?;
        let d = self.inner.decide(&c);
        json_to_py(py, &d.to_json(&c))
    }

    /// Who may reach whom on which ports: the object `microseg matrix --json`
    /// prints (`parties` and row-major `cells`).
    fn matrix<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let policy = &*self.inner;
        let m = py.detach(|| microseg_core::matrix::matrix(policy));
        json_to_py(
            py,
            &serde_json::to_value(&m).expect("the matrix serialises"),
        )
    }

    /// The matrix as `microseg matrix` prints it.
    fn matrix_text(&self, py: Python<'_>) -> String {
        let policy = &*self.inner;
        py.detach(|| microseg_core::matrix::matrix(policy).to_text())
    }

    fn __repr__(&self) -> String {
        let p = &self.inner;
        format!(
            "<microseg.Policy file={} table={:?} roles={} flows={}>",
            p.positions
                .file
                .as_deref()
                .map_or("None".to_string(), |f| format!("{f:?}")),
            p.table,
            p.roles.len(),
            p.flows.len()
        )
    }
}

/// The exact semantic difference between two policies: the connection
/// classes whose verdict changes, each with an example connection.
#[pyfunction]
fn diff<'py>(py: Python<'py>, old: &PyPolicy, new: &PyPolicy) -> PyResult<Bound<'py, PyAny>> {
    let (a, b) = (&*old.inner, &*new.inner);
    let d = py.detach(|| microseg_core::diff::diff(a, b));
    json_to_py(py, &serde_json::to_value(&d).expect("the diff serialises"))
}

/// The difference between two policies as text, one line per change.
#[pyfunction]
fn diff_text(py: Python<'_>, old: &PyPolicy, new: &PyPolicy) -> String {
    let (a, b) = (&*old.inner, &*new.inner);
    py.detach(|| microseg_core::diff::diff(a, b).to_text())
}

/// Benchmark helper: compiles and renders `iterations` times in Rust (no
/// Python in the loop) and returns the seconds it took.
#[pyfunction]
#[pyo3(signature = (policy, role = None, host = None, format = "nft-json", iterations = 1))]
fn _bench_compile(
    py: Python<'_>,
    policy: &PyPolicy,
    role: Option<&str>,
    host: Option<&str>,
    format: &str,
    iterations: u32,
) -> PyResult<f64> {
    let format = CompileFormat::parse(format)?;
    let target = target_of(role, host)?;
    let p = &*policy.inner;
    py.detach(|| {
        let start = Instant::now();
        for _ in 0..iterations {
            std::hint::black_box(render(p, &target, format, backend_nft::Lowering::Plain)?);
        }
        Ok(start.elapsed().as_secs_f64())
    })
    .map_err(|e: errors::Failure| e.into_py_err(py))
}

/// The extension module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<PyPolicy>()?;
    m.add_function(wrap_pyfunction!(diff, m)?)?;
    m.add_function(wrap_pyfunction!(diff_text, m)?)?;
    m.add_function(wrap_pyfunction!(_bench_compile, m)?)?;
    host::register(m)?;
    Ok(())
}
