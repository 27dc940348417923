//! The image's `User`: resolved to numbers from the image's /etc/passwd and
//! /etc/group when the archive is built (a booted initramfs may have neither
//! a working NSS nor the same files), then switched to at run time with a
//! program the image has.

use super::BootError;

/// A resolved `User`, following runc's rules (what Docker runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub spec: String,
    pub uid: u32,
    pub gid: u32,
    /// The passwd entry's name, when the user has one.
    pub name: Option<String>,
    pub group_name: Option<String>,
    /// Whether `User` named the group; then the supplementary groups are not
    /// taken from /etc/group (runc does the same).
    pub group_given: bool,
    pub supplementary: Vec<u32>,
    pub home: String,
    /// The passwd entry's group.
    pub primary_gid: Option<u32>,
}

impl Identity {
    /// PID 1 already runs as 0:0. Its supplementary groups (none) may
    /// differ from what /etc/group lists for root (Alpine lists many), but
    /// switching for that alone would make plain images depend on a tool.
    pub fn is_root(&self) -> bool {
        self.uid == 0 && self.gid == 0
    }
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 || line.starts_with('#') {
            return None;
        }
        Some(PasswdEntry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5],
        })
    })
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 || line.starts_with('#') {
            return None;
        }
        Some(GroupEntry {
            name: f[0],
            gid: f[2].parse().ok()?,
            members: f[3].split(',').filter(|m| !m.is_empty()).collect(),
        })
    })
}

fn numeric(s: &str) -> Option<u32> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// Resolves `uid`, `uid:gid`, `name`, `name:group` (and the mixed forms).
/// An empty spec is root. A numeric uid without a passwd entry gets gid 0
/// and HOME=/, as in Docker.
pub(crate) fn resolve(
    spec: &str,
    passwd: Option<&[u8]>,
    group: Option<&[u8]>,
) -> Result<Identity, BootError> {
    let passwd = passwd.map(String::from_utf8_lossy).unwrap_or_default();
    let group = group.map(String::from_utf8_lossy).unwrap_or_default();
    let spec_trimmed = spec.trim();
    let (user_part, group_part) = match spec_trimmed.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec_trimmed, None),
    };
    if user_part.is_empty() && !spec_trimmed.is_empty() {
        return Err(BootError::BadUser(spec.to_string()));
    }
    if group_part.is_some_and(|g| g.is_empty() || g.contains(':')) {
        return Err(BootError::BadUser(spec.to_string()));
    }
    let user_part = if user_part.is_empty() { "0" } else { user_part };

    let entry = match numeric(user_part) {
        Some(uid) => passwd_entries(&passwd).find(|e| e.uid == uid),
        None => Some(
            passwd_entries(&passwd)
                .find(|e| e.name == user_part)
                .ok_or_else(|| BootError::UnknownUser(user_part.to_string()))?,
        ),
    };
    let uid = match (&entry, numeric(user_part)) {
        (_, Some(uid)) => uid,
        (Some(e), None) => e.uid,
        (None, None) => return Err(BootError::UnknownUser(user_part.to_string())),
    };
    let gid = match group_part {
        None => entry.as_ref().map_or(0, |e| e.gid),
        Some(g) => match numeric(g) {
            Some(gid) => gid,
            None => group_entries(&group)
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| BootError::UnknownGroup(g.to_string()))?,
        },
    };
    let group_name = group_entries(&group)
        .find(|e| e.gid == gid)
        .map(|e| e.name.to_string());
    let name = entry.as_ref().map(|e| e.name.to_string());
    let mut supplementary = Vec::new();
    if let (None, Some(n)) = (group_part, &name) {
        for g in group_entries(&group) {
            if g.members.contains(&n.as_str()) && !supplementary.contains(&g.gid) {
                supplementary.push(g.gid);
            }
        }
    }
    let home = entry
        .as_ref()
        .map(|e| e.home)
        .filter(|h| !h.is_empty())
        .unwrap_or("/")
        .to_string();
    Ok(Identity {
        spec: spec.to_string(),
        uid,
        gid,
        name,
        group_name,
        group_given: group_part.is_some(),
        supplementary,
        home,
        primary_gid: entry.as_ref().map(|e| e.gid),
    })
}

/// A program found in the image's PATH at build time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tool {
    /// Where it was found, e.g. `/bin/su`.
    pub path: String,
    /// A busybox applet: some applets lack options of the real program.
    pub busybox: bool,
}

/// Switchers in order of preference: exec-style ones that take numbers
/// first, `su` last (it needs a passwd name and goes through a shell).
pub(crate) const SWITCHERS: &[&str] = &["setpriv", "su-exec", "gosu", "chpst", "runuser", "su"];

