//! Compression in independent blocks on all cores, for formats whose
//! blocks can be made independently: gzip (as pigz does: each 128 KiB block
//! is deflated with the previous 32 KiB as its dictionary and ends byte
//! aligned, so the blocks join into one deflate stream) and the legacy lz4
//! format the kernel reads (8 MiB blocks, each a size and an lz4 block).
//!
//! Block boundaries depend only on the input's length, never on timing or
//! the number of threads: the output is the same for any `jobs`.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use flate2::{Compress, FlushCompress, Status};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;

/// A format made of independently compressed blocks.
pub trait BlockFormat: Send + Sync + 'static {
    /// What the trailer needs to know of the whole stream (a checksum).
    type Summary: Default;
    /// Uncompressed bytes per block (the last may be shorter).
    fn block_size(&self) -> usize;
    fn header(&self) -> Vec<u8>;
    /// Compresses one block; `previous` is the block before it (empty for
    /// the first).
    fn compress(&self, block: &[u8], previous: &[u8]) -> std::io::Result<Vec<u8>>;
    /// Sees every block in order.
    fn observe(_summary: &mut Self::Summary, _block: &[u8]) {}
    fn trailer(&self, summary: &Self::Summary) -> Vec<u8>;
}

/// Compresses `input` into `output` with up to `jobs` blocks in flight on
/// the blocking pool. Returns the bytes written.
pub async fn compress<R, W, F>(
    mut input: R,
    output: &mut W,
    format: F,
    jobs: usize,
) -> std::io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    F: BlockFormat + Clone,
{
    let header = format.header();
    output.write_all(&header).await?;
    let mut written = header.len() as u64;
    let mut in_flight = InFlight::default();
    let mut previous = Bytes::new();
    let mut summary = F::Summary::default();
    let max_in_flight = jobs.max(1) * 2;
    loop {
        let block = read_block(&mut input, format.block_size()).await?;
        if block.is_empty() {
            break;
        }
        F::observe(&mut summary, &block);
        let (fmt, prev, this) = (format.clone(), previous.clone(), block.clone());
        in_flight.push_back(tokio::task::spawn_blocking(move || {
            fmt.compress(&this, &prev)
        }));
        previous = block;
        if in_flight.len() >= max_in_flight {
            written += write_next(&mut in_flight, output).await?;
        }
    }
    while !in_flight.is_empty() {
        written += write_next(&mut in_flight, output).await?;
    }
    let trailer = format.trailer(&summary);
    output.write_all(&trailer).await?;
    output.flush().await?;
    Ok(written + trailer.len() as u64)
}

/// Blocks being compressed, oldest first. Dropped early (the conversion
/// failed or was cancelled), it aborts the blocks not yet started; one
/// already running ends within its block.
#[derive(Default)]
struct InFlight(VecDeque<JoinHandle<std::io::Result<Vec<u8>>>>);

