//! `InitramfsBuilder`: the stages wired together.

mod bodies;
mod boot_check;
mod exclude;
mod progress;
mod tasks;

pub use exclude::{Excludes, PatternError};
pub use progress::{Pass, Progress, Silent};

#[cfg(test)]
mod tests;

use std::sync::Arc;

use futures::StreamExt;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};

use bytes::Bytes;
use hashbrown::HashMap;

use crate::boot::check::{memory, Report, Subject};
use crate::boot::{self, BootFileKind, BootOptions, ImageLookup};
use crate::cpio::{mode, NewcWriter, Record};
use crate::fs::{Entry, Kind, Meta};
use crate::index::{ContentRef, FileGroup, MergeIndex, Plan, PlanEntry, EXTRA_LAYER};
use crate::layer::{self, LayerEntry, ScanLimits};
use crate::listing::{self, ListEntry};
use crate::output::{self, Codec, Compression};
use crate::source::{BlobReader, ImageReference, ImageSource, LayerBlob, Platform, RunConfig};
use crate::{human_bytes, Error, LimitError};

use progress::{Reporter, Reporting};

/// Default bound on the number of paths, far above any real image.
pub const DEFAULT_MAX_ENTRIES: usize = 10_000_000;
/// Default bound on the archive's size and on any one layer's uncompressed
/// tar: 32 GiB, far above what an initramfs can boot.
pub const DEFAULT_MAX_SIZE: u64 = 32 << 30;

/// How entries' mtimes are set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Mtimes {
    /// As the image has them.
    #[default]
    Keep,
    /// No mtime above this one (`tar --clamp-mtime`, SOURCE_DATE_EPOCH).
    Clamp(u64),
    /// Every entry gets this one.
    Fixed(u64),
}

impl Mtimes {
    fn apply(self, meta: &mut Meta) {
        match self {
            Mtimes::Keep => {}
            Mtimes::Clamp(max) => meta.mtime = meta.mtime.min(max),
            Mtimes::Fixed(t) => meta.mtime = t,
        }
    }
}

/// Configures a conversion: which image, which platform, which compression.
///
/// [`prepare`](InitramfsBuilder::prepare) reads the image's headers and plans
/// the archive; [`PreparedImage::write_to`] streams it out.
///
/// # Examples
///
/// An OCI layout holding one layer with one file, converted without a boot
/// stage: the archive is the image's filesystem and nothing else.
///
/// ```
/// use initramfs_stream::{Codec, Compression, ImageReference, InitramfsBuilder, Platform};
/// # use initramfs_stream::source::Digest;
/// # fn blob(dir: &std::path::Path, bytes: &[u8]) -> std::io::Result<(Digest, usize)> {
/// #     let d = Digest::of(bytes);
/// #     std::fs::write(dir.join("blobs/sha256").join(d.hex()), bytes)?;
/// #     Ok((d, bytes.len()))
/// # }
///
/// # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
/// # let dir = std::env::temp_dir().join(format!("builder-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(dir.join("blobs/sha256"))?;
/// # let mut tar = tokio_tar::Builder::new(Vec::new());
/// # let mut header = tokio_tar::Header::new_ustar();
/// # header.set_size(6);
/// # header.set_mode(0o755);
/// # tar.append_data(&mut header, "hello", &b"hello\n"[..]).await?;
/// # let layer = tar.into_inner().await?;
/// # let (layer, layer_size) = blob(&dir, &layer)?;
/// # let config = format!(r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{layer}"]}}}}"#);
/// # let (config, config_size) = blob(&dir, config.as_bytes())?;
/// # let manifest = format!(r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{config_size}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":{layer_size}}}]}}"#);
/// # let (manifest, manifest_size) = blob(&dir, manifest.as_bytes())?;
/// # std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)?;
/// # std::fs::write(dir.join("index.json"), format!(r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{manifest}","size":{manifest_size}}}]}}"#))?;
/// // `dir` holds an OCI image layout.
/// let image = ImageReference::parse(&format!("oci:{}", dir.display()))?;
/// let prepared = InitramfsBuilder::new(image)
///     .platform(Platform::parse("linux/amd64")?)
///     .compression(Compression::new(Codec::Zstd, Some(3)).expect("a zstd level"))
///     .boot(None)
///     .prepare()
///     .await?;
/// let names: Vec<_> = prepared.list().into_iter().map(|e| e.path).collect();
/// assert_eq!(names, [b"/hello"]);
///
/// let mut archive = Vec::new();
/// let summary = prepared.write_to(&mut archive).await?;
/// assert_eq!(summary.output_bytes, archive.len() as u64);
/// assert_eq!(archive[..4], [0x28, 0xb5, 0x2f, 0xfd]); // a zstd frame
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct InitramfsBuilder {
    reference: ImageReference,
    platform: Option<Platform>,
    compression: Compression,
    max_entries: usize,
    max_size: u64,
    jobs: usize,
    boot: Option<BootOptions>,
    mtime: u64,
    mtimes: Mtimes,
    excludes: Option<Excludes>,
    progress: Reporter,
    check: bool,
    kernel_footprint: Option<u64>,
    guest_memory: Option<u64>,
}

