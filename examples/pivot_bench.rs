//! The pivot of one cluster: cairn's mover side by side with `clusterctl move` on the same
//! object graph, timed (seconds per move, objects moved per second), and the objects each tool
//! leaves in the target compared (BENCHMARKS.md, "Pivot").
//!
//! ```sh
//! cargo run --release --example pivot_bench                 # 3 timed rounds, md-0 at 6 workers
//! cargo run --release --example pivot_bench -- --runs 5 --workers 8 --json --dump /tmp/pivot
//! CLUSTERCTL=/path/to/clusterctl cargo run --release --example pivot_bench
//! ```
//!
//! It starts a management API server with the CAPI and provider CRDs, applies the example
//! repository's `dev-docker-1` (Docker, `pivot: false`) with md-0 raised to `--workers` until it
//! is Ready, and installs the same CRDs in its workload API server (started by the provider
//! simulator). Every kind a move lists is then listed once in both servers (clusterctl also lists
//! the cluster-scoped provider kinds): on a fresh kube-apiserver the first LIST of a resource is
//! throttled for a second (429, Retry-After: 1) while its watch cache starts, which would
//! otherwise land on whichever tool runs first.
//!
//! A round is: cairn forward (management -> workload), cairn back, clusterctl forward,
//! clusterctl back. Round 0 is an untimed warm-up (clusterctl creates its inventory CRD in both
//! servers on its first run); the median of the next `--runs` rounds is reported. cairn runs
//! in-process (`Mover::run` over new clients each time); clusterctl is a process (from
//! `tools/build-clusterctl.sh`, or `CLUSTERCTL`), so its time includes its start-up. When
//! `CLUSTERCTL` is unset and that script fails, cairn is timed alone and the report says why.
//! cairn's steps (from its progress reports) are printed as they end, to show where time goes.
//!
//! The simulator runs in this process but only between moves: it is driven pass by pass, and
//! not at all while a move is timed. Nothing reconciles a paused Cluster anyway, and this way
//! the simulator neither competes for the two cores nor races the snapshot of the target. Status
//! is not moved, so before each move the simulator rebuilds it in the source until the move's
//! pre-checks (`cairn::pivot::checks::unprovisioned`) pass and a pass finds nothing to do.
//!
//! Compared, as "source -> target" of every move and as "cairn vs clusterctl" of the forward
//! targets: objects by (kind, name), and everything in them but status and what the API server
//! sets (uid, resourceVersion, generation, creationTimestamp); ownerReferences as (apiVersion,
//! kind, name, controller, blockOwnerDeletion), sorted, since owner uids differ by nature;
//! managedFields as their managers and operations. Differences listed in `EXPLAINED` are
//! reported with their reason; any other makes the exit code 1.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use cairn::apply::api::{ClusterApi, KubeClusterApi};
use cairn::kube_client::install_crds;
use cairn::lifecycle::ApplyOptions;
use cairn::lifecycle::cluster::apply_cluster;
use cairn::lifecycle::workload::reach_workload;
use cairn::local::simulator::{Simulator, SimulatorConfig};
use cairn::local::{ApiServer, ApiServerOptions, Assets};
use cairn::model::RepoSnapshot;
use cairn::pivot::checks::unprovisioned;
use cairn::pivot::discover::{MoveType, discover, move_types, provider_crds};
use cairn::pivot::mover::{MoveOptions, Mover};
use cairn::pivot::steps::Direction;
use cairn::render::render_repo;
use serde_json::{Value, json};

const CLUSTER: &str = "dev-docker-1";
const CLUSTER_FILE: &str = "clusters/dev/docker-1.yaml";
const POLL: Duration = Duration::from_millis(200);
const TIMEOUT: Duration = Duration::from_secs(300);

/// Fields the API server sets, which differ between any two copies of an object.
const SERVER_SET: [&str; 5] = [
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "selfLink",
];

/// Differences that are understood, so they do not fail the run: where (a JSON pointer
/// prefix), and why.
/// Differences between the two tools' targets that are understood, with the reason. Empty:
/// since the mover keeps the source's managedFields, the targets match field for field.
const EXPLAINED: [(&str, &str); 0] = [];

