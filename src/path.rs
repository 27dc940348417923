//! Paths as bytes, shared by every stage: names are never decoded, so
//! non-UTF-8 names survive exactly. This module owns the rules for them:
//! how a tar name is normalised, how long a name may be, how many symlinks
//! one lookup follows, and how a name is shown on a terminal.

/// The kernel skips names and symlink targets longer than this (PATH_MAX - 1).
pub const MAX_NAME_LEN: usize = 4095;

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

/// For messages only.
pub fn display(path: &[u8]) -> String {
    let s = String::from_utf8_lossy(path);
    if s.starts_with('/') {
        s.into_owned()
    } else {
        format!("/{s}")
    }
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
}
