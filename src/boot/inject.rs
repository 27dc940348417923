//! `--inject SRC:DST`: host files and directories added to the archive.
//!
//! The spec is split at the last `:` that is followed by `/`, because DST is
//! always absolute while SRC may itself contain colons (`C:\agent`,
//! `build:1/agent`). A spec without such a colon is rejected.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{BootError, BootFile, BootFileKind};
use crate::path::rooted;

/// A parsed `--inject`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectSpec {
    pub source: PathBuf,
    /// Absolute and normalised.
    pub dest: Vec<u8>,
}

/// Splits `SRC:DST` at the last `:` followed by `/`.
pub fn parse_inject_spec(spec: &str) -> Result<InjectSpec, BootError> {
    let bad = || BootError::BadInjectSpec(spec.to_string());
    let at = spec
        .match_indices(":/")
        .last()
        .map(|(i, _)| i)
        .ok_or_else(bad)?;
    let (source, dest) = (&spec[..at], &spec[at + 1..]);
    if source.is_empty() || dest.split('/').any(|c| c == "..") || dest.contains('\0') {
        return Err(bad());
    }
    Ok(InjectSpec {
        source: PathBuf::from(source),
        dest: rooted(dest.as_bytes()),
    })
}

fn host_err(path: &Path, source: std::io::Error) -> BootError {
    BootError::Host {
        what: super::HostFile::Inject,
        path: path.to_path_buf(),
        source,
    }
}

/// What `spec` adds: a file becomes DST with mode 0755 (an injected file is
/// nearly always a program); a directory is copied with the host's modes,
/// its entries sorted by name bytes so the archive is reproducible.
pub(crate) fn collect(spec: &InjectSpec) -> Result<Vec<BootFile>, BootError> {
    // The source itself may be a symlink: inject what it points to.
    let meta = fs::metadata(&spec.source).map_err(|e| host_err(&spec.source, e))?;
    let mut out = Vec::new();
    if meta.is_dir() {
        if spec.dest != b"/" {
            out.push(BootFile {
                path: spec.dest.clone(),
                kind: BootFileKind::Dir {
                    mode: meta.permissions().mode() & 0o7777,
                },
            });
        }
        walk(&spec.source, &spec.dest, &mut out)?;
    } else if meta.is_file() {
        if spec.dest == b"/" {
            return Err(BootError::BadInjectSpec(format!(
                "{}:/",
                spec.source.display()
            )));
        }
        out.push(BootFile {
            path: spec.dest.clone(),
            kind: BootFileKind::HostFile {
                path: spec.source.clone(),
                mode: 0o755,
                size: meta.len(),
            },
        });
    } else {
        return Err(BootError::UnsupportedFileType(spec.source.clone()));
    }
    Ok(out)
}