/// The argv that runs `argv` as `id`, using the first switcher that `find`
/// returns and that can express this identity. `shell` is the image's sh.
pub(crate) fn switch_argv(
    id: &Identity,
    argv: &[String],
    shell: &str,
    find: &dyn Fn(&str) -> Option<Tool>,
) -> Result<Vec<String>, BootError> {
    let own = |s: &[&str]| s.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    // su-exec and gosu take "name" (then they add the passwd group and the
    // supplementary groups themselves) or "uid:gid".
    let exec_style_user = match (&id.name, id.group_given) {
        (Some(n), false) => n.clone(),
        (Some(n), true) => format!("{n}:{}", id.gid),
        (None, _) => format!("{}:{}", id.uid, id.gid),
    };
    for &name in SWITCHERS {
        let Some(tool) = find(name) else { continue };
        let mut words = vec![tool.path.clone()];
        match name {
            // busybox setpriv has no --reuid.
            "setpriv" if !tool.busybox => {
                words.push(format!("--reuid={}", id.uid));
                words.push(format!("--regid={}", id.gid));
                if id.supplementary.is_empty() {
                    words.push("--clear-groups".into());
                } else {
                    let list: Vec<String> = id.supplementary.iter().map(u32::to_string).collect();
                    words.push(format!("--groups={}", list.join(",")));
                }
                words.push("--".into());
            }
            "su-exec" | "gosu" => words.push(exec_style_user.clone()),
            "chpst" => match (&id.name, id.group_given, &id.group_name) {
                (Some(n), false, _) => words.extend(own(&["-u", n])),
                (Some(n), true, Some(g)) => words.extend(own(&["-u", &format!("{n}:{g}")])),
                _ => continue,
            },
            "runuser" => match (&id.name, id.group_given, &id.group_name) {
                (Some(n), false, _) => words.extend(own(&["-u", n, "--"])),
                (Some(n), true, Some(g)) => words.extend(own(&["-u", n, "-g", g, "--"])),
                _ => continue,
            },
            // su takes the group from the passwd entry; the extra words
            // become "$0" "$@" of `sh -c`, so the argv needs no re-quoting.
            // su permutes options: without "--" a "-c" in argv would be its own.
            "su" => match &id.name {
                Some(n) if !id.group_given || passwd_gid_matches(id) => {
                    words.extend(own(&[
                        "-p",
                        "-s",
                        shell,
                        "-c",
                        "exec \"$0\" \"$@\"",
                        "--",
                        n,
                    ]));
                }
                _ => continue,
            },
            _ => continue,
        }
        words.extend(argv.iter().cloned());
        return Ok(words);
    }
    Err(BootError::NoUserSwitcher {
        user: id.spec.clone(),
        uid: id.uid,
        gid: id.gid,
    })
}

