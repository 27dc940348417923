//! The JSON documents of the OCI image spec and `docker save`, reduced to the
//! fields this tool reads. Unknown fields are ignored, as the spec requires.

use std::collections::BTreeMap;

use serde::Deserialize;

pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
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

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub urls: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// An OCI image index or a Docker manifest list (the same shape).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    #[serde(default)]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// An OCI image manifest or a Docker schema 2 manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// The parts of an image configuration this tool uses.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub config: Option<RunConfig>,
    /// Absent from the configs of artifacts that are not images.
    #[serde(default)]
    pub rootfs: Option<RootFs>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// What a container runtime would run: the `config` object of the image config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub stop_signal: Option<String>,
}

/// One image of a `docker save` archive's `manifest.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerArchiveEntry {
    pub config: String,
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    pub layers: Vec<String>,
}

/// Which kind of document a blob holds, from its media type or, when a
/// layout omits it, from its shape.
pub enum Document {
    Index(Index),
    Manifest(Manifest),
}

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
