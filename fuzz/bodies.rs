//! The fuzz target bodies. Both the cargo-fuzz binaries and the stable
//! corpus replay test (tests/integration/fuzz_corpus.rs) include this file, so a seed
//! or a crash input runs the very same code in both.
// Each fuzz binary uses one of these functions.
#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::OnceLock;

use initramfs_stream::cpio::{CpioError, NewcWriter, Record};
use initramfs_stream::fs::Kind;
use initramfs_stream::index::{MergeIndex, Plan};
use initramfs_stream::layer::{scan_layer, LayerReader, ScanLimits};
use initramfs_stream::source::spec::{self, DockerArchiveEntry};
use initramfs_stream::source::{BlobReader, Digest, ImageConfig, ImageReference, Platform};
use tokio::io::AsyncReadExt;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

fn blob(data: &[u8]) -> BlobReader {
    Box::new(std::io::Cursor::new(data.to_vec()))
}

const LIMITS: ScanLimits = ScanLimits {
    max_entries: 100_000,
    max_tar_bytes: 64 << 20,
    capture: &[b"/etc/passwd", b"/etc/group"],
    capture_limit: 1 << 16,
    declared: None,
};

/// Arbitrary bytes as a layer blob (gzip, zstd or plain tar): headers, the
/// merge (the blob applied twice, as two layers, so its whiteouts and links
/// meet its own entries), the plan, and the content pass. Errors are fine;
/// panics and broken plan promises are not.
pub fn layer_index(data: &[u8]) {
    runtime().block_on(async {
        let Ok(headers) = scan_layer(blob(data), 0, None, LIMITS).await else {
            return;
        };
        let mut index = MergeIndex::new(1 << 20);
        for layer in 0..2 {
            if index.apply_layer(layer, &headers.entries).is_err() {
                return;
            }
        }
        let plan = index.plan();
        check_plan(&plan);
        for layer in 0..2 {
            let Ok(mut reader) = LayerReader::open(blob(data), layer as usize, None).await else {
                return;
            };
            for g in plan.files.iter().filter(|g| g.content.layer == layer) {
                let Ok(mut body) = reader.body(g.content.ordinal).await else {
                    return;
                };
                let mut sink = Vec::new();
                if (&mut body)
                    .take(1 << 20)
                    .read_to_end(&mut sink)
                    .await
                    .is_err()
                {
                    return;
                }
            }
            let _ = reader.finish().await;
        }
    });
}

/// What the stream relies on: parents before children, one entry per name,
/// names the kernel can take, data groups in layer order, one group per content.
fn check_plan(plan: &Plan) {
    let mut dirs: HashSet<&[u8]> = HashSet::new();
    let mut names: HashSet<&[u8]> = HashSet::new();
    let parent_ok = |name: &[u8], dirs: &HashSet<&[u8]>| match name.iter().rposition(|&b| b == b'/')
    {
        Some(i) => dirs.contains(&name[..i]),
        None => true,
    };
    let check_name = |name: &[u8], dirs: &HashSet<&[u8]>| {
        assert!(!name.is_empty(), "empty archive name");
        // The kernel reads names as C strings: "a\0b" would land on "a".
        assert!(!name.contains(&0), "NUL in archive name {name:?}");
        assert!(!name.starts_with(b"/"), "absolute archive name");
        assert!(
            name.split(|&b| b == b'/')
                .all(|c| !c.is_empty() && c != b"." && c != b".."),
            "unnormalised archive name {:?}",
            String::from_utf8_lossy(name)
        );
        assert!(parent_ok(name, dirs), "parent missing or late: {name:?}");
    };
    for (i, d) in plan.dirs.iter().enumerate() {
        // `.`, the root's own entry, only first.
        if i == 0 && d.name == b"." {
            assert!(names.insert(&d.name));
            continue;
        }
        check_name(&d.name, &dirs);
        assert!(names.insert(&d.name), "duplicate name {:?}", d.name);
        dirs.insert(&d.name);
    }
    for o in &plan.others {
        check_name(&o.name, &dirs);
        if let Kind::Symlink { target } = &o.kind {
            assert!(!target.contains(&0), "NUL in symlink target {target:?}");
        }
        assert!(names.insert(&o.name), "duplicate name {:?}", o.name);
    }
    let mut contents = HashSet::new();
    for g in plan.empty_files.iter().chain(&plan.files) {
        assert!(contents.insert(g.content), "content {:?} twice", g.content);
        assert!(!g.names.is_empty());
        for n in &g.names {
            check_name(n, &dirs);
            assert!(names.insert(n), "duplicate name {n:?}");
        }
    }
    assert!(plan.empty_files.iter().all(|g| g.size == 0));
    assert!(plan.files.iter().all(|g| g.size > 0));
    assert!(plan.files.windows(2).all(|w| w[0].content < w[1].content));
}

