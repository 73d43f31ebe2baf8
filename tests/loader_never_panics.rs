//! Bad input never panics: random text, YAML-shaped noise and mutations of the example repo go
//! through loading, validation and rendering, which must answer with diagnostics, not a crash.
//! Run longer with `PROPTEST_CASES=20000 cargo test --release --test loader_never_panics`.

use cairn::model::RepoSnapshot;
use cairn::render::render_repo;
use proptest::prelude::*;

fn example_files() -> Vec<(String, String)> {
    cairn::example::FILES
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect()
}

/// Renders a repo made of the example with `file` replaced by `content`.
fn render_with(file: &str, content: &str) {
    let mut files = example_files();
    match files.iter_mut().find(|(p, _)| p == file) {
        Some(entry) => entry.1 = content.to_string(),
        None => files.push((file.to_string(), content.to_string())),
    }
    let rendered = render_repo(&RepoSnapshot::from_files(files), &[]);
    for d in &rendered.diagnostics {
        assert!(
            d.line > 0 || d.file == "--cluster",
            "diagnostic without a line: {d}"
        );
    }
}

/// Pieces that YAML, the config kinds and envsubst give meaning to.
fn yaml_token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\n".to_string()),
        Just("  ".to_string()),
        Just("- ".to_string()),
        Just(": ".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(", ".to_string()),
        Just("&a ".to_string()),
        Just("*a".to_string()),
        Just("!!str ".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("|\n".to_string()),
        Just("---\n".to_string()),
        Just("${X}".to_string()),
        Just("$${".to_string()),
        Just("#".to_string()),
        Just("apiVersion: cairn.dev/v1alpha1\n".to_string()),
        Just("kind: Cluster\n".to_string()),
        Just("kind: ClusterProfile\n".to_string()),
        Just("spec".to_string()),
        Just("metadata".to_string()),
        Just("name".to_string()),
        Just("replicas".to_string()),
        Just("layers".to_string()),
        Just("dependsOn".to_string()),
        Just("manifests".to_string()),
        Just("../".to_string()),
        Just("*.yaml".to_string()),
        "[a-z0-9]{1,6}".prop_map(|s| s),
        any::<i64>().prop_map(|n| n.to_string()),
    ]
}

proptest! {
    #[test]
    fn random_text_in_a_cluster_file(text in "\\PC{0,400}") {
        render_with("clusters/fuzz.yaml", &text);
    }

    #[test]
    fn yaml_shaped_noise_in_every_kind_of_file(
        tokens in proptest::collection::vec(yaml_token(), 0..120),
        target in prop_oneof![
            Just("clusters/fuzz.yaml"), Just("profiles/fuzz.yaml"), Just("fleet.yaml"),
            Just("addons/prometheus/configmap.yaml")
        ],
    ) {
        render_with(target, &tokens.concat());
    }

    #[test]
    fn mutations_of_the_example_repo(
        file_index in 0usize..64,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..3, yaml_token()), 1..8),
    ) {
        let files = example_files();
        let (path, original) = &files[file_index % files.len()];
        let mut text: Vec<char> = original.chars().collect();
        for (at, action, token) in edits {
            let i = if text.is_empty() { 0 } else { at.index(text.len()) };
            match action {
                0 => { text.splice(i..i, token.chars()); }
                1 => { if !text.is_empty() { text.remove(i); } }
                _ => { let end = (i + token.len()).min(text.len()); text.splice(i..end, token.chars()); }
            }
        }
        render_with(path, &text.into_iter().collect::<String>());
    }
}
