//! The command's environment: the image's Env, overridden by the `NAME=VALUE`
//! words the kernel passed to init, with Docker's defaults for PATH and HOME.
//!
//! The kernel always gives init `HOME=/` and `TERM=linux`; these are its own
//! defaults, not the user's choice, so HOME=/ is dropped and TERM=linux is
//! used only when the image sets no TERM. Order is kept: an override takes
//! the place of the image's variable, new variables come after.

pub const DEFAULT_PATH: &[u8] = b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `image`: the run config's env; `kernel`: init's own environment;
/// `home`: the user's passwd home directory, if any.
pub fn command_env(image: &[String], kernel: &[Vec<u8>], home: Option<&[u8]>) -> Vec<Vec<u8>> {
    let mut env: Vec<Vec<u8>> = Vec::new();
    for var in image {
        set(&mut env, var.as_bytes());
    }
    for var in kernel {
        if var.as_slice() == b"HOME=/"
            || (var.as_slice() == b"TERM=linux" && get(&env, b"TERM").is_some())
        {
            continue;
        }
        set(&mut env, var);
    }
    if get(&env, b"PATH").is_none() {
        set(&mut env, &[b"PATH=", DEFAULT_PATH].concat());
    }
    if get(&env, b"HOME").is_none() {
        set(&mut env, &[b"HOME=", home.unwrap_or(b"/")].concat());
    }
    env
}

fn name(var: &[u8]) -> &[u8] {
    var.split(|&b| b == b'=').next().unwrap_or(var)
}

/// The value of `key` in `env`.
pub fn get<'a>(env: &'a [Vec<u8>], key: &[u8]) -> Option<&'a [u8]> {
    env.iter()
        .find(|v| name(v) == key)
        .map(|v| v.get(key.len() + 1..).unwrap_or_default())
}

fn set(env: &mut Vec<Vec<u8>>, var: &[u8]) {
    match env.iter_mut().find(|v| name(v) == name(var)) {
        Some(slot) => *slot = var.to_vec(),
        None => env.push(var.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[Vec<u8>]) -> Vec<&str> {
        v.iter().map(|v| std::str::from_utf8(v).unwrap()).collect()
    }

    fn kernel(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn image_env_with_defaults() {
        let env = command_env(
            &["A=b".into(), "EMPTY=".into()],
            &kernel(&["HOME=/", "TERM=linux"]),
            Some(b"/home/app"),
        );
        assert_eq!(
            strs(&env),
            [
                "A=b",
                "EMPTY=",
                "TERM=linux",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME=/home/app"
            ]
        );
        assert_eq!(get(&env, b"EMPTY"), Some(&b""[..]));
        assert_eq!(get(&env, b"NOPE"), None);
        let env = command_env(&[], &[], None);
        assert_eq!(get(&env, b"HOME"), Some(&b"/"[..]));
    }

    #[test]
    fn kernel_words_override_in_place() {
        let image = [
            "PATH=/bin".into(),
            "A=1".into(),
            "TERM=xterm".into(),
            "HOME=/srv".into(),
            "A=2".into(),
        ];
        let env = command_env(
            &image,
            &kernel(&["HOME=/", "TERM=linux", "A=k=v", "NEW=x"]),
            Some(b"/home/app"),
        );
        assert_eq!(
            strs(&env),
            ["PATH=/bin", "A=k=v", "TERM=xterm", "HOME=/srv", "NEW=x"]
        );
        let env = command_env(&image, &kernel(&["TERM=vt100", "HOME=/h"]), None);
        assert_eq!(get(&env, b"TERM"), Some(&b"vt100"[..]));
        assert_eq!(get(&env, b"HOME"), Some(&b"/h"[..]));
    }
}
