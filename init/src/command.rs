//! Finding the command's program and starting it.
//!
//! Lookup follows execvp: a name with a `/` is taken as is (relative to the
//! working directory, which is init's own by then), any other name is
//! searched in the command's PATH (an empty entry meaning the working
//! directory). The program must be an executable regular file.
//!
//! The child becomes a session leader with the console as its controlling
//! terminal (so a shell gets job control and Ctrl-C), gets the signal mask
//! and dispositions of a fresh process back, drops to the image's user
//! (setgroups, setgid, setuid, in that order) and execs. A failure in the
//! child is one error line and exit status 127 (not found) or 126.

use std::ffi::{CString, OsStr};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::console::escape;
use crate::user::Identity;

/// The path to exec for `name`, or why there is none.
pub fn find_program(name: &[u8], path_var: &[u8]) -> Result<PathBuf, String> {
    if name.is_empty() {
        return Err("the command's program name is empty".into());
    }
    if name.contains(&b'/') {
        let path = PathBuf::from(OsStr::from_bytes(name));
        return match check(&path) {
            Ok(()) => Ok(path),
            Err(why) => Err(format!("{}: {why}", escape(name))),
        };
    }
    let mut rejected = None;
    for dir in path_var.split(|&b| b == b':') {
        let dir = if dir.is_empty() { &b"."[..] } else { dir };
        let path = Path::new(OsStr::from_bytes(dir)).join(OsStr::from_bytes(name));
        match check(&path) {
            Ok(()) => return Ok(path),
            Err(Why::Missing) => {}
            Err(why) => rejected = rejected.or(Some((path, why))),
        }
    }
    Err(match rejected {
        Some((path, why)) => format!("{}: {why}", escape(path.as_os_str().as_bytes())),
        None => format!(
            "{}: command not found in PATH {}",
            escape(name),
            escape(path_var)
        ),
    })
}

enum Why {
    Missing,
    NotFile,
    NotExecutable,
    Other(io::Error),
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Why::Missing => f.write_str("no such file"),
            Why::NotFile => f.write_str("not a regular file"),
            Why::NotExecutable => f.write_str("not executable"),
            Why::Other(e) => e.fmt(f),
        }
    }
}

fn check(path: &Path) -> Result<(), Why> {
    match fs::metadata(path) {
        Ok(m) if !m.is_file() => Err(Why::NotFile),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => Err(Why::NotExecutable),
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Err(Why::Missing)
        }
        Err(e) => Err(Why::Other(e)),
    }
}

/// Everything the child needs, prepared before fork.
pub struct Command {
    program: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    identity: Identity,
}

fn cstring(what: &str, bytes: &[u8]) -> Result<CString, String> {
    CString::new(bytes).map_err(|_| format!("{what} {} contains a NUL byte", escape(bytes)))
}

impl Command {
    pub fn new(
        program: &Path,
        argv: &[Vec<u8>],
        env: &[Vec<u8>],
        identity: Identity,
    ) -> Result<Command, String> {
        Ok(Command {
            program: cstring("program", program.as_os_str().as_bytes())?,
            argv: argv
                .iter()
                .map(|a| cstring("argument", a))
                .collect::<Result<_, _>>()?,
            envp: env
                .iter()
                .map(|v| cstring("environment variable", v))
                .collect::<Result<_, _>>()?,
            identity,
        })
    }

    /// Forks and execs; returns the child's pid.
    pub fn spawn(&self) -> Result<libc::pid_t, String> {
        let argv = nul_terminated(&self.argv);
        let envp = nul_terminated(&self.envp);
        // SAFETY: PID 1 is single-threaded, so the child may run any code.
        match unsafe { libc::fork() } {
            -1 => Err(format!("cannot fork: {}", io::Error::last_os_error())),
            0 => {
                let code = self.exec_in_child(&argv, &envp);
                // SAFETY: leaves the child without running PID 1's exit path.
                unsafe { libc::_exit(code) }
            }
            pid => Ok(pid),
        }
    }

    /// Returns only on failure, with the exit status to end the child with.
    fn exec_in_child(&self, argv: &[*const libc::c_char], envp: &[*const libc::c_char]) -> i32 {
        // SAFETY: plain system calls on this process; the pointers come from
        // live CStrings and slices.
        unsafe {
            libc::setsid();
            // Fails harmlessly when stdin is not a terminal.
            libc::ioctl(0, libc::TIOCSCTTY as _, 0);
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            // Rust's runtime ignores SIGPIPE, and ignored signals survive exec.
            for sig in 1..32 {
                libc::signal(sig, libc::SIG_DFL);
            }
            let id = &self.identity;
            if libc::setgroups(id.groups.len(), id.groups.as_ptr()) != 0
                || libc::setgid(id.gid) != 0
                || libc::setuid(id.uid) != 0
            {
                let e = io::Error::last_os_error();
                crate::say!("error: cannot switch to uid {} gid {}: {e}", id.uid, id.gid);
                return 126;
            }
            libc::execve(self.program.as_ptr(), argv.as_ptr(), envp.as_ptr());
        }
        let e = io::Error::last_os_error();
        crate::say!(
            "error: cannot execute {}: {e}",
            escape(self.program.as_bytes())
        );
        if e.kind() == io::ErrorKind::NotFound {
            127
        } else {
            126
        }
    }
}

fn nul_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain([std::ptr::null()])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    /// A scratch directory with an executable, a plain file and a directory.
    fn fixture(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("init-command-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        for sub in ["a", "b", "c/prog"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        fs::write(dir.join("a/prog"), "").unwrap();
        fs::write(dir.join("b/prog"), "").unwrap();
        fs::set_permissions(dir.join("b/prog"), fs::Permissions::from_mode(0o755)).unwrap();
        dir
    }

    #[test]
    fn searches_path_like_execvp() {
        let dir = fixture("search");
        let d = |s: &str| dir.join(s).into_os_string().into_vec();
        let path = [d("missing"), d("c"), d("a"), d("b")].join(&b":"[..]);
        assert_eq!(find_program(b"prog", &path), Ok(dir.join("b/prog")));
        // Directories and non-executables are skipped; when nothing fits,
        // the first rejected candidate is named.
        let path = [d("c"), d("a")].join(&b":"[..]);
        let err = find_program(b"prog", &path).unwrap_err();
        assert!(err.ends_with("c/prog: not a regular file"), "{err}");
        let err = find_program(b"nope", &d("b")).unwrap_err();
        assert!(
            err.starts_with("nope: command not found in PATH /"),
            "{err}"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn names_with_a_slash_are_not_searched() {
        let dir = fixture("slash");
        let b = dir.join("b/prog").into_os_string().into_vec();
        assert_eq!(find_program(&b, b"/nonexistent"), Ok(dir.join("b/prog")));
        let a = dir.join("a/prog").into_os_string().into_vec();
        assert!(find_program(&a, b"")
            .unwrap_err()
            .ends_with("a/prog: not executable"));
        assert!(find_program(b"./no/such", b"")
            .unwrap_err()
            .ends_with("./no/such: no such file"));
        assert!(find_program(b"", b"/bin").is_err());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn refuses_nul_bytes() {
        let id = Identity {
            uid: 0,
            gid: 0,
            groups: vec![0],
            home: None,
        };
        let err = Command::new(Path::new("/bin/true"), &[b"a\0b".to_vec()], &[], id)
            .err()
            .unwrap();
        assert_eq!(err, "argument a\\x00b contains a NUL byte");
    }
}
