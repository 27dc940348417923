//! Hostile and broken images. Each case is either applied the way umoci
//! applies it (the archive is compared with `umoci unpack`) or refused with
//! exit status 1 and one line that names the problem; either way nothing is
//! written outside the output, no partial or temporary file is left, and
//! memory stays bounded.

use crate::common;
use crate::hostile_support;

use std::fs;
use std::io::Read;
use std::time::{Duration, Instant};

use common::newc;
use common::tree::{assert_same, Kind, Tree};
use hostile_support::{
    applied, applied_like_umoci, build, last_layer, listed_by, read_all, rejected, run_measured,
    signal, snapshot, spawn, umoci_unpack,
};

// --- applied as umoci applies them -------------------------------------------

#[test]
fn dotdot_and_absolute_names_stay_in_the_root() {
    let (_, tree) = applied_like_umoci("names");
    assert_eq!(tree.content("up"), b"dotdot");
    assert_eq!(tree.content("abs/file"), b"absolute");
    assert_eq!(tree.content("b"), b"clamped");
    assert_eq!(tree.content("x/z"), b"dots");
}

#[test]
fn entries_through_symlinked_parents_stay_in_the_root() {
    let (case, tree) = applied_like_umoci("symlink_escape");
    // The links' targets are resolved inside the image: the host decoy's
    // path, but below the image root.
    let inside = case.decoy.strip_prefix("/").unwrap();
    let inside = inside.to_str().unwrap();
    assert_eq!(
        tree.content(format!("{inside}/pwned")),
        b"via absolute link"
    );
    assert_eq!(tree.content(format!("{inside}/newdir/deep")), b"deep");
    assert_eq!(tree.content("top"), b"via .. link");
    assert_eq!(tree.content("here"), b"via . link");
    assert!(!case.decoy.join("pwned").exists());
}

#[test]
fn symlink_targets_through_missing_names_and_files_are_taken_lexically() {
    let (_, tree) = applied_like_umoci("symlink_lexical");
    // `nowhere/../d` creates nothing; `etc/hostname/../d2` is `etc/d2`.
    assert_eq!(tree.content("d/x"), b"x");
    assert!(!tree.has("nowhere"));
    assert_eq!(tree.content("etc/d2/y"), b"y");
    // `a` was only passed on the way to `/b`: the layer's whiteout removes it.
    assert_eq!(tree.content("b/z"), b"z");
    assert!(!tree.has("a"));
}

#[test]
fn symlinked_parents_are_followed_as_far_as_umoci_follows_them() {
    // A chain of n symlinks as the parent of a file, a whiteout and a
    // hardlink target. Applying layers predicts `umoci unpack`, not the
    // kernel: the archive must be umoci's tree, or refused where umoci
    // refuses, whatever Linux's own limit is.
    let mut refused = Vec::new();
    for name in [
        "symlink_chain_40",
        "symlink_chain_41",
        "symlink_chain_255",
        "symlink_chain_256",
    ] {
        let case = build(name);
        match umoci_unpack(&case) {
            Ok(reference) => {
                let tree = applied(&case);
                assert_same(&reference, &tree, name);
            }
            Err(umoci) => {
                assert!(
                    umoci.contains("too many levels of symbolic links"),
                    "{name}: umoci refused it for another reason: {umoci}"
                );
                rejected(name, &[], &["layer 1", "/l0/new", "symbolic links"]);
                refused.push(name);
            }
        }
    }
    // Both sides of umoci's limit were compared.
    assert!(
        !refused.is_empty() && refused.len() < 4,
        "umoci refused {refused:?}"
    );
}

#[test]
fn links_pointing_outside_the_root() {
    let (case, tree) = applied_like_umoci("link_escape");
    // Symlinks are stored verbatim: they are resolved in the booted system.
    let abs = format!("{}/keep", case.decoy.display());
    assert_eq!(tree.node("out_abs").target, abs.as_bytes());
    // Hardlink targets are looked up inside the root.
    assert_eq!(tree.content("hl_up"), tree.content("etc/passwd"));
    assert_eq!(tree.content("hl_via_symlink"), b"base\n");
}

