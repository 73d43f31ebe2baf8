//! Steady-state diff of the management-side stages (bootstrap and workload) of a fleet, against a
//! local management API server, side by side with `kubectl diff --server-side` on the same
//! objects: wall time and API requests of each (BENCHMARKS.md, "Diff").
//!
//! ```sh
//! cargo run --release --example diff_bench            # 100 clusters, 5 timed runs each
//! cargo run --release --example diff_bench -- 200 3   # CLUSTERS RUNS
//! ```
//!
//! It starts kube-apiserver and etcd (the test assets, built on first use), installs the CAPI
//! CRDs, writes a fleet of Docker clusters that stay in the management cluster (`pivot: false`,
//! no profiles, so there are no add-ons and no workload cluster), and applies their bootstrap and
//! workload stages with cairn's own stage apply (server-side apply, field manager `cairn`, with
//! inventories). No simulator runs: status does not take part in a diff. Then, after one
//! untimed warm-up round, each of these runs RUNS times and the median is reported:
//!
//! - `cairn (library)`: `cairn::apply::stage::plan` of both stages of every cluster over one
//!   fresh `KubeClusterApi` (cold discovery, as a new process has), 4 clusters at a time as
//!   `cairn diff` does;
//! - `cairn diff` (CLI): the release binary as a user runs it, rendering included; it also looks
//!   for each cluster's workload kubeconfig Secret (one GET each) to plan the add-ons;
//! - `kubectl diff --server-side --field-manager=cairn -f DIR`: one file per cluster with the
//!   distinct objects of both stages (the bootstrap stage hands the KubeadmControlPlane and its
//!   machine template over to the workload stage, so those appear once, as the workload stage
//!   renders them), with a warm discovery cache.
//!
//! Requests are counted on the server (`apiserver_request_total` before and after: resource
//! requests, not discovery), and on the client: cairn's `counters.requests` (discovery not
//! included) and kubectl's `-v=6` response lines (its discovery cache is warm, so there is none). Every tool must find nothing to change, or the benchmark fails.

#[path = "support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use cairn::apply::api::KubeClusterApi;
use cairn::apply::groups::Group;
use cairn::apply::groups::{handed_over, stage as stage_objects};
use cairn::apply::stage::{self, StageOptions, apply_stage};
use cairn::diff::key::ObjectKey;
use cairn::kube_client::install_crds;
use cairn::local::{ApiServer, ApiServerOptions, Assets};
use cairn::model::RepoSnapshot;
use cairn::model::types::StageName;
use cairn::render::{Bundle, render_repo};
use serde_json::Value;
use tokio::sync::Semaphore;

/// Clusters diffed at once, as `cairn diff` does.
const CONCURRENCY: usize = 4;

fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools")
}

/// A Docker cluster that stays in the management cluster: 1 or 3 control-plane machines and 1
/// to 3 worker pools, so the fleet renders 11 to 17 management-side objects per cluster.
fn cluster_yaml(i: usize) -> String {
    let mut workers = String::new();
    for pool in 0..1 + i % 3 {
        workers.push_str(&format!(
            "    - name: md-{pool}\n      replicas: {}\n      machine: {{}}\n",
            1 + (i + pool) % 4
        ));
    }
    format!(
        "apiVersion: cairn.dev/v1alpha1\nkind: Cluster\nmetadata:\n  name: bench-{i:03}\n  \
         labels: {{env: bench}}\nspec:\n  infrastructure:\n    provider: docker\n    docker: {{}}\n  \
         controlPlane:\n    replicas: {}\n    machine: {{}}\n  workers:\n{workers}  pivot: false\n",
        if i.is_multiple_of(2) { 3 } else { 1 }
    )
}

fn write_fleet(dir: &Path, clusters: usize) -> Result<()> {
    let fleet = cairn::example::FILES
        .iter()
        .find(|(path, _)| *path == "fleet.yaml")
        .map(|(_, text)| *text)
        .context("the example has a fleet.yaml")?;
    std::fs::create_dir_all(dir.join("clusters"))?;
    std::fs::write(dir.join("fleet.yaml"), fleet)?;
    for i in 0..clusters {
        std::fs::write(
            dir.join(format!("clusters/bench-{i:03}.yaml")),
            cluster_yaml(i),
        )?;
    }
    Ok(())
}

