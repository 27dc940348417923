//! A synchronous encoder (xz, zstd) run on tokio's blocking pool, so its
//! CPU time and its waits for its own worker threads never hold an async
//! worker.
//!
//! The async side reads the archive and sends it in chunks through a
//! bounded channel; the encoder's output comes back through another and is
//! written to the output. A closed channel ends the other side: a failed
//! output stops the encoder, a failed encoder stops the feed, and dropping
//! the future closes both, so the thread ends at its next chunk.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Bytes read from the archive per chunk.
const CHUNK: usize = 256 * 1024;
/// Chunks buffered in each direction.
const CHUNKS: usize = 4;

/// The archive's chunks as the encoder sees them: an iterator that blocks
/// until the next chunk arrives and ends with the archive.
pub struct Chunks(mpsc::Receiver<Bytes>);

impl Iterator for Chunks {
    type Item = Bytes;
    fn next(&mut self) -> Option<Bytes> {
        self.0.blocking_recv()
    }
}

/// Where the encoder writes: each write is sent to the async side.
pub struct Output(mpsc::Sender<Vec<u8>>);

impl std::io::Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.0
            .blocking_send(buf.to_vec())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Feeds `input` to `encode` on a blocking thread and writes what it
/// produces to `output`, then flushes it.
pub async fn compress<R, W, E>(mut input: R, output: &mut W, encode: E) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    E: FnOnce(Chunks, &mut Output) -> std::io::Result<()> + Send + 'static,
{
    let (archive, chunks) = mpsc::channel(CHUNKS);
    let (encoded, mut produced) = mpsc::channel(CHUNKS);
    let encoder = tokio::task::spawn_blocking(move || encode(Chunks(chunks), &mut Output(encoded)));
    let feed = async move {
        loop {
            let mut buf = BytesMut::zeroed(CHUNK);
            let n = input.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            buf.truncate(n);
            if archive.send(buf.freeze()).await.is_err() {
                return Ok(()); // the encoder stopped; its result says why
            }
        }
    };
    let drain = async move {
        while let Some(chunk) = produced.recv().await {
            output.write_all(&chunk).await?;
        }
        output.flush().await
    };
    tokio::try_join!(feed, drain)?;
    encoder.await.map_err(std::io::Error::other)?
}
