//! Just enough of a program file to know how the kernel and the dynamic
//! loader will treat it: `#!` line, or ELF class, byte order, machine,
//! `PT_INTERP` and the dynamic section's `DT_NEEDED`, `DT_RPATH`,
//! `DT_RUNPATH`, `DT_SONAME` and `DF_1_NODEFLIB`.
//!
//! Bodies are streamed from the layers, so a file is read front to back
//! once, keeping only some byte ranges ([`Capture`]): the first
//! [`HEAD`] bytes (ELF and program headers, the interpreter path, and in
//! practice the dynamic string table, which linkers put in the first
//! segment), plus the `PT_INTERP` and `PT_DYNAMIC` ranges wherever they
//! are, found from the program headers as they stream past. When a string
//! the dynamic section points at was not kept, [`parse`] names the exact
//! ranges still missing and the caller reads the file once more for them.

// A `vec![a..b]` here is a list of one byte range, as meant.
#![allow(clippy::single_range_in_vec_init)]

use std::ops::Range;

use object::elf;
use object::read::elf::{Dyn, FileHeader, ProgramHeader};
use object::Endianness;

/// Bytes kept from the start of every file read.
pub const HEAD: u64 = 256 << 10;
/// Most bytes kept for one `PT_INTERP` or `PT_DYNAMIC` range.
const MAX_RANGE: u64 = 64 << 10;
/// Longest string read from the dynamic string table (PATH_MAX).
const MAX_STRING: u64 = 4096;
/// The kernel reads this much of a file to find a `#!` line.
const BINPRM_BUF_SIZE: usize = 256;

/// Some byte ranges of a file of known size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sparse {
    pub size: u64,
    pieces: Vec<(u64, Vec<u8>)>,
}

impl Sparse {
    /// A file whose bytes are all here (generated or host files).
    pub fn whole(bytes: Vec<u8>) -> Sparse {
        Sparse {
            size: bytes.len() as u64,
            pieces: vec![(0, bytes)],
        }
    }

    /// `len` bytes at `offset`, if one kept piece holds them all.
    pub fn get(&self, offset: u64, len: u64) -> Option<&[u8]> {
        let end = offset.checked_add(len)?;
        self.pieces.iter().find_map(|(start, bytes)| {
            let stop = start + bytes.len() as u64;
            (offset >= *start && end <= stop)
                .then(|| &bytes[(offset - start) as usize..(end - start) as usize])
        })
    }

    /// The NUL-terminated string at `offset`, ending before `limit`.
    fn cstr(&self, offset: u64, limit: u64) -> Option<&[u8]> {
        self.pieces.iter().find_map(|(start, bytes)| {
            let stop = (start + bytes.len() as u64).min(limit);
            if offset < *start || offset >= stop {
                return None;
            }
            let s = &bytes[(offset - start) as usize..(stop - start) as usize];
            s.iter().position(|&b| b == 0).map(|n| &s[..n])
        })
    }

    /// Adds the pieces of `other` (the same file read again).
    pub fn merge(&mut self, other: Sparse) {
        self.pieces.extend(other.pieces);
    }

    /// Bytes held, for bounding memory.
    pub fn held(&self) -> usize {
        self.pieces.iter().map(|(_, b)| b.len()).sum()
    }
}

/// Keeps the wanted ranges of a file while its body streams past.
#[derive(Debug)]
pub struct Capture {
    sparse: Sparse,
    pos: u64,
    want: Vec<Range<u64>>,
    /// Whether to add `PT_INTERP` and `PT_DYNAMIC` once the program
    /// headers have been seen.
    follow_headers: bool,
}

impl Capture {
    /// First read of a file: its head, and its interpreter and dynamic
    /// section wherever they are.
    pub fn head(size: u64) -> Capture {
        Capture {
            sparse: Sparse {
                size,
                pieces: Vec::new(),
            },
            pos: 0,
            want: vec![0..size.min(HEAD)],
            follow_headers: true,
        }
    }

