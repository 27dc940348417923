//! Layer reading: a blob's bytes, decompressed by their magic number, as a
//! stream of tar entries.
//!
//! [`scan_layer`] reads headers only (bodies are skipped) and returns one
//! [`LayerEntry`] per tar entry, numbered by its ordinal in the layer. The
//! content pass reopens the blob with [`LayerReader`] and finds bodies again
//! by the same ordinals.

mod decompress;

use std::collections::BTreeSet;

use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt};

pub use decompress::{Compression, Decompressor};

use crate::source::{BlobReader, Digest, VerifyingReader};

/// Permission, ownership and time of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Meta {
    /// Permission bits including setuid, setgid and sticky (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
}

/// What a tar entry is, with what its kind needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File {
        size: u64,
    },
    Dir,
    Symlink {
        target: Vec<u8>,
    },
    /// A hardlink to `target`, a path as it stood when this entry was applied.
    Hardlink {
        target: Vec<u8>,
    },
    CharDevice {
        major: u32,
        minor: u32,
    },
    BlockDevice {
        major: u32,
        minor: u32,
    },
    Fifo,
}

/// One tar entry's header: its raw path (not yet normalised), kind and
/// metadata, and its ordinal within the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEntry {
    pub path: Vec<u8>,
    pub kind: EntryKind,
    pub meta: Meta,
    pub ordinal: u32,
}

/// The headers of one layer.
#[derive(Debug, Default)]
pub struct LayerHeaders {
    pub entries: Vec<LayerEntry>,
    /// Extended attribute names seen (newc cannot carry them).
    pub xattrs: BTreeSet<String>,
    pub compression: Option<Compression>,
    /// Bodies of the regular files named in [`ScanLimits::capture`], by ordinal.
    pub captured: Vec<(u32, Vec<u8>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("layer {layer}: {message}")]
    Malformed { layer: usize, message: String },
    #[error("layer {layer}: too many entries (more than {limit}); raise --max-entries if the image is genuine")]
    TooManyEntries { layer: usize, limit: usize },
}

fn malformed(layer: usize, message: impl std::fmt::Display) -> LayerError {
    LayerError::Malformed {
        layer,
        message: message.to_string(),
    }
}

/// Bounds on what one layer may contain, and which small files to keep.
#[derive(Debug, Clone, Copy)]
pub struct ScanLimits {
    pub max_entries: usize,
    /// Bytes of uncompressed tar a layer may hold (compression bombs stop here).
    pub max_tar_bytes: u64,
    /// Absolute paths whose bodies (up to `capture_limit` bytes) are kept in
    /// [`LayerHeaders::captured`]; the boot stage reads /etc/passwd this way
    /// without a third pass over the layers.
    pub capture: &'static [&'static [u8]],
    pub capture_limit: u64,
}

/// A layer's decompressed tar stream, checked against the layer's diff_id
/// when one is given.
pub type TarStream = Box<dyn AsyncRead + Send + Unpin>;

/// Opens the tar inside a blob, detecting its compression from the bytes.
pub async fn open_tar(
    blob: BlobReader,
    layer: usize,
    diff_id: Option<&Digest>,
) -> Result<(TarStream, Compression), LayerError> {
    let decompressor = Decompressor::new(blob)
        .await
        .map_err(|e| malformed(layer, e))?;
    let compression = decompressor.compression();
    let stream: TarStream = match diff_id {
        Some(d) => Box::new(VerifyingReader::new(
            decompressor,
            d.clone(),
            format!("layer {layer} (diff_id {d})"),
        )),
        None => Box::new(decompressor),
    };
    Ok((stream, compression))
}

