//! Every validation rule of DESIGN.md §1, each shown on a small broken repository: `cairn
//! validate` exits 2, names the file, line and column, and says what is wrong; `--output json`
//! reports the same diagnostic. The repositories are written to temporary directories from the
//! base below (not from example-repo), and the real binary runs against them.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{cairn, cairn_in, tree, write_files, write_repo};
use serde_json::Value;

// ---------------------------------------------------------------------------------------------
// The valid base repository. Line numbers below are what the tests' positions refer to.

const FLEET: &str = "\
apiVersion: cairn.dev/v1alpha1
kind: Fleet
metadata:
  name: test
spec:
  defaults:
    kubernetesVersion: v1.34.2
  agent:
    image: ghcr.io/acme/cairn:0.1.0
  source:
    url: https://git.example.com/fleet.git
";

/// clusters/alpha.yaml. Line 7 provider, 9 controlPlane, 10 its replicas, 13-15 worker md-0,
/// 16 profiles.
const ALPHA: &str = "\
apiVersion: cairn.dev/v1alpha1
kind: Cluster
metadata:
  name: alpha
spec:
  infrastructure:
    provider: docker
    docker: {}
  controlPlane:
    replicas: 1
    machine: {}
  workers:
    - name: md-0
      replicas: 1
      machine: {}
  profiles: [base]
";

/// profiles/base.yaml. Layer `cni` (lines 9-11) from files, layer `app` (12-18) inline.
const BASE: &str = "\
apiVersion: cairn.dev/v1alpha1
kind: ClusterProfile
metadata:
  name: base
