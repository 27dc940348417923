//! Boot tests: images built by umoci, converted by the command line, booted
//! on a real Debian kernel in QEMU (TCG). Each test is one boot; cargo runs
//! them two at a time. A case passes on lines its program prints on the
//! serial console, computed at run time so that no file in the archive
//! contains them literally.

mod boot_support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use boot_support::{
    boot, busybox_rootfs, kernel, pack_dir, run, scratch, write_exec, Layout, Machine,
};

const BIN: &str = env!("CARGO_BIN_EXE_initramfs-stream");

/// Prints what it was given and how it runs, then a computed marker.
const SHOW_ARGS: &str = r#"#!/bin/sh
printf 'GREETING=[%s]\n' "$GREETING"
printf 'PWD=[%s]\n' "$(pwd)"
printf 'HOME=[%s]\n' "$HOME"
printf 'IDS=[%s:%s:%s]\n' "$(id -u)" "$(id -g)" "$(id -G)"
i=0
for a in "$@"; do
    i=$((i + 1))
    printf 'ARG%s=[%s]\n' "$i" "$a"
done
echo "show-args-done-$((6 * 7))"
exit "${EXIT_WITH:-0}"
"#;

const OWN_INIT: &str = r#"#!/bin/sh
echo "own-init-ran-$((6 * 7))"
/bin/poweroff -f
"#;

/// For `--init`: calls the injected agent, and a program of an injected
/// directory through a symlink in it.
const USER_INIT: &str = r#"#!/bin/sh
/usr/bin/agent "hello there"
/opt/tools/bin/hi
/bin/poweroff -f
"#;

const HELLO: &str = r#"#!/bin/sh
echo "hello from $0 $((40 + 2))"
"#;

const AGENT: &str = r#"#!/bin/sh
printf 'agent got [%s] %s\n' "$1" "$((40 + 2))"
"#;

struct Images {
    layout: Layout,
    /// Holds ./agent, init.sh and tools/; the command line runs here.
    work: PathBuf,
}

/// The test images, built once per run in one umoci layout:
/// - `bare`: busybox-static, /etc/passwd with app (1000), /usr/bin/show-args;
///   no Entrypoint, no Cmd.
/// - `generated`: Entrypoint + Cmd with awkward words, Env, a WorkingDir
///   that the image lacks (and that has a space).
/// - `user`: runs show-args as User `app`.
/// - `own-init`: a second layer adds /init; Cmd is set but must not run.
/// - `nobody`: User names an account the image does not have.
/// - `other-group`: a uid:gid that busybox's su cannot switch to.
fn images() -> &'static Images {
    static IMAGES: OnceLock<Images> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        fs::create_dir_all(&base).unwrap();
        // Leftovers of runs that died; each run has its own directory.
        for entry in fs::read_dir(&base).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix("boot-images-") {
                if !Path::new("/proc").join(pid).exists() {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
        }
        let work = base.join(format!("boot-images-{}", std::process::id()));
        let _ = fs::remove_dir_all(&work);
        fs::create_dir_all(&work).unwrap();
        write_exec(&work.join("agent"), AGENT);
        write_exec(&work.join("init.sh"), USER_INIT);
        write_exec(&work.join("tools/bin/hello"), HELLO);
        std::os::unix::fs::symlink("hello", work.join("tools/bin/hi")).unwrap();

        let layout = Layout::init(&work.join("layout"));
        layout.new_image("bare", &work, |rootfs| {
            busybox_rootfs(rootfs);
            write_exec(&rootfs.join("usr/bin/show-args"), SHOW_ARGS);
        });
        layout.config(
            "bare",
            "generated",
            &[
                "--config.entrypoint=/usr/bin/show-args",
                "--config.entrypoint=first",
                "--config.cmd=two words",
                "--config.cmd=it's \"quoted\"",
                "--config.cmd=$HOME `x` \\n",
                "--config.cmd=line one\nline two",
                "--config.env=GREETING=hello world",
                "--config.env=EXIT_WITH=3",
                "--config.workingdir=/srv/work dir",
            ],
        );
        layout.config(
            "bare",
            "user",
            &["--config.cmd=/usr/bin/show-args", "--config.user=app"],
        );
        layout.add_layer("bare", "own-init-layer", &work, |rootfs| {
            write_exec(&rootfs.join("init"), OWN_INIT);
        });
        layout.config(
            "own-init-layer",
            "own-init",
            &["--config.cmd=/usr/bin/show-args"],
        );
        layout.config(
            "bare",
            "nobody",
            &["--config.cmd=/usr/bin/show-args", "--config.user=nobody"],
        );
        // su takes the group from the passwd entry, and busybox has no
        // other way to switch users.
        layout.config(
            "bare",
            "other-group",
            &["--config.cmd=/usr/bin/show-args", "--config.user=1000:50"],
        );
        Images { layout, work }
    })
}

/// Runs the command line in the images' work directory; returns the archive.
fn build(tag: &str, out_name: &str, args: &[&str]) -> PathBuf {
    let images = images();
    let out = images.work.join(out_name);
    run(Command::new(BIN)
        .current_dir(&images.work)
        .arg(images.layout.reference(tag))
        .arg("-o")
        .arg(&out)
        .args(args));
    out
}

