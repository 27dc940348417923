//! Pulls from a real registry (`docker-registry`, images pushed with
//! skopeo) must give the same bytes as converting the OCI layout the image
//! was pushed from, over every auth scheme, transport and manifest format,
//! and through injected network faults.

use crate::registry_support;

use std::path::Path;
use std::time::Duration;

use registry_support::*;

const RAW: &[&str] = &["--no-init", "-c", "none"];

fn args<'a>(image: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![image];
    v.extend_from_slice(extra);
    v
}

fn same(got: &[u8], want: &[u8], what: &str) {
    assert!(
        got == want,
        "{what}: the pull differs from the layout conversion ({} vs {} bytes)",
        got.len(),
        want.len()
    );
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).unwrap()
}

#[test]
fn anonymous_plain_http_pull_matches_the_layout() {
    let reg = Registry::start("plain", Auth::None, false);
    let l = layout();
    reg.push(&l.oci("v1"), "org/app:v1", &[]);
    let want = convert_local(&l.oci("v1"), RAW);
    let name = format!("{}/org/app:v1", reg.host());

    let got = tool_ok(
        &args(&name, &["--plain-http", "--no-init", "-c", "none"]),
        &[],
        None,
    );
    same(&got, &want, "by tag");

    // By digest, with the explicit transport prefix.
    let digest = sha256(&reg.raw_manifest("org/app:v1"));
    let by_digest = format!("docker://{}/org/app@{digest}", reg.host());
    let got = tool_ok(
        &args(&by_digest, &["--plain-http", "--no-init", "-c", "none"]),
        &[],
        None,
    );
    same(&got, &want, "by digest");

    // With the boot stage, the image config (Cmd, Env) matters too.
    let want_boot = convert_local(&l.oci("v1"), &["-c", "none"]);
    let got = tool_ok(&[&name, "--plain-http", "-c", "none"], &[], None);
    same(&got, &want_boot, "with /init");

    // A digest that is not there, a tag that is not there, HTTPS to an HTTP
    // registry: one line each, no output.
    let missing = format!("{}/org/app@sha256:{}", reg.host(), "0".repeat(64));
    let err = tool_fails(&[&missing, "--plain-http"], &[], None);
    assert!(
        err.contains("manifest unknown") || err.contains("404"),
        "{err}"
    );
    let err = tool_fails(
        &[&format!("{}/org/app:nope", reg.host()), "--plain-http"],
        &[],
        None,
    );
    assert!(err.contains("404"), "{err}");
    let err = tool_fails(&[&name], &[], None);
    assert!(err.contains("--plain-http"), "{err}");
}