impl InitramfsBuilder {
    /// A conversion of `reference` with the defaults: the host's platform,
    /// no compression, a boot stage that adds `/init` (the image's own, or
    /// one for its config), the boot check on, and all cores.
    pub fn new(reference: ImageReference) -> InitramfsBuilder {
        InitramfsBuilder {
            reference,
            platform: None,
            compression: Compression::NONE,
            max_entries: DEFAULT_MAX_ENTRIES,
            max_size: DEFAULT_MAX_SIZE,
            jobs: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            boot: Some(BootOptions::default()),
            mtime: 0,
            mtimes: Mtimes::Keep,
            excludes: None,
            progress: Reporter::default(),
            check: true,
            kernel_footprint: None,
            guest_memory: None,
        }
    }

    /// Whether to check, before writing, that the command `/init` will run
    /// can run (see [`crate::boot::check`]). On by default.
    pub fn check(mut self, check: bool) -> Self {
        self.check = check;
        self
    }

    /// Memory the guest kernel keeps for itself, for the guest memory
    /// estimate (see [`crate::boot::check::memory`]); by default the one
    /// measured for the image's architecture.
    pub fn kernel_footprint(mut self, bytes: u64) -> Self {
        self.kernel_footprint = Some(bytes);
        self
    }

    /// The guest kernel's constants for `source`'s architecture, with the
    /// footprint the caller set.
    fn guest_kernel(&self, source: &ImageSource) -> memory::Kernel {
        let mut kernel = memory::Kernel::for_architecture(&source.platform().architecture);
        if let Some(bytes) = self.kernel_footprint {
            kernel.footprint = bytes;
        }
        kernel
    }

    /// Refuse an archive that needs more guest memory than this.
    pub fn guest_memory(mut self, bytes: Option<u64>) -> Self {
        self.guest_memory = bytes;
        self
    }

    /// Whether mtimes are kept, clamped or fixed; applies to every entry,
    /// generated ones included.
    pub fn mtimes(mut self, mtimes: Mtimes) -> Self {
        self.mtimes = mtimes;
        self
    }

    /// Paths of the image to leave out, with everything below them. They
    /// are dropped from the tree before the boot stage looks at it, so
    /// `--init` and `--inject` files are never excluded.
    pub fn excludes(mut self, excludes: Excludes) -> Self {
        self.excludes = (!excludes.is_empty()).then_some(excludes);
        self
    }

