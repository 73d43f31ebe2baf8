//! Semantic validation (DESIGN.md §1) and resolution of each cluster's effective settings.
//!
//! Structural problems were found while loading; here come the rules that need the whole repo:
//! names, versions, provider blocks, profiles, layers and their dependencies, variables.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::diag::{Diagnostic, did_you_mean};
use super::load::{LoadedRepo, Located};
use super::types::{Cluster, ClusterProfile, Fleet, Layer, Machine, Provider};
use super::yaml::escape_token;

/// Longest cluster name: CAPI derives object and label values from it.
pub const MAX_CLUSTER_NAME: usize = 40;

/// A layer of one of a cluster's profiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LayerRef {
    pub profile: usize,
    pub layer: usize,
}

/// A valid cluster with everything defaulted and ordered.
#[derive(Clone, Debug)]
pub struct ResolvedCluster<'a> {
    pub source: &'a Located<Cluster>,
    pub name: &'a str,
    pub kubernetes_version: String,
    pub pivot: bool,
    /// The cluster's profiles, in its order; `LayerRef::profile` indexes this list.
    pub profiles: Vec<&'a Located<ClusterProfile>>,
    /// Layers in dependency order (stable: declaration order breaks ties).
    pub layers: Vec<LayerRef>,
    /// Profile defaults, then cluster values, then the built-ins.
    pub variables: BTreeMap<String, String>,
}

impl ResolvedCluster<'_> {
    pub fn cluster(&self) -> &Cluster {
        &self.source.doc
    }
}

/// The repository's clusters, resolved, with every problem found on the way.
pub fn resolve(repo: &LoadedRepo) -> (Vec<ResolvedCluster<'_>>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    if let Some(fleet) = &repo.fleet {
        check_fleet(fleet, &mut diags);
    }
    let profiles = index_profiles(&repo.profiles, &mut diags);
    let mut seen: HashMap<&str, &Located<Cluster>> = HashMap::new();
    let mut resolved = Vec::new();
    for cluster in &repo.clusters {
        let name = cluster.doc.metadata.name.as_str();
        if let Some(first) = seen.get(name) {
            diags.push(
                cluster
                    .error("/metadata/name", format!("duplicate cluster name `{name}`"))
                    .cluster(name)
                    .help(format!(
                        "it is already defined at {}:{}; cluster names must be unique in the repository",
                        first.file,
                        first.pos("/metadata/name").line
                    )),
            );
            continue;
        }
        seen.insert(name, cluster);
        let before = diags.len();
        let r = resolve_cluster(cluster, repo.fleet.as_ref(), &profiles, &mut diags);
        for d in &mut diags[before..] {
            if d.clusters.is_empty() {
                d.clusters.push(name.to_string());
            }
        }
        resolved.extend(r);
    }
    (resolved, diags)
}

/// Profiles by name; duplicates and bad layer definitions are reported here, once.
fn index_profiles<'a>(
    profiles: &'a [Located<ClusterProfile>],
    diags: &mut Vec<Diagnostic>,
) -> BTreeMap<&'a str, &'a Located<ClusterProfile>> {
    let mut index: BTreeMap<&str, &Located<ClusterProfile>> = BTreeMap::new();
    for p in profiles {
        let name = p.doc.metadata.name.as_str();
        if let Some(first) = index.get(name) {
            diags.push(
                p.error("/metadata/name", format!("duplicate profile name `{name}`"))
                    .help(format!(
                        "it is already defined in {}; profile names must be unique",
                        first.file
                    )),
            );
            continue;
        }
        check_dns_label(p, "/metadata/name", "profile name", name, 63, diags);
        check_profile_layers(p, diags);
        index.insert(name, p);
    }
    index
}