#[test]
fn missing_hardlink_target_is_refused() {
    rejected(
        "link_missing",
        &[],
        &[
            "layer 0",
            "/lnk",
            "hardlink target /nope/file does not exist",
        ],
    );
}

#[test]
fn bytes_that_are_not_utf8_are_escaped_in_messages() {
    let r = rejected(
        "link_missing_not_utf8",
        &[],
        &[
            "/lnk\\xfe: ",
            "hardlink target /nope\\xff/file does not exist",
        ],
    );
    assert!(!r.stderr.contains('\u{fffd}'), "{}", r.stderr);
}

#[test]
fn control_characters_in_names_do_not_reach_the_terminal() {
    let r = rejected(
        "escape_in_name",
        &[],
        &["does not exist", "\\u{1b}]0;owned"],
    );
    assert!(
        !r.stderr.contains('\u{1b}') && !r.stderr.contains('\u{7}'),
        "{:?}",
        r.stderr
    );
}

#[test]
fn hardlink_to_a_directory_is_refused() {
    rejected("link_to_dir", &[], &["/lnk", "hardlink to a directory"]);
}

#[test]
fn duplicate_paths_in_one_layer_last_wins() {
    let (_, tree) = applied_like_umoci("duplicates");
    assert_eq!(tree.content("dup"), b"second");
    assert_eq!(tree.content("dd"), b"dir became a file");
    assert_eq!(tree.content("ff/in"), b"file became a dir");
    assert_eq!(tree.content("s"), b"symlink became a file");
}

#[test]
fn garbage_after_the_tar_end_is_ignored() {
    let (_, tree) = applied_like_umoci("garbage_after_tar");
    assert_eq!(tree.content("after"), b"x");
}

#[test]
fn a_250k_name_of_dotdots_normalises() {
    let (_, tree) = applied_like_umoci("deep_dotdot");
    assert_eq!(tree.content("x"), b"deep dotdot");
    assert_eq!(tree.content("y"), b"deep dots");
}

#[test]
fn opaque_root_over_the_deepest_tree() {
    // 2040 levels, then an opaque marker at the root (umoci cannot unpack
    // names this long under its bundle path, so no reference).
    let case = build("deep_opaque");
    let tree = applied(&case);
    let deep = format!("{}/f", vec!["a"; 2040].join("/"));
    assert_eq!(tree.content(&deep), b"rewritten");
    assert_eq!(tree.content("keep"), b"kept");
    assert!(!tree.has("etc"), "the opaque root kept a lower entry");
}

// --- lying PAX headers (TARmageddon, CVE-2025-62518) ---------------------------

/// Our archive's paths must be exactly the paths GNU tar and bsdtar list.
fn same_list_as_tar_readers(case: &str) -> hostile_support::Case {
    common::require("tar");
    common::require("bsdtar");
    let (case, tree) = applied_like_umoci(Box::leak(case.to_string().into_boxed_str()));
    let ours: Vec<Vec<u8>> = tree.0.keys().cloned().collect();
    let blob = last_layer(&case);
    for reader in ["tar", "bsdtar"] {
        assert_eq!(
            listed_by(reader, &blob),
            ours,
            "{}: {reader} -t lists other paths than the archive holds",
            case.name
        );
    }
    case
}

#[test]
fn pax_size_override_hides_a_smuggled_header() {
    same_list_as_tar_readers("pax_smuggle");
}

#[test]
fn pax_size_zero_exposes_the_next_header_as_tar_readers_do() {
    same_list_as_tar_readers("pax_smuggle_short");
}

#[test]
fn unparsable_pax_size_is_refused() {
    rejected("pax_size_invalid", &[], &["layer 0", "pax size"]);
}

#[test]
fn pax_size_past_the_end_is_refused() {
    rejected("pax_size_past_end", &[], &["truncated", "/f"]);
}

#[test]
fn two_pax_headers_for_one_entry_the_last_wins() {
    let (_, t) = applied_like_umoci("pax_twice");
    assert_eq!(t.content("two"), b"x");
    assert!(!t.has("one") && !t.has("f"));
}

#[test]
fn nul_in_a_pax_path_is_refused() {
    // GNU tar and bsdtar cut the name at the NUL; the kernel would too.
    rejected("pax_path_nul", &[], &["/etc/passwd", "NUL"]);
}

