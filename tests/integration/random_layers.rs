//! Randomised differential test: proptest draws layer stacks over a small
//! path space (files, dirs, symlinks, hardlinks, whiteouts, opaque markers,
//! duplicates, type changes), tests/fixtures/fromspec.py writes them as an
//! OCI layout, and the tool's archive must match `umoci unpack`.
//!
//! Raw draws are turned into well-formed layers by a small model of the
//! merged tree: parents are declared (or left implicit when absent), a
//! hardlink names a regular file visible at that point, and a whiteout or
//! opaque marker never hides what its own layer already wrote.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Value};

use common::fixtures::{reference_tree, Image};
use common::newc;
use common::tree::Tree;

const NAMES: [&str; 3] = ["a", "b", "c"];
const FILE_MODES: [u32; 6] = [0o644, 0o600, 0o755, 0o4755, 0o2755, 0o400];
// No setgid directory: umoci's implicit parents below one inherit setgid and
// the group from the filesystem, which is not image content.
const DIR_MODES: [u32; 5] = [0o755, 0o700, 0o1777, 0o750, 0o555];
const IDS: [u32; 4] = [0, 1000, 65534, 123_456];
const TARGETS: [&str; 5] = ["a", "../b", "/c/a", "nowhere", "a/b/c"];

/// One of the 39 paths of depth 1 to 3 over NAMES.
fn path_of(i: u8) -> String {
    let i = i as usize % 39;
    if i < 3 {
        NAMES[i].to_string()
    } else if i < 12 {
        let j = i - 3;
        format!("{}/{}", NAMES[j / 3], NAMES[j % 3])
    } else {
        let j = i - 12;
        format!("{}/{}/{}", NAMES[j / 9], NAMES[(j / 3) % 3], NAMES[j % 3])
    }
}

fn ancestors(p: &str) -> Vec<String> {
    p.match_indices('/')
        .map(|(i, _)| p[..i].to_string())
        .collect()
}

