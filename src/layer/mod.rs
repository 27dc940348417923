//! Layer reading: a blob's bytes, decompressed by their magic number, as a
//! stream of tar entries read as Go's archive/tar reads them (the reader
//! behind containerd and umoci): `normalize` re-emits each logical entry
//! as canonical ustar + PAX before the tar crate sees it.
//!
//! [`scan_layer`] reads headers only (bodies are skipped) and returns one
//! [`LayerEntry`] per tar entry, numbered by its ordinal in the layer. The
//! content pass reopens the blob with [`LayerReader`] and finds bodies again
//! by the same ordinals.
//!
//! Failures are [`LayerError`]s, told apart by type, never by message
//! text: the codec and the tar reader pass errors along as `io::Error`s,
//! and a `Fault` inside one says whose it is (the blob's, with the
//! source's own error kept; the codec's; a bound's; an entry's). An error
//! with no fault is the tar reader's: truncation by its `ErrorKind`, else
//! a format error after the last entry read.

mod decompress;
mod normalize;

use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt};

pub use decompress::Compression;
pub(crate) use decompress::{Decompressor, OpenError};

use decompress::{BlobErrors, Fault};

use crate::fs::{Kind, Meta};
use crate::source::{drain_to_eof, BlobReader, Digest, SourceError, VerifyingReader};

/// One tar entry's header: its raw path (not yet normalised), kind and
/// metadata, and its ordinal within the layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEntry {
    /// The name as the tar stores it (the index normalises it).
    pub path: Vec<u8>,
    /// What it is; a hardlink names its target.
    pub kind: Kind,
    /// Permission bits, owner and time.
    pub meta: Meta,
    /// Its position among the layer's entries, from 0.
    pub ordinal: u32,
}

/// One extended attribute of one entry, from a PAX `SCHILY.xattr.` or
/// `LIBARCHIVE.xattr.` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryXattr {
    /// The [`LayerEntry::ordinal`] of the entry that carries it.
    pub ordinal: u32,
    /// The attribute's name (`security.capability`), as bytes.
    pub name: Vec<u8>,
    /// Its value, as bytes.
    pub value: Vec<u8>,
}

/// The headers of one layer.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct LayerHeaders {
    /// Every entry, in tar order.
    pub entries: Vec<LayerEntry>,
    /// Extended attributes, by the ordinal of the entry that carries them
    /// (newc cannot store them; the boot stage can apply them in the guest).
    pub xattrs: Vec<EntryXattr>,
    /// The compression the bytes turned out to have.
    pub compression: Option<Compression>,
    /// Bodies of the regular files named in [`ScanLimits::capture`], by ordinal.
    pub captured: Vec<(u32, Vec<u8>)>,
}

