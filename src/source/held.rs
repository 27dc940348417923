//! An image archive read once, front to back, from something that cannot
//! seek: a pipe, a FIFO, `/dev/stdin`, a Docker Engine's export stream.
//!
//! A tar can only be read in the order its producer wrote it, and
//! `docker save` writes `manifest.json` after the layers, so which member
//! is which layer is known only at the end. Every member is therefore
//! held in memory as it passes, cut into 1 MiB pieces, each compressed
//! with zstd level 1 (or kept as is when that does not make it smaller:
//! already-compressed layers). `docker save` layers are plain tar, which
//! shrinks to a third or less; both passes then decompress the pieces
//! they read. Nothing is written to disk.
//!
//! Invariants: the bytes held never exceed the memory limit (pieces being
//! compressed aside: at most 4 MiB). A member that would go past it is
//! dropped as it streams by; the archive then either
//! fails with a message that names the limit (a pipe cannot be read
//! again), or, for a source that can be asked again, remembers the member
//! as "elsewhere" and streams it anew on each open. Links between members
//! resolve to the member they name, as for archives read in place.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::StreamExt;
use hashbrown::HashMap;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, ReadBuf};

use super::store::{resolve_links, BlobReader};
use super::SourceError;

/// Bytes per held piece: big enough for zstd to find repeats, small enough
/// that a reader holds little decompressed at a time.
const PIECE: usize = 1 << 20;
/// zstd level for held pieces: the fastest that still shrinks plain tar
/// two to four times.
const LEVEL: i32 = 1;
/// Pieces compressed at once on the blocking pool.
const IN_FLIGHT: usize = 4;

/// A piece of a member: zstd-compressed, or stored as read.
#[derive(Clone)]
enum Piece {
    Zstd { data: Bytes, len: usize },
    Raw(Bytes),
}

impl Piece {
    fn held(&self) -> usize {
        match self {
            Piece::Zstd { data, .. } | Piece::Raw(data) => data.len(),
        }
    }

    fn compress(raw: Vec<u8>) -> std::io::Result<Piece> {
        let mut packed = zstd::bulk::compress(&raw, LEVEL)?;
        // The buffer was sized for the worst case; keep only what is used.
        packed.shrink_to_fit();
        Ok(if packed.len() < raw.len() {
            Piece::Zstd {
                len: raw.len(),
                data: packed.into(),
            }
        } else {
            Piece::Raw(raw.into())
        })
    }
}

/// Where a member's bytes are.
#[derive(Clone)]
enum Body {
    Held(Arc<[Piece]>),
    /// Past the memory limit: streamed again from the source on each open.
    Elsewhere,
}

#[derive(Clone)]
struct Member {
    /// The member's name in the archive (links resolve to their target's).
    name: String,
    size: u64,
    body: Body,
}

/// A source that can be read again, for members that did not fit.
pub trait Reread: Send + Sync {
    /// A stream of the member `name` (its name in the archive), read anew.
    fn open(&self, name: &str, size: u64) -> Result<BlobReader, SourceError>;
}

/// The members of an archive read once, held in memory.
pub struct HeldArchive {
    what: String,
    members: HashMap<String, Member>,
    again: Option<Box<dyn Reread>>,
    held: u64,
}

impl HeldArchive {
    /// Reads the whole tar from `input`, holding up to `limit` bytes.
    /// Without `again`, going past the limit is an error; with it, members
    /// past the limit are read again from there.
    pub async fn read<R: AsyncRead + Unpin + Send>(
        what: String,
        input: R,
        limit: u64,
        again: Option<Box<dyn Reread>>,
    ) -> Result<HeldArchive, SourceError> {
        let io = |e: std::io::Error| SourceError::io(&what, e);
        let mut input = tokio::io::BufReader::with_capacity(256 * 1024, input);
        let head = input.fill_buf().await.map_err(io)?;
        if head.starts_with(&[0x1f, 0x8b]) || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            return Err(SourceError::new(format!(
                "{what}: archive is compressed; decompress it first (image archives are plain tar)"
            )));
        }
        if head.is_empty() {
            return Err(SourceError::new(format!("{what}: the stream is empty")));
        }
        let mut archive = tokio_tar::Archive::new(input);
        let mut entries = archive.entries().map_err(io)?;
        let mut members: HashMap<String, Member> = HashMap::new();
        let mut links = Vec::new();
        let mut held: u64 = 0;
        while let Some(entry) = entries.next().await {
            let mut entry = entry.map_err(io)?;
            let name =
                super::store::normalize(&String::from_utf8_lossy(&entry.path_bytes().map_err(io)?));
            let kind = entry.header().entry_type();
            if kind.is_hard_link() || kind.is_symlink() {
                if let Ok(Some(target)) = entry.link_name_bytes() {
                    let target = String::from_utf8_lossy(&target).into_owned();
                    links.push((name, target, kind.is_symlink()));
                }
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            let size = entry.effective_size();
            let mut pieces = Vec::new();
            let mut pending = std::collections::VecDeque::new();
            let mut fits = true;
            loop {
                let mut raw = Vec::with_capacity(PIECE);
                let n = (&mut entry)
                    .take(PIECE as u64)
                    .read_to_end(&mut raw)
                    .await
                    .map_err(io)?;
                if n > 0 && fits {
                    pending.push_back(tokio::task::spawn_blocking(move || Piece::compress(raw)));
                }
                while pending.len() >= IN_FLIGHT || (n == 0 && !pending.is_empty()) {
                    let Some(job) = pending.pop_front() else {
                        break;
                    };
                    let piece = job
                        .await
                        .map_err(|e| SourceError::Internal(format!("{what}: {e}")))?
                        .map_err(io)?;
                    if !fits {
                        continue;
                    }
                    held += piece.held() as u64;
                    pieces.push(piece);
                    if held > limit {
                        if again.is_none() {
                            return Err(SourceError::MemoryLimit { what, limit });
                        }
                        // Dropped now, read again when needed.
                        fits = false;
                        held -= pieces.iter().map(|p| p.held() as u64).sum::<u64>();
                        pieces = Vec::new();
                    }
                }
                if n == 0 {
                    break;
                }
            }
            let body = if fits {
                Body::Held(pieces.into())
            } else {
                Body::Elsewhere
            };
            members.insert(name.clone(), Member { name, size, body });
        }
        resolve_links(&mut members, links);
        Ok(HeldArchive {
            what,
            members,
            again,
            held,
        })
    }

