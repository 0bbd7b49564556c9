//! Rust values → Python objects.

use microseg_core::Diagnostic;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

/// A JSON value as the Python object `json.loads` would give.
pub(crate) fn json_to_py<'py>(
    py: Python<'py>,
    v: &serde_json::Value,
) -> PyResult<Bound<'py, PyAny>> {
    use serde_json::Value;
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => s.into_pyobject(py)?.into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, item) in map {
                dict.set_item(k, json_to_py(py, item)?)?;
            }
            dict.into_any()
        }
    })
}

/// A diagnostic as `{"file", "line", "col", "severity", "message"}`
/// (`file`, `line` and `col` may be `None`).
pub(crate) fn diagnostic_dict<'py>(
    py: Python<'py>,
    d: &Diagnostic,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("file", d.file.as_deref())?;
    dict.set_item("line", d.pos.map(|p| p.line))?;
    dict.set_item("col", d.pos.map(|p| p.col))?;
    let severity = match d.severity {
        microseg_core::Severity::Error => "error",
        microseg_core::Severity::Warning => "warning",
    };
    dict.set_item("severity", severity)?;
    dict.set_item("message", &d.message)?;
    Ok(dict)
}
