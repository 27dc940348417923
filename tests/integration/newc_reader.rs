//! Checks of the test-side newc reader and tree model themselves, against
//! GNU cpio, so that a differential failure points at the tool, not at them.

use crate::common;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::process::Command;

use common::newc::{self, Entry};
use common::tree::{Kind, Tree};
use common::{require, run};

/// Archive every path under `dir` with GNU cpio, parents first.
fn gnu_cpio(dir: &std::path::Path) -> Vec<u8> {
    require("cpio");
    let list = run(Command::new("find").current_dir(dir).args([
        ".",
        "-mindepth",
        "1",
        "-printf",
        "%P\\0",
    ]));
    let mut names: Vec<&[u8]> = list.split(|&b| b == 0).filter(|n| !n.is_empty()).collect();
    names.sort();
    let mut input = Vec::new();
    for n in names {
        input.extend_from_slice(n);
        input.push(0);
    }
    let listfile = dir.parent().unwrap().join("list");
    fs::write(&listfile, input).unwrap();
    run(Command::new("sh").current_dir(dir).arg("-c").arg(format!(
        "cpio --quiet -o -0 -H newc < '{}'",
        listfile.display()
    )))
}

#[test]
fn reader_agrees_with_gnu_cpio() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    fs::create_dir_all(root.join("a/b")).unwrap();
    fs::write(root.join("a/b/file"), "content\n").unwrap();
    fs::write(root.join("a/empty"), "").unwrap();
    fs::hard_link(root.join("a/b/file"), root.join("a/link1")).unwrap();
    fs::hard_link(root.join("a/b/file"), root.join("link2")).unwrap();
    symlink("../a/b/file", root.join("a/sym")).unwrap();
    symlink("/nowhere", root.join("dangling")).unwrap();
    fs::write(root.join(std::ffi::OsStr::from_bytes(b"caf\xe9")), "x").unwrap();
    fs::write(root.join("odd.bin"), [0u8, 1, 2]).unwrap();
    // chown clears setuid: chmod last.
    std::os::unix::fs::chown(root.join("odd.bin"), Some(4242), Some(31337)).unwrap();
    fs::set_permissions(root.join("odd.bin"), fs::Permissions::from_mode(0o4750)).unwrap();
    run(Command::new("mknod")
        .arg(root.join("null"))
        .args(["c", "1", "3"]));
    run(Command::new("mknod")
        .arg(root.join("disk"))
        .args(["b", "259", "65545"]));
    run(Command::new("mkfifo").arg(root.join("fifo")));

    let archive = gnu_cpio(&root);
    let entries = newc::parse(&archive).unwrap();
    let from_cpio = Tree::from_newc(&entries);
    let from_disk = Tree::from_dir(&root);
    common::tree::assert_same(&from_disk, &from_cpio, "GNU cpio archive");

    assert_eq!(from_cpio.content("a/link1"), b"content\n");
    assert_eq!(from_cpio.node("disk").rdev, (259, 65545));
    assert_eq!(from_cpio.node("odd.bin").perm, 0o4750);
    assert_eq!(from_cpio.node(b"caf\xe9").kind, Kind::File);
    assert_eq!(
        newc::link_groups(&entries),
        vec![vec![
            b"a/b/file".to_vec(),
            b"a/link1".to_vec(),
            b"link2".to_vec()
        ]]
    );
}

#[test]
fn tree_diff_reports_each_difference() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    fs::create_dir_all(root.join("d")).unwrap();
    fs::write(root.join("d/f"), "one").unwrap();
    symlink("t1", root.join("s")).unwrap();
    let before = Tree::from_dir(&root);
    fs::write(root.join("d/f"), "two").unwrap();
    fs::remove_file(root.join("s")).unwrap();
    symlink("t2", root.join("s")).unwrap();
    fs::write(root.join("new"), "").unwrap();
    fs::set_permissions(root.join("d/f"), fs::Permissions::from_mode(0o600)).unwrap();
    let after = Tree::from_dir(&root);
    let d = before.diff(&after).join("\n");
    assert!(d.contains("d/f: content"), "{d}");
    assert!(d.contains("d/f: mode 0644 vs 0600"), "{d}");
    assert!(d.contains("s: symlink target"), "{d}");
    assert!(d.contains("+ new"), "{d}");
}

