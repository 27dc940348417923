//! Heap bytes per path of the merge index and of the plan, for the
//! synthetic million-path image of the benchmarks:
//!
//!     cargo run --release --example index_memory [PATHS]
//!
//! A counting allocator gives exact live bytes; VmHWM is what the kernel
//! saw, allocator overhead and freed-but-kept pages included.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

use initramfs_stream::index::MergeIndex;

#[path = "../benches/support/mod.rs"]
mod support;

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
        PEAK.fetch_max(now, Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            let now = LIVE.fetch_add(new_size - layout.size(), Relaxed) + new_size - layout.size();
            PEAK.fetch_max(now, Relaxed);
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn vm_hwm_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let paths: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("PATHS is a number"))
        .unwrap_or(1_000_000);
    let layers = support::synthetic_layers(paths);
    let entries: usize = layers.iter().map(Vec::len).sum();
    let lists = LIVE.load(Relaxed);

    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    let start = Instant::now();
    let mut index = MergeIndex::new(usize::MAX);
    for (n, layer) in layers.iter().enumerate() {
        index.apply_layer(n as u32, layer).unwrap();
    }
    let applied = start.elapsed();
    let index_bytes = LIVE.load(Relaxed) - base;
    let index_peak = PEAK.load(Relaxed) - base;
    let n = index.len();

    let before_plan = LIVE.load(Relaxed);
    let start = Instant::now();
    let plan = index.plan();
    let planned = start.elapsed();
    let plan_bytes = LIVE.load(Relaxed) - before_plan;
    let peak = PEAK.load(Relaxed) - base;
    drop(plan);

    println!(
        "{entries} tar entries in {} layers -> {n} paths",
        layers.len()
    );
    println!(
        "entry lists (pass 1 input): {:.0} bytes/entry",
        lists as f64 / entries as f64
    );
    println!(
        "index: {:.0} bytes/path live, {:.0} bytes/path peak while applying ({:.2} s)",
        index_bytes as f64 / n as f64,
        index_peak as f64 / n as f64,
        applied.as_secs_f64()
    );
    println!(
        "plan: {:.0} bytes/path ({:.2} s); index + plan peak {:.0} bytes/path",
        plan_bytes as f64 / n as f64,
        planned.as_secs_f64(),
        peak as f64 / n as f64
    );
    println!("VmHWM: {} MiB", vm_hwm_kib() / 1024);
}
