//! The Cluster API objects of a cluster: CAPI v1.14 core `v1beta2`, kubeadm bootstrap and
//! control plane `v1beta2`, and the infrastructure kinds of CAPV, CAPA and CAPD at the version
//! their CRDs store (`infrastructure.cluster.x-k8s.io/v1beta2`).
//!
//! Machine and bootstrap templates are first named `<cluster>-<pool>`; `hashing` renames them
//! to `<cluster>-<pool>-<hash>` once patches have been applied.

use serde_json::{Value, json};

use crate::model::types::{Machine, Provider};
use crate::model::validate::ResolvedCluster;

pub const CLUSTER_API: &str = "cluster.x-k8s.io/v1beta2";

/// The name of the Secret CAPI writes with a workload cluster's admin kubeconfig (key `value`).
pub fn kubeconfig_secret_name(cluster: &str) -> String {
    format!("{cluster}-kubeconfig")
}

/// A reference to a `<cluster>-kubeconfig` Secret: CAPI's in the cluster's namespace, or the
/// copy cairn keeps in `cairn-system`.
pub fn kubeconfig_secret(cluster: &str, namespace: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": kubeconfig_secret_name(cluster), "namespace": namespace}})
}

/// A reference to the CAPI Cluster of a cairn cluster (it lives in the namespace of its name).
pub fn cluster_ref(cluster: &str) -> Value {
    json!({"apiVersion": CLUSTER_API, "kind": "Cluster",
           "metadata": {"name": cluster, "namespace": cluster}})
}
pub const CONTROL_PLANE_API: &str = "controlplane.cluster.x-k8s.io/v1beta2";
pub const BOOTSTRAP_API: &str = "bootstrap.cluster.x-k8s.io/v1beta2";
pub const INFRA_API: &str = "infrastructure.cluster.x-k8s.io/v1beta2";

pub const DEFAULT_POD_CIDR: &str = "192.168.0.0/16";
pub const DEFAULT_SERVICE_CIDR: &str = "10.128.0.0/12";
/// Pool name of the control plane's machine template.
pub const CONTROL_PLANE_POOL: &str = "control-plane";

fn group(api_version: &str) -> &str {
    api_version.split('/').next().unwrap_or(api_version)
}

/// A v1beta2 reference: `{apiGroup, kind, name}`, same namespace as the referrer.
fn reference(api_version: &str, kind: &str, name: &str) -> Value {
    json!({"apiGroup": group(api_version), "kind": kind, "name": name})
}

fn meta(name: &str, namespace: &str) -> Value {
    json!({"name": name, "namespace": namespace})
}

fn infra_kinds(provider: Provider) -> (&'static str, &'static str) {
    match provider {
        Provider::Vsphere => ("VSphereCluster", "VSphereMachineTemplate"),
        Provider::Aws => ("AWSCluster", "AWSMachineTemplate"),
        Provider::Docker => ("DockerCluster", "DockerMachineTemplate"),
    }
}

/// Kinds of the infrastructure provider: cluster, machine template, machine.
pub fn provider_kinds(provider: Provider) -> [&'static str; 3] {
    let (cluster, template) = infra_kinds(provider);
    [cluster, template, template.trim_end_matches("Template")]
}

pub fn control_plane_name(cluster: &str) -> String {
    format!("{cluster}-control-plane")
}

pub fn pool_name(cluster: &str, pool: &str) -> String {
    format!("{cluster}-{pool}")
}

/// Objects of the bootstrap stage: Namespace, Cluster, infrastructure cluster, a one-node
/// KubeadmControlPlane and its machine template.
pub fn bootstrap_objects(rc: &ResolvedCluster) -> Vec<Value> {
    let name = rc.name;
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
        cluster(rc),
        infra_cluster(rc),
        control_plane(rc, 1),
        control_plane_template(rc),
    ]
}

/// Objects of the workload stage: the full control plane and the worker pools.
pub fn workload_objects(rc: &ResolvedCluster) -> Vec<Value> {
    let spec = &rc.cluster().spec;
    let mut out = vec![
        control_plane(rc, spec.control_plane.replicas),
        control_plane_template(rc),
    ];
    for pool in &spec.workers {
        out.push(machine_deployment(rc, &pool.name, pool.replicas));
        out.push(machine_template(rc, &pool.name, &pool.machine, false));
        out.push(kubeadm_config_template(rc, &pool.name));
    }
    out
}

