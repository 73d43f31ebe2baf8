//! The render budget (src/model/budget.rs) against the probes of issue 13: small repositories
//! whose YAML aliases, `${VAR}` substitution, JSON-patch `copy` operations or broken documents
//! multiply into gigabytes. Each is generated here, run through the real binary (`validate` and
//! `render --out -`) under an address-space cap, and must end with exit code 2, an error naming
//! the file, the line and the budget, no abort, and a peak resident memory under
//! `RENDER_MEMORY_CEILING`. Then the patches that would put another cluster's objects, or no
//! object at all, into a bundle: refused at the patch's line.

mod common;

use std::path::Path;

use cairn::model::budget::{MAX_DIAGNOSTICS, RENDER_MEMORY_CEILING};
use common::{Run, cairn_measured, write_repo};

const MIB: u64 = 1024 * 1024;

/// The example fleet with `extra` files added (or replacing the example's).
fn repo_with(extra: Vec<(String, String)>) -> tempfile::TempDir {
    let mut files: Vec<(String, String)> = cairn::example::FILES
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect();
    for (path, text) in extra {
        files.retain(|(p, _)| *p != path);
        files.push((path, text));
    }
    write_repo(files)
}

/// A minimal valid cluster document named `name`, with `tail` appended under `spec:` (indented
/// by two spaces by the caller).
fn cluster(name: &str, tail: &str) -> String {
    format!(
        "apiVersion: cairn.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: {name}\nspec:\n  \
         infrastructure:\n    provider: docker\n    docker: {{}}\n  controlPlane:\n    \
         replicas: 1\n    machine: {{}}\n  workers: []\n  profiles: [base]\n  pivot: false\n{tail}"
    )
}

/// Runs `validate --repo` and `render --out -` on `dir`; both must refuse at `place` (a
/// `file:line:` prefix) naming `budget`, with exit code 2, within the memory ceiling. Returns
/// the validate run.
fn refused(label: &str, dir: &Path, place: &str, budget: &str) -> Run {
    let repo = dir.to_str().unwrap();
    let mut first = None;
    for args in [
        vec!["validate", "--repo", repo],
        vec!["render", "--repo", repo, "--out", "-"],
    ] {
        let (run, peak) = cairn_measured(dir, &args);
        eprintln!(
            "{label} ({}): exit {}, peak RSS {:.1} MiB, stderr {} bytes",
            args[0],
            run.code,
            peak as f64 / MIB as f64,
            run.stderr.len()
        );
        assert_ne!(run.code, -1, "{label}: killed by a signal\n{}", tail(&run.stderr));
        assert_ne!(run.code, 134, "{label}: aborted\n{}", tail(&run.stderr));
        assert_eq!(run.code, 2, "{label} {}: {}", args[0], tail(&run.stderr));
        let line = run
            .stderr
            .lines()
            .find(|l| l.contains(budget))
            .unwrap_or_else(|| panic!("{label}: no line names {budget}:\n{}", tail(&run.stderr)));
        assert!(
            line.starts_with(place),
            "{label}: expected the refusal at {place}, got:\n{line}"
        );
        assert!(line.contains(": error: "), "{line}");
        assert!(run.stdout.is_empty(), "{label}: nothing rendered");
        assert!(
            peak < RENDER_MEMORY_CEILING,
            "{label} {}: peak RSS {} MiB is over the ceiling of {} MiB",
            args[0],
            peak / MIB,
            RENDER_MEMORY_CEILING / MIB
        );
        first.get_or_insert(run);
    }
    first.unwrap()
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// The 1-based line of the `n`th (0-based) line of `text` that contains `needle`.
fn line_of(text: &str, needle: &str, n: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .nth(n)
        .map(|(i, _)| i + 1)
        .unwrap_or_else(|| panic!("no {n}th line with {needle}"))
}

/// `l0` of ten scalars, then `levels` more, each ten aliases of the one before: 11, 111, 1,111,
/// ... nodes.
fn laughs(levels: usize) -> String {
    let mut doc = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..=levels {
        let refs = vec![format!("*l{}", i - 1); 10].join(", ");
        doc.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
    }
    doc
}

#[test]
fn a_mebibyte_anchor_aliased_two_thousand_times_stops_at_the_byte_budget() {
    let mut text = cluster("bomb", "");
    text.push_str(&format!("big: &big {}\naliases:\n", "x".repeat(MIB as usize)));
    for _ in 0..2_000 {
        text.push_str("  - *big\n");
    }
    // In the configuration, what aliases add is kept all render long: 15 copies fit in the
    // 16 MiB the whole configuration may add, the 16th does not.
    let line = line_of(&text, "*big", 15);
    let dir = repo_with(vec![("clusters/bomb.yaml".into(), text)]);
    let run = refused(
        "1 MiB anchor x 2,000 in a cluster file",
        dir.path(),
        &format!("clusters/bomb.yaml:{line}:"),
        "MAX_CONFIG_ALIAS_BYTES (16 MiB",
    );
    assert!(run.stderr.contains("alias bomb"), "{}", run.stderr);
}

#[test]
fn a_mebibyte_anchor_aliased_six_thousand_times_in_a_manifest_stops_too() {
    let mut text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\nbig: &big {}\ndata:\n",
        "x".repeat(MIB as usize)
    );
    for i in 0..6_000 {
        text.push_str(&format!("  k{i}: *big\n"));
    }
    // A manifest's parse is dropped with the render: the per-file 64 MiB applies. The anchor and
    // 62 aliases fit, the 63rd does not.
    let line = line_of(&text, "*big", 62);
    let dir = repo_with(vec![("addons/calico/bomb.yaml".into(), text)]);
    refused(
        "1 MiB anchor x 6,000 in a manifest",
        dir.path(),
        &format!("addons/calico/bomb.yaml:{line}:"),
        "MAX_YAML_BYTES (64 MiB",
    );
}

