//! The /init of initramfs-stream archives: PID 1 of a microVM that runs one
//! container image's command, then ends the VM.
//!
//! Boot sequence:
//! 1. Give fds 0-2 to /dev/console if the kernel did not; install a panic
//!    hook that reports and ends the VM (PID 1 must never exit).
//! 2. Block the signals init handles (`supervise`), then route Ctrl-Alt-Del
//!    to SIGINT (`system`).
//! 3. Mount /proc, /sys, /dev, /dev/pts, /dev/shm, /sys/fs/cgroup, and /tmp
//!    and /run when empty; link /dev/fd and /dev/std* (see `mounts`).
//! 4. Bring up `lo`.
//! 5. Read the run config (`config`) and /proc/cmdline (`cmdline`).
//! 6. Set the hostname, apply the extended attributes.
//! 7. Resolve the user (`user`), build the environment (`env`), create and
//!    enter the working directory, find the program (`command`).
//! 8. Fork and exec the command (`command`).
//! 9. Reap, forward signals, stop on SIGINT until the command ends
//!    (`supervise`); print its exit status.
//! 10. Terminate everything else, sync, and power off or reboot
//!     (`shutdown`).
//!
//! What keeps the command from running (signals that cannot be blocked, no
//! or a bad run config, an unknown user, no program) is one
//! `initramfs-stream: error: ...` line, then step 10. The rest (Ctrl-Alt-Del
//! routing, mounts, lo, /proc/cmdline, hostname, attributes) only warns: the
//! command may not need what failed.

mod cmdline;
mod command;
mod config;
mod console;
mod env;
mod json;
mod mounts;
mod shutdown;
mod signal;
mod supervise;
mod system;
mod user;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use console::escape;

fn main() {
    console::ensure_stdio();
    // SAFETY: getpid cannot fail.
    if unsafe { libc::getpid() } != 1 {
        // Mounting, kill(-1) and reboot are for a VM's PID 1 only.
        say!("error: this is the /init of a microVM and runs only as PID 1");
        std::process::exit(2);
    }
    std::panic::set_hook(Box::new(|info| {
        say!(
            "error: internal error: {}",
            escape(info.to_string().as_bytes())
        );
        shutdown::end_vm();
    }));
    // Blocked from the start, so that a Ctrl-Alt-Del during setup waits
    // for the command instead of being dropped.
    let signals = supervise::Signals::block();
    system::ctrl_alt_del_to_sigint();
    mounts::mount_all();
    console::ensure_stdio();
    system::loopback_up();
    if let Err(e) = signals.and_then(run) {
        say!("error: {e}");
    }
    shutdown::end_vm();
}

/// Steps 5-9: returns once the command has ended, or with what kept it from
/// starting.
fn run(signals: supervise::Signals) -> Result<(), String> {
    let text = fs::read(config::PATH)
        .map_err(|e| format!("cannot read the run config {}: {e}", config::PATH))?;
    let config = config::parse(&text).map_err(|e| format!("run config {}: {e}", config::PATH))?;
    let kernel = match fs::read("/proc/cmdline") {
        Ok(text) => cmdline::parse(&text),
        Err(e) => {
            warn!("cannot read /proc/cmdline, so no overrides from it: {e}");
            cmdline::KernelCmdline::default()
        }
    };

    system::set_hostname(&system::hostname(
        &config.hostname,
        fs::read("/etc/hostname").ok().as_deref(),
    ));
    system::apply_xattrs(&config.xattrs);

    let user_spec = kernel
        .user
        .clone()
        .unwrap_or_else(|| config.user.clone().into_bytes());
    let identity = user::resolve(
        &user_spec,
        fs::read("/etc/passwd").ok().as_deref(),
        fs::read("/etc/group").ok().as_deref(),
    )?;

    let init_env: Vec<Vec<u8>> = std::env::vars_os()
        .map(|(k, v)| [k.into_vec(), b"=".to_vec(), v.into_vec()].concat())
        .collect();
    let env = env::command_env(&config.env, &init_env, identity.home.as_deref());

    let argv: Vec<Vec<u8>> = config
        .entrypoint
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .chain(match kernel.args {
            Some(args) => args,
            None => config.cmd.iter().map(|s| s.as_bytes().to_vec()).collect(),
        })
        .collect();
    let Some(program_name) = argv.first() else {
        return Err("nothing to run: no entrypoint or cmd in the run config and no words after -- on the kernel command line".into());
    };

    let workdir = kernel
        .workdir
        .clone()
        .unwrap_or_else(|| config.working_dir.clone().into_bytes());
    enter_workdir(&workdir)?;

    let path_var = env::get(&env, b"PATH").unwrap_or_default();
    let program = command::find_program(program_name, path_var)?;
    let command = command::Command::new(&program, &argv, &env, identity)?;

    let pid = command.spawn()?;
    let exit = supervise::wait(&signals, pid, config.stop_signal, config.stop_timeout);
    say!("{}", exit.describe());
    Ok(())
}

/// mkdir -p (0755) then chdir; `""` is `/`, a relative path is taken from `/`.
fn enter_workdir(dir: &[u8]) -> Result<(), String> {
    let dir = Path::new("/").join(OsStr::from_bytes(if dir.is_empty() { b"/" } else { dir }));
    let shown = || escape(dir.as_os_str().as_bytes());
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&dir)
        .map_err(|e| format!("cannot create the working directory {}: {e}", shown()))?;
    std::env::set_current_dir(&dir)
        .map_err(|e| format!("cannot enter the working directory {}: {e}", shown()))
}
