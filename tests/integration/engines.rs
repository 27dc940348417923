//! Real image engines as sources: a private Docker Engine (dockerd with vfs
//! storage, its own socket, data root and exec root, no iptables, no
//! bridge) and podman with its own storage. Images are built with
//! `docker build` (FROM scratch, a static busybox, RUN steps that delete
//! files, so the layers carry whiteouts), then read every way the tool
//! reads them: `docker save` piped in, `docker-daemon:`, podman's `save`
//! piped in, and the Docker-compatible API of `podman system service`.
//! Each must give the bytes of the conversion of the saved file. Engines
//! that cannot be reached (no socket, nothing listening, no permission)
//! and streams past the memory limit fail in one line.
//!
//! The engines are stopped by drop guards, also when a check fails, and
//! every command is pointed at their sockets: no other engine on the
//! machine is touched.

use crate::common;

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{assert_bytes_eq, list_dir, require, run, BIN};

/// How long an engine may take to answer on its socket.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// A process stopped with SIGTERM (then SIGKILL) when dropped.
struct Guard {
    child: Child,
    what: &'static str,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("{} did not stop on SIGTERM; killing it", self.what);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `socket` accepts connections, or panics with the log.
fn wait_for_socket(socket: &Path, guard: &mut Guard, log: &Path) {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if UnixStream::connect(socket).is_ok() {
            return;
        }
        if let Ok(Some(status)) = guard.child.try_wait() {
            panic!(
                "{} exited ({status}) before listening:\n{}",
                guard.what,
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{} did not listen on {} within {START_TIMEOUT:?}:\n{}",
        guard.what,
        socket.display(),
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// A private dockerd. Its directory is under /tmp: socket paths are
/// limited to 108 bytes, and containerd's lives inside the exec root.
struct Dockerd {
    _guard: Guard,
    dir: tempfile::TempDir,
}

impl Dockerd {
    fn start() -> Dockerd {
        require("dockerd");
        require("docker");
        let dir = tempfile::Builder::new()
            .prefix("ifs-dockerd-")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path();
        let log = d.join("dockerd.log");
        let child = Command::new("dockerd")
            .arg("--storage-driver=vfs")
            .arg(format!("--data-root={}", d.join("root").display()))
            .arg(format!("--exec-root={}", d.join("exec").display()))
            .arg(format!("--pidfile={}", d.join("dockerd.pid").display()))
            .arg(format!("--host=unix://{}", d.join("sock").display()))
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            // containerd writes stack dumps to TMPDIR: keep them in here.
            .env("TMPDIR", d)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("cannot start dockerd");
        let mut guard = Guard {
            child,
            what: "dockerd",
        };
        wait_for_socket(&d.join("sock"), &mut guard, &log);
        let engine = Dockerd { _guard: guard, dir };
        run(engine.docker().arg("version"));
        engine
    }

    fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("sock").display())
    }

    /// The docker CLI, talking only to this engine.
    fn docker(&self) -> Command {
        let mut cmd = Command::new("docker");
        cmd.env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.dir.path().join("config"))
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY");
        cmd
    }

    /// `docker build -t TAG` of a context holding `files` and a Dockerfile.
    fn build(&self, tag: &str, dockerfile: &str, files: &[(&str, &Path)]) {
        let ctx = tempfile::tempdir_in(self.dir.path()).unwrap();
        std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
        for (name, from) in files {
            std::fs::copy(from, ctx.path().join(name)).unwrap();
        }
        run(self
            .docker()
            .args(["build", "-q", "-t", tag])
            .arg(ctx.path())
            .env("DOCKER_BUILDKIT", "0"));
    }
}

/// podman with its own storage under a temp dir, never the machine's.
struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn new() -> Podman {
        require("podman");
        let dir = tempfile::Builder::new()
            .prefix("ifs-podman-")
            .tempdir_in("/tmp")
            .unwrap();
        Podman { dir }
    }

    fn podman(&self) -> Command {
        let d = self.dir.path();
        let mut cmd = Command::new("podman");
        cmd.arg(format!("--root={}", d.join("root").display()))
            .arg(format!("--runroot={}", d.join("run").display()))
            .args([
                "--storage-driver=vfs",
                "--cgroup-manager=cgroupfs",
                "--events-backend=file",
            ])
            .env("TMPDIR", d);
        cmd
    }

