//! File bodies for the content pass, read from several layers at once.
//!
//! Each layer with surviving files gets a producer task that decompresses it
//! and sends the needed bodies, in tar order, through a bounded channel; the
//! task lives as long as its [`BodyStream`]. The
//! writer takes them in a fixed interleaving: up to [`ACTIVE_LAYERS`] layers
//! in turn, about [`QUOTA`] bytes of files from each. The interleaving is a
//! function of the plan alone (file sizes, never timing or thread count), so
//! the archive's bytes do not change, while every core inflates a layer.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::sync::mpsc;

use super::progress::{Pass, Progress};
use super::tasks::{self, Scoped};
use crate::index::FileGroup;
use crate::io::ChannelReader;
use crate::layer::{LayerError, LayerReader};
use crate::source::ImageSource;
use crate::Error;

/// Layers whose bodies are interleaved at any moment.
pub const ACTIVE_LAYERS: usize = 4;
/// Bytes of files taken from one layer before the next layer's turn.
pub const QUOTA: u64 = 1 << 20;
const CHUNK: usize = 64 * 1024;
/// Chunks buffered per layer: 2 MiB, more than a quota, so a producer keeps
/// working while the writer serves the other layers.
const CHANNEL_CHUNKS: usize = 32;

/// The order in which to write `groups` (indexes into it). `groups` must be
/// sorted by content reference, as [`crate::index::Plan::files`] is.
pub fn schedule(groups: &[FileGroup]) -> Vec<usize> {
    let mut layers: Vec<VecDeque<usize>> = Vec::new();
    for (i, g) in groups.iter().enumerate() {
        match layers.last_mut() {
            Some(l) if groups[l[0]].content.layer == g.content.layer => l.push_back(i),
            _ => layers.push(VecDeque::from([i])),
        }
    }
    let mut pending = layers.into_iter();
    let mut active: VecDeque<VecDeque<usize>> = pending.by_ref().take(ACTIVE_LAYERS).collect();
    let mut order = Vec::with_capacity(groups.len());
    while let Some(mut layer) = active.pop_front() {
        let mut taken = 0u64;
        while let Some(i) = layer.pop_front() {
            order.push(i);
            taken += groups[i].size;
            if taken >= QUOTA {
                break;
            }
        }
        if layer.is_empty() {
            if let Some(next) = pending.next() {
                active.push_back(next);
            }
        } else {
            active.push_back(layer);
        }
    }
    order
}

type Message = std::io::Result<Bytes>;

/// Starts a producer for one layer: the bodies of `wanted` (ordinal, size),
/// in ordinal order, then nothing on success or one error.
pub fn spawn_layer(
    source: Arc<ImageSource>,
    layer: u32,
    wanted: Vec<(u32, u64)>,
    progress: Arc<dyn Progress>,
) -> BodyStream {
    let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
    let producer = tasks::spawn(async move {
        if let Err(e) = produce(&source, layer, &wanted, &tx, progress).await {
            let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
        }
    });
    BodyStream {
        bodies: ChannelReader::new(rx),
        _producer: producer,
    }
}

async fn produce(
    source: &ImageSource,
    layer_no: u32,
    wanted: &[(u32, u64)],
    tx: &mpsc::Sender<Message>,
    progress: Arc<dyn Progress>,
) -> Result<(), Error> {
    let blob = source
        .layers
        .get(layer_no as usize)
        .ok_or_else(|| Error::Internal(format!("no layer {layer_no}")))?;
    let reader = super::open_layer(source, blob, Pass::Contents, progress).await?;
    let diff_id = blob
        .digest
        .is_none()
        .then_some(blob.diff_id.as_ref())
        .flatten();
    let mut layer = LayerReader::open(reader, blob.index, diff_id).await?;
    for &(ordinal, size) in wanted {
        let mut body = layer.body(ordinal).await?;
        let mut left = size;
        while left > 0 {
            let mut chunk = BytesMut::zeroed(CHUNK.min(left as usize));
            let n = body
                .read(&mut chunk)
                .await
                .map_err(|e| layer.read_error(e))?;
            if n == 0 {
                return Err(LayerError::Reread {
                    layer: blob.index,
                    what: format!("entry {ordinal} ended {left} bytes early on the second read"),
                }
                .into());
            }
            chunk.truncate(n);
            left -= n as u64;
            if tx.send(Ok(chunk.freeze())).await.is_err() {
                return Ok(()); // the writer stopped; its error is reported
            }
        }
    }
    layer.finish().await?;
    source.layer_done(blob);
    Ok(())
}

/// The concatenated bodies of one layer's wanted files, as a reader.
/// Dropping it stops the producer.
pub struct BodyStream {
    bodies: ChannelReader,
    _producer: Scoped<()>,
}

impl BodyStream {
    /// Waits for the producer's end: its digest checks ran over the whole
    /// layer. Extra data or an error fails the archive.
    pub async fn finish(mut self) -> Result<(), Error> {
        match self.bodies.close().await? {
            true => Ok(()),
            false => Err(Error::Internal(
                "a layer gave more data than planned".into(),
            )),
        }
    }
}

impl AsyncRead for BodyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.bodies).poll_read(cx, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::Meta;
    use crate::index::ContentRef;

    fn group(layer: u32, ordinal: u32, size: u64) -> FileGroup {
        FileGroup {
            content: ContentRef { layer, ordinal },
            size,
            meta: Meta::default(),
            names: vec![format!("{layer}-{ordinal}").into_bytes()],
        }
    }

    #[test]
    fn interleaves_by_quota_and_keeps_layer_order() {
        let mut groups = Vec::new();
        for layer in 0..6 {
            for ordinal in 0..5 {
                groups.push(group(layer, ordinal, QUOTA / 2));
            }
        }
        let order = schedule(&groups);
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, (0..groups.len()).collect::<Vec<_>>());
        // Within a layer, tar order is kept (the producer reads front to back).
        for layer in 0..6 {
            let ords: Vec<u32> = order
                .iter()
                .map(|&i| &groups[i])
                .filter(|g| g.content.layer == layer)
                .map(|g| g.content.ordinal)
                .collect();
            assert_eq!(ords, vec![0, 1, 2, 3, 4]);
        }
        // Two half-quota files per turn, first four layers in turn.
        let first: Vec<u32> = order[..8]
            .iter()
            .map(|&i| groups[i].content.layer)
            .collect();
        assert_eq!(first, vec![0, 0, 1, 1, 2, 2, 3, 3]);
        // Never more than ACTIVE_LAYERS layers started and unfinished.
        let mut open = std::collections::HashSet::new();
        let mut left: std::collections::HashMap<u32, usize> = (0..6).map(|l| (l, 5)).collect();
        for &i in &order {
            let l = groups[i].content.layer;
            open.insert(l);
            assert!(open.len() <= ACTIVE_LAYERS);
            let n = left.get_mut(&l).unwrap();
            *n -= 1;
            if *n == 0 {
                open.remove(&l);
            }
        }
    }
}
