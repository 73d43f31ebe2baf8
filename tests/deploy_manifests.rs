//! The manifests in `deploy/` run the controller as `cairn run` expects, grant it only what it
//! needs, and are accepted by a real kube-apiserver, whose RBAC authorizer confirms what the
//! controller's ServiceAccount can and cannot do. The Dockerfile cannot be built here (no
//! container engine), so it is checked as text.

mod env;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cairn::kube_client::DynamicApi;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

const NAMESPACE: &str = "cairn-system";
const NAME: &str = "cairn-controller";
/// The user the ServiceAccount authenticates as.
const SA_USER: &str = "system:serviceaccount:cairn-system:cairn-controller";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The YAML files of `deploy/`, by name.
fn manifest_files() -> Vec<PathBuf> {
    let dir = root().join("deploy");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no YAML file in {}", dir.display());
    files
}

/// Every document of every file of `deploy/`, in apply order (files by name, then as written).
fn documents() -> Vec<Value> {
    let mut docs = Vec::new();
    for file in manifest_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let parsed = cairn::local::crds::parse_multi_doc(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(!parsed.is_empty(), "{} has no document", file.display());
        docs.extend(parsed);
    }
    docs
}

fn describe(obj: &Value) -> String {
    cairn::render::kinds::object_ref(obj)
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    let found: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "want exactly one {kind} {name} in deploy/");
    found[0]
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The value following `flag` in `args`.
fn flag<'a>(args: &[&'a str], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| *a == name)
        .and_then(|i| args.get(i + 1).copied())
}

fn controller_container(docs: &[Value]) -> &Value {
    let containers = &find(docs, "Deployment", NAME)["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers.as_array().map(Vec::len), Some(1), "{containers}");
    &containers[0]
}

/// The volume mounted at the directory holding `path`, and that volume.
fn volume_holding<'a>(docs: &'a [Value], path: &str) -> &'a Value {
    let pod = &find(docs, "Deployment", NAME)["spec"]["template"]["spec"];
    let container = controller_container(docs);
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| {
            let dir = m["mountPath"].as_str().unwrap();
            path == dir || path.starts_with(&format!("{}/", dir.trim_end_matches('/')))
        })
        .unwrap_or_else(|| panic!("nothing is mounted where {path} is"));
    pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap_or_else(|| panic!("volume {} is mounted but not defined", mount["name"]))
}