    /// `podman system service` on a socket of its own.
    fn service(&self) -> (Guard, String) {
        let socket = self.dir.path().join("api.sock");
        let log = self.dir.path().join("service.log");
        let child = self
            .podman()
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("cannot start podman system service");
        let mut guard = Guard {
            child,
            what: "podman system service",
        };
        wait_for_socket(&socket, &mut guard, &log);
        (guard, format!("unix://{}", socket.display()))
    }
}

/// The tool converting `image` to an uncompressed, boot-less archive.
fn convert_with(image: &str, docker_host: Option<&str>, extra: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args([image, "-c", "none", "--no-init"]).args(extra);
    match docker_host {
        Some(host) => cmd.env("DOCKER_HOST", host),
        None => cmd.env_remove("DOCKER_HOST"),
    };
    cmd.stdin(Stdio::null()).output().unwrap()
}

#[track_caller]
fn ok(out: Output, what: &str) -> Vec<u8> {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Exit status 1, one line on stderr, nothing on stdout; returns the line.
#[track_caller]
fn fails(out: Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{what} should fail: {stderr}");
    assert!(out.stdout.is_empty(), "{what} failed but wrote to stdout");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: one error line expected: {stderr:?}"
    );
    stderr
}

/// Runs `producer | initramfs-stream ARGS | cat > out` in `scratch` with
/// TMPDIR there too, its stderr also into a pipe, and returns (archive, blocks the tool wrote to the
/// file system, its exit status, its stderr).
fn piped(
    scratch: &Path,
    producer: &str,
    args: &[&str],
    env: &[(&str, String)],
) -> (Vec<u8>, u64, Option<i32>, String) {
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("out");
    let io = out_dir.path().join("io");
    let status = out_dir.path().join("status");
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    let script = format!(
        "{producer} | {{ {{ TMPDIR='{tmp}' /usr/bin/time -f %O -o '{io}' '{BIN}' {args} \
         2>&1 1>&3 3>&-; echo $? > '{status}'; }} | cat > '{err}'; }} 3>&1 | cat > '{out}'",
        tmp = scratch.display(),
        io = io.display(),
        args = quoted.join(" "),
        err = out_dir.path().join("err").display(),
        status = status.display(),
        out = out.display(),
    );
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(&script).current_dir(scratch);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd);
    let code = std::fs::read_to_string(&status)
        .unwrap()
        .trim()
        .parse()
        .ok();
    // /usr/bin/time prints a line of its own when the command fails.
    let blocks = std::fs::read_to_string(&io)
        .unwrap()
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .parse()
        .unwrap();
    let stderr = std::fs::read_to_string(out_dir.path().join("err")).unwrap();
    (std::fs::read(&out).unwrap(), blocks, code, stderr)
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid()).ok() == Some(0)
}

/// `docker-daemon:app:1` run as `nobody`, from a directory it may enter.
fn as_nobody(docker_host: &str) -> Output {
    use std::os::unix::fs::PermissionsExt;
    require("setpriv");
    let dir = tempfile::Builder::new()
        .prefix("ifs-bin-")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("initramfs-stream");
    if std::fs::hard_link(BIN, &bin).is_err() {
        std::fs::copy(BIN, &bin).unwrap();
    }
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "env"])
        .arg(format!("DOCKER_HOST={docker_host}"))
        .arg(&bin)
        .args(["docker-daemon:app:1", "-c", "none", "--no-init"])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

const APP: &str = r#"FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox --install -s /bin && mkdir -p /etc /var/cache/x && echo hello > /etc/motd && echo old > /etc/old && echo y > /var/cache/x/y && ln /etc/motd /etc/motd.link"]
RUN rm /etc/old && rm -r /var/cache/x && echo two > /etc/two
CMD ["/bin/sh"]
"#;

