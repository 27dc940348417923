//! CPIO "newc" records: the format the Linux kernel unpacks as an initramfs.
//!
//! A record is a 110-byte ASCII header (`070701` and thirteen 8-digit hex
//! fields), the NUL-terminated name, padding to 4 bytes, the data, and padding
//! to 4 bytes again. The archive ends with a record named `TRAILER!!!`.
//!
//! [`NewcWriter`] knows nothing about images: it writes the records it is
//! given, in the order given, and refuses values the format cannot carry.

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::path::MAX_NAME_LEN;

/// newc size fields are 32-bit.
pub const MAX_FILE_SIZE: u64 = u32::MAX as u64;

const MAGIC: &[u8; 6] = b"070701";
const TRAILER: &[u8] = b"TRAILER!!!";

/// The name stored for an entry. The kernel stops at the first entry named
/// TRAILER!!!, whatever its type: a file of that name at the root is stored
/// as ./TRAILER!!!, which unpacks to the same path.
fn stored_name(name: &[u8]) -> &[u8] {
    if name == TRAILER {
        b"./TRAILER!!!"
    } else {
        name
    }
}

/// File type bits of `mode`, as in `<sys/stat.h>`.
pub mod mode {
    /// The mask of the type bits.
    pub const S_IFMT: u32 = 0o170000;
    /// A named pipe.
    pub const S_IFIFO: u32 = 0o010000;
    /// A character device.
    pub const S_IFCHR: u32 = 0o020000;
    /// A directory.
    pub const S_IFDIR: u32 = 0o040000;
    /// A block device.
    pub const S_IFBLK: u32 = 0o060000;
    /// A regular file.
    pub const S_IFREG: u32 = 0o100000;
    /// A symbolic link; its data is the target.
    pub const S_IFLNK: u32 = 0o120000;
}

/// The metadata of one newc record. The data follows separately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Path inside the archive, without a leading `/`.
    pub name: Vec<u8>,
    /// Inode number: records that share one (and are regular files with
    /// `nlink` > 1) are hardlinks; the kernel links them as it unpacks.
    pub ino: u32,
    /// File type and permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Number of names of the inode in the archive.
    pub nlink: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: u32,
    /// Bytes of data that follow the name.
    pub filesize: u32,
    /// Device major number, for character and block devices.
    pub rdev_major: u32,
    /// Device minor number, for character and block devices.
    pub rdev_minor: u32,
}

/// What stops a record from being written. Paths in messages are escaped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CpioError {
    /// The kernel skips entries whose name is longer than the limit.
    #[error("{path}: name is {len} bytes, the kernel skips names over {MAX_NAME_LEN}")]
    NameTooLong {
        /// The entry, escaped for display.
        path: String,
        /// The name's length in bytes.
        len: usize,
    },
    /// The kernel skips symlinks whose target is longer than the limit.
    #[error("{path}: symlink target is {len} bytes, the kernel skips targets over {MAX_NAME_LEN}")]
    TargetTooLong {
        /// The symlink, escaped for display.
        path: String,
        /// The target's length in bytes.
        len: usize,
    },
    /// newc sizes are 32-bit.
    #[error("{path}: {size} bytes is too large for a newc archive (limit 4 GiB - 1)")]
    FileTooLarge {
        /// The file, escaped for display.
        path: String,
        /// Its size in bytes.
        size: u64,
    },
    /// The data did not match the record's `filesize`.
    #[error("{path}: data ended after {got} of {expected} bytes")]
    ShortData {
        /// The entry, escaped for display.
        path: String,
        /// Bytes there were.
        got: u64,
        /// Bytes the record declares.
        expected: u64,
    },
    /// The writer failed.
    #[error("writing archive: {0}")]
    Io(#[from] std::io::Error),
}

/// Checks that a name fits the format; shared with the planner so that
/// an image that cannot be written fails before the first byte.
///
/// # Errors
///
/// [`CpioError::NameTooLong`] past [`MAX_NAME_LEN`].
pub fn check_name(name: &[u8]) -> Result<(), CpioError> {
    if name.len() > MAX_NAME_LEN {
        return Err(CpioError::NameTooLong {
            path: crate::path::display(name),
            len: name.len(),
        });
    }
    Ok(())
}

