//! Compression of the finished archive stream, and where it goes: any async
//! writer, or a file that appears atomically.
//!
//! Every codec here writes a stream the kernel unpacks (gzip, zstd as one
//! frame, xz with CRC32 checks, lz4 in the legacy format), uses all cores,
//! and gives the same bytes for any number of threads.

mod blocks;
mod threaded;
mod xz;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// How the archive is compressed. Each is one the kernel unpacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Codec {
    /// The archive as it is.
    None,
    /// gzip, in independently compressed blocks joined into one member.
    Gzip,
    /// zstd, one frame.
    Zstd,
    /// xz with CRC32 checks (the kernel's xz decoder has no CRC64).
    Xz,
    /// lz4 in the legacy frame format, the one the kernel reads.
    Lz4,
}

impl Codec {
    /// The codec a file name implies: `.gz` gzip, `.zst`/`.zstd` zstd,
    /// `.xz` xz, `.lz4` lz4, `.cpio` none, anything else gzip (the kernel's
    /// most common format).
    pub fn for_path(path: &Path) -> Codec {
        match path.extension().and_then(|e| e.to_str()) {
            Some("gz") => Codec::Gzip,
            Some("zst" | "zstd") => Codec::Zstd,
            Some("xz") => Codec::Xz,
            Some("lz4") => Codec::Lz4,
            Some("cpio") => Codec::None,
            _ => Codec::Gzip,
        }
    }

    /// The levels the codec takes, `None` for a codec without levels.
    pub fn levels(self) -> Option<std::ops::RangeInclusive<i32>> {
        match self {
            Codec::None | Codec::Lz4 => None,
            Codec::Gzip => Some(1..=9),
            Codec::Zstd => Some(1..=22),
            Codec::Xz => Some(0..=9),
        }
    }
}

/// A level the codec does not take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", level_message(*codec, *level))]
pub struct LevelError {
    /// The codec asked for.
    pub codec: Codec,
    /// The level asked for.
    pub level: i32,
}

fn level_message(codec: Codec, level: i32) -> String {
    match codec.levels() {
        None if codec == Codec::None => "an uncompressed archive has no level".into(),
        None => format!("{codec} has no levels here"),
        Some(r) => format!(
            "{codec} level must be {}..={}, got {level}",
            r.start(),
            r.end()
        ),
    }
}

impl FromStr for Codec {
    type Err = String;
    fn from_str(s: &str) -> Result<Codec, String> {
        match s {
            "none" => Ok(Codec::None),
            "gzip" | "gz" => Ok(Codec::Gzip),
            "zstd" | "zst" => Ok(Codec::Zstd),
            "xz" => Ok(Codec::Xz),
            "lz4" => Ok(Codec::Lz4),
            other => Err(format!(
                "unknown compression '{other}' (gzip, zstd, xz, lz4 or none)"
            )),
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Codec::None => "none",
            Codec::Gzip => "gzip",
            Codec::Zstd => "zstd",
            Codec::Xz => "xz",
            Codec::Lz4 => "lz4",
        })
    }
}

/// A codec with an optional level (the codec's default when unset:
/// gzip 6, zstd 3). The fields are private so a level is always one the
/// codec accepts: an out-of-range level would panic inside the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression {
    codec: Codec,
    level: Option<i32>,
}

impl Compression {
    /// A codec and a level it accepts; `None` is the codec's default.
    ///
    /// # Errors
    ///
    /// [`LevelError`] for a level outside the codec's range (gzip 1-9,
    /// zstd 1-22, xz 0-9; lz4 and none take none).
    ///
    /// # Examples
    ///
    /// ```
    /// use initramfs_stream::{Codec, Compression};
    ///
    /// let zstd19 = Compression::new(Codec::Zstd, Some(19))?;
    /// assert_eq!(zstd19.level(), Some(19));
    /// assert!(Compression::new(Codec::Gzip, Some(42)).is_err());
    /// # Ok::<(), initramfs_stream::output::LevelError>(())
    /// ```
    pub fn new(codec: Codec, level: Option<i32>) -> Result<Compression, LevelError> {
        if let Some(l) = level {
            if !codec.levels().is_some_and(|r| r.contains(&l)) {
                return Err(LevelError { codec, level: l });
            }
        }
        Ok(Compression { codec, level })
    }

