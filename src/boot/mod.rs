//! The boot stage: the few files that turn a container root filesystem into
//! something the kernel can start.
//!
//! An initramfs is started by the kernel running `/init` as PID 1, with no
//! `/proc`, `/sys` or `/dev` mounted and, unless the archive carries
//! `/dev/console`, without a console. This module decides which files to add
//! to the image for that: the missing mount points and device nodes, an
//! `/init` (generated from the image's Entrypoint and Cmd, or given by the
//! user), and host files the user injects. It never reads layers itself: the
//! caller answers questions about the merged image through `ImageLookup`.
//!
//! The result is a `BootPlan`. Its files override the image's entries at
//! the same paths, and every parent of a file is either a directory of the
//! image (paths are already resolved through the image's symlinks) or a
//! `BootFileKind::Dir` that comes earlier in the plan.

pub mod check;
mod command;
mod guest;
mod init_script;
mod inject;
mod path;
pub(crate) mod run_config;
pub use run_config::DEFAULT_STOP_TIMEOUT;
mod user;

use std::path::PathBuf;

use bytes::Bytes;

// How to run the image: the source reads it from the image config.
use crate::fs::{Entry, Kind};
use crate::source::RunConfig;

pub(crate) use command::combine_command;
pub use guest::static_init;
use inject::parse_inject_spec;

/// Files the boot stage may read through [`ImageLookup::read`]. A streaming
/// builder can capture these bodies while it indexes the layers.
pub(crate) const FILES_READ: &[&[u8]] = &[b"/etc/passwd", b"/etc/group"];

/// The largest file [`ImageLookup::read`] is expected to return.
pub(crate) const MAX_READ: usize = 1 << 20;

/// `PATH` used when the image sets none; the same default as Docker's.
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the boot stage knows of the image besides its tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct BootImage {
    pub config: RunConfig,
    /// OCI `architecture` (`amd64`, `arm64`, ...) and `variant`.
    pub architecture: String,
    pub variant: Option<String>,
    /// Extended attributes of the final tree's files.
    pub xattrs: Vec<FileXattr>,
}

/// An extended attribute of a regular file of the final tree. newc cannot
/// carry it; the static `/init` sets it in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileXattr {
    /// Absolute, normalised.
    pub path: Vec<u8>,
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

/// Questions the boot stage asks about the merged image.
pub(crate) trait ImageLookup {
    /// The winning entry at `path`, as stored (a final symlink not
    /// followed; a hardlink is a file) (absolute, normalised, no trailing slash;
    /// `/` for the root), or `None` when the merged image has nothing there.
    /// Intermediate components are taken literally: this module resolves
    /// symlinks itself and only asks for paths that are real in the image.
    fn entry(&self, path: &[u8]) -> Option<Entry>;

    /// The content of a regular file at `path` if it is at most [`MAX_READ`]
    /// bytes. Only paths in [`FILES_READ`] (or what they resolve to) are asked.
    fn read(&self, path: &[u8]) -> Option<Vec<u8>>;
}

/// What to put at a path of the archive. Not [`Kind`]: it says where a
/// file's bytes come from (in memory, or a host file read when the archive
/// is written); [`BootFile::entry`] is the one conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BootFileKind {
    Regular {
        content: Bytes,
        mode: u32,
    },
    /// A host file whose content is read when the archive is written. `size`
    /// is what it had when the plan was made; a different size then is an error.
    HostFile {
        path: PathBuf,
        mode: u32,
        size: u64,
    },
    Dir {
        mode: u32,
    },
    Symlink {
        target: Vec<u8>,
    },
    CharDev {
        major: u32,
        minor: u32,
        mode: u32,
    },
}

/// One archive entry added by the boot stage, owned by root (0:0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BootFile {
    /// Absolute, normalised, without trailing slash.
    pub path: Vec<u8>,
    pub kind: BootFileKind,
}

impl BootFile {
    fn dir(path: &[u8], mode: u32) -> Self {
        BootFile {
            path: path.to_vec(),
            kind: BootFileKind::Dir { mode },
        }
    }

    /// This file as an entry of the image, owned by root.
    pub fn entry(&self) -> Entry {
        let kind = match &self.kind {
            BootFileKind::Regular { content, .. } => Kind::File {
                size: content.len() as u64,
            },
            BootFileKind::HostFile { size, .. } => Kind::File { size: *size },
            BootFileKind::Dir { .. } => Kind::Dir,
            BootFileKind::Symlink { target } => Kind::Symlink {
                target: target.clone(),
            },
            BootFileKind::CharDev { major, minor, .. } => Kind::CharDevice {
                major: *major,
                minor: *minor,
            },
        };
        Entry::root(kind, self.mode())
    }

