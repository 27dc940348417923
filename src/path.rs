//! Paths as bytes, shared by every stage: names are never decoded, so
//! non-UTF-8 names survive exactly. This module owns the rules for them:
//! how a tar name is normalised, how long a name may be, how a symlink is
//! resolved inside the image's root, and how a name is shown on a terminal.
//!
//! Resolution ([`resolve`]) walks a path one component at a time over a
//! [`Tree`] that answers "what is this name in that directory": a
//! directory, a symlink (with its target), something else, or nothing.
//! A symlink's target replaces it in the rest of the walk; an absolute
//! target starts again at the root. A name that is missing or not a
//! directory is kept as it is, and nothing below it is looked up: the rest
//! is taken lexically, as filepath-securejoin does (where the kernel would
//! fail with ENOENT or ENOTDIR; callers look the result up). Invariants:
//!
//! * the result never leaves the root: `..` pops one resolved name, and
//!   `..` at the root stays at the root, for the path and every target;
//! * names are compared and returned byte for byte, never decoded;
//! * no resolved name is a symlink of the tree, except a last one left
//!   unfollowed on request, so nothing is ever placed below a symlink;
//! * at most `max_symlinks` symlinks are followed, counted over the whole
//!   walk; one more is an error. Two limits exist because two programs
//!   are predicted: umoci unpacking a layer ([`SECUREJOIN_MAX_SYMLINKS`])
//!   and the Linux kernel of the booted system ([`LINUX_MAX_SYMLINKS`]).

use std::borrow::Cow;

/// The kernel skips names and symlink targets longer than this (PATH_MAX - 1).
pub const MAX_NAME_LEN: usize = 4095;
/// Symlinks a layer entry's parent path may pass through: the limit of
/// filepath-securejoin, which `umoci unpack` uses to place an entry (it
/// refuses the 256th).
pub const SECUREJOIN_MAX_SYMLINKS: usize = 255;
/// Symlinks one path lookup may follow in Linux (MAXSYMLINKS): the booted
/// system fails the 41st with ELOOP.
pub const LINUX_MAX_SYMLINKS: usize = 40;

/// What a [`Tree`] holds at one name of a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found<D> {
    /// A directory, as the tree's handle for it.
    Dir(D),
    /// A symbolic link, with its target.
    Symlink(Vec<u8>),
    /// A file, device, fifo...: nothing can be below it.
    Other,
    /// Nothing by that name.
    Missing,
}

/// A tree that symlinks are resolved in.
pub trait Tree {
    /// How the tree names one of its directories: a node, or an absolute
    /// path.
    type Dir;
    /// The root directory, where absolute targets start and `..` stops.
    fn root(&self) -> Self::Dir;
    /// What is at `name` in directory `dir`, symlinks not followed.
    fn find(&self, dir: &Self::Dir, name: &[u8]) -> Found<Self::Dir>;
}

/// More symlinks than the limit given to [`resolve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManySymlinks;

/// A path resolved inside the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved<'p, D> {
    /// The resolved names, from the root down: no empty name, `.` or `..`.
    pub names: Vec<Cow<'p, [u8]>>,
    /// `dirs[i]` is the directory that `names[..i]` names: the root first,
    /// then one for each leading name that is a directory of the tree.
    /// Shorter than `names.len() + 1` when a name is missing or is not a
    /// directory; the names after it were not looked up.
    pub dirs: Vec<D>,
}

impl<D> Resolved<'_, D> {
    /// The directory the whole path names, if it is one in the tree.
    pub fn dir(&self) -> Option<&D> {
        match self.dirs.len() == self.names.len() + 1 {
            true => self.dirs.last(),
            false => None,
        }
    }

    /// The deepest directory of the tree on the resolved path: the last
    /// of [`Resolved::dirs`], the root at least.
    pub fn deepest(&self) -> &D {
        &self.dirs[self.dirs.len() - 1]
    }

    /// The names below the last directory in [`Resolved::dirs`]: the
    /// part of the path that is missing or not a directory.
    pub fn rest(&self) -> &[Cow<'_, [u8]>] {
        &self.names[self.dirs.len() - 1..]
    }

    /// The result as an absolute path: `/` for the root.
    pub fn absolute(&self) -> Vec<u8> {
        let names: Vec<&[u8]> = self.names.iter().map(|n| &n[..]).collect();
        absolute(&join(&names))
    }
}

