//! A layer's tar stream read as Go's archive/tar reads it (the reader inside
//! containerd, Docker and umoci), re-emitted as plain ustar + PAX that the
//! tar crate reads without interpretation.
//!
//! Algorithm, per logical entry (Go's `Reader.Next`):
//! 1. Read 512-byte headers. A zero block ends the archive when the next
//!    block is zero too or the data ends; a zero block before a header is an
//!    error. The rest of the stream is drained (digest checks see every byte).
//! 2. `x` (PAX), `L` (GNU long name) and `K` (GNU long link) headers are
//!    remembered for the next entry; a later one of the same kind replaces an
//!    earlier one. A `g` (PAX global) header drops everything pending and
//!    stands for no entry. Pending extensions at the end are ignored.
//! 3. Numeric fields: base-256 when the high bit is set, else octal with
//!    leading and trailing NULs and spaces trimmed (all NULs reads 0).
//! 4. The entry's name is the GNU long name, else the PAX path, else
//!    prefix/name. Type NUL with a name ending in `/` is a directory.
//!    Hardlinks, symlinks, devices, directories and fifos carry no data
//!    whatever their size field says.
//! 5. Sparse files (old GNU `S`, PAX GNU.sparse 0.0, 0.1 and 1.0) become
//!    regular files with their full content, holes as zeros.
//!
//! Invariants of the output: every entry is at most one PAX header and one
//! ustar header with octal fields and a correct checksum; a regular file's
//! size is its logical size; only the records the layer reader needs are
//! kept (path and linkpath when over 100 bytes, ids and times too large for
//! octal, xattrs). Every byte of metadata is bounded by [`MAX_METADATA`]
//! per entry before it is held in memory, and the raw stream by `limit`.

use std::io;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;

use super::decompress::Fault;
use super::{TarStream, MAX_METADATA};

const BLOCK: usize = 512;
const CHUNK: usize = 64 * 1024;

/// The stream of `inner` as Go reads it; `limit` bounds the raw bytes read.
pub(super) fn normalize(inner: TarStream, limit: u64) -> TarStream {
    let n = Normalizer {
        inner,
        read: 0,
        emitted: 0,
        limit,
        state: State::Headers,
    };
    let chunks = futures::stream::unfold(n, |mut n| async move {
        let next = n.next_chunk().await.and_then(|b| {
            // Expanded sparse files count at their full size.
            n.emitted += b.as_ref().map_or(0, |b| b.len() as u64);
            if n.emitted > n.limit {
                return Err(Fault::TooLarge { limit: n.limit }.into_io());
            }
            Ok(b)
        });
        match next {
            Ok(Some(b)) => Some((Ok(b), n)),
            Ok(None) => None,
            Err(e) => {
                n.state = State::Failed;
                Some((Err(e), n))
            }
        }
    });
    Box::new(tokio_util::io::StreamReader::new(Box::pin(chunks)))
}

struct Normalizer {
    inner: TarStream,
    read: u64,
    emitted: u64,
    limit: u64,
    state: State,
}

enum State {
    Headers,
    /// Copy this many raw bytes (a body and its padding) as they are.
    Copy(u64),
    Sparse(Sparse),
    Done,
    Failed,
}

/// A sparse body being expanded: `fragments` are (offset, length) of the
/// stored data in logical order; `stored` raw bytes remain in the archive.
struct Sparse {
    fragments: std::collections::VecDeque<(u64, u64)>,
    pos: u64,
    size: u64,
    stored: u64,
    /// Padding after the stored data.
    pad: u64,
}

impl Sparse {
    fn new(map: Vec<(u64, u64)>, size: u64, stored: u64) -> Sparse {
        Sparse {
            fragments: map.into_iter().filter(|&(_, l)| l > 0).collect(),
            pos: 0,
            size,
            stored,
            pad: padding(stored),
        }
    }
}

fn metadata_error() -> io::Error {
    Fault::Metadata.into_io()
}

