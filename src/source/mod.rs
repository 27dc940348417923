//! Image sources: which layer blobs make up an image, in which order, and a
//! verified byte stream for each.
//!
//! A reference names a transport and a location, as skopeo spells them:
//! `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:NAME[:TAG]|:@N]`,
//! `docker-daemon:NAME[:TAG|@DIGEST]`. Anything else is an image in a
//! registry, named as Docker names it (`alpine`, `host:port/org/app:tag`,
//! `...@sha256:...`, `docker://...`).
//! Archive files are read in place: their members are found by offset and
//! read with seeks, never extracted. An archive that cannot seek (`-` for
//! stdin, a pipe, a FIFO) and a Docker Engine's export are read once and
//! held in memory, compressed (see `held`); registry blobs are streamed.
//!
//! Every source that has image indexes (OCI layouts and archives,
//! registries) goes from its first document to the manifest through one
//! resolver, `resolve_manifest`, and from the manifest to the config and
//! layers through `image_from_manifest`. Every blob is verified against
//! its digest: documents when read, layers at the end of their stream
//! (read them to the end, `drain_to_eof`). Failures are `SourceError`s,
//! typed by kind, with their causes behind `Error::source`.

mod credentials;
mod daemon;
mod digest;
mod error;
mod held;
mod reference;
mod registry;
pub mod spec;
mod store;

use std::fmt;
use std::path::{Path, PathBuf};

pub(crate) use digest::{drain_to_eof, VerifyingReader};
pub use digest::{Digest, DigestError};
pub use error::{AuthError, SourceError, TransportKind, Tried};
pub use reference::RegistryImage;
pub use registry::RegistryOptions;
pub use spec::{ImageConfig, Platform, RunConfig};
pub use store::BlobReader;

use spec::{Descriptor, Document, Index, Manifest, MAX_DOCUMENT_SIZE};
use store::Store;

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImageReference {
    /// An OCI image layout directory and an optional tag.
    OciLayout {
        /// The layout's directory.
        dir: PathBuf,
        /// The `org.opencontainers.image.ref.name` to pick, if any.
        tag: Option<String>,
    },
    /// A tar of an OCI image layout (`-` is stdin).
    OciArchive {
        /// The archive, or `-`.
        file: PathBuf,
        /// The `org.opencontainers.image.ref.name` to pick, if any.
        tag: Option<String>,
        /// Bytes held in memory when the file cannot seek.
        memory_limit: u64,
    },
    /// A `docker save` archive (`-` is stdin) and an optional `NAME[:TAG]`
    /// or `@INDEX`.
    DockerArchive {
        /// The archive, or `-`.
        file: PathBuf,
        /// `NAME[:TAG]` or `@INDEX` to pick, if any.
        name: Option<String>,
        /// Bytes held in memory when the file cannot seek.
        memory_limit: u64,
    },
    /// An image in a local Docker Engine (or podman's compatible service).
    DockerDaemon {
        /// `NAME[:TAG]`, `NAME@DIGEST` or an image ID.
        name: String,
        /// Bytes held in memory; past it layers are exported again.
        memory_limit: u64,
    },
    /// An image in a registry, and how to reach it.
    Registry {
        /// Registry, repository and tag or digest.
        image: RegistryImage,
        /// Credentials, TLS and limits.
        options: RegistryOptions,
    },
}

/// Transports spelled `NAME:` that are read locally.
const TRANSPORTS: &[&str] = &["oci", "oci-archive", "docker-archive", "docker-daemon"];
/// skopeo transports this tool does not read.
const UNSUPPORTED: &[&str] = &["dir", "containers-storage", "ostree", "sif", "tarball"];

