//! Where the files of a local image live: a directory, the members of an
//! uncompressed tar read in place (an index of member offsets, then seeks),
//! or the members of a tar read once and held in memory.

use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

use futures::StreamExt;
use hashbrown::HashMap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt};

use crate::io::BlockingIo;

use super::SourceError;

/// A blob's bytes as they are stored (compressed or not), verified
/// against its digest by the time it reaches end of file.
pub type BlobReader = Box<dyn AsyncRead + Send + Unpin>;

pub enum Store {
    Dir(PathBuf),
    Tar {
        file: PathBuf,
        members: HashMap<String, Member>,
    },
    /// Blobs named `blobs/sha256/HEX`, fetched from elsewhere (a registry).
    Remote(std::sync::Arc<dyn RemoteBlobs>),
    /// A tar that could not seek, held in memory.
    Held(super::held::HeldArchive),
}

/// Blobs that live elsewhere and may be kept in memory between reads.
pub trait RemoteBlobs: Send + Sync {
    fn describe(&self, name: &str) -> String;
    fn exists(&self, name: &str) -> bool;
    /// A stream of the blob and its size.
    fn open(&self, name: &str) -> Result<(BlobReader, u64), SourceError>;
    /// The blob will not be opened again for one of the layers it makes.
    fn release(&self, name: &str);
}

#[derive(Debug, Clone, Copy)]
pub struct Member {
    offset: u64,
    size: u64,
}

impl Store {
    pub fn dir(path: &Path) -> Result<Store, SourceError> {
        if !path.is_dir() {
            return Err(SourceError::new(format!(
                "{}: not a directory",
                path.display()
            )));
        }
        Ok(Store::Dir(path.to_path_buf()))
    }

    /// Indexes the members of an uncompressed tar, reading headers only;
    /// `file` is `path` opened, and `-` stands for stdin.
    pub async fn tar(path: &Path, file: std::fs::File) -> Result<Store, SourceError> {
        // Members are read later by opening the file again.
        let path = if path == Path::new("-") {
            Path::new("/dev/stdin")
        } else {
            path
        };
        let io = |e: std::io::Error| SourceError::io(path.display(), e);
        let mut file = tokio::fs::File::from_std(file);
        let mut magic = [0u8; 6];
        let n = file.read(&mut magic).await.map_err(io)?;
        if n >= 2 && (magic[..2] == [0x1f, 0x8b] || magic[..4] == [0x28, 0xb5, 0x2f, 0xfd]) {
            return Err(SourceError::new(format!(
                "{}: archive is compressed; decompress it first (image archives are plain tar)",
                path.display()
            )));
        }
        file.seek(SeekFrom::Start(0)).await.map_err(io)?;
        let mut archive = tokio_tar::Archive::new(tokio::io::BufReader::new(file));
        let mut entries = archive.entries().map_err(io)?;
        let mut members = HashMap::new();
        let mut links = Vec::new();
        while let Some(entry) = entries.next().await {
            let entry = entry.map_err(io)?;
            let name = normalize(&String::from_utf8_lossy(&entry.path_bytes().map_err(io)?));
            let kind = entry.header().entry_type();
            if kind.is_file() {
                let member = Member {
                    offset: entry.raw_file_position(),
                    size: entry.effective_size(),
                };
                members.insert(name, member);
            } else if kind.is_hard_link() || kind.is_symlink() {
                if let Ok(Some(target)) = entry.link_name_bytes() {
                    let target = String::from_utf8_lossy(&target).into_owned();
                    links.push((name, target, kind.is_symlink()));
                }
            }
        }
        resolve_links(&mut members, links);
        Ok(Store::Tar {
            file: path.to_path_buf(),
            members,
        })
    }

    pub fn describe(&self, name: &str) -> String {
        match self {
            Store::Dir(dir) => dir.join(name).display().to_string(),
            // Member names come from the image.
            Store::Tar { file, .. } => format!("{}:{}", file.display(), super::esc(name)),
            Store::Remote(r) => r.describe(name),
            Store::Held(h) => h.describe(name),
        }
    }

