//! The builder on hand-made OCI layouts.
//!
//! The conversion's tasks end with the future that owns them. Each test
//! runs on a current-thread runtime, where tasks only interleave when one
//! waits: the order of events is fixed, and so is the outcome.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest, Sha256};
use tokio::task::yield_now;

use super::tasks::live;
use super::InitramfsBuilder;
use crate::boot::{BootOptions, InitChoice};
use crate::source::{host_platform, ImageReference};

/// Large enough that reading it takes 7 scheduler turns, more than a test
/// gives (at most 5): a local read spends one unit of tokio's budget of
/// 128 per turn, and the layer reader asks for 256 KiB at a time, so a
/// turn reads 32 MiB.
const BIG: u64 = 224 << 20;
/// Scheduler turns given to aborted tasks to go away (one is enough).
const TURNS: usize = 3;

fn header(name: &str, size: u64) -> Vec<u8> {
    crate::layer::test_tar::block(name.as_bytes(), size, b'0')
}

/// A layer tar of regular files given as (name, size); every body is
/// zeros, left as a hole in the file.
fn layer(files: &[(&str, u64)]) -> Vec<u8> {
    let mut tar = Vec::new();
    for (name, size) in files {
        tar.extend(header(name, *size));
        tar.resize(tar.len() + size.next_multiple_of(512) as usize, 0);
    }
    tar.resize(tar.len() + 1024, 0);
    tar
}

struct Layout<'a> {
    dir: &'a Path,
}

impl Layout<'_> {
    fn blob(&self, data: &[u8], media_type: &str) -> serde_json::Value {
        let digest = hex::encode(Sha256::digest(data));
        let path = self.dir.join("blobs/sha256").join(&digest);
        std::fs::write(path, data).unwrap();
        serde_json::json!({
            "mediaType": media_type,
            "digest": format!("sha256:{digest}"),
            "size": data.len(),
        })
    }

    /// An uncompressed layer whose first file is [`BIG`] bytes of zeros,
    /// written sparsely.
    fn big_layer(&self, after: &[(&str, u64)]) -> serde_json::Value {
        let tmp = self.dir.join("big.tar");
        let mut file = std::fs::File::create_new(&tmp).unwrap();
        file.write_all(&header("big", BIG)).unwrap();
        file.set_len(512 + BIG).unwrap();
        file.seek(SeekFrom::End(0)).unwrap();
        file.write_all(&layer(after)).unwrap();
        let size = file.stream_position().unwrap();
        drop(file);
        // coreutils hashes it in a fraction of the time unoptimised code takes.
        let sum = std::process::Command::new("sha256sum")
            .arg(&tmp)
            .output()
            .unwrap();
        assert!(sum.status.success());
        let digest = String::from_utf8(sum.stdout[..64].to_vec()).unwrap();
        std::fs::rename(&tmp, self.dir.join("blobs/sha256").join(&digest)).unwrap();
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": format!("sha256:{digest}"),
            "size": size,
        })
    }

    fn image(&self, layers: Vec<serde_json::Value>) {
        let platform = host_platform();
        std::fs::write(
            self.dir.join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        let diff_ids: Vec<_> = layers.iter().map(|l| l["digest"].clone()).collect();
        let config = serde_json::json!({
            "architecture": platform.architecture,
            "os": platform.os,
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        let config = self.blob(
            config.to_string().as_bytes(),
            "application/vnd.oci.image.config.v1+json",
        );
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config,
            "layers": layers,
        });
        let manifest = self.blob(
            manifest.to_string().as_bytes(),
            "application/vnd.oci.image.manifest.v1+json",
        );
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [manifest],
        });
        std::fs::write(self.dir.join("index.json"), index.to_string()).unwrap();
    }
}

fn builder(dir: &Path) -> InitramfsBuilder {
    let reference = ImageReference::parse(&format!("oci:{}", dir.display())).unwrap();
    InitramfsBuilder::new(reference)
        .boot(None)
        .check(false)
        .jobs(2)
}

fn layout(dir: &Path) -> Layout<'_> {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    Layout { dir }
}

#[tokio::test]
async fn a_failed_scan_stops_the_other_layers_scans() {
    let dir = tempfile::tempdir().unwrap();
    let oci = layout(dir.path());
    // Not a tar: its scan fails at the first header, while the next
    // layer's scan has just begun reading a large file.
    let broken = oci.blob(&[b'x'; 1024], "application/vnd.oci.image.layer.v1.tar");
    let big = oci.big_layer(&[]);
    oci.image(vec![broken, big]);

    let err = builder(dir.path())
        .prepare()
        .await
        .err()
        .expect("a broken layer");
    assert!(err.to_string().contains("layer 0"), "{err}");
    for _ in 0..TURNS {
        yield_now().await;
    }
    assert_eq!(
        live::count(),
        0,
        "a layer scan outlived the failed conversion"
    );
}

#[tokio::test]
async fn dropping_the_write_stops_the_encoder_and_the_producers() {
    let dir = tempfile::tempdir().unwrap();
    let oci = layout(dir.path());
    // The content pass of layer 0 must read through `big` (replaced by
    // layer 1) before it reaches `small`.
    let lower = oci.big_layer(&[("small", 100)]);
    let upper = oci.blob(
        &layer(&[("big", 10)]),
        "application/vnd.oci.image.layer.v1.tar",
    );
    oci.image(vec![lower, upper]);
    let prepared = builder(dir.path()).prepare().await.unwrap();
    assert_eq!(live::count(), 0);

    let mut write = Box::pin(prepared.write_to(tokio::io::sink()));
    for turn in 0..2 {
        if let std::task::Poll::Ready(r) = futures::poll!(write.as_mut()) {
            panic!(
                "the write ended at turn {turn}: {:?}",
                r.map(|s| s.archive_bytes)
            );
        }
        yield_now().await;
    }
    // The encoder waits for `small` while the producer reads `big`.
    assert_eq!(live::count(), 2);
    drop(write);
    for _ in 0..TURNS {
        yield_now().await;
    }
    assert_eq!(live::count(), 0, "a task outlived the dropped write");
}

/// An injected file that changes size between planning and writing would
/// make the archive contradict its own headers: the write refuses it.
#[tokio::test]
async fn an_injected_file_that_changes_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("oci");
    let oci = layout(&root);
    let files = oci.blob(
        &layer(&[("etc", 0)]),
        "application/vnd.oci.image.layer.v1.tar",
    );
    oci.image(vec![files]);
    let agent = dir.path().join("agent");
    std::fs::write(&agent, b"v1").unwrap();
    let boot = BootOptions {
        init: InitChoice::Keep,
        injects: vec![format!("{}:/usr/bin/agent", agent.display())],
        ..BootOptions::default()
    };
    let prepared = builder(&root).boot(Some(boot)).prepare().await.unwrap();
    std::fs::write(&agent, b"v2, longer").unwrap();
    let mut out = Vec::new();
    match prepared.write_to(&mut out).await {
        Err(crate::Error::HostFileChanged { path, planned, now }) => {
            assert_eq!((path, planned, now), (agent, 2, 10));
        }
        other => panic!("{:?}", other.map(|s| s.archive_bytes)),
    }
    assert!(
        !out.windows(10).any(|w| w == b"TRAILER!!!"),
        "a refused archive must not look whole"
    );
}
