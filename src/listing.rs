//! `--list`: the planned archive as lines like `tar tv` prints, or as JSON
//! lines. Everything comes from the plan: no file body is read.

use serde_json::{json, Map, Value};

use crate::fs::{Kind, Meta};
use crate::index::Plan;
use crate::path::{self, absolute, escape};

/// One path of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    /// Absolute path, as bytes.
    pub path: Vec<u8>,
    /// Never a hardlink: names of one inode are files with the same `nlink`.
    pub kind: Kind,
    /// Permissions, owner and time, as written.
    pub meta: Meta,
    /// Bytes of data (regular files), or of the target (symlinks).
    pub size: u64,
    /// Names of the same inode (hardlinks), 1 for most entries.
    pub nlink: usize,
}

/// Every archive entry, in tree order (each directory followed by its
/// contents, names by bytes).
pub fn entries(plan: &Plan) -> Vec<ListEntry> {
    let mut out = Vec::new();
    for e in plan.dirs.iter().chain(&plan.others) {
        let size = match &e.kind {
            Kind::Symlink { target } => target.len() as u64,
            _ => 0,
        };
        out.push(ListEntry {
            path: absolute(&e.name),
            kind: e.kind.clone(),
            meta: e.meta,
            size,
            nlink: 1,
        });
    }
    for g in plan.empty_files.iter().chain(&plan.files) {
        for name in &g.names {
            out.push(ListEntry {
                path: absolute(name),
                kind: Kind::File { size: g.size },
                meta: g.meta,
                size: g.size,
                nlink: g.names.len(),
            });
        }
    }
    out.sort_by(|a, b| path::tree_order(&a.path, &b.path));
    out
}

impl ListEntry {
    fn type_char(&self) -> char {
        match self.kind {
            Kind::Dir => 'd',
            Kind::File { .. } | Kind::Hardlink { .. } => '-',
            Kind::Symlink { .. } => 'l',
            Kind::CharDevice { .. } => 'c',
            Kind::BlockDevice { .. } => 'b',
            Kind::Fifo => 'p',
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
            Kind::CharDevice { major, minor } | Kind::BlockDevice { major, minor } => {
                format!("{major},{minor}")
            }
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
        if let Kind::Symlink { target } = &self.kind {
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
            Kind::Dir => "dir",
            Kind::File { .. } | Kind::Hardlink { .. } => "file",
            Kind::Symlink { .. } => "symlink",
            Kind::CharDevice { .. } => "char",
            Kind::BlockDevice { .. } => "block",
            Kind::Fifo => "fifo",
        };
        o.insert("type".into(), json!(kind));
        o.insert("mode".into(), json!(self.meta.mode & 0o7777));
        o.insert("mode_string".into(), json!(self.mode_string()));
        o.insert("uid".into(), json!(self.meta.uid));
        o.insert("gid".into(), json!(self.meta.gid));
        o.insert("size".into(), json!(self.size));
        o.insert("mtime".into(), json!(self.meta.mtime));
        match &self.kind {
            Kind::File { .. } | Kind::Hardlink { .. } => {
                o.insert("nlink".into(), json!(self.nlink));
            }
            Kind::Symlink { target } => put_name(&mut o, "target", target),
            Kind::CharDevice { major, minor } | Kind::BlockDevice { major, minor } => {
                o.insert("major".into(), json!(major));
                o.insert("minor".into(), json!(minor));
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
        let file = Kind::File { size: 0 };
        assert_eq!(e(0o4755, file.clone()).mode_string(), "-rwsr-xr-x");
        assert_eq!(e(0o1777, Kind::Dir).mode_string(), "drwxrwxrwt");
        assert_eq!(e(0o2644, file).mode_string(), "-rw-r-Sr--");
        assert_eq!(
            e(0o600, Kind::CharDevice { major: 5, minor: 1 })
                .text_line()
                .split_whitespace()
                .nth(2),
            Some("5,1")
        );
    }
}