    /// Where to report progress (default: nowhere).
    pub fn progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = Reporter(progress);
        self
    }

    /// What the boot stage adds (/init, boot essentials, injected files).
    /// `None` writes exactly the image's filesystem.
    pub fn boot(mut self, boot: Option<BootOptions>) -> Self {
        self.boot = boot;
        self
    }

    /// The mtime of generated and injected entries (e.g. SOURCE_DATE_EPOCH).
    pub fn generated_mtime(mut self, mtime: u64) -> Self {
        self.mtime = mtime;
        self
    }

    /// The platform to pick from a multi-platform index (default: the host's).
    pub fn platform(mut self, platform: Platform) -> Self {
        self.platform = Some(platform);
        self
    }

    /// How to compress the archive (default: not at all).
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// Refuse images with more paths than this.
    pub fn max_entries(mut self, max: usize) -> Self {
        self.max_entries = max.max(1);
        self
    }

    /// Refuse to write an archive larger than this (uncompressed), or to
    /// read a layer that decompresses to more (a compression bomb).
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = bytes;
        self
    }

    /// Threads for reading layers and for compression (default: all cores).
    /// The output is the same for any value.
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }

    /// Resolves the image, reads every layer's headers and plans the
    /// archive. Nothing is written; every check that can fail before the
    /// first byte has run.
    ///
    /// # Errors
    ///
    /// [`Error::Source`] when the image cannot be found, fetched or verified;
    /// [`Error::Layer`] and [`Error::Index`] for layers that are not valid
    /// tar or cannot be applied; [`Error::Boot`] and [`Error::Check`] when
    /// the image cannot be made to boot; [`Error::Limit`] when a bound set
    /// here is passed; [`Error::Cpio`] for an entry newc cannot carry.
    pub async fn prepare(self) -> Result<PreparedImage, Error> {
        let progress = self.progress.0.clone();
        let source = self.resolve(&progress).await?;
        let Scanned {
            mut index,
            xattrs,
            captured,
        } = self.scan_layers(&source, &progress).await?;
        if let Some(excludes) = &self.excludes {
            let removed = index.exclude(|path, is_dir| excludes.matches(path, is_dir));
            tracing::info!(patterns = excludes.len(), paths = removed, "excluded");
        }
        let xattrs = final_xattrs(&index, xattrs);
        let (index, captured, added) = self
            .add_boot_files(&source, index, captured, xattrs)
            .await?;
        let boot_check = self
            .check_boot(&source, &index, &captured, &added.extras)
            .await?;
        let kernel = self.guest_kernel(&source);
        let planned = self.plan(&index, kernel)?;
        Ok(PreparedImage {
            source,
            plan: planned.plan,
            extras: added.extras,
            compression: self.compression,
            jobs: self.jobs,
            warnings: added.warnings,
            archive_size: planned.archive_size,
            progress,
            boot_check,
            tree: planned.tree,
            kernel,
            guest_memory: self.guest_memory,
        })
    }

    async fn resolve(&self, progress: &Arc<dyn Progress>) -> Result<Arc<ImageSource>, Error> {
        progress.resolving(&self.reference.to_string());
        tracing::info!(image = %self.reference, "resolving");
        let source =
            Arc::new(ImageSource::open(self.reference.clone(), self.platform.as_ref()).await?);
        progress.resolved(source.layers.len());
        tracing::info!(
            digest = %source.image_digest().map(|d| d.to_string()).unwrap_or_default(),
            platform = %source.platform(),
            layers = source.layers.len(),
            "resolved"
        );
        Ok(source)
    }

    /// The header pass: layers are scanned concurrently and applied to the
    /// index in order as they arrive.
    async fn scan_layers(
        &self,
        source: &Arc<ImageSource>,
        progress: &Arc<dyn Progress>,
    ) -> Result<Scanned, Error> {
        let limits = ScanLimits {
            max_entries: self.max_entries,
            max_tar_bytes: self.max_size,
            capture: boot::FILES_READ,
            capture_limit: boot::MAX_READ as u64,
            declared: None,
        };
        let mut scanned = Scanned {
            index: MergeIndex::new(self.max_entries),
            xattrs: Vec::new(),
            captured: HashMap::new(),
        };
        // Dropping the stream (on an error) aborts the scans in flight.
        let mut scans = futures::stream::iter(source.layers.clone())
            .map(|blob| spawn_scan(Arc::clone(source), blob, limits, Arc::clone(progress)))
            .buffered(self.jobs);
        let mut layer_no = 0u32;
        while let Some(scan) = scans.next().await {
            scanned.apply(layer_no, scan??)?;
            layer_no += 1;
        }
        Ok(scanned)
    }

    /// The boot stage: plans its files and adds them to the tree. The plan
    /// reads the host (`--inject` directories, `--init FILE`), so it runs on
    /// the blocking pool with the tree moved there and back.
    async fn add_boot_files(
        &self,
        source: &ImageSource,
        mut index: MergeIndex,
        captured: HashMap<ContentRef, Vec<u8>>,
        xattrs: Vec<boot::FileXattr>,
    ) -> Result<(MergeIndex, HashMap<ContentRef, Vec<u8>>, BootAdded), Error> {
        let Some(options) = &self.boot else {
            let added = BootAdded {
                extras: Vec::new(),
                warnings: boot::dropped_xattrs(&xattrs)
                    .map(boot::Note::Text)
                    .into_iter()
                    .collect(),
            };
            return Ok((index, captured, added));
        };
        let platform = source.platform();
        let image = boot::BootImage {
            config: source.run_config(),
            architecture: platform.architecture,
            variant: platform.variant,
            xattrs,
        };
        let (options, mtime) = (options.clone(), self.mtime);
        let (index, captured, added) = tokio::task::spawn_blocking(move || {
            let added = apply_boot_plan(&options, &image, &mut index, &captured, mtime);
            (index, captured, added)
        })
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))?;
        Ok((index, captured, added?))
    }

    /// The boot check, when asked for and there is something to check.
    async fn check_boot(
        &self,
        source: &Arc<ImageSource>,
        index: &MergeIndex,
        captured: &HashMap<ContentRef, Vec<u8>>,
        extras: &[Extra],
    ) -> Result<Option<Report>, Error> {
        let (true, Some(options)) = (self.check, &self.boot) else {
            return Ok(None);
        };
        let config = source.run_config();
        match check_subject(options, index, extras, &config) {
            Some(subject) => Ok(Some(
                boot_check::run(source, index, captured, extras, subject).await?,
            )),
            None => Ok(None),
        }
    }

    /// The archive's plan, checked against the format's limits and the
    /// caller's bounds.
    fn plan(&self, index: &MergeIndex, kernel: memory::Kernel) -> Result<Planned, Error> {
        let mut plan = index.plan();
        apply_mtimes(&mut plan, self.mtimes);
        let archive_size = check_plan(&plan)?;
        let tree = tmpfs_tree(&plan);
        if let Some(limit) = self.guest_memory {
            // Compressed, the initrd's size is known only once written: the
            // least it can be decides now, its real size after writing.
            let least = match self.compression.codec() {
                Codec::None => archive_size,
                _ => 0,
            };
            check_guest_memory(tree, least, kernel, limit)?;
        }
        if archive_size > self.max_size {
            return Err(LimitError::ArchiveSize {
                size: archive_size,
                limit: self.max_size,
            }
            .into());
        }
        tracing::info!(
            dirs = plan.dirs.len(),
            others = plan.others.len(),
            files = plan.empty_files.len() + plan.files.len(),
            bytes = archive_size,
            "planned"
        );
        Ok(Planned {
            plan,
            archive_size,
            tree,
        })
    }
}