    /// A later read for exactly these ranges.
    pub fn ranges(size: u64, ranges: &[Range<u64>]) -> Capture {
        Capture {
            sparse: Sparse {
                size,
                pieces: Vec::new(),
            },
            pos: 0,
            want: union(ranges.iter().map(|r| r.start.min(size)..r.end.min(size))),
            follow_headers: false,
        }
    }

    /// Whether bytes from the current position on are still wanted.
    pub fn wants_more(&self) -> bool {
        self.want.iter().any(|r| r.end > self.pos)
    }

    /// The next `chunk` of the body.
    pub fn feed(&mut self, chunk: &[u8]) {
        let (start, end) = (self.pos, self.pos + chunk.len() as u64);
        for r in &self.want {
            let (a, b) = (r.start.max(start), r.end.min(end));
            if a >= b {
                continue;
            }
            let bytes = &chunk[(a - start) as usize..(b - start) as usize];
            let open = self
                .sparse
                .pieces
                .iter_mut()
                .find(|(s, kept)| *s + kept.len() as u64 == a);
            match open {
                Some((_, kept)) => kept.extend_from_slice(bytes),
                None => self.sparse.pieces.push((a, bytes.to_vec())),
            }
        }
        self.pos = end;
        if self.follow_headers {
            if let Some(extra) = self.header_ranges() {
                self.follow_headers = false;
                let size = self.sparse.size;
                let extra = extra
                    .into_iter()
                    .map(|r| r.start.min(size)..r.end.min(size));
                self.want = union(self.want.drain(..).chain(extra));
            }
        }
    }

    /// `PT_INTERP` and `PT_DYNAMIC` once the program headers are in;
    /// `Some(empty)` when there is nothing to follow.
    fn header_ranges(&self) -> Option<Vec<Range<u64>>> {
        let head = match self.sparse.pieces.first() {
            Some((0, head)) => head.as_slice(),
            _ => return (self.pos > 0).then(Vec::new),
        };
        let done = self.pos >= self.sparse.size || self.pos >= HEAD;
        if head.len() < 64 && !done {
            return None;
        }
        if !head.starts_with(b"\x7fELF") {
            return Some(Vec::new());
        }
        match headers(head) {
            Ok(h) => Some(
                h.segments
                    .iter()
                    .filter(|s| s.kind == elf::PT_INTERP.0 || s.kind == elf::PT_DYNAMIC.0)
                    .map(|s| s.offset..s.offset.saturating_add(s.filesz.min(MAX_RANGE)))
                    .collect(),
            ),
            Err(_) if !done => None,
            Err(_) => Some(Vec::new()),
        }
    }

    pub fn finish(self) -> Sparse {
        self.sparse
    }
}

