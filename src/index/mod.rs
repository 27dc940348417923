//! The merge index: the image's final filesystem tree, built from layer
//! headers alone, before a byte of the archive is written.
//!
//! Layers are applied in order, oldest first, to an in-memory tree, exactly
//! as umoci and containerd apply them to a directory, but without any file
//! data: a regular file is a reference to the tar entry that holds its
//! bytes (`ContentRef`). Applying in order is what makes two corners simple
//! and exact:
//!
//! * a hardlink names its target as the target stood *at that layer*; the
//!   node found at that moment carries the content reference, so a link keeps
//!   its content even when a newer layer overwrites or deletes the target;
//! * a parent directory that is a symlink is resolved inside the root at that
//!   moment, by [`path::resolve`] with umoci's rules (SecureJoin: absolute
//!   targets start at the image root, `..` stops at it, at most
//!   [`SECUREJOIN_MAX_SYMLINKS`] links, not the kernel's 40), so no entry is
//!   ever placed below a symlink or outside the root.
//!
//! Whiteouts (`.wh.NAME`) and opaque markers (`.wh..wh..opq`) hide only what
//! lower layers put there: a node remembers the last layer that wrote it or
//! an entry below it ("upper" in overlayfs terms), and a whiteout removes
//! only what that layer did not write, wherever it stands in the layer.
//!
//! Each other entry is placed at its resolved parent (missing parents become
//! implicit 0755 directories): a directory over a directory keeps its
//! children and takes the newer metadata; anything else replaces what was
//! at that name, with everything below it.
//!
//! [`MergeIndex::plan`] then turns the tree into the archive's order: every
//! directory first (parents before children, as the kernel needs), then
//! symlinks, devices, fifos and empty files, then regular files grouped into
//! inodes and ordered by where their bytes sit in the layers, so the content
//! pass streams each layer once, front to back.

use hashbrown::HashMap;

use crate::fs::{Kind, Meta};
use crate::layer::LayerEntry;
use crate::path::{self, Found, MAX_NAME_LEN, SECUREJOIN_MAX_SYMLINKS};

/// The layer number used for content that does not come from a layer
/// (generated /init, injected files). It sorts after every real layer.
pub const EXTRA_LAYER: u32 = u32::MAX;

/// Where a regular file's bytes are: the tar entry `ordinal` of `layer`,
/// or, for `EXTRA_LAYER`, entry `ordinal` of the builder's extra files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentRef {
    /// Layer number, oldest first from 0, or [`EXTRA_LAYER`].
    pub layer: u32,
    /// Position of the entry in its layer's tar stream (or extra files).
    pub ordinal: u32,
}

/// Why a layer cannot be applied to the tree.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// An entry that cannot be applied as umoci would apply it.
    #[error("layer {layer}: {path}: {message}")]
    Entry {
        /// The layer's number, oldest first from 0.
        layer: u32,
        /// The entry's path, rooted and escaped for a terminal.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// More paths than the caller's bound.
    #[error("the image has more than {0} paths")]
    TooManyPaths(usize),
}

type NodeId = u32;
const ROOT: NodeId = 0;

/// A node of the tree. Not [`Kind`]: a directory holds its children here,
/// a file where its bytes are, and a freed slot is `Removed`; hardlinks
/// are already resolved to what they name. [`NodeKind::kind`] is the one
/// conversion.
#[derive(Debug)]
enum NodeKind {
    Dir(HashMap<Box<[u8]>, NodeId>),
    File { content: ContentRef, size: u64 },
    Symlink(Box<[u8]>),
    CharDevice(u32, u32),
    BlockDevice(u32, u32),
    Fifo,
    Removed,
}

impl NodeKind {
    /// The shared kind of this node; `None` for a freed slot.
    fn kind(&self) -> Option<Kind> {
        Some(match self {
            NodeKind::Dir(_) => Kind::Dir,
            NodeKind::File { size, .. } => Kind::File { size: *size },
            NodeKind::Symlink(target) => Kind::Symlink {
                target: target.to_vec(),
            },
            NodeKind::CharDevice(major, minor) => Kind::CharDevice {
                major: *major,
                minor: *minor,
            },
            NodeKind::BlockDevice(major, minor) => Kind::BlockDevice {
                major: *major,
                minor: *minor,
            },
            NodeKind::Fifo => Kind::Fifo,
            NodeKind::Removed => return None,
        })
    }

