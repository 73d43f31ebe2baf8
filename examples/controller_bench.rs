//! The controller (`cairn run`), measured two ways (BENCHMARKS.md, "Controller").
//!
//! ```sh
//! benches/controller-bench.sh                       # builds, then both modes
//! controller_bench latency [--commits 10] [--cairn target/release/cairn] [--json]
//! controller_bench fleet [--clusters 1000] [--concurrency 4] [--json]
//! ```
//!
//! `latency`: commit-to-applied time with the webhook. A management API server (the test
//! assets) with the CAPI and provider CRDs, and the provider simulator in this process; a git
//! repository with one Docker cluster that does not pivot and a profile of one inline ConfigMap
//! layer; the release `cairn run` binary following it (`--poll-interval 1h`, so only the
//! webhook brings commits). Once the cluster is Ready, each round commits a new value in the
//! ConfigMap (the cluster's bundle changes: an add-on in its workload cluster), POSTs a signed
//! GitHub push webhook and polls `/status` every 10 ms until the cluster is Ready at that
//! commit. Total is from just before the POST until that `/status` answer; apply is the
//! controller's own measure of the reconcile (`took_seconds`); overhead = total - apply. The
//! controller's log (info, with timestamps) splits the overhead: webhook received, revision
//! fetched and rendered, reconcile started.
//!
//! `fleet`: one full pass over a synthetic fleet (`cairn::synth`, committed to a git repository)
//! by the controller running in this process, management-side stages only: no provider could
//! provision 1,000 clusters here, so the reconciler applies what `apply_cluster` applies in the
//! management cluster, with the real stage apply (observe, server-side apply of what drifted,
//! inventories, phase annotations), minus every wait for machines and minus the add-ons and the
//! pivot (they go to workload clusters): the bootstrap stage (the KubeadmControlPlane and its
//! machine template handed over create-only, as `provision` does), and for clusters that do not
//! pivot the workload stage. Only an API server with the CRDs runs; no simulator. Pass 1 starts
//! from an empty API server; pass 2 is a new controller (a restart) on the same state, where
//! every cluster is reconciled again as new and must write nothing. Each pass is timed from
//! `Controller::new` until every cluster is Ready at the commit in the controller's view. Then
//! pass 2's controller gets a commit that scales one cluster's pool, triggered as a webhook
//! does (`Shared::trigger`), timed until that cluster is Ready at it: the whole revision is
//! rendered again. Memory is this process's VmHWM (the controller plus this harness; the API
//! server and etcd are separate processes, reported apart); CPU time is read from `/proc` for
//! both. Request counts are the controller client's and the API server's own.
//!
//! Exit code 1 when a goal is missed: latency overhead (median) over 1 s, a peak over 256 MiB,
//! or a write to the converged fleet.

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use cairn::apply::api::KubeClusterApi;
use cairn::apply::groups::{Group, bootstrap_groups, stage};
use cairn::apply::stage::{StageOptions, apply_stage};
use cairn::controller::schedule::Backoff;
use cairn::controller::shared::{FAILED, FleetView, READY, Shared};
use cairn::controller::webhook::github_signature;
use cairn::controller::{Controller, ControllerOptions, Reconciler};
use cairn::kube_client::install_crds;
use cairn::lifecycle::cluster::report_stage;
use cairn::lifecycle::phase::record_phase;
use cairn::lifecycle::{ApplyOptions, ClusterError, Phase};
use cairn::local::simulator::SimulatorConfig;
use cairn::local::{ApiServer, ApiServerOptions, Assets};
use cairn::model::types::StageName;
use cairn::render::Bundle;
use cairn::source::{Credentials, SourceSpec};
use serde_json::{Value, json};

const SECRET: &str = "controller-bench-webhook-secret";
const CLUSTER: &str = "bench-1";
const STATUS_POLL: Duration = Duration::from_millis(10);
const MIB: f64 = 1024.0 * 1024.0;

fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools")
}

fn usage() -> anyhow::Error {
    anyhow::anyhow!(
        "usage: controller_bench latency [--commits N] [--cairn PATH] [--json]\n       \
         controller_bench fleet [--clusters N] [--concurrency N] [--json]"
    )
}

