//! Rust errors → the exception classes of `microseg._errors`.
//!
//! The classes are plain Python (so they can inherit from `ValueError` and
//! carry typed attributes); they are looked up when an error is raised.

use crate::convert::diagnostic_dict;
use pyo3::exceptions::{PyOSError, PyRuntimeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// Any failure of a pure operation (parse, compile, render).
#[derive(Debug)]
pub(crate) enum Failure {
    /// microseg-core.
    Core(microseg_core::Error),
    /// The nftables renderer or `nft`.
    Nft(backend_nft::NftError),
    /// The firewalld renderer or firewalld.
    Firewalld(backend_firewalld::FirewalldError),
}

impl From<microseg_core::Error> for Failure {
    fn from(e: microseg_core::Error) -> Failure {
        Failure::Core(e)
    }
}

impl From<backend_nft::NftError> for Failure {
    fn from(e: backend_nft::NftError) -> Failure {
        Failure::Nft(e)
    }
}

impl From<backend_firewalld::FirewalldError> for Failure {
    fn from(e: backend_firewalld::FirewalldError) -> Failure {
        Failure::Firewalld(e)
    }
}

impl Failure {
    /// The Python exception.
    pub(crate) fn into_py_err(self, py: Python<'_>) -> PyErr {
        match self {
            Failure::Core(e) => core_error(py, e),
            Failure::Nft(e) => nft_error(e),
            Failure::Firewalld(e) => backend_error(e.to_string(), None, None),
        }
    }
}

/// Instantiates `microseg._errors.<class>(*args, **kwargs)` as a `PyErr`.
fn raise(
    class: &str,
    args: impl FnOnce(Python<'_>) -> PyResult<(Bound<'_, PyAny>, Option<Bound<'_, PyDict>>)>,
) -> PyErr {
    Python::attach(|py| {
        let make = || -> PyResult<PyErr> {
            let cls = py.import("microseg._errors")?.getattr(class)?;
            let (args, kwargs) = args(py)?;
            let value = cls.call((args,), kwargs.as_ref())?;
            Ok(PyErr::from_value(value))
        };
        make().unwrap_or_else(|e| e)
    })
}

/// `RequestError(message)`: a request that does not fit the policy or the API.
pub(crate) fn request_error(message: impl Into<String>) -> PyErr {
    let message = message.into();
    raise("RequestError", move |py| {
        Ok((message.into_pyobject(py)?.into_any(), None))
    })
}

/// `BackendError(message, command=…, stderr=…)`.
pub(crate) fn backend_error(
    message: String,
    command: Option<String>,
    stderr: Option<String>,
) -> PyErr {
    raise("BackendError", move |py| {
        let kw = PyDict::new(py);
        kw.set_item("command", command)?;
        kw.set_item("stderr", stderr)?;
        Ok((message.into_pyobject(py)?.into_any(), Some(kw)))
    })
}

/// An nft error as `BackendError`, with the command line and nft's stderr when it has them.
pub(crate) fn nft_error(e: backend_nft::NftError) -> PyErr {
    let (command, stderr) = match &e {
        backend_nft::NftError::Command {
            command, stderr, ..
        } => (Some(command.clone()), Some(stderr.clone())),
        backend_nft::NftError::Spawn { command, .. }
        | backend_nft::NftError::Output { command, .. } => (Some(command.clone()), None),
        _ => (None, None),
    };
    backend_error(e.to_string(), command, stderr)
}

/// A microseg-core error: `PolicyError` (with `.diagnostics`), `OSError`
/// (the policy file cannot be read; `FileNotFoundError` and so on) or
/// `RequestError`.
pub(crate) fn core_error(py: Python<'_>, e: microseg_core::Error) -> PyErr {
    match e {
        microseg_core::Error::Invalid(diags) => {
            let message = microseg_core::diag::render(&diags);
            raise("PolicyError", move |py| {
                let list = PyList::empty(py);
                for d in &diags {
                    list.append(diagnostic_dict(py, d)?)?;
                }
                let kw = PyDict::new(py);
                kw.set_item("diagnostics", list)?;
                Ok((message.into_pyobject(py)?.into_any(), Some(kw)))
            })
        }
        microseg_core::Error::Read { path, source } => match source.raw_os_error() {
            Some(errno) => {
                let strerror = format!(
                    "cannot read policy: {}",
                    strip_os_error(&source.to_string())
                );
                PyOSError::new_err((errno, strerror, path))
            }
            None => {
                let _ = py;
                PyOSError::new_err(format!("cannot read policy {path}: {source}"))
            }
        },
        microseg_core::Error::Request(m) => request_error(m),
    }
}

/// `No such file or directory (os error 2)` → `No such file or directory`.
fn strip_os_error(s: &str) -> &str {
    match s.rfind(" (os error ") {
        Some(i) => &s[..i],
        None => s,
    }
}

/// A bug in the bindings (never expected).
#[allow(dead_code)]
pub(crate) fn internal(message: impl Into<String>) -> PyErr {
    PyRuntimeError::new_err(message.into())
}