fn header_error(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// An error about a named entry: the message names it and nothing else.
fn entry_error(path: &[u8], message: impl std::fmt::Display) -> io::Error {
    Fault::Entry {
        path: path.to_vec(),
        reason: message.to_string(),
    }
    .into_io()
}

impl Normalizer {
    async fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            match &mut self.state {
                State::Done | State::Failed => return Ok(None),
                State::Headers => return self.next_entry().await.map(Some),
                State::Copy(0) => self.state = State::Headers,
                State::Copy(left) => {
                    // Whatever the codec has ready, up to the entry's end:
                    // no zeroing, no waiting for a full chunk.
                    let take = (*left).min(CHUNK as u64);
                    let mut buf = BytesMut::with_capacity(take as usize);
                    let n = (&mut self.inner).take(take).read_buf(&mut buf).await?;
                    if n == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "unexpected EOF inside an entry",
                        ));
                    }
                    *left -= n as u64;
                    self.count(n)?;
                    return Ok(Some(buf.freeze()));
                }
                State::Sparse(s) => {
                    if s.pos == s.size {
                        if s.stored != 0 {
                            return Err(header_error(
                                "a sparse entry stores more data than its map lists",
                            ));
                        }
                        let (pad, size) = (s.pad, s.size);
                        self.skip(pad).await?;
                        self.state = State::Headers;
                        let pad = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
                        if pad > 0 {
                            return Ok(Some(Bytes::from(vec![0u8; pad as usize])));
                        }
                        continue;
                    }
                    let (take, data) = match s.fragments.front().copied() {
                        Some((off, len)) if s.pos >= off => {
                            let take = (off + len - s.pos).min(CHUNK as u64);
                            if s.pos + take == off + len {
                                s.fragments.pop_front();
                            }
                            (take, true)
                        }
                        Some((off, _)) => ((off - s.pos).min(CHUNK as u64), false),
                        None => ((s.size - s.pos).min(CHUNK as u64), false),
                    };
                    s.pos += take;
                    let mut buf = BytesMut::zeroed(take as usize);
                    if data {
                        s.stored = s.stored.checked_sub(take).ok_or_else(|| {
                            header_error("a sparse map lists more data than the entry stores")
                        })?;
                        self.read_exact(&mut buf).await?;
                    }
                    return Ok(Some(buf.freeze()));
                }
            }
        }
    }

    fn count(&mut self, n: usize) -> io::Result<()> {
        self.read += n as u64;
        if self.read > self.limit {
            return Err(Fault::TooLarge { limit: self.limit }.into_io());
        }
        Ok(())
    }

    async fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let mut filled = 0;
        while filled < buf.len() {
            let n = self.inner.read(&mut buf[filled..]).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "unexpected EOF inside an entry",
                ));
            }
            self.count(n)?;
            filled += n;
        }
        Ok(())
    }

    /// A whole block, or `None` at the end of the data on a block boundary.
    async fn read_block(&mut self) -> io::Result<Option<[u8; BLOCK]>> {
        let mut block = [0u8; BLOCK];
        let mut filled = 0;
        while filled < BLOCK {
            let n = self.inner.read(&mut block[filled..]).await?;
            if n == 0 {
                if filled == 0 {
                    return Ok(None);
                }
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "unexpected EOF inside a header",
                ));
            }
            self.count(n)?;
            filled += n;
        }
        Ok(Some(block))
    }

    async fn skip(&mut self, mut n: u64) -> io::Result<()> {
        let mut buf = vec![0u8; CHUNK];
        while n > 0 {
            let take = n.min(CHUNK as u64) as usize;
            self.read_exact(&mut buf[..take]).await?;
            n -= take as u64;
        }
        Ok(())
    }

    /// The data of an extension header, counted against the entry's
    /// metadata bound before it is read.
    async fn read_meta(&mut self, size: u64, used: &mut u64) -> io::Result<Vec<u8>> {
        *used = used.saturating_add(size);
        if *used > MAX_METADATA {
            return Err(metadata_error());
        }
        let mut data = vec![0u8; size as usize];
        self.read_exact(&mut data).await?;
        self.skip(padding(size)).await?;
        Ok(data)
    }

    /// The end of the archive: the rest is read for the digest checks.
    async fn finish(&mut self) -> io::Result<Bytes> {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = self.inner.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            self.count(n)?;
        }
        self.state = State::Done;
        Ok(Bytes::from_static(&[0u8; 2 * BLOCK]))
    }

    async fn next_entry(&mut self) -> io::Result<Bytes> {
        let mut pax: Option<Pax> = None;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut meta_used = 0u64;
        loop {
            let Some(block) = self.read_block().await? else {
                return self.finish().await;
            };
            if block.iter().all(|&b| b == 0) {
                match self.read_block().await? {
                    Some(next) if next.iter().any(|&b| b != 0) => {
                        return Err(header_error("a header follows a single zero block"))
                    }
                    _ => return self.finish().await,
                }
            }
            let h = Header::parse(&block)?;
            match h.typeflag {
                b'x' | b'g' => {
                    let data = self.read_meta(h.size()?, &mut meta_used).await?;
                    let records = Pax::parse(&data)?;
                    if h.typeflag == b'g' {
                        // Go returns a global header as an entry of its own:
                        // what was pending belonged to it.
                        pax = None;
                        long_name = None;
                        long_link = None;
                        meta_used = 0;
                    } else {
                        pax = Some(records);
                    }
                }
                b'L' => {
                    let data = self.read_meta(h.size()?, &mut meta_used).await?;
                    long_name = Some(cut_nul(&data).to_vec());
                }
                b'K' => {
                    let data = self.read_meta(h.size()?, &mut meta_used).await?;
                    long_link = Some(cut_nul(&data).to_vec());
                }
                _ => {
                    return self
                        .entry(
                            h,
                            &block,
                            pax.unwrap_or_default(),
                            long_name,
                            long_link,
                            meta_used,
                        )
                        .await
                }
            }
        }
    }

    async fn entry(
        &mut self,
        h: Header,
        block: &[u8; BLOCK],
        pax: Pax,
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
        mut meta_used: u64,
    ) -> io::Result<Bytes> {
        let mut name = h.name.clone();
        let mut link = h.linkname.clone();
        if let Some(p) = pax.get(b"path") {
            name = p.to_vec();
        }
        if let Some(l) = pax.get(b"linkpath") {
            link = l.to_vec();
        }
        if let Some(n) = long_name.filter(|n| !n.is_empty()) {
            name = n;
        }
        if let Some(l) = long_link.filter(|l| !l.is_empty()) {
            link = l;
        }
        let pax_sparse = if h.typeflag == b'S' {
            None
        } else {
            pax.sparse_version()
        };
        if pax_sparse.is_some() {
            if let Some(n) = pax.get(b"GNU.sparse.name") {
                name = n.to_vec();
            }
        }
        let err = |m: String| entry_error(&name, m);
        if name.contains(&0) {
            return Err(err("name contains a NUL byte".into()));
        }
        if link.contains(&0) {
            return Err(err("link target contains a NUL byte".into()));
        }
        if let Some(k) = pax.nul_key() {
            // Go refuses the whole header, as GNU tar cannot store the name.
            return Err(err(match k.strip_prefix(b"SCHILY.xattr.") {
                Some(x) => format!("xattr name {} contains a NUL byte", crate::path::escape(x)),
                None => format!("PAX record {} contains a NUL byte", crate::path::escape(k)),
            }));
        }
        let number = |key: &str, v: &[u8]| -> io::Result<i64> {
            std::str::from_utf8(v)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'-'))
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| {
                    err(format!(
                        "pax {key} {} is not a decimal number",
                        crate::path::escape(v)
                    ))
                })
        };
        let mut uid = h.uid;
        let mut gid = h.gid;
        let mut mtime = h.mtime;
        let mut size = h.size;
        if let Some(v) = pax.get(b"uid") {
            uid = number("uid", v)?;
        }
        if let Some(v) = pax.get(b"gid") {
            gid = number("gid", v)?;
        }
        if let Some(v) = pax.get(b"mtime") {
            mtime = parse_pax_time(v).ok_or_else(|| {
                err(format!(
                    "pax mtime {} is not a time",
                    crate::path::escape(v)
                ))
            })?;
        }
        if let Some(v) = pax.get(b"size") {
            size = number("size", v)?;
        }
        for (what, id) in [("uid", uid), ("gid", gid)] {
            if u32::try_from(id).is_err() {
                return Err(err(format!("{what} {id} does not fit in 32 bits")));
            }
        }
        let mut typeflag = h.typeflag;
        if typeflag == 0 {
            // Go and GNU tar agree: the old regular-file type with a slash
            // at the end of the name is a directory.
            typeflag = if name.ends_with(b"/") { b'5' } else { b'0' };
        }
        let header_only = matches!(typeflag, b'1' | b'2' | b'3' | b'4' | b'5' | b'6');
        // Go ignores the size of entries without data, whatever it says.
        let size = match u64::try_from(size) {
            Ok(s) => s,
            Err(_) if header_only => 0,
            Err(_) => return Err(err(format!("size {size} is negative"))),
        };
        let stored = if header_only { 0 } else { size };

        // Sparse files: the map, then the logical size.
        let mut sparse: Option<Sparse> = None;
        if typeflag == b'S' {
            if h.format != Format::Gnu {
                return Err(err("an old GNU sparse entry without a GNU header".into()));
            }
            let real = parse_numeric(&block[483..495])
                .ok_or_else(|| err("sparse real size is not a number".into()))?;
            let mut map = Vec::new();
            let mut raw = block.to_vec();
            let (mut at, mut count, mut ext_flag) = (386usize, 4usize, 482usize);
            loop {
                for i in 0..count {
                    let e = &raw[at + i * 24..at + i * 24 + 24];
                    if e[0] == 0 {
                        break;
                    }
                    let off = parse_numeric(&e[..12]);
                    let len = parse_numeric(&e[12..]);
                    match (off, len) {
                        (Some(o), Some(l)) => map.push((o, l)),
                        _ => return Err(err("sparse map entry is not a number".into())),
                    }
                }
                if raw[ext_flag] == 0 {
                    break;
                }
                meta_used += BLOCK as u64;
                if meta_used > MAX_METADATA {
                    return Err(metadata_error());
                }
                let Some(next) = self.read_block().await? else {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "unexpected EOF inside a sparse map",
                    ));
                };
                raw = next.to_vec();
                (at, count, ext_flag) = (0, 21, 504);
            }
            let map = check_sparse(map, real).ok_or_else(|| err("invalid sparse map".into()))?;
            sparse = Some(Sparse::new(map, real as u64, size));
            typeflag = b'0';
        } else if let Some(version) = pax_sparse {
            if header_only {
                return Err(err("a sparse map on an entry that has no data".into()));
            }
            let mut real = size as i64;
            if let Some(v) = pax
                .get(b"GNU.sparse.size")
                .or_else(|| pax.get(b"GNU.sparse.realsize"))
            {
                real = number("GNU.sparse.size", v)?;
            }
            let mut stored = size;
            let map = match version {
                SparseVersion::V1 => {
                    let (map, used) = self.sparse_map_1x0(size, &mut meta_used).await?;
                    stored -= used;
                    map
                }
                SparseVersion::V0 => pax
                    .sparse_map_0x1()
                    .ok_or_else(|| err("invalid sparse map".into()))?,
            };
            let map = check_sparse(map, real).ok_or_else(|| err("invalid sparse map".into()))?;
            sparse = Some(Sparse::new(map, real as u64, stored));
            if typeflag == b'7' {
                typeflag = b'0';
            }
        }

        if matches!(typeflag, b'3' | b'4') {
            for (what, v) in [("major", h.devmajor), ("minor", h.devminor)] {
                if !(0..=0o7777777).contains(&v) {
                    return Err(err(format!("device {what} {v} is out of range")));
                }
            }
        }

        let logical = sparse.as_ref().map_or(stored, |s| s.size);
        let mut out = Vec::with_capacity(3 * BLOCK);
        let mut records: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        if name.len() > 100 {
            records.push((b"path".to_vec(), name.clone()));
        }
        if link.len() > 100 {
            records.push((b"linkpath".to_vec(), link.clone()));
        }
        const OCTAL7: i64 = 0o7777777;
        const OCTAL11: u64 = 0o77777777777;
        if uid > OCTAL7 {
            records.push((b"uid".to_vec(), uid.to_string().into_bytes()));
        }
        if gid > OCTAL7 {
            records.push((b"gid".to_vec(), gid.to_string().into_bytes()));
        }
        // Before 1970 reads as 1970, not as a date in 2106.
        let mtime = mtime.max(0) as u64;
        if mtime > OCTAL11 {
            records.push((b"mtime".to_vec(), mtime.to_string().into_bytes()));
        }
        if logical > OCTAL11 {
            records.push((b"size".to_vec(), logical.to_string().into_bytes()));
        }
        for (k, v) in &pax.records {
            if (k.starts_with(b"SCHILY.xattr.") || k.starts_with(b"LIBARCHIVE.xattr."))
                && !v.is_empty()
            {
                records.push((k.clone(), v.clone()));
            }
        }
        if !records.is_empty() {
            let mut data = Vec::new();
            for (k, v) in &records {
                data.extend(pax_record(k, v));
            }
            out.extend(ustar(
                b"PaxHeader",
                0,
                0,
                0,
                data.len() as u64,
                0,
                b'x',
                b"",
                0,
                0,
            ));
            out.extend(&data);
            out.resize(out.len().next_multiple_of(BLOCK), 0);
        }
        let clip = |v: i64, max: i64| if v > max { 0 } else { v as u64 };
        out.extend(ustar(
            &name[..name.len().min(100)],
            h.mode as u64 & 0o7777,
            clip(uid, OCTAL7),
            clip(gid, OCTAL7),
            if logical > OCTAL11 { 0 } else { logical },
            if mtime > OCTAL11 { 0 } else { mtime },
            typeflag,
            &link[..link.len().min(100)],
            h.devmajor.clamp(0, OCTAL7) as u64,
            h.devminor.clamp(0, OCTAL7) as u64,
        ));
        self.state = match sparse {
            Some(s) => State::Sparse(s),
            None => State::Copy(stored + padding(stored)),
        };
        Ok(Bytes::from(out))
    }

    /// The sparse map of format 1.0, at the start of the data: decimal
    /// numbers, one a line (a count, then offset and length pairs), padded
    /// to a block. Returns the map and the bytes it took.
    async fn sparse_map_1x0(
        &mut self,
        size: u64,
        meta_used: &mut u64,
    ) -> io::Result<(Vec<(i64, i64)>, u64)> {
        let mut text: Vec<u8> = Vec::new();
        let mut used = 0u64;
        let mut numbers: Vec<i64> = Vec::new();
        let mut want: Option<usize> = None;
        loop {
            // Whole numbers so far: a count, then 2 * count.
            while let Some(nl) = text.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = text.drain(..=nl).collect();
                let n = std::str::from_utf8(&line[..line.len() - 1])
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<i64>().ok())
                    .ok_or_else(|| {
                        header_error("a sparse map holds a line that is not a number")
                    })?;
                match want {
                    None => {
                        let count = usize::try_from(n)
                            .ok()
                            .and_then(|c| c.checked_mul(2))
                            .ok_or_else(|| header_error("sparse map count out of range"))?;
                        want = Some(count);
                    }
                    Some(_) => numbers.push(n),
                }
                if want == Some(numbers.len()) {
                    let map = numbers.chunks(2).map(|p| (p[0], p[1])).collect();
                    return Ok((map, used));
                }
            }
            if used + BLOCK as u64 > size {
                return Err(header_error("the sparse map runs past the entry's data"));
            }
            *meta_used += BLOCK as u64;
            if *meta_used > MAX_METADATA {
                return Err(metadata_error());
            }
            let mut block = [0u8; BLOCK];
            self.read_exact(&mut block).await?;
            used += BLOCK as u64;
            text.extend_from_slice(&block);
        }
    }
}

