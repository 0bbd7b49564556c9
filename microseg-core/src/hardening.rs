//! Kernel network hardening (the guide's sysctl tip) as sysctl settings.
//!
//! ```
//! use microseg_core::{Hardening, hardening::{settings, sysctl_file}};
//! let s = settings(&Hardening::GUIDE);
//! assert!(s.contains(&("net.ipv4.conf.all.rp_filter", "1".to_string())));
//! assert!(s.contains(&("net.ipv4.tcp_syncookies", "1".to_string())));
//! assert!(sysctl_file(&Hardening::GUIDE, "microseg").contains("net.ipv6.conf.all.accept_redirects = 0"));
//! ```
//!
//! Every key here is scoped per network namespace by the kernel, so applying
//! inside a namespace changes that namespace only.

use crate::model::{Hardening, RpFilter};

/// The sysctl keys and values a hardening setting stands for, in file order.
pub fn settings(h: &Hardening) -> Vec<(&'static str, String)> {
    let redirects = if h.redirects { "1" } else { "0" };
    let rp = match h.rp_filter {
        RpFilter::Off => "0",
        RpFilter::Strict => "1",
        RpFilter::Loose => "2",
    };
    let syn = if h.syncookies { "1" } else { "0" };
    vec![
        ("net.ipv4.conf.all.accept_redirects", redirects.into()),
        ("net.ipv4.conf.default.accept_redirects", redirects.into()),
        ("net.ipv6.conf.all.accept_redirects", redirects.into()),
        ("net.ipv6.conf.default.accept_redirects", redirects.into()),
        ("net.ipv4.conf.all.send_redirects", redirects.into()),
        ("net.ipv4.conf.default.send_redirects", redirects.into()),
        ("net.ipv4.conf.all.rp_filter", rp.into()),
        ("net.ipv4.conf.default.rp_filter", rp.into()),
        ("net.ipv4.tcp_syncookies", syn.into()),
    ]
}

/// The `/proc/sys` path of a sysctl key.
///
/// ```
/// assert_eq!(microseg_core::hardening::proc_path("net.ipv4.tcp_syncookies"), "/proc/sys/net/ipv4/tcp_syncookies");
/// ```
pub fn proc_path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

/// A sysctl.d file (`/etc/sysctl.d/99-<table>.conf`) with the settings.
pub fn sysctl_file(h: &Hardening, table: &str) -> String {
    let mut out = format!(
        "# Kernel network hardening of microseg policy table {table:?}; generated, do not edit.\n\
         # Load with `sysctl --system` (or `sysctl -p FILE`).\n"
    );
    for (k, v) in settings(h) {
        out.push_str(&format!("{k} = {v}\n"));
    }
    out
}
