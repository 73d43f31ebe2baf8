//! `cairn preview` against real git repositories made with the `git` command line: both
//! revisions are read from the object database (the working tree is never touched), rendered
//! and compared, and the Markdown and JSON say what the change does to machines and add-ons.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::collections::{BTreeMap, HashMap};

mod common;

use cairn::diff::ObjectKey;
use cairn::preview::live::LiveCluster;
use cairn::preview::{
    ClusterChange, ClusterPreview, GITHUB_COMMENT_LIMIT, LiveClass, LiveState, MachineImpact,
    ObjectAction, Preview, PreviewOptions, Reason, WarningKind, from_git, json, markdown,
    prepare_revisions, read_revisions,
};
use common::{canary, forms, git};

/// A repository whose `main` holds the base; edits go to branch `pr`, and the working tree is
/// back on `main` before each preview.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new(files: impl IntoIterator<Item = (String, String)>) -> Repo {
        let dir = tempfile::tempdir().unwrap();
        git(dir.path(), &["init", "-q"]);
        let repo = Repo { dir };
        for (path, text) in files {
            repo.write(&path, &text);
        }
        repo.commit("base");
        repo
    }

    fn example() -> Repo {
        Repo::new(
            cairn::example::FILES
                .iter()
                .map(|(p, t)| (p.to_string(), t.to_string())),
        )
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write(&self, path: &str, text: &str) {
        let full = self.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }

    fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.path().join(path)).unwrap()
    }

    fn edit(&self, path: &str, from: &str, to: &str) {
        let text = self.read(path);
        assert!(text.contains(from), "{from:?} is not in {path}");
        self.write(path, &text.replacen(from, to, 1));
    }

    fn remove(&self, path: &str) {
        std::fs::remove_file(self.path().join(path)).unwrap();
    }

    fn commit(&self, message: &str) -> String {
        git(self.path(), &["add", "-A"]);
        git(
            self.path(),
            &["commit", "-q", "--allow-empty", "-m", message],
        );
        git(self.path(), &["rev-parse", "HEAD"])
    }

    /// Makes branch `name` from `main` with `edit` applied, then checks `main` out again.
    fn branch(&self, name: &str, edit: impl FnOnce(&Repo)) -> String {
        git(self.path(), &["checkout", "-q", "-b", name, "main"]);
        edit(self);
        let commit = self.commit(name);
        git(self.path(), &["checkout", "-q", "main"]);
        commit
    }

    fn preview(&self, head: &str) -> Preview {
        self.preview_with(head, &PreviewOptions::default())
    }

    fn preview_with(&self, head: &str, opts: &PreviewOptions) -> Preview {
        let status_before = git(self.path(), &["status", "--porcelain"]);
        let preview = from_git(self.path(), "main", head, opts).expect("preview");
        // The working tree and HEAD are untouched.
        assert_eq!(git(self.path(), &["status", "--porcelain"]), status_before);
        assert_eq!(
            git(self.path(), &["rev-parse", "--abbrev-ref", "HEAD"]),
            "main"
        );
        preview
    }
}

fn cluster<'p>(p: &'p Preview, name: &str) -> &'p ClusterPreview {
    p.clusters
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("{name} is not in the preview: {:?}", changed(p)))
}

fn changed(p: &Preview) -> Vec<(&str, ClusterChange)> {
    p.clusters
        .iter()
        .map(|c| (c.name.as_str(), c.change))
        .collect()
}

fn md(p: &Preview) -> String {
    let text = markdown(p, GITHUB_COMMENT_LIMIT);
    assert!(text.len() <= GITHUB_COMMENT_LIMIT);
    text
}

