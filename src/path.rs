//! Paths as bytes, shared by every stage: names are never decoded, so
//! non-UTF-8 names survive exactly. This module owns the rules for them:
//! how a tar name is normalised, how long a name may be, how many symlinks
//! one lookup follows, and how a name is shown on a terminal.

/// The kernel skips names and symlink targets longer than this (PATH_MAX - 1).
pub const MAX_NAME_LEN: usize = 4095;
/// Symlinks one lookup may follow before it fails, as in Linux (ELOOP).
pub const MAX_SYMLINKS: usize = 40;

/// Splits a tar path into components, dropping empty ones and `.`, and
/// resolving `..` lexically with the root as a floor, as umoci's CleanPath
/// does: `../../etc/x` is `etc/x`, never a path above the root.
pub fn components(path: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            p => out.push(p),
        }
    }
    out
}

/// Joins components into an archive name: no leading slash.
pub fn join(components: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, c) in components.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(c);
    }
    out
}

/// An archive name as an absolute path: `a/b` is `/a/b`, `` is `/`.
pub fn absolute(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 1);
    out.push(b'/');
    out.extend_from_slice(name);
    out
}

/// Bytes for a terminal or a line-based tool, unambiguously: backslash as
/// `\\`, control characters as `\n`, `\t`, `\u{..}`, bytes that are not
/// UTF-8 as `\xNN` (never replaced: two names must not look alike). Every
/// message that quotes image bytes goes through here.
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

/// A path for messages: rooted (archive names have no leading slash) and
/// escaped as in [`escape`].
pub fn display(path: &[u8]) -> String {
    let rooted = if path.starts_with(b"/") { "" } else { "/" };
    format!("{rooted}{}", escape(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        assert_eq!(components(b"./a//b/./c/"), vec![&b"a"[..], b"b", b"c"]);
        assert_eq!(components(b"/a/../../b"), vec![&b"b"[..]]);
        assert_eq!(
            components(b"../../etc/passwd"),
            vec![&b"etc"[..], b"passwd"]
        );
        assert!(components(b"./").is_empty());
        assert_eq!(join(&components(b"x/\xff/y")), b"x/\xff/y".to_vec());
    }

    #[test]
    fn names_are_escaped_without_loss() {
        assert_eq!(escape(b"/a b/\xff\\n\n"), "/a b/\\xff\\\\n\\n");
        assert_ne!(escape(b"\\x41"), escape(b"A"));
        assert_eq!(display(b"a\x1b"), "/a\\u{1b}");
    }
}
