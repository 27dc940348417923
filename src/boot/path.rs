//! Paths inside the merged image: symlink resolution confined to the root,
//! and placing boot files so that no entry ends up below a symlink and every
//! parent directory exists before its children.

use std::collections::BTreeMap;

use crate::fs::{Entry, Kind};
use crate::path::{parent, rooted, Found, TooManySymlinks, Tree, LINUX_MAX_SYMLINKS};

use super::{BootError, BootFile, BootFileKind, ImageLookup};

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(dir.len() + 1 + name.len());
    out.extend_from_slice(dir);
    if !dir.ends_with(b"/") {
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

/// Resolves `path` inside the image the way a chrooted process would, with
/// the kernel's symlink limit, except that `..` and absolute symlink targets
/// never leave the root ([`crate::path::resolve`]). The result is absolute
/// and normalised; it need not exist. With `follow_last` false, a symlink
/// in the last component is left as is.
pub(crate) fn resolve(
    lookup: &dyn ImageLookup,
    path: &[u8],
    follow_last: bool,
) -> Result<Vec<u8>, BootError> {
    let comps = path.split(|&b| b == b'/');
    match crate::path::resolve(&Image(lookup), comps, follow_last, LINUX_MAX_SYMLINKS) {
        Ok(resolved) => Ok(resolved.absolute()),
        Err(TooManySymlinks) => Err(BootError::SymlinkLoop(crate::path::display(path))),
    }
}

/// The image as [`crate::path::resolve`] walks it: a directory is its
/// absolute path.
struct Image<'a>(&'a dyn ImageLookup);

impl Tree for Image<'_> {
    type Dir = Vec<u8>;

    fn root(&self) -> Vec<u8> {
        b"/".to_vec()
    }

    fn find(&self, dir: &Vec<u8>, name: &[u8]) -> Found<Vec<u8>> {
        let path = join(dir, name);
        match self.0.entry(&path).map(|e| e.kind) {
            Some(Kind::Dir) => Found::Dir(path),
            Some(Kind::Symlink { target }) => Found::Symlink(target),
            Some(_) => Found::Other,
            None => Found::Missing,
        }
    }
}

/// The image with the files planned so far laid over it.
struct Overlay<'a> {
    image: &'a dyn ImageLookup,
    planned: BTreeMap<Vec<u8>, BootFile>,
}

impl ImageLookup for Overlay<'_> {
    fn entry(&self, path: &[u8]) -> Option<Entry> {
        match self.planned.get(path) {
            None => self.image.entry(path),
            Some(file) => Some(file.entry()),
        }
    }
    fn read(&self, path: &[u8]) -> Option<Vec<u8>> {
        self.image.read(path)
    }
}

