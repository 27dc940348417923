//! Lines on the console. Every line starts with `initramfs-stream: `, is
//! written with one write(2), and a failed write is ignored: PID 1 must not
//! die because the console is gone. Bytes that come from the image are passed
//! through [`escape`] first.

use std::io::Write;

pub const PREFIX: &str = "initramfs-stream: ";

/// Writes one line to stderr (the console).
pub fn line(text: &str) {
    let mut buf = String::with_capacity(PREFIX.len() + text.len() + 1);
    buf.push_str(PREFIX);
    buf.push_str(text);
    buf.push('\n');
    let _ = std::io::stderr().write_all(buf.as_bytes());
}

#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => { $crate::console::line(&format!($($arg)*)) };
}

#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::console::line(&format!("warning: {}", format_args!($($arg)*))) };
}

/// Makes any byte string safe for a terminal: control characters and
/// invalid UTF-8 become `\xNN` (or `\u{NN}`) escapes, quotes and backslashes
/// are left alone.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                if (c as u32) < 0x80 {
                    out.push_str(&format!("\\x{:02x}", c as u32));
                } else {
                    out.push_str(&format!("\\u{{{:x}}}", c as u32));
                }
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Gives fds 0, 1 and 2 to /dev/console when they are not open (the kernel
/// opens them only if the archive has /dev/console), so that every later
/// open() gets a higher fd and the command inherits a console. Falls back
/// to /dev/null, then leaves them closed.
pub fn ensure_stdio() {
    let missing: Vec<libc::c_int> = (0..3)
        // SAFETY: F_GETFD only queries the descriptor.
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1)
        .collect();
    if missing.is_empty() {
        return;
    }
    for path in [c"/dev/console", c"/dev/null"] {
        // SAFETY: a valid C string; the fd is only dup2'ed and closed.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_NOCTTY) };
        if fd < 0 {
            continue;
        }
        for &target in &missing {
            if fd != target {
                // SAFETY: both are descriptors of this process.
                unsafe { libc::dup2(fd, target) };
            }
        }
        if !missing.contains(&fd) {
            // SAFETY: fd was opened above and is not one of 0-2.
            unsafe { libc::close(fd) };
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_terminal_controls_and_bad_utf8() {
        assert_eq!(escape(b"/usr/bin/app"), "/usr/bin/app");
        assert_eq!(
            escape("caf\u{e9} \"q\" \\".as_bytes()),
            "caf\u{e9} \"q\" \\"
        );
        assert_eq!(escape(b"a\x1b[2Jb\n\x7f"), "a\\x1b[2Jb\\x0a\\x7f");
        assert_eq!(escape(b"\xff\xc3"), "\\xff\\xc3");
        assert_eq!(escape("\u{9b}x".as_bytes()), "\\u{9b}x");
    }
}