#[test]
fn version_bump_names_the_control_plane_replacement_with_count_and_versions() {
    let repo = Repo::example();
    let base_text = repo.read("clusters/prod/vsphere-1.yaml");
    let head = repo.branch("pr", |r| {
        r.edit(
            "clusters/prod/vsphere-1.yaml",
            "kubernetesVersion: v1.34.2",
            "kubernetesVersion: v1.34.3",
        )
    });
    let p = repo.preview("pr");
    assert_eq!(p.head.commit.as_deref(), Some(head.as_str()));
    assert!(p.head_valid(), "{:?}", p.head_diagnostics);
    assert_eq!(changed(&p), [("prod-vsphere-1", ClusterChange::Changed)]);
    assert_eq!(p.summary.clusters_unchanged, 2);
    let c = cluster(&p, "prod-vsphere-1");
    let version = Reason::KubernetesVersion {
        from: "v1.34.2".into(),
        to: "v1.34.3".into(),
    };
    assert_eq!(
        c.machines[0],
        MachineImpact::ControlPlaneReplaced {
            machines: 3,
            reasons: vec![version.clone()],
        }
    );
    // Workers follow the version too, pool by pool.
    assert_eq!(
        c.machines[1..],
        [
            MachineImpact::PoolReplaced {
                pool: "md-0".into(),
                machines: 4,
                reasons: vec![version.clone()],
            },
            MachineImpact::PoolReplaced {
                pool: "md-1".into(),
                machines: 2,
                reasons: vec![version],
            },
        ]
    );
    let text = md(&p);
    assert!(
        text.contains(
            "3 control-plane machines will be replaced, one at a time: kubernetesVersion v1.34.2 → v1.34.3"
        ),
        "{text}"
    );
    assert!(
        text.contains("-  version: v1.34.2\n+  version: v1.34.3"),
        "{text}"
    );
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    // The checkout still holds the base.
    assert_eq!(repo.read("clusters/prod/vsphere-1.yaml"), base_text);
}

#[test]
fn a_machine_spec_change_replaces_that_pool_only_and_replicas_scale() {
    let repo = Repo::example();
    repo.branch("pr", |r| {
        let file = "clusters/prod/vsphere-1.yaml";
        r.edit(file, "memoryMiB: 65536", "memoryMiB: 131072");
        r.edit(file, "replicas: 4", "replicas: 6");
    });
    let p = repo.preview("pr");
    assert_eq!(changed(&p), [("prod-vsphere-1", ClusterChange::Changed)]);
    let c = cluster(&p, "prod-vsphere-1");
    assert_eq!(c.machines.len(), 2, "{:#?}", c.machines);
    // Pool by pool, in name order.
    assert_eq!(
        c.machines[0],
        MachineImpact::PoolScaled {
            pool: "md-0".into(),
            from: 4,
            to: 6
        }
    );
    let MachineImpact::PoolReplaced {
        pool,
        machines,
        reasons,
    } = &c.machines[1]
    else {
        panic!("{:#?}", c.machines)
    };
    assert_eq!((pool.as_str(), *machines), ("md-1", 2));
    let [
        Reason::MachineTemplate {
            from, to, changes, ..
        },
    ] = reasons.as_slice()
    else {
        panic!("{reasons:#?}")
    };
    assert!(from.starts_with("prod-vsphere-1-md-1-") && to.starts_with("prod-vsphere-1-md-1-"));
    assert_ne!(from, to);
    assert_eq!(changes[0].field, "memoryMiB");
    assert_eq!(
        (changes[0].from.as_deref(), changes[0].to.as_deref()),
        (Some("65536"), Some("131072"))
    );
    // The template is replaced by a new one (new hash name), shown as one diff.
    let replaced: Vec<_> = c
        .objects
        .iter()
        .filter(|o| o.action == ObjectAction::Replace)
        .collect();
    assert_eq!(replaced.len(), 1);
    assert_eq!(replaced[0].from.as_deref(), Some(from.as_str()));
    assert!(
        replaced[0]
            .diff
            .contains("-      memoryMiB: 65536\n+      memoryMiB: 131072")
    );

    let text = md(&p);
    assert!(
        text.contains("pool `md-1` replaced: its 2 machines will be replaced"),
        "{text}"
    );
    assert!(text.contains("memoryMiB 65536 → 131072"), "{text}");
    assert!(text.contains("pool `md-0` scales 4 → 6"), "{text}");
    assert!(
        !text.contains("control-plane machines will be replaced"),
        "{text}"
    );
    assert!(!text.contains("pool `md-0` replaced"), "{text}");
}

