//! Images in a local Docker Engine, or in podman's Docker-compatible
//! service, read through the Engine API on its unix socket.
//!
//! `GET /images/NAME/json` gives the image's ID; `GET /images/ID/get`
//! streams the same tar `docker save` writes. That stream is held like any
//! archive read from a pipe (see `held`), but the engine can be asked
//! again: a member that does not fit under the memory limit is streamed
//! anew from the engine each time it is opened, skipping to it. Both
//! requests name the image by its ID, so a tag moved in between cannot
//! mix two images, and the config read must hash to that ID.
//!
//! HTTP/1.1 is spoken by hyper's client connection over a
//! `tokio::net::UnixStream`: hyper is already built for the registry
//! client, and it decodes the chunked body the engine sends.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::held::{HeldArchive, Reread};
use super::store::{normalize, BlobReader, Store};
use super::{
    esc, resolve_docker_archive, Digest, ImageReference, ImageSource, SourceError, TransportKind,
};
use crate::io::ChannelReader;

const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// Answers other than the image stream are small JSON documents.
const MAX_ANSWER: usize = 16 << 20;
/// Chunks in flight between the socket and a reader.
const CHANNEL_CHUNKS: usize = 64;

/// Where the engine listens.
struct Engine {
    socket: PathBuf,
}

impl Engine {
    /// `DOCKER_HOST` (only `unix://` sockets), else the default socket.
    fn from_env() -> Result<Engine, SourceError> {
        match std::env::var("DOCKER_HOST") {
            Ok(host) if !host.is_empty() => match host.strip_prefix("unix://") {
                Some(path) if !path.is_empty() => Ok(Engine {
                    socket: PathBuf::from(path),
                }),
                _ => Err(SourceError::new(format!(
                    "DOCKER_HOST={}: only a unix:// socket is supported for docker-daemon:",
                    esc(&host)
                ))),
            },
            _ => Ok(Engine {
                socket: PathBuf::from(DEFAULT_SOCKET),
            }),
        }
    }

    /// `path` on the engine, as a URL for messages.
    fn url(&self, path: &str) -> String {
        format!("unix://{}{path}", esc(&self.socket.display().to_string()))
    }

    fn describe(&self) -> String {
        format!(
            "the Docker Engine at {}",
            esc(&self.socket.display().to_string())
        )
    }

    async fn get(&self, path: &str) -> Result<Response<Incoming>, SourceError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| self.connect_error(e))?;
        let fail = |e: hyper::Error| SourceError::Transport {
            what: format!("{}: GET {path}", self.describe()),
            kind: TransportKind::Connection,
            source: Box::new(e),
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(fail)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let request = Request::get(path)
            .header(hyper::header::HOST, "docker")
            .body(Empty::<Bytes>::new())
            .map_err(|e| SourceError::Internal(format!("GET {path}: {e}")))?;
        sender.send_request(request).await.map_err(fail)
    }

    fn connect_error(&self, e: std::io::Error) -> SourceError {
        use std::io::ErrorKind::*;
        let why = match e.kind() {
            NotFound => "no such socket; is dockerd (or `podman system service`) running? \
                         DOCKER_HOST=unix://PATH names another socket"
                .to_string(),
            PermissionDenied => "permission denied; run as a member of the socket's group \
                                 (docker), or set DOCKER_HOST to a socket you may use"
                .to_string(),
            ConnectionRefused => "connection refused: nothing is listening; is dockerd \
                                  (or `podman system service`) running?"
                .to_string(),
            _ => e.to_string(),
        };
        SourceError::io(
            format!("cannot reach {}", self.describe()),
            std::io::Error::new(e.kind(), why),
        )
    }

    /// A small answer: its status and body.
    async fn answer(&self, path: &str) -> Result<(StatusCode, Vec<u8>), SourceError> {
        let response = self.get(path).await?;
        let status = response.status();
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| SourceError::Transport {
                what: format!("{}: GET {path}", self.describe()),
                kind: TransportKind::Connection,
                source: Box::new(e),
            })?;
            if let Ok(data) = frame.into_data() {
                if bytes.len() + data.len() > MAX_ANSWER {
                    return Err(SourceError::new(format!(
                        "{}: GET {path}: answer larger than {MAX_ANSWER} bytes",
                        self.describe()
                    )));
                }
                bytes.extend_from_slice(&data);
            }
        }
        Ok((status, bytes))
    }

    /// The `docker save` stream of an image, by ID.
    async fn export(&self, id: &str) -> Result<ChannelReader, SourceError> {
        let path = format!("/images/{id}/get");
        let response = self.get(&path).await?;
        if !response.status().is_success() {
            return Err(SourceError::Http {
                url: self.url(&path),
                status: response.status().as_u16(),
                detail: String::new(),
            });
        }
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        let what = format!("{}: GET {path}", self.describe());
        tokio::spawn(async move {
            let mut body = response.into_body();
            while let Some(frame) = body.frame().await {
                let chunk = match frame {
                    Ok(frame) => match frame.into_data() {
                        Ok(data) => Ok(data),
                        Err(_) => continue,
                    },
                    Err(e) => Err(std::io::Error::other(format!("{what}: {e}"))),
                };
                let failed = chunk.is_err();
                if tx.send(chunk).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(ChannelReader::new(rx))
    }
}

/// The engine's own words for an error: `{"message": "..."}`.
fn engine_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Message {
        message: String,
    }
    match serde_json::from_slice::<Message>(body) {
        Ok(m) => esc(m.message.trim()),
        Err(_) => esc(String::from_utf8_lossy(body).trim()),
    }
}

/// Image names and IDs as the engine takes them in a URL path.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 512
        && !name.starts_with(['/', '.', '-'])
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b))
}