/// Reads fuzz input as a sequence of small values; short input reads as zeros.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn u32(&mut self) -> u32 {
        let mut v = [0u8; 4];
        for b in &mut v {
            *b = self.u8().unwrap_or(0);
        }
        u32::from_le_bytes(v)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head.to_vec()
    }
}

/// How a record's data reaches the writer.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Feed {
    InMemory,
    Reader,
    /// A reader with fewer bytes than `filesize`: must fail.
    Short,
    /// A reader with more bytes than `filesize`: the rest stays unread.
    Long,
}

/// Arbitrary records through `NewcWriter`, parsed back by an independent
/// reader: whatever the writer accepts must come back byte for byte.
pub fn cpio_roundtrip(data: &[u8]) {
    let mut input = Input(data);
    let mut records = Vec::new();
    while records.len() < 64 {
        let Some(len) = input.u8() else { break };
        let mut name = input.bytes(len as usize);
        // Long names reach the 4095-byte limit from both sides.
        if len >= 250 && !name.is_empty() {
            let want = 4090 + (len as usize - 250);
            name = name.iter().copied().cycle().take(want).collect();
        }
        let feed = match input.u8().unwrap_or(0) % 4 {
            0 => Feed::InMemory,
            1 => Feed::Reader,
            2 => Feed::Short,
            _ => Feed::Long,
        };
        let mut record = Record {
            name,
            ino: input.u32(),
            mode: input.u32(),
            uid: input.u32(),
            gid: input.u32(),
            nlink: input.u32(),
            mtime: input.u32(),
            filesize: 0,
            rdev_major: input.u32(),
            rdev_minor: input.u32(),
        };
        let body = {
            let n = input.u8().unwrap_or(0) as usize;
            input.bytes(n)
        };
        record.filesize = body.len() as u32;
        records.push((record, body, feed));
    }

    let out = runtime().block_on(async {
        let mut w = NewcWriter::new(Vec::new());
        let mut accepted = Vec::new();
        for (record, body, feed) in records {
            let result = match feed {
                Feed::InMemory => w.write_record(&record, &body).await,
                Feed::Reader => w.write_record_from(&record, &mut &body[..]).await,
                Feed::Short => {
                    let cut = body.len().saturating_sub(1);
                    w.write_record_from(&record, &mut &body[..cut]).await
                }
                Feed::Long => {
                    let mut more = body.clone();
                    more.extend_from_slice(b"extra");
                    w.write_record_from(&record, &mut &more[..]).await
                }
            };
            match result {
                Ok(()) => {
                    assert!(
                        feed != Feed::Short || body.is_empty(),
                        "short data accepted"
                    );
                    accepted.push((record, body));
                }
                // Refused before a byte is written: the writer goes on.
                Err(CpioError::NameTooLong { len, .. }) => {
                    assert_eq!(len, record.name.len());
                    assert!(len > 4095, "a {len}-byte name refused");
                }
                Err(CpioError::ShortData { .. }) if feed == Feed::Short => return None,
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        let written = w.written();
        let bytes = w.finish().await.expect("writing to memory");
        assert_eq!(written + 124, bytes.len() as u64, "written() is off");
        Some((accepted, bytes))
    });
    let Some((accepted, bytes)) = out else { return };
    let parsed = parse_newc(&bytes).unwrap_or_else(|e| panic!("unreadable archive: {e}"));
    assert_eq!(parsed.len(), accepted.len(), "record count");
    for ((got, got_data), (want, want_data)) in parsed.iter().zip(&accepted) {
        let mut want = want.clone();
        // The kernel ends an archive at any TRAILER!!!: the writer stores that
        // root name as ./TRAILER!!!, the same path once unpacked.
        if want.name == b"TRAILER!!!" {
            want.name = b"./TRAILER!!!".to_vec();
        }
        assert_eq!(*got, want);
        assert_eq!(got_data, want_data);
    }
}

/// A strict newc reader written from the format description, not from the
/// writer: fields in hex, name with its NUL, 4-byte alignment, and nothing
/// but the trailer at the end.
fn parse_newc(buf: &[u8]) -> Result<Vec<(Record, Vec<u8>)>, String> {
    let align = |n: usize| (n + 3) & !3;
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let header = buf
            .get(pos..pos + 110)
            .ok_or_else(|| format!("truncated header at {pos}"))?;
        if &header[..6] != b"070701" {
            return Err(format!("bad magic at {pos}"));
        }
        let mut f = [0u32; 13];
        for (i, v) in f.iter_mut().enumerate() {
            let hex = &header[6 + 8 * i..14 + 8 * i];
            let s = std::str::from_utf8(hex).map_err(|_| format!("non-ASCII field at {pos}"))?;
            *v = u32::from_str_radix(s, 16).map_err(|_| format!("bad hex {s:?} at {pos}"))?;
        }
        let [ino, mode, uid, gid, nlink, mtime, filesize, dev_major, dev_minor, rdev_major, rdev_minor, namesize, check] =
            f;
        if dev_major != 0 || dev_minor != 0 || check != 0 {
            return Err(format!("unexpected device or check field at {pos}"));
        }
        let name_end = pos + 110 + namesize as usize;
        let name = buf.get(pos + 110..name_end).ok_or("truncated name")?;
        let (&nul, name) = name.split_last().ok_or("namesize 0")?;
        if nul != 0 {
            return Err(format!("name at {pos} not NUL-terminated"));
        }
        let data_start = align(name_end);
        let data_end = data_start + filesize as usize;
        let data = buf.get(data_start..data_end).ok_or("truncated data")?;
        if buf[name_end..data_start].iter().any(|&b| b != 0) {
            return Err("non-zero name padding".into());
        }
        let next = align(data_end);
        if buf
            .get(data_end..next)
            .is_none_or(|p| p.iter().any(|&b| b != 0))
        {
            return Err("bad data padding".into());
        }
        if name == b"TRAILER!!!" {
            if next != buf.len() {
                return Err(format!("{} bytes after the trailer", buf.len() - next));
            }
            return Ok(out);
        }
        out.push((
            Record {
                name: name.to_vec(),
                ino,
                mode,
                uid,
                gid,
                nlink,
                mtime,
                filesize,
                rdev_major,
                rdev_minor,
            },
            data.to_vec(),
        ));
        pos = next;
    }
}

/// Manifests, indexes, configs and `docker save` manifests: any bytes, any
/// media type, no panic.
pub fn documents(data: &[u8]) {
    for media_type in [
        spec::MEDIA_OCI_INDEX,
        spec::MEDIA_OCI_MANIFEST,
        spec::MEDIA_DOCKER_LIST,
        spec::MEDIA_DOCKER_MANIFEST,
        "",
        "application/octet-stream",
    ] {
        if let Ok(doc) = spec::parse_document(data, media_type, "fuzz") {
            let descriptors = match doc {
                spec::Document::Index(i) => i.manifests,
                spec::Document::Manifest(m) => {
                    let mut d = m.layers;
                    d.push(m.config);
                    d
                }
            };
            for d in descriptors {
                let _ = Digest::parse(&d.digest);
            }
        }
    }
    if let Ok(config) = serde_json::from_slice::<ImageConfig>(data) {
        for d in config.rootfs.iter().flat_map(|r| &r.diff_ids) {
            let _ = Digest::parse(d);
        }
    }
    let _ = serde_json::from_slice::<Vec<DockerArchiveEntry>>(data);
}

/// Image references, platforms and digests from the command line. A parsed
/// reference or platform printed and parsed again gives the same value.
pub fn references(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = ImageReference::parse(s) {
        let again = ImageReference::parse(&r.to_string())
            .unwrap_or_else(|e| panic!("{r} does not parse again: {e}"));
        assert_eq!(again, r, "{s:?} printed as {r}");
    }
    if let Ok(p) = Platform::parse(s) {
        let again = Platform::parse(&p.to_string()).expect("a printed platform parses");
        assert_eq!(again, p);
    }
    if let Ok(d) = Digest::parse(s) {
        assert_eq!(d.to_string(), s, "a digest prints as it was written");
    }
}
