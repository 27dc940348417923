//! What a person or a script sees: -q, the summary line and --json,
//! --list, --exclude, mtimes, completions, the man page, --version, and
//! progress bars only on a terminal.

use crate::common;

use std::collections::BTreeMap;
use std::fs;
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use common::fixtures::{self, handwritten, Image};
use common::newc::{self, Entry};
use common::{decompress, tool, tool_ok, BIN};

fn busybox() -> &'static Image {
    &fixtures::busybox().image
}

/// The digest index.json gives the image's tag.
fn manifest_digest(img: &Image) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(img.layout.join("index.json")).unwrap()).unwrap();
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == img.tag.as_str())
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().filter(|l| !l.trim().is_empty()).collect()
}

#[test]
fn quiet_prints_nothing_but_the_archive() {
    let img = busybox();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("q.cpio.gz");
    let (stdout, stderr) = tool_ok([&img.oci_ref(), "-q", "-o", out.to_str().unwrap()]);
    assert!(stdout.is_empty() && stderr.is_empty(), "-q -o: {stderr:?}");
    assert!(!fs::read(&out).unwrap().is_empty());
    let (stdout, stderr) = tool_ok([&img.oci_ref(), "-q"]);
    assert!(stderr.is_empty(), "-q on stdout: {stderr:?}");
    newc::parse_ok(&stdout);
    // Without -q the same run says what it did.
    let (_, stderr) = tool_ok([&img.oci_ref(), "-o", out.to_str().unwrap()]);
    assert_eq!(lines(&stderr).len(), 1, "{stderr:?}");
}

#[test]
fn summary_line_names_the_image_and_the_output() {
    let img = busybox();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("s.cpio.zst");
    let (_, stderr) = tool_ok([&img.oci_ref(), "-o", out.to_str().unwrap()]);
    let data = fs::read(&out).unwrap();
    let raw = decompress("zstd", &data);
    let entries = newc::parse_ok(&raw).len();
    let line = lines(&stderr)[0];
    for want in [
        manifest_digest(img),
        "linux/amd64".to_string(),
        format!("{entries} entries"),
        format!("output sha256:{}", sha256_hex(&data)),
        "zstd".to_string(),
    ] {
        assert!(line.contains(&want), "summary lacks {want:?}: {line}");
    }
    assert!(line.ends_with(" s"), "no elapsed time: {line}");
}

#[test]
fn json_summary_matches_the_output_file() {
    let img = busybox();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("j.cpio.gz");
    let (stdout, stderr) = tool_ok([&img.oci_ref(), "--json", "-o", out.to_str().unwrap()]);
    assert!(stderr.is_empty(), "--json -o: stderr {stderr:?}");
    let json: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    let data = fs::read(&out).unwrap();
    let raw = decompress("gzip", &data);
    assert_eq!(json["sha256"], sha256_hex(&data));
    assert_eq!(json["compressed_bytes"], data.len() as u64);
    assert_eq!(json["uncompressed_bytes"], raw.len() as u64);
    assert_eq!(json["entries"], newc::parse_ok(&raw).len() as u64);
    assert_eq!(json["image_digest"], manifest_digest(img));
    assert_eq!(json["platform"], "linux/amd64");
    assert_eq!(json["compression"], "gzip");
    assert_eq!(json["output"], out.to_str().unwrap());
    assert!(json["elapsed_seconds"].as_f64().unwrap() >= 0.0);

    // With the archive on stdout, the JSON goes to stderr.
    let (archive, stderr) = tool_ok([&img.oci_ref(), "--json"]);
    let json: serde_json::Value = serde_json::from_str(stderr.trim()).unwrap();
    assert_eq!(json["sha256"], sha256_hex(&archive));
    assert_eq!(json["compression"], "none");
    assert!(json["output"].is_null());
}

