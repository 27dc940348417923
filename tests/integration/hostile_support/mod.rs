//! Running the tool on hostile layouts (tests/fixtures/hostile.py) and
//! checking what it leaves behind: exit status, one-line message, no partial
//! output, and no change outside the output (a decoy directory that the
//! image's symlinks point at, the layout itself, the output directory).

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::fixtures::{reference_tree, Image};
use crate::common::newc;
use crate::common::tree::{assert_same, Tree};
use crate::common::{python, run, BIN};

pub struct Case {
    pub name: &'static str,
    pub image: Image,
    /// A host directory the image's symlinks point at.
    pub decoy: PathBuf,
    _dir: tempfile::TempDir,
}

/// Builds a hostile layout in a fresh directory, with a decoy beside it.
pub fn build(name: &'static str) -> Case {
    let dir = tempfile::Builder::new()
        .prefix(&format!("hostile-{name}-"))
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let decoy = dir.path().join("decoy");
    fs::create_dir(&decoy).unwrap();
    fs::write(decoy.join("keep"), b"decoy file\n").unwrap();
    let layout = dir.path().join("layout");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile.py");
    run(python()
        .arg(script)
        .arg(name)
        .arg(&layout)
        .env("HOSTILE_DECOY", &decoy));
    Case {
        name,
        image: Image {
            layout,
            tag: "t".into(),
        },
        decoy,
        _dir: dir,
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Snap {
    Dir(u32),
    File(u32, Vec<u8>),
    Symlink(PathBuf),
}

/// Every path below `root` with its type, mode and content.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Snap> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(p) = todo.pop() {
        let md = fs::symlink_metadata(&p).unwrap();
        let mode = md.permissions().mode();
        let rel = p.strip_prefix(root).unwrap().to_path_buf();
        let snap = if md.file_type().is_symlink() {
            Snap::Symlink(fs::read_link(&p).unwrap())
        } else if md.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                todo.push(e.unwrap().path());
            }
            Snap::Dir(mode)
        } else {
            Snap::File(mode, fs::read(&p).unwrap())
        };
        out.insert(rel, snap);
    }
    out
}

/// What the tool did, with the peak memory of its process.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
    /// Peak resident set size of the tool, KiB.
    pub max_rss_kib: u64,
}

/// Runs the tool under a Python parent that reports the child's peak RSS
/// (getrusage), so memory bounds are measured, not assumed.
pub fn run_measured(args: &[String]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let script = r#"
import resource, subprocess, sys
out, err = sys.argv[1], sys.argv[2]
with open(out, "wb") as o, open(err, "wb") as e:
    code = subprocess.call(sys.argv[3:], stdin=subprocess.DEVNULL, stdout=o, stderr=e)
print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"#;
    let report = run(python()
        .arg("-c")
        .arg(script)
        .arg(&out_path)
        .arg(&err_path)
        .arg(BIN)
        .args(args));
    let report = String::from_utf8(report).unwrap();
    let mut fields = report.split_whitespace();
    let code: i32 = fields.next().unwrap().parse().unwrap();
    let max_rss_kib: u64 = fields.next().unwrap().parse().unwrap();
    Run {
        // subprocess reports death by signal N as -N.
        code: (code >= 0).then_some(code),
        stdout: fs::read(&out_path).unwrap(),
        stderr: String::from_utf8_lossy(&fs::read(&err_path).unwrap()).into_owned(),
        max_rss_kib,
    }
}

/// Snapshots of everything the tool must not touch.
struct Untouched {
    decoy: BTreeMap<PathBuf, Snap>,
    layout: BTreeMap<PathBuf, Snap>,
}

impl Untouched {
    fn take(case: &Case) -> Untouched {
        Untouched {
            decoy: snapshot(&case.decoy),
            layout: snapshot(&case.image.layout),
        }
    }

    #[track_caller]
    fn check(&self, case: &Case) {
        assert!(
            self.decoy == snapshot(&case.decoy),
            "{}: the decoy directory outside the output changed",
            case.name
        );
        assert!(
            self.layout == snapshot(&case.image.layout),
            "{}: the image layout changed",
            case.name
        );
    }
}