struct Args {
    mode: String,
    commits: usize,
    cairn: Option<PathBuf>,
    clusters: usize,
    concurrency: usize,
    json: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        mode: args.next().ok_or_else(usage)?,
        commits: 10,
        cairn: None,
        clusters: 1000,
        concurrency: 4,
        json: false,
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(usage);
        match arg.as_str() {
            "--commits" => parsed.commits = value()?.parse()?,
            "--cairn" => parsed.cairn = Some(PathBuf::from(value()?)),
            "--clusters" => parsed.clusters = value()?.replace('_', "").parse()?,
            "--concurrency" => parsed.concurrency = value()?.parse()?,
            "--json" => parsed.json = true,
            _ => return Err(usage()),
        }
    }
    ensure!(
        parsed.commits > 0 && parsed.clusters > 0,
        "nothing to measure"
    );
    Ok(parsed)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    match args.mode.as_str() {
        "latency" => latency(&args).await,
        "fleet" => fleet(&args).await,
        _ => Err(usage()),
    }
}

// ---------------------------------------------------------------------------------------------
// Shared by both modes.

/// A management API server with the CAPI and provider CRDs installed.
async fn management(root: &Path) -> Result<(ApiServer, Assets)> {
    let assets = Assets::find_or_build(&tools_dir())?;
    let crds = cairn::local::crds::load_crds(&cairn::local::crds::crd_dir(&tools_dir())?)?;
    let server =
        ApiServer::start(&assets, ApiServerOptions::new("mgmt", root.join("mgmt"))).await?;
    let api = KubeClusterApi::new(server.client().await?, false);
    install_crds(api.dynamic(), &crds, Duration::from_secs(120)).await?;
    Ok((server, assets))
}

/// `git` in `dir` with a fixed identity and no signing; its trimmed output.
fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=cairn-bench",
            "-c",
            "user.email=bench@cairn.invalid",
        ])
        .args(["-c", "commit.gpgsign=false"])
        .args(args)
        .output()
        .context("cannot run git")?;
    ensure!(
        out.status.success(),
        "git {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Creates a repository in `dir` (which holds the fleet) and commits everything; the commit.
fn commit_all(dir: &Path, message: &str) -> Result<String> {
    if !dir.join(".git").exists() {
        git(dir, &["init", "-q", "-b", "main"])?;
    }
    git(dir, &["add", "-A"])?;
    git(dir, &["commit", "-qm", message])?;
    git(dir, &["rev-parse", "HEAD"])
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// A `/proc/<pid>/status` field in bytes (`VmHWM`, `VmRSS`).
fn proc_status(pid: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(&format!("{field}:")))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!("{cpus} CPUs, load {}", load.join(" "))
}

// ---------------------------------------------------------------------------------------------
// latency: commit -> webhook -> applied, with the real `cairn run`.

fn latency_files(round: usize) -> Vec<(&'static str, String)> {
    vec![
        (
            "fleet.yaml",
            "apiVersion: cairn.dev/v1alpha1\nkind: Fleet\nmetadata: {name: bench}\n\
             spec:\n  defaults: {kubernetesVersion: v1.34.2, pivot: false}\n"
                .to_string(),
        ),
        (
            "profiles/tiny.yaml",
            format!(
                "apiVersion: cairn.dev/v1alpha1\nkind: ClusterProfile\nmetadata: {{name: tiny}}\n\
                 spec:\n  layers:\n    - name: hello\n      namespace: default\n      inline: |\n        \
                 apiVersion: v1\n        kind: ConfigMap\n        metadata: {{name: hello}}\n        \
                 data: {{cluster: \"${{CLUSTER_NAME}}\", round: \"{round}\"}}\n"
            ),
        ),
        (
            "clusters/bench-1.yaml",
            format!(
                "apiVersion: cairn.dev/v1alpha1\nkind: Cluster\nmetadata: {{name: {CLUSTER}}}\nspec:\n  \
                 infrastructure: {{provider: docker, docker: {{}}}}\n  \
                 controlPlane: {{replicas: 1, machine: {{}}}}\n  \
                 workers: [{{name: md-0, replicas: 1, machine: {{}}}}]\n  profiles: [tiny]\n"
            ),
        ),
    ]
}

fn write_files(root: &Path, files: &[(&str, String)]) -> Result<()> {
    for (path, text) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().context("a file in a directory")?)?;
        std::fs::write(path, text)?;
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The `cairn run` process, killed when dropped.
struct RunProcess(Child);

impl Drop for RunProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn status(http: &reqwest::Client, base: &str) -> Option<Value> {
    let response = http.get(format!("{base}/status")).send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    serde_json::from_str(&response.text().await.ok()?).ok()
}

fn ready_at(status: &Value, revision: &str) -> bool {
    let c = &status["clusters"][CLUSTER];
    c["phase"] == READY && c["revision"] == revision
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Seconds since the epoch of an RFC 3339 UTC timestamp as tracing writes it
/// (`2025-11-24T06:10:00.123456Z`).
fn parse_timestamp(text: &str) -> Option<f64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time.split(':');
    let (h, min) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let s: f64 = t.next()?.parse().ok()?;
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + min * 60) as f64 + s)
}