#[test]
fn nul_in_a_pax_link_target_is_refused() {
    rejected(
        "symlink_target_nul",
        &[],
        &["/lnk", "link target contains a NUL"],
    );
}

#[test]
fn uid_over_32_bits_is_refused() {
    rejected("pax_uid_overflow", &[], &["/f", "uid 4294967296"]);
}

#[test]
fn a_pax_sparse_file_is_expanded() {
    let (_, t) = applied_like_umoci("pax_sparse");
    let mut want = vec![b'd'; 512];
    want.resize(4096, 0);
    assert!(t.content("sparse") == want);
}

#[test]
fn a_sparse_file_counts_at_its_expanded_size() {
    rejected(
        "sparse_huge",
        &["--max-size", "1G"],
        &["layer 0", "--max-size"],
    );
}

#[test]
fn a_nul_in_an_xattr_name_is_refused_naming_the_entry_escaped() {
    let r = rejected(
        "xattr_name_nul",
        &[],
        &[
            "layer 0: /bad\\xff\\u{1b}[31mname: ",
            "xattr name user.a\\u{0}b contains a NUL byte",
        ],
    );
    assert!(!r.stderr.contains('\u{1b}') && !r.stderr.contains('\u{fffd}'));
    rejected(
        "libarchive_xattr_name_nul",
        &[],
        &["/lx: xattr name user.a\\u{0}b contains a NUL byte"],
    );
}

#[test]
fn unknown_entry_type_is_refused() {
    rejected("unknown_type", &[], &["/odd", "entry type 'Z'"]);
}

// --- tar corners, read as Go's archive/tar reads them ----------------------------

/// One raw tar as a plain, a gzip and a zstd layer: the first two must give
/// what `umoci unpack` gives, the zstd one (umoci cannot read zstd) the same
/// tree as the gzip one. Returns the tree.
fn corner(name: &str) -> Tree {
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let (_, plain) = applied_like_umoci(leak(format!("{name}_tar")));
    let (_, gz) = applied_like_umoci(leak(format!("{name}_gz")));
    let zst = applied(&build(leak(format!("{name}_zst"))));
    assert_same(&plain, &gz, name);
    assert_same(&gz, &zst, name);
    plain
}

#[test]
fn an_old_style_entry_named_with_a_slash_is_a_directory_without_data() {
    let t = corner("old_dir_slash");
    assert_eq!(t.node("olddir").kind, Kind::Dir);
    assert_eq!(t.node("olddir").perm, 0o750);
    assert_eq!(t.content("olddir/inside"), b"inside\n");
    assert_eq!(t.content("after"), b"after\n");
}

#[test]
fn a_regular_entry_named_with_a_slash_is_a_file_as_go_reads_it() {
    let t = corner("regular_slash");
    assert_eq!(t.node("zerodir").kind, Kind::File);
    assert_eq!(t.content("zerodir"), b"hello");
    assert_eq!(t.content("after"), b"after\n");
}

/// Mode, uid, gid and mtime of a root directory.
type RootMeta = (u32, u32, u32, u32);

/// The archive's root entry (`.`) and the root `umoci unpack` makes.
fn root_of(case: &hostile_support::Case) -> (Option<RootMeta>, RootMeta) {
    use std::os::unix::fs::MetadataExt;
    let archive = common::convert(&case.image.oci_ref());
    let entries = newc::parse_ok(&archive);
    newc::check_rules(&entries).unwrap();
    let ours = entries
        .iter()
        .find(|e| e.name == b".")
        .map(|e| (e.mode & 0o7777, e.uid, e.gid, e.mtime));
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    common::run(
        std::process::Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!(
                "{}:{}",
                case.image.layout.display(),
                case.image.tag
            ))
            .arg(&bundle),
    );
    let md = fs::metadata(bundle.join("rootfs")).unwrap();
    (
        ours,
        (md.mode() & 0o7777, md.uid(), md.gid(), md.mtime() as u32),
    )
}