fn check_profile_layers(p: &Located<ClusterProfile>, diags: &mut Vec<Diagnostic>) {
    let mut names = HashSet::new();
    for (i, layer) in p.doc.spec.layers.iter().enumerate() {
        let at = format!("/spec/layers/{i}");
        if !names.insert(layer.name.as_str()) {
            diags.push(p.error(
                &format!("{at}/name"),
                format!("duplicate layer name `{}` in this profile", layer.name),
            ));
        }
        check_dns_label(
            p,
            &format!("{at}/name"),
            "layer name",
            &layer.name,
            63,
            diags,
        );
        if let Some(ns) = &layer.namespace {
            check_dns_label(p, &format!("{at}/namespace"), "namespace", ns, 63, diags);
        }
        if let Some(account) = &layer.service_account_name {
            check_service_account(p, &at, layer, account, diags);
        }
        if layer.manifests.is_empty() && layer.inline.is_none() {
            diags.push(
                p.error(
                    &at,
                    format!("layer `{}` has no manifests and no inline", layer.name),
                )
                .help("add `manifests:` globs or an `inline:` manifest"),
            );
        }
        for (j, glob) in layer.manifests.iter().enumerate() {
            if let Err(msg) = check_repo_glob(glob) {
                diags.push(p.error(&format!("{at}/manifests/{j}"), msg));
            }
        }
    }
}

/// A manifest glob must be repository-relative and must not climb out of the repository.
pub fn check_repo_glob(glob: &str) -> Result<(), String> {
    if glob.starts_with('/') || glob.starts_with('\\') || glob.contains(':') {
        return Err(format!(
            "manifest path `{glob}` is absolute; paths are relative to the repository root"
        ));
    }
    if glob.split(['/', '\\']).any(|part| part == "..") {
        return Err(format!(
            "manifest path `{glob}` leaves the repository (`..`)"
        ));
    }
    globset::Glob::new(glob)
        .map(|_| ())
        .map_err(|e| format!("manifest path `{glob}` is not a valid glob: {e}"))
}

fn check_fleet(fleet: &Located<Fleet>, diags: &mut Vec<Diagnostic>) {
    super::providers::check_providers(fleet, diags);
    if let Some(v) = &fleet.doc.spec.defaults.kubernetes_version {
        check_version(fleet, "/spec/defaults/kubernetesVersion", v, diags);
    }
    if let Some(agent) = &fleet.doc.spec.agent {
        if agent.image.trim().is_empty() {
            diags.push(fleet.error("/spec/agent/image", "agent image must not be empty"));
        }
    }
    if let Some(source) = &fleet.doc.spec.source {
        let url = source.url.as_str();
        let known = ["https://", "http://", "ssh://", "file://", "git@"];
        if !known.iter().any(|p| url.starts_with(p)) {
            diags.push(
                fleet
                    .error(
                        "/spec/source/url",
                        format!("source url `{url}` is not a git URL"),
                    )
                    .help("use https://, ssh://, git@host:path or file://"),
            );
        }
    }
}

fn resolve_cluster<'a>(
    c: &'a Located<Cluster>,
    fleet: Option<&Located<Fleet>>,
    profiles: &BTreeMap<&str, &'a Located<ClusterProfile>>,
    diags: &mut Vec<Diagnostic>,
) -> Option<ResolvedCluster<'a>> {
    let before = diags.len();
    let spec = &c.doc.spec;
    check_dns_label(
        c,
        "/metadata/name",
        "cluster name",
        &c.doc.metadata.name,
        MAX_CLUSTER_NAME,
        diags,
    );
    if let Some(why) = reserved_namespace(&c.doc.metadata.name) {
        diags.push(
            c.error(
                "/metadata/name",
                format!("cluster name `{}` {why}", c.doc.metadata.name),
            )
            .help("a cluster's CAPI objects live in a namespace of its name, which cairn creates and deletes with it: pick another name"),
        );
    }
    let defaults = fleet.map(|f| &f.doc.spec.defaults);
    let version = match (
        &spec.kubernetes_version,
        defaults.and_then(|d| d.kubernetes_version.as_ref()),
    ) {
        (Some(v), _) => {
            check_version(c, "/spec/kubernetesVersion", v, diags);
            v.clone()
        }
        (None, Some(v)) => v.clone(),
        (None, None) => {
            diags.push(
                Diagnostic::error(
                    &c.file,
                    c.key_pos("/spec"),
                    "no kubernetesVersion: the cluster names none and fleet.yaml has no default",
                )
                .help(
                    "set spec.kubernetesVersion, or spec.defaults.kubernetesVersion in fleet.yaml",
                ),
            );
            String::new()
        }
    };
    let pivot = spec
        .pivot
        .or(defaults.and_then(|d| d.pivot))
        .unwrap_or(true);
    if pivot {
        check_pivot_settings(c, fleet, diags);
    }
    check_infrastructure(c, diags);
    super::providers::check_cluster_provider(c, fleet, diags);
    check_workers(c, diags);
    check_patches(c, diags);
    let used = used_profiles(c, profiles, diags);
    let layers = order_layers(c, &used, diags);
    let mut variables = effective_variables(c, &used, diags);
    variables.insert("KUBERNETES_VERSION".into(), version.clone());
    (diags.len() == before).then(|| ResolvedCluster {
        source: c,
        name: &c.doc.metadata.name,
        kubernetes_version: version,
        pivot,
        profiles: used,
        layers: layers.unwrap_or_default(),
        variables,
    })
}