#[test]
fn forty_documents_of_a_million_alias_nodes_stop_in_the_first() {
    // A manifest of the base profile (a cluster file would stop sooner, at the configuration's
    // alias budget: `aliases_across_config_files_share_one_budget`).
    let doc = format!("---\n{}", laughs(5));
    let text = doc.repeat(40);
    assert!(text.len() < 16 * 1024, "a 10 KB file: {}", text.len());
    // 123,456 nodes up to l4; the fourth alias of l5 goes past 500,000.
    let line = line_of(&text, "l5:", 0);
    let dir = repo_with(vec![("addons/calico/laughs.yaml".into(), text)]);
    refused(
        "40 documents of 1.1 M alias nodes",
        dir.path(),
        &format!("addons/calico/laughs.yaml:{line}:"),
        "MAX_YAML_NODES (500,000",
    );
}

#[test]
fn the_node_budget_is_per_file_not_per_document() {
    // 123,457 nodes a document: each alone fits (and fitted the old per-document cap), but the
    // file's total goes past the budget in the fifth document, at l3.
    let doc = format!("---\n{}", laughs(4));
    let text = doc.repeat(40);
    let line = line_of(&text, "l3:", 4);
    let dir = repo_with(vec![("addons/calico/laughs.yaml".into(), text)]);
    refused(
        "40 documents of 123 k alias nodes",
        dir.path(),
        &format!("addons/calico/laughs.yaml:{line}:"),
        "MAX_YAML_NODES (500,000",
    );
}

#[test]
fn aliases_across_config_files_share_one_budget() {
    // Aliases add 23,441 nodes a file (l1 to l3, and a copy of l3): far under the per-file
    // budget, but ten files hold 234,410 and the eleventh's copy takes the configuration past
    // the 250,000 the loaded model may keep.
    let mut extra = Vec::new();
    for i in 0..12 {
        let name = format!("alias-{i:02}");
        let mut text = cluster(&name, "");
        text.push_str(&laughs(3));
        text.push_str("copy: *l3\n");
        extra.push((format!("clusters/{name}.yaml"), text));
    }
    // Loading reads the files in path order.
    let line = line_of(&extra[10].1, "copy: *l3", 0);
    let dir = repo_with(extra);
    refused(
        "aliases in twelve cluster files",
        dir.path(),
        &format!("clusters/alias-10.yaml:{line}:"),
        "MAX_CONFIG_ALIAS_NODES (250,000",
    );
}

