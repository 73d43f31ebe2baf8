//! Shared by the tests that need real API servers. They never skip: missing assets are built
//! (cached by version), and a failed build fails the test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use cairn::local::{ApiServer, ApiServerOptions, Assets};

pub fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools")
}

pub fn assets() -> Assets {
    Assets::find_or_build(&tools_dir()).unwrap_or_else(|e| panic!("test assets unavailable: {e}"))
}

pub fn crds() -> Vec<serde_json::Value> {
    let dir = cairn::local::crds::crd_dir(&tools_dir())
        .unwrap_or_else(|e| panic!("CRDs unavailable: {e}"));
    cairn::local::crds::load_crds(&dir).unwrap_or_else(|e| panic!("{e}"))
}

/// What `clusterctl init` installs (the CRDs, the providers' components and inventory), as the
/// local environment installs it.
pub async fn install_capi(api: &cairn::kube_client::DynamicApi) {
    cairn::local::env::install_capi(api, &tools_dir(), None)
        .await
        .unwrap_or_else(|e| panic!("{}", cairn::errors::chain(&e)));
}

pub async fn start(name: &str, dir: &Path) -> ApiServer {
    ApiServer::start(&assets(), ApiServerOptions::new(name, dir.join(name)))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A management API server with the CAPI CRDs and the providers installed and the provider simulator running in
/// the background (machines take `machine_delay`). Stop the simulator with `stop`.
pub struct Management {
    pub server: ApiServer,
    pub api: std::sync::Arc<cairn::apply::api::KubeClusterApi>,
    stop: tokio::sync::watch::Sender<bool>,
    simulator: tokio::task::JoinHandle<Result<(), cairn::local::simulator::SimulatorError>>,
}

impl Management {
    pub async fn start(root: &Path, machine_delay: std::time::Duration) -> Management {
        use std::time::Duration;
        let server = start("mgmt", root).await;
        let api = std::sync::Arc::new(cairn::apply::api::KubeClusterApi::new(
            server.client().await.unwrap(),
            false,
        ));
        install_capi(api.dynamic()).await;
        let mut config = cairn::local::simulator::SimulatorConfig::new(
            server.kubeconfig.clone(),
            root.join("clusters"),
            assets(),
        );
        config.machine_delay = machine_delay;
        config.poll_interval = Duration::from_millis(200);
        // The agent's image is this build of cairn, polling git every second.
        config.agent_image = Some(cairn::local::simulator::AgentImage {
            entrypoint: vec![env!("CARGO_BIN_EXE_cairn").to_string()],
            extra_args: ["--poll-interval", "1s", "--timeout", "120s"]
                .map(str::to_string)
                .to_vec(),
        });
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let simulator = tokio::spawn(cairn::local::simulator::run(config, shutdown));
        Management {
            server,
            api,
            stop,
            simulator,
        }
    }

    /// Stops the simulator and checks it ended cleanly.
    pub async fn stop(self) {
        self.stop.send(true).unwrap();
        self.simulator.await.unwrap().unwrap();
    }
}

/// A kubeconfig for `server` whose user is ServiceAccount `namespace/name`, with a bound token
/// from a real TokenRequest (the account must exist).
pub async fn service_account_kubeconfig(server: &ApiServer, namespace: &str, name: &str) -> String {
    let admin = server.client().await.unwrap();
    cairn::local::token::service_account_kubeconfig(&admin, &server.kubeconfig, namespace, name)
        .await
        .unwrap()
}