fn check_pivot_settings(
    c: &Located<Cluster>,
    fleet: Option<&Located<Fleet>>,
    diags: &mut Vec<Diagnostic>,
) {
    let at = if c.doc.spec.pivot.is_some() {
        "/spec/pivot"
    } else {
        "/metadata/name"
    };
    let spec = fleet.map(|f| &f.doc.spec);
    if spec.and_then(|s| s.agent.as_ref()).is_none() {
        diags.push(
            c.error(at, "the cluster pivots, but fleet.yaml sets no `spec.agent.image` for the in-cluster agent")
                .help("set spec.agent.image in fleet.yaml, or `pivot: false` on the cluster"),
        );
    }
    if spec.and_then(|s| s.source.as_ref()).is_none() {
        diags.push(
            c.error(at, "the cluster pivots, but fleet.yaml sets no `spec.source` for the agent to read git from")
                .help("set spec.source.url (and branch) in fleet.yaml, or `pivot: false` on the cluster"),
        );
    }
}

fn check_infrastructure(c: &Located<Cluster>, diags: &mut Vec<Diagnostic>) {
    let infra = &c.doc.spec.infrastructure;
    let provider = infra.provider;
    let blocks = [
        (Provider::Vsphere, infra.vsphere.is_some()),
        (Provider::Aws, infra.aws.is_some()),
        (Provider::Docker, infra.docker.is_some()),
    ];
    for (p, present) in blocks {
        if p == provider && !present {
            diags.push(
                c.error(
                    "/spec/infrastructure/provider",
                    format!(
                        "provider is `{}` but there is no `infrastructure.{}` block",
                        p.as_str(),
                        p.as_str()
                    ),
                )
                .help(format!(
                    "add `{}:` with the provider settings under spec.infrastructure",
                    p.as_str()
                )),
            );
        } else if p != provider && present {
            diags.push(
                Diagnostic::error(
                    &c.file,
                    c.key_pos(&format!("/spec/infrastructure/{}", p.as_str())),
                    format!(
                        "`infrastructure.{}` does not match provider `{}`",
                        p.as_str(),
                        provider.as_str()
                    ),
                )
                .help(format!(
                    "remove this block, or set `provider: {}`",
                    p.as_str()
                )),
            );
        }
    }
    let cp = &c.doc.spec.control_plane;
    if ![1, 3, 5, 7].contains(&cp.replicas) {
        diags.push(
            c.error(
                "/spec/controlPlane/replicas",
                format!(
                    "control-plane replicas is {}; it must be 1, 3, 5 or 7",
                    cp.replicas
                ),
            )
            .help("etcd needs an odd number of members for quorum"),
        );
    }
    if provider == Provider::Vsphere && cp.endpoint.is_none() {
        diags.push(
            Diagnostic::error(
                &c.file,
                c.key_pos("/spec/controlPlane"),
                "vsphere clusters need `controlPlane.endpoint` (a virtual IP for the API server)",
            )
            .help("add `endpoint: {host: <ip>, port: 6443}` under spec.controlPlane"),
        );
    }
    if let Some(endpoint) = &cp.endpoint {
        if endpoint.host.trim().is_empty() {
            diags.push(c.error(
                "/spec/controlPlane/endpoint/host",
                "endpoint host must not be empty",
            ));
        }
    }
    check_machine(c, "/spec/controlPlane/machine", &cp.machine, diags);
}

/// Which machine fields a provider requires, and which it accepts.
fn machine_fields(provider: Provider) -> (&'static [&'static str], &'static [&'static str]) {
    match provider {
        Provider::Vsphere => (
            &["cpus", "memoryMiB", "diskGiB"],
            &["cpus", "memoryMiB", "diskGiB", "template"],
        ),
        Provider::Aws => (&["instanceType"], &["instanceType", "rootVolumeGiB", "ami"]),
        Provider::Docker => (&[], &["customImage"]),
    }
}

