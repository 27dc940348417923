//! Registry image names, normalised as Docker does: `alpine` is
//! `docker.io/library/alpine:latest`, a first component with a `.` or a `:`
//! (or `localhost`) is a registry host.

use std::fmt;

use super::Digest;

pub const DOCKER_HUB: &str = "docker.io";
const MAX_NAME: usize = 255;

/// An image in a registry: where, which repository, which tag or digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryImage {
    /// `host[:port]`; Docker Hub is `docker.io`.
    pub registry: String,
    /// `library/alpine`, `org/app`: the path under the registry.
    pub repository: String,
    /// The tag, when given (`latest` is filled in when neither it nor a
    /// digest is).
    pub tag: Option<String>,
    /// When given, the manifest is fetched by digest and checked against it.
    pub digest: Option<Digest>,
}

impl RegistryImage {
    /// Parses a reference as `docker pull` takes it, normalised the same
    /// way (`alpine` is `docker.io/library/alpine:latest`).
    ///
    /// # Errors
    ///
    /// A one-line message naming the part of the reference that is invalid.
    ///
    /// # Examples
    ///
    /// ```
    /// use initramfs_stream::source::RegistryImage;
    ///
    /// let i = RegistryImage::parse("alpine")?;
    /// assert_eq!((i.registry.as_str(), i.repository.as_str()), ("docker.io", "library/alpine"));
    /// # Ok::<(), String>(())
    /// ```
    pub fn parse(s: &str) -> Result<RegistryImage, String> {
        let bad = |why: &str| format!("'{s}': invalid image name: {why}");
        let (name, digest) = match s.split_once('@') {
            Some((name, digest)) => (
                name,
                Some(Digest::parse(digest).map_err(|e| bad(&e.to_string()))?),
            ),
            None => (s, None),
        };
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
            None => (name, None),
        };
        if let Some(tag) = tag {
            if !valid_tag(tag) {
                return Err(bad(&format!("tag '{tag}'")));
            }
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                (first, rest)
            }
            _ => (DOCKER_HUB, name),
        };
        if !valid_host(registry) {
            return Err(bad(&format!("registry '{registry}'")));
        }
        let registry = if registry == "index.docker.io" {
            DOCKER_HUB
        } else {
            registry
        };
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        if repository.is_empty() || !repository.split('/').all(valid_component) {
            return Err(bad(
                "repository names are lowercase letters, digits and separators (. _ __ -)",
            ));
        }
        if registry.len() + 1 + repository.len() > MAX_NAME {
            return Err(bad("longer than 255 characters"));
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_string()),
        };
        Ok(RegistryImage {
            registry: registry.to_string(),
            repository,
            tag,
            digest,
        })
    }

    /// The tag or digest that names the manifest in the registry's API.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }
}

impl fmt::Display for RegistryImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Without the prefix, a host named like a transport would read back
        // as that transport.
        let host = self.registry.split(':').next().unwrap_or_default();
        if super::TRANSPORTS.contains(&host) {
            f.write_str("docker://")?;
        }
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_host(host: &str) -> bool {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let name_ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    // IPv6 literals in brackets.
    let ipv6_ok = name.starts_with('[')
        && name.ends_with(']')
        && name.len() > 2
        && name[1..name.len() - 1]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    port_ok && (name_ok || ipv6_ok)
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> (String, String, Option<String>, Option<String>) {
        let r = RegistryImage::parse(s).unwrap();
        (
            r.registry,
            r.repository,
            r.tag,
            r.digest.map(|d| d.to_string()),
        )
    }

    #[test]
    fn docker_normalisation() {
        let hub = |repo: &str, tag: &str| {
            (
                "docker.io".to_string(),
                repo.to_string(),
                Some(tag.to_string()),
                None,
            )
        };
        assert_eq!(p("alpine"), hub("library/alpine", "latest"));
        assert_eq!(p("alpine:3.19"), hub("library/alpine", "3.19"));
        assert_eq!(p("org/app:v1"), hub("org/app", "v1"));
        assert_eq!(p("docker.io/alpine"), hub("library/alpine", "latest"));
        assert_eq!(p("index.docker.io/alpine"), hub("library/alpine", "latest"));
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            p(&format!("127.0.0.1:5000/org/app@{d}")),
            (
                "127.0.0.1:5000".to_string(),
                "org/app".to_string(),
                None,
                Some(d.clone())
            )
        );
        assert_eq!(
            p(&format!("localhost/app:v2@{d}")).2,
            Some("v2".to_string())
        );
        assert_eq!(p("localhost:5000/a").0, "localhost:5000");
        assert_eq!(p("reg.example.com/a/b/c").1, "a/b/c");
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "",
            "./img",
            "/tmp/img",
            "Alpine",
            "alpine:",
            "alpine:-x",
            "a//b",
            "host:port/x",
            "alpine@sha256:zz",
            "alpine@md5:abc",
            "a..b",
            "a/",
        ] {
            assert!(RegistryImage::parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn prints_what_it_parses() {
        for s in [
            "docker.io/library/alpine:latest",
            "127.0.0.1:5000/org/app:v1",
            "localhost/app:x",
        ] {
            assert_eq!(RegistryImage::parse(s).unwrap().to_string(), s);
        }
    }
}
