//! Docker's rules for turning Entrypoint and Cmd into one argv.
//!
//! Image configs store the shell form already expanded to
//! `["/bin/sh", "-c", "..."]`, so the rules are plain concatenation:
//! Entrypoint set: Entrypoint ++ Cmd; only Cmd: Cmd; neither: an error.
//! An empty Entrypoint array counts as unset (Dockerfile `ENTRYPOINT []`).

use super::BootError;

/// The argv Docker would run for this Entrypoint and Cmd.
pub fn combine_command(
    entrypoint: Option<&[String]>,
    cmd: Option<&[String]>,
) -> Result<Vec<String>, BootError> {
    let entrypoint = entrypoint.unwrap_or_default();
    let cmd = cmd.unwrap_or_default();
    let argv: Vec<String> = entrypoint.iter().chain(cmd).cloned().collect();
    match argv.first() {
        None => Err(BootError::NoCommand),
        Some(program) if program.is_empty() => Err(BootError::EmptyProgram),
        Some(_) => {
            if let Some(bad) = argv.iter().find(|a| a.contains('\0')) {
                return Err(BootError::NulByte(bad.clone()));
            }
            Ok(argv)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn v(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| s.to_string()).collect()
    }

    // Dockerfile forms as they are stored in the image config.
    fn exec_entry() -> Vec<String> {
        v(&["/bin/echo", "exec_entry", "p1_entry"])
    }
    fn shell_entry() -> Vec<String> {
        v(&["/bin/sh", "-c", "echo exec_entry p1_entry"])
    }
    fn exec_cmd() -> Vec<String> {
        v(&["/bin/echo", "exec_cmd", "p1_cmd"])
    }
    fn shell_cmd() -> Vec<String> {
        v(&["/bin/sh", "-c", "echo exec_cmd p1_cmd"])
    }

    fn run(argv: &[String]) -> String {
        let out = Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    }

    /// Docker's "Understand how CMD and ENTRYPOINT interact" table: the argv
    /// for each cell, and what running it prints (the shell-form Entrypoint
    /// receives the Cmd words as `$0 $1...` and so ignores them).
    #[test]
    fn docker_table() {
        type Words = Option<Vec<String>>;
        let table: Vec<(Words, Words, Words, &str)> = vec![
            // No ENTRYPOINT
            (None, None, None, ""),
            (
                None,
                Some(exec_cmd()),
                Some(exec_cmd()),
                "exec_cmd p1_cmd\n",
            ),
            (
                None,
                Some(shell_cmd()),
                Some(shell_cmd()),
                "exec_cmd p1_cmd\n",
            ),
            // ENTRYPOINT exec_entry p1_entry (shell form)
            (
                Some(shell_entry()),
                None,
                Some(shell_entry()),
                "exec_entry p1_entry\n",
            ),
            (
                Some(shell_entry()),
                Some(exec_cmd()),
                Some([shell_entry(), exec_cmd()].concat()),
                "exec_entry p1_entry\n",
            ),
            (
                Some(shell_entry()),
                Some(shell_cmd()),
                Some([shell_entry(), shell_cmd()].concat()),
                "exec_entry p1_entry\n",
            ),
            // ENTRYPOINT ["exec_entry", "p1_entry"] (exec form)
            (
                Some(exec_entry()),
                None,
                Some(exec_entry()),
                "exec_entry p1_entry\n",
            ),
            (
                Some(exec_entry()),
                Some(exec_cmd()),
                Some([exec_entry(), exec_cmd()].concat()),
                "exec_entry p1_entry /bin/echo exec_cmd p1_cmd\n",
            ),
            (
                Some(exec_entry()),
                Some(shell_cmd()),
                Some([exec_entry(), shell_cmd()].concat()),
                "exec_entry p1_entry /bin/sh -c echo exec_cmd p1_cmd\n",
            ),
        ];
        for (entry, cmd, want, prints) in table {
            let got = combine_command(entry.as_deref(), cmd.as_deref());
            match want {
                None => assert!(
                    matches!(got, Err(BootError::NoCommand)),
                    "{entry:?} {cmd:?}"
                ),
                Some(want) => {
                    let got = got.unwrap();
                    assert_eq!(got, want, "{entry:?} {cmd:?}");
                    assert_eq!(run(&got), prints, "{entry:?} {cmd:?}");
                }
            }
        }
    }

    #[test]
    fn empty_entrypoint_is_unset() {
        let cmd = v(&["sh"]);
        assert_eq!(combine_command(Some(&[]), Some(&cmd)).unwrap(), cmd);
        assert!(matches!(
            combine_command(Some(&[]), Some(&[])),
            Err(BootError::NoCommand)
        ));
        assert!(matches!(
            combine_command(Some(&[]), None),
            Err(BootError::NoCommand)
        ));
        assert_eq!(
            combine_command(None, None).unwrap_err().to_string(),
            "image has no Entrypoint or Cmd"
        );
    }

    #[test]
    fn bad_program_names() {
        assert!(matches!(
            combine_command(Some(&v(&[""])), Some(&v(&["x"]))),
            Err(BootError::EmptyProgram)
        ));
        assert!(matches!(
            combine_command(None, Some(&v(&["a", "b\0c"]))),
            Err(BootError::NulByte(_))
        ));
    }
}