impl ImageReference {
    /// Parses `TRANSPORT:LOCATION` as skopeo spells it (`oci:DIR[:TAG]`,
    /// `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:NAME[:TAG]|:@N]`,
    /// `docker-daemon:NAME`, `docker://REF`), or a plain registry reference
    /// (`alpine:3.20`, `ghcr.io/org/app@sha256:...`).
    ///
    /// # Errors
    ///
    /// [`SourceError::Reference`] naming what is wrong with the text, such
    /// as a transport this tool does not read.
    ///
    /// # Examples
    ///
    /// ```
    /// use initramfs_stream::ImageReference;
    ///
    /// let r = ImageReference::parse("oci:./layout:v1")?;
    /// assert!(matches!(r, ImageReference::OciLayout { tag: Some(t), .. } if t == "v1"));
    /// assert!(ImageReference::parse("ostree:/repo").is_err());
    /// # Ok::<(), initramfs_stream::source::SourceError>(())
    /// ```
    pub fn parse(s: &str) -> Result<ImageReference, SourceError> {
        let (transport, rest) = s.split_once(':').unwrap_or(("", s));
        match transport {
            "oci" => {
                let (dir, tag) = split_location(rest);
                Ok(ImageReference::OciLayout { dir, tag })
            }
            "oci-archive" => {
                let (file, tag) = split_location(rest);
                Ok(ImageReference::OciArchive {
                    file,
                    tag,
                    memory_limit: registry::DEFAULT_MEMORY_LIMIT,
                })
            }
            "docker-archive" => {
                let (file, name) = split_location(rest);
                Ok(ImageReference::DockerArchive {
                    file,
                    name,
                    memory_limit: registry::DEFAULT_MEMORY_LIMIT,
                })
            }
            "docker-daemon" if !rest.is_empty() => Ok(ImageReference::DockerDaemon {
                name: rest.to_string(),
                memory_limit: registry::DEFAULT_MEMORY_LIMIT,
            }),
            // `host:port/...` is a registry, whatever the host is called.
            t if (UNSUPPORTED.contains(&t) || t == "docker")
                && !rest.starts_with(|c: char| c.is_ascii_digit()) =>
            {
                match rest.strip_prefix("//").filter(|_| t == "docker") {
                    Some(name) => Self::registry(name, s),
                    None if t == "docker" => Err(SourceError::Reference(format!(
                        "'{}': a registry image is docker://NAME or just NAME",
                        esc(s)
                    ))),
                    None => Err(SourceError::Reference(format!(
                        "'{}': the {t}: transport is not supported; use a registry NAME[:TAG], \
                         oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG] \
                         or docker-daemon:NAME[:TAG]",
                        esc(s)
                    ))),
                }
            }
            _ => Self::registry(s, s),
        }
    }

    fn registry(name: &str, whole: &str) -> Result<ImageReference, SourceError> {
        match RegistryImage::parse(name) {
            Ok(image) => Ok(ImageReference::Registry {
                image,
                options: RegistryOptions::default(),
            }),
            Err(e) => Err(SourceError::Reference(format!(
                "{}; '{}' is neither a registry image NAME[:TAG][@DIGEST] nor \
                 oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG] \
                 or docker-daemon:NAME[:TAG]",
                esc(&e),
                esc(whole)
            ))),
        }
    }

    /// Bytes of image data kept in memory between the two passes: for a
    /// registry, an archive that cannot seek, or a Docker Engine.
    pub fn set_memory_limit(&mut self, bytes: u64) {
        match self {
            ImageReference::OciLayout { .. } => {}
            ImageReference::OciArchive { memory_limit, .. }
            | ImageReference::DockerArchive { memory_limit, .. }
            | ImageReference::DockerDaemon { memory_limit, .. } => *memory_limit = bytes,
            ImageReference::Registry { options, .. } => options.memory_limit = bytes,
        }
    }
}

/// Text from an image, a file name or an engine, safe for a terminal.
fn esc(s: &str) -> String {
    crate::path::escape(s.as_bytes())
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (transport, path, tag) = match self {
            ImageReference::OciLayout { dir, tag } => ("oci", dir, tag),
            ImageReference::OciArchive { file, tag, .. } => ("oci-archive", file, tag),
            ImageReference::DockerArchive { file, name, .. } => ("docker-archive", file, name),
            ImageReference::DockerDaemon { name, .. } => return write!(f, "docker-daemon:{name}"),
            ImageReference::Registry { image, .. } => return write!(f, "{image}"),
        };
        write!(f, "{transport}:{}", path.display())?;
        if let Some(tag) = tag {
            write!(f, ":{tag}")?;
        }
        Ok(())
    }
}

