//! Replays the fuzz seed corpora (fuzz/corpus/<target>/) through the fuzz
//! target bodies on the stable toolchain, plus a few thousand cheap
//! deterministic mutations of each seed, so that CI exercises the targets
//! without libFuzzer. Errors are fine; a panic fails the test.

#[path = "../../fuzz/bodies.rs"]
mod bodies;

use std::path::{Path, PathBuf};

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

/// xorshift64: the mutations are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut m = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(m.len() + 1);
        let last = m.len().saturating_sub(1);
        match rng.below(6) {
            0 if !m.is_empty() => m[at.min(last)] ^= 1 << rng.below(8),
            1 if !m.is_empty() => m[at.min(last)] = rng.next() as u8,
            2 => m.truncate(at),
            3 => m.insert(at, rng.next() as u8),
            4 if at < m.len() => {
                let end = (at + 1 + rng.below(16)).min(m.len());
                m.drain(at..end);
            }
            _ => {
                // Interesting values where the formats keep sizes and counts.
                let v: &[u8] =
                    [&b"\xff\xff\xff\xff"[..], b"0000", b"\x00", b"7777777"][rng.below(4)];
                let at = at.min(m.len());
                let end = (at + v.len()).min(m.len());
                m.splice(at..end, v.iter().copied());
            }
        }
    }
    m
}

fn message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

fn replay(target: &str, body: fn(&[u8]), mutations: usize) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (path, seed) in seeds(target) {
        let name = path.display().to_string();
        if let Err(p) = std::panic::catch_unwind(|| body(&seed)) {
            panic!("{name}: {}", message(p));
        }
        for i in 0..mutations {
            let m = mutate(&seed, &mut rng);
            if let Err(p) = std::panic::catch_unwind(|| body(&m)) {
                panic!("{name}, mutation {i}: {}\ninput: {m:02x?}", message(p));
            }
        }
    }
}

#[test]
fn layer_index_corpus() {
    replay("layer_index", bodies::layer_index, 300);
}

#[test]
fn cpio_roundtrip_corpus() {
    replay("cpio_roundtrip", bodies::cpio_roundtrip, 500);
}

#[test]
fn documents_corpus() {
    replay("documents", bodies::documents, 500);
}

#[test]
fn references_corpus() {
    replay("references", bodies::references, 500);
}
