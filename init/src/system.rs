//! Machine-wide settings made once at boot: Ctrl-Alt-Del handling, the
//! loopback interface, the hostname and the image's extended attributes.

use std::ffi::CString;
use std::io;

use crate::config::Xattr;
use crate::console::escape;

/// Makes the kernel send SIGINT to PID 1 on Ctrl-Alt-Del (a keyboard's, or
/// Firecracker's SendCtrlAltDel) instead of rebooting at once: the command
/// then gets its stop signal and its grace period.
pub fn ctrl_alt_del_to_sigint() {
    // SAFETY: no pointers involved.
    if unsafe { libc::reboot(libc::LINUX_REBOOT_CMD_CAD_OFF) } != 0 {
        crate::warn!(
            "cannot route Ctrl-Alt-Del to init: {}",
            io::Error::last_os_error()
        );
    }
}

/// Sets IFF_UP on `lo`; the kernel then adds 127.0.0.1 and ::1 itself.
pub fn loopback_up() {
    if let Err(e) = set_up(b"lo") {
        crate::warn!("cannot bring up the loopback interface: {e}");
    }
}

fn set_up(name: &[u8]) -> io::Result<()> {
    // SAFETY: plain socket(2); the fd is closed below.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, &src) in req.ifr_name.iter_mut().zip(name) {
        *dst = src as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq for both ioctls; the flags member of
    // the union is the one SIOC[GS]IFFLAGS read and write.
    let result = unsafe {
        if libc::ioctl(sock, libc::SIOCGIFFLAGS as _, &mut req) < 0 {
            Err(io::Error::last_os_error())
        } else {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(sock, libc::SIOCSIFFLAGS as _, &req) < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        }
    };
    // SAFETY: closes the socket opened above.
    unsafe { libc::close(sock) };
    result
}

/// `configured` if set, else the first line of the image's /etc/hostname,
/// else `localhost`.
pub fn hostname(configured: &str, etc_hostname: Option<&[u8]>) -> Vec<u8> {
    if !configured.is_empty() {
        return configured.as_bytes().to_vec();
    }
    let first = etc_hostname
        .and_then(|text| text.split(|&b| b == b'\n').next())
        .map(|line| line.trim_ascii())
        .unwrap_or_default();
    if first.is_empty() {
        b"localhost".to_vec()
    } else {
        first.to_vec()
    }
}

pub fn set_hostname(name: &[u8]) {
    // SAFETY: pointer and length of a live slice.
    if unsafe { libc::sethostname(name.as_ptr().cast(), name.len() as _) } != 0 {
        crate::warn!(
            "cannot set the hostname to {}: {}",
            escape(name),
            io::Error::last_os_error()
        );
    }
}

/// lsetxattr for each entry; a failure is a warning naming path and attribute.
pub fn apply_xattrs(xattrs: &[Xattr]) {
    for x in xattrs {
        if let Err(e) = lsetxattr(&x.path, &x.name, &x.value) {
            crate::warn!(
                "cannot set attribute {} on {}: {e}",
                escape(x.name.as_bytes()),
                escape(x.path.as_bytes())
            );
        }
    }
}

fn lsetxattr(path: &str, name: &str, value: &[u8]) -> io::Result<()> {
    let path = CString::new(path).map_err(io::Error::other)?;
    let name = CString::new(name).map_err(io::Error::other)?;
    // SAFETY: valid C strings and a live slice.
    let rc = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_falls_back_to_the_image_then_localhost() {
        assert_eq!(hostname("box", Some(b"other\n")), b"box");
        assert_eq!(hostname("", Some(b"  web-1 \nsecond\n")), b"web-1");
        assert_eq!(hostname("", Some(b"\nweb\n")), b"localhost");
        assert_eq!(hostname("", Some(b"")), b"localhost");
        assert_eq!(hostname("", None), b"localhost");
    }
}
