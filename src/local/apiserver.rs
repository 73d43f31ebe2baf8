//! A real etcd + kube-apiserver pair on loopback, started the way envtest starts them.
//!
//! An `ApiServer` owns its processes: dropping it kills them, and (unless detached for
//! `cairn local up`) the kernel kills them too if the owning thread dies, via
//! `PR_SET_PDEATHSIG`, so a killed test leaves nothing running.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::assets::Assets;
use super::certs::{CertError, ServerPki};

#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    #[error(transparent)]
    Certs(#[from] CertError),
    #[error("cannot prepare {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot find a free port on 127.0.0.1")]
    Port(#[source] std::io::Error),
    #[error("cannot start {binary}")]
    Spawn {
        binary: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{process} of `{name}` exited early ({status}); last lines of {log}:\n{tail}")]
    Exited {
        name: String,
        process: &'static str,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("API server `{name}` was not ready after {waited:?}: {last}; see {log}")]
    NotReady {
        name: String,
        waited: Duration,
        last: String,
        log: PathBuf,
    },
}

/// How to start a server.
#[derive(Clone, Debug)]
pub struct ApiServerOptions {
    /// Shown in errors and used for file names.
    pub name: String,
    /// Where its data, certificates, logs and kubeconfig go.
    pub dir: PathBuf,
    /// Keep running after this process exits (`cairn local up`); otherwise the processes die
    /// with their owner.
    pub detach: bool,
    pub ready_timeout: Duration,
}

impl ApiServerOptions {
    pub fn new(name: impl Into<String>, dir: impl Into<PathBuf>) -> ApiServerOptions {
        ApiServerOptions {
            name: name.into(),
            dir: dir.into(),
            detach: false,
            ready_timeout: Duration::from_secs(90),
        }
    }
}

/// A running API server.
pub struct ApiServer {
    pub name: String,
    pub dir: PathBuf,
    pub port: u16,
    pub kubeconfig_path: PathBuf,
    /// The admin kubeconfig as YAML.
    pub kubeconfig: String,
    etcd: Option<Child>,
    apiserver: Option<Child>,
    /// How kube-apiserver was started, so [`ApiServer::restart_apiserver`] can start it again.
    kube_apiserver: PathBuf,
    api_args: Vec<String>,
    detach: bool,
    ready_timeout: Duration,
}

fn free_port() -> Result<u16, ApiServerError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(ApiServerError::Port)?;
    Ok(listener.local_addr().map_err(ApiServerError::Port)?.port())
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ApiServerError + '_ {
    move |source| ApiServerError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn spawn(
    binary: &Path,
    args: &[String],
    log: &Path,
    detach: bool,
) -> Result<Child, ApiServerError> {
    let log_file = std::fs::File::create(log).map_err(io_err(log))?;
    let log_err = log_file.try_clone().map_err(io_err(log))?;
    let mut cmd = Command::new(binary);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(log_err);
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe calls (prctl, setsid) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if detach {
                libc::setsid();
            } else {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|source| ApiServerError::Spawn {
        binary: binary.to_path_buf(),
        source,
    })?;
    // A pid file beside the log lets `cairn local down` find the process from another run.
    let pid_file = log.with_extension("pid");
    super::pidfile::write(&pid_file, child.id(), binary).map_err(io_err(&pid_file))?;
    Ok(child)
}

/// The last `n` lines of a log file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl ApiServer {
    /// Starts etcd and kube-apiserver and waits until the server is healthy and the `default`
    /// namespace exists.
    pub async fn start(
        assets: &Assets,
        opts: ApiServerOptions,
    ) -> Result<ApiServer, ApiServerError> {
        let dir = &opts.dir;
        let certs_dir = dir.join("pki");
        std::fs::create_dir_all(&certs_dir).map_err(io_err(&certs_dir))?;
        let pki = ServerPki::generate()?;
        let files = pki.write(&certs_dir)?;
        let etcd_port = free_port()?;
        let port = free_port()?;
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let etcd_log = dir.join("etcd.log");
        let etcd_args = vec![
            format!("--data-dir={}", dir.join("etcd").display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            "--listen-peer-urls=http://localhost:0".to_string(),
            "--unsafe-no-fsync=true".to_string(),
            format!("--name={}", opts.name),
        ];
        let mut server = ApiServer {
            name: opts.name.clone(),
            dir: dir.clone(),
            port,
            kubeconfig_path: dir.join("kubeconfig"),
            kubeconfig: String::new(),
            etcd: Some(spawn(&assets.etcd, &etcd_args, &etcd_log, opts.detach)?),
            apiserver: None,
            kube_apiserver: assets.kube_apiserver.clone(),
            api_args: Vec::new(),
            detach: opts.detach,
            ready_timeout: opts.ready_timeout,
        };
        let p = |path: &Path| path.display().to_string();
        let api_args = vec![
            format!("--etcd-servers={etcd_url}"),
            format!("--cert-dir={}", p(&certs_dir)),
            format!("--tls-cert-file={}", p(&files.serving_cert)),
            format!("--tls-private-key-file={}", p(&files.serving_key)),
            format!("--secure-port={port}"),
            "--bind-address=127.0.0.1".to_string(),
            "--service-cluster-ip-range=10.0.0.0/24".to_string(),
            "--allow-privileged=true".to_string(),
            "--disable-admission-plugins=ServiceAccount".to_string(),
            "--authorization-mode=RBAC".to_string(),
            format!("--service-account-issuer=https://127.0.0.1:{port}/"),
            format!("--service-account-key-file={}", p(&files.sa_public_key)),
            format!("--service-account-signing-key-file={}", p(&files.sa_key)),
            format!("--client-ca-file={}", p(&files.client_ca)),
            "--endpoint-reconciler-type=none".to_string(),
        ];
        let api_log = dir.join("kube-apiserver.log");
        server.apiserver = Some(spawn(
            &assets.kube_apiserver,
            &api_args,
            &api_log,
            opts.detach,
        )?);
        server.api_args = api_args;
        server.kubeconfig = kubeconfig_yaml(&opts.name, port, &pki);
        std::fs::write(&server.kubeconfig_path, &server.kubeconfig)
            .map_err(io_err(&server.kubeconfig_path))?;
        server.wait_ready(opts.ready_timeout).await?;
        Ok(server)
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<(), ApiServerError> {
        let start = Instant::now();
        let mut last;
        let client = crate::kube_client::client_from_kubeconfig(&self.kubeconfig).await;
        loop {
            self.check_alive()?;
            match &client {
                Err(e) => last = e.to_string(),
                Ok(client) => match crate::kube_client::ready(client).await {
                    Ok(()) => return Ok(()),
                    Err(e) => last = e,
                },
            }
            if start.elapsed() > timeout {
                return Err(ApiServerError::NotReady {
                    name: self.name.clone(),
                    waited: timeout,
                    last,
                    log: self.dir.join("kube-apiserver.log"),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Kills kube-apiserver and starts it again with the same flags, port, certificates and etcd
    /// (as a control-plane restart does), then waits until it is ready.
    pub async fn restart_apiserver(&mut self) -> Result<(), ApiServerError> {
        self.stop_apiserver();
        self.start_apiserver().await
    }

    /// Kills kube-apiserver (etcd keeps running) and waits for it to exit.
    pub fn stop_apiserver(&mut self) {
        if let Some(mut child) = self.apiserver.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts kube-apiserver again as it was first started, unless it runs, and waits until it
    /// is ready. The previous log is kept as `kube-apiserver.previous.log`.
    pub async fn start_apiserver(&mut self) -> Result<(), ApiServerError> {
        if self.apiserver.is_none() {
            let log = self.dir.join("kube-apiserver.log");
            let previous = self.dir.join("kube-apiserver.previous.log");
            std::fs::rename(&log, &previous).map_err(io_err(&log))?;
            self.apiserver = Some(spawn(
                &self.kube_apiserver,
                &self.api_args,
                &log,
                self.detach,
            )?);
        }
        self.wait_ready(self.ready_timeout).await
    }

    fn check_alive(&mut self) -> Result<(), ApiServerError> {
        for (process, child, log) in [
            ("etcd", &mut self.etcd, "etcd.log"),
            ("kube-apiserver", &mut self.apiserver, "kube-apiserver.log"),
        ] {
            if let Some(status) = child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                let log = self.dir.join(log);
                return Err(ApiServerError::Exited {
                    name: self.name.clone(),
                    process,
                    status: status.to_string(),
                    tail: tail(&log, 15),
                    log,
                });
            }
        }
        Ok(())
    }

    /// Process ids of etcd and kube-apiserver.
    pub fn pids(&self) -> Vec<u32> {
        [&self.etcd, &self.apiserver]
            .into_iter()
            .flatten()
            .map(Child::id)
            .collect()
    }

    pub async fn client(&self) -> Result<kube::Client, crate::kube_client::KubeconfigTextError> {
        crate::kube_client::client_from_kubeconfig(&self.kubeconfig).await
    }

    /// Lets the processes outlive this value (they were started detached).
    pub fn release(mut self) {
        self.etcd = None;
        self.apiserver = None;
    }

    /// Kills both processes and waits for them.
    pub fn stop(&mut self) {
        for child in [self.apiserver.take(), self.etcd.take()]
            .into_iter()
            .flatten()
        {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An admin kubeconfig for the server at 127.0.0.1:`port`.
fn kubeconfig_yaml(name: &str, port: u16, pki: &ServerPki) -> String {
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {
            "server": format!("https://127.0.0.1:{port}"),
            "certificate-authority-data": B64.encode(&pki.ca_cert),
        }}],
        "users": [{"name": "cairn-admin", "user": {
            "client-certificate-data": B64.encode(&pki.admin_cert),
            "client-key-data": B64.encode(&pki.admin_key),
        }}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": "cairn-admin"}}],
        "current-context": name,
    });
    serde_yaml::to_string(&config).unwrap_or_default()
}
