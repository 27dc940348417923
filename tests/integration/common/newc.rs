//! Test-side reader for CPIO "newc" archives, written independently of the
//! crate so that both sides have to agree on the format. Parsing also checks
//! the rules the kernel's initramfs unpacker relies on (init/initramfs.c).

use std::collections::{BTreeMap, HashMap, HashSet};

pub const S_IFMT: u32 = 0o170000;
pub const S_IFSOCK: u32 = 0o140000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFBLK: u32 = 0o060000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFIFO: u32 = 0o010000;

/// Kernel PATH_MAX, including the terminating NUL.
const PATH_MAX: usize = 4096;
const HEADER_LEN: usize = 110;
const TRAILER: &[u8] = b"TRAILER!!!";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub ino: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    pub devmajor: u32,
    pub devminor: u32,
    pub rdevmajor: u32,
    pub rdevminor: u32,
    pub name: Vec<u8>,
    pub data: Vec<u8>,
    /// Byte offset of the header in the archive, for error messages.
    pub offset: usize,
}

impl Entry {
    pub fn file_type(&self) -> u32 {
        self.mode & S_IFMT
    }
    pub fn is_dir(&self) -> bool {
        self.file_type() == S_IFDIR
    }
    pub fn is_reg(&self) -> bool {
        self.file_type() == S_IFREG
    }
}

/// Printable form of a byte path: UTF-8 where valid, `\xNN` escapes elsewhere.
pub fn show(path: &[u8]) -> String {
    let mut out = String::new();
    for chunk in path.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                out.extend(c.escape_default());
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

fn hex_field(buf: &[u8], at: usize, field: &str) -> Result<u32, String> {
    let raw = &buf[at..at + 8];
    if !raw.iter().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "field {field} is not 8 hex digits: {:?}",
            String::from_utf8_lossy(raw)
        ));
    }
    Ok(u32::from_str_radix(std::str::from_utf8(raw).unwrap(), 16).unwrap())
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

