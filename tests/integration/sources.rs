//! Image references: tags, archives, platforms, and the errors for bad ones.

use crate::common;

use std::fs;

use common::fixtures::{self, handwritten, Image};
use common::newc;
use common::tree::Tree;
use common::{convert, tool};

fn tree(image_ref: &str) -> Tree {
    Tree::from_newc(&newc::parse_ok(&convert(image_ref)))
}

/// Exit status 1, nothing on stdout, one line on stderr.
#[track_caller]
fn assert_fails(args: &[&str]) -> String {
    let out = tool(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?} should fail; stderr: {stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "{args:?} failed but wrote {} bytes to stdout",
        out.stdout.len()
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: expected one error line, got {stderr:?}"
    );
    stderr
}

fn twotags() -> Image {
    static I: std::sync::OnceLock<Image> = std::sync::OnceLock::new();
    I.get_or_init(|| handwritten("twotags")).clone()
}

#[test]
fn oci_tag_selects_the_manifest() {
    let img = twotags();
    let dir = img.layout.display().to_string();
    assert_eq!(
        tree(&format!("oci:{dir}:one")).content("etc/which"),
        b"one\n"
    );
    assert_eq!(
        tree(&format!("oci:{dir}:two")).content("etc/which"),
        b"two\n"
    );
}

#[test]
fn oci_without_tag_needs_a_single_manifest() {
    let single = fixtures::handwritten_fixture("opaque");
    let with_tag = convert(&single.image.oci_ref());
    let without = convert(&format!("oci:{}", single.image.layout.display()));
    common::assert_bytes_eq(&with_tag, &without, "oci:DIR vs oci:DIR:TAG");

    let img = twotags();
    assert_fails(&[
        &format!("oci:{}", img.layout.display()),
        "-c",
        "none",
        "--no-init",
    ]);
}

