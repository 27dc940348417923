//! The run config: what the static `/init` reads at boot to start the
//! image's command. It is the one thing the host and the guest share, so it
//! is plain JSON a person can read in the archive (`init/README.md`
//! documents each key). The guest, not the host, applies Docker's rules
//! (Entrypoint + Cmd, PATH search, user lookup), because the kernel command
//! line may still change Cmd, Env and User at boot.

use serde::Serialize;

use super::{FileXattr, RunConfig};

/// Where the archive holds the run config.
pub const PATH: &[u8] = b"/.initramfs-stream/run.json";
/// Its directory, owned by the tool.
pub const DIR: &[u8] = b"/.initramfs-stream";

/// `docker stop`'s grace period before SIGKILL.
pub const DEFAULT_STOP_TIMEOUT: u64 = 10;

/// Signal names the guest's init accepts, without `SIG` (Linux's, as
/// Docker spells them), besides numbers and `RTMIN+n`/`RTMAX-n`.
const SIGNALS: &[&str] = &[
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "IOT", "BUS", "FPE", "KILL", "USR1", "SEGV",
    "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CLD", "CONT", "STOP", "TSTP", "TTIN",
    "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "POLL", "PWR", "SYS",
];

/// Whether the init can send `text` as the stop signal: checked at build
/// time, since an unknown one would keep the command from starting.
pub(crate) fn is_signal(text: &str) -> bool {
    const RT: std::ops::RangeInclusive<u32> = 34..=64;
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse::<u32>().is_ok_and(|n| (1..=64).contains(&n));
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let offset = |s: &str| s.is_empty() || s.parse::<u32>().is_ok();
    if let Some(rest) = name.strip_prefix("RTMIN") {
        let rest = rest.strip_prefix('+').unwrap_or(rest);
        return offset(rest) && RT.contains(&(34 + rest.parse::<u32>().unwrap_or(0)));
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        let rest = rest.strip_prefix('-').unwrap_or(rest);
        return offset(rest) && rest.parse::<u32>().unwrap_or(0) <= 30;
    }
    SIGNALS.contains(&name)
}

#[derive(Debug, Serialize)]
struct RunConfigFile<'a> {
    version: u32,
    entrypoint: &'a [String],
    cmd: &'a [String],
    env: &'a [String],
    working_dir: &'a str,
    user: &'a str,
    stop_signal: &'a str,
    stop_timeout: u64,
    hostname: &'a str,
    xattrs: Vec<XattrRecord<'a>>,
}

#[derive(Debug, Serialize)]
struct XattrRecord<'a> {
    path: &'a str,
    name: &'a str,
    value: String,
}

/// The file's bytes, and notes for attributes JSON cannot name (a path or
/// name that is not UTF-8).
pub(crate) fn render(
    config: &RunConfig,
    stop_timeout: u64,
    xattrs: &[FileXattr],
) -> (Vec<u8>, Vec<String>) {
    let mut notes = Vec::new();
    let mut records = Vec::new();
    for x in xattrs {
        match (std::str::from_utf8(&x.path), std::str::from_utf8(&x.name)) {
            (Ok(path), Ok(name)) => records.push(XattrRecord {
                path,
                name,
                value: hex::encode(&x.value),
            }),
            _ => notes.push(format!(
                "extended attribute {} of {} is not UTF-8: dropped",
                crate::path::escape(&x.name),
                crate::path::escape(&x.path)
            )),
        }
    }
    let file = RunConfigFile {
        version: 1,
        entrypoint: config.entrypoint.as_deref().unwrap_or_default(),
        cmd: config.cmd.as_deref().unwrap_or_default(),
        env: config.env.as_deref().unwrap_or_default(),
        working_dir: config.working_dir.as_deref().unwrap_or_default(),
        user: config.user.as_deref().unwrap_or_default().trim(),
        stop_signal: config.stop_signal.as_deref().unwrap_or_default(),
        stop_timeout,
        hostname: "",
        xattrs: records,
    };
    // Serialising plain strings and numbers cannot fail.
    let mut bytes = serde_json::to_vec_pretty(&file).unwrap_or_default();
    bytes.push(b'\n');
    (bytes, notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_signals_as_docker_spells_them() {
        for ok in [
            "SIGTERM",
            "TERM",
            "sigquit",
            "15",
            "64",
            "SIGRTMIN",
            "SIGRTMIN+3",
            "RTMAX-30",
        ] {
            assert!(is_signal(ok), "{ok}");
        }
        for bad in [
            "", "0", "65", "SIG", "SIGFOO", "RTMIN+31", "RTMAX-31", "-1", "1x", "RTMIN+x",
        ] {
            assert!(!is_signal(bad), "{bad}");
        }
    }

    #[test]
    fn renders_every_key_and_hex_values() {
        let config = RunConfig {
            entrypoint: Some(vec!["/app".into()]),
            cmd: None,
            env: Some(vec!["A=b c".into()]),
            working_dir: Some("/srv".into()),
            user: Some(" app:staff ".into()),
            stop_signal: Some("SIGQUIT".into()),
        };
        let xattrs = [
            FileXattr {
                path: b"/bin/ping".to_vec(),
                name: b"security.capability".to_vec(),
                value: vec![1, 0, 0, 2, 0xff],
            },
            FileXattr {
                path: b"/bad\xff".to_vec(),
                name: b"user.x".to_vec(),
                value: vec![],
            },
        ];
        let (bytes, notes) = render(&config, 7, &xattrs);
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "version": 1,
                "entrypoint": ["/app"],
                "cmd": [],
                "env": ["A=b c"],
                "working_dir": "/srv",
                "user": "app:staff",
                "stop_signal": "SIGQUIT",
                "stop_timeout": 7,
                "hostname": "",
                "xattrs": [{"path": "/bin/ping", "name": "security.capability", "value": "01000002ff"}],
            })
        );
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("/bad\\xff"), "{notes:?}");
    }
}