#[test]
fn a_profile_change_shows_addon_diffs_for_exactly_the_clusters_that_use_it() {
    let repo = Repo::example();
    // observability: prod-vsphere-1 and staging-aws-1, not dev-docker-1.
    repo.branch("pr", |r| {
        r.edit(
            "addons/prometheus/deployment.yaml",
            "prometheus:v3.5.0",
            "prometheus:v3.5.1",
        )
    });
    let p = repo.preview("pr");
    assert_eq!(
        changed(&p),
        [
            ("prod-vsphere-1", ClusterChange::Changed),
            ("staging-aws-1", ClusterChange::Changed)
        ]
    );
    for c in &p.clusters {
        assert!(c.machines.is_empty(), "{:?}", c.machines);
        assert_eq!(c.addons.len(), 1, "{:?}", c.addons);
        assert_eq!(c.addons[0].layer, "prometheus");
        assert_eq!(c.addons[0].changed, ["Deployment/monitoring/prometheus"]);
        assert!(
            c.objects
                .iter()
                .all(|o| o.layer.as_deref() == Some("prometheus"))
        );
    }
    let text = md(&p);
    assert!(
        text.contains("add-ons, layer `prometheus`: 1 changed (Deployment/monitoring/prometheus)"),
        "{text}"
    );
    assert!(text.contains("no machine is replaced or scaled"), "{text}");
    assert!(!text.contains("dev-docker-1"), "{text}");

    // A profile file itself (base: every cluster), inline layer of observability (two).
    repo.branch("pr2", |r| {
        r.edit(
            "profiles/observability.yaml",
            "level: \"${LOG_LEVEL}\"",
            "level: \"${LOG_LEVEL}\"\n          env: \"${CLUSTER_NAME}\"",
        )
    });
    let p = repo.preview("pr2");
    assert_eq!(p.clusters.len(), 2, "{:?}", changed(&p));
    assert!(p.clusters.iter().all(|c| c.addons[0].layer == "dashboards"));
    repo.branch("pr3", |r| {
        r.edit("addons/calico/configmap.yaml", "\n", "\n# edited\n")
    });
    let p = repo.preview("pr3");
    // A comment only: renders the same, so nothing changes.
    assert!(p.clusters.is_empty(), "{:?}", changed(&p));
    assert!(md(&p).contains("**No changes**"));
}