/// Checks that a symlink target is one the kernel creates.
///
/// # Errors
///
/// [`CpioError::TargetTooLong`] past [`MAX_NAME_LEN`].
pub fn check_target(name: &[u8], target: &[u8]) -> Result<(), CpioError> {
    if target.len() > MAX_NAME_LEN {
        return Err(CpioError::TargetTooLong {
            path: crate::path::display(name),
            len: target.len(),
        });
    }
    Ok(())
}

/// Bytes one record takes in the archive: header, name, data, padding.
pub fn record_len(name: &[u8], data_len: u64) -> u64 {
    let head = 110 + stored_name(name).len() as u64 + 1;
    let head = head + padding(head) as u64;
    head + data_len + padding(data_len) as u64
}

/// Bytes the trailer record takes.
pub fn trailer_len() -> u64 {
    record_len(TRAILER, 0)
}

/// Checks that a data size fits the format's 32-bit field.
///
/// # Errors
///
/// [`CpioError::FileTooLarge`] past [`MAX_FILE_SIZE`].
pub fn check_size(name: &[u8], size: u64) -> Result<u32, CpioError> {
    u32::try_from(size).map_err(|_| CpioError::FileTooLarge {
        path: crate::path::display(name),
        size,
    })
}

/// Writes newc records to an async writer.
pub struct NewcWriter<W> {
    inner: W,
    written: u64,
    header: Vec<u8>,
}