/// Objects by (kind, name), as read.
type ObjectSet = BTreeMap<(String, String), Value>;

fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools")
}

fn text<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// `obj` without what differs by nature between two copies: status (a subresource, never
/// moved), server-set metadata, the owners' uids, and the timestamps and field sets (which name
/// owner uids) of managedFields: who manages it and how is kept.
fn comparable(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(o) = obj.as_object_mut() {
        o.remove("status");
    }
    if let Some(meta) = obj["metadata"].as_object_mut() {
        for field in SERVER_SET {
            meta.remove(field);
        }
        if let Some(refs) = meta.get("ownerReferences").and_then(Value::as_array) {
            let mut refs: Vec<Value> = refs
                .iter()
                .map(|r| {
                    json!([
                        r["apiVersion"],
                        r["kind"],
                        r["name"],
                        r["controller"],
                        r["blockOwnerDeletion"]
                    ])
                })
                .collect();
            refs.sort_by_key(Value::to_string);
            meta.insert("ownerReferences".into(), Value::Array(refs));
        }
        if let Some(entries) = meta.get("managedFields").and_then(Value::as_array) {
            let mut managers: Vec<String> = entries
                .iter()
                .map(|e| {
                    let how = [
                        text(e, "/manager"),
                        text(e, "/operation"),
                        text(e, "/subresource"),
                    ];
                    how.join(" ").trim_end().to_string()
                })
                .collect();
            managers.sort();
            meta.insert("managedFields".into(), json!(managers.join(", ")));
        }
    }
    obj
}

fn object_set<'a>(objects: impl IntoIterator<Item = &'a Value>) -> ObjectSet {
    objects
        .into_iter()
        .map(|o| {
            let key = (text(o, "/kind").into(), text(o, "/metadata/name").into());
            (key, o.clone())
        })
        .collect()
}

/// What a move of the cluster out of `api` would take (empty when the Cluster is elsewhere).
async fn moving(api: &KubeClusterApi) -> Result<ObjectSet> {
    let found = discover(api, CLUSTER).await?;
    Ok(found.map_or_else(ObjectSet::new, |d| object_set(d.objects.values())))
}

/// Every object of the moved kinds in the cluster's namespace, moved or not.
async fn namespace(api: &KubeClusterApi, types: &[MoveType]) -> Result<ObjectSet> {
    let lists = types
        .iter()
        .map(|t| api.list(&t.api_version, &t.kind, Some(CLUSTER), None));
    let listed = futures::future::try_join_all(lists).await?;
    Ok(object_set(listed.iter().flatten()))
}

/// Lists, once, every kind either tool lists in a move: cairn's move types in the namespace,
/// and the labelled cluster-scoped kinds (identities, failure domains...), which clusterctl lists
/// across the cluster and cairn skips.
async fn warm(api: &KubeClusterApi, types: &[MoveType]) -> Result<()> {
    namespace(api, types).await?;
    for crd in provider_crds(api).await? {
        let storage = crd.pointer("/spec/versions").and_then(Value::as_array);
        let storage = storage.into_iter().flatten().find(|v| v["storage"] == true);
        if let (Some(v), "Cluster") = (storage, text(&crd, "/spec/scope")) {
            let api_version = format!("{}/{}", text(&crd, "/spec/group"), text(v, "/name"));
            api.list(&api_version, text(&crd, "/spec/names/kind"), None, None)
                .await?;
        }
    }
    Ok(())
}

/// Every leaf of `value` by its JSON pointer.
fn leaves(value: &Value, path: String, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                leaves(v, format!("{path}/{k}"), out);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for (i, v) in a.iter().enumerate() {
                leaves(v, format!("{path}/{i}"), out);
            }
        }
        _ => {
            out.insert(path, value.clone());
        }
    }
}