/// What the header pass found.
struct Scanned {
    index: MergeIndex,
    /// (path, xattr) of the entries that carry one, checked against the
    /// final tree once every layer is applied.
    xattrs: Vec<(Vec<u8>, ContentRef, layer::EntryXattr)>,
    /// The bodies the boot stage reads (see [`boot::FILES_READ`]).
    captured: HashMap<ContentRef, Vec<u8>>,
}

impl Scanned {
    fn apply(&mut self, layer_no: u32, headers: layer::LayerHeaders) -> Result<(), Error> {
        tracing::info!(
            layer = layer_no,
            entries = headers.entries.len(),
            "headers read"
        );
        self.index.apply_layer(layer_no, &headers.entries)?;
        for x in headers.xattrs {
            let at = headers
                .entries
                .binary_search_by_key(&x.ordinal, |e| e.ordinal);
            if let Ok(i) = at {
                let content = ContentRef {
                    layer: layer_no,
                    ordinal: x.ordinal,
                };
                self.xattrs
                    .push((headers.entries[i].path.clone(), content, x));
            }
        }
        for (ordinal, body) in headers.captured {
            let at = ContentRef {
                layer: layer_no,
                ordinal,
            };
            self.captured.insert(at, body);
        }
        Ok(())
    }
}

/// Reads one layer's headers in a task of its own.
fn spawn_scan(
    source: Arc<ImageSource>,
    blob: LayerBlob,
    limits: ScanLimits,
    progress: Arc<dyn Progress>,
) -> tasks::Scoped<Result<layer::LayerHeaders, Error>> {
    tasks::spawn(async move {
        let reader = open_layer(&source, &blob, Pass::Headers, progress).await?;
        // The blob digest covers the bytes; check the diff_id only when
        // there is no blob digest (docker-archive).
        let diff_id = blob
            .digest
            .is_none()
            .then_some(blob.diff_id.as_ref())
            .flatten();
        let limits = limits.for_media_type(&blob.media_type);
        Ok(layer::scan_layer(reader, blob.index, diff_id, limits).await?)
    })
}

/// What the boot stage adds: the generated and injected files' contents
/// (by ordinal in [`EXTRA_LAYER`]) and its notes.
struct BootAdded {
    extras: Vec<Extra>,
    warnings: Vec<boot::Note>,
}

/// Plans the boot stage's files and applies them to `index` as
/// [`EXTRA_LAYER`]. Blocking: the plan walks `--inject` directories.
fn apply_boot_plan(
    options: &BootOptions,
    image: &boot::BootImage,
    index: &mut MergeIndex,
    captured: &HashMap<ContentRef, Vec<u8>>,
    mtime: u64,
) -> Result<BootAdded, Error> {
    let lookup = TreeLookup { index, captured };
    let plan = boot::plan(options, image, &lookup)?;
    let mut extras = Vec::new();
    for file in plan.files {
        let ordinal = extras.len() as u32;
        let Entry { kind, meta } = file.entry();
        match file.kind {
            BootFileKind::Regular { content, .. } => extras.push(Extra::Bytes(content)),
            BootFileKind::HostFile { path, size, .. } => extras.push(Extra::Host { path, size }),
            BootFileKind::Dir { .. }
            | BootFileKind::Symlink { .. }
            | BootFileKind::CharDev { .. } => {}
        }
        let entry = LayerEntry {
            path: file.path,
            kind,
            meta: Meta { mtime, ..meta },
            ordinal,
        };
        index.apply(EXTRA_LAYER, &entry)?;
    }
    Ok(BootAdded {
        extras,
        warnings: plan.notes,
    })
}

/// The archive's plan with what was learnt checking it.
struct Planned {
    plan: Plan,
    archive_size: u64,
    tree: memory::Tree,
}

