//! The JSON documents of the OCI image spec and `docker save`, reduced to the
//! fields this tool reads. Unknown fields are ignored, as the spec requires.

use std::collections::BTreeMap;

use serde::Deserialize;

/// An OCI image index.
pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// An OCI image manifest.
pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// A Docker manifest list (an index by another name).
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// A Docker image manifest, schema 2.
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Layer media types this tool reads. The compression is detected from the
/// bytes; the media type only has to say "this is a filesystem layer".
pub const LAYER_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

/// Config media types of container images; any other is an artifact.
pub const CONFIG_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// Manifests, indexes and configs larger than this are refused unread.
pub const MAX_DOCUMENT_SIZE: u64 = 4 << 20;

/// A reference to a blob: what it is, its digest and its size.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Descriptor {
    /// What the blob holds; empty when a layout omits it.
    #[serde(default)]
    pub media_type: String,
    /// `algorithm:hex`, as written (parse it with [`super::Digest::parse`]).
    pub digest: String,
    /// The blob's size in bytes.
    pub size: u64,
    /// Free-form metadata, such as `org.opencontainers.image.ref.name`.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// For an index entry, the platform the manifest is for.
    #[serde(default)]
    pub platform: Option<Platform>,
    /// Other places to fetch the blob from (foreign layers).
    #[serde(default)]
    pub urls: Vec<String>,
}

/// The platform field of an index entry, as written.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct Platform {
    /// `linux`, `windows`, ...
    pub os: String,
    /// In Go's `GOARCH` words: `amd64`, `arm64`, ...
    pub architecture: String,
    /// `v7`, `v8`, ... for architectures that have variants.
    #[serde(default)]
    pub variant: Option<String>,
}

/// An OCI image index or a Docker manifest list (the same shape).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Index {
    /// The document's own media type, when it states one.
    #[serde(default)]
    pub media_type: Option<String>,
    /// One entry per manifest (or nested index).
    pub manifests: Vec<Descriptor>,
}

/// An OCI image manifest or a Docker schema 2 manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Manifest {
    /// The document's own media type, when it states one.
    #[serde(default)]
    pub media_type: Option<String>,
    /// The image configuration blob.
    pub config: Descriptor,
    /// The layers, base first.
    pub layers: Vec<Descriptor>,
}

/// The parts of an image configuration this tool uses.
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct ImageConfig {
    /// The CPU architecture the image's programs are built for (`amd64`, ...).
    #[serde(default)]
    pub architecture: String,
    /// The operating system (`linux`).
    #[serde(default)]
    pub os: String,
    /// The architecture's variant (`v8`), when it has one.
    #[serde(default)]
    pub variant: Option<String>,
    /// What to run; absent in configs made without one.
    #[serde(default)]
    pub config: Option<RunConfig>,
    /// Absent from the configs of artifacts that are not images.
    #[serde(default)]
    pub rootfs: Option<RootFs>,
}

/// The `rootfs` object of an image config.
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct RootFs {
    /// The digest of each layer's uncompressed tar, base first.
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// What a container runtime would run: the `config` object of the image config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct RunConfig {
    /// `NAME=VALUE` pairs.
    #[serde(default)]
    pub env: Option<Vec<String>>,
    /// The program and its first arguments.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// Arguments after the Entrypoint, or the command when there is none.
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// The directory the command starts in.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// `user`, `uid`, `user:group` or `uid:gid`.
    #[serde(default)]
    pub user: Option<String>,
    /// The signal that asks the command to stop (`SIGTERM` when absent).
    #[serde(default)]
    pub stop_signal: Option<String>,
}

/// One image of a `docker save` archive's `manifest.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct DockerArchiveEntry {
    /// The member holding the image config.
    pub config: String,
    /// The names the image was saved under (`repo:tag`).
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    /// The members holding the layers, base first.
    pub layers: Vec<String>,
}

/// Which kind of document a blob holds, from its media type or, when a
/// layout omits it, from its shape.
pub enum Document {
    /// An index or manifest list: pick a manifest from it.
    Index(Index),
    /// A manifest: the image itself.
    Manifest(Manifest),
}

/// Parses a manifest or index; `what` names the document in errors.
///
/// # Errors
///
/// [`SourceError::Document`](super::SourceError::Document) when the bytes are
/// not JSON of the expected shape, or the media type is neither an index nor
/// a manifest.
///
/// # Examples
///
/// ```
/// use initramfs_stream::source::spec::{self, Document};
///
/// let json = br#"{"schemaVersion": 2, "manifests": []}"#;
/// let doc = spec::parse_document(json, spec::MEDIA_OCI_INDEX, "index.json")?;
/// assert!(matches!(doc, Document::Index(i) if i.manifests.is_empty()));
/// # Ok::<(), initramfs_stream::source::SourceError>(())
/// ```
pub fn parse_document(
    bytes: &[u8],
    media_type: &str,
    what: &str,
) -> Result<Document, super::SourceError> {
    let invalid = |e: serde_json::Error| super::SourceError::Document {
        what: what.to_string(),
        reason: format!(
            "invalid JSON document: {}",
            crate::path::escape(e.to_string().as_bytes())
        ),
    };
    match media_type {
        MEDIA_OCI_INDEX | MEDIA_DOCKER_LIST => Ok(Document::Index(
            serde_json::from_slice(bytes).map_err(invalid)?,
        )),
        MEDIA_OCI_MANIFEST | MEDIA_DOCKER_MANIFEST => Ok(Document::Manifest(
            serde_json::from_slice(bytes).map_err(invalid)?,
        )),
        "" => {
            let v: serde_json::Value = serde_json::from_slice(bytes).map_err(invalid)?;
            if v.get("manifests").is_some() {
                Ok(Document::Index(serde_json::from_value(v).map_err(invalid)?))
            } else {
                Ok(Document::Manifest(
                    serde_json::from_value(v).map_err(invalid)?,
                ))
            }
        }
        other => Err(super::SourceError::Document {
            what: what.to_string(),
            reason: format!(
                "unsupported media type '{}'",
                crate::path::escape(other.as_bytes())
            ),
        }),
    }
}
