//! What can go wrong while finding and reading an image, by kind.
//!
//! Every message is one line that names the file, member, URL or blob at
//! fault; text that came from an image, a registry or an engine is escaped
//! before it is stored here. Causes stay reachable through
//! `std::error::Error::source` (an I/O error keeps its `ErrorKind`, an HTTP
//! client error its TLS cause), so callers decide on kinds, never on text.
//! Messages name problems, not command-line flags: a front end adds those.

use std::fmt;
use std::path::PathBuf;

use super::Digest;

/// A failure to find or read an image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// Reading a file, an archive member or a stream failed.
    #[error("{what}: {source}")]
    Io {
        /// The file, member, URL or blob, as a phrase for the message.
        what: String,
        /// The error, its kind kept.
        #[source]
        source: std::io::Error,
    },
    /// A registry or engine answered a request with a failure status.
    #[error("GET {url}: {}{detail}", status_text(*status))]
    Http {
        /// The URL asked for.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The server's own words, escaped, as ` (...)`, or empty.
        detail: String,
    },
    /// A request got no answer: connection, TLS or protocol failure.
    #[error("{what}: {}", causes(&**source))]
    Transport {
        /// The file, member, URL or blob, as a phrase for the message.
        what: String,
        /// What failed, by type.
        kind: TransportKind,
        /// The HTTP client's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Bytes that do not hash to the digest that names them.
    #[error("{what}: digest mismatch: expected {expected}, got {got}")]
    Digest {
        /// The file, member, URL or blob, as a phrase for the message.
        what: String,
        /// The digest that names the bytes.
        expected: Digest,
        /// The digest of the bytes read.
        got: Digest,
    },
    /// The registry refused the credentials, or wants some and none were found.
    /// Boxed: it is the largest, and the rarest.
    #[error("{0}")]
    Auth(Box<AuthError>),
    /// A document of the image (index, manifest, config, archive manifest)
    /// that cannot be read as one.
    #[error("{what}: {reason}")]
    Document {
        /// The document, as a phrase for the message.
        what: String,
        /// What is wrong with it, escaped.
        reason: String,
    },
    /// Credentials could not be looked up: an auth file or a helper failed.
    #[error("{what}: {reason}")]
    Credentials {
        /// The auth file or helper.
        what: String,
        /// What went wrong, escaped.
        reason: String,
    },
    /// The options give a user name without a password, or the reverse.
    #[error("registry credentials: a user name and a password go together")]
    HalfCredential,
    /// The extra CA certificates cannot be used.
    #[error("CA certificates {}: {reason}", path.display())]
    CaFile {
        /// The PEM file.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// A stream that cannot be read again is larger than the memory it may
    /// be held in.
    #[error(
        "{what}: the stream is larger than the memory limit ({}, held compressed)",
        crate::human_bytes(*limit)
    )]
    MemoryLimit {
        /// The stream.
        what: String,
        /// The bound, in bytes.
        limit: u64,
    },
    /// A reference that names no image this crate can read.
    #[error("{0}")]
    Reference(String),
    /// The image is not what was asked for, or breaks the image formats.
    #[error("{0}")]
    Image(String),
    /// A broken assumption of this crate, not of the input.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why a request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportKind {
    /// The server's certificate did not verify.
    Certificate,
    /// The server did not speak TLS (a plain-HTTP server, most likely).
    NotTls,
    /// Another TLS failure.
    Tls,
    /// Connecting, or the connection, failed; worth another try.
    Connection,
    /// The request could not be made at all (bad URL, redirect loop).
    Request,
}

impl TransportKind {
    /// Connection failures may pass; TLS and request failures will not.
    pub fn retryable(self) -> bool {
        self == TransportKind::Connection
    }

    /// Classifies an HTTP client error by the types in its source chain.
    pub(crate) fn of(e: &reqwest::Error) -> TransportKind {
        if e.is_builder() || e.is_redirect() {
            return TransportKind::Request;
        }
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(c) = cause {
            if let Some(tls) = c.downcast_ref::<rustls::Error>() {
                return match tls {
                    rustls::Error::InvalidCertificate(_) => TransportKind::Certificate,
                    rustls::Error::InvalidMessage(_) => TransportKind::NotTls,
                    _ => TransportKind::Tls,
                };
            }
            // An I/O error's `source()` skips the error it wraps: step into it.
            cause = match c
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                None => c.source(),
            };
        }
        TransportKind::Connection
    }
}

/// Who refused, and with which credentials.
#[derive(Debug)]
pub struct AuthError {
    /// The registry, `host[:port]`.
    pub host: String,
    /// The credentials tried, or `None` when none were found.
    pub tried: Option<Tried>,
    /// Where credentials were looked for, when none were found.
    pub looked_in: Vec<PathBuf>,
    /// The registry's reason, escaped, as ` (...)`, or empty.
    pub reason: String,
}

/// Credentials that were tried.
#[derive(Debug)]
pub struct Tried {
    /// The user name.
    pub username: String,
    /// Where they came from; `None` for the ones given in `RegistryOptions`.
    pub from: Option<String>,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = &self.host;
        let reason = &self.reason;
        match &self.tried {
            Some(Tried {
                username,
                from: Some(from),
            }) => write!(
                f,
                "{host}: authentication failed for user '{username}' with credentials from \
                 {from}{reason}"
            ),
            Some(Tried {
                username,
                from: None,
            }) => write!(
                f,
                "{host}: authentication failed for user '{username}' with the credentials \
                 given{reason}"
            ),
            None => {
                let files: Vec<String> = self
                    .looked_in
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                let files = if files.is_empty() {
                    "no auth file".to_string()
                } else {
                    files.join(", ")
                };
                write!(
                    f,
                    "{host}: authentication required, and no credentials for it were found \
                     (looked in {files}){reason}"
                )
            }
        }
    }
}

impl SourceError {
    /// The image breaks the formats or lacks what was asked for.
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        SourceError::Image(msg.into())
    }

    pub(crate) fn io(what: impl fmt::Display, source: std::io::Error) -> Self {
        SourceError::Io {
            what: what.to_string(),
            source,
        }
    }

    pub(crate) fn transport(what: impl Into<String>, e: reqwest::Error) -> Self {
        SourceError::Transport {
            what: what.into(),
            kind: TransportKind::of(&e),
            source: Box::new(e),
        }
    }

    /// The I/O error kind at the root of this failure, if it is one.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            SourceError::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }

    /// As an I/O error for a byte stream, kept whole for `source()`.
    pub(crate) fn into_io(self) -> std::io::Error {
        let kind = match &self {
            SourceError::Io { source, .. } => source.kind(),
            SourceError::Digest { .. } => std::io::ErrorKind::InvalidData,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, self)
    }
}

/// `404 Not Found`: the code with its reason, as servers are read.
fn status_text(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status) {
        Ok(code) => code.to_string(),
        Err(_) => status.to_string(),
    }
}

/// An error and its causes on one line, without repeats.
pub(crate) fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cause = c.source();
    }
    parts.join(": ")
}