fn padding(n: u64) -> u64 {
    (BLOCK as u64 - n % BLOCK as u64) % BLOCK as u64
}

/// Up to the first NUL, as Go reads names and strings.
fn cut_nul(b: &[u8]) -> &[u8] {
    b.iter().position(|&c| c == 0).map_or(b, |i| &b[..i])
}

/// A numeric field: base-256 when the high bit is set (negative when the
/// next bit is too), else octal between NULs and spaces. `None` when it is
/// neither or overflows.
fn parse_numeric(b: &[u8]) -> Option<i64> {
    if let Some(&first) = b.first() {
        if first & 0x80 != 0 {
            let inv = if first & 0x40 != 0 { 0xff } else { 0 };
            let mut x: u64 = 0;
            for (i, &c) in b.iter().enumerate() {
                let mut c = c ^ inv;
                if i == 0 {
                    c &= 0x7f;
                }
                if x >> 56 > 0 {
                    return None;
                }
                x = x << 8 | u64::from(c);
            }
            if x >> 63 > 0 {
                return None;
            }
            return Some(if inv == 0xff { !(x as i64) } else { x as i64 });
        }
    }
    parse_octal(b)
}

fn parse_octal(b: &[u8]) -> Option<i64> {
    let trimmed = trim(b);
    if trimmed.is_empty() {
        return Some(0);
    }
    let digits = cut_nul(trimmed);
    if digits.is_empty() || !digits.iter().all(|c| (b'0'..=b'7').contains(c)) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(digits).ok()?, 8)
        .ok()
        .and_then(|v| i64::try_from(v).ok())
}