/// `ls -l` style mode string, computed independently of the tool.
fn mode_string(mode: u32) -> String {
    let t = match mode & newc::S_IFMT {
        newc::S_IFDIR => 'd',
        newc::S_IFLNK => 'l',
        newc::S_IFCHR => 'c',
        newc::S_IFBLK => 'b',
        newc::S_IFIFO => 'p',
        _ => '-',
    };
    let mut s = t.to_string();
    let rwx = ['r', 'w', 'x'];
    for i in 0..9 {
        let bit = 1 << (8 - i);
        s.push(if mode & bit != 0 { rwx[i % 3] } else { '-' });
    }
    let mut b: Vec<char> = s.chars().collect();
    for (special, at, c) in [(0o4000, 3, 's'), (0o2000, 6, 's'), (0o1000, 9, 't')] {
        if mode & special != 0 {
            b[at] = if b[at] == 'x' {
                c
            } else {
                c.to_ascii_uppercase()
            };
        }
    }
    b.into_iter().collect()
}

/// path -> (mode string, uid/gid, size, target) from an archive; a
/// hardlink group's size is its data's.
fn archive_listing(entries: &[Entry]) -> BTreeMap<String, (String, String, u64, Option<String>)> {
    let mut sizes: BTreeMap<u32, u64> = BTreeMap::new();
    for e in entries.iter().filter(|e| e.is_reg()) {
        let s = sizes.entry(e.ino).or_default();
        *s = (*s).max(e.data.len() as u64);
    }
    entries
        .iter()
        .map(|e| {
            let is_link = e.file_type() == newc::S_IFLNK;
            let size = if e.is_reg() {
                sizes[&e.ino]
            } else if is_link {
                e.data.len() as u64
            } else {
                0
            };
            let target = is_link.then(|| newc::show(&e.data));
            (
                listed_path(&e.name),
                (
                    mode_string(e.mode),
                    format!("{}/{}", e.uid, e.gid),
                    size,
                    target,
                ),
            )
        })
        .collect()
}

/// An archive name as `--list` shows it: rooted; `.`, the root's own
/// entry, as `/`.
fn listed_path(name: &[u8]) -> String {
    match name {
        b"." => "/".to_string(),
        _ => format!("/{}", newc::show(name)),
    }
}

/// The same from `--list` text lines (names without spaces).
fn list_listing(text: &str) -> BTreeMap<String, (String, String, u64, Option<String>)> {
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').filter(|s| !s.is_empty()).collect();
            let target = (f.len() == 8 && f[6] == "->").then(|| f[7].to_string());
            assert!(f.len() == 6 || target.is_some(), "odd --list line {l:?}");
            let size = f[2].parse().unwrap_or(0);
            (
                f[5].to_string(),
                (f[0].to_string(), f[1].to_string(), size, target),
            )
        })
        .collect()
}

#[test]
fn list_matches_the_archive() {
    for (img, extra) in [
        (busybox().clone(), vec![]),
        (busybox().clone(), vec!["--no-init"]),
        (handwritten("hardlinks"), vec!["--no-init"]),
    ] {
        let mut args = vec![img.oci_ref()];
        args.extend(extra.iter().map(|s| s.to_string()));
        let archive = tool_ok(&args).0;
        let entries = newc::parse_ok(&archive);
        args.push("--list".into());
        let (listed, stderr) = tool_ok(&args);
        assert!(stderr.is_empty(), "--list wrote to stderr: {stderr}");
        let listed = String::from_utf8(listed).unwrap();
        assert_eq!(listed.lines().count(), entries.len(), "{extra:?}");
        let want = archive_listing(&entries);
        let got = list_listing(&listed);
        assert_eq!(got, want, "{} {extra:?}", img.oci_ref());

        // JSON lines: the same paths, and the archive's mtimes.
        args.push("--json".into());
        let json = String::from_utf8(tool_ok(&args).0).unwrap();
        let mtimes: BTreeMap<String, u64> = entries
            .iter()
            .map(|e| (listed_path(&e.name), u64::from(e.mtime)))
            .collect();
        let mut n = 0;
        for line in json.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let path = v["path"].as_str().unwrap();
            assert_eq!(v["mtime"].as_u64(), mtimes.get(path).copied(), "{path}");
            assert_eq!(v["mode_string"].as_str(), Some(want[path].0.as_str()));
            n += 1;
        }
        assert_eq!(n, entries.len());
    }
}

