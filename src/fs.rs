//! The filesystem vocabulary every stage shares: what an entry of the image
//! is ([`Kind`]), who owns it ([`Meta`]), and both together ([`Entry`]). Paths, their limits and their
//! display live in [`crate::path`].
//!
//! Invariants: `Meta::mode` holds permission bits only (`0o7777`), never
//! file type bits, which [`Kind`] carries; ids are 32-bit because newc
//! stores them so. A stage that needs more than a kind (the index's child
//! maps, where a file's bytes are) wraps these types rather than redefining
//! them.

/// Permission, ownership and time of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Meta {
    /// Permission bits including setuid, setgid and sticky (`0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
}

/// What an entry is, with what its kind needs.
///
/// Exhaustive on purpose: these are the file types tar and newc can carry,
/// and a match over them should fail to compile if one were ever added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File {
        /// Its size in bytes.
        size: u64,
    },
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink {
        /// The target, byte for byte as stored.
        target: Vec<u8>,
    },
    /// A hardlink to `target`, a path as it stood when this entry was
    /// applied. Only layers have these: the index resolves them to files.
    Hardlink {
        /// The path linked to, normalised.
        target: Vec<u8>,
    },
    /// A character device.
    CharDevice {
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
}

/// An entry as a later stage asks about it: what it is and who owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// What it is.
    pub kind: Kind,
    /// Who owns it, its permissions and time.
    pub meta: Meta,
}

impl Entry {
    /// An entry owned by root (0:0) at time 0 with these permission bits.
    pub fn root(kind: Kind, mode: u32) -> Entry {
        Entry {
            kind,
            meta: Meta {
                mode,
                ..Meta::default()
            },
        }
    }
}
