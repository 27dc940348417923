//! Differential tests: the tool's archive, read back by the test-side newc
//! reader (which enforces the kernel's rules), must describe exactly the
//! filesystem `umoci unpack` produces from the same image.

use crate::common;

use std::process::Command;

use common::fixtures::{self, Fixture};
use common::newc;
use common::tree::{assert_same, Kind, Tree};
use common::{assert_bytes_eq, convert, decompress, run, tool_ok};

/// Convert, check the rules, compare with the reference; returns the tree.
fn check(f: &Fixture) -> Tree {
    let archive = convert(&f.image.oci_ref());
    let entries = newc::parse_ok(&archive);
    let tree = Tree::from_newc(&entries);
    assert_same(&f.reference, &tree, f.name);
    tree
}

#[test]
fn busybox_matches_umoci() {
    let f = fixtures::busybox();
    let t = check(f);
    assert_eq!(t.content("etc/hostname"), b"app\n");
    assert_eq!(t.node("bin/sh").target, b"/bin/busybox");
    assert_eq!(t.node("tmp").perm, 0o1777);
}

#[test]
fn umoci_edits_match_umoci() {
    let f = fixtures::edits();
    let t = check(f);
    // The reference itself must show the edits, or the comparison proves little.
    assert_eq!(t.content("hl/link"), b"old target");
    assert_eq!(t.content("hl/target"), b"new target");
    assert_eq!(t.content("hl/survivor"), b"victim data");
    assert_eq!(t.content("hl/l2link"), b"base1");
    assert!(!t.has("hl/victim") && !t.has("hl/base1") && !t.has("old/dir"));
    assert_eq!(t.node("swap/d2f").kind, Kind::File);
    assert_eq!(t.content("swap/f2d/child"), b"now a dir");
    assert!(!t.has("swap/d2f/sub"));
    assert_eq!(t.node("dev/nvme0n1p9").rdev, (259, 65_545));
    assert_eq!(t.node("dev/bigmajor").rdev, (511, 1_048_575));
    assert_eq!(t.node("usr/bin/suid").perm, 0o4755);
    assert_eq!(t.node("srv/big-ids").uid, 1_000_000);
    assert_eq!(
        t.node("data/hello.2").links,
        vec![b"data/hello".to_vec(), b"data/hello.2".to_vec()]
    );
    assert_eq!(t.node("data/hello").perm, 0o600);
    assert_eq!(t.node("dangling").kind, Kind::File);
}

fn hw(case: &'static str) -> Tree {
    check(fixtures::handwritten_fixture(case))
}

#[test]
fn opaque_markers_before_and_after_children() {
    let t = hw("opaque");
    assert!(!t.has("a/old1") && !t.has("a/olddir/deep"));
    assert_eq!(t.content("a/new1"), b"new1");
    assert_eq!(t.content("a/olddir/fresh"), b"fresh");
    assert!(!t.has("b/old") && !t.has("b/oldlink"));
    assert_eq!(t.content("b/new"), b"new");
    assert_eq!(t.node("b").perm, 0o750);
    assert_eq!(t.node("c").kind, Kind::Dir);
    assert!(!t.has("c/gone"));
    assert!(t.0.keys().all(|k| !k.ends_with(b".wh..wh..opq")));
    assert_eq!(t.content("keep/x"), b"x");
}

#[test]
fn whiteouts_of_files_dirs_and_symlinks() {
    let t = hw("whiteouts");
    assert!(!t.has("gone/sub") && !t.has("gone/g"));
    assert_eq!(t.content("gone/new"), b"new");
    assert!(!t.has("data/rm") && !t.has("data/lnk"));
    assert_eq!(t.content("data/stay"), b"stay");
    assert_eq!(t.content("back"), b"v3");
    assert!(t
        .0
        .keys()
        .all(|k| !k.split(|&b| b == b'/').any(|c| c.starts_with(b".wh."))));
}

#[test]
fn pax_and_gnu_long_names() {
    let t = hw("longnames");
    let long_file = format!("l/{}/{}", "d".repeat(120), "f".repeat(150));
    assert_eq!(t.content(&long_file), b"pax long");
    assert_eq!(
        t.node("l/longsym").target,
        format!("/{}", "t".repeat(200)).into_bytes()
    );
    let gnu_file = format!("g/{}/{}", "e".repeat(130), "h".repeat(140));
    assert_eq!(t.content(&gnu_file), b"gnu long");
    assert_eq!(t.node("l/hl_to_long").links.len(), 2);
    assert_eq!(t.node(format!("g/{}", "k".repeat(110))).links.len(), 2);
}

