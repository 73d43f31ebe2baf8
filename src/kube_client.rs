//! Building kube clients from kubeconfigs, and the readiness probe of an API server.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// A client for the current context of a kubeconfig given as YAML.
pub async fn client_from_kubeconfig(yaml: &str) -> Result<kube::Client, kube::Error> {
    let kubeconfig = Kubeconfig::from_yaml(yaml).map_err(kube::Error::InferKubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(kube::Error::InferKubeconfig)?;
    kube::Client::try_from(config)
}

/// Ok once `/healthz` says ok and the `default` namespace exists (envtest's readiness rule).
pub async fn ready(client: &kube::Client) -> Result<(), String> {
    let request = http::Request::get("/healthz")
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let health = client.request_text(request).await.map_err(|e| format!("/healthz: {e}"))?;
    if health.trim() != "ok" {
        return Err(format!("/healthz says {health:?}"));
    }
    Api::<Namespace>::all(client.clone())
        .get("default")
        .await
        .map(|_| ())
        .map_err(|e| format!("namespace default: {e}"))
}