/// `su` can only use the passwd entry's group: fine when `User` named it.
fn passwd_gid_matches(id: &Identity) -> bool {
    id.primary_gid == Some(id.gid)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
        app:x:1000:1000:App:/home/app:/bin/sh\n\
        # comment\n\
        broken line\n\
        nohome:x:1001:1001:::/bin/sh\n";
    const GROUP: &str =
        "root:x:0:root\nwheel:x:10:app,other,root\napp:x:1000:\nstaff:x:50:app\nweb:x:33:\n";

    fn res(spec: &str) -> Result<Identity, BootError> {
        resolve(spec, Some(PASSWD.as_bytes()), Some(GROUP.as_bytes()))
    }

    #[test]
    fn resolves_forms() {
        let root = res("").unwrap();
        assert!(root.is_root());
        assert_eq!(root.supplementary, vec![0, 10]);
        assert_eq!(root.home, "/root");
        assert!(res("root").unwrap().is_root());
        assert!(res("0").unwrap().is_root());

        let app = res("app").unwrap();
        assert_eq!(
            (app.uid, app.gid, app.home.as_str()),
            (1000, 1000, "/home/app")
        );
        assert_eq!(app.supplementary, vec![10, 50]);
        assert!(!app.group_given);

        let by_uid = res("1000").unwrap();
        assert_eq!(by_uid.name.as_deref(), Some("app"));
        assert_eq!(by_uid.supplementary, vec![10, 50]);

        let explicit = res("app:web").unwrap();
        assert_eq!((explicit.uid, explicit.gid), (1000, 33));
        assert!(explicit.supplementary.is_empty());
        assert_eq!(explicit.group_name.as_deref(), Some("web"));

        let unknown_uid = res("4242:77").unwrap();
        assert_eq!((unknown_uid.uid, unknown_uid.gid), (4242, 77));
        assert_eq!(unknown_uid.name, None);
        assert_eq!(unknown_uid.home, "/");

        let no_entry = res("4242").unwrap();
        assert_eq!(no_entry.gid, 0);
        assert_eq!(res("nohome").unwrap().home, "/");
        assert_eq!(res("daemon:1").unwrap().gid, 1);
        assert!(!res("root:web").unwrap().is_root());
    }

    #[test]
    fn resolve_errors() {
        assert_eq!(
            res("nobody").unwrap_err().to_string(),
            "image User: user \"nobody\" is not in the image's /etc/passwd"
        );
        assert_eq!(
            res("app:nogroup").unwrap_err().to_string(),
            "image User: group \"nogroup\" is not in the image's /etc/group"
        );
        assert!(matches!(res(":1"), Err(BootError::BadUser(_))));
        assert!(matches!(res("app:"), Err(BootError::BadUser(_))));
        assert!(matches!(
            resolve("app", None, None),
            Err(BootError::UnknownUser(_))
        ));
        assert_eq!(resolve("7:8", None, None).unwrap().uid, 7);
    }

    fn tools(names: &[&'static str], busybox: bool) -> impl Fn(&str) -> Option<Tool> {
        let names: Vec<&str> = names.to_vec();
        move |n: &str| {
            names.contains(&n).then(|| Tool {
                path: format!("/bin/{n}"),
                busybox,
            })
        }
    }

    fn argv() -> Vec<String> {
        vec!["prog".into(), "a b".into()]
    }

    #[test]
    fn picks_a_switcher() {
        let app = res("app").unwrap();
        let got = switch_argv(&app, &argv(), "/bin/sh", &tools(&["setpriv", "su"], false)).unwrap();
        assert_eq!(
            got,
            [
                "/bin/setpriv",
                "--reuid=1000",
                "--regid=1000",
                "--groups=10,50",
                "--",
                "prog",
                "a b"
            ]
        );
        // busybox setpriv cannot switch users: su it is.
        let got = switch_argv(&app, &argv(), "/bin/sh", &tools(&["setpriv", "su"], true)).unwrap();
        assert_eq!(
            got,
            [
                "/bin/su",
                "-p",
                "-s",
                "/bin/sh",
                "-c",
                "exec \"$0\" \"$@\"",
                "--",
                "app",
                "prog",
                "a b"
            ]
        );
        let got = switch_argv(&app, &argv(), "/bin/sh", &tools(&["su-exec"], false)).unwrap();
        assert_eq!(got, ["/bin/su-exec", "app", "prog", "a b"]);
        let anon = res("4242:77").unwrap();
        let got = switch_argv(&anon, &argv(), "/bin/sh", &tools(&["gosu", "su"], false)).unwrap();
        assert_eq!(got, ["/bin/gosu", "4242:77", "prog", "a b"]);
        let got = switch_argv(
            &res("app:web").unwrap(),
            &argv(),
            "/bin/sh",
            &tools(&["chpst"], true),
        )
        .unwrap();
        assert_eq!(got, ["/bin/chpst", "-u", "app:web", "prog", "a b"]);
        let got = switch_argv(&app, &argv(), "/bin/sh", &tools(&["runuser"], false)).unwrap();
        assert_eq!(got, ["/bin/runuser", "-u", "app", "--", "prog", "a b"]);
    }

    #[test]
    fn no_switcher_is_an_error() {
        // su cannot use a uid without a name, nor a group other than the passwd one.
        let anon = res("4242").unwrap();
        let err =
            switch_argv(&anon, &argv(), "/bin/sh", &tools(&["su", "setpriv"], true)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "image User \"4242\" (uid 4242, gid 0): the image has no program that can switch to it (setpriv, su-exec, gosu, chpst, runuser or su)"
        );
        let other_group = res("app:web").unwrap();
        assert!(switch_argv(&other_group, &argv(), "/bin/sh", &tools(&["su"], true)).is_err());
        let same_group = res("app:1000").unwrap();
        assert!(switch_argv(&same_group, &argv(), "/bin/sh", &tools(&["su"], true)).is_ok());
    }

    /// The switcher argv really switches: run it on this machine when we
    /// are root and it has util-linux (setpriv, su).
    #[test]
    fn switches_for_real_when_root() {
        let root = std::process::Command::new("id").arg("-u").output().unwrap();
        if String::from_utf8_lossy(&root.stdout).trim() != "0" {
            eprintln!("not root: not running the switchers");
            return;
        }
        let nobody = resolve(
            "nobody",
            std::fs::read("/etc/passwd").ok().as_deref(),
            std::fs::read("/etc/group").ok().as_deref(),
        )
        .unwrap();
        let host = |n: &str| {
            ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
                .iter()
                .map(|d| format!("{d}/{n}"))
                .find(|p| std::path::Path::new(p).exists())
                .map(|path| Tool {
                    path,
                    busybox: false,
                })
        };
        for only in ["setpriv", "su"] {
            let find = |n: &str| if n == only { host(n) } else { None };
            if find(only).is_none() {
                continue;
            }
            let cmd = [
                "sh".to_string(),
                "-c".into(),
                "id -u; printf '%s|' \"$@\"".into(),
                "x".into(),
                "it's a b".into(),
                "-c".into(),
                "z".into(),
            ];
            let argv = switch_argv(&nobody, &cmd, "/bin/sh", &find).unwrap();
            let out = std::process::Command::new(&argv[0])
                .args(&argv[1..])
                .output()
                .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                format!("{}\nit's a b|-c|z|", nobody.uid),
                "{argv:?} {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
