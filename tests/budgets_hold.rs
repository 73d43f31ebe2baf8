//! Property tests of the render budget (src/model/budget.rs; must-show 6 of issue 13): hostile
//! YAML (alias bombs with random depth, fan-out, scalar size, documents and mappings, and token
//! noise with anchors and aliases), substitutions with large variables, and JSON patches on
//! identity fields and growing ones go through the loader, the substitution and the patches
//! with the budgets on. Nothing panics, and what comes out stays within the budgets: parsed
//! sizes, the shared alias meter, substitution output, diagnostics, the growth of a patched
//! bundle, and a patched bundle's objects are valid and the cluster's own.
//!
//! A separate test binary from `hostile_render.rs` on purpose: that one measures its children's
//! peak memory, and a child forked from a process holding these tests' inputs would inherit
//! their resident pages in its high-water mark. 256 cases a test by default (proptest's),
//! `PROPTEST_CASES=N` for more; figures in the issue note come from
//! `PROPTEST_CASES=1000 /usr/bin/time -v target/debug/deps/budgets_hold-*`.

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
                let refs: Vec<String> = (0..fanout)
                    .map(|i| item(i, &format!("*l{}", l - 1)))
                    .collect();
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
    original.replace(
        "  pivot: false\n",
        &format!("  patches:\n{patches}  pivot: false\n"),
    )
}

/// The size of the dev cluster's bundle without patches.
fn unpatched_dev_size() -> Size {
    let rendered = render_repo(
        &cairn::example::example_snapshot(),
        &["dev-docker-1".into()],
    );
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
            assert!(
                !kind.is_empty() && !api.is_empty() && !name.is_empty(),
                "{obj}"
            );
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
                assert!(
                    name == cluster || name.starts_with(&format!("{cluster}-")),
                    "{obj}"
                );
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
