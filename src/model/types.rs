//! The three kinds of the config repository (DESIGN.md §1), as serde and schemars types.
//!
//! The JSON Schemas in `schema/` are generated from these types, and the structural check of
//! every loaded document walks those same schemas, so the types are the single source of truth.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const API_VERSION: &str = "cairn.dev/v1alpha1";

/// Fleet-wide settings and defaults (`fleet.yaml`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Fleet {
    /// Always `cairn.dev/v1alpha1`.
    pub api_version: String,
    /// Always `Fleet`.
    pub kind: String,
    pub metadata: Metadata,
    #[serde(default)]
    pub spec: FleetSpec,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FleetSpec {
    #[serde(default)]
    pub defaults: FleetDefaults,
    /// The in-cluster agent that keeps a pivoted cluster converged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<AgentSettings>,
    /// How agents reach this repository after the pivot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceSettings>,
    /// The Cluster API providers the fleet runs (what `clusterctl init` installs), installed in
    /// a workload cluster before its CAPI objects move there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub providers: Option<Providers>,
}

/// The providers of a fleet, as `clusterctl init` names them, plus cert-manager (which the CAPI
/// webhooks need).
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Providers {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_manager: Option<CertManager>,
    /// The core provider: `cluster-api`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core: Option<ProviderVersion>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bootstrap: Vec<ProviderVersion>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub control_plane: Vec<ProviderVersion>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub infrastructure: Vec<ProviderVersion>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CertManager {
    /// As `vMAJOR.MINOR.PATCH`.
    pub version: String,
}

/// One provider at one version.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProviderVersion {
    /// clusterctl's name for it: `cluster-api`, `kubeadm`, `vsphere`, `aws`, `docker`.
    pub name: String,
    /// As `vMAJOR.MINOR.PATCH` (a pre-release suffix such as `-rc.1` allowed).
    pub version: String,
    /// Repository-relative files of the provider's released components YAML. Without them,
    /// cairn installs in a target what the management cluster runs, at the same version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FleetDefaults {
    /// Kubernetes version of clusters that name none, as `vMAJOR.MINOR.PATCH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// Whether clusters pivot unless they say otherwise (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pivot: Option<bool>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentSettings {
    /// Image of the in-cluster agent Deployment.
    pub image: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SourceSettings {
    /// Git URL of this repository as agents see it (https, ssh or file).
    pub url: String,
    #[serde(default = "default_branch")]
    pub branch: String,
    /// Name of a Secret in the management cluster holding the git credentials; it is copied to
    /// each workload cluster at the pivot and never stored in git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
}

fn default_branch() -> String {
    "main".to_string()
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Metadata {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// One workload cluster (`clusters/**/*.yaml`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Cluster {
    /// Always `cairn.dev/v1alpha1`.
    pub api_version: String,
    /// Always `Cluster`.
    pub kind: String,
    /// `name` is a DNS-1123 label of at most 40 characters, unique in the repository.
    pub metadata: Metadata,
    pub spec: ClusterSpec,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterSpec {
    /// `vMAJOR.MINOR.PATCH`; defaults to fleet.yaml's `spec.defaults.kubernetesVersion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    pub infrastructure: Infrastructure,
    pub control_plane: ControlPlane,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<WorkerPool>,
    /// ClusterProfile names, applied in this order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// Values that override profile variable defaults.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// RFC 6902 JSON Patches applied to rendered objects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<ObjectPatch>,
    /// false: the CAPI objects stay in the management cluster. Defaults to the fleet default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pivot: Option<bool>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Vsphere,
    Aws,
    Docker,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Vsphere => "vsphere",
            Provider::Aws => "aws",
            Provider::Docker => "docker",
        }
    }
}