#[test]
fn the_deployment_runs_cairn_run_as_the_controller_expects() {
    let docs = documents();
    for doc in &docs {
        assert!(
            doc["apiVersion"].is_string() && doc["kind"].is_string(),
            "{doc}"
        );
        let cluster_scoped = matches!(
            doc["kind"].as_str(),
            Some(
                "Namespace"
                    | "ClusterRole"
                    | "ClusterRoleBinding"
                    | "ValidatingAdmissionPolicy"
                    | "ValidatingAdmissionPolicyBinding"
            )
        );
        let namespace = doc["metadata"]["namespace"].as_str();
        if cluster_scoped {
            assert_eq!(namespace, None, "{}", describe(doc));
        } else {
            assert_eq!(namespace, Some(NAMESPACE), "{}", describe(doc));
        }
    }
    // The Namespace goes first: everything else lives in it.
    assert_eq!(docs[0]["kind"], "Namespace");
    assert_eq!(docs[0]["metadata"]["name"], NAMESPACE);
    find(&docs, "ServiceAccount", NAME);

    let deployment = find(&docs, "Deployment", NAME);
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"];
    let labels = &pod["metadata"]["labels"];
    let selector = &deployment["spec"]["selector"]["matchLabels"];
    for (key, value) in selector.as_object().unwrap() {
        assert_eq!(
            &labels[key], value,
            "the selector must match the pod labels"
        );
    }
    let spec = &pod["spec"];
    assert_eq!(spec["serviceAccountName"], NAME);
    assert_eq!(spec["terminationGracePeriodSeconds"], 30);
    assert_ne!(
        spec["automountServiceAccountToken"], false,
        "in-cluster config"
    );

    let c = controller_container(&docs);
    assert_eq!(c["image"], "ghcr.io/acme/cairn:0.1.0");
    assert_eq!(strs(&c["command"]), ["cairn"]);
    let args = strs(&c["args"]);
    assert_eq!(args.first(), Some(&"run"), "{args:?}");
    for wanted in [
        "--leader-elect",
        "--listen",
        "--status-listen",
        "--repo",
        "--branch",
    ] {
        assert!(args.contains(&wanted), "{wanted} missing from {args:?}");
    }
    assert_eq!(flag(&args, "--lease-namespace"), Some(NAMESPACE));
    assert_eq!(flag(&args, "--concurrency"), Some("4"));
    // No --kubeconfig (in-cluster config), no --identity (defaults to $POD_NAME), and
    // credentials never on the command line.
    for absent in ["--kubeconfig", "--identity"] {
        assert!(!args.contains(&absent), "{absent} in {args:?}");
    }
    assert!(
        !args.iter().any(|a| a.contains("token") || a.contains('@')),
        "credentials in argv: {args:?}"
    );

    // The listen port is the container port named http, which the probes and Service use;
    // the status port (/status, /metrics) is the one named metrics, which Prometheus scrapes.
    let port_of = |name: &str| -> u16 {
        let listen = flag(&args, name).unwrap();
        listen.rsplit_once(':').unwrap().1.parse().unwrap()
    };
    let (port, status_port) = (port_of("--listen"), port_of("--status-listen"));
    assert_ne!(
        port, status_port,
        "/status must not be served with the webhooks"
    );
    let ports = c["ports"].as_array().unwrap();
    for (name, number) in [("http", port), ("metrics", status_port)] {
        assert!(
            ports
                .iter()
                .any(|p| p["name"] == name && p["containerPort"] == number),
            "no port named {name} at {number}: {ports:?}"
        );
    }
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert_eq!(get["port"], "http", "{probe}");
    }
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], status_port.to_string());
    assert_eq!(annotations["prometheus.io/path"], "/metrics");

    let env: Vec<&Value> = c["env"].as_array().unwrap().iter().collect();
    let var = |name: &str| {
        *env.iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("env {name} missing"))
    };
    assert_eq!(
        var("POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );

    // Where the state, the webhook secret and the git token are, and what backs them.
    let state = flag(&args, "--state-dir").unwrap();
    assert_eq!(state, "/var/lib/cairn");
    assert!(volume_holding(&docs, state)["emptyDir"].is_object());
    let webhook = flag(&args, "--webhook-secret-file").unwrap();
    assert_eq!(webhook, "/etc/cairn/webhook/secret");
    let secret = &volume_holding(&docs, webhook)["secret"];
    assert_eq!(secret["secretName"], "cairn-webhook");
    assert_eq!(secret["optional"], true);
    let token = var("CAIRN_GIT_TOKEN_FILE")["value"].as_str().unwrap();
    assert_eq!(token, "/etc/cairn/git/token");
    let secret = &volume_holding(&docs, token)["secret"];
    assert_eq!(secret["secretName"], "cairn-git-credentials");
    assert_eq!(secret["optional"], true);
    for mount in c["volumeMounts"].as_array().unwrap() {
        let volume = volume_holding(&docs, mount["mountPath"].as_str().unwrap());
        if volume["secret"].is_object() {
            assert_eq!(mount["readOnly"], true, "{mount}");
        }
    }

    // Hardened: the container or the pod says so, and the container does not undo it.
    let setting = |pointer: &str| {
        c["securityContext"]
            .pointer(pointer)
            .or_else(|| spec["securityContext"].pointer(pointer))
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(setting("/runAsNonRoot"), true);
    assert_eq!(setting("/seccompProfile/type"), "RuntimeDefault");
    let security = &c["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(strs(&security["capabilities"]["drop"]), ["ALL"]);
    assert!(security["capabilities"]["add"].is_null());
    assert_ne!(security["privileged"], true);

    let resources = &c["resources"];
    assert_eq!(resources["limits"]["memory"], "256Mi");
    assert_eq!(resources["requests"]["memory"], "64Mi");
    assert_eq!(resources["requests"]["cpu"], "50m");

    let service = find(&docs, "Service", NAME);
    assert_eq!(service["spec"]["type"], "ClusterIP");
    for (key, value) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&labels[key], value, "the Service must select the pods");
    }
    let service_ports = service["spec"]["ports"].as_array().unwrap();
    assert!(
        service_ports
            .iter()
            .any(|p| p["port"] == 80 && p["targetPort"] == "http"),
        "{service_ports:?}"
    );
    // What an Ingress can reach is the webhooks' port only.
    assert!(
        service_ports
            .iter()
            .all(|p| p["targetPort"] == "http" || p["targetPort"] == port),
        "the Service exposes more than the webhooks: {service_ports:?}"
    );

    let pdb = find(&docs, "PodDisruptionBudget", NAME);
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(&pdb["spec"]["selector"]["matchLabels"], selector);
}

#[test]
fn the_container_args_are_accepted_by_this_build_of_cairn() {
    let docs = documents();
    let args = strs(&controller_container(&docs)["args"]);
    // clap parses and checks every argument in order and stops at `--help` with exit 0: an
    // unknown flag, a bad value or a stray positional before it fails with exit 2.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(&args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cairn {} refuses the Deployment's args:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    // And the check has teeth.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(&args)
        .args(["--no-such-flag", "--help"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
}

/// (kind, namespace, apiGroup, resource, verb) for every grant of a Role or ClusterRole.
type Grant = (String, String, String, String, String);

fn grants(docs: &[Value]) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for doc in docs {
        let kind = doc["kind"].as_str().unwrap_or_default();
        if !matches!(kind, "Role" | "ClusterRole") {
            continue;
        }
        let namespace = doc["metadata"]["namespace"].as_str().unwrap_or_default();
        for rule in doc["rules"].as_array().unwrap() {
            out.extend(expected_grants(
                kind,
                namespace,
                &strs(&rule["apiGroups"]),
                &strs(&rule["resources"]),
                &strs(&rule["verbs"]),
            ));
        }
    }
    out
}

fn expected_grants(
    kind: &str,
    namespace: &str,
    groups: &[&str],
    resources: &[&str],
    verbs: &[&str],
) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for group in groups {
        for resource in resources {
            for verb in verbs {
                out.insert((
                    kind.to_string(),
                    namespace.to_string(),
                    group.to_string(),
                    resource.to_string(),
                    verb.to_string(),
                ));
            }
        }
    }
    out
}

const CAPI_GROUPS: [&str; 7] = [
    "cluster.x-k8s.io",
    "bootstrap.cluster.x-k8s.io",
    "controlplane.cluster.x-k8s.io",
    "infrastructure.cluster.x-k8s.io",
    "addons.cluster.x-k8s.io",
    "ipam.cluster.x-k8s.io",
    "runtime.cluster.x-k8s.io",
];

#[test]
fn the_rbac_is_least_privilege_and_every_rule_says_why() {
    let docs = documents();
    let roles: Vec<&Value> = docs
        .iter()
        .filter(|d| matches!(d["kind"].as_str(), Some("Role" | "ClusterRole")))
        .collect();
    assert!(!roles.is_empty());
    for role in &roles {
        for rule in role["rules"].as_array().unwrap() {
            let groups = strs(&rule["apiGroups"]);
            let resources = strs(&rule["resources"]);
            let verbs = strs(&rule["verbs"]);
            let at = format!("{}: {rule}", describe(role));
            assert!(!groups.is_empty(), "{at}");
            assert!(!groups.contains(&"*"), "wildcard API group in {at}");
            assert!(!verbs.contains(&"*"), "wildcard verb in {at}");
            assert!(rule.get("nonResourceURLs").is_none(), "{at}");
            // `*` resources only in the Cluster API groups, whose every kind cairn manages.
            if resources.contains(&"*") {
                assert!(groups.iter().all(|g| CAPI_GROUPS.contains(g)), "{at}");
            }
            for verb in ["escalate", "bind", "impersonate", "deletecollection"] {
                assert!(!verbs.contains(&verb), "{verb} granted in {at}");
            }
            // RBAC objects are only read (a pivot copies the providers' to its target): a
            // controller that could write them could grant itself anything.
            if groups.contains(&"rbac.authorization.k8s.io") {
                assert!(verbs.iter().all(|v| ["get", "list"].contains(v)), "{at}");
            }
            if resources.contains(&"leases") {
                assert_eq!(role["kind"], "Role", "leases only in a Role: {at}");
                assert_eq!(role["metadata"]["namespace"], NAMESPACE, "{at}");
            }
        }
    }

    // Exactly these grants: widening them is a decision this test makes someone write down.
    // No `watch` (cairn polls), namespaces are never listed, CRDs only read.
    let write = ["get", "list", "create", "update", "patch", "delete"];
    let mut expected = expected_grants("ClusterRole", "", &CAPI_GROUPS, &["*"], &write);
    expected.extend(expected_grants(
        "ClusterRole",
        "",
        &[""],
        &["secrets", "configmaps"],
        &write,
    ));
    expected.extend(expected_grants(
        "ClusterRole",
        "",
        &[""],
        &["namespaces"],
        &["get", "create", "update", "patch", "delete"],
    ));
    expected.extend(expected_grants(
        "ClusterRole",
        "",
        &["apiextensions.k8s.io"],
        &["customresourcedefinitions"],
        &["get", "list"],
    ));
    // A pivot reads the providers' components here to install them in its target.
    let read = ["get", "list"];
    for (group, resources) in [
        ("", &["serviceaccounts", "services"][..]),
        ("apps", &["deployments"]),
        (
            "rbac.authorization.k8s.io",
            &[
                "clusterroles",
                "clusterrolebindings",
                "roles",
                "rolebindings",
            ],
        ),
        (
            "admissionregistration.k8s.io",
            &[
                "mutatingwebhookconfigurations",
                "validatingwebhookconfigurations",
            ],
        ),
        (
            "cert-manager.io",
            &[
                "issuers",
                "clusterissuers",
                "certificates",
                "certificaterequests",
            ],
        ),
        ("acme.cert-manager.io", &["challenges", "orders"]),
        ("clusterctl.cluster.x-k8s.io", &["providers"]),
    ] {
        expected.extend(expected_grants(
            "ClusterRole",
            "",
            &[group],
            resources,
            &read,
        ));
    }
    expected.extend(expected_grants(
        "Role",
        NAMESPACE,
        &["coordination.k8s.io"],
        &["leases"],
        &["get", "create", "update", "patch"],
    ));
    let actual = grants(&docs);
    let extra: Vec<&Grant> = actual.difference(&expected).collect();
    let missing: Vec<&Grant> = expected.difference(&actual).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "RBAC differs from what the controller needs\n  extra: {extra:?}\n  missing: {missing:?}"
    );

    // Each role is bound to the controller's ServiceAccount only, in the right scope.
    let subjects = json!([{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}]);
    for (binding, role) in [
        ("ClusterRoleBinding", "ClusterRole"),
        ("RoleBinding", "Role"),
    ] {
        let b = find(&docs, binding, NAME);
        assert_eq!(b["subjects"], subjects, "{binding}");
        assert_eq!(b["roleRef"]["kind"], role);
        assert_eq!(b["roleRef"]["name"], NAME);
        assert_eq!(b["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
        find(&docs, role, NAME);
    }
    let role_binding = find(&docs, "RoleBinding", NAME);
    assert_eq!(role_binding["metadata"]["namespace"], NAMESPACE);

    // Every rule is explained by the comment right above it.
    for file in manifest_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut previous = "";
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.starts_with("- apiGroups:") {
                assert!(
                    previous.starts_with('#'),
                    "{}:{}: a rule without a comment saying why it exists",
                    file.display(),
                    n + 1
                );
            }
            if !line.is_empty() {
                previous = line;
            }
        }
    }
}