/// What `/init` will run, when there is something to check: the image's
/// command under the tool's own `/init` (the static program or the sh
/// script, both generated content), else `/init` itself.
fn check_subject<'a>(
    options: &BootOptions,
    index: &MergeIndex,
    extras: &[Extra],
    config: &'a RunConfig,
) -> Option<Subject<'a>> {
    if options.init == boot::InitChoice::Keep {
        return None;
    }
    let generated = match index.lookup(b"init").and_then(|e| e.content) {
        Some(content) => {
            content.layer == EXTRA_LAYER
                && matches!(extras.get(content.ordinal as usize), Some(Extra::Bytes(_)))
        }
        _ => false,
    };
    Some(if generated {
        Subject::Command(config)
    } else {
        Subject::Init
    })
}

/// The archive's files as the guest's tmpfs will account them.
fn tmpfs_tree(plan: &Plan) -> memory::Tree {
    let mut tree = memory::Tree::default();
    for e in plan.dirs.iter().chain(&plan.others) {
        tree.entries += 1;
        if let Kind::Symlink { target } = &e.kind {
            tree.add_symlink(target.len());
        }
    }
    for g in plan.empty_files.iter().chain(&plan.files) {
        tree.entries += 1;
        tree.add_file(g.size);
    }
    tree
}

fn check_guest_memory(
    tree: memory::Tree,
    initrd: u64,
    kernel: memory::Kernel,
    limit: u64,
) -> Result<u64, Error> {
    let needed = memory::guest_memory(tree, initrd, kernel);
    if needed > limit {
        return Err(LimitError::GuestMemory {
            needed,
            files: tree.bytes,
            initrd,
            limit,
        }
        .into());
    }
    Ok(needed)
}

/// An image whose archive is planned and ready to be written.
pub struct PreparedImage {
    source: Arc<ImageSource>,
    plan: Plan,
    extras: Vec<Extra>,
    compression: Compression,
    jobs: usize,
    warnings: Vec<boot::Note>,
    archive_size: u64,
    progress: Arc<dyn Progress>,
    boot_check: Option<Report>,
    tree: memory::Tree,
    kernel: memory::Kernel,
    guest_memory: Option<u64>,
}

/// What a conversion wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// The manifest's digest, else the config's (see
    /// [`ImageSource::image_digest`]).
    pub image_digest: Option<String>,
    /// The platform the image's config declares.
    pub platform: String,
    /// Archive entries, the trailer not counted.
    pub entries: u64,
    /// Bytes of the uncompressed archive.
    pub archive_bytes: u64,
    /// How the output is compressed.
    pub codec: Codec,
    /// Bytes written to the output (after compression).
    pub output_bytes: u64,
    /// SHA-256 of the bytes written, in hex.
    pub sha256: String,
    /// The smallest guest memory that boots the output (see
    /// [`crate::boot::check::memory`]).
    pub guest_memory_bytes: u64,
    /// What the boot check found; `None` when it did not run.
    pub check: Option<Report>,
}

impl Summary {
    /// One line for a person: what was converted and what came out.
    pub fn line(&self, elapsed: std::time::Duration) -> String {
        let compressed = match self.codec {
            Codec::None => "not compressed".to_string(),
            codec => format!("{} {codec}", human_bytes(self.output_bytes)),
        };
        let checked = match &self.check {
            Some(r) => format!(", checked {}", r.line()),
            None => String::new(),
        };
        format!(
            "image {} ({}): {} entries, {} uncompressed, {compressed}, boots in {} of guest memory{checked}, output sha256:{}, {:.2} s",
            self.image_digest.as_deref().unwrap_or("(no digest)"),
            self.platform,
            self.entries,
            human_bytes(self.archive_bytes),
            human_bytes(self.guest_memory_bytes),
            self.sha256,
            elapsed.as_secs_f64()
        )
    }

    /// The same as one JSON object, for scripts.
    pub fn json(&self, elapsed: std::time::Duration) -> serde_json::Value {
        serde_json::json!({
            "image_digest": self.image_digest,
            "platform": self.platform,
            "entries": self.entries,
            "uncompressed_bytes": self.archive_bytes,
            "compression": self.codec.to_string(),
            "compressed_bytes": self.output_bytes,
            "sha256": self.sha256,
            "guest_memory_bytes": self.guest_memory_bytes,
            "check": self.check.as_ref().map(Report::json),
            "elapsed_seconds": (elapsed.as_secs_f64() * 1000.0).round() / 1000.0,
        })
    }
}

/// The archive goes to the compressor through this pipe, so encoding and
/// compression run on different threads.
const PIPE_BUFFER: usize = 1 << 20;

impl PreparedImage {
    /// Problems that do not stop the conversion (e.g. dropped xattrs).
    pub fn warnings(&self) -> &[boot::Note] {
        &self.warnings
    }

