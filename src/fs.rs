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
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
}

/// What an entry is, with what its kind needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File {
        size: u64,
    },
    Dir,
    Symlink {
        target: Vec<u8>,
    },
    /// A hardlink to `target`, a path as it stood when this entry was
    /// applied. Only layers have these: the index resolves them to files.
    Hardlink {
        target: Vec<u8>,
    },
    CharDevice {
        major: u32,
        minor: u32,
    },
    BlockDevice {
        major: u32,
        minor: u32,
    },
    Fifo,
}

/// An entry as a later stage asks about it: what it is and who owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
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