/// The infrastructure provider and exactly the settings block it names.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Infrastructure {
    pub provider: Provider,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vsphere: Option<VsphereSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsSettings>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerSettings>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VsphereSettings {
    pub server: String,
    /// SHA-1 thumbprint of the vCenter certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbprint: Option<String>,
    pub datacenter: String,
    pub datastore: String,
    pub network: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_pool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    /// VM template machines are cloned from, unless a machine names its own.
    pub template: String,
    /// Name of a Secret with the vCenter credentials; credentials never live in git.
    pub identity_secret: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AwsSettings {
    pub region: String,
    pub ssh_key_name: String,
    /// CAPA identity; the controller's own credentials when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_ref: Option<AwsIdentityRef>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AwsIdentityRef {
    /// AWSClusterControllerIdentity, AWSClusterRoleIdentity or AWSClusterStaticIdentity.
    pub kind: String,
    pub name: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DockerSettings {}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ControlPlane {
    /// 1, 3, 5 or 7.
    pub replicas: u32,
    /// Required for vsphere, optional otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
    pub machine: Machine,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Endpoint {
    pub host: String,
    #[serde(default = "default_api_port")]
    pub port: u16,
}

fn default_api_port() -> u16 {
    6443
}

/// Machine shape. Which fields apply depends on the provider: vsphere `{cpus, memoryMiB,
/// diskGiB, template?}`, aws `{instanceType, rootVolumeGiB?, ami?}`, docker `{customImage?}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Machine {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    #[serde(default, rename = "memoryMiB", skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u32>,
    #[serde(default, rename = "diskGiB", skip_serializing_if = "Option::is_none")]
    pub disk_gib: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    #[serde(
        default,
        rename = "rootVolumeGiB",
        skip_serializing_if = "Option::is_none"
    )]
    pub root_volume_gib: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ami: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_image: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkerPool {
    /// DNS-1123 label, unique in the cluster.
    pub name: String,
    pub replicas: u32,
    pub machine: Machine,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjectPatch {
    #[serde(default)]
    pub target: PatchTarget,
    /// RFC 6902 operations.
    pub patch: Vec<PatchOperation>,
}

/// Which rendered objects a patch applies to; every field given must match.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchTarget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// For hash-named templates, the name before the hash (`<cluster>-<pool>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<StageName>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchOperation {
    pub op: PatchOp,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PatchOp {
    Add,
    Remove,
    Replace,
    Move,
    Copy,
    Test,
}

/// The four stages of a cluster's bundle, in the order they are applied.
#[derive(
    Clone, Copy, Debug, Serialize, Deserialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
#[serde(rename_all = "lowercase")]
pub enum StageName {
    Bootstrap,
    Pivot,
    Workload,
    Addons,
}

impl StageName {
    pub const ALL: [StageName; 4] = [
        StageName::Bootstrap,
        StageName::Pivot,
        StageName::Workload,
        StageName::Addons,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StageName::Bootstrap => "bootstrap",
            StageName::Pivot => "pivot",
            StageName::Workload => "workload",
            StageName::Addons => "addons",
        }
    }

    /// File name of the stage in a rendered cluster directory.
    pub fn file_name(self) -> &'static str {
        match self {
            StageName::Bootstrap => "01-bootstrap.yaml",
            StageName::Pivot => "02-pivot.yaml",
            StageName::Workload => "03-workload.yaml",
            StageName::Addons => "04-addons.yaml",
        }
    }
}

/// A reusable set of add-on layers (`profiles/**/*.yaml`).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterProfile {
    /// Always `cairn.dev/v1alpha1`.
    pub api_version: String,
    /// Always `ClusterProfile`.
    pub kind: String,
    pub metadata: Metadata,
    #[serde(default)]
    pub spec: ProfileSpec,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProfileSpec {
    /// Variables the layers' manifests use; one without a default must be set by every cluster.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, VariableSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<Layer>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VariableSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Layer {
    /// Unique among all layers of a cluster's profiles.
    pub name: String,
    /// Default namespace for namespaced objects that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Repository-relative globs of manifest files; they must stay inside the repository.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manifests: Vec<String>,
    /// Manifests written in place, as a multi-document YAML string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    /// Layers, from any profile of the same cluster, that must be healthy first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Whether dependents wait until these objects are healthy (default true).
    #[serde(default = "default_true")]
    pub wait: bool,
    /// Part of the cluster's bootstrap (CNI, cloud controller manager, CSI where needed):
    /// applied as soon as the control plane is initialized and its kubeconfig exists, before
    /// cairn waits for nodes to be Ready (a real Node is not Ready without a CNI, nor gets a
    /// providerID without the cloud controller manager). It may depend only on bootstrap layers.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bootstrap: bool,
    /// A ServiceAccount in the layer's `namespace` that applies the layer: cairn impersonates
    /// it for every read and write of the layer's objects (Flux's tenant confinement), so the
    /// layer can do only what that account's RBAC allows, whatever its manifests ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

fn default_true() -> bool {
    true
}