fn cluster(rc: &ResolvedCluster) -> Value {
    let name = rc.name;
    let spec = &rc.cluster().spec;
    let (infra_kind, _) = infra_kinds(spec.infrastructure.provider);
    let cidr = |var: &str, default: &str| {
        rc.variables
            .get(var)
            .cloned()
            .unwrap_or_else(|| default.to_string())
    };
    let mut cluster_spec = json!({
        "clusterNetwork": {
            "pods": {"cidrBlocks": [cidr("POD_CIDR", DEFAULT_POD_CIDR)]},
            "services": {"cidrBlocks": [cidr("SERVICE_CIDR", DEFAULT_SERVICE_CIDR)]},
        },
        "infrastructureRef": reference(INFRA_API, infra_kind, name),
        "controlPlaneRef": reference(CONTROL_PLANE_API, "KubeadmControlPlane", &control_plane_name(name)),
    });
    if let Some(ep) = &spec.control_plane.endpoint {
        cluster_spec["controlPlaneEndpoint"] = json!({"host": ep.host, "port": ep.port});
    }
    let mut metadata = meta(name, name);
    if !rc.cluster().metadata.labels.is_empty() {
        metadata["labels"] = json!(rc.cluster().metadata.labels);
    }
    json!({"apiVersion": CLUSTER_API, "kind": "Cluster", "metadata": metadata, "spec": cluster_spec})
}

fn infra_cluster(rc: &ResolvedCluster) -> Value {
    let name = rc.name;
    let infra = &rc.cluster().spec.infrastructure;
    let (kind, _) = infra_kinds(infra.provider);
    let mut spec = json!({});
    if let Some(v) = &infra.vsphere {
        spec = json!({
            "server": v.server,
            "identityRef": {"kind": "Secret", "name": v.identity_secret},
        });
        if let Some(t) = &v.thumbprint {
            spec["thumbprint"] = json!(t);
        }
        if let Some(ep) = &rc.cluster().spec.control_plane.endpoint {
            spec["controlPlaneEndpoint"] = json!({"host": ep.host, "port": ep.port});
        }
    }
    if let Some(a) = &infra.aws {
        spec = json!({"region": a.region, "sshKeyName": a.ssh_key_name});
        if let Some(id) = &a.identity_ref {
            spec["identityRef"] = json!({"kind": id.kind, "name": id.name});
        }
    }
    json!({"apiVersion": INFRA_API, "kind": kind, "metadata": meta(name, name), "spec": spec})
}

/// `name` and kubelet arguments of kubeadm's node registration, as each provider's templates
/// set them.
fn node_registration(provider: Provider) -> Value {
    match provider {
        Provider::Vsphere => json!({
            "name": "{{ local_hostname }}",
            "criSocket": "/var/run/containerd/containerd.sock",
        }),
        Provider::Aws => json!({
            "name": "{{ ds.meta_data.local_hostname }}",
            "kubeletExtraArgs": [{"name": "cloud-provider", "value": "external"}],
        }),
        Provider::Docker => json!({
            "kubeletExtraArgs": [
                {"name": "eviction-hard", "value": "nodefs.available<0%,nodefs.inodesFree<0%,imagefs.available<0%"},
            ],
        }),
    }
}

fn control_plane(rc: &ResolvedCluster, replicas: u32) -> Value {
    let name = rc.name;
    let provider = rc.cluster().spec.infrastructure.provider;
    let (_, template_kind) = infra_kinds(provider);
    let registration = node_registration(provider);
    let mut sans = vec![json!("localhost"), json!("127.0.0.1")];
    if let Some(ep) = &rc.cluster().spec.control_plane.endpoint {
        sans.push(json!(ep.host));
    }
    json!({
        "apiVersion": CONTROL_PLANE_API,
        "kind": "KubeadmControlPlane",
        "metadata": meta(&control_plane_name(name), name),
        "spec": {
            "replicas": replicas,
            "version": rc.kubernetes_version,
            "machineTemplate": {"spec": {"infrastructureRef": reference(
                INFRA_API, template_kind, &pool_name(name, CONTROL_PLANE_POOL))}},
            "kubeadmConfigSpec": {
                "clusterConfiguration": {"apiServer": {"certSANs": sans}},
                "initConfiguration": {"nodeRegistration": registration},
                "joinConfiguration": {"nodeRegistration": registration},
            },
            "rollout": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}},
        }
    })
}

