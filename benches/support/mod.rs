//! Inputs for the benchmarks, generated in memory or in a temporary
//! directory so that `cargo bench` needs no external tool.

#![allow(dead_code)] // each bench uses a part

use std::io::Write;
use std::path::Path;

use initramfs_stream::fs::{Kind, Meta};
use initramfs_stream::layer::LayerEntry;
use sha2::{Digest, Sha256};

/// `cargo test --all-targets` runs each benchmark once, unoptimised and
/// without `--bench`: shrink the inputs there, only checking that it runs.
pub fn scale(full: usize) -> usize {
    if std::env::args().any(|a| a == "--bench") {
        full
    } else {
        (full / 100).max(1)
    }
}

const META: Meta = Meta {
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtime: 1_700_000_000,
};

/// Bytes that compress about as well as source code and text (3-4x with
/// gzip): words from a small vocabulary picked by a fixed LCG.
pub fn text(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&[u8]] = &[
        b"def ", b"return ", b"self", b".value", b"(", b")", b":\n    ", b"import ", b"os",
        b"path", b"if ", b"else", b" = ", b"None", b"for ", b" in ", b"range", b"\n", b"0x",
        b"config", b"# ", b"the ", b"data", b", ", b"1", b"42", b"[", b"]", b"class ", b"Error",
        b"raise ", b"try", b"except", b"'", b"\"\"\"", b"name",
    ];
    let mut out = Vec::with_capacity(len + 16);
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    while out.len() < len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = (x >> 33) as usize;
        if r % 97 == 0 {
            // Some identifiers that repeat rarely, as real files have.
            out.extend_from_slice(format!("v{:x}", x >> 40).as_bytes());
        } else {
            out.extend_from_slice(WORDS[r % WORDS.len()]);
        }
    }
    out.truncate(len);
    out
}

/// Layer entries for about `paths` paths shaped like an installed
/// language runtime: `usr/lib/pkgNNNN/modMM/file_KKK.py`, 100 files per
/// directory. The second layer adds packages, rewrites some files of the
/// first and deletes a few of its packages, as an update layer does.
pub fn synthetic_layers(paths: usize) -> Vec<Vec<LayerEntry>> {
    let per_dir = 100;
    let dirs_per_pkg = 10;
    let pkgs = paths.div_ceil(per_dir * dirs_per_pkg);
    let split = pkgs * 7 / 10;
    let mut layers = vec![Vec::new(), Vec::new()];
    let mut push = |layer: usize, path: String, kind: Kind| {
        let entries: &mut Vec<LayerEntry> = &mut layers[layer];
        let ordinal = entries.len() as u32;
        entries.push(LayerEntry {
            path: path.into_bytes(),
            kind,
            meta: META,
            ordinal,
        });
    };
    for layer in 0..2 {
        push(layer, "usr/".into(), Kind::Dir);
        push(layer, "usr/lib/".into(), Kind::Dir);
    }
    for p in 0..pkgs {
        let layer = usize::from(p >= split);
        push(layer, format!("usr/lib/pkg{p:04}/"), Kind::Dir);
        for d in 0..dirs_per_pkg {
            push(layer, format!("usr/lib/pkg{p:04}/mod{d:02}/"), Kind::Dir);
            for f in 0..per_dir {
                let size = 200 + ((p * 7 + d * 13 + f * 31) % 4000) as u64;
                push(
                    layer,
                    format!("usr/lib/pkg{p:04}/mod{d:02}/file_{f:03}.py"),
                    Kind::File { size },
                );
            }
        }
    }
    // Updates: rewrite one module of every tenth old package, delete one
    // old package in fifty.
    for p in (0..split).step_by(10) {
        for f in 0..per_dir {
            push(
                1,
                format!("usr/lib/pkg{p:04}/mod00/file_{f:03}.py"),
                Kind::File { size: 1000 },
            );
        }
    }
    for p in (5..split).step_by(50) {
        push(1, format!("usr/lib/.wh.pkg{p:04}"), Kind::File { size: 0 });
    }
    layers
}

/// A regular file or a directory for [`write_layout`].
pub enum Item {
    Dir(String),
    File(String, Vec<u8>),
}

/// Writes an OCI image layout with one gzip layer per item list, tagged
/// `bench`, and returns the reference to pass to `ImageReference::parse`.
pub fn write_layout(dir: &Path, layers: &[Vec<Item>]) -> String {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> (String, u64) {
        let digest = hex(&Sha256::digest(bytes));
        std::fs::write(blobs.join(&digest), bytes).unwrap();
        (format!("sha256:{digest}"), bytes.len() as u64)
    };
    let mut layer_descs = Vec::new();
    let mut diff_ids = Vec::new();
    for items in layers {
        let tar = tar(items);
        diff_ids.push(format!("sha256:{}", hex(&Sha256::digest(&tar))));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        gz.write_all(&tar).unwrap();
        let (digest, size) = put(&gz.finish().unwrap());
        layer_descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": digest,
            "size": size,
        }));
    }
    let config = serde_json::json!({
        "architecture": host_arch(),
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {"Cmd": ["/bin/sh"]},
    });
    let (config_digest, config_size) = put(&serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": layer_descs,
    });
    let (manifest_digest, manifest_size) = put(&serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": "bench"},
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    format!("oci:{}:bench", dir.display())
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A ustar archive of `items` (names under 100 bytes).
fn tar(items: &[Item]) -> Vec<u8> {
    let mut out = Vec::new();
    for item in items {
        let (name, mode, flag, data): (&str, u32, u8, &[u8]) = match item {
            Item::Dir(name) => (name, 0o755, b'5', &[]),
            Item::File(name, data) => (name, 0o644, b'0', data),
        };
        assert!(name.len() < 100, "{name}: name too long for this writer");
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut h[100..108], mode as u64);
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], data.len() as u64);
        octal(&mut h[136..148], 1_700_000_000);
        h[156] = flag;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        octal(&mut h[148..155], u64::from(sum));
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// NUL-terminated, zero-padded octal, as ustar fields are.
fn octal(field: &mut [u8], v: u64) {
    let digits = format!("{v:0width$o}", width = field.len() - 1);
    field[..digits.len()].copy_from_slice(digits.as_bytes());
    field[digits.len()] = 0;
}