    /// No compression: the archive as it is.
    pub const NONE: Compression = Compression {
        codec: Codec::None,
        level: None,
    };

    /// The codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The level asked for, `None` for the codec's default.
    pub fn level(&self) -> Option<i32> {
        self.level
    }
}

/// Copies `input` to `output` through the encoder with up to `jobs`
/// threads, finishes the encoder and flushes. Returns the bytes written.
///
/// # Errors
///
/// The first read or write error; the output then holds a prefix of the
/// compressed stream.
///
/// # Examples
///
/// ```
/// use initramfs_stream::{output, Codec, Compression};
///
/// # tokio::runtime::Builder::new_multi_thread().build().unwrap().block_on(async {
/// let mut out = Vec::new();
/// let gzip = Compression::new(Codec::Gzip, None).expect("a valid level");
/// let n = output::compress(&b"hello"[..], &mut out, gzip, 2).await?;
/// assert_eq!(n, out.len() as u64);
/// assert_eq!(out[..2], [0x1f, 0x8b]);
/// # Ok::<(), std::io::Error>(())
/// # }).unwrap();
/// ```
pub async fn compress<R, W>(
    mut input: R,
    output: W,
    compression: Compression,
    jobs: usize,
) -> std::io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut count = 0u64;
    let mut counted = TapWriter::new(output, |b: &[u8]| count += b.len() as u64);
    let level = compression.level;
    match compression.codec {
        Codec::None => {
            copy_without_flush(&mut input, &mut counted).await?;
            counted.flush().await?;
        }
        Codec::Gzip => {
            let format = blocks::ParallelGzip::new(level.unwrap_or(6) as u32);
            blocks::compress(input, &mut counted, format, jobs).await?;
        }
        Codec::Lz4 => {
            blocks::compress(input, &mut counted, blocks::LegacyLz4, jobs).await?;
        }
        Codec::Zstd => {
            let level = level.unwrap_or(3);
            threaded::compress(input, &mut counted, move |chunks, out| {
                zstd_encode(chunks, out, level, jobs)
            })
            .await?;
        }
        Codec::Xz => {
            let preset = level.unwrap_or(6) as u32;
            threaded::compress(input, &mut counted, move |chunks, out| {
                xz::encode(chunks, out, preset, jobs)
            })
            .await?;
        }
    }
    drop(counted);
    Ok(count)
}

/// One zstd frame, blocking. Always zstd's multithreaded mode, even for
/// one job: its output differs from the single-threaded mode's but not
/// between worker counts, so -j never changes the bytes. Never flushed
/// before the end: a flush ends a block early, which would make the output
/// depend on timing.
fn zstd_encode(
    chunks: threaded::Chunks,
    output: &mut threaded::Output,
    level: i32,
    jobs: usize,
) -> std::io::Result<()> {
    use std::io::Write;
    let mut enc = zstd::stream::write::Encoder::new(output, level)?;
    enc.multithread(u32::try_from(jobs.max(1)).unwrap_or(1))?;
    for chunk in chunks {
        enc.write_all(&chunk)?;
    }
    enc.finish()?;
    Ok(())
}

/// `tokio::io::copy` flushes the writer whenever the reader must wait; a
/// flush ends a zstd block early, which would make the output depend on
/// timing. This copy never flushes.
async fn copy_without_flush<R, W>(input: &mut R, output: &mut W) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = tokio::io::AsyncReadExt::read(input, &mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        output.write_all(&buf[..n]).await?;
    }
}

/// Passes writes through and shows every byte written to `tap` (to count,
/// hash or report it). Shutting it down only flushes: finishing an encoder
/// must not close the caller's output.
pub(crate) struct TapWriter<W, F> {
    inner: W,
    tap: F,
}