/// The same bytes as `ranges`, as sorted disjoint ranges.
fn union(ranges: impl Iterator<Item = Range<u64>>) -> Vec<Range<u64>> {
    let mut all: Vec<Range<u64>> = ranges.filter(|r| r.start < r.end).collect();
    all.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(all.len());
    for r in all {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// What the kernel makes of a file it is asked to execute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Elf(ElfInfo),
    /// `#!interpreter [argument]`.
    Script {
        interpreter: Vec<u8>,
        argument: Option<Vec<u8>>,
    },
    /// Neither: execve fails with ENOEXEC.
    Other,
    /// The ELF file is cut short or inconsistent.
    Malformed(String),
    /// These ranges must be read before anything can be said.
    Missing(Vec<Range<u64>>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    pub class64: bool,
    pub big_endian: bool,
    pub machine: u16,
    pub file_type: u16,
    pub interpreter: Option<Vec<u8>>,
    pub needed: Vec<Vec<u8>>,
    pub rpath: Vec<Vec<u8>>,
    pub runpath: Vec<Vec<u8>>,
    pub soname: Option<Vec<u8>>,
    pub nodeflib: bool,
}

impl ElfInfo {
    /// "x86-64", "aarch64", ..., as `file` and `readelf` say it.
    pub fn machine_name(&self) -> String {
        machine_name(self.machine, self.class64)
    }
}

/// A machine's name for messages.
pub fn machine_name(machine: u16, class64: bool) -> String {
    let name = match machine {
        3 => "i386",
        8 => "mips",
        20 => "powerpc",
        21 => "ppc64",
        22 => "s390",
        40 => "arm",
        62 if !class64 => "x32",
        62 => "x86-64",
        183 => "aarch64",
        243 => "riscv",
        258 => "loongarch",
        other => return format!("ELF machine {other}"),
    };
    name.to_string()
}

struct Segment {
    kind: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
}

struct Headers {
    class64: bool,
    big_endian: bool,
    machine: u16,
    file_type: u16,
    segments: Vec<Segment>,
}

fn headers(head: &[u8]) -> Result<Headers, String> {
    // e_ident[EI_CLASS]: 1 is ELFCLASS32, 2 ELFCLASS64.
    match head.get(4) {
        Some(1) => headers_of::<elf::FileHeader32<Endianness>>(head),
        Some(2) => headers_of::<elf::FileHeader64<Endianness>>(head),
        _ => Err("unknown ELF class".into()),
    }
}

fn headers_of<Elf: FileHeader<Endian = Endianness>>(head: &[u8]) -> Result<Headers, String> {
    let header = Elf::parse(head).map_err(|e| e.to_string())?;
    let endian = header.endian().map_err(|e| e.to_string())?;
    let phdrs = header
        .program_headers(endian, head)
        .map_err(|e| e.to_string())?;
    Ok(Headers {
        class64: header.is_type_64(),
        big_endian: header.is_big_endian(),
        machine: header.e_machine(endian).0,
        file_type: header.e_type(endian).0,
        segments: phdrs
            .iter()
            .map(|p| Segment {
                kind: p.p_type(endian).0,
                offset: p.p_offset(endian).into(),
                vaddr: p.p_vaddr(endian).into(),
                filesz: p.p_filesz(endian).into(),
            })
            .collect(),
    })
}

/// Reads what [`Parsed`] says from the kept bytes of a file.
pub fn parse(file: &Sparse) -> Parsed {
    let size = file.size;
    let Some(magic) = file.get(0, size.min(4)) else {
        return Parsed::Missing(vec![0..size.min(HEAD)]);
    };
    if magic.starts_with(b"#!") {
        let Some(line) = file.get(0, size.min(BINPRM_BUF_SIZE as u64)) else {
            return Parsed::Missing(vec![0..size.min(HEAD)]);
        };
        return script(line, size);
    }
    if magic != b"\x7fELF" {
        return Parsed::Other;
    }
    // Program headers sit right after the ELF header in practice; when
    // not, one more read of the head is all it takes.
    let head_len = size.min(HEAD);
    let Some(head) = file.get(0, head_len) else {
        return Parsed::Missing(vec![0..head_len]);
    };
    let h = match headers(head) {
        Ok(h) => h,
        Err(e) if head_len == size => return Parsed::Malformed(e),
        // Program headers beyond the head: rare enough to refuse to guess.
        Err(e) => return Parsed::Malformed(format!("{e} in the first {HEAD} bytes")),
    };
    match h.class64 {
        true => dynamic::<elf::FileHeader64<Endianness>>(file, h),
        false => dynamic::<elf::FileHeader32<Endianness>>(file, h),
    }
}

fn script(buf: &[u8], size: u64) -> Parsed {
    let body = &buf[2..];
    let (line, complete) = match body.iter().position(|&b| b == b'\n') {
        Some(n) => (&body[..n], true),
        None => (body, (buf.len() as u64) == size),
    };
    let is_blank = |b: &u8| *b == b' ' || *b == b'\t';
    let line = trim(line, is_blank);
    let name_len = line.iter().position(is_blank).unwrap_or(line.len());
    let (name, rest) = line.split_at(name_len);
    // Linux refuses a #! line whose interpreter path the buffer cut.
    if !complete && rest.is_empty() {
        return Parsed::Malformed(format!(
            "its #! line is longer than the kernel's {BINPRM_BUF_SIZE}-byte buffer"
        ));
    }
    if name.is_empty() {
        return Parsed::Malformed("its #! line names no interpreter".into());
    }
    let rest = trim(rest, is_blank);
    Parsed::Script {
        interpreter: name.to_vec(),
        argument: (!rest.is_empty()).then(|| rest.to_vec()),
    }
}

fn trim(mut s: &[u8], blank: impl Fn(&u8) -> bool) -> &[u8] {
    while s.first().is_some_and(&blank) {
        s = &s[1..];
    }
    while s.last().is_some_and(&blank) {
        s = &s[..s.len() - 1];
    }
    s
}

fn dynamic<Elf: FileHeader<Endian = Endianness>>(file: &Sparse, h: Headers) -> Parsed {
    let endian = if h.big_endian {
        Endianness::Big
    } else {
        Endianness::Little
    };
    let mut info = ElfInfo {
        class64: h.class64,
        big_endian: h.big_endian,
        machine: h.machine,
        file_type: h.file_type,
        interpreter: None,
        needed: Vec::new(),
        rpath: Vec::new(),
        runpath: Vec::new(),
        soname: None,
        nodeflib: false,
    };
    let mut missing = Vec::new();
    let range = |s: &Segment| (s.offset, s.filesz.min(MAX_RANGE));
    let wanted = [elf::PT_INTERP.0, elf::PT_DYNAMIC.0];
    if h.segments
        .iter()
        .any(|s| wanted.contains(&s.kind) && s.offset.saturating_add(s.filesz) > file.size)
    {
        return Parsed::Malformed("a program header points past the end of the file".into());
    }
    for s in &h.segments {
        if s.kind == elf::PT_INTERP.0 {
            let (off, len) = range(s);
            match file.get(off, len) {
                Some(b) => {
                    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                    info.interpreter = Some(b[..end].to_vec());
                }
                None => missing.push(off..off + len),
            }
        }
    }
    let Some(dyn_seg) = h.segments.iter().find(|s| s.kind == elf::PT_DYNAMIC.0) else {
        return finish(info, missing);
    };
    let (off, len) = range(dyn_seg);
    let Some(bytes) = file.get(off, len) else {
        missing.push(off..off + len);
        return Parsed::Missing(missing);
    };
    let whole = bytes.len() - bytes.len() % std::mem::size_of::<Elf::Dyn>();
    let Ok(entries) = object::pod::slice_from_all_bytes::<Elf::Dyn>(&bytes[..whole]) else {
        return Parsed::Malformed("unreadable dynamic section".into());
    };
    let (mut strtab, mut strsz) = (None, None);
    let mut strings: Vec<(u32, u64)> = Vec::new();
    for d in entries {
        let tag = d.d_tag(endian).0;
        let val: u64 = d.d_val(endian).into();
        match tag {
            t if t == elf::DT_NULL.0 => break,
            t if t == elf::DT_STRTAB.0 => strtab = Some(val),
            t if t == elf::DT_STRSZ.0 => strsz = Some(val),
            t if t == elf::DT_FLAGS_1.0 => info.nodeflib = val & elf::DF_1_NODEFLIB.0 != 0,
            t if [
                elf::DT_NEEDED,
                elf::DT_RPATH,
                elf::DT_RUNPATH,
                elf::DT_SONAME,
            ]
            .iter()
            .any(|k| k.0 == t) =>
            {
                strings.push((t as u32, val))
            }
            _ => {}
        }
    }
    if strings.is_empty() {
        return finish(info, missing);
    }
    let (Some(strtab), Some(strsz)) = (strtab, strsz) else {
        return Parsed::Malformed("dynamic section without a string table".into());
    };
    // DT_STRTAB is an address: the loadable segment holding it gives the offset.
    let Some(table) = h.segments.iter().find_map(|s| {
        (s.kind == elf::PT_LOAD.0 && strtab >= s.vaddr && strtab - s.vaddr < s.filesz)
            .then(|| s.offset + (strtab - s.vaddr))
    }) else {
        return Parsed::Malformed("the dynamic string table is in no loadable segment".into());
    };
    let table_end = table.saturating_add(strsz).min(file.size);
    for (tag, at) in strings {
        let start = table.saturating_add(at);
        if start >= table_end {
            return Parsed::Malformed("a dynamic string is outside the string table".into());
        }
        let Some(s) = file.cstr(start, table_end) else {
            let end = table_end.min(start + MAX_STRING);
            if file.get(start, end - start).is_some() {
                return Parsed::Malformed("a dynamic string has no end".into());
            }
            missing.push(start..end);
            continue;
        };
        let s = s.to_vec();
        match tag {
            t if t == elf::DT_NEEDED.0 as u32 => info.needed.push(s),
            t if t == elf::DT_SONAME.0 as u32 => info.soname = Some(s),
            t if t == elf::DT_RPATH.0 as u32 => info.rpath.push(s),
            _ => info.runpath.push(s),
        }
    }
    finish(info, missing)
}

fn finish(info: ElfInfo, missing: Vec<Range<u64>>) -> Parsed {
    if missing.is_empty() {
        Parsed::Elf(info)
    } else {
        Parsed::Missing(missing)
    }
}

/// A target platform's native ELF flavour and where its libraries live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arch {
    /// OCI architecture (and variant) names.
    pub oci: &'static [&'static str],
    pub machine: u16,
    pub class64: bool,
    pub big_endian: bool,
    /// Debian multiarch directories under /lib and /usr/lib.
    pub triplets: &'static [&'static str],
    /// musl's name for it, as in /etc/ld-musl-ARCH.path.
    pub musl: &'static str,
}