#[test]
fn non_utf8_names() {
    let t = hw("nonutf8");
    assert_eq!(t.content(b"caf\xe9/men\xfc"), b"latin1");
    assert_eq!(t.content(b"\xff\xfe"), b"ff fe");
    assert_eq!(t.node(b"lnk\x80").target, b"caf\xe9/men\xfc");
    assert!(!t.has(b"del\xe9"));
    assert_eq!(t.content(b"caf\xe9/\xc3("), b"invalid utf8 seq");
    assert_eq!(t.content("new\nline"), b"newline");
    assert_eq!(t.content(" sp ace "), b"spaces");
}

#[test]
fn uncompressed_and_multi_member_gzip_layers() {
    let t = hw("compression");
    assert_eq!(t.content("raw/big").len(), 300_000);
    assert_eq!(t.content("multi/a").len(), 100_000);
    assert_eq!(t.content("raw/small"), b"s2");
}

#[test]
fn dir_file_dir_keeps_only_newest_children() {
    let t = hw("dirfiledir");
    assert_eq!(t.node("x").kind, Kind::Dir);
    assert_eq!(t.node("x").perm, 0o711);
    assert_eq!(t.content("x/new"), b"new");
    assert!(!t.has("x/a") && !t.has("x/b"));
    assert_eq!(t.content("y/inside"), b"y is a dir");
    assert!(!t.has("z/old"));
    assert_eq!(t.content("z/fresh"), b"fresh");
}

#[test]
fn hardlinks_across_layers() {
    let f = fixtures::handwritten_fixture("hardlinks");
    let archive = convert(&f.image.oci_ref());
    let entries = newc::parse_ok(&archive);
    let t = Tree::from_newc(&entries);
    assert_same(&f.reference, &t, f.name);
    assert_eq!(t.content("h/to_base"), b"one");
    assert_eq!(t.content("h/base"), b"two");
    assert_eq!(t.content("h/to_doomed"), b"doomed data");
    assert!(!t.has("h/doomed") && !t.has("h/local"));
    // A link is the same inode as its source: the source's metadata.
    assert_eq!(
        (t.node("h/to_base").perm, t.node("h/to_base").uid),
        (0o640, 7)
    );
    let g = |v: &[&str]| v.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
    assert_eq!(
        newc::link_groups(&entries),
        vec![
            g(&["h/chain0", "h/chain1", "h/chain2"]),
            g(&["h/local2", "h/local3"])
        ]
    );
}

#[test]
fn hardlinks_to_symlinks_fifos_and_devices() {
    let t = hw("oddlinks");
    for p in ["o/sl_link", "o/sl_link2"] {
        assert_eq!(
            (t.node(p).kind, t.node(p).target.as_slice()),
            (Kind::Symlink, &b"target"[..])
        );
    }
    assert_eq!(t.node("o/ff_link").kind, Kind::Fifo);
    assert_eq!(t.node("o/null_link").rdev, (1, 3));
    assert_eq!(t.node("o/plain_link").links.len(), 2);
}

#[test]
fn duplicate_entries_in_one_layer_last_wins() {
    let t = hw("duplicates");
    assert_eq!(t.content("dup/f"), b"second");
    assert_eq!(t.node("dup/f").perm, 0o600);
    assert_eq!((t.node("dup/d").perm, t.node("dup/d").uid), (0o755, 3));
    assert_eq!(t.content("dup/d/in"), b"in");
    assert_eq!(t.content("dup/old"), b"replaced twice");
    assert_eq!(t.node("dup/s").target, b"b");
}

#[test]
fn dot_slash_and_repeated_slashes_are_normalised() {
    let t = hw("paths");
    assert_eq!(t.content("etc/dot"), b"dot2");
    assert!(!t.has("usr/lib/slashes"));
    assert_eq!(t.content("bin/implicit_parent"), b"implicit");
    let bin = t.node("bin");
    assert_eq!(
        (bin.kind, bin.perm, bin.uid, bin.gid),
        (Kind::Dir, 0o755, 0, 0)
    );
    assert_eq!(t.node("dev/null").rdev, (1, 3));
    assert_eq!(t.node("dev/sda").kind, Kind::Block);
    assert_eq!(t.node("run/fifo").kind, Kind::Fifo);
}

