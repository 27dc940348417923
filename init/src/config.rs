//! The run config, `/.initramfs-stream/run.json`: what the host tool says to
//! run and how. Written by the host, read once at boot. Unknown keys are
//! ignored (forward compatibility); a `version` other than 1, a wrongly
//! typed known key or a value out of range is an error naming the key.

use crate::console::escape;
use crate::json::{self, Value};
use crate::signal;

pub const PATH: &str = "/.initramfs-stream/run.json";

/// Seconds between the stop signal and SIGKILL when the config gives none.
pub const DEFAULT_STOP_TIMEOUT: u64 = 10;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    /// `""` means `/`.
    pub working_dir: String,
    pub user: String,
    pub stop_signal: libc::c_int,
    pub stop_timeout: u64,
    /// `""` means the image's /etc/hostname, else `localhost`.
    pub hostname: String,
    pub xattrs: Vec<Xattr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Xattr {
    pub path: String,
    pub name: String,
    pub value: Vec<u8>,
}

pub fn parse(bytes: &[u8]) -> Result<RunConfig, String> {
    let root = json::parse(bytes).map_err(|e| format!("invalid JSON: {e}"))?;
    if !matches!(root, Value::Object(_)) {
        return Err("not a JSON object".into());
    }
    match root.get("version") {
        Some(Value::Number(n)) if n == "1" => {}
        Some(Value::Number(n)) => {
            return Err(format!(
                "unsupported version {n} (this init reads version 1)"
            ))
        }
        Some(_) => return Err("`version` must be a number".into()),
        None => return Err("no `version`".into()),
    }
    let stop_signal = string(&root, "stop_signal")?;
    let stop_signal = if stop_signal.is_empty() {
        libc::SIGTERM
    } else {
        signal::parse(&stop_signal)
            .ok_or_else(|| format!("`stop_signal`: unknown signal {stop_signal:?}"))?
    };
    let stop_timeout = match root.get("stop_timeout") {
        None | Some(Value::Null) => DEFAULT_STOP_TIMEOUT,
        Some(Value::Number(n)) => n
            .parse()
            .map_err(|_| format!("`stop_timeout`: {n} is not a whole number of seconds"))?,
        Some(_) => return Err("`stop_timeout` must be a number".into()),
    };
    let xattrs = match root.get("xattrs") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().map(xattr).collect::<Result<_, _>>()?,
        Some(_) => return Err("`xattrs` must be an array".into()),
    };
    Ok(RunConfig {
        entrypoint: strings(&root, "entrypoint")?,
        cmd: strings(&root, "cmd")?,
        env: strings(&root, "env")?,
        working_dir: string(&root, "working_dir")?,
        user: string(&root, "user")?,
        stop_signal,
        stop_timeout,
        hostname: string(&root, "hostname")?,
        xattrs,
    })
}

/// A string member; absent or null is `""`.
fn string(obj: &Value, key: &str) -> Result<String, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("`{key}` must be a string")),
    }
}

/// An array-of-strings member; absent or null is empty.
fn strings(obj: &Value, key: &str) -> Result<Vec<String>, String> {
    let err = || format!("`{key}` must be an array of strings");
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                _ => Err(err()),
            })
            .collect(),
        Some(_) => Err(err()),
    }
}

fn xattr(item: &Value) -> Result<Xattr, String> {
    let field = |key: &str| match item.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(format!("`xattrs`: each entry needs a string `{key}`")),
    };
    let (path, name, hex) = (field("path")?, field("name")?, field("value")?);
    let value = decode_hex(&hex).ok_or_else(|| {
        format!(
            "`xattrs`: value of {} on {} is not lowercase hex",
            escape(name.as_bytes()),
            escape(path.as_bytes())
        )
    })?;
    Ok(Xattr { path, name, value })
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    if hex.len() % 2 != 0 {
        return None;
    }
    hex.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_example() {
        let text = br#"{
          "version": 1,
          "entrypoint": ["/usr/bin/app"],
          "cmd": ["--port", "8080"],
          "env": ["PATH=/usr/bin:/bin", "A=b"],
          "working_dir": "/srv/app",
          "user": "nonroot",
          "stop_signal": "SIGQUIT",
          "stop_timeout": 3,
          "hostname": "box",
          "xattrs": [
            {"path": "/usr/bin/ping", "name": "security.capability", "value": "0100ff"}
          ],
          "future_key": {"ignored": [1, 2]}
        }"#;
        assert_eq!(
            parse(text).unwrap(),
            RunConfig {
                entrypoint: vec!["/usr/bin/app".into()],
                cmd: vec!["--port".into(), "8080".into()],
                env: vec!["PATH=/usr/bin:/bin".into(), "A=b".into()],
                working_dir: "/srv/app".into(),
                user: "nonroot".into(),
                stop_signal: libc::SIGQUIT,
                stop_timeout: 3,
                hostname: "box".into(),
                xattrs: vec![Xattr {
                    path: "/usr/bin/ping".into(),
                    name: "security.capability".into(),
                    value: vec![1, 0, 0xff],
                }],
            }
        );
    }

    #[test]
    fn absent_keys_take_their_defaults() {
        let c = parse(br#"{"version": 1, "stop_signal": ""}"#).unwrap();
        assert_eq!(
            c,
            RunConfig {
                entrypoint: vec![],
                cmd: vec![],
                env: vec![],
                working_dir: String::new(),
                user: String::new(),
                stop_signal: libc::SIGTERM,
                stop_timeout: DEFAULT_STOP_TIMEOUT,
                hostname: String::new(),
                xattrs: vec![],
            }
        );
        assert_eq!(
            parse(br#"{"version": 1, "stop_signal": "9"}"#)
                .unwrap()
                .stop_signal,
            9
        );
    }

    #[test]
    fn rejects_bad_configs_naming_the_problem() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "invalid JSON"),
            (b"[]", "not a JSON object"),
            (br#"{}"#, "no `version`"),
            (br#"{"version": 2}"#, "unsupported version 2"),
            (br#"{"version": "1"}"#, "`version` must be a number"),
            (
                br#"{"version": 1, "cmd": "x"}"#,
                "`cmd` must be an array of strings",
            ),
            (
                br#"{"version": 1, "env": [1]}"#,
                "`env` must be an array of strings",
            ),
            (br#"{"version": 1, "user": 0}"#, "`user` must be a string"),
            (
                br#"{"version": 1, "stop_signal": "SIGNOPE"}"#,
                "unknown signal",
            ),
            (
                br#"{"version": 1, "stop_timeout": -1}"#,
                "not a whole number",
            ),
            (
                br#"{"version": 1, "stop_timeout": 1.5}"#,
                "not a whole number",
            ),
            (
                br#"{"version": 1, "xattrs": [{"path": "/a", "name": "user.x"}]}"#,
                "string `value`",
            ),
            (
                br#"{"version": 1, "xattrs": [{"path": "/a", "name": "user.x", "value": "ABCD"}]}"#,
                "not lowercase hex",
            ),
            (
                br#"{"version": 1, "xattrs": [{"path": "/a", "name": "user.x", "value": "abc"}]}"#,
                "not lowercase hex",
            ),
            (
                br#"{"version": 1, "xattrs": [{"path": "/a\u001b[2J", "name": "user.x", "value": "z"}]}"#,
                "value of user.x on /a\\x1b[2J is not",
            ),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err();
            assert!(
                err.contains(want),
                "{:?}: {err}",
                String::from_utf8_lossy(text)
            );
        }
    }
}
