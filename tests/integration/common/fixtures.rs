//! Images built at test time by real tools: umoci for layered images edited
//! like a user would, Python `tarfile` (tests/fixtures/*.py) for layer shapes
//! that no tool emits, skopeo for the transport and media-type variants.
//! The reference for every image is `umoci unpack`.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{chown, lchown, symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::tree::Tree;
use super::{fixture_dir, require, run};

#[derive(Clone, Debug)]
pub struct Image {
    /// OCI image layout directory.
    pub layout: PathBuf,
    pub tag: String,
}

impl Image {
    pub fn oci_ref(&self) -> String {
        format!("oci:{}:{}", self.layout.display(), self.tag)
    }
    pub fn umoci_ref(&self) -> String {
        format!("{}:{}", self.layout.display(), self.tag)
    }
    /// Path of the manifest JSON this tag points to.
    pub fn manifest(&self) -> serde_json::Value {
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(self.layout.join("index.json")).unwrap()).unwrap();
        let desc = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == self.tag.as_str())
            .unwrap_or_else(|| panic!("tag {} not in {}", self.tag, self.layout.display()));
        serde_json::from_slice(&fs::read(self.blob_path(desc["digest"].as_str().unwrap())).unwrap())
            .unwrap()
    }
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let (alg, hex) = digest.split_once(':').unwrap();
        self.layout.join("blobs").join(alg).join(hex)
    }
    pub fn layer_media_types(&self) -> Vec<String> {
        self.manifest()["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["mediaType"].as_str().unwrap().to_string())
            .collect()
    }
}

pub struct Fixture {
    pub name: &'static str,
    pub image: Image,
    /// Tree of `umoci unpack` of the image.
    pub reference: Tree,
}

/// Unpack with umoci into a scratch bundle and model its rootfs.
pub fn reference_tree(image: &Image) -> Tree {
    require("umoci");
    let scratch = tempfile::tempdir_in(fixture_dir()).unwrap();
    let bundle = scratch.path().join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(image.umoci_ref())
        .arg(&bundle));
    Tree::from_dir(&bundle.join("rootfs"))
}

/// An image being built layer by layer with umoci.
pub struct Umoci {
    image: Image,
    bundle: PathBuf,
}

impl Umoci {
    pub fn new(dir: &Path, tag: &str) -> Umoci {
        require("umoci");
        let layout = dir.join("layout");
        let bundle = dir.join("bundle");
        run(Command::new("umoci")
            .args(["init", "--layout"])
            .arg(&layout));
        let image = Image {
            layout,
            tag: tag.into(),
        };
        run(Command::new("umoci")
            .args(["new", "--image"])
            .arg(image.umoci_ref()));
        run(Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(image.umoci_ref())
            .arg(&bundle));
        Umoci { image, bundle }
    }

    pub fn root(&self) -> PathBuf {
        self.bundle.join("rootfs")
    }

    /// Path inside the rootfs; `rel` may hold any bytes.
    pub fn p(&self, rel: impl AsRef<[u8]>) -> PathBuf {
        self.root().join(OsStr::from_bytes(rel.as_ref()))
    }

    /// Commit the rootfs changes as a new layer.
    pub fn layer(&self) {
        run(Command::new("umoci")
            .args(["repack", "--refresh-bundle", "--image"])
            .arg(self.image.umoci_ref())
            .arg(&self.bundle));
    }

    pub fn config(&self, args: &[&str]) {
        run(Command::new("umoci")
            .args(["config", "--image"])
            .arg(self.image.umoci_ref())
            .args(args));
    }

    pub fn finish(self) -> Image {
        fs::remove_dir_all(&self.bundle).unwrap();
        self.image
    }

    // Editing helpers: all panic on error, paths relative to the rootfs.

