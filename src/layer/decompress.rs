//! Decompression chosen by magic number, not by media type: registries and
//! tools mislabel layers, the bytes do not lie.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_compression::tokio::bufread::{GzipDecoder, ZstdDecoder};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader, ReadBuf};

use crate::source::BlobReader;

const READ_BUFFER: usize = 256 * 1024;

/// How a layer's bytes are compressed, as their first bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip, one or more members.
    Gzip,
    /// zstd, one or more frames.
    Zstd,
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "tar",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

/// Why a layer's byte stream failed, carried inside the `io::Error` that
/// the codec and the tar reader pass along, so that the layer's error is
/// chosen by type: the blob (missing, digest), the codec, a bound, or a
/// named entry. Tar format errors of the reader itself carry no fault.
#[derive(Debug)]
pub(crate) enum Fault {
    /// Reading or verifying the stored bytes failed; the error is the
    /// source's, usually a `SourceError` inside.
    Blob(std::io::Error),
    /// The codec refused the data.
    Decode {
        codec: Compression,
        source: std::io::Error,
    },
    /// The tar, expanded, is larger than the bound on a layer.
    TooLarge { limit: u64 },
    /// One entry has more tar metadata than [`super::MAX_METADATA`].
    Metadata,
    /// An entry the reader refuses, by its raw name.
    Entry { path: Vec<u8>, reason: String },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Blob(e) => write!(f, "{e}"),
            Fault::Decode { codec, source } => {
                write!(f, "corrupt or truncated {codec} data: {source}")
            }
            Fault::TooLarge { limit } => write!(f, "decompresses to more than {limit} bytes"),
            Fault::Metadata => f.write_str(&super::metadata_message(super::MAX_METADATA)),
            Fault::Entry { path, reason } => write!(f, "{}: {reason}", super::short(path)),
        }
    }
}

impl std::error::Error for Fault {
    /// The blob's own error (a `SourceError` when the source typed it), or
    /// the codec's.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Fault::Blob(e) => Some(match e.get_ref() {
                Some(inner) => inner as &(dyn std::error::Error + 'static),
                None => e as &(dyn std::error::Error + 'static),
            }),
            Fault::Decode { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Fault {
    /// As an I/O error, with the kind of the error it wraps.
    pub(crate) fn into_io(self) -> std::io::Error {
        let kind = match &self {
            Fault::Blob(e) | Fault::Decode { source: e, .. } => e.kind(),
            Fault::Entry { .. } | Fault::Metadata => std::io::ErrorKind::InvalidData,
            Fault::TooLarge { .. } => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, self)
    }

    /// The fault inside `e`, or `e` itself when it carries none.
    pub(crate) fn take(e: std::io::Error) -> Result<Fault, std::io::Error> {
        take_inner::<Fault>(e)
    }
}

/// The error of type `T` that `e` wraps, or `e` unchanged.
pub(crate) fn take_inner<T: std::error::Error + Send + Sync + 'static>(
    e: std::io::Error,
) -> Result<T, std::io::Error> {
    if !e.get_ref().is_some_and(|inner| inner.is::<T>()) {
        return Err(e);
    }
    let kind = e.kind();
    match e.into_inner().map(|inner| inner.downcast::<T>()) {
        Some(Ok(t)) => Ok(*t),
        Some(Err(inner)) => Err(std::io::Error::new(kind, inner)),
        None => Err(std::io::Error::from(kind)),
    }
}

fn is_fault(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Fault>())
}

/// Marks errors of the stored bytes that carry no fault yet as the blob's.
pub(crate) struct BlobErrors<R>(pub R);

impl<R: AsyncRead + Unpin> AsyncRead for BlobErrors<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.get_mut().0).poll_read(cx, buf) {
            Poll::Ready(Err(e)) if !is_fault(&e) => Poll::Ready(Err(Fault::Blob(e).into_io())),
            other => other,
        }
    }
}

type Source = BufReader<BlobErrors<BlobReader>>;

/// Why a blob could not be opened for decompression.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// The first read of the blob failed.
    Read(std::io::Error),
    /// A compression recognised but not read, by name.
    Unsupported(&'static str),
}

/// A blob's decompressed bytes.
pub(crate) struct Decompressor(Codec);

enum Codec {
    None(Source),
    Gzip(Box<GzipDecoder<Source>>),
    Zstd(Box<ZstdDecoder<Source>>),
}

impl Decompressor {
    /// Fails with the blob's error, or with the name of a compression
    /// this crate does not read.
    pub async fn new(blob: BlobReader) -> Result<Decompressor, OpenError> {
        let mut reader = BufReader::with_capacity(READ_BUFFER, BlobErrors(blob));
        let head = reader.fill_buf().await.map_err(OpenError::Read)?;
        Ok(Decompressor(match head {
            [0x1f, 0x8b, ..] => {
                let mut d = GzipDecoder::new(reader);
                // Layers written by pigz or concatenation hold several members.
                d.multiple_members(true);
                Codec::Gzip(Box::new(d))
            }
            // A zstd frame, or a skippable frame (magic 0x184D2A50..5F, as
            // pzstd writes first) before one, as containerd detects it.
            [0x28, 0xb5, 0x2f, 0xfd, ..] | [0x50..=0x5f, 0x2a, 0x4d, 0x18, _, _, _, _, ..] => {
                let mut d = ZstdDecoder::new(reader);
                d.multiple_members(true);
                Codec::Zstd(Box::new(d))
            }
            [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => return Err(OpenError::Unsupported("xz")),
            [b'B', b'Z', b'h', ..] => return Err(OpenError::Unsupported("bzip2")),
            _ => Codec::None(reader),
        }))
    }

    /// The compression the bytes start as.
    pub fn compression(&self) -> Compression {
        match self.0 {
            Codec::None(_) => Compression::None,
            Codec::Gzip(_) => Compression::Gzip,
            Codec::Zstd(_) => Compression::Zstd,
        }
    }
}

impl AsyncRead for Decompressor {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let compression = this.compression();
        let poll = match &mut this.0 {
            Codec::None(r) => Pin::new(r).poll_read(cx, buf),
            Codec::Gzip(r) => Pin::new(r.as_mut()).poll_read(cx, buf),
            Codec::Zstd(r) => Pin::new(r.as_mut()).poll_read(cx, buf),
        };
        match poll {
            // The codec's own errors say what broke, not that it was the
            // compressed data: name the format.
            Poll::Ready(Err(e)) if !is_fault(&e) => Poll::Ready(Err(Fault::Decode {
                codec: compression,
                source: e,
            }
            .into_io())),
            other => other,
        }
    }
}
