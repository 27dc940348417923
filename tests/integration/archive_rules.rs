//! Images whose content the kernel cannot take as is: names or targets of
//! PATH_MAX bytes, names climbing above the root, entries reached through a
//! symlink. The tool may reject such an image (exit 1, one line, no output)
//! or handle it, but must never emit an entry the kernel would drop or place
//! outside the intended directory.

use crate::common;

use std::fs;

use common::fixtures::{self, handwritten_fixture};
use common::newc;
use common::tree::{assert_same, Tree};
use common::{list_dir, tool};

enum Outcome {
    Rejected,
    Converted { tree: Tree, stderr: String },
}

/// Run with `-o`, check the two acceptable outcomes' invariants.
fn convert_or_reject(image_ref: &str) -> Outcome {
    let tmp = tempfile::tempdir().unwrap();
    let out_path = tmp.path().join("initrd.cpio");
    let out = tool([
        image_ref,
        "--no-init",
        "-c",
        "none",
        "-o",
        out_path.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        let data = fs::read(&out_path).unwrap();
        // parse() rejects names and targets of 4096+ bytes, '..' components
        // and entries whose parent is not a directory emitted before them.
        let entries = newc::parse_ok(&data);
        Outcome::Converted {
            tree: Tree::from_newc(&entries),
            stderr,
        }
    } else {
        assert_eq!(out.status.code(), Some(1), "{image_ref}: {stderr}");
        assert_eq!(
            stderr.lines().filter(|l| !l.trim().is_empty()).count(),
            1,
            "{image_ref}: expected a one-line error, got {stderr:?}"
        );
        assert!(
            list_dir(tmp.path()).is_empty(),
            "{image_ref}: output left behind after an error"
        );
        Outcome::Rejected
    }
}

#[test]
fn path_max_names_and_targets_are_never_emitted() {
    // umoci cannot unpack this one (ENAMETOOLONG), so no reference tree.
    let img = fixtures::handwritten("pathmax");
    match convert_or_reject(&img.oci_ref()) {
        Outcome::Rejected => {}
        Outcome::Converted { tree, stderr } => {
            assert_eq!(tree.content("ok"), b"ok");
            assert!(!tree.has("bigsym"), "4200-byte symlink target emitted");
            assert!(
                !stderr.trim().is_empty(),
                "entries were dropped without a warning on stderr"
            );
        }
    }
}

/// Handled images must match umoci, which resolves such paths inside the
/// root (SecureJoin).
fn matches_umoci_or_rejected(case: &'static str) {
    let f = handwritten_fixture(case);
    if let Outcome::Converted { tree, .. } = convert_or_reject(&f.image.oci_ref()) {
        assert_same(&f.reference, &tree, case);
    }
}

#[test]
fn names_climbing_above_the_root() {
    matches_umoci_or_rejected("dotdot");
}

#[test]
fn entries_below_a_symlinked_directory() {
    matches_umoci_or_rejected("symlinkparent");
}

/// A root-level "TRAILER!!!" entry would end the archive for the kernel and
/// every cpio reader: what follows would be lost. Storing it as
/// "./TRAILER!!!", dropping it with a warning, or rejecting the image are fine.
#[test]
fn a_file_named_trailer_does_not_end_the_archive() {
    let f = handwritten_fixture("trailer");
    match convert_or_reject(&f.image.oci_ref()) {
        Outcome::Rejected => {}
        Outcome::Converted { tree, stderr } => {
            assert_eq!(tree.content("zz/after"), b"after");
            assert_eq!(tree.content("sub/TRAILER!!!"), b"nested");
            let mut expected = f.reference.clone();
            if !tree.has("TRAILER!!!") {
                assert!(
                    !stderr.trim().is_empty(),
                    "TRAILER!!! dropped without a warning"
                );
                expected.0.remove(b"TRAILER!!!".as_slice());
            }
            assert_same(&expected, &tree, "trailer");
        }
    }
}

/// Every fixture's archive follows the kernel's rules, reported on its own so
/// a rule break is not hidden behind a tree difference.
#[test]
fn every_fixture_follows_the_kernel_rules() {
    let mut cases: Vec<(&str, String)> = vec![
        ("busybox", fixtures::busybox().image.oci_ref()),
        ("edits", fixtures::edits().image.oci_ref()),
    ];
    for c in [
        "opaque",
        "whiteouts",
        "longnames",
        "nonutf8",
        "compression",
        "dirfiledir",
        "hardlinks",
        "duplicates",
        "paths",
        "xattr",
    ] {
        cases.push((c, handwritten_fixture(c).image.oci_ref()));
    }
    for (name, r) in cases {
        let archive = common::convert(&r);
        if let Err(e) = newc::parse(&archive) {
            panic!("{name}: {e}");
        }
    }
}
