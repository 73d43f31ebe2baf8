//! A nested API error reads once: a user without RBAC runs `cairn pivot` and `cairn status`
//! against a real API server, and the server's refusal appears exactly once, with no debug
//! dump of the server's reply.

mod common;
mod env;

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};

/// A kubeconfig for `server` whose user is ServiceAccount default/nobody (no RBAC at all).
async fn unprivileged_kubeconfig(
    server: &cairn::local::ApiServer,
    dir: &std::path::Path,
) -> std::path::PathBuf {
    let client = server.client().await.unwrap();
    let accounts: Api<ServiceAccount> = Api::namespaced(client, "default");
    let account: ServiceAccount =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "nobody"}})).unwrap();
    accounts
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    let path = dir.join("nobody.kubeconfig");
    std::fs::write(
        &path,
        env::service_account_kubeconfig(server, "default", "nobody").await,
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forbidden_request_prints_the_servers_message_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = env::start("errors", dir.path()).await;
    // With the CAPI CRDs served, `status` gets as far as listing Clusters, which is forbidden.
    let admin = cairn::apply::api::KubeClusterApi::new(server.client().await.unwrap(), false);
    cairn::kube_client::install_crds(
        admin.dynamic(),
        &env::crds(),
        std::time::Duration::from_secs(60),
    )
    .await
    .unwrap();
    let kubeconfig = unprivileged_kubeconfig(&server, dir.path()).await;
    let kubeconfig = kubeconfig.to_str().unwrap();
    for args in [
        vec!["pivot", "c1", "--kubeconfig", kubeconfig],
        vec!["status", "--kubeconfig", kubeconfig],
    ] {
        let run = common::cairn(&args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        let errors: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect();
        assert_eq!(errors.len(), 1, "{args:?}: one error line: {}", run.stderr);
        let error = errors[0];
        assert_eq!(
            error.matches("is forbidden").count(),
            1,
            "{args:?}: {error}"
        );
        assert!(
            error.contains("system:serviceaccount:default:nobody"),
            "{error}"
        );
        assert!(error.contains("(403 Forbidden)"), "{error}");
        for dump in ["Status {", "ErrorResponse", "ApiError:"] {
            assert!(
                !run.stderr.contains(dump),
                "{args:?}: {dump} in {}",
                run.stderr
            );
        }
    }
    server.stop();
}