/// Controller log events: (epoch seconds, which).
fn log_events(path: &Path) -> Vec<(f64, &'static str)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut events = Vec::new();
    for line in text.lines() {
        let Some(at) = line.split_whitespace().next().and_then(parse_timestamp) else {
            continue;
        };
        let which = if line.contains("push webhook: fetching now") {
            "webhook"
        } else if line.contains("rendered a new revision") {
            "rendered"
        } else if line.contains("reconciling") && line.contains(CLUSTER) {
            "launched"
        } else {
            continue;
        };
        events.push((at, which));
    }
    events
}

/// One commit's measurements, in seconds from just before the POST.
#[derive(Clone, Debug, serde::Serialize)]
struct Round {
    commit: String,
    total: f64,
    apply: f64,
    overhead: f64,
    /// From the controller's log: the webhook handled, the revision fetched and rendered, and
    /// the cluster's reconcile started.
    webhook: Option<f64>,
    rendered: Option<f64>,
    launched: Option<f64>,
}

async fn latency(args: &Args) -> Result<()> {
    // `--cairn`, else the one `cargo` builds for this profile.
    let cairn = match &args.cairn {
        Some(path) => path.clone(),
        None => support::cairn_binary()?,
    };
    let root = tempfile::tempdir()?;
    let (server, assets) = management(root.path()).await?;
    let mut config = SimulatorConfig::new(
        server.kubeconfig.clone(),
        root.path().join("clusters"),
        assets,
    );
    config.machine_delay = Duration::from_millis(200);
    config.poll_interval = Duration::from_millis(500);
    let (stop_simulator, shutdown) = tokio::sync::watch::channel(false);
    let simulator = tokio::spawn(cairn::local::simulator::run(config, shutdown));

    let repo = root.path().join("fleet");
    write_files(&repo, &latency_files(0))?;
    let first = commit_all(&repo, "fleet")?;

    let port = free_port()?;
    let status_port = free_port()?;
    let secret = root.path().join("webhook-secret");
    std::fs::write(&secret, format!("{SECRET}\n"))?;
    let log = root.path().join("cairn-run.log");
    let child = Command::new(&cairn)
        .arg("run")
        .arg("--repo")
        .arg(&repo)
        .arg("--kubeconfig")
        .arg(&server.kubeconfig_path)
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--status-listen")
        .arg(format!("127.0.0.1:{status_port}"))
        .arg("--state-dir")
        .arg(root.path().join("state"))
        .arg("--webhook-secret-file")
        .arg(&secret)
        .args(["--poll-interval", "1h", "--timeout", "120s"])
        .env("CAIRN_LOG", "warn,cairn=info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .with_context(|| format!("cannot start {}", cairn.display()))?;
    let run = RunProcess(child);
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    // /status is served apart from the webhooks.
    let status_base = format!("http://127.0.0.1:{status_port}");

    let started = Instant::now();
    loop {
        if status(&http, &status_base)
            .await
            .is_some_and(|s| ready_at(&s, &first))
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("{CLUSTER} not Ready after 300 s; log:\n{}", log_tail(&log));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "{CLUSTER} provisioned and Ready in {:.1} s (machine: {})",
        started.elapsed().as_secs_f64(),
        machine()
    );

    let mut rounds = Vec::new();
    let mut starts = Vec::new();
    for round in 1..=args.commits {
        // Each round starts from an idle controller.
        tokio::time::sleep(Duration::from_secs(1)).await;
        write_files(&repo, &latency_files(round))?;
        let commit = commit_all(&repo, &format!("round {round}"))?;
        let body = serde_json::to_vec(&json!({"ref": "refs/heads/main", "after": commit}))?;
        let signature = github_signature(SECRET.as_bytes(), &body);

        let wall = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64();
        let t0 = Instant::now();
        let response = http
            .post(format!("{base}/webhook/github"))
            .header("x-github-event", "push")
            .header("x-hub-signature-256", signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        ensure!(
            response.status().as_u16() == 202,
            "webhook answered {}: {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
        let done = loop {
            if let Some(s) = status(&http, &status_base).await
                && ready_at(&s, &commit)
            {
                break s;
            }
            if t0.elapsed() > Duration::from_secs(120) {
                bail!(
                    "round {round}: not Ready at {commit} after 120 s; log:\n{}",
                    log_tail(&log)
                );
            }
            tokio::time::sleep(STATUS_POLL).await;
        };
        let total = t0.elapsed().as_secs_f64();
        let apply = done["clusters"][CLUSTER]["took_seconds"]
            .as_f64()
            .context("/status has no took_seconds")?;
        starts.push(wall);
        rounds.push(Round {
            commit: commit[..12].to_string(),
            total,
            apply,
            overhead: total - apply,
            webhook: None,
            rendered: None,
            launched: None,
        });
    }

    // The controller's log splits each round's overhead.
    let events = log_events(&log);
    for (i, round) in rounds.iter_mut().enumerate() {
        let (from, to) = (starts[i], starts.get(i + 1).copied().unwrap_or(f64::MAX));
        let first = |which: &str| {
            events
                .iter()
                .find(|(at, w)| *w == which && *at >= from && *at < to)
                .map(|(at, _)| at - from)
        };
        round.webhook = first("webhook");
        round.rendered = first("rendered");
        round.launched = first("launched");
    }
    drop(run);
    let _ = stop_simulator.send(true);
    if let Ok(Err(e)) = simulator.await {
        eprintln!("simulator: {e}");
    }

    let ms = |v: f64| v * 1e3;
    let opt_ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}", v * 1e3));
    println!(
        "commit-to-applied with the webhook, 1 cluster (docker, no pivot), {} commits, \
         /status polled every {} ms; machine: {}",
        rounds.len(),
        STATUS_POLL.as_millis(),
        machine()
    );
    println!(
        "{:>5} {:>12} {:>9} {:>9} {:>9} | {:>8} {:>9} {:>9}",
        "round", "commit", "total ms", "apply ms", "overhead", "webhook", "rendered", "launched"
    );
    for (i, r) in rounds.iter().enumerate() {
        println!(
            "{:>5} {:>12} {:>9.0} {:>9.0} {:>9.0} | {:>8} {:>9} {:>9}",
            i + 1,
            r.commit,
            ms(r.total),
            ms(r.apply),
            ms(r.overhead),
            opt_ms(r.webhook),
            opt_ms(r.rendered),
            opt_ms(r.launched)
        );
    }
    let col = |f: fn(&Round) -> Option<f64>| {
        let v: Vec<f64> = rounds.iter().filter_map(f).collect();
        median(&v)
    };
    let (total, apply, overhead) = (
        col(|r| Some(r.total)),
        col(|r| Some(r.apply)),
        col(|r| Some(r.overhead)),
    );
    println!(
        "{:>5} {:>12} {:>9.0} {:>9.0} {:>9.0} | {:>8.1} {:>9.1} {:>9.1}",
        "med",
        "",
        ms(total),
        ms(apply),
        ms(overhead),
        ms(col(|r| r.webhook)),
        ms(col(|r| r.rendered)),
        ms(col(|r| r.launched))
    );
    let worst = rounds.iter().map(|r| r.overhead).fold(0.0, f64::max);
    println!(
        "overhead: median {:.0} ms, worst {:.0} ms (goal: at most 1 s over the apply)",
        ms(overhead),
        ms(worst)
    );
    if args.json {
        println!(
            "{}",
            json!({"mode": "latency", "rounds": rounds, "median": {
                "total": total, "apply": apply, "overhead": overhead}, "worst_overhead": worst})
        );
    }
    ensure!(
        overhead <= 1.0,
        "over the goal: median overhead {overhead:.3} s"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// fleet: one full pass over 1,000 clusters, management-side stages only.

/// What the reconciler saw in a pass.
#[derive(Default)]
struct PassStats {
    /// The controller's management client (its request counters).
    api: OnceLock<Arc<KubeClusterApi>>,
    clusters: AtomicU64,
    pivoting: AtomicU64,
    /// Objects the stage applies wrote (server-side apply) and left alone, and both together
    /// (a handed-over object counts in both stages).
    written: AtomicU64,
    unchanged: AtomicU64,
    objects: AtomicU64,
}

/// `apply_cluster`'s management-side writes without its waits: `provision` (bootstrap stage,
/// phases Provisioning and ControlPlaneInitialized when it wrote) and, for clusters that do not
/// pivot, `converge_capi` (workload stage, phase Converging). Skipped: the waits for the
/// control plane and the rollouts, the add-ons and the pivot (workload clusters), and the Ready
/// phase that follows the add-ons.
async fn management_side(
    mgmt: &KubeClusterApi,
    bundle: &Bundle,
    opts: &ApplyOptions,
    stats: &PassStats,
) -> Result<(), ClusterError> {
    let name = bundle.cluster.as_str();
    let stage_opts = StageOptions {
        prune: opts.prune,
        timeout: opts.timeout,
    };
    let mut reports = Vec::new();
    let boot = apply_stage(
        mgmt,
        name,
        StageName::Bootstrap,
        &bootstrap_groups(bundle),
        stage_opts,
    )
    .await?;
    report_stage(opts, name, StageName::Bootstrap, &boot);
    let provisioned = boot.has_changes();
    if provisioned {
        record_phase(mgmt, bundle, Phase::Provisioning, opts).await?;
        // (here `provision` waits for the control plane and the kubeconfig Secret)
        (opts.progress)(name, "control plane initialized");
        record_phase(mgmt, bundle, Phase::ControlPlaneInitialized, opts).await?;
    }
    reports.push(boot);
    if !bundle.pivot {
        let workload = [Group {
            objects: stage(bundle, StageName::Workload).to_vec(),
            wait: false,
            create_only: false,
            impersonate: None,
        }];
        let r = apply_stage(mgmt, name, StageName::Workload, &workload, stage_opts).await?;
        report_stage(opts, name, StageName::Workload, &r);
        if r.has_changes() || provisioned {
            record_phase(mgmt, bundle, Phase::Converging, opts).await?;
        }
        // (here `converge_capi` waits for the rollouts; then the add-ons and Ready)
        reports.push(r);
    }
    stats.clusters.fetch_add(1, Ordering::Relaxed);
    stats
        .pivoting
        .fetch_add(u64::from(bundle.pivot), Ordering::Relaxed);
    for r in &reports {
        stats
            .written
            .fetch_add(r.written() as u64, Ordering::Relaxed);
        stats
            .unchanged
            .fetch_add(r.unchanged() as u64, Ordering::Relaxed);
        stats
            .objects
            .fetch_add((r.written() + r.unchanged()) as u64, Ordering::Relaxed);
    }
    Ok(())
}

fn reconciler(stats: Arc<PassStats>) -> Reconciler {
    Arc::new(move |mgmt, bundle, opts| {
        let stats = stats.clone();
        Box::pin(async move {
            stats.api.get_or_init(|| mgmt.clone());
            management_side(&mgmt, &bundle, &opts, &stats).await
        })
    })
}

/// What the reconciler and the API saw, at one moment.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
struct Counts {
    /// Clusters reconciled, and how many of them pivot.
    clusters: u64,
    pivoting: u64,
    /// Objects of the stages applied: written (server-side apply) or left alone.
    objects: u64,
    written: u64,
    unchanged: u64,
    /// The controller's client: write requests (applies, inventories, phase annotations) and
    /// every request; and the requests the API server counted.
    write_requests: u64,
    requests: u64,
    server_requests: u64,
    /// CPU time (user + system) of this process, and of kube-apiserver and etcd.
    cpu_seconds: f64,
    server_cpu_seconds: f64,
}

impl Counts {
    async fn now(stats: &PassStats, client: &kube::Client, server: &[u32]) -> Result<Counts> {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let counters = stats.api.get().map(|api| &api.counters);
        Ok(Counts {
            clusters: load(&stats.clusters),
            pivoting: load(&stats.pivoting),
            objects: load(&stats.objects),
            written: load(&stats.written),
            unchanged: load(&stats.unchanged),
            write_requests: counters.map_or(0, |c| load(&c.writes)),
            requests: counters.map_or(0, |c| load(&c.requests)),
            server_requests: support::served(client).await?,
            cpu_seconds: cpu_seconds(std::process::id()),
            server_cpu_seconds: server.iter().map(|pid| cpu_seconds(*pid)).sum(),
        })
    }

    fn since(self, before: Counts) -> Counts {
        Counts {
            clusters: self.clusters - before.clusters,
            pivoting: self.pivoting - before.pivoting,
            objects: self.objects - before.objects,
            written: self.written - before.written,
            unchanged: self.unchanged - before.unchanged,
            write_requests: self.write_requests - before.write_requests,
            requests: self.requests - before.requests,
            server_requests: self.server_requests.saturating_sub(before.server_requests),
            cpu_seconds: self.cpu_seconds - before.cpu_seconds,
            server_cpu_seconds: self.server_cpu_seconds - before.server_cpu_seconds,
        }
    }
}

#[derive(Debug, serde::Serialize)]
struct Pass {
    seconds: f64,
    /// Until the revision was fetched and rendered (in the view).
    rendered_seconds: f64,
    counts: Counts,
    /// This process at the end of the pass.
    rss_bytes: u64,
    hwm_bytes: u64,
    /// The commit made after the pass, if any.
    change: Option<Change>,
}

/// A commit that changes one cluster, made once the fleet is converged, and what it cost: the
/// controller renders the whole new revision while it still holds the previous one.
#[derive(Debug, serde::Serialize)]
struct Change {
    cluster: String,
    /// From the trigger (what a webhook does) until the new revision was rendered, and until
    /// the changed cluster was Ready at it.
    rendered_seconds: f64,
    seconds: f64,
    /// The controller's measure of that cluster's reconcile.
    apply_seconds: f64,
    counts: Counts,
    /// This process's peak after the commit was applied.
    hwm_bytes: u64,
}

/// CPU time (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name in parentheses: state is field 3, utime 14 and stime 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (ticks(11) + ticks(12)) / per_second
}

fn self_status(field: &str) -> u64 {
    proc_status(&std::process::id().to_string(), field).unwrap_or(0)
}

/// The first cluster (by path) that does not pivot gets one more worker in its first pool
/// (its workload stage changes), committed; its name and the commit.
fn scale_one_cluster(repo: &Path) -> Result<(String, String)> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(repo.join("clusters"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(walkdir::DirEntry::into_path)
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        if !text.contains("\n  pivot: false") {
            continue;
        }
        let mut done = false;
        let lines: Vec<String> = text
            .lines()
            .map(|line| match line.strip_prefix("      replicas: ") {
                Some(n) if !done => {
                    done = true;
                    format!("      replicas: {}", n.parse::<u64>().unwrap_or(1) + 1)
                }
                _ => line.to_string(),
            })
            .collect();
        if !done {
            continue;
        }
        std::fs::write(&file, lines.join("\n") + "\n")?;
        let cluster = file
            .file_stem()
            .context("a cluster file")?
            .to_string_lossy()
            .into_owned();
        let commit = commit_all(repo, &format!("{cluster}: one more worker"))?;
        return Ok((cluster, commit));
    }
    bail!("no cluster with `pivot: false` and a worker pool to scale")
}

/// Errors in the view: a source or render problem, or a failed cluster.
fn view_error(view: &FleetView) -> Option<anyhow::Error> {
    if let Some(e) = &view.render_error {
        return Some(anyhow::anyhow!("the fleet does not render: {e}"));
    }
    if let Some(e) = &view.source_error {
        return Some(anyhow::anyhow!("cannot fetch the fleet: {e}"));
    }
    let (name, c) = view.clusters.iter().find(|(_, c)| c.phase == FAILED)?;
    Some(anyhow::anyhow!(
        "{name} failed: {}",
        c.last_error.as_deref().unwrap_or("")
    ))
}

/// What a controller is watched for.
struct Watch<'a> {
    shared: &'a Shared,
    stats: &'a PassStats,
    client: &'a kube::Client,
    /// kube-apiserver and etcd.
    server: &'a [u32],
    start: Instant,
    revision: &'a str,
    clusters: usize,
    /// Commit a change to one cluster in this repository after the pass.
    change: Option<&'a Path>,
}

/// Watches the controller's view until every cluster is Ready at the revision (the pass),
/// then, with `change`, commits a change to one cluster, triggers a fetch and waits until that
/// cluster is Ready at the new commit.
async fn watch(w: Watch<'_>, before: Counts) -> Result<Pass> {
    let mut rendered = f64::NAN;
    let mut last_report = Instant::now();
    let seconds = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let view = w.shared.view();
        if rendered.is_nan() && view.revision.as_deref() == Some(w.revision) {
            rendered = w.start.elapsed().as_secs_f64();
        }
        if let Some(e) = view_error(&view) {
            return Err(e);
        }
        let ready = view
            .clusters
            .values()
            .filter(|c| c.phase == READY && c.revision.as_deref() == Some(w.revision))
            .count();
        if ready == w.clusters {
            break w.start.elapsed().as_secs_f64();
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "   {:>5.0} s: {ready} of {} clusters Ready",
                w.start.elapsed().as_secs_f64(),
                w.clusters
            );
            last_report = Instant::now();
        }
        ensure!(
            w.start.elapsed() < Duration::from_secs(3600),
            "only {ready} of {} Ready after an hour",
            w.clusters
        );
    };
    let after_pass = Counts::now(w.stats, w.client, w.server).await?;
    let mut pass = Pass {
        seconds,
        rendered_seconds: rendered,
        counts: after_pass.since(before),
        rss_bytes: self_status("VmRSS"),
        hwm_bytes: self_status("VmHWM"),
        change: None,
    };
    let Some(repo) = w.change else {
        return Ok(pass);
    };
    let (cluster, commit) = scale_one_cluster(repo)?;
    let before_change = Counts::now(w.stats, w.client, w.server).await?;
    let t1 = Instant::now();
    w.shared.trigger();
    let mut change_rendered = f64::NAN;
    let apply_seconds = loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let view = w.shared.view();
        if change_rendered.is_nan() && view.revision.as_deref() == Some(commit.as_str()) {
            change_rendered = t1.elapsed().as_secs_f64();
        }
        if let Some(e) = view_error(&view) {
            return Err(e);
        }
        if let Some(c) = view.clusters.get(&cluster)
            && c.phase == READY
            && c.revision.as_deref() == Some(commit.as_str())
        {
            break c.took_seconds.unwrap_or(f64::NAN);
        }
        ensure!(
            t1.elapsed() < Duration::from_secs(600),
            "{cluster} not Ready at {commit} after 10 minutes"
        );
    };
    let seconds = t1.elapsed().as_secs_f64();
    pass.change = Some(Change {
        cluster,
        rendered_seconds: change_rendered,
        seconds,
        apply_seconds,
        counts: Counts::now(w.stats, w.client, w.server)
            .await?
            .since(before_change),
        hwm_bytes: self_status("VmHWM"),
    });
    Ok(pass)
}

