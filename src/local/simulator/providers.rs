//! Where CAPI's controllers run: the simulator plays them for a Cluster only in an API server
//! where the providers that Cluster needs (core, kubeadm bootstrap, kubeadm control plane and
//! its infrastructure provider) have their Deployments, Available. A pivot that moved the
//! objects without the providers leaves a Cluster nobody reconciles, as it would on real
//! Cluster API.

use serde_json::Value;

use super::SimulatorError;
use super::objects::s;
use super::schema::Server;
use crate::apply::health::health;
use crate::pivot::providers::PROVIDER_LABEL;
use crate::render::kinds::label;

/// The providers (clusterctl manifest labels) whose controllers reconcile `cluster`.
fn required(cluster: &Value) -> Vec<String> {
    let mut providers: Vec<String> = ["cluster-api", "bootstrap-kubeadm", "control-plane-kubeadm"]
        .map(str::to_string)
        .to_vec();
    let infrastructure = match s(cluster, "/spec/infrastructureRef/kind") {
        "DockerCluster" => Some("infrastructure-docker"),
        "VSphereCluster" => Some("infrastructure-vsphere"),
        "AWSCluster" => Some("infrastructure-aws"),
        _ => None,
    };
    providers.extend(infrastructure.map(str::to_string));
    providers
}

/// The providers `cluster` needs that have no Available Deployment in `server`, each with why.
pub async fn missing(server: &Server, cluster: &Value) -> Result<Vec<String>, SimulatorError> {
    let deployments = server
        .list("apps/v1", "Deployment", None, Some(PROVIDER_LABEL))
        .await?;
    Ok(required(cluster)
        .into_iter()
        .filter(|provider| {
            !deployments
                .iter()
                .filter(|d| label(d, PROVIDER_LABEL) == Some(provider.as_str()))
                .any(|d| health(d).is_ready())
        })
        .collect())
}
