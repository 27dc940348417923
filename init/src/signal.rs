//! Signal names and numbers, as Docker spells them (`SIGTERM`, `TERM`, `15`;
//! real-time signals as `SIGRTMIN+n` with SIGRTMIN = 34, SIGRTMAX = 64).

const NAMES: &[(&str, libc::c_int)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
    // Aliases, after the canonical names so that `name` never picks them.
    ("IOT", libc::SIGABRT),
    ("CLD", libc::SIGCHLD),
    ("POLL", libc::SIGIO),
];

const RTMIN: libc::c_int = 34;
const RTMAX: libc::c_int = 64;

/// `SIGTERM`, `TERM`, `sigterm`, `15`, `SIGRTMIN+3`, `RTMAX-1` -> the number.
pub fn parse(text: &str) -> Option<libc::c_int> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok().filter(|n| (1..=RTMAX).contains(n));
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = NAMES.iter().find(|(s, _)| *s == name) {
        return Some(n);
    }
    let offset = |s: &str| -> Option<libc::c_int> {
        if s.is_empty() {
            Some(0)
        } else if s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let n = if let Some(rest) = name.strip_prefix("RTMIN") {
        RTMIN + offset(rest.strip_prefix('+').unwrap_or(rest))?
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        RTMAX - offset(rest.strip_prefix('-').unwrap_or(rest))?
    } else {
        return None;
    };
    (RTMIN..=RTMAX).contains(&n).then_some(n)
}

/// 15 -> `SIGTERM`, 36 -> `SIGRTMIN+2`, anything else -> `SIG<n>`.
pub fn name(n: libc::c_int) -> String {
    if let Some((s, _)) = NAMES.iter().find(|(_, v)| *v == n) {
        format!("SIG{s}")
    } else if (RTMIN..=RTMAX).contains(&n) {
        if n == RTMIN {
            "SIGRTMIN".into()
        } else {
            format!("SIGRTMIN+{}", n - RTMIN)
        }
    } else {
        format!("SIG{n}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_spellings() {
        assert_eq!(parse("SIGTERM"), Some(libc::SIGTERM));
        assert_eq!(parse("TERM"), Some(libc::SIGTERM));
        assert_eq!(parse("sigquit"), Some(libc::SIGQUIT));
        assert_eq!(parse("15"), Some(15));
        assert_eq!(parse("9"), Some(libc::SIGKILL));
        assert_eq!(parse("SIGRTMIN"), Some(34));
        assert_eq!(parse("SIGRTMIN+3"), Some(37));
        assert_eq!(parse("RTMAX-1"), Some(63));
        assert_eq!(parse("SIGWINCH"), Some(libc::SIGWINCH));
        for bad in [
            "", "0", "65", "SIG", "SIGFOO", "RTMIN+31", "RTMAX-31", "-1", "1x", "RTMIN+x",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_round_trip() {
        for n in 1..=64 {
            let name = name(n);
            if n == 32 || n == 33 {
                assert_eq!(name, format!("SIG{n}"));
            } else {
                assert_eq!(parse(&name), Some(n), "{name}");
            }
        }
        assert_eq!(name(libc::SIGKILL), "SIGKILL");
        assert_eq!(name(libc::SIGABRT), "SIGABRT");
        assert_eq!(name(libc::SIGCHLD), "SIGCHLD");
    }
}
