//! Registry credentials from where the user already keeps them: the command
//! line, the containers auth file (podman, skopeo), the Docker config, and
//! the credential helpers those name (`docker-credential-NAME get`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::reference::DOCKER_HUB;
use super::{esc, SourceError};

/// A user name and password, and where they were found (for messages).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub password: String,
    pub source: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

/// The files consulted, in order; the first with an entry for the registry
/// wins, as podman does.
pub fn auth_files() -> Vec<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let mut files = Vec::new();
    if let Some(f) = var("REGISTRY_AUTH_FILE") {
        files.push(PathBuf::from(f));
    }
    if let Some(dir) = var("XDG_RUNTIME_DIR") {
        files.push(Path::new(&dir).join("containers/auth.json"));
    }
    match var("DOCKER_CONFIG") {
        Some(dir) => files.push(Path::new(&dir).join("config.json")),
        None => {
            if let Some(home) = var("HOME") {
                files.push(Path::new(&home).join(".docker/config.json"));
            }
        }
    }
    files
}

/// How long a credential helper may take; one that prompts or hangs is
/// killed.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// Looks up credentials for `registry/repository` in the auth files.
/// `None` when no file has any: the pull goes anonymous.
pub async fn lookup(
    files: &[PathBuf],
    registry: &str,
    repository: &str,
) -> Result<Option<Credential>, SourceError> {
    for file in files {
        let text = match tokio::fs::read(file).await {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(SourceError::io(file.display(), e)),
        };
        let config: AuthFile =
            serde_json::from_slice(&text).map_err(|e| SourceError::Credentials {
                what: file.display().to_string(),
                reason: format!("invalid JSON: {e}"),
            })?;
        if let Some(c) = from_file(&config, file, registry, repository).await? {
            return Ok(Some(c));
        }
    }
    Ok(None)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthFile {
    #[serde(default)]
    auths: std::collections::BTreeMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

async fn from_file(
    config: &AuthFile,
    file: &Path,
    registry: &str,
    repository: &str,
) -> Result<Option<Credential>, SourceError> {
    // Docker's order: a registry's own helper, then the default store, then
    // the inline entries.
    if let Some((_, helper)) = best_match(&config.cred_helpers, registry, repository) {
        return run_helper(helper, registry, file).await;
    }
    if let Some(helper) = config.creds_store.as_deref().filter(|h| !h.is_empty()) {
        if let Some(c) = run_helper(helper, registry, file).await? {
            return Ok(Some(c));
        }
    }
    let Some((key, entry)) = best_match(&config.auths, registry, repository) else {
        return Ok(None);
    };
    let source = format!("{} (auths \"{key}\")", file.display());
    let (username, password) = match (&entry.auth, &entry.username, &entry.password) {
        (Some(auth), _, _) if !auth.is_empty() => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|e| bad(&source, format!("auth is not base64: {e}")))?;
            let raw =
                String::from_utf8(raw).map_err(|_| bad(&source, "auth is not UTF-8".into()))?;
            let (u, p) = raw
                .split_once(':')
                .ok_or_else(|| bad(&source, "auth is not base64 of USER:PASSWORD".into()))?;
            (u.to_string(), p.to_string())
        }
        (_, Some(u), Some(p)) => (u.clone(), p.clone()),
        _ => return Ok(None),
    };
    Ok(Some(Credential {
        username,
        password,
        source,
    }))
}

fn bad(what: &str, reason: String) -> SourceError {
    SourceError::Credentials {
        what: what.to_string(),
        reason,
    }
}

/// The entry whose key names this registry, or the longest that names a
/// namespace of it (`host/org` for `host/org/app`), as the containers auth
/// file allows. Keys may carry a scheme and a path (`https://host/v1/`).
fn best_match<'a, V>(
    map: &'a std::collections::BTreeMap<String, V>,
    registry: &str,
    repository: &str,
) -> Option<(&'a str, &'a V)> {
    let full = format!("{registry}/{repository}");
    map.iter()
        .filter_map(|(key, v)| {
            let k = normalize_key(key);
            let hit = k == registry
                || (full.starts_with(&k) && full.as_bytes().get(k.len()) == Some(&b'/'));
            hit.then_some((k.len(), key.as_str(), v))
        })
        .max_by_key(|(len, _, _)| *len)
        .map(|(_, k, v)| (k, v))
}

