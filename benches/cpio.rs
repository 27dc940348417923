//! newc encoder throughput into a sink: the cost the writer adds on top of
//! reading the layers and compressing.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use initramfs_stream::cpio::{mode, NewcWriter, Record};
use std::time::Duration;

mod support;

fn record(name: Vec<u8>, ino: u32, size: usize) -> Record {
    Record {
        name,
        ino,
        mode: mode::S_IFREG | 0o644,
        uid: 0,
        gid: 0,
        nlink: 1,
        mtime: 1_700_000_000,
        filesize: size as u32,
        rdev_major: 0,
        rdev_minor: 0,
    }
}

fn encode(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("cpio");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));

    // 20,000 files of 0-2 KiB with names like an installed runtime's: the
    // writer's per-record cost (header formatting, small writes).
    let small: Vec<(Record, Vec<u8>)> = (0..support::scale(20_000) as u32)
        .map(|i| {
            let name = format!("usr/lib/python3/pkg{:03}/module_{i:05}.py", i % 300);
            let data = support::text((i as usize * 37) % 2048, u64::from(i));
            (record(name.into_bytes(), i + 1, data.len()), data)
        })
        .collect();
    let bytes: usize = small
        .iter()
        .map(|(r, d)| 110 + r.name.len() + d.len())
        .sum();
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("20k small records", |b| {
        b.to_async(&rt).iter(|| async {
            let sink = tokio::io::BufWriter::with_capacity(256 * 1024, tokio::io::sink());
            let mut w = NewcWriter::new(sink);
            for (r, data) in &small {
                w.write_record(r, data).await.unwrap();
            }
            w.finish().await.unwrap();
        })
    });

    // Four 16 MiB files streamed from readers: the copy path.
    let big = support::text(support::scale(16 << 20), 7);
    group.throughput(Throughput::Bytes(4 * big.len() as u64));
    group.bench_function("4 large records", |b| {
        b.to_async(&rt).iter(|| async {
            let sink = tokio::io::BufWriter::with_capacity(256 * 1024, tokio::io::sink());
            let mut w = NewcWriter::new(sink);
            for i in 0..4u32 {
                let r = record(format!("opt/blob{i}").into_bytes(), i + 1, big.len());
                let mut data: &[u8] = &big;
                w.write_record_from(&r, &mut data).await.unwrap();
            }
            w.finish().await.unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