    /// Permission bits (with setuid/setgid/sticky) of this entry.
    pub fn mode(&self) -> u32 {
        match &self.kind {
            BootFileKind::Regular { mode, .. }
            | BootFileKind::HostFile { mode, .. }
            | BootFileKind::Dir { mode }
            | BootFileKind::CharDev { mode, .. } => *mode,
            BootFileKind::Symlink { .. } => 0o777,
        }
    }
}

/// How `/init` is chosen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum InitChoice {
    /// The image's own `/init` when it has one, else one generated from the
    /// image config. An image that ships `/init` was made to be booted, and
    /// may even name it as its Entrypoint (s6-overlay), so it is not replaced.
    #[default]
    Auto,
    /// Always the tool's own `/init` for the image config: the static
    /// program where the architecture has one, else the sh script.
    Generated,
    /// The generated POSIX sh script even where a static init exists (the
    /// image must have `/bin/sh` and the tools the script calls).
    Script,
    /// `--init FILE`: this host file becomes `/init`.
    File(PathBuf),
    /// `--no-init`: the image's filesystem as it is, plus only the injected
    /// files: no `/init`, no essentials (a note says so when nothing
    /// provides `/init`).
    Keep,
}

/// Everything the boot stage was asked to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BootOptions {
    /// Where `/init` comes from.
    pub init: InitChoice,
    /// `--inject SRC:DST` specs, in command-line order (later ones win).
    pub injects: Vec<String>,
    /// Seconds the static init waits after the stop signal before SIGKILL
    /// (default [`run_config::DEFAULT_STOP_TIMEOUT`]).
    pub stop_timeout: Option<u64>,
}

/// The files to add to the archive, in an order where parents come first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct BootPlan {
    pub files: Vec<BootFile>,
    /// Things the user should know, one line each (print them as warnings).
    pub notes: Vec<Note>,
}

/// Something the user should know about an archive that still converts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Note {
    /// The image has its own `/init`, and it is what boots.
    ImageInit,
    /// Anything else, as one line (bytes of the image escaped).
    Text(String),
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Note::ImageInit => f.write_str("the image has its own /init: booting it"),
            Note::Text(text) => f.write_str(text),
        }
    }
}

/// Why the boot stage cannot add what it was asked to. Image text in
/// messages is escaped; host files are named as given.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BootError {
    /// Nothing to run.
    #[error("image has no Entrypoint or Cmd")]
    NoCommand,
    /// The command's first word is empty.
    #[error("image command has an empty program name")]
    EmptyProgram,
    /// A value no `execve` can pass (the value, escaped).
    #[error("image config value contains a NUL byte: {0:?}")]
    NulByte(String),
    /// The generated `/init` is a shell script and the image has no shell.
    #[error("the generated /init needs /bin/sh, which the image lacks")]
    NoShell,
    /// The StopSignal names no signal.
    #[error("image StopSignal {0:?} is not a signal")]
    BadStopSignal(String),
    /// The User is not `user`, `uid`, `user:group` or `uid:gid`.
    #[error("image User {0:?} is not a valid user[:group]")]
    BadUser(String),
    /// The User names an account the image does not have.
    #[error("image User: user {0:?} is not in the image's /etc/passwd")]
    UnknownUser(String),
    /// The User names a group the image does not have.
    #[error("image User: group {0:?} is not in the image's /etc/group")]
    UnknownGroup(String),
    /// The sh script cannot change user: no switching program in the image.
    #[error("image User {user:?} (uid {uid}, gid {gid}): the image has no program that can switch to it (setpriv, su-exec, gosu, chpst, runuser or su)")]
    NoUserSwitcher {
        /// The User as the image gives it.
        user: String,
        /// The user id it resolves to.
        uid: u32,
        /// The group id it resolves to.
        gid: u32,
    },
    /// The sh script cannot set this variable, and there is no `env`.
    #[error(
        "image Env {0:?} is not a shell variable name and the image has no env program to set it"
    )]
    EnvNeedsEnvProgram(String),
    /// An inject spec that is not `SRC:DST` with an absolute `DST`.
    #[error("invalid inject spec {0:?}: expected SRC:DST with an absolute DST")]
    BadInjectSpec(String),
    /// A host file given as the init or to inject cannot be read.
    #[error("{what} {}: {source}", path.display())]
    Host {
        /// What the file was given as.
        what: HostFile,
        /// The file, as given.
        path: PathBuf,
        /// Why it cannot be read.
        #[source]
        source: std::io::Error,
    },
    /// The init file given is not a regular file.
    #[error("{} {}: not a regular file", HostFile::Init, .0.display())]
    InitNotAFile(PathBuf),
    /// An inject source is neither a regular file, a directory nor a symlink.
    #[error("{} {}: not a regular file, directory or symlink", HostFile::Inject, .0.display())]
    UnsupportedFileType(PathBuf),
    /// A boot file's parent is a file of the image (paths escaped).
    #[error("cannot place {path}: {parent} is not a directory in the image")]
    NotADirectory {
        /// The boot file.
        path: String,
        /// Its parent, as the image has it.
        parent: String,
    },
    /// Resolving a boot file's path went through too many symlinks.
    #[error("too many levels of symbolic links in the image resolving {0}")]
    SymlinkLoop(String),
}