/// Places `wanted` (later entries win) over the image: each parent is
/// resolved through the image's symlinks, missing parents become 0755
/// directories, and the result is sorted by path bytes, which puts every
/// directory before its contents.
pub(crate) fn place(
    image: &dyn ImageLookup,
    wanted: Vec<BootFile>,
) -> Result<Vec<BootFile>, BootError> {
    let mut overlay = Overlay {
        image,
        planned: BTreeMap::new(),
    };
    for mut file in wanted {
        let path = rooted(&file.path);
        if path == b"/" {
            continue;
        }
        let name = &path[parent(&path).len()..];
        let name = name.strip_prefix(b"/").unwrap_or(name).to_vec();
        let dir = resolve(&overlay, parent(&path), true)?;
        let mut prefix = Vec::new();
        for c in crate::path::components(&dir) {
            prefix.push(b'/');
            prefix.extend_from_slice(c);
            match overlay.entry(&prefix) {
                None => {
                    overlay.planned.insert(
                        prefix.clone(),
                        BootFile {
                            path: prefix.clone(),
                            kind: BootFileKind::Dir { mode: 0o755 },
                        },
                    );
                }
                Some(Entry {
                    kind: Kind::Dir, ..
                }) => {}
                Some(_) => {
                    return Err(BootError::NotADirectory {
                        path: crate::path::display(&file.path),
                        parent: crate::path::display(&prefix),
                    })
                }
            }
        }
        file.path = join(&dir, &name);
        if !matches!(file.kind, BootFileKind::Dir { .. }) {
            // A non-directory hides what was planned below it.
            // Keys under one prefix are one range of the sorted map.
            let below = join(&file.path, b"");
            let hidden: Vec<Vec<u8>> = overlay
                .planned
                .range(below.clone()..)
                .map(|(p, _)| p)
                .take_while(|p| p.starts_with(&below))
                .cloned()
                .collect();
            for p in hidden {
                overlay.planned.remove(&p);
            }
        }
        overlay.planned.insert(file.path.clone(), file);
    }
    Ok(overlay.planned.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::super::testing::MapImage;
    use super::*;

    fn r(img: &MapImage, p: &str) -> String {
        crate::path::display(&resolve(img, p.as_bytes(), true).unwrap())
    }

    #[test]
    fn resolves_inside_the_root() {
        let mut img = MapImage::new();
        img.dir("/usr").dir("/usr/bin").link("/bin", "usr/bin");
        img.link("/usr/bin/sh", "busybox")
            .file("/usr/bin/busybox", 0o755, "");
        img.link("/escape", "../../../usr")
            .link("/abs", "/usr/bin/../bin");
        img.link("/loop", "/loop");
        assert_eq!(r(&img, "/bin/sh"), "/usr/bin/busybox");
        assert_eq!(
            crate::path::display(&resolve(&img, b"/bin/sh", false).unwrap()),
            "/usr/bin/sh"
        );
        assert_eq!(r(&img, "/escape/bin"), "/usr/bin");
        assert_eq!(r(&img, "/abs"), "/usr/bin");
        assert_eq!(r(&img, "/../../x"), "/x");
        assert_eq!(r(&img, "/"), "/");
        assert_eq!(r(&img, "/missing/a/../b"), "/missing/b");
        assert!(matches!(
            resolve(&img, b"/loop/x", true),
            Err(BootError::SymlinkLoop(_))
        ));
    }

    #[test]
    fn symlinks_are_followed_as_far_as_the_host_kernel_follows_them() {
        // The boot stage predicts the booted kernel: the same chain of
        // symlinks, resolved by the host's kernel and by `resolve`.
        for n in [LINUX_MAX_SYMLINKS, LINUX_MAX_SYMLINKS + 1] {
            let host = tempfile::tempdir().unwrap();
            let root = host.path().canonicalize().unwrap();
            let mut img = MapImage::new();
            std::fs::create_dir(root.join("d")).unwrap();
            std::fs::write(root.join("d/f"), b"").unwrap();
            img.dir("/d").file("/d/f", 0o644, "");
            for i in 0..n {
                let target = match i + 1 == n {
                    true => "d".to_string(),
                    false => format!("l{}", i + 1),
                };
                std::os::unix::fs::symlink(&target, root.join(format!("l{i}"))).unwrap();
                img.link(&format!("/l{i}"), &target);
            }
            let kernel = std::fs::canonicalize(root.join("l0/f"));
            let ours = resolve(&img, b"/l0/f", true);
            match kernel {
                Ok(real) => {
                    let real = real.strip_prefix(&root).unwrap();
                    let want = format!("/{}", real.display());
                    assert_eq!(ours.unwrap(), want.as_bytes(), "{n} links");
                }
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(40), "{n} links: {e}"); // ELOOP
                    assert!(matches!(ours, Err(BootError::SymlinkLoop(_))), "{n} links");
                }
            }
        }
    }

    #[test]
    fn parents() {
        assert_eq!(parent(b"/a/b"), b"/a");
        assert_eq!(parent(b"/a"), b"/");
        assert_eq!(rooted(b"a//b/./c/"), b"/a/b/c");
        assert_eq!(rooted(b""), b"/");
    }

    fn file(p: &str) -> BootFile {
        BootFile {
            path: p.as_bytes().to_vec(),
            kind: BootFileKind::Regular {
                content: bytes::Bytes::from_static(b"x"),
                mode: 0o755,
            },
        }
    }

    #[test]
    fn place_resolves_symlinked_parents_and_adds_missing_dirs() {
        let mut img = MapImage::new();
        img.dir("/usr").dir("/usr/bin").link("/bin", "usr/bin");
        img.file("/etc", 0o644, "");
        let got = place(
            &img,
            vec![file("/bin/agent"), file("/opt/x/y/tool"), file("/opt/a-b")],
        )
        .unwrap();
        let paths: Vec<String> = got.iter().map(|f| crate::path::display(&f.path)).collect();
        assert_eq!(
            paths,
            [
                "/opt",
                "/opt/a-b",
                "/opt/x",
                "/opt/x/y",
                "/opt/x/y/tool",
                "/usr/bin/agent"
            ]
        );
        let err = place(&img, vec![file("/etc/passwd")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot place /etc/passwd: /etc is not a directory in the image"
        );
    }

    #[test]
    fn place_later_wins_and_files_hide_planned_children() {
        let img = MapImage::new();
        let dir = BootFile {
            path: b"/d".to_vec(),
            kind: BootFileKind::Dir { mode: 0o700 },
        };
        let got = place(&img, vec![dir, file("/d/inner"), file("/d")]).unwrap();
        assert_eq!(got, vec![file("/d")]);
    }
}