    fn content(&self) -> Option<ContentRef> {
        match self {
            NodeKind::File { content, .. } => Some(*content),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Node {
    parent: NodeId,
    /// Length of the node's archive name: bounded by the kernel's limit, so
    /// that no chain of symlinks or implicit parents builds a tree whose
    /// names cost memory quadratic in its depth.
    name_len: u32,
    /// The last layer that wrote this node or something below it.
    upper: u32,
    meta: Meta,
    kind: NodeKind,
}

/// The tree as [`path::resolve`] walks it: a directory is its node.
struct Nodes<'a>(&'a [Node]);

impl path::Tree for Nodes<'_> {
    type Dir = NodeId;

    fn root(&self) -> NodeId {
        ROOT
    }

    fn find(&self, dir: &NodeId, name: &[u8]) -> Found<NodeId> {
        let NodeKind::Dir(children) = &self.0[*dir as usize].kind else {
            return Found::Missing;
        };
        let Some(&id) = children.get(name) else {
            return Found::Missing;
        };
        match &self.0[id as usize].kind {
            NodeKind::Dir(_) => Found::Dir(id),
            NodeKind::Symlink(target) => Found::Symlink(target.to_vec()),
            NodeKind::Removed => Found::Missing,
            _ => Found::Other,
        }
    }
}

/// Default metadata of a directory that an entry needs but no entry declares:
/// 0755 root:root, as umoci and containerd create it.
const IMPLICIT_DIR: Meta = Meta {
    mode: 0o755,
    uid: 0,
    gid: 0,
    mtime: 0,
};

/// The node a non-link entry of `layer` makes. Hardlinks copy the node
/// they name instead ([`MergeIndex::apply`]).
fn entry_node(layer: u32, entry: &LayerEntry) -> (NodeKind, Meta) {
    let kind = match &entry.kind {
        Kind::File { size } => NodeKind::File {
            content: ContentRef {
                layer,
                ordinal: entry.ordinal,
            },
            size: *size,
        },
        Kind::Dir => NodeKind::Dir(HashMap::new()),
        Kind::Symlink { target } => NodeKind::Symlink(target.clone().into_boxed_slice()),
        Kind::CharDevice { major, minor } => NodeKind::CharDevice(*major, *minor),
        Kind::BlockDevice { major, minor } => NodeKind::BlockDevice(*major, *minor),
        Kind::Fifo => NodeKind::Fifo,
        Kind::Hardlink { .. } => unreachable!("hardlinks resolve above"),
    };
    (kind, entry.meta)
}

/// The final tree of an image, built by applying layer headers in order.
///
/// # Examples
///
/// A file in the base layer, deleted by a whiteout in the next:
///
/// ```
/// use initramfs_stream::fs::{Kind, Meta};
/// use initramfs_stream::index::MergeIndex;
/// use initramfs_stream::layer::LayerEntry;
///
/// let entry = |path: &str, kind, ordinal| LayerEntry {
///     path: path.into(),
///     kind,
///     meta: Meta { mode: 0o644, ..Meta::default() },
///     ordinal,
/// };
/// let mut index = MergeIndex::new(1000);
/// index.apply_layer(0, &[
///     entry("etc/", Kind::Dir, 0),
///     entry("etc/motd", Kind::File { size: 5 }, 1),
///     entry("etc/hostname", Kind::File { size: 3 }, 2),
/// ])?;
/// index.apply_layer(1, &[entry("etc/.wh.motd", Kind::File { size: 0 }, 0)])?;
///
/// assert!(index.lookup(b"/etc/motd").is_none());
/// assert_eq!(index.children(b"/etc"), [b"hostname".to_vec()]);
/// let plan = index.plan();
/// assert_eq!(plan.files.len(), 1); // one file body to copy, from layer 0
/// # Ok::<(), initramfs_stream::index::IndexError>(())
/// ```
pub struct MergeIndex {
    nodes: Vec<Node>,
    free: Vec<NodeId>,
    live: usize,
    max_paths: usize,
    /// A layer had an entry for the root itself (`./` or `/`).
    root_declared: bool,
}

impl MergeIndex {
    /// An empty tree (the root alone) that refuses to grow past
    /// `max_paths` paths.
    pub fn new(max_paths: usize) -> MergeIndex {
        MergeIndex {
            nodes: vec![Node {
                parent: ROOT,
                name_len: 0,
                upper: 0,
                meta: IMPLICIT_DIR,
                kind: NodeKind::Dir(HashMap::new()),
            }],
            free: Vec::new(),
            live: 1,
            max_paths,
            root_declared: false,
        }
    }

