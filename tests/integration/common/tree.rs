//! A filesystem tree model that both a newc archive and an unpacked rootfs
//! map to, so the two can be compared field by field. Paths stay bytes.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::newc::{self, show, Entry};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Char,
    Block,
    Fifo,
    Socket,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    /// Permission bits with setuid/setgid/sticky (mode & 0o7777).
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    /// Symlink target.
    pub target: Vec<u8>,
    /// Regular file content.
    pub content: Vec<u8>,
    pub rdev: (u32, u32),
    /// All paths of the hardlink group (sorted, self included); empty when
    /// the file has a single name.
    pub links: Vec<Vec<u8>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree(pub BTreeMap<Vec<u8>, Node>);

fn major(rdev: u64) -> u32 {
    (((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff)) as u32
}

fn minor(rdev: u64) -> u32 {
    ((rdev & 0xff) | ((rdev >> 12) & !0xff)) as u32
}

impl Tree {
    /// Build from parsed newc entries. Hardlinked members that carry no data
    /// get the group's content, as after unpacking.
    pub fn from_newc(entries: &[Entry]) -> Tree {
        let mut group_data: HashMap<(u32, u32, u32), Vec<u8>> = HashMap::new();
        for e in entries.iter().filter(|e| e.is_reg() && e.nlink >= 2) {
            if !e.data.is_empty() {
                group_data.insert((e.devmajor, e.devminor, e.ino), e.data.clone());
            }
        }
        let mut map = BTreeMap::new();
        // The root itself is left out, as in `from_dir`.
        for e in entries.iter().filter(|e| e.name != b".") {
            let kind = match e.file_type() {
                newc::S_IFREG => Kind::File,
                newc::S_IFDIR => Kind::Dir,
                newc::S_IFLNK => Kind::Symlink,
                newc::S_IFCHR => Kind::Char,
                newc::S_IFBLK => Kind::Block,
                newc::S_IFIFO => Kind::Fifo,
                newc::S_IFSOCK => Kind::Socket,
                t => panic!("{}: unknown type {t:o}", show(&e.name)),
            };
            let grouped = kind == Kind::File && e.nlink >= 2;
            let key = (e.devmajor, e.devminor, e.ino);
            let content = match kind {
                Kind::File if grouped => group_data.get(&key).cloned().unwrap_or_default(),
                Kind::File => e.data.clone(),
                _ => Vec::new(),
            };
            let links = if grouped {
                let mut g: Vec<Vec<u8>> = entries
                    .iter()
                    .filter(|o| {
                        o.is_reg() && o.nlink >= 2 && (o.devmajor, o.devminor, o.ino) == key
                    })
                    .map(|o| o.name.clone())
                    .collect();
                g.sort();
                g
            } else {
                Vec::new()
            };
            let name = match e.name.strip_prefix(b"./") {
                Some(rest) if rest == b"TRAILER!!!" => rest.to_vec(),
                _ => e.name.clone(),
            };
            map.insert(
                name,
                Node {
                    kind,
                    perm: e.mode & 0o7777,
                    uid: e.uid,
                    gid: e.gid,
                    mtime: i64::from(e.mtime),
                    target: if kind == Kind::Symlink {
                        e.data.clone()
                    } else {
                        Vec::new()
                    },
                    content,
                    rdev: (e.rdevmajor, e.rdevminor),
                    links,
                },
            );
        }
        Tree(map)
    }

    /// Build from an unpacked root directory (the root itself is left out).
    pub fn from_dir(root: &Path) -> Tree {
        let mut map = BTreeMap::new();
        let mut inodes: BTreeMap<(u64, u64), Vec<Vec<u8>>> = BTreeMap::new();
        walk(root, &[], &mut map, &mut inodes);
        for members in inodes.values_mut() {
            members.sort();
            for m in members.iter() {
                map.get_mut(m).unwrap().links = members.clone();
            }
        }
        Tree(map)
    }

    /// For extractors that do not restore symlink mtimes.
    pub fn without_symlink_mtimes(mut self) -> Tree {
        for n in self.0.values_mut().filter(|n| n.kind == Kind::Symlink) {
            n.mtime = 0;
        }
        self
    }

    pub fn get(&self, path: impl AsRef<[u8]>) -> Option<&Node> {
        self.0.get(path.as_ref())
    }

    /// The node at `path`, or a panic naming the path.
    pub fn node(&self, path: impl AsRef<[u8]>) -> &Node {
        let p = path.as_ref();
        self.get(p)
            .unwrap_or_else(|| panic!("{} missing from the tree", show(p)))
    }

    pub fn content(&self, path: impl AsRef<[u8]>) -> &[u8] {
        let n = self.node(path.as_ref());
        assert_eq!(
            n.kind,
            Kind::File,
            "{} is not a regular file",
            show(path.as_ref())
        );
        &n.content
    }

    pub fn has(&self, path: impl AsRef<[u8]>) -> bool {
        self.0.contains_key(path.as_ref())
    }

    /// Every difference, one line each. Directory mtimes are not compared
    /// (extraction touches them); symlink permission bits neither (Linux
    /// ignores them).
    pub fn diff(&self, other: &Tree) -> Vec<String> {
        let mut out = Vec::new();
        for (p, a) in &self.0 {
            let Some(b) = other.0.get(p) else {
                out.push(format!("- {} ({:?}) only on the left", show(p), a.kind));
                continue;
            };
            let n = show(p);
            if a.kind != b.kind {
                out.push(format!("~ {n}: kind {:?} vs {:?}", a.kind, b.kind));
                continue;
            }
            if a.kind != Kind::Symlink && a.perm != b.perm {
                out.push(format!("~ {n}: mode {:04o} vs {:04o}", a.perm, b.perm));
            }
            if (a.uid, a.gid) != (b.uid, b.gid) {
                out.push(format!(
                    "~ {n}: owner {}:{} vs {}:{}",
                    a.uid, a.gid, b.uid, b.gid
                ));
            }
            if a.kind != Kind::Dir && a.mtime != b.mtime {
                out.push(format!("~ {n}: mtime {} vs {}", a.mtime, b.mtime));
            }
            if a.target != b.target {
                out.push(format!(
                    "~ {n}: symlink target {:?} vs {:?}",
                    show(&a.target),
                    show(&b.target)
                ));
            }
            if a.content != b.content {
                out.push(format!(
                    "~ {n}: content {}",
                    content_diff(&a.content, &b.content)
                ));
            }
            if matches!(a.kind, Kind::Char | Kind::Block) && a.rdev != b.rdev {
                out.push(format!("~ {n}: rdev {:?} vs {:?}", a.rdev, b.rdev));
            }
            if a.links != b.links {
                let s = |l: &Vec<Vec<u8>>| l.iter().map(|x| show(x)).collect::<Vec<_>>();
                out.push(format!(
                    "~ {n}: hardlink group {:?} vs {:?}",
                    s(&a.links),
                    s(&b.links)
                ));
            }
        }
        for (p, b) in &other.0 {
            if !self.0.contains_key(p) {
                out.push(format!("+ {} ({:?}) only on the right", show(p), b.kind));
            }
        }
        out
    }
}

fn content_diff(a: &[u8], b: &[u8]) -> String {
    let at = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let preview = |c: &[u8]| {
        let s = show(&c[..c.len().min(32)]);
        if c.len() > 32 {
            format!("{s:?}...")
        } else {
            format!("{s:?}")
        }
    };
    format!(
        "{} bytes {} vs {} bytes {} (first difference at byte {at})",
        a.len(),
        preview(a),
        b.len(),
        preview(b)
    )
}

fn walk(
    dir: &Path,
    prefix: &[u8],
    map: &mut BTreeMap<Vec<u8>, Node>,
    inodes: &mut BTreeMap<(u64, u64), Vec<Vec<u8>>>,
) {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for name in names {
        let full = dir.join(&name);
        let mut rel = prefix.to_vec();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(name.as_bytes());
        let md = fs::symlink_metadata(&full).unwrap();
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink
        } else if ft.is_file() {
            Kind::File
        } else if ft.is_char_device() {
            Kind::Char
        } else if ft.is_block_device() {
            Kind::Block
        } else if ft.is_fifo() {
            Kind::Fifo
        } else {
            Kind::Socket
        };
        // Only regular files: the kernel links nothing else, so other
        // hardlinked nodes must come out as separate nodes.
        if kind == Kind::File && md.nlink() > 1 {
            inodes
                .entry((md.dev(), md.ino()))
                .or_default()
                .push(rel.clone());
        }
        let node = Node {
            kind,
            perm: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            mtime: md.mtime(),
            target: if kind == Kind::Symlink {
                fs::read_link(&full)
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec()
            } else {
                Vec::new()
            },
            content: if kind == Kind::File {
                fs::read(&full).unwrap()
            } else {
                Vec::new()
            },
            rdev: if matches!(kind, Kind::Char | Kind::Block) {
                (major(md.rdev()), minor(md.rdev()))
            } else {
                (0, 0)
            },
            links: Vec::new(),
        };
        map.insert(rel.clone(), node);
        if kind == Kind::Dir {
            walk(&full, &rel, map, inodes);
        }
    }
}

impl fmt::Display for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (p, n) in &self.0 {
            writeln!(
                f,
                "{:?} {:04o} {}:{} {}",
                n.kind,
                n.perm,
                n.uid,
                n.gid,
                show(p)
            )?;
        }
        Ok(())
    }
}

/// Panic with every difference between the reference (`expected`) and the
/// tool's tree (`got`).
pub fn assert_same(expected: &Tree, got: &Tree, what: &str) {
    let d = expected.diff(got);
    if !d.is_empty() {
        panic!(
            "{what}: {} difference(s) between the reference (left) and the archive (right):\n{}",
            d.len(),
            d.join("\n")
        );
    }
}
