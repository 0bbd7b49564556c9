//! Running external programs with argument vectors (never a shell) and a deadline.

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::LabError;

/// Deadline for the `ip` commands that build and remove a lab.
pub(crate) const IP_TIMEOUT: Duration = Duration::from_secs(20);

/// How long output is still collected after the child exited (a daemon it forked
/// may keep the pipes open; we do not wait for it).
const DRAIN_GRACE: Duration = Duration::from_millis(300);

/// A printable form of a command line.
pub(crate) fn describe(program: &str, args: &[&str]) -> String {
    let mut line = String::from(program);
    for arg in args {
        line.push(' ');
        if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
            line.push_str(&format!("{arg:?}"));
        } else {
            line.push_str(arg);
        }
    }
    line
}

/// A pipe reader on its own (detached) thread.
struct Collector {
    data: Arc<Mutex<Vec<u8>>>,
    done: Arc<AtomicBool>,
}

impl Collector {
    fn start(pipe: Option<impl Read + Send + 'static>) -> Collector {
        let data = Arc::new(Mutex::new(Vec::new()));
        let done = Arc::new(AtomicBool::new(false));
        match pipe {
            None => done.store(true, Ordering::SeqCst),
            Some(mut pipe) => {
                let (d, f) = (Arc::clone(&data), Arc::clone(&done));
                let spawned = thread::Builder::new()
                    .name("msl-cmd-read".into())
                    .spawn(move || {
                        let mut buf = [0u8; 8192];
                        while let Ok(n @ 1..) = pipe.read(&mut buf) {
                            d.lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .extend_from_slice(&buf[..n]);
                        }
                        f.store(true, Ordering::SeqCst);
                    });
                if spawned.is_err() {
                    done.store(true, Ordering::SeqCst);
                }
            }
        }
        Collector { data, done }
    }

    fn finish(self, until: Instant) -> Vec<u8> {
        while !self.done.load(Ordering::SeqCst) && Instant::now() < until {
            thread::sleep(Duration::from_millis(2));
        }
        std::mem::take(&mut *self.data.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Runs `program args...` with optional standard input, killing it after `timeout`.
/// Returns its output whatever its exit status.
pub(crate) fn run_unchecked(
    program: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<Output, LabError> {
    let command = describe(program, args);
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| LabError::io(format!("cannot start `{command}`"), e))?;
    if let (Some(mut pipe), Some(input)) = (child.stdin.take(), stdin) {
        let input = input.to_vec();
        // Detached: a child that never reads its input must not block us.
        let _ = thread::Builder::new()
            .name("msl-cmd-write".into())
            .spawn(move || {
                let _ = pipe.write_all(&input);
            });
    }
    let out = Collector::start(child.stdout.take());
    let err = Collector::start(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LabError::io(format!("waiting for `{command}`"), e));
            }
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(LabError::CommandTimeout { command, timeout });
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    let until = Instant::now() + DRAIN_GRACE;
    Ok(Output {
        status,
        stdout: out.finish(until),
        stderr: err.finish(until),
    })
}

/// Like [`run_unchecked`], but an unsuccessful exit status is an error.
pub(crate) fn run(
    program: &str,
    args: &[&str],
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<Output, LabError> {
    let output = run_unchecked(program, args, stdin, timeout)?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(LabError::Command {
            command: describe(program, args),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// Runs `ip args...` (checked, default deadline).
pub(crate) fn ip(args: &[&str], stdin: Option<&[u8]>) -> Result<Output, LabError> {
    run("ip", args, stdin, IP_TIMEOUT)
}