/// One pass of a new controller over `repo` at `revision`: until every cluster is Ready (and,
/// with `change`, the commit after it).
async fn pass(
    server: &ApiServer,
    repo: &Path,
    state: &Path,
    revision: &str,
    clusters: usize,
    concurrency: usize,
    change: bool,
) -> Result<Pass> {
    let client = server.client().await?;
    let stats = Arc::new(PassStats::default());
    let server_pids = server.pids();
    let before = Counts::now(&stats, &client, &server_pids).await?;
    let shared = Arc::new(Shared::new(repo.display().to_string(), "main".into(), None));
    let opts = ControllerOptions {
        source: SourceSpec {
            url: repo.display().to_string(),
            branch: "main".into(),
            credentials: Credentials::default(),
        },
        path: None,
        state_dir: state.to_path_buf(),
        poll_interval: Duration::from_secs(3600),
        reconcile_interval: Duration::from_secs(3600),
        concurrency,
        timeout: Duration::from_secs(120),
        prune: false,
        max_prune: Default::default(),
        agent_source_url: None,
        backoff: Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(10),
        },
        shutdown_grace: Duration::from_secs(10),
    };
    let start = Instant::now();
    let controller = Controller::new(
        KubeClusterApi::new(client.clone(), false),
        opts,
        shared.clone(),
    )
    .await?
    .with_reconciler(reconciler(stats.clone()));
    let (_leading_tx, leading) = tokio::sync::watch::channel(true);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let w = Watch {
        shared: &shared,
        stats: &stats,
        client: &client,
        server: &server_pids,
        start,
        revision,
        clusters,
        change: change.then_some(repo),
    };
    let watched = async {
        let outcome = watch(w, before).await;
        let _ = stop_tx.send(());
        outcome
    };
    let stopped = async {
        let _ = stop_rx.await;
    };
    let ((), outcome) = tokio::join!(controller.run(leading, stopped), watched);
    outcome
}