/// The instructions of a Dockerfile, continuation lines joined, comments dropped.
fn instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

#[test]
fn the_dockerfile_builds_the_locked_cairn_binary_into_a_non_root_image() {
    let path = root().join("Dockerfile");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let steps = instructions(&text);
    let froms: Vec<usize> = (0..steps.len())
        .filter(|&i| steps[i].starts_with("FROM "))
        .collect();
    assert!(froms.len() >= 2, "a multi-stage build: {froms:?}");
    assert!(
        steps[froms[0]].starts_with("FROM rust:"),
        "{}",
        steps[froms[0]]
    );
    let build = steps
        .iter()
        .find(|s| s.starts_with("RUN ") && s.contains("cargo build"))
        .expect("a RUN cargo build step");
    let words: Vec<&str> = build.split_whitespace().collect();
    for wanted in ["--release", "--locked"] {
        assert!(words.contains(&wanted), "{wanted} missing: {build}");
    }
    assert_eq!(flag(&words, "--bin"), Some("cairn"), "{build}");

    // The runtime stage: only the binary, a non-root user, cairn as the entrypoint.
    let runtime = &steps[*froms.last().unwrap()..];
    assert!(
        runtime
            .iter()
            .any(|s| s.starts_with("COPY --from=") && s.ends_with(" /usr/local/bin/cairn")),
        "{runtime:?}"
    );
    let user = runtime
        .iter()
        .rev()
        .find_map(|s| s.strip_prefix("USER "))
        .expect("the runtime stage sets USER");
    let uid = user.split(':').next().unwrap().trim();
    assert!(
        !matches!(uid, "0" | "root") && !uid.is_empty(),
        "USER {user}"
    );
    assert!(
        runtime.iter().any(|s| s == r#"ENTRYPOINT ["cairn"]"#),
        "{runtime:?}"
    );
    // The Deployment runs as that same user.
    let docs = documents();
    let pod = &find(&docs, "Deployment", NAME)["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsUser"].to_string(), uid);

    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    let patterns: Vec<&str> = ignore
        .lines()
        .map(|l| l.trim().trim_end_matches('/'))
        .collect();
    for wanted in ["target", ".git", ".cairn"] {
        assert!(patterns.contains(&wanted), ".dockerignore lacks {wanted}");
    }
}

