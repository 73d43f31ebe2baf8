//! The CAPI and provider CRDs are served and labelled as `clusterctl init` labels them, and the
//! real API server accepts every object `cairn render` makes from the example repository.

mod env;

use std::time::Duration;

use cairn::kube_client::{DynamicApi, install_crds};
use cairn::model::types::StageName;
use cairn::render::kinds::object_ref;
use serde_json::Value;

const PROVIDERS: [&str; 6] = [
    "cluster-api",
    "bootstrap-kubeadm",
    "control-plane-kubeadm",
    "infrastructure-docker",
    "infrastructure-vsphere",
    "infrastructure-aws",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capi_crds_are_served_labelled_and_accept_every_rendered_object() {
    let root = tempfile::tempdir().unwrap();
    let mgmt = env::start("mgmt", root.path()).await;
    let workload = env::start("workload", root.path()).await;
    let mgmt_api = DynamicApi::new(mgmt.client().await.unwrap());
    let workload_api = DynamicApi::new(workload.client().await.unwrap());

    let crds = env::crds();
    install_crds(&mgmt_api, &crds, Duration::from_secs(60))
        .await
        .unwrap();
    let mut providers_seen = std::collections::BTreeSet::new();
    for crd in &crds {
        let live = mgmt_api.get(crd).await.unwrap().expect("installed");
        let labels = &live["metadata"]["labels"];
        assert!(
            labels.get("clusterctl.cluster.x-k8s.io").is_some(),
            "{}",
            object_ref(crd)
        );
        // clusterctl's inventory CRD is clusterctl's own: no provider, the `core` label.
        let provider = labels["cluster.x-k8s.io/provider"]
            .as_str()
            .or(labels["clusterctl.cluster.x-k8s.io/core"].as_str())
            .unwrap_or_default();
        providers_seen.insert(provider.to_string());
        assert!(cairn::kube_client::is_established(&live));
    }
    let expected: std::collections::BTreeSet<String> = PROVIDERS
        .iter()
        .chain(&["inventory"])
        .map(|s| s.to_string())
        .collect();
    assert_eq!(providers_seen, expected);
    for kind in ["Cluster", "MachineDeployment"] {
        mgmt_api
            .resource("cluster.x-k8s.io/v1beta2", kind)
            .await
            .unwrap();
    }

    let rendered = cairn::render::render_repo(&cairn::example::example_snapshot(), &[]);
    assert!(!rendered.has_errors());
    let mut refused = Vec::new();
    let mut accepted = 0;
    for bundle in &rendered.bundles {
        for stage in &bundle.stages {
            let api = match stage.name {
                StageName::Bootstrap | StageName::Workload => &mgmt_api,
                StageName::Pivot | StageName::Addons => &workload_api,
            };
            // Namespaces and CRDs are created for real (dry-run creates nothing, and the rest
            // needs them); every other object is only dry-run.
            let (real, dry): (Vec<&Value>, Vec<&Value>) = stage.objects.iter().partition(|o| {
                matches!(
                    o["kind"].as_str(),
                    Some("Namespace" | "CustomResourceDefinition")
                )
            });
            let crds: Vec<Value> = real
                .iter()
                .filter(|o| o["kind"] == "CustomResourceDefinition")
                .map(|o| (*o).clone())
                .collect();
            for obj in &real {
                if let Err(e) = api.apply(obj, false, true).await {
                    refused.push(format!("{}/{}: {e}", bundle.cluster, stage.name.as_str()));
                }
            }
            install_crds(api, &crds, Duration::from_secs(30))
                .await
                .unwrap();
            for obj in dry {
                match api.apply(obj, true, true).await {
                    Ok(_) => accepted += 1,
                    Err(e) => {
                        refused.push(format!("{}/{}: {e}", bundle.cluster, stage.name.as_str()))
                    }
                }
            }
        }
    }
    assert!(
        refused.is_empty(),
        "the API server refused:\n{}",
        refused.join("\n")
    );

    // The check has teeth: schema violations and unknown fields are refused.
    let prod = rendered
        .bundles
        .iter()
        .find(|b| b.cluster == "prod-vsphere-1")
        .unwrap();
    let template = prod
        .stage(StageName::Workload)
        .unwrap()
        .objects
        .iter()
        .find(|o| o["kind"] == "VSphereMachineTemplate")
        .unwrap()
        .clone();
    let mut too_small = template.clone();
    too_small["spec"]["template"]["spec"]["numCPUs"] = 1.into();
    let mut misspelt = template.clone();
    misspelt["spec"]["template"]["spec"]["numCPU"] = 4.into();
    for bad in [too_small, misspelt] {
        assert!(
            mgmt_api.apply(&bad, true, true).await.is_err(),
            "accepted {bad}"
        );
    }
    assert!(accepted > 60, "only {accepted} objects were checked");
}