    /// Number of paths in the tree (the root included).
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when the tree holds nothing but the root.
    pub fn is_empty(&self) -> bool {
        self.live <= 1
    }

    /// Applies one layer's entries, in their tar order.
    ///
    /// # Errors
    ///
    /// As [`MergeIndex::apply`], for the first entry that fails.
    pub fn apply_layer(&mut self, layer: u32, entries: &[LayerEntry]) -> Result<(), IndexError> {
        for entry in entries {
            self.apply(layer, entry)?;
        }
        Ok(())
    }

    /// Applies one entry of `layer`: the root's own entry, a whiteout or
    /// opaque marker, or a node placed at its resolved parent.
    ///
    /// # Errors
    ///
    /// [`IndexError::Entry`] for an entry umoci would refuse too (a
    /// hardlink to a directory or to nothing, a parent that resolves
    /// through too many symlinks), [`IndexError::TooManyPaths`] past the
    /// bound.
    pub fn apply(&mut self, layer: u32, entry: &LayerEntry) -> Result<(), IndexError> {
        let err = |message: &str| IndexError::Entry {
            layer,
            path: path::display(&entry.path),
            message: message.to_string(),
        };
        let comps = path::components(&entry.path);
        let Some((&base, parent)) = comps.split_last() else {
            self.apply_root(entry);
            return Ok(());
        };
        if let Some(hidden) = base.strip_prefix(b".wh.") {
            return self.apply_whiteout(layer, parent, hidden, &err);
        }

        // A hardlink's target is looked up before anything changes, so a
        // link that replaces its own target keeps the target's content.
        let linked = match &entry.kind {
            Kind::Hardlink { target } => Some(self.link_source(target, &err)?),
            _ => None,
        };
        let dir = self
            .resolve(parent, Some(layer), &err)?
            .ok_or_else(|| err("unresolvable parent"))?;
        let existing = self.child(dir, base);
        let node = match linked {
            Some(source) => {
                let copy = self.linked_node(source, &err)?;
                if existing == Some(source) {
                    // A link to itself keeps the node, but this layer wrote it:
                    // its own whiteouts and opaque markers must spare it.
                    self.nodes[source as usize].upper = layer;
                    return Ok(());
                }
                copy
            }
            None => {
                if let Some(id) = existing {
                    if self.merge_dir(id, layer, entry) {
                        return Ok(());
                    }
                }
                entry_node(layer, entry)
            }
        };
        self.place(dir, base, existing, layer, node, &err)
    }

    /// The root's own entry (`./` or `/`) sets the root's mode, owner and
    /// mtime, as umoci applies it. The layer reader refuses
    /// non-directories here.
    fn apply_root(&mut self, entry: &LayerEntry) {
        if entry.kind == Kind::Dir {
            self.nodes[ROOT as usize].meta = entry.meta;
            self.root_declared = true;
        }
    }

    /// A whiteout (`.wh.NAME`) or opaque marker (`.wh..wh..opq`) in the
    /// directory `parent` names. Whiteouts never create anything: a
    /// missing parent means nothing to hide.
    fn apply_whiteout(
        &mut self,
        layer: u32,
        parent: &[&[u8]],
        hidden: &[u8],
        err: &dyn Fn(&str) -> IndexError,
    ) -> Result<(), IndexError> {
        let Some(dir) = self.resolve(parent, None, err)? else {
            return Ok(());
        };
        match hidden {
            b".wh..opq" => self.clear_lower(dir, layer),
            // Other aufs metadata (.wh..wh.plnk, ...) hides nothing.
            h if h.starts_with(b".wh.") => {}
            b"" | b"." | b".." => {
                return Err(err(&format!(
                    "whiteout of an invalid name '{}' (it would delete its own directory)",
                    path::escape(hidden)
                )))
            }
            name => self.white_out(dir, name, layer),
        }
        Ok(())
    }

