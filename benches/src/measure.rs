//! Timing, peak memory and the machine a measurement ran on.
//!
//! ```
//! use microseg_benches::measure::{median, peak_rss_kib};
//! let d = median(3, || (0..1000u64).sum::<u64>());
//! assert!(d.as_secs() < 1);
//! assert!(peak_rss_kib().unwrap_or(1) > 0);
//! ```

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The median wall time of `n` runs of `f` (at least one run).
///
/// ```
/// let d = microseg_benches::measure::median(5, || std::hint::black_box(2 + 2));
/// assert!(d < std::time::Duration::from_secs(1));
/// ```
pub fn median<T>(n: usize, mut f: impl FnMut() -> T) -> Duration {
    let mut v: Vec<Duration> = (0..n.max(1))
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(f());
            t.elapsed()
        })
        .collect();
    v.sort();
    v[v.len() / 2]
}

/// The peak resident set size of this process so far (`VmHWM`), in KiB.
///
/// ```
/// assert!(microseg_benches::measure::peak_rss_kib().is_some());
/// ```
pub fn peak_rss_kib() -> Option<u64> {
    status_field("VmHWM:")
}

/// The resident set size of this process now (`VmRSS`), in KiB.
///
/// ```
/// assert!(microseg_benches::measure::rss_kib().is_some());
/// ```
pub fn rss_kib() -> Option<u64> {
    status_field("VmRSS:")
}

fn status_field(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Where a measurement ran.
///
/// ```
/// let m = microseg_benches::measure::Machine::this();
/// assert!(m.cores >= 1);
/// assert!(m.date.len() == 10);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Machine {
    /// Online CPUs.
    pub cores: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu: String,
    /// The kernel release.
    pub kernel: String,
    /// Total memory, in MiB.
    pub memory_mib: u64,
    /// The date (UTC), `YYYY-MM-DD`.
    pub date: String,
    /// `nft --version`, if nft is installed.
    pub nft: String,
}

impl Machine {
    /// This machine, now.
    ///
    /// ```
    /// assert!(!microseg_benches::measure::Machine::this().kernel.is_empty());
    /// ```
    pub fn this() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        let memory_mib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            })
            .map_or(0, |kib| kib / 1024);
        let nft = std::process::Command::new("nft")
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            kernel,
            memory_mib,
            date: today(),
            nft,
        }
    }

    /// One line: `2 cores, AMD EPYC, Linux 6.1, 24 GiB, 2025-01-31`.
    ///
    /// ```
    /// let m = microseg_benches::measure::Machine::this();
    /// assert!(m.summary().contains("cores"));
    /// ```
    pub fn summary(&self) -> String {
        format!(
            "{} cores ({}), {} MiB memory, Linux {}, {}{}",
            self.cores,
            self.cpu,
            self.memory_mib,
            self.kernel,
            self.date,
            if self.nft.is_empty() {
                String::new()
            } else {
                format!(", {}", self.nft)
            }
        )
    }
}

/// Today's date (UTC) as `YYYY-MM-DD`.
fn today() -> String {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}