#[test]
fn xattrs_are_dropped_with_a_warning() {
    let f = fixtures::handwritten_fixture("xattr");
    let (archive, stderr) = tool_ok([f.image.oci_ref().as_str(), "-c", "none", "--no-init"]);
    let t = Tree::from_newc(&newc::parse_ok(&archive));
    assert_same(&f.reference, &t, f.name);
    let low = stderr.to_lowercase();
    assert!(
        low.contains("xattr") || low.contains("capabilit"),
        "expected a warning about the dropped xattr on stderr, got {stderr:?}"
    );
}

/// An xattr name comes from the image: its control bytes reach the terminal
/// escaped, never as a live escape sequence.
#[test]
fn xattr_names_are_escaped_on_the_terminal() {
    let f = fixtures::handwritten_fixture("xattr_escape");
    let (_, stderr) = tool_ok([f.image.oci_ref().as_str(), "-c", "none", "--no-init"]);
    assert!(
        !stderr.contains('\u{1b}'),
        "raw escape on stderr: {stderr:?}"
    );
    assert!(
        stderr.contains("user.\\u{1b}[31m\\u{1b}[2Jred"),
        "expected the name escaped in the warning, got {stderr:?}"
    );
}

/// Archives produced for the same content must be the same bytes, whatever
/// the transport, media types or layer compression.
#[test]
fn transports_and_media_types_give_identical_archives() {
    for f in [fixtures::busybox(), fixtures::edits()] {
        let base = convert(&f.image.oci_ref());
        let v2s2 = fixtures::to_v2s2(&f.image);
        let zstd = fixtures::to_zstd(&f.image);
        let oci_archive = fixtures::to_oci_archive(&f.image);
        let docker_archive = fixtures::to_docker_archive(&f.image, "localhost/fixture:v1");
        let variants = [
            ("v2s2", v2s2.oci_ref()),
            ("zstd layers", zstd.oci_ref()),
            (
                "oci-archive",
                format!("oci-archive:{}:{}", oci_archive.display(), f.image.tag),
            ),
            (
                "docker-archive",
                format!(
                    "docker-archive:{}:localhost/fixture:v1",
                    docker_archive.display()
                ),
            ),
        ];
        for (what, r) in variants {
            let got = convert(&r);
            if got != base {
                let t = Tree::from_newc(&newc::parse_ok(&got));
                assert_same(&f.reference, &t, &format!("{} as {what}", f.name));
                panic!(
                    "{} as {what}: same tree but different bytes than oci:",
                    f.name
                );
            }
        }
    }
}

#[test]
fn compressed_outputs_decompress_to_the_plain_archive() {
    let f = fixtures::edits();
    let plain = convert(&f.image.oci_ref());
    for c in ["gzip", "zstd"] {
        let (out, _) = tool_ok([f.image.oci_ref().as_str(), "-c", c, "--no-init"]);
        assert!(out != plain, "{c} output is not compressed");
        assert_bytes_eq(
            &plain,
            &decompress(c, &out),
            &format!("{c} output once decompressed"),
        );
    }
}

#[test]
fn output_is_deterministic() {
    let f = fixtures::edits();
    let a = convert(&f.image.oci_ref());
    let b = convert(&f.image.oci_ref());
    assert_bytes_eq(&a, &b, "two runs of -c none");
    let (gz1, _) = tool_ok([f.image.oci_ref().as_str(), "-c", "gzip", "--no-init"]);
    let (gz2, _) = tool_ok([f.image.oci_ref().as_str(), "-c", "gzip", "--no-init"]);
    assert_bytes_eq(&gz1, &gz2, "two runs of -c gzip");
}

#[test]
fn stdout_defaults_to_uncompressed() {
    let f = fixtures::busybox();
    let (out, _) = tool_ok([f.image.oci_ref().as_str(), "--no-init"]);
    assert_eq!(&out[..6], b"070701");
    assert_bytes_eq(
        &convert(&f.image.oci_ref()),
        &out,
        "stdout without -c vs -c none",
    );
}

/// GNU cpio, a third-party reader, extracts the same tree as umoci unpacks.
#[test]
fn gnu_cpio_extracts_the_reference_tree() {
    common::require("cpio");
    let f = fixtures::edits();
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("a.cpio");
    std::fs::write(&archive, convert(&f.image.oci_ref())).unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    run(Command::new("sh").current_dir(&root).arg("-c").arg(format!(
        "cpio --quiet -i -d -m --no-absolute-filenames < '{}'",
        archive.display()
    )));
    // GNU cpio does not restore symlink mtimes.
    let extracted = Tree::from_dir(&root).without_symlink_mtimes();
    let reference = f.reference.clone().without_symlink_mtimes();
    assert_same(&reference, &extracted, "cpio -i of the archive");
}
