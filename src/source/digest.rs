//! Content digests (`sha256:<hex>`) and a reader that checks one as it streams.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

/// A `sha256:` digest. Other algorithms are refused when parsed: every
/// image tool in use writes sha256, and an unknown one cannot be verified.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// Parses `sha256:` and 64 lowercase hex digits.
    ///
    /// # Errors
    ///
    /// [`DigestError`] for another algorithm or a malformed hex part.
    ///
    /// # Examples
    ///
    /// ```
    /// use initramfs_stream::source::Digest;
    ///
    /// let d = Digest::of(b"");
    /// assert_eq!(Digest::parse(&d.to_string()), Ok(d));
    /// assert!(Digest::parse("md5:00").is_err());
    /// ```
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let shown = || crate::path::escape(s.as_bytes());
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| DigestError::Unsupported(shown()))?;
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(DigestError::Malformed(shown()));
        }
        Ok(Digest {
            hex: hex.to_string(),
        })
    }

    /// The digest of these bytes.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest {
            hex: hex::encode(Sha256::digest(bytes)),
        }
    }

    /// The hex part, without `sha256:`.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

/// Why text is not a digest this crate can verify. The text is kept
/// escaped for display.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    /// An algorithm other than sha256.
    #[error("unsupported digest '{0}' (only sha256 is supported)")]
    Unsupported(String),
    /// `sha256:` not followed by 64 lowercase hex digits.
    #[error("malformed digest '{0}'")]
    Malformed(String),
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

/// Passes bytes through and, at end of stream, fails with `InvalidData`
/// unless they hashed to the expected digest. Nothing read from a blob is
/// trusted before that end: callers must read to EOF.
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Sha256,
    expected: Digest,
    what: String,
    done: bool,
}

impl<R> VerifyingReader<R> {
    /// Verifies `inner` against `expected`; `what` names the blob in errors.
    pub fn new(inner: R, expected: Digest, what: String) -> Self {
        VerifyingReader {
            inner,
            hasher: Sha256::new(),
            expected,
            what,
            done: false,
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for VerifyingReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                if new.is_empty() && !this.done && buf.remaining() > 0 {
                    this.done = true;
                    let got = Digest {
                        hex: hex::encode(std::mem::take(&mut this.hasher).finalize()),
                    };
                    if got != this.expected {
                        let e = super::SourceError::Digest {
                            what: std::mem::take(&mut this.what),
                            expected: this.expected.clone(),
                            got,
                        };
                        return Poll::Ready(Err(e.into_io()));
                    }
                } else {
                    this.hasher.update(new);
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

/// Reads a stream to its end and drops the bytes: what is left of a blob
/// after the part a reader wanted (a tar's trailing blocks, padding) still
/// counts towards its digest, which a `VerifyingReader` checks only there.
/// Returns the bytes read.
pub async fn drain_to_eof<R: AsyncRead + Unpin + ?Sized>(reader: &mut R) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        match reader.read(&mut buf).await? {
            0 => return Ok(total),
            n => total += n as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn verifies_at_eof() {
        let good = Digest::of(b"hello");
        let mut r = VerifyingReader::new(&b"hello"[..], good, "blob".into());
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.unwrap();

        let bad = Digest::of(b"other");
        let mut r = VerifyingReader::new(&b"hello"[..], bad, "blob".into());
        let err = r.read_to_end(&mut Vec::new()).await.unwrap_err();
        assert!(err.to_string().contains("digest mismatch"), "{err}");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        let typed = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<super::super::SourceError>());
        assert!(matches!(
            typed,
            Some(super::super::SourceError::Digest { .. })
        ));
    }

    #[tokio::test]
    async fn draining_reaches_the_digest_check() {
        let data = vec![7u8; 200 * 1024];
        let mut r = VerifyingReader::new(&data[..], Digest::of(&data), "blob".into());
        let mut head = [0u8; 10];
        r.read_exact(&mut head).await.unwrap();
        assert_eq!(drain_to_eof(&mut r).await.unwrap(), data.len() as u64 - 10);

        let mut r = VerifyingReader::new(&data[..], Digest::of(b"other"), "blob".into());
        r.read_exact(&mut head).await.unwrap();
        let err = drain_to_eof(&mut r).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }

    #[test]
    fn parse() {
        assert!(Digest::parse("sha512:ab").is_err());
        assert!(Digest::parse("sha256:xyz").is_err());
        let d = Digest::of(b"");
        assert_eq!(Digest::parse(&d.to_string()).unwrap(), d);
    }
}