/// The command line's one-line error for a build that must fail.
fn build_error(tag: &str, args: &[&str]) -> String {
    let images = images();
    let out = Command::new(BIN)
        .current_dir(&images.work)
        .arg(images.layout.reference(tag))
        .arg("-o")
        .arg(images.work.join(format!("{tag}-error.cpio")))
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "{tag} {args:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_generated(machine: Machine, codec: &str) {
    let Some(kernel) = kernel() else { return };
    let out = build(
        "generated",
        &format!("generated-{codec}-{machine:?}.img"),
        &["-c", codec],
    );
    let b = boot(&kernel, &out, machine, &format!("generated {codec}"));
    for line in [
        "GREETING=[hello world]",
        "PWD=[/srv/work dir]",
        "HOME=[/root]",
        "IDS=[0:0:0]",
        "ARG1=[first]",
        "ARG2=[two words]",
        "ARG3=[it's \"quoted\"]",
        "ARG4=[$HOME `x` \\n]",
        "ARG5=[line one",
        "line two]",
        "show-args-done-42",
        "initramfs-stream: command exited with status 3",
    ] {
        b.assert_line(line);
    }
    assert!(!b.console.contains("ARG6="), "{}", b.console);
    b.assert_clean_poweroff();
}

#[test]
fn generated_init_gzip_pc() {
    assert_generated(Machine::Pc, "gzip");
}

#[test]
fn generated_init_zstd_microvm() {
    assert_generated(Machine::Microvm, "zstd");
}

// The kernel reads xz only with CRC32 checks and lz4 only in the legacy
// format: these boots prove the encoders write what it reads.
#[test]
fn generated_init_xz_pc() {
    assert_generated(Machine::Pc, "xz");
}

#[test]
fn generated_init_lz4_microvm() {
    assert_generated(Machine::Microvm, "lz4");
}

#[test]
fn user_switch_uncompressed_pc() {
    let Some(kernel) = kernel() else { return };
    let out = build("user", "user.cpio", &["-c", "none"]);
    let b = boot(&kernel, &out, Machine::Pc, "user");
    // busybox has no setpriv --reuid: this goes through su, with app's
    // passwd group and its supplementary group from /etc/group.
    b.assert_line("IDS=[1000:1000:1000 50]");
    b.assert_line("HOME=[/home/app]");
    b.assert_line("PWD=[/]");
    b.assert_line("show-args-done-42");
    b.assert_line("initramfs-stream: command exited with status 0");
    b.assert_clean_poweroff();
}

#[test]
fn init_file_and_inject_gzip_microvm() {
    let Some(kernel) = kernel() else { return };
    let out = build(
        "bare",
        "inject.cpio.gz",
        &[
            "--init",
            "init.sh",
            "--inject",
            "./agent:/usr/bin/agent",
            "--inject",
            "tools:/opt/tools",
            "-c",
            "gzip",
        ],
    );
    let b = boot(&kernel, &out, Machine::Microvm, "init+inject");
    b.assert_line("agent got [hello there] 42");
    // /opt is not in the image: its directory entry must come first.
    b.assert_line("hello from /opt/tools/bin/hi 42");
    b.assert_clean_poweroff();
}

#[test]
fn image_with_its_own_init_zstd_pc() {
    let Some(kernel) = kernel() else { return };
    let out = build("own-init", "own-init.cpio.zst", &["-c", "zstd"]);
    let b = boot(&kernel, &out, Machine::Pc, "own /init");
    b.assert_line("own-init-ran-42");
    assert!(
        !b.console.contains("show-args-done"),
        "the image's Cmd ran instead of its /init:\n{}",
        b.console
    );
    b.assert_clean_poweroff();
}

#[test]
fn boot_errors_are_reported_at_build_time() {
    let err = build_error("bare", &[]);
    assert!(err.contains("image has no Entrypoint or Cmd"), "{err}");
    let err = build_error("nobody", &[]);
    assert!(
        err.contains("user \"nobody\" is not in the image's /etc/passwd"),
        "{err}"
    );
    let err = build_error("other-group", &[]);
    assert!(
        err.contains("image User \"1000:50\" (uid 1000, gid 50): the image has no program that can switch to it"),
        "{err}"
    );
    let err = build_error("generated", &["--inject", "./no-such-agent:/usr/bin/agent"]);
    assert!(err.contains("no-such-agent"), "{err}");
}

/// The harness itself, without the command line: a hand-packed busybox
/// initramfs boots and its marker is seen...
#[test]
fn harness_sees_a_marker() {
    let Some(kernel) = kernel() else { return };
    let dir = scratch("harness");
    let root = dir.path().join("root");
    busybox_rootfs(&root);
    fs::create_dir_all(root.join("dev")).unwrap();
    run(Command::new("mknod")
        .arg(root.join("dev/console"))
        .args(["c", "5", "1"]));
    write_exec(
        &root.join("init"),
        "#!/bin/sh\necho \"harness-marker-$((6 * 7))\"\n/bin/poweroff -f\n",
    );
    let out = dir.path().join("harness.cpio.gz");
    pack_dir(&root, &out);
    let b = boot(&kernel, &out, Machine::Pc, "harness");
    b.assert_line("harness-marker-42");
    b.assert_clean_poweroff();
}

/// ...and a guest whose /init dies is a failure, seen quickly: the kernel
/// panics, `panic=-1` reboots and `-no-reboot` ends QEMU.
#[test]
fn harness_sees_a_panic() {
    let Some(kernel) = kernel() else { return };
    let dir = scratch("panic");
    let root = dir.path().join("root");
    busybox_rootfs(&root);
    fs::create_dir_all(root.join("dev")).unwrap();
    run(Command::new("mknod")
        .arg(root.join("dev/console"))
        .args(["c", "5", "1"]));
    write_exec(&root.join("init"), "#!/bin/sh\nexit 0\n");
    let out = dir.path().join("panic.cpio.gz");
    pack_dir(&root, &out);
    let b = boot(&kernel, &out, Machine::Pc, "panic");
    assert!(b.exited, "{}", b.console);
    assert!(b.console.contains("Kernel panic"), "{}", b.console);
    assert!(!b.has_line("harness-marker-42"));
    assert_eq!(b.poweroff_problem().as_deref(), Some("kernel panic"));
}