    /// Hides `name` in `dir` from lower layers: a node this layer wrote
    /// stays, and loses only what lower layers put below it.
    fn white_out(&mut self, dir: NodeId, name: &[u8], layer: u32) {
        if let Some(id) = self.child(dir, name) {
            if self.nodes[id as usize].upper == layer {
                self.clear_lower(id, layer);
            } else {
                self.remove_child(dir, name);
            }
        }
    }

    /// A directory entry over a directory keeps its children and takes the
    /// newer metadata. False when `entry` or node `id` is not a directory.
    fn merge_dir(&mut self, id: NodeId, layer: u32, entry: &LayerEntry) -> bool {
        let node = &mut self.nodes[id as usize];
        if entry.kind != Kind::Dir || !matches!(node.kind, NodeKind::Dir(_)) {
            return false;
        }
        node.meta = entry.meta;
        node.upper = layer;
        true
    }

    /// A copy of the node a hardlink names: a new name for its content
    /// (a file keeps its `ContentRef`, which makes the two one inode).
    fn linked_node(
        &self,
        source: NodeId,
        err: &dyn Fn(&str) -> IndexError,
    ) -> Result<(NodeKind, Meta), IndexError> {
        let node = &self.nodes[source as usize];
        let kind = match &node.kind {
            NodeKind::File { content, size } => NodeKind::File {
                content: *content,
                size: *size,
            },
            NodeKind::Symlink(t) => NodeKind::Symlink(t.clone()),
            NodeKind::CharDevice(a, b) => NodeKind::CharDevice(*a, *b),
            NodeKind::BlockDevice(a, b) => NodeKind::BlockDevice(*a, *b),
            NodeKind::Fifo => NodeKind::Fifo,
            NodeKind::Dir(_) | NodeKind::Removed => return Err(err("hardlink to a directory")),
        };
        Ok((kind, node.meta))
    }

    /// Puts a new node at `name` in `dir`, replacing what was there
    /// (`existing`) with everything below it.
    fn place(
        &mut self,
        dir: NodeId,
        name: &[u8],
        existing: Option<NodeId>,
        layer: u32,
        (kind, meta): (NodeKind, Meta),
        err: &dyn Fn(&str) -> IndexError,
    ) -> Result<(), IndexError> {
        if existing.is_some() {
            self.remove_child(dir, name);
        }
        self.insert(dir, name, layer, meta, kind, err)?;
        Ok(())
    }

    /// Finds the node a hardlink names, as the tree stands now.
    fn link_source(
        &mut self,
        target: &[u8],
        err: &dyn Fn(&str) -> IndexError,
    ) -> Result<NodeId, IndexError> {
        let comps = path::components(target);
        let Some((&base, parent)) = comps.split_last() else {
            return Err(err("hardlink to the root directory"));
        };
        let missing = || {
            err(&format!(
                "hardlink target {} does not exist",
                path::display(&path::join(&comps))
            ))
        };
        let dir = self.resolve(parent, None, err)?.ok_or_else(missing)?;
        self.child(dir, base).ok_or_else(missing)
    }

    fn child(&self, dir: NodeId, name: &[u8]) -> Option<NodeId> {
        match &self.nodes[dir as usize].kind {
            NodeKind::Dir(children) => children.get(name).copied(),
            _ => None,
        }
    }

    /// Resolves the directory that `comps` name, inside the root, with
    /// [`path::resolve`]. With `create`, the missing part becomes implicit
    /// directories and every directory on the resolved path is marked as
    /// written by that layer, as umoci creates the parents it resolved.
    fn resolve(
        &mut self,
        comps: &[&[u8]],
        create: Option<u32>,
        err: &dyn Fn(&str) -> IndexError,
    ) -> Result<Option<NodeId>, IndexError> {
        let resolved = path::resolve(
            &Nodes(&self.nodes),
            comps.iter().copied(),
            true,
            SECUREJOIN_MAX_SYMLINKS,
        )
        .map_err(|_| err("too many levels of symbolic links in the parent path"))?;
        let Some(layer) = create else {
            return Ok(resolved.dir().copied());
        };
        for &dir in &resolved.dirs {
            self.nodes[dir as usize].upper = layer;
        }
        let mut cur = *resolved.deepest();
        for name in resolved.rest() {
            if let Some(id) = self.child(cur, name) {
                return Err(err(&format!(
                    "parent {} is not a directory",
                    path::display(&self.name_of(id))
                )));
            }
            cur = self.insert(
                cur,
                name,
                layer,
                IMPLICIT_DIR,
                NodeKind::Dir(HashMap::new()),
                err,
            )?;
        }
        Ok(Some(cur))
    }