#[test]
fn a_mebibyte_variable_used_ten_thousand_times_stops_at_the_substitution_budget() {
    let profile = "apiVersion: cairn.dev/v1alpha1\nkind: ClusterProfile\nmetadata:\n  name: bomb\n\
                   spec:\n  layers:\n    - name: bomb\n      namespace: bomb\n      \
                   manifests: [addons/bomb/*.yaml]\n";
    let mut manifest = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\ndata:\n");
    for i in 0..10_000 {
        manifest.push_str(&format!("  k{i}: ${{BIG}}\n"));
    }
    let mut text = cluster("bomb", "").replace("profiles: [base]", "profiles: [bomb]");
    text.push_str(&format!("  variables:\n    BIG: {}\n", "x".repeat(MIB as usize)));
    // Fifteen values fit in 16 MiB with the rest of the text; the sixteenth does not.
    let line = line_of(&manifest, "${BIG}", 15);
    let dir = repo_with(vec![
        ("clusters/bomb.yaml".into(), text),
        ("profiles/bomb.yaml".into(), profile.into()),
        ("addons/bomb/cm.yaml".into(), manifest),
    ]);
    refused(
        "1 MiB variable x 10,000",
        dir.path(),
        &format!("addons/bomb/cm.yaml:{line}:"),
        "MAX_SUBSTITUTED_BYTES (16 MiB",
    );
}

#[test]
fn twenty_four_doubling_copies_stop_at_the_patch_budget() {
    let mut tail = String::from("  patches:\n    - target: {kind: Cluster}\n      patch:\n");
    for i in 0..24 {
        tail.push_str(&format!(
            "        - {{op: copy, from: /spec, path: /spec/x{i}}}\n"
        ));
    }
    let text = cluster("bomb", &tail);
    assert!(text.len() < 2048, "a 1 KB patch: {}", text.len());
    // The Cluster's spec is a few kilobytes: doubling passes 16 MiB after a dozen copies.
    let dir = repo_with(vec![("clusters/bomb.yaml".into(), text.clone())]);
    let run = refused(
        "24 doubling copies",
        dir.path(),
        "clusters/bomb.yaml:",
        "MAX_PATCH_BYTES (16 MiB",
    );
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("MAX_PATCH_BYTES"))
        .unwrap();
    let at: usize = line.split(':').nth(1).unwrap().parse().unwrap();
    let first_copy = line_of(&text, "op: copy", 0);
    assert!(
        (first_copy + 5..first_copy + 24).contains(&at),
        "refused at one of the copies, after a few doublings: {line}"
    );
    assert!(line.contains("copy /spec to /spec/x"), "{line}");
}

#[test]
fn a_million_invalid_documents_stop_at_the_memory_budget() {
    // 9 MB: a million documents of one mapping each, about 1.5 KB of memory a document parsed.
    let text = "---\na: 1\n".repeat(1_000_000);
    let dir = repo_with(vec![("clusters/many.yaml".into(), text)]);
    let run = refused(
        "1 M invalid documents in one file",
        dir.path(),
        "clusters/many.yaml:",
        "MAX_YAML_BYTES (64 MiB",
    );
    assert!(run.stderr.len() < 64 * 1024, "{} bytes of diagnostics", run.stderr.len());
}