/// Splits `PATH[:REF]`: the shortest prefix that exists on disk is the path,
/// so paths with colons still work; with none existing, a trailing `:REF`
/// without a slash is the reference.
fn split_location(rest: &str) -> (PathBuf, Option<String>) {
    for (i, _) in rest.match_indices(':') {
        let (path, reference) = (&rest[..i], &rest[i + 1..]);
        if !path.is_empty() && Path::new(path).exists() {
            return (PathBuf::from(path), non_empty(reference));
        }
    }
    if Path::new(rest).exists() {
        return (PathBuf::from(rest), None);
    }
    match rest.split_once(':') {
        Some((path, reference)) if !reference.contains('/') => {
            (PathBuf::from(path), non_empty(reference))
        }
        _ => (PathBuf::from(rest), None),
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// One filesystem layer of an image, oldest first.
#[derive(Debug, Clone)]
pub struct LayerBlob {
    /// Position in the image, 0 for the base layer.
    pub index: usize,
    /// Name of the blob inside the store.
    location: String,
    /// Digest of the blob as stored (compressed), when the image gives it.
    pub digest: Option<Digest>,
    /// Digest of the uncompressed tar, from the config's `rootfs.diff_ids`.
    pub diff_id: Option<Digest>,
    /// The media type the manifest gives (compression is detected anyway).
    pub media_type: String,
    /// The stored size, when the image gives it.
    pub size: Option<u64>,
}

/// A resolved image: its config and its layers, from one source.
pub struct ImageSource {
    store: Store,
    /// Where the image came from.
    pub reference: ImageReference,
    /// Digest of the selected manifest (for OCI sources).
    pub manifest_digest: Option<Digest>,
    /// Digest of the image config: the image ID as Docker shows it.
    pub config_digest: Option<Digest>,
    /// The image config.
    pub config: ImageConfig,
    /// The layers, base first.
    pub layers: Vec<LayerBlob>,
}

impl ImageSource {
    /// Opens the image and resolves its manifest, config and layers; from
    /// an index, the manifest for `platform` (the host's when `None`).
    ///
    /// # Errors
    ///
    /// A [`SourceError`] of the kind at fault: a file or stream that cannot
    /// be read, a registry that refuses or fails, a document that is not
    /// one, a digest that does not match, no manifest for the platform.
    pub async fn open(
        reference: ImageReference,
        platform: Option<&Platform>,
    ) -> Result<ImageSource, SourceError> {
        match &reference {
            ImageReference::OciLayout { dir, tag } => {
                let store = Store::dir(dir)?;
                let tag = tag.clone();
                resolve_oci(store, reference, tag.as_deref(), platform).await
            }
            ImageReference::OciArchive {
                file,
                tag,
                memory_limit,
            } => {
                let store = archive_store(file, *memory_limit, &reference).await?;
                let tag = tag.clone();
                resolve_oci(store, reference, tag.as_deref(), platform).await
            }
            ImageReference::DockerArchive {
                file,
                name,
                memory_limit,
            } => {
                let store = archive_store(file, *memory_limit, &reference).await?;
                let name = name.clone();
                resolve_docker_archive(store, reference, name.as_deref()).await
            }
            ImageReference::DockerDaemon { name, memory_limit } => {
                let (name, limit) = (name.clone(), *memory_limit);
                daemon::resolve(reference, &name, limit).await
            }
            ImageReference::Registry { image, options } => {
                let (image, options) = (image.clone(), options.clone());
                registry::resolve(reference, &image, &options, platform).await
            }
        }
    }

    /// Tells the source that `layer` will not be opened again, so bytes
    /// kept for it (a pulled blob held between the passes) are freed now
    /// rather than when the source is dropped.
    pub fn layer_done(&self, layer: &LayerBlob) {
        self.store.release(&layer.location);
    }

    /// A stream of the layer's stored bytes. When the image gives the blob's
    /// digest the stream fails at its end unless the bytes match.
    ///
    /// # Errors
    ///
    /// A [`SourceError`] when the blob cannot be opened or its stored size
    /// is not the one the manifest gives.
    pub async fn open_layer(&self, layer: &LayerBlob) -> Result<BlobReader, SourceError> {
        let (reader, size) = self.store.open(&layer.location).await?;
        if let Some(expected) = layer.size {
            if expected != size {
                return Err(SourceError::new(format!(
                    "layer {} ({}): size is {size} bytes, the manifest says {expected}",
                    layer.index,
                    self.store.describe(&layer.location)
                )));
            }
        }
        Ok(match &layer.digest {
            Some(digest) => Box::new(VerifyingReader::new(
                reader,
                digest.clone(),
                format!("layer {} ({digest})", layer.index),
            )),
            None => reader,
        })
    }

    /// The manifest's digest when there is a manifest, else the config's
    /// (the image ID `docker images` shows for a `docker save` archive).
    pub fn image_digest(&self) -> Option<&Digest> {
        self.manifest_digest
            .as_ref()
            .or(self.config_digest.as_ref())
    }

    /// The platform the image's config declares.
    pub fn platform(&self) -> Platform {
        Platform {
            os: self.config.os.clone(),
            architecture: self.config.architecture.clone(),
            variant: self.config.variant.clone().filter(|v| !v.is_empty()),
        }
    }

    /// The run configuration (Entrypoint, Cmd, Env, ...) of the image.
    pub fn run_config(&self) -> RunConfig {
        self.config.config.clone().unwrap_or_default()
    }
}

/// An archive file read in place, or, when it cannot seek (stdin as `-`,
/// a pipe, a FIFO), read once and held in memory.
async fn archive_store(
    file: &Path,
    memory_limit: u64,
    reference: &ImageReference,
) -> Result<Store, SourceError> {
    let what = reference.to_string();
    let io = |e: std::io::Error| SourceError::io(&what, e);
    // Opening a FIFO waits for its writer: off the async workers.
    let path = file.to_path_buf();
    let (input, is_file) = tokio::task::spawn_blocking(move || {
        let input = if path == Path::new("-") {
            use std::os::fd::AsFd;
            std::fs::File::from(std::io::stdin().as_fd().try_clone_to_owned()?)
        } else {
            std::fs::File::open(&path)?
        };
        let is_file = input.metadata()?.is_file();
        Ok::<_, std::io::Error>((input, is_file))
    })
    .await
    .map_err(|e| SourceError::Internal(format!("{what}: {e}")))?
    .map_err(io)?;
    if is_file {
        return Store::tar(file, input).await;
    }
    // A pipe's read waits for its producer, for as long as it likes: on
    // the blocking pool, never on an async worker (unlike a file's).
    let reader = tokio::fs::File::from_std(input);
    let held = held::HeldArchive::read(what.clone(), reader, memory_limit, None).await?;
    tracing::info!(
        archive = %what,
        held = held.held_bytes(),
        "read the stream into memory"
    );
    Ok(Store::Held(held))
}

/// The platform of the machine running this tool, as registries name it.
pub fn host_platform() -> Platform {
    let (architecture, variant) = match std::env::consts::ARCH {
        "x86_64" => ("amd64", None),
        "aarch64" => ("arm64", Some("v8")),
        "x86" => ("386", None),
        "arm" => ("arm", Some("v7")),
        "powerpc64" => ("ppc64le", None),
        other => (other, None),
    };
    Platform {
        os: "linux".into(),
        architecture: architecture.into(),
        variant: variant.map(String::from),
    }
}

impl Platform {
    /// Parses `OS/ARCH[/VARIANT]`, as `--platform` takes it.
    ///
    /// # Errors
    ///
    /// [`SourceError::Image`] when the text has not two or three non-empty
    /// parts.
    ///
    /// # Examples
    ///
    /// ```
    /// use initramfs_stream::Platform;
    ///
    /// let p = Platform::parse("linux/arm64/v8")?;
    /// assert_eq!((p.architecture.as_str(), p.variant.as_deref()), ("arm64", Some("v8")));
    /// # Ok::<(), initramfs_stream::source::SourceError>(())
    /// ```
    pub fn parse(s: &str) -> Result<Platform, SourceError> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => {
                Ok(Platform {
                    os: os.to_string(),
                    architecture: arch.to_string(),
                    variant: Some(variant.to_string()),
                })
            }
            _ => Err(SourceError::new(format!(
                "'{s}': platform must be OS/ARCH[/VARIANT], e.g. linux/arm64"
            ))),
        }
    }

    /// A wanted platform matches an offered one; a wanted variant must match,
    /// an unspecified one accepts any (arm64 offers are often variant-less).
    fn accepts(&self, offered: &Platform) -> bool {
        self.os == offered.os
            && self.architecture == offered.architecture
            && match (&self.variant, &offered.variant) {
                (Some(want), Some(got)) => want == got,
                (Some(want), None) => self.architecture == "arm64" && want == "v8",
                (None, _) => true,
            }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

async fn read_blob(store: &Store, desc: &Descriptor, what: &str) -> Result<Vec<u8>, SourceError> {
    let digest =
        Digest::parse(&desc.digest).map_err(|e| SourceError::new(format!("{what}: {e}")))?;
    if desc.size > MAX_DOCUMENT_SIZE {
        return Err(SourceError::new(format!(
            "{what} {digest}: {} bytes is larger than the {MAX_DOCUMENT_SIZE}-byte limit",
            desc.size
        )));
    }
    let bytes = store
        .read_document(&blob_path(&digest), MAX_DOCUMENT_SIZE)
        .await?;
    let got = Digest::of(&bytes);
    if got != digest {
        return Err(SourceError::Digest {
            what: what.to_string(),
            expected: digest,
            got,
        });
    }
    // Right bytes, wrong descriptor: refused as a layer's would be.
    if bytes.len() as u64 != desc.size {
        return Err(SourceError::new(format!(
            "{what}: size is {} bytes, the descriptor says {}",
            bytes.len(),
            desc.size
        )));
    }
    Ok(bytes)
}

fn ref_name(desc: &Descriptor) -> Option<&str> {
    desc.annotations
        .get("org.opencontainers.image.ref.name")
        .map(String::as_str)
}

/// Nested indexes deeper than this are refused (and so are cycles).
const MAX_INDEX_DEPTH: usize = 4;

async fn resolve_oci(
    store: Store,
    reference: ImageReference,
    tag: Option<&str>,
    platform: Option<&Platform>,
) -> Result<ImageSource, SourceError> {
    let bytes = store
        .read_document("index.json", MAX_DOCUMENT_SIZE)
        .await
        .map_err(|e| SourceError::Document {
            what: format!("{reference}"),
            reason: format!("not an OCI image layout: {e}"),
        })?;
    let index: Index = serde_json::from_slice(&bytes).map_err(|e| SourceError::Document {
        what: format!("{reference}: index.json"),
        reason: format!("invalid JSON: {}", esc(&e.to_string())),
    })?;

    let first = select_tag(&index, tag, &reference)?;
    let fetch = |desc: Descriptor| {
        let (store, reference) = (&store, &reference);
        async move {
            let what = format!("{reference}: manifest {}", esc(&desc.digest));
            let bytes = read_blob(store, &desc, &what).await?;
            // read_blob parsed it already.
            let digest =
                Digest::parse(&desc.digest).map_err(|e| SourceError::Internal(e.to_string()))?;
            Ok(Fetched {
                bytes,
                media_type: desc.media_type,
                digest,
            })
        }
    };
    let first = fetch(first).await?;
    let (manifest, digest) = resolve_manifest(&reference, platform, first, fetch).await?;
    image_from_manifest(store, reference, manifest, Some(digest)).await
}

/// A manifest or an index as read and verified.
pub(crate) struct Fetched {
    pub bytes: Vec<u8>,
    /// As the descriptor or the server gives it; may be empty.
    pub media_type: String,
    pub digest: Digest,
}

/// From an image's first document to its manifest, for every source that
/// has indexes (OCI layouts and archives, registries): an index or a
/// manifest list is followed to its entry for `platform` (the host's when
/// none is given), at most `MAX_INDEX_DEPTH` deep, which also ends cycles.
/// `fetch` reads the document a descriptor names and checks its digest.
pub(crate) async fn resolve_manifest<F, Fut>(
    reference: &ImageReference,
    platform: Option<&Platform>,
    mut doc: Fetched,
    mut fetch: F,
) -> Result<(Manifest, Digest), SourceError>
where
    F: FnMut(Descriptor) -> Fut,
    Fut: std::future::Future<Output = Result<Fetched, SourceError>>,
{
    let want = platform.cloned().unwrap_or_else(host_platform);
    for depth in 0..=MAX_INDEX_DEPTH {
        let what = format!("{reference}: manifest {}", doc.digest);
        match spec::parse_document(&doc.bytes, &doc.media_type, &what)? {
            Document::Manifest(manifest) => return Ok((manifest, doc.digest)),
            Document::Index(index) if depth < MAX_INDEX_DEPTH => {
                let desc = select_platform(&index, &want, reference)?;
                doc = fetch(desc).await?;
            }
            Document::Index(_) => break,
        }
    }
    Err(SourceError::new(format!(
        "{reference}: image indexes nested more than {MAX_INDEX_DEPTH} deep"
    )))
}

fn select_tag(
    index: &Index,
    tag: Option<&str>,
    reference: &ImageReference,
) -> Result<Descriptor, SourceError> {
    let tags: Vec<&str> = index.manifests.iter().filter_map(ref_name).collect();
    match tag {
        Some(tag) => index
            .manifests
            .iter()
            .find(|d| {
                ref_name(d)
                    .is_some_and(|n| n == tag || n.rsplit_once(':').is_some_and(|(_, t)| t == tag))
            })
            .cloned()
            .ok_or_else(|| {
                SourceError::new(format!(
                    "{reference}: no tag '{}' in the layout (it has: {})",
                    esc(tag),
                    esc(&list_or_none(&tags))
                ))
            }),
        None => match index.manifests.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(SourceError::new(format!(
                "{reference}: the layout holds no image"
            ))),
            _ => Err(SourceError::new(format!(
                "{reference}: the layout holds {} images; name one with :TAG (tags: {})",
                index.manifests.len(),
                esc(&list_or_none(&tags))
            ))),
        },
    }
}

fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(", ")
    }
}

