//! `cairn run` against a real management API server with the CAPI CRDs and the provider
//! simulator, following a real git repository: commits by polling and by signed webhooks,
//! forged webhooks refused, a failing cluster backing off alone, an unreachable source, the
//! HTTP endpoints, SIGTERM, and two replicas electing a leader.

mod common;
mod env;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cairn::apply::api::ClusterApi;
use cairn::controller::webhook::github_signature;
use common::git;
use serde_json::{Value, json};

/// The webhook secret, shaped as a canary (see `common::forms`) so that a leak is recognisable.
const SECRET: &str = "CANARY-5e1f0c2a9b7d4e3f8a6c1b0d";

fn fleet_files(clusters: &[&str]) -> Vec<(String, String)> {
    let mut files = vec![
        (
            "fleet.yaml".to_string(),
            "apiVersion: cairn.dev/v1alpha1\nkind: Fleet\nmetadata: {name: t}\n\
             spec:\n  defaults: {kubernetesVersion: v1.34.2, pivot: false}\n"
                .to_string(),
        ),
        (
            "profiles/tiny.yaml".to_string(),
            "apiVersion: cairn.dev/v1alpha1\nkind: ClusterProfile\nmetadata: {name: tiny}\n\
             spec:\n  layers:\n    - name: cni\n      bootstrap: true\n      namespace: kube-system\n      \
             manifests: [addons/cni.yaml]\n    - name: hello\n      namespace: default\n      inline: |\n        \
             apiVersion: v1\n        kind: ConfigMap\n        metadata: {name: hello}\n        \
             data: {cluster: \"${CLUSTER_NAME}\"}\n"
                .to_string(),
        ),
        (
            "addons/cni.yaml".to_string(),
            common::CNI_DAEMONSET.to_string(),
        ),
    ];
    for name in clusters {
        files.push((format!("clusters/{name}.yaml"), cluster_yaml(name, 1)));
    }
    files
}

fn cluster_yaml(name: &str, workers: u32) -> String {
    format!(
        "apiVersion: cairn.dev/v1alpha1\nkind: Cluster\nmetadata: {{name: {name}}}\nspec:\n  \
         infrastructure: {{provider: docker, docker: {{}}}}\n  controlPlane: {{replicas: 1, machine: {{}}}}\n  \
         workers: [{{name: md-0, replicas: {workers}, machine: {{}}}}]\n  profiles: [tiny]\n"
    )
}

/// A git repository with the fleet, committed; returns the commit.
fn fleet_repo(dir: &Path, clusters: &[&str]) -> String {
    common::write_files(dir, fleet_files(clusters));
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "fleet"]);
    git(dir, &["rev-parse", "HEAD"])
}

