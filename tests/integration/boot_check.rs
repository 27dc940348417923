//! The build-time boot check and the guest memory figure, end to end: images
//! built by umoci from real programs (busybox-static, Debian's arm64
//! busybox, the host's /bin/ls and its libraries, a program compiled here
//! with a `$ORIGIN` RUNPATH), converted by the command line; the memory
//! figure is checked by booting a real kernel in QEMU at that figure and at
//! 70 % of it. Boots pass on a marker line the guest computes, never on
//! QEMU's exit status.

use crate::boot_support;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output, Stdio};

use boot_support::{
    boot_with, busybox_rootfs, manifest_dir, run, scratch, write_exec, BootExtras, Layout, Machine,
};

const BIN: &str = env!("CARGO_BIN_EXE_initramfs-stream");

fn tool(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("cannot start initramfs-stream")
}

/// The conversion succeeds; returns the `--json` summary.
fn accepted(image: &str, out: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![image, "-o", out.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let o = tool(&args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{args:?} failed: {stderr}");
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("summary: {e}: {stderr}"))
}

/// The conversion fails with one line naming every `wanted` text and
/// writes nothing; with `--no-check` it goes through.
fn refused(image: &str, out: &Path, extra: &[&str], wanted: &[&str]) {
    let mut args = vec![image, "-o", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = tool(&args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("initramfs-stream: the image will not boot: "),
        "{stderr}"
    );
    for w in wanted {
        assert!(stderr.contains(w), "no {w:?} in: {stderr}");
    }
    assert!(!out.exists(), "{} was written", out.display());
    args.push("--no-check");
    let o = tool(&args);
    assert!(
        o.status.success(),
        "--no-check: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.exists());
    fs::remove_file(out).unwrap();
}

/// Copies a host path into `root` as the host has it: symlinks on the way
/// (usrmerge's /lib -> usr/lib) and at the end are copied and followed.
fn mirror(root: &Path, path: &Path) {
    let mut at = PathBuf::from("/");
    let comps: Vec<Component> = path.components().collect();
    for (i, c) in comps.iter().enumerate() {
        let Component::Normal(name) = c else { continue };
        at.push(name);
        let inside = root.join(at.strip_prefix("/").unwrap());
        let meta = fs::symlink_metadata(&at).unwrap();
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&at).unwrap();
            if fs::symlink_metadata(&inside).is_err() {
                symlink(&target, &inside).unwrap();
            }
            let rest: PathBuf = comps[i + 1..].iter().collect();
            return mirror(root, &at.parent().unwrap().join(target).join(rest));
        } else if meta.is_dir() {
            fs::create_dir_all(&inside).unwrap();
        } else {
            fs::copy(&at, &inside).unwrap();
        }
    }
}

/// Copies `program` and what `ldd` lists for it into `root`.
fn with_libraries(root: &Path, program: &Path) {
    let out = run(Command::new("ldd").arg(program));
    for line in String::from_utf8_lossy(&out).lines() {
        if let Some(p) = line.split_whitespace().find(|w| w.starts_with('/')) {
            mirror(root, Path::new(p));
        }
    }
}

/// A program `hello` that needs a shared library `libgreet.so`, both
/// built by `cc` in `dir/src` (returned); `link` goes to hello's link.
fn greeter(dir: &Path, cc: &str, link: &[&str]) -> PathBuf {
    let src = dir.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(
        src.join("greet.c"),
        "#include <stdio.h>\nvoid greet(void) { puts(\"hi\"); }\n",
    )
    .unwrap();
    fs::write(
        src.join("hello.c"),
        "void greet(void);\nint main(void) { greet(); return 0; }\n",
    )
    .unwrap();
    run(Command::new(cc).current_dir(&src).args([
        "-shared",
        "-fPIC",
        "-Wl,-soname,libgreet.so",
        "-o",
        "libgreet.so",
        "greet.c",
    ]));
    run(Command::new(cc)
        .current_dir(&src)
        .args(["-o", "hello", "hello.c", "-L.", "-lgreet"])
        .args(link));
    src
}

fn config(layout: &Layout, tag: &str, args: &[&str]) {
    layout.config(tag, tag, args);
}

/// Debian's static arm64 busybox (scripts/fetch-arm64-busybox.sh).
fn arm64_busybox() -> PathBuf {
    PathBuf::from(
        String::from_utf8(run(
            Command::new("sh").arg(manifest_dir().join("scripts/fetch-arm64-busybox.sh"))
        ))
        .unwrap()
        .trim(),
    )
}

#[test]
fn arm64_program_in_an_amd64_image_is_refused() {
    let arm = arm64_busybox();
    let work = scratch("check-arm");
    let layout = Layout::init(&work.path().join("oci"));
    layout.new_image("arm", work.path(), |root| {
        busybox_rootfs(root);
        fs::copy(&arm, root.join("app")).unwrap();
        fs::set_permissions(root.join("app"), fs::Permissions::from_mode(0o755)).unwrap();
    });
    config(&layout, "arm", &["--config.cmd=/app", "--config.cmd=true"]);
    let out = work.path().join("out.img");
    refused(
        &layout.reference("arm"),
        &out,
        &[],
        &["/app is an ELF for aarch64 (64-bit, little-endian), but the image's platform is amd64 (x86-64)"],
    );
    // `--init` with it: /init itself is checked.
    refused(
        &layout.reference("arm"),
        &out,
        &["--init", arm.to_str().unwrap()],
        &["/init is an ELF for aarch64"],
    );
    // A static amd64 /init is fine.
    let s = accepted(&layout.reference("arm"), &out, &["--init", "/bin/busybox"]);
    assert_eq!(s["check"]["program"], "/init");
    assert_eq!(s["check"]["kind"], "static");
    assert_eq!(s["check"]["machine"], "x86-64");
    // --no-init: nothing runs, nothing is checked.
    let s = accepted(&layout.reference("arm"), &out, &["--no-init"]);
    assert!(s["check"].is_null(), "{s}");
}

#[test]
fn dynamic_program_and_its_libraries() {
    let work = scratch("check-dyn");
    let layout = Layout::init(&work.path().join("oci"));
    let ls = fs::canonicalize("/bin/ls").unwrap();
    layout.new_image("deb", work.path(), |root| {
        busybox_rootfs(root);
        mirror(root, &ls);
        with_libraries(root, &ls);
    });
    let ls_str = ls.to_str().unwrap();
    config(
        &layout,
        "deb",
        &[&format!("--config.cmd={ls_str}"), "--config.cmd=/"],
    );
    let out = work.path().join("out.img");
    let s = accepted(&layout.reference("deb"), &out, &[]);
    let check = &s["check"];
    assert_eq!(check["program"], ls_str);
    assert_eq!(check["kind"], "dynamic");
    let libs: Vec<String> = serde_json::from_value(check["libraries"].clone()).unwrap();
    assert!(libs.iter().any(|l| l.ends_with("/libc.so.6")), "{libs:?}");
    fs::remove_file(&out).unwrap();

    let libc = fs::canonicalize("/lib/x86_64-linux-gnu/libc.so.6").unwrap();
    refused(
        &layout.reference("deb"),
        &out,
        &["--exclude", libc.to_str().unwrap()],
        &[&format!(
            "{ls_str} needs libc.so.6, which is in none of /lib/x86_64-linux-gnu, /usr/lib/x86_64-linux-gnu, /lib64, /usr/lib64, /lib, /usr/lib"
        )],
    );
    // The loader itself.
    let ld = fs::canonicalize("/lib64/ld-linux-x86-64.so.2").unwrap();
    refused(
        &layout.reference("deb"),
        &out,
        &["--exclude", ld.to_str().unwrap()],
        &[&format!(
            "{ls_str}: its ELF interpreter (dynamic loader) /lib64/ld-linux-x86-64.so.2"
        )],
    );
}

#[test]
fn runpath_with_origin_is_followed() {
    let work = scratch("check-origin");
    let src = greeter(
        work.path(),
        "cc",
        &["-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib"],
    );
    let dynamic = run(Command::new("readelf").arg("-d").arg(src.join("hello")));
    assert!(
        String::from_utf8_lossy(&dynamic).contains("(RUNPATH)"),
        "the test program has no RUNPATH"
    );
    let layout = Layout::init(&work.path().join("oci"));
    layout.new_image("app", work.path(), |root| {
        busybox_rootfs(root);
        fs::create_dir_all(root.join("opt/app/bin")).unwrap();
        fs::create_dir_all(root.join("opt/app/lib")).unwrap();
        fs::copy(src.join("hello"), root.join("opt/app/bin/hello")).unwrap();
        fs::copy(
            src.join("libgreet.so"),
            root.join("opt/app/lib/libgreet.so"),
        )
        .unwrap();
        with_libraries(root, &src.join("hello"));
    });
    config(&layout, "app", &["--config.entrypoint=/opt/app/bin/hello"]);
    let out = work.path().join("out.img");
    let s = accepted(&layout.reference("app"), &out, &[]);
    let libs: Vec<String> = serde_json::from_value(s["check"]["libraries"].clone()).unwrap();
    assert_eq!(libs[0], "/opt/app/bin/../lib/libgreet.so", "{libs:?}");
    fs::remove_file(&out).unwrap();
    refused(
        &layout.reference("app"),
        &out,
        &["--exclude", "/opt/app/lib"],
        &["/opt/app/bin/hello needs libgreet.so, which is in none of /opt/app/bin/../lib, /lib/x86_64-linux-gnu"],
    );
}

#[test]
fn script_with_a_missing_interpreter_is_refused() {
    let work = scratch("check-script");
    let layout = Layout::init(&work.path().join("oci"));
    layout.new_image("py", work.path(), |root| {
        busybox_rootfs(root);
        write_exec(&root.join("app"), "#!/usr/bin/python3\nprint('hi')\n");
        write_exec(&root.join("ok"), "#!/bin/sh\necho hi\n");
    });
    config(&layout, "py", &["--config.cmd=/app"]);
    let out = work.path().join("out.img");
    refused(
        &layout.reference("py"),
        &out,
        &[],
        &["/app: its #! interpreter /usr/bin/python3 does not exist in the image"],
    );
    // A program that is not in PATH, and a script whose interpreter is there.
    config(&layout, "py", &["--config.cmd=python3"]);
    refused(
        &layout.reference("py"),
        &out,
        &[],
        &["the program python3 is not in the image's PATH (looked in /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)"],
    );
    config(&layout, "py", &["--config.cmd=/ok"]);
    let s = accepted(&layout.reference("py"), &out, &[]);
    assert_eq!(s["check"]["interpreters"][0], "/bin/busybox", "{s}");
}

/// Prints the marker (computed, so no file holds it), then powers off.
const MARKER_INIT: &str =
    "#!/bin/sh\necho \"guest-memory-marker-$((6 * 7))\"\n/bin/busybox poweroff -f\n";
const MARKER: &str = "guest-memory-marker-42";
const UNPACK_FAILED: &str = "Initramfs unpacking failed";

/// Converts with `extra`, then boots at the computed figure (must boot) and
/// at 70 % of it (must not, and print `reason` when given). Returns
/// (archive bytes, figure in MiB).
fn boot_at_figure(label: &str, extra: &[&str], reason: Option<&str>) -> Option<(u64, u64)> {
    boot_at_figure_on(Machine::Pc, label, extra, reason)
}

/// [`boot_at_figure`] on `machine`: for [`Machine::Arm64`] the image is
/// arm64 (Debian's arm64 busybox, `architecture: arm64`), so the figure
/// uses the arm64 kernel's constants.
fn boot_at_figure_on(
    machine: Machine,
    label: &str,
    extra: &[&str],
    reason: Option<&str>,
) -> Option<(u64, u64)> {
    let kernel = machine.kernel()?;
    let work = scratch(label);
    let layout = Layout::init(&work.path().join("oci"));
    if machine == Machine::Arm64 {
        let arm = arm64_busybox();
        layout.new_image("base", work.path(), |root| {
            let bin = root.join("bin");
            fs::create_dir_all(&bin).unwrap();
            fs::copy(&arm, bin.join("busybox")).unwrap();
            fs::set_permissions(bin.join("busybox"), fs::Permissions::from_mode(0o755)).unwrap();
            symlink("busybox", bin.join("sh")).unwrap();
        });
        layout.config("base", "bb", &["--architecture=arm64"]);
    } else {
        layout.new_image("bb", work.path(), busybox_rootfs);
    }
    let init = work.path().join("init.sh");
    write_exec(&init, MARKER_INIT);
    let out = work.path().join("initrd.img");
    let mut args = vec!["--init", init.to_str().unwrap()];
    args.extend_from_slice(extra);
    let s = accepted(&layout.reference("bb"), &out, &args);
    let figure = s["guest_memory_bytes"].as_u64().unwrap();
    assert_eq!(figure % (1 << 20), 0);
    let mib = figure >> 20;
    let at = boot_with(
        &kernel,
        &out,
        machine,
        &format!("{label} at {mib} MiB"),
        &BootExtras {
            memory_mib: Some(mib),
            ..BootExtras::default()
        },
    );
    at.assert_line(MARKER);
    assert!(
        !at.console.contains(UNPACK_FAILED),
        "[{label}] at {mib} MiB:\n{}",
        at.console
    );
    let low = mib * 7 / 10;
    let below = boot_with(
        &kernel,
        &out,
        machine,
        &format!("{label} at {low} MiB"),
        &BootExtras {
            memory_mib: Some(low),
            ..BootExtras::default()
        },
    );
    // After a failed unpack the kernel still runs /init if it got that far:
    // a tree cut short is not a boot either.
    assert!(
        !below.has_line(MARKER) || below.console.contains(UNPACK_FAILED),
        "[{label}] booted at {low} MiB, 70 % of the {mib} MiB figure:\n{}",
        below.console
    );
    if let Some(reason) = reason {
        assert!(
            below.console.contains(reason),
            "[{label}] at {low} MiB, no {reason:?} in:\n{}",
            below.console
        );
    }
    let size = fs::metadata(&out).unwrap().len();
    eprintln!("{label}: archive {size} bytes, guest memory {mib} MiB, boots; {low} MiB does not");
    Some((size, mib))
}

#[test]
fn small_archive_boots_at_its_figure_and_not_below() {
    // The kernel stops before its console is up: nothing to match.
    boot_at_figure("mem-small", &["-c", "gzip"], None);
}

/// 200 MiB of incompressible files in a scratch directory, to inject.
fn random_files(label: &str) -> tempfile::TempDir {
    let data = scratch(label);
    let mut random = fs::File::open("/dev/urandom").unwrap();
    for i in 0..20 {
        let mut f = fs::File::create(data.path().join(format!("f{i}"))).unwrap();
        let mut chunk = vec![0u8; 10 << 20];
        std::io::Read::read_exact(&mut random, &mut chunk).unwrap();
        f.write_all(&chunk).unwrap();
    }
    data
}

#[test]
fn large_archive_boots_at_its_figure_and_not_below() {
    let data = random_files("mem-data");
    let inject = format!("{}:/data", data.path().display());
    let result = boot_at_figure(
        "mem-large",
        &["-c", "none", "--inject", &inject],
        Some("Initramfs unpacking failed: write error"),
    );
    if let Some((size, _)) = result {
        assert!(size > 200 << 20);
    }
}

/// The arm64 kernel sets aside a CMA area the rootfs tmpfs is not sized
/// from: the figure for arm64 counts it (amd64's constants were 50 MiB
/// short for this tree).
#[test]
fn large_archive_boots_at_its_figure_and_not_below_arm64() {
    let data = random_files("mem-data-arm64");
    let inject = format!("{}:/data", data.path().display());
    let result = boot_at_figure_on(
        Machine::Arm64,
        "mem-large-arm64",
        &["-c", "none", "--inject", &inject],
        Some("Initramfs unpacking failed: write error"),
    );
    if let Some((size, _)) = result {
        assert!(size > 200 << 20);
    }
}

#[test]
fn guest_memory_limit_refuses_without_writing() {
    let work = scratch("mem-limit");
    let layout = Layout::init(&work.path().join("oci"));
    layout.new_image("bb", work.path(), busybox_rootfs);
    config(&layout, "bb", &["--config.cmd=sh"]);
    let image = layout.reference("bb");
    let out = work.path().join("out.img");
    for codec in ["none", "gzip"] {
        let s = accepted(&image, &out, &["-c", codec]);
        fs::remove_file(&out).unwrap();
        let figure = s["guest_memory_bytes"].as_u64().unwrap();
        let at = format!("{}M", figure >> 20);
        accepted(&image, &out, &["-c", codec, "--guest-memory", &at]);
        fs::remove_file(&out).unwrap();
        let below = format!("{}M", (figure >> 20) - 1);
        let o = tool(&[
            &image,
            "-o",
            out.to_str().unwrap(),
            "-c",
            codec,
            "--guest-memory",
            &below,
        ]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{codec}: {stderr}");
        assert!(
            stderr.contains("the archive needs at least") && stderr.contains("over --guest-memory"),
            "{codec}: {stderr}"
        );
        assert!(!out.exists(), "{codec}: written despite the limit");
    }
}

#[test]
fn many_small_files_boot_at_their_figure_and_not_below() {
    // Debian's python3 standard library: 1,500 files, most under 4 KiB
    // away from a page boundary.
    let out = run(Command::new("/usr/bin/python3").args([
        "-c",
        "import sysconfig; print(sysconfig.get_paths()['stdlib'])",
    ]));
    let stdlib = String::from_utf8(out).unwrap();
    let inject = format!("{}:/usr/lib/python3", stdlib.trim());
    boot_at_figure(
        "mem-files",
        &["-c", "none", "--inject", &inject],
        Some("Initramfs unpacking failed: write error"),
    );
}

#[test]
fn musl_program_follows_its_path_file() {
    let work = scratch("check-musl");
    let src = greeter(work.path(), "musl-gcc", &[]);
    let layout = Layout::init(&work.path().join("oci"));
    layout.new_image("musl", work.path(), |root| {
        busybox_rootfs(root);
        mirror(root, Path::new("/lib/ld-musl-x86_64.so.1"));
        fs::create_dir_all(root.join("opt/app")).unwrap();
        fs::create_dir_all(root.join("opt/lib")).unwrap();
        fs::copy(src.join("hello"), root.join("opt/app/hello")).unwrap();
        fs::copy(src.join("libgreet.so"), root.join("opt/lib/libgreet.so")).unwrap();
    });
    config(&layout, "musl", &["--config.cmd=/opt/app/hello"]);
    let out = work.path().join("out.img");
    // libc.so is the loader itself; libgreet.so is in no default directory.
    refused(
        &layout.reference("musl"),
        &out,
        &[],
        &["/opt/app/hello needs libgreet.so, which is in none of /lib, /usr/local/lib, /usr/lib"],
    );
    layout.add_layer("musl", "musl", work.path(), |root| {
        fs::write(root.join("etc/ld-musl-x86_64.path"), "/usr/lib\n/opt/lib\n").unwrap();
    });
    let s = accepted(&layout.reference("musl"), &out, &[]);
    assert_eq!(s["check"]["loader"], "/lib/ld-musl-x86_64.so.1");
    assert_eq!(
        s["check"]["libraries"],
        serde_json::json!(["/opt/lib/libgreet.so"])
    );
}

#[test]
fn distroless_image_with_a_user() {
    // A static program and /etc/passwd, nothing else: no shell, no loader.
    let work = scratch("check-distroless");
    let layout = Layout::init(&work.path().join("oci"));
    layout.new_image("dl", work.path(), |root| {
        fs::create_dir_all(root.join("usr/local/bin")).unwrap();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::copy("/bin/busybox", root.join("usr/local/bin/server")).unwrap();
        fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532::/home/nonroot:/sbin/nologin\n",
        )
        .unwrap();
    });
    config(
        &layout,
        "dl",
        &["--config.entrypoint=server", "--config.user=nonroot"],
    );
    let out = work.path().join("out.img");
    let s = accepted(&layout.reference("dl"), &out, &[]);
    assert_eq!(s["check"]["program"], "/usr/local/bin/server");
    assert_eq!(s["check"]["kind"], "static");
    fs::remove_file(&out).unwrap();
    config(&layout, "dl", &["--config.user=nobody"]);
    let o = tool(&[&layout.reference("dl"), "-o", out.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("nobody") && stderr.contains("/etc/passwd"),
        "{stderr}"
    );
    assert!(!out.exists());
}