    /// The resolved image: its config and layers.
    pub fn source(&self) -> &ImageSource {
        &self.source
    }

    /// The final tree, as the archive will hold it (boot files aside).
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Bytes of the uncompressed archive, the trailer included.
    pub fn archive_size(&self) -> u64 {
        self.archive_size
    }

    /// What the boot check found; `None` when it did not run.
    pub fn boot_check(&self) -> Option<&Report> {
        self.boot_check.as_ref()
    }

    /// The smallest guest memory that boots the archive uncompressed (a
    /// compressed one needs less; [`Summary::guest_memory_bytes`] has it).
    pub fn guest_memory_uncompressed(&self) -> u64 {
        memory::guest_memory(self.tree, self.archive_size, self.kernel)
    }

    /// The archive's entries in tree order, for `--list`.
    pub fn list(&self) -> Vec<ListEntry> {
        listing::entries(&self.plan)
    }

    /// Number of archive entries that will be written.
    pub fn entry_count(&self) -> usize {
        self.plan.dirs.len()
            + self.plan.others.len()
            + self
                .plan
                .empty_files
                .iter()
                .chain(&self.plan.files)
                .map(|g| g.names.len())
                .sum::<usize>()
    }

    /// Writes the compressed archive. On error the output holds a prefix of
    /// the archive without a trailer, so it cannot pass for a whole one.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the output fails; [`Error::Source`] or
    /// [`Error::Layer`] when a layer cannot be read again or differs from
    /// its first read; [`Error::Limit`] when the archive needs more guest
    /// memory than [`InitramfsBuilder::guest_memory`] allows.
    pub async fn write_to<W: AsyncWrite + Unpin + Send>(self, output: W) -> Result<Summary, Error> {
        use sha2::Digest;
        let (pipe_in, pipe_out) = tokio::io::duplex(PIPE_BUFFER);
        let compression = self.compression;
        let image_digest = self.source.image_digest().map(|d| d.to_string());
        let (tree, kernel, limit) = (self.tree, self.kernel, self.guest_memory);
        let boot_check = self.boot_check;
        let platform = self.source.platform().to_string();
        self.progress.writing(self.archive_size);
        let mut hasher = sha2::Sha256::new();
        let progress = Arc::clone(&self.progress);
        let mut hashed = output::TapWriter::new(output, |b: &[u8]| {
            hasher.update(b);
            progress.output_written(b.len() as u64);
        });
        let encoder = tasks::spawn(encode(
            self.source,
            self.plan,
            self.extras,
            pipe_in,
            self.progress,
        ));
        let compressed = output::compress(pipe_out, &mut hashed, compression, self.jobs).await;
        let encoded = encoder.await?;
        // The encoder's error explains a compressor error (a closed pipe).
        let (entries, archive_bytes) = encoded?;
        let output_bytes = compressed?;
        drop(hashed);
        let guest_memory_bytes = match limit {
            Some(limit) => check_guest_memory(tree, output_bytes, kernel, limit)?,
            None => memory::guest_memory(tree, output_bytes, kernel),
        };
        Ok(Summary {
            image_digest,
            platform,
            entries,
            archive_bytes,
            codec: compression.codec(),
            output_bytes,
            sha256: hex::encode(hasher.finalize()),
            guest_memory_bytes,
            check: boot_check,
        })
    }
}

/// Writes the archive: directories and other non-files, empty files, the
/// layers' files (bodies streamed from their layers), the boot stage's
/// files, then the trailer. Returns the entries and bytes written.
async fn encode<W: AsyncWrite + Unpin>(
    source: Arc<ImageSource>,
    plan: Plan,
    extras: Vec<Extra>,
    pipe: W,
    progress: Arc<dyn Progress>,
) -> Result<(u64, u64), Error> {
    let mut archive = Archive {
        w: NewcWriter::new(BufWriter::with_capacity(256 * 1024, pipe)),
        ino: 0,
        entries: 0,
    };
    archive.write_entries(&plan).await?;
    // Files are sorted by content reference and EXTRA_LAYER sorts last:
    // the layers' files are a prefix of the list, borrowed, not copied.
    let split = plan
        .files
        .partition_point(|g| g.content.layer != EXTRA_LAYER);
    let (layer_groups, extra_groups) = plan.files.split_at(split);
    let finished = archive
        .write_layer_files(&source, layer_groups, &progress)
        .await?;
    for group in extra_groups {
        archive.write_extra(group, &extras).await?;
    }
    // Every layer's digest check must have passed before the trailer.
    for stream in finished {
        stream.finish().await?;
    }
    archive.finish().await
}

/// The archive being written, with the inode numbers handed out (one per
/// entry, one per group of links) and the entries written so far.
struct Archive<W> {
    w: NewcWriter<BufWriter<W>>,
    ino: u32,
    entries: u64,
}

