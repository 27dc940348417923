//! Will it boot? The command `/init` will run, checked against the final
//! tree before a byte of the archive is written.
//!
//! What is checked, in the order the kernel and the loader meet it:
//! 1. the User names an account of the image's /etc/passwd (or is numeric);
//! 2. the program resolves as runc finds it: a path with a `/` (relative
//!    ones from WorkingDir), else the first executable regular file named
//!    so in the image's PATH (Docker's default PATH when the image sets
//!    none), symlinks followed inside the image;
//! 3. a `#!` script's interpreter exists, is executable and is checked the
//!    same way (nested up to the kernel's four levels; `env NAME` is looked
//!    up in PATH as env does);
//! 4. an ELF file's class, byte order and machine are ones the target
//!    platform's kernel runs; its `PT_INTERP` loader exists, is executable
//!    and is an ELF of the same machine; every `DT_NEEDED` library is found
//!    the way that loader searches (see `loader`), breadth first as it
//!    loads them, recursively, a library already loaded answering by name
//!    or soname.
//!
//! Invariants: only what the archive will hold is consulted (the caller's
//! `TreeView` is the final tree); nothing that depends on run time is
//! guessed (`dlopen`, `LD_PRELOAD`, programs the command starts later);
//! a candidate library of another machine or class is skipped, as the
//! loader skips it.
//!
//! The check never reads layers itself. `check` runs over what has been
//! read so far (`Contents`) and either finishes or returns the files (and
//! byte ranges) it still needs; the caller reads those and runs it again.
//! Each run goes one level deeper in the dependency tree, so a run count
//! of about the tree's depth (3 or 4 for a Debian program) suffices.

// A `vec![a..b]` here is a list of one byte range, as meant.
#![allow(clippy::single_range_in_vec_init)]

pub(crate) mod elf;
pub(crate) mod loader;
pub mod memory;

use std::collections::HashMap;
use std::ops::Range;

use super::path::resolve;
use super::{combine_command, ImageLookup, RunConfig, DEFAULT_PATH};
use crate::fs::{Entry, Kind};
use crate::path::escape;
use crate::path::rooted;
use elf::{Arch, Capture, ElfInfo, Parsed, Sparse};
use loader::Libc;

/// The merged tree as the archive will hold it.
pub(crate) trait TreeView: ImageLookup {
    /// Names in the directory at `dir` (a path with no symlink in it), in
    /// any order; empty when it is not a directory.
    fn children(&self, dir: &[u8]) -> Vec<Vec<u8>>;
}

/// What `/init` will run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Subject<'a> {
    /// The image's command (Entrypoint + Cmd, Env, WorkingDir, User): the
    /// archive's `/init` is the generated one.
    Command(&'a RunConfig),
    /// `/init` itself: from `--init FILE`, `--inject` or the image.
    Init,
}

/// Text files (ld.so.conf, passwd) are read up to this size.
const MAX_TEXT: u64 = 1 << 20;
/// The kernel follows at most this many nested `#!` interpreters.
const MAX_INTERPRETERS: usize = 4;
/// ld.so.conf includes followed, at most.
const MAX_CONF_FILES: usize = 256;

/// A file (by its path in the final tree, no symlinks in it) and which of
/// its bytes the check needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub path: Vec<u8>,
    /// `None`: the head and the ELF ranges it points at.
    pub ranges: Option<Vec<Range<u64>>>,
}

impl Request {
    /// How to keep this request's bytes from a body of `size` bytes.
    pub fn capture(&self, size: u64) -> Capture {
        match &self.ranges {
            None => Capture::head(size),
            Some(r) => Capture::ranges(size, r),
        }
    }
}

/// The bytes read so far, by path.
#[derive(Debug, Default)]
pub(crate) struct Contents {
    files: HashMap<Vec<u8>, Sparse>,
}

impl Contents {
    pub fn add(&mut self, path: Vec<u8>, bytes: Sparse) {
        match self.files.get_mut(&path) {
            Some(s) => s.merge(bytes),
            None => {
                self.files.insert(path, bytes);
            }
        }
    }

    /// Bytes held, for logs.
    pub fn held(&self) -> usize {
        self.files.values().map(Sparse::held).sum()
    }
}