fn check_machine(c: &Located<Cluster>, at: &str, machine: &Machine, diags: &mut Vec<Diagnostic>) {
    let provider = c.doc.spec.infrastructure.provider;
    let (required, allowed) = machine_fields(provider);
    let present = serde_json::to_value(machine).unwrap_or_default();
    let present = present.as_object().cloned().unwrap_or_default();
    let missing: Vec<String> = required
        .iter()
        .filter(|f| !present.contains_key(**f))
        .map(|f| format!("`{f}`"))
        .collect();
    if !missing.is_empty() {
        diags.push(
            Diagnostic::error(
                &c.file,
                c.key_pos(at),
                format!(
                    "{} machines need {}; {} has no {}",
                    provider.as_str(),
                    required
                        .iter()
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    super::schema::dotted(at),
                    missing.join(", ")
                ),
            )
            .help(format!(
                "add {} to {}",
                missing.join(", "),
                super::schema::dotted(at)
            )),
        );
    }
    for field in present.keys() {
        if !allowed.contains(&field.as_str()) {
            diags.push(
                Diagnostic::error(
                    &c.file,
                    c.key_pos(&format!("{at}/{field}")),
                    format!("`{field}` is not a {} machine field", provider.as_str()),
                )
                .help(format!(
                    "{} machines take: {}",
                    provider.as_str(),
                    allowed.join(", ")
                )),
            );
        }
    }
    // The smallest values the providers' CRDs accept (CAPV: numCPUs >= 2; CAPA: root volume
    // >= 8 GiB), caught here so they never reach an API server.
    let minimums = [
        ("cpus", machine.cpus, 2),
        ("memoryMiB", machine.memory_mib, 1),
        ("diskGiB", machine.disk_gib, 1),
        ("rootVolumeGiB", machine.root_volume_gib, 8),
    ];
    for (field, value, min) in minimums {
        if let Some(v) = value.filter(|v| *v < min) {
            diags.push(c.error(
                &format!("{at}/{field}"),
                format!(
                    "`{field}` is {v}; {} machines need at least {min}",
                    provider.as_str()
                ),
            ));
        }
    }
}

fn check_workers(c: &Located<Cluster>, diags: &mut Vec<Diagnostic>) {
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, w) in c.doc.spec.workers.iter().enumerate() {
        let at = format!("/spec/workers/{i}");
        check_dns_label(
            c,
            &format!("{at}/name"),
            "worker pool name",
            &w.name,
            63,
            diags,
        );
        if let Some(first) = names.insert(&w.name, i) {
            diags.push(c.error(
                &format!("{at}/name"),
                format!(
                    "duplicate worker pool name `{}` (also workers[{first}])",
                    w.name
                ),
            ));
        }
        check_machine(c, &format!("{at}/machine"), &w.machine, diags);
    }
}

fn check_patches(c: &Located<Cluster>, diags: &mut Vec<Diagnostic>) {
    for (i, p) in c.doc.spec.patches.iter().enumerate() {
        for (j, op) in p.patch.iter().enumerate() {
            let at = format!("/spec/patches/{i}/patch/{j}");
            if !op.path.is_empty() && !op.path.starts_with('/') {
                diags.push(c.error(
                    &format!("{at}/path"),
                    format!(
                        "patch path `{}` must be a JSON pointer starting with `/`",
                        op.path
                    ),
                ));
            }
            use super::types::PatchOp::*;
            let needs_value = matches!(op.op, Add | Replace | Test);
            let needs_from = matches!(op.op, Move | Copy);
            if needs_value && op.value.is_none() {
                diags.push(c.error(
                    &at,
                    format!("`{:?}` operation needs a `value`", op.op).to_lowercase(),
                ));
            }
            if needs_from && op.from.is_none() {
                diags.push(c.error(
                    &at,
                    format!("`{:?}` operation needs a `from`", op.op).to_lowercase(),
                ));
            }
        }
    }
}