fn select_platform(
    index: &Index,
    want: &Platform,
    reference: &ImageReference,
) -> Result<Descriptor, SourceError> {
    let mut offered = Vec::new();
    for desc in &index.manifests {
        match &desc.platform {
            Some(p) if want.accepts(p) => return Ok(desc.clone()),
            Some(p) if p.os != "unknown" => offered.push(p.to_string()),
            _ => {}
        }
    }
    if index.manifests.is_empty() {
        return Err(SourceError::new(format!(
            "{reference}: no image for platform {want}: the index lists no image"
        )));
    }
    if offered.is_empty() {
        return Err(SourceError::new(format!(
            "{reference}: no image for platform {want}: none of the index's {} entries \
             declares a platform",
            index.manifests.len()
        )));
    }
    Err(SourceError::new(format!(
        "{reference}: no image for platform {want} (the index offers: {})",
        esc(&offered.join(", "))
    )))
}

async fn image_from_manifest(
    store: Store,
    reference: ImageReference,
    manifest: Manifest,
    manifest_digest: Option<Digest>,
) -> Result<ImageSource, SourceError> {
    let what = format!("{reference}: config {}", esc(&manifest.config.digest));
    let config_type = manifest.config.media_type.as_str();
    if !config_type.is_empty() && !spec::CONFIG_MEDIA_TYPES.contains(&config_type) {
        return Err(SourceError::new(format!(
            "{reference}: not a container image but an artifact (config media type '{}')",
            esc(config_type)
        )));
    }
    let config_bytes = read_blob(&store, &manifest.config, &what).await?;
    let config: ImageConfig =
        serde_json::from_slice(&config_bytes).map_err(|e| SourceError::Document {
            what: what.clone(),
            reason: format!("invalid image config: {}", esc(&e.to_string())),
        })?;
    let diff_ids = parse_diff_ids(&config, manifest.layers.len(), &reference)?;

    let mut layers = Vec::with_capacity(manifest.layers.len());
    for (index, desc) in manifest.layers.iter().enumerate() {
        if !spec::LAYER_MEDIA_TYPES.contains(&desc.media_type.as_str()) {
            return Err(SourceError::new(format!(
                "{reference}: layer {index} has unsupported media type '{}'",
                esc(&desc.media_type)
            )));
        }
        let digest = Digest::parse(&desc.digest)
            .map_err(|e| SourceError::new(format!("{reference}: layer {index}: {e}")))?;
        let location = blob_path(&digest);
        if !store.exists(&location) {
            return Err(SourceError::new(format!(
                "{reference}: layer {index} blob {digest} is missing"
            )));
        }
        layers.push(LayerBlob {
            index,
            location,
            digest: Some(digest),
            diff_id: diff_ids.get(index).cloned(),
            media_type: desc.media_type.clone(),
            size: Some(desc.size),
        });
    }
    Ok(ImageSource {
        store,
        reference,
        manifest_digest,
        config_digest: Digest::parse(&manifest.config.digest).ok(),
        config,
        layers,
    })
}

