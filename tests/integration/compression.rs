//! Every codec: the real decompressor gives back the `-c none` archive, and
//! the bytes do not depend on the number of threads.

use crate::common;

use common::fixtures;

const BIN: &str = env!("CARGO_BIN_EXE_initramfs-stream");

fn convert_with(image: &str, args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new(BIN)
        .arg(image)
        .args(["--no-init"])
        .args(args)
        .output()
        .expect("run initramfs-stream");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn decode(tool: &str, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new(tool)
        .args(["-d", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(out.status.success(), "{tool} -dc failed");
    out.stdout
}

#[test]
fn every_codec_decodes_to_the_archive_for_any_thread_count() {
    let image = fixtures::busybox().image.oci_ref();
    let plain = convert_with(&image, &["-c", "none"]);
    for (codec, tool) in [
        ("gzip", "gzip"),
        ("zstd", "zstd"),
        ("xz", "xz"),
        ("lz4", "lz4"),
    ] {
        common::require(tool);
        let one = convert_with(&image, &["-c", codec, "-j", "1"]);
        let three = convert_with(&image, &["-c", codec, "-j", "3"]);
        assert!(one == three, "{codec}: -j 1 and -j 3 give different bytes");
        common::assert_bytes_eq(&decode(tool, &one), &plain, codec);
    }
}

#[test]
fn xz_uses_crc32_checks() {
    // The kernel's xz decoder rejects CRC64, the usual default.
    let image = fixtures::busybox().image.oci_ref();
    let xz = convert_with(&image, &["-c", "xz", "-l", "1"]);
    // Stream flags follow the 6-byte magic: 0x00 then the check type, 0x01 = CRC32.
    assert_eq!(&xz[..6], b"\xfd7zXZ\0");
    assert_eq!(&xz[6..8], &[0x00, 0x01]);
}

#[test]
fn gzip_is_one_member_without_name_or_mtime() {
    let image = fixtures::busybox().image.oci_ref();
    let gz = convert_with(&image, &["-c", "gzip"]);
    // FLG 0 (no name), MTIME 0: the same bytes on any host, any day.
    assert_eq!(&gz[..8], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
    // One member: no second gzip header after the first.
    let plain = convert_with(&image, &["-c", "none"]);
    let mut decoder = flate2::read::GzDecoder::new(&gz[..]);
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut decoder, &mut back).unwrap();
    common::assert_bytes_eq(&back, &plain, "first gzip member");
}
