//! Helpers for the boot tests: a real Debian kernel booted by QEMU, test
//! images built by umoci with busybox-static, and a reading of the serial
//! console. Pass or fail is decided by lines the guest prints, never by
//! QEMU's exit status (a kernel panic also ends QEMU with status 0).

#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Per boot, then QEMU is killed.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs a command, panicking with its stderr when it fails.
pub use crate::common::run;

fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The amd64 test kernel, fetched by scripts/fetch-kernel.sh when missing
/// (which also installs QEMU). `None`, after a loud message, only when QEMU
/// cannot be had: every other missing piece is a failure.
pub fn kernel() -> Option<PathBuf> {
    static KERNEL: OnceLock<Option<PathBuf>> = OnceLock::new();
    KERNEL
        .get_or_init(|| {
            if let Some(k) = std::env::var_os("INITRAMFS_STREAM_TEST_KERNEL") {
                return Some(PathBuf::from(k));
            }
            fetch_kernel("amd64", "qemu-system-x86_64")
        })
        .clone()
}

/// The arm64 test kernel (an uncompressed Image), as [`kernel`].
pub fn kernel_arm64() -> Option<PathBuf> {
    static KERNEL: OnceLock<Option<PathBuf>> = OnceLock::new();
    KERNEL
        .get_or_init(|| fetch_kernel("arm64", "qemu-system-aarch64"))
        .clone()
}