#[test]
fn the_root_entry_sets_the_roots_metadata_as_umoci_does() {
    common::require("umoci");
    let t = corner("root_entry");
    assert!(t.has("etc/passwd"));
    for variant in ["root_entry_tar", "root_entry_gz"] {
        let (ours, umoci) = root_of(&build(variant));
        assert_eq!(ours, Some((0o750, 1000, 1001, 1_600_000_000)), "{variant}");
        assert_eq!(ours, Some(umoci), "{variant}");
    }
    // Without a root entry there is none in the archive: the root stays
    // the kernel's 0755 root:root.
    let (ours, _) = root_of(&build("old_dir_slash_tar"));
    assert_eq!(ours, None);
}

#[test]
fn entries_without_data_ignore_their_size_field() {
    let t = corner("header_only_sizes");
    assert_eq!(
        t.node("hard").links,
        vec![b"hard".to_vec(), b"target".to_vec()]
    );
    assert_eq!(t.node("soft").target, b"target");
    assert_eq!(t.node("chr").kind, Kind::Char);
    assert_eq!(t.node("fifo").kind, Kind::Fifo);
    assert_eq!(t.content("dir/after"), b"after\n");
}

#[test]
fn numeric_fields_padded_empty_and_base_256() {
    let t = corner("numeric_fields");
    assert_eq!(t.node("nulmode").perm, 0);
    assert_eq!(t.content("nulmode"), b"nul\n\n");
    let p = t.node("padded");
    assert_eq!((p.perm, p.uid, p.gid), (0o640, 0o1001, 0o1750));
    assert_eq!(t.content("padded"), b"padded\n");
    let b = t.node("binary");
    assert_eq!(
        (b.uid, b.gid, b.mtime),
        (2_000_000_000, 70_000, 1_700_000_000)
    );
    assert_eq!(t.content("binary"), b"bin\n");
    // Before 1970: clamped to the epoch (newc times are unsigned).
    assert_eq!(t.node("olddate").mtime, 0);
    assert_eq!(t.node("dev").rdev, (1, 3));
}

#[test]
fn repeated_long_names_and_pax_headers_last_wins() {
    let t = corner("repeated_ext");
    assert_eq!(t.content("second-long-name"), b"long names\n");
    assert_eq!(t.content("pax-two"), b"pax\n");
    assert_eq!(t.node("pax-two").mtime, 1_600_000_000);
    assert_eq!(t.node("lnk").target, b"right-target");
    assert_eq!(t.content("gnu-name"), b"both\n");
    for gone in [
        "first-long-name",
        "short1",
        "pax-one",
        "short2",
        "pax-name",
        "nothing",
    ] {
        assert!(!t.has(gone), "{gone}");
    }
}

/// The sparse file `gnu_tar_sparse` writes, expanded.
fn expected_sparse() -> Vec<u8> {
    let mut v = vec![0u8; 3 << 20];
    for i in 0..30usize {
        let at = i * 65536 + (i % 7) * 100;
        let data = format!("fragment {i:02}\n").repeat(20);
        v[at..at + data.len()].copy_from_slice(data.as_bytes());
    }
    v
}

#[test]
fn pax_sparse_files_of_every_gnu_format_are_expanded() {
    let want = expected_sparse();
    for format in ["sparse_pax00", "sparse_pax01", "sparse_pax10"] {
        let t = corner(format);
        assert!(t.content("sparse") == want, "{format}: content differs");
        assert_eq!(t.0.len(), 1, "{format}: {:?}", t.0.keys());
    }
}

#[test]
fn old_gnu_sparse_files_are_expanded_as_gnu_tar_does() {
    // Go reads them, but containerd and umoci refuse the type 'S'; GNU tar
    // and bsdtar expand them, as this tool always has.
    common::require("tar");
    let leak = |s: &str| -> &'static str { Box::leak(s.to_string().into_boxed_str()) };
    let plain = build(leak("sparse_gnu_tar"));
    let gnu = common::run(
        std::process::Command::new("tar")
            .arg("-xOf")
            .arg(last_layer(&plain))
            .arg("sparse"),
    );
    let t = applied(&plain);
    assert!(gnu == expected_sparse(), "GNU tar reads another file");
    assert!(t.content("sparse") == gnu, "content differs from GNU tar's");
    for variant in ["sparse_gnu_gz", "sparse_gnu_zst"] {
        assert_same(&t, &applied(&build(leak(variant))), variant);
    }
}

