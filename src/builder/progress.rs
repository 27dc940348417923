//! Progress reports from a conversion, for whoever shows them.
//!
//! The library never draws anything: it calls a [`Progress`] that the
//! caller supplies (the command line turns the calls into bars on a
//! terminal). Every method has an empty default, so an implementation
//! picks what it shows. Calls come from several threads at once.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

/// Which read of the layers: the headers (pass 1) or the file bodies
/// (pass 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pass {
    /// Pass 1: tar headers, bodies skipped.
    Headers,
    /// Pass 2: the file bodies that go into the archive.
    Contents,
}

/// Receives what a conversion is doing. Give one to
/// [`InitramfsBuilder::progress`](crate::InitramfsBuilder::progress).
pub trait Progress: Send + Sync {
    /// The image reference is being resolved (manifest, config).
    fn resolving(&self, _image: &str) {}
    /// The image is resolved and has `layers` layers.
    fn resolved(&self, _layers: usize) {}
    /// A read of `layer` starts; `size` is its stored (compressed) size
    /// when the image gives it.
    fn layer_started(&self, _pass: Pass, _layer: usize, _size: Option<u64>) {}
    /// `bytes` more stored bytes of `layer` were read.
    fn layer_read(&self, _pass: Pass, _layer: usize, _bytes: u64) {}
    /// The read of `layer` ended (successfully or not).
    fn layer_finished(&self, _pass: Pass, _layer: usize) {}
    /// The archive is about to be written: `archive_bytes` uncompressed.
    fn writing(&self, _archive_bytes: u64) {}
    /// `bytes` more bytes of output (after compression) were written.
    fn output_written(&self, _bytes: u64) {}
}

/// Reports nothing: the default.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {}

/// A reader that reports the bytes read through it for one layer, and
/// the end of the read when dropped.
pub(crate) struct Reporting<R> {
    inner: R,
    progress: Arc<dyn Progress>,
    pass: Pass,
    layer: usize,
}

impl<R> Reporting<R> {
    pub(crate) fn new(
        inner: R,
        progress: Arc<dyn Progress>,
        pass: Pass,
        layer: usize,
        size: Option<u64>,
    ) -> Self {
        progress.layer_started(pass, layer, size);
        Reporting {
            inner,
            progress,
            pass,
            layer,
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Reporting<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.progress.layer_read(self.pass, self.layer, n as u64);
        }
        poll
    }
}

impl<R> Drop for Reporting<R> {
    fn drop(&mut self) {
        self.progress.layer_finished(self.pass, self.layer);
    }
}

/// A shared [`Progress`], printable for `Debug` derives.
#[derive(Clone)]
pub struct Reporter(pub Arc<dyn Progress>);

impl Default for Reporter {
    fn default() -> Self {
        Reporter(Arc::new(Silent))
    }
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reporter")
    }
}
