//! A guest program for the boot tests, built at test time as a static musl
//! binary for x86_64 and aarch64 (std only, libc by `extern`): it stands in
//! for a distroless image's service and reports what PID 1 set up for it.
//! Each report line is `probe NAME=[VALUE]`; markers are computed at run
//! time, so no file of the archive holds them literally.
//!
//! Modes (argv[1]): `report [ARGS...]`, `wait-term`, `kill-self`.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

extern "C" {
    fn getuid() -> u32;
    fn getgid() -> u32;
    fn getgroups(size: i32, list: *mut u32) -> i32;
    fn getpid() -> i32;
    fn fork() -> i32;
    fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    fn kill(pid: i32, sig: i32) -> i32;
    fn signal(sig: i32, handler: extern "C" fn(i32)) -> usize;
    fn lgetxattr(path: *const u8, name: *const u8, value: *mut u8, size: usize) -> isize;
    fn _exit(code: i32) -> !;
}

const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;

fn say(name: &str, value: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "probe {name}=[{value}]");
    let _ = out.flush();
}

fn marker(word: &str) -> String {
    format!("probe-{word}-{}", std::process::id() % 1 + 6 * 7)
}

fn groups() -> String {
    let mut list = [0u32; 64];
    let n = unsafe { getgroups(64, list.as_mut_ptr()) };
    let mut g: Vec<u32> = list[..n.max(0) as usize].to_vec();
    g.sort_unstable();
    g.iter().map(|g| g.to_string()).collect::<Vec<_>>().join(",")
}

/// An orphan that exits is reparented to PID 1; only PID 1 can reap it.
fn zombies_after_orphan() -> usize {
    unsafe {
        let child = fork();
        if child == 0 {
            if fork() == 0 {
                std::thread::sleep(Duration::from_millis(200));
                _exit(0);
            }
            _exit(0);
        }
        let mut status = 0;
        waitpid(child, &mut status, 0);
    }
    std::thread::sleep(Duration::from_millis(1500));
    let mut zombies = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) {
            // "pid (comm) S ...": the state follows the last ')'.
            if stat.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')) {
                zombies += 1;
            }
        }
    }
    zombies
}

fn loopback() -> &'static str {
    let Ok(listener) = TcpListener::bind("127.0.0.1:0") else {
        return "no-bind";
    };
    let Ok(addr) = listener.local_addr() else {
        return "no-addr";
    };
    match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        Ok(_) => "connected",
        Err(_) => "refused",
    }
}

fn xattr(path: &str, name: &str) -> String {
    let (p, n) = (format!("{path}\0"), format!("{name}\0"));
    let mut buf = [0u8; 64];
    let len = unsafe { lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr(), buf.len()) };
    if len < 0 {
        return "none".into();
    }
    buf[..len as usize].iter().map(|b| format!("{b:02x}")).collect()
}

fn mounted() -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut kinds: Vec<String> = mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() > 2).then(|| format!("{}:{}", f[1], f[2]))
        })
        .filter(|m| !m.starts_with("/:"))
        .collect();
    kinds.sort();
    kinds.join(",")
}

fn report(args: &[String]) -> i32 {
    say("args", args.join("|"));
    say("ids", format!("{}:{}:{}", unsafe { getuid() }, unsafe { getgid() }, groups()));
    say("cwd", std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default());
    for name in ["HOME", "PATH", "GREETING", "FROM_KERNEL"] {
        say(&format!("env.{name}"), std::env::var(name).unwrap_or_else(|_| "unset".into()));
    }
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    say("hostname", hostname.trim());
    say("loopback", loopback());
    say("mounts", mounted());
    say("stdout", std::fs::read_link("/dev/stdout").map(|p| p.display().to_string()).unwrap_or_default());
    say("cap", xattr("/usr/bin/pinger", "security.capability"));
    say("zombies", zombies_after_orphan());
    println!("{}", marker("done"));
    std::env::var("EXIT_WITH").ok().and_then(|v| v.parse().ok()).unwrap_or(0)
}

static TERM: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: i32) {
    TERM.store(true, Ordering::SeqCst);
}

fn wait_term() -> i32 {
    unsafe { signal(SIGTERM, on_term) };
    println!("{}", marker("waiting"));
    for _ in 0..600 {
        if TERM.load(Ordering::SeqCst) {
            println!("{}", marker("graceful"));
            return 0;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("probe: no SIGTERM within 60 s");
    1
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let code = match args.get(1).map(String::as_str) {
        Some("report") => report(&args[2..]),
        Some("wait-term") => wait_term(),
        Some("kill-self") => unsafe {
            kill(getpid(), SIGKILL);
            1
        },
        other => {
            println!("probe: unknown mode {other:?}");
            2
        }
    };
    std::process::exit(code);
}