/// Brings every cluster's management-side stages to the steady state `cairn apply` leaves.
async fn converge(api: &KubeClusterApi, bundles: &[Bundle]) -> Result<()> {
    let opts = StageOptions {
        prune: false,
        timeout: Duration::from_secs(60),
    };
    for bundle in bundles {
        let shared = handed_over(bundle);
        let (handed, owned): (Vec<Value>, Vec<Value>) = stage_objects(bundle, StageName::Bootstrap)
            .iter()
            .cloned()
            .partition(|o| shared.contains(&ObjectKey::of(o)));
        let group = |objects, create_only| Group {
            objects,
            wait: false,
            create_only,
            impersonate: None,
        };
        let bootstrap = [group(owned, false), group(handed, true)];
        apply_stage(api, &bundle.cluster, StageName::Bootstrap, &bootstrap, opts).await?;
        let workload = [group(
            stage_objects(bundle, StageName::Workload).to_vec(),
            false,
        )];
        apply_stage(api, &bundle.cluster, StageName::Workload, &workload, opts).await?;
    }
    Ok(())
}

/// What `cairn diff` does for the management side of every cluster: plans the bootstrap stage
/// (handed-over objects create-only) and the workload stage. Returns how many objects would be
/// written.
async fn plan_fleet(api: Arc<KubeClusterApi>, bundles: Arc<Vec<Bundle>>) -> Result<usize> {
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..bundles.len() {
        let (api, bundles, permits) = (api.clone(), bundles.clone(), permits.clone());
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            let bundle = &bundles[i];
            let shared = handed_over(bundle);
            let mut writes = 0;
            for (name, create_only) in [
                (StageName::Bootstrap, shared.as_slice()),
                (StageName::Workload, &[][..]),
            ] {
                let changes = stage::plan(
                    api.as_ref(),
                    &bundle.cluster,
                    name,
                    stage_objects(bundle, name),
                    create_only,
                    false,
                )
                .await?;
                writes += changes.iter().filter(|c| c.action.writes()).count();
            }
            anyhow::Ok(writes)
        });
    }
    let mut writes = 0;
    while let Some(done) = tasks.join_next().await {
        writes += done??;
    }
    Ok(writes)
}

/// One timed run: wall time, requests the server served meanwhile (its own background requests,
/// about one per 10 s, included), and the client's own count.
struct Sample {
    wall: Duration,
    server: u64,
    client: u64,
}