#[test]
fn docker_and_podman_streams_convert_like_the_saved_file() {
    require("skopeo");
    require("/usr/bin/time");
    let engine = Dockerd::start();
    let host = engine.host();
    require("busybox");
    let busybox = std::fs::canonicalize(common::fixtures::which("busybox")).unwrap();
    engine.build("app:1", APP, &[("busybox", &busybox)]);
    engine.build(
        "app:2",
        "FROM app:1\nRUN rm /etc/two && echo three > /etc/three\n",
        &[],
    );

    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let saved = w.join("app.tar");
    run(engine
        .docker()
        .args(["save", "-o"])
        .arg(&saved)
        .arg("app:1"));
    let expected = ok(
        convert_with(&format!("docker-archive:{}", saved.display()), None, &[]),
        "docker-archive:FILE",
    );
    // The same image as an OCI layout, copied by skopeo.
    let layout = w.join("layout");
    run(Command::new("skopeo").args([
        "--insecure-policy",
        "copy",
        &format!("docker-archive:{}", saved.display()),
        &format!("oci:{}:t", layout.display()),
    ]));
    let from_layout = ok(
        convert_with(&format!("oci:{}:t", layout.display()), None, &[]),
        "oci:LAYOUT",
    );
    assert_bytes_eq(&expected, &from_layout, "OCI layout vs docker-archive file");

    // `docker save | initramfs-stream docker-archive:-`, nothing written.
    let scratch = tempfile::tempdir().unwrap();
    let save = "docker save app:1";
    let env = [
        ("DOCKER_HOST", host.clone()),
        (
            "DOCKER_CONFIG",
            engine.dir.path().join("config").display().to_string(),
        ),
    ];
    for reference in ["docker-archive:-", "docker-archive:/dev/stdin"] {
        let (archive, blocks, code, stderr) = piped(
            scratch.path(),
            save,
            &[reference, "-c", "none", "--no-init"],
            &env,
        );
        assert_eq!(code, Some(0), "{reference}: {stderr}");
        assert_bytes_eq(&expected, &archive, &format!("{save} | {reference}"));
        assert_eq!(blocks, 0, "{reference}: the tool wrote to the file system");
        assert!(list_dir(scratch.path()).is_empty(), "files left in TMPDIR");
    }
    // A FIFO is a path that cannot seek either.
    let fifo = w.join("fifo");
    run(Command::new("mkfifo").arg(&fifo));
    // `docker save -o` would replace the FIFO with a file: redirect instead.
    let mut writer = Command::new("sh")
        .arg("-c")
        .arg(format!("docker save app:1 > '{}'", fifo.display()))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .spawn()
        .unwrap();
    let from_fifo = ok(
        convert_with(&format!("docker-archive:{}", fifo.display()), None, &[]),
        "docker-archive:FIFO",
    );
    assert!(writer.wait().unwrap().success());
    assert_bytes_eq(&expected, &from_fifo, "docker save to a FIFO");

    // Past --memory-limit: one line, exit 1, no output file.
    let out_dir = tempfile::tempdir().unwrap();
    let out_file = out_dir.path().join("app.cpio.gz");
    let out_arg = out_file.display().to_string();
    let (_, _, code, stderr) = piped(
        scratch.path(),
        save,
        &["docker-archive:-", "--memory-limit", "64K", "-o", &out_arg],
        &env,
    );
    assert_eq!(code, Some(1), "over the limit: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(
        stderr.contains("larger than --memory-limit") && stderr.contains("as a file"),
        "{stderr}"
    );
    assert!(
        list_dir(out_dir.path()).is_empty(),
        "an output file was left"
    );

    // docker-daemon: by tag, by full name, by ID, and re-exported past the
    // memory limit.
    let id = String::from_utf8(run(engine
        .docker()
        .args(["image", "inspect", "-f", "{{.Id}}", "app:1"])))
    .unwrap();
    for (name, extra) in [
        ("app:1", &[][..]),
        ("docker.io/library/app:1", &[][..]),
        (id.trim(), &[][..]),
        ("app:1", &["--memory-limit", "0"][..]),
    ] {
        let reference = format!("docker-daemon:{name}");
        let got = ok(convert_with(&reference, Some(&host), extra), &reference);
        assert_bytes_eq(&expected, &got, &format!("{reference} {extra:?}"));
    }
    let line = fails(
        convert_with("docker-daemon:apq:1", Some(&host), &[]),
        "no such image",
    );
    assert!(
        line.contains("no such image") && line.contains("app:1"),
        "{line}"
    );

    // Two images in one archive: by name and by position.
    let both = w.join("both.tar");
    run(engine
        .docker()
        .args(["save", "-o"])
        .arg(&both)
        .args(["app:1", "app:2"]));
    let second = ok(
        convert_with("docker-daemon:app:2", Some(&host), &[]),
        "docker-daemon:app:2",
    );
    for name in ["app:2", "docker.io/library/app:2"] {
        let got = ok(
            convert_with(
                &format!("docker-archive:{}:{name}", both.display()),
                None,
                &[],
            ),
            name,
        );
        assert_bytes_eq(&second, &got, name);
    }
    let by_index: Vec<Vec<u8>> = ["@0", "@1"]
        .iter()
        .map(|i| {
            ok(
                convert_with(&format!("docker-archive:{}:{i}", both.display()), None, &[]),
                i,
            )
        })
        .collect();
    assert!(
        by_index.contains(&expected) && by_index.contains(&second),
        "@0 and @1 are the two images"
    );

    // The layout newer Docker versions save: an OCI layout with a
    // manifest.json naming blobs, read from a file and from a pipe.
    let oci_tar = w.join("oci-docker.tar");
    let script = r#"
import json, os, sys, tarfile
layout, out = sys.argv[1], sys.argv[2]
index = json.load(open(os.path.join(layout, "index.json")))
blob = lambda d: os.path.join(layout, "blobs", "sha256", d.split(":")[1])
manifest = json.load(open(blob(index["manifests"][0]["digest"])))
docker = [{"Config": "blobs/sha256/" + manifest["config"]["digest"].split(":")[1],
           "RepoTags": ["app:1"],
           "Layers": ["blobs/sha256/" + l["digest"].split(":")[1] for l in manifest["layers"]]}]
with open(os.path.join(layout, "manifest.json"), "w") as fh:
    json.dump(docker, fh)
with tarfile.open(out, "w") as t:
    for name in sorted(os.listdir(layout)):
        t.add(os.path.join(layout, name), arcname=name)
"#;
    run(common::python()
        .arg("-c")
        .arg(script)
        .arg(&layout)
        .arg(&oci_tar));
    for reference in ["docker-archive:-", "oci-archive:-"] {
        let (archive, blocks, code, stderr) = piped(
            scratch.path(),
            &format!("cat '{}'", oci_tar.display()),
            &[reference, "-c", "none", "--no-init"],
            &[],
        );
        assert_eq!(code, Some(0), "{reference}: {stderr}");
        assert_eq!(blocks, 0, "{reference}: the tool wrote to the file system");
        assert_bytes_eq(&expected, &archive, &format!("OCI-in-tar | {reference}"));
    }
    let got = ok(
        convert_with(&format!("docker-archive:{}", oci_tar.display()), None, &[]),
        "OCI-in-tar file",
    );
    assert_bytes_eq(&expected, &got, "docker-archive:OCI-IN-TAR-FILE");

    // podman: `save` in both formats piped in, and its Docker API.
    let podman = Podman::new();
    run(podman
        .podman()
        .args(["pull", "-q"])
        .arg(format!("docker-archive:{}", saved.display())));
    let podman_cmd = |format: &str| {
        let cmd = podman.podman();
        let mut line = vec![cmd.get_program().to_string_lossy().into_owned()];
        line.extend(cmd.get_args().map(|a| format!("'{}'", a.to_string_lossy())));
        format!("{} save --format {format} app:1", line.join(" "))
    };
    for (format, reference) in [
        ("docker-archive", "docker-archive:-"),
        ("oci-archive", "oci-archive:-"),
    ] {
        let producer = podman_cmd(format);
        let (archive, blocks, code, stderr) = piped(
            scratch.path(),
            &producer,
            &[reference, "-c", "none", "--no-init"],
            &[("TMPDIR", podman.dir.path().display().to_string())],
        );
        assert_eq!(code, Some(0), "podman save --format {format}: {stderr}");
        assert_eq!(blocks, 0, "{reference}: the tool wrote to the file system");
        assert_bytes_eq(&expected, &archive, &format!("podman {format}"));
    }
    {
        let (_service, podman_host) = podman.service();
        for extra in [&[][..], &["--memory-limit", "0"][..]] {
            let got = ok(
                convert_with("docker-daemon:app:1", Some(&podman_host), extra),
                "docker-daemon: through podman",
            );
            assert_bytes_eq(&expected, &got, "podman system service");
        }
    }

    // The engine's socket, for a user who may not open it.
    if is_root() {
        let line = fails(as_nobody(&host), "permission denied");
        assert!(line.contains("permission denied"), "{line}");
    }

    // An engine that is not there: no socket, and a socket nobody serves.
    let gone = format!("unix://{}", w.join("none.sock").display());
    let line = fails(
        convert_with("docker-daemon:app:1", Some(&gone), &[]),
        "no socket",
    );
    assert!(line.contains("no such socket"), "{line}");
    let stale = w.join("stale.sock");
    drop(UnixListener::bind(&stale).unwrap());
    let stale = format!("unix://{}", stale.display());
    let line = fails(
        convert_with("docker-daemon:app:1", Some(&stale), &[]),
        "stale socket",
    );
    assert!(line.contains("connection refused"), "{line}");
    drop(engine);
}