spec:
  variables:
    LOG_LEVEL: {default: info}
  layers:
    - name: cni
      namespace: kube-system
      manifests: [addons/cni/*.yaml]
    - name: app
      dependsOn: [cni]
      inline: |
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: app}
        data: {level: \"${LOG_LEVEL}\"}
";

/// addons/cni/config.yaml.
const CNI: &str = "\
apiVersion: v1
kind: ConfigMap
metadata:
  name: cni-config
data:
  cluster: ${CLUSTER_NAME}
";

type Files = BTreeMap<String, String>;

fn base() -> Files {
    [
        ("fleet.yaml", FLEET),
        ("clusters/alpha.yaml", ALPHA),
        ("profiles/base.yaml", BASE),
        ("addons/cni/config.yaml", CNI),
    ]
    .into_iter()
    .map(|(p, c)| (p.to_string(), c.to_string()))
    .collect()
}

/// Replaces `from` (which must occur exactly once) with `to` in `files[path]`.
fn edit(files: &mut Files, path: &str, from: &str, to: &str) {
    let text = files.get_mut(path).unwrap_or_else(|| panic!("no {path}"));
    assert_eq!(text.matches(from).count(), 1, "{from:?} in {path}");
    *text = text.replacen(from, to, 1);
}

fn add(files: &mut Files, path: &str, content: &str) {
    files.insert(path.to_string(), content.to_string());
}

/// The base with one edit.
fn base_with(path: &str, from: &str, to: &str) -> Files {
    let mut files = base();
    edit(&mut files, path, from, to);
    files
}

// ---------------------------------------------------------------------------------------------
// Running validate and checking what it reports.

/// A diagnostic as `--output json` reports it.
#[derive(Clone, Debug, PartialEq)]
struct Diag {
    file: String,
    line: u64,
    column: u64,
    severity: String,
    clusters: Vec<String>,
    message: String,
    help: Option<String>,
}

impl Diag {
    fn from_json(v: &Value) -> Diag {
        let s = |k: &str| {
            v[k].as_str()
                .unwrap_or_else(|| panic!("{k} in {v}"))
                .to_string()
        };
        Diag {
            file: s("file"),
            line: v["line"].as_u64().expect("line"),
            column: v["column"].as_u64().expect("column"),
            severity: s("severity"),
            clusters: v
                .get("clusters")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(|c| c.as_str().unwrap().to_string()).collect())
                .unwrap_or_default(),
            message: s("message"),
            help: v.get("help").and_then(Value::as_str).map(str::to_string),
        }
    }

    /// How the text output prints it: `file:line:col: severity: cluster NAME: message`.
    fn text(&self) -> String {
        let mut out = format!(
            "{}:{}:{}: {}: ",
            self.file, self.line, self.column, self.severity
        );
        match self.clusters.as_slice() {
            [] => {}
            [one] => out.push_str(&format!("cluster {one}: ")),
            many => out.push_str(&format!("clusters {}: ", many.join(", "))),
        }
        out.push_str(&self.message);
        if let Some(help) = &self.help {
            out.push_str(&format!("\n  help: {help}"));
        }
        out
    }
}

/// What a test expects to be reported.
struct Want<'a> {
    file: &'a str,
    line: u64,
    column: u64,
    severity: &'a str,
    clusters: &'a [&'a str],
    message: &'a str,
    help: Option<&'a str>,
}

fn error<'a>(file: &'a str, line: u64, column: u64, message: &'a str) -> Want<'a> {
    Want {
        file,
        line,
        column,
        severity: "error",
        clusters: &[],
        message,
        help: None,
    }
}

impl<'a> Want<'a> {
    fn cluster(mut self, clusters: &'a [&'a str]) -> Self {
        self.clusters = clusters;
        self
    }
    fn help(mut self, help: &'a str) -> Self {
        self.help = Some(help);
        self
    }
    fn warning(mut self) -> Self {
        self.severity = "warning";
        self
    }
    fn matches(&self, d: &Diag) -> bool {
        d.file == self.file
            && d.line == self.line
            && d.column == self.column
            && d.severity == self.severity
            && d.message.contains(self.message)
    }
}

/// Both outputs of one `cairn validate` of a repository.
struct Report {
    text: common::Run,
    json: common::Run,
    diags: Vec<Diag>,
}

impl Report {
    fn errors(&self) -> Vec<&Diag> {
        self.diags
            .iter()
            .filter(|d| d.severity == "error")
            .collect()
    }

    /// Checks that `want` is reported, identically in text and JSON, and returns it.
    fn expect(&self, want: &Want) -> &Diag {
        let found = self.diags.iter().find(|d| want.matches(d));
        let Some(d) = found else {
            panic!(
                "no {} at {}:{}:{} containing {:?}; got:\n{}",
                want.severity, want.file, want.line, want.column, want.message, self.text.stderr
            );
        };
        let clusters: Vec<&str> = d.clusters.iter().map(String::as_str).collect();
        assert_eq!(clusters, want.clusters, "clusters of {}", d.text());
        if let Some(help) = want.help {
            let got = d.help.as_deref().unwrap_or_default();
            assert!(got.contains(help), "help {got:?} lacks {help:?}");
        }
        assert!(
            self.text.stderr.contains(&format!("{}\n", d.text())),
            "text output lacks the JSON diagnostic\n{}\n---\n{}",
            d.text(),
            self.text.stderr
        );
        d
    }

    /// `expect`, and that it is the only error.
    fn expect_only(&self, want: &Want) -> &Diag {
        let d = self.expect(want);
        assert_eq!(
            self.errors().len(),
            1,
            "expected one error, got:\n{}",
            self.text.stderr
        );
        d
    }
}

/// Runs `cairn validate` on `dir` in text and in JSON form, and checks what every run must do:
/// the exit code follows the errors, JSON says `valid` accordingly, every diagnostic has a
/// position, and the two outputs list the same diagnostics in the same order.
fn validate_dir(dir: &Path) -> Report {
    let repo = dir.to_str().unwrap();
    let text = cairn(["validate", "--repo", repo]);
    let json = cairn(["validate", "--repo", repo, "--output", "json"]);
    let report: Value = serde_json::from_str(&json.stdout)
        .unwrap_or_else(|e| panic!("JSON output: {e}\n{}", json.stdout));
    let diags: Vec<Diag> = report["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .map(Diag::from_json)
        .collect();
    let has_errors = diags.iter().any(|d| d.severity == "error");
    let want_code = if has_errors { 2 } else { 0 };
    assert_eq!(text.code, want_code, "text exit code\n{}", text.stderr);
    assert_eq!(json.code, want_code, "json exit code\n{}", json.stderr);
    assert_eq!(report["valid"], Value::Bool(!has_errors));
    for d in &diags {
        assert!(d.line >= 1 && d.column >= 1, "no position: {}", d.text());
        assert!(!d.file.is_empty() && !d.message.is_empty());
    }
    // Text and JSON agree, in the same (sorted) order.
    let mut rest = text.stderr.as_str();
    for d in &diags {
        let t = d.text();
        let at = rest.find(&t).unwrap_or_else(|| {
            panic!(
                "text output lacks, or misorders:\n{t}\n---\n{}",
                text.stderr
            )
        });
        rest = &rest[at + t.len()..];
    }
    let mut sorted = diags.clone();
    sorted.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
    assert_eq!(
        diags, sorted,
        "diagnostics are sorted by file, line, column"
    );
    Report { text, json, diags }
}

/// Writes `files` and validates them; the directory lives as long as the report is checked.
fn validate(files: &Files) -> Report {
    let dir = write_repo(files);
    validate_dir(dir.path())
}

// ---------------------------------------------------------------------------------------------
// The base itself.

#[test]
fn the_base_repository_is_valid() {
    let r = validate(&base());
    assert!(r.diags.is_empty(), "{}", r.text.stderr);
    assert!(r.text.stderr.contains(": valid"), "{}", r.text.stderr);
    assert_eq!(r.text.stdout, "");
    assert!(r.json.stdout.contains("\"valid\": true"));
}

// ---------------------------------------------------------------------------------------------
// Structure: YAML, fields, types.

#[test]
fn yaml_syntax_error() {
    let files = base_with(
        "clusters/alpha.yaml",
        "    provider: docker\n",
        "    provider: docker: x\n",
    );
    validate(&files).expect_only(&error(
        "clusters/alpha.yaml",
        7,
        21,
        "invalid YAML: mapping values are not allowed in this context",
    ));
}

#[test]
fn yaml_duplicate_key_names_the_first_one() {
    let files = base_with(
        "clusters/alpha.yaml",
        "  profiles: [base]\n",
        "  profiles: [base]\n  workers: []\n",
    );
    validate(&files).expect_only(&error(
        "clusters/alpha.yaml",
        17,
        3,
        "duplicate key `workers` in this mapping (first set at line 12)",
    ));
}

#[test]
fn unknown_field_suggests_the_field_meant() {
    let files = base_with(
        "clusters/alpha.yaml",
        "    replicas: 1\n    machine",
        "    replica: 1\n    machine",
    );
    // Only the misspelt field: the `replicas` it stands for is not also reported missing.
    validate(&files).expect_only(
        &error(
            "clusters/alpha.yaml",
            10,
            5,
            "unknown field `replica` in `spec.controlPlane`",
        )
        .help("did you mean `replicas`?"),
    );
}

#[test]
fn unknown_field_in_fleet_yaml() {
    let files = base_with("fleet.yaml", "  agent:\n", "  agnet:\n");
    let r = validate(&files);
    r.expect(
        &error("fleet.yaml", 8, 3, "unknown field `agnet` in `spec`").help("did you mean `agent`?"),
    );
}

#[test]
fn missing_required_field_points_at_the_mapping() {
    let files = base_with(
        "clusters/alpha.yaml",
        "    replicas: 1\n    machine",
        "    machine",
    );
    validate(&files).expect_only(
        &error(
            "clusters/alpha.yaml",
            9,
            3,
            "missing field `replicas` in `spec.controlPlane`",
        )
        .help("add `replicas:`"),
    );
}

#[test]
fn wrong_type() {
    let files = base_with(
        "clusters/alpha.yaml",
        "      replicas: 1\n",
        "      replicas: two\n",
    );
    validate(&files).expect_only(&error(
        "clusters/alpha.yaml",
        14,
        17,
        "`spec.workers[0].replicas` must be a whole number, found the string \"two\"",
    ));
}

#[test]
fn wrong_enum_value_suggests_the_choice_meant() {
    let files = base_with(
        "clusters/alpha.yaml",
        "provider: docker",
        "provider: dokcer",
    );
    validate(&files).expect(
        &error(
            "clusters/alpha.yaml",
            7,
            15,
            "`spec.infrastructure.provider` must be one of vsphere, aws, docker; found `dokcer`",
        )
        .help("did you mean `docker`?"),
    );
}

// ---------------------------------------------------------------------------------------------
// Names.

#[test]
fn duplicate_cluster_names() {
    let mut files = base();
    add(&mut files, "clusters/beta.yaml", ALPHA);
    validate(&files).expect_only(
        &error("clusters/beta.yaml", 4, 9, "duplicate cluster name `alpha`")
            .cluster(&["alpha"])
            .help("it is already defined at clusters/alpha.yaml:4"),
    );
}

#[test]
fn duplicate_worker_names() {
    let files = base_with(
        "clusters/alpha.yaml",
        "  profiles:",
        "    - name: md-0\n      replicas: 2\n      machine: {}\n  profiles:",
    );
    validate(&files).expect_only(
        &error(
            "clusters/alpha.yaml",
            16,
            13,
            "duplicate worker pool name `md-0` (also workers[0])",
        )
        .cluster(&["alpha"]),
    );
}

#[test]
fn cluster_name_over_40_characters() {
    let long = "alpha-this-name-is-far-too-long-for-capi-x"; // 42
    let files = base_with(
        "clusters/alpha.yaml",
        "name: alpha",
        &format!("name: {long}"),
    );
    validate(&files).expect_only(
        &error(
            "clusters/alpha.yaml",
            4,
            9,
            &format!("cluster name `{long}` is 42 characters long; the limit is 40"),
        )
        .cluster(&[long])
        .help("shorten it to at most 40 characters"),
    );
}

#[test]
fn cluster_name_not_dns_1123() {
    let files = base_with("clusters/alpha.yaml", "name: alpha", "name: Alpha_1");
    validate(&files).expect_only(
        &error(
            "clusters/alpha.yaml",
            4,
            9,
            "cluster name `Alpha_1` is not a DNS-1123 label",
        )
        .cluster(&["Alpha_1"])
        .help("lowercase letters, digits and '-'"),
    );
}

#[test]
fn cluster_names_that_are_reserved_namespaces() {
    for (name, why) in [
        ("kube-system", "is a namespace Kubernetes reserves"),
        ("default", "is a namespace Kubernetes reserves"),
        ("cairn-system", "ends in -system"),
        ("capi-system", "ends in -system"),
        ("cert-manager", "is cert-manager's namespace"),
    ] {
        let files = base_with(
            "clusters/alpha.yaml",
            "name: alpha",
            &format!("name: {name}"),
        );
        validate(&files).expect_only(
            &error(
                "clusters/alpha.yaml",
                4,
                9,
                &format!("cluster name `{name}` {why}"),
            )
            .cluster(&[name])
            .help("pick another name"),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Profiles and layers.

#[test]
fn missing_profile_suggests_the_profile_meant() {
    let files = base_with("clusters/alpha.yaml", "[base]", "[bsae]");
    validate(&files).expect_only(
        &error("clusters/alpha.yaml", 16, 14, "unknown profile `bsae`")
            .cluster(&["alpha"])
            .help("did you mean `base`?"),
    );
}

#[test]
fn providers_are_known_once_at_release_versions_and_cover_every_cluster() {
    let mut files = base();
    let fleet = files.get_mut("fleet.yaml").unwrap();
    fleet.push_str(
        "  providers:
    core: {name: cluster-api, version: 1.14.2}
    bootstrap: [{name: kubeadm, version: v1.14.2}]
    controlPlane: [{name: kubedam, version: v1.14.2}]
    infrastructure:
      - {name: vsphere, version: v1.16.1, components: [../capv.yaml]}
      - {name: vsphere, version: v1.16.1-}
",
    );
    let r = validate(&files);
    r.expect(
        &error("fleet.yaml", 13, 40, "malformed provider version `1.14.2`")
            .help("vMAJOR.MINOR.PATCH"),
    );
    r.expect(
        &error(
            "fleet.yaml",
            15,
            27,
            "unknown control-plane provider `kubedam`",
        )
        .help("did you mean `kubeadm`?"),
    );
    r.expect(&error(
        "fleet.yaml",
        17,
        56,
        "manifest path `../capv.yaml` leaves the repository",
    ));
    r.expect(&error(
        "fleet.yaml",
        18,
        16,
        "infrastructure provider `vsphere` is declared twice",
    ));
    r.expect(&error(
        "fleet.yaml",
        18,
        34,
        "malformed provider version `v1.16.1-`",
    ));
    r.expect(
        &error(
            "clusters/alpha.yaml",
            7,
            15,
            "infrastructure provider `docker` is not among fleet.yaml's spec.providers.infrastructure",
        )
        .cluster(&["alpha"])
        .help("add `{name: docker, version: ...}`"),
    );
    let warning = r
        .diags
        .iter()
        .find(|d| d.severity == "warning")
        .expect("a warning");
    assert!(
        warning.message.contains("names no certManager"),
        "{}",
        warning.text()
    );
    assert_eq!((warning.file.as_str(), warning.line), ("fleet.yaml", 12));
    assert_eq!(r.errors().len(), 6, "{}", r.text.stderr);
}

#[test]
fn a_service_account_needs_a_valid_name_and_the_layers_namespace() {
    let mut files = base_with(
        "profiles/base.yaml",
        "      dependsOn: [cni]\n",
        "      dependsOn: [cni]\n      serviceAccountName: Deployer_\n",
    );
    // With a namespace and a valid name, a layer may name one.
    edit(
        &mut files,
        "profiles/base.yaml",
        "      manifests: [addons/cni/*.yaml]\n",
        "      manifests: [addons/cni/*.yaml]\n      serviceAccountName: cni-deployer\n",
    );
    let r = validate(&files);
    r.expect(
        &error(
            "profiles/base.yaml",
            15,
            27,
            "serviceAccountName `Deployer_` is not a DNS-1123 subdomain",
        )
        .help("name the ServiceAccount"),
    );
    r.expect(
        &error(
            "profiles/base.yaml",
            15,
            27,
            "layer `app` names serviceAccountName `Deployer_` but no namespace for it",
        )
        .help("set the layer's `namespace:`"),
    );
    assert_eq!(r.errors().len(), 2, "{}", r.text.stderr);
}

#[test]
fn depends_on_names_no_layer() {
    let files = base_with(
        "profiles/base.yaml",
        "dependsOn: [cni]",
        "dependsOn: [cnii]",
    );
    validate(&files).expect_only(
        &error(
            "profiles/base.yaml",
            13,
            19,
            "layer `app` depends on `cnii`, which no profile of the cluster defines",
        )
        .cluster(&["alpha"])
        .help("did you mean `cni`?"),
    );
}

#[test]
fn dependency_cycle_prints_the_cycle() {
    let files = base_with(
        "profiles/base.yaml",
        "      namespace: kube-system\n",
        "      dependsOn: [app]\n",
    );
    validate(&files).expect_only(
        &error(
            "profiles/base.yaml",
            13,
            18,
            "dependency cycle: app -> cni -> app",
        )
        .cluster(&["alpha"])
        .help("remove one of these dependsOn entries"),
    );
}

#[test]
fn dependency_cycle_across_profiles() {
    let mut files = base_with("clusters/alpha.yaml", "[base]", "[base, extra]");
    edit(
        &mut files,
        "profiles/base.yaml",
        "      namespace: kube-system\n",
        "      dependsOn: [mesh]\n",
    );
    add(
        &mut files,
        "profiles/extra.yaml",
        "apiVersion: cairn.dev/v1alpha1\nkind: ClusterProfile\nmetadata: {name: extra}\nspec:\n  layers:\n    - name: mesh\n      dependsOn: [app]\n      inline: |\n        apiVersion: v1\n        kind: ConfigMap\n        metadata: {name: mesh}\n",
    );
    let r = validate(&files);
    assert_eq!(r.errors().len(), 1, "{}", r.text.stderr);
    let d = r.errors()[0];
    assert!(
        d.message.contains("dependency cycle: ")
            && ["app", "cni", "mesh"]
                .iter()
                .all(|l| d.message.contains(&format!("{l} -> "))),
        "{}",
        d.text()
    );
    // The cycle closes on the layer it starts from.
    let names: Vec<&str> = d.message["dependency cycle: ".len()..]
        .split(" -> ")
        .collect();
    assert_eq!(names.len(), 4);
    assert_eq!(names[0], names[3]);
}

#[test]
fn a_bootstrap_layer_that_depends_on_a_later_one() {
    // `app` is applied after the nodes are Ready; a bootstrap layer comes before that.
    let mut files = base_with(
        "profiles/base.yaml",
        "    - name: cni\n      namespace: kube-system\n",
        "    - name: cni\n      namespace: kube-system\n      dependsOn: [app]\n      bootstrap: true\n",
    );
    edit(
        &mut files,
        "profiles/base.yaml",
        "      dependsOn: [cni]\n",
        "",
    );
    let report = validate(&files);
    let d = report.expect_only(
        &error(
            "profiles/base.yaml",
            11,
            19,
            "bootstrap layer `cni` depends on `app`, which is not a bootstrap layer",
        )
        .cluster(&["alpha"]),
    );
    assert!(
        d.text().contains("mark `app` `bootstrap: true` too"),
        "{}",
        d.text()
    );
}

#[test]
fn bootstrap_layers_render_first_and_marked() {
    // Declared after `app`, a bootstrap layer still comes first among the add-ons.
    let mut files = base();
    edit(
        &mut files,
        "profiles/base.yaml",
        "    - name: app\n      dependsOn: [cni]\n",
        "    - name: app\n",
    );
    let text = files.get_mut("profiles/base.yaml").unwrap();
    text.push_str("    - name: net\n      bootstrap: true\n      inline: |\n        apiVersion: v1\n        kind: ConfigMap\n        metadata: {name: net}\n");
    let dir = write_repo(&files);
    let snapshot = cairn::model::snapshot::RepoSnapshot::from_dir(dir.path()).unwrap();
    let rendered = cairn::render::render_repo(&snapshot, &[]);
    assert!(!rendered.has_errors(), "{:?}", rendered.diagnostics);
    let addons = &rendered.bundles[0]
        .stage(cairn::model::types::StageName::Addons)
        .unwrap()
        .objects;
    let layers: Vec<(&str, Option<&str>)> = addons
        .iter()
        .map(|o| {
            (
                o["metadata"]["labels"]["cairn.dev/layer"].as_str().unwrap(),
                o["metadata"]["annotations"]["cairn.dev/bootstrap-layer"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        layers,
        [("net", Some("true")), ("cni", None), ("app", None)]
    );
}

// ---------------------------------------------------------------------------------------------
// Cluster settings.

#[test]
fn control_plane_replicas_not_1_3_5_7() {
    for n in [0, 2, 4, 9] {
        let files = base_with(
            "clusters/alpha.yaml",
            "    replicas: 1\n    machine",
            &format!("    replicas: {n}\n    machine"),
        );
        validate(&files).expect_only(
            &error(
                "clusters/alpha.yaml",
                10,
                15,
                &format!("control-plane replicas is {n}; it must be 1, 3, 5 or 7"),
            )
            .cluster(&["alpha"]),
        );
    }
}

#[test]
fn provider_block_that_does_not_match_the_provider() {
    let files = base_with(
        "clusters/alpha.yaml",
        "    docker: {}\n",
        "    aws: {region: eu-west-1, sshKeyName: k}\n",
    );
    let r = validate(&files);
    r.expect(
        &error(
            "clusters/alpha.yaml",
            8,
            5,
            "`infrastructure.aws` does not match provider `docker`",
        )
        .cluster(&["alpha"])
        .help("remove this block, or set `provider: aws`"),
    );
    r.expect(
        &error(
            "clusters/alpha.yaml",
            7,
            15,
            "provider is `docker` but there is no `infrastructure.docker` block",
        )
        .cluster(&["alpha"]),
    );
    assert_eq!(r.errors().len(), 2, "{}", r.text.stderr);
}

#[test]
fn provider_block_missing() {
    let files = base_with("clusters/alpha.yaml", "    docker: {}\n", "");
    validate(&files).expect_only(
        &error(
            "clusters/alpha.yaml",
            7,
            15,
            "provider is `docker` but there is no `infrastructure.docker` block",
        )
        .cluster(&["alpha"])
        .help("add `docker:`"),
    );
}

#[test]
fn malformed_cluster_version() {
    let files = base_with(
        "clusters/alpha.yaml",
        "spec:\n",
        "spec:\n  kubernetesVersion: 1.34.2\n",
    );
    validate(&files).expect_only(
        &error(
            "clusters/alpha.yaml",
            6,
            22,
            "malformed Kubernetes version `1.34.2`",
        )
        .cluster(&["alpha"])
        .help("vMAJOR.MINOR.PATCH"),
    );
}

#[test]
fn malformed_fleet_default_version() {
    let files = base_with("fleet.yaml", "v1.34.2", "v1.34");
    validate(&files).expect_only(
        &error("fleet.yaml", 7, 24, "malformed Kubernetes version `v1.34`")
            .help("vMAJOR.MINOR.PATCH"),
    );
}

#[test]
fn vsphere_without_control_plane_endpoint() {
    let mut files = base_with(
        "clusters/alpha.yaml",
        "provider: docker",
        "provider: vsphere",
    );
    let alpha = files.get_mut("clusters/alpha.yaml").unwrap();
    *alpha = alpha
        .replace(
            "    docker: {}",
            "    vsphere: {server: vc, datacenter: dc, datastore: ds, network: n, template: t, identitySecret: s}",
        )
        .replace("machine: {}", "machine: {cpus: 2, memoryMiB: 4096, diskGiB: 20}");
    validate(&files).expect_only(
        &error(
            "clusters/alpha.yaml",
            9,
            3,
            "vsphere clusters need `controlPlane.endpoint`",
        )
        .cluster(&["alpha"])
        .help("endpoint: {host: <ip>, port: 6443}"),
    );
}

#[test]
fn pivot_without_fleet_agent_image() {
    let files = base_with(
        "fleet.yaml",
        "  agent:\n    image: ghcr.io/acme/cairn:0.1.0\n",
        "",
    );
    validate(&files).expect_only(
        &error(
            "clusters/alpha.yaml",
            4,
            9,
            "the cluster pivots, but fleet.yaml sets no `spec.agent.image`",
        )
        .cluster(&["alpha"])
        .help("or `pivot: false` on the cluster"),
    );
    // A cluster that does not pivot needs no agent.
    let mut files = files;
    edit(
        &mut files,
        "clusters/alpha.yaml",
        "  profiles: [base]\n",
        "  profiles: [base]\n  pivot: false\n",
    );
    assert!(validate(&files).diags.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Variables.

#[test]
fn unset_required_variable() {
    let files = base_with("profiles/base.yaml", "{default: info}", "{}");
    validate(&files).expect_only(
        &error(
            "clusters/alpha.yaml",
            16,
            14,
            "profile `base` requires variable `LOG_LEVEL`, which has no default and is not set",
        )
        .cluster(&["alpha"])
        .help("set spec.variables.LOG_LEVEL on this cluster"),
    );
    // Setting it on the cluster is the fix.
    let mut files = files;
    edit(
        &mut files,
        "clusters/alpha.yaml",
        "  profiles: [base]\n",
        "  profiles: [base]\n  variables: {LOG_LEVEL: debug}\n",
    );
    assert!(validate(&files).diags.is_empty());
}

#[test]
fn unset_variable_in_a_manifest_file() {
    let files = base_with("addons/cni/config.yaml", "${CLUSTER_NAME}", "${REGION}");
    validate(&files).expect_only(
        &error(
            "addons/cni/config.yaml",
            6,
            12,
            "variable `REGION` is not set",
        )
        .cluster(&["alpha"])
        .help("set spec.variables.REGION on the cluster"),
    );
}

#[test]
fn unset_variable_in_an_inline_manifest_points_into_the_profile() {
    let files = base_with("profiles/base.yaml", "${LOG_LEVEL}", "${LOG_LVL}");
    // Line 18 of the profile, at the `$` (the inline text is indented by 8).
    validate(&files).expect_only(
        &error(
            "profiles/base.yaml",
            18,
            24,
            "variable `LOG_LVL` is not set",
        )
        .cluster(&["alpha"]),
    );
}

// ---------------------------------------------------------------------------------------------
// Paths and files.

#[test]
fn glob_that_matches_nothing() {
    let files = base_with(
        "profiles/base.yaml",
        "addons/cni/*.yaml",
        "addons/cnii/*.yaml",
    );
    validate(&files).expect_only(
        &error(
            "profiles/base.yaml",
            11,
            19,
            "`addons/cnii/*.yaml` matches no file in the repository",
        )
        .cluster(&["alpha"]),
    );
}

#[test]
fn path_that_climbs_out_with_dotdot() {
    let files = base_with(
        "profiles/base.yaml",
        "addons/cni/*.yaml",
        "../outside/*.yaml",
    );
    validate(&files).expect_only(&error(
        "profiles/base.yaml",
        11,
        19,
        "manifest path `../outside/*.yaml` leaves the repository (`..`)",
    ));
}

#[test]
fn absolute_path() {
    let files = base_with("profiles/base.yaml", "addons/cni/*.yaml", "/etc/*.yaml");
    validate(&files).expect_only(&error(
        "profiles/base.yaml",
        11,
        19,
        "manifest path `/etc/*.yaml` is absolute",
    ));
}

/// A file outside the repository for symbolic links to point at.
#[cfg(unix)]
fn outside_file() -> (tempfile::TempDir, PathBuf) {
    let outside = write_repo([(
        "stolen.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: stolen}\n",
    )]);
    let path = outside.path().join("stolen.yaml");
    (outside, path)
}

#[cfg(unix)]
#[test]
fn cluster_file_that_is_a_symlink_out_of_the_repo() {
    let (_outside, target) = outside_file();
    let dir = write_repo(&base());
    std::os::unix::fs::symlink(&target, dir.path().join("clusters/stolen.yaml")).unwrap();
    validate_dir(dir.path()).expect_only(
        &error(
            "clusters/stolen.yaml",
            1,
            1,
            "symbolic link points outside the repository",
        )
        .help("copy the file into the repository"),
    );
}

#[cfg(unix)]
#[test]
fn manifest_that_is_a_symlink_out_of_the_repo() {
    let (_outside, target) = outside_file();
    let dir = write_repo(&base());
    std::os::unix::fs::symlink(&target, dir.path().join("addons/cni/stolen.yaml")).unwrap();
    validate_dir(dir.path()).expect_only(
        &error(
            "addons/cni/stolen.yaml",
            1,
            1,
            "symbolic link points outside the repository",
        )
        .cluster(&["alpha"]),
    );
}

#[cfg(unix)]
#[test]
fn manifest_directory_that_is_a_symlink_out_of_the_repo() {
    let (outside, _) = outside_file();
    let files = base_with(
        "profiles/base.yaml",
        "addons/cni/*.yaml",
        "addons/ext/*.yaml",
    );
    let dir = write_repo(&files);
    std::os::unix::fs::symlink(outside.path(), dir.path().join("addons/ext")).unwrap();
    validate_dir(dir.path()).expect_only(
        &error(
            "profiles/base.yaml",
            11,
            19,
            "`addons/ext/*.yaml` reaches into `addons/ext`, a symbolic link that points outside the repository",
        )
        .cluster(&["alpha"]),
    );
}

#[cfg(unix)]
#[test]
fn symlinks_inside_the_repo_are_fine() {
    let dir = write_repo(&base());
    std::os::unix::fs::symlink("config.yaml", dir.path().join("addons/cni/again.yaml")).unwrap();
    // The same object twice, through the link: caught as a duplicate, not as an escape.
    let r = validate_dir(dir.path());
    r.expect(&error("addons/cni/config.yaml", 1, 1, "is defined twice").cluster(&["alpha"]));
    assert!(!r.text.stderr.contains("outside the repository"));
}

#[test]
fn files_over_10_mib() {
    let big = "#".repeat(10 * 1024 * 1024 + 1);
    let mut files = base();
    add(&mut files, "addons/cni/big.yaml", &big);
    add(&mut files, "clusters/big.yaml", &big);
    let r = validate(&files);
    r.expect(
        &error(
            "addons/cni/big.yaml",
            1,
            1,
            "file is 10485761 bytes, over the 10 MiB limit",
        )
        .cluster(&["alpha"]),
    );
    r.expect(&error(
        "clusters/big.yaml",
        1,
        1,
        "file is 10485761 bytes, over the 10 MiB limit",
    ));
    assert_eq!(r.errors().len(), 2, "{}", r.text.stderr);
}

/// Nine levels of ten aliases each: 10^9 nodes once expanded, in a few hundred bytes.
fn alias_bomb() -> String {
    let mut bomb = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        let refs = vec![format!("*l{}", i - 1); 10].join(", ");
        bomb.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
    }
    bomb
}

#[test]
fn yaml_alias_bomb() {
    let mut files = base();
    add(&mut files, "clusters/bomb.yaml", &alias_bomb());
    // What aliases add to the configuration passes 250,000 nodes (budget MAX_CONFIG_ALIAS_NODES)
    // at the third alias of line 6 (l5): 123,450 before it, 111,111 each.
    validate(&files).expect_only(&error(
        "clusters/bomb.yaml",
        6,
        15,
        "this alias expands the configuration (fleet.yaml, clusters/, profiles/) past its budget \
         MAX_CONFIG_ALIAS_NODES (250,000 nodes",
    ));
}

#[test]
fn yaml_alias_bomb_in_a_manifest() {
    let mut files = base();
    add(&mut files, "addons/cni/bomb.yaml", &alias_bomb());
    // A manifest has the per-file budget: past 500,000 nodes (MAX_YAML_NODES, anchors counted
    // twice) at the third alias of line 6 (l5).
    validate(&files).expect_only(
        &error(
            "addons/cni/bomb.yaml",
            6,
            20,
            "this alias expands the file past its budget MAX_YAML_NODES (500,000 nodes",
        )
        .cluster(&["alpha"]),
    );
}

#[test]
fn deeply_nested_yaml() {
    let mut files = base();
    let deep = format!("a: {}{}\n", "[".repeat(200), "]".repeat(200));
    add(&mut files, "clusters/deep.yaml", &deep);
    // The root mapping is level 1, so the 128th `[` (column 4 + 127) is one too many.
    validate(&files).expect_only(&error(
        "clusters/deep.yaml",
        1,
        131,
        "nesting deeper than 128 levels",
    ));
}

// ---------------------------------------------------------------------------------------------
// Manifests and patches (found while rendering).

#[test]
fn plaintext_secret_is_a_warning() {
    let mut files = base();
    add(
        &mut files,
        "addons/cni/secret.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData: {password: hunter2}\n",
    );
    let r = validate(&files);
    assert_eq!(r.text.code, 0);
    assert!(r.errors().is_empty(), "{}", r.text.stderr);
    let d = r.expect(
        &error(
            "addons/cni/secret.yaml",
            6,
            7,
            "plaintext `kind: Secret` in the repository",
        )
        .warning()
        .cluster(&["alpha"])
        .help("SealedSecret"),
    );
    assert!(r.text.stderr.contains(": warning: "), "{}", d.text());
    assert!(r.text.stderr.contains(": valid"), "{}", r.text.stderr);
}

#[test]
fn manifest_document_without_kind_or_name() {
    let mut files = base();
    add(
        &mut files,
        "addons/cni/bad.yaml",
        "apiVersion: v1\nmetadata:\n  name: x\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  namespace: y\n",
    );
    let r = validate(&files);
    r.expect(
        &error(
            "addons/cni/bad.yaml",
            1,
            1,
            "manifest document has no `kind`",
        )
        .cluster(&["alpha"]),
    );
    r.expect(
        &error(
            "addons/cni/bad.yaml",
            5,
            1,
            "manifest document has no `metadata.name`",
        )
        .cluster(&["alpha"])
        .help("apiVersion, kind and metadata.name"),
    );
    assert_eq!(r.errors().len(), 2, "{}", r.text.stderr);
}

#[test]
fn duplicate_object_across_two_layers() {
    let mut files = base_with(
        "profiles/base.yaml",
        "    - name: app\n",
        "    - name: extra\n      namespace: kube-system\n      manifests: [addons/extra/*.yaml]\n    - name: app\n",
    );
    add(
        &mut files,
        "addons/extra/dup.yaml",
        "# the same ConfigMap as layer cni\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cni-config\n",
    );
    validate(&files).expect_only(
        &error(
            "addons/extra/dup.yaml",
            2,
            1,
            "ConfigMap/kube-system/cni-config is defined twice: here, by layer `extra`, and at addons/cni/config.yaml:1, by layer `cni`",
        )
        .cluster(&["alpha"]),
    );
}

const PATCH_NO_MATCH: &str = "  patches:
    - target: {kind: KubeadmControlPlan}
      patch:
        - {op: add, path: /metadata/labels/tier, value: gold}
";

#[test]
fn patch_that_matches_no_object() {
    let mut files = base();
    files
        .get_mut("clusters/alpha.yaml")
        .unwrap()
        .push_str(PATCH_NO_MATCH);
    validate(&files).expect_only(
        &error(
            "clusters/alpha.yaml",
            18,
            15,
            "patch `spec.patches[0]` matches no rendered object",
        )
        .cluster(&["alpha"]),
    );
}

#[test]
fn patch_whose_operation_fails() {
    let mut files = base();
    files.get_mut("clusters/alpha.yaml").unwrap().push_str(
        "  patches:
    - target: {kind: KubeadmControlPlane}
      patch:
        - {op: add, path: /metadata/labels/tier, value: gold}
        - {op: replace, path: /spec/nothing/here, value: 1}
",
    );
    // Line 21 is the second operation, the one that fails.
    validate(&files).expect_only(
        &error(
            "clusters/alpha.yaml",
            21,
            11,
            "patch `spec.patches[0]`: `replace /spec/nothing/here` failed on KubeadmControlPlane/alpha/alpha-control-plane",
        )
        .cluster(&["alpha"]),
    );
}

// ---------------------------------------------------------------------------------------------
// Every error at once; nothing written.

/// Errors in five files, found by loading, resolving and rendering.
fn five_broken_files() -> Files {
    let mut files = base_with("fleet.yaml", "v1.34.2", "v1.34");
    // A structural error: alpha is not loaded at all.
    edit(
        &mut files,
        "clusters/alpha.yaml",
        "    replicas: 1\n    machine",
        "    replica: 1\n    machine",
    );
    // A semantic error, and a profile whose layer depends on nothing.
    add(
        &mut files,
        "clusters/beta.yaml",
        &ALPHA.replace("name: alpha", "name: beta").replace(
            "    replicas: 1\n    machine",
            "    replicas: 2\n    machine",
        ),
    );
    edit(
        &mut files,
        "profiles/base.yaml",
        "dependsOn: [cni]",
        "dependsOn: [cnii]",
    );
    // A valid cluster whose manifest refers to an unset variable.
    add(
        &mut files,
        "clusters/gamma.yaml",
        &ALPHA
            .replace("name: alpha", "name: gamma")
            .replace("[base]", "[net]"),
    );
    add(
        &mut files,
        "profiles/net.yaml",
        "apiVersion: cairn.dev/v1alpha1\nkind: ClusterProfile\nmetadata: {name: net}\nspec:\n  layers:\n    - name: net\n      manifests: [addons/net/*.yaml]\n",
    );
    add(
        &mut files,
        "addons/net/cm.yaml",
        &CNI.replace("${CLUSTER_NAME}", "${REGION}"),
    );
    files
}

#[test]
fn every_error_is_reported_in_one_run_sorted_by_file_and_line() {
    let r = validate(&five_broken_files());
    let wants = [
        error("addons/net/cm.yaml", 6, 12, "variable `REGION` is not set").cluster(&["gamma"]),
        error("clusters/alpha.yaml", 10, 5, "unknown field `replica`"),
        error("clusters/beta.yaml", 10, 15, "control-plane replicas is 2").cluster(&["beta"]),
        error("fleet.yaml", 7, 24, "malformed Kubernetes version `v1.34`"),
        error("profiles/base.yaml", 13, 19, "depends on `cnii`").cluster(&["beta"]),
    ];
    let found: Vec<&Diag> = wants.iter().map(|w| r.expect(w)).collect();
    assert_eq!(r.errors().len(), wants.len(), "{}", r.text.stderr);
    // In this order in both outputs (validate_dir checks that the text follows the JSON).
    assert_eq!(found, r.errors());
    assert!(
        r.text
            .stderr
            .contains("5 error(s), 0 warning(s); nothing was written"),
        "{}",
        r.text.stderr
    );
}

#[test]
fn validate_writes_nothing() {
    for files in [base(), five_broken_files()] {
        let dir = write_repo(&files);
        let cwd = tempfile::tempdir().unwrap();
        let before = tree(dir.path());
        for args in [vec!["validate"], vec!["validate", "--output", "json"]] {
            let mut args: Vec<&str> = args;
            args.extend(["--repo", dir.path().to_str().unwrap()]);
            cairn_in(cwd.path(), &args);
        }
        assert_eq!(tree(dir.path()), before, "the repository is unchanged");
        assert_eq!(
            std::fs::read_dir(cwd.path()).unwrap().count(),
            0,
            "nothing is written to the working directory"
        );
    }
}

#[test]
fn render_with_errors_writes_no_bundle() {
    let dir = write_repo(&five_broken_files());
    let repo = dir.path().to_str().unwrap();
    let out = tempfile::tempdir().unwrap();

    // A fresh output directory gets no file.
    let fresh = out.path().join("fresh");
    let run = cairn(["render", "--repo", repo, "--out", fresh.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("nothing was written"), "{}", run.stderr);
    assert!(
        !fresh.exists() || tree(&fresh).is_empty(),
        "files were written: {:?}",
        tree(&fresh).keys().collect::<Vec<_>>()
    );

    // An output directory holding an earlier render is left exactly as it was.
    let old = out.path().join("old");
    write_files(&old, [("gamma/01-bootstrap.yaml", "# earlier render\n")]);
    let run = cairn(["render", "--repo", repo, "--out", old.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(
        tree(&old),
        BTreeMap::from([(
            PathBuf::from("gamma/01-bootstrap.yaml"),
            b"# earlier render\n".to_vec()
        )])
    );

    // And `--out -` prints no object.
    let run = cairn(["render", "--repo", repo, "--out", "-"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(run.stdout, "");
}

#[test]
fn render_unknown_cluster_name() {
    let dir = write_repo(&base());
    let repo = dir.path().to_str().unwrap();
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("out");
    for out_arg in ["-", target.to_str().unwrap()] {
        let run = cairn([
            "render",
            "--repo",
            repo,
            "--cluster",
            "alpah",
            "--out",
            out_arg,
        ]);
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(
            run.stderr
                .contains("error: no cluster named `alpah` in the repository"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains("help: did you mean `alpha`?"),
            "{}",
            run.stderr
        );
        assert_eq!(run.stdout, "");
    }
    assert!(!target.exists() || tree(&target).is_empty());
    // The known name renders.
    let run = cairn(["render", "--repo", repo, "--cluster", "alpha", "--out", "-"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("# cluster: alpha stage: bootstrap"));
}

#[test]
fn machine_sizes_below_what_the_provider_accepts() {
    let vsphere = "    provider: vsphere
    vsphere: {server: vc, datacenter: dc, datastore: ds, network: net, template: t, identitySecret: s}
  controlPlane:
    replicas: 1
    endpoint: {host: 10.0.0.1}
    machine: {cpus: 1, memoryMiB: 4096, diskGiB: 20}";
    let mut files = base_with(
        "clusters/alpha.yaml",
        "    provider: docker\n    docker: {}\n  controlPlane:\n    replicas: 1\n    machine: {}",
        vsphere,
    );
    for (path, text) in files.iter_mut() {
        if path == "clusters/alpha.yaml" {
            *text = text.replace(
                "      machine: {}",
                "      machine: {cpus: 4, memoryMiB: 4096, diskGiB: 20}",
            );
        }
    }
    validate(&files).expect_only(
        &error(
            "clusters/alpha.yaml",
            12,
            21,
            "`cpus` is 1; vsphere machines need at least 2",
        )
        .cluster(&["alpha"]),
    );
}