impl<W: AsyncWrite + Unpin> Archive<W> {
    fn next_ino(&mut self) -> u32 {
        self.ino += 1;
        self.ino
    }

    /// Directories, symlinks, devices and fifos, then the empty files.
    async fn write_entries(&mut self, plan: &Plan) -> Result<(), Error> {
        for entry in plan.dirs.iter().chain(&plan.others) {
            let (record, data) = simple_record(entry, self.next_ino());
            self.w.write_record(&record, data).await?;
            self.entries += 1;
        }
        for group in &plan.empty_files {
            let ino = self.next_ino();
            for name in &group.names {
                self.w
                    .write_record(&file_record(name, group, ino, 0), &[])
                    .await?;
                self.entries += 1;
            }
        }
        Ok(())
    }

    /// A group's names but the last, without data, and the last one's
    /// record: the newc convention is that the last link carries the data.
    async fn write_links(&mut self, group: &FileGroup, ino: u32) -> Result<Record, Error> {
        let (last, rest) = group
            .names
            .split_last()
            .ok_or_else(|| Error::Internal("empty file group".into()))?;
        for name in rest {
            self.w
                .write_record(&file_record(name, group, ino, 0), &[])
                .await?;
            self.entries += 1;
        }
        let size = crate::cpio::check_size(last, group.size)?;
        self.entries += 1;
        Ok(file_record(last, group, ino, size))
    }

    /// The files whose content is in a layer, in [`bodies::schedule`]'s
    /// order, each layer's bodies read by its own producer. Returns the
    /// layers' streams, all read, whose producers' results are still due.
    async fn write_layer_files(
        &mut self,
        source: &Arc<ImageSource>,
        groups: &[FileGroup],
        progress: &Arc<dyn Progress>,
    ) -> Result<Vec<bodies::BodyStream>, Error> {
        let mut remaining: HashMap<u32, usize> = HashMap::new();
        for g in groups {
            *remaining.entry(g.content.layer).or_default() += 1;
        }
        let mut streams: HashMap<u32, bodies::BodyStream> = HashMap::new();
        let mut finished = Vec::new();
        for i in bodies::schedule(groups) {
            let group = &groups[i];
            let layer = group.content.layer;
            let stream = streams.entry(layer).or_insert_with(|| {
                let wanted = groups
                    .iter()
                    .filter(|g| g.content.layer == layer)
                    .map(|g| (g.content.ordinal, g.size))
                    .collect();
                tracing::debug!(layer, "reading bodies");
                bodies::spawn_layer(Arc::clone(source), layer, wanted, Arc::clone(progress))
            });
            let ino = self.next_ino();
            let record = self.write_links(group, ino).await?;
            self.w.write_record_from(&record, stream).await?;
            let left = remaining.entry(layer).or_default();
            *left = left.saturating_sub(1);
            if *left == 0 {
                finished.extend(streams.remove(&layer));
            }
        }
        Ok(finished)
    }

    /// A generated or injected file (and its other names, if any).
    async fn write_extra(&mut self, group: &FileGroup, extras: &[Extra]) -> Result<(), Error> {
        let ino = self.next_ino();
        let extra = extras
            .get(group.content.ordinal as usize)
            .ok_or_else(|| Error::Internal("generated file out of range".into()))?;
        let record = self.write_links(group, ino).await?;
        match extra {
            Extra::Bytes(bytes) => self.w.write_record(&record, bytes).await?,
            Extra::Host { path, size } => {
                let host_file = |source| Error::HostFile {
                    path: path.clone(),
                    source,
                };
                let file = tokio::fs::File::open(path).await.map_err(host_file)?;
                let now = file.metadata().await.map_err(host_file)?.len();
                if now != *size {
                    return Err(Error::HostFileChanged {
                        path: path.clone(),
                        planned: *size,
                        now,
                    });
                }
                self.w
                    .write_record_from(&record, &mut tokio::io::BufReader::new(file))
                    .await?;
            }
        }
        Ok(())
    }

    /// Writes the trailer and closes the pipe.
    async fn finish(self) -> Result<(u64, u64), Error> {
        let archive_bytes = self.w.written();
        let mut pipe = self.w.finish().await?;
        pipe.shutdown().await?;
        // The trailer's bytes count too.
        Ok((self.entries, archive_bytes + crate::cpio::trailer_len()))
    }
}

/// A layer's stored bytes, reported to `progress` as they are read.
pub(crate) async fn open_layer(
    source: &ImageSource,
    blob: &LayerBlob,
    pass: Pass,
    progress: Arc<dyn Progress>,
) -> Result<BlobReader, Error> {
    let reader = source.open_layer(blob).await?;
    Ok(Box::new(Reporting::new(
        reader, progress, pass, blob.index, blob.size,
    )))
}