/// Parse a whole archive and check the kernel's rules; returns the entries
/// without the trailer, in archive order. Any violation is an `Err` that names
/// the offending entry.
pub fn parse(buf: &[u8]) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    let mut pos = 0;
    loop {
        if buf.len() < pos + HEADER_LEN {
            return Err(format!(
                "archive ends at {} without a TRAILER!!! entry (truncated header at {pos})",
                buf.len()
            ));
        }
        let h = &buf[pos..pos + HEADER_LEN];
        if &h[..6] != b"070701" {
            return Err(format!(
                "bad magic {:?} at offset {pos} (after {} entries)",
                String::from_utf8_lossy(&h[..6]),
                entries.len()
            ));
        }
        let mut f = [0u32; 13];
        const NAMES: [&str; 13] = [
            "ino",
            "mode",
            "uid",
            "gid",
            "nlink",
            "mtime",
            "filesize",
            "devmajor",
            "devminor",
            "rdevmajor",
            "rdevminor",
            "namesize",
            "check",
        ];
        for (i, name) in NAMES.iter().enumerate() {
            f[i] = hex_field(h, 6 + 8 * i, name).map_err(|e| format!("offset {pos}: {e}"))?;
        }
        let filesize = f[6] as usize;
        let namesize = f[11] as usize;
        if f[12] != 0 {
            return Err(format!("offset {pos}: check field must be 0 for 070701"));
        }
        if namesize == 0 {
            return Err(format!("offset {pos}: namesize 0"));
        }
        let name_start = pos + HEADER_LEN;
        let name_end = name_start + namesize;
        let data_start = name_end + pad4(HEADER_LEN + namesize);
        let data_end = data_start + filesize;
        let next = data_end + pad4(filesize);
        if buf.len() < name_end {
            return Err(format!(
                "offset {pos}: name runs past the end of the archive"
            ));
        }
        let name_nul = &buf[name_start..name_end];
        if *name_nul.last().unwrap() != 0 {
            return Err(format!("offset {pos}: name is not NUL-terminated"));
        }
        let name = name_nul[..namesize - 1].to_vec();
        if name.contains(&0) {
            return Err(format!("offset {pos}: NUL inside name {}", show(&name)));
        }
        if buf.len() < data_start {
            return Err(format!("{}: header padding runs past the end", show(&name)));
        }
        if buf[name_end..data_start].iter().any(|&b| b != 0) {
            return Err(format!("{}: non-zero header padding", show(&name)));
        }
        if buf.len() < data_end {
            return Err(format!(
                "{}: data ({filesize} bytes) runs past the end",
                show(&name)
            ));
        }
        if name == TRAILER {
            // The kernel accepts zero padding after the trailer, nothing else.
            let rest = &buf[data_end + pad4(filesize).min(buf.len() - data_end)..];
            if rest.starts_with(b"070701") {
                return Err(format!(
                    "an entry named TRAILER!!! at offset {pos} (mode {:o}, {filesize} data bytes) \
                     is followed by more entries: the kernel and cpio stop at the first one",
                    f[1]
                ));
            }
            if buf[data_end..].iter().any(|&b| b != 0) {
                return Err(format!(
                    "non-zero bytes after TRAILER!!! (at {data_end}, {} bytes)",
                    buf.len() - data_end
                ));
            }
            if filesize != 0 {
                return Err("TRAILER!!! has data".into());
            }
            break;
        }
        if buf.len() < next {
            return Err(format!("{}: data padding runs past the end", show(&name)));
        }
        if buf[data_end..next].iter().any(|&b| b != 0) {
            return Err(format!("{}: non-zero data padding", show(&name)));
        }
        entries.push(Entry {
            ino: f[0],
            mode: f[1],
            uid: f[2],
            gid: f[3],
            nlink: f[4],
            mtime: f[5],
            devmajor: f[7],
            devminor: f[8],
            rdevmajor: f[9],
            rdevminor: f[10],
            name,
            data: buf[data_start..data_end].to_vec(),
            offset: pos,
        });
        pos = next;
    }
    check_rules(&entries)?;
    Ok(entries)
}

