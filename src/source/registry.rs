//! Images pulled from a registry (the Distribution API): manifests and
//! configs fetched and verified, layer blobs streamed from the socket.
//!
//! oci-client answers the registry's authentication challenge (bearer token
//! or basic); the GETs themselves are made here, because retrying them needs
//! what oci-client does not expose: `Retry-After`, `Range` resumption, and
//! the raw body as `Bytes`.
//!
//! Each blob is downloaded once per run: the compressed bytes of its first
//! download are kept (the `Bytes` the socket gave, not copies) for later
//! reads, up to `memory_limit`, until every layer the blob makes is
//! released (`ImageSource::layer_done`); past the limit a blob is fetched
//! again. Nothing goes to disk.

use std::fmt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hashbrown::HashMap;
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::RegistryOperation;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use reqwest::StatusCode;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

use super::credentials::{self, Credential};
use super::error::{AuthError, TransportKind, Tried};
use super::reference::{RegistryImage, DOCKER_HUB};
use super::spec::{self, Descriptor, Manifest, MAX_DOCUMENT_SIZE};
use super::store::{BlobReader, RemoteBlobs, Store};
use super::{
    esc, image_from_manifest, resolve_manifest, Digest, Fetched, ImageReference, ImageSource,
    Platform, SourceError,
};
use crate::io::ChannelReader;

/// Default bound on the compressed blobs kept in memory between passes.
pub const DEFAULT_MEMORY_LIMIT: u64 = 1 << 30;

const USER_AGENT: &str = concat!("initramfs-stream/", env!("CARGO_PKG_VERSION"));
/// Attempts per request (connection errors, 429, 5xx) before giving up.
const ATTEMPTS: u32 = 6;
/// Interruptions of one blob's body survived before giving up.
const RESUMES: u32 = 10;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(8);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Chunks in flight between a download and its reader.
const CHANNEL_CHUNKS: usize = 64;

const MANIFEST_TYPES: &[&str] = &[
    spec::MEDIA_OCI_MANIFEST,
    spec::MEDIA_OCI_INDEX,
    spec::MEDIA_DOCKER_MANIFEST,
    spec::MEDIA_DOCKER_LIST,
];

/// How to reach a registry: credentials, transport, memory for blobs.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegistryOptions {
    /// Explicit credentials (`--username`, `--password-stdin`); otherwise
    /// the auth files and credential helpers are consulted.
    pub username: Option<String>,
    /// The password or token that goes with `username`.
    pub password: Option<String>,
    /// Talk HTTP instead of HTTPS.
    pub plain_http: bool,
    /// Skip TLS certificate verification.
    pub insecure: bool,
    /// Extra PEM CA certificates to trust.
    pub ca_file: Option<PathBuf>,
    /// Compressed blobs kept in memory for the second pass, in bytes.
    pub memory_limit: u64,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            username: None,
            password: None,
            plain_http: false,
            insecure: false,
            ca_file: None,
            memory_limit: DEFAULT_MEMORY_LIMIT,
        }
    }
}

impl fmt::Debug for RegistryOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryOptions")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("plain_http", &self.plain_http)
            .field("insecure", &self.insecure)
            .field("ca_file", &self.ca_file)
            .field("memory_limit", &self.memory_limit)
            .finish()
    }
}

/// Resolves a registry image: manifest (through an index by platform),
/// config, layers.
pub(super) async fn resolve(
    reference: ImageReference,
    image: &RegistryImage,
    options: &RegistryOptions,
    platform: Option<&Platform>,
) -> Result<ImageSource, SourceError> {
    let client = Arc::new(Client::new(image, options).await?);
    client.authorize().await?;
    let (bytes, media_type) = client
        .manifest(&image.manifest_reference(), image.digest.as_ref())
        .await?;
    let first = Fetched {
        digest: Digest::of(&bytes),
        bytes,
        media_type,
    };
    let fetch = |desc: Descriptor| {
        let (client, reference) = (&client, &reference);
        async move {
            let digest = Digest::parse(&desc.digest)
                .map_err(|e| SourceError::new(format!("{reference}: index entry: {e}")))?;
            let (bytes, media_type) = client.manifest(&desc.digest, Some(&digest)).await?;
            Ok(Fetched {
                bytes,
                media_type,
                digest,
            })
        }
    };
    let (manifest, digest) = resolve_manifest(&reference, platform, first, fetch).await?;
    let store = RegistryStore::new(client, &manifest, options.memory_limit)?;
    image_from_manifest(
        Store::Remote(Arc::new(store)),
        reference,
        manifest,
        Some(digest),
    )
    .await
}