#[test]
fn zstd_layers_that_start_with_a_skippable_frame() {
    common::require("pzstd");
    let (_, want) = applied_like_umoci("zstd_skippable_tar");
    for case in ["zstd_skippable", "zstd_pzstd"] {
        assert_same(&want, &applied(&build(case)), case);
    }
}

#[test]
fn a_layer_whose_bytes_are_not_its_declared_compression() {
    rejected(
        "gzip_media_type_not_gzip",
        &[],
        &["layer 0", "gzip", "neither gzip nor zstd"],
    );
    rejected(
        "zstd_media_type_not_zstd",
        &[],
        &["layer 0", "zstd", "neither gzip nor zstd"],
    );
}

// --- whiteouts, roots, parents --------------------------------------------------

#[test]
fn whiteout_of_dot_is_refused() {
    rejected("wh_dot", &[], &["layer 1", "/etc/.wh..", "whiteout"]);
}

#[test]
fn whiteout_of_dotdot_is_refused() {
    rejected("wh_dotdot", &[], &["layer 1", "/etc/.wh...", "whiteout"]);
}

#[test]
fn bare_whiteout_prefix_is_refused() {
    rejected("wh_bare", &[], &["layer 1", "/.wh.", "whiteout"]);
}

#[test]
fn a_file_in_place_of_the_root_is_refused() {
    rejected("root_file", &[], &["layer 1", "root"]);
}

#[test]
fn a_file_used_as_a_parent_is_refused() {
    rejected(
        "parent_is_file",
        &[],
        &["/etc/hostname/inside", "/etc/hostname is not a directory"],
    );
}

#[test]
fn symlink_loop_in_a_parent_is_refused() {
    rejected("symlink_loop", &[], &["/l1/x", "symbolic links"]);
}

// --- truncation, corruption, garbage ---------------------------------------------

#[test]
fn entry_running_past_the_blob_end_is_refused() {
    rejected("truncated_tar", &[], &["layer 0", "truncated", "/big"]);
}

#[test]
fn truncated_gzip_is_refused() {
    rejected(
        "truncated_gzip",
        &[],
        &["layer 0", "gzip", "unexpected end"],
    );
}

#[test]
fn truncated_zstd_is_refused() {
    rejected("truncated_zstd", &[], &["layer 0", "zstd"]);
}

#[test]
fn corrupt_gzip_is_refused() {
    rejected("corrupt_gzip", &[], &["layer 0", "corrupt", "gzip"]);
}

#[test]
fn corrupt_zstd_is_refused() {
    rejected("corrupt_zstd", &[], &["layer 0", "corrupt", "zstd"]);
}

#[test]
fn garbage_after_the_gzip_stream_is_refused() {
    // Go's gzip reader (containerd, umoci) refuses it too.
    rejected("garbage_after_gzip", &[], &["layer 0", "gzip", "header"]);
}

#[test]
fn garbage_instead_of_the_tar_end_is_refused() {
    rejected(
        "garbage_instead_of_end",
        &[],
        &["layer 0", "invalid tar after the entry /etc/passwd"],
    );
}

// --- sizes, depths, counts -------------------------------------------------------

#[test]
fn a_100k_deep_path_is_refused_without_exhausting_memory() {
    let r = rejected("deep_path", &[], &["layer 0", "200001 bytes", "4095"]);
    assert!(r.max_rss_kib < 200 << 10, "peak RSS {} KiB", r.max_rss_kib);
}

#[test]
fn a_path_too_long_after_symlinks_is_refused() {
    rejected(
        "deep_via_symlink",
        &[],
        &["layer 1", "/x/c/d/e/f", "4097 bytes", "4095"],
    );
}

#[test]
fn a_symlink_target_over_path_max_is_refused() {
    rejected("long_symlink_target", &[], &["/s", "5000 bytes"]);
}

#[test]
fn too_many_entries_in_a_layer_are_refused() {
    rejected(
        "many_entries",
        &["--max-entries", "1000"],
        &["layer 0", "too many entries", "1000", "--max-entries"],
    );
}