/// A failure to read a layer, by culprit. Every message names the layer
/// (a blob's error names it, or its blob, itself); bytes of the image are
/// escaped. Messages name problems, not options: a front end maps the
/// bounds to its own.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayerError {
    /// The layer's stored bytes could not be read or verified: a download
    /// that failed, a digest that does not match, a memory bound.
    #[error("{source}")]
    Blob {
        /// The layer's number in the image, from 0 at the bottom.
        layer: usize,
        /// The source's own error, which names the layer or its blob.
        #[source]
        source: SourceError,
    },
    /// The bytes start as a compression this crate does not read.
    #[error("layer {layer}: {format}-compressed layers are not supported")]
    UnsupportedCompression {
        /// The layer's number in the image, from 0 at the bottom.
        layer: usize,
        /// The compression's name.
        format: &'static str,
    },
    /// The media type names a compression, and the bytes are neither that,
    /// nor another one, nor a tar archive.
    #[error(
        "layer {layer}: the media type says {declared}, but the data is neither gzip nor zstd, \
         nor a tar archive"
    )]
    NotDeclared {
        /// The layer's number in the image, from 0 at the bottom.
        layer: usize,
        /// The compression the media type names.
        declared: Compression,
    },
    /// The codec refused the data.
    #[error("layer {layer}: corrupt or truncated {codec} data: {source}")]
    Decode {
        /// The layer's number in the image, from 0 at the bottom.
        layer: usize,
        /// The compression the bytes start as.
        codec: Compression,
        /// The codec's error, its kind kept.
        #[source]
        source: std::io::Error,
    },
    /// The tar data ends inside a header or an entry, after the entry
    /// `after` (a raw name) or before the first one.
    #[error(
        "layer {layer}: tar data ends early {} (truncated layer?): {}",
        at(after.as_deref()),
        sanitize(&source.to_string())
    )]
    Truncated {
        /// The layer's number in the image, from 0 at the bottom.
        layer: usize,
        /// The raw name of the last entry read, if any.
        after: Option<Vec<u8>>,
        /// The tar reader's error, its kind kept.
        source: std::io::Error,
    },
    /// The tar format is broken after the entry `after` (a raw name), or
    /// before the first one.
    #[error(
        "layer {layer}: invalid tar {}: {}",
        at(after.as_deref()),
        sanitize(&source.to_string())
    )]
    Tar {
        /// The layer's number in the image, from 0 at the bottom.
        layer: usize,
        /// The raw name of the last entry read, if any.
        after: Option<Vec<u8>>,
        /// The tar reader's error, its kind kept.
        source: std::io::Error,
    },
    /// An entry, by its raw name, that the reader refuses.
    #[error("layer {layer}: {}: {reason}", short(path))]
    Entry {
        /// The layer's number in the image, from 0 at the bottom.
        layer: usize,
        /// The entry's raw name.
        path: Vec<u8>,
        /// What is wrong with it, image bytes escaped.
        reason: String,
    },
    /// More entries than the caller's bound.
    #[error("layer {layer}: too many entries (more than {limit})")]
    TooManyEntries {
        /// The layer's number in the image, from 0 at the bottom.
        layer: usize,
        /// The bound on entries per layer.
        limit: usize,
    },
    /// More entries than ordinals can number.
    #[error("layer {layer}: more than 2^32 entries")]
    OrdinalOverflow {
        /// The layer's number in the image, from 0 at the bottom.
        layer: usize,
    },
    /// The tar, expanded, is larger than the caller's bound on a layer.
    #[error("layer {layer}: decompresses to more than {limit} bytes")]
    TooLarge {
        /// The layer's number in the image, from 0 at the bottom.
        layer: usize,
        /// The bound, in bytes.
        limit: u64,
    },
    /// One entry has more tar metadata than [`MAX_METADATA`].
    #[error("layer {layer}: {}", metadata_message(*limit))]
    Metadata {
        /// The layer's number in the image, from 0 at the bottom.
        layer: usize,
        /// The bound, in bytes.
        limit: u64,
    },
    /// The second read of a layer does not hold what the first one did.
    #[error("layer {layer}: {what}")]
    Reread {
        /// The layer's number in the image, from 0 at the bottom.
        layer: usize,
        /// What differs.
        what: String,
    },
    /// A broken assumption of this crate, not of the image.
    #[error("layer {layer}: internal error: {what}")]
    Internal {
        /// The layer's number in the image, from 0 at the bottom.
        layer: usize,
        /// The assumption that broke.
        what: &'static str,
    },
}

/// Where a tar stream broke: after the entry named, or before the first.
fn at(after: Option<&[u8]>) -> String {
    match after {
        Some(p) => format!("after the entry {}", short(p)),
        None => "at its first entry".to_string(),
    }
}

fn metadata_message(limit: u64) -> String {
    format!(
        "an entry has more than {limit} bytes of tar metadata \
         (PAX records, GNU long names or sparse maps)"
    )
}

/// The source's error behind a blob's I/O error; an error the source did
/// not type is named by the layer.
fn blob_error(layer: usize, e: std::io::Error) -> LayerError {
    let source = match decompress::take_inner::<SourceError>(e) {
        Ok(source) => source,
        Err(e) => SourceError::io(format_args!("layer {layer}"), e),
    };
    LayerError::Blob { layer, source }
}

/// An error of the tar stream, by its culprit: the blob, the codec, a
/// bound, an entry, or the tar format after the entry `after`.
fn stream_error(layer: usize, e: std::io::Error, after: Option<&[u8]>) -> LayerError {
    let e = match Fault::take(e) {
        Ok(fault) => {
            return match fault {
                Fault::Blob(e) => blob_error(layer, e),
                Fault::Decode { codec, source } => LayerError::Decode {
                    layer,
                    codec,
                    source,
                },
                Fault::TooLarge { limit } => LayerError::TooLarge { layer, limit },
                Fault::Metadata => LayerError::Metadata {
                    layer,
                    limit: MAX_METADATA,
                },
                Fault::Entry { path, reason } => LayerError::Entry {
                    layer,
                    path,
                    reason,
                },
            }
        }
        Err(e) => e,
    };
    let after = after.map(<[u8]>::to_vec);
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        LayerError::Truncated {
            layer,
            after,
            source: e,
        }
    } else {
        LayerError::Tar {
            layer,
            after,
            source: e,
        }
    }
}

