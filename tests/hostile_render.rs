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
        assert_ne!(
            run.code,
            -1,
            "{label}: killed by a signal\n{}",
            tail(&run.stderr)
        );
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
    text.push_str(&format!(
        "big: &big {}\naliases:\n",
        "x".repeat(MIB as usize)
    ));
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
    // A manifest's parse is dropped with the render: the per-file 64 MiB applies. The anchor
    // (kept twice, in the tree and for its aliases) and 61 aliases fit, the 62nd does not.
    let line = line_of(&text, "*big", 61);
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
    // 123,456 nodes up to l4, as many again for the anchors kept for aliases; the third alias of
    // l5 goes past 500,000.
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
    // 123,457 nodes a document (and as many for its anchors): each alone fits (and fitted the
    // old per-document cap of 2,000,000), but the file's total goes past the budget in the third
    // document, at l3.
    let doc = format!("---\n{}", laughs(4));
    let text = doc.repeat(40);
    let line = line_of(&text, "l3:", 2);
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
    let mut manifest =
        String::from("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\ndata:\n");
    for i in 0..10_000 {
        manifest.push_str(&format!("  k{i}: ${{BIG}}\n"));
    }
    let mut text = cluster("bomb", "").replace("profiles: [base]", "profiles: [bomb]");
    text.push_str(&format!(
        "  variables:\n    BIG: {}\n",
        "x".repeat(MIB as usize)
    ));
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
    assert!(
        run.stderr.len() < 64 * 1024,
        "{} bytes of diagnostics",
        run.stderr.len()
    );
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
    let errors = run
        .stderr
        .lines()
        .filter(|l| l.contains(": error: "))
        .count();
    assert!(
        errors <= MAX_DIAGNOSTICS + 2,
        "{errors} errors printed, the budget is {MAX_DIAGNOSTICS}"
    );
    assert!(
        run.stderr.len() < 512 * 1024,
        "{} bytes of diagnostics",
        run.stderr.len()
    );
}

/// `validate` on the example fleet with the prod cluster's file replaced by `text`: the run.
fn validate_prod(text: &str) -> Run {
    let dir = repo_with(vec![(
        "clusters/prod/vsphere-1.yaml".into(),
        text.to_string(),
    )]);
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
    (repo_with(vec![(path.into(), text.clone())]), text)
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
    assert!(
        refusal.contains("out of namespace `dev-docker-1`"),
        "{refusal}"
    );
    // Both stages hold the control plane; both are refused, nothing else is said.
    assert!(
        run.stderr
            .lines()
            .filter(|l| l.contains(": error: "))
            .count()
            <= 2,
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
    let (dir, text) =
        dev_with("  patches:\n    - patch:\n        - {op: replace, path: \"\", value: 42}\n");
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
        assert!(
            r.starts_with(&format!("clusters/dev/docker-1.yaml:{line}:")),
            "{r}"
        );
    }
    assert!(
        refusals
            .iter()
            .any(|r| r.contains("turns Cluster/dev-docker-1/dev-docker-1 into")),
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
