//! Pass 1's in-memory work for an image of a million paths: applying the
//! layers' headers to the merge index, then planning the archive.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use initramfs_stream::fs::{Kind, Meta};
use initramfs_stream::index::MergeIndex;
use initramfs_stream::layer::LayerEntry;

mod support;

fn build(c: &mut Criterion) {
    let layers = support::synthetic_layers(support::scale(1_000_000));
    let entries: usize = layers.iter().map(Vec::len).sum();
    let mut group = c.benchmark_group("index");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(entries as u64));
    group.bench_function("apply 1M paths", |b| {
        b.iter_batched(
            || (),
            |()| {
                let mut index = MergeIndex::new(usize::MAX);
                for (n, layer) in layers.iter().enumerate() {
                    index.apply_layer(n as u32, layer).unwrap();
                }
                index // dropped outside the timing
            },
            BatchSize::PerIteration,
        )
    });
    let mut index = MergeIndex::new(usize::MAX);
    for (n, layer) in layers.iter().enumerate() {
        index.apply_layer(n as u32, layer).unwrap();
    }
    group.bench_function("plan 1M paths", |b| b.iter_with_large_drop(|| index.plan()));

    // One directory of 50,000 files, all rewritten by the next layer (a
    // timezone or locale directory updated in place): cost per entry must
    // not grow with the directory's size.
    let flat: Vec<LayerEntry> = (0..support::scale(50_000) as u32)
        .map(|i| LayerEntry {
            path: format!("usr/share/zoneinfo/zone{i:05}").into_bytes(),
            kind: Kind::File { size: 100 },
            meta: Meta::default(),
            ordinal: i,
        })
        .collect();
    group.throughput(Throughput::Elements(2 * flat.len() as u64));
    group.bench_function("rewrite a 50k-file directory", |b| {
        b.iter_with_large_drop(|| {
            let mut index = MergeIndex::new(usize::MAX);
            index.apply_layer(0, &flat).unwrap();
            index.apply_layer(1, &flat).unwrap();
            index
        })
    });
    group.finish();
}

criterion_group!(benches, build);
criterion_main!(benches);