fn is_under(p: &str, dir: &str) -> bool {
    p.len() > dir.len() && p.starts_with(dir) && p.as_bytes()[dir.len()] == b'/'
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum K {
    F,
    D,
    S,
}

#[derive(Clone, Debug)]
struct RawOp {
    kind: u8,
    path: u8,
    a: u8,
    b: u8,
}

#[derive(Clone, Debug)]
struct RawLayer {
    comp: u8,
    gnu: bool,
    ops: Vec<RawOp>,
}

#[derive(Default)]
struct Model {
    state: BTreeMap<String, K>,
    /// Paths written by the current layer (ancestors included).
    touched: BTreeSet<String>,
    /// Paths with an explicit entry in the current layer.
    emitted: BTreeSet<String>,
}

impl Model {
    fn set(&mut self, p: &str, k: K) {
        let old = self.state.insert(p.to_string(), k);
        if !(k == K::D && old == Some(K::D)) {
            self.state.retain(|q, _| !is_under(q, p));
        }
    }

    /// Declare the parents of `p` as directories where needed.
    fn parents(&mut self, p: &str, bits: u8, out: &mut Vec<Value>) {
        for (i, anc) in ancestors(p).iter().enumerate() {
            let emit = match self.state.get(anc) {
                Some(K::D) => (bits >> i) & 1 == 1,
                None => bits & 0x80 == 0,
                Some(_) => true,
            };
            if emit {
                out.push(json!({"t": "d", "p": anc,
                    "mode": DIR_MODES[(bits as usize >> 2) % DIR_MODES.len()],
                    "uid": IDS[(bits as usize >> 4) % IDS.len()], "gid": 0}));
                self.emitted.insert(anc.clone());
            }
            self.set(anc, K::D);
            self.touched.insert(anc.clone());
        }
    }

    fn wrote(&mut self, p: &str, k: K) {
        self.set(p, k);
        self.touched.insert(p.to_string());
        self.emitted.insert(p.to_string());
    }

    fn op(&mut self, layer: usize, n: usize, op: &RawOp, out: &mut Vec<Value>) {
        let p = path_of(op.path);
        let (a, b) = (op.a as usize, op.b as usize);
        match op.kind {
            0 | 1 => {
                self.parents(&p, op.b, out);
                let data = if a % 5 == 0 {
                    String::new()
                } else {
                    format!("L{layer}.{n}.{a}\n")
                };
                out.push(json!({"t": "f", "p": p, "data": data,
                    "mode": FILE_MODES[a % FILE_MODES.len()], "uid": IDS[b % IDS.len()],
                    "gid": IDS[(a / 7) % IDS.len()], "mtime": 1_600_000_000 + a as u64}));
                self.wrote(&p, K::F);
            }
            2 => {
                self.parents(&p, op.b, out);
                out.push(
                    json!({"t": "d", "p": p, "mode": DIR_MODES[a % DIR_MODES.len()],
                    "uid": IDS[b % IDS.len()], "gid": IDS[(a / 5) % IDS.len()]}),
                );
                self.wrote(&p, K::D);
            }
            3 => {
                self.parents(&p, op.b, out);
                out.push(json!({"t": "s", "p": p, "target": TARGETS[a % TARGETS.len()]}));
                self.wrote(&p, K::S);
            }
            4 => {
                let targets: Vec<String> = self
                    .state
                    .iter()
                    .filter(|(t, k)| {
                        **k == K::F && **t != p && !is_under(&p, t) && !is_under(t, &p)
                    })
                    .map(|(t, _)| t.clone())
                    .collect();
                if targets.is_empty() {
                    return;
                }
                let t = targets[a % targets.len()].clone();
                self.parents(&p, op.b, out);
                // Declaring the parents may have replaced the target's own
                // parents: only link when it is still there.
                if self.state.get(&t) != Some(&K::F) {
                    return;
                }
                out.push(json!({"t": "h", "p": p, "target": t}));
                self.wrote(&p, K::F);
            }
            5 => {
                if self.touched.iter().any(|t| *t == p || is_under(t, &p)) {
                    return;
                }
                if ancestors(&p)
                    .iter()
                    .any(|x| self.touched.contains(x) && self.state.get(x) != Some(&K::D))
                {
                    return;
                }
                self.parents(&p, op.b, out);
                out.push(json!({"t": "w", "p": p}));
                self.state.remove(&p);
                self.state.retain(|q, _| !is_under(q, &p));
            }
            _ => {
                // A written descendant must be declared with all its parents
                // up to p, or the marker would hide its implicit parents.
                let written: Vec<&String> =
                    self.touched.iter().filter(|t| is_under(t, &p)).collect();
                if written.iter().any(|t| !self.emitted.contains(*t)) {
                    return;
                }
                self.parents(&p, op.b, out);
                if self.state.get(&p) != Some(&K::D) || a % 2 == 0 {
                    out.push(
                        json!({"t": "d", "p": p, "mode": DIR_MODES[a % DIR_MODES.len()],
                        "uid": 0, "gid": 0}),
                    );
                    self.emitted.insert(p.clone());
                }
                out.push(json!({"t": "o", "p": p}));
                self.set(&p, K::D);
                self.touched.insert(p.clone());
                let touched = self.touched.clone();
                self.state
                    .retain(|q, _| !is_under(q, &p) || touched.contains(q));
            }
        }
    }
}

fn realise(layers: &[RawLayer]) -> Value {
    let mut m = Model::default();
    let mut out_layers = Vec::new();
    for (li, l) in layers.iter().enumerate() {
        m.touched.clear();
        m.emitted.clear();
        let mut entries = Vec::new();
        for (n, op) in l.ops.iter().enumerate() {
            m.op(li, n, op, &mut entries);
        }
        let comp = ["none", "gzip", "gzip-multi"][l.comp as usize % 3];
        out_layers.push(json!({
            "compression": comp,
            "format": if l.gnu { "gnu" } else { "pax" },
            "entries": entries,
        }));
    }
    json!({ "layers": out_layers })
}

fn layer_strategy() -> impl Strategy<Value = RawLayer> {
    let op = (0u8..7, 0u8..39, any::<u8>(), any::<u8>()).prop_map(|(kind, path, a, b)| RawOp {
        kind,
        path,
        a,
        b,
    });
    (0u8..3, any::<bool>(), prop::collection::vec(op, 1..10))
        .prop_map(|(comp, gnu, ops)| RawLayer { comp, gnu, ops })
}

fn run_case(layers: &[RawLayer]) -> Result<(), TestCaseError> {
    let spec = realise(layers);
    let pretty = serde_json::to_string_pretty(&spec).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let spec_path = tmp.path().join("spec.json");
    std::fs::write(&spec_path, &pretty).unwrap();
    let layout = tmp.path().join("layout");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fromspec.py");
    common::run(common::python().arg(script).arg(&spec_path).arg(&layout));
    let image = Image {
        layout,
        tag: "t".into(),
    };
    let reference = reference_tree(&image);
    let out = common::tool([image.oci_ref().as_str(), "-c", "none", "--no-init"]);
    prop_assert!(
        out.status.success(),
        "tool failed: {}\nspec: {pretty}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries = newc::parse(&out.stdout)
        .map_err(|e| TestCaseError::fail(format!("{e}\nspec: {pretty}")))?;
    let d = reference.diff(&Tree::from_newc(&entries));
    prop_assert!(
        d.is_empty(),
        "reference (umoci) vs archive:\n{}\nspec: {pretty}",
        d.join("\n")
    );
    Ok(())
}

fn cases() -> u32 {
    std::env::var("RANDOM_LAYERS_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 300,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_layer_stacks_match_umoci(layers in prop::collection::vec(layer_strategy(), 1..5)) {
        common::require("umoci");
        run_case(&layers)?;
    }
}