fn fetch_kernel(arch: &str, qemu: &str) -> Option<PathBuf> {
    let mut dir = manifest_dir().join("target/test-kernel");
    if arch != "amd64" {
        dir.push(arch);
    }
    let kernel = dir.join("vmlinuz");
    if !kernel.exists() || !have(qemu) {
        let status = Command::new("sh")
            .arg(manifest_dir().join("scripts/fetch-kernel.sh"))
            .arg(arch)
            .env("INITRAMFS_STREAM_KERNEL_DIR", &dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
        eprintln!("scripts/fetch-kernel.sh {arch}: {status:?}");
    }
    if !have(qemu) {
        eprintln!();
        eprintln!("**************************************************************");
        eprintln!("*** {arch} BOOT TESTS SKIPPED: {qemu} is not installed");
        eprintln!("*** and could not be installed. Nothing was booted.");
        eprintln!("**************************************************************");
        eprintln!();
        return None;
    }
    assert!(
        kernel.exists(),
        "no {arch} test kernel at {} and scripts/fetch-kernel.sh could not fetch one",
        kernel.display()
    );
    Some(kernel)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    /// QEMU's default PC (i440FX, SeaBIOS).
    Pc,
    /// The microvm machine: no PCI, no firmware to speak of.
    Microvm,
    /// microvm without ACPI, as Firecracker: a power-off only halts, so the
    /// guest must end the VM with a reboot.
    Firecracker,
    /// arm64 `-M virt` with Debian's arm64 cloud kernel.
    Arm64,
}

impl Machine {
    pub fn kernel(self) -> Option<PathBuf> {
        match self {
            Machine::Arm64 => kernel_arm64(),
            _ => kernel(),
        }
    }
}

/// What one boot printed on the serial console.
#[derive(Debug)]
pub struct Boot {
    pub console: String,
    pub elapsed: Duration,
    /// Each console line (raw) with when it arrived, from QEMU's start.
    pub arrivals: Vec<(Duration, String)>,
    /// QEMU ended by itself (the guest powered off, rebooted or panicked)
    /// rather than being killed at the timeout.
    pub exited: bool,
    pub label: String,
}

impl Boot {
    /// The guest's console lines, without kernel messages, terminal escapes
    /// and carriage returns.
    pub fn lines(&self) -> Vec<String> {
        without_kernel_messages(&strip_escapes(&self.console))
            .split('\n')
            // A carriage return inside a line returns to column 0, as on a
            // terminal: SeaBIOS leaves a progress dot before the guest's text.
            .map(|l| {
                let l = l.trim_end_matches('\r');
                l.rsplit('\r').next().unwrap_or(l).to_string()
            })
            .collect()
    }

    pub fn has_line(&self, want: &str) -> bool {
        self.lines().iter().any(|l| l == want)
    }

    /// Panics with the whole console unless `want` is a line of it.
    pub fn assert_line(&self, want: &str) {
        assert!(
            self.has_line(want),
            "[{}] no console line {want:?} in:\n{}",
            self.label,
            self.console
        );
    }

    /// Why this boot was not a clean end (a hang, a panic, or neither a
    /// power-off nor a reboot by the guest), or `None` when it was one.
    /// A reboot counts: it is how a guest ends a Firecracker VM, and QEMU
    /// runs with `-no-reboot`.
    pub fn poweroff_problem(&self) -> Option<String> {
        if !self.exited {
            Some(format!(
                "QEMU did not stop by itself within {BOOT_TIMEOUT:?}"
            ))
        } else if self.console.contains("Kernel panic") {
            Some("kernel panic".into())
        } else if !self.console.contains("reboot: Power down")
            && !self.console.contains("reboot: Restarting system")
        {
            Some("the guest did not power off or reboot".into())
        } else {
            None
        }
    }

    /// When the first console line containing `marker` arrived.
    pub fn time_of(&self, marker: &str) -> Option<Duration> {
        self.arrivals
            .iter()
            .find(|(_, l)| l.contains(marker))
            .map(|(t, _)| *t)
    }

    /// The guest ran to its end and powered off: no panic, no hang.
    pub fn assert_clean_poweroff(&self) {
        if let Some(problem) = self.poweroff_problem() {
            panic!("[{}] {problem}:\n{}", self.label, self.console);
        }
    }
}

/// Removes the kernel's timestamped messages. One can land in the middle
/// of a line the guest writes (a loaded host makes the clocksource watchdog
/// complain): `mark[    3.2] clocksource: ...\ner-42` becomes `marker-42`.
fn without_kernel_messages(console: &str) -> String {
    let bytes = console.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let Some(len) = timestamp_len(&bytes[i..]) {
            let rest = &bytes[i + len..];
            i += len
                + rest
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(rest.len(), |p| p + 1);
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Length of a `[   12.345678]` printk timestamp at the start of `s`.
fn timestamp_len(s: &[u8]) -> Option<usize> {
    let mut i = 1;
    if s.first() != Some(&b'[') {
        return None;
    }
    while s.get(i) == Some(&b' ') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while s.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) || s.get(i) != Some(&b'.') {
        return None;
    }
    i += 1;
    if !digits(&mut i) || s.get(i) != Some(&b']') {
        return None;
    }
    Some(i + 1)
}

/// Replaces the ANSI/VT100 sequences that the firmware and the kernel print
/// by line breaks: the screen clear before the kernel starts is not followed
/// by one, and the guest's first line would be glued to the firmware's.
fn strip_escapes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            out.push('\n');
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                chars.next();
            }
        } else if c != '\u{0}' {
            out.push(c);
        }
    }
    out
}

#[test]
fn kernel_messages_are_taken_out_of_guest_lines() {
    let console =
        "a\nmark[    3.250000] clocksource: unstable\ner-42\n[    4.1] reboot: Power down\nb";
    assert_eq!(without_kernel_messages(console), "a\nmarker-42\nb");
    assert_eq!(without_kernel_messages("[x] [1.] [ 2.5"), "[x] [1.] [ 2.5");
    let boot = Boot {
        console: "Booting from ROM..\u{1b}c\u{1b}[?7l\u{1b}[2J[    0.04] MP-BIOS bug\nfirst\r\n\
                  Booting from ROM..\u{1b}c\u{1b}[?7l\u{1b}[2Jsecond\n"
            .into(),
        elapsed: Duration::ZERO,
        arrivals: Vec::new(),
        exited: true,
        label: String::new(),
    };
    assert!(
        boot.has_line("first") && boot.has_line("second"),
        "{:?}",
        boot.lines()
    );
}