impl InFlight {
    fn push_back(&mut self, task: JoinHandle<std::io::Result<Vec<u8>>>) {
        self.0.push_back(task);
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

async fn write_next<W: AsyncWrite + Unpin>(
    in_flight: &mut InFlight,
    output: &mut W,
) -> std::io::Result<u64> {
    let Some(task) = in_flight.0.pop_front() else {
        return Ok(0);
    };
    let data = task.await.map_err(std::io::Error::other)??;
    output.write_all(&data).await?;
    Ok(data.len() as u64)
}

/// Reads exactly `size` bytes, or fewer only at the end of the input.
async fn read_block<R: AsyncRead + Unpin>(input: &mut R, size: usize) -> std::io::Result<Bytes> {
    let mut buf = BytesMut::zeroed(size);
    let mut filled = 0;
    while filled < size {
        let n = input.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(buf.freeze())
}

/// gzip made of pigz-style blocks: one gzip member, one deflate stream.
#[derive(Clone)]
pub struct ParallelGzip {
    level: u32,
}

/// The deflate window: a block may refer this far back into the previous one.
const DICTIONARY: usize = 32 * 1024;

impl ParallelGzip {
    pub fn new(level: u32) -> Self {
        ParallelGzip { level }
    }
}

impl BlockFormat for ParallelGzip {
    type Summary = flate2::Crc;

    fn block_size(&self) -> usize {
        128 * 1024
    }

    fn header(&self) -> Vec<u8> {
        let xfl = match self.level {
            9 => 2,
            1 => 4,
            _ => 0,
        };
        // No name, mtime 0, OS "unknown": the same bytes on every host.
        vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 0xff]
    }

    fn compress(&self, block: &[u8], previous: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut c = Compress::new(flate2::Compression::new(self.level), false);
        if !previous.is_empty() {
            let dict = &previous[previous.len().saturating_sub(DICTIONARY)..];
            c.set_dictionary(dict).map_err(std::io::Error::other)?;
        }
        let mut out = Vec::with_capacity(block.len() / 2 + 1024);
        loop {
            let consumed = c.total_in() as usize;
            if out.capacity() - out.len() < 1024 {
                out.reserve(block.len() / 4 + 4096);
            }
            // A sync flush ends the block on a byte boundary without marking
            // the stream's end, so the next block's bytes can follow.
            let status = c
                .compress_vec(&block[consumed..], &mut out, FlushCompress::Sync)
                .map_err(std::io::Error::other)?;
            let done = c.total_in() as usize == block.len() && out.len() < out.capacity();
            if done || status == Status::StreamEnd {
                break;
            }
        }
        Ok(out)
    }

    fn observe(crc: &mut flate2::Crc, block: &[u8]) {
        crc.update(block);
    }

    fn trailer(&self, crc: &flate2::Crc) -> Vec<u8> {
        // An empty final block with fixed codes (BFINAL=1, BTYPE=01, EOB),
        // then CRC-32 and the length modulo 2^32.
        let mut t = vec![0x03, 0x00];
        t.extend_from_slice(&crc.sum().to_le_bytes());
        t.extend_from_slice(&crc.amount().to_le_bytes());
        t
    }
}

/// The legacy lz4 format (`lz4 -l`), the only lz4 framing the kernel reads.
#[derive(Clone)]
pub struct LegacyLz4;

impl BlockFormat for LegacyLz4 {
    type Summary = ();

    fn block_size(&self) -> usize {
        // The kernel's unlz4 decodes blocks of at most 8 MiB.
        8 << 20
    }

    fn header(&self) -> Vec<u8> {
        0x184C_2102u32.to_le_bytes().to_vec()
    }

    fn compress(&self, block: &[u8], _previous: &[u8]) -> std::io::Result<Vec<u8>> {
        let compressed = lz4_flex::block::compress(block);
        let mut out = Vec::with_capacity(compressed.len() + 4);
        out.extend_from_slice(&(compressed.len() as u32).to_le_bytes());
        out.extend_from_slice(&compressed);
        Ok(out)
    }

    fn trailer(&self, _: &()) -> Vec<u8> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample(len: usize) -> Vec<u8> {
        // Compressible but not trivial: repeated text with a counter.
        let mut v = Vec::with_capacity(len);
        let mut i = 0u64;
        while v.len() < len {
            v.extend_from_slice(format!("line {i} of the sample {}\n", i % 7).as_bytes());
            i += 1;
        }
        v.truncate(len);
        v
    }

    async fn gzip(data: &[u8], jobs: usize) -> Vec<u8> {
        let mut out = Vec::new();
        compress(data, &mut out, ParallelGzip::new(6), jobs)
            .await
            .unwrap();
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn gzip_round_trips_and_ignores_jobs() {
        for len in [0, 1, 100_000, 128 * 1024, 1_000_003] {
            let data = sample(len);
            let one = gzip(&data, 1).await;
            let four = gzip(&data, 4).await;
            assert_eq!(one, four, "output depends on jobs for {len} bytes");
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&one[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data, "round trip of {len} bytes");
        }
    }

    /// Counts the blocks that started compressing; each takes a while.
    #[derive(Clone)]
    struct Slow(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl BlockFormat for Slow {
        type Summary = ();
        fn block_size(&self) -> usize {
            1024
        }
        fn header(&self) -> Vec<u8> {
            Vec::new()
        }
        fn compress(&self, block: &[u8], _: &[u8]) -> std::io::Result<Vec<u8>> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(20));
            Ok(block.to_vec())
        }
        fn trailer(&self, _: &()) -> Vec<u8> {
            Vec::new()
        }
    }

    /// An output that takes nothing, and says when it is first asked to.
    struct Stalled(std::sync::Arc<tokio::sync::Notify>);

    impl AsyncWrite for Stalled {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            _: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.0.notify_one();
            std::task::Poll::Pending
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Pending
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Pending
        }
    }

    /// Dropping the compression drops the blocks queued behind the one
    /// running. With one blocking thread, 16 blocks are in flight when the
    /// first finished one meets the stalled output; at that moment the
    /// second is running, and only it may still finish.
    #[test]
    fn dropped_compression_aborts_queued_blocks() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(1)
            .build()
            .unwrap();
        let started = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let format = Slow(started.clone());
        let asked = std::sync::Arc::new(tokio::sync::Notify::new());
        runtime.block_on(async {
            let input = vec![7u8; 64 * 1024];
            let mut output = Stalled(asked.clone());
            tokio::select! {
                _ = compress(&input[..], &mut output, format, 8) => panic!("the output takes nothing"),
                _ = asked.notified() => {}
            }
        });
        // Time for the 14 queued blocks to run, had they not been aborted.
        std::thread::sleep(std::time::Duration::from_millis(600));
        let n = started.load(std::sync::atomic::Ordering::SeqCst);
        assert!(n <= 2, "{n} of 16 blocks ran after the drop");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lz4_blocks_decode() {
        let data = sample(9 << 20);
        let mut out = Vec::new();
        compress(&data[..], &mut out, LegacyLz4, 2).await.unwrap();
        assert_eq!(&out[..4], &[0x02, 0x21, 0x4c, 0x18]);
        let mut back = Vec::new();
        let mut rest = &out[4..];
        while !rest.is_empty() {
            let n = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
            back.extend(lz4_flex::block::decompress(&rest[4..4 + n], 8 << 20).unwrap());
            rest = &rest[4 + n..];
        }
        assert_eq!(back, data);
    }
}