    pub fn mkdir(&self, rel: impl AsRef<[u8]>, mode: u32) {
        let p = self.p(rel);
        fs::create_dir_all(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }
    pub fn write(&self, rel: impl AsRef<[u8]>, data: impl AsRef<[u8]>, mode: u32) {
        let p = self.parent_of(rel);
        fs::write(&p, data).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }
    pub fn symlink(&self, rel: impl AsRef<[u8]>, target: impl AsRef<[u8]>) {
        let p = self.parent_of(rel);
        symlink(OsStr::from_bytes(target.as_ref()), &p)
            .unwrap_or_else(|e| panic!("symlink {}: {e}", p.display()));
    }
    pub fn hardlink(&self, rel: impl AsRef<[u8]>, existing: impl AsRef<[u8]>) {
        let p = self.parent_of(rel);
        fs::hard_link(self.p(existing), &p).unwrap_or_else(|e| panic!("link {}: {e}", p.display()));
    }
    /// The path of `rel`, with its parent directories created.
    fn parent_of(&self, rel: impl AsRef<[u8]>) -> PathBuf {
        let p = self.p(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        p
    }
    pub fn chmod(&self, rel: impl AsRef<[u8]>, mode: u32) {
        fs::set_permissions(self.p(rel), fs::Permissions::from_mode(mode)).unwrap();
    }
    /// chown, keeping setuid/setgid bits (chown(2) clears them).
    pub fn chown(&self, rel: impl AsRef<[u8]>, uid: u32, gid: u32) {
        let p = self.p(rel);
        let perm = fs::symlink_metadata(&p).unwrap().permissions();
        chown(&p, Some(uid), Some(gid)).unwrap();
        fs::set_permissions(&p, perm).unwrap();
    }
    pub fn lchown(&self, rel: impl AsRef<[u8]>, uid: u32, gid: u32) {
        lchown(self.p(rel), Some(uid), Some(gid)).unwrap();
    }
    pub fn mknod(&self, rel: &str, kind: &str, major: u32, minor: u32, mode: u32) {
        run(Command::new("mknod")
            .arg("-m")
            .arg(format!("{mode:o}"))
            .arg(self.parent_of(rel))
            .arg(kind)
            .arg(major.to_string())
            .arg(minor.to_string()));
    }
    pub fn mkfifo(&self, rel: &str, mode: u32) {
        run(Command::new("mkfifo")
            .arg("-m")
            .arg(format!("{mode:o}"))
            .arg(self.parent_of(rel)));
    }
    pub fn rm(&self, rel: impl AsRef<[u8]>) {
        let p = self.p(rel);
        let md = fs::symlink_metadata(&p).unwrap();
        if md.is_dir() {
            fs::remove_dir_all(&p).unwrap();
        } else {
            fs::remove_file(&p).unwrap();
        }
    }
}

/// Install busybox-static with its applet links where busybox itself lists
/// them (bin/, sbin/, usr/bin/, usr/sbin/), like a small distribution.
pub fn install_busybox(u: &Umoci) {
    require("busybox");
    let bb = which("busybox");
    u.mkdir("bin", 0o755);
    fs::copy(&bb, u.p("bin/busybox")).unwrap();
    u.chmod("bin/busybox", 0o755);
    let list = run(Command::new(&bb).arg("--list-full"));
    for line in String::from_utf8(list).unwrap().lines() {
        let line = line.trim_matches('/');
        if line.is_empty() || line == "bin/busybox" {
            continue;
        }
        if let Some((dir, _)) = line.rsplit_once('/') {
            u.mkdir(dir, 0o755);
        }
        u.symlink(line, "/bin/busybox");
    }
}

/// The first `cmd` in PATH.
pub fn which(cmd: &str) -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{cmd} not found in PATH"))
}

fn build(name: &'static str, f: impl FnOnce(&Path) -> Image) -> Fixture {
    let dir = fixture_dir().join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let image = f(&dir);
    let reference = reference_tree(&image);
    Fixture {
        name,
        image,
        reference,
    }
}

/// A small realistic system: busybox, /etc, a user, special modes.
pub fn busybox() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        build("busybox", |dir| {
            let u = Umoci::new(dir, "latest");
            install_busybox(&u);
            u.write(
                "etc/passwd",
                "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
                0o644,
            );
            u.write("etc/group", "root:x:0:\nuser:x:1000:\n", 0o644);
            u.write("etc/hostname", "busybox\n", 0o644);
            u.mkdir("root", 0o700);
            u.mkdir("tmp", 0o1777);
            u.mkdir("home/user", 0o750);
            u.chown("home/user", 1000, 1000);
            u.mkdir("dev", 0o755);
            u.mkdir("proc", 0o555);
            u.mkdir("sys", 0o555);
            u.layer();
            // A second layer as an application image would add.
            u.write("app/run.sh", "#!/bin/sh\necho app\n", 0o755);
            u.write("etc/hostname", "app\n", 0o644);
            u.write("etc/motd", "welcome\n", 0o644);
            u.layer();
            u.config(&[
                "--config.entrypoint=/app/run.sh",
                "--config.cmd=--serve",
                "--config.env=APP_MODE=test",
            ]);
            u.finish()
        })
    })
}