async fn fleet(args: &Args) -> Result<()> {
    let root = tempfile::tempdir()?;
    let (server, _assets) = management(root.path()).await?;
    let repo = root.path().join("fleet");
    cairn::synth::write_synthetic_fleet(&repo, args.clusters)?;
    let revision = commit_all(&repo, "synthetic fleet")?;
    let state = root.path().join("state");
    let baseline = self_status("VmHWM");
    eprintln!(
        "== {} clusters, concurrency {}; machine: {}; this process before the controller: \
         VmHWM {:.0} MiB",
        args.clusters,
        args.concurrency,
        machine(),
        baseline as f64 / MIB
    );

    let mut passes = Vec::new();
    for (i, what) in [
        "new controller, empty API server",
        "new controller (a restart) on the converged fleet, then a commit",
    ]
    .iter()
    .enumerate()
    {
        eprintln!("== pass {}: {what}", i + 1);
        let p = pass(
            &server,
            &repo,
            &state,
            &revision,
            args.clusters,
            args.concurrency,
            i == 1,
        )
        .await?;
        eprintln!(
            "   {:.1} s ({:.1} s to fetch and render), {} objects written, {} write requests",
            p.seconds, p.rendered_seconds, p.counts.written, p.counts.write_requests
        );
        passes.push(p);
    }

    let mut servers = BTreeMap::new();
    for pid in server.pids() {
        let pid = pid.to_string();
        let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap_or_default()
            .trim()
            .to_string();
        let rss = proc_status(&pid, "VmRSS").unwrap_or(0);
        let hwm = proc_status(&pid, "VmHWM").unwrap_or(0);
        servers.insert(name, (rss, hwm));
    }
    let hwm = self_status("VmHWM");

    println!(
        "controller, {} clusters (synthetic fleet, management-side stages only), concurrency {}; \
         machine: {}",
        args.clusters,
        args.concurrency,
        machine()
    );
    println!(
        "{:<8} {:>8} {:>9} {:>9} {:>8} {:>9} {:>8} {:>9} {:>9} {:>8} {:>8} {:>8}",
        "pass",
        "wall s",
        "render s",
        "objects",
        "written",
        "unchanged",
        "writes",
        "requests",
        "served",
        "CPU s",
        "srv CPU",
        "HWM MiB"
    );
    let row = |name: &str, seconds: f64, rendered: f64, c: &Counts, hwm: u64| {
        println!(
            "{name:<8} {seconds:>8.2} {rendered:>9.2} {:>9} {:>8} {:>9} {:>8} {:>9} {:>9} {:>8.1} \
             {:>8.1} {:>8.0}",
            c.objects,
            c.written,
            c.unchanged,
            c.write_requests,
            c.requests,
            c.server_requests,
            c.cpu_seconds,
            c.server_cpu_seconds,
            hwm as f64 / MIB
        );
    };
    for (i, p) in passes.iter().enumerate() {
        row(
            &(i + 1).to_string(),
            p.seconds,
            p.rendered_seconds,
            &p.counts,
            p.hwm_bytes,
        );
    }
    let change = passes[1]
        .change
        .as_ref()
        .context("the commit after pass 2")?;
    row(
        "commit",
        change.seconds,
        change.rendered_seconds,
        &change.counts,
        change.hwm_bytes,
    );
    let first = &passes[0];
    println!(
        "clusters: {} ({} pivoting: bootstrap stage only); objects/s in pass 1: {:.0}; the commit \
         scaled {} (its reconcile took {:.2} s)",
        first.counts.clusters,
        first.counts.pivoting,
        first.counts.objects as f64 / first.seconds,
        change.cluster,
        change.apply_seconds
    );
    println!(
        "peak memory (VmHWM) of this process: {:.0} MiB (before the controller: {:.0} MiB); \
         goal at most 256 MiB",
        hwm as f64 / MIB,
        baseline as f64 / MIB
    );
    for (name, (rss, hwm)) in &servers {
        println!(
            "{name}: RSS {:.0} MiB, peak {:.0} MiB",
            *rss as f64 / MIB,
            *hwm as f64 / MIB
        );
    }
    if args.json {
        let servers: BTreeMap<&String, Value> = servers
            .iter()
            .map(|(n, (rss, hwm))| (n, json!({"rss_bytes": rss, "hwm_bytes": hwm})))
            .collect();
        println!(
            "{}",
            json!({"mode": "fleet", "clusters": args.clusters, "concurrency": args.concurrency,
                   "passes": passes, "hwm_bytes": hwm, "baseline_hwm_bytes": baseline,
                   "servers": servers})
        );
    }
    let converged = &passes[1].counts;
    ensure!(
        converged.written == 0 && converged.write_requests == 0,
        "the converged fleet was written to again: {} objects, {} write requests",
        converged.written,
        converged.write_requests
    );
    ensure!(
        hwm as f64 <= 256.0 * MIB,
        "over the goal: {:.0} MiB peak",
        hwm as f64 / MIB
    );
    Ok(())
}