#[test]
fn new_and_removed_clusters_and_the_version_warnings() {
    let repo = Repo::example();
    // Base: staging-aws-1 protected by a patch.
    repo.edit(
        "clusters/staging/aws-1.yaml",
        "  pivot: true",
        "  patches:\n    - target: {kind: Cluster}\n      patch:\n        - {op: add, path: /metadata/annotations, value: {cairn.dev/protect: \"true\"}}\n  pivot: true",
    );
    repo.commit("protect staging");
    repo.branch("pr", |r| {
        r.remove("clusters/staging/aws-1.yaml");
        let new = r
            .read("clusters/dev/docker-1.yaml")
            .replace("dev-docker-1", "dev-docker-2")
            .replace("pivot: false", "pivot: true");
        r.write("clusters/dev/docker-2.yaml", &new);
        // Skips v1.35.
        r.edit(
            "clusters/prod/vsphere-1.yaml",
            "kubernetesVersion: v1.34.2",
            "kubernetesVersion: v1.36.1",
        );
        // The fleet default goes down: a downgrade for dev-docker-1 (and full rendering).
        r.edit(
            "fleet.yaml",
            "kubernetesVersion: v1.34.2",
            "kubernetesVersion: v1.34.1",
        );
    });
    let p = repo.preview("pr");
    assert!(p.head_valid(), "{:?}", p.head_diagnostics);
    assert_eq!(
        changed(&p),
        [
            ("dev-docker-1", ClusterChange::Changed),
            ("dev-docker-2", ClusterChange::Added),
            ("prod-vsphere-1", ClusterChange::Changed),
            ("staging-aws-1", ClusterChange::Removed),
        ]
    );
    let s = p.summary;
    assert_eq!(
        (
            s.clusters_added,
            s.clusters_removed,
            s.clusters_changed,
            s.clusters_unchanged
        ),
        (1, 1, 2, 0)
    );
    assert_eq!(
        cluster(&p, "dev-docker-2").machines,
        [MachineImpact::ClusterCreated {
            pivot: true,
            control_plane: 1,
            workers: 2,
            pools: 1
        }]
    );
    let removed = cluster(&p, "staging-aws-1");
    assert!(removed.protected);
    assert_eq!(
        removed.machines,
        [MachineImpact::ClusterDeleted {
            pivot: true,
            protected: true,
            control_plane: 3,
            workers: 3
        }]
    );
    assert!(
        removed
            .objects
            .iter()
            .all(|o| o.action == ObjectAction::Delete)
    );

    let kinds: Vec<(WarningKind, Vec<String>)> = p
        .warnings
        .iter()
        .map(|w| (w.kind, w.clusters.clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            (
                WarningKind::SkippedMinor,
                vec!["prod-vsphere-1".to_string()]
            ),
            (WarningKind::Downgrade, vec!["dev-docker-1".to_string()]),
            (
                WarningKind::ProtectedRemoval,
                vec!["staging-aws-1".to_string()]
            ),
            (WarningKind::FleetShare, vec![]),
        ]
    );
    let text = md(&p);
    for expected in [
        "new cluster: created, then pivoted",
        "removed cluster: will be deleted",
        "`--prune`",
        "**protected**",
        "Kubernetes v1.34.2 → v1.36.1 skips v1.35",
        "Kubernetes v1.34.2 → v1.34.1 is a downgrade",
        "**skipped minor version**",
        "**downgrade**",
        "**protected cluster removed**",
        "touches 3 of the fleet's 3 clusters (100%)",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    // With a higher limit the share warning goes.
    let opts = PreviewOptions {
        max_share_percent: 100.0,
        ..PreviewOptions::default()
    };
    let p = repo.preview_with("pr", &opts);
    assert!(p.warnings.iter().all(|w| w.kind != WarningKind::FleetShare));
}

#[test]
fn an_even_control_plane_and_a_change_that_does_not_validate() {
    let repo = Repo::example();
    repo.branch("even", |r| {
        r.edit(
            "clusters/staging/aws-1.yaml",
            "  pivot: true",
            "  patches:\n    - target: {kind: KubeadmControlPlane, stage: workload}\n      patch:\n        - {op: replace, path: /spec/replicas, value: 4}\n  pivot: true",
        )
    });
    let p = repo.preview("even");
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    assert_eq!(p.warnings[0].kind, WarningKind::EvenControlPlane);
    assert_eq!(p.warnings[0].clusters, ["staging-aws-1"]);
    assert_eq!(
        cluster(&p, "staging-aws-1").machines,
        [MachineImpact::ControlPlaneScaled { from: 3, to: 4 }]
    );

    repo.branch("broken", |r| {
        r.edit("clusters/prod/vsphere-1.yaml", "replicas: 3", "replicas: 2");
        r.edit(
            "clusters/dev/docker-1.yaml",
            "profiles: [base]",
            "profiles: [base, nope]",
        );
        // Not even YAML any more.
        r.edit(
            "clusters/staging/aws-1.yaml",
            "  pivot: true",
            "  pivot: [true",
        );
    });
    let p = repo.preview("broken");
    assert!(!p.head_valid());
    assert_eq!(
        changed(&p),
        [
            ("dev-docker-1", ClusterChange::Invalid),
            ("prod-vsphere-1", ClusterChange::Invalid),
            ("staging-aws-1", ClusterChange::Invalid),
        ]
    );
    assert_eq!(p.summary.clusters_removed, 0);
    let text = md(&p);
    assert!(text.contains("**This change does not validate**"), "{text}");
    assert!(
        text.contains("control-plane replicas is 2; it must be 1, 3, 5 or 7"),
        "{text}"
    );
    assert!(text.contains("unknown profile `nope`"), "{text}");
    let value = json(&p);
    assert_eq!(value["valid"], false);
    assert_eq!(value["clusters"][0]["change"], "invalid");
}

#[test]
fn canary_secret_values_never_appear_and_output_is_identical_across_runs() {
    let (old, new, added, data_old, data_new) = (
        canary("old"),
        canary("new"),
        canary("added"),
        canary("data-old"),
        canary("data-new"),
    );
    let secret = |token: &str, data: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: canary\ntype: Opaque\nstringData:\n  \
             token: {token}\n  same: unchanged-value\ndata:\n  blob: {}\n",
            STANDARD.encode(data)
        )
    };
    let files = cairn::example::FILES.iter().map(|(path, text)| {
        let text = if *path == "profiles/base.yaml" {
            format!(
                "{}\n    - name: canary\n      namespace: kube-system\n      manifests: [addons/canary/*.yaml]\n",
                text.trim_end()
            )
        } else {
            text.to_string()
        };
        (path.to_string(), text)
    });
    let repo = Repo::new(files);
    repo.write("addons/canary/secret.yaml", &secret(&old, &data_old));
    repo.commit("canary");
    repo.branch("pr", |r| {
        r.write("addons/canary/secret.yaml", &secret(&new, &data_new));
        r.write(
            "addons/canary/another.yaml",
            &format!(
                "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata:\n    name: another\n  stringData:\n    key: {added}\n"
            ),
        );
    });
    let p = repo.preview("pr");
    assert_eq!(p.clusters.len(), 3, "every cluster uses base");
    // The Secret inside a List is unpacked: warned about at its own line, redacted below.
    let head = cairn::preview::read_revisions(repo.path(), "main", "pr").unwrap();
    let rendered = cairn::render::render_repo(&head.head_snapshot, &[]);
    assert!(
        rendered.diagnostics.iter().any(|d| {
            let d = d.to_string();
            d.starts_with("addons/canary/another.yaml:5:9: warning:")
                && d.contains("plaintext `kind: Secret`")
        }),
        "{:#?}",
        rendered.diagnostics
    );
    let text = md(&p);
    let value = serde_json::to_string_pretty(&json(&p)).unwrap();
    for out in [&text, &value] {
        for secret in [&old, &new, &added, &data_old, &data_new] {
            for form in forms(secret) {
                assert!(!out.contains(&form), "{form} leaks:\n{out}");
            }
        }
        // Which keys changed is shown.
        assert!(out.contains("token: '<redacted: changed>'"), "{out}");
        assert!(out.contains("blob: '<redacted: changed>'"), "{out}");
        assert!(out.contains("key: '<redacted: added>'"), "{out}");
    }
    assert!(text.contains("same: <redacted>"), "{text}");

    // Deterministic: the same text at every run, Markdown and JSON.
    for _ in 0..2 {
        let again = repo.preview("pr");
        assert_eq!(md(&again), text);
        assert_eq!(serde_json::to_string_pretty(&json(&again)).unwrap(), value);
    }
    // Rendering everything gives the same preview as rendering only what the change touches.
    let full = repo.preview_with(
        "pr",
        &PreviewOptions {
            full: true,
            ..PreviewOptions::default()
        },
    );
    assert_eq!(md(&full), text);
}