#[test]
fn unknown_tag_and_missing_layout_fail() {
    let img = twotags();
    assert_fails(&[
        &format!("oci:{}:three", img.layout.display()),
        "-c",
        "none",
        "--no-init",
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    assert_fails(&[
        &format!("oci:{}", missing.display()),
        "-c",
        "none",
        "--no-init",
    ]);
    assert_fails(&[
        &format!("oci-archive:{}", missing.display()),
        "-c",
        "none",
        "--no-init",
    ]);
    assert_fails(&[
        &format!("docker-archive:{}", missing.display()),
        "-c",
        "none",
        "--no-init",
    ]);
    assert_fails(&["no-such-transport:x", "-c", "none", "--no-init"]);
}

#[test]
fn missing_blob_fails() {
    let f = fixtures::handwritten_fixture("whiteouts");
    let tmp = tempfile::tempdir().unwrap();
    let img = fixtures::copy_layout(&f.image, &tmp.path().join("layout"));
    let layers = img.manifest()["layers"].as_array().unwrap().clone();
    fs::remove_file(img.blob_path(layers[1]["digest"].as_str().unwrap())).unwrap();
    assert_fails(&[&img.oci_ref(), "-c", "none", "--no-init"]);
}

#[test]
fn oci_archive_with_and_without_tag() {
    let f = fixtures::busybox();
    let file = fixtures::to_oci_archive(&f.image);
    let expected = convert(&f.image.oci_ref());
    let with = convert(&format!("oci-archive:{}:{}", file.display(), f.image.tag));
    common::assert_bytes_eq(&expected, &with, "oci-archive:FILE:TAG");
    let without = convert(&format!("oci-archive:{}", file.display()));
    common::assert_bytes_eq(&expected, &without, "oci-archive:FILE");
    assert_fails(&[
        &format!("oci-archive:{}:nope", file.display()),
        "-c",
        "none",
        "--no-init",
    ]);
}

#[test]
fn docker_archive_with_and_without_name() {
    let f = fixtures::handwritten_fixture("hardlinks");
    let file = fixtures::to_docker_archive(&f.image, "localhost/app:v1");
    let expected = convert(&f.image.oci_ref());
    let named = convert(&format!(
        "docker-archive:{}:localhost/app:v1",
        file.display()
    ));
    common::assert_bytes_eq(&expected, &named, "docker-archive:FILE:NAME:TAG");
    let single = convert(&format!("docker-archive:{}", file.display()));
    common::assert_bytes_eq(&expected, &single, "docker-archive:FILE");
    assert_fails(&[
        &format!("docker-archive:{}:localhost/app:v2", file.display()),
        "-c",
        "none",
        "--no-init",
    ]);
}

#[test]
fn platform_selects_from_an_index() {
    let img = handwritten("platforms");
    let r = img.oci_ref();
    let arch = |extra: &[&str]| {
        let mut args = vec![r.as_str(), "-c", "none", "--no-init"];
        args.extend_from_slice(extra);
        let (out, _) = common::tool_ok(&args);
        Tree::from_newc(&newc::parse_ok(&out))
            .content("etc/arch")
            .to_vec()
    };
    assert_eq!(arch(&["--platform", "linux/arm64"]), b"arm64\n");
    assert_eq!(arch(&["--platform", "linux/amd64"]), b"amd64\n");
    assert_eq!(arch(&["--platform", "linux/arm/v7"]), b"arm/v7\n");
    // The default is the host's platform.
    let host = match std::env::consts::ARCH {
        "x86_64" => "amd64\n",
        "aarch64" => "arm64\n",
        other => panic!("no fixture manifest for host arch {other}"),
    };
    assert_eq!(arch(&[]), host.as_bytes());
    assert_fails(&[&r, "-c", "none", "--no-init", "--platform", "linux/s390x"]);
}

#[test]
fn docker_archive_names_match_as_docker_matches_them() {
    let f = fixtures::handwritten_fixture("hardlinks");
    // skopeo writes the RepoTag in full: docker.io/library/app:1.
    let file = fixtures::to_docker_archive(&f.image, "app:1");
    let expected = convert(&f.image.oci_ref());
    for name in ["app:1", "library/app:1", "docker.io/library/app:1", "@0"] {
        let got = convert(&format!("docker-archive:{}:{name}", file.display()));
        common::assert_bytes_eq(&expected, &got, &format!("docker-archive:FILE:{name}"));
    }
    // Without a tag the name means :latest, as in Docker.
    let err = assert_fails(&[
        &format!("docker-archive:{}:app", file.display()),
        "-c",
        "none",
        "--no-init",
    ]);
    assert!(err.contains("docker.io/library/app:1"), "{err}");
    let latest = fixtures::to_docker_archive(&f.image, "app:latest");
    let got = convert(&format!("docker-archive:{}:app", latest.display()));
    common::assert_bytes_eq(&expected, &got, "docker-archive:FILE:NAME for :latest");
    let err = assert_fails(&[
        &format!("docker-archive:{}:@1", file.display()),
        "-c",
        "none",
        "--no-init",
    ]);
    assert!(err.contains("@0 is the first"), "{err}");
}

#[test]
fn config_size_is_checked() {
    let img = handwritten("configsize");
    let err = assert_fails(&[&img.oci_ref(), "-c", "none", "--no-init"]);
    assert!(
        err.contains("config sha256:") && err.contains("size is"),
        "{err}"
    );
}

#[test]
fn index_without_platforms_says_so() {
    let img = handwritten("noplatform");
    let err = assert_fails(&[&img.oci_ref(), "-c", "none", "--no-init"]);
    assert!(
        err.contains("none of the index's 2 entries declares a platform"),
        "{err}"
    );
}

#[test]
fn artifacts_are_not_images() {
    let img = handwritten("artifact");
    let err = assert_fails(&[&img.oci_ref(), "-c", "none", "--no-init"]);
    assert!(
        err.contains("not a container image but an artifact")
            && err.contains("application/vnd.example.thing.config.v1+json"),
        "{err}"
    );
    let err = assert_fails(&[
        &format!("oci:{}:norootfs", img.layout.display()),
        "-c",
        "none",
        "--no-init",
    ]);
    assert!(err.contains("its config has no rootfs"), "{err}");
}

#[test]
fn image_text_in_errors_is_escaped() {
    let img = handwritten("garbagename");
    let err = assert_fails(&[&img.oci_ref(), "-c", "none", "--no-init"]);
    assert!(!err.contains(['\x1b', '\x07']), "{err:?}");
    assert!(err.contains(r"\u{1b}[31mred\u{7}"), "{err}");

    // A docker archive whose manifest names a layer with terminal escapes.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.tar");
    let script = r#"
import io, json, sys, tarfile
manifest = [{"Config": "c.json", "RepoTags": ["app:1"],
             "Layers": ["\u001b]0;title\u0007/layer.tar"]}]
config = {"architecture": "amd64", "os": "linux",
          "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}}
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    for name, data in (("manifest.json", json.dumps(manifest).encode()),
                       ("c.json", json.dumps(config).encode())):
        ti = tarfile.TarInfo(name)
        ti.size = len(data)
        t.addfile(ti, io.BytesIO(data))
"#;
    common::run(common::python().arg("-c").arg(script).arg(&file));
    let err = assert_fails(&[
        &format!("docker-archive:{}", file.display()),
        "-c",
        "none",
        "--no-init",
    ]);
    assert!(!err.contains(['\x1b', '\x07']), "{err:?}");
    assert!(err.contains(r"\u{1b}]0;title\u{7}/layer.tar"), "{err}");
}

/// The tool reading `stdin`, whatever it is.
fn tool_stdin(args: &[&str], stdin: std::process::Stdio) -> std::process::Output {
    std::process::Command::new(common::BIN)
        .args(args)
        .stdin(stdin)
        .output()
        .unwrap()
}

#[test]
fn archives_on_stdin_and_in_pipes() {
    let f = fixtures::handwritten_fixture("whiteouts");
    let expected = convert(&f.image.oci_ref());
    let docker = fixtures::to_docker_archive(&f.image, "app:1");
    let oci = fixtures::to_oci_archive(&f.image);
    for (reference, file) in [("docker-archive:-", &docker), ("oci-archive:-", &oci)] {
        // stdin redirected from the file: it can seek, and is read in place.
        let out = tool_stdin(
            &[reference, "-c", "none", "--no-init"],
            fs::File::open(file).unwrap().into(),
        );
        assert!(out.status.success(), "{reference} < FILE");
        common::assert_bytes_eq(&expected, &out.stdout, &format!("{reference} < FILE"));
        // A pipe: read once, held in memory.
        let mut cat = std::process::Command::new("cat")
            .arg(file)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = tool_stdin(
            &[reference, "-c", "none", "--no-init"],
            cat.stdout.take().unwrap().into(),
        );
        cat.wait().unwrap();
        assert!(
            out.status.success(),
            "cat FILE | {reference}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        common::assert_bytes_eq(&expected, &out.stdout, &format!("cat FILE | {reference}"));
    }
    // A truncated stream and an empty one fail in one line.
    let bytes = fs::read(&docker).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("fifo");
    common::run(std::process::Command::new("mkfifo").arg(&fifo));
    for (what, data) in [("truncated", &bytes[..bytes.len() / 2]), ("empty", &[][..])] {
        let data = data.to_vec();
        let path = fifo.clone();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let mut w = fs::OpenOptions::new().write(true).open(path).unwrap();
            let _ = w.write_all(&data);
        });
        let reference = format!("docker-archive:{}", fifo.display());
        let err = assert_fails(&[&reference, "-c", "none", "--no-init"]);
        writer.join().unwrap();
        assert!(err.contains(&reference), "{what}: {err}");
    }
}