/// Minimal newc writer to feed the checker archives that break one rule.
fn entry(name: &str, mode: u32, ino: u32, nlink: u32, data: &[u8]) -> Entry {
    Entry {
        ino,
        mode,
        uid: 0,
        gid: 0,
        nlink,
        mtime: 0,
        devmajor: 0,
        devminor: 0,
        rdevmajor: 0,
        rdevminor: 0,
        name: name.as_bytes().to_vec(),
        data: data.to_vec(),
        offset: 0,
    }
}

fn write(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    let trailer = entry("TRAILER!!!", 0, 0, 1, b"");
    for e in entries.iter().chain(std::iter::once(&trailer)) {
        let fields = [
            e.ino,
            e.mode,
            e.uid,
            e.gid,
            e.nlink,
            e.mtime,
            e.data.len() as u32,
            e.devmajor,
            e.devminor,
            e.rdevmajor,
            e.rdevminor,
            e.name.len() as u32 + 1,
            0,
        ];
        out.extend_from_slice(b"070701");
        for f in fields {
            out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        out.extend_from_slice(&e.name);
        out.push(0);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out.extend_from_slice(&e.data);
        while out.len() % 4 != 0 {
            out.push(0);
        }
    }
    out
}

const DIR: u32 = 0o040755;
const REG: u32 = 0o100644;

fn rejects(entries: &[Entry], why: &str) {
    let err = newc::parse(&write(entries)).expect_err(why);
    assert!(err.contains(why), "expected {why:?} in: {err}");
}

#[test]
fn checker_accepts_valid_and_rejects_each_broken_rule() {
    let ok = [
        entry("d", DIR, 1, 2, b""),
        entry("d/f", REG, 2, 2, b"data"),
        entry("d/g", REG, 2, 2, b""),
        entry("top", REG, 3, 1, b"x"),
    ];
    newc::parse(&write(&ok)).unwrap();

    rejects(&[entry("d/f", REG, 1, 1, b"")], "not emitted before it");
    rejects(
        &[entry("d/f", REG, 1, 1, b""), entry("d", DIR, 2, 2, b"")],
        "not emitted before it",
    );
    rejects(
        &[entry("d", REG, 1, 1, b""), entry("d/f", REG, 2, 1, b"")],
        "is not a directory",
    );
    rejects(
        &[entry("f", REG, 1, 1, b""), entry("f", REG, 2, 1, b"")],
        "duplicate path",
    );
    rejects(&[entry("/abs", REG, 1, 1, b"")], "leading '/'");
    // The root's own entry may only come first, as a directory.
    newc::parse(&write(&[
        entry(".", DIR, 1, 2, b""),
        entry("a", REG, 2, 1, b""),
    ]))
    .unwrap();
    rejects(
        &[entry("a", REG, 1, 1, b""), entry(".", DIR, 2, 2, b"")],
        "root itself",
    );
    rejects(&[entry(".", REG, 1, 1, b"")], "root itself");
    rejects(&[entry("", DIR, 1, 2, b"")], "root itself");
    rejects(&[entry("a//b", REG, 1, 1, b"")], "not a normalised path");
    rejects(
        &[entry("a", REG, 7, 2, b"x"), entry("b", REG, 7, 2, b"y")],
        "carry data",
    );
    rejects(
        &[entry("a", REG, 7, 3, b"x"), entry("b", REG, 7, 3, b"")],
        "nlink",
    );
    rejects(
        &[entry(&"n".repeat(4096), REG, 1, 1, b"")],
        "name of 4096 bytes",
    );

    let mut bad_pad = write(&[entry("abc", REG, 1, 1, b"x")]);
    bad_pad[114] = b'!';
    assert!(newc::parse(&bad_pad).unwrap_err().contains("padding"));

    let mut no_trailer = write(&ok);
    no_trailer.truncate(no_trailer.len() - 124);
    assert!(newc::parse(&no_trailer).unwrap_err().contains("TRAILER"));

    let mut junk = write(&ok);
    junk.extend_from_slice(b"junk");
    assert!(newc::parse(&junk).unwrap_err().contains("after TRAILER"));

    let mut zeros = write(&ok);
    zeros.extend_from_slice(&[0; 512]);
    newc::parse(&zeros).unwrap();

    let mut bad_magic = write(&ok);
    bad_magic[5] = b'2';
    assert!(newc::parse(&bad_magic).unwrap_err().contains("magic"));
}