#[test]
fn json_is_versioned_and_stable() {
    let repo = Repo::example();
    repo.branch("pr", |r| {
        r.edit("clusters/dev/docker-1.yaml", "replicas: 2", "replicas: 5")
    });
    let p = repo.preview("pr");
    let v = json(&p);
    assert_eq!(v["version"], 1);
    assert_eq!(v["valid"], true);
    assert_eq!(v["has_changes"], true);
    assert_eq!(v["base"]["rev"], "main");
    assert_eq!(v["head"]["rev"], "pr");
    assert_eq!(v["summary"]["clusters_changed"], 1);
    assert_eq!(v["summary"]["objects_changed"], 1);
    let c = &v["clusters"][0];
    assert_eq!(c["name"], "dev-docker-1");
    assert_eq!(c["change"], "changed");
    assert_eq!(c["machines"][0]["kind"], "pool_scaled");
    assert_eq!(c["machines"][0]["from"], 2);
    assert_eq!(c["machines"][0]["to"], 5);
    assert_eq!(c["impact"][0], "pool `md-0` scales 2 → 5");
    let o = &c["objects"][0];
    assert_eq!(
        (&o["stage"], &o["kind"], &o["action"]),
        (
            &serde_json::json!("workload"),
            &serde_json::json!("MachineDeployment"),
            &serde_json::json!("update")
        )
    );
    assert!(
        o["diff"]
            .as_str()
            .unwrap()
            .contains("-  replicas: 2\n+  replicas: 5")
    );
    assert!(v["live"].is_null());
}