/// The cluster's profiles, in its order, reporting unknown and repeated names.
fn used_profiles<'a>(
    c: &Located<Cluster>,
    profiles: &BTreeMap<&str, &'a Located<ClusterProfile>>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<&'a Located<ClusterProfile>> {
    let mut used = Vec::new();
    let mut seen = HashSet::new();
    for (i, name) in c.doc.spec.profiles.iter().enumerate() {
        let at = format!("/spec/profiles/{i}");
        if !seen.insert(name.as_str()) {
            diags.push(c.error(&at, format!("profile `{name}` is listed twice")));
            continue;
        }
        match profiles.get(name.as_str()) {
            Some(p) => used.push(*p),
            None => {
                let help = match did_you_mean(name, profiles.keys().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None if profiles.is_empty() => {
                        "no ClusterProfile is defined under profiles/".into()
                    }
                    None => format!(
                        "defined profiles: {}",
                        profiles.keys().copied().collect::<Vec<_>>().join(", ")
                    ),
                };
                diags.push(c.error(&at, format!("unknown profile `{name}`")).help(help));
            }
        }
    }
    used
}

/// Orders the layers of the used profiles by `dependsOn`, declaration order breaking ties.
fn order_layers(
    c: &Located<Cluster>,
    used: &[&Located<ClusterProfile>],
    diags: &mut Vec<Diagnostic>,
) -> Option<Vec<LayerRef>> {
    let all: Vec<(LayerRef, &Layer)> = used
        .iter()
        .enumerate()
        .flat_map(|(pi, p)| {
            p.doc.spec.layers.iter().enumerate().map(move |(li, l)| {
                (
                    LayerRef {
                        profile: pi,
                        layer: li,
                    },
                    l,
                )
            })
        })
        .collect();
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    let mut ok = true;
    for (idx, (r, layer)) in all.iter().enumerate() {
        if let Some(first) = by_name.insert(&layer.name, idx) {
            let first_profile = &used[all[first].0.profile].doc.metadata.name;
            let profile = used[r.profile];
            diags.push(
                profile
                    .error(
                        &format!("/spec/layers/{}/name", r.layer),
                        format!(
                            "layer `{}` is also defined by profile `{first_profile}`",
                            layer.name
                        ),
                    )
                    .cluster(c.doc.metadata.name.clone())
                    .help("layer names must be unique among all layers of a cluster's profiles"),
            );
            ok = false;
        }
    }
    // Edges: dependency -> dependent.
    let mut deps: Vec<Vec<usize>> = vec![Vec::new(); all.len()];
    for (idx, (r, layer)) in all.iter().enumerate() {
        for (k, dep) in layer.depends_on.iter().enumerate() {
            match by_name.get(dep.as_str()) {
                Some(&d) if layer.bootstrap && !all[d].1.bootstrap => {
                    diags.push(
                        used[r.profile]
                            .error(&format!("/spec/layers/{}/dependsOn/{k}", r.layer), format!(
                                "bootstrap layer `{}` depends on `{dep}`, which is not a bootstrap layer",
                                layer.name
                            ))
                            .cluster(c.doc.metadata.name.clone())
                            .help(format!(
                                "bootstrap layers are applied before the nodes are Ready, and other layers \
                                 only after: mark `{dep}` `bootstrap: true` too, or drop the dependency"
                            )),
                    );
                    ok = false;
                }
                Some(&d) => deps[idx].push(d),
                None => {
                    let profile = used[r.profile];
                    let help = match did_you_mean(dep, by_name.keys().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => "dependsOn names layers of the cluster's profiles".into(),
                    };
                    diags.push(
                        profile
                            .error(&format!("/spec/layers/{}/dependsOn/{k}", r.layer), format!(
                                "layer `{}` depends on `{dep}`, which no profile of the cluster defines",
                                layer.name
                            ))
                            .cluster(c.doc.metadata.name.clone())
                            .help(help),
                    );
                    ok = false;
                }
            }
        }
    }
    if !ok {
        return None;
    }
    match topo_order(&deps) {
        Ok(mut order) => {
            // Bootstrap layers first: they depend on no other kind, so this keeps the order valid.
            order.sort_by_key(|&i| !all[i].1.bootstrap);
            Some(order.into_iter().map(|i| all[i].0).collect())
        }
        Err(cycle) => {
            let names: Vec<&str> = cycle.iter().map(|&i| all[i].1.name.as_str()).collect();
            let (r, _) = all[cycle[0]];
            let profile = used[r.profile];
            diags.push(
                profile
                    .error(
                        &format!("/spec/layers/{}/dependsOn", r.layer),
                        format!("dependency cycle: {} -> {}", names.join(" -> "), names[0]),
                    )
                    .cluster(c.doc.metadata.name.clone())
                    .help("remove one of these dependsOn entries"),
            );
            None
        }
    }
}

