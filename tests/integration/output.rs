//! `-o FILE`: compression chosen from the extension, and atomicity: on any
//! error no output file appears, an existing one is left as it was, and no
//! temporary file is left behind.

use crate::common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::fixtures::{self, Image};
use common::{assert_bytes_eq, convert, decompress, list_dir, newc, tool, tool_ok};

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

fn image() -> &'static Image {
    &fixtures::handwritten_fixture("compression").image
}

#[test]
fn compression_follows_the_extension() {
    let img = image();
    let plain = convert(&img.oci_ref());
    let tmp = tempfile::tempdir().unwrap();
    let cases: &[(&str, &[&str], Option<&str>)] = &[
        ("out.gz", &[], Some("gzip")),
        ("out.zst", &[], Some("zstd")),
        ("out.zstd", &[], Some("zstd")),
        ("out.cpio", &[], None),
        ("initrd.img", &[], Some("gzip")),
        ("noext", &[], Some("gzip")),
        ("forced.gz", &["-c", "none"], None),
        ("forced.cpio", &["-c", "zstd"], Some("zstd")),
        ("forced.zst", &["-c", "gzip"], Some("gzip")),
    ];
    for (name, extra, comp) in cases {
        let path = tmp.path().join(name);
        let mut args = vec![img.oci_ref(), "--no-init".into(), "-o".into()];
        args.push(path.display().to_string());
        args.extend(extra.iter().map(|s| s.to_string()));
        let (stdout, _) = tool_ok(&args);
        assert!(
            stdout.is_empty(),
            "{name}: -o also wrote {} bytes to stdout",
            stdout.len()
        );
        let data = fs::read(&path).unwrap();
        let raw = match comp {
            Some("gzip") => {
                assert!(data.starts_with(GZIP_MAGIC), "{name}: not gzip");
                decompress("gzip", &data)
            }
            Some("zstd") => {
                assert!(data.starts_with(ZSTD_MAGIC), "{name}: not zstd");
                decompress("zstd", &data)
            }
            _ => data,
        };
        assert_bytes_eq(&plain, &raw, name);
    }
    assert_eq!(
        list_dir(tmp.path()).len(),
        cases.len(),
        "unexpected extra files"
    );
}

#[test]
fn levels_change_nothing_but_the_compression() {
    let img = image();
    let plain = convert(&img.oci_ref());
    for (c, level) in [("gzip", "1"), ("gzip", "9"), ("zstd", "1"), ("zstd", "19")] {
        let (out, _) = tool_ok([img.oci_ref().as_str(), "--no-init", "-c", c, "-l", level]);
        assert_bytes_eq(&plain, &decompress(c, &out), &format!("{c} -l {level}"));
    }
}

/// Run with `-o`, expect failure, check nothing was created or changed.
#[track_caller]
fn fails_cleanly(image_ref: &str, dir: &Path, out_name: &str) {
    let before = list_dir(dir);
    let existing = dir.join(out_name);
    let old = fs::read(&existing).ok();
    let out = tool([image_ref, "--no-init", "-o", existing.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{image_ref}: expected exit 1, stderr: {stderr}"
    );
    assert_eq!(
        stderr.lines().filter(|l| !l.trim().is_empty()).count(),
        1,
        "{image_ref}: expected a one-line error, got {stderr:?}"
    );
    assert_eq!(
        list_dir(dir),
        before,
        "{image_ref}: files in the output directory changed"
    );
    assert_eq!(
        fs::read(&existing).ok(),
        old,
        "{image_ref}: output file changed"
    );
}

#[test]
fn unknown_tag_writes_nothing() {
    let img = image();
    let tmp = tempfile::tempdir().unwrap();
    let r = format!("oci:{}:no-such-tag", img.layout.display());
    fails_cleanly(&r, tmp.path(), "new.cpio.gz");
    fs::write(tmp.path().join("old.img"), b"precious").unwrap();
    fails_cleanly(&r, tmp.path(), "old.img");
    assert_eq!(fs::read(tmp.path().join("old.img")).unwrap(), b"precious");
}

/// Flip one byte in the middle of the given layer's blob, in a copy.
fn corrupt_layer(img: &Image, layer: usize, to: &Path) -> Image {
    let copy = fixtures::copy_layout(img, to);
    let layers = copy.manifest()["layers"].as_array().unwrap().clone();
    let path = copy.blob_path(layers[layer]["digest"].as_str().unwrap());
    let mut blob = fs::read(&path).unwrap();
    let mid = blob.len() / 2;
    blob[mid] ^= 0x01;
    fs::write(&path, blob).unwrap();
    copy
}

#[test]
fn corrupted_blobs_write_nothing() {
    let img = image();
    let types = img.layer_media_types();
    assert!(
        types[0].ends_with(".tar") && types[1].ends_with("+gzip"),
        "{types:?}"
    );
    // Layer 0 is uncompressed: the flip lands in file data and only the
    // digest check can notice it. Layer 1 is multi-member gzip.
    for layer in [0, 1] {
        let tmp = tempfile::tempdir().unwrap();
        let bad = corrupt_layer(img, layer, &tmp.path().join("layout"));
        let out_dir = tmp.path().join("out");
        fs::create_dir(&out_dir).unwrap();
        fails_cleanly(&bad.oci_ref(), &out_dir, "initrd.gz");
        fs::write(out_dir.join("keep.cpio"), b"keep me").unwrap();
        fails_cleanly(&bad.oci_ref(), &out_dir, "keep.cpio");

        // On stdout a partial stream may have gone out, but never a
        // complete-looking archive.
        let out = tool([bad.oci_ref().as_str(), "-c", "none", "--no-init"]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "layer {layer} corrupted, stdout mode"
        );
        assert!(
            newc::parse(&out.stdout).is_err(),
            "layer {layer} corrupted: stdout still got a complete archive"
        );
    }
}

#[test]
fn output_into_a_missing_directory_fails() {
    let img = image();
    let tmp = tempfile::tempdir().unwrap();
    let out = tool([
        img.oci_ref().as_str(),
        "--no-init",
        "-o",
        tmp.path().join("no/such/dir/x.gz").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(list_dir(tmp.path()).is_empty());
}

#[test]
fn refuses_to_write_an_archive_to_a_terminal() {
    common::require("script");
    let img = image();
    let cmd = format!("{} {} --no-init", common::BIN, img.oci_ref());
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected exit 1 on a terminal, got: {shown}"
    );
    assert!(
        !shown.contains("070701"),
        "the archive went to the terminal"
    );
    assert!(!shown.trim().is_empty(), "no error message on the terminal");
}
