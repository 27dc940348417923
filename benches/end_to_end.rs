//! Whole conversions of generated OCI layouts into `tokio::io::sink()`:
//! both passes, the encoder and the compressor, as the command runs them.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use initramfs_stream::{Codec, Compression, ImageReference, InitramfsBuilder};

mod support;
use support::Item;

/// Two layers of 12,000 files of 0-4 KiB in 120 directories; the second
/// rewrites a tenth of the first.
fn small_files() -> Vec<Vec<Item>> {
    let dirs = support::scale(12_000) / 100;
    let mut layers = vec![Vec::new(), Vec::new()];
    for d in 0..dirs as u64 {
        layers[0].push(Item::Dir(format!("usr/share/d{d:03}/")));
        for f in 0..100 {
            let seed = d * 100 + f;
            let data = support::text((seed as usize * 41) % 4096, seed);
            layers[0].push(Item::File(format!("usr/share/d{d:03}/f{f:03}.txt"), data));
        }
    }
    for d in (0..dirs as u64).step_by(10) {
        for f in 0..100 {
            let data = support::text(1500, 1_000_000 + d * 100 + f);
            layers[1].push(Item::File(format!("usr/share/d{d:03}/f{f:03}.txt"), data));
        }
    }
    layers
}

/// One layer of four 12 MiB files.
fn large_files() -> Vec<Vec<Item>> {
    vec![(0..4)
        .map(|i| {
            Item::File(
                format!("opt/data/blob{i}"),
                support::text(support::scale(12 << 20), i),
            )
        })
        .collect()]
}

fn convert(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("end_to_end");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4));
    for (name, layers) in [
        ("small files", small_files()),
        ("large files", large_files()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let bytes: usize = layers
            .iter()
            .flatten()
            .map(|i| match i {
                Item::File(_, d) => d.len(),
                Item::Dir(_) => 0,
            })
            .sum();
        let reference = support::write_layout(dir.path(), &layers);
        group.throughput(Throughput::Bytes(bytes as u64));
        for codec in [Codec::None, Codec::Gzip, Codec::Zstd] {
            let id = format!("{name}, {codec:?}");
            group.bench_function(id, |b| {
                b.to_async(&rt).iter(|| async {
                    let image = ImageReference::parse(&reference).unwrap();
                    InitramfsBuilder::new(image)
                        .boot(None)
                        .compression(Compression::new(codec, None).unwrap())
                        .prepare()
                        .await
                        .unwrap()
                        .write_to(tokio::io::sink())
                        .await
                        .unwrap()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, convert);
criterion_main!(benches);