fn parse_diff_ids(
    config: &ImageConfig,
    layers: usize,
    reference: &ImageReference,
) -> Result<Vec<Digest>, SourceError> {
    let Some(rootfs) = &config.rootfs else {
        return Err(SourceError::new(format!(
            "{reference}: not a container image: its config has no rootfs"
        )));
    };
    if rootfs.diff_ids.len() != layers {
        return Err(SourceError::new(format!(
            "{reference}: the config lists {} diff_ids for {layers} layers",
            rootfs.diff_ids.len()
        )));
    }
    rootfs
        .diff_ids
        .iter()
        .map(|d| {
            // Digest errors escape what they quote.
            Digest::parse(d).map_err(|e| SourceError::new(format!("{reference}: config: {e}")))
        })
        .collect()
}

async fn resolve_docker_archive(
    store: Store,
    reference: ImageReference,
    name: Option<&str>,
) -> Result<ImageSource, SourceError> {
    let bytes = store
        .read_document("manifest.json", MAX_DOCUMENT_SIZE)
        .await
        .map_err(|e| SourceError::Document {
            what: format!("{reference}"),
            reason: format!("not a docker archive: {e}"),
        })?;
    let entries: Vec<spec::DockerArchiveEntry> =
        serde_json::from_slice(&bytes).map_err(|e| SourceError::Document {
            what: format!("{reference}: manifest.json"),
            reason: format!("invalid JSON: {}", esc(&e.to_string())),
        })?;
    let entry = select_docker_entry(&entries, name, &reference)?;
    let config_bytes = store
        .read_document(&entry.config, MAX_DOCUMENT_SIZE)
        .await?;
    let config_digest = Digest::of(&config_bytes);
    // Docker names the config by its digest, in both layouts.
    let named = entry.config.strip_prefix("blobs/sha256/").or_else(|| {
        entry
            .config
            .strip_suffix(".json")
            .filter(|hex| !hex.contains('/'))
    });
    if let Some(named) = named.and_then(|hex| Digest::parse(&format!("sha256:{hex}")).ok()) {
        if named != config_digest {
            return Err(SourceError::Digest {
                what: format!("{reference}: config {}", esc(&entry.config)),
                expected: named,
                got: config_digest,
            });
        }
    }
    let config: ImageConfig =
        serde_json::from_slice(&config_bytes).map_err(|e| SourceError::Document {
            what: format!("{reference}: {}", esc(&entry.config)),
            reason: format!("invalid image config: {}", esc(&e.to_string())),
        })?;
    let diff_ids = parse_diff_ids(&config, entry.layers.len(), &reference)?;
    let mut layers = Vec::with_capacity(entry.layers.len());
    for (index, location) in entry.layers.iter().enumerate() {
        if !store.exists(location) {
            return Err(SourceError::new(format!(
                "{reference}: layer {index} ({}) is missing from the archive",
                esc(location)
            )));
        }
        // Newer archives name layers by blob digest; verify those as blobs.
        let digest = location
            .strip_prefix("blobs/sha256/")
            .and_then(|hex| Digest::parse(&format!("sha256:{hex}")).ok());
        layers.push(LayerBlob {
            index,
            location: location.clone(),
            digest,
            diff_id: diff_ids.get(index).cloned(),
            media_type: String::new(),
            size: None,
        });
    }
    Ok(ImageSource {
        store,
        reference,
        manifest_digest: None,
        config_digest: Some(config_digest),
        config,
        layers,
    })
}

