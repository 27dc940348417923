//! The kernel filesystems a container expects, mounted as Docker mounts them,
//! and the /dev links devtmpfs does not make.
//!
//! A mount point that is already a mount (another filesystem than its
//! parent's) is left alone; a missing one is created. /tmp and /run get a
//! tmpfs only when the image has them as empty directories, so that files an
//! image ships there stay visible. Every failure is a warning: the command may
//! well run without, say, cgroup2.

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::Path;

struct Mount {
    target: &'static str,
    fstype: &'static str,
    flags: libc::c_ulong,
    data: &'static str,
    /// Mounted only over an existing, empty directory.
    only_if_empty: bool,
}

const NOSUID: libc::c_ulong = libc::MS_NOSUID;
const NODEV: libc::c_ulong = libc::MS_NODEV;
const NOEXEC: libc::c_ulong = libc::MS_NOEXEC;

/// In order: each target's parent is mounted before it.
const MOUNTS: &[Mount] = &[
    Mount {
        target: "/proc",
        fstype: "proc",
        flags: NOSUID | NODEV | NOEXEC,
        data: "",
        only_if_empty: false,
    },
    Mount {
        target: "/sys",
        fstype: "sysfs",
        flags: NOSUID | NODEV | NOEXEC,
        data: "",
        only_if_empty: false,
    },
    Mount {
        target: "/dev",
        fstype: "devtmpfs",
        flags: NOSUID,
        data: "mode=0755",
        only_if_empty: false,
    },
    Mount {
        target: "/dev/pts",
        fstype: "devpts",
        flags: NOSUID | NOEXEC,
        data: "newinstance,ptmxmode=0666,mode=0620,gid=5",
        only_if_empty: false,
    },
    Mount {
        target: "/dev/shm",
        fstype: "tmpfs",
        flags: NOSUID | NODEV,
        data: "mode=1777",
        only_if_empty: false,
    },
    Mount {
        target: "/sys/fs/cgroup",
        fstype: "cgroup2",
        flags: NOSUID | NODEV | NOEXEC,
        data: "",
        only_if_empty: false,
    },
    Mount {
        target: "/tmp",
        fstype: "tmpfs",
        flags: NOSUID | NODEV,
        data: "mode=1777",
        only_if_empty: true,
    },
    Mount {
        target: "/run",
        fstype: "tmpfs",
        flags: NOSUID | NODEV,
        data: "mode=0755",
        only_if_empty: true,
    },
];

const DEV_LINKS: &[(&str, &str)] = &[
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
];

pub fn mount_all() {
    for m in MOUNTS {
        if let Err(e) = mount(m) {
            crate::warn!("cannot mount {} on {}: {e}", m.fstype, m.target);
        }
    }
    for (link, target) in DEV_LINKS {
        if fs::symlink_metadata(link).is_err() {
            if let Err(e) = std::os::unix::fs::symlink(target, link) {
                crate::warn!("cannot create {link}: {e}");
            }
        }
    }
}

fn mount(m: &Mount) -> std::io::Result<()> {
    let target = Path::new(m.target);
    if m.only_if_empty {
        match fs::symlink_metadata(target) {
            Ok(meta) if meta.is_dir() => {}
            _ => return Ok(()),
        }
        if fs::read_dir(target)?.next().is_some() {
            return Ok(());
        }
    } else if fs::symlink_metadata(target).is_err() {
        fs::DirBuilder::new().mode(0o755).create(target)?;
    }
    if is_mount_point(target)? {
        return Ok(());
    }
    let cstr = |s: &str| CString::new(s).map_err(std::io::Error::other);
    let (source, fstype, dir, data) = (
        cstr(m.fstype)?,
        cstr(m.fstype)?,
        cstr(m.target)?,
        cstr(m.data)?,
    );
    // SAFETY: valid C strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            dir.as_ptr(),
            fstype.as_ptr(),
            m.flags,
            data.as_ptr().cast(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A directory on another filesystem than its parent's is a mount point.
fn is_mount_point(dir: &Path) -> std::io::Result<bool> {
    let parent = dir.parent().unwrap_or(Path::new("/"));
    Ok(fs::metadata(dir)?.dev() != fs::metadata(parent)?.dev())
}