/// Scales `cluster`'s md-0 to `workers` in a new commit; returns it.
fn scale(dir: &Path, cluster: &str, workers: u32) -> String {
    common::write_files(
        dir,
        [(
            format!("clusters/{cluster}.yaml"),
            cluster_yaml(cluster, workers),
        )],
    );
    git(
        dir,
        &["commit", "-qam", &format!("{cluster}: md-0 to {workers}")],
    );
    git(dir, &["rev-parse", "HEAD"])
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `cairn run` process and its two HTTP addresses (webhooks; status and metrics); killed if
/// the test fails first.
struct Run {
    child: Child,
    base: String,
    status_base: String,
    log: PathBuf,
    http: reqwest::Client,
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Run {
    fn start(root: &Path, name: &str, kubeconfig: &Path, repo: &Path, extra: &[&str]) -> Run {
        let port = free_port();
        let status_port = free_port();
        let secret = root.join("webhook-secret");
        std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
        let log = root.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_cairn"))
            .arg("run")
            .arg("--repo")
            .arg(repo)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--status-listen")
            .arg(format!("127.0.0.1:{status_port}"))
            .arg("--state-dir")
            .arg(root.join(format!("{name}-state")))
            .arg("--webhook-secret-file")
            .arg(&secret)
            .args(["--timeout", "60s", "--backoff", "1s", "--max-backoff", "4s"])
            .args(extra)
            .env("CAIRN_LOG", "warn,cairn=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Run {
            child,
            base: format!("http://127.0.0.1:{port}"),
            status_base: format!("http://127.0.0.1:{status_port}"),
            log,
            http: reqwest::Client::new(),
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// GET on the public address (webhooks, health).
    async fn get(&self, path: &str) -> Option<(u16, String)> {
        self.get_from(&self.base, path).await
    }

    /// GET on the status address (/status, /metrics, health).
    async fn get_status(&self, path: &str) -> Option<(u16, String)> {
        self.get_from(&self.status_base, path).await
    }

    async fn get_from(&self, base: &str, path: &str) -> Option<(u16, String)> {
        let response = self.http.get(format!("{base}{path}")).send().await.ok()?;
        Some((response.status().as_u16(), response.text().await.ok()?))
    }

    async fn status(&self) -> Value {
        match self.get_status("/status").await {
            Some((200, body)) => serde_json::from_str(&body).unwrap(),
            _ => Value::Null,
        }
    }

    async fn post(&self, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, String) {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        (
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        )
    }

    /// Waits until `done` holds for `/status`; panics with the status and the log otherwise.
    async fn wait_status(&self, what: &str, timeout: Duration, done: impl Fn(&Value) -> bool) {
        let start = Instant::now();
        loop {
            let status = self.status().await;
            if done(&status) {
                return;
            }
            if start.elapsed() > timeout {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\nstatus: {status:#}\nlog:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The status line answering a webhook whose Content-Length is 2 MiB, sent without its
    /// body (a client that streams a large body can see the connection close before the 413).
    fn status_line_for_oversized_post(&self) -> String {
        use std::io::{BufRead, Write};
        let address = self.base.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let request = format!(
            "POST /webhook/github HTTP/1.1\r\nhost: {address}\r\nx-github-event: push\r\n\
             content-length: {}\r\n\r\n",
            2 * 1024 * 1024
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut line = String::new();
        std::io::BufReader::new(stream)
            .read_line(&mut line)
            .unwrap();
        line.trim_end().to_string()
    }

    /// Sends a signed push webhook for `commit`; it must be accepted.
    async fn push_signed(&self, commit: &str) {
        let body = push_body(commit);
        let (code, answer) = self.post("/webhook/github", &signed(&body), &body).await;
        assert_eq!((code, answer.trim()), (202, "fetching main"));
    }

    /// SIGTERM, then the exit code (waiting at most `within`).
    fn terminate(&mut self, within: Duration) -> Option<i32> {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < within {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

fn push_body(commit: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"ref": "refs/heads/main", "after": commit})).unwrap()
}

fn signed(body: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        ("x-github-event", "push".to_string()),
        (
            "x-hub-signature-256",
            github_signature(SECRET.as_bytes(), body),
        ),
    ]
}

fn cluster<'a>(status: &'a Value, name: &str) -> &'a Value {
    &status["clusters"][name]
}

fn ready_at(status: &Value, name: &str, revision: &str) -> bool {
    cluster(status, name)["phase"] == "Ready" && cluster(status, name)["revision"] == revision
}

async fn md_replicas(api: &impl ClusterApi, cluster: &str) -> i64 {
    let mds = api
        .list(
            "cluster.x-k8s.io/v1beta2",
            "MachineDeployment",
            Some(cluster),
            None,
        )
        .await
        .unwrap();
    mds.iter()
        .map(|md| md["spec"]["replicas"].as_i64().unwrap_or(-1))
        .sum()
}

/// An object-count quota of zero for CAPI Clusters: applying the cluster is forbidden by the
/// API server until the quota goes.
fn blocking_quota(namespace: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ResourceQuota",
           "metadata": {"name": "no-clusters", "namespace": namespace},
           "spec": {"hard": {"count/clusters.cluster.x-k8s.io": "0"}}})
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_follows_git_by_poll_and_webhook_backs_off_alone_and_survives_its_source() {
    let root = tempfile::tempdir().unwrap();
    let mgmt = env::Management::start(root.path(), Duration::from_millis(50)).await;
    let kubeconfig = mgmt.server.kubeconfig_path.clone();
    let repo = root.path().join("fleet");
    let first = fleet_repo(&repo, &["alpha", "beta", "gamma"]);
    // gamma cannot be applied: a quota forbids its Cluster.
    mgmt.api.apply(&namespace("gamma")).await.unwrap();
    mgmt.api.apply(&blocking_quota("gamma")).await.unwrap();
    // The quota admission plugin counts only what the quota's status lists (the quota
    // controller's job; there is none here).
    let counted = json!({"hard": {"count/clusters.cluster.x-k8s.io": "0"},
                         "used": {"count/clusters.cluster.x-k8s.io": "0"}});
    mgmt.api
        .dynamic()
        .patch_status(&blocking_quota("gamma"), &counted, "test")
        .await
        .unwrap();

    // 1. Polling every second.
    let mut run = Run::start(
        root.path(),
        "poll",
        &kubeconfig,
        &repo,
        &["--poll-interval", "1s"],
    );
    run.wait_status("alpha and beta Ready", Duration::from_secs(120), |s| {
        ready_at(s, "alpha", &first) && ready_at(s, "beta", &first)
    })
    .await;
    // Must-show 4: gamma fails and backs off on its own, with growing delays.
    run.wait_status("gamma failing twice", Duration::from_secs(60), |s| {
        cluster(s, "gamma")["failures"].as_u64() >= Some(2)
    })
    .await;
    let status = run.status().await;
    let gamma = cluster(&status, "gamma");
    assert_eq!(gamma["phase"], "Failed", "{status:#}");
    assert!(
        gamma["last_error"].as_str().unwrap().contains("quota"),
        "{gamma:#}"
    );
    assert!(gamma["retry_in_seconds"].as_u64() >= Some(2), "{gamma:#}");

    // Must-show 2: the endpoints answer, /status and /metrics on the status address only.
    for path in ["/healthz", "/readyz"] {
        assert_eq!(run.get(path).await.unwrap().0, 200, "{path}");
        assert_eq!(run.get_status(path).await.unwrap().0, 200, "{path}");
    }
    for path in ["/status", "/metrics"] {
        assert_eq!(
            run.get(path).await.unwrap().0,
            404,
            "{path} on the webhooks' address"
        );
    }
    let (code, metrics) = run.get_status("/metrics").await.unwrap();
    assert_eq!(code, 200);
    for line in [
        r#"cairn_reconciles_total{cluster="alpha",result="success"}"#,
        r#"cairn_reconciles_total{cluster="gamma",result="failure"}"#,
        r#"cairn_clusters{phase="Ready"} 2"#,
        &format!(r#"cairn_source_revision{{revision="{first}"}} 1"#),
        "cairn_reconcile_duration_seconds_bucket",
        "cairn_leader 1",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }

    // Must-show 1a: a commit arrives by polling.
    let second = scale(&repo, "alpha", 2);
    run.wait_status(
        "alpha Ready at the second commit",
        Duration::from_secs(90),
        |s| ready_at(s, "alpha", &second),
    )
    .await;
    assert_eq!(md_replicas(mgmt.api.as_ref(), "alpha").await, 2);

    // Must-show 2: SIGTERM stops it cleanly.
    assert_eq!(
        run.terminate(Duration::from_secs(30)),
        Some(0),
        "{}",
        run.log_tail()
    );
    drop(run);

    // 2. Polling every hour: only webhooks bring commits now.
    let run = Run::start(
        root.path(),
        "webhook",
        &kubeconfig,
        &repo,
        &["--poll-interval", "1h", "--prune"],
    );
    run.wait_status("ready at the second commit", Duration::from_secs(60), |s| {
        s["revision"] == second.as_str()
    })
    .await;
    let third = scale(&repo, "beta", 2);
    let body = push_body(&third);
    // Forged, unsigned and garbage requests: 401 or 400, and nothing fetched.
    let mut forged = signed(&body);
    forged[1].1 = github_signature(b"not the secret", &body);
    assert_eq!(run.post("/webhook/github", &forged, &body).await.0, 401);
    assert_eq!(
        run.post(
            "/webhook/github",
            &[("x-github-event", "push".into())],
            &body
        )
        .await
        .0,
        401
    );
    let gitlab_forged = [
        ("x-gitlab-event", "Push Hook".to_string()),
        ("x-gitlab-token", "guess".to_string()),
    ];
    assert_eq!(
        run.post("/webhook/gitlab", &gitlab_forged, &body).await.0,
        401
    );
    // A body over the limit is refused from its Content-Length, before it is read.
    assert_eq!(
        run.status_line_for_oversized_post(),
        "HTTP/1.1 413 Payload Too Large"
    );
    let ping = br#"{"zen":"hi"}"#;
    let mut ping_headers = signed(ping);
    ping_headers[0].1 = "ping".into();
    assert_eq!(
        run.post("/webhook/github", &ping_headers, ping).await.0,
        200
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let status = run.status().await;
    assert_eq!(
        status["revision"],
        second.as_str(),
        "a forged webhook fetched"
    );
    assert_eq!(md_replicas(mgmt.api.as_ref(), "beta").await, 1);

    // Must-show 1b: a signed push webhook brings the commit at once.
    run.push_signed(&third).await;
    run.wait_status(
        "beta Ready at the third commit",
        Duration::from_secs(90),
        |s| ready_at(s, "beta", &third),
    )
    .await;
    assert_eq!(md_replicas(mgmt.api.as_ref(), "beta").await, 2);
    let (_, metrics) = run.get_status("/metrics").await.unwrap();
    for line in [
        r#"cairn_webhook_requests_total{provider="github",result="unauthorized"} 2"#,
        r#"cairn_webhook_requests_total{provider="gitlab",result="unauthorized"} 1"#,
        r#"cairn_webhook_requests_total{provider="github",result="ping"} 1"#,
        r#"cairn_webhook_requests_total{provider="github",result="accepted"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }

    // The failing cluster recovers on its next retry once the cause is gone.
    mgmt.api.delete(&blocking_quota("gamma")).await.unwrap();
    run.wait_status("gamma Ready", Duration::from_secs(90), |s| {
        ready_at(s, "gamma", &third)
    })
    .await;

    // A commit that does not render keeps the last good revision and says why.
    common::write_files(
        &repo,
        [("clusters/alpha.yaml", "kind: Cluster\nspec: [unclosed\n")],
    );
    git(&repo, &["commit", "-qam", "broken"]);
    let broken = git(&repo, &["rev-parse", "HEAD"]);
    run.push_signed(&broken).await;
    run.wait_status("the render error reported", Duration::from_secs(30), |s| {
        s["render_error"].is_string()
    })
    .await;
    let status = run.status().await;
    assert_eq!(status["revision"], third.as_str(), "{status:#}");
    assert!(
        status["render_error"]
            .as_str()
            .unwrap()
            .contains("clusters/alpha.yaml:3:1: error: invalid YAML"),
        "{status:#}"
    );
    assert_eq!(cluster(&status, "alpha")["phase"], "Ready", "{status:#}");
    git(&repo, &["revert", "--no-edit", "HEAD"]);

    // With --prune, a cluster removed from the repository is deleted.
    git(&repo, &["rm", "-q", "clusters/gamma.yaml"]);
    git(&repo, &["commit", "-qm", "gamma leaves"]);
    let fourth = git(&repo, &["rev-parse", "HEAD"]);
    run.push_signed(&fourth).await;
    run.wait_status("gamma deleted", Duration::from_secs(90), |s| {
        s["revision"] == fourth.as_str() && s["clusters"].get("gamma").is_none()
    })
    .await;
    let gamma = cairn::render::capi::cluster_ref("gamma");
    assert_eq!(mgmt.api.get(&gamma).await.unwrap(), None);
    // The test made gamma's namespace (for the quota) before cairn did: it is kept, with
    // no deletion under way, since cairn deletes only namespaces it created.
    let ns = mgmt.api.get(&namespace("gamma")).await.unwrap();
    assert!(
        ns.as_ref()
            .is_some_and(|ns| ns["metadata"]["deletionTimestamp"].is_null()),
        "{ns:?}"
    );

    // Must-show 5: the source goes away; the last good revision is kept and reported.
    let moved = root.path().join("fleet-moved");
    std::fs::rename(&repo, &moved).unwrap();
    run.push_signed(&third).await;
    run.wait_status("the source reported stale", Duration::from_secs(30), |s| {
        s["source_stale"] == true
    })
    .await;
    let status = run.status().await;
    assert_eq!(status["revision"], fourth.as_str(), "{status:#}");
    assert!(status["render_error"].is_null(), "{status:#}");
    assert!(
        status["source_error"]
            .as_str()
            .unwrap()
            .contains("no git repository exists"),
        "{status:#}"
    );
    for name in ["alpha", "beta"] {
        assert_eq!(cluster(&status, name)["phase"], "Ready", "{status:#}");
    }
    let (code, metrics) = run.get_status("/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("cairn_source_stale 1"), "{metrics}");
    assert!(
        metrics.contains("cairn_source_fetch_errors_total 1"),
        "{metrics}"
    );
    assert_eq!(run.get("/readyz").await.unwrap().0, 200);

    // The webhook secret shows nowhere: not in the logs, /status or /metrics.
    let status = run.get_status("/status").await.unwrap().1;
    let logs = std::fs::read_to_string(&run.log).unwrap()
        + &std::fs::read_to_string(root.path().join("poll.log")).unwrap();
    for form in common::forms(SECRET) {
        for (place, text) in [("log", &logs), ("/status", &status), ("/metrics", &metrics)] {
            assert!(
                !text.contains(&form),
                "the webhook secret is in the {place}"
            );
        }
    }
    drop(run);
    mgmt.stop().await;
}

fn lease() -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
           "metadata": {"name": "cairn-controller", "namespace": "cairn-system"}})
}

async fn lease_holder(api: &impl ClusterApi) -> Option<String> {
    let live = api.get(&lease()).await.unwrap()?;
    live.pointer("/spec/holderIdentity")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Writes another holder into the Lease, freshly renewed for 4 s.
async fn steal_lease(api: &impl ClusterApi) {
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        k8s_openapi::jiff::Timestamp::now(),
    );
    let patch = json!({"spec": {"holderIdentity": "intruder", "renewTime": now,
                                "leaseDurationSeconds": 4}});
    api.merge_patch(&lease(), &patch).await.unwrap();
}

/// Which of the two replicas leads, once exactly one does.
async fn the_leader(replicas: &[Run]) -> usize {
    for _ in 0..600 {
        let flags =
            [replicas[0].status().await, replicas[1].status().await].map(|s| s["leader"] == true);
        if flags[0] != flags[1] {
            return usize::from(flags[1]);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("neither or both replicas lead after 60 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_elect_one_leader_that_steps_down_on_losing_the_lease_and_hands_over_when_killed()
 {
    let root = tempfile::tempdir().unwrap();
    let mgmt = env::Management::start(root.path(), Duration::from_millis(50)).await;
    mgmt.api.apply(&namespace("cairn-system")).await.unwrap();
    let kubeconfig = mgmt.server.kubeconfig_path.clone();
    let repo = root.path().join("fleet");
    let first = fleet_repo(&repo, &["alpha"]);
    let lease_duration = Duration::from_secs(4);
    let start = |name: &str| {
        let args = [
            "--poll-interval",
            "1h",
            "--leader-elect",
            "--lease-duration",
            "4s",
            "--identity",
            name,
        ];
        Run::start(root.path(), name, &kubeconfig, &repo, &args)
    };
    let mut replicas = vec![start("r1"), start("r2")];
    for run in &replicas {
        run.wait_status("a fetched revision", Duration::from_secs(60), |s| {
            s["revision"] == first.as_str()
        })
        .await;
    }
    // Exactly one leads, reconciles and holds the Lease; the other only follows.
    let leader = the_leader(&replicas).await;
    let follower = 1 - leader;
    replicas[leader]
        .wait_status("alpha Ready", Duration::from_secs(90), |s| {
            ready_at(s, "alpha", &first)
        })
        .await;
    let identity = ["r1", "r2"][leader];
    assert_eq!(
        lease_holder(mgmt.api.as_ref()).await.as_deref(),
        Some(identity)
    );
    let followed = replicas[follower].status().await;
    assert_eq!(followed["leader"], false, "{followed:#}");
    assert_eq!(
        cluster(&followed, "alpha")["phase"],
        "Pending",
        "{followed:#}"
    );
    let (_, metrics) = replicas[follower].get_status("/metrics").await.unwrap();
    assert!(metrics.contains("cairn_leader 0"), "{metrics}");
    assert!(!metrics.contains("cairn_reconciles_total{"), "{metrics}");
    // Both are ready: the Service may send a webhook to either.
    assert_eq!(replicas[follower].get("/readyz").await.unwrap().0, 200);

    // A push webhook that reaches the follower is relayed to the leader through the Lease.
    let second = scale(&repo, "alpha", 2);
    replicas[follower].push_signed(&second).await;
    replicas[leader]
        .wait_status("the relayed commit applied", Duration::from_secs(90), |s| {
            ready_at(s, "alpha", &second)
        })
        .await;
    assert_eq!(md_replicas(mgmt.api.as_ref(), "alpha").await, 2);
    let followed = replicas[follower].status().await;
    assert_eq!(
        cluster(&followed, "alpha")["phase"],
        "Pending",
        "{followed:#}"
    );

    // Another holder takes the Lease (as a replica that won a race would): the leader steps
    // down at once and forgets what it knew; once that holder lapses, a leader is elected again
    // and reconciles the fleet anew.
    steal_lease(mgmt.api.as_ref()).await;
    replicas[leader]
        .wait_status("the leader stepping down", Duration::from_secs(30), |s| {
            s["leader"] == false && cluster(s, "alpha")["phase"] == "Pending"
        })
        .await;
    let leader = the_leader(&replicas).await;
    let follower = 1 - leader;
    replicas[leader]
        .wait_status("alpha Ready again", Duration::from_secs(60), |s| {
            ready_at(s, "alpha", &second)
        })
        .await;

    // The leader dies without releasing the Lease: the follower takes over within the lease
    // duration (plus one renew period to notice) and reconciles the next commit.
    replicas[leader].child.kill().unwrap();
    let killed = Instant::now();
    replicas[follower]
        .wait_status("the follower leading", Duration::from_secs(30), |s| {
            s["leader"] == true
        })
        .await;
    let handover = killed.elapsed();
    eprintln!("handover after the leader was killed: {handover:?} (lease {lease_duration:?})");
    assert!(
        handover < lease_duration + Duration::from_secs(2),
        "handover took {handover:?}"
    );
    assert_eq!(
        lease_holder(mgmt.api.as_ref()).await.as_deref(),
        Some(["r1", "r2"][follower])
    );
    let third = scale(&repo, "alpha", 1);
    replicas[follower].push_signed(&third).await;
    replicas[follower]
        .wait_status("the new leader applying", Duration::from_secs(90), |s| {
            ready_at(s, "alpha", &third)
        })
        .await;
    assert_eq!(md_replicas(mgmt.api.as_ref(), "alpha").await, 1);

    // SIGTERM: exit 0 and the Lease released for the next replica.
    let code = replicas[follower].terminate(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{}", replicas[follower].log_tail());
    assert_eq!(lease_holder(mgmt.api.as_ref()).await, None);
    replicas.clear();
    mgmt.stop().await;
}