impl<W: AsyncWrite + Unpin> NewcWriter<W> {
    /// A writer that has written nothing yet.
    ///
    /// # Examples
    ///
    /// ```
    /// use initramfs_stream::cpio::{mode, NewcWriter, Record};
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let mut w = NewcWriter::new(Vec::new());
    /// let hello = Record {
    ///     name: b"hello".to_vec(),
    ///     ino: 1,
    ///     mode: mode::S_IFREG | 0o644,
    ///     uid: 0,
    ///     gid: 0,
    ///     nlink: 1,
    ///     mtime: 0,
    ///     filesize: 3,
    ///     rdev_major: 0,
    ///     rdev_minor: 0,
    /// };
    /// w.write_record(&hello, b"hi\n").await?;
    /// let archive = w.finish().await?;
    /// assert!(archive.starts_with(b"070701"));
    /// assert_eq!(archive.len() % 4, 0);
    /// # Ok::<(), initramfs_stream::cpio::CpioError>(())
    /// # }).unwrap();
    /// ```
    pub fn new(inner: W) -> Self {
        NewcWriter {
            inner,
            written: 0,
            header: Vec::with_capacity(512),
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Writes a record whose data is given in memory (symlink targets,
    /// generated files, empty files).
    ///
    /// # Errors
    ///
    /// [`CpioError::ShortData`] when `data` is not `filesize` bytes (nothing
    /// is written then), [`CpioError::NameTooLong`] or the writer's error.
    pub async fn write_record(&mut self, record: &Record, data: &[u8]) -> Result<(), CpioError> {
        if u64::from(record.filesize) != data.len() as u64 {
            return Err(CpioError::ShortData {
                path: crate::path::display(&record.name),
                got: data.len() as u64,
                expected: u64::from(record.filesize),
            });
        }
        self.write_header(record, stored_name(&record.name)).await?;
        self.inner.write_all(data).await?;
        self.written += data.len() as u64;
        self.pad().await
    }

    /// Writes a record whose `filesize` bytes of data come from `data`.
    /// Reading fewer bytes is an error; extra bytes are left unread.
    ///
    /// # Errors
    ///
    /// [`CpioError::ShortData`] when `data` ends early (the archive is then
    /// unusable), [`CpioError::NameTooLong`], or a read or write error.
    pub async fn write_record_from<R: AsyncRead + Unpin>(
        &mut self,
        record: &Record,
        data: &mut R,
    ) -> Result<(), CpioError> {
        self.write_header(record, stored_name(&record.name)).await?;
        let expected = u64::from(record.filesize);
        let mut limited = tokio::io::AsyncReadExt::take(data, expected);
        let got = tokio::io::copy(&mut limited, &mut self.inner).await?;
        self.written += got;
        if got != expected {
            return Err(CpioError::ShortData {
                path: crate::path::display(&record.name),
                got,
                expected,
            });
        }
        self.pad().await
    }

    /// Writes the trailer, flushes, and returns the writer. Only call this
    /// when everything before succeeded: a trailer marks a whole archive.
    ///
    /// # Errors
    ///
    /// The writer's error.
    pub async fn finish(mut self) -> Result<W, CpioError> {
        let trailer = Record {
            name: TRAILER.to_vec(),
            ino: 0,
            mode: 0,
            uid: 0,
            gid: 0,
            nlink: 1,
            mtime: 0,
            filesize: 0,
            rdev_major: 0,
            rdev_minor: 0,
        };
        self.write_header(&trailer, TRAILER).await?;
        self.inner.flush().await?;
        Ok(self.inner)
    }

    async fn write_header(&mut self, r: &Record, name: &[u8]) -> Result<(), CpioError> {
        check_name(name)?;
        let h = &mut self.header;
        h.clear();
        h.extend_from_slice(MAGIC);
        let namesize = name.len() as u32 + 1;
        for v in [
            r.ino,
            r.mode,
            r.uid,
            r.gid,
            r.nlink,
            r.mtime,
            r.filesize,
            0, // devmajor
            0, // devminor
            r.rdev_major,
            r.rdev_minor,
            namesize,
            0, // check
        ] {
            push_hex8(h, v);
        }
        h.extend_from_slice(name);
        h.push(0);
        let pad = padding(h.len() as u64);
        h.extend_from_slice(&[0u8; 3][..pad]);
        self.inner.write_all(h).await?;
        self.written += h.len() as u64;
        Ok(())
    }

    async fn pad(&mut self) -> Result<(), CpioError> {
        let pad = padding(self.written);
        if pad > 0 {
            self.inner.write_all(&[0u8; 3][..pad]).await?;
            self.written += pad as u64;
        }
        Ok(())
    }
}

fn padding(len: u64) -> usize {
    ((4 - (len % 4)) % 4) as usize
}

fn push_hex8(out: &mut Vec<u8>, v: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..8).rev() {
        out.push(HEX[((v >> (shift * 4)) & 0xf) as usize]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(name: &[u8], mode: u32, size: u32) -> Record {
        Record {
            name: name.to_vec(),
            ino: 7,
            mode,
            uid: 1,
            gid: 2,
            nlink: 1,
            mtime: 3,
            filesize: size,
            rdev_major: 0,
            rdev_minor: 0,
        }
    }

    #[tokio::test]
    async fn header_layout_and_padding() {
        let mut w = NewcWriter::new(Vec::new());
        w.write_record(&rec(b"ab", mode::S_IFREG | 0o644, 5), b"hello")
            .await
            .unwrap();
        let out = w.finish().await.unwrap();
        // 110 header + "ab\0" = 113 -> padded to 116, data 5 -> 121 -> 124.
        assert_eq!(&out[..6], b"070701");
        assert_eq!(&out[6..14], b"00000007");
        assert_eq!(&out[14..22], b"000081a4");
        assert_eq!(&out[110..113], b"ab\0");
        assert_eq!(&out[116..121], b"hello");
        assert_eq!(&out[124..130], b"070701");
        assert_eq!(out.len() % 4, 0);
        assert!(out.windows(10).any(|w| w == b"TRAILER!!!"));
    }

    #[tokio::test]
    async fn short_data_is_an_error() {
        let mut w = NewcWriter::new(Vec::new());
        let mut data: &[u8] = b"abc";
        let err = w
            .write_record_from(&rec(b"f", mode::S_IFREG | 0o644, 10), &mut data)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("3 of 10"), "{err}");
    }

    #[tokio::test]
    async fn a_file_named_trailer_does_not_end_the_archive() {
        let mut w = NewcWriter::new(Vec::new());
        w.write_record(&rec(b"TRAILER!!!", mode::S_IFREG | 0o644, 1), b"x")
            .await
            .unwrap();
        let out = w.finish().await.unwrap();
        // The file's name starts right after its 110-byte header.
        assert_eq!(&out[110..123], b"./TRAILER!!!\0");
        let hits = out.windows(10).filter(|w| w == b"TRAILER!!!").count();
        assert_eq!(hits, 2);
    }

    #[test]
    fn limits() {
        assert!(check_name(&vec![b'a'; 4095]).is_ok());
        assert!(check_name(&vec![b'a'; 4096]).is_err());
        assert!(check_size(b"big", 1 << 32).is_err());
        assert_eq!(check_size(b"ok", u32::MAX as u64).unwrap(), u32::MAX);
    }
}