/// Every edit umoci can express, spread over layers so that later layers
/// delete, replace and re-link what earlier ones created.
pub fn edits() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        build("edits", |dir| {
            let u = Umoci::new(dir, "edits");
            install_busybox(&u);
            // Layer 1
            u.write("data/hello", "hello\n", 0o644);
            u.hardlink("data/hello.1", "data/hello");
            u.hardlink("data/hello.2", "data/hello.1");
            u.write("usr/bin/suid", "suid", 0o4755);
            u.write("usr/bin/sgid", "sgid", 0o2711);
            u.mkdir("var/mail", 0o2775);
            u.chown("var/mail", 0, 8);
            u.mkdir("tmp", 0o1777);
            u.write("srv/odd", "odd owner", 0o640);
            u.chown("srv/odd", 4242, 31337);
            u.write("srv/nobody", "nobody", 0o600);
            u.chown("srv/nobody", 65534, 65534);
            u.write("srv/big-ids", "ids", 0o644);
            u.chown("srv/big-ids", 1_000_000, 2_000_000);
            u.mkdir("dev", 0o755);
            u.mknod("dev/console", "c", 5, 1, 0o600);
            u.mknod("dev/null", "c", 1, 3, 0o666);
            u.mknod("dev/sda", "b", 8, 0, 0o660);
            u.mknod("dev/nvme0n1p9", "b", 259, 65_545, 0o660);
            u.mknod("dev/bigmajor", "c", 511, 1_048_575, 0o600);
            u.mkdir("run", 0o755);
            u.mkfifo("run/initctl", 0o600);
            u.write("usr/lib/os-release", "ID=test\n", 0o644);
            u.symlink("etc/os-release", "../usr/lib/os-release");
            u.symlink("etc/mtab", "/proc/self/mounts");
            u.symlink("dangling", "nowhere/at/all");
            u.symlink("etc/link-owned", "hostname");
            u.lchown("etc/link-owned", 12, 34);
            u.write(b"data/caf\xe9", "latin-1 name", 0o644);
            u.write(b"data/\xff\xfe", "not utf-8", 0o644);
            u.write("data/\u{65e5}\u{672c}", "utf-8 name", 0o644);
            let long_file = format!("data/{}", "long_".repeat(30));
            u.write(&long_file, "150-byte name", 0o644);
            let long_dir = format!("data/{}/{}", "d".repeat(120), "e".repeat(120));
            u.mkdir(&long_dir, 0o755);
            u.write(format!("{long_dir}/{}", "f".repeat(100)), "deep", 0o644);
            u.symlink("data/long-target", format!("/{}", "t/".repeat(80)));
            u.mkdir("old/dir/with", 0o755);
            u.write("old/dir/with/files", "f", 0o644);
            u.write("data/todelete", "x", 0o644);
            u.mkdir("swap/d2f/sub", 0o755);
            u.write("swap/d2f/sub/child", "child", 0o644);
            u.write("swap/f2d", "was a file", 0o644);
            u.write("hl/target", "old target", 0o644);
            u.hardlink("hl/link", "hl/target");
            u.write("hl/victim", "victim data", 0o644);
            u.hardlink("hl/survivor", "hl/victim");
            u.write("hl/base1", "base1", 0o644);
            u.layer();
            // Layer 2: deletions, type changes, links to layer 1.
            u.rm("old/dir");
            u.rm("data/todelete");
            u.rm("swap/d2f");
            u.write("swap/d2f", "now a file", 0o644);
            u.rm("swap/f2d");
            u.mkdir("swap/f2d", 0o755);
            u.write("swap/f2d/child", "now a dir", 0o644);
            u.write("etc/hostname", "edited\n", 0o644);
            u.chmod("data/hello", 0o600);
            u.hardlink("hl/l2link", "hl/base1");
            u.layer();
            // Layer 3: the link targets go away or change.
            u.rm("hl/target");
            u.write("hl/target", "new target", 0o644);
            u.rm("hl/victim");
            u.rm("hl/base1");
            u.rm("dangling");
            u.write("dangling", "no longer a symlink", 0o644);
            u.rm("data/hello.1");
            u.layer();
            u.config(&["--config.cmd=/bin/sh", "--config.env=EDITS=1"]);
            u.finish()
        })
    })
}