fn trim(b: &[u8]) -> &[u8] {
    let pad = |c: &u8| *c == 0 || *c == b' ';
    let start = b.iter().position(|c| !pad(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !pad(c)).map_or(start, |i| i + 1);
    &b[start..end]
}

/// A PAX time: seconds, optionally negative, optionally with a fraction.
fn parse_pax_time(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = secs.strip_prefix('-').unwrap_or(secs);
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    secs.parse::<i64>().ok()
}

/// Go's rules for a sparse map: in order, not overlapping, within `size`.
fn check_sparse(map: Vec<(i64, i64)>, size: i64) -> Option<Vec<(u64, u64)>> {
    if size < 0 {
        return None;
    }
    let mut end = 0i64;
    let mut out = Vec::with_capacity(map.len());
    for (off, len) in map {
        if off < 0 || len < 0 || off > i64::MAX - len || off + len > size || end > off {
            return None;
        }
        end = off + len;
        out.push((off as u64, len as u64));
    }
    Some(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    V7,
    Ustar,
    Star,
    Gnu,
}

/// The fields of one 512-byte header, read as Go reads them.
struct Header {
    format: Format,
    typeflag: u8,
    name: Vec<u8>,
    linkname: Vec<u8>,
    mode: i64,
    uid: i64,
    gid: i64,
    size: i64,
    mtime: i64,
    devmajor: i64,
    devminor: i64,
}

impl Header {
    fn parse(b: &[u8; BLOCK]) -> io::Result<Header> {
        let unsigned: i64 = b
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    i64::from(c)
                }
            })
            .sum();
        let signed: i64 = b
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    i64::from(c as i8)
                }
            })
            .sum();
        match parse_octal(&b[148..156]) {
            Some(sum) if sum == unsigned || sum == signed => {}
            _ => return Err(header_error("header checksum mismatch (not a tar header)")),
        }
        let format = match (&b[257..263], &b[263..265]) {
            (b"ustar\0", _) if &b[508..512] == b"tar\0" => Format::Star,
            (b"ustar\0", _) => Format::Ustar,
            (b"ustar ", b" \0") => Format::Gnu,
            _ => Format::V7,
        };
        let field = |what: &str, r: std::ops::Range<usize>| {
            parse_numeric(&b[r]).ok_or_else(|| {
                header_error(format!("the {what} field of a header is not a number"))
            })
        };
        let mut h = Header {
            format,
            typeflag: b[156],
            name: cut_nul(&b[..100]).to_vec(),
            linkname: cut_nul(&b[157..257]).to_vec(),
            mode: field("mode", 100..108)?,
            uid: field("uid", 108..116)?,
            gid: field("gid", 116..124)?,
            size: field("size", 124..136)?,
            mtime: field("mtime", 136..148)?,
            devmajor: 0,
            devminor: 0,
        };
        if format != Format::V7 {
            h.devmajor = field("device major", 329..337)?;
            h.devminor = field("device minor", 337..345)?;
            let prefix = match format {
                Format::Ustar => cut_nul(&b[345..500]),
                Format::Star => cut_nul(&b[345..476]),
                _ => &[],
            };
            if !prefix.is_empty() {
                let mut name = prefix.to_vec();
                name.push(b'/');
                name.extend_from_slice(&h.name);
                h.name = name;
            }
        }
        Ok(h)
    }

    fn size(&self) -> io::Result<u64> {
        u64::try_from(self.size).map_err(|_| header_error(format!("negative size {}", self.size)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SparseVersion {
    /// 0.0 and 0.1: the map in PAX records.
    V0,
    /// 1.0: the map at the start of the data.
    V1,
}

/// One PAX header's records, in order; a later record of a key wins.
#[derive(Default)]
struct Pax {
    records: Vec<(Vec<u8>, Vec<u8>)>,
    /// GNU.sparse.offset / numbytes pairs (format 0.0), in order.
    sparse_pairs: Vec<Vec<u8>>,
}

impl Pax {
    /// Go's parsePAX: `LEN key=value\n` records, each checked.
    fn parse(mut s: &[u8]) -> io::Result<Pax> {
        let bad = || header_error("malformed PAX record");
        let mut pax = Pax::default();
        while !s.is_empty() {
            let sp = s.iter().position(|&b| b == b' ').ok_or_else(bad)?;
            let n: usize = std::str::from_utf8(&s[..sp])
                .ok()
                .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|d| d.parse().ok())
                .ok_or_else(bad)?;
            if n < 5 || n > s.len() || n <= sp + 1 {
                return Err(bad());
            }
            let (rec, rest) = s.split_at(n);
            s = rest;
            if rec[n - 1] != b'\n' {
                return Err(bad());
            }
            let rec = &rec[sp + 1..n - 1];
            let eq = rec.iter().position(|&b| b == b'=').ok_or_else(bad)?;
            let (k, v) = (&rec[..eq], &rec[eq + 1..]);
            if k.is_empty() {
                return Err(bad());
            }
            if k == b"GNU.sparse.offset" || k == b"GNU.sparse.numbytes" {
                let want_offset = pax.sparse_pairs.len() % 2 == 0;
                if want_offset != (k == b"GNU.sparse.offset") || v.contains(&b',') {
                    return Err(header_error("GNU.sparse.offset and numbytes out of order"));
                }
                pax.sparse_pairs.push(v.to_vec());
                continue;
            }
            pax.records.push((k.to_vec(), v.to_vec()));
        }
        Ok(pax)
    }

    /// The value of `key`, unless empty (an empty value keeps the header's).
    fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.records
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| &v[..])
            .filter(|v| !v.is_empty())
    }

    /// A key Go refuses: NUL bytes are allowed only in values, and not in
    /// path, linkpath, uname or gname.
    fn nul_key(&self) -> Option<&[u8]> {
        self.records.iter().find_map(|(k, v)| {
            let in_value = matches!(&k[..], b"path" | b"linkpath" | b"uname" | b"gname");
            ((in_value && v.contains(&0)) || k.contains(&0)).then_some(&k[..])
        })
    }

    fn sparse_version(&self) -> Option<SparseVersion> {
        let major = self.get(b"GNU.sparse.major");
        let minor = self.get(b"GNU.sparse.minor");
        match (major, minor) {
            (Some(b"0"), Some(b"0" | b"1")) => Some(SparseVersion::V0),
            (Some(b"1"), Some(b"0")) => Some(SparseVersion::V1),
            (Some(_), _) | (_, Some(_)) => None,
            _ if self.get(b"GNU.sparse.map").is_some() || !self.sparse_pairs.is_empty() => {
                Some(SparseVersion::V0)
            }
            _ => None,
        }
    }

    /// The map of formats 0.0 and 0.1: `GNU.sparse.map` (or the 0.0 pairs),
    /// `GNU.sparse.numblocks` entries of offset,length.
    fn sparse_map_0x1(&self) -> Option<Vec<(i64, i64)>> {
        let count: usize = std::str::from_utf8(self.get(b"GNU.sparse.numblocks")?)
            .ok()?
            .parse()
            .ok()?;
        let parts: Vec<&[u8]> = if !self.sparse_pairs.is_empty() {
            self.sparse_pairs.iter().map(|v| &v[..]).collect()
        } else {
            match self.get(b"GNU.sparse.map") {
                Some(m) => m.split(|&b| b == b',').collect(),
                None => Vec::new(),
            }
        };
        if parts.len() != count.checked_mul(2)? {
            return None;
        }
        let num = |p: &[u8]| -> Option<i64> { std::str::from_utf8(p).ok()?.parse().ok() };
        parts
            .chunks(2)
            .map(|p| Some((num(p[0])?, num(p[1])?)))
            .collect()
    }
}