fn apply_mtimes(plan: &mut Plan, mtimes: Mtimes) {
    if mtimes == Mtimes::Keep {
        return;
    }
    for e in plan.dirs.iter_mut().chain(&mut plan.others) {
        mtimes.apply(&mut e.meta);
    }
    for g in plan.empty_files.iter_mut().chain(&mut plan.files) {
        mtimes.apply(&mut g.meta);
    }
}

/// Content of a file the boot stage adds.
enum Extra {
    Bytes(Bytes),
    Host { path: std::path::PathBuf, size: u64 },
}

/// The boot stage's view of the merged image.
struct TreeLookup<'a> {
    index: &'a MergeIndex,
    captured: &'a HashMap<ContentRef, Vec<u8>>,
}

impl ImageLookup for TreeLookup<'_> {
    fn entry(&self, path: &[u8]) -> Option<Entry> {
        let e = self.index.lookup(path)?;
        Some(Entry {
            kind: e.kind,
            meta: e.meta,
        })
    }

    fn read(&self, path: &[u8]) -> Option<Vec<u8>> {
        let content = self.index.lookup(path)?.content?;
        self.captured.get(&content).cloned()
    }
}

/// The xattrs of the final tree's regular files: those whose entry still
/// holds the file's content at its path (a later layer's file, or a
/// whiteout, drops them).
fn final_xattrs(
    index: &MergeIndex,
    found: Vec<(Vec<u8>, ContentRef, layer::EntryXattr)>,
) -> Vec<boot::FileXattr> {
    found
        .into_iter()
        .filter_map(|(path, at, x)| {
            let live = index.lookup(&path)?.content == Some(at);
            live.then(|| boot::FileXattr {
                path: crate::path::absolute(&path),
                name: x.name,
                value: x.value,
            })
        })
        .collect()
}

/// Checks every entry against the format's limits, before anything is
/// written, and returns the uncompressed archive's size.
fn check_plan(plan: &Plan) -> Result<u64, Error> {
    use crate::cpio::{check_name, check_size, check_target, record_len, trailer_len};
    let mut total = trailer_len();
    for e in plan.dirs.iter().chain(&plan.others) {
        check_name(&e.name)?;
        let data = match &e.kind {
            Kind::Symlink { target } => {
                check_target(&e.name, target)?;
                target.len() as u64
            }
            _ => 0,
        };
        total += record_len(&e.name, data);
    }
    for g in plan.empty_files.iter().chain(&plan.files) {
        for (i, name) in g.names.iter().enumerate() {
            check_name(name)?;
            check_size(name, g.size)?;
            let data = if i + 1 == g.names.len() { g.size } else { 0 };
            total += record_len(name, data);
        }
    }
    Ok(total)
}

fn mtime(meta: &Meta) -> u32 {
    u32::try_from(meta.mtime).unwrap_or(u32::MAX)
}

fn base_record(name: &[u8], meta: &Meta, ino: u32, type_bits: u32) -> Record {
    Record {
        name: name.to_vec(),
        ino,
        mode: type_bits | (meta.mode & 0o7777),
        uid: meta.uid,
        gid: meta.gid,
        nlink: 1,
        mtime: mtime(meta),
        filesize: 0,
        rdev_major: 0,
        rdev_minor: 0,
    }
}

fn simple_record(entry: &PlanEntry, ino: u32) -> (Record, &[u8]) {
    let name = &entry.name;
    match &entry.kind {
        Kind::Dir => {
            let mut r = base_record(name, &entry.meta, ino, mode::S_IFDIR);
            r.nlink = 2;
            (r, &[])
        }
        Kind::Symlink { target } => {
            let mut r = base_record(name, &entry.meta, ino, mode::S_IFLNK);
            r.filesize = target.len() as u32;
            (r, target.as_slice())
        }
        Kind::CharDevice { major, minor } | Kind::BlockDevice { major, minor } => {
            let bits = if matches!(entry.kind, Kind::CharDevice { .. }) {
                mode::S_IFCHR
            } else {
                mode::S_IFBLK
            };
            let mut r = base_record(name, &entry.meta, ino, bits);
            r.rdev_major = *major;
            r.rdev_minor = *minor;
            (r, &[])
        }
        Kind::Fifo => (base_record(name, &entry.meta, ino, mode::S_IFIFO), &[]),
        // The plan holds files in its groups, never here.
        Kind::File { .. } | Kind::Hardlink { .. } => {
            (base_record(name, &entry.meta, ino, mode::S_IFREG), &[])
        }
    }
}

fn file_record(name: &[u8], group: &FileGroup, ino: u32, size: u32) -> Record {
    let mut r = base_record(name, &group.meta, ino, mode::S_IFREG);
    r.nlink = group.names.len() as u32;
    r.filesize = size;
    r
}