#[test]
fn a_thousand_of_ten_thousand_clusters_changed_fits_one_comment() {
    let repo = Repo::new(cairn::synth::synthetic_fleet(10_000));
    repo.branch("pr", |r| {
        for (path, text) in cairn::synth::synthetic_fleet(10_000)
            .into_iter()
            .filter(|(p, _)| p.starts_with("clusters/"))
            .step_by(10)
        {
            r.write(&path, &bump(&text));
        }
    });
    let started = std::time::Instant::now();
    let opts = PreviewOptions {
        max_share_percent: 5.0,
        ..PreviewOptions::default()
    };
    let p = repo.preview_with("pr", &opts);
    eprintln!(
        "preview of 1,000 of 10,000 clusters (debug build): {:?}",
        started.elapsed()
    );
    assert!(
        p.head_valid(),
        "{:?}",
        &p.head_diagnostics[..3.min(p.head_diagnostics.len())]
    );
    assert_eq!(p.summary.clusters_changed, 1_000);
    assert_eq!(p.summary.clusters_unchanged, 9_000);
    let text = markdown(&p, GITHUB_COMMENT_LIMIT);
    assert!(text.len() <= GITHUB_COMMENT_LIMIT, "{} bytes", text.len());
    assert!(text.chars().count() <= GITHUB_COMMENT_LIMIT);
    assert!(
        text.contains("**Left out to fit one GitHub comment (65,536 characters):**"),
        "{text}"
    );
    assert!(
        text.contains("| **clusters** | 0 | 0 | 1,000 | 9,000 |"),
        "{text}"
    );
    assert!(text.contains("groups that change the same way"), "{text}");
    assert!(text.contains("**large share of the fleet**"), "{text}");
    // Any limit holds, however small.
    for limit in [20_000, 5_000, 1_000] {
        let text = markdown(&p, limit);
        assert!(text.len() <= limit, "{limit}: {} bytes", text.len());
        assert!(text.starts_with("## cairn preview:"));
    }
}

/// A realistic edit of a synthetic cluster: the first pool grows by one machine, and clusters
/// on v1.33 move to v1.34.
fn bump(text: &str) -> String {
    let text = text.replace("kubernetesVersion: v1.33.6", "kubernetesVersion: v1.34.2");
    let at = text.find("      replicas: ").expect("a pool") + "      replicas: ".len();
    let end = at + text[at..].find('\n').unwrap();
    let n: u32 = text[at..end].parse().unwrap();
    format!("{}{}{}", &text[..at], n + 1, &text[end..])
}

/// What a server would return for an object cairn applied: its own fields added.
fn served(obj: &serde_json::Value) -> serde_json::Value {
    let mut o = obj.clone();
    o["metadata"]["uid"] = serde_json::json!("0000-1111");
    o["metadata"]["resourceVersion"] = serde_json::json!("42");
    o["metadata"]["managedFields"] = serde_json::json!([{"manager": "cairn"}]);
    o["status"] = serde_json::json!({"observedGeneration": 1});
    o
}