/// The image as oci-client names it, on the API's host.
fn oci_reference(image: &RegistryImage, host: &str) -> oci_client::Reference {
    match &image.digest {
        Some(d) => oci_client::Reference::with_digest(
            host.to_string(),
            image.repository.clone(),
            d.to_string(),
        ),
        None => oci_client::Reference::with_tag(
            host.to_string(),
            image.repository.clone(),
            image.manifest_reference(),
        ),
    }
}

/// The credentials given in the options, else those the auth `files` (or
/// their helpers) hold for this registry and repository, else none.
async fn credential(
    image: &RegistryImage,
    options: &RegistryOptions,
    files: &[PathBuf],
) -> Result<Option<Credential>, SourceError> {
    match (&options.username, &options.password) {
        (Some(u), Some(p)) => Ok(Some(Credential {
            username: u.clone(),
            password: p.clone(),
            source: String::new(),
        })),
        (Some(_), None) | (None, Some(_)) => Err(SourceError::HalfCredential),
        (None, None) => credentials::lookup(files, &image.registry, &image.repository).await,
    }
}

/// The CA certificates of a `--ca-file`, in the forms the two clients take.
struct ExtraRoots {
    certs: Vec<reqwest::Certificate>,
    /// One PEM block per certificate, for oci-client.
    pem_blocks: Vec<Vec<u8>>,
}

impl ExtraRoots {
    async fn read(ca: &std::path::Path) -> Result<ExtraRoots, SourceError> {
        let fail = |reason: String| SourceError::CaFile {
            path: ca.to_path_buf(),
            reason,
        };
        let pem = tokio::fs::read(ca).await.map_err(|e| fail(e.to_string()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| fail(e.to_string()))?;
        if certs.is_empty() {
            return Err(fail("no PEM certificate in it".into()));
        }
        Ok(ExtraRoots {
            certs,
            pem_blocks: split_pem(&pem),
        })
    }
}

/// reqwest for GETs and oci-client for the handshake, with the same
/// protocol, timeouts, certificate checks and extra roots.
fn http_clients(
    host: &str,
    options: &RegistryOptions,
    roots: Option<ExtraRoots>,
) -> Result<(reqwest::Client, oci_client::Client), SourceError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(60))
        .danger_accept_invalid_certs(options.insecure);
    let mut oci_config = oci_client::client::ClientConfig {
        protocol: if options.plain_http {
            oci_client::client::ClientProtocol::Http
        } else {
            oci_client::client::ClientProtocol::Https
        },
        accept_invalid_certificates: options.insecure,
        connect_timeout: Some(Duration::from_secs(30)),
        read_timeout: Some(Duration::from_secs(60)),
        user_agent: USER_AGENT,
        platform_resolver: None,
        ..Default::default()
    };
    if let Some(roots) = roots {
        builder = builder.tls_certs_merge(roots.certs);
        for block in roots.pem_blocks {
            oci_config
                .extra_root_certificates
                .push(oci_client::client::Certificate {
                    encoding: oci_client::client::CertificateEncoding::Pem,
                    data: block,
                });
        }
    }
    let http = builder
        .build()
        .map_err(|e| SourceError::transport(format!("{host}: cannot set up HTTP"), e))?;
    let oci = oci_client::Client::try_from(oci_config)
        .map_err(|e| SourceError::new(format!("{host}: cannot set up HTTP: {e}")))?;
    Ok((http, oci))
}

/// The registry connection: oci-client for the authentication handshake,
/// reqwest (the same client library, configured the same way) for GETs.
struct Client {
    oci: oci_client::Client,
    http: reqwest::Client,
    reference: oci_client::Reference,
    /// `scheme://host/v2/repository`
    base: String,
    host: String,
    auth: RegistryAuth,
    credential: Option<Credential>,
    /// The credential came from `RegistryOptions`, not from a file.
    explicit: bool,
    /// Where credentials were looked for, for the message when none fit.
    looked_in: Vec<PathBuf>,
    header: tokio::sync::RwLock<Option<HeaderValue>>,
}

