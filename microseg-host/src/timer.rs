//! The confirm timer: a detached process that outlives the shell that ran
//! the apply.

use crate::HostError;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::unistd::{getsid, setsid, Pid};
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long the apply waits for the timer to report itself detached.
const DETACH_TIMEOUT: Duration = Duration::from_secs(5);

/// The program that runs the confirm timer: the library appends
/// `--state-dir DIR --id ID` to `args`. The program must then call
/// [`Host::run_timer`](crate::Host::run_timer) (the `microseg` binary does
/// so in a hidden subcommand).
///
/// ```
/// let t = microseg_host::TimerCommand {
///     program: "/usr/bin/microseg".into(),
///     args: vec!["__confirm-timer".into()],
/// };
/// # let _ = t;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerCommand {
    /// The executable.
    pub program: PathBuf,
    /// Its first arguments.
    pub args: Vec<OsString>,
}

/// Starts the timer: stdin and stdout on `/dev/null`, stderr appended to
/// `log`; then waits until the child has made itself a session leader
/// ([`detach`]), so that no signal meant for the caller's terminal, shell or
/// process group reaches it. Returns its pid.
pub(crate) fn spawn(
    cmd: &TimerCommand,
    state_dir: &Path,
    id: &str,
    log: &Path,
) -> Result<u32, HostError> {
    let err = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log)
        .map_err(|e| HostError::io("cannot open the timer log", log, e))?;
    let mut child = Command::new(&cmd.program)
        .args(&cmd.args)
        .arg("--state-dir")
        .arg(state_dir)
        .arg("--id")
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(err))
        .spawn()
        .map_err(|e| HostError::Timer(format!("cannot start {}: {e}", cmd.program.display())))?;
    let pid = child.id();
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(HostError::Timer(format!(
                "{} exited at once ({status}); see {}",
                cmd.program.display(),
                log.display()
            )));
        }
        let own = Pid::from_raw(pid as i32);
        if getsid(Some(own)) == Ok(own) {
            // Not waited for: once we exit, init adopts it.
            return Ok(pid);
        }
        if start.elapsed() > DETACH_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HostError::Timer(format!(
                "{} did not detach within {DETACH_TIMEOUT:?} (it must call microseg_host::detach)",
                cmd.program.display()
            )));
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// Detaches the calling process from the terminal, shell and process group
/// that started it: a new session (`setsid`), and the job-control and hangup
/// signals blocked. The confirm timer calls this first.
///
/// ```no_run
/// microseg_host::detach()?;
/// # Ok::<(), microseg_host::HostError>(())
/// ```
pub fn detach() -> Result<(), HostError> {
    let mut blocked = SigSet::empty();
    for s in [
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGTSTP,
        Signal::SIGTTIN,
        Signal::SIGTTOU,
        Signal::SIGPIPE,
    ] {
        blocked.add(s);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&blocked), None)
        .map_err(|e| HostError::Timer(format!("cannot block signals: {e}")))?;
    match setsid() {
        Ok(_) => Ok(()),
        // Already a process group leader: only a session leader may stay.
        Err(e) => {
            let me = Pid::this();
            if getsid(None) == Ok(me) {
                Ok(())
            } else {
                Err(HostError::Timer(format!("setsid: {e}")))
            }
        }
    }
}