#[test]
fn live_state_keeps_the_change_apart_from_drift_already_there() {
    let repo = Repo::example();
    repo.branch("pr", |r| {
        r.edit(
            "clusters/prod/vsphere-1.yaml",
            "kubernetesVersion: v1.34.2",
            "kubernetesVersion: v1.34.3",
        )
    });
    let revisions = read_revisions(repo.path(), "main", "pr").unwrap();
    let opts = PreviewOptions {
        live: true,
        ..PreviewOptions::default()
    };
    let prepared = prepare_revisions(&revisions, &opts);
    let requests = prepared.live_requests();
    let names: Vec<&str> = requests.iter().map(|r| r.cluster.as_str()).collect();
    assert_eq!(names, ["dev-docker-1", "prod-vsphere-1", "staging-aws-1"]);

    // The live fleet is the base, applied, with one ConfigMap edited by hand on dev-docker-1;
    // staging-aws-1 cannot be reached.
    let base = cairn::render::render_repo(&revisions.base_snapshot, &[]);
    let mut state = LiveState::default();
    for bundle in &base.bundles {
        let mut objects: HashMap<ObjectKey, serde_json::Value> = HashMap::new();
        for stage in &bundle.stages {
            for obj in &stage.objects {
                objects.insert(ObjectKey::of(obj), served(obj));
            }
        }
        if bundle.cluster == "dev-docker-1" {
            let key = objects
                .keys()
                .find(|k| k.kind == "ConfigMap" && k.name == "calico-config")
                .unwrap()
                .clone();
            objects.get_mut(&key).unwrap()["data"]["veth_mtu"] = serde_json::json!("9000");
        }
        // Keep the workload stage's full control plane, as a live cluster has it.
        for stage in &bundle.stages {
            for obj in stage
                .objects
                .iter()
                .filter(|o| o["kind"] == "KubeadmControlPlane")
            {
                if stage.name == cairn::model::types::StageName::Workload {
                    objects.insert(ObjectKey::of(obj), served(obj));
                }
            }
        }
        let cluster = if bundle.cluster == "staging-aws-1" {
            LiveCluster::Unavailable("connection refused".into())
        } else {
            LiveCluster::Objects(objects)
        };
        state.clusters.insert(bundle.cluster.clone(), cluster);
    }
    let p = prepared.finish(Some(&state));
    let live = p.live.as_ref().expect("a live report");
    let by_name: BTreeMap<&str, _> = live
        .clusters
        .iter()
        .map(|c| (c.cluster.as_str(), c))
        .collect();
    let prod = by_name["prod-vsphere-1"];
    assert!(prod.drift.is_empty(), "{:#?}", prod.drift);
    let mut changes: Vec<(String, LiveClass)> = prod
        .change
        .iter()
        .map(|o| (o.key.to_string(), o.class))
        .collect();
    changes.sort();
    assert_eq!(
        changes,
        [
            (
                "KubeadmControlPlane/prod-vsphere-1/prod-vsphere-1-control-plane".to_string(),
                LiveClass::Change
            ),
            (
                "MachineDeployment/prod-vsphere-1/prod-vsphere-1-md-0".to_string(),
                LiveClass::Change
            ),
            (
                "MachineDeployment/prod-vsphere-1/prod-vsphere-1-md-1".to_string(),
                LiveClass::Change
            ),
        ]
    );
    let dev = by_name["dev-docker-1"];
    assert!(dev.change.is_empty(), "{:#?}", dev.change);
    assert_eq!(dev.drift.len(), 1, "{:#?}", dev.drift);
    assert_eq!(dev.drift[0].class, LiveClass::Drift);
    assert_eq!(dev.drift[0].key.name, "calico-config");
    assert!(
        dev.drift[0].diff.contains("veth_mtu"),
        "{}",
        dev.drift[0].diff
    );
    assert_eq!(
        by_name["staging-aws-1"].unavailable.as_deref(),
        Some("connection refused")
    );
    assert_eq!(live.summary.objects_changed_by_this_change, 3);
    assert_eq!(live.summary.objects_drifted, 1);
    let text = md(&p);
    assert!(text.contains("### Live clusters (`--live`)"), "{text}");
    assert!(text.contains("drift already there"), "{text}");
    assert!(
        text.contains("live state unknown (connection refused)"),
        "{text}"
    );
    // The base → head part is the same as without --live.
    assert_eq!(p.clusters, repo.preview("pr").clusters);
}

