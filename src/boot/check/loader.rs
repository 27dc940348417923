//! Where the dynamic loader looks for a `DT_NEEDED` library, as glibc's
//! `ld.so` (elf/dl-load.c `_dl_map_object`) and musl's (ldso/dynlink.c
//! `load_library`) do it.
//!
//! glibc, for a library needed by object L: the `DT_RPATH` of L, of the
//! object that loaded L and so on up to the executable (only when L has no
//! `DT_RUNPATH`; an object's RPATH is ignored when it has a RUNPATH), then
//! `LD_LIBRARY_PATH`, then L's `DT_RUNPATH`, then ld.so.cache (modelled by
//! the directories of /etc/ld.so.conf and its includes), then the default
//! directories unless L is `DF_1_NODEFLIB`. musl: `LD_LIBRARY_PATH`, the
//! RUNPATH (else RPATH) of L and of the objects that loaded it, then the
//! lines of /etc/ld-musl-ARCH.path, else /lib:/usr/local/lib:/usr/lib.
//! `$ORIGIN` is the directory of the object; `$LIB` and `$PLATFORM` are
//! tried with each value they can take.

use super::elf::Arch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Libc {
    Glibc,
    Musl,
}

impl Libc {
    /// Which loader a `PT_INTERP` path names.
    pub fn of_interpreter(path: &[u8]) -> Libc {
        let base = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
        if base.starts_with(b"ld-musl-") {
            Libc::Musl
        } else {
            Libc::Glibc
        }
    }
}

/// glibc's trusted directories as Debian, Fedora and Alpine-with-glibc lay
/// them out: multiarch first, then lib64 for 64-bit, then plain lib.
pub fn glibc_default_dirs(arch: &Arch) -> Vec<Vec<u8>> {
    let mut dirs = Vec::new();
    for t in arch.triplets {
        dirs.push(format!("/lib/{t}").into_bytes());
        dirs.push(format!("/usr/lib/{t}").into_bytes());
    }
    if arch.class64 {
        dirs.push(b"/lib64".to_vec());
        dirs.push(b"/usr/lib64".to_vec());
    } else {
        dirs.push(b"/lib32".to_vec());
        dirs.push(b"/usr/lib32".to_vec());
    }
    dirs.push(b"/lib".to_vec());
    dirs.push(b"/usr/lib".to_vec());
    dirs
}

pub const MUSL_DEFAULT_PATH: &[u8] = b"/lib:/usr/local/lib:/usr/lib";

/// Names musl's loader answers itself: it is libc, libm, libpthread...
pub fn musl_builtin(name: &[u8]) -> bool {
    const RESERVED: [&[u8]; 7] = [b"c", b"pthread", b"rt", b"m", b"dl", b"util", b"xnet"];
    let Some(rest) = name.strip_prefix(b"lib") else {
        return false;
    };
    let Some(dot) = rest.windows(3).position(|w| w == b".so") else {
        return false;
    };
    let after = &rest[dot + 3..];
    (after.is_empty() || after.starts_with(b".")) && RESERVED.contains(&&rest[..dot])
}

/// Splits a colon-separated search path; empty entries are dropped.
pub fn split_path(list: &[u8]) -> Vec<Vec<u8>> {
    list.split(|&b| b == b':' || b == b'\n')
        .map(|d| d.trim_ascii())
        .filter(|d| !d.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// Expands `$ORIGIN`, `$LIB` and `$PLATFORM` (also in `${...}` form) in
/// one RPATH/RUNPATH entry; one result per possible value.
pub fn expand(entry: &[u8], origin: &[u8], arch: &Arch) -> Vec<Vec<u8>> {
    let mut lib: Vec<String> = arch.triplets.iter().map(|t| format!("lib/{t}")).collect();
    lib.push(if arch.class64 { "lib64" } else { "lib32" }.into());
    lib.push("lib".into());
    let platform = [arch.name().replace('-', "_")];
    let mut out = vec![Vec::new()];
    let mut i = 0;
    while i < entry.len() {
        if entry[i] == b'$' {
            let rest = &entry[i + 1..];
            let (name, len) = if let Some(inner) = rest.strip_prefix(b"{") {
                match inner.iter().position(|&b| b == b'}') {
                    Some(n) => (&inner[..n], n + 2),
                    None => (&rest[..0], 0),
                }
            } else {
                let n = rest
                    .iter()
                    .position(|b| !b.is_ascii_alphanumeric() && *b != b'_')
                    .unwrap_or(rest.len());
                (&rest[..n], n)
            };
            let values: Option<Vec<Vec<u8>>> = match name {
                b"ORIGIN" => Some(vec![origin.to_vec()]),
                b"LIB" => Some(lib.iter().map(|s| s.clone().into_bytes()).collect()),
                b"PLATFORM" => Some(platform.iter().map(|s| s.clone().into_bytes()).collect()),
                _ => None,
            };
            if let Some(values) = values {
                out = out
                    .iter()
                    .flat_map(|prefix| values.iter().map(move |v| [prefix.as_slice(), v].concat()))
                    .collect();
                i += 1 + len;
                continue;
            }
        }
        for o in &mut out {
            o.push(entry[i]);
        }
        i += 1;
    }
    out
}

/// The directories of an ld.so.conf text: one a line (or separated by
/// blanks, commas or colons, as ldconfig accepts), `#` comments, and
/// `include PATTERN...` lines returned separately for the caller to glob.
pub fn parse_ld_so_conf(text: &[u8]) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let mut dirs = Vec::new();
    let mut includes = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        let line = match line.iter().position(|&b| b == b'#') {
            Some(n) => &line[..n],
            None => line,
        };
        let words: Vec<&[u8]> = line
            .split(|b| b.is_ascii_whitespace() || *b == b',' || *b == b':')
            .filter(|w| !w.is_empty())
            .collect();
        match words.first() {
            Some(&b"include") => includes.extend(words[1..].iter().map(|w| w.to_vec())),
            Some(&b"hwcap") | None => {}
            Some(_) => dirs.extend(
                words
                    .iter()
                    .filter(|w| w.starts_with(b"/"))
                    .map(|w| w.to_vec()),
            ),
        }
    }
    (dirs, includes)
}