/// Boots `initrd` on `kernel` and collects the console until QEMU ends or
/// `BOOT_TIMEOUT` passes (then QEMU is killed). `label` names the case in
/// messages.
pub fn boot(kernel: &Path, initrd: &Path, machine: Machine, label: &str) -> Boot {
    boot_with(kernel, initrd, machine, label, &BootExtras::default())
}

/// What a boot may add to the plain one.
#[derive(Debug, Default)]
pub struct BootExtras<'a> {
    /// Appended to the kernel command line.
    pub append: &'a str,
    /// Press Ctrl-Alt-Del (QEMU monitor `sendkey`) once a console line
    /// contains this.
    pub ctrl_alt_del_after: Option<&'a str>,
    /// Guest memory in MiB (default 256).
    pub memory_mib: Option<u64>,
}

pub fn boot_with(
    kernel: &Path,
    initrd: &Path,
    machine: Machine,
    label: &str,
    extras: &BootExtras,
) -> Boot {
    let (qemu, console) = match machine {
        Machine::Arm64 => ("qemu-system-aarch64", "ttyAMA0"),
        _ => ("qemu-system-x86_64", "ttyS0"),
    };
    let mut append = format!("console={console} panic=-1 quiet");
    let mut cmd = Command::new(qemu);
    match machine {
        Machine::Pc => {}
        // Without tsc_early_khz TCG hangs calibrating the PIT on microvm.
        Machine::Microvm => {
            append.push_str(" tsc_early_khz=2000000");
            cmd.args(["-M", "microvm"]);
        }
        Machine::Firecracker => {
            append.push_str(" tsc_early_khz=2000000");
            cmd.args(["-M", "microvm,acpi=off"]);
        }
        Machine::Arm64 => {
            cmd.args(["-M", "virt", "-cpu", "cortex-a57"]);
        }
    }
    if !extras.append.is_empty() {
        append.push(' ');
        append.push_str(extras.append);
    }
    let scratch_dir = scratch("monitor");
    let monitor = scratch_dir.path().join("monitor.sock");
    if extras.ctrl_alt_del_after.is_some() {
        cmd.arg("-monitor")
            .arg(format!("unix:{},server,nowait", monitor.display()));
    }
    let memory = extras.memory_mib.unwrap_or(256).to_string();
    cmd.args(["-accel", "tcg", "-m", &memory, "-nographic", "-no-reboot"])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .arg("-append")
        .arg(&append)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {qemu}: {e}"));
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut stderr = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || loop {
        let mut line = Vec::new();
        match stdout.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if tx.send(line).is_err() {
                    break;
                }
            }
        }
    });
    let errs = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let mut console = Vec::new();
    let mut arrivals = Vec::new();
    let deadline = start + BOOT_TIMEOUT;
    let mut exited = true;
    let mut cad_pending = extras.ctrl_alt_del_after;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let text = String::from_utf8_lossy(&line).into_owned();
                if cad_pending.is_some_and(|m| text.contains(m)) {
                    cad_pending = None;
                    send_monitor(&monitor, "sendkey ctrl-alt-delete");
                }
                arrivals.push((start.elapsed(), text));
                console.extend_from_slice(&line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                exited = false;
                let _ = child.kill();
                break;
            }
        }
    }
    let _ = child.wait();
    let elapsed = start.elapsed();
    let _ = reader.join();
    let errs = errs.join().unwrap_or_default();
    let mut console = String::from_utf8_lossy(&console).into_owned();
    if !errs.is_empty() {
        console.push_str("\n[qemu stderr] ");
        console.push_str(&String::from_utf8_lossy(&errs));
    }
    eprintln!(
        "boot [{label}] {machine:?}: {:.1} s{}",
        elapsed.as_secs_f64(),
        if exited { "" } else { " (killed at timeout)" }
    );
    Boot {
        console,
        elapsed,
        arrivals,
        exited,
        label: label.to_string(),
    }
}

/// One command to QEMU's human monitor on its unix socket.
fn send_monitor(socket: &Path, command: &str) {
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    let mut stream = UnixStream::connect(socket)
        .unwrap_or_else(|e| panic!("cannot reach the QEMU monitor at {}: {e}", socket.display()));
    writeln!(stream, "{command}").expect("write to the QEMU monitor");
    // The monitor acts on the line before it sees the socket close.
    std::thread::sleep(Duration::from_millis(300));
}