/// A message from a parser that may quote hostile bytes: control
/// characters escaped (no terminal escapes, one line), length bounded.
/// Not [`crate::path::escape`]: the text is already a message, and bytes
/// it quotes went through that function once (a backslash escaped again
/// would read as another name).
pub(crate) fn sanitize(s: &str) -> String {
    const MAX: usize = 300;
    let mut out = String::new();
    for c in s.chars() {
        if out.len() >= MAX {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A path for messages, rooted, escaped and cut to a readable length.
fn short(path: &[u8]) -> String {
    const MAX: usize = 200;
    let shown = crate::path::display(&path[..path.len().min(MAX)]);
    if path.len() > MAX {
        format!("{shown}... ({} bytes)", path.len())
    } else {
        shown
    }
}

/// Bytes of tar metadata (PAX records, GNU long names and link names, sparse
/// maps) one entry may have. The tar reader holds them in memory, so a
/// larger claim is refused before it is read.
pub const MAX_METADATA: u64 = 1 << 20;

/// Bounds on what one layer may contain, and which small files to keep.
#[derive(Debug, Clone, Copy)]
pub struct ScanLimits {
    /// Entries a layer may hold.
    pub max_entries: usize,
    /// Bytes of uncompressed tar a layer may hold (compression bombs stop here).
    pub max_tar_bytes: u64,
    /// Absolute paths whose bodies (up to `capture_limit` bytes) are kept in
    /// [`LayerHeaders::captured`]; the boot stage reads /etc/passwd this way
    /// without a third pass over the layers.
    pub capture: &'static [&'static [u8]],
    /// Bytes kept of each captured body at most.
    pub capture_limit: u64,
    /// The compression the layer's media type names, for the message when
    /// the bytes are neither that nor anything else readable.
    pub declared: Option<Compression>,
}

impl ScanLimits {
    /// These limits for a layer of this media type.
    pub fn for_media_type(self, media_type: &str) -> ScanLimits {
        let declared = if media_type.ends_with("gzip") {
            Some(Compression::Gzip)
        } else if media_type.ends_with("zstd") {
            Some(Compression::Zstd)
        } else {
            None
        };
        ScanLimits { declared, ..self }
    }
}

/// A layer's decompressed tar stream, checked against the layer's diff_id
/// when one is given.
pub(crate) type TarStream = Box<dyn AsyncRead + Send + Unpin>;

/// Opens the tar inside a blob, detecting its compression from the bytes,
/// and reads it as Go's archive/tar does (see `normalize`); `limit` bounds
/// the bytes of tar read and of (expanded) tar returned.
pub(crate) async fn open_tar(
    blob: BlobReader,
    layer: usize,
    diff_id: Option<&Digest>,
    limit: u64,
) -> Result<(TarStream, Compression), LayerError> {
    let decompressor = Decompressor::new(blob).await.map_err(|e| match e {
        OpenError::Read(e) => stream_error(layer, e, None),
        OpenError::Unsupported(format) => LayerError::UnsupportedCompression { layer, format },
    })?;
    let compression = decompressor.compression();
    let stream: TarStream = match diff_id {
        Some(d) => Box::new(BlobErrors(VerifyingReader::new(
            decompressor,
            d.clone(),
            format!("layer {layer} (diff_id {d})"),
        ))),
        None => Box::new(decompressor),
    };
    Ok((normalize::normalize(stream, limit), compression))
}

/// Reads all headers of a layer. The stream is read to its end so that
/// digest checks run over every byte. `layer` numbers the layer in
/// messages; `diff_id`, when given, is checked against the tar's bytes.
///
/// # Errors
///
/// A [`LayerError`] naming the culprit: the blob (its source error kept),
/// the codec, a bound of `limits`, an entry, or the tar format.
///
/// # Examples
///
/// ```
/// use initramfs_stream::fs::Kind;
/// use initramfs_stream::layer::{scan_layer, ScanLimits};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let mut tar = tokio_tar::Builder::new(Vec::new());
/// let mut header = tokio_tar::Header::new_ustar();
/// header.set_size(3);
/// tar.append_data(&mut header, "etc/hostname", &b"vm\n"[..]).await?;
/// let tar = tar.into_inner().await?;
///
/// let limits = ScanLimits {
///     max_entries: 1000,
///     max_tar_bytes: 1 << 20,
///     capture: &[b"/etc/hostname"],
///     capture_limit: 4096,
///     declared: None,
/// };
/// let headers = scan_layer(Box::new(std::io::Cursor::new(tar)), 0, None, limits).await?;
/// assert_eq!(headers.entries[0].path, b"etc/hostname");
/// assert_eq!(headers.entries[0].kind, Kind::File { size: 3 });
/// assert_eq!(headers.captured, [(0, b"vm\n".to_vec())]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
pub async fn scan_layer(
    blob: BlobReader,
    layer: usize,
    diff_id: Option<&Digest>,
    limits: ScanLimits,
) -> Result<LayerHeaders, LayerError> {
    let (stream, compression) = open_tar(blob, layer, diff_id, limits.max_tar_bytes).await?;
    let mut archive = tokio_tar::Archive::new(stream);
    let mut headers = LayerHeaders {
        compression: Some(compression),
        ..LayerHeaders::default()
    };
    {
        let mut entries = archive
            .entries()
            .map_err(|e| stream_error(layer, e, None))?;
        let mut ordinal: u32 = 0;
        let mut last: Option<Vec<u8>> = None;
        while let Some(entry) = entries.next().await {
            let mut entry = entry.map_err(|e| match limits.declared {
                Some(declared) if compression == Compression::None && ordinal == 0 => {
                    LayerError::NotDeclared { layer, declared }
                }
                _ => stream_error(layer, e, last.as_deref()),
            })?;
            if headers.entries.len() >= limits.max_entries {
                return Err(LayerError::TooManyEntries {
                    layer,
                    limit: limits.max_entries,
                });
            }
            let header = read_header(&mut entry, ordinal, layer, last.as_deref()).await?;
            if let Some((e, xattrs)) = header {
                if let Kind::File { size } = e.kind {
                    if size <= limits.capture_limit && is_captured(&e.path, limits.capture) {
                        let body = read_body(&mut entry, limits.capture_limit)
                            .await
                            .map_err(|err| stream_error(layer, err, Some(&e.path)))?;
                        headers.captured.push((ordinal, body));
                    }
                }
                last = Some(e.path.clone());
                headers.entries.push(e);
                headers.xattrs.extend(xattrs);
            }
            ordinal = ordinal
                .checked_add(1)
                .ok_or(LayerError::OrdinalOverflow { layer })?;
        }
    }
    let mut rest = archive.into_inner().map_err(|_| LayerError::Internal {
        layer,
        what: "tar reader still in use",
    })?;
    // Trailing zero blocks and any padding count towards the digest.
    drain_to_eof(&mut rest)
        .await
        .map_err(|e| stream_error(layer, e, None))?;
    Ok(headers)
}

type TarEntry = tokio_tar::Entry<tokio_tar::Archive<TarStream>>;

/// What an entry's name may not hold: the kernel reads newc names as C
/// strings, so a NUL would make the archive name another path than the
/// one this tool resolved; and no Linux path is longer than PATH_MAX.
fn check_name(what: &str, name: &[u8]) -> Result<(), String> {
    if name.contains(&0) {
        return Err(format!("{what} contains a NUL byte"));
    }
    if name.len() > crate::path::MAX_NAME_LEN {
        return Err(format!(
            "{what} is {} bytes, the kernel skips names and link targets over {}",
            name.len(),
            crate::path::MAX_NAME_LEN
        ));
    }
    Ok(())
}

/// An id that must fit newc's 32-bit field: a larger one would wrap
/// (2^32 would become root).
fn id32(what: &str, v: u64) -> Result<u32, String> {
    u32::try_from(v).map_err(|_| format!("{what} {v} does not fit in 32 bits"))
}

/// One entry's header as a [`LayerEntry`] and the extended attributes its
/// PAX records carry; `None` for a global PAX header, which is no file.
/// `after` is the entry before, for an error of the tar format.
async fn read_header(
    entry: &mut TarEntry,
    ordinal: u32,
    layer: usize,
    after: Option<&[u8]>,
) -> Result<Option<(LayerEntry, Vec<EntryXattr>)>, LayerError> {
    let raw_path = entry
        .path_bytes()
        .map_err(|e| stream_error(layer, e, after))?
        .into_owned();
    let fail = |reason: String| LayerError::Entry {
        layer,
        path: raw_path.clone(),
        reason,
    };
    let path = entry_name(&raw_path).map_err(fail)?;
    let mut meta = ustar_meta(entry.header()).map_err(fail)?;
    let Some(kind) = entry_kind(entry).map_err(fail)? else {
        return Ok(None);
    };
    // umoci refuses to change the root's type; dropping the entry would
    // lose it silently.
    if path.is_empty() && kind != Kind::Dir {
        return Err(fail("only a directory can stand at the root".into()));
    }
    let xattrs = apply_pax(entry, ordinal, &mut meta).await.map_err(fail)?;
    let entry = LayerEntry {
        path,
        kind,
        meta,
        ordinal,
    };
    Ok(Some((entry, xattrs)))
}

/// "what: error", the reason for a header field that cannot be read.
fn field(what: &str) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// The entry's name, normalised, as the index stores it: the index reads
/// components only, and a raw name of `a/../` repeated could be any length.
fn entry_name(raw_path: &[u8]) -> Result<Vec<u8>, String> {
    if raw_path.contains(&0) {
        return Err("name contains a NUL byte".into());
    }
    let path = crate::path::join(&crate::path::components(raw_path));
    check_name("name", &path)?;
    Ok(path)
}

/// Mode, ids and time from the ustar fields; PAX records may override them.
fn ustar_meta(header: &tokio_tar::Header) -> Result<Meta, String> {
    Ok(Meta {
        mode: header.mode().map_err(field("mode"))? & 0o7777,
        uid: id32("uid", header.uid().map_err(field("uid"))?)?,
        gid: id32("gid", header.gid().map_err(field("gid"))?)?,
        mtime: header.mtime().map_err(field("mtime"))?,
    })
}

/// What the entry is; `None` for a global PAX header.
fn entry_kind(entry: &TarEntry) -> Result<Option<Kind>, String> {
    let header = entry.header();
    let kind_byte = header.entry_type();
    let link_target = || -> Result<Vec<u8>, String> {
        let target = entry
            .link_name_bytes()
            .map_err(field("link name"))?
            .map(|c| c.into_owned())
            .ok_or_else(|| "link without a target".to_string())?;
        check_name("link target", &target)?;
        Ok(target)
    };
    use tokio_tar::EntryType as T;
    Ok(Some(match kind_byte {
        T::Regular | T::Continuous | T::GNUSparse => Kind::File {
            size: entry.effective_size(),
        },
        T::Directory => Kind::Dir,
        T::Symlink => Kind::Symlink {
            target: link_target()?,
        },
        T::Link => Kind::Hardlink {
            target: link_target()?,
        },
        T::Char | T::Block => {
            let major = header
                .device_major()
                .map_err(field("device major"))?
                .unwrap_or(0);
            let minor = header
                .device_minor()
                .map_err(field("device minor"))?
                .unwrap_or(0);
            if kind_byte == T::Char {
                Kind::CharDevice { major, minor }
            } else {
                Kind::BlockDevice { major, minor }
            }
        }
        T::Fifo => Kind::Fifo,
        // Global PAX headers carry no file; the reader applies nothing of them.
        T::XGlobalHeader => return Ok(None),
        // GNU tar extracts unknown types as files, umoci refuses them: a
        // file list that depends on the reader is refused.
        other => {
            return Err(format!(
                "unsupported tar entry type '{}'",
                std::ascii::escape_default(other.as_byte())
            ))
        }
    }))
}

/// Applies the PAX records that override ustar fields (large ids, precise
/// times) to `meta`, and returns the xattrs they carry.
async fn apply_pax(
    entry: &mut TarEntry,
    ordinal: u32,
    meta: &mut Meta,
) -> Result<Vec<EntryXattr>, String> {
    let mut xattrs = Vec::new();
    let Some(pax) = entry.pax_extensions().await.map_err(field("pax"))? else {
        return Ok(xattrs);
    };
    for ext in pax {
        let ext = ext.map_err(field("pax record"))?;
        let key = ext.key_bytes();
        let value = ext.value_bytes();
        let number = || {
            std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.split('.').next())
                .and_then(|v| v.parse::<u64>().ok())
        };
        match key {
            b"uid" => {
                if let Some(v) = number() {
                    meta.uid = id32("pax uid", v)?;
                }
            }
            b"gid" => {
                if let Some(v) = number() {
                    meta.gid = id32("pax gid", v)?;
                }
            }
            b"mtime" => meta.mtime = number().unwrap_or(meta.mtime),
            k if k.starts_with(b"SCHILY.xattr.") => xattrs.push(EntryXattr {
                ordinal,
                name: k[13..].to_vec(),
                value: value.to_vec(),
            }),
            // libarchive percent-encodes the name and base64-encodes the value.
            k if k.starts_with(b"LIBARCHIVE.xattr.") => {
                xattrs.push(libarchive_xattr(ordinal, &k[17..], value)?)
            }
            _ => {}
        }
    }
    Ok(xattrs)
}

/// A `LIBARCHIVE.xattr.` record: the name percent-encoded, the value base64.
fn libarchive_xattr(ordinal: u32, name: &[u8], value: &[u8]) -> Result<EntryXattr, String> {
    use base64::Engine as _;
    let v = value.trim_ascii_end();
    let unpadded = &v[..v.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1)];
    let value = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(unpadded)
        .map_err(|e| format!("LIBARCHIVE.xattr value: {e}"))?;
    let name = percent_decode(name);
    if name.contains(&0) {
        return Err(format!(
            "xattr name {} contains a NUL byte",
            crate::path::escape(&name)
        ));
    }
    Ok(EntryXattr {
        ordinal,
        name,
        value,
    })
}