#[test]
fn list_escapes_names_that_are_not_utf8() {
    let img = handwritten("nonutf8");
    let (text, _) = tool_ok([&img.oci_ref(), "--no-init", "--list"]);
    let text = String::from_utf8(text).expect("--list output is UTF-8");
    assert!(text.contains(" /caf\\xe9/men\\xfc\n"), "{text}");
    assert!(text.contains(" /\\xff\\xfe\n"), "{text}");
    assert!(text.contains("/new\\nline\n"), "{text}");
    assert!(text.contains("/lnk\\x80 -> caf\\xe9/men\\xfc\n"), "{text}");
    assert_eq!(
        text.lines().count(),
        newc::parse_ok(&common::convert(&img.oci_ref())).len()
    );

    let (json, _) = tool_ok([&img.oci_ref(), "--no-init", "--list", "--json"]);
    let objects: Vec<serde_json::Value> = String::from_utf8(json)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ff = objects
        .iter()
        .find(|o| o["path_hex"] == hex::encode(b"/\xff\xfe"))
        .expect("the exact bytes of /\\xff\\xfe");
    assert_eq!(ff["path"], "/\\xff\\xfe");
    let nl = objects.iter().find(|o| o["path"] == "/new\nline").unwrap();
    assert!(nl.get("path_hex").is_none());
}

fn names(archive: &[u8]) -> Vec<String> {
    newc::parse_ok(archive)
        .iter()
        .map(|e| newc::show(&e.name))
        .collect()
}

#[test]
fn exclude_drops_the_subtree() {
    let img = busybox();
    let all = names(&tool_ok([&img.oci_ref()]).0);
    assert!(all.iter().any(|n| n.starts_with("usr/sbin/")));
    assert!(all.iter().any(|n| n.starts_with("sbin/")));
    let (archive, _) = tool_ok([
        &img.oci_ref(),
        "--exclude",
        "/usr/sbin",
        "--exclude",
        "/sbin/**",
        "--exclude",
        "motd",
    ]);
    // parse_ok also checks the kernel's unpack rules.
    let kept = names(&archive);
    assert!(!kept
        .iter()
        .any(|n| n == "usr/sbin" || n.starts_with("usr/sbin/")));
    assert!(
        kept.iter().any(|n| n == "sbin"),
        "sbin/** keeps the directory"
    );
    assert!(!kept.iter().any(|n| n.starts_with("sbin/")));
    assert!(!kept.iter().any(|n| n == "etc/motd"));
    assert!(kept.iter().any(|n| n.starts_with("usr/bin/")));
    assert!(kept.iter().any(|n| n == "etc/hostname"));
    // The generated /init and boot essentials are not subject to excludes.
    assert!(kept.iter().any(|n| n == "init"));
    assert!(kept.iter().any(|n| n == "dev/console"));
}