#[test]
fn markdown_of_a_pool_scale_is_pinned() {
    let repo = Repo::example();
    repo.branch("pr", |r| {
        r.edit("clusters/dev/docker-1.yaml", "replicas: 2", "replicas: 5")
    });
    let mut p = repo.preview("pr");
    // Commit ids change with every run of the test.
    p.base.commit = None;
    p.head.commit = None;
    insta::assert_snapshot!(md(&p), @r"
    ## cairn preview: `main` → `pr`

    | | added | removed | changed | unchanged |
    |---|---:|---:|---:|---:|
    | **clusters** | 0 | 0 | 1 | 2 |
    | **objects** | 0 created | 0 deleted | 1 changed | |

    ### What changes, per cluster

    - **`dev-docker-1`** (changed)
      - pool `md-0` scales 2 → 5
      - 1 CAPI/pivot object changes (workload)

    ### Diffs

    #### `dev-docker-1` (changed, 1 object)

    update workload `MachineDeployment/dev-docker-1/dev-docker-1-md-0`
    ```diff
    --- base MachineDeployment/dev-docker-1/dev-docker-1-md-0
    +++ head MachineDeployment/dev-docker-1/dev-docker-1-md-0
    @@ -8,7 +8,7 @@
       namespace: dev-docker-1
     spec:
       clusterName: dev-docker-1
    -  replicas: 2
    +  replicas: 5
       rollout:
         strategy:
           rollingUpdate:
    ```
    ");
}

/// `s` quoted as JSON, which is YAML too.
fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Names and values an attacker controls cannot break out of the comment's markdown: no raw
/// HTML, no closed code span or fence, no mention, no terminal escape.
#[test]
fn hostile_names_are_escaped_in_the_markdown() {
    let hostile = "x`</details><h1>big</h1>[link](https://evil.example) @octocat \u{1b}[31m";
    let repo = Repo::example();
    repo.branch("pr", |r| {
        r.write(
            "addons/prometheus/hostile.yaml",
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: monitoring\ndata:\n  {key}: {value}\n",
                name = json_string(&format!("cm-{hostile}")),
                key = json_string(&format!("k-{hostile}")),
                value = json_string(&format!("```\n</details>{hostile}")),
            ),
        )
    });
    let mut p = repo.preview("pr");
    p.base.commit = None;
    p.head.commit = None;
    let text = md(&p);
    assert!(
        text.contains("cm-x"),
        "the object is in the preview:\n{text}"
    );
    assert!(!text.contains('\u{1b}'), "a raw escape in:\n{text}");
    let prose = outside_code(&text);
    for raw in ["<h1>", "</details><h1>", "[link](", "@octocat"] {
        assert!(
            !prose.contains(raw),
            "raw {raw:?} outside code in:\n{prose}"
        );
    }
    insta::assert_snapshot!(text);
}

/// `markdown` without its fenced blocks and inline code spans (where GitHub renders no HTML,
/// link or mention): what remains is read as markdown and HTML.
fn outside_code(markdown: &str) -> String {
    let mut out = String::new();
    let mut fence: Option<usize> = None;
    for line in markdown.lines() {
        let ticks = line.chars().take_while(|&c| c == '`').count();
        match fence {
            Some(open) if ticks >= open && line.trim_matches('`').is_empty() => fence = None,
            Some(_) => {}
            None if ticks >= 3 => fence = Some(ticks),
            None => {
                out.push_str(&without_code_spans(line));
                out.push('\n');
            }
        }
    }
    out
}

/// A line without its code spans: a run of N backticks up to the next run of exactly N.
fn without_code_spans(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|&&c| c == '`').count();
        let mut j = i + run;
        let mut closed = None;
        while j < chars.len() {
            let r = chars[j..].iter().take_while(|&&c| c == '`').count();
            if r == run {
                closed = Some(j + r);
                break;
            }
            j += r.max(1);
        }
        match closed {
            Some(end) => i = end,
            None => {
                out.extend(&chars[i..i + run]);
                i += run;
            }
        }
    }
    out
}