const ARCHES: &[Arch] = &[
    Arch {
        oci: &["amd64", "x86_64"],
        machine: 62,
        class64: true,
        big_endian: false,
        triplets: &["x86_64-linux-gnu"],
        musl: "x86_64",
    },
    Arch {
        oci: &["386", "i386"],
        machine: 3,
        class64: false,
        big_endian: false,
        triplets: &["i386-linux-gnu"],
        musl: "i386",
    },
    Arch {
        oci: &["arm64", "aarch64"],
        machine: 183,
        class64: true,
        big_endian: false,
        triplets: &["aarch64-linux-gnu"],
        musl: "aarch64",
    },
    Arch {
        oci: &["arm"],
        machine: 40,
        class64: false,
        big_endian: false,
        triplets: &["arm-linux-gnueabihf", "arm-linux-gnueabi"],
        musl: "armhf",
    },
    Arch {
        oci: &["riscv64"],
        machine: 243,
        class64: true,
        big_endian: false,
        triplets: &["riscv64-linux-gnu"],
        musl: "riscv64",
    },
    Arch {
        oci: &["ppc64le"],
        machine: 21,
        class64: true,
        big_endian: false,
        triplets: &["powerpc64le-linux-gnu"],
        musl: "powerpc64le",
    },
    Arch {
        oci: &["ppc64"],
        machine: 21,
        class64: true,
        big_endian: true,
        triplets: &["powerpc64-linux-gnu"],
        musl: "powerpc64",
    },
    Arch {
        oci: &["s390x"],
        machine: 22,
        class64: true,
        big_endian: true,
        triplets: &["s390x-linux-gnu"],
        musl: "s390x",
    },
    Arch {
        oci: &["mips64le"],
        machine: 8,
        class64: true,
        big_endian: false,
        triplets: &["mips64el-linux-gnuabi64"],
        musl: "mips64el",
    },
    Arch {
        oci: &["loong64"],
        machine: 258,
        class64: true,
        big_endian: false,
        triplets: &["loongarch64-linux-gnu"],
        musl: "loongarch64",
    },
];

