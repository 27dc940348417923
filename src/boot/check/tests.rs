//! The check over in-memory trees holding real host programs and libraries.

use super::*;
use crate::boot::testing::MapImage;

impl TreeView for MapImage {
    fn children(&self, dir: &[u8]) -> Vec<Vec<u8>> {
        let prefix = if dir == b"/" {
            b"/".to_vec()
        } else {
            [dir, b"/"].concat()
        };
        self.entries
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix[..]))
            .filter(|rest| !rest.is_empty() && !rest.contains(&b'/'))
            .map(<[u8]>::to_vec)
            .collect()
    }
}

/// Runs the check to its end, reading requests from the map as the
/// builder reads them from layers: streamed in chunks through a Capture.
fn run(img: &MapImage, subject: Subject<'_>) -> Result<Report, String> {
    let arch = Arch::from_oci("amd64");
    let mut contents = Contents::default();
    for _ in 0..16 {
        match check(subject, arch, img, &contents).map_err(|e| e.to_string())? {
            Outcome::Done(r) => return Ok(r),
            Outcome::Need(reqs) => {
                for r in reqs {
                    let body = img.contents.get(&r.path).cloned().unwrap_or_default();
                    let mut c = r.capture(body.len() as u64);
                    for piece in body.chunks(8192) {
                        if !c.wants_more() {
                            break;
                        }
                        c.feed(piece);
                    }
                    contents.add(r.path.clone(), c.finish());
                }
            }
        }
    }
    panic!("the check did not finish in 16 rounds");
}

/// Copies a host path into the image as the host has it: symlinks on the
/// way (usrmerge's /lib -> usr/lib) and at the end are copied and followed.
fn mirror(img: &mut MapImage, path: &str) {
    use std::path::{Component, Path, PathBuf};
    let mut at = PathBuf::from("/");
    let comps: Vec<_> = Path::new(path).components().collect();
    for (i, c) in comps.iter().enumerate() {
        let Component::Normal(name) = c else { continue };
        at.push(name);
        let key = at.to_str().unwrap().to_string();
        let meta = std::fs::symlink_metadata(&at).unwrap_or_else(|e| panic!("{key}: {e}"));
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&at).unwrap();
            img.link(&key, target.to_str().unwrap());
            let resolved = at.parent().unwrap().join(&target);
            let rest: PathBuf = comps[i + 1..].iter().collect();
            return mirror(img, resolved.join(rest).to_str().unwrap());
        } else if meta.is_dir() {
            img.dir(&key);
        } else {
            let bytes = std::fs::read(&at).unwrap();
            img.entries.insert(
                key.clone().into_bytes(),
                Entry::root(
                    Kind::File {
                        size: bytes.len() as u64,
                    },
                    0o755,
                ),
            );
            img.contents.insert(key.into_bytes(), bytes);
        }
    }
}

/// The host's /bin/ls with its loader and libraries, found with ldd.
fn debian_ls() -> MapImage {
    let mut img = MapImage::new();
    mirror(&mut img, "/bin/ls");
    let out = std::process::Command::new("ldd")
        .arg("/bin/ls")
        .output()
        .unwrap();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(p) = line.split_whitespace().find(|w| w.starts_with('/')) {
            mirror(&mut img, p);
        }
    }
    img
}