fn pax_record(k: &[u8], v: &[u8]) -> Vec<u8> {
    let body = k.len() + v.len() + 3; // ' ', '=', '\n'
    let mut n = body + 1;
    while n.to_string().len() + body != n {
        n += 1;
    }
    let mut r = format!("{n} ").into_bytes();
    r.extend_from_slice(k);
    r.push(b'=');
    r.extend_from_slice(v);
    r.push(b'\n');
    r
}

/// A canonical ustar header (values must fit their octal fields).
#[allow(clippy::too_many_arguments)]
fn ustar(
    name: &[u8],
    mode: u64,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    typeflag: u8,
    link: &[u8],
    major: u64,
    minor: u64,
) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name);
    let mut octal = |at: usize, width: usize, v: u64| {
        let s = format!("{v:0w$o}", w = width - 1);
        h[at..at + width - 1].copy_from_slice(s.as_bytes());
    };
    octal(100, 8, mode);
    octal(108, 8, uid);
    octal(116, 8, gid);
    octal(124, 12, size);
    octal(136, 12, mtime);
    octal(329, 8, major);
    octal(337, 8, minor);
    h[156] = typeflag;
    h[157..157 + link.len()].copy_from_slice(link);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_fields_as_go_reads_them() {
        let cases: &[(&[u8], Option<i64>)] = &[
            (b"0000644\0", Some(0o644)),
            (b"\0\0\0\0\0\0\0\0", Some(0)),
            (b"        ", Some(0)),
            (b"  644 \0 ", Some(0o644)),
            (b"\0\x00644\0\0", Some(0o644)),
            (b"644\0junk", Some(0o644)),
            (b"6 44    ", None),
            (b"0000648\0", None),
            (b"-000001\0", None),
            (&[0x80, 0, 0, 0, 0, 0, 0, 0x10], Some(16)),
            (&[0xff; 8], Some(-1)),
            (&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe], Some(-2)),
            (&[0x80, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], None),
            (
                &[
                    0x80, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                ],
                None,
            ),
            (
                &[
                    0x80, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                ],
                Some(i64::MAX),
            ),
        ];
        for (field, want) in cases {
            assert_eq!(parse_numeric(field), *want, "{:?}", field);
        }
    }

    fn records(list: &[(&[u8], &[u8])]) -> Vec<u8> {
        list.iter().flat_map(|(k, v)| pax_record(k, v)).collect()
    }

    #[test]
    fn pax_records_as_go_parses_them() {
        assert_eq!(pax_record(b"path", b"abc"), b"12 path=abc\n");
        let p = Pax::parse(&records(&[(b"path", b"abc"), (b"path", b"xyz")])).unwrap();
        assert_eq!(p.get(b"path"), Some(&b"xyz"[..]));
        let p = Pax::parse(&records(&[(b"mtime", b"1350244992.02396")])).unwrap();
        assert_eq!(
            parse_pax_time(p.get(b"mtime").unwrap()),
            Some(1_350_244_992)
        );
        assert_eq!(parse_pax_time(b"-1.5"), Some(-1));
        // An empty value keeps the header's.
        assert_eq!(Pax::parse(b"5 k=\n").unwrap().get(b"k"), None);
        for bad in [
            &b"12 path=abc"[..],
            b"1 x\n",
            b"12path=abc\n",
            b"11 noequal\n",
            b"99 path=abc\n",
            b"7 =abc\n",
            b"-12 path=abc\n",
        ] {
            assert!(Pax::parse(bad).is_err(), "{bad:?}");
        }
        let nul = Pax::parse(&records(&[(b"SCHILY.xattr.a\0b", b"value")])).unwrap();
        assert_eq!(nul.nul_key(), Some(&b"SCHILY.xattr.a\0b"[..]));
        let ok = Pax::parse(&records(&[(b"SCHILY.xattr.ab", b"val\0ue")])).unwrap();
        assert_eq!(ok.nul_key(), None);
        let path = Pax::parse(&records(&[(b"path", b"a\0c")])).unwrap();
        assert_eq!(path.nul_key(), Some(&b"path"[..]));
    }

    #[test]
    fn sparse_maps_follow_go_rules() {
        assert_eq!(
            check_sparse(vec![(0, 5), (10, 5)], 20),
            Some(vec![(0, 5), (10, 5)])
        );
        assert_eq!(
            check_sparse(vec![(0, 5), (10, 5)], 15),
            Some(vec![(0, 5), (10, 5)])
        );
        assert_eq!(check_sparse(vec![(0, 5), (10, 5)], 14), None);
        assert_eq!(check_sparse(vec![(10, 5), (0, 5)], 20), None);
        assert_eq!(check_sparse(vec![(0, 6), (5, 5)], 20), None);
        assert_eq!(check_sparse(vec![(-1, 5)], 20), None);
        assert_eq!(check_sparse(vec![(1, i64::MAX)], i64::MAX), None);
        let p = Pax::parse(&records(&[
            (b"GNU.sparse.offset", b"0"),
            (b"GNU.sparse.numbytes", b"5"),
            (b"GNU.sparse.numblocks", b"1"),
        ]))
        .unwrap();
        assert_eq!(p.sparse_version(), Some(SparseVersion::V0));
        assert_eq!(p.sparse_map_0x1(), Some(vec![(0, 5)]));
        let out_of_order = records(&[(b"GNU.sparse.numbytes", b"5"), (b"GNU.sparse.offset", b"0")]);
        assert!(Pax::parse(&out_of_order).is_err());
        let map = |n: &[u8]| {
            Pax::parse(&records(&[
                (b"GNU.sparse.numblocks", n),
                (b"GNU.sparse.map", b"0,5,10,5"),
            ]))
            .unwrap()
        };
        assert_eq!(map(b"2").sparse_map_0x1(), Some(vec![(0, 5), (10, 5)]));
        assert_eq!(map(b"3").sparse_map_0x1(), None);
        let unknown = Pax::parse(&records(&[
            (b"GNU.sparse.major", b"2"),
            (b"GNU.sparse.map", b"0,5"),
        ]));
        assert_eq!(unknown.unwrap().sparse_version(), None);
    }

    #[test]
    fn canonical_headers_have_a_valid_checksum() {
        let h = ustar(b"name", 0o644, 1, 2, 3, 4, b'0', b"", 0, 0);
        let parsed = Header::parse(&h).unwrap();
        assert_eq!(parsed.format, Format::Ustar);
        assert_eq!(
            (
                parsed.mode,
                parsed.uid,
                parsed.gid,
                parsed.size,
                parsed.mtime
            ),
            (0o644, 1, 2, 3, 4)
        );
        let mut bad = h;
        bad[0] ^= 1;
        assert!(Header::parse(&bad).is_err());
    }
}