    fn insert(
        &mut self,
        dir: NodeId,
        name: &[u8],
        layer: u32,
        meta: Meta,
        kind: NodeKind,
        err: &dyn Fn(&str) -> IndexError,
    ) -> Result<NodeId, IndexError> {
        if self.live >= self.max_paths {
            return Err(IndexError::TooManyPaths(self.max_paths));
        }
        let parent_len = self.nodes[dir as usize].name_len as usize;
        let name_len = if dir == ROOT { 0 } else { parent_len + 1 } + name.len();
        if name_len > MAX_NAME_LEN {
            return Err(err(&format!(
                "resolves to a name of {name_len} bytes, the kernel skips names over {MAX_NAME_LEN}"
            )));
        }
        let node = Node {
            parent: dir,
            name_len: name_len as u32,
            upper: layer,
            meta,
            kind,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.nodes[id as usize] = node;
                id
            }
            None => {
                let id = NodeId::try_from(self.nodes.len())
                    .map_err(|_| IndexError::TooManyPaths(self.max_paths))?;
                self.nodes.push(node);
                id
            }
        };
        if let NodeKind::Dir(children) = &mut self.nodes[dir as usize].kind {
            children.insert(name.into(), id);
        }
        self.live += 1;
        Ok(id)
    }

    /// Removes `name` from directory `dir`, with everything below it. By
    /// name, not by node: finding a node's name would scan its siblings,
    /// quadratic for a layer rewriting a large directory.
    fn remove_child(&mut self, dir: NodeId, name: &[u8]) {
        let removed = match &mut self.nodes[dir as usize].kind {
            NodeKind::Dir(children) => children.remove(name),
            _ => None,
        };
        if let Some(id) = removed {
            self.free_subtree(id);
        }
    }

    /// Frees a node already detached from its parent, and everything below.
    fn free_subtree(&mut self, id: NodeId) {
        let mut stack = vec![id];
        while let Some(n) = stack.pop() {
            let kind = std::mem::replace(&mut self.nodes[n as usize].kind, NodeKind::Removed);
            if let NodeKind::Dir(children) = kind {
                stack.extend(children.values());
            }
            self.free.push(n);
            self.live -= 1;
        }
    }

    /// Keeps the children of `dir` for which `keep(nodes, name, child)`
    /// holds and frees the others: one pass over the map.
    fn retain_children(
        &mut self,
        dir: NodeId,
        mut keep: impl FnMut(&[Node], &[u8], NodeId) -> bool,
    ) {
        let NodeKind::Dir(children) = &mut self.nodes[dir as usize].kind else {
            return;
        };
        let mut children = std::mem::take(children);
        let mut doomed = Vec::new();
        children.retain(|name, &mut child| {
            let kept = keep(&self.nodes, name, child);
            if !kept {
                doomed.push(child);
            }
            kept
        });
        if let NodeKind::Dir(slot) = &mut self.nodes[dir as usize].kind {
            *slot = children;
        }
        for id in doomed {
            self.free_subtree(id);
        }
    }

    /// Removes everything below `dir` that `layer` did not write. A loop,
    /// not recursion: trees may be thousands of levels deep.
    fn clear_lower(&mut self, dir: NodeId, layer: u32) {
        let mut dirs = vec![dir];
        while let Some(d) = dirs.pop() {
            self.retain_children(d, |nodes, _, c| {
                let kept = nodes[c as usize].upper == layer;
                if kept {
                    dirs.push(c);
                }
                kept
            });
        }
    }

    /// The archive name of a node, for messages.
    fn name_of(&self, mut id: NodeId) -> Vec<u8> {
        let mut parts: Vec<&[u8]> = Vec::new();
        while id != ROOT {
            let parent = self.nodes[id as usize].parent;
            if let NodeKind::Dir(children) = &self.nodes[parent as usize].kind {
                if let Some((name, _)) = children.iter().find(|(_, c)| **c == id) {
                    parts.push(name);
                }
            }
            id = parent;
        }
        parts.reverse();
        path::join(&parts)
    }