/// One question to the API server's authorizer about the controller's ServiceAccount:
/// may it `verb` a `resource[/subresource][.group]` in `namespace` (or across namespaces)?
async fn can(client: &kube::Client, verb: &str, resource: &str, namespace: Option<&str>) -> bool {
    let (resource, group) = resource.split_once('.').unwrap_or((resource, ""));
    let (resource, subresource) = match resource.split_once('/') {
        Some((resource, sub)) => (resource, Some(sub.to_string())),
        None => (resource, None),
    };
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(SA_USER.to_string()),
            groups: Some(vec![
                "system:serviceaccounts".to_string(),
                format!("system:serviceaccounts:{NAMESPACE}"),
                "system:authenticated".to_string(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.to_string()),
                group: Some(group.to_string()),
                resource: Some(resource.to_string()),
                subresource,
                namespace: namespace.map(str::to_string),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let answer = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap_or_else(|e| panic!("SubjectAccessReview {verb} {resource}: {e}"));
    answer.status.is_some_and(|s| s.allowed)
}

/// (allowed?, verb, resource.group, namespace): what the controller does, and what it must not.
const ACCESS: &[(bool, &str, &str, Option<&str>)] = &[
    (true, "patch", "clusters.cluster.x-k8s.io", Some("prod-1")),
    (true, "patch", "clusters.cluster.x-k8s.io", None),
    (
        true,
        "patch",
        "clusters/status.cluster.x-k8s.io",
        Some("prod-1"),
    ),
    (
        true,
        "update",
        "kubeadmcontrolplanes.controlplane.cluster.x-k8s.io",
        Some("prod-1"),
    ),
    (
        true,
        "create",
        "vspheremachinetemplates.infrastructure.cluster.x-k8s.io",
        Some("prod-1"),
    ),
    (true, "delete", "machines.cluster.x-k8s.io", Some("prod-1")),
    (
        true,
        "list",
        "clusterresourcesets.addons.cluster.x-k8s.io",
        None,
    ),
    (
        true,
        "create",
        "ipaddressclaims.ipam.cluster.x-k8s.io",
        Some("prod-1"),
    ),
    (true, "get", "secrets", Some("prod-1")),
    (true, "create", "secrets", Some(NAMESPACE)),
    (true, "patch", "configmaps", Some("prod-1")),
    (true, "create", "namespaces", None),
    (true, "delete", "namespaces", None),
    (false, "list", "namespaces", None),
    (false, "watch", "secrets", Some("prod-1")),
    (
        true,
        "list",
        "customresourcedefinitions.apiextensions.k8s.io",
        None,
    ),
    (true, "get", "leases.coordination.k8s.io", Some(NAMESPACE)),
    (
        true,
        "create",
        "leases.coordination.k8s.io",
        Some(NAMESPACE),
    ),
    (
        true,
        "update",
        "leases.coordination.k8s.io",
        Some(NAMESPACE),
    ),
    (
        false,
        "update",
        "leases.coordination.k8s.io",
        Some("default"),
    ),
    (
        false,
        "create",
        "leases.coordination.k8s.io",
        Some("kube-system"),
    ),
    (
        false,
        "delete",
        "customresourcedefinitions.apiextensions.k8s.io",
        None,
    ),
    (
        false,
        "create",
        "customresourcedefinitions.apiextensions.k8s.io",
        None,
    ),
    (
        false,
        "create",
        "clusterrolebindings.rbac.authorization.k8s.io",
        None,
    ),
    (
        false,
        "create",
        "rolebindings.rbac.authorization.k8s.io",
        Some("prod-1"),
    ),
    (
        false,
        "escalate",
        "clusterroles.rbac.authorization.k8s.io",
        None,
    ),
    (false, "impersonate", "serviceaccounts", Some("kube-system")),
    (
        false,
        "create",
        "serviceaccounts/token",
        Some("kube-system"),
    ),
    (false, "create", "pods", Some("prod-1")),
    (false, "patch", "deployments.apps", Some(NAMESPACE)),
    (false, "deletecollection", "secrets", Some("prod-1")),
    (false, "delete", "nodes", None),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_api_server_accepts_the_manifests_and_authorizes_exactly_that() {
    let docs = documents();
    let root = tempfile::tempdir().unwrap();
    let server = env::start("mgmt", root.path()).await;
    let client = server.client().await.unwrap();
    let api = DynamicApi::new(client.clone());

    // Namespaced objects cannot be dry-run into a namespace that does not exist (a dry run
    // creates nothing), so the Namespace is created for real first; then every document is
    // dry-run with strict field validation, as `kubectl apply --server-side --dry-run=server`
    // does; then everything is created for real, the stronger check (ClusterIP allocation,
    // RBAC's escalation check on the bindings), which the access checks below need anyway.
    for ns in docs.iter().filter(|d| d["kind"] == "Namespace") {
        api.apply(ns, false, false).await.unwrap();
    }
    let mut refused = Vec::new();
    for doc in &docs {
        if let Err(e) = api.apply(doc, true, false).await {
            refused.push(format!("dry run: {}", cairn::errors::chain(&e)));
        }
    }
    assert!(refused.is_empty(), "refused:\n{}", refused.join("\n"));
    for doc in &docs {
        if let Err(e) = api.apply(doc, false, false).await {
            refused.push(cairn::errors::chain(&e));
        }
    }
    assert!(refused.is_empty(), "refused:\n{}", refused.join("\n"));

    // The server kept what the files say (a dropped field would be a silent misconfiguration).
    let deployment = find(&docs, "Deployment", NAME);
    let live = api.get(deployment).await.unwrap().expect("created");
    let container = &live["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["args"],
        deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    let service = api
        .get(find(&docs, "Service", NAME))
        .await
        .unwrap()
        .expect("created");
    assert!(service["spec"]["clusterIP"].is_string(), "{service}");

    // The pods the Deployment makes pass the restricted Pod Security Standard the Namespace
    // enforces (admission checks Pods, not Deployments, so a Pod is dry-run from the template).
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "cairn-controller-check", "namespace": NAMESPACE,
                     "labels": deployment["spec"]["template"]["metadata"]["labels"]},
        "spec": deployment["spec"]["template"]["spec"],
    });
    api.apply(&pod, true, false).await.unwrap_or_else(|e| {
        panic!(
            "the controller's pod is refused: {}",
            cairn::errors::chain(&e)
        )
    });
    // The checks have teeth: a pod that may escalate, and a misspelt field, are refused.
    pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = json!(true);
    let refusal = cairn::errors::chain(&api.apply(&pod, true, false).await.unwrap_err());
    assert!(refusal.contains("PodSecurity"), "{refusal}");
    let mut misspelt = deployment.clone();
    misspelt["spec"]["replica"] = json!(2);
    let refusal = cairn::errors::chain(&api.apply(&misspelt, true, false).await.unwrap_err());
    assert!(refusal.contains(".spec.replica"), "{refusal}");

    // What the ServiceAccount may do, according to the server's RBAC authorizer. The
    // authorizer sees new bindings through an informer, so wait until it grants what it should
    // (it refuses everything before), then check every answer.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut wrong;
    loop {
        wrong = Vec::new();
        for &(expected, verb, resource, namespace) in ACCESS {
            if can(&client, verb, resource, namespace).await != expected {
                let ns = namespace.unwrap_or("(all namespaces)");
                let want = if expected { "can" } else { "cannot" };
                wrong.push(format!("want {want} {verb} {resource} in {ns}"));
            }
        }
        if wrong.is_empty() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        wrong.is_empty(),
        "{SA_USER}, by the API server's authorizer:\n{}",
        wrong.join("\n")
    );
}