#[test]
fn too_many_paths_over_all_layers_are_refused() {
    rejected(
        "many_paths",
        &["--max-entries", "1000"],
        &["more than 1000 paths", "--max-entries"],
    );
}

#[test]
fn a_3_gib_gnu_long_name_is_refused_unread() {
    let r = rejected("longname_bomb", &[], &["layer 0", "tar metadata"]);
    assert!(r.max_rss_kib < 100 << 10, "peak RSS {} KiB", r.max_rss_kib);
}

#[test]
fn a_compression_bomb_stops_at_max_size() {
    // 2 GiB of zeros in a 2 MiB blob.
    let r = rejected(
        "bomb",
        &["--max-size", "64M"],
        &[
            "layer 0",
            "decompresses to more than 67108864 bytes",
            "--max-size",
        ],
    );
    assert!(r.max_rss_kib < 100 << 10, "peak RSS {} KiB", r.max_rss_kib);
}

// --- output safety ----------------------------------------------------------------

fn zeros() -> &'static hostile_support::Case {
    static C: std::sync::OnceLock<hostile_support::Case> = std::sync::OnceLock::new();
    C.get_or_init(|| build("zeros_128m"))
}

#[test]
fn a_large_file_is_streamed_not_buffered() {
    let r = run_measured(&[
        zeros().image.oci_ref(),
        "--no-init".into(),
        "-c".into(),
        "none".into(),
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let entries = newc::parse_ok(&r.stdout);
    let zero = entries.iter().find(|e| e.name == b"zero").unwrap();
    assert_eq!(zero.data.len(), 128 << 20);
    // Peak RSS well below the 128 MiB file.
    assert!(r.max_rss_kib < 80 << 10, "peak RSS {} KiB", r.max_rss_kib);
}

/// Starts a conversion into `dir/out.gz` (which holds old content), stops
/// it with `sig` once its temporary file exists, and checks the aftermath.
fn interrupted_with(sig: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.gz");
    fs::write(&out, b"precious").unwrap();
    let mut child = spawn(&[
        zeros().image.oci_ref(),
        "--no-init".into(),
        "-o".into(),
        out.display().to_string(),
    ]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let tmp = loop {
        let found = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .find(|n| n.starts_with(".out.gz.") && n.ends_with(".tmp"));
        if let Some(t) = found {
            break t;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the conversion ended ({status}) before its temporary file was seen");
        }
        assert!(Instant::now() < deadline, "no temporary file appeared");
        std::thread::sleep(Duration::from_millis(10));
    };
    // Let it write into the temporary file.
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, sig);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "SIG{sig}: {stderr}");
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        vec!["initramfs-stream: interrupted"],
        "SIG{sig}"
    );
    assert!(
        !dir.path().join(&tmp).exists(),
        "SIG{sig}: {tmp} left behind"
    );
    let names: Vec<_> = snapshot(dir.path()).into_keys().collect();
    assert_eq!(
        names,
        vec![std::path::PathBuf::new(), "out.gz".into()],
        "SIG{sig}: stray files"
    );
    assert_eq!(
        fs::read(&out).unwrap(),
        b"precious",
        "SIG{sig}: output changed"
    );
}

#[test]
fn sigterm_mid_write_removes_the_temporary_file() {
    interrupted_with("TERM");
}

#[test]
fn sigint_mid_write_removes_the_temporary_file() {
    interrupted_with("INT");
}

/// Whether `pid` has installed a handler for SIGINT (SigCgt bit 2).
fn catches_sigint(pid: u32) -> bool {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|mask| mask & 2 != 0)
}

/// A stream on stdin whose producer has gone quiet (it keeps the pipe
/// open and writes nothing) must not keep the tool from hearing SIGINT:
/// the waiting read may not hold the thread that watches for signals.
#[test]
fn sigint_while_a_stdin_stream_stalls() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.img");
    let mut child = std::process::Command::new(common::BIN)
        .args(["docker-archive:-", "-o"])
        .arg(&out)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The start of a tar member, then silence; the write end stays open.
    let mut producer = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut producer, &[b'm'; 300]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !catches_sigint(child.id()) {
        assert!(Instant::now() < deadline, "no SIGINT handler installed");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Let the read start and wait for more.
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "INT");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("SIGINT was not heard while stdin stalled");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(producer);
    let stderr = read_all(child.stderr.as_mut().unwrap());
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&stderr).trim_end(),
        "initramfs-stream: interrupted"
    );
    let names: Vec<_> = snapshot(dir.path()).into_keys().collect();
    assert_eq!(names, vec![std::path::PathBuf::new()], "stray files");
}

