//! Boot tests: images built by umoci, converted by the command line, booted
//! on a real Debian kernel in QEMU (TCG). Each test is one boot; cargo runs
//! them two at a time. A case passes on lines its program prints on the
//! serial console, computed at run time so that no file in the archive
//! contains them literally.

use crate::boot_support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use boot_support::{
    boot, boot_with, busybox_rootfs, kernel, pack_dir, run, scratch, write_exec, Boot, BootExtras,
    Layout, Machine,
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
/// - `distroless`, `distroless-arm64`: no shell, no busybox: the probe
///   program as /app, /etc/passwd and /etc/group with a non-root user in
///   two supplementary groups, /etc/hostname, and /usr/bin/pinger with a
///   file capability (cap_net_raw) recorded by umoci as an xattr.
/// - `waiter`, `killer`: the amd64 probe waiting for SIGTERM, and killing
///   itself with SIGKILL.
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
        for (tag, target, arch) in [
            ("distroless", "x86_64-unknown-linux-musl", "amd64"),
            ("distroless-arm64", "aarch64-unknown-linux-musl", "arm64"),
        ] {
            let probe = probe(target);
            let base = format!("{tag}-base");
            layout.new_image(&base, &work, |rootfs| distroless_rootfs(rootfs, &probe));
            layout.config(
                &base,
                tag,
                &[
                    &format!("--architecture={arch}"),
                    "--config.entrypoint=/app",
                    "--config.cmd=report",
                    "--config.cmd=default arg",
                    "--config.user=nonroot",
                    "--config.env=GREETING=hello distroless",
                    "--config.workingdir=/srv/data",
                ],
            );
        }
        layout.config(
            "distroless-base",
            "waiter",
            &["--config.entrypoint=/app", "--config.cmd=wait-term"],
        );
        layout.config(
            "distroless-base",
            "killer",
            &["--config.entrypoint=/app", "--config.cmd=kill-self"],
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

/// The guest probe (tests/integration/boot_support/probe.rs) as a static binary for
/// `target`, built with the toolchain's own linker, as the init is.
fn probe(target: &str) -> PathBuf {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("probe-{target}"));
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    run(Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "-O",
            "-C",
            "panic=abort",
            "-C",
            "strip=symbols",
        ])
        .args(["-C", "linker=rust-lld", "--target", target])
        .arg(boot_support::manifest_dir().join("tests/integration/boot_support/probe.rs"))
        .arg("-o")
        .arg(&out));
    out
}

/// A root with no shell: the probe as /app and as /usr/bin/pinger (with a
/// capability), account files and a hostname.
fn distroless_rootfs(rootfs: &Path, probe: &Path) {
    let copy = |to: &str| {
        let dst = rootfs.join(to);
        fs::create_dir_all(dst.parent().unwrap()).unwrap();
        fs::copy(probe, &dst).unwrap();
        run(Command::new("chmod").arg("0755").arg(&dst));
    };
    copy("app");
    copy("usr/bin/pinger");
    // VFS_CAP_REVISION_2, permitted = CAP_NET_RAW (bit 13).
    run(Command::new("python3").arg("-c").arg(format!(
        "import os; os.setxattr({:?}, 'security.capability', bytes.fromhex({CAP_NET_RAW:?}))",
        rootfs.join("usr/bin/pinger").display().to_string()
    )));
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
    )
    .unwrap();
    fs::write(
        rootfs.join("etc/group"),
        "root:x:0:\naudio:x:29:nonroot\nnonroot:x:65532:\nextra:x:700:other,nonroot\n",
    )
    .unwrap();
    fs::write(rootfs.join("etc/hostname"), "probe-host\n").unwrap();
}

const CAP_NET_RAW: &str = "0000000200200000000000000000000000000000";

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