    /// Removes every path for which `excluded(absolute path, is_dir)` holds,
    /// with everything below it; returns how many paths went. Below an
    /// excluded directory nothing is asked about.
    pub fn exclude(&mut self, mut excluded: impl FnMut(&[u8], bool) -> bool) -> usize {
        let before = self.live;
        let mut stack: Vec<(NodeId, Vec<u8>)> = vec![(ROOT, Vec::new())];
        while let Some((id, path)) = stack.pop() {
            self.retain_children(id, |nodes, name, child| {
                let mut full = Vec::with_capacity(path.len() + 1 + name.len());
                full.extend_from_slice(&path);
                full.push(b'/');
                full.extend_from_slice(name);
                let is_dir = matches!(nodes[child as usize].kind, NodeKind::Dir(_));
                if excluded(&full, is_dir) {
                    return false;
                }
                if is_dir {
                    stack.push((child, full));
                }
                true
            });
        }
        before - self.live
    }

    /// Looks a path up in the final tree, taking every component literally
    /// (symlinks are not followed).
    pub fn lookup(&self, path: &[u8]) -> Option<TreeEntry> {
        let mut id = ROOT;
        for c in path::components(path) {
            id = self.child(id, c)?;
        }
        let node = &self.nodes[id as usize];
        Some(TreeEntry {
            meta: node.meta,
            kind: node.kind.kind()?,
            content: node.kind.content(),
        })
    }

    /// Names in the directory at `path` (components taken literally), in
    /// no order; empty when it is not a directory.
    pub fn children(&self, path: &[u8]) -> Vec<Vec<u8>> {
        let mut id = ROOT;
        for c in path::components(path) {
            match self.child(id, c) {
                Some(next) => id = next,
                None => return Vec::new(),
            }
        }
        match &self.nodes[id as usize].kind {
            NodeKind::Dir(children) => children
                .iter()
                .filter(|(_, &cid)| !matches!(self.nodes[cid as usize].kind, NodeKind::Removed))
                .map(|(name, _)| name.to_vec())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Turns the tree into the archive's entries, in the archive's order.
    pub fn plan(&self) -> Plan {
        let mut plan = Plan::default();
        // Index into `empty` or `data`, by size: one content, one size.
        let mut groups: HashMap<ContentRef, usize> = HashMap::new();
        let mut empty: Vec<FileGroup> = Vec::new();
        let mut data: Vec<FileGroup> = Vec::new();
        // Depth-first, children by name bytes: parents always come first.
        let mut stack: Vec<(NodeId, Vec<u8>)> = vec![(ROOT, Vec::new())];
        while let Some((id, name)) = stack.pop() {
            let node = &self.nodes[id as usize];
            match &node.kind {
                NodeKind::Dir(children) => {
                    if id != ROOT {
                        plan.dirs.push(PlanEntry {
                            name: name.clone(),
                            meta: node.meta,
                            kind: Kind::Dir,
                        });
                    } else if self.root_declared {
                        // `.` first: the kernel applies it to the existing
                        // root. Undeclared, the root stays 0755 root:root.
                        plan.dirs.push(PlanEntry {
                            name: b".".to_vec(),
                            meta: node.meta,
                            kind: Kind::Dir,
                        });
                    }
                    let mut sorted: Vec<(&[u8], NodeId)> =
                        children.iter().map(|(k, v)| (&k[..], *v)).collect();
                    // Reverse order on the stack pops them in ascending order.
                    sorted.sort_unstable_by(|a, b| b.0.cmp(a.0));
                    for (child, cid) in sorted {
                        let mut full = Vec::with_capacity(name.len() + 1 + child.len());
                        full.extend_from_slice(&name);
                        if !full.is_empty() {
                            full.push(b'/');
                        }
                        full.extend_from_slice(child);
                        stack.push((cid, full));
                    }
                }
                NodeKind::File { content, size } => {
                    // Empty files need no layer bytes: they go out with the symlinks.
                    let list = if *size == 0 { &mut empty } else { &mut data };
                    let g = *groups.entry(*content).or_insert_with(|| {
                        list.push(FileGroup {
                            content: *content,
                            size: *size,
                            meta: node.meta,
                            // Hardlinks are rare: a first push would reserve four.
                            names: Vec::with_capacity(1),
                        });
                        list.len() - 1
                    });
                    list[g].names.push(name);
                }
                other => {
                    if let Some(kind) = other.kind() {
                        plan.others.push(PlanEntry {
                            name,
                            meta: node.meta,
                            kind,
                        });
                    }
                }
            }
        }
        data.sort_by_key(|g| g.content);
        plan.empty_files = empty;
        plan.files = data;
        plan
    }
}

/// A path of the final tree, as [`MergeIndex::lookup`] reports it. Never
/// a hardlink: links are files that share `content`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// Mode, owner and mtime.
    pub meta: Meta,
    /// What the path is; a symlink is not followed.
    pub kind: Kind,
    /// Where a regular file's bytes are; `None` for anything else.
    pub content: Option<ContentRef>,
}

/// The archive's entries in the archive's order.
#[derive(Debug, Default)]
pub struct Plan {
    /// Every directory, parents before children; `.` first when a layer
    /// has an entry for the root.
    pub dirs: Vec<PlanEntry>,
    /// Symlinks, devices and fifos: nothing to read from the layers.
    pub others: Vec<PlanEntry>,
    /// Regular files of size 0, one inode each group.
    pub empty_files: Vec<FileGroup>,
    /// Regular files with data, by where the data sits: (layer, ordinal).
    pub files: Vec<FileGroup>,
}

/// A directory, symlink, device or fifo of the archive; never a file or
/// a hardlink, which are [`FileGroup`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanEntry {
    /// Archive name: no leading slash.
    pub name: Vec<u8>,
    /// Mode, owner and mtime.
    pub meta: Meta,
    /// Directory, symlink (with its target), device or fifo.
    pub kind: Kind,
}