impl Arch {
    /// The architecture of an OCI platform's `architecture` field.
    pub fn from_oci(architecture: &str) -> Option<&'static Arch> {
        ARCHES.iter().find(|a| a.oci.contains(&architecture))
    }

    /// The architecture an ELF file is built for.
    pub fn of(info: &ElfInfo) -> Option<&'static Arch> {
        ARCHES.iter().find(|a| {
            a.machine == info.machine
                && a.class64 == info.class64
                && a.big_endian == info.big_endian
        })
    }

    pub fn name(&self) -> String {
        machine_name(self.machine, self.class64)
    }

    /// Whether a kernel for `self` runs programs built for `other`: its
    /// own, and i386 on amd64 (IA-32 emulation, on in every distribution
    /// kernel). AArch32 on arm64 depends on the CPU, so it is not assumed.
    pub fn runs(&self, other: &Arch) -> bool {
        self == other || (self.machine == 62 && other.machine == 3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture_all(bytes: &[u8], chunk: usize) -> Sparse {
        let mut c = Capture::head(bytes.len() as u64);
        for piece in bytes.chunks(chunk) {
            if !c.wants_more() {
                break;
            }
            c.feed(piece);
        }
        c.finish()
    }

    fn host_elf(path: &str) -> Vec<u8> {
        std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn host_ls_is_a_dynamic_x86_64_program() {
        let bytes = host_elf("/bin/ls");
        let sparse = capture_all(&bytes, 4096);
        assert!(sparse.held() as u64 <= HEAD + 2 * MAX_RANGE);
        let Parsed::Elf(info) = parse(&sparse) else {
            panic!("{:?}", parse(&sparse));
        };
        assert_eq!(
            info.machine_name(),
            std::env::consts::ARCH.replace('_', "-")
        );
        let interp = info.interpreter.clone().unwrap();
        assert!(
            interp.starts_with(b"/lib"),
            "{}",
            String::from_utf8_lossy(&interp)
        );
        assert!(info.needed.iter().any(|n| n == b"libc.so.6"), "{info:?}");
    }

    #[test]
    fn strings_past_the_head_are_asked_for() {
        // libc's dynamic section is far past the head; its strings are not.
        let bytes = host_elf("/lib/x86_64-linux-gnu/libc.so.6");
        let mut c = Capture::ranges(bytes.len() as u64, &[0..64 << 10]);
        c.feed(&bytes);
        let mut sparse = c.finish();
        let mut reads = 1;
        let info = loop {
            match parse(&sparse) {
                Parsed::Missing(ranges) if reads < 4 => {
                    let mut again = Capture::ranges(bytes.len() as u64, &ranges);
                    for piece in bytes.chunks(1000) {
                        again.feed(piece);
                    }
                    sparse.merge(again.finish());
                    reads += 1;
                }
                Parsed::Elf(info) => break info,
                other => panic!("{other:?}"),
            }
        };
        assert!(reads >= 2);
        assert_eq!(info.soname.as_deref(), Some(&b"libc.so.6"[..]));
    }

    #[test]
    fn shebang_lines() {
        let p = |s: &str| parse(&Sparse::whole(s.as_bytes().to_vec()));
        assert_eq!(
            p("#! /usr/bin/env  python3 \nprint()\n"),
            Parsed::Script {
                interpreter: b"/usr/bin/env".to_vec(),
                argument: Some(b"python3".to_vec())
            }
        );
        assert_eq!(
            p("#!/bin/sh"),
            Parsed::Script {
                interpreter: b"/bin/sh".to_vec(),
                argument: None
            }
        );
        assert!(matches!(p("#!\n"), Parsed::Malformed(_)));
        let long = format!("#!/{}\n", "a".repeat(300));
        assert!(matches!(p(&long), Parsed::Malformed(_)));
        assert_eq!(p("echo hi\n"), Parsed::Other);
        assert_eq!(p(""), Parsed::Other);
    }

    #[test]
    fn truncated_elf_is_malformed() {
        let bytes = host_elf("/bin/ls");
        assert!(matches!(
            parse(&Sparse::whole(bytes[..40].to_vec())),
            Parsed::Malformed(_)
        ));
    }

    #[test]
    fn headers_past_the_end_are_malformed() {
        let mut bytes = host_elf("/bin/ls");
        // Cut the file before its dynamic section: nothing to read again.
        let keep = bytes.len() * 2 / 3;
        bytes.truncate(keep);
        let sparse = capture_all(&bytes, 4096);
        assert_eq!(
            parse(&sparse),
            Parsed::Malformed("a program header points past the end of the file".into())
        );
    }

    #[test]
    fn platforms() {
        let amd64 = Arch::from_oci("amd64").unwrap();
        let i386 = Arch::from_oci("386").unwrap();
        let arm64 = Arch::from_oci("arm64").unwrap();
        assert!(amd64.runs(i386) && !i386.runs(amd64) && !amd64.runs(arm64));
        assert_eq!(arm64.name(), "aarch64");
        assert!(Arch::from_oci("sparc").is_none());
    }
}
