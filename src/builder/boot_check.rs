//! Runs the boot check ([`crate::boot::check`]) over the final tree,
//! reading the few bodies it asks for from the layers: each round, the
//! layers holding them are read again up to the last wanted entry, and of
//! each wanted body only the ranges the check needs are kept.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::io::AsyncReadExt;

use super::progress::{Pass, Reporter};
use super::{open_layer, Extra, TreeLookup};
use crate::boot::check::{
    self, elf::Arch, elf::Sparse, Contents, Outcome, Report, Request, Subject,
};
use crate::boot::ImageLookup;
use crate::fs::Kind;
use crate::index::{MergeIndex, EXTRA_LAYER};
use crate::layer::LayerReader;
use crate::source::ImageSource;
use crate::{Error, LimitError};

/// Far more rounds than a dependency tree is deep.
const MAX_ROUNDS: usize = 32;
const CHUNK: usize = 64 * 1024;

struct View<'a> {
    tree: TreeLookup<'a>,
}

impl ImageLookup for View<'_> {
    fn entry(&self, path: &[u8]) -> Option<crate::fs::Entry> {
        self.tree.entry(path)
    }
    fn read(&self, path: &[u8]) -> Option<Vec<u8>> {
        self.tree.read(path)
    }
}

impl check::TreeView for View<'_> {
    fn children(&self, dir: &[u8]) -> Vec<Vec<u8>> {
        self.tree.index.children(dir)
    }
}

pub(super) async fn run(
    source: &Arc<ImageSource>,
    index: &MergeIndex,
    captured: &hashbrown::HashMap<crate::index::ContentRef, Vec<u8>>,
    extras: &[Extra],
    subject: Subject<'_>,
) -> Result<Report, Error> {
    let view = View {
        tree: TreeLookup { index, captured },
    };
    let arch = Arch::from_oci(&source.platform().architecture);
    let mut contents = Contents::default();
    for round in 0..MAX_ROUNDS {
        match check::check(subject, arch, &view, &contents)? {
            Outcome::Done(report) => {
                tracing::info!(rounds = round, bytes = contents.held(), "boot check passed");
                return Ok(report);
            }
            Outcome::Need(requests) => {
                tracing::debug!(round, files = requests.len(), "boot check reads");
                read(source, index, extras, requests, &mut contents).await?;
            }
        }
    }
    Err(LimitError::CheckRounds { rounds: MAX_ROUNDS }.into())
}

/// Reads what `requests` ask for into `contents`.
async fn read(
    source: &Arc<ImageSource>,
    index: &MergeIndex,
    extras: &[Extra],
    requests: Vec<Request>,
    contents: &mut Contents,
) -> Result<(), Error> {
    // layer -> ordinal -> (size, requests on that body)
    let mut by_layer: BTreeMap<u32, BTreeMap<u32, (u64, Vec<Request>)>> = BTreeMap::new();
    for req in requests {
        let (content, size) = match index.lookup(&req.path) {
            Some(e) => match (e.content, e.kind) {
                (Some(content), Kind::File { size }) => (content, size),
                _ => {
                    contents.add(req.path, Sparse::whole(Vec::new()));
                    continue;
                }
            },
            // Only files are asked for; anything else reads as empty.
            _ => {
                contents.add(req.path, Sparse::whole(Vec::new()));
                continue;
            }
        };
        if content.layer == EXTRA_LAYER {
            let bytes = extra_bytes(extras, content.ordinal, &req, size).await?;
            contents.add(req.path, bytes);
            continue;
        }
        by_layer
            .entry(content.layer)
            .or_default()
            .entry(content.ordinal)
            .or_insert_with(|| (size, Vec::new()))
            .1
            .push(req);
    }
    for (layer, wanted) in by_layer {
        let blob = source
            .layers
            .get(layer as usize)
            .ok_or_else(|| Error::Internal(format!("no layer {layer}")))?;
        let reader = open_layer(source, blob, Pass::Contents, Reporter::default().0).await?;
        let diff_id = blob
            .digest
            .is_none()
            .then_some(blob.diff_id.as_ref())
            .flatten();
        let mut layer_reader = LayerReader::open(reader, blob.index, diff_id).await?;
        let mut buf = vec![0u8; CHUNK];
        for (ordinal, (size, reqs)) in wanted {
            let mut body = layer_reader.body(ordinal).await?;
            let mut captures: Vec<_> = reqs.iter().map(|r| r.capture(size)).collect();
            while captures.iter().any(|c| c.wants_more()) {
                let n = body
                    .read(&mut buf)
                    .await
                    .map_err(|e| layer_reader.read_error(e))?;
                if n == 0 {
                    break;
                }
                for c in &mut captures {
                    c.feed(&buf[..n]);
                }
            }
            for (req, c) in reqs.into_iter().zip(captures) {
                contents.add(req.path, c.finish());
            }
        }
        // Not read to its end: the content pass checks the layer's digest.
    }
    Ok(())
}

/// A generated or injected file's bytes, as far as the request wants.
async fn extra_bytes(
    extras: &[Extra],
    ordinal: u32,
    req: &Request,
    size: u64,
) -> Result<Sparse, Error> {
    let mut capture = req.capture(size);
    match extras.get(ordinal as usize) {
        Some(Extra::Bytes(b)) => capture.feed(b),
        Some(Extra::Host { path, .. }) => {
            let host_file = |source| Error::HostFile {
                path: path.clone(),
                source,
            };
            let mut file = tokio::fs::File::open(path).await.map_err(host_file)?;
            let mut buf = vec![0u8; CHUNK];
            while capture.wants_more() {
                let n = file.read(&mut buf).await.map_err(host_file)?;
                if n == 0 {
                    break;
                }
                capture.feed(&buf[..n]);
            }
        }
        None => return Err(Error::Internal("generated file out of range".into())),
    }
    Ok(capture.finish())
}