fn median(samples: &[Sample], f: impl Fn(&Sample) -> f64) -> f64 {
    let mut values: Vec<f64> = samples.iter().map(f).collect();
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Lines of kubectl's `-v=6` log that report a response: one per request.
fn kubectl_requests(log: &str) -> u64 {
    log.lines()
        .filter(|l| {
            l.contains("\"Response\"")
                || ["GET", "PATCH", "POST", "PUT", "DELETE"]
                    .iter()
                    .any(|verb| l.contains(&format!("] {verb} https://")))
        })
        .count() as u64
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().context("usage: diff_bench [CLUSTERS [RUNS]]"))
        .collect::<Result<_>>()?;
    let clusters = args.first().copied().unwrap_or(100);
    let runs = args.get(1).copied().unwrap_or(5).max(1);

    let cairn_bin = support::cairn_binary()?;
    let assets = Assets::find_or_build(&tools_dir())?;
    let crds = cairn::local::crds::load_crds(&cairn::local::crds::crd_dir(&tools_dir())?)?;
    let root = tempfile::tempdir()?;
    let server = ApiServer::start(
        &assets,
        ApiServerOptions::new("mgmt", root.path().join("mgmt")),
    )
    .await?;
    let client = server.client().await?;
    let setup = KubeClusterApi::new(client.clone(), false);
    install_crds(setup.dynamic(), &crds, Duration::from_secs(120)).await?;

    let repo = root.path().join("repo");
    write_fleet(&repo, clusters)?;
    let rendered = render_repo(&RepoSnapshot::from_dir(&repo)?, &[]);
    ensure!(!rendered.has_errors(), "{:#?}", rendered.diagnostics);
    let bundles = Arc::new(rendered.bundles);
    let started = Instant::now();
    converge(&setup, &bundles).await?;
    eprintln!(
        "applied the bootstrap and workload stages of {clusters} clusters in {:.1?}",
        started.elapsed()
    );

    // kubectl's input: each cluster's distinct management-side objects, as applied.
    let manifests = root.path().join("kubectl");
    std::fs::create_dir_all(&manifests)?;
    let mut distinct = 0;
    let mut planned = 0;
    for bundle in bundles.iter() {
        let shared = handed_over(bundle);
        let mut docs: Vec<&Value> = stage_objects(bundle, StageName::Bootstrap)
            .iter()
            .filter(|o| !shared.contains(&ObjectKey::of(o)))
            .collect();
        docs.extend(stage_objects(bundle, StageName::Workload));
        distinct += docs.len();
        planned += stage_objects(bundle, StageName::Bootstrap).len()
            + stage_objects(bundle, StageName::Workload).len();
        let mut text = String::new();
        for doc in docs {
            text.push_str("---\n");
            text.push_str(&serde_yaml::to_string(doc)?);
        }
        std::fs::write(manifests.join(format!("{}.yaml", bundle.cluster)), text)?;
    }
    let kube_cache = root.path().join("kubectl-cache");

    let library = || async {
        let api = Arc::new(KubeClusterApi::new(server.client().await?, false));
        let before = support::served(&client).await?;
        let start = Instant::now();
        let writes = plan_fleet(api.clone(), bundles.clone()).await?;
        let wall = start.elapsed();
        ensure!(
            writes == 0,
            "cairn would write {writes} objects: not converged"
        );
        Ok(Sample {
            wall,
            server: support::served(&client).await? - before,
            client: api.counters.requests.load(Ordering::Relaxed),
        })
    };
    let cli = || async {
        let before = support::served(&client).await?;
        let start = Instant::now();
        let out = Command::new(&cairn_bin)
            .arg("diff")
            .arg("--kubeconfig")
            .arg(&server.kubeconfig_path)
            .arg("--repo")
            .arg(&repo)
            .env_remove("CAIRN_LOG")
            .output()?;
        let wall = start.elapsed();
        if out.status.code() != Some(0) {
            bail!(
                "cairn diff exited {:?}:\n{}{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(Sample {
            wall,
            server: support::served(&client).await? - before,
            client: 0,
        })
    };
    let kubectl = || async {
        let before = support::served(&client).await?;
        let start = Instant::now();
        let out = Command::new(&assets.kubectl)
            .args(["diff", "--server-side", "--field-manager=cairn", "-v=6"])
            .arg("--kubeconfig")
            .arg(&server.kubeconfig_path)
            .arg("--cache-dir")
            .arg(&kube_cache)
            .arg("-f")
            .arg(&manifests)
            .output()?;
        let wall = start.elapsed();
        let log = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(0) {
            bail!(
                "kubectl diff exited {:?}:\n{}{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                log.lines().rev().take(20).collect::<Vec<_>>().join("\n")
            );
        }
        Ok(Sample {
            wall,
            server: support::served(&client).await? - before,
            client: kubectl_requests(&log),
        })
    };

    let (mut lib, mut bin, mut kc) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..=runs {
        // Interleaved, so that a busy machine slows all three alike; run 0 warms up.
        let samples = (library().await?, cli().await?, kubectl().await?);
        if run > 0 {
            lib.push(samples.0);
            bin.push(samples.1);
            kc.push(samples.2);
        }
    }

    let kubectl_ms = median(&kc, |s| s.wall.as_secs_f64() * 1e3);
    println!(
        "steady-state diff, {clusters} clusters: {planned} objects planned by cairn (2 stages), \
         {distinct} distinct objects given to kubectl; median of {runs} runs"
    );
    println!(
        "{:<34} {:>9} {:>12} {:>16} {:>12}",
        "tool", "wall ms", "vs kubectl", "server requests", "client count"
    );
    for (name, samples) in [
        ("cairn (library, stage::plan)", &lib),
        ("cairn diff (CLI)", &bin),
        ("kubectl diff --server-side", &kc),
    ] {
        let ms = median(samples, |s| s.wall.as_secs_f64() * 1e3);
        let client = median(samples, |s| s.client as f64);
        println!(
            "{name:<34} {ms:>9.0} {:>11.2}x {:>16.0} {:>12}",
            ms / kubectl_ms,
            median(samples, |s| s.server as f64),
            if client > 0.0 {
                format!("{client:.0}")
            } else {
                "-".into()
            }
        );
    }
    Ok(())
}