#[test]
fn a_million_invalid_documents_across_files_stop_at_the_diagnostics_budget() {
    // 20 files of 50,000 documents that are numbers, not Cluster mappings: each file is within
    // the YAML budgets, and every document is an error.
    let text = "--- 1\n".repeat(50_000);
    let extra: Vec<(String, String)> = (0..20)
        .map(|i| (format!("clusters/many-{i:02}.yaml"), text.clone()))
        .collect();
    let dir = repo_with(extra);
    let run = refused(
        "1 M invalid documents in 20 files",
        dir.path(),
        "clusters/many-00.yaml:",
        "MAX_DIAGNOSTICS (1,000",
    );
    let errors = run.stderr.lines().filter(|l| l.contains(": error: ")).count();
    assert!(
        errors <= MAX_DIAGNOSTICS + 2,
        "{errors} errors printed, the budget is {MAX_DIAGNOSTICS}"
    );
    assert!(run.stderr.len() < 512 * 1024, "{} bytes of diagnostics", run.stderr.len());
}

/// `validate` on the example fleet with the prod cluster's file replaced by `text`: the run.
fn validate_prod(text: &str) -> Run {
    let dir = repo_with(vec![("clusters/prod/vsphere-1.yaml".into(), text.to_string())]);
    let repo = dir.path().to_str().unwrap();
    let (run, _) = cairn_measured(dir.path(), ["validate", "--repo", repo]);
    run
}

/// The dev cluster of the example with `tail` appended to its spec.
fn dev_with(tail: &str) -> (tempfile::TempDir, String) {
    let path = "clusters/dev/docker-1.yaml";
    let original = cairn::example::FILES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, t)| t.to_string())
        .unwrap();
    let text = original.replace("  pivot: false\n", &format!("{tail}  pivot: false\n"));
    assert_ne!(text, original);
    (
        repo_with(vec![(path.into(), text.clone())]),
        text,
    )
}

fn validate(dir: &Path) -> Run {
    let repo = dir.to_str().unwrap();
    cairn_measured(dir, ["validate", "--repo", repo]).0
}

#[test]
fn a_patch_that_moves_a_control_plane_into_another_cluster_is_refused() {
    let (dir, text) = dev_with(
        "  patches:\n    - target: {kind: KubeadmControlPlane}\n      patch:\n        \
         - {op: replace, path: /metadata/name, value: prod-vsphere-1-control-plane}\n        \
         - {op: replace, path: /metadata/namespace, value: prod-vsphere-1}\n",
    );
    let run = validate(dir.path());
    assert_eq!(run.code, 2, "{}", run.stderr);
    let line = line_of(&text, "path: /metadata/namespace", 0);
    let want = format!("clusters/dev/docker-1.yaml:{line}:");
    let refusal = run
        .stderr
        .lines()
        .find(|l| l.contains("moves KubeadmControlPlane/dev-docker-1/dev-docker-1-control-plane"))
        .unwrap_or_else(|| panic!("{}", run.stderr));
    assert!(refusal.starts_with(&want), "{refusal}");
    assert!(refusal.contains("out of namespace `dev-docker-1`"), "{refusal}");
    // Both stages hold the control plane; both are refused, nothing else is said.
    assert!(
        run.stderr.lines().filter(|l| l.contains(": error: ")).count() <= 2,
        "{}",
        run.stderr
    );
    // Within its own namespace a Cluster API object still may not take another cluster's name.
    let (dir, text) = dev_with(
        "  patches:\n    - target: {kind: KubeadmControlPlane, stage: workload}\n      patch:\n        \
         - {op: replace, path: /metadata/name, value: prod-vsphere-1-control-plane}\n",
    );
    let run = validate(dir.path());
    assert_eq!(run.code, 2, "{}", run.stderr);
    let line = line_of(&text, "path: /metadata/name", 0);
    let refusal = run
        .stderr
        .lines()
        .find(|l| l.contains("error: cluster dev-docker-1: patch `spec.patches[0]` makes"))
        .unwrap_or_else(|| panic!("{}", run.stderr));
    assert!(
        refusal.starts_with(&format!("clusters/dev/docker-1.yaml:{line}:")),
        "{refusal}"
    );
    assert!(
        refusal.contains(
            "makes KubeadmControlPlane/dev-docker-1/dev-docker-1-control-plane a Cluster API \
             object that is not cluster `dev-docker-1`'s"
        ),
        "{refusal}"
    );
}