#[test]
fn docker_schema2_and_zstd_layers() {
    let reg = Registry::start("formats", Auth::None, false);
    let l = layout();
    let want = convert_local(&l.oci("v1"), RAW);

    reg.push(&l.oci("v1"), "app:v2s2", &["--format", "v2s2"]);
    let m = json(&reg.raw_manifest("app:v2s2"));
    assert_eq!(
        m["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let name = format!("{}/app:v2s2", reg.host());
    same(
        &tool_ok(
            &args(&name, &["--plain-http", "--no-init", "-c", "none"]),
            &[],
            None,
        ),
        &want,
        "v2s2",
    );

    // Recompressed into a fresh layout first: pushing with a compression
    // change lets skopeo reuse the gzip blobs it already pushed above.
    let zstd = scratch("zstd-layout").join("layout");
    run(std::process::Command::new("skopeo")
        .args(["copy", "-q", "--dest-compress-format", "zstd"])
        .arg(l.oci("v1"))
        .arg(format!("oci:{}:v1", zstd.display())));
    reg.push(&format!("oci:{}:v1", zstd.display()), "app:zstd", &[]);
    let m = json(&reg.raw_manifest("app:zstd"));
    for layer in m["layers"].as_array().unwrap() {
        assert_eq!(
            layer["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+zstd"
        );
    }
    let name = format!("{}/app:zstd", reg.host());
    same(
        &tool_ok(
            &args(&name, &["--plain-http", "--no-init", "-c", "none"]),
            &[],
            None,
        ),
        &want,
        "zstd",
    );
}

#[test]
fn platform_is_selected_from_an_index() {
    let reg = Registry::start("index", Auth::None, false);
    let l = layout();
    reg.push(&l.oci("multi"), "multi:latest", &["--all"]);
    let index = reg.raw_manifest("multi:latest");
    assert_eq!(json(&index)["manifests"].as_array().unwrap().len(), 2);
    let name = format!("{}/multi:latest", reg.host());

    for arch in ["arm64", "amd64"] {
        let platform = format!("linux/{arch}");
        let got = tool_ok(
            &args(
                &name,
                &[
                    "--plain-http",
                    "--no-init",
                    "-c",
                    "none",
                    "--platform",
                    &platform,
                ],
            ),
            &[],
            None,
        );
        same(&got, &convert_local(&l.oci(arch), RAW), &platform);
    }
    // The host's platform by default; by the index's digest.
    let host = if std::env::consts::ARCH == "aarch64" {
        "arm64"
    } else {
        "amd64"
    };
    let by_digest = format!("{}/multi@{}", reg.host(), sha256(&index));
    let got = tool_ok(
        &args(&by_digest, &["--plain-http", "--no-init", "-c", "none"]),
        &[],
        None,
    );
    same(&got, &convert_local(&l.oci(host), RAW), "default platform");

    let err = tool_fails(
        &[&name, "--plain-http", "--platform", "linux/s390x"],
        &[],
        None,
    );
    assert!(
        err.contains("linux/s390x") && err.contains("linux/amd64") && err.contains("linux/arm64"),
        "{err}"
    );
}

fn docker_config(dir: &Path, json: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), json).unwrap();
    dir.display().to_string()
}

fn auths(host: &str, user: &str, password: &str) -> String {
    let auth = b64(format!("{user}:{password}").as_bytes(), STANDARD_ALPHABET);
    format!(r#"{{"auths": {{"{host}": {{"auth": "{auth}"}}}}}}"#)
}

const STANDARD_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

#[test]
fn htpasswd_basic_auth_from_every_credential_source() {
    let reg = Registry::start("basic", Auth::Htpasswd, false);
    let l = layout();
    reg.push(&l.oci("v1"), "org/app:v1", &[]);
    let want = convert_local(&l.oci("v1"), RAW);
    let name = format!("{}/org/app:v1", reg.host());
    let pull = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = ["--plain-http", "--no-init", "-c", "none"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect();
        a.insert(0, name.clone());
        a
    };
    let dir = reg.dir.join("creds");
    let host = reg.host();

    let err = tool_fails(&pull(&[]), &[], None);
    assert!(err.contains("authentication required"), "{err}");

    // --username with the password on stdin (with its newline).
    let got = tool_ok(
        &pull(&["--username", USER, "--password-stdin"]),
        &[],
        Some(&format!("{PASSWORD}\n")),
    );
    same(&got, &want, "--password-stdin");
    let out = dir.join("out.cpio");
    let out_s = out.display().to_string();
    let err = tool_fails(
        &pull(&["--username", USER, "--password-stdin", "-o", &out_s]),
        &[],
        Some("wrong\n"),
    );
    assert!(
        err.contains("authentication failed") && err.contains("--password-stdin"),
        "{err}"
    );
    assert!(!out.exists(), "an output file was left behind");

    // Docker config.
    let cfg = docker_config(&dir.join("docker"), &auths(&host, USER, PASSWORD));
    same(
        &tool_ok(&pull(&[]), &[("DOCKER_CONFIG", &cfg)], None),
        &want,
        "DOCKER_CONFIG",
    );
    let bad = docker_config(
        &dir.join("docker-bad"),
        &auths(&format!("http://{host}/v2/"), USER, "nope"),
    );
    let err = tool_fails(&pull(&[]), &[("DOCKER_CONFIG", &bad)], None);
    assert!(
        err.contains("authentication failed") && err.contains("docker-bad/config.json"),
        "{err}"
    );

    // REGISTRY_AUTH_FILE, and podman's file under XDG_RUNTIME_DIR.
    let file = dir.join("auth.json");
    std::fs::write(&file, auths(&format!("{host}/org"), USER, PASSWORD)).unwrap();
    let file = file.display().to_string();
    same(
        &tool_ok(&pull(&[]), &[("REGISTRY_AUTH_FILE", &file)], None),
        &want,
        "REGISTRY_AUTH_FILE",
    );
    let runtime = dir.join("run");
    std::fs::create_dir_all(runtime.join("containers")).unwrap();
    std::fs::write(
        runtime.join("containers/auth.json"),
        auths(&host, USER, PASSWORD),
    )
    .unwrap();
    let runtime = runtime.display().to_string();
    same(
        &tool_ok(&pull(&[]), &[("XDG_RUNTIME_DIR", &runtime)], None),
        &want,
        "XDG_RUNTIME_DIR",
    );
}

#[test]
fn credential_helper_named_in_the_docker_config() {
    let reg = Registry::start("helper", Auth::Htpasswd, false);
    let l = layout();
    reg.push(&l.oci("v1"), "app:v1", &[]);
    let want = convert_local(&l.oci("v1"), RAW);
    let host = reg.host();
    let bin = reg.dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let asked = reg.dir.join("helper-asked");
    let helper = bin.join("docker-credential-itest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 2\nread -r server\necho \"$server\" >> '{}'\n\
             if [ \"$server\" = '{host}' ]; then\n\
             printf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}\\n' \"$server\"\n\
             else echo 'credentials not found in native keychain'; exit 1; fi\n",
            asked.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let name = format!("{host}/app:v1");

    for (sub, config) in [
        (
            "helpers",
            format!(r#"{{"credHelpers": {{"{host}": "itest"}}}}"#),
        ),
        (
            "store",
            r#"{"credsStore": "itest", "auths": {}}"#.to_string(),
        ),
    ] {
        let cfg = docker_config(&reg.dir.join(sub), &config);
        let got = tool_ok(
            &args(&name, &["--plain-http", "--no-init", "-c", "none"]),
            &[("DOCKER_CONFIG", &cfg), ("PATH", &path)],
            None,
        );
        same(&got, &want, sub);
    }
    let asked = std::fs::read_to_string(&asked).unwrap();
    assert_eq!(
        asked.lines().collect::<Vec<_>>(),
        [host.as_str(), host.as_str()]
    );
}

#[test]
fn token_auth_with_a_jwt_token_server() {
    let token = TokenServer::start(&scratch("token-server"));
    let requests = std::sync::Arc::clone(&token.requests);
    let reg = Registry::start("token", Auth::Token(token), false);
    let l = layout();
    reg.push(&l.oci("v1"), "org/app:v1", &[]);
    let want = convert_local(&l.oci("v1"), RAW);
    let name = format!("{}/org/app:v1", reg.host());
    let pull = args(&name, &["--plain-http", "--no-init", "-c", "none"]);

    let file = reg.dir.join("auth.json");
    std::fs::write(&file, auths(&reg.host(), USER, PASSWORD)).unwrap();
    let file_s = file.display().to_string();
    requests.lock().unwrap().clear();
    same(
        &tool_ok(&pull, &[("REGISTRY_AUTH_FILE", &file_s)], None),
        &want,
        "token",
    );
    // A pull-only token for this repository, asked for with the credentials.
    let seen = requests.lock().unwrap().clone();
    assert!(
        seen.iter().any(
            |(user, scope)| user.as_deref() == Some(USER) && scope == "repository:org/app:pull"
        ),
        "{seen:?}"
    );

    std::fs::write(&file, auths(&reg.host(), USER, "wrong")).unwrap();
    let err = tool_fails(&pull, &[("REGISTRY_AUTH_FILE", &file_s)], None);
    assert!(
        err.contains("authentication failed") && err.contains(&file_s),
        "{err}"
    );
    let err = tool_fails(&pull, &[], None);
    assert!(err.contains("authentication required"), "{err}");
}

#[test]
fn tls_with_a_test_ca() {
    let reg = Registry::start("tls", Auth::None, true);
    let l = layout();
    reg.push(&l.oci("v1"), "app:v1", &[]);
    let want = convert_local(&l.oci("v1"), RAW);
    let name = format!("{}/app:v1", reg.host());
    let ca = reg.tls.as_ref().unwrap().ca.display().to_string();

    let err = tool_fails(&args(&name, RAW), &[], None);
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    same(
        &tool_ok(
            &args(&name, &["--ca-file", &ca, "--no-init", "-c", "none"]),
            &[],
            None,
        ),
        &want,
        "--ca-file",
    );
    same(
        &tool_ok(&args(&name, RAW), &[("SSL_CERT_FILE", &ca)], None),
        &want,
        "SSL_CERT_FILE",
    );
    same(
        &tool_ok(
            &args(&name, &["--insecure", "--no-init", "-c", "none"]),
            &[],
            None,
        ),
        &want,
        "--insecure",
    );
    tool_fails(&args(&name, &["--plain-http", "--no-init"]), &[], None);
}

/// A registry behind the fault proxy, the image pushed, the expected
/// archive, the name through the proxy, and the largest layer's blob path.
fn behind_proxy(name: &str) -> (Registry, Proxy, Vec<u8>, String, String) {
    let reg = Registry::start(name, Auth::None, false);
    let l = layout();
    reg.push(&l.oci("v1"), "app:v1", &[]);
    let want = convert_local(&l.oci("v1"), RAW);
    let proxy = Proxy::start(reg.port);
    let image = format!("{}/app:v1", proxy.host());
    let (big, _) = l
        .layers("v1")
        .into_iter()
        .max_by_key(|(_, size)| *size)
        .unwrap();
    (reg, proxy, want, image, format!("/blobs/{big}"))
}

fn pull_through(image: &str, extra: &[&str]) -> Vec<u8> {
    let mut a = args(image, &["--plain-http", "--no-init", "-c", "none"]);
    a.extend_from_slice(extra);
    tool_ok(&a, &[], None)
}

#[test]
fn each_blob_is_downloaded_once_unless_memory_is_short() {
    let (_reg, proxy, want, image, big) = behind_proxy("once");
    same(&pull_through(&image, &[]), &want, "through the proxy");
    for (digest, _) in layout().layers("v1") {
        let gets = proxy.gets(&format!("/blobs/{digest}"));
        assert_eq!(gets.len(), 1, "{digest} fetched {} times", gets.len());
    }
    // With no memory for blobs, the content pass fetches them again.
    same(
        &pull_through(&image, &["--memory-limit", "0"]),
        &want,
        "--memory-limit 0",
    );
    assert_eq!(proxy.gets(&big).len(), 3);
}

#[test]
fn a_dropped_connection_resumes_with_a_range_request() {
    let (_reg, proxy, want, image, big) = behind_proxy("drop");
    proxy.fault(&big, Fault::DropMidBody, 1);
    same(
        &pull_through(&image, &[]),
        &want,
        "after a dropped connection",
    );
    let gets = proxy.gets(&big);
    assert_eq!(gets.len(), 2, "{gets:?}");
    let range = gets[1].range.clone().unwrap_or_default();
    let from: u64 = range
        .strip_prefix("bytes=")
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(from > 0, "the retry did not resume: {gets:?}");
    assert_eq!(gets[1].status, 206);
}

#[test]
fn server_errors_are_retried() {
    let (_reg, proxy, want, image, big) = behind_proxy("503");
    proxy.fault("/manifests/v1", Fault::Status(503, None), 1);
    proxy.fault(&big, Fault::Status(503, None), 2);
    same(&pull_through(&image, &[]), &want, "after 503s");
    let statuses: Vec<u16> = proxy.gets(&big).iter().map(|s| s.status).collect();
    assert_eq!(statuses, [503, 503, 200]);
    let statuses: Vec<u16> = proxy
        .gets("/manifests/v1")
        .iter()
        .map(|s| s.status)
        .collect();
    assert_eq!(statuses, [503, 200]);
}

#[test]
fn too_many_requests_waits_for_retry_after() {
    let (_reg, proxy, want, image, big) = behind_proxy("429");
    proxy.fault(&big, Fault::Status(429, Some(2)), 1);
    same(&pull_through(&image, &[]), &want, "after a 429");
    let gets = proxy.gets(&big);
    assert_eq!(
        gets.iter().map(|s| s.status).collect::<Vec<_>>(),
        [429, 200]
    );
    let waited = gets[1].at.duration_since(gets[0].at);
    assert!(
        waited >= Duration::from_millis(1900),
        "retried after {waited:?}"
    );
}

#[test]
fn a_corrupted_blob_fails_without_output() {
    let (reg, proxy, _want, image, big) = behind_proxy("flip");
    let out = reg.dir.join("out.cpio.gz");
    let out_s = out.display().to_string();

    // A flipped byte in a compressed layer breaks its decompression (or,
    // failing that, its digest): either way the layer is named.
    proxy.fault(&big, Fault::FlipByte, u32::MAX);
    let err = tool_fails(&[&image, "--plain-http", "-o", &out_s], &[], None);
    assert!(err.contains("layer 0"), "{err}");
    assert!(!out.exists(), "an output file was left behind");
    // It is not retried away.
    assert_eq!(proxy.gets(&big).len(), 1);

    // In the config, the digest check is what catches it.
    let config = layout().manifest("v1")["config"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let config = format!("/blobs/{config}");
    let before = proxy.gets(&config).len();
    proxy.fault(&config, Fault::FlipByte, u32::MAX);
    let err = tool_fails(&[&image, "--plain-http", "-o", &out_s], &[], None);
    assert!(err.contains("digest mismatch"), "{err}");
    assert!(!out.exists(), "an output file was left behind");
    assert_eq!(proxy.gets(&config).len(), before + 1);
}