/// A layout written by tests/fixtures/handwritten.py (tag "t").
pub fn handwritten(case: &'static str) -> Image {
    let dir = fixture_dir().join(format!("hw-{case}"));
    let _ = fs::remove_dir_all(&dir);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/handwritten.py");
    run(super::python().arg(script).arg(case).arg(&dir));
    Image {
        layout: dir,
        tag: "t".into(),
    }
}

/// `handwritten(case)` with its umoci reference, built once per process.
pub fn handwritten_fixture(case: &'static str) -> &'static Fixture {
    static ALL: OnceLock<std::sync::Mutex<Vec<&'static Fixture>>> = OnceLock::new();
    let all = ALL.get_or_init(Default::default);
    let mut all = all.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(f) = all.iter().find(|f| f.name == case) {
        return f;
    }
    let image = handwritten(case);
    let reference = reference_tree(&image);
    let f: &'static Fixture = Box::leak(Box::new(Fixture {
        name: case,
        image,
        reference,
    }));
    all.push(f);
    f
}

/// skopeo always copies into a fresh directory: with nothing to reuse at the
/// destination, its blob-info cache cannot substitute gzip blobs for zstd.
fn skopeo(args: &[&str]) {
    require("skopeo");
    run(Command::new("skopeo").arg("--insecure-policy").args(args));
}

fn unique(dir: &Path, what: &str) -> PathBuf {
    tempfile::Builder::new()
        .prefix(what)
        .tempdir_in(dir)
        .unwrap()
        .keep()
}

/// Copy with Docker schema 2 media types (gzip layers).
pub fn to_v2s2(img: &Image) -> Image {
    let layout = unique(fixture_dir(), "v2s2-");
    skopeo(&[
        "copy",
        "--format",
        "v2s2",
        &img.oci_ref(),
        &format!("oci:{}:{}", layout.display(), img.tag),
    ]);
    let out = Image {
        layout,
        tag: img.tag.clone(),
    };
    for mt in out.layer_media_types() {
        assert_eq!(
            mt, "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "v2s2 copy"
        );
    }
    out
}

/// Copy with zstd-compressed layers.
pub fn to_zstd(img: &Image) -> Image {
    let layout = unique(fixture_dir(), "zstd-");
    skopeo(&[
        "copy",
        "--dest-compress",
        "--dest-compress-format",
        "zstd",
        &img.oci_ref(),
        &format!("oci:{}:{}", layout.display(), img.tag),
    ]);
    let out = Image {
        layout,
        tag: img.tag.clone(),
    };
    for (mt, l) in out
        .layer_media_types()
        .iter()
        .zip(out.manifest()["layers"].as_array().unwrap())
    {
        assert_eq!(
            mt, "application/vnd.oci.image.layer.v1.tar+zstd",
            "zstd copy"
        );
        let blob = fs::read(out.blob_path(l["digest"].as_str().unwrap())).unwrap();
        assert_eq!(
            &blob[..4],
            &[0x28, 0xb5, 0x2f, 0xfd],
            "zstd copy: blob is not zstd"
        );
    }
    out
}

/// `docker-archive:` file holding the image as NAME:TAG.
pub fn to_docker_archive(img: &Image, name_tag: &str) -> PathBuf {
    let file = unique(fixture_dir(), "docker-archive-").join("image.tar");
    skopeo(&[
        "copy",
        &img.oci_ref(),
        &format!("docker-archive:{}:{name_tag}", file.display()),
    ]);
    file
}

/// `oci-archive:` file holding the image under its tag.
pub fn to_oci_archive(img: &Image) -> PathBuf {
    let file = unique(fixture_dir(), "oci-archive-").join("image.tar");
    skopeo(&[
        "copy",
        &img.oci_ref(),
        &format!("oci-archive:{}:{}", file.display(), img.tag),
    ]);
    file
}

/// Copy a layout directory (to corrupt it without touching the shared one).
pub fn copy_layout(img: &Image, to: &Path) -> Image {
    run(Command::new("cp").arg("-a").arg(&img.layout).arg(to));
    Image {
        layout: to.to_path_buf(),
        tag: img.tag.clone(),
    }
}