/// Which image of a docker archive: `NAME[:TAG]` compared as Docker
/// compares names (`app` is `docker.io/library/app:latest`), or `@N`, the
/// N-th image counting from 0, as skopeo takes it.
fn select_docker_entry<'a>(
    entries: &'a [spec::DockerArchiveEntry],
    name: Option<&str>,
    reference: &ImageReference,
) -> Result<&'a spec::DockerArchiveEntry, SourceError> {
    let all_tags: Vec<String> = entries
        .iter()
        .flat_map(|e| e.repo_tags.iter().flatten().map(|t| esc(t)))
        .collect();
    let listed = || list_or_none(&all_tags.iter().map(String::as_str).collect::<Vec<_>>());
    match name {
        Some(name) if name.starts_with('@') => name[1..]
            .parse::<usize>()
            .ok()
            .and_then(|i| entries.get(i))
            .ok_or_else(|| {
                SourceError::new(format!(
                    "{reference}: no image {} in the archive: it holds {} (@0 is the first)",
                    esc(name),
                    entries.len()
                ))
            }),
        Some(name) => {
            let want = canonical_name(name);
            entries
                .iter()
                .find(|e| {
                    e.repo_tags
                        .iter()
                        .flatten()
                        .any(|t| canonical_name(t) == want)
                })
                .ok_or_else(|| {
                    SourceError::new(format!(
                        "{reference}: no image '{}' in the archive (it has: {})",
                        esc(name),
                        listed()
                    ))
                })
        }
        None => match entries {
            [one] => Ok(one),
            [] => Err(SourceError::new(format!(
                "{reference}: the archive holds no image"
            ))),
            _ => Err(SourceError::new(format!(
                "{reference}: the archive holds {} images; name one with :NAME:TAG or :@N \
                 (it has: {})",
                entries.len(),
                listed()
            ))),
        },
    }
}