fn control_plane_template(rc: &ResolvedCluster) -> Value {
    machine_template(
        rc,
        CONTROL_PLANE_POOL,
        &rc.cluster().spec.control_plane.machine,
        true,
    )
}

fn machine_template(
    rc: &ResolvedCluster,
    pool: &str,
    machine: &Machine,
    control_plane: bool,
) -> Value {
    let name = rc.name;
    let infra = &rc.cluster().spec.infrastructure;
    let (_, kind) = infra_kinds(infra.provider);
    let mut spec = json!({});
    if let Some(v) = &infra.vsphere {
        spec = json!({
            "server": v.server,
            "datacenter": v.datacenter,
            "datastore": v.datastore,
            "template": machine.template.clone().unwrap_or_else(|| v.template.clone()),
            "network": {"devices": [{"networkName": v.network, "dhcp4": true}]},
            "cloneMode": "linkedClone",
        });
        for (key, value) in [
            ("thumbprint", &v.thumbprint),
            ("resourcePool", &v.resource_pool),
            ("folder", &v.folder),
        ] {
            if let Some(value) = value {
                spec[key] = json!(value);
            }
        }
        for (key, value) in [
            ("numCPUs", machine.cpus),
            ("memoryMiB", machine.memory_mib),
            ("diskGiB", machine.disk_gib),
        ] {
            if let Some(value) = value {
                spec[key] = json!(value);
            }
        }
    }
    if let Some(a) = &infra.aws {
        let profile = if control_plane {
            "control-plane.cluster-api-provider-aws.sigs.k8s.io"
        } else {
            "nodes.cluster-api-provider-aws.sigs.k8s.io"
        };
        spec = json!({
            "instanceType": machine.instance_type,
            "iamInstanceProfile": profile,
            "sshKeyName": a.ssh_key_name,
        });
        if let Some(size) = machine.root_volume_gib {
            spec["rootVolume"] = json!({"size": size});
        }
        if let Some(ami) = &machine.ami {
            spec["ami"] = json!({"id": ami});
        }
    }
    if infra.docker.is_some() {
        spec = json!({
            "extraMounts": [{"containerPath": "/var/run/docker.sock", "hostPath": "/var/run/docker.sock"}],
        });
        if let Some(image) = &machine.custom_image {
            spec["customImage"] = json!(image);
        }
    }
    json!({
        "apiVersion": INFRA_API,
        "kind": kind,
        "metadata": meta(&pool_name(name, pool), name),
        "spec": {"template": {"spec": spec}},
    })
}

fn machine_deployment(rc: &ResolvedCluster, pool: &str, replicas: u32) -> Value {
    let name = rc.name;
    let (_, template_kind) = infra_kinds(rc.cluster().spec.infrastructure.provider);
    let labels = json!({"cluster.x-k8s.io/cluster-name": name, "cairn.dev/pool": pool});
    json!({
        "apiVersion": CLUSTER_API,
        "kind": "MachineDeployment",
        "metadata": meta(&pool_name(name, pool), name),
        "spec": {
            "clusterName": name,
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "clusterName": name,
                    "version": rc.kubernetes_version,
                    "bootstrap": {"configRef": reference(BOOTSTRAP_API, "KubeadmConfigTemplate", &pool_name(name, pool))},
                    "infrastructureRef": reference(INFRA_API, template_kind, &pool_name(name, pool)),
                }
            },
            "rollout": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}},
        }
    })
}

fn kubeadm_config_template(rc: &ResolvedCluster, pool: &str) -> Value {
    let name = rc.name;
    let registration = node_registration(rc.cluster().spec.infrastructure.provider);
    json!({
        "apiVersion": BOOTSTRAP_API,
        "kind": "KubeadmConfigTemplate",
        "metadata": meta(&pool_name(name, pool), name),
        "spec": {"template": {"spec": {"joinConfiguration": {"nodeRegistration": registration}}}},
    })
}

/// Kinds whose content is immutable in practice and which are therefore named by hash.
pub fn is_hashed_template(kind: &str) -> bool {
    kind.ends_with("MachineTemplate") || kind == "KubeadmConfigTemplate"
}
