//! The components a local management cluster runs, as `clusterctl init` would install them:
//! cert-manager first (its static manifest, `helm template` of its chart), then each provider's
//! release components (both built by `tools/fetch-crds.sh` into `<crds>/components/` from their
//! Go modules), their `${VARIABLES}` substituted with clusterctl's rules, and clusterctl's
//! `Provider` inventory for each provider.
//!
//! What the local environment leaves out, until the real managers run here: the webhook
//! configurations (no webhook server answers yet, and a webhook that cannot be reached fails
//! every write of its kinds), and the providers' CRDs, which are installed from
//! `<crds>/all.yaml` with their conversion webhooks turned off (see tools/crds). cert-manager's
//! CRDs, which have no conversion webhook, are installed from its components.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::kube_client::{DynamicApi, KubeError};
use crate::pivot::providers::{CORE_LABEL, INVENTORY_API, PROVIDER_LABEL, install_phases};

#[derive(Debug, thiserror::Error)]
pub enum ComponentsError {
    #[error("cannot read {}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: invalid {what}", .path.display())]
    Parse {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{}: {}\n  help: set the variables clusterctl would ask for", .path.display(), .problems.join("; "))]
    Variables {
        path: PathBuf,
        problems: Vec<String>,
    },
    #[error("install {object} into the management API server")]
    Install {
        object: String,
        #[source]
        source: Box<KubeError>,
    },
}

/// One provider (or cert-manager) of `components/index.json`.
#[derive(Clone, Debug, Deserialize)]
pub struct ProviderEntry {
    /// clusterctl's manifest label: `cluster-api`, `bootstrap-kubeadm`, `infrastructure-aws`...
    pub provider: String,
    pub name: String,
    #[serde(rename = "type")]
    pub provider_type: String,
    pub version: String,
    pub namespace: String,
    pub file: String,
}

impl ProviderEntry {
    /// cert-manager's entry: no provider of its own, and no `Provider` inventory object.
    pub fn is_cert_manager(&self) -> bool {
        self.provider_type == "CertManager"
    }
}

/// One provider's components, ready to install.
#[derive(Clone, Debug)]
pub struct Components {
    pub provider: ProviderEntry,
    pub objects: Vec<Value>,
    /// The file they came from, `${VARIABLES}` kept (what a fleet vendors as `components:`).
    pub path: PathBuf,
}

/// The values a local environment gives the variables without defaults: credentials that
/// name nothing real (the simulator plays the clouds), in the shapes the providers expect.
pub fn local_variables() -> BTreeMap<String, String> {
    let aws = "[default]\naws_access_key_id = LOCALACCESSKEY\naws_secret_access_key = local-secret\nregion = us-east-1\n";
    BTreeMap::from([
        (
            "AWS_B64ENCODED_CREDENTIALS".to_string(),
            base64::engine::general_purpose::STANDARD.encode(aws),
        ),
        (
            "VSPHERE_USERNAME".to_string(),
            "local@vsphere.local".to_string(),
        ),
        ("VSPHERE_PASSWORD".to_string(), "local-password".to_string()),
    ])
}

fn read(path: &Path) -> Result<String, ComponentsError> {
    std::fs::read_to_string(path).map_err(|source| ComponentsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every provider in `<crd_dir>/components/`, its variables substituted from `variables`.
pub fn load(
    crd_dir: &Path,
    variables: &BTreeMap<String, String>,
) -> Result<Vec<Components>, ComponentsError> {
    let dir = crd_dir.join("components");
    let index_path = dir.join("index.json");
    let index: Vec<ProviderEntry> =
        serde_json::from_str(&read(&index_path)?).map_err(|source| ComponentsError::Parse {
            path: index_path.clone(),
            what: "index",
            source: Box::new(source),
        })?;
    index
        .into_iter()
        .map(|provider| {
            let path = dir.join(&provider.file);
            let text = crate::render::envsubst::substitute(&read(&path)?, variables).map_err(
                |errors| ComponentsError::Variables {
                    path: path.clone(),
                    problems: errors.into_iter().map(|e| e.message).collect(),
                },
            )?;
            let objects =
                super::crds::parse_multi_doc(&text).map_err(|source| ComponentsError::Parse {
                    path: path.clone(),
                    what: "YAML",
                    source: Box::new(source),
                })?;
            Ok(Components {
                provider,
                objects,
                path,
            })
        })
        .collect()
}

/// clusterctl's inventory object for an installed provider.
pub fn inventory_object(provider: &ProviderEntry) -> Value {
    json!({
        "apiVersion": INVENTORY_API, "kind": "Provider",
        "metadata": {
            "name": provider.provider,
            "namespace": provider.namespace,
            "labels": {
                PROVIDER_LABEL: provider.provider,
                "clusterctl.cluster.x-k8s.io": "",
                CORE_LABEL: "inventory",
            },
        },
        "providerName": provider.name,
        "type": provider.provider_type,
        "version": provider.version,
    })
}

/// Whether the local environment installs `obj` of `provider`'s components (see the module
/// comment for what it does not).
fn installed_here(obj: &Value, provider: &ProviderEntry) -> bool {
    let group = crate::render::kinds::api_group(obj["apiVersion"].as_str().unwrap_or_default());
    match (group, obj["kind"].as_str().unwrap_or_default()) {
        ("apiextensions.k8s.io", "CustomResourceDefinition") => provider.is_cert_manager(),
        ("admissionregistration.k8s.io", _) => false,
        _ => true,
    }
}

/// Installs cert-manager's components, then the providers' and their inventory (as field
/// manager `clusterctl`), in the order a move installs them in its target
/// ([`install_phases`]). Returns how many objects it applied.
pub async fn install(
    api: &DynamicApi,
    providers: &[Components],
    timeout: Duration,
) -> Result<usize, ComponentsError> {
    let objects: Vec<Value> = providers
        .iter()
        .flat_map(|c| {
            let here = c.objects.iter().filter(|o| installed_here(o, &c.provider));
            let inventory = (!c.provider.is_cert_manager()).then(|| inventory_object(&c.provider));
            here.cloned().chain(inventory)
        })
        .collect();
    for phase in install_phases(&objects) {
        for obj in phase.definitions.iter().chain(&phase.rest) {
            apply_retrying(api, obj, timeout).await?;
        }
    }
    Ok(objects.len())
}

/// Applies `obj`, retrying within `timeout` while its Namespace or its kind is not there yet
/// (a Namespace just created, a CRD not yet established).
async fn apply_retrying(
    api: &DynamicApi,
    obj: &Value,
    timeout: Duration,
) -> Result<(), ComponentsError> {
    let start = std::time::Instant::now();
    loop {
        match api.apply_as(obj, "clusterctl", true).await {
            Ok(_) => return Ok(()),
            Err(e)
                if (e.is_not_found() || matches!(e, KubeError::UnknownKind { .. }))
                    && start.elapsed() < timeout =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(source) => {
                return Err(ComponentsError::Install {
                    object: crate::render::kinds::object_ref(obj),
                    source: Box::new(source),
                });
            }
        }
    }
}

/// Copies the release components (variables kept) to `dir/<provider>.yaml`, for a user to
/// vendor into a fleet repository.
pub fn write_release_files(providers: &[Components], dir: &Path) -> Result<(), ComponentsError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ComponentsError::Read { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for c in providers {
        let to = dir.join(&c.provider.file);
        std::fs::copy(&c.path, &to).map_err(io(&to))?;
    }
    Ok(())
}