    /// Bytes of memory the held pieces take.
    pub fn held_bytes(&self) -> u64 {
        self.held
    }

    pub fn describe(&self, name: &str) -> String {
        format!("{}:{}", self.what, crate::path::escape(name.as_bytes()))
    }

    pub fn exists(&self, name: &str) -> bool {
        self.members.contains_key(&super::store::normalize(name))
    }

    pub fn open(&self, name: &str) -> Result<(BlobReader, u64), SourceError> {
        let member = self
            .members
            .get(&super::store::normalize(name))
            .ok_or_else(|| {
                SourceError::new(format!(
                    "{}: no member '{}'",
                    self.what,
                    crate::path::escape(name.as_bytes())
                ))
            })?;
        match (&member.body, &self.again) {
            (Body::Held(pieces), _) => Ok((
                Box::new(PieceReader {
                    pieces: Arc::clone(pieces),
                    next: 0,
                    current: Bytes::new(),
                }),
                member.size,
            )),
            (Body::Elsewhere, Some(again)) => {
                Ok((again.open(&member.name, member.size)?, member.size))
            }
            (Body::Elsewhere, None) => Err(SourceError::Internal(format!(
                "{}: member '{}' was not kept",
                self.what,
                crate::path::escape(name.as_bytes())
            ))),
        }
    }
}

/// Reads held pieces in order, decompressing one at a time.
struct PieceReader {
    pieces: Arc<[Piece]>,
    next: usize,
    current: Bytes,
}

impl AsyncRead for PieceReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        while self.current.is_empty() {
            let Some(piece) = self.pieces.get(self.next).cloned() else {
                return Poll::Ready(Ok(()));
            };
            self.next += 1;
            self.current = match piece {
                Piece::Raw(data) => data,
                Piece::Zstd { data, len } => zstd::bulk::decompress(&data, len)?.into(),
            };
        }
        let n = self.current.len().min(buf.remaining());
        buf.put_slice(&self.current.split_to(n));
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data) in members {
            let mut h = [0u8; 512];
            h[..name.len()].copy_from_slice(name.as_bytes());
            h[100..107].copy_from_slice(b"0000644");
            h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
            h[136..147].copy_from_slice(b"00000000000");
            h[156] = b'0';
            h[257..263].copy_from_slice(b"ustar\0");
            h[263..265].copy_from_slice(b"00");
            h[148..156].copy_from_slice(b"        ");
            let sum: u32 = h.iter().map(|&b| b as u32).sum();
            h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
            out.extend_from_slice(&h);
            out.extend_from_slice(data);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
        out.resize(out.len() + 1024, 0);
        out
    }

    #[tokio::test]
    async fn holds_members_compressed_and_reads_them_back() {
        let text: Vec<u8> = (0..3 * PIECE + 17).map(|i| (i % 251) as u8 / 8).collect();
        let noise: Vec<u8> = (0..PIECE as u32 + 5)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let tar = tar_of(&[("a/layer.tar", text.clone()), ("b", noise.clone())]);
        let held = HeldArchive::read("test".into(), &tar[..], 1 << 30, None)
            .await
            .unwrap();
        assert!(held.held_bytes() < (text.len() + noise.len()) as u64 / 2 + PIECE as u64);
        for (name, want) in [("./a//layer.tar", &text), ("b", &noise)] {
            let (mut r, size) = held.open(name).unwrap();
            let mut got = Vec::new();
            r.read_to_end(&mut got).await.unwrap();
            assert_eq!(size, want.len() as u64);
            assert!(got == *want, "{name} differs");
        }
    }

    #[tokio::test]
    async fn a_pipe_past_the_limit_fails() {
        let tar = tar_of(&[("big", vec![7u8; 4 * PIECE])]);
        match HeldArchive::read("pipe".into(), &tar[..], 10, None).await {
            Err(SourceError::MemoryLimit { what, limit }) => {
                assert_eq!((what.as_str(), limit), ("pipe", 10))
            }
            Err(e) => panic!("another error: {e}"),
            Ok(_) => panic!("held past the limit"),
        }
    }
}