/// What the check found, for the summary and `--json`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// The program as the command names it.
    pub command: String,
    /// Where it resolved in the image, escaped for display.
    pub program: String,
    /// "static", "dynamic" or "script" (its final interpreter decides).
    pub kind: &'static str,
    /// The ELF machine (`x86-64`, `AArch64`) of the program that runs.
    pub machine: Option<String>,
    /// The `PT_INTERP` loader of a dynamic program.
    pub loader: Option<String>,
    /// `#!` interpreters passed through, in order.
    pub interpreters: Vec<String>,
    /// Shared libraries found, in load order.
    pub libraries: Vec<String>,
}

impl Report {
    /// "/usr/bin/ls: dynamic x86-64 ELF, 3 libraries".
    pub fn line(&self) -> String {
        let mut s = format!("{}: ", self.program);
        for i in &self.interpreters {
            s.push_str(&format!("#!{i}, "));
        }
        s.push_str(self.kind);
        if let Some(m) = &self.machine {
            s.push_str(&format!(" {m}"));
        }
        s.push_str(" ELF");
        if self.kind == "dynamic" {
            let n = self.libraries.len();
            s.push_str(&format!(", {n} librar{}", if n == 1 { "y" } else { "ies" }));
        }
        s
    }

    /// The same as a JSON object, as `--json` prints it.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "command": self.command,
            "program": self.program,
            "kind": self.kind,
            "machine": self.machine,
            "loader": self.loader,
            "interpreters": self.interpreters,
            "libraries": self.libraries,
        })
    }
}

/// Why the image's command cannot run.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CheckError(String);

#[derive(Debug)]
pub(crate) enum Outcome {
    Done(Report),
    /// Read these and run the check again.
    Need(Vec<Request>),
}

/// Runs the check over what `contents` holds. `arch` is the image's
/// platform; `None` (not a Linux architecture this module knows) skips the
/// machine comparison.
pub(crate) fn check(
    subject: Subject<'_>,
    arch: Option<&'static Arch>,
    view: &dyn TreeView,
    contents: &Contents,
) -> Result<Outcome, CheckError> {
    let mut run = Run {
        view,
        contents,
        target: arch,
        workdir: b"/".to_vec(),
        path_dirs: Vec::new(),
        ld_library_path: Vec::new(),
        need: Vec::new(),
        error: None,
        report: Report::default(),
    };
    run.start(subject);
    if !run.need.is_empty() {
        run.need.sort_by(|a, b| a.path.cmp(&b.path));
        run.need.dedup_by(|a, b| a.path == b.path);
        return Ok(Outcome::Need(run.need));
    }
    match run.error {
        Some(e) => Err(CheckError(e)),
        None => Ok(Outcome::Done(run.report)),
    }
}

fn esc(b: &[u8]) -> String {
    escape(b)
}

fn dir_of(path: &[u8]) -> Vec<u8> {
    crate::path::parent(path).to_vec()
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if name.starts_with(b"/") {
        return rooted(name);
    }
    rooted(&[dir, b"/", name].concat())
}

/// One loaded object, as the loader keeps it.
struct Object {
    /// The path it was found at (the executable: its real path).
    path: Vec<u8>,
    /// The names it answers to.
    names: Vec<Vec<u8>>,
    info: ElfInfo,
    /// The object whose DT_NEEDED loaded it.
    loader: Option<usize>,
}

struct Run<'a> {
    view: &'a dyn TreeView,
    contents: &'a Contents,
    target: Option<&'static Arch>,
    workdir: Vec<u8>,
    path_dirs: Vec<Vec<u8>>,
    ld_library_path: Vec<Vec<u8>>,
    need: Vec<Request>,
    /// The first problem found; reported only when nothing is pending, as
    /// a pending file could change the answer.
    error: Option<String>,
    report: Report,
}