#[test]
fn excluded_layers_are_not_read_again() {
    let img = busybox();
    // Layer 1 holds app/run.sh, etc/hostname and etc/motd only.
    let read = |extra: &[&str]| {
        let mut args = vec![img.oci_ref(), "--no-init".into(), "-vv".into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        let (_, stderr) = tool_ok(&args);
        stderr
            .lines()
            .filter(|l| l.contains("reading bodies"))
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
    };
    let both = read(&[]);
    assert!(both.iter().any(|l| l.contains("layer=1")), "{both:?}");
    let one = read(&["--exclude", "/app", "--exclude", "/etc/{hostname,motd}"]);
    assert!(one.iter().any(|l| l.contains("layer=0")), "{one:?}");
    assert!(!one.iter().any(|l| l.contains("layer=1")), "{one:?}");
}

#[test]
fn exclude_from_reads_patterns_from_a_file() {
    let img = busybox();
    let tmp = tempfile::tempdir().unwrap();
    let list = tmp.path().join("excludes");
    fs::write(&list, "# admin tools\n/usr/sbin\n\n/sbin/**\n").unwrap();
    let (from_file, _) = tool_ok([&img.oci_ref(), "--exclude-from", list.to_str().unwrap()]);
    let (from_args, _) = tool_ok([
        &img.oci_ref(),
        "--exclude",
        "/usr/sbin",
        "--exclude",
        "/sbin/**",
    ]);
    common::assert_bytes_eq(&from_args, &from_file, "--exclude-from vs --exclude");
    assert!(!names(&from_file).iter().any(|n| n.starts_with("usr/sbin")));

    for (args, what) in [
        (vec!["--exclude", "/a/[b"], "/a/[b"),
        (
            vec!["--exclude-from", "/nonexistent/list"],
            "/nonexistent/list",
        ),
    ] {
        let mut all = vec![img.oci_ref()];
        all.extend(args.iter().map(|s| s.to_string()));
        let out = tool(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty());
        assert_eq!(lines(&stderr).len(), 1, "{stderr}");
        assert!(stderr.contains(what), "{stderr}");
    }
}

/// One old file (mtime 500) and one new, in one layer.
fn old_and_new() -> Image {
    let dir = common::fixture_dir().join("old-and-new");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let u = fixtures::Umoci::new(&dir, "t");
    u.write("old", "old\n", 0o644);
    u.write("new", "new\n", 0o644);
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(500);
    fs::File::options()
        .write(true)
        .open(u.p("old"))
        .unwrap()
        .set_modified(at)
        .unwrap();
    u.layer();
    u.finish()
}

fn mtimes_with(img: &Image, args: &[&str], epoch: Option<&str>) -> BTreeMap<String, u32> {
    let mut cmd = Command::new(BIN);
    cmd.arg(img.oci_ref())
        .args(args)
        .arg("-q")
        .stdin(Stdio::null());
    match epoch {
        Some(e) => cmd.env("SOURCE_DATE_EPOCH", e),
        None => cmd.env_remove("SOURCE_DATE_EPOCH"),
    };
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    newc::parse_ok(&out.stdout)
        .iter()
        .map(|e| (newc::show(&e.name), e.mtime))
        .collect()
}

#[test]
fn source_date_epoch_clamps_and_mtime_fixes() {
    let img = old_and_new();
    let tmp = tempfile::tempdir().unwrap();
    let init = tmp.path().join("init");
    fs::write(&init, "#!/bin/sh\n").unwrap();
    let plain = mtimes_with(&img, &["--no-init"], None);
    assert_eq!(plain["old"], 500);
    assert!(plain["new"] > 1_000_000, "{plain:?}");
    let clamped = mtimes_with(&img, &["--no-init"], Some("1000000"));
    assert_eq!(clamped.len(), plain.len());
    for (name, &t) in &plain {
        assert_eq!(clamped[name], t.min(1_000_000), "{name}");
    }
    // Generated entries take the epoch itself; nothing is above it.
    // The image has no /bin/sh for that /init: the boot check refuses.
    let boot = mtimes_with(
        &img,
        &["--init", init.to_str().unwrap(), "--no-check"],
        Some("1000000"),
    );
    assert_eq!(boot["init"], 1_000_000);
    assert_eq!(boot["old"], 500);
    assert!(boot.values().all(|&t| t <= 1_000_000), "{boot:?}");

    // --mtime wins over SOURCE_DATE_EPOCH, for every entry.
    let fixed = mtimes_with(
        &img,
        &[
            "--init",
            init.to_str().unwrap(),
            "--mtime",
            "12345",
            "--no-check",
        ],
        Some("1000000"),
    );
    assert!(fixed.len() > plain.len());
    assert!(fixed.values().all(|&t| t == 12345), "{fixed:?}");
}

#[test]
fn output_is_the_same_at_any_jobs_with_excludes() {
    let img = busybox();
    let run = |j: &str| {
        tool_ok([
            &img.oci_ref(),
            "-c",
            "gzip",
            "-j",
            j,
            "--exclude",
            "/usr/sbin",
            "--exclude",
            "*.sh",
            // That excludes the command, /app/run.sh: the boot check refuses.
            "--no-check",
        ])
        .0
    };
    let one = run("1");
    assert!(!names(&decompress("gzip", &one))
        .iter()
        .any(|n| n.ends_with(".sh")));
    for j in ["2", "3"] {
        common::assert_bytes_eq(&one, &run(j), &format!("-j 1 vs -j {j}"));
    }
}

#[test]
fn completions_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef initramfs-stream"),
        ("fish", "complete -c initramfs-stream"),
    ] {
        let (out, _) = tool_ok(["--completions", shell]);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(marker), "{shell}: {text}");
        assert!(
            text.contains("exclude-from"),
            "{shell} lacks --exclude-from"
        );
    }
    common::require("bash");
    let (script, _) = tool_ok(["--completions", "bash"]);
    let tmp = tempfile::NamedTempFile::new().unwrap();
    fs::write(tmp.path(), script).unwrap();
    common::run(Command::new("bash").arg("-n").arg(tmp.path()));
    // An unknown shell is a usage error.
    assert_eq!(tool(["--completions", "tcsh"]).status.code(), Some(2));
}