/// Resolves `docker-daemon:NAME`: the image's ID, then its export stream,
/// read as a docker-archive.
pub(super) async fn resolve(
    reference: ImageReference,
    name: &str,
    memory_limit: u64,
) -> Result<ImageSource, SourceError> {
    if !valid_name(name) {
        return Err(SourceError::new(format!(
            "{reference}: '{}' is not an image name, NAME[:TAG], NAME@DIGEST or an image ID",
            esc(name)
        )));
    }
    let engine = Arc::new(Engine::from_env()?);
    let (status, body) = engine.answer(&format!("/images/{name}/json")).await?;
    if status == StatusCode::NOT_FOUND {
        return Err(not_found(&engine, &reference, name).await);
    }
    if !status.is_success() {
        return Err(SourceError::Http {
            url: engine.url(&format!("/images/{name}/json")),
            status: status.as_u16(),
            detail: format!(" ({})", engine_message(&body)),
        });
    }
    #[derive(serde::Deserialize)]
    struct Inspect {
        #[serde(rename = "Id")]
        id: String,
    }
    let id = serde_json::from_slice::<Inspect>(&body)
        .map_err(|e| {
            SourceError::new(format!(
                "{reference}: {}: unexpected image inspection: {e}",
                engine.describe()
            ))
        })?
        .id;
    // podman's compatible API answers with the bare hex.
    let id = if id.contains(':') {
        id
    } else {
        format!("sha256:{id}")
    };
    let digest = Digest::parse(&id).map_err(|e| {
        SourceError::new(format!("{reference}: {}: image ID: {e}", engine.describe()))
    })?;
    let stream = engine.export(&id).await?;
    let again = Export {
        engine: Arc::clone(&engine),
        id: id.clone(),
    };
    let what = reference.to_string();
    let held = HeldArchive::read(what, stream, memory_limit, Some(Box::new(again))).await?;
    let source = resolve_docker_archive(Store::Held(held), reference.clone(), None).await?;
    if source.config_digest.as_ref() != Some(&digest) {
        return Err(SourceError::new(format!(
            "{reference}: the engine exported another image than {id}"
        )));
    }
    Ok(source)
}