#[test]
fn sigterm_mid_stream_on_stdout_leaves_no_trailer() {
    let mut child = spawn(&[
        zeros().image.oci_ref(),
        "--no-init".into(),
        "-c".into(),
        "none".into(),
    ]);
    let mut stdout = child.stdout.take().unwrap();
    let mut got = vec![0u8; 1 << 20];
    stdout.read_exact(&mut got).unwrap();
    signal(&child, "TERM");
    got.extend(read_all(&mut stdout));
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        got.len() < (128 << 20),
        "the whole archive went out before the signal"
    );
    assert!(
        !got.windows(10).any(|w| w == b"TRAILER!!!"),
        "a truncated archive carries a trailer"
    );
    assert!(newc::parse(&got).is_err());
}

// --- malformed images ---------------------------------------------------------------

#[test]
fn index_json_that_is_not_json() {
    rejected("img_index_not_json", &[], &["index.json"]);
}

#[test]
fn manifest_that_is_not_json() {
    rejected("img_manifest_not_json", &[], &["manifest sha256:", "JSON"]);
}

#[test]
fn manifest_of_the_wrong_shape() {
    rejected("img_manifest_schema", &[], &["manifest sha256:", "invalid"]);
}

#[test]
fn config_that_is_not_json() {
    rejected("img_config_not_json", &[], &["config sha256:", "invalid"]);
}

#[test]
fn config_of_the_wrong_shape() {
    rejected(
        "img_config_schema",
        &[],
        &["config sha256:", "invalid image config"],
    );
}

#[test]
fn diff_ids_that_do_not_match_the_layers() {
    rejected("img_diff_ids_mismatch", &[], &["1 diff_ids for 2 layers"]);
}

#[test]
fn missing_layer_blob() {
    rejected("img_missing_layer", &[], &["layer 0", "missing"]);
}

#[test]
fn missing_config_blob() {
    rejected(
        "img_missing_config",
        &[],
        &["blobs/sha256/", "No such file"],
    );
}

#[test]
fn layer_digest_mismatch() {
    rejected(
        "img_layer_digest_mismatch",
        &[],
        &["layer 0", "digest mismatch"],
    );
}

#[test]
fn manifest_digest_mismatch() {
    rejected(
        "img_manifest_digest_mismatch",
        &[],
        &["manifest", "digest mismatch"],
    );
}

#[test]
fn layer_size_mismatch() {
    rejected(
        "img_layer_size_mismatch",
        &[],
        &["layer 0", "the manifest says"],
    );
}

#[test]
fn unknown_layer_media_type() {
    rejected(
        "img_unknown_layer_media_type",
        &[],
        &["layer 0", "media type 'application/x-evil'"],
    );
}

#[test]
fn unknown_manifest_media_type() {
    rejected(
        "img_unknown_manifest_media_type",
        &[],
        &["media type 'application/x-evil'"],
    );
}

#[test]
fn manifest_over_4_mib() {
    rejected(
        "img_manifest_huge",
        &[],
        &["larger than the 4194304-byte limit"],
    );
}

#[test]
fn manifest_over_4_mib_with_a_lying_size() {
    rejected(
        "img_manifest_huge_lying_size",
        &[],
        &["larger than the 4194304-byte limit"],
    );
}

#[test]
fn index_that_names_itself() {
    rejected("img_index_cycle", &[], &["digest mismatch"]);
}

#[test]
fn indexes_nested_too_deep() {
    rejected("img_index_deep", &[], &["nested more than"]);
}

#[test]
fn digest_that_is_a_path() {
    rejected("img_digest_traversal", &[], &["malformed digest"]);
}

#[test]
fn digest_of_an_unknown_algorithm() {
    rejected("img_digest_algorithm", &[], &["unsupported digest 'md5:"]);
}