#[test]
fn a_patch_that_replaces_every_object_with_a_number_is_refused() {
    let (dir, text) = dev_with(
        "  patches:\n    - patch:\n        - {op: replace, path: \"\", value: 42}\n",
    );
    let run = validate(dir.path());
    assert_eq!(run.code, 2, "{}", run.stderr);
    let line = line_of(&text, "value: 42", 0);
    let refusals: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.contains("into the number 42; a patch must leave a Kubernetes object"))
        .collect();
    assert!(!refusals.is_empty(), "{}", run.stderr);
    // Every object of the cluster, each named, all at the operation's line.
    for r in &refusals {
        assert!(r.starts_with(&format!("clusters/dev/docker-1.yaml:{line}:")), "{r}");
    }
    assert!(
        refusals.iter().any(|r| r.contains("turns Cluster/dev-docker-1/dev-docker-1 into")),
        "{}",
        run.stderr
    );
}

#[test]
fn a_patch_that_turns_the_cluster_into_a_secret_is_refused() {
    let (dir, text) = dev_with(
        "  patches:\n    - target: {kind: Cluster}\n      patch:\n        \
         - {op: replace, path: /kind, value: Secret}\n        \
         - {op: replace, path: /apiVersion, value: v1}\n",
    );
    let run = validate(dir.path());
    assert_eq!(run.code, 2, "{}", run.stderr);
    let line = line_of(&text, "value: Secret", 0);
    let refusal = run
        .stderr
        .lines()
        .find(|l| l.contains("turns Cluster/dev-docker-1/dev-docker-1 into a `Secret` of `v1`"))
        .unwrap_or_else(|| panic!("{}", run.stderr));
    assert!(
        refusal.starts_with(&format!("clusters/dev/docker-1.yaml:{line}:")),
        "{refusal}"
    );
}

#[test]
fn patches_that_keep_objects_their_own_still_apply() {
    // The example's prod patches, plus a rename of a worker pool's MachineDeployment within its
    // own name prefix and namespace.
    let path = "clusters/prod/vsphere-1.yaml";
    let original = cairn::example::FILES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, t)| t.to_string())
        .unwrap();
    let text = original.replace(
        "  pivot: true\n",
        "    - target: {kind: MachineDeployment, name: prod-vsphere-1-md-1}\n      patch:\n        \
         - {op: replace, path: /metadata/name, value: prod-vsphere-1-memory}\n  pivot: true\n",
    );
    assert_ne!(text, original);
    let run = validate_prod(&text);
    assert_eq!(run.code, 0, "{}", run.stderr);
}

// ---------------------------------------------------------------------------------------------
// Property tests (must-show 6 of issue 13): hostile YAML, substitutions and patches, generated,
// go through the loader, the substitution and the patches with the budgets on. Nothing panics,
// and what comes out stays within the budgets. `PROPTEST_CASES=N` runs longer; the cases, time
// and peak memory of a run are in the issue note (`/usr/bin/time -v` on this test binary with
// the `budgets_hold` filter).

mod budgets_hold {
    use std::collections::BTreeMap;

    use cairn::model::RepoSnapshot;
    use cairn::model::budget::{
        MAX_DIAGNOSTICS, MAX_PATCH_BYTES, MAX_PATCH_NODES, MAX_SUBSTITUTED_BYTES, MAX_YAML_BYTES,
        MAX_YAML_NODES, Meter, Size, measure,
    };
    use cairn::model::yaml::{parse_documents, parse_documents_within};
    use cairn::render::envsubst::substitute;
    use cairn::render::render_repo;
    use proptest::prelude::*;
    use serde_json::Value;

    const UNLIMITED: Size = Size::new(u64::MAX, u64::MAX);