/// `extra` may pick the sh script: both inits run Docker's rules alike.
fn assert_generated(machine: Machine, codec: &str, extra: &[&str]) {
    let Some(kernel) = kernel() else { return };
    let out = build(
        "generated",
        &format!("generated-{codec}-{machine:?}.img"),
        &[&["-c", codec][..], extra].concat(),
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
    assert_generated(Machine::Pc, "gzip", &[]);
}

#[test]
fn generated_init_zstd_microvm() {
    assert_generated(Machine::Microvm, "zstd", &[]);
}

// The kernel reads xz only with CRC32 checks and lz4 only in the legacy
// format: these boots prove the encoders write what it reads.
#[test]
fn sh_init_xz_pc() {
    assert_generated(Machine::Pc, "xz", &["--sh-init"]);
}

/// The sh script, kept for architectures without a static init, switches
/// users through the image's own su.
#[test]
fn sh_init_user_switch_gzip_pc() {
    let Some(kernel) = kernel() else { return };
    let out = build("user", "user-sh.cpio.gz", &["-c", "gzip", "--sh-init"]);
    let b = boot(&kernel, &out, Machine::Pc, "sh init user");
    b.assert_line("IDS=[1000:1000:1000 50]");
    b.assert_line("HOME=[/home/app]");
    b.assert_line("show-args-done-42");
    b.assert_line("initramfs-stream: command exited with status 0");
    b.assert_clean_poweroff();
}

#[test]
fn generated_init_lz4_microvm() {
    assert_generated(Machine::Microvm, "lz4", &[]);
}

/// What the probe reports for the distroless images' config, checked line
/// by line: PID 1's mounts, loopback, hostname, user and groups, Env,
/// WorkingDir, the capability set from the layer's xattr, and reaping.
fn assert_distroless_report(b: &Boot, args: &str) {
    for line in [
        &format!("probe args=[{args}]")[..],
        "probe ids=[65532:65532:29,700,65532]",
        "probe cwd=[/srv/data]",
        "probe env.HOME=[/home/nonroot]",
        "probe env.PATH=[/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin]",
        "probe env.GREETING=[hello distroless]",
        "probe hostname=[probe-host]",
        "probe loopback=[connected]",
        "probe stdout=[/proc/self/fd/1]",
        &format!("probe cap=[{CAP_NET_RAW}]"),
        "probe zombies=[0]",
        "probe-done-42",
        "initramfs-stream: command exited with status 0",
    ] {
        b.assert_line(line);
    }
    let mounts = b
        .lines()
        .into_iter()
        .find(|l| l.starts_with("probe mounts="))
        .unwrap_or_default();
    for m in [
        "/proc:proc",
        "/sys:sysfs",
        "/dev:devtmpfs",
        "/dev/pts:devpts",
        "/dev/shm:tmpfs",
        "/sys/fs/cgroup:cgroup2",
        "/tmp:tmpfs",
        "/run:tmpfs",
    ] {
        assert!(
            mounts.contains(m),
            "[{}] {m} not mounted: {mounts}\n{}",
            b.label,
            b.console
        );
    }
    b.assert_clean_poweroff();
    report_boot_to_command(b, "probe args=");
}

/// The suite's boot-to-command figure: QEMU's start to the command's first line.
fn report_boot_to_command(b: &Boot, first_line: &str) {
    match b.time_of(first_line) {
        Some(t) => eprintln!("boot-to-command [{}]: {:.2} s", b.label, t.as_secs_f64()),
        None => panic!(
            "[{}] the command never printed {first_line:?}:\n{}",
            b.label, b.console
        ),
    }
}

#[test]
fn distroless_static_init_gzip_pc() {
    let Some(kernel) = kernel() else { return };
    let out = build("distroless", "distroless.cpio.gz", &["-c", "gzip"]);
    let b = boot(&kernel, &out, Machine::Pc, "distroless");
    assert_distroless_report(&b, "default arg");
    assert!(
        b.console.contains("reboot: Power down"),
        "ACPI power-off expected on pc:\n{}",
        b.console
    );
}

/// Firecracker has no ACPI power-off: the init must end the VM with a
/// reboot. Words after `--` on the kernel command line replace Cmd, and a
/// NAME=VALUE the kernel hands to init reaches the command's Env.
#[test]
fn distroless_firecracker_like_kernel_args_zstd() {
    let Some(kernel) = kernel() else { return };
    let out = build("distroless", "distroless-fc.cpio.zst", &["-c", "zstd"]);
    let extras = BootExtras {
        append: "FROM_KERNEL=yes -- report \"two words\" third",
        ..Default::default()
    };
    let b = boot_with(
        &kernel,
        &out,
        Machine::Firecracker,
        "distroless firecracker",
        &extras,
    );
    b.assert_line("probe env.FROM_KERNEL=[yes]");
    assert_distroless_report(&b, "two words|third");
    assert!(
        b.console.contains("reboot: Restarting system"),
        "{}",
        b.console
    );
}

#[test]
fn distroless_arm64_gzip() {
    let Some(kernel) = Machine::Arm64.kernel() else {
        return;
    };
    let out = build(
        "distroless-arm64",
        "distroless-arm64.cpio.gz",
        &["-c", "gzip", "--platform", "linux/arm64"],
    );
    let b = boot(&kernel, &out, Machine::Arm64, "distroless arm64");
    assert_distroless_report(&b, "default arg");
}

/// Ctrl-Alt-Del (Firecracker's SendCtrlAltDel, QEMU's sendkey) reaches PID 1
/// as SIGINT; the command gets its StopSignal (SIGTERM) and ends by itself.
#[test]
fn ctrl_alt_del_stops_the_command_gracefully_pc() {
    let Some(kernel) = kernel() else { return };
    let out = build("waiter", "waiter.cpio.lz4", &["-c", "lz4"]);
    let extras = BootExtras {
        ctrl_alt_del_after: Some("probe-waiting-42"),
        ..Default::default()
    };
    let b = boot_with(&kernel, &out, Machine::Pc, "ctrl-alt-del", &extras);
    b.assert_line("probe-waiting-42");
    b.assert_line("probe-graceful-42");
    b.assert_line("initramfs-stream: command exited with status 0");
    b.assert_clean_poweroff();
}

#[test]
fn command_killed_by_a_signal_microvm() {
    let Some(kernel) = kernel() else { return };
    let out = build("killer", "killer.cpio", &["-c", "none"]);
    let b = boot(&kernel, &out, Machine::Microvm, "killed");
    b.assert_line("initramfs-stream: command killed by signal 9 (SIGKILL)");
    b.assert_clean_poweroff();
}

#[test]
fn user_switch_uncompressed_pc() {
    let Some(kernel) = kernel() else { return };
    let out = build("user", "user.cpio", &["-c", "none"]);
    let b = boot(&kernel, &out, Machine::Pc, "user");
    // app's passwd group and its supplementary group from /etc/group.
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
    // The static init switches to any uid:gid itself; the sh script needs
    // a program in the image that can.
    build("other-group", "other-group.cpio", &["-c", "none"]);
    let err = build_error("other-group", &["--sh-init"]);
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

/// scripts/demo.sh, the README's one command, with this build's binary.
#[test]
fn demo_script_boots_the_example() {
    if kernel().is_none() {
        return;
    }
    let dir = scratch("demo");
    let out = Command::new("bash")
        .arg(boot_support::manifest_dir().join("scripts/demo.sh"))
        .env("INITRAMFS_STREAM", BIN)
        .env("DEMO_DIR", dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let console = fs::read_to_string(dir.path().join("console.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "demo.sh failed:\n{}\n{console}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(console.contains("hello from /root: world"), "{console}");
}
