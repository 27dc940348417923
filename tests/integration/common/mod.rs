//! Shared helpers for the integration tests: a newc reader, a tree model,
//! and fixture images built with real tools (umoci, skopeo, busybox).
#![allow(dead_code)]

pub mod fixtures;
pub mod newc;
pub mod tree;

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_initramfs-stream");

/// Fail loudly when a tool the tests rely on is missing: scripts/test.sh
/// installs all of them.
pub fn require(cmd: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| is_executable(&d.join(cmd))))
        .unwrap_or(false);
    assert!(
        found,
        "`{cmd}` is not installed; run scripts/test.sh (it installs the test dependencies)"
    );
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Run a command that must succeed; returns its stdout.
pub fn run(cmd: &mut Command) -> Vec<u8> {
    let what = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot start `{what}`: {e}"));
    assert!(
        out.status.success(),
        "`{what}` failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn sh(script: &str) -> Vec<u8> {
    run(Command::new("sh").arg("-ec").arg(script))
}

/// Run the tool with `args`, whatever the outcome.
pub fn tool<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("cannot start initramfs-stream")
}

/// Run the tool, which must succeed; returns (stdout, stderr).
pub fn tool_ok<I, S>(args: I) -> (Vec<u8>, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let out = tool(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "initramfs-stream {:?} failed ({}): {stderr}",
        args,
        out.status
    );
    (out.stdout, stderr)
}

/// The uncompressed archive for an image reference, written to stdout.
pub fn convert(image: &str) -> Vec<u8> {
    tool_ok([image, "-c", "none", "--no-init"]).0
}

/// Decompress with the system tools, independent of the crate's encoders.
pub fn decompress(kind: &str, data: &[u8]) -> Vec<u8> {
    let prog = match kind {
        "gzip" => "gzip",
        "zstd" => "zstd",
        "xz" => "xz",
        other => panic!("unknown compression {other}"),
    };
    require(prog);
    let mut child = Command::new(prog)
        .args(["-dc"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "{prog} -dc failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A per-process directory for fixtures shared by several tests of one test
/// binary. Directories of processes that are gone are removed on first use.
pub fn fixture_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fixtures");
        std::fs::create_dir_all(&base).unwrap();
        for e in std::fs::read_dir(&base).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("pid-") {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = base.join(format!("pid-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// Files in `dir`, by name, for "nothing left behind" checks.
pub fn list_dir(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Compare two byte strings without dumping them: lengths and the first
/// differing offset.
#[track_caller]
pub fn assert_bytes_eq(left: &[u8], right: &[u8], what: &str) {
    if left != right {
        let at = left
            .iter()
            .zip(right)
            .position(|(a, b)| a != b)
            .unwrap_or(left.len().min(right.len()));
        panic!(
            "{what}: {} bytes vs {} bytes, first difference at offset {at}",
            left.len(),
            right.len()
        );
    }
}

/// Debian's python3 when present: a version-manager shim earlier in PATH
/// costs ~0.4 s per start, and the fixture scripts need only the stdlib.
pub fn python() -> Command {
    let debian = Path::new("/usr/bin/python3");
    if debian.exists() {
        Command::new(debian)
    } else {
        require("python3");
        Command::new("python3")
    }
}