/// What a host file was given as: the program to run as `/init`, or a file
/// to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostFile {
    /// The program to install as `/init`.
    Init,
    /// A file or directory to add to the archive.
    Inject,
}

impl std::fmt::Display for HostFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HostFile::Init => "init file",
            HostFile::Inject => "inject source",
        })
    }
}

/// Mount points and device nodes the kernel and the generated `/init` need,
/// for those the image lacks. `/dev/console` matters most: without it PID 1
/// starts with no stdin, stdout or stderr.
pub(crate) fn essentials(lookup: &dyn ImageLookup) -> Vec<BootFile> {
    let mut out = Vec::new();
    for (path, mode) in [
        (&b"/dev"[..], 0o755),
        (b"/proc", 0o555),
        (b"/run", 0o755),
        (b"/sys", 0o555),
        (b"/tmp", 0o1777),
    ] {
        // A symlink (e.g. /run -> /var/run) is the image's choice: keep it.
        if lookup.entry(path).is_none() {
            out.push(BootFile::dir(path, mode));
        }
    }
    let dev_is_dir = matches!(
        lookup.entry(b"/dev").map(|e| e.kind),
        None | Some(Kind::Dir)
    );
    if dev_is_dir {
        for (path, major, minor, mode) in [
            (&b"/dev/console"[..], 5, 1, 0o600),
            (b"/dev/null", 1, 3, 0o666),
        ] {
            // `docker export` leaves an empty regular file at /dev/console:
            // replace anything that is not the right device.
            let ok = matches!(lookup.entry(path).map(|e| e.kind),
                Some(Kind::CharDevice { major: a, minor: b }) if a == major && b == minor);
            if !ok {
                out.push(BootFile {
                    path: path.to_vec(),
                    kind: BootFileKind::CharDev { major, minor, mode },
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Parses one `--inject SRC:DST` and lists what it adds, DST first, then a
/// directory's contents sorted by name bytes. Paths are not yet resolved
/// against the image: [`plan`] does that.
pub(crate) fn inject(spec: &str) -> Result<Vec<BootFile>, BootError> {
    let spec = parse_inject_spec(spec)?;
    inject::collect(&spec)
}

/// Everything the boot stage adds: essentials, `/init` (with its run
/// config) and injected files, with missing parent directories, in an
/// order where parents come first.
pub(crate) fn plan(
    options: &BootOptions,
    image: &BootImage,
    lookup: &dyn ImageLookup,
) -> Result<BootPlan, BootError> {
    let mut notes = Vec::new();
    let mut wanted: Vec<BootFile> = match options.init {
        InitChoice::Keep => Vec::new(),
        _ => essentials(lookup),
    };

    let mut injected = Vec::new();
    for spec in &options.injects {
        injected.extend(inject(spec)?);
    }
    let injects_init = injected.iter().any(|f| f.path == b"/init");
    let image_init = path::resolve(lookup, b"/init", true)
        .ok()
        .and_then(|p| lookup.entry(&p))
        .is_some_and(|e| matches!(e.kind, Kind::File { .. }));

    let mut applies_xattrs = false;
    match &options.init {
        InitChoice::Keep => {
            if !image_init && !injects_init {
                notes.push(Note::Text(
                    "the archive has no /init: the kernel cannot boot it on its own".to_string(),
                ));
            }
        }
        InitChoice::File(host) => {
            let meta = std::fs::metadata(host).map_err(|source| BootError::Host {
                what: HostFile::Init,
                path: host.clone(),
                source,
            })?;
            if !meta.is_file() {
                return Err(BootError::InitNotAFile(host.clone()));
            }
            wanted.push(BootFile {
                path: b"/init".to_vec(),
                kind: BootFileKind::HostFile {
                    path: host.clone(),
                    mode: 0o755,
                    size: meta.len(),
                },
            });
        }
        InitChoice::Auto if image_init || injects_init => {
            if image_init && !injects_init {
                notes.push(Note::ImageInit);
            }
        }
        InitChoice::Auto | InitChoice::Generated | InitChoice::Script => {
            let program = match options.init {
                InitChoice::Script => None,
                _ => static_init(&image.architecture, image.variant.as_deref()),
            };
            match program {
                Some(program) => {
                    let more = static_init_files(options, image, lookup, program, &mut wanted)?;
                    notes.extend(more.into_iter().map(Note::Text));
                    applies_xattrs = true;
                }
                None => {
                    if options.init != InitChoice::Script {
                        notes.push(Note::Text(format!(
                            "no static /init for {}: /init is a generated sh script",
                            crate::path::escape(image.architecture.as_bytes())
                        )));
                    }
                    let (script, more) = init_script::generate(&image.config, lookup)?;
                    notes.extend(more.into_iter().map(Note::Text));
                    if let Some(dir) = &script.missing_workdir {
                        wanted.push(BootFile::dir(dir.as_bytes(), 0o755));
                    }
                    wanted.push(BootFile {
                        path: b"/init".to_vec(),
                        kind: BootFileKind::Regular {
                            content: Bytes::from(script.render()),
                            mode: 0o755,
                        },
                    });
                }
            }
        }
    }
    if !applies_xattrs {
        notes.extend(dropped_xattrs(&image.xattrs).map(Note::Text));
    }
    wanted.extend(injected);
    let files = path::place(lookup, wanted)?;
    Ok(BootPlan { files, notes })
}

/// The note for extended attributes nothing will set: newc cannot store
/// them, and only the static `/init` applies them at boot.
pub(crate) fn dropped_xattrs(xattrs: &[FileXattr]) -> Option<String> {
    let names: std::collections::BTreeSet<String> = xattrs
        .iter()
        .map(|x| crate::path::escape(&x.name))
        .collect();
    (!names.is_empty()).then(|| {
        format!(
            "newc archives cannot store extended attributes (only the static /init sets them at boot); dropped: {}",
            names.into_iter().collect::<Vec<_>>().join(", ")
        )
    })
}

/// `/init` as the static program, and the run config it reads. The checks
/// that can be made on the image alone run here, so a command that cannot
/// start fails the build rather than the boot.
fn static_init_files(
    options: &BootOptions,
    image: &BootImage,
    lookup: &dyn ImageLookup,
    program: &'static [u8],
    wanted: &mut Vec<BootFile>,
) -> Result<Vec<String>, BootError> {
    let config = &image.config;
    combine_command(config.entrypoint.as_deref(), config.cmd.as_deref())?;
    if let Some(bad) = config.env.iter().flatten().find(|e| e.contains('\0')) {
        return Err(BootError::NulByte(bad.clone()));
    }
    for value in [&config.working_dir, &config.user, &config.stop_signal] {
        if let Some(bad) = value.as_ref().filter(|v| v.contains('\0')) {
            return Err(BootError::NulByte(bad.clone()));
        }
    }
    if let Some(signal) = config.stop_signal.as_deref().filter(|s| !s.is_empty()) {
        if !run_config::is_signal(signal) {
            return Err(BootError::BadStopSignal(signal.to_string()));
        }
    }
    let read = |p: &[u8]| -> Result<Option<Vec<u8>>, BootError> {
        Ok(lookup.read(&path::resolve(lookup, p, true)?))
    };
    let spec = config.user.as_deref().unwrap_or("").trim();
    user::resolve(
        spec,
        read(b"/etc/passwd")?.as_deref(),
        read(b"/etc/group")?.as_deref(),
    )?;

    let stop_timeout = options
        .stop_timeout
        .unwrap_or(run_config::DEFAULT_STOP_TIMEOUT);
    let (json, notes) = run_config::render(config, stop_timeout, &image.xattrs);
    wanted.push(BootFile {
        path: b"/init".to_vec(),
        kind: BootFileKind::Regular {
            content: Bytes::from_static(program),
            mode: 0o755,
        },
    });
    wanted.push(BootFile::dir(run_config::DIR, 0o755));
    wanted.push(BootFile {
        path: run_config::PATH.to_vec(),
        kind: BootFileKind::Regular {
            content: Bytes::from(json),
            mode: 0o644,
        },
    });
    Ok(notes)
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use std::collections::BTreeMap;

    /// An in-memory merged image for unit tests.
    #[derive(Default)]
    pub struct MapImage {
        pub entries: BTreeMap<Vec<u8>, Entry>,
        pub contents: BTreeMap<Vec<u8>, Vec<u8>>,
    }

    impl MapImage {
        pub fn new() -> Self {
            let mut m = MapImage::default();
            m.dir("/");
            m
        }
        pub fn dir(&mut self, p: &str) -> &mut Self {
            self.entries
                .insert(p.as_bytes().to_vec(), Entry::root(Kind::Dir, 0o755));
            self
        }
        pub fn file(&mut self, p: &str, mode: u32, content: &str) -> &mut Self {
            self.entries.insert(
                p.as_bytes().to_vec(),
                Entry::root(
                    Kind::File {
                        size: content.len() as u64,
                    },
                    mode,
                ),
            );
            self.contents
                .insert(p.as_bytes().to_vec(), content.as_bytes().to_vec());
            self
        }
        pub fn link(&mut self, p: &str, target: &str) -> &mut Self {
            self.entries.insert(
                p.as_bytes().to_vec(),
                Entry::root(
                    Kind::Symlink {
                        target: target.as_bytes().to_vec(),
                    },
                    0o777,
                ),
            );
            self
        }
        pub fn put(&mut self, p: &str, e: Entry) -> &mut Self {
            self.entries.insert(p.as_bytes().to_vec(), e);
            self
        }
        /// A busybox userland: /bin/busybox and applet symlinks to it.
        pub fn busybox(&mut self, applets: &[&str]) -> &mut Self {
            self.dir("/bin").file("/bin/busybox", 0o755, "");
            for a in applets {
                self.link(&format!("/bin/{a}"), "/bin/busybox");
            }
            self
        }
    }

    impl ImageLookup for MapImage {
        fn entry(&self, path: &[u8]) -> Option<Entry> {
            self.entries.get(path).cloned()
        }
        fn read(&self, path: &[u8]) -> Option<Vec<u8>> {
            self.contents.get(path).cloned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::MapImage;
    use super::*;

    /// An image of an architecture without a static init.
    fn script_image(config: RunConfig) -> BootImage {
        BootImage {
            config,
            architecture: "riscv64".into(),
            ..Default::default()
        }
    }

    fn paths(files: &[BootFile]) -> Vec<String> {
        files
            .iter()
            .map(|f| crate::path::display(&f.path))
            .collect()
    }

    #[test]
    fn essentials_only_what_is_missing() {
        let mut img = MapImage::new();
        img.dir("/proc").dir("/dev").link("/run", "/var/run");
        img.put(
            "/dev/null",
            Entry::root(Kind::CharDevice { major: 1, minor: 3 }, 0o666),
        );
        img.file("/dev/console", 0o644, "");
        let got = essentials(&img);
        assert_eq!(paths(&got), ["/dev/console", "/sys", "/tmp"]);
        assert_eq!(
            got[0].kind,
            BootFileKind::CharDev {
                major: 5,
                minor: 1,
                mode: 0o600
            }
        );
        assert_eq!(got[2].mode(), 0o1777);
    }

    #[test]
    fn essentials_for_an_empty_image() {
        let got = essentials(&MapImage::new());
        assert_eq!(
            paths(&got),
            [
                "/dev",
                "/dev/console",
                "/dev/null",
                "/proc",
                "/run",
                "/sys",
                "/tmp"
            ]
        );
    }

    #[test]
    fn plan_generates_init_and_parents_come_first() {
        let mut img = MapImage::new();
        img.busybox(&["sh", "mount", "mkdir", "poweroff", "reboot", "sleep"]);
        let cfg = RunConfig {
            cmd: Some(vec!["sh".into()]),
            working_dir: Some("/srv/app".into()),
            ..Default::default()
        };
        let p = plan(&BootOptions::default(), &script_image(cfg), &img).unwrap();
        let ps = paths(&p.files);
        assert!(ps.contains(&"/init".to_string()));
        assert!(ps.contains(&"/srv/app".to_string()));
        for (i, f) in p.files.iter().enumerate() {
            let parent = crate::path::parent(&f.path);
            if parent != b"/" {
                let before = p.files[..i].iter().any(|g| g.path == parent);
                assert!(
                    before || img.entry(parent).is_some(),
                    "parent of {} missing",
                    crate::path::display(&f.path)
                );
            }
        }
    }

    #[test]
    fn plan_keeps_an_image_init() {
        let mut img = MapImage::new();
        img.busybox(&["sh"]).file("/init", 0o755, "#!/bin/sh\n");
        let p = plan(&BootOptions::default(), &BootImage::default(), &img).unwrap();
        assert!(!paths(&p.files).contains(&"/init".to_string()));
        assert_eq!(p.notes, [Note::ImageInit]);
        // Generated replaces it on request, and then needs a command.
        let opts = BootOptions {
            init: InitChoice::Generated,
            ..Default::default()
        };
        let err = plan(&opts, &BootImage::default(), &img).unwrap_err();
        assert!(matches!(err, BootError::NoCommand), "{err}");
    }

    #[test]
    fn init_file_must_be_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let img = MapImage::new();
        let opts = |p: PathBuf| BootOptions {
            init: InitChoice::File(p),
            ..Default::default()
        };
        let err = plan(&opts(dir.path().to_path_buf()), &BootImage::default(), &img);
        assert!(matches!(err, Err(BootError::InitNotAFile(_))), "{err:?}");
        let missing = dir.path().join("nope");
        let err = plan(&opts(missing.clone()), &BootImage::default(), &img).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "init file {}: No such file or directory (os error 2)",
                missing.display()
            )
        );
        let file = dir.path().join("init.sh");
        std::fs::write(&file, "#!/bin/sh\n").unwrap();
        let p = plan(&opts(file), &BootImage::default(), &img).unwrap();
        let init = p.files.iter().find(|f| f.path == b"/init").unwrap();
        assert!(matches!(
            init.kind,
            BootFileKind::HostFile {
                mode: 0o755,
                size: 10,
                ..
            }
        ));
        // Essentials come with it: the kernel needs /dev/console either way.
        assert!(p.files.iter().any(|f| f.path == b"/dev/console"));
    }

    #[test]
    fn keep_adds_only_injected_files() {
        let dir = tempfile::tempdir().unwrap();
        let agent = dir.path().join("agent");
        std::fs::write(&agent, "#!/bin/sh\n").unwrap();
        let mut img = MapImage::new();
        img.busybox(&["sh"]);
        let opts = BootOptions {
            init: InitChoice::Keep,
            injects: vec![format!("{}:/opt/agent", agent.display())],
            ..Default::default()
        };
        let p = plan(&opts, &BootImage::default(), &img).unwrap();
        assert_eq!(paths(&p.files), ["/opt", "/opt/agent"]);
        assert_eq!(
            p.notes,
            [Note::Text(
                "the archive has no /init: the kernel cannot boot it on its own".into()
            )]
        );
        // An injected /init satisfies it.
        let opts = BootOptions {
            init: InitChoice::Keep,
            injects: vec![format!("{}:/init", agent.display())],
            ..Default::default()
        };
        let p = plan(&opts, &BootImage::default(), &img).unwrap();
        assert_eq!(paths(&p.files), ["/init"]);
        assert!(p.notes.is_empty());
    }

    #[test]
    fn config_deserializes_from_image_config() {
        let json = r#"{"Env":["PATH=/bin","A=b"],"Entrypoint":null,"Cmd":["sh","-c","echo hi"],"WorkingDir":"","User":"1000:1000","Labels":{"x":"y"}}"#;
        let cfg: RunConfig = serde_json::from_str(json).unwrap();
        assert_eq!(cfg.entrypoint, None);
        assert_eq!(cfg.cmd.as_deref().map(<[String]>::len), Some(3));
        assert_eq!(cfg.user.as_deref(), Some("1000:1000"));
        let empty: RunConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, RunConfig::default());
    }

    fn amd64(config: RunConfig) -> BootImage {
        BootImage {
            config,
            architecture: "amd64".into(),
            ..Default::default()
        }
    }

    fn run_json(p: &BootPlan) -> serde_json::Value {
        let f = p
            .files
            .iter()
            .find(|f| f.path == run_config::PATH)
            .expect("run config in the plan");
        match &f.kind {
            BootFileKind::Regular {
                content,
                mode: 0o644,
            } => serde_json::from_slice(content).unwrap(),
            other => panic!("run config is {other:?}"),
        }
    }

    #[test]
    fn static_init_needs_no_shell() {
        // Distroless: one program and /etc/passwd, nothing else.
        let mut img = MapImage::new();
        img.dir("/etc")
            .file("/etc/passwd", 0o644, "root:x:0:0::/root:/sbin/nologin\nnonroot:x:65532:65532::/home/nonroot:/sbin/nologin\n")
            .file("/app", 0o755, "");
        let cfg = RunConfig {
            entrypoint: Some(vec!["/app".into()]),
            cmd: Some(vec!["--port".into(), "80".into()]),
            user: Some("nonroot".into()),
            ..Default::default()
        };
        let mut image = amd64(cfg);
        image.xattrs.push(FileXattr {
            path: b"/app".to_vec(),
            name: b"security.capability".to_vec(),
            value: vec![1, 2],
        });
        let p = plan(&BootOptions::default(), &image, &img).unwrap();
        assert!(p.notes.is_empty(), "{:?}", p.notes);
        let init = p.files.iter().find(|f| f.path == b"/init").unwrap();
        assert!(
            matches!(&init.kind, BootFileKind::Regular { content, mode: 0o755 }
                if content.as_ref() == static_init("amd64", None).unwrap()),
            "{init:?}"
        );
        let json = run_json(&p);
        assert_eq!(json["entrypoint"], serde_json::json!(["/app"]));
        assert_eq!(json["cmd"], serde_json::json!(["--port", "80"]));
        assert_eq!(json["user"], "nonroot");
        assert_eq!(json["stop_timeout"], 10);
        assert_eq!(json["xattrs"][0]["value"], "0102");
        let dir = p
            .files
            .iter()
            .position(|f| f.path == run_config::DIR)
            .unwrap();
        let file = p
            .files
            .iter()
            .position(|f| f.path == run_config::PATH)
            .unwrap();
        assert!(dir < file);
    }

    #[test]
    fn static_init_checks_the_user_at_build_time() {
        let mut img = MapImage::new();
        img.dir("/etc")
            .file("/etc/passwd", 0o644, "root:x:0:0::/root:/bin/sh\n");
        let with_user = |u: &str| {
            amd64(RunConfig {
                cmd: Some(vec!["/app".into()]),
                user: Some(u.into()),
                ..Default::default()
            })
        };
        let err = plan(&BootOptions::default(), &with_user("nobody"), &img).unwrap_err();
        assert!(matches!(err, BootError::UnknownUser(_)), "{err}");
        // A numeric uid needs no passwd entry, and no program to switch.
        plan(&BootOptions::default(), &with_user("1000:50"), &img).unwrap();
        let err = plan(&BootOptions::default(), &amd64(RunConfig::default()), &img).unwrap_err();
        assert!(matches!(err, BootError::NoCommand), "{err}");
    }

    #[test]
    fn other_architectures_and_sh_init_get_the_script() {
        let mut img = MapImage::new();
        img.busybox(&["sh", "mount", "mkdir", "poweroff", "reboot", "sleep"]);
        let cfg = RunConfig {
            cmd: Some(vec!["sh".into()]),
            ..Default::default()
        };
        let script = |p: &BootPlan| {
            let init = p.files.iter().find(|f| f.path == b"/init").unwrap();
            matches!(&init.kind, BootFileKind::Regular { content, .. } if content.starts_with(b"#!/bin/sh"))
        };
        let p = plan(&BootOptions::default(), &script_image(cfg.clone()), &img).unwrap();
        assert!(script(&p));
        assert!(
            p.notes[0]
                .to_string()
                .contains("no static /init for riscv64"),
            "{:?}",
            p.notes
        );
        let opts = BootOptions {
            init: InitChoice::Script,
            ..Default::default()
        };
        let p = plan(&opts, &amd64(cfg), &img).unwrap();
        assert!(script(&p) && p.notes.is_empty(), "{:?}", p.notes);
        assert!(!p.files.iter().any(|f| f.path == run_config::PATH));
    }
}