    /// Opens a file of the image and returns it with its size.
    pub async fn open(&self, name: &str) -> Result<(BlobReader, u64), SourceError> {
        match self {
            Store::Dir(dir) => {
                let path = dir.join(name);
                let opened = off_worker(path.clone(), |file| {
                    let size = file.metadata()?.len();
                    Ok(size)
                });
                let (file, size) = opened
                    .await
                    .map_err(|e| SourceError::io(path.display(), e))?;
                Ok((Box::new(BlockingIo(file)), size))
            }
            Store::Tar { file, members } => {
                let member = members.get(&normalize(name)).ok_or_else(|| {
                    SourceError::new(format!(
                        "{}: no member '{}'",
                        file.display(),
                        super::esc(name)
                    ))
                })?;
                let offset = member.offset;
                let opened = off_worker(file.clone(), move |f| f.seek(SeekFrom::Start(offset)));
                let (f, _) = opened
                    .await
                    .map_err(|e| SourceError::io(file.display(), e))?;
                let reader = BlockingIo(f).take(member.size);
                Ok((Box::new(reader), member.size))
            }
            Store::Remote(r) => r.open(name),
            Store::Held(h) => h.open(name),
        }
    }

    pub fn exists(&self, name: &str) -> bool {
        match self {
            Store::Dir(dir) => dir.join(name).is_file(),
            Store::Tar { members, .. } => members.contains_key(&normalize(name)),
            Store::Remote(r) => r.exists(name),
            Store::Held(h) => h.exists(name),
        }
    }

    /// Bytes kept for `name` are no longer needed for one of its layers.
    pub fn release(&self, name: &str) {
        if let Store::Remote(r) = self {
            r.release(name);
        }
    }

    /// Reads a small document (index, manifest, config), refusing large ones.
    pub async fn read_document(&self, name: &str, limit: u64) -> Result<Vec<u8>, SourceError> {
        let (reader, size) = self.open(name).await?;
        if size > limit {
            return Err(SourceError::Document {
                what: self.describe(name),
                reason: format!("{size} bytes is larger than the {limit}-byte limit"),
            });
        }
        let mut buf = Vec::with_capacity(size as usize);
        reader
            .take(limit + 1)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| SourceError::io(self.describe(name), e))?;
        Ok(buf)
    }
}

/// Opens `path` and runs `then` on it on the blocking pool: an open can
/// wait (a FIFO, a slow disk) and must not stall an async worker.
async fn off_worker<T: Send + 'static>(
    path: PathBuf,
    then: impl FnOnce(&mut std::fs::File) -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<(std::fs::File, T)> {
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(path)?;
        let t = then(&mut file)?;
        Ok((file, t))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Gives each link `(name, target, is_symlink)` its target's member.
/// Some `docker save` versions link duplicate layers, and newer ones link
/// the legacy `ID/layer.tar` names to `blobs/sha256/...`.
pub(super) fn resolve_links<M: Clone>(
    members: &mut HashMap<String, M>,
    links: Vec<(String, String, bool)>,
) {
    let links: Vec<(String, String)> = links
        .into_iter()
        .map(|(name, target, symlink)| {
            let target = if symlink {
                join_relative(&name, &target)
            } else {
                normalize(&target)
            };
            (name, target)
        })
        .collect();
    // Chains of links take one round per link followed.
    for _ in 0..8 {
        let mut changed = false;
        for (name, target) in &links {
            if !members.contains_key(name) {
                if let Some(m) = members.get(target).cloned() {
                    members.insert(name.clone(), m);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
}

/// Member names compare without `./` and repeated slashes.
pub(super) fn normalize(name: &str) -> String {
    let mut out = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            p => out.push(p),
        }
    }
    out.join("/")
}

fn join_relative(link: &str, target: &str) -> String {
    if target.starts_with('/') {
        return normalize(target);
    }
    let parent = match normalize(link).rsplit_once('/') {
        Some((dir, _)) => dir.to_string(),
        None => String::new(),
    };
    normalize(&format!("{parent}/{target}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(normalize("./blobs//sha256/ab"), "blobs/sha256/ab");
        assert_eq!(
            join_relative("a/b/layer.tar", "../c/layer.tar"),
            "a/c/layer.tar"
        );
    }
}