fn short(value: Option<&Value>) -> String {
    let text = value.map_or("(absent)".into(), Value::to_string);
    match text.char_indices().nth(100) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// An object found on one side only (empty path), or a field that differs.
struct Difference {
    object: String,
    path: String,
    line: String,
}

fn compare((a_name, a): (&str, &ObjectSet), (b_name, b): (&str, &ObjectSet)) -> Vec<Difference> {
    let only = |(kind, name): &(String, String), side: &str| Difference {
        object: format!("{kind}/{name}"),
        path: String::new(),
        line: format!("{kind}/{name}: only in {side}"),
    };
    let mut lines = Vec::new();
    for (key @ (kind, name), x) in a {
        let Some(y) = b.get(key) else {
            lines.push(only(key, a_name));
            continue;
        };
        let (mut lx, mut ly) = (BTreeMap::new(), BTreeMap::new());
        leaves(&comparable(x), String::new(), &mut lx);
        leaves(&comparable(y), String::new(), &mut ly);
        let paths: BTreeSet<&String> = lx.keys().chain(ly.keys()).collect();
        for path in paths.into_iter().filter(|p| lx.get(*p) != ly.get(*p)) {
            lines.push(Difference {
                object: format!("{kind}/{name}"),
                path: path.clone(),
                line: format!(
                    "{kind}/{name} {path}: {a_name} {} / {b_name} {}",
                    short(lx.get(path)),
                    short(ly.get(path))
                ),
            });
        }
    }
    for key in b.keys().filter(|k| !a.contains_key(*k)) {
        lines.push(only(key, b_name));
    }
    lines
}

/// The differences found: unexplained ones with the rounds they showed in; explained ones by
/// comparison and rule, with the objects concerned and one example.
#[derive(Default)]
struct Findings {
    unexplained: BTreeMap<String, BTreeSet<usize>>,
    explained: BTreeMap<(String, usize), (BTreeSet<String>, String)>,
}

impl Findings {
    fn note(&mut self, round: usize, found: Vec<Difference>, what: &str) {
        for d in found {
            let rule = EXPLAINED.iter().position(|(p, _)| d.path.starts_with(p));
            let Some(rule) = rule else {
                let line = format!("{what}: {}", d.line);
                self.unexplained.entry(line).or_default().insert(round);
                continue;
            };
            let (objects, example) = self.explained.entry((what.into(), rule)).or_default();
            objects.insert(d.object);
            if example.is_empty() {
                *example = format!("round {round}: {}", d.line);
            }
        }
    }
}

/// Writes the objects a move left in its target, and clusterctl's output, for a closer look.
fn dump(dir: &Path, name: &str, objects: &ObjectSet, output: &str) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let objects: Vec<&Value> = objects.values().collect();
    let json = serde_json::to_string_pretty(&objects)?;
    std::fs::write(dir.join(format!("{name}.json")), json)?;
    if !output.is_empty() {
        std::fs::write(dir.join(format!("{name}.log")), output)?;
    }
    Ok(())
}

/// Runs simulator passes alongside `work` until it is done. Both share this task, so the
/// simulator stops between two passes, never in the middle of one.
async fn with_simulator<T>(sim: &mut Simulator, work: impl Future<Output = T>) -> T {
    let done = AtomicBool::new(false);
    let (out, ()) = tokio::join!(
        async {
            let out = work.await;
            done.store(true, Ordering::Relaxed);
            out
        },
        async {
            while !done.load(Ordering::Relaxed) {
                if let Err(e) = sim.reconcile_once().await {
                    eprintln!("simulator: {e}");
                }
                tokio::time::sleep(POLL).await;
            }
        },
    );
    out
}