/// The rules that make the kernel unpack exactly what the archive lists.
pub fn check_rules(entries: &[Entry]) -> Result<(), String> {
    let mut errors = Vec::new();
    let mut seen: HashMap<&[u8], u32> = HashMap::new();
    for e in entries {
        let n = show(&e.name);
        // "." may come first, as a directory: the kernel applies its mode,
        // owner and mtime to the root.
        let root_first = e.name == b"." && e.file_type() == S_IFDIR && std::ptr::eq(e, &entries[0]);
        if e.name.is_empty() || (e.name == b"." && !root_first) {
            errors.push(format!(
                "entry for the root itself ({n:?}), not first or not a directory"
            ));
        }
        if e.name.starts_with(b"/") {
            errors.push(format!("{n}: leading '/'"));
        }
        if e.name.ends_with(b"/") {
            errors.push(format!("{n}: trailing '/'"));
        }
        let bad_component = e
            .name
            .split(|&b| b == b'/')
            .any(|c| c.is_empty() || c == b"." || c == b"..");
        // "./TRAILER!!!" is how a root-level file of that name can be stored.
        if bad_component && !e.name.is_empty() && e.name != b"." && e.name != b"./TRAILER!!!" {
            errors.push(format!(
                "{n}: not a normalised path (empty, '.' or '..' component)"
            ));
        }
        if e.name.len() + 1 > PATH_MAX {
            errors.push(format!(
                "{}...: name of {} bytes, the kernel skips names >= {PATH_MAX}",
                n.chars().take(60).collect::<String>(),
                e.name.len()
            ));
        }
        match e.file_type() {
            S_IFREG | S_IFDIR | S_IFLNK | S_IFCHR | S_IFBLK | S_IFIFO | S_IFSOCK => {}
            t => errors.push(format!("{n}: unknown file type {t:o}")),
        }
        if e.file_type() == S_IFLNK {
            if e.data.is_empty() {
                errors.push(format!("{n}: symlink with an empty target"));
            }
            if e.data.len() + 1 > PATH_MAX {
                errors.push(format!("{n}: symlink target of {} bytes", e.data.len()));
            }
            if e.data.contains(&0) {
                errors.push(format!("{n}: NUL in symlink target"));
            }
        } else if !e.is_reg() && !e.data.is_empty() {
            errors.push(format!(
                "{n}: non-regular entry carries {} data bytes",
                e.data.len()
            ));
        }
        if let Some(prev) = seen.insert(&e.name, e.mode) {
            errors.push(format!(
                "{n}: duplicate path (modes {prev:o} and {:o})",
                e.mode
            ));
        }
        // Parent must already exist as a directory: the kernel never creates it.
        if let Some(slash) = e.name.iter().rposition(|&b| b == b'/') {
            let parent = &e.name[..slash];
            match seen.get(parent) {
                // "./TRAILER!!!": the root always exists.
                _ if parent == b"." => {}
                Some(m) if m & S_IFMT == S_IFDIR => {}
                Some(m) => errors.push(format!(
                    "{n}: parent {} is not a directory (mode {m:o})",
                    show(parent)
                )),
                None => errors.push(format!(
                    "{n}: parent directory {} not emitted before it",
                    show(parent)
                )),
            }
        }
    }
    // Hardlink groups: the kernel links regular files with nlink >= 2 and the
    // same (major, minor, ino).
    let mut groups: BTreeMap<(u32, u32, u32), Vec<&Entry>> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.is_reg() && e.nlink >= 2) {
        groups
            .entry((e.devmajor, e.devminor, e.ino))
            .or_default()
            .push(e);
    }
    let grouped: HashSet<(u32, u32, u32)> = groups.keys().copied().collect();
    for e in entries {
        let key = (e.devmajor, e.devminor, e.ino);
        if grouped.contains(&key) && !(e.is_reg() && e.nlink >= 2) {
            errors.push(format!(
                "{}: shares ino {:?} with a hardlink group but is not part of it",
                show(&e.name),
                key
            ));
        }
    }
    for (key, members) in &groups {
        let names: Vec<String> = members.iter().map(|e| show(&e.name)).collect();
        let first = members[0];
        if members.iter().any(|e| e.nlink as usize != members.len()) {
            let nl: Vec<u32> = members.iter().map(|e| e.nlink).collect();
            errors.push(format!(
                "hardlink group {key:?} {names:?}: nlink {nl:?} but {} members",
                members.len()
            ));
        }
        let carriers = members.iter().filter(|e| !e.data.is_empty()).count();
        if carriers > 1 {
            errors.push(format!(
                "hardlink group {names:?}: {carriers} members carry data, the kernel would truncate"
            ));
        }
        if members
            .iter()
            .any(|e| (e.mode, e.uid, e.gid) != (first.mode, first.uid, first.gid))
        {
            errors.push(format!(
                "hardlink group {names:?}: members disagree on mode/uid/gid"
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "archive breaks {} rule(s):\n  {}",
            errors.len(),
            errors.join("\n  ")
        ))
    }
}

/// Parse or panic with the rule violations.
pub fn parse_ok(buf: &[u8]) -> Vec<Entry> {
    parse(buf).unwrap_or_else(|e| panic!("invalid newc archive: {e}"))
}

/// Hardlink groups as name lists, for tests that look at them directly.
pub fn link_groups(entries: &[Entry]) -> Vec<Vec<Vec<u8>>> {
    let mut groups: BTreeMap<(u32, u32, u32), Vec<Vec<u8>>> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.is_reg() && e.nlink >= 2) {
        groups
            .entry((e.devmajor, e.devminor, e.ino))
            .or_default()
            .push(e.name.clone());
    }
    groups
        .into_values()
        .map(|mut g| {
            g.sort();
            g
        })
        .collect()
}
