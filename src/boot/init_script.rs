//! The generated `/init`: a short POSIX sh script that mounts the kernel
//! filesystems, runs the image's command the way Docker would (Env,
//! WorkingDir, User, Entrypoint + Cmd), reports its exit status on the
//! console and powers the machine off.
//!
//! Every program the script calls is looked up in the image when the archive
//! is built and called by its absolute path: the kernel starts /init with no
//! PATH, and a missing program is better reported at build time.

use super::command::combine_command;
use super::path::resolve;
use super::user::{self, Identity, Tool};
use super::{BootError, ImageLookup, RunConfig, DEFAULT_PATH};
use crate::fs::{Entry, Kind};
use crate::path::rooted;

/// Quotes one shell word with single quotes; a `'` becomes `'\''`. Every
/// byte other than `'` is literal inside single quotes, newlines included.
pub fn sh_quote(word: &str) -> String {
    let mut out = String::with_capacity(word.len() + 2);
    out.push('\'');
    for c in word.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    out
}

/// Quotes only when needed, for the script's own programs and paths.
fn sh_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_/.,:=+@%-".contains(&b));
    if plain {
        word.to_string()
    } else {
        sh_quote(word)
    }
}

fn sh_line(words: &[String]) -> String {
    words
        .iter()
        .map(|w| sh_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

fn is_shell_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The script in three parts, so tests can run the body alone with the
/// host's sh (the prologue mounts filesystems, the shutdown powers off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InitScript {
    pub prologue: String,
    pub body: String,
    pub shutdown: String,
    /// WorkingDir when the image lacks it; Docker creates it, so must we.
    pub missing_workdir: Option<String>,
}

impl InitScript {
    pub fn render(&self) -> Vec<u8> {
        [self.prologue.as_str(), &self.body, &self.shutdown]
            .concat()
            .into_bytes()
    }
}

/// Finds programs in the image: in its PATH, then in the default one.
struct Finder<'a> {
    lookup: &'a dyn ImageLookup,
    dirs: Vec<String>,
}

impl Finder<'_> {
    fn executable(&self, path: &str) -> Result<Option<Vec<u8>>, BootError> {
        let resolved = resolve(self.lookup, path.as_bytes(), true)?;
        Ok(match self.lookup.entry(&resolved) {
            Some(Entry {
                kind: Kind::File { .. },
                meta,
            }) if meta.mode & 0o111 != 0 => Some(resolved),
            _ => None,
        })
    }

    fn find(&self, name: &str) -> Option<Tool> {
        self.dirs.iter().find_map(|dir| {
            let path =
                String::from_utf8_lossy(&rooted(format!("{dir}/{name}").as_bytes())).into_owned();
            let resolved = self.executable(&path).ok()??;
            let base = resolved.rsplit(|&b| b == b'/').next().unwrap_or_default();
            Some(Tool {
                path,
                busybox: base.starts_with(b"busybox"),
            })
        })
    }
}