impl Client {
    /// In named steps: the image's address, the credentials, the extra CA
    /// certificates, then the two HTTP clients. Failures come in that order.
    async fn new(image: &RegistryImage, options: &RegistryOptions) -> Result<Client, SourceError> {
        // Docker Hub's API lives on its own host.
        let host = if image.registry == DOCKER_HUB {
            "registry-1.docker.io".to_string()
        } else {
            image.registry.clone()
        };
        let scheme = if options.plain_http { "http" } else { "https" };
        let reference = oci_reference(image, &host);
        let files = credentials::auth_files();
        let credential = credential(image, options, &files).await?;
        let auth = match &credential {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        };
        let roots = match &options.ca_file {
            Some(ca) => Some(ExtraRoots::read(ca).await?),
            None => None,
        };
        let (http, oci) = http_clients(&host, options, roots)?;
        Ok(Client {
            oci,
            http,
            reference,
            base: format!("{scheme}://{host}/v2/{}", image.repository),
            host,
            auth,
            credential,
            explicit: options.username.is_some(),
            looked_in: files,
            header: tokio::sync::RwLock::new(None),
        })
    }

    /// Answers the registry's challenge: a bearer token for pulling this
    /// repository, or basic credentials, or nothing.
    async fn authorize(&self) -> Result<(), SourceError> {
        let mut attempt = 0;
        let header = loop {
            match self
                .oci
                .auth(&self.reference, &self.auth, RegistryOperation::Pull)
                .await
            {
                Ok(Some(token)) => break Some(header_value(&format!("Bearer {token}"))?),
                Ok(None) => break self.credential.as_ref().map(basic).transpose()?,
                Err(OciDistributionError::AuthenticationFailure(reason)) => {
                    return Err(self.auth_error(Some(&reason)))
                }
                Err(OciDistributionError::RequestError(e))
                    if TransportKind::of(&e).retryable() && attempt + 1 < ATTEMPTS =>
                {
                    attempt += 1;
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(OciDistributionError::RequestError(e)) => {
                    return Err(SourceError::transport(
                        format!("{}: cannot reach the registry", self.host),
                        e,
                    ))
                }
                Err(e) => {
                    return Err(SourceError::new(format!(
                        "{}: authentication: {}",
                        self.host,
                        esc(&e.to_string())
                    )))
                }
            }
        };
        *self.header.write().await = header;
        Ok(())
    }

    fn auth_error(&self, reason: Option<&str>) -> SourceError {
        let reason = reason
            .map(|r| r.lines().next().unwrap_or("").trim().to_string())
            .filter(|r| !r.is_empty())
            .map(|r| format!(" ({})", esc(&r)))
            .unwrap_or_default();
        SourceError::Auth(Box::new(AuthError {
            host: self.host.clone(),
            tried: self.credential.as_ref().map(|c| Tried {
                username: esc(&c.username),
                from: (!self.explicit).then(|| c.source.clone()),
            }),
            looked_in: if self.credential.is_none() {
                self.looked_in.clone()
            } else {
                Vec::new()
            },
            reason,
        }))
    }

    /// GET with retries: connection errors, 429 and 5xx are retried with
    /// backoff (or after `Retry-After`); a 401 renews the authorization once
    /// (tokens expire). `from` > 0 asks for the rest of a blob. Requests to
    /// other hosts (foreign layer URLs) carry no credentials.
    async fn get(
        &self,
        url: &str,
        accept: &[&str],
        from: u64,
        foreign: bool,
    ) -> Result<reqwest::Response, SourceError> {
        let mut attempt = 0;
        let mut renewed = false;
        loop {
            let mut request = self.http.get(url);
            if !accept.is_empty() {
                request = request.header(ACCEPT, accept.join(", "));
            }
            if from > 0 {
                request = request.header(RANGE, format!("bytes={from}-"));
            }
            if !foreign {
                if let Some(h) = self.header.read().await.clone() {
                    request = request.header(AUTHORIZATION, h);
                }
            }
            let wait = match request.send().await {
                Err(e) if TransportKind::of(&e).retryable() && attempt + 1 < ATTEMPTS => {
                    backoff(attempt + 1)
                }
                Err(e) => return Err(SourceError::transport(format!("GET {url}"), e)),
                Ok(r) if r.status().is_success() => return Ok(r),
                Ok(r) if r.status() == StatusCode::UNAUTHORIZED && !foreign => {
                    if renewed {
                        return Err(self.auth_error(None));
                    }
                    renewed = true;
                    self.authorize().await?;
                    continue;
                }
                Ok(r)
                    if (r.status() == StatusCode::TOO_MANY_REQUESTS
                        || r.status().is_server_error())
                        && attempt + 1 < ATTEMPTS =>
                {
                    retry_after(&r).unwrap_or_else(|| backoff(attempt + 1))
                }
                Ok(r) => {
                    let status = r.status().as_u16();
                    let detail = registry_message(r).await;
                    return Err(SourceError::Http {
                        url: url.to_string(),
                        status,
                        detail,
                    });
                }
            };
            attempt += 1;
            tokio::time::sleep(wait).await;
        }
    }

    /// A manifest or index by tag or digest, with its media type. Fetched by
    /// digest, its bytes must hash to it.
    async fn manifest(
        &self,
        reference: &str,
        expected: Option<&Digest>,
    ) -> Result<(Vec<u8>, String), SourceError> {
        let url = format!("{}/manifests/{reference}", self.base);
        let what = format!("{}: manifest {reference}", self.host);
        let mut attempt = 0;
        loop {
            let response = self.get(&url, MANIFEST_TYPES, 0, false).await?;
            let media_type = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
                .filter(|v| v.starts_with("application/vnd."))
                .unwrap_or_default();
            let header_digest = response
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| Digest::parse(v).ok());
            match read_limited(response, MAX_DOCUMENT_SIZE).await {
                Ok(Some(bytes)) => {
                    let got = Digest::of(&bytes);
                    if let Some(want) = expected.or(header_digest.as_ref()) {
                        if *want != got {
                            return Err(SourceError::Digest {
                                what,
                                expected: want.clone(),
                                got,
                            });
                        }
                    }
                    return Ok((bytes, media_type));
                }
                Ok(None) => {
                    return Err(SourceError::Document {
                        what,
                        reason: format!("larger than the {MAX_DOCUMENT_SIZE}-byte limit"),
                    })
                }
                Err(e) if TransportKind::of(&e).retryable() && attempt + 1 < ATTEMPTS => {
                    attempt += 1;
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) => return Err(SourceError::transport(what, e)),
            }
        }
    }