/// Shell-style match of one name against a pattern with `*`, `?` and
/// `[...]`, as glob(3) does for an ld.so.conf include.
pub fn name_matches(pattern: &[u8], name: &[u8]) -> bool {
    if name.starts_with(b".") && !pattern.starts_with(b".") {
        return false;
    }
    fn go(p: &[u8], n: &[u8]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some(b'*') => (0..=n.len()).any(|i| go(&p[1..], &n[i..])),
            Some(b'?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some(b'[') => {
                let Some(close) = p.iter().skip(2).position(|&b| b == b']') else {
                    return n.first() == Some(&b'[') && go(&p[1..], &n[1..]);
                };
                let class = &p[1..close + 2];
                let (negate, class) = match class.first() {
                    Some(b'!') | Some(b'^') => (true, &class[1..]),
                    _ => (false, class),
                };
                let Some(&c) = n.first() else { return false };
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == b'-' {
                        hit |= class[i] <= c && c <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == c;
                        i += 1;
                    }
                }
                hit != negate && go(&p[close + 3..], &n[1..])
            }
            Some(&c) => n.first() == Some(&c) && go(&p[1..], &n[1..]),
        }
    }
    go(pattern, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[Vec<u8>]) -> Vec<String> {
        v.iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    #[test]
    fn origin_lib_and_platform() {
        let amd64 = Arch::from_oci("amd64").unwrap();
        assert_eq!(
            s(&expand(b"$ORIGIN/../lib", b"/opt/app/bin", amd64)),
            ["/opt/app/bin/../lib"]
        );
        assert_eq!(s(&expand(b"${ORIGIN}:x", b"/a", amd64)), ["/a:x"]);
        assert_eq!(
            s(&expand(b"/usr/$LIB/p", b"/", amd64)),
            ["/usr/lib/x86_64-linux-gnu/p", "/usr/lib64/p", "/usr/lib/p"]
        );
        assert_eq!(s(&expand(b"/x/$PLATFORM", b"/", amd64)), ["/x/x86_64"]);
        assert_eq!(s(&expand(b"/x/$OTHER", b"/", amd64)), ["/x/$OTHER"]);
    }

    #[test]
    fn ld_so_conf() {
        let (dirs, inc) = parse_ld_so_conf(
            b"# comment\ninclude /etc/ld.so.conf.d/*.conf\n/usr/local/lib # local\n\nhwcap 0 x\n/opt/a:/opt/b\n",
        );
        assert_eq!(s(&dirs), ["/usr/local/lib", "/opt/a", "/opt/b"]);
        assert_eq!(s(&inc), ["/etc/ld.so.conf.d/*.conf"]);
    }

    #[test]
    fn globs() {
        assert!(name_matches(b"*.conf", b"x86_64-linux-gnu.conf"));
        assert!(!name_matches(b"*.conf", b".hidden.conf"));
        assert!(!name_matches(b"*.conf", b"a.conf.bak"));
        assert!(name_matches(b"lib[0-9]?.conf", b"lib1x.conf"));
        assert!(!name_matches(b"lib[!0-9]*", b"lib1"));
    }

    #[test]
    fn musl_answers_for_libc() {
        assert!(musl_builtin(b"libc.so"));
        assert!(musl_builtin(b"libpthread.so.0"));
        assert!(!musl_builtin(b"libcrypto.so.3"));
        assert!(!musl_builtin(b"libc.musl-x86_64.so.1"));
        assert_eq!(
            Libc::of_interpreter(b"/lib/ld-musl-x86_64.so.1"),
            Libc::Musl
        );
        assert_eq!(
            Libc::of_interpreter(b"/lib64/ld-linux-x86-64.so.2"),
            Libc::Glibc
        );
    }
}