/// Resolves the path made of `components` inside the root of `tree`,
/// following symlinks as the module doc says. With `follow_last` false, a
/// symlink in the last component is kept, not followed.
///
/// # Errors
///
/// [`TooManySymlinks`] when the walk follows more than `max_symlinks`.
pub fn resolve<'p, T: Tree + ?Sized>(
    tree: &T,
    components: impl IntoIterator<Item = &'p [u8]>,
    follow_last: bool,
    max_symlinks: usize,
) -> Result<Resolved<'p, T::Dir>, TooManySymlinks> {
    // Empty names and `.` never enter the walk. Names from symlink targets
    // wait in `pending`, the next one last, before the rest of the input.
    let mut input = components
        .into_iter()
        .filter(|c| !matches!(*c, b"" | b"."))
        .peekable();
    let mut pending: Vec<Cow<'p, [u8]>> = Vec::new();
    // Room for the usual depth: one allocation each, no regrowth.
    let mut names: Vec<Cow<'p, [u8]>> = Vec::with_capacity(8);
    let mut dirs = Vec::with_capacity(9);
    dirs.push(tree.root());
    let mut followed = 0usize;
    loop {
        let name = match pending.pop() {
            Some(name) => name,
            None => match input.next() {
                Some(name) => Cow::Borrowed(name),
                None => break,
            },
        };
        if *name == *b".." {
            names.pop();
            dirs.truncate(names.len() + 1);
            continue;
        }
        // Below a name that is missing or not a directory, nothing is.
        if dirs.len() == names.len() + 1 {
            match tree.find(&dirs[dirs.len() - 1], &name) {
                Found::Dir(dir) => dirs.push(dir),
                Found::Symlink(target)
                    if follow_last || !pending.is_empty() || input.peek().is_some() =>
                {
                    followed += 1;
                    if followed > max_symlinks {
                        return Err(TooManySymlinks);
                    }
                    if target.first() == Some(&b'/') {
                        names.clear();
                        dirs.truncate(1);
                    }
                    let parts = target
                        .split(|&b| b == b'/')
                        .filter(|c| !matches!(*c, b"" | b"."))
                        .rev()
                        .map(|c| Cow::Owned(c.to_vec()));
                    pending.extend(parts);
                    continue;
                }
                Found::Symlink(_) | Found::Other | Found::Missing => {}
            }
        }
        names.push(name);
    }
    Ok(Resolved { names, dirs })
}

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