    /// Streams a blob into `tx`, resuming with a Range request after an
    /// interruption. Foreign layers are tried at their URLs first.
    async fn download(
        &self,
        digest: &Digest,
        info: &BlobInfo,
        tx: &mpsc::Sender<std::io::Result<Bytes>>,
        mut keep: Option<&mut Vec<Bytes>>,
    ) -> Result<(), SourceError> {
        let what = format!("blob {digest}");
        let mut sources: Vec<(String, bool)> =
            info.urls.iter().map(|u| (u.clone(), true)).collect();
        sources.push((format!("{}/blobs/{digest}", self.base), false));
        let mut source = 0;
        let mut received: u64 = 0;
        let mut interruptions = 0;
        loop {
            let (url, foreign) = &sources[source];
            let response = match self.get(url, &[], received, *foreign).await {
                Ok(r) => r,
                Err(e) if source + 1 < sources.len() => {
                    let _ = e;
                    source += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            // Without Range support the body starts again from byte 0.
            let mut skip = 0;
            if received > 0 {
                let resumed_at = (response.status() == StatusCode::PARTIAL_CONTENT)
                    .then(|| content_range_start(&response))
                    .flatten();
                match resumed_at {
                    Some(start) if start == received => {}
                    Some(start) => {
                        return Err(SourceError::new(format!(
                            "{what}: asked to resume at byte {received}, got bytes from {start}"
                        )))
                    }
                    None => skip = received,
                }
            }
            let mut response = response;
            let ended = loop {
                match response.chunk().await {
                    Ok(Some(mut chunk)) => {
                        if skip > 0 {
                            let n = skip.min(chunk.len() as u64);
                            skip -= n;
                            let _ = chunk.split_to(n as usize);
                            if chunk.is_empty() {
                                continue;
                            }
                        }
                        received += chunk.len() as u64;
                        if received > info.size {
                            return Err(SourceError::new(format!(
                                "{what}: more than the {} bytes the manifest gives",
                                info.size
                            )));
                        }
                        if let Some(kept) = keep.as_deref_mut() {
                            kept.push(chunk.clone());
                        }
                        if tx.send(Ok(chunk)).await.is_err() {
                            return Ok(()); // the reader stopped; its error is reported
                        }
                    }
                    Ok(None) => break None,
                    Err(e) => break Some(e),
                }
            };
            if ended.is_none() && received == info.size {
                return Ok(());
            }
            interruptions += 1;
            if interruptions > RESUMES {
                let what = format!(
                    "{what}: interrupted {interruptions} times, at byte {received} of {}",
                    info.size
                );
                return Err(match ended {
                    Some(e) => SourceError::transport(what, e),
                    None => SourceError::io(
                        what,
                        std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the body ended early",
                        ),
                    ),
                });
            }
            tokio::time::sleep(backoff(interruptions.min(4))).await;
        }
    }
}

/// Everything a manifest says about one blob that a download needs.
#[derive(Debug, Clone)]
struct BlobInfo {
    size: u64,
    urls: Vec<String>,
    /// How many layers of the image are this blob (0 for the config).
    layers: usize,
}

/// The blobs of one resolved image and the ones kept in memory.
pub struct RegistryStore {
    client: Arc<Client>,
    blobs: HashMap<Digest, BlobInfo>,
    limit: u64,
    cache: Arc<Mutex<Cache>>,
}

#[derive(Default)]
struct Cache {
    /// Bytes reserved for blobs kept or being kept.
    reserved: u64,
    /// Blobs whose first download has started; later ones are not kept.
    fetched: hashbrown::HashSet<Digest>,
    kept: HashMap<Digest, Kept>,
}

struct Kept {
    chunks: Vec<Bytes>,
    /// Layers made of this blob not yet released.
    layers_left: usize,
}

impl RegistryStore {
    fn new(
        client: Arc<Client>,
        manifest: &Manifest,
        limit: u64,
    ) -> Result<RegistryStore, SourceError> {
        let mut blobs: HashMap<Digest, BlobInfo> = HashMap::new();
        let config = Digest::parse(&manifest.config.digest)
            .map_err(|e| SourceError::new(format!("{}: config: {e}", client.host)))?;
        blobs.insert(
            config,
            BlobInfo {
                size: manifest.config.size,
                urls: Vec::new(),
                layers: 0,
            },
        );
        for (i, layer) in manifest.layers.iter().enumerate() {
            let digest = Digest::parse(&layer.digest)
                .map_err(|e| SourceError::new(format!("{}: layer {i}: {e}", client.host)))?;
            let urls = layer
                .urls
                .iter()
                .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
                .cloned()
                .collect();
            blobs
                .entry(digest)
                .or_insert(BlobInfo {
                    size: layer.size,
                    urls,
                    layers: 0,
                })
                .layers += 1;
        }
        Ok(RegistryStore {
            client,
            blobs,
            limit,
            cache: Arc::default(),
        })
    }

