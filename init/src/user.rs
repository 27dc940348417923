//! The image's User (`name`, `uid`, `uid:gid`, `name:group`, ...) resolved
//! against the image's /etc/passwd and /etc/group, as Docker resolves it:
//! a number needs no passwd entry (its gid is then the entry's, else 0), a
//! name must have one; an explicit group overrides the primary gid. The
//! supplementary groups are every /etc/group entry listing the user's name,
//! plus the primary gid.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, the primary gid first.
    pub groups: Vec<u32>,
    /// The passwd entry's home directory, when there is an entry.
    pub home: Option<Vec<u8>>,
}

struct PasswdEntry<'a> {
    name: &'a [u8],
    uid: u32,
    gid: u32,
    home: &'a [u8],
}

struct GroupEntry<'a> {
    name: &'a [u8],
    gid: u32,
    members: &'a [u8],
}

/// `passwd`/`group`: the files' contents, `None` when the image has none.
pub fn resolve(
    spec: &[u8],
    passwd: Option<&[u8]>,
    group: Option<&[u8]>,
) -> Result<Identity, String> {
    let (user, group_spec) = match spec.iter().position(|&b| b == b':') {
        Some(i) => (&spec[..i], Some(&spec[i + 1..])),
        None => (spec, None),
    };
    let users: Vec<PasswdEntry> = passwd.map(parse_passwd).unwrap_or_default();
    let groups: Vec<GroupEntry> = group.map(parse_group).unwrap_or_default();
    let entry = if user.is_empty() {
        users.iter().find(|e| e.uid == 0)
    } else if let Some(uid) = number(user) {
        users.iter().find(|e| e.uid == uid)
    } else {
        let found = users.iter().find(|e| e.name == user);
        if found.is_none() {
            return Err(format!(
                "user {} not found in /etc/passwd",
                crate::console::escape(user)
            ));
        }
        found
    };
    let uid = match entry {
        Some(e) => e.uid,
        None => number(user).unwrap_or(0),
    };
    let gid = match group_spec {
        None => entry.map_or(0, |e| e.gid),
        Some(g) => match number(g) {
            Some(gid) => gid,
            None => groups
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| {
                    format!(
                        "group {} not found in /etc/group",
                        crate::console::escape(g)
                    )
                })?,
        },
    };
    let mut supplementary = vec![gid];
    if let Some(e) = entry {
        for g in &groups {
            let member = g.members.split(|&b| b == b',').any(|m| m == e.name);
            if member && !supplementary.contains(&g.gid) {
                supplementary.push(g.gid);
            }
        }
    }
    Ok(Identity {
        uid,
        gid,
        groups: supplementary,
        home: entry.map(|e| e.home.to_vec()),
    })
}

/// A decimal id: digits only, fitting in 32 bits.
fn number(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// The `:`-separated fields of each line that has at least `n` of them.
fn records(text: &[u8], n: usize) -> impl Iterator<Item = Vec<&[u8]>> {
    text.split(|&b| b == b'\n').filter_map(move |line| {
        let fields: Vec<&[u8]> = line.split(|&b| b == b':').collect();
        (fields.len() >= n && !line.starts_with(b"#")).then_some(fields)
    })
}

/// name:password:uid:gid:gecos:home:shell
fn parse_passwd(text: &[u8]) -> Vec<PasswdEntry<'_>> {
    records(text, 7)
        .filter_map(|f| {
            Some(PasswdEntry {
                name: f[0],
                uid: number(f[2])?,
                gid: number(f[3])?,
                home: f[5],
            })
        })
        .collect()
}

/// name:password:gid:member,member
fn parse_group(text: &[u8]) -> Vec<GroupEntry<'_>> {
    records(text, 4)
        .filter_map(|f| {
            Some(GroupEntry {
                name: f[0],
                gid: number(f[2])?,
                members: f[3],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/sh\n\
        # comment\n\
        broken line\n\
        app:x:1000:1000:App:/home/app:/bin/sh\n\
        nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin";
    const GROUP: &[u8] =
        b"root:x:0:\napp:x:1000:\nstaff:x:50:app,other\nwheel:x:10:root\nmix:x:60:other,app\n";

    fn id(uid: u32, gid: u32, groups: &[u32], home: Option<&str>) -> Identity {
        Identity {
            uid,
            gid,
            groups: groups.to_vec(),
            home: home.map(|h| h.as_bytes().to_vec()),
        }
    }

    fn r(spec: &str) -> Result<Identity, String> {
        resolve(spec.as_bytes(), Some(PASSWD), Some(GROUP))
    }

    #[test]
    fn resolves_every_documented_form() {
        assert_eq!(r(""), Ok(id(0, 0, &[0, 10], Some("/root"))));
        assert_eq!(r("root"), Ok(id(0, 0, &[0, 10], Some("/root"))));
        assert_eq!(
            r("app"),
            Ok(id(1000, 1000, &[1000, 50, 60], Some("/home/app")))
        );
        assert_eq!(
            r("1000"),
            Ok(id(1000, 1000, &[1000, 50, 60], Some("/home/app")))
        );
        assert_eq!(r("1000:50"), Ok(id(1000, 50, &[50, 60], Some("/home/app"))));
        assert_eq!(
            r("app:staff"),
            Ok(id(1000, 50, &[50, 60], Some("/home/app")))
        );
        assert_eq!(
            r("1000:wheel"),
            Ok(id(1000, 10, &[10, 50, 60], Some("/home/app")))
        );
        assert_eq!(r("app:7"), Ok(id(1000, 7, &[7, 50, 60], Some("/home/app"))));
        // A number without an entry: no name, so no supplementary groups.
        assert_eq!(r("4242"), Ok(id(4242, 0, &[0], None)));
        assert_eq!(r("4242:4243"), Ok(id(4242, 4243, &[4243], None)));
    }

    #[test]
    fn works_without_passwd_or_group_files() {
        assert_eq!(resolve(b"", None, None), Ok(id(0, 0, &[0], None)));
        assert_eq!(
            resolve(b"123:456", None, None),
            Ok(id(123, 456, &[456], None))
        );
        assert!(resolve(b"root", None, None)
            .unwrap_err()
            .contains("user root not found"));
        assert!(resolve(b"0:wheel", Some(PASSWD), None)
            .unwrap_err()
            .contains("group wheel not found"));
    }

    #[test]
    fn unknown_names_are_errors() {
        assert_eq!(
            r("ghost").unwrap_err(),
            "user ghost not found in /etc/passwd"
        );
        assert_eq!(
            r("app:ghosts").unwrap_err(),
            "group ghosts not found in /etc/group"
        );
        // Too large for a uid: a name, and no such name.
        assert!(r("99999999999").is_err());
        assert!(r("bad\x1bname").unwrap_err().contains("bad\\x1bname"));
    }
}