/// Stable topological order of nodes whose `deps[i]` must come before `i`; on a cycle, the
/// nodes of one cycle in dependency order.
pub fn topo_order(deps: &[Vec<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    let n = deps.len();
    let mut placed = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while order.len() < n {
        // The first node (in declaration order) whose dependencies are all placed.
        let next = (0..n).find(|&i| !placed[i] && deps[i].iter().all(|&d| placed[d]));
        match next {
            Some(i) => {
                placed[i] = true;
                order.push(i);
            }
            None => return Err(find_cycle(deps, &placed)),
        }
    }
    Ok(order)
}

fn find_cycle(deps: &[Vec<usize>], placed: &[bool]) -> Vec<usize> {
    // Every unplaced node has an unplaced dependency; walking them must revisit a node.
    let start = (0..deps.len()).find(|&i| !placed[i]).unwrap_or(0);
    let mut path = vec![start];
    let mut current = start;
    loop {
        let Some(&next) = deps[current].iter().find(|&&d| !placed[d]) else {
            return path;
        };
        if let Some(pos) = path.iter().position(|&p| p == next) {
            let mut cycle = path[pos..].to_vec();
            cycle.reverse();
            return cycle;
        }
        path.push(next);
        current = next;
    }
}

fn effective_variables(
    c: &Located<Cluster>,
    used: &[&Located<ClusterProfile>],
    diags: &mut Vec<Diagnostic>,
) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for p in used {
        for (name, spec) in &p.doc.spec.variables {
            if let Some(default) = &spec.default {
                vars.insert(name.clone(), default.clone());
            }
        }
    }
    for (name, value) in &c.doc.spec.variables {
        if !is_variable_name(name) {
            diags.push(Diagnostic::error(&c.file, c.key_pos(&format!("/spec/variables/{}", escape_token(name))), format!(
                "variable name `{name}` must be letters, digits and underscores, not starting with a digit"
            )));
        }
        vars.insert(name.clone(), value.clone());
    }
    for (i, p) in used.iter().enumerate() {
        for (name, spec) in &p.doc.spec.variables {
            if spec.default.is_none() && !c.doc.spec.variables.contains_key(name) {
                diags.push(
                    c.error(&format!("/spec/profiles/{i}"), format!(
                        "profile `{}` requires variable `{name}`, which has no default and is not set",
                        p.doc.metadata.name
                    ))
                    .help(format!("set spec.variables.{name} on this cluster")),
                );
            }
        }
    }
    let spec = &c.doc.spec;
    let builtins = [
        ("CLUSTER_NAME", c.doc.metadata.name.clone()),
        ("CLUSTER_NAMESPACE", c.doc.metadata.name.clone()),
        (
            "PROVIDER",
            spec.infrastructure.provider.as_str().to_string(),
        ),
    ];
    for (k, v) in builtins {
        vars.insert(k.to_string(), v);
    }
    vars
}

pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn check_version<T>(doc: &Located<T>, at: &str, v: &str, diags: &mut Vec<Diagnostic>) {
    if !is_version(v) {
        diags.push(
            doc.error(at, format!("malformed Kubernetes version `{v}`"))
                .help("write it as vMAJOR.MINOR.PATCH, e.g. v1.34.2"),
        );
    }
}