/// `%XX` escapes decoded; anything else kept as is.
fn percent_decode(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let hex = s
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (s[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Re-reads a layer for file bodies, by ordinal, in increasing order.
pub struct LayerReader {
    layer: usize,
    entries: tokio_tar::Entries<TarStream>,
    archive: tokio_tar::Archive<TarStream>,
    next_ordinal: u32,
}

impl LayerReader {
    /// Opens a layer's blob again for the content pass.
    ///
    /// # Errors
    ///
    /// The blob's error, or a [`LayerError`] for a compression it cannot
    /// read.
    pub async fn open(
        blob: BlobReader,
        layer: usize,
        diff_id: Option<&Digest>,
    ) -> Result<LayerReader, LayerError> {
        let (stream, _) = open_tar(blob, layer, diff_id, u64::MAX).await?;
        let mut archive = tokio_tar::Archive::new(stream);
        let entries = archive
            .entries()
            .map_err(|e| stream_error(layer, e, None))?;
        Ok(LayerReader {
            layer,
            entries,
            archive,
            next_ordinal: 0,
        })
    }

    /// Skips to the entry with this ordinal and returns it as a reader of its
    /// body. Ordinals must be asked for in increasing order.
    ///
    /// # Errors
    ///
    /// [`LayerError::Reread`] when the layer holds fewer entries than on
    /// the first read, [`LayerError::Internal`] for an ordinal asked for out
    /// of order, or the stream's error.
    pub async fn body(&mut self, ordinal: u32) -> Result<TarEntry, LayerError> {
        loop {
            let entry = self
                .entries
                .next()
                .await
                .ok_or_else(|| LayerError::Reread {
                    layer: self.layer,
                    what: format!("entry {ordinal} vanished on the second read"),
                })?
                .map_err(|e| stream_error(self.layer, e, None))?;
            let this = self.next_ordinal;
            self.next_ordinal = self.next_ordinal.saturating_add(1);
            if this == ordinal {
                return Ok(entry);
            }
            if this > ordinal {
                return Err(LayerError::Internal {
                    layer: self.layer,
                    what: "entries requested out of order",
                });
            }
        }
    }

    /// Reads the rest of the layer so digest checks see every byte.
    ///
    /// # Errors
    ///
    /// The stream's error, a digest mismatch among them.
    pub async fn finish(self) -> Result<(), LayerError> {
        let LayerReader {
            layer,
            mut entries,
            archive,
            ..
        } = self;
        while let Some(entry) = entries.next().await {
            entry.map_err(|e| stream_error(layer, e, None))?;
        }
        drop(entries);
        let mut rest = archive.into_inner().map_err(|_| LayerError::Internal {
            layer,
            what: "tar reader still in use",
        })?;
        drain_to_eof(&mut rest)
            .await
            .map_err(|e| stream_error(layer, e, None))?;
        Ok(())
    }

    /// An error of reading a body this reader returned, as the layer's.
    pub fn read_error(&self, e: std::io::Error) -> LayerError {
        stream_error(self.layer, e, None)
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

/// Hand-made tar headers for unit tests here and in later stages.
#[cfg(test)]
pub(crate) mod test_tar {
    /// One ustar header block: mode 0644, root-owned, mtime 0.
    pub(crate) fn block(name: &[u8], size: u64, kind: u8) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..name.len()].copy_from_slice(name);
        h[100..108].copy_from_slice(b"0000644\0");
        h[108..116].copy_from_slice(b"0000000\0");
        h[116..124].copy_from_slice(b"0000000\0");
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        h[136..148].copy_from_slice(b"00000000000\0");
        h[148..156].copy_from_slice(b"        ");
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::test_tar::block;

    const LIMITS: ScanLimits = ScanLimits {
        max_entries: 1000,
        max_tar_bytes: 1 << 40,
        capture: &[],
        capture_limit: 0,
        declared: None,
    };

    async fn scan(tar: Vec<u8>) -> Result<LayerHeaders, LayerError> {
        scan_layer(Box::new(std::io::Cursor::new(tar)), 0, None, LIMITS).await
    }

    #[tokio::test]
    async fn long_names_past_the_metadata_bound_are_refused() {
        let fits = (MAX_METADATA - 2048) as usize;
        let too_big = (MAX_METADATA + 4096) as usize;
        for (len, ok) in [(fits, true), (too_big, false)] {
            // A long name of about `len` bytes that normalises to "x".
            let mut name = b"a/../".repeat(len / 5);
            name.extend_from_slice(b"/x");
            let mut tar = block(b"././@LongLink", name.len() as u64, b'L');
            tar.extend_from_slice(&name);
            tar.resize(tar.len().next_multiple_of(512), 0);
            tar.extend(block(b"ignored", 0, b'0'));
            tar.extend([0u8; 1024]);
            let got = scan(tar).await;
            if ok {
                let h = got.unwrap();
                assert_eq!(h.entries[0].path, b"x");
            } else {
                let err = got.unwrap_err().to_string();
                assert!(err.contains("tar metadata"), "{err}");
            }
        }
    }

    #[tokio::test]
    async fn the_bound_moves_past_large_bodies() {
        // A body far larger than the metadata bound is skipped, not refused.
        let size = 3 * MAX_METADATA;
        let mut tar = block(b"big", size, b'0');
        tar.resize(tar.len() + size as usize, 7);
        tar.extend(block(b"next", 0, b'0'));
        tar.extend([0u8; 1024]);
        let h = scan(tar).await.unwrap();
        let names: Vec<&[u8]> = h.entries.iter().map(|e| &e.path[..]).collect();
        assert_eq!(names, [&b"big"[..], b"next"]);
    }

    #[tokio::test]
    async fn tar_errors_name_the_entry_before() {
        let mut tar = block(b"first", 0, b'0');
        tar.extend(block(b"cut", 4096, b'0'));
        tar.extend([1u8; 100]);
        let err = scan(tar).await.unwrap_err().to_string();
        assert!(err.contains("after the entry /cut"), "{err}");
        assert!(err.contains("truncated"), "{err}");
    }

    fn names(h: &LayerHeaders) -> Vec<&[u8]> {
        h.entries.iter().map(|e| &e.path[..]).collect()
    }

    #[tokio::test]
    async fn the_archive_ends_as_go_ends_it() {
        // One zero block, then the end of the data: the end.
        let mut tar = block(b"a", 0, b'0');
        tar.extend([0u8; 512]);
        assert_eq!(names(&scan(tar.clone()).await.unwrap()), [&b"a"[..]]);
        // Two zero blocks, then anything: the end, the rest drained.
        let mut two = tar.clone();
        two.extend([0u8; 512]);
        two.extend(block(b"ignored", 0, b'0'));
        assert_eq!(names(&scan(two).await.unwrap()), [&b"a"[..]]);
        // One zero block, then a header: Go refuses it.
        tar.extend(block(b"b", 0, b'0'));
        let err = scan(tar).await.unwrap_err().to_string();
        assert!(err.contains("zero block"), "{err}");
    }

    #[tokio::test]
    async fn a_global_header_drops_what_was_pending_and_is_no_entry() {
        let rec = b"11 path=xy\n";
        let mut pax = block(b"PaxHeader", rec.len() as u64, b'x');
        pax.extend(rec);
        pax.resize(1024, 0);
        let mut global = block(b"GlobalHead", rec.len() as u64, b'g');
        global.extend(rec);
        global.resize(1024, 0);
        let mut tar = pax.clone();
        tar.extend(&global);
        tar.extend(block(b"kept", 0, b'0'));
        // A PAX header with no entry after it is ignored.
        tar.extend(&pax);
        tar.extend([0u8; 1024]);
        let h = scan(tar).await.unwrap();
        assert_eq!(names(&h), [&b"kept"[..]]);
        assert_eq!(h.entries[0].ordinal, 0);
    }

    /// A blob that yields `data`, then fails with `error`.
    fn failing_blob(data: Vec<u8>, error: SourceError) -> BlobReader {
        let fail = futures::stream::iter([Err(error.into_io())]);
        let ok = futures::stream::iter([Ok(bytes::Bytes::from(data))]);
        Box::new(tokio_util::io::StreamReader::new(ok.chain(fail)))
    }

    #[tokio::test]
    async fn a_blob_failing_midway_keeps_the_source_error() {
        let mut tar = block(b"a", 0, b'0');
        tar.extend(block(b"b", 0, b'0'));
        let blob = failing_blob(
            tar,
            SourceError::MemoryLimit {
                what: "docker-archive:-".into(),
                limit: 1024,
            },
        );
        let err = scan_layer(blob, 3, None, LIMITS).await.unwrap_err();
        match &err {
            LayerError::Blob { layer: 3, source } => assert!(
                matches!(source, SourceError::MemoryLimit { limit: 1024, .. }),
                "{source:?}"
            ),
            other => panic!("{other:?}"),
        }
        // The source error stays reachable for front ends.
        let source = std::error::Error::source(&err).unwrap();
        assert!(source.is::<SourceError>(), "{source:?}");
    }

    #[tokio::test]
    async fn a_diff_id_mismatch_is_the_blob_s_digest_error() {
        let mut tar = block(b"a", 0, b'0');
        tar.extend([0u8; 1024]);
        let wrong = Digest::of(b"other");
        let blob: BlobReader = Box::new(std::io::Cursor::new(tar));
        let err = scan_layer(blob, 1, Some(&wrong), LIMITS).await.unwrap_err();
        match &err {
            LayerError::Blob { source, .. } => {
                assert!(matches!(source, SourceError::Digest { .. }), "{source:?}")
            }
            other => panic!("{other:?}"),
        }
        assert!(err.to_string().contains("layer 1 (diff_id"), "{err}");
    }

    #[tokio::test]
    async fn bounds_and_codecs_are_variants_with_their_numbers() {
        let mut tar = block(b"big", 8192, b'0');
        tar.resize(tar.len() + 8192, 7);
        tar.extend([0u8; 1024]);
        let limits = ScanLimits {
            max_tar_bytes: 4096,
            ..LIMITS
        };
        let blob: BlobReader = Box::new(std::io::Cursor::new(tar.clone()));
        let err = scan_layer(blob, 0, None, limits).await.unwrap_err();
        assert!(
            matches!(err, LayerError::TooLarge { limit: 4096, .. }),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "layer 0: decompresses to more than 4096 bytes"
        );

        let limits = ScanLimits {
            max_entries: 0,
            ..LIMITS
        };
        let blob: BlobReader = Box::new(std::io::Cursor::new(tar.clone()));
        let err = scan_layer(blob, 2, None, limits).await.unwrap_err();
        assert!(
            matches!(err, LayerError::TooManyEntries { layer: 2, limit: 0 }),
            "{err:?}"
        );

        // A gzip stream cut in half: the codec's error, its kind kept.
        let mut gz = Vec::new();
        {
            use std::io::Write;
            let mut w = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::fast());
            w.write_all(&tar).unwrap();
            w.finish().unwrap();
        }
        gz.truncate(gz.len() / 2);
        let err = scan(gz).await.unwrap_err();
        match &err {
            LayerError::Decode {
                codec: Compression::Gzip,
                source,
                ..
            } => assert_eq!(source.kind(), std::io::ErrorKind::UnexpectedEof),
            other => panic!("{other:?}"),
        }
        assert!(err
            .to_string()
            .starts_with("layer 0: corrupt or truncated gzip data: "));
    }

    #[tokio::test]
    async fn truncation_is_told_by_kind_and_names_the_entry_before() {
        let mut tar = block(b"first", 0, b'0');
        tar.extend(block(b"cut", 4096, b'0'));
        tar.extend([1u8; 100]);
        let err = scan(tar).await.unwrap_err();
        match &err {
            LayerError::Truncated {
                after: Some(after),
                source,
                ..
            } => {
                assert_eq!(after, b"cut");
                assert_eq!(source.kind(), std::io::ErrorKind::UnexpectedEof);
            }
            other => panic!("{other:?}"),
        }
        assert!(std::error::Error::source(&err).is_some_and(|s| s.is::<std::io::Error>()));
    }

    #[test]
    fn messages_escape_bytes_that_are_not_utf8() {
        assert_eq!(short(b"a\xff\x1bb"), "/a\\xff\\u{1b}b");
        assert_eq!(short("/é".as_bytes()), "/é");
    }
}
