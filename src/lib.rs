#![deny(missing_docs)]
//! Turn a container image into a bootable Linux initramfs, streamed.
//!
//! An image is a stack of tar layers: each adds files, and deletes files of
//! the layers below with *whiteouts*. An initramfs is one CPIO "newc"
//! archive that the kernel unpacks into its root filesystem. This crate
//! converts the first into the second without ever writing the image's
//! files to disk:
//!
//! 1. **source**: find the image's layer blobs and config (an OCI layout,
//!    an `oci-archive` or a `docker-archive`, from a file or a pipe, an
//!    image in a local Docker Engine, or a registry), with every blob
//!    verified against its digest.
//! 2. **layer**: decompress each blob (gzip, zstd or plain, by magic bytes)
//!    and read its tar headers; bodies are skipped.
//! 3. **index**: apply the headers in layer order to an in-memory tree,
//!    resolving whiteouts, opaque directories, hardlinks and symlinked
//!    parents. The result is the final tree, by path, with each regular
//!    file pointing at the tar entry that holds its bytes.
//! 4. **boot**: add what the kernel and the guest need to run the image:
//!    `/init` (a static PID 1 reading the image's run config, or the
//!    image's own), mount points and device nodes, injected host files;
//!    and check, before a byte is written, that the command will run and
//!    how much guest memory the archive needs.
//! 5. **cpio**: write the tree as newc records in the order the kernel
//!    needs (directories before their contents), streaming file bodies
//!    straight from a second read of the layers.
//! 6. **output**: compress (gzip, zstd, xz, lz4 or none) into any async
//!    writer or into a file that appears atomically.
//!
//! Every stage speaks of files in the same words: [`fs`] says what an entry
//! is and who owns it, [`path`] how a name is normalised, bounded, resolved
//! inside the root and shown.
//!
//! Memory grows with the number of paths in the image, not with its size.
//!
//! ```no_run
//! use initramfs_stream::{Codec, Compression, ImageReference, InitramfsBuilder};
//!
//! # async fn run() -> Result<(), initramfs_stream::Error> {
//! let image = ImageReference::parse("oci:./alpine:latest")?;
//! let prepared = InitramfsBuilder::new(image)
//!     .compression(Compression::new(Codec::Zstd, None).expect("valid level"))
//!     .prepare()
//!     .await?;
//! let file = tokio::fs::File::create("alpine.cpio.zst").await?;
//! let summary = prepared.write_to(file).await?;
//! println!("{} entries", summary.entries);
//! # Ok(())
//! # }
//! ```

// The stages, each usable on its own, and the words they share.
pub mod boot;
pub mod cpio;
pub mod fs;
pub mod index;
pub mod layer;
pub mod output;
pub mod path;
pub mod source;

mod builder;
mod io;
mod listing;

pub use boot::{BootOptions, InitChoice};
pub use builder::{
    Excludes, InitramfsBuilder, Mtimes, Pass, PatternError, PreparedImage, Progress, Silent,
    Summary, DEFAULT_MAX_ENTRIES, DEFAULT_MAX_SIZE,
};
pub use io::BlockingIo;
pub use listing::ListEntry;
pub use output::{AtomicFile, Codec, Compression};
pub use source::{ImageReference, Platform, RegistryOptions};

/// A size for a person: "812 B", "2.1 MiB" (binary units, one decimal).
///
/// ```
/// assert_eq!(initramfs_stream::human_bytes(812), "812 B");
/// assert_eq!(initramfs_stream::human_bytes(2_202_010), "2.1 MiB");
/// ```
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Everything that can go wrong, by stage. Each message is one line that
/// names the image part at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Finding, fetching or verifying the image.
    #[error(transparent)]
    Source(#[from] source::SourceError),
    /// Reading a layer's tar stream.
    #[error(transparent)]
    Layer(#[from] layer::LayerError),
    /// Applying the layers to one tree.
    #[error(transparent)]
    Index(#[from] index::IndexError),
    /// An entry the archive format cannot carry.
    #[error(transparent)]
    Cpio(#[from] cpio::CpioError),
    /// Making `/init` and the files the boot stage adds.
    #[error(transparent)]
    Boot(#[from] boot::BootError),
    /// The command `/init` would run cannot run.
    #[error("the image will not boot: {0}")]
    Check(#[from] boot::check::CheckError),
    /// Writing the output.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A bound on the image as a whole was hit.
    #[error(transparent)]
    Limit(#[from] LimitError),
    /// A host file given to the boot stage (the init, an injected file)
    /// cannot be read while the archive is written.
    #[error("{}: {source}", path.display())]
    HostFile {
        /// The file, as given.
        path: std::path::PathBuf,
        /// The error, its kind kept.
        #[source]
        source: std::io::Error,
    },
    /// A host file given to the boot stage changed size after it was
    /// planned: the archive would not match its own headers.
    #[error("{}: changed size while the archive was written ({planned} -> {now} bytes)", path.display())]
    HostFileChanged {
        /// The file, as given.
        path: std::path::PathBuf,
        /// Its size when the archive was planned.
        planned: u64,
        /// Its size now.
        now: u64,
    },
    /// A broken assumption of this crate, not of the input or the caller.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A bound on the image as a whole was hit: which one, and the numbers.
/// The bounds on one layer or on the paths are the layer's and the
/// index's errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// The archive would be larger than the caller's bound.
    #[error("the archive would be {size} bytes, over the bound of {limit} bytes")]
    ArchiveSize {
        /// The archive's size, uncompressed, in bytes.
        size: u64,
        /// The caller's bound, in bytes.
        limit: u64,
    },
    /// Booting the archive needs more memory than the caller's bound.
    #[error(
        "the archive needs at least {} of guest memory to boot ({} of files unpacked, a {} \
         initrd), over the bound of {}",
        human_bytes(*needed),
        human_bytes(*files),
        human_bytes(*initrd),
        human_bytes(*limit)
    )]
    GuestMemory {
        /// The least guest memory the archive boots in, in bytes.
        needed: u64,
        /// The files' bytes once unpacked.
        files: u64,
        /// The initrd's size as the kernel holds it while unpacking.
        initrd: u64,
        /// The caller's bound, in bytes.
        limit: u64,
    },
    /// The boot check still wanted files to read after this many rounds.
    #[error("the boot check did not settle in {rounds} rounds")]
    CheckRounds {
        /// The rounds the check may take.
        rounds: usize,
    },
}
