//! A real Distribution registry (`docker-registry serve`) on loopback, with
//! the auth variants it supports (htpasswd, token), TLS, a token server, a
//! fault-injecting HTTP proxy, and small images built with umoci and pushed
//! with skopeo.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_initramfs-stream");
pub const USER: &str = "puller";
pub const PASSWORD: &str = "s3cret pass";

pub fn require(cmd: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{cmd}` is not installed; run scripts/test.sh (it installs the test dependencies)"
    );
}

/// Runs a command, panicking with its stderr when it fails.
pub use crate::common::run;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A scratch directory under the target dir, kept for post-mortems, fresh
/// for each run.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("registry-tests")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---------------------------------------------------------------- registry

pub enum Auth {
    None,
    Htpasswd,
    Token(TokenServer),
}

pub struct Registry {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
    pub tls: Option<Tls>,
    pub auth: Auth,
}

impl Registry {
    pub fn start(name: &str, auth: Auth, tls: bool) -> Registry {
        require("docker-registry");
        let dir = scratch(name);
        let port = free_port();
        let mut config = format!(
            "version: 0.1\n\
             log:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: test-secret\n",
            dir.join("storage").display()
        );
        let tls = tls.then(|| Tls::make(&dir));
        if let Some(t) = &tls {
            config += &format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                t.cert.display(),
                t.key.display()
            );
        }
        match &auth {
            Auth::None => {}
            Auth::Htpasswd => {
                require("htpasswd");
                let file = dir.join("htpasswd");
                let line = run(Command::new("htpasswd").args(["-Bbn", USER, PASSWORD]));
                std::fs::write(&file, line).unwrap();
                config += &format!(
                    "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                    file.display()
                );
            }
            Auth::Token(t) => {
                config += &format!(
                    "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    t.port,
                    TokenServer::SERVICE,
                    TokenServer::ISSUER,
                    t.cert.display()
                );
            }
        }
        let config_file = dir.join("config.yml");
        std::fs::write(&config_file, config).unwrap();
        let log = std::fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start docker-registry");
        let registry = Registry {
            port,
            dir,
            child,
            tls,
            auth,
        };
        registry.wait_ready();
        registry
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Waits until `GET /v2/` answers (200, or 401 with auth).
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                if self.tls.is_some() {
                    return; // listening is enough: the handshake is the client's job
                }
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: x\r\n\r\n");
                let mut buf = [0u8; 12];
                if s.read_exact(&mut buf).is_ok()
                    && (buf.starts_with(b"HTTP/1.0 200") || buf.starts_with(b"HTTP/1.0 401"))
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "docker-registry did not come up: {}",
            std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
        );
    }

    /// `skopeo copy` of `src` (e.g. `oci:DIR:TAG`) to `repo:tag` here.
    pub fn push(&self, src: &str, dest: &str, extra: &[&str]) {
        require("skopeo");
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "-q", "--retry-times", "2"]);
        match &self.tls {
            Some(t) => cmd.arg("--dest-cert-dir").arg(&t.cert_dir),
            None => cmd.arg("--dest-tls-verify=false"),
        };
        if !matches!(self.auth, Auth::None) {
            cmd.arg("--dest-creds").arg(format!("{USER}:{PASSWORD}"));
        }
        cmd.args(extra)
            .arg(src)
            .arg(format!("docker://{}/{dest}", self.host()));
        // Credentials only from the command line, whatever the host has.
        cmd.env("REGISTRY_AUTH_FILE", self.dir.join("skopeo-auth.json"));
        run(&mut cmd);
    }

    /// The raw manifest skopeo sees at `repo:tag`.
    pub fn raw_manifest(&self, reference: &str) -> Vec<u8> {
        let mut cmd = Command::new("skopeo");
        cmd.args(["inspect", "--raw"]);
        match &self.tls {
            Some(t) => cmd.arg("--cert-dir").arg(&t.cert_dir),
            None => cmd.arg("--tls-verify=false"),
        };
        if !matches!(self.auth, Auth::None) {
            cmd.arg("--creds").arg(format!("{USER}:{PASSWORD}"));
        }
        cmd.arg(format!("docker://{}/{reference}", self.host()));
        cmd.env("REGISTRY_AUTH_FILE", self.dir.join("skopeo-auth.json"));
        run(&mut cmd)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// --------------------------------------------------------------------- TLS

/// A test CA and a server certificate for 127.0.0.1 signed by it.
pub struct Tls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// `ca.crt` alone, for skopeo's --cert-dir.
    pub cert_dir: PathBuf,
}

impl Tls {
    fn make(dir: &Path) -> Tls {
        require("openssl");
        let ca = dir.join("ca.crt");
        let ca_key = dir.join("ca.key");
        let key = dir.join("server.key");
        let csr = dir.join("server.csr");
        let cert = dir.join("server.crt");
        let ext = dir.join("server.ext");
        run(Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=initramfs-stream test CA"])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca));
        run(Command::new("openssl")
            .args([
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr));
        std::fs::write(
            &ext,
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n",
        )
        .unwrap();
        run(Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-CAcreateserial"])
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(&ca)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(&cert));
        let cert_dir = dir.join("certs.d");
        std::fs::create_dir_all(&cert_dir).unwrap();
        std::fs::copy(&ca, cert_dir.join("ca.crt")).unwrap();
        Tls {
            ca,
            cert,
            key,
            cert_dir,
        }
    }
}

// ------------------------------------------------------------ token server

/// Issues RS256 JWTs as the registry's token auth expects: an `x5c` header
/// with the signing certificate (which the registry trusts through its
/// `rootcertbundle`) and `access` claims for the requested scopes. Only
/// USER/PASSWORD gets access; anonymous requests get a token without any.
/// Token requests seen: (basic user, scope).
pub type TokenLog = Mutex<Vec<(Option<String>, String)>>;

pub struct TokenServer {
    pub port: u16,
    cert: PathBuf,
    /// Token requests seen: (basic user, scope).
    pub requests: Arc<TokenLog>,
}

impl TokenServer {
    const SERVICE: &'static str = "test-registry";
    const ISSUER: &'static str = "test-token-issuer";

    pub fn start(dir: &Path) -> TokenServer {
        require("openssl");
        std::fs::create_dir_all(dir).unwrap();
        let key = dir.join("token.key");
        let cert = dir.join("token.crt");
        run(Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=token issuer"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert));
        let der = run(Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert));
        let x5c = b64(&der, STANDARD);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&requests);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (key, x5c, log) = (key.clone(), x5c.clone(), Arc::clone(&log));
                std::thread::spawn(move || token_request(conn, &key, &x5c, &log));
            }
        });
        TokenServer {
            port,
            cert,
            requests,
        }
    }
}

fn token_request(mut conn: TcpStream, key: &Path, x5c: &str, log: &TokenLog) {
    let Some(req) = read_head(&mut conn) else {
        return;
    };
    let user = req.headers.get("authorization").and_then(|h| {
        let raw = h.strip_prefix("Basic ")?;
        let decoded = b64_decode(raw.trim())?;
        let (u, p) = decoded.split_once(':')?;
        Some((u.to_string(), p.to_string()))
    });
    let query = req.path.split_once('?').map(|(_, q)| q).unwrap_or("");
    let scopes: Vec<String> = query
        .split('&')
        .filter_map(|kv| kv.strip_prefix("scope="))
        .map(percent_decode)
        .collect();
    log.lock()
        .unwrap()
        .push((user.as_ref().map(|u| u.0.clone()), scopes.join(" ")));
    let authorized = match &user {
        Some((u, p)) if u == USER && p == PASSWORD => true,
        Some(_) => {
            let _ = conn.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 20\r\nConnection: close\r\n\r\ninvalid credentials\n",
            );
            return;
        }
        None => false,
    };
    let access: Vec<serde_json::Value> = if authorized {
        scopes
            .iter()
            .filter_map(|s| {
                let mut parts = s.splitn(3, ':');
                let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
                Some(serde_json::json!({
                    "type": kind, "name": name,
                    "actions": actions.split(',').collect::<Vec<_>>(),
                }))
            })
            .collect()
    } else {
        Vec::new()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [x5c]});
    let claims = serde_json::json!({
        "iss": TokenServer::ISSUER,
        "sub": user.map(|u| u.0).unwrap_or_default(),
        "aud": TokenServer::SERVICE,
        "exp": now + 300, "nbf": now - 10, "iat": now,
        "jti": format!("{now}-{}", rand_id()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes(), URL),
        b64(claims.to_string().as_bytes(), URL)
    );
    let mut openssl = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    openssl
        .stdin
        .take()
        .unwrap()
        .write_all(signing_input.as_bytes())
        .unwrap();
    let sig = openssl.wait_with_output().unwrap().stdout;
    let token = format!("{signing_input}.{}", b64(&sig, URL));
    let body =
        serde_json::json!({"token": token, "access_token": token, "expires_in": 300}).to_string();
    let _ = conn.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64; padded for the standard alphabet, unpadded for the URL one (JWT).
pub fn b64(data: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..=chunk.len() {
            out.push(alphabet[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        if alphabet == STANDARD {
            for _ in chunk.len()..3 {
                out.push('=');
            }
        }
    }
    out
}

fn b64_decode(s: &str) -> Option<String> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = STANDARD.iter().position(|&a| a == c)? as u32;
        bits = bits << 6 | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    String::from_utf8(out).ok()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ------------------------------------------------------------------- HTTP

pub struct Head {
    pub method: String,
    pub path: String,
    /// Lowercase names.
    pub headers: HashMap<String, String>,
    pub raw: Vec<u8>,
}

/// Reads a request head (requests from the tool have no body).
fn read_head(conn: &mut TcpStream) -> Option<Head> {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte).ok()? == 0 {
            return None;
        }
        raw.push(byte[0]);
        if raw.len() > 64 * 1024 {
            return None;
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some(Head {
        method,
        path,
        headers,
        raw,
    })
}

// ------------------------------------------------------------------ proxy

/// What the proxy does to responses for one path.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Send the headers and half the body, then close the connection.
    DropMidBody,
    /// Answer with this status (and `Retry-After`, if given) instead.
    Status(u16, Option<u32>),
    /// Change one byte in the middle of the body.
    FlipByte,
}

/// (path suffix, fault, how many more times).
type Faults = Mutex<Vec<(String, Fault, u32)>>;

#[derive(Clone, Debug)]
pub struct Seen {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    /// The status sent back (after any fault).
    pub status: u16,
}

/// A loopback HTTP proxy in front of a registry that injects faults into
/// the responses for chosen paths: `times` faults per path (`u32::MAX`:
/// every time), then passes requests through.
pub struct Proxy {
    pub port: u16,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    faults: Arc<Faults>,
}

impl Proxy {
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let faults: Arc<Faults> = Arc::default();
        let (s, f) = (Arc::clone(&seen), Arc::clone(&faults));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (s, f) = (Arc::clone(&s), Arc::clone(&f));
                std::thread::spawn(move || proxy_connection(conn, upstream, &s, &f));
            }
        });
        Proxy { port, seen, faults }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Inject `fault` into the next `times` responses for paths ending in
    /// `suffix`.
    pub fn fault(&self, suffix: &str, fault: Fault, times: u32) {
        self.faults
            .lock()
            .unwrap()
            .push((suffix.to_string(), fault, times));
    }

    /// GET requests seen for paths ending in `suffix`.
    pub fn gets(&self, suffix: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.method == "GET" && s.path.ends_with(suffix))
            .cloned()
            .collect()
    }
}

fn proxy_connection(mut conn: TcpStream, upstream: u16, seen: &Mutex<Vec<Seen>>, faults: &Faults) {
    // One request per connection: every response says Connection: close.
    let Some(req) = read_head(&mut conn) else {
        return;
    };
    let at = Instant::now();
    let fault = {
        let mut faults = faults.lock().unwrap();
        faults
            .iter_mut()
            .find(|(suffix, _, times)| *times > 0 && req.path.ends_with(suffix.as_str()))
            .map(|(_, fault, times)| {
                *times = times.saturating_sub(1);
                fault.clone()
            })
    };
    let record = |status: u16| {
        seen.lock().unwrap().push(Seen {
            at,
            method: req.method.clone(),
            path: req.path.clone(),
            range: req.headers.get("range").cloned(),
            status,
        })
    };
    if let Some(Fault::Status(code, retry_after)) = &fault {
        record(*code);
        let extra = retry_after
            .map(|s| format!("Retry-After: {s}\r\n"))
            .unwrap_or_default();
        let _ = conn.write_all(
            format!(
                "HTTP/1.1 {code} Injected\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        return;
    }
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    let text = String::from_utf8_lossy(&req.raw).into_owned();
    let mut head: Vec<&str> = text
        .trim_end_matches("\r\n")
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    head.push("Connection: close");
    let forwarded = head.join("\r\n") + "\r\n\r\n";
    if up.write_all(forwarded.as_bytes()).is_err() {
        return;
    }
    let mut response = Vec::new();
    let _ = up.read_to_end(&mut response);
    let Some(split) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return;
    };
    let (head, body) = response.split_at(split + 4);
    let status = String::from_utf8_lossy(head)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    record(status);
    let mut body = body.to_vec();
    match fault {
        Some(Fault::DropMidBody) => {
            let _ = conn.write_all(head);
            let _ = conn.write_all(&body[..body.len() / 2]);
            let _ = conn.flush();
            let _ = conn.shutdown(Shutdown::Both);
            return;
        }
        Some(Fault::FlipByte) if !body.is_empty() => {
            let mid = body.len() / 2;
            body[mid] ^= 0x20;
        }
        _ => {}
    }
    let _ = conn.write_all(head);
    let _ = conn.write_all(&body);
}

// ----------------------------------------------------------------- images

/// An OCI layout and the tags in it.
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn oci(&self, tag: &str) -> String {
        format!("oci:{}:{tag}", self.dir.display())
    }

    /// Digests of the layers of `tag`'s manifest (a plain manifest).
    pub fn layers(&self, tag: &str) -> Vec<(String, u64)> {
        let manifest = self.manifest(tag);
        manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                (
                    l["digest"].as_str().unwrap().to_string(),
                    l["size"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    pub fn manifest_digest(&self, tag: &str) -> String {
        self.descriptor(tag)["digest"].as_str().unwrap().to_string()
    }

    fn descriptor(&self, tag: &str) -> serde_json::Value {
        let index = read_json(&self.dir.join("index.json"));
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .unwrap_or_else(|| panic!("no tag {tag}"))
            .clone()
    }

    pub fn manifest(&self, tag: &str) -> serde_json::Value {
        read_json(&self.blob(&self.manifest_digest(tag)))
    }

    pub fn blob(&self, digest: &str) -> PathBuf {
        let (alg, hex) = digest.split_once(':').unwrap();
        self.dir.join("blobs").join(alg).join(hex)
    }

    /// Adds a blob and returns its descriptor digest and size.
    fn add_blob(&self, data: &[u8]) -> (String, usize) {
        use sha2::Digest;
        let hex = hex::encode(sha2::Sha256::digest(data));
        std::fs::write(self.dir.join("blobs/sha256").join(&hex), data).unwrap();
        (format!("sha256:{hex}"), data.len())
    }
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

struct Umoci<'a> {
    layout: &'a Path,
    tag: String,
    bundle: PathBuf,
}

impl Umoci<'_> {
    fn image(&self) -> String {
        format!("{}:{}", self.layout.display(), self.tag)
    }
    fn root(&self) -> PathBuf {
        self.bundle.join("rootfs")
    }
    fn unpack(&self) {
        let _ = std::fs::remove_dir_all(&self.bundle);
        run(Command::new("umoci")
            .args(["unpack", "--image", &self.image()])
            .arg(&self.bundle));
    }
    fn repack(&self) {
        run(Command::new("umoci")
            .args(["repack", "--image", &self.image()])
            .arg(&self.bundle));
        self.unpack();
    }
    fn config(&self, args: &[&str]) {
        run(Command::new("umoci")
            .args(["config", "--image", &self.image()])
            .args(args));
    }
}

/// Two layers: busybox with its applet links and some files, then a layer
/// that deletes, overwrites and hardlinks. `tag` names the image; `flavour`
/// changes a file so that two images differ.
fn build_image(layout: &Path, tag: &str, flavour: &str, arch: &str) {
    require("umoci");
    require("busybox");
    let u = Umoci {
        layout,
        tag: tag.to_string(),
        bundle: layout.with_extension(format!("bundle-{tag}")),
    };
    run(Command::new("umoci").args(["new", "--image", &u.image()]));
    u.unpack();
    let root = u.root();
    let mk = |p: &str| std::fs::create_dir_all(root.join(p)).unwrap();
    mk("bin");
    mk("etc");
    mk("usr/share/data");
    let busybox = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join("busybox"))
        .find(|p| p.is_file())
        .unwrap();
    std::fs::copy(&busybox, root.join("bin/busybox")).unwrap();
    for applet in ["sh", "ls", "cat", "echo", "poweroff"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    std::fs::write(root.join("etc/arch"), format!("{flavour}\n")).unwrap();
    std::fs::write(root.join("etc/old"), "to be deleted\n").unwrap();
    // Incompressible-ish data, so that blobs are a few hundred KiB.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let data: Vec<u8> = (0..300_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 251) as u8
        })
        .collect();
    std::fs::write(root.join("usr/share/data/noise"), &data).unwrap();
    u.repack();
    std::fs::remove_file(root.join("etc/old")).unwrap();
    std::fs::write(root.join("etc/motd"), format!("hello from {flavour}\n")).unwrap();
    std::fs::hard_link(root.join("etc/motd"), root.join("etc/motd.link")).unwrap();
    u.repack();
    u.config(&[
        "--config.cmd",
        "/bin/sh",
        "--config.env",
        "GREETING=hi",
        "--architecture",
        arch,
        "--os",
        "linux",
    ]);
    let _ = std::fs::remove_dir_all(&u.bundle);
}

/// The test image, built once per test run: tag `v1` (the host's
/// architecture, two layers), and `amd64`/`arm64` images plus `multi`, a
/// hand-made two-platform index of them.
pub fn layout() -> &'static Layout {
    static LAYOUT: OnceLock<Layout> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        let dir = scratch("images").join("layout");
        run(Command::new("umoci").args(["init", "--layout"]).arg(&dir));
        let host = match std::env::consts::ARCH {
            "aarch64" => "arm64",
            _ => "amd64",
        };
        build_image(&dir, "v1", "main", host);
        build_image(&dir, "amd64", "amd64", "amd64");
        build_image(&dir, "arm64", "arm64", "arm64");
        let layout = Layout { dir };
        let entry = |tag: &str, arch: &str| {
            let d = layout.descriptor(tag);
            serde_json::json!({
                "mediaType": d["mediaType"], "digest": d["digest"], "size": d["size"],
                "platform": {"os": "linux", "architecture": arch},
            })
        };
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [entry("amd64", "amd64"), entry("arm64", "arm64")],
        });
        let (digest, size) = layout.add_blob(index.to_string().as_bytes());
        let path = layout.dir.join("index.json");
        let mut top = read_json(&path);
        top["manifests"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": digest, "size": size,
                "annotations": {"org.opencontainers.image.ref.name": "multi"},
            }));
        std::fs::write(&path, top.to_string()).unwrap();
        layout
    })
}

// ------------------------------------------------------------------- tool

/// The tool with no credentials from the host: an empty Docker config, no
/// containers auth file.
pub fn tool<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(
    args: &[S],
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> Output {
    let home = scratch_home();
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("SSL_CERT_FILE")
        .env("HOME", &home)
        .env("DOCKER_CONFIG", home.join(".docker"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("cannot start initramfs-stream");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn scratch_home() -> PathBuf {
    static HOME: OnceLock<PathBuf> = OnceLock::new();
    HOME.get_or_init(|| scratch("home")).clone()
}

/// Runs the tool, which must succeed; returns stdout.
pub fn tool_ok<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(
    args: &[S],
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> Vec<u8> {
    let out = tool(args, env, stdin);
    assert!(
        out.status.success(),
        "initramfs-stream {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs the tool, which must fail with exit status 1, one line on stderr
/// and nothing on stdout; returns the line.
pub fn tool_fails<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(
    args: &[S],
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> String {
    let out = tool(args, env, stdin);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(out.stdout.is_empty(), "{args:?} wrote to stdout");
    assert_eq!(err.lines().count(), 1, "{args:?}: not one line: {err}");
    err
}

/// The archive of a local image, as the reference for pulls.
pub fn convert_local(oci: &str, extra: &[&str]) -> Vec<u8> {
    let mut args = vec![oci];
    args.extend_from_slice(extra);
    tool_ok(&args, &[], None)
}

/// `sha256:HEX` of some bytes.
pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}