    /// Pieces of YAML with anchors, aliases, big scalars, documents and flow collections.
    fn token() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("\n".to_string()),
            Just("  ".to_string()),
            Just("- ".to_string()),
            Just(": ".to_string()),
            Just("[".to_string()),
            Just("]".to_string()),
            Just("{".to_string()),
            Just("}".to_string()),
            Just(", ".to_string()),
            Just("---\n".to_string()),
            (0u8..4).prop_map(|i| format!("&a{i} ")),
            (0u8..4).prop_map(|i| format!("*a{i}")),
            "[a-z]{1,4}".prop_map(|s| s),
            (0usize..3).prop_map(|e| "x".repeat([1, 4096, 300_000][e])),
        ]
    }

    /// A "billion laughs" document: `levels` anchors, each `fanout` aliases of the one before,
    /// the first holding scalars of `scalar` bytes, as sequences or mappings, `docs` times.
    fn laughs() -> impl Strategy<Value = String> {
        (1usize..9, 1usize..13, 0usize..3, 1usize..8, any::<bool>()).prop_map(
            |(levels, fanout, scalar, docs, maps)| {
                let x = "x".repeat([1, 1024, 256 * 1024][scalar]);
                let item = |i: usize, v: &str| {
                    if maps {
                        format!("k{i}: {v}")
                    } else {
                        v.to_string()
                    }
                };
                let (open, close) = if maps { ("{", "}") } else { ("[", "]") };
                let mut doc = String::from("---\n");
                let firsts: Vec<String> = (0..fanout).map(|i| item(i, &x)).collect();
                doc.push_str(&format!("l0: &l0 {open}{}{close}\n", firsts.join(", ")));
                for l in 1..levels {
                    let refs: Vec<String> =
                        (0..fanout).map(|i| item(i, &format!("*l{}", l - 1))).collect();
                    doc.push_str(&format!("l{l}: &l{l} {open}{}{close}\n", refs.join(", ")));
                }
                doc.repeat(docs)
            },
        )
    }

    fn hostile_yaml() -> impl Strategy<Value = String> {
        prop_oneof![
            laughs(),
            proptest::collection::vec(token(), 0..200).prop_map(|t| t.concat()),
        ]
    }

    /// The total size of what a parse returned.
    fn parsed_size(docs: &[cairn::model::yaml::YamlDoc]) -> Size {
        docs.iter()
            .fold(Size::ZERO, |s, d| s.plus(measure(&d.value, UNLIMITED)))
    }

    /// A JSON-patch operation in YAML flow style, over the paths that matter to identity and
    /// the ones that grow.
    fn op() -> impl Strategy<Value = String> {
        let path = prop_oneof![
            Just(""),
            Just("/kind"),
            Just("/apiVersion"),
            Just("/metadata"),
            Just("/metadata/name"),
            Just("/metadata/namespace"),
            Just("/metadata/labels/x"),
            Just("/spec"),
            Just("/spec/x"),
            Just("/spec/y"),
            Just("/spec/replicas"),
        ];
        let value = prop_oneof![
            Just("42".to_string()),
            Just("Secret".to_string()),
            Just("v1".to_string()),
            Just("prod-vsphere-1".to_string()),
            Just("dev-docker-1-x".to_string()),
            Just("{a: 1, b: [1, 2, 3]}".to_string()),
            Just(format!("\"{}\"", "y".repeat(200_000))),
        ];
        let hostile = (0u8..5, path.clone(), path, value.clone()).prop_map(
            |(kind, path, from, value)| match kind {
                0 => format!("{{op: add, path: \"{path}\", value: {value}}}"),
                1 => format!("{{op: replace, path: \"{path}\", value: {value}}}"),
                2 => format!("{{op: copy, from: \"{from}\", path: \"{path}\"}}"),
                3 => format!("{{op: move, from: \"{from}\", path: \"{path}\"}}"),
                _ => format!("{{op: remove, path: \"{path}\"}}"),
            },
        );
        // Operations that apply to any object cairn renders, so that some patched bundles
        // render and their growth is checked: labels, and doubling copies of the metadata.
        let applies = (0u8..3, 0u32..1000, value).prop_map(|(kind, n, value)| match kind {
            0 => format!("{{op: add, path: /metadata/labels/l{n}, value: {value}}}"),
            1 => format!("{{op: add, path: /metadata/annotations, value: {{a{n}: {value}}}}}"),
            _ => format!("{{op: copy, from: /metadata/labels, path: /metadata/labels/c{n}}}"),
        });
        prop_oneof![1 => hostile, 3 => applies]
    }

    fn patch() -> impl Strategy<Value = String> {
        let target = prop_oneof![
            Just(String::new()),
            Just("target: {kind: Cluster}\n      ".to_string()),
            Just("target: {kind: KubeadmControlPlane}\n      ".to_string()),
            Just("target: {stage: workload}\n      ".to_string()),
            Just("target: {stage: addons}\n      ".to_string()),
        ];
        (target, proptest::collection::vec(op(), 1..12)).prop_map(|(target, ops)| {
            let ops: String = ops.iter().map(|o| format!("        - {o}\n")).collect();
            format!("    - {target}patch:\n{ops}")
        })
    }

    fn example_with(path: &str, text: &str) -> RepoSnapshot {
        let files = cairn::example::FILES.iter().map(|(p, t)| {
            let t = if *p == path { text } else { t };
            (p.to_string(), t.as_bytes().to_vec())
        });
        RepoSnapshot::from_files(files)
    }

    fn dev_with_patches(patches: &str) -> String {
        let path = "clusters/dev/docker-1.yaml";
        let original = cairn::example::FILES
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, t)| t.to_string())
            .unwrap();
        original.replace("  pivot: false\n", &format!("  patches:\n{patches}  pivot: false\n"))
    }

    /// The size of the dev cluster's bundle without patches.
    fn unpatched_dev_size() -> Size {
        let rendered = render_repo(&cairn::example::example_snapshot(), &["dev-docker-1".into()]);
        bundle_size(&rendered.bundles[0])
    }

    fn bundle_size(bundle: &cairn::render::Bundle) -> Size {
        bundle
            .stages
            .iter()
            .flat_map(|s| &s.objects)
            .fold(Size::ZERO, |s, o| s.plus(measure(o, UNLIMITED)))
    }

    /// What `check_patched` promises of every object of a rendered bundle.
    fn assert_own_objects(bundle: &cairn::render::Bundle) {
        use cairn::model::types::StageName;
        let cluster = bundle.cluster.as_str();
        for stage in &bundle.stages {
            for obj in &stage.objects {
                let s = |p: &str| obj.pointer(p).and_then(Value::as_str);
                let kind = s("/kind").expect("a string kind");
                let api = s("/apiVersion").expect("a string apiVersion");
                let name = s("/metadata/name").expect("a string name");
                assert!(!kind.is_empty() && !api.is_empty() && !name.is_empty(), "{obj}");
                let group = api.rsplit_once('/').map_or("", |(g, _)| g);
                let management = matches!(stage.name, StageName::Bootstrap | StageName::Workload);
                if management {
                    if kind == "Namespace" {
                        assert_eq!(name, cluster, "{obj}");
                    } else {
                        assert_eq!(s("/metadata/namespace"), Some(cluster), "{obj}");
                    }
                }
                if group == "cluster.x-k8s.io" || group.ends_with(".cluster.x-k8s.io") {
                    assert_eq!(s("/metadata/namespace"), Some(cluster), "{obj}");
                    assert!(name == cluster || name.starts_with(&format!("{cluster}-")), "{obj}");
                }
            }
        }
    }

    // 256 cases each by default (proptest's), `PROPTEST_CASES` for more.
    proptest! {
        /// One file: never a panic; what is returned fits the per-file budgets.
        #[test]
        fn yaml_stays_within_the_file_budget(text in hostile_yaml()) {
            if let Ok(docs) = parse_documents(&text) {
                let size = parsed_size(&docs);
                prop_assert!(size.nodes <= MAX_YAML_NODES, "{size:?}");
                prop_assert!(size.bytes <= MAX_YAML_BYTES, "{size:?}");
            }
        }

        /// Several files sharing the configuration's alias budget: the meter never passes it.
        #[test]
        fn aliases_stay_within_the_shared_budget(texts in proptest::collection::vec(laughs(), 1..6)) {
            let mut shared = Meter::config_aliases();
            for text in &texts {
                let _ = parse_documents_within(text, &mut shared);
                let used = shared.used();
                let limit = shared.limit();
                prop_assert!(used.nodes <= limit.nodes && used.bytes <= limit.bytes, "{used:?}");
            }
        }

        /// Substitution: never a panic; output within its budget; no refusal of what fits.
        #[test]
        fn substitution_stays_within_its_budget(
            refs in proptest::collection::vec((0usize..3, "[ a-z:\n]{0,12}"), 0..400),
            sizes in (0usize..4, 0usize..4, 0usize..4),
        ) {
            let len = |i: usize| [0, 10, 64 * 1024, 1 << 20][i];
            let vars: BTreeMap<String, String> = [("A", sizes.0), ("B", sizes.1), ("C", sizes.2)]
                .into_iter()
                .map(|(k, i)| (k.to_string(), "v".repeat(len(i))))
                .collect();
            let names = ["A", "B", "C"];
            let mut text = String::new();
            let mut expanded = 0usize;
            for (which, filler) in &refs {
                text.push_str(filler);
                text.push_str(&format!("${{{}}}", names[*which]));
                expanded += filler.len() + vars[names[*which]].len();
            }
            match substitute(&text, &vars) {
                Ok(out) => {
                    prop_assert_eq!(out.len(), expanded);
                    prop_assert!(out.len() as u64 <= MAX_SUBSTITUTED_BYTES);
                }
                Err(errors) => {
                    prop_assert!(expanded as u64 > MAX_SUBSTITUTED_BYTES, "{errors:?}");
                    prop_assert!(errors.iter().any(|e| e.message.contains("MAX_SUBSTITUTED_BYTES")));
                }
            }
        }

        /// Hostile YAML in every kind of file, through loading and rendering: never a panic,
        /// every diagnostic located, at most the diagnostics budget.
        #[test]
        fn loading_hostile_files_stays_within_budget(
            text in hostile_yaml(),
            target in prop_oneof![
                Just("clusters/dev/docker-1.yaml"), Just("profiles/base.yaml"),
                Just("fleet.yaml"), Just("addons/calico/configmap.yaml")
            ],
        ) {
            let rendered = render_repo(&example_with(target, &text), &[]);
            prop_assert!(rendered.diagnostics.len() <= MAX_DIAGNOSTICS + 1);
            for d in &rendered.diagnostics {
                prop_assert!(d.line > 0, "diagnostic without a line: {d}");
            }
        }

        /// Random patches on the dev cluster: never a panic, errors at a line, and a bundle that
        /// renders holds only the cluster's own, valid objects and grew by at most the budget.
        #[test]
        fn patches_stay_within_budget_and_keep_objects_their_own(
            patches in proptest::collection::vec(patch(), 1..4),
        ) {
            let text = dev_with_patches(&patches.concat());
            let snapshot = example_with("clusters/dev/docker-1.yaml", &text);
            let rendered = render_repo(&snapshot, &["dev-docker-1".into()]);
            for d in &rendered.diagnostics {
                prop_assert!(d.line > 0, "diagnostic without a line: {d}");
            }
            if let Some(bundle) = rendered.bundles.first() {
                assert_own_objects(bundle);
                let base = unpatched_dev_size();
                let size = bundle_size(bundle);
                prop_assert!(size.nodes <= base.nodes + MAX_PATCH_NODES, "{size:?}");
                prop_assert!(size.bytes <= base.bytes + MAX_PATCH_BYTES, "{size:?}");
            }
        }
    }
}