/// Drives the simulator until the cluster can move out of `api`: the statuses the pre-checks
/// read are rebuilt there, and a pass finds nothing more to do.
async fn settle(sim: &mut Simulator, api: &KubeClusterApi) -> Result<()> {
    let start = Instant::now();
    loop {
        let report = sim.reconcile_once().await?;
        let problems = match discover(api, CLUSTER).await? {
            Some(d) => unprovisioned(&d.cluster, &d.machines()),
            None => vec![format!("Cluster {CLUSTER} not found")],
        };
        if problems.is_empty() && report.is_quiet() {
            return Ok(());
        }
        if start.elapsed() > TIMEOUT {
            let errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
            bail!("the simulator did not settle: {problems:?} {errors:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A contender.
#[derive(Clone, Copy)]
enum Tool<'a> {
    /// cairn's mover, in this process, over new clients each time (discovery starts cold, as in
    /// a new `cairn pivot` process), reaching the workload cluster as cairn does.
    Cairn,
    Clusterctl(&'a Clusterctl),
}

/// What a move needs to reach both servers.
struct Servers<'a> {
    mgmt: &'a ApiServer,
    workload_kubeconfig: &'a Path,
}

impl Tool<'_> {
    fn name(self) -> &'static str {
        match self {
            Tool::Cairn => "cairn",
            Tool::Clusterctl(_) => "clusterctl",
        }
    }

    /// One move; returns its wall seconds and what the tool printed.
    async fn run(self, servers: &Servers<'_>, direction: Direction) -> Result<(f64, String)> {
        let (mgmt, workload) = (&servers.mgmt.kubeconfig_path, servers.workload_kubeconfig);
        let (from, to) = match direction {
            Direction::Forward => (mgmt.as_path(), workload),
            Direction::Reverse => (workload, mgmt.as_path()),
        };
        let Tool::Clusterctl(clusterctl) = self else {
            return Ok((cairn_move(servers.mgmt, direction).await?, String::new()));
        };
        clusterctl.run_move(from, to)
    }
}

async fn cairn_move(mgmt_server: &ApiServer, direction: Direction) -> Result<f64> {
    let mgmt = KubeClusterApi::new(mgmt_server.client().await?, false);
    let workload = reach_workload(&mgmt, CLUSTER)
        .await?
        .context("no kubeconfig for the workload cluster")?;
    let (source, target) = match direction {
        Direction::Forward => (&mgmt, &workload),
        Direction::Reverse => (&workload, &mgmt),
    };
    // Each step's end, from the mover's progress reports: where the time goes.
    let start = Instant::now();
    let steps = Arc::new(Mutex::new(Vec::new()));
    let log = steps.clone();
    let mover = Mover {
        source,
        target,
        direction,
        cluster: CLUSTER,
        opts: MoveOptions {
            timeout: TIMEOUT,
            progress: Arc::new(move |_, step| {
                let step = step.trim_start_matches("pivot: ").trim_end_matches(" done");
                let at = start.elapsed().as_secs_f64();
                log.lock().unwrap().push(format!("{step} {at:.2}"));
            }),
            after_step: None,
        },
    };
    mover.run().await?;
    let seconds = start.elapsed().as_secs_f64();
    eprintln!(
        "  cairn steps (s since start): {}",
        steps.lock().unwrap().join(", ")
    );
    Ok(seconds)
}

/// How to run clusterctl: binary, scratch home (no stray config), no version check.
struct Clusterctl {
    bin: PathBuf,
    home: PathBuf,
}

impl Clusterctl {
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("CLUSTERCTL_DISABLE_VERSIONCHECK", "true");
        cmd
    }

    /// `tools/build-clusterctl.sh` (which takes `CLUSTERCTL` when it is set). `Err` is the reason
    /// to go on without it: only when `CLUSTERCTL` is unset; a wrong `CLUSTERCTL` is fatal.
    fn find(home: PathBuf) -> Result<Result<Clusterctl, String>> {
        let out = Command::new(tools_dir().join("build-clusterctl.sh")).output()?;
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !path.is_empty() {
            return Ok(Ok(Clusterctl {
                bin: path.into(),
                home,
            }));
        }
        let log = String::from_utf8_lossy(&out.stderr);
        let last = log.lines().last().unwrap_or("no output").to_string();
        ensure!(
            std::env::var_os("CLUSTERCTL").is_none(),
            "CLUSTERCTL is set but tools/build-clusterctl.sh failed: {last}"
        );
        Ok(Err(format!("tools/build-clusterctl.sh failed: {last}")))
    }

    fn version(&self) -> String {
        self.command()
            .args(["version", "-o", "short"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    }

    /// One `clusterctl move`; returns its wall seconds and its output.
    fn run_move(&self, from: &Path, to: &Path) -> Result<(f64, String)> {
        let start = Instant::now();
        let out = self
            .command()
            .arg("move")
            .arg("--kubeconfig")
            .arg(from)
            .arg("--to-kubeconfig")
            .arg(to)
            .args(["--namespace", CLUSTER, "--hide-api-warnings", "all"])
            .output()?;
        let seconds = start.elapsed().as_secs_f64();
        let output = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ensure!(
            out.status.success(),
            "clusterctl move exited {:?}:\n{output}",
            out.status.code(),
        );
        Ok((seconds, output))
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `nproc`, CPU model, memory and load, for the table.
fn machine() -> String {
    let read = |path| std::fs::read_to_string(path).unwrap_or_default();
    let field = |text: String, name: &str| {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .map(str::to_string);
        line.and_then(|l| Some(l.split_once(':')?.1.trim().to_string()))
            .unwrap_or_default()
    };
    let kib: f64 = field(read("/proc/meminfo"), "MemTotal")
        .trim_end_matches(" kB")
        .parse()
        .unwrap_or(0.0);
    let load = read("/proc/loadavg");
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "{} CPUs ({}), {:.1} GiB, load {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        field(read("/proc/cpuinfo"), "model name"),
        kib / 1048576.0,
        load.join(" ")
    )
}

struct Args {
    runs: usize,
    workers: usize,
    json: bool,
    /// Where to write every move's target objects and clusterctl's output.
    dump: Option<PathBuf>,
}

fn args() -> Result<Args> {
    let usage = "usage: pivot_bench [--runs N] [--workers N] [--json] [--dump DIR]";
    let mut args = Args {
        runs: 3,
        workers: 6,
        json: false,
        dump: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = || -> Result<usize> { it.next().context(usage)?.parse().context(usage) };
        match arg.as_str() {
            "--runs" => args.runs = number()?.max(1),
            "--workers" => args.workers = number()?,
            "--json" => args.json = true,
            "--dump" => args.dump = Some(it.next().context(usage)?.into()),
            _ => bail!(usage),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = args()?;
    // Everything started is stopped when `run` returns (the servers on drop), before exiting.
    let identical = run(&args).await?;
    if !identical {
        std::process::exit(1);
    }
    Ok(())
}

/// The benchmark; returns whether the target objects were the same everywhere.
async fn run(args: &Args) -> Result<bool> {
    let root = tempfile::tempdir()?;
    let clusterctl = Clusterctl::find(root.path().join("home"))?;
    if let Err(why) = &clusterctl {
        eprintln!("clusterctl skipped, cairn only: {why}");
    }

    // 1. The management server, its CRDs, and the simulator (driven from here, see above).
    let assets = Assets::find_or_build(&tools_dir())?;
    let crds = cairn::local::crds::load_crds(&cairn::local::crds::crd_dir(&tools_dir())?)?;
    let server = ApiServer::start(
        &assets,
        ApiServerOptions::new("mgmt", root.path().join("mgmt")),
    )
    .await?;
    let mgmt = KubeClusterApi::new(server.client().await?, false);
    install_crds(mgmt.dynamic(), &crds, TIMEOUT).await?;
    let mut config = SimulatorConfig::new(
        server.kubeconfig.clone(),
        root.path().join("clusters"),
        assets,
    );
    config.machine_delay = Duration::from_millis(50);
    config.poll_interval = POLL;
    let mut sim = Simulator::new(config).await?;

    // 2. dev-docker-1 with md-0 raised, applied until Ready.
    let replicas = format!("replicas: {}", args.workers);
    let files = cairn::example::FILES.iter().map(|(path, text)| {
        let text = match *path {
            CLUSTER_FILE => text.replacen("replicas: 2", &replicas, 1),
            _ => text.to_string(),
        };
        (path.to_string(), text)
    });
    let rendered = render_repo(&RepoSnapshot::from_files(files), &[CLUSTER.to_string()]);
    ensure!(!rendered.has_errors(), "{:#?}", rendered.diagnostics);
    let bundle = rendered.bundles.into_iter().next().context("no bundle")?;
    let mut opts = ApplyOptions::new(false, TIMEOUT, "bench");
    opts.progress = Arc::new(|cluster, step| eprintln!("{cluster}: {step}"));
    let started = Instant::now();
    with_simulator(&mut sim, apply_cluster(&mgmt, &bundle, &opts)).await?;
    eprintln!("{CLUSTER} Ready in {:.1?}", started.elapsed());
    let workload_kubeconfig = root.path().join("workload.kubeconfig");
    std::fs::write(
        &workload_kubeconfig,
        sim.workload_kubeconfig(CLUSTER)
            .context("no workload server")?,
    )?;
    let workload = reach_workload(&mgmt, CLUSTER)
        .await?
        .context("no workload")?;
    install_crds(workload.dynamic(), &crds, TIMEOUT).await?;
    settle(&mut sim, &mgmt).await?;

    // 3. Warm every watch cache a move lists, in both servers.
    let types = move_types(&provider_crds(&mgmt).await?);
    warm(&mgmt, &types).await?;
    warm(&workload, &types).await?;
    let objects = moving(&mgmt).await?;
    let count = objects.len();
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for (kind, _) in objects.keys() {
        *by_kind.entry(kind).or_default() += 1;
    }
    eprintln!("{count} objects move: {by_kind:?}");

    // 4./5. Rounds of cairn there and back, then clusterctl there and back.
    let servers = Servers {
        mgmt: &server,
        workload_kubeconfig: &workload_kubeconfig,
    };
    let mut tools = vec![Tool::Cairn];
    tools.extend(clusterctl.as_ref().ok().map(Tool::Clusterctl));
    let mut seconds: BTreeMap<(&str, &str), Vec<f64>> = BTreeMap::new();
    let mut target_counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut findings = Findings::default();
    for round in 0..=args.runs {
        let mut targets = Vec::new();
        for tool in &tools {
            for (direction, from, to) in [
                (Direction::Forward, &mgmt, &workload),
                (Direction::Reverse, &workload, &mgmt),
            ] {
                let (name, way) = (tool.name(), direction.as_str());
                settle(&mut sim, from).await?;
                let before = moving(from).await?;
                let (secs, output) = tool.run(&servers, direction).await?;
                // The whole namespace in the workload server, where the cluster arrives alone; in
                // the management server, what belongs to the cluster (cairn's inventories stay).
                let after = match direction {
                    Direction::Forward => namespace(to, &types).await?,
                    Direction::Reverse => moving(to).await?,
                };
                let found = compare(("source", &before), ("target", &after));
                findings.note(round, found, &format!("{name} {way} source -> target"));
                if let Some(dir) = &args.dump {
                    dump(dir, &format!("round{round}-{name}-{way}"), &after, &output)?;
                }
                if direction == Direction::Forward {
                    target_counts.insert(name, after.len());
                    targets.push(after);
                }
                let warm = if round == 0 { " (warm-up)" } else { "" };
                eprintln!("round {round}: {name} {way}{warm} {secs:.2} s");
                if round > 0 {
                    seconds.entry((name, way)).or_default().push(secs);
                }
            }
        }
        if let [cairn, clusterctl] = &targets[..] {
            let found = compare(("cairn", cairn), ("clusterctl", clusterctl));
            findings.note(round, found, "forward targets cairn vs clusterctl");
        }
    }
    sim.shutdown();

    // 6./7. The report.
    let versions = format!(
        "cairn {} ({}), kube-apiserver {}, clusterctl {}, {}",
        env!("CARGO_PKG_VERSION"),
        command_line(
            "git",
            &[
                "-C",
                env!("CARGO_MANIFEST_DIR"),
                "describe",
                "--always",
                "--dirty"
            ]
        ),
        server
            .client()
            .await?
            .apiserver_version()
            .await?
            .git_version,
        clusterctl
            .as_ref()
            .map_or("skipped".into(), Clusterctl::version),
        Some(command_line("rustc", &["--version"]))
            .filter(|v| !v.is_empty())
            .unwrap_or("rustc unknown".into()),
    );
    let results = seconds
        .into_iter()
        .map(|((tool, direction), seconds)| Timing {
            tool,
            direction,
            median_seconds: median(&seconds),
            objects_per_second: count as f64 / median(&seconds),
            seconds,
        })
        .collect();
    let explained = findings
        .explained
        .into_iter()
        .map(|((comparison, rule), (objects, example))| Explained {
            comparison,
            field: EXPLAINED[rule].0,
            objects: objects.len(),
            example,
            why: EXPLAINED[rule].1,
        })
        .collect();
    let report = Report {
        cluster: CLUSTER,
        workers: args.workers,
        objects: count,
        objects_by_kind: by_kind
            .into_iter()
            .map(|(k, n)| (k.to_string(), n))
            .collect(),
        runs: args.runs,
        machine: machine(),
        versions,
        results,
        clusterctl_skipped: clusterctl.err(),
        target_objects: target_counts,
        differences: findings.unexplained,
        explained_differences: explained,
    };
    if args.json {
        eprintln!("{}", report.markdown());
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", report.markdown());
    }
    Ok(report.differences.is_empty())
}

fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

#[derive(serde::Serialize)]
struct Timing {
    tool: &'static str,
    direction: &'static str,
    seconds: Vec<f64>,
    median_seconds: f64,
    objects_per_second: f64,
}

#[derive(serde::Serialize)]
struct Explained {
    comparison: String,
    field: &'static str,
    objects: usize,
    example: String,
    why: &'static str,
}

#[derive(serde::Serialize)]
struct Report {
    cluster: &'static str,
    workers: usize,
    objects: usize,
    objects_by_kind: BTreeMap<String, usize>,
    runs: usize,
    machine: String,
    versions: String,
    results: Vec<Timing>,
    clusterctl_skipped: Option<String>,
    /// Objects in the target namespace after the last forward move of each tool.
    target_objects: BTreeMap<&'static str, usize>,
    /// Unexplained differences, with the rounds they showed in.
    differences: BTreeMap<String, BTreeSet<usize>>,
    explained_differences: Vec<Explained>,
}

impl Report {
    /// Markdown for BENCHMARKS.md.
    fn markdown(&self) -> String {
        let list = |m: &BTreeMap<String, usize>| {
            let items: Vec<String> = m.iter().map(|(k, n)| format!("{n} {k}")).collect();
            items.join(", ")
        };
        let mut out = format!(
            "Pivot of {} ({} objects: {}), median of {} runs\n\n\
             Machine: {}; {}\n\n\
             | tool | direction | median | min - max | objects/s |\n|---|---|---|---|---|\n",
            self.cluster,
            self.objects,
            list(&self.objects_by_kind),
            self.runs,
            self.machine,
            self.versions,
        );
        for t in &self.results {
            let min = t.seconds.iter().copied().fold(f64::MAX, f64::min);
            let max = t.seconds.iter().copied().fold(0.0, f64::max);
            out += &format!(
                "| {} | {} | {:.2} s | {min:.2} - {max:.2} s | {:.0} |\n",
                t.tool, t.direction, t.median_seconds, t.objects_per_second
            );
        }
        if let Some(why) = &self.clusterctl_skipped {
            out += &format!("\nclusterctl skipped: {why}\n");
        }
        let counts: Vec<String> = (self.target_objects.iter())
            .map(|(tool, n)| format!("{n} by {tool}"))
            .collect();
        out += &format!(
            "\nObjects in the target namespace after a forward move: {}; {} unexplained \
             differences.\n",
            counts.join(", "),
            self.differences.len()
        );
        for (line, rounds) in &self.differences {
            out += &format!("- {line} (rounds {rounds:?})\n");
        }
        for e in &self.explained_differences {
            out += &format!(
                "- explained: {}: {} differs on {} objects, e.g. {}\n",
                e.comparison, e.field, e.objects, e.example
            );
        }
        let reasons: BTreeSet<String> = self
            .explained_differences
            .iter()
            .map(|e| format!("\n{}: {}.\n", e.field, e.why))
            .collect();
        out.extend(reasons);
        out
    }
}
