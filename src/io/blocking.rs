//! Plain blocking I/O behind the async traits, for local files and stdout.
//!
//! tokio's own file and stdout types hand every read and write to a
//! blocking thread pool; for page-cache reads of a few hundred KiB that hop
//! costs more than the read (it showed as a fifth of all CPU time). Reading
//! a local file or writing to stdout directly on the worker thread blocks it
//! only as long as the kernel copy (or the pipe's consumer) takes.
//!
//! Such a read never waits, so a task reading a whole layer would never
//! give its worker back: every read spends from tokio's cooperative budget
//! and, once it is spent, returns `Pending` (waking itself at once). The
//! task then yields to the others on its worker, and an aborted task stops
//! there instead of at the end of the file.

use std::io::{Read, Write};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::task::coop;

/// Wraps a blocking reader or writer (a `std::fs::File`, `std::io::Stdout`).
#[derive(Debug)]
pub struct BlockingIo<T>(pub T);

impl<T: Read + Unpin> AsyncRead for BlockingIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let budget = ready!(coop::poll_proceed(cx));
        budget.made_progress();
        let this = self.get_mut();
        loop {
            match this.0.read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl<T: Write + Unpin> AsyncWrite for BlockingIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let budget = ready!(coop::poll_proceed(cx));
        budget.made_progress();
        let this = self.get_mut();
        loop {
            match this.0.write(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(self.get_mut().0.flush())
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}
