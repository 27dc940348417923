//! The kernel command line (`/proc/cmdline`): words after `--` replace the
//! image's Cmd, and two parameters override the run config.
//!
//! Words are split exactly as the kernel's `next_arg` (lib/cmdline.c) splits
//! them: whitespace separates words except inside double quotes; a leading
//! quote of a word and the quotes around a `name="value"` value are removed,
//! other quotes stay. The first bare `--` ends the kernel's parameters; what
//! follows goes to init, each `name=value` word rejoined as the kernel does.

#[derive(Debug, Default, PartialEq, Eq)]
pub struct KernelCmdline {
    /// The words after `--`, when there is a `--`.
    pub args: Option<Vec<Vec<u8>>>,
    /// `initramfs_stream.user=...`
    pub user: Option<Vec<u8>>,
    /// `initramfs_stream.workdir=...`
    pub workdir: Option<Vec<u8>>,
}

pub fn parse(text: &[u8]) -> KernelCmdline {
    let mut out = KernelCmdline::default();
    let mut rest = skip_spaces(text);
    while !rest.is_empty() {
        let (param, val, next) = next_arg(rest);
        rest = next;
        if param == b"--" && val.is_none() {
            let mut args = Vec::new();
            while !rest.is_empty() {
                let (mut param, val, next) = next_arg(rest);
                rest = next;
                if let Some(val) = val {
                    param.push(b'=');
                    param.extend_from_slice(&val);
                }
                args.push(param);
            }
            out.args = Some(args);
            break;
        }
        match (param_name(&param).as_slice(), val) {
            (b"initramfs_stream.user", Some(v)) => out.user = Some(v),
            (b"initramfs_stream.workdir", Some(v)) => out.workdir = Some(v),
            _ => {}
        }
    }
    out
}

/// Whether the kernel's own parameters (before `--`) include `name`, with
/// or without a value.
pub fn has_param(text: &[u8], name: &[u8]) -> bool {
    let mut rest = skip_spaces(text);
    while !rest.is_empty() {
        let (param, _, next) = next_arg(rest);
        if param == b"--" {
            return false;
        }
        if param_name(&param) == param_name(name) {
            return true;
        }
        rest = next;
    }
    false
}

/// The kernel compares parameter names with `-` and `_` as the same.
fn param_name(param: &[u8]) -> Vec<u8> {
    param
        .iter()
        .map(|&b| if b == b'-' { b'_' } else { b })
        .collect()
}

/// The kernel's `isspace` (C locale).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn skip_spaces(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| is_space(b)).count();
    &s[n..]
}

/// One word of `args` (which starts at a non-space): `(param, value, rest)`,
/// a transcription of the kernel's `next_arg`.
fn next_arg(args: &[u8]) -> (Vec<u8>, Option<Vec<u8>>, &[u8]) {
    let (args, quoted) = match args.strip_prefix(b"\"") {
        Some(a) => (a, true),
        None => (args, false),
    };
    let mut in_quote = quoted;
    let mut equals = None;
    let mut i = 0;
    while i < args.len() {
        if is_space(args[i]) && !in_quote {
            break;
        }
        if equals.is_none() && args[i] == b'=' {
            equals = Some(i);
        }
        if args[i] == b'"' {
            in_quote = !in_quote;
        }
        i += 1;
    }
    let word = &args[..i];
    let rest = skip_spaces(&args[(i + 1).min(args.len())..]);
    // The kernel cuts a closing quote at word[i-1] in both cases below; the
    // cut can only happen once.
    let ends_in_quote = word.last() == Some(&b'"');
    match equals {
        None => {
            let param = if quoted && ends_in_quote {
                &word[..i - 1]
            } else {
                word
            };
            (param.to_vec(), None, rest)
        }
        Some(eq) => {
            let param = word[..eq].to_vec();
            let mut val = &word[eq + 1..];
            let mut cut_end = quoted && ends_in_quote;
            if let Some(v) = val.strip_prefix(b"\"") {
                val = v;
                cut_end |= ends_in_quote;
            }
            // A value that was only `"` has already lost that quote.
            if cut_end && val.last() == Some(&b'"') {
                val = &val[..val.len() - 1];
            }
            (param, Some(val.to_vec()), rest)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<Vec<u8>> {
        s.split('|').map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn words_after_dashes_become_args() {
        let c = parse(b"console=ttyS0 quiet -- sh -c \"echo a  b\" x=\"y z\" \"q r\" a\"b c\"d\n");
        assert_eq!(c.args, Some(words("sh|-c|echo a  b|x=y z|q r|a\"b c\"d")));
        assert_eq!(parse(b"console=ttyS0 --").args, Some(vec![]));
        assert_eq!(parse(b"console=ttyS0 quiet").args, None);
        // Only a bare `--` separates; `--=x` and `---` are parameters.
        assert_eq!(parse(b"--=x --- __ a").args, None);
        assert_eq!(parse(b"a -- b -- c").args, Some(words("b|--|c")));
    }

    #[test]
    fn takes_the_overrides_before_dashes_only() {
        let c = parse(b"initramfs_stream.user=1000:50 initramfs-stream.workdir=\"/srv/my app\" -- initramfs_stream.user=x");
        assert_eq!(c.user, Some(b"1000:50".to_vec()));
        assert_eq!(c.workdir, Some(b"/srv/my app".to_vec()));
        assert_eq!(c.args, Some(words("initramfs_stream.user=x")));
        let c = parse(b"initramfs_stream.user=a initramfs_stream.user=b initramfs_stream.user");
        assert_eq!(c.user, Some(b"b".to_vec()));
    }

    #[test]
    fn finds_kernel_parameters() {
        assert!(has_param(b"console=ttyS0 reboot=t quiet", b"reboot"));
        assert!(has_param(b"quiet reboot", b"reboot"));
        assert!(has_param(
            b"initramfs-stream.user=0",
            b"initramfs_stream.user"
        ));
        assert!(!has_param(
            b"console=ttyS0 rebooted=1 -- reboot=t",
            b"reboot"
        ));
        assert!(!has_param(b"", b"reboot"));
    }

    #[test]
    fn splits_as_the_kernel_does() {
        let split = |s: &str| {
            let mut rest = skip_spaces(s.as_bytes());
            let mut out = Vec::new();
            while !rest.is_empty() {
                let (p, v, r) = next_arg(rest);
                out.push((
                    String::from_utf8(p).unwrap(),
                    v.map(|v| String::from_utf8(v).unwrap()),
                ));
                rest = r;
            }
            out
        };
        let p = |s: &str| (s.to_string(), None);
        let kv = |k: &str, v: &str| (k.to_string(), Some(v.to_string()));
        assert_eq!(split("  a\tb\n"), vec![p("a"), p("b")]);
        assert_eq!(split("\"a b\" c"), vec![p("a b"), p("c")]);
        assert_eq!(split("k=\"v w\""), vec![kv("k", "v w")]);
        assert_eq!(split("\"k=v w\""), vec![kv("k", "v w")]);
        assert_eq!(split("k=v\"w x\""), vec![kv("k", "v\"w x\"")]);
        assert_eq!(split("k=\"v"), vec![kv("k", "v")]);
        assert_eq!(split("k=\""), vec![kv("k", "")]);
        assert_eq!(split("\"unterminated word"), vec![p("unterminated word")]);
        assert_eq!(split("\"\""), vec![p("")]);
        assert_eq!(split("a\"b\"c"), vec![p("a\"b\"c")]);
        assert_eq!(split("k="), vec![kv("k", "")]);
        assert_eq!(split("=v"), vec![kv("", "v")]);
    }
}
