//! `--exclude` patterns: gitignore-style globs matched against absolute
//! paths of the merged tree.
//!
//! A pattern that starts with `/` or holds a `/` is anchored at the image
//! root (`/usr/share/doc/**`, `usr/share/man`); one without a slash matches
//! a name at any depth (`*.pyc`, `__pycache__`). A trailing `/` matches
//! directories only. `*` and `?` never cross a `/`; `**` does. An excluded
//! directory takes its whole subtree with it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// An exclude pattern that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("exclude pattern '{pattern}': {reason}")]
pub struct PatternError {
    /// The pattern as given.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A compiled set of exclude patterns.
#[derive(Debug, Clone)]
pub struct Excludes {
    any: GlobSet,
    dirs: GlobSet,
    count: usize,
}

impl Excludes {
    /// Compiles `patterns` (gitignore-like globs: anchored with a leading
    /// `/` or any inner `/`, else at any depth; a trailing `/` matches
    /// directories only).
    ///
    /// # Errors
    ///
    /// [`PatternError`] naming the first pattern that is not a glob, or a
    /// negated one (`!`), which is not supported.
    ///
    /// # Examples
    ///
    /// ```
    /// use initramfs_stream::Excludes;
    ///
    /// let ex = Excludes::new(["/usr/share/doc", "*.pyc", "cache/"])?;
    /// assert!(ex.matches(b"/usr/lib/python3/x.pyc", false));
    /// assert!(ex.matches(b"/var/cache", true) && !ex.matches(b"/var/cache", false));
    /// assert!(Excludes::new(["/a/[b"]).is_err());
    /// # Ok::<(), initramfs_stream::PatternError>(())
    /// ```
    pub fn new<I, S>(patterns: I) -> Result<Excludes, PatternError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut any = GlobSetBuilder::new();
        let mut dirs = GlobSetBuilder::new();
        let mut count = 0;
        for pattern in patterns {
            let raw = pattern.as_ref();
            let p = raw.trim();
            if p.is_empty() {
                continue;
            }
            if p.starts_with('!') {
                return Err(PatternError {
                    pattern: raw.to_string(),
                    reason: "negated patterns (!) are not supported; narrow the pattern \
                             that excludes the path instead"
                        .into(),
                });
            }
            let (p, dir_only) = match p.strip_suffix('/') {
                Some(stripped) if !stripped.is_empty() => (stripped, true),
                _ => (p, false),
            };
            let anchored = if p.starts_with('/') {
                p.to_string()
            } else if p.contains('/') {
                format!("/{p}")
            } else {
                format!("/**/{p}")
            };
            let glob = GlobBuilder::new(&anchored)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| PatternError {
                    pattern: raw.to_string(),
                    reason: e.kind().to_string(),
                })?;
            if dir_only {
                dirs.add(glob);
            } else {
                any.add(glob);
            }
            count += 1;
        }
        let build = |b: GlobSetBuilder| {
            b.build().map_err(|e| PatternError {
                pattern: String::new(),
                reason: e.to_string(),
            })
        };
        Ok(Excludes {
            any: build(any)?,
            dirs: build(dirs)?,
            count,
        })
    }

    /// Patterns from a file: one a line; blank lines and lines starting
    /// with `#` are skipped.
    pub fn parse_file(text: &str) -> impl Iterator<Item = &str> {
        text.lines()
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    }

    /// Number of patterns.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether `path` (absolute, as bytes) is excluded. Names are bytes:
    /// non-UTF-8 names are matched exactly, never decoded.
    pub fn matches(&self, path: &[u8], is_dir: bool) -> bool {
        let path = Path::new(OsStr::from_bytes(path));
        self.any.is_match(path) || (is_dir && self.dirs.is_match(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchoring_and_depth() {
        let ex = Excludes::new(["/usr/share/doc/**", "*.pyc", "var/cache", "tmp/"]).unwrap();
        assert!(ex.matches(b"/usr/share/doc/x/y", false));
        assert!(!ex.matches(b"/usr/share/doc", true));
        assert!(ex.matches(b"/a/b/c.pyc", false));
        assert!(ex.matches(b"/c.pyc", false));
        assert!(ex.matches(b"/var/cache", true));
        assert!(!ex.matches(b"/x/var/cache", true));
        assert!(ex.matches(b"/tmp", true));
        assert!(!ex.matches(b"/tmp", false));
        assert!(!ex.matches(b"/usr/share/docs", false));
        // `*` stays within one component.
        let star = Excludes::new(["/usr/*"]).unwrap();
        assert!(star.matches(b"/usr/bin", true));
        assert!(!star.matches(b"/usr/bin/ls", false));
        // Non-UTF-8 names match byte for byte.
        let odd = Excludes::new(["/data/*.bin"]).unwrap();
        assert!(odd.matches(b"/data/\xff.bin", false));
    }

    #[test]
    fn bad_patterns_are_named() {
        let e = Excludes::new(["/a/[b"]).unwrap_err().to_string();
        assert!(e.contains("'/a/[b'"), "{e}");
        assert!(Excludes::new(["!/keep"]).is_err());
        let from_file: Vec<&str> = Excludes::parse_file("# c\n\n/a\r\n /b\n").collect();
        assert_eq!(from_file, vec!["/a", " /b"]);
    }
}