/// Reads all headers of a layer. The stream is read to its end so that
/// digest checks run over every byte.
pub async fn scan_layer(
    blob: BlobReader,
    layer: usize,
    diff_id: Option<&Digest>,
    limits: ScanLimits,
) -> Result<LayerHeaders, LayerError> {
    let (stream, compression) = open_tar(blob, layer, diff_id).await?;
    let stream: TarStream = Box::new(BoundedReader {
        inner: stream,
        left: limits.max_tar_bytes,
        limit: limits.max_tar_bytes,
    });
    let mut archive = tokio_tar::Archive::new(stream);
    let mut headers = LayerHeaders {
        compression: Some(compression),
        ..LayerHeaders::default()
    };
    {
        let mut entries = archive.entries().map_err(|e| malformed(layer, e))?;
        let mut ordinal: u32 = 0;
        while let Some(entry) = entries.next().await {
            let mut entry = entry.map_err(|e| malformed(layer, e))?;
            if headers.entries.len() >= limits.max_entries {
                return Err(LayerError::TooManyEntries {
                    layer,
                    limit: limits.max_entries,
                });
            }
            if let Some(e) = read_header(&mut entry, ordinal, layer, &mut headers.xattrs).await? {
                if let EntryKind::File { size } = e.kind {
                    if size <= limits.capture_limit && is_captured(&e.path, limits.capture) {
                        let body = read_body(&mut entry, limits.capture_limit)
                            .await
                            .map_err(|err| malformed(layer, err))?;
                        headers.captured.push((ordinal, body));
                    }
                }
                headers.entries.push(e);
            }
            ordinal = ordinal
                .checked_add(1)
                .ok_or_else(|| malformed(layer, "more than 2^32 entries"))?;
        }
    }
    let mut rest = archive
        .into_inner()
        .map_err(|_| malformed(layer, "tar reader still in use"))?;
    // Trailing zero blocks and any padding count towards the digest.
    tokio::io::copy(&mut rest, &mut tokio::io::sink())
        .await
        .map_err(|e| malformed(layer, e))?;
    Ok(headers)
}

type TarEntry = tokio_tar::Entry<tokio_tar::Archive<TarStream>>;

async fn read_header(
    entry: &mut TarEntry,
    ordinal: u32,
    layer: usize,
    xattrs: &mut BTreeSet<String>,
) -> Result<Option<LayerEntry>, LayerError> {
    let path = entry
        .path_bytes()
        .map_err(|e| malformed(layer, e))?
        .into_owned();
    let name = || String::from_utf8_lossy(&path).into_owned();
    let bad = |what: &str, e: std::io::Error| malformed(layer, format!("{}: {what}: {e}", name()));
    let header = entry.header();
    let kind_byte = header.entry_type();
    let mut meta = Meta {
        mode: header.mode().map_err(|e| bad("mode", e))? & 0o7777,
        uid: header.uid().map_err(|e| bad("uid", e))? as u32,
        gid: header.gid().map_err(|e| bad("gid", e))? as u32,
        mtime: header.mtime().map_err(|e| bad("mtime", e))?,
    };
    let link_target = || -> Result<Vec<u8>, LayerError> {
        entry
            .link_name_bytes()
            .map_err(|e| bad("link name", e))?
            .map(|c| c.into_owned())
            .ok_or_else(|| malformed(layer, format!("{}: link without a target", name())))
    };
    use tokio_tar::EntryType as T;
    let kind = match kind_byte {
        T::Regular | T::Continuous | T::GNUSparse => EntryKind::File {
            size: entry.effective_size(),
        },
        T::Directory => EntryKind::Dir,
        T::Symlink => EntryKind::Symlink {
            target: link_target()?,
        },
        T::Link => EntryKind::Hardlink {
            target: link_target()?,
        },
        T::Char | T::Block => {
            let major = header
                .device_major()
                .map_err(|e| bad("device major", e))?
                .unwrap_or(0);
            let minor = header
                .device_minor()
                .map_err(|e| bad("device minor", e))?
                .unwrap_or(0);
            if kind_byte == T::Char {
                EntryKind::CharDevice { major, minor }
            } else {
                EntryKind::BlockDevice { major, minor }
            }
        }
        T::Fifo => EntryKind::Fifo,
        // Global PAX headers and other metadata-only entries carry no file.
        _ => return Ok(None),
    };

    // PAX records override the ustar fields they name (large ids, precise
    // times) and carry xattrs.
    if let Some(pax) = entry.pax_extensions().await.map_err(|e| bad("pax", e))? {
        for ext in pax {
            let ext = ext.map_err(|e| bad("pax record", e))?;
            let key = ext.key_bytes();
            let value = ext.value_bytes();
            let number = || {
                std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.split('.').next())
                    .and_then(|v| v.parse::<u64>().ok())
            };
            match key {
                b"uid" => meta.uid = number().unwrap_or(meta.uid as u64) as u32,
                b"gid" => meta.gid = number().unwrap_or(meta.gid as u64) as u32,
                b"mtime" => meta.mtime = number().unwrap_or(meta.mtime),
                k if k.starts_with(b"SCHILY.xattr.") => {
                    xattrs.insert(String::from_utf8_lossy(&k[13..]).into_owned());
                }
                k if k.starts_with(b"LIBARCHIVE.xattr.") => {
                    xattrs.insert(String::from_utf8_lossy(&k[17..]).into_owned());
                }
                _ => {}
            }
        }
    }
    Ok(Some(LayerEntry {
        path,
        kind,
        meta,
        ordinal,
    }))
}