#[test]
fn man_page_documents_the_options() {
    let (out, _) = tool_ok(["--man"]);
    let page = String::from_utf8(out).unwrap();
    assert!(
        page.starts_with(".ie") || page.contains(".TH initramfs-stream 1"),
        "{page}"
    );
    for opt in [
        "exclude",
        "exclude\\-from",
        "list",
        "json",
        "mtime",
        "quiet",
        "verbose",
        "output",
    ] {
        assert!(
            page.contains(&format!("\\-\\-{opt}")),
            "man page lacks --{opt}"
        );
    }
    assert!(page.contains("SOURCE_DATE_EPOCH"));
}

#[test]
fn version_names_the_package() {
    let (out, _) = tool_ok(["--version"]);
    let v = String::from_utf8(out).unwrap();
    assert!(
        v.starts_with(&format!("initramfs-stream {}", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
}

/// Runs `cmd` under `script`, so stdin, stdout and stderr are a terminal;
/// returns what the terminal showed.
fn on_terminal(cmd: &str) -> String {
    common::require("script");
    let out = Command::new("script")
        .args(["-qec", cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{cmd}: {shown}");
    shown
}

#[test]
fn progress_on_a_terminal_and_never_in_a_pipe() {
    let img = busybox();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("t.cpio.gz");
    let shown = on_terminal(&format!("{BIN} {} -o {}", img.oci_ref(), file.display()));
    for want in [
        "resolving",
        "layer 0",
        "headers",
        "contents",
        "writing",
        "entries",
    ] {
        assert!(shown.contains(want), "terminal lacks {want:?}: {shown}");
    }
    // stdout redirected, stderr still a terminal: bars, and a clean archive.
    let raw = tmp.path().join("t.cpio");
    let shown = on_terminal(&format!(
        "{BIN} {} -c none > {}",
        img.oci_ref(),
        raw.display()
    ));
    assert!(shown.contains("layer 0"), "{shown}");
    newc::parse_ok(&fs::read(&raw).unwrap());
    // -q on a terminal: nothing.
    let shown = on_terminal(&format!("{BIN} {} -q -o {}", img.oci_ref(), file.display()));
    assert!(shown.trim().is_empty(), "{shown:?}");

    // stderr a pipe: the summary line and nothing else.
    let (_, stderr) = tool_ok([&img.oci_ref(), "-o", file.to_str().unwrap()]);
    assert_eq!(lines(&stderr).len(), 1, "{stderr:?}");
    assert!(
        !stderr.contains("layer") && !stderr.contains('\x1b'),
        "{stderr:?}"
    );
}