/// The image must be refused: exit status 1, one line on stderr naming the
/// problem (every string of `expect` in it), nothing on stdout, an existing
/// output file untouched, no temporary file, nothing outside changed.
/// Returns the message.
#[track_caller]
pub fn rejected(name: &'static str, extra: &[&str], expect: &[&str]) -> Run {
    let case = build(name);
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("initrd.img");
    fs::write(&out, b"precious").unwrap();
    let before_out = snapshot(out_dir.path());
    let untouched = Untouched::take(&case);

    let mut args = vec![
        case.image.oci_ref(),
        "--no-init".into(),
        "-c".into(),
        "none".into(),
        "-o".into(),
        out.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let r = run_measured(&args);
    assert_eq!(
        r.code,
        Some(1),
        "{name}: expected exit status 1; stderr: {}",
        r.stderr
    );
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{name}: expected a one-line error, got {:?}",
        r.stderr
    );
    let line = lines[0];
    assert!(
        line.starts_with("initramfs-stream: ") && !line.contains("panicked"),
        "{name}: {line}"
    );
    for e in expect {
        assert!(line.contains(e), "{name}: message lacks {e:?}: {line}");
    }
    assert!(
        r.stdout.is_empty(),
        "{name}: wrote {} bytes to stdout with -o",
        r.stdout.len()
    );
    assert!(
        snapshot(out_dir.path()) == before_out,
        "{name}: the output directory changed (partial or temporary file left, or the old output modified)"
    );
    untouched.check(&case);

    // On stdout the same failure writes nothing: every check ran before the
    // first byte.
    let mut args = vec![
        case.image.oci_ref(),
        "--no-init".into(),
        "-c".into(),
        "none".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let s = run_measured(&args);
    assert_eq!(s.code, Some(1), "{name} (stdout): {}", s.stderr);
    assert!(
        s.stdout.is_empty(),
        "{name} (stdout): {} bytes written before failing",
        s.stdout.len()
    );
    untouched.check(&case);
    r
}

/// The image must convert: a whole archive that follows the kernel's rules,
/// nothing but the output written. Returns the archive's tree.
#[track_caller]
pub fn applied(case: &Case) -> Tree {
    let untouched = Untouched::take(case);
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("initrd.cpio");
    let r = run_measured(&[
        case.image.oci_ref(),
        "--no-init".into(),
        "-o".into(),
        out.display().to_string(),
    ]);
    assert_eq!(r.code, Some(0), "{}: {}", case.name, r.stderr);
    let names: Vec<_> = fs::read_dir(out_dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["initrd.cpio"], "{}: stray files", case.name);
    untouched.check(case);
    let data = fs::read(&out).unwrap();
    match newc::parse(&data) {
        Ok(entries) => Tree::from_newc(&entries),
        Err(e) => panic!("{}: {e}", case.name),
    }
}

/// `applied`, and the tree must be what `umoci unpack` makes of the image.
#[track_caller]
pub fn applied_like_umoci(name: &'static str) -> (Case, Tree) {
    let case = build(name);
    let tree = applied(&case);
    let reference = reference_tree(&case.image);
    assert_same(&reference, &tree, name);
    (case, tree)
}

/// What `umoci unpack` makes of the case's image: the tree, or its error
/// message when it refuses the image.
pub fn umoci_unpack(case: &Case) -> Result<Tree, String> {
    crate::common::require("umoci");
    let scratch = tempfile::tempdir().unwrap();
    let bundle = scratch.path().join("bundle");
    let out = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(case.image.umoci_ref())
        .arg(&bundle)
        .output()
        .unwrap();
    match out.status.success() {
        true => Ok(Tree::from_dir(&bundle.join("rootfs"))),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

/// Names a tar reader lists for a layer blob, without trailing slashes.
pub fn listed_by(tool: &str, blob: &Path) -> Vec<Vec<u8>> {
    let out = run(Command::new(tool).arg("-tf").arg(blob));
    let mut names: Vec<Vec<u8>> = out
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| l.strip_suffix(b"/").unwrap_or(l).to_vec())
        .collect();
    names.sort();
    names
}

/// Path of the last layer blob of the case's image.
pub fn last_layer(case: &Case) -> PathBuf {
    let layers = case.image.manifest()["layers"].as_array().unwrap().clone();
    let digest = layers.last().unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    case.image.blob_path(&digest)
}

/// Starts the tool with stdout piped.
pub fn spawn(args: &[String]) -> std::process::Child {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

pub fn signal(child: &std::process::Child, sig: &str) {
    run(Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string()));
}

pub fn read_all(r: &mut impl Read) -> Vec<u8> {
    let mut v = Vec::new();
    r.read_to_end(&mut v).unwrap();
    v
}