/// "no such image", with the engine's images that look like the one asked.
async fn not_found(engine: &Engine, reference: &ImageReference, name: &str) -> SourceError {
    let mut close = Vec::new();
    if let Ok((status, body)) = engine.answer("/images/json").await {
        #[derive(serde::Deserialize)]
        struct Summary {
            #[serde(rename = "RepoTags", default)]
            repo_tags: Option<Vec<String>>,
        }
        if status.is_success() {
            let images: Vec<Summary> = serde_json::from_slice(&body).unwrap_or_default();
            let tags = images
                .into_iter()
                .flat_map(|i| i.repo_tags.unwrap_or_default());
            close = close_matches(name, tags);
        }
    }
    let hint = if close.is_empty() {
        String::new()
    } else {
        format!(" (close: {})", close.join(", "))
    };
    SourceError::new(format!(
        "{reference}: no such image in {}{hint}",
        engine.describe()
    ))
}

/// Tags whose repository's last component is near the one asked for.
fn close_matches(name: &str, tags: impl Iterator<Item = String>) -> Vec<String> {
    let base = |s: &str| -> String {
        let repo = s.split('@').next().unwrap_or(s);
        let last = repo.rsplit('/').next().unwrap_or(repo);
        last.split(':').next().unwrap_or(last).to_string()
    };
    let want = base(name);
    let mut found: Vec<String> = tags
        .filter(|t| t != "<none>:<none>")
        .filter(|t| {
            let got = base(t);
            got.contains(&want) || want.contains(&got) || edit_distance(&got, &want) <= 2
        })
        .map(|t| esc(&t))
        .collect();
    found.sort();
    found.dedup();
    found.truncate(8);
    found
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(here + 1);
            prev = here;
        }
    }
    row[b.len()]
}

/// Members that did not fit: the image exported again, skipped to them.
struct Export {
    engine: Arc<Engine>,
    id: String,
}

impl Reread for Export {
    fn open(&self, name: &str, size: u64) -> Result<BlobReader, SourceError> {
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        let engine = Arc::clone(&self.engine);
        let (id, name) = (self.id.clone(), name.to_string());
        tokio::spawn(async move {
            let result = member(&engine, &id, &name, size, &tx).await;
            if let Err(e) = result {
                let _ = tx.send(Err(e.into_io())).await;
            }
        });
        Ok(Box::new(ChannelReader::new(rx)))
    }
}

/// Streams one member of a fresh export of `id` into `tx`.
async fn member(
    engine: &Engine,
    id: &str,
    name: &str,
    size: u64,
    tx: &mpsc::Sender<std::io::Result<Bytes>>,
) -> Result<(), SourceError> {
    let what = format!("{} (image {id})", engine.describe());
    let io = |e: std::io::Error| SourceError::io(&what, e);
    let stream = engine.export(id).await?;
    let mut archive = tokio_tar::Archive::new(tokio::io::BufReader::new(stream));
    let mut entries = archive.entries().map_err(io)?;
    while let Some(entry) = entries.next().await {
        let mut entry = entry.map_err(io)?;
        let path = normalize(&String::from_utf8_lossy(&entry.path_bytes().map_err(io)?));
        if path != name || !entry.header().entry_type().is_file() {
            continue;
        }
        if entry.effective_size() != size {
            return Err(SourceError::new(format!(
                "{what}: {}: changed size between two exports",
                esc(name)
            )));
        }
        loop {
            let mut chunk = vec![0u8; 256 * 1024];
            let n = entry.read(&mut chunk).await.map_err(io)?;
            if n == 0 {
                return Ok(());
            }
            chunk.truncate(n);
            if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                return Ok(()); // the reader stopped; its error is reported
            }
        }
    }
    Err(SourceError::new(format!(
        "{what}: {} is missing from a second export",
        esc(name)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names() {
        let tags = [
            "app:1",
            "apps:2",
            "other:1",
            "registry.local/team/app:3",
            "<none>:<none>",
        ];
        let got = close_matches("ap:1", tags.iter().map(|s| s.to_string()));
        assert_eq!(got, ["app:1", "apps:2", "registry.local/team/app:3"]);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn names() {
        assert!(valid_name("app:1"));
        assert!(valid_name("localhost/app@sha256:00"));
        assert!(!valid_name("../../containers/json"));
        assert!(!valid_name("a b"));
    }
}