impl Run<'_> {
    fn fail(&mut self, message: String) {
        if self.error.is_none() {
            self.error = Some(message);
        }
    }

    fn start(&mut self, subject: Subject<'_>) {
        let mut path = DEFAULT_PATH.as_bytes().to_vec();
        let program = match subject {
            Subject::Init => b"/init".to_vec(),
            Subject::Command(config) => {
                let argv =
                    match combine_command(config.entrypoint.as_deref(), config.cmd.as_deref()) {
                        Ok(argv) => argv,
                        Err(e) => return self.fail(e.to_string()),
                    };
                for item in config.env.iter().flatten() {
                    match item.split_once('=') {
                        Some(("PATH", v)) => path = v.as_bytes().to_vec(),
                        Some(("LD_LIBRARY_PATH", v)) => {
                            self.ld_library_path = loader::split_path(v.as_bytes())
                        }
                        _ => {}
                    }
                }
                if let Some(w) = config.working_dir.as_deref().filter(|w| !w.is_empty()) {
                    self.workdir = rooted(w.as_bytes());
                }
                self.user(config.user.as_deref().unwrap_or("").trim());
                argv[0].as_bytes().to_vec()
            }
        };
        // Empty PATH entries mean the working directory, as in execvp.
        self.path_dirs = path
            .split(|&b| b == b':')
            .map(|d| if d.is_empty() { b"." } else { d })
            .map(|d| join(&self.workdir, d))
            .collect();
        self.report.command = esc(&program);
        let Some(found) = self.find_program(&program) else {
            return;
        };
        self.report.program = esc(&found);
        // Needed by dynamic programs; asked for now to save a round.
        let conf = self.conf_dirs();
        self.exec(&found, 0, conf.as_deref());
    }

    /// The bytes of a small text file, resolved in the image: `Some(None)`
    /// when it is not there, `None` while it is being read.
    fn text(&mut self, path: &[u8]) -> Option<Option<Vec<u8>>> {
        let Ok(real) = resolve(self.view, path, true) else {
            return Some(None);
        };
        let Some(Entry {
            kind: Kind::File { size },
            ..
        }) = self.view.entry(&real)
        else {
            return Some(None);
        };
        let len = size.min(MAX_TEXT);
        match self.contents.files.get(&real).and_then(|s| s.get(0, len)) {
            Some(b) => Some(Some(b.to_vec())),
            None => {
                self.need.push(Request {
                    path: real,
                    ranges: Some(vec![0..len]),
                });
                None
            }
        }
    }

    /// What the file at `real` is, or `None` while it is being read.
    fn parsed(&mut self, real: &[u8]) -> Option<Parsed> {
        let Some(sparse) = self.contents.files.get(real) else {
            self.need.push(Request {
                path: real.to_vec(),
                ranges: None,
            });
            return None;
        };
        match elf::parse(sparse) {
            Parsed::Missing(ranges) => {
                self.need.push(Request {
                    path: real.to_vec(),
                    ranges: Some(ranges),
                });
                None
            }
            p => Some(p),
        }
    }

    fn user(&mut self, spec: &str) {
        if spec.is_empty() {
            return;
        }
        let (user, group) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        for (name, file) in [(Some(user), "/etc/passwd"), (group, "/etc/group")] {
            let Some(name) = name.filter(|n| !numeric(n)) else {
                continue;
            };
            let Some(text) = self.text(file.as_bytes()) else {
                continue;
            };
            let known = text.as_deref().is_some_and(|t| {
                t.split(|&b| b == b'\n')
                    .any(|line| line.split(|&b| b == b':').next() == Some(name.as_bytes()))
            });
            if !known {
                let what = if file == "/etc/passwd" {
                    "user"
                } else {
                    "group"
                };
                self.fail(format!(
                    "the image's User {}: {what} {} is not in the image's {file}{}",
                    esc(spec.as_bytes()),
                    esc(name.as_bytes()),
                    if text.is_none() {
                        " (the image has none)"
                    } else {
                        ""
                    }
                ));
            }
        }
    }

    /// Why `path` (already resolved) cannot be executed, if it cannot.
    fn not_executable(&self, real: &[u8]) -> Option<String> {
        match self.view.entry(real).map(|e| (e.kind, e.meta.mode)) {
            Some((Kind::File { .. }, mode)) if mode & 0o111 != 0 => None,
            Some((Kind::File { .. }, mode)) => {
                Some(format!("is not executable (mode {:04o})", mode & 0o7777))
            }
            Some((Kind::Dir, _)) => Some("is a directory".into()),
            Some(_) => Some("is not a regular file".into()),
            None => Some("does not exist in the image".into()),
        }
    }

    fn shown(given: &[u8], real: &[u8]) -> String {
        if rooted(given) == real {
            esc(real)
        } else {
            format!("{} (resolved to {})", esc(given), esc(real))
        }
    }

    /// Resolves `given` (relative to WorkingDir) to an executable file.
    fn executable(&mut self, given: &[u8], what: &str) -> Option<Vec<u8>> {
        let path = join(&self.workdir, given);
        let real = match resolve(self.view, &path, true) {
            Ok(r) => r,
            Err(e) => {
                self.fail(format!("{what} {}: {e}", esc(given)));
                return None;
            }
        };
        if let Some(why) = self.not_executable(&real) {
            self.fail(format!("{what} {} {why}", Self::shown(given, &real)));
            return None;
        }
        Some(real)
    }

    /// The command's program: a path, or a name looked up in PATH.
    fn find_program(&mut self, program: &[u8]) -> Option<Vec<u8>> {
        if program.contains(&b'/') {
            return self.executable(program, "the program");
        }
        match self.lookup_path(program) {
            Some(real) => Some(real),
            None => {
                let dirs: Vec<String> = self.path_dirs.iter().map(|d| esc(d)).collect();
                self.fail(format!(
                    "the program {} is not in the image's PATH (looked in {})",
                    esc(program),
                    dirs.join(":")
                ));
                None
            }
        }
    }

    /// The first executable regular file `name` in PATH, as execvp finds it.
    fn lookup_path(&self, name: &[u8]) -> Option<Vec<u8>> {
        self.path_dirs.iter().find_map(|dir| {
            let real = resolve(self.view, &join(dir, name), true).ok()?;
            self.not_executable(&real).is_none().then_some(real)
        })
    }

    /// Checks that the kernel can execute the file at `real`.
    fn exec(&mut self, real: &[u8], depth: usize, conf: Option<&[Vec<u8>]>) {
        let Some(parsed) = self.parsed(real) else {
            return;
        };
        match parsed {
            Parsed::Script {
                interpreter,
                argument,
            } => {
                if depth >= MAX_INTERPRETERS {
                    return self.fail(format!(
                        "{}: more than {MAX_INTERPRETERS} nested #! interpreters",
                        esc(real)
                    ));
                }
                let what = format!("{}: its #! interpreter", esc(real));
                let Some(interp) = self.executable(&interpreter, &what) else {
                    return;
                };
                self.report.interpreters.push(esc(&interp));
                let base = interpreter
                    .rsplit(|&b| b == b'/')
                    .next()
                    .unwrap_or_default();
                if let Some(arg) = argument.filter(|a| base == b"env" && !a.starts_with(b"-")) {
                    if !arg.contains(&b'=') && !arg.contains(&b' ') {
                        return self.env_target(real, (&interpreter, &interp), &arg, depth, conf);
                    }
                }
                self.exec(&interp, depth + 1, conf)
            }
            Parsed::Other => self.fail(format!(
                "{} is neither an ELF executable nor a #! script: the kernel cannot run it",
                esc(real)
            )),
            Parsed::Malformed(why) => self.fail(format!("{}: {why}", esc(real))),
            Parsed::Missing(_) => {}
            Parsed::Elf(info) => self.elf(real, info, conf),
        }
    }

    /// `#!/usr/bin/env NAME`: env runs NAME from PATH.
    fn env_target(
        &mut self,
        script: &[u8],
        (env, env_real): (&[u8], &[u8]),
        name: &[u8],
        depth: usize,
        conf: Option<&[Vec<u8>]>,
    ) {
        self.exec(env_real, depth + 1, conf);
        let target = if name.contains(&b'/') {
            self.executable(
                name,
                &format!("{}: `#!{} {}`:", esc(script), esc(env), esc(name)),
            )
        } else {
            let found = self.lookup_path(name);
            if found.is_none() {
                let dirs: Vec<String> = self.path_dirs.iter().map(|d| esc(d)).collect();
                self.fail(format!(
                    "{}: `#!{} {}`: {} is not in the image's PATH (looked in {})",
                    esc(script),
                    esc(env),
                    esc(name),
                    esc(name),
                    dirs.join(":")
                ));
            }
            found
        };
        if let Some(t) = target {
            self.report.interpreters.push(esc(&t));
            self.exec(&t, depth + 1, conf);
        }
    }

    fn elf(&mut self, real: &[u8], info: ElfInfo, conf: Option<&[Vec<u8>]>) {
        let own = Arch::of(&info);
        if let Some(target) = self.target {
            if !own.is_some_and(|a| target.runs(a)) {
                return self.fail(format!(
                    "{} is an ELF for {} ({}-bit, {}), but the image's platform is {} ({}): the kernel cannot run it",
                    esc(real),
                    info.machine_name(),
                    if info.class64 { 64 } else { 32 },
                    if info.big_endian { "big-endian" } else { "little-endian" },
                    target.oci[0],
                    target.name()
                ));
            }
        }
        if info.file_type != 2 && info.file_type != 3 {
            return self.fail(format!(
                "{} is an ELF file of type {}, not an executable",
                esc(real),
                info.file_type
            ));
        }
        self.report.machine = Some(info.machine_name());
        let Some(interp) = info.interpreter.clone() else {
            self.report.kind = "static";
            return;
        };
        self.report.kind = "dynamic";
        let what = format!("{}: its ELF interpreter (dynamic loader)", esc(real));
        let Some(loader_real) = self.executable(&interp, &what) else {
            return;
        };
        self.report.loader = Some(esc(&interp));
        let Some(parsed) = self.parsed(&loader_real) else {
            return;
        };
        let loader_info = match parsed {
            Parsed::Elf(li) if same_abi(&li, &info) => li,
            Parsed::Elf(li) => {
                return self.fail(format!(
                    "{}: its dynamic loader {} is a {} ELF, the program a {} one",
                    esc(real),
                    esc(&interp),
                    li.machine_name(),
                    info.machine_name()
                ))
            }
            _ => {
                return self.fail(format!(
                    "{}: its dynamic loader {} is not an ELF file",
                    esc(real),
                    esc(&interp)
                ))
            }
        };
        let Some(arch) = own else {
            return; // no directory layout known for this machine
        };
        let libc = Libc::of_interpreter(&interp);
        let sys_dirs = match libc {
            Libc::Glibc => match conf {
                Some(conf) => conf.to_vec(),
                None => return,
            },
            Libc::Musl => {
                let file = format!("/etc/ld-musl-{}.path", arch.musl);
                match self.text(file.as_bytes()) {
                    None => return,
                    Some(Some(t)) => loader::split_path(&t),
                    Some(None) => loader::split_path(loader::MUSL_DEFAULT_PATH),
                }
            }
        };
        let mut loader_names = vec![interp.clone()];
        loader_names.extend(interp.rsplit(|&b| b == b'/').next().map(<[u8]>::to_vec));
        let main = Object {
            path: real.to_vec(),
            names: Vec::new(),
            info,
            loader: None,
        };
        let ld = Object {
            path: loader_real,
            names: loader_names,
            info: loader_info,
            loader: None,
        };
        self.libraries(vec![main, ld], libc, arch, &sys_dirs);
    }

    /// Loads every DT_NEEDED breadth first, as the loader does.
    fn libraries(&mut self, mut objs: Vec<Object>, libc: Libc, arch: &Arch, sys_dirs: &[Vec<u8>]) {
        let mut i = 0;
        while i < objs.len() {
            if i == 1 {
                i += 1; // the loader: its own needs are its business
                continue;
            }
            for name in objs[i].info.needed.clone() {
                if libc == Libc::Musl && loader::musl_builtin(&name) {
                    continue;
                }
                let loaded = objs.iter().any(|o| {
                    o.names.contains(&name) || o.info.soname.as_deref() == Some(&name[..])
                });
                if loaded {
                    continue;
                }
                match self.find_library(&objs, i, &name, libc, arch, sys_dirs) {
                    Found::Yes(path, info) => {
                        self.report.libraries.push(esc(&path));
                        objs.push(Object {
                            path,
                            names: vec![name],
                            info,
                            loader: Some(i),
                        });
                    }
                    Found::Pending => {}
                    Found::No(searched, skipped) => {
                        let dirs: Vec<String> = searched.iter().map(|d| esc(d)).collect();
                        let mut msg = format!(
                            "{} needs {}, which is in none of {}",
                            esc(&objs[i].path),
                            esc(&name),
                            dirs.join(", ")
                        );
                        if !skipped.is_empty() {
                            msg.push_str(&format!(" (skipped: {})", skipped.join(", ")));
                        }
                        self.fail(msg);
                    }
                }
            }
            i += 1;
        }
    }

    fn find_library(
        &mut self,
        objs: &[Object],
        at: usize,
        name: &[u8],
        libc: Libc,
        arch: &Arch,
        sys_dirs: &[Vec<u8>],
    ) -> Found {
        let requester = &objs[at];
        let origin = |o: &Object| dir_of(&o.path);
        let expand = |entries: &[Vec<u8>], o: &Object| -> Vec<Vec<u8>> {
            entries
                .iter()
                .flat_map(|e| loader::split_path(e))
                .flat_map(|d| loader::expand(&d, &origin(o), arch))
                .collect()
        };
        let candidates: Vec<Vec<u8>> = if name.contains(&b'/') {
            vec![join(&self.workdir, name)]
        } else {
            let mut dirs: Vec<Vec<u8>> = Vec::new();
            match libc {
                Libc::Glibc => {
                    if requester.info.runpath.is_empty() {
                        let mut l = Some(at);
                        while let Some(k) = l {
                            if objs[k].info.runpath.is_empty() {
                                dirs.extend(expand(&objs[k].info.rpath, &objs[k]));
                            }
                            l = objs[k].loader;
                        }
                    }
                    dirs.extend(self.ld_library_path.iter().cloned());
                    dirs.extend(expand(&requester.info.runpath, requester));
                    dirs.extend(sys_dirs.iter().cloned());
                    if !requester.info.nodeflib {
                        dirs.extend(loader::glibc_default_dirs(arch));
                    }
                }
                Libc::Musl => {
                    dirs.extend(self.ld_library_path.iter().cloned());
                    let mut l = Some(at);
                    while let Some(k) = l {
                        let o = &objs[k];
                        let path = if o.info.runpath.is_empty() {
                            &o.info.rpath
                        } else {
                            &o.info.runpath
                        };
                        dirs.extend(expand(path, o));
                        l = o.loader;
                    }
                    dirs.extend(sys_dirs.iter().cloned());
                }
            }
            let mut seen = std::collections::HashSet::new();
            dirs.into_iter()
                .map(|d| join(&self.workdir, &d))
                .filter(|d| seen.insert(d.clone()))
                .map(|d| join(&d, name))
                .collect()
        };
        let mut skipped = Vec::new();
        for candidate in &candidates {
            let Ok(real) = resolve(self.view, candidate, true) else {
                continue;
            };
            if !matches!(
                self.view.entry(&real).map(|e| e.kind),
                Some(Kind::File { .. })
            ) {
                continue;
            }
            match self.parsed(&real) {
                None => return Found::Pending,
                Some(Parsed::Elf(info)) if same_abi(&info, &requester.info) => {
                    return Found::Yes(candidate.clone(), info)
                }
                Some(Parsed::Elf(info)) => skipped.push(format!(
                    "{} is a {}-bit {} ELF",
                    esc(candidate),
                    if info.class64 { 64 } else { 32 },
                    info.machine_name()
                )),
                Some(_) => skipped.push(format!("{} is not an ELF file", esc(candidate))),
            }
        }
        let searched = if name.contains(&b'/') {
            candidates
        } else {
            candidates.iter().map(|c| dir_of(c)).collect()
        };
        Found::No(searched, skipped)
    }

    /// The directories of /etc/ld.so.conf and its includes (what
    /// ldconfig puts in ld.so.cache), or `None` while they are being read.
    fn conf_dirs(&mut self) -> Option<Vec<Vec<u8>>> {
        let mut dirs = Vec::new();
        let mut todo = std::collections::VecDeque::from([b"/etc/ld.so.conf".to_vec()]);
        let mut seen = std::collections::HashSet::new();
        let mut pending = false;
        while let Some(file) = todo.pop_front() {
            if !seen.insert(file.clone()) || seen.len() > MAX_CONF_FILES {
                continue;
            }
            let text = match self.text(&file) {
                None => {
                    pending = true;
                    continue;
                }
                Some(None) => continue,
                Some(Some(t)) => t,
            };
            let (found, includes) = loader::parse_ld_so_conf(&text);
            dirs.extend(found);
            for pattern in includes {
                let pattern = join(&dir_of(&file), &pattern);
                let (dir, name) = (dir_of(&pattern), pattern[dir_of(&pattern).len()..].to_vec());
                let name = name.strip_prefix(b"/").unwrap_or(&name).to_vec();
                let Ok(real_dir) = resolve(self.view, &dir, true) else {
                    continue;
                };
                let mut matched: Vec<Vec<u8>> = self
                    .view
                    .children(&real_dir)
                    .into_iter()
                    .filter(|n| loader::name_matches(&name, n))
                    .collect();
                matched.sort();
                todo.extend(matched.into_iter().map(|n| join(&dir, &n)));
            }
        }
        (!pending).then_some(dirs)
    }
}

enum Found {
    Yes(Vec<u8>, ElfInfo),
    Pending,
    /// Directories searched (or the path tried), and candidates skipped.
    No(Vec<Vec<u8>>, Vec<String>),
}

/// The loader only takes objects of its own class, byte order and machine.
fn same_abi(a: &ElfInfo, b: &ElfInfo) -> bool {
    a.machine == b.machine && a.class64 == b.class64 && a.big_endian == b.big_endian
}

#[cfg(test)]
mod tests;