/// One inode of regular file data and every path that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileGroup {
    /// The tar entry that holds the bytes.
    pub content: ContentRef,
    /// Bytes of data.
    pub size: u64,
    /// Mode, owner and mtime, shared by every name of the inode.
    pub meta: Meta,
    /// Archive names, in tree order. More than one: hardlinks.
    pub names: Vec<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &[u8]) -> LayerEntry {
        LayerEntry {
            path: path.to_vec(),
            kind: Kind::File { size: 1 },
            meta: IMPLICIT_DIR,
            ordinal: 0,
        }
    }

    #[test]
    fn opaque_root_over_a_deep_tree_needs_no_deep_stack() {
        // The deepest tree 4095-byte names allow, rewritten in the layer
        // that then makes the root opaque.
        let deep = [&b"a/".repeat(2046)[..], b"f"].concat();
        let mut index = MergeIndex::new(1 << 20);
        index.apply(0, &file(&deep)).unwrap();
        index.apply(0, &file(b"old")).unwrap();
        index.apply(1, &file(&deep)).unwrap();
        index.apply(1, &file(b".wh..wh..opq")).unwrap();
        assert!(index.lookup(&deep).is_some());
        assert!(index.lookup(b"old").is_none());
    }

    #[test]
    fn names_longer_than_the_kernel_takes_are_refused() {
        let mut index = MergeIndex::new(1 << 20);
        let ok = [&b"d/".repeat(2046)[..], b"f"].concat();
        assert_eq!(ok.len(), MAX_NAME_LEN - 2);
        index.apply(0, &file(&ok)).unwrap();
        let long = [&b"e/".repeat(2047)[..], b"ff"].concat();
        let err = index.apply(0, &file(&long)).unwrap_err();
        assert!(err.to_string().contains("4096 bytes"), "{err}");
        // Through a symlink the stored name grows past the entry's own.
        let link = LayerEntry {
            path: b"s".to_vec(),
            kind: Kind::Symlink {
                target: ok[..ok.len() - 2].to_vec(),
            },
            meta: IMPLICIT_DIR,
            ordinal: 1,
        };
        index.apply(0, &link).unwrap();
        index.apply(0, &file(b"s/xyz")).unwrap();
        let err = index.apply(0, &file(b"s/wxyz")).unwrap_err();
        assert!(err.to_string().contains("/s/wxyz"), "{err}");
    }
}
