//! The fleet's providers (fleet.yaml `spec.providers`, DESIGN.md §1): what `clusterctl init`
//! would install, declared. Each is a provider cairn renders clusters for, once, at a release
//! version, with components inside the repository; and every cluster's infrastructure provider
//! is among them.

use std::collections::HashSet;

use super::diag::{Diagnostic, did_you_mean};
use super::load::Located;
use super::types::{Cluster, Fleet, ProviderVersion, Providers};
use super::validate::{check_repo_glob, is_version};

/// The kinds of provider, where they are in `spec.providers`, and the names cairn knows.
const KINDS: [(&str, &str, &[&str]); 4] = [
    ("core", "core", &["cluster-api"]),
    ("bootstrap", "bootstrap", &["kubeadm"]),
    ("control-plane", "controlPlane", &["kubeadm"]),
    (
        "infrastructure",
        "infrastructure",
        &["vsphere", "aws", "docker"],
    ),
];

/// A release tag: `vMAJOR.MINOR.PATCH`, with an optional pre-release (`-rc.1`).
fn is_release(version: &str) -> bool {
    let (core, pre) = version.split_once('-').unwrap_or((version, "x"));
    is_version(core) && !pre.is_empty()
}

/// The declared providers of one kind, with their JSON pointers.
fn of_kind<'a>(providers: &'a Providers, field: &str) -> Vec<(String, &'a ProviderVersion)> {
    let at = format!("/spec/providers/{field}");
    match field {
        "core" => providers.core.iter().map(|p| (at.clone(), p)).collect(),
        _ => {
            let list = match field {
                "bootstrap" => &providers.bootstrap,
                "controlPlane" => &providers.control_plane,
                _ => &providers.infrastructure,
            };
            (list.iter().enumerate())
                .map(|(i, p)| (format!("{at}/{i}"), p))
                .collect()
        }
    }
}

/// Checks `spec.providers` of fleet.yaml, when it is there.
pub fn check_providers(fleet: &Located<Fleet>, diags: &mut Vec<Diagnostic>) {
    let Some(providers) = &fleet.doc.spec.providers else {
        return;
    };
    for (kind, field, known) in KINDS {
        let declared = of_kind(providers, field);
        if declared.is_empty() {
            let example = format!("{{name: {}, version: v1.14.2}}", known[0]);
            diags.push(
                fleet
                    .error(
                        "/spec/providers",
                        format!("spec.providers declares no {kind} provider"),
                    )
                    .help(format!(
                        "add `{field}: {}` (the version the management cluster runs)",
                        if field == "core" {
                            example
                        } else {
                            format!("[{example}]")
                        }
                    )),
            );
        }
        let mut seen = HashSet::new();
        for (at, provider) in declared {
            check_provider(fleet, &at, kind, known, provider, &mut seen, diags);
        }
    }
    match &providers.cert_manager {
        Some(cm) if !is_release(&cm.version) => diags.push(malformed(
            fleet,
            "/spec/providers/certManager/version",
            &cm.version,
        )),
        Some(_) => {}
        None => diags.push(
            Diagnostic::warning(
                &fleet.file,
                fleet.key_pos("/spec/providers"),
                "spec.providers names no certManager: the Cluster API webhooks need its \
                 certificates, so a workload cluster must get cert-manager some other way",
            )
            .help(
                "add `certManager: {version: v1.21.1}` (the version the management cluster runs)",
            ),
        ),
    }
}

fn check_provider(
    fleet: &Located<Fleet>,
    at: &str,
    kind: &str,
    known: &[&str],
    provider: &ProviderVersion,
    seen: &mut HashSet<String>,
    diags: &mut Vec<Diagnostic>,
) {
    let name = provider.name.as_str();
    if !known.contains(&name) {
        let hint = match did_you_mean(name, known.iter().copied()) {
            Some(m) => format!("did you mean `{m}`?"),
            None => format!("cairn renders clusters for: {}", known.join(", ")),
        };
        diags.push(
            fleet
                .error(
                    &format!("{at}/name"),
                    format!("unknown {kind} provider `{name}`"),
                )
                .help(hint),
        );
    } else if !seen.insert(name.to_string()) {
        diags.push(fleet.error(
            &format!("{at}/name"),
            format!("{kind} provider `{name}` is declared twice"),
        ));
    }
    if !is_release(&provider.version) {
        diags.push(malformed(
            fleet,
            &format!("{at}/version"),
            &provider.version,
        ));
    }
    for (j, file) in provider.components.iter().enumerate() {
        if let Err(why) = check_repo_glob(file) {
            diags.push(fleet.error(&format!("{at}/components/{j}"), why));
        }
    }
}

fn malformed(fleet: &Located<Fleet>, at: &str, version: &str) -> Diagnostic {
    fleet
        .error(at, format!("malformed provider version `{version}`"))
        .help("write the release tag, vMAJOR.MINOR.PATCH, e.g. v1.14.2")
}

/// A cluster's infrastructure provider must be one the fleet declares, when it declares any:
/// no target could run its controllers otherwise.
pub fn check_cluster_provider(
    c: &Located<Cluster>,
    fleet: Option<&Located<Fleet>>,
    diags: &mut Vec<Diagnostic>,
) {
    let Some(providers) = fleet.and_then(|f| f.doc.spec.providers.as_ref()) else {
        return;
    };
    let name = c.doc.spec.infrastructure.provider.as_str();
    if providers.infrastructure.iter().any(|p| p.name == name) {
        return;
    }
    diags.push(
        c.error(
            "/spec/infrastructure/provider",
            format!(
                "infrastructure provider `{name}` is not among fleet.yaml's spec.providers.infrastructure"
            ),
        )
        .cluster(&c.doc.metadata.name)
        .help(format!(
            "add `{{name: {name}, version: ...}}` to spec.providers.infrastructure in fleet.yaml"
        )),
    );
}