fn cmd(argv: &[&str]) -> RunConfig {
    RunConfig {
        cmd: Some(argv.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    }
}

#[test]
fn dynamic_program_with_its_libraries_passes() {
    let img = debian_ls();
    let cfg = cmd(&["ls", "-l"]);
    let r = run(&img, Subject::Command(&cfg)).unwrap();
    assert_eq!(r.program, "/usr/bin/ls");
    assert_eq!(r.kind, "dynamic");
    assert!(
        r.libraries.iter().any(|l| l.ends_with("/libc.so.6")),
        "{r:?}"
    );
    assert!(
        r.line().starts_with("/usr/bin/ls: dynamic x86-64 ELF, "),
        "{}",
        r.line()
    );
}

#[test]
fn missing_library_names_it_and_the_directories() {
    let mut img = debian_ls();
    img.entries.retain(|k, _| !k.ends_with(b"/libc.so.6"));
    let cfg = cmd(&["/bin/ls"]);
    let err = run(&img, Subject::Command(&cfg)).unwrap_err();
    assert!(
        err.contains(
            "needs libc.so.6, which is in none of /lib/x86_64-linux-gnu, /usr/lib/x86_64-linux-gnu"
        ),
        "{err}"
    );
}

#[test]
fn missing_loader() {
    let mut img = debian_ls();
    img.entries.retain(|k, v| {
        !(k.ends_with(b"/ld-linux-x86-64.so.2") && matches!(v.kind, Kind::File { .. }))
    });
    let err = run(&img, Subject::Command(&cmd(&["ls"]))).unwrap_err();
    assert!(
        err.starts_with("/usr/bin/ls: its ELF interpreter (dynamic loader) /lib64/ld-linux-x86-64.so.2 (resolved to /usr/lib/"),
        "{err}"
    );
    assert!(err.contains(") does not exist in the image"), "{err}");
}

#[test]
fn ld_so_conf_directories_are_searched() {
    let mut img = debian_ls();
    // Move libselinux to a directory only ld.so.conf names.
    let (from, _) = img
        .entries
        .iter()
        .find(|(k, _)| k.ends_with(b"/libselinux.so.1"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    let bytes = img.contents.remove(&from).unwrap();
    let entry = img.entries.remove(&from).unwrap();
    img.dir("/opt").dir("/opt/sel");
    img.entries
        .insert(b"/opt/sel/libselinux.so.1".to_vec(), entry);
    img.contents
        .insert(b"/opt/sel/libselinux.so.1".to_vec(), bytes);
    let err = run(&img, Subject::Command(&cmd(&["ls"]))).unwrap_err();
    assert!(err.contains("needs libselinux.so.1"), "{err}");
    img.dir("/etc").dir("/etc/ld.so.conf.d");
    img.file(
        "/etc/ld.so.conf",
        0o644,
        "include /etc/ld.so.conf.d/*.conf\n",
    );
    img.file("/etc/ld.so.conf.d/sel.conf", 0o644, "# selinux\n/opt/sel\n");
    let r = run(&img, Subject::Command(&cmd(&["ls"]))).unwrap();
    assert!(
        r.libraries
            .contains(&"/opt/sel/libselinux.so.1".to_string()),
        "{r:?}"
    );
}

#[test]
fn program_lookup() {
    let mut img = debian_ls();
    img.file("/usr/bin/data", 0o644, "x");
    let err = run(&img, Subject::Command(&cmd(&["nope"]))).unwrap_err();
    assert!(err.starts_with("the program nope is not in the image's PATH (looked in /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)"), "{err}");
    let err = run(&img, Subject::Command(&cmd(&["/usr/bin/data"]))).unwrap_err();
    assert!(
        err.contains("/usr/bin/data is not executable (mode 0644)"),
        "{err}"
    );
    // Relative paths start at WorkingDir.
    let cfg = RunConfig {
        working_dir: Some("/usr".into()),
        ..cmd(&["bin/ls"])
    };
    assert_eq!(
        run(&img, Subject::Command(&cfg)).unwrap().program,
        "/usr/bin/ls"
    );
    // The image's PATH replaces the default.
    let cfg = RunConfig {
        env: Some(vec!["PATH=/opt".into()]),
        ..cmd(&["ls"])
    };
    let err = run(&img, Subject::Command(&cfg)).unwrap_err();
    assert!(err.contains("(looked in /opt)"), "{err}");
}

#[test]
fn scripts_and_their_interpreters() {
    let mut img = debian_ls();
    img.file("/usr/bin/app", 0o755, "#!/bin/sh -e\necho\n");
    let err = run(&img, Subject::Command(&cmd(&["app"]))).unwrap_err();
    assert!(
        err.contains("/usr/bin/app: its #! interpreter /bin/sh (resolved to /usr/bin/sh) does not exist in the image"),
        "{err}"
    );
    img.link("/usr/bin/sh", "ls");
    let r = run(&img, Subject::Command(&cmd(&["app"]))).unwrap();
    assert_eq!(r.interpreters, ["/usr/bin/ls"]);
    // env looks its argument up in PATH.
    img.file("/usr/bin/py", 0o755, "#!/usr/bin/env python3\n");
    img.link("/usr/bin/env", "ls");
    let err = run(&img, Subject::Command(&cmd(&["py"]))).unwrap_err();
    assert!(
        err.contains("`#!/usr/bin/env python3`: python3 is not in the image's PATH"),
        "{err}"
    );
    img.file("/usr/bin/text", 0o755, "plain text\n");
    let err = run(&img, Subject::Command(&cmd(&["text"]))).unwrap_err();
    assert!(
        err.contains("neither an ELF executable nor a #! script"),
        "{err}"
    );
}

#[test]
fn users() {
    let img = {
        let mut i = debian_ls();
        i.dir("/etc").file(
            "/etc/passwd",
            0o644,
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n",
        );
        i
    };
    for (user, ok) in [
        ("app", true),
        ("1234", true),
        ("1000:50", true),
        ("nobody", false),
        ("app:staff", false),
    ] {
        let cfg = RunConfig {
            user: Some(user.into()),
            ..cmd(&["ls"])
        };
        assert_eq!(run(&img, Subject::Command(&cfg)).is_ok(), ok, "{user}");
    }
}

#[test]
fn init_itself_and_foreign_machines() {
    let mut img = MapImage::new();
    let arm = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\xb7\0".to_vec();
    let mut arm = arm;
    arm.resize(64, 0);
    img.entries.insert(
        b"/init".to_vec(),
        Entry::root(
            Kind::File {
                size: arm.len() as u64,
            },
            0o755,
        ),
    );
    img.contents.insert(b"/init".to_vec(), arm);
    let err = run(&img, Subject::Init).unwrap_err();
    assert!(
        err.starts_with("/init is an ELF for aarch64 (64-bit, little-endian), but the image's platform is amd64 (x86-64)"),
        "{err}"
    );
}