/// A scratch directory under cargo's target tmp dir, removed on drop.
pub fn scratch(name: &str) -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    fs::create_dir_all(&base).expect("create CARGO_TARGET_TMPDIR");
    tempfile::Builder::new()
        .prefix(&format!("boot-{name}-"))
        .tempdir_in(base)
        .expect("create scratch dir")
}

/// Fills `rootfs` with busybox-static and its applets as symlinks in /bin,
/// plus /etc/passwd and /etc/group with root and app (1000:1000).
pub fn busybox_rootfs(rootfs: &Path) {
    let bin = rootfs.join("bin");
    fs::create_dir_all(&bin).unwrap();
    fs::copy("/bin/busybox", bin.join("busybox")).expect("copy /bin/busybox (busybox-static)");
    fs::set_permissions(bin.join("busybox"), fs::Permissions::from_mode(0o755)).unwrap();
    let list = run(Command::new("/bin/busybox").arg("--list"));
    for applet in String::from_utf8_lossy(&list).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "busybox" {
            continue;
        }
        // Relative, so they resolve inside the image and not on the host.
        let _ = symlink("busybox", bin.join(applet));
    }
    let etc = rootfs.join("etc");
    fs::create_dir_all(&etc).unwrap();
    fs::write(
        etc.join("passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:App:/home/app:/bin/sh\n",
    )
    .unwrap();
    fs::write(
        etc.join("group"),
        "root:x:0:\napp:x:1000:\nstaff:x:50:app\n",
    )
    .unwrap();
    fs::create_dir_all(rootfs.join("home/app")).unwrap();
    std::os::unix::fs::chown(rootfs.join("home/app"), Some(1000), Some(1000)).unwrap();
}

pub fn write_exec(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// An OCI layout driven by umoci.
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn init(dir: &Path) -> Layout {
        run(Command::new("umoci").arg("init").arg("--layout").arg(dir));
        Layout {
            dir: dir.to_path_buf(),
        }
    }

    pub fn image(&self, tag: &str) -> String {
        format!("{}:{tag}", self.dir.display())
    }

    /// `oci:DIR:TAG`, for the command line.
    pub fn reference(&self, tag: &str) -> String {
        format!("oci:{}", self.image(tag))
    }

    /// A new image `tag` whose single layer is what `fill` puts in rootfs.
    pub fn new_image(&self, tag: &str, work: &Path, fill: impl FnOnce(&Path)) {
        run(Command::new("umoci")
            .arg("new")
            .arg("--image")
            .arg(self.image(tag)));
        self.add_layer(tag, tag, work, fill);
    }

    /// Tag `to`: `from` plus a layer of what `fill` changes in its rootfs.
    pub fn add_layer(&self, from: &str, to: &str, work: &Path, fill: impl FnOnce(&Path)) {
        let bundle = work.join(format!("bundle-{to}"));
        run(Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(self.image(from))
            .arg(&bundle));
        fill(&bundle.join("rootfs"));
        // The new manifest gets tag `to`; its base is what was unpacked.
        run(Command::new("umoci")
            .args(["repack", "--image"])
            .arg(self.image(to))
            .arg(&bundle));
        let _ = fs::remove_dir_all(&bundle);
    }

    /// `umoci config --image DIR:from --tag to ARGS...`
    pub fn config(&self, from: &str, to: &str, args: &[&str]) {
        run(Command::new("umoci")
            .args(["config", "--image"])
            .arg(self.image(from))
            .args(["--tag", to])
            .args(args));
    }
}

/// Packs a directory into a gzip newc archive with the host's cpio, owned
/// by root, in `find` order (directories before their contents).
pub fn pack_dir(dir: &Path, out: &Path) {
    let script = format!(
        "cd '{}' && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1 > '{}'",
        dir.display(),
        out.display()
    );
    run(Command::new("sh").arg("-c").arg(script));
}
