//! `--list`: the planned archive as lines like `tar tv` prints, or as JSON
//! lines. Everything comes from the plan: no file body is read.

use serde_json::{json, Map, Value};

use crate::index::{Plan, PlanKind};
use crate::layer::Meta;

/// One path of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    /// Absolute path, as bytes.
    pub path: Vec<u8>,
    pub kind: ListKind,
    pub meta: Meta,
    /// Bytes of data (regular files), or of the target (symlinks).
    pub size: u64,
    /// Names of the same inode (hardlinks), 1 for most entries.
    pub nlink: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListKind {
    Dir,
    File,
    Symlink(Vec<u8>),
    CharDevice(u32, u32),
    BlockDevice(u32, u32),
    Fifo,
}

/// Every archive entry, in tree order (each directory followed by its
/// contents, names by bytes).
pub fn entries(plan: &Plan) -> Vec<ListEntry> {
    let mut out = Vec::new();
    for e in plan.dirs.iter().chain(&plan.others) {
        let (kind, size) = match &e.kind {
            PlanKind::Dir => (ListKind::Dir, 0),
            PlanKind::Symlink(t) => (ListKind::Symlink(t.clone()), t.len() as u64),
            PlanKind::CharDevice(a, b) => (ListKind::CharDevice(*a, *b), 0),
            PlanKind::BlockDevice(a, b) => (ListKind::BlockDevice(*a, *b), 0),
            PlanKind::Fifo => (ListKind::Fifo, 0),
        };
        out.push(ListEntry {
            path: absolute(&e.name),
            kind,
            meta: e.meta,
            size,
            nlink: 1,
        });
    }
    for g in plan.empty_files.iter().chain(&plan.files) {
        for name in &g.names {
            out.push(ListEntry {
                path: absolute(name),
                kind: ListKind::File,
                meta: g.meta,
                size: g.size,
                nlink: g.names.len(),
            });
        }
    }
    out.sort_by(|a, b| components(&a.path).cmp(components(&b.path)));
    out
}

fn components(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.split(|&b| b == b'/')
}

fn absolute(name: &[u8]) -> Vec<u8> {
    // `.` is the root's own entry.
    if name == b"." {
        return b"/".to_vec();
    }
    let mut p = Vec::with_capacity(name.len() + 1);
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

impl ListEntry {
    fn type_char(&self) -> char {
        match self.kind {
            ListKind::Dir => 'd',
            ListKind::File => '-',
            ListKind::Symlink(_) => 'l',
            ListKind::CharDevice(..) => 'c',
            ListKind::BlockDevice(..) => 'b',
            ListKind::Fifo => 'p',
        }
    }

    /// `drwxr-xr-x`, with s/S and t/T for setuid, setgid and sticky.
    pub fn mode_string(&self) -> String {
        let m = self.meta.mode;
        let mut s = String::with_capacity(10);
        s.push(self.type_char());
        for (shift, special, mark) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
            let bits = (m >> shift) & 7;
            s.push(if bits & 4 != 0 { 'r' } else { '-' });
            s.push(if bits & 2 != 0 { 'w' } else { '-' });
            s.push(match (bits & 1 != 0, m & special != 0) {
                (true, true) => mark,
                (false, true) => mark.to_ascii_uppercase(),
                (true, false) => 'x',
                (false, false) => '-',
            });
        }
        s
    }

    /// One line as `tar tv` prints it: mode, uid/gid, size (or
    /// major,minor), mtime (UTC), path, `-> target`.
    pub fn text_line(&self) -> String {
        let size = match self.kind {
            ListKind::CharDevice(a, b) | ListKind::BlockDevice(a, b) => format!("{a},{b}"),
            _ => self.size.to_string(),
        };
        let mut line = format!(
            "{} {}/{} {:>9} {} {}",
            self.mode_string(),
            self.meta.uid,
            self.meta.gid,
            size,
            format_time(self.meta.mtime),
            escape(&self.path)
        );
        if let ListKind::Symlink(target) = &self.kind {
            line.push_str(" -> ");
            line.push_str(&escape(target));
        }
        line
    }

    /// One JSON object. `path` and `target` are the names themselves when
    /// they are UTF-8; otherwise they are escaped as in the text form and
    /// `path_hex`/`target_hex` hold the exact bytes.
    pub fn json(&self) -> Value {
        let mut o = Map::new();
        put_name(&mut o, "path", &self.path);
        let kind = match self.kind {
            ListKind::Dir => "dir",
            ListKind::File => "file",
            ListKind::Symlink(_) => "symlink",
            ListKind::CharDevice(..) => "char",
            ListKind::BlockDevice(..) => "block",
            ListKind::Fifo => "fifo",
        };
        o.insert("type".into(), json!(kind));
        o.insert("mode".into(), json!(self.meta.mode & 0o7777));
        o.insert("mode_string".into(), json!(self.mode_string()));
        o.insert("uid".into(), json!(self.meta.uid));
        o.insert("gid".into(), json!(self.meta.gid));
        o.insert("size".into(), json!(self.size));
        o.insert("mtime".into(), json!(self.meta.mtime));
        match &self.kind {
            ListKind::File => {
                o.insert("nlink".into(), json!(self.nlink));
            }
            ListKind::Symlink(t) => put_name(&mut o, "target", t),
            ListKind::CharDevice(a, b) | ListKind::BlockDevice(a, b) => {
                o.insert("major".into(), json!(a));
                o.insert("minor".into(), json!(b));
            }
            _ => {}
        }
        Value::Object(o)
    }
}

fn put_name(o: &mut Map<String, Value>, key: &str, name: &[u8]) {
    match std::str::from_utf8(name) {
        Ok(s) => {
            o.insert(key.into(), json!(s));
        }
        Err(_) => {
            o.insert(key.into(), json!(escape(name)));
            o.insert(format!("{key}_hex"), json!(hex::encode(name)));
        }
    }
}

/// A name for a terminal or a line-based tool, unambiguously: backslash
/// as `\\`, control characters as `\n`, `\t`, `\u{..}`, bytes that are
/// not UTF-8 as `\xNN`.
pub fn escape(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_control() => out.extend(c.escape_default()),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// `YYYY-MM-DD HH:MM` in UTC.
pub fn format_time(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(format_time(0), "1970-01-01 00:00");
        assert_eq!(format_time(951_782_400), "2000-02-29 00:00");
        assert_eq!(format_time(1_700_000_000), "2023-11-14 22:13");
        assert_eq!(format_time(u32::MAX as u64), "2106-02-07 06:28");
    }

    #[test]
    fn names_are_escaped_without_loss() {
        assert_eq!(escape(b"/a b/\xff\\n\n"), "/a b/\\xff\\\\n\\n");
        assert_ne!(escape(b"\\x41"), escape(b"A"));
    }

    #[test]
    fn mode_strings() {
        let e = |mode, kind| ListEntry {
            path: b"/x".to_vec(),
            kind,
            meta: Meta {
                mode,
                uid: 0,
                gid: 0,
                mtime: 0,
            },
            size: 0,
            nlink: 1,
        };
        assert_eq!(e(0o4755, ListKind::File).mode_string(), "-rwsr-xr-x");
        assert_eq!(e(0o1777, ListKind::Dir).mode_string(), "drwxrwxrwt");
        assert_eq!(e(0o2644, ListKind::File).mode_string(), "-rw-r-Sr--");
        assert_eq!(
            e(0o600, ListKind::CharDevice(5, 1))
                .text_line()
                .split_whitespace()
                .nth(2),
            Some("5,1")
        );
    }
}