/// Builds the script for `config`; also returns notes for the user.
pub(crate) fn generate(
    config: &RunConfig,
    lookup: &dyn ImageLookup,
) -> Result<(InitScript, Vec<String>), BootError> {
    let mut notes = Vec::new();
    let argv = combine_command(config.entrypoint.as_deref(), config.cmd.as_deref())?;

    // Env as the image sets it, PATH defaulted like Docker does.
    let mut env: Vec<(String, String)> = Vec::new();
    for item in config.env.iter().flatten() {
        if item.contains('\0') {
            return Err(BootError::NulByte(item.clone()));
        }
        match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => env.push((k.to_string(), v.to_string())),
            _ => notes.push(format!("ignoring image Env {item:?}: not NAME=VALUE")),
        }
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.insert(0, ("PATH".into(), DEFAULT_PATH.into()));
    }
    let image_path = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();

    let mut dirs: Vec<String> = Vec::new();
    for d in image_path.split(':').chain(DEFAULT_PATH.split(':')) {
        if d.starts_with('/') && !dirs.iter().any(|x| x == d) {
            dirs.push(d.to_string());
        }
    }
    let finder = Finder { lookup, dirs };
    let shell = "/bin/sh";
    if finder.executable(shell)?.is_none() {
        return Err(BootError::NoShell);
    }

    // User, resolved against the image's own account files.
    let read = |p: &[u8]| -> Result<Option<Vec<u8>>, BootError> {
        Ok(lookup.read(&resolve(lookup, p, true)?))
    };
    let spec = config.user.as_deref().unwrap_or("").trim().to_string();
    let (passwd, group) = (read(b"/etc/passwd")?, read(b"/etc/group")?);
    let id: Identity = user::resolve(&spec, passwd.as_deref(), group.as_deref())?;
    if !env.iter().any(|(k, _)| k == "HOME") {
        env.push(("HOME".into(), id.home.clone()));
    }

    // Env names the shell cannot export go through env(1), after the switch
    // so no switcher can drop them.
    let (plain, odd): (Vec<_>, Vec<_>) = env.iter().partition(|(k, _)| is_shell_name(k));
    let mut run = Vec::new();
    if !odd.is_empty() {
        let tool = finder
            .find("env")
            .ok_or_else(|| BootError::EnvNeedsEnvProgram(odd[0].0.clone()))?;
        run.push(tool.path);
        run.extend(odd.iter().map(|(k, v)| format!("{k}={v}")));
    }
    run.extend(argv.iter().cloned());
    if !id.is_root() {
        run = user::switch_argv(&id, &run, shell, &|n| finder.find(n))?;
    }

    let workdir = match config.working_dir.as_deref().map(str::trim) {
        None | Some("") => "/".to_string(),
        Some(dir) => String::from_utf8_lossy(&rooted(dir.as_bytes())).into_owned(),
    };
    let mut missing_workdir = None;
    let resolved_workdir = resolve(lookup, workdir.as_bytes(), true)?;
    match lookup.entry(&resolved_workdir) {
        Some(Entry {
            kind: Kind::Dir, ..
        }) => {}
        None => missing_workdir = Some(workdir.clone()),
        Some(_) => notes.push(format!("image WorkingDir {workdir} is not a directory")),
    }

    let program = &argv[0];
    let found = if program.contains('/') {
        let abs = if program.starts_with('/') {
            program.clone()
        } else {
            format!("{workdir}/{program}")
        };
        finder.executable(&abs)?.is_some()
    } else {
        image_path
            .split(':')
            .filter(|d| d.starts_with('/'))
            .any(|d| {
                finder
                    .executable(&format!("{d}/{program}"))
                    .ok()
                    .flatten()
                    .is_some()
            })
    };
    if !found {
        notes.push(format!("the image's command {program:?} is not an executable file in the image (PATH={image_path})"));
    }

    let prologue = prologue(&finder, lookup)?;

    let mut body =
        String::from("# The image's environment, working directory, user and command.\n");
    for (k, v) in &plain {
        body.push_str(&format!("export {}\n", sh_quote(&format!("{k}={v}"))));
    }
    body.push_str(&format!(
        "cd {} &&\n    {}\n",
        sh_quote(&workdir),
        sh_line(&run)
    ));
    body.push_str("status=$?\n");
    body.push_str("echo \"initramfs-stream: command exited with status $status\"\n");

    let shutdown = shutdown(&finder);
    Ok((
        InitScript {
            prologue,
            body,
            shutdown,
            missing_workdir,
        },
        notes,
    ))
}

fn prologue(finder: &Finder<'_>, lookup: &dyn ImageLookup) -> Result<String, BootError> {
    let mut s = String::from(
        "#!/bin/sh\n\
         # /init generated by initramfs-stream from the image's config: mount the\n\
         # kernel filesystems, run the image's command, power off.\n\n",
    );
    let Some(mount) = finder.find("mount") else {
        s.push_str("# The image has no mount program: nothing is mounted.\n\n");
        return Ok(s);
    };
    let mount = sh_word(&mount.path);
    // A mount point the image lacks is added with the archive; one that is
    // not a directory is the image's business and left alone.
    let usable = |p: &str| -> Result<bool, BootError> {
        let r = resolve(lookup, p.as_bytes(), true)?;
        Ok(matches!(
            lookup.entry(&r).map(|e| e.kind),
            None | Some(Kind::Dir)
        ))
    };
    for (fstype, options, point) in [
        ("proc", "", "/proc"),
        ("sysfs", "", "/sys"),
        ("devtmpfs", "", "/dev"),
        ("tmpfs", " -o mode=1777", "/tmp"),
        ("tmpfs", " -o mode=0755", "/run"),
    ] {
        if usable(point)? {
            s.push_str(&format!("{mount} -t {fstype}{options} {fstype} {point}\n"));
        }
        if point == "/dev" {
            // devtmpfs has no /dev/pts; ptys need one.
            if let Some(mkdir) = finder.find("mkdir") {
                s.push_str(&format!(
                    "{} -p /dev/pts && {mount} -t devpts devpts /dev/pts\n",
                    sh_word(&mkdir.path)
                ));
            }
        }
    }
    s.push('\n');
    Ok(s)
}