/// `vMAJOR.MINOR.PATCH` with plain decimal numbers.
pub fn is_version(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('v') else {
        return false;
    };
    let parts: Vec<&str> = rest.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 6 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// A layer's `serviceAccountName`: a DNS subdomain, in the namespace the layer names (a
/// ServiceAccount lives in a namespace, and impersonation names both).
fn check_service_account(
    p: &Located<ClusterProfile>,
    at: &str,
    layer: &Layer,
    account: &str,
    diags: &mut Vec<Diagnostic>,
) {
    let field = format!("{at}/serviceAccountName");
    if let Err(why) = dns_subdomain(account, 253) {
        diags.push(
            p.error(&field, format!("serviceAccountName `{account}` {why}"))
                .help("name the ServiceAccount as Kubernetes does (lowercase, digits, '-', '.')"),
        );
    }
    if layer.namespace.is_none() {
        diags.push(
            p.error(
                &field,
                format!(
                    "layer `{}` names serviceAccountName `{account}` but no namespace for it",
                    layer.name
                ),
            )
            .help("set the layer's `namespace:` to the namespace the ServiceAccount is in"),
        );
    }
}

fn check_dns_label<T>(
    doc: &Located<T>,
    at: &str,
    what: &str,
    name: &str,
    max: usize,
    diags: &mut Vec<Diagnostic>,
) {
    if let Err(why) = dns_label(name, max) {
        let help = if name.len() > max {
            format!("shorten it to at most {max} characters")
        } else {
            "use lowercase letters, digits and '-', starting and ending with a letter or digit"
                .to_string()
        };
        diags.push(doc.error(at, format!("{what} `{name}` {why}")).help(help));
    }
}

/// Why `name` cannot be a cluster's namespace: Kubernetes' own, cairn's, and the namespaces
/// providers and cert-manager install into.
pub fn reserved_namespace(name: &str) -> Option<&'static str> {
    if name.starts_with("kube-") || name == "default" {
        Some("is a namespace Kubernetes reserves")
    } else if name.ends_with("-system") {
        Some("ends in -system, like the namespaces of cairn and the CAPI providers")
    } else if name == "cert-manager" {
        Some("is cert-manager's namespace")
    } else {
        None
    }
}

/// Not empty and at most `max` characters.
fn check_length(name: &str, max: usize) -> Result<(), String> {
    if name.is_empty() {
        return Err("is empty".into());
    }
    if name.len() > max {
        return Err(format!(
            "is {} characters long; the limit is {max}",
            name.len()
        ));
    }
    Ok(())
}

/// A DNS-1123 label of at most `max` characters.
pub fn dns_label(name: &str, max: usize) -> Result<(), String> {
    check_length(name, max)?;
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let ok_ends = !name.starts_with('-') && !name.ends_with('-');
    if ok_chars && ok_ends {
        Ok(())
    } else {
        Err("is not a DNS-1123 label (lowercase letters, digits and '-')".into())
    }
}

/// A DNS-1123 subdomain of at most `max` characters: DNS labels joined by dots, as most
/// Kubernetes object names and API groups are.
pub fn dns_subdomain(name: &str, max: usize) -> Result<(), String> {
    check_length(name, max)?;
    if name.split('.').all(|label| dns_label(label, 63).is_ok()) {
        Ok(())
    } else {
        Err("is not a DNS-1123 subdomain (lowercase letters, digits, '-' and '.')".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains() {
        assert!(dns_subdomain("cluster.x-k8s.io", 253).is_ok());
        assert!(dns_subdomain("prod-1", 253).is_ok());
        for bad in ["", "a..b", ".a", "a.", "A.b", "a_b", "a/b"] {
            assert!(dns_subdomain(bad, 253).is_err(), "{bad}");
        }
        assert!(dns_subdomain(&"a".repeat(254), 253).is_err());
    }

    #[test]
    fn topological_order_is_stable_and_finds_cycles() {
        // 0 depends on 2; 1 free; 2 free.
        assert_eq!(topo_order(&[vec![2], vec![], vec![]]), Ok(vec![1, 2, 0]));
        let cycle = topo_order(&[vec![1], vec![2], vec![0], vec![]]).unwrap_err();
        assert_eq!(cycle.len(), 3);
    }

    #[test]
    fn versions_and_labels() {
        assert!(is_version("v1.34.2"));
        for bad in ["1.34.2", "v1.34", "v1.34.x", "v1..2", "v1.34.2-rc.1"] {
            assert!(!is_version(bad), "{bad}");
        }
        assert!(dns_label("prod-1", 40).is_ok());
        assert!(dns_label("Prod", 40).is_err());
        assert!(dns_label("-a", 40).is_err());
        assert!(dns_label(&"a".repeat(41), 40).is_err());
    }

    #[test]
    fn globs_stay_inside_the_repo() {
        assert!(check_repo_glob("addons/**/*.yaml").is_ok());
        assert!(check_repo_glob("../x.yaml").is_err());
        assert!(check_repo_glob("/etc/passwd").is_err());
        assert!(check_repo_glob("a/[.yaml").is_err());
    }
}
