//! A channel of byte chunks read as one stream: how a producer task (a
//! download, a layer being inflated) hands its bytes to a reader elsewhere
//! with a bounded buffer in between.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

pub struct ChannelReader {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl ChannelReader {
    pub fn new(rx: mpsc::Receiver<std::io::Result<Bytes>>) -> Self {
        ChannelReader {
            rx,
            current: Bytes::new(),
        }
    }

    /// Waits for the producer to close the channel. `Ok(true)` when it
    /// closed cleanly with nothing left unread, `Ok(false)` when data
    /// remained, the producer's error otherwise.
    pub async fn close(&mut self) -> std::io::Result<bool> {
        match self.rx.recv().await {
            None => Ok(self.current.is_empty()),
            Some(Err(e)) => Err(e),
            Some(Ok(_)) => Ok(false),
        }
    }
}

impl AsyncRead for ChannelReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        while self.current.is_empty() {
            match self.rx.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(Some(Ok(bytes))) => self.current = bytes,
            }
        }
        let n = self.current.len().min(buf.remaining());
        let chunk = self.current.split_to(n);
        buf.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}
