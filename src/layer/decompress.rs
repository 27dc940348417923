//! Decompression chosen by magic number, not by media type: registries and
//! tools mislabel layers, the bytes do not lie.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_compression::tokio::bufread::{GzipDecoder, ZstdDecoder};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader, ReadBuf};

use crate::source::BlobReader;

const READ_BUFFER: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
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

/// Which stage an I/O error comes from, so that the message names the
/// right culprit: the blob (missing, digest), the codec, or a bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Reading or verifying stored bytes; the message names the layer.
    Blob,
    /// Decompression.
    Decode,
    /// A bound on sizes (--max-size, metadata per entry).
    Limit,
    /// A tar entry the reader refuses; the message names the entry.
    Entry,
}

#[derive(Debug)]
pub(crate) struct StageError {
    pub stage: Stage,
    pub message: String,
}

impl fmt::Display for StageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StageError {}

pub(crate) fn stage_error(stage: Stage, message: String) -> std::io::Error {
    std::io::Error::other(StageError { stage, message })
}

/// The stage an error was tagged with, if any.
pub(crate) fn stage_of(e: &std::io::Error) -> Option<Stage> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<StageError>())
        .map(|s| s.stage)
}

/// Tags errors of `R` that carry no stage yet with `stage`.
pub(crate) struct Tagged<R> {
    pub inner: R,
    pub stage: Stage,
}

impl<R: AsyncRead + Unpin> AsyncRead for Tagged<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Err(e)) if stage_of(&e).is_none() => {
                Poll::Ready(Err(stage_error(this.stage, e.to_string())))
            }
            other => other,
        }
    }
}

type Source = BufReader<Tagged<BlobReader>>;

/// A blob's decompressed bytes.
pub struct Decompressor(Codec);

enum Codec {
    None(Source),
    Gzip(Box<GzipDecoder<Source>>),
    Zstd(Box<ZstdDecoder<Source>>),
}

impl Decompressor {
    pub async fn new(blob: BlobReader) -> Result<Decompressor, String> {
        let blob = Tagged {
            inner: blob,
            stage: Stage::Blob,
        };
        let mut reader = BufReader::with_capacity(READ_BUFFER, blob);
        let head = reader.fill_buf().await.map_err(|e| e.to_string())?;
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
            [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => {
                return Err("xz-compressed layers are not supported".into())
            }
            [b'B', b'Z', b'h', ..] => {
                return Err("bzip2-compressed layers are not supported".into())
            }
            _ => Codec::None(reader),
        }))
    }

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
            Poll::Ready(Err(e)) if stage_of(&e).is_none() => Poll::Ready(Err(stage_error(
                Stage::Decode,
                format!("corrupt or truncated {compression} data: {e}"),
            ))),
            other => other,
        }
    }
}