/// Re-reads a layer for file bodies, by ordinal, in increasing order.
pub struct LayerReader {
    layer: usize,
    entries: tokio_tar::Entries<TarStream>,
    archive: tokio_tar::Archive<TarStream>,
    next_ordinal: u32,
}

impl LayerReader {
    pub async fn open(
        blob: BlobReader,
        layer: usize,
        diff_id: Option<&Digest>,
    ) -> Result<LayerReader, LayerError> {
        let (stream, _) = open_tar(blob, layer, diff_id).await?;
        let mut archive = tokio_tar::Archive::new(stream);
        let entries = archive.entries().map_err(|e| malformed(layer, e))?;
        Ok(LayerReader {
            layer,
            entries,
            archive,
            next_ordinal: 0,
        })
    }

    /// Skips to the entry with this ordinal and returns it as a reader of its
    /// body. Ordinals must be asked for in increasing order.
    pub async fn body(&mut self, ordinal: u32) -> Result<TarEntry, LayerError> {
        loop {
            let entry = self
                .entries
                .next()
                .await
                .ok_or_else(|| {
                    malformed(
                        self.layer,
                        format!("entry {ordinal} vanished on the second read"),
                    )
                })?
                .map_err(|e| malformed(self.layer, e))?;
            let this = self.next_ordinal;
            self.next_ordinal += 1;
            if this == ordinal {
                return Ok(entry);
            }
            if this > ordinal {
                return Err(malformed(self.layer, "entries requested out of order"));
            }
        }
    }

    /// Reads the rest of the layer so digest checks see every byte.
    pub async fn finish(self) -> Result<(), LayerError> {
        let LayerReader {
            layer,
            mut entries,
            archive,
            ..
        } = self;
        while let Some(entry) = entries.next().await {
            entry.map_err(|e| malformed(layer, e))?;
        }
        drop(entries);
        let mut rest = archive
            .into_inner()
            .map_err(|_| malformed(layer, "tar reader still in use"))?;
        tokio::io::copy(&mut rest, &mut tokio::io::sink())
            .await
            .map_err(|e| malformed(layer, e))?;
        Ok(())
    }
}

/// Fails once more than `limit` bytes have been read.
struct BoundedReader {
    inner: TarStream,
    left: u64,
    limit: u64,
}

impl AsyncRead for BoundedReader {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = std::pin::Pin::new(&mut this.inner).poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(())) = poll {
            let n = (buf.filled().len() - before) as u64;
            if n > this.left {
                return std::task::Poll::Ready(Err(std::io::Error::other(format!(
                    "decompresses to more than {} bytes; raise --max-size if the image is genuine",
                    this.limit
                ))));
            }
            this.left -= n;
        }
        poll
    }
}

fn is_captured(path: &[u8], wanted: &[&[u8]]) -> bool {
    let comps = crate::path::components(path);
    wanted.iter().any(|w| {
        let mut want = w.split(|&b| b == b'/').filter(|c| !c.is_empty());
        comps.iter().all(|c| want.next() == Some(c)) && want.next().is_none()
    })
}

/// Reads a whole small body into memory.
async fn read_body(entry: &mut TarEntry, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    entry.take(limit).read_to_end(&mut out).await?;
    Ok(out)
}
