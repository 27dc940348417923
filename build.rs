//! Sets INITRAMFS_STREAM_VERSION for `--version`: the package version, with
//! `git describe --always --dirty` when built from a git checkout. A
//! tarball without .git builds with the package version alone.

use std::path::Path;
use std::process::Command;

fn main() {
    let pkg = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let root = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let git_dir = Path::new(&root).join(".git");
    println!("cargo:rerun-if-changed=build.rs");
    // Only this checkout's own history: not a parent repository's.
    let describe = if git_dir.exists() {
        for f in ["HEAD", "index"] {
            println!("cargo:rerun-if-changed={}", git_dir.join(f).display());
        }
        Command::new("git")
            .args(["describe", "--always", "--dirty", "--tags"])
            .current_dir(&root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    } else {
        None
    };
    let version = match describe {
        Some(d) if d != pkg && d != format!("v{pkg}") => format!("{pkg} ({d})"),
        _ => pkg,
    };
    println!("cargo:rustc-env=INITRAMFS_STREAM_VERSION={version}");
}
