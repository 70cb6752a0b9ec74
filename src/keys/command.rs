//! Running `shred.root_key_command`, as PostgreSQL runs `ssl_passphrase_command`: `/bin/sh -c`
//! with no input; the key or keyring is read from its standard output. Its standard error is
//! discarded and its output is never logged or put in an error message.
//!
//! The command runs in its own process group, with no file descriptor of the backend but its
//! standard streams (not the client's socket, not data files). It is killed (the whole group,
//! `SIGKILL`) when it outlives `shred.root_key_command_timeout`, prints more than
//! [`MAX_OUTPUT`] bytes, the query is cancelled meanwhile, or the backend exits (also when it is
//! terminated, which runs no Rust destructor).

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use pgrx::pg_sys;

use zeroize::Zeroizing;

use crate::error::ShredError;

/// Most output accepted from the command, in bytes.
pub const MAX_OUTPUT: usize = 64 * 1024;

/// How long one wait lasts before interrupts are checked again.
const TICK: Duration = Duration::from_millis(50);

fn failed(why: impl Into<String>) -> ShredError {
    ShredError::RootKeyCommand(why.into())
}

/// Process group of the command running now (0: none), for the exit hook.
static RUNNING_GROUP: AtomicI32 = AtomicI32::new(0);
static EXIT_HOOK: Once = Once::new();

/// Backend exit (`proc_exit`, also after `pg_terminate_backend`): kill a command still running.
unsafe extern "C-unwind" fn kill_at_exit(_code: i32, _arg: pg_sys::Datum) {
    let group = RUNNING_GROUP.swap(0, Ordering::SeqCst);
    if group > 0 {
        // SAFETY: signals the process group created for the command only.
        unsafe { libc::kill(-group, libc::SIGKILL) };
    }
}

/// Kills the command's process group and reaps it unless it was reaped already; runs also
/// when a cancel or another ERROR unwinds through the caller.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            // SAFETY: signals the process group created for this child only.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            let _ = child.wait();
        }
        RUNNING_GROUP.store(0, Ordering::SeqCst);
    }
}

/// Run `command`; its standard output, at most [`MAX_OUTPUT`] bytes, in zeroizing memory.
///
/// Errors ([`ShredError::RootKeyCommand`]): it cannot be started, exits with a non-zero
/// status or a signal, does not finish within `timeout`, or prints too much.
pub fn run(command: &str, timeout: Duration) -> Result<Zeroizing<Vec<u8>>, ShredError> {
    EXIT_HOOK.call_once(|| {
        // SAFETY: registers a callback that only sends a signal; it lives as long as the backend.
        unsafe { pg_sys::before_shmem_exit(Some(kill_at_exit), pg_sys::Datum::from(0usize)) };
    });
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(command).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).process_group(0);
    // SAFETY: runs in the child between fork and exec and calls only close_range(2), which is
    // async-signal-safe. It marks every descriptor above 2 close-on-exec (the backend's client
    // socket and files; the process's own error pipe is close-on-exec already), so the command
    // inherits none of them.
    unsafe {
        cmd.pre_exec(|| {
            libc::close_range(3, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC as libc::c_int);
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| failed(format!("cannot start it: {}", e.kind())))?;
    RUNNING_GROUP.store(child.id() as i32, Ordering::SeqCst);
    let mut running = Running(Some(child));
    let deadline = Instant::now() + timeout;
    let too_slow = || failed(format!("it did not finish within {} s and was killed", timeout.as_secs()));

    let mut stdout = running
        .0
        .as_mut()
        .and_then(|c| c.stdout.take())
        .ok_or_else(|| failed("its output cannot be read"))?;
    let fd = stdout.as_raw_fd();
    // Capacity reserved up front: the buffer never reallocates, so no copy of the key is
    // left behind in freed memory.
    let mut out = Zeroizing::new(Vec::with_capacity(MAX_OUTPUT + 1));
    let mut chunk = Zeroizing::new([0u8; 4096]);
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(too_slow());
        }
        let wait = (deadline - now).min(TICK);
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd for the pipe we own.
        let ready = unsafe { libc::poll(&mut pfd, 1, wait.as_millis() as libc::c_int) };
        pgrx::check_for_interrupts!();
        if ready <= 0 {
            // The shell has exited and its output is drained: a background child it left
            // holding the pipe open is not waited for.
            let exited = running.0.as_mut().map(|c| matches!(c.try_wait(), Ok(Some(_)))).unwrap_or(false);
            if exited {
                break;
            }
            continue;
        }
        let n = match stdout.read(chunk.as_mut_slice()) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(failed(format!("cannot read its output: {}", e.kind()))),
        };
        if n == 0 {
            break;
        }
        if out.len() + n > MAX_OUTPUT {
            return Err(failed(format!("it printed more than {MAX_OUTPUT} bytes")));
        }
        out.extend_from_slice(&chunk[..n]);
    }
    drop(stdout);

    let status = loop {
        let child = running.0.as_mut().ok_or_else(|| failed("it was lost"))?;
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => return Err(failed(format!("cannot wait for it: {}", e.kind()))),
        }
        if Instant::now() >= deadline {
            return Err(too_slow());
        }
        std::thread::sleep(Duration::from_millis(5));
        pgrx::check_for_interrupts!();
    };
    // Reaped: nothing left to kill.
    running.0 = None;
    RUNNING_GROUP.store(0, Ordering::SeqCst);
    if let Some(code) = status.code() {
        if code != 0 {
            return Err(failed(format!("it exited with status {code}")));
        }
    } else if let Some(signal) = status.signal() {
        return Err(failed(format!("it was terminated by signal {signal}")));
    }
    Ok(out)
}