fn walk(dir: &Path, dest: &[u8], out: &mut Vec<BootFile>) -> Result<(), BootError> {
    let mut entries = fs::read_dir(dir)
        .map_err(|e| host_err(dir, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| host_err(dir, e))?;
    entries.sort_by(|a, b| a.file_name().as_bytes().cmp(b.file_name().as_bytes()));
    for entry in entries {
        let host = entry.path();
        let mut path = dest.to_vec();
        if !path.ends_with(b"/") {
            path.push(b'/');
        }
        path.extend_from_slice(entry.file_name().as_bytes());
        let meta = fs::symlink_metadata(&host).map_err(|e| host_err(&host, e))?;
        let mode = meta.permissions().mode() & 0o7777;
        let kind = if meta.is_dir() {
            BootFileKind::Dir { mode }
        } else if meta.is_file() {
            BootFileKind::HostFile {
                path: host.clone(),
                mode,
                size: meta.len(),
            }
        } else if meta.file_type().is_symlink() {
            let target = fs::read_link(&host).map_err(|e| host_err(&host, e))?;
            BootFileKind::Symlink {
                target: target.as_os_str().as_bytes().to_vec(),
            }
        } else {
            return Err(BootError::UnsupportedFileType(host));
        };
        let is_dir = matches!(kind, BootFileKind::Dir { .. });
        out.push(BootFile {
            path: path.clone(),
            kind,
        });
        if is_dir {
            walk(&host, &path, out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::inject;
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn splits_at_the_last_colon_before_a_slash() {
        let p = parse_inject_spec("./agent:/usr/bin/agent").unwrap();
        assert_eq!(
            (p.source, p.dest),
            (PathBuf::from("./agent"), b"/usr/bin/agent".to_vec())
        );
        let p = parse_inject_spec("C:\\tools\\agent:/agent").unwrap();
        assert_eq!(p.source, PathBuf::from("C:\\tools\\agent"));
        let p = parse_inject_spec("build:1/x:/opt//x/").unwrap();
        assert_eq!(
            (p.source, p.dest),
            (PathBuf::from("build:1/x"), b"/opt/x".to_vec())
        );
        // The last ":/" wins: a DST cannot contain ":/" (a SRC can).
        let p = parse_inject_spec("a:/b:/c").unwrap();
        assert_eq!((p.source, p.dest), (PathBuf::from("a:/b"), b"/c".to_vec()));
        for bad in ["agent", "agent:usr/bin", ":/x", "a:/x/../y", ""] {
            let err = parse_inject_spec(bad).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("invalid inject spec {bad:?}: expected SRC:DST with an absolute DST")
            );
        }
    }

    #[test]
    fn a_file_becomes_an_executable() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("agent");
        fs::write(&src, "#!/bin/sh\necho hi\n").unwrap();
        fs::set_permissions(&src, fs::Permissions::from_mode(0o600)).unwrap();
        let got = inject(&format!("{}:/usr/bin/agent", src.display())).unwrap();
        assert_eq!(
            got,
            vec![BootFile {
                path: b"/usr/bin/agent".to_vec(),
                kind: BootFileKind::HostFile {
                    path: src,
                    mode: 0o755,
                    size: 18
                }
            }]
        );
    }

    #[test]
    fn a_directory_is_copied_in_name_order_with_modes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        fs::create_dir_all(root.join("b/inner")).unwrap();
        fs::write(root.join("b/inner/f"), "f").unwrap();
        fs::write(root.join("a-file"), "a").unwrap();
        fs::write(root.join("Z"), "z").unwrap();
        symlink("../a-file", root.join("b/link")).unwrap();
        fs::set_permissions(root.join("a-file"), fs::Permissions::from_mode(0o640)).unwrap();
        fs::set_permissions(root.join("b"), fs::Permissions::from_mode(0o750)).unwrap();
        let got = inject(&format!("{}:/opt/t", root.display())).unwrap();
        let summary: Vec<(String, u32)> = got
            .iter()
            .map(|f| (String::from_utf8_lossy(&f.path).into_owned(), f.mode()))
            .collect();
        let want = [
            ("/opt/t", 0o755),
            ("/opt/t/Z", 0o644),
            ("/opt/t/a-file", 0o640),
            ("/opt/t/b", 0o750),
            ("/opt/t/b/inner", 0o755),
            ("/opt/t/b/inner/f", 0o644),
            ("/opt/t/b/link", 0o777),
        ];
        let want: Vec<(String, u32)> = want.iter().map(|(p, m)| (p.to_string(), *m)).collect();
        // Modes under a umask other than 022 differ; compare those we set.
        assert_eq!(
            summary.iter().map(|s| &s.0).collect::<Vec<_>>(),
            want.iter().map(|s| &s.0).collect::<Vec<_>>()
        );
        for ((p, m), (_, w)) in summary.iter().zip(&want) {
            if p.ends_with("a-file") || p.ends_with("/b") || p.ends_with("link") {
                assert_eq!(m, w, "{p}");
            }
        }
        assert_eq!(
            got[6].kind,
            BootFileKind::Symlink {
                target: b"../a-file".to_vec()
            }
        );
    }

    #[test]
    fn a_missing_source_is_named() {
        let err = inject("/no/such/agent:/usr/bin/agent").unwrap_err();
        assert_eq!(
            err.to_string(),
            "inject source /no/such/agent: No such file or directory (os error 2)"
        );
    }
}