fn shutdown(finder: &Finder<'_>) -> String {
    let tool = |n: &str| finder.find(n).map(|t| sh_word(&t.path));
    let mut s =
        String::from("\n# Power off, so the machine neither hangs nor panics when PID 1 ends.\n");
    if let Some(sync) = tool("sync") {
        s.push_str(&format!("{sync}\n"));
    }
    if let Some(poweroff) = tool("poweroff") {
        s.push_str(&format!("{poweroff} -f\n"));
    }
    s.push_str("# Fallbacks: the kernel's magic SysRq, then a reboot (qemu -no-reboot stops).\n");
    s.push_str("echo o >/proc/sysrq-trigger\n");
    let sleep = tool("sleep");
    if let Some(sleep) = &sleep {
        s.push_str(&format!("{sleep} 5\n"));
    }
    if let Some(reboot) = tool("reboot") {
        s.push_str(&format!("{reboot} -f\n"));
    }
    s.push_str("echo b >/proc/sysrq-trigger\n");
    match sleep {
        Some(sleep) => s.push_str(&format!("while :; do {sleep} 1; done\n")),
        None => s.push_str("while :; do :; done\n"),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::testing::MapImage;
    use super::*;
    use std::process::Command;

    fn busybox_image() -> MapImage {
        let mut img = MapImage::new();
        img.busybox(&[
            "sh", "mount", "mkdir", "poweroff", "reboot", "sleep", "sync", "su", "env",
        ]);
        img.dir("/etc").dir("/proc").dir("/tmp");
        img.file(
            "/etc/passwd",
            0o644,
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        );
        img.file("/etc/group", 0o644, "root:x:0:\napp:x:1000:\n");
        img
    }

    fn config(argv: &[&str]) -> RunConfig {
        RunConfig {
            cmd: Some(argv.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    /// Runs the body part with the host's sh; returns stdout.
    fn run_body(script: &InitScript) -> String {
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(&script.body)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn nasty() -> Vec<&'static str> {
        vec![
            "plain",
            "with space",
            "it's",
            "\"double\"",
            "$HOME $(echo no) `echo no`",
            "back\\slash\\n",
            "new\nline",
            "",
            "'",
            "*",
            "-n",
        ]
    }

    #[test]
    fn arguments_survive_the_shell() {
        let mut argv = vec!["printf", "[%s]\\n"];
        argv.extend(nasty());
        let (script, _) = generate(&config(&argv), &busybox_image()).unwrap();
        let out = run_body(&script);
        let want: String = nasty().iter().map(|a| format!("[{a}]\n")).collect();
        assert_eq!(
            out,
            format!("{want}initramfs-stream: command exited with status 0\n")
        );
    }

    #[test]
    fn env_and_workdir_are_applied() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(&[
            "sh",
            "-c",
            "printf '%s|%s|%s|%s\\n' \"$GREETING\" \"$PATH\" \"$(pwd)\" \"$HOME\"",
        ]);
        cfg.env = Some(vec![
            "PATH=/usr/bin:/bin".into(),
            format!("GREETING={}", nasty().join(",")),
        ]);
        cfg.working_dir = Some(dir.path().to_string_lossy().into_owned());
        let (script, notes) = generate(&cfg, &busybox_image()).unwrap();
        // The temp dir is not in the in-memory image: Docker would create it.
        assert_eq!(
            script.missing_workdir.as_deref(),
            Some(&*cfg.working_dir.clone().unwrap())
        );
        assert!(notes.is_empty(), "{notes:?}");
        let out = run_body(&script);
        assert_eq!(
            out,
            format!(
                "{}|/usr/bin:/bin|{}|/root\ninitramfs-stream: command exited with status 0\n",
                nasty().join(","),
                dir.path().display()
            )
        );
    }

    #[test]
    fn default_path_and_status() {
        let (script, _) = generate(
            &config(&["sh", "-c", "echo \"$PATH\"; exit 7"]),
            &busybox_image(),
        )
        .unwrap();
        assert_eq!(
            run_body(&script),
            format!("{DEFAULT_PATH}\ninitramfs-stream: command exited with status 7\n")
        );
        // A failed cd is reported, and the command does not run.
        let mut cfg = config(&["echo", "ran"]);
        cfg.working_dir = Some("/nonexistent/dir".into());
        let (script, _) = generate(&cfg, &busybox_image()).unwrap();
        let out = run_body(&script);
        assert!(!out.contains("ran"), "{out}");
        assert!(
            out.contains("command exited with status") && !out.contains("status 0"),
            "{out}"
        );
    }

    #[test]
    fn odd_env_names_go_through_env() {
        let mut img = busybox_image();
        img.dir("/usr")
            .dir("/usr/bin")
            .file("/usr/bin/env", 0o755, "");
        // Not through a shell: dash drops such names from the environment.
        let mut cfg = config(&["env"]);
        cfg.env = Some(vec![
            "my.var=a b".into(),
            "my-var=$x".into(),
            "NOEQUALS".into(),
        ]);
        let (script, notes) = generate(&cfg, &img).unwrap();
        assert_eq!(notes.len(), 1, "{notes:?}");
        // On this host /usr/bin/env is the real env.
        let out = run_body(&script);
        let mine: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("my") || l.starts_with("initramfs"))
            .collect();
        assert_eq!(
            mine,
            [
                "my.var=a b",
                "my-var=$x",
                "initramfs-stream: command exited with status 0"
            ]
        );
        let mut bare = MapImage::new();
        bare.dir("/bin").file("/bin/sh", 0o755, "");
        let err = generate(&cfg, &bare).unwrap_err();
        assert!(matches!(err, BootError::EnvNeedsEnvProgram(_)), "{err}");
    }

    #[test]
    fn user_switch_uses_image_tools() {
        let mut cfg = config(&["id", "-u"]);
        cfg.user = Some("app".into());
        let (script, _) = generate(&cfg, &busybox_image()).unwrap();
        assert!(
            script.body.contains(
                "'/bin/su' '-p' '-s' '/bin/sh' '-c' 'exec \"$0\" \"$@\"' '--' 'app' 'id' '-u'"
            ),
            "{}",
            script.body
        );
        assert!(script.body.contains("export 'HOME=/home/app'"));
        let mut img = MapImage::new();
        img.busybox(&["sh"]);
        let err = generate(&cfg, &img).unwrap_err();
        assert!(matches!(err, BootError::UnknownUser(_)), "{err}");
        cfg.user = Some("1000:1000".into());
        let err = generate(&cfg, &img).unwrap_err();
        assert!(matches!(err, BootError::NoUserSwitcher { .. }), "{err}");
        // Root needs no switch, so no tool either.
        for root in ["0", "0:0", "root", " "] {
            cfg.user = Some(root.into());
            let mut img = busybox_image();
            img.entries.remove(&b"/bin/su"[..]);
            let (script, _) = generate(&cfg, &img).unwrap();
            assert!(script.body.contains("\n    'id' '-u'\n"), "{}", script.body);
        }
    }

    #[test]
    fn whole_script_shape() {
        let (script, notes) = generate(&config(&["/bin/sh"]), &busybox_image()).unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        let text = String::from_utf8(script.render()).unwrap();
        assert!(text.starts_with("#!/bin/sh\n"));
        for line in [
            "/bin/mount -t proc proc /proc\n",
            "/bin/mount -t sysfs sysfs /sys\n",
            "/bin/mount -t devtmpfs devtmpfs /dev\n",
            "/bin/mkdir -p /dev/pts && /bin/mount -t devpts devpts /dev/pts\n",
            "/bin/mount -t tmpfs -o mode=1777 tmpfs /tmp\n",
            "/bin/mount -t tmpfs -o mode=0755 tmpfs /run\n",
            "/bin/poweroff -f\n",
            "echo o >/proc/sysrq-trigger\n",
            "/bin/reboot -f\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        // The whole script parses.
        let out = Command::new("/bin/sh")
            .arg("-n")
            .arg("-c")
            .arg(&text)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn missing_programs() {
        let mut img = MapImage::new();
        img.dir("/bin").file("/bin/sh", 0o755, "");
        let (script, notes) = generate(&config(&["app"]), &img).unwrap();
        assert!(script.prologue.contains("no mount program"));
        assert!(script.shutdown.contains("while :; do :; done"));
        assert_eq!(notes.len(), 1, "{notes:?}");
        let err = generate(&config(&["app"]), &MapImage::new()).unwrap_err();
        assert!(matches!(err, BootError::NoShell));
        // A non-executable sh does not count.
        let mut img = MapImage::new();
        img.dir("/bin").file("/bin/sh", 0o644, "");
        assert!(matches!(
            generate(&config(&["app"]), &img),
            Err(BootError::NoShell)
        ));
    }

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_word("/usr/bin/mount"), "/usr/bin/mount");
        assert_eq!(sh_word("/opt/my bin/x"), "'/opt/my bin/x'");
        assert!(
            is_shell_name("_A1")
                && !is_shell_name("1A")
                && !is_shell_name("a.b")
                && !is_shell_name("")
        );
    }
}
