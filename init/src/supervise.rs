//! PID 1's wait: reap every process, pass signals on, stop on request.
//!
//! The signals init handles are blocked before the command is forked and
//! read from a signalfd (a blocked signal reaches PID 1 even without a
//! handler). SIGCHLD reaps every zombie, orphans included, until the
//! command's own status comes back. SIGTERM, SIGHUP, SIGQUIT, SIGUSR1,
//! SIGUSR2 and SIGWINCH are forwarded to the command. SIGINT, which the
//! kernel sends PID 1 on Ctrl-Alt-Del, is a request to stop: the command
//! gets its stop signal, then SIGKILL after the grace period.

use std::io;
use std::time::{Duration, Instant};

use crate::signal;

const FORWARDED: &[libc::c_int] = &[
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGWINCH,
];

pub struct Signals {
    fd: libc::c_int,
}

impl Signals {
    /// Blocks SIGCHLD, SIGINT and the forwarded signals, and opens a
    /// signalfd for them. Call before forking the command; the child
    /// unblocks them.
    pub fn block() -> Result<Signals, String> {
        // SAFETY: sigset_t is plain data, initialised by sigemptyset; the
        // calls only read it.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &sig in FORWARDED.iter().chain(&[libc::SIGCHLD, libc::SIGINT]) {
                libc::sigaddset(&mut set, sig);
            }
            if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
                return Err(format!(
                    "cannot block signals: {}",
                    io::Error::last_os_error()
                ));
            }
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC);
            if fd < 0 {
                return Err(format!(
                    "cannot open a signalfd: {}",
                    io::Error::last_os_error()
                ));
            }
            Ok(Signals { fd })
        }
    }

    /// Waits for the next signal, at most until `deadline`.
    fn next(&self, deadline: Option<Instant>) -> Option<libc::c_int> {
        let timeout = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                // Rounded up, so that the deadline has passed on return.
                left.as_millis().saturating_add(1).min(i32::MAX as u128) as libc::c_int
            }
        };
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, timeout) } <= 0 {
            return None;
        }
        // SAFETY: signalfd_siginfo is plain data; read fills at most its size.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        // SAFETY: reads into `info`, which is `size` bytes long.
        let n = unsafe {
            libc::read(
                self.fd,
                (&mut info as *mut libc::signalfd_siginfo).cast(),
                size,
            )
        };
        (n == size as isize).then_some(info.ssi_signo as libc::c_int)
    }
}

/// How the command ended, as waitpid reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Status(i32),
    Signal(libc::c_int),
}

impl Exit {
    fn from_wait(status: libc::c_int) -> Exit {
        if libc::WIFSIGNALED(status) {
            Exit::Signal(libc::WTERMSIG(status))
        } else {
            Exit::Status(libc::WEXITSTATUS(status))
        }
    }

    /// The line init prints when the command ends.
    pub fn describe(self) -> String {
        match self {
            Exit::Status(n) => format!("command exited with status {n}"),
            Exit::Signal(n) => format!("command killed by signal {n} ({})", signal::name(n)),
        }
    }
}

/// Reaps every exited child; returns the command's status if it is one.
fn reap(command: libc::pid_t) -> Option<Exit> {
    let mut found = None;
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return found;
        }
        if pid == command {
            found = Some(Exit::from_wait(status));
        }
    }
}

/// Runs PID 1's loop until the command ends; returns how it ended.
pub fn wait(
    signals: &Signals,
    command: libc::pid_t,
    stop_signal: libc::c_int,
    stop_timeout: u64,
) -> Exit {
    let mut kill_at: Option<Instant> = None;
    let mut stopping = false;
    loop {
        let sig = signals.next(kill_at);
        if let Some(at) = kill_at {
            if Instant::now() >= at {
                crate::say!(
                    "the command outlived its {stop_timeout} s stop timeout: sending SIGKILL"
                );
                send(command, libc::SIGKILL);
                kill_at = None;
            }
        }
        match sig {
            Some(libc::SIGCHLD) => {
                if let Some(exit) = reap(command) {
                    return exit;
                }
            }
            Some(libc::SIGINT) if !stopping => {
                stopping = true;
                crate::say!(
                    "stopping: sending {} to the command, SIGKILL in {stop_timeout} s",
                    signal::name(stop_signal)
                );
                send(command, stop_signal);
                // A timeout too large for the clock means no SIGKILL at all.
                kill_at = Instant::now().checked_add(Duration::from_secs(stop_timeout));
            }
            Some(sig) if FORWARDED.contains(&sig) => send(command, sig),
            _ => {}
        }
    }
}

fn send(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: kill(2) with a positive pid; ESRCH (already gone) is fine.
    unsafe { libc::kill(pid, sig) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_exits_as_the_status_line_says() {
        assert_eq!(Exit::from_wait(0), Exit::Status(0));
        assert_eq!(Exit::from_wait(3 << 8), Exit::Status(3));
        assert_eq!(Exit::from_wait(libc::SIGKILL), Exit::Signal(9));
        assert_eq!(
            Exit::Status(127).describe(),
            "command exited with status 127"
        );
        assert_eq!(
            Exit::Signal(9).describe(),
            "command killed by signal 9 (SIGKILL)"
        );
        assert_eq!(
            Exit::Signal(15).describe(),
            "command killed by signal 15 (SIGTERM)"
        );
    }
}
