//! `cairn local up|status|down`: a management API server with the CAPI CRDs and the provider
//! simulator, running in the background under one state directory.
//!
//! Layout of the state directory:
//! ```text
//! DIR/mgmt.kubeconfig          admin kubeconfig of the management API server
//! DIR/mgmt/                    its etcd data, PKI, logs and pid files
//! DIR/providers/<provider>.yaml the providers' release components it installed (to vendor)
//! DIR/simulator.{log,pid}      the simulator process
//! DIR/clusters/<name>/...      workload API servers the simulator starts
//! ```
//! Every process leaves a pid file, so `down` finds and stops them all, even after a crash.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Serialize;

use super::apiserver::{ApiServer, ApiServerError, ApiServerOptions};
use super::assets::{AssetError, Assets};
use super::crds::{CrdError, crd_dir, load_crds};
use super::pidfile;
use super::providers;
use super::simulator::{self, SimulatorConfig, SimulatorError};
use crate::kube_client::{DynamicApi, KubeError, install_crds};

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Assets(#[from] AssetError),
    #[error(transparent)]
    ApiServer(#[from] ApiServerError),
    #[error(transparent)]
    Crds(#[from] CrdError),
    #[error("installing the CRDs into the management API server")]
    Install(#[from] KubeError),
    #[error("installing the providers into the management API server")]
    Providers(#[from] super::providers::ComponentsError),
    #[error("cannot reach the management API server")]
    Client(#[from] crate::kube_client::KubeconfigTextError),
    #[error("provider simulator")]
    Simulator(#[from] SimulatorError),
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the local environment in {dir} is already running; `cairn local down --dir {dir}` stops it"
    )]
    AlreadyUp { dir: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LocalError + '_ {
    move |source| LocalError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub fn mgmt_kubeconfig_path(dir: &Path) -> PathBuf {
    dir.join("mgmt.kubeconfig")
}

/// What `up` started.
#[derive(Debug, Serialize)]
pub struct UpReport {
    pub kubeconfig: PathBuf,
    pub server: String,
    pub crds: usize,
    /// Provider objects installed (components and inventory).
    pub provider_objects: usize,
    pub simulator_pid: u32,
}

/// Starts the management API server, installs the CRDs, starts the simulator in the
/// background, and returns once the server is ready.
pub async fn up(
    dir: &Path,
    tools_dir: &Path,
    machine_delay: Duration,
) -> Result<UpReport, LocalError> {
    if pidfile::find(dir).iter().any(pidfile::Recorded::alive) {
        return Err(LocalError::AlreadyUp {
            dir: dir.display().to_string(),
        });
    }
    if dir.exists() {
        // Leftovers of a crashed run: nothing in it is running any more.
        std::fs::remove_dir_all(dir).map_err(io_err(dir))?;
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let assets = Assets::find_or_build(tools_dir)?;
    let mut opts = ApiServerOptions::new("mgmt", dir.join("mgmt"));
    opts.detach = true;
    let server = ApiServer::start(&assets, opts).await?;
    let api = DynamicApi::new(server.client().await?);
    let installed = install_capi(&api, tools_dir, Some(&dir.join("providers"))).await?;
    let kubeconfig = mgmt_kubeconfig_path(dir);
    std::fs::write(&kubeconfig, &server.kubeconfig).map_err(io_err(&kubeconfig))?;
    let simulator_pid = spawn_simulator(dir, &assets, machine_delay)?;
    let report = UpReport {
        kubeconfig,
        server: format!("https://127.0.0.1:{}", server.port),
        crds: installed.crds,
        provider_objects: installed.provider_objects,
        simulator_pid,
    };
    server.release();
    Ok(report)
}

/// What [`install_capi`] installed.
pub struct Installed {
    pub crds: usize,
    pub provider_objects: usize,
}

/// What `clusterctl init` does to a management cluster, as the local environment does it: the
/// CAPI and provider CRDs, then the providers' components and inventory (see `providers`).
/// With `release_dir`, the providers' release components are written there too.
pub async fn install_capi(
    api: &DynamicApi,
    tools_dir: &Path,
    release_dir: Option<&Path>,
) -> Result<Installed, LocalError> {
    let dir = crd_dir(tools_dir)?;
    let crds = load_crds(&dir)?;
    install_crds(api, &crds, Duration::from_secs(90)).await?;
    let components = providers::load(&dir, &providers::local_variables())?;
    if let Some(release_dir) = release_dir {
        providers::write_release_files(&components, release_dir)?;
    }
    let provider_objects = providers::install(api, &components, Duration::from_secs(30)).await?;
    Ok(Installed {
        crds: crds.len(),
        provider_objects,
    })
}

/// Runs `cairn local simulate --dir DIR` detached, logging to `DIR/simulator.log`.
fn spawn_simulator(
    dir: &Path,
    assets: &Assets,
    machine_delay: Duration,
) -> Result<u32, LocalError> {
    let exe = std::env::current_exe().map_err(io_err(Path::new("current executable")))?;
    let log_path = dir.join("simulator.log");
    let log = std::fs::File::create(&log_path).map_err(io_err(&log_path))?;
    let log_err = log.try_clone().map_err(io_err(&log_path))?;
    let mut cmd = Command::new(&exe);
    cmd.args(["local", "simulate", "--dir"])
        .arg(dir)
        .arg("--machine-delay-ms")
        .arg(machine_delay.as_millis().to_string())
        .env("TEST_ASSET_KUBE_APISERVER", &assets.kube_apiserver)
        .env("TEST_ASSET_ETCD", &assets.etcd)
        .env("TEST_ASSET_KUBECTL", &assets.kubectl)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe; it detaches the simulator from our session.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(io_err(&exe))?;
    let pid_path = dir.join("simulator.pid");
    pidfile::write(&pid_path, child.id(), &exe).map_err(io_err(&pid_path))?;
    Ok(child.id())
}

/// One process of the environment.
#[derive(Debug, Serialize)]
pub struct ProcessStatus {
    pub name: String,
    pub pid: u32,
    pub running: bool,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub dir: PathBuf,
    pub processes: Vec<ProcessStatus>,
    /// Whether the management API server answers.
    pub api_server_ready: bool,
    pub kubeconfig: Option<PathBuf>,
}

impl Status {
    pub fn healthy(&self) -> bool {
        self.api_server_ready
            && !self.processes.is_empty()
            && self.processes.iter().all(|p| p.running)
    }
}

pub async fn status(dir: &Path) -> Status {
    let processes = pidfile::find(dir)
        .into_iter()
        .map(|p| ProcessStatus {
            name: p
                .pid_file
                .strip_prefix(dir)
                .unwrap_or(&p.pid_file)
                .with_extension("")
                .display()
                .to_string(),
            pid: p.pid,
            running: p.alive(),
        })
        .collect();
    let kubeconfig = mgmt_kubeconfig_path(dir);
    let api_server_ready = match std::fs::read_to_string(&kubeconfig) {
        Ok(yaml) => match crate::kube_client::client_from_kubeconfig(&yaml).await {
            Ok(client) => {
                tokio::time::timeout(Duration::from_secs(5), crate::kube_client::ready(&client))
                    .await
                    .is_ok_and(|r| r.is_ok())
            }
            Err(_) => false,
        },
        Err(_) => false,
    };
    Status {
        dir: dir.to_path_buf(),
        processes,
        api_server_ready,
        kubeconfig: kubeconfig.exists().then_some(kubeconfig),
    }
}

/// Stops every process recorded under `dir` and removes it. Returns how many were running.
pub fn down(dir: &Path) -> Result<usize, LocalError> {
    let stopped = pidfile::stop_all(&pidfile::find(dir), Duration::from_secs(10));
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io_err(dir))?;
    }
    Ok(stopped.len())
}

/// Runs the provider simulator against `DIR/mgmt.kubeconfig` until SIGTERM or Ctrl-C; the
/// workload API servers it starts live under `DIR/clusters/` and stop with it.
pub async fn simulate(dir: &Path, machine_delay: Duration) -> Result<(), LocalError> {
    let kubeconfig_path = mgmt_kubeconfig_path(dir);
    let kubeconfig = std::fs::read_to_string(&kubeconfig_path).map_err(io_err(&kubeconfig_path))?;
    let mut config = SimulatorConfig::new(kubeconfig, dir.join("clusters"), Assets::from_env()?);
    config.machine_delay = machine_delay;
    config.agent_image = SimulatorConfig::default_agent_image();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        let _ = stop.send(true);
    });
    simulator::run(config, shutdown).await?;
    Ok(())
}