    fn digest_of(name: &str) -> Option<Digest> {
        Digest::parse(&format!("sha256:{}", name.strip_prefix("blobs/sha256/")?)).ok()
    }
}

impl RemoteBlobs for RegistryStore {
    fn describe(&self, name: &str) -> String {
        format!(
            "{}/{}",
            self.client.base,
            name.replace("blobs/sha256/", "blobs/sha256:")
        )
    }

    fn exists(&self, name: &str) -> bool {
        Self::digest_of(name).is_some_and(|d| self.blobs.contains_key(&d))
    }

    /// A stream of the blob's bytes: from memory when the first pass kept
    /// them, else from the registry (kept for the next pass when it fits).
    fn open(&self, name: &str) -> Result<(BlobReader, u64), SourceError> {
        let digest = Self::digest_of(name)
            .filter(|d| self.blobs.contains_key(d))
            .ok_or_else(|| {
                SourceError::Internal(format!("{}: not part of the image", self.describe(name)))
            })?;
        let info = self.blobs[&digest].clone();
        let keep = {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(kept) = cache.kept.get(&digest) {
                let reader = ChunkReader {
                    chunks: kept.chunks.clone().into(),
                };
                return Ok((Box::new(reader), info.size));
            }
            let fits = cache.reserved.saturating_add(info.size) <= self.limit;
            let keep = info.layers > 0 && fits && cache.fetched.insert(digest.clone());
            if keep {
                cache.reserved += info.size;
            }
            keep
        };

        let size = info.size;
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        let client = Arc::clone(&self.client);
        let cache = Arc::clone(&self.cache);
        tokio::spawn(async move {
            let mut kept = keep.then(Vec::new);
            let result = client.download(&digest, &info, &tx, kept.as_mut()).await;
            if keep {
                let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
                let complete = result.is_ok() && !tx.is_closed();
                match kept.filter(|_| complete) {
                    Some(chunks) => {
                        let layers_left = info.layers;
                        cache.kept.insert(
                            digest,
                            Kept {
                                chunks,
                                layers_left,
                            },
                        );
                    }
                    None => {
                        cache.reserved -= info.size;
                        cache.fetched.remove(&digest);
                    }
                }
            }
            if let Err(e) = result {
                let _ = tx.send(Err(e.into_io())).await;
            }
        });
        Ok((Box::new(ChannelReader::new(rx)), size))
    }