impl<W, F: FnMut(&[u8])> TapWriter<W, F> {
    pub fn new(inner: W, tap: F) -> Self {
        TapWriter { inner, tap }
    }
}

impl<W: AsyncWrite + Unpin, F: FnMut(&[u8]) + Unpin> AsyncWrite for TapWriter<W, F> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let poll = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = poll {
            (self.tap)(&buf[..n]);
        }
        poll
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
}

/// A file that only appears under its name once it is complete: data goes
/// to a hidden temporary file in the same directory, renamed on
/// [`AtomicFile::commit`]. Dropped uncommitted, the temporary file is
/// removed and an existing file of that name is left untouched.
pub struct AtomicFile {
    dest: PathBuf,
    tmp: PathBuf,
    file: Option<tokio::fs::File>,
}

impl AtomicFile {
    /// Opens a temporary file next to `dest`.
    ///
    /// # Errors
    ///
    /// `dest` has no file name or is a directory, or the temporary file
    /// cannot be created (the message names the directory).
    ///
    /// # Examples
    ///
    /// ```
    /// use initramfs_stream::AtomicFile;
    /// use tokio::io::AsyncWriteExt;
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let dir = std::env::temp_dir().join(format!("atomic-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let dest = dir.join("out.cpio");
    /// let mut file = AtomicFile::create(&dest).await?;
    /// file.writer().write_all(b"070701").await?;
    /// assert!(!dest.exists());
    /// file.commit().await?;
    /// assert_eq!(std::fs::read(&dest)?, b"070701");
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// # }).unwrap();
    /// ```
    pub async fn create(dest: &Path) -> std::io::Result<AtomicFile> {
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = dest
            .file_name()
            .ok_or_else(|| std::io::Error::other(format!("{}: not a file name", dest.display())))?;
        if dest.is_dir() {
            return Err(std::io::Error::other(format!(
                "{}: is a directory",
                dest.display()
            )));
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".{}-{nanos:08x}.tmp", std::process::id()));
        let tmp = dir.join(tmp_name);
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
        Ok(AtomicFile {
            dest: dest.to_path_buf(),
            tmp,
            file: Some(file),
        })
    }

    /// Where the data goes until [`AtomicFile::commit`].
    pub fn writer(&mut self) -> &mut tokio::fs::File {
        self.file.as_mut().expect("the file is open until commit")
    }

    /// Flushes the data to disk and moves the file into place.
    ///
    /// # Errors
    ///
    /// The flush, sync or rename error; the temporary file is then removed
    /// and an existing file of the name is left as it was.
    pub async fn commit(mut self) -> std::io::Result<()> {
        if let Some(mut file) = self.file.take() {
            file.flush().await?;
            file.sync_all().await?;
        }
        tokio::fs::rename(&self.tmp, &self.dest).await?;
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_from_extension() {
        assert_eq!(Codec::for_path(Path::new("a.cpio.gz")), Codec::Gzip);
        assert_eq!(Codec::for_path(Path::new("a.zst")), Codec::Zstd);
        assert_eq!(Codec::for_path(Path::new("a.cpio")), Codec::None);
        assert_eq!(Codec::for_path(Path::new("initrd.img")), Codec::Gzip);
        assert!(Compression::new(Codec::Gzip, Some(10)).is_err());
        assert!(Compression::new(Codec::None, Some(1)).is_err());
    }

    #[tokio::test]
    async fn atomic_file_leaves_nothing_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.cpio");
        std::fs::write(&dest, b"old").unwrap();
        {
            let mut f = AtomicFile::create(&dest).await.unwrap();
            f.writer().write_all(b"partial").await.unwrap();
        }
        assert_eq!(std::fs::read(&dest).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

        let mut f = AtomicFile::create(&dest).await.unwrap();
        f.writer().write_all(b"new").await.unwrap();
        f.commit().await.unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
