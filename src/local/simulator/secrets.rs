//! The Secrets CAPI's kubeadm providers write: `<cluster>-kubeconfig` (the workload admin
//! kubeconfig under data key `value`), the cluster certificates `<cluster>-{ca,etcd,sa,proxy}`
//! (owned by the KubeadmControlPlane) and one bootstrap data Secret per machine (owned by its
//! KubeadmConfig).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rcgen::KeyPair;
use serde_json::{Value, json};

use super::SimulatorError;
use super::objects::{CLUSTER_NAME_LABEL, ident, owner_ref, s};
use super::schema::Server;
use super::workload::Workload;
use crate::local::certs::ca_params;

pub const SECRET_TYPE: &str = "cluster.x-k8s.io/secret";

fn secret(namespace: &str, name: &str, cluster: &str, owner: &Value, data: Value) -> Value {
    let mut obj = ident("v1", "Secret", namespace, name);
    obj["metadata"]["labels"] = json!({ CLUSTER_NAME_LABEL: cluster });
    obj["metadata"]["ownerReferences"] = json!([owner_ref(owner, true)]);
    obj["type"] = SECRET_TYPE.into();
    obj["data"] = data;
    obj
}

fn b64(text: &str) -> Value {
    B64.encode(text).into()
}

/// A self-signed CA (certificate and key PEMs) named `common_name`.
fn generate_ca(cluster: &str, common_name: &str) -> Result<(String, String), SimulatorError> {
    let failed = |source| SimulatorError::Certs {
        cluster: cluster.to_string(),
        what: format!("the {common_name} CA"),
        source,
    };
    let key = KeyPair::generate().map_err(failed)?;
    let params = ca_params(common_name);
    let cert = params.self_signed(&key).map_err(failed)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes the kubeconfig Secret (again when the server changed) and creates the certificate
/// Secrets that are missing. Returns the names of the Secrets written.
pub async fn write_cluster_secrets(
    server: &Server,
    cluster: &str,
    namespace: &str,
    kcp: &Value,
    workload: &Workload,
) -> Result<Vec<String>, SimulatorError> {
    let mut written = Vec::new();
    let kubeconfig_name = format!("{cluster}-kubeconfig");
    let live = server
        .fetch(&ident("v1", "Secret", namespace, &kubeconfig_name))
        .await?;
    let wanted = B64.encode(&workload.kubeconfig);
    if live.as_ref().map(|l| s(l, "/data/value")) != Some(wanted.as_str()) {
        let obj = secret(
            namespace,
            &kubeconfig_name,
            cluster,
            kcp,
            json!({ "value": wanted }),
        );
        server.apply(&obj, "write the kubeconfig Secret").await?;
        written.push(kubeconfig_name);
    }
    for purpose in ["ca", "etcd", "sa", "proxy"] {
        let name = format!("{cluster}-{purpose}");
        if server
            .fetch(&ident("v1", "Secret", namespace, &name))
            .await?
            .is_some()
        {
            continue;
        }
        let (cert, key) = if purpose == "sa" {
            // The service-account key pair the workload server really uses.
            let read = |file: &str| {
                let path = workload.dir.join("pki").join(file);
                std::fs::read_to_string(&path).map_err(|source| SimulatorError::Io {
                    step: "read the service-account keys",
                    path,
                    source,
                })
            };
            (read("sa.pub")?, read("sa.key")?)
        } else {
            let cn = match purpose {
                "ca" => "kubernetes",
                "etcd" => "etcd-ca",
                _ => "front-proxy-ca",
            };
            generate_ca(cluster, cn)?
        };
        let obj = secret(
            namespace,
            &name,
            cluster,
            kcp,
            json!({"tls.crt": b64(&cert), "tls.key": b64(&key)}),
        );
        server
            .apply(&obj, "write a cluster certificate Secret")
            .await?;
        written.push(name);
    }
    Ok(written)
}

/// The bootstrap data Secret of a machine (named after its KubeadmConfig, as CABPK names it).
pub async fn write_bootstrap_secret(
    server: &Server,
    cluster: &str,
    config: &Value,
    control_plane: bool,
) -> Result<String, SimulatorError> {
    let name = s(config, "/metadata/name");
    let namespace = s(config, "/metadata/namespace");
    let phase = if control_plane && config.pointer("/spec/initConfiguration").is_some() {
        "init"
    } else {
        "join"
    };
    let cloud_init = format!(
        "## template: jinja\n#cloud-config\n# simulated by cairn: kubeadm {phase} for {name}\nruncmd:\n  - echo kubeadm {phase}\n"
    );
    let obj = secret(
        namespace,
        name,
        cluster,
        config,
        json!({"value": b64(&cloud_init), "format": b64("cloud-config")}),
    );
    if server.fetch(&obj).await?.is_none() {
        server
            .apply(&obj, "write the bootstrap data Secret")
            .await?;
    }
    Ok(name.to_string())
}