fn normalize_key(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let mut key = key.trim_end_matches('/').to_string();
    // Legacy URLs name the API version: `host/v1`, `host/v2`.
    for suffix in ["/v1", "/v2"] {
        if let Some(k) = key.strip_suffix(suffix) {
            key = k.to_string();
        }
    }
    match key.as_str() {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
        _ => key,
    }
}

/// The server name helpers are asked about: Docker stores Hub credentials
/// under its legacy URL.
fn helper_server(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        "https://index.docker.io/v1/"
    } else {
        registry
    }
}

#[derive(Deserialize)]
struct HelperReply {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Runs `docker-credential-NAME get` with the server on stdin, as a child
/// process the runtime waits on (no worker thread blocks), killed past
/// `HELPER_TIMEOUT`. A helper that has nothing for the server means
/// anonymous, as with docker.
async fn run_helper(
    helper: &str,
    registry: &str,
    file: &Path,
) -> Result<Option<Credential>, SourceError> {
    let program = format!("docker-credential-{helper}");
    let source = format!("{} (named in {})", esc(&program), file.display());
    let mut child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| SourceError::io(format!("cannot run {source}"), e))?;
    let server = helper_server(registry).as_bytes().to_vec();
    let stdin = child.stdin.take();
    let talk = async move {
        if let Some(mut stdin) = stdin {
            // A helper that exits without reading is judged by its status below.
            let _ = stdin.write_all(&server).await;
        }
        child.wait_with_output().await
    };
    let out = match tokio::time::timeout(HELPER_TIMEOUT, talk).await {
        Ok(out) => out.map_err(|e| SourceError::io(&source, e))?,
        Err(_) => {
            return Err(bad(
                &source,
                format!("no answer within {}s", HELPER_TIMEOUT.as_secs()),
            ))
        }
    };
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stdout).trim().to_string()
            + String::from_utf8_lossy(&out.stderr).trim();
        // The helper protocol's only way to say "nothing stored": this text
        // (docker-credential-helpers' ErrCredentialsNotFound).
        if said.to_ascii_lowercase().contains("credentials not found") {
            return Ok(None);
        }
        let said = esc(said.lines().next().unwrap_or(""));
        return Err(bad(&source, format!("failed ({}): {said}", out.status)));
    }
    let reply: HelperReply = serde_json::from_slice(&out.stdout)
        .map_err(|e| bad(&source, format!("invalid reply: {}", esc(&e.to_string()))))?;
    if reply.username == "<token>" {
        return Err(bad(
            &source,
            "gave an identity token, which is not supported; give a user name and password instead"
                .into(),
        ));
    }
    if reply.username.is_empty() && reply.secret.is_empty() {
        return Ok(None);
    }
    Ok(Some(Credential {
        username: reply.username,
        password: reply.secret,
        source,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, json: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, json).unwrap();
        p
    }

    #[tokio::test]
    async fn auths_entries_and_keys() {
        let dir = tempfile::tempdir().unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode("u:p:w");
        let f = write(
            dir.path(),
            "a.json",
            &format!(
                r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{auth}"}},
                    "reg:5000/team": {{"auth": "{auth}"}},
                    "reg:5000": {{"username": "x", "password": "y"}}}}}}"#
            ),
        );
        let files = [dir.path().join("missing.json"), f];
        let hub = lookup(&files, "docker.io", "library/alpine")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((hub.username.as_str(), hub.password.as_str()), ("u", "p:w"));
        let team = lookup(&files, "reg:5000", "team/app")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(team.username, "u");
        assert!(team.source.contains("reg:5000/team"), "{}", team.source);
        let other = lookup(&files, "reg:5000", "teamx/app")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(other.username, "x");
        assert!(lookup(&files, "elsewhere:1", "a").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn first_file_with_an_entry_wins() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(
            dir.path(),
            "a.json",
            r#"{"auths": {"other": {"auth": "eDp5"}}}"#,
        );
        let b = write(
            dir.path(),
            "b.json",
            r#"{"auths": {"reg": {"username": "b", "password": "c"}}}"#,
        );
        let c = lookup(&[a, b], "reg", "x").await.unwrap().unwrap();
        assert_eq!(c.username, "b");
        assert!(c.source.contains("b.json"));
    }

    #[tokio::test]
    async fn bad_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let f = write(dir.path(), "a.json", "{");
        assert!(lookup(&[f], "reg", "x").await.is_err());
        let f = write(
            dir.path(),
            "b.json",
            r#"{"auths": {"reg": {"auth": "%%%"}}}"#,
        );
        assert!(lookup(&[f], "reg", "x").await.is_err());
    }
}