/// A path in the rooted form the guest sees: a leading `/`, no `.`, empty
/// components or trailing slash. Unlike [`components`], `..` is kept: in
/// the guest it goes up from wherever a symlink led, which only
/// [`resolve`] knows.
pub fn rooted(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in path.split(|&b| b == b'/') {
        if c.is_empty() || c == b"." {
            continue;
        }
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// The parent of a rooted path; the root's parent is the root.
pub fn parent(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(0) | None => b"/",
        Some(i) => &path[..i],
    }
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

/// An archive name as an absolute path: `a/b` is `/a/b`; `` and `.` (the
/// root's own entry) are `/`.
pub fn absolute(name: &[u8]) -> Vec<u8> {
    if name == b"." {
        return b"/".to_vec();
    }
    let mut out = Vec::with_capacity(name.len() + 1);
    out.push(b'/');
    out.extend_from_slice(name);
    out
}

/// Orders normalised names as a walk of the tree does, each directory
/// followed by its contents, names by bytes: component by component, so
/// `a/b` comes before `a-b` although `-` sorts before `/`.
pub fn tree_order(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    fn parts(p: &[u8]) -> impl Iterator<Item = &[u8]> {
        p.split(|&c| c == b'/').filter(|c| !c.is_empty())
    }
    parts(a).cmp(parts(b))
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

    /// A tree of absolute paths: `<d>` a directory, `<f>` a file,
    /// anything else a symlink to it.
    struct Paths(Vec<(&'static [u8], &'static [u8])>);

    impl Tree for Paths {
        type Dir = Vec<u8>;
        fn root(&self) -> Vec<u8> {
            Vec::new()
        }
        fn find(&self, dir: &Vec<u8>, name: &[u8]) -> Found<Vec<u8>> {
            let path = [&dir[..], b"/", name].concat();
            match self.0.iter().find(|(p, _)| *p == &path[..]) {
                Some((_, b"<d>")) => Found::Dir(path),
                Some((_, b"<f>")) => Found::Other,
                Some((_, target)) => Found::Symlink(target.to_vec()),
                None => Found::Missing,
            }
        }
    }

    fn resolved(tree: &Paths, p: &[u8], follow_last: bool) -> Vec<u8> {
        let comps = p.split(|&b| b == b'/');
        resolve(tree, comps, follow_last, 3).unwrap().absolute()
    }

    #[test]
    fn resolves_inside_the_root() {
        let tree = Paths(vec![
            (b"/usr", b"<d>"),
            (b"/usr/bin", b"<d>"),
            (b"/bin", b"usr/bin"),
            (b"/usr/bin/sh", b"busybox"),
            (b"/usr/bin/busybox", b"<f>"),
            (b"/up", b"../../../usr"),
            (b"/abs", b"/usr/bin/../bin"),
            (b"/usr/bin/back", b"../../bin"),
            (b"/\xff\xfe", b"<d>"),
        ]);
        assert_eq!(resolved(&tree, b"/bin/sh", true), b"/usr/bin/busybox");
        assert_eq!(resolved(&tree, b"bin/sh", false), b"/usr/bin/sh");
        assert_eq!(resolved(&tree, b"/up/bin", true), b"/usr/bin");
        assert_eq!(resolved(&tree, b"/abs/", true), b"/usr/bin");
        // `..` after a symlink is the target's parent, not the link's.
        assert_eq!(resolved(&tree, b"/bin/../x", true), b"/usr/x");
        assert_eq!(
            resolved(&tree, b"/usr/bin/back/sh", true),
            b"/usr/bin/busybox"
        );
        assert_eq!(resolved(&tree, b"/../../x", true), b"/x");
        assert_eq!(resolved(&tree, b"", true), b"/");
        assert_eq!(resolved(&tree, b"/\xff\xfe/x", true), b"/\xff\xfe/x");
        // Missing and non-directory names are kept, nothing below them
        // is looked up, and `..` takes them back lexically.
        assert_eq!(resolved(&tree, b"/no/bin/sh", true), b"/no/bin/sh");
        assert_eq!(resolved(&tree, b"/no/../bin/sh", true), b"/usr/bin/busybox");
        let r = resolve(&tree, [&b"usr"[..], b"bin", b"busybox", b"x"], true, 3).unwrap();
        assert_eq!(r.dirs.len(), 3);
        assert_eq!(r.rest(), [&b"busybox"[..], b"x"]);
        assert_eq!(r.dir(), None);
        let r = resolve(&tree, [&b"bin"[..]], true, 3).unwrap();
        assert_eq!(r.dir().map(|d| &d[..]), Some(&b"/usr/bin"[..]));
    }

    #[test]
    fn the_symlink_limit_counts_the_whole_walk() {
        // /l0 -> l1 -> l2 -> d: three symlinks to reach /d.
        let tree = Paths(vec![
            (b"/l0", b"l1"),
            (b"/l1", b"/l2"),
            (b"/l2", b"d"),
            (b"/d", b"<d>"),
            (b"/d/s", b"../l2"),
        ]);
        let walk = |p: &'static [u8], max| resolve(&tree, p.split(|&b| b == b'/'), true, max);
        assert_eq!(walk(b"l0/x", 3).unwrap().absolute(), b"/d/x");
        assert_eq!(walk(b"l0/x", 2), Err(TooManySymlinks));
        // /l2, /d/s, /l2 again.
        assert_eq!(walk(b"l2/s/x", 3).unwrap().absolute(), b"/d/x");
        assert_eq!(walk(b"l2/s/x", 2), Err(TooManySymlinks));
        // A final symlink that is not followed does not count.
        assert_eq!(
            resolve(&tree, [&b"l0"[..]], false, 0).unwrap().absolute(),
            b"/l0"
        );
    }

    #[test]
    fn tree_order_walks_each_directory_before_its_neighbours() {
        let mut names = vec![&b"/a-b"[..], b"/a/b", b"/", b"/a", b"/a/b/c", b"/\xff"];
        names.sort_by(|a, b| tree_order(a, b));
        assert_eq!(
            names,
            [&b"/"[..], b"/a", b"/a/b", b"/a/b/c", b"/a-b", b"/\xff"]
        );
    }

    #[test]
    fn names_are_escaped_without_loss() {
        assert_eq!(escape(b"/a b/\xff\\n\n"), "/a b/\\xff\\\\n\\n");
        assert_ne!(escape(b"\\x41"), escape(b"A"));
        assert_eq!(display(b"a\x1b"), "/a\\u{1b}");
    }
}