    fn release(&self, name: &str) {
        let Some(digest) = Self::digest_of(name) else {
            return;
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let Some(kept) = cache.kept.get_mut(&digest) else {
            return;
        };
        kept.layers_left = kept.layers_left.saturating_sub(1);
        if kept.layers_left == 0 {
            cache.kept.remove(&digest);
            let size = self.blobs.get(&digest).map_or(0, |b| b.size);
            cache.reserved = cache.reserved.saturating_sub(size);
        }
    }
}

/// A blob kept in memory; chunks are dropped as they are read (the memory
/// goes when the store releases its copy too).
struct ChunkReader {
    chunks: std::collections::VecDeque<Bytes>,
}

impl AsyncRead for ChunkReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        while let Some(front) = self.chunks.front_mut() {
            if front.is_empty() {
                self.chunks.pop_front();
                continue;
            }
            let n = front.len().min(buf.remaining());
            buf.put_slice(&front.split_to(n));
            break;
        }
        Poll::Ready(Ok(()))
    }
}

fn basic(c: &Credential) -> Result<HeaderValue, SourceError> {
    use base64::Engine;
    let raw = format!("{}:{}", c.username, c.password);
    header_value(&format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    ))
}

fn header_value(s: &str) -> Result<HeaderValue, SourceError> {
    let mut v = HeaderValue::from_str(s)
        .map_err(|_| SourceError::new("credentials contain characters not allowed in HTTP"))?;
    v.set_sensitive(true);
    Ok(v)
}

fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

/// `Retry-After` in seconds (registries do not send HTTP dates in practice).
fn retry_after(r: &reqwest::Response) -> Option<Duration> {
    let secs: u64 = r
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

fn content_range_start(r: &reqwest::Response) -> Option<u64> {
    let v = r.headers().get(CONTENT_RANGE)?.to_str().ok()?;
    let range = v.trim().strip_prefix("bytes ")?;
    range.split('-').next()?.trim().parse().ok()
}

/// The body of a small document, or `None` past `limit`.
async fn read_limited(
    mut response: reqwest::Response,
    limit: u64,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if response.content_length().is_some_and(|n| n > limit) {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// The registry's own words for an error (`{"errors":[{"message":...}]}`).
async fn registry_message(r: reqwest::Response) -> String {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        message: String,
    }
    let Ok(Some(body)) = read_limited(r, 64 * 1024).await else {
        return String::new();
    };
    match serde_json::from_slice::<Envelope>(&body) {
        Ok(env) if !env.errors.is_empty() => {
            let msgs: Vec<String> = env.errors.into_iter().map(|e| e.message).collect();
            format!(" ({})", esc(&msgs.join("; ")))
        }
        _ => String::new(),
    }
}

fn split_pem(pem: &[u8]) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(pem);
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if line.starts_with("-----BEGIN CERTIFICATE-----") {
            current.clear();
        }
        current.push_str(line);
        current.push('\n');
        if line.starts_with("-----END CERTIFICATE-----") {
            out.push(std::mem::take(&mut current).into_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn chunk_reader_reads_every_chunk() {
        let mut r = ChunkReader {
            chunks: vec![
                Bytes::from_static(b"ab"),
                Bytes::new(),
                Bytes::from_static(b"cde"),
            ]
            .into(),
        };
        let mut out = Vec::new();
        r.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"abcde");
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        assert_eq!(backoff(1), FIRST_BACKOFF);
        assert_eq!(backoff(2), FIRST_BACKOFF * 2);
        assert_eq!(backoff(40), MAX_BACKOFF);
    }

    #[test]
    fn pem_blocks() {
        let pem = b"junk\n-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nBBB\n-----END CERTIFICATE-----\n";
        let blocks = split_pem(pem);
        assert_eq!(blocks.len(), 2);
        assert!(String::from_utf8_lossy(&blocks[1]).contains("BBB"));
    }
}