/// `app:1`, `library/app:1` and `docker.io/library/app:1` are one name;
/// a missing tag is `latest`.
fn canonical_name(name: &str) -> String {
    match RegistryImage::parse(name) {
        Ok(image) => image.to_string(),
        Err(_) => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(
            ImageReference::parse("oci:/nonexistent/img:v1").unwrap(),
            ImageReference::OciLayout {
                dir: "/nonexistent/img".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            ImageReference::parse("oci:./img").unwrap(),
            ImageReference::OciLayout {
                dir: "./img".into(),
                tag: None
            }
        );
        assert!(matches!(
            ImageReference::parse("foo").unwrap(),
            ImageReference::Registry { image, .. } if image.repository == "library/foo"
        ));
        assert!(matches!(
            ImageReference::parse("docker://localhost:5000/a:b").unwrap(),
            ImageReference::Registry { image, .. } if image.registry == "localhost:5000"
        ));
        assert!(ImageReference::parse("./img").is_err());
        assert!(ImageReference::parse("dir:/tmp/x").is_err());
        assert!(ImageReference::parse("docker:alpine").is_err());
        // A host named like a transport prints with docker:// to read back.
        let r = ImageReference::parse("docker://oci:5000/a:b").unwrap();
        assert_eq!(r.to_string(), "docker://oci:5000/a:b");
        assert_eq!(ImageReference::parse(&r.to_string()).unwrap(), r);
    }

    #[test]
    fn platforms() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert!(p.accepts(&Platform::parse("linux/arm64").unwrap()));
        assert!(!p.accepts(&Platform::parse("linux/amd64").unwrap()));
        assert!(Platform::parse("linux").is_err());
    }
}
