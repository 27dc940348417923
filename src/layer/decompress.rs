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

/// A blob's decompressed bytes.
pub enum Decompressor {
    None(BufReader<BlobReader>),
    Gzip(Box<GzipDecoder<BufReader<BlobReader>>>),
    Zstd(Box<ZstdDecoder<BufReader<BlobReader>>>),
}

impl Decompressor {
    pub async fn new(blob: BlobReader) -> Result<Decompressor, String> {
        let mut reader = BufReader::with_capacity(READ_BUFFER, blob);
        let head = reader.fill_buf().await.map_err(|e| e.to_string())?;
        Ok(match head {
            [0x1f, 0x8b, ..] => {
                let mut d = GzipDecoder::new(reader);
                // Layers written by pigz or concatenation hold several members.
                d.multiple_members(true);
                Decompressor::Gzip(Box::new(d))
            }
            [0x28, 0xb5, 0x2f, 0xfd, ..] => {
                let mut d = ZstdDecoder::new(reader);
                d.multiple_members(true);
                Decompressor::Zstd(Box::new(d))
            }
            [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => {
                return Err("xz-compressed layers are not supported".into())
            }
            [b'B', b'Z', b'h', ..] => {
                return Err("bzip2-compressed layers are not supported".into())
            }
            _ => Decompressor::None(reader),
        })
    }

    pub fn compression(&self) -> Compression {
        match self {
            Decompressor::None(_) => Compression::None,
            Decompressor::Gzip(_) => Compression::Gzip,
            Decompressor::Zstd(_) => Compression::Zstd,
        }
    }
}

impl AsyncRead for Decompressor {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Decompressor::None(r) => Pin::new(r).poll_read(cx, buf),
            Decompressor::Gzip(r) => Pin::new(r.as_mut()).poll_read(cx, buf),
            Decompressor::Zstd(r) => Pin::new(r.as_mut()).poll_read(cx, buf),
        }
    }
}
