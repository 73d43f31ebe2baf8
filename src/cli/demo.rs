//! `cairn demo`: the whole product on one machine in a few minutes. A local management cluster
//! (as `cairn local up` starts it), the example fleet committed to a git repository, the
//! controller (`cairn run`'s loop, in this process) taking every cluster to Ready (two of them
//! through the pivot), then one commit scaling a worker pool carried through, the status table,
//! and everything stopped.
//!
//! Everything lives under one directory: the environment (`mgmt/`, `clusters/`,
//! `simulator.log`), the git repository (`fleet/`) and the controller's mirror (`controller/`).
//! Whatever happens (an error, Ctrl-C, SIGTERM), the environment is stopped and the directory
//! removed before the command returns, unless `--keep`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use tokio::sync::watch;

use super::ExitStatus;
use super::args::{parse_duration, tools_dir};
use cairn::apply::api::KubeClusterApi;
use cairn::controller::schedule::Backoff;
use cairn::controller::shared::{ClusterView, FAILED, FleetView, READY, Shared};
use cairn::controller::{Controller, ControllerOptions};
use cairn::lifecycle::status::{ClusterStatus, fleet_status, table};
use cairn::local::env::{self, LocalError};
use cairn::source::{Credentials, SourceSpec};

/// The commit the demo makes: one worker pool of one cluster scaled.
const SCALED_CLUSTER: &str = "dev-docker-1";
const SCALED_FILE: &str = "clusters/dev/docker-1.yaml";
const SCALE_FROM: &str = "  workers:\n    - name: md-0\n      replicas: 2\n";
const SCALE_TO: &str = "  workers:\n    - name: md-0\n      replicas: 3\n";
const SCALE_MESSAGE: &str = "dev-docker-1: scale worker pool md-0 from 2 to 3 machines";
const BRANCH: &str = "main";
/// How often the controller fetches: there is no webhook, and the demo pulls the trigger
/// itself right after its commit anyway.
const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// How often the progress is redrawn from the controller's view.
const REFRESH: Duration = Duration::from_millis(300);
/// Longest wait, after the commit, for the agents of the pivoted clusters to report it.
const AGENTS_GRACE: Duration = Duration::from_secs(60);

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Where the environment, the git repository and the controller's mirror live (default: a
    /// new directory under $TMPDIR). Removed at the end unless --keep.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// How long the simulator takes to provision each machine.
    #[arg(long, default_value_t = 200)]
    pub machine_delay_ms: u64,
    /// Longest wait for the whole fleet to be Ready, and again for the commit to be carried
    /// through, e.g. 90s, 8m.
    #[arg(long, default_value = "8m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Leave the environment running at the end (the controller stops with the demo) and print
    /// how to use it.
    #[arg(long)]
    pub keep: bool,
}

/// The demo, start to finish; any failure is an error.
pub async fn run(args: DemoArgs) -> Result<ExitStatus> {
    let tools_dir = &tools_dir();
    let started = Instant::now();
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("cairn-demo-{}", std::process::id())));
    refuse_foreign_dir(&dir)?;
    let interrupted = interruptible();
    let mut out = Progress::new(std::io::stderr().is_terminal());
    out.note(format!(
        "cairn demo: a local management cluster, the example fleet in git, the controller; in {}",
        dir.display()
    ));

    // 1. The local environment.
    let step = out.step(
        "starting the local environment: etcd, kube-apiserver, the Cluster API CRDs, the provider simulator",
    );
    let up = tokio::select! {
        up = env::up(&dir, tools_dir, Duration::from_millis(args.machine_delay_ms)) => up,
        () = wait_interrupted(interrupted.clone()) => {
            step.abandon();
            stop_environment(&dir, &mut out);
            return Err(Interrupted.into());
        }
    };
    let report = match up {
        Ok(report) => report,
        // Someone else's environment: leave it alone.
        Err(e @ LocalError::AlreadyUp { .. }) => {
            step.abandon();
            return Err(e.into());
        }
        Err(e) => {
            step.abandon();
            stop_environment(&dir, &mut out);
            return Err(anyhow::Error::new(e).context("cannot start the local environment"));
        }
    };
    let up_took = started.elapsed();
    step.done(format!(
        "local environment up in {} (API server {})",
        human(up_took),
        report.server
    ));
    let mut cleanup = Cleanup {
        dir: dir.clone(),
        armed: !args.keep,
    };

    let result = fleet_demo(&args, &dir, &report, &mut out, interrupted).await;
    out.clear();
    // From here on the environment is stopped, or kept, explicitly.
    cleanup.armed = false;
    if args.keep {
        let repo = repo_url(&dir);
        eprintln!(
            "the environment is still running (--keep); the controller stopped with the demo:\n  \
             export KUBECONFIG={kubeconfig}\n  \
             cairn status\n  \
             cairn run --repo {repo} --source-url {repo} --state-dir {state}   # the controller again\n  \
             cairn local down --dir {dir}   # stops everything",
            kubeconfig = report.kubeconfig.display(),
            repo = repo.as_deref().unwrap_or("file://DIR/fleet"),
            state = dir.join("controller").display(),
            dir = dir.display(),
        );
    } else {
        stop_environment(&dir, &mut out);
    }
    let done = match result {
        Ok(done) => done,
        Err(e) if args.keep || e.is::<Interrupted>() => return Err(e),
        Err(e) => {
            return Err(e.context(
                "the demo failed; `cairn demo --keep` leaves the environment running to look into it (simulator.log and clusters/<name>/ in its directory)",
            ));
        }
    };
    summary(&done, up_took, started.elapsed(), args.keep);
    Ok(ExitStatus::Success)
}

/// What the demo did, for the summary.
struct Done {
    clusters: usize,
    pivoted: Vec<String>,
    first: String,
    fleet_ready: Duration,
    scaled: String,
    scale_took: Duration,
    agents_caught_up: bool,
}

/// Everything between the environment's start and its stop: the repository, the controller,
/// the waits, the commit and the table.
async fn fleet_demo(
    args: &DemoArgs,
    dir: &Path,
    report: &env::UpReport,
    out: &mut Progress,
    interrupted: watch::Receiver<bool>,
) -> Result<Done> {
    // 2. The repository.
    let repo_dir = dir.join("fleet");
    let repo = tokio::task::block_in_place(|| example_repo(&repo_dir))?;
    let first = head(&repo)?;
    let url = repo_url(dir).context("the repository path is not valid UTF-8")?;
    out.note(format!(
        "committed the example fleet to {url} ({} on {BRANCH}: 3 clusters, 2 profiles)",
        short(&first)
    ));

    // 3. The controller, in this process.
    let yaml = std::fs::read_to_string(&report.kubeconfig)
        .with_context(|| format!("cannot read {}", report.kubeconfig.display()))?;
    let (client, server) = cairn::kube_client::client_and_server_from_kubeconfig(&yaml)
        .await
        .context("the management API server's kubeconfig")?;
    let mgmt = KubeClusterApi::with_server(client.clone(), server.clone(), false);
    let shared = Arc::new(Shared::new(url.clone(), BRANCH.into(), None));
    let options = ControllerOptions {
        source: SourceSpec {
            url: url.clone(),
            branch: BRANCH.into(),
            credentials: Credentials::default(),
        },
        path: None,
        state_dir: dir.join("controller"),
        poll_interval: POLL_INTERVAL,
        reconcile_interval: Duration::from_secs(600),
        concurrency: 3,
        timeout: args.timeout,
        prune: false,
        max_prune: Default::default(),
        // The agents of the pivoted clusters read this repository, not fleet.yaml's URL.
        agent_source_url: Some(url.clone()),
        backoff: Backoff {
            base: Duration::from_secs(5),
            max: Duration::from_secs(30),
        },
        shutdown_grace: Duration::from_secs(2),
    };
    let controller = Controller::new(
        KubeClusterApi::with_server(client, server, false),
        options,
        shared.clone(),
    )
    .await
    .context("cannot start the controller")?;
    let running = Running::start(controller);
    out.note(format!(
        "controller started: fetching every {}s, 3 clusters at a time",
        POLL_INTERVAL.as_secs()
    ));

    let result = async {
        // 4. The whole fleet to Ready.
        let fleet_start = Instant::now();
        let view = running
            .wait(
                &shared,
                None,
                &first,
                args.timeout,
                out,
                interrupted.clone(),
            )
            .await?;
        let fleet_ready = fleet_start.elapsed();
        out.finish_bars();
        out.note(format!(
            "all {} clusters Ready at {} in {}",
            view.clusters.len(),
            short(&first),
            human(fleet_ready)
        ));

        // 5. One commit, carried through.
        let scaled = tokio::task::block_in_place(|| scale_commit(&repo, &repo_dir))?;
        let committed = Instant::now();
        shared.trigger();
        out.note(format!(
            "committed {} \"{SCALE_MESSAGE}\"; fetching at once, as a push webhook would",
            short(&scaled)
        ));
        running
            .wait(
                &shared,
                Some(SCALED_CLUSTER),
                &scaled,
                args.timeout,
                out,
                interrupted.clone(),
            )
            .await?;
        let scale_took = committed.elapsed();
        out.finish_bars();
        out.note(format!(
            "{SCALED_CLUSTER} Ready at {} {} after the commit",
            short(&scaled),
            human(scale_took)
        ));

        // 6. The status table, once the agents of the pivoted clusters have read the commit too.
        let (rows, agents_caught_up) = settled_status(&mgmt, &scaled, out, interrupted).await?;
        print!("{}", table(&rows));
        std::io::stdout().flush()?;
        Ok(Done {
            clusters: view.clusters.len(),
            pivoted: rows
                .iter()
                .filter(|r| r.location == "workload")
                .map(|r| r.name.clone())
                .collect(),
            first: first.clone(),
            fleet_ready,
            scaled,
            scale_took,
            agents_caught_up,
        })
    }
    .await;
    // 7. The controller stops before the environment does.
    running.stop().await;
    result
}

/// The controller's task and what stops it.
struct Running {
    stop: watch::Sender<bool>,
    /// Kept so that leadership stays fixed (true) while the controller runs.
    _leading: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start(controller: Controller) -> Running {
        let (stop, stopped) = watch::channel(false);
        let (leading, leading_rx) = watch::channel(true);
        let shutdown = async move {
            let mut stopped = stopped;
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        let task = tokio::spawn(controller.run(leading_rx, shutdown));
        Running {
            stop,
            _leading: leading,
            task,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::warn!("the controller task ended badly: {e}");
        }
    }

    /// Waits until `only` (or every cluster) is Ready at `revision`, showing the progress.
    async fn wait(
        &self,
        shared: &Shared,
        only: Option<&str>,
        revision: &str,
        timeout: Duration,
        out: &mut Progress,
        interrupted: watch::Receiver<bool>,
    ) -> Result<FleetView> {
        let deadline = Instant::now() + timeout;
        loop {
            let view = shared.view();
            let tracked: BTreeMap<&String, &ClusterView> = view
                .clusters
                .iter()
                .filter(|(name, _)| only.is_none_or(|o| o == name.as_str()))
                .collect();
            out.show(&tracked, revision);
            let fetched = view.revision.as_deref() == Some(revision);
            let wanted = only.map_or(!tracked.is_empty(), |o| {
                tracked.contains_key(&o.to_string())
            });
            if fetched
                && wanted
                && tracked
                    .values()
                    .all(|c| c.phase == READY && c.revision.as_deref() == Some(revision))
            {
                return Ok(view);
            }
            if self.task.is_finished() {
                bail!("the controller stopped unexpectedly");
            }
            if Instant::now() >= deadline {
                out.clear();
                bail!("{}", not_ready(&view, only, revision, timeout));
            }
            tokio::select! {
                () = tokio::time::sleep(REFRESH) => {}
                () = wait_interrupted(interrupted.clone()) => {
                    out.clear();
                    return Err(Interrupted.into());
                }
            }
        }
    }
}

/// Why the wait timed out: every cluster not Ready at `revision`, with its phase, step and
/// last error, and what is wrong with the source.
fn not_ready(view: &FleetView, only: Option<&str>, revision: &str, timeout: Duration) -> String {
    let what = only.unwrap_or("every cluster");
    let mut text = format!(
        "timed out after {} waiting for {what} to be Ready at {}",
        human(timeout),
        short(revision)
    );
    if view.revision.as_deref() != Some(revision) {
        text.push_str(&format!(
            "\n  the controller is at revision {}",
            view.revision.as_deref().map_or("none yet".into(), short)
        ));
    }
    for (label, error) in [
        ("the source", &view.source_error),
        ("the revision does not render", &view.render_error),
    ] {
        if let Some(error) = error {
            text.push_str(&format!("\n  {label}: {error}"));
        }
    }
    for (name, c) in &view.clusters {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        if c.phase == READY && c.revision.as_deref() == Some(revision) {
            continue;
        }
        text.push_str(&format!(
            "\n  {name}: {} at step `{}`{}{}",
            c.phase,
            c.step,
            match c.failures {
                0 => String::new(),
                n => format!(", {n} failure(s) in a row"),
            },
            c.last_error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ));
    }
    if only.is_some_and(|o| !view.clusters.contains_key(o)) {
        text.push_str(&format!(
            "\n  {}: not in the controller's view",
            only.unwrap_or_default()
        ));
    }
    text
}

/// The status table once every row is Ready at `revision` (the agents of pivoted clusters
/// poll git on their own), or after `AGENTS_GRACE` as it is then. Also whether it settled.
async fn settled_status(
    mgmt: &KubeClusterApi,
    revision: &str,
    out: &mut Progress,
    interrupted: watch::Receiver<bool>,
) -> Result<(Vec<ClusterStatus>, bool)> {
    let step = out.step("waiting for the agents of the pivoted clusters to read the commit too");
    let deadline = Instant::now() + AGENTS_GRACE;
    loop {
        let rows = fleet_status(mgmt)
            .await
            .context("cannot read the fleet's status")?;
        let settled = !rows.is_empty()
            && rows
                .iter()
                .all(|r| r.phase == READY && r.revision == revision);
        if settled || Instant::now() >= deadline {
            match settled {
                true => step.done("every cluster reports the commit".into()),
                false => step.done(format!(
                    "not every cluster reports {} after {}",
                    short(revision),
                    human(AGENTS_GRACE)
                )),
            }
            return Ok((rows, settled));
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = wait_interrupted(interrupted.clone()) => {
                step.abandon();
                return Err(Interrupted.into());
            }
        }
    }
}

fn summary(done: &Done, up_took: Duration, total: Duration, kept: bool) {
    let pivoted = match done.pivoted.as_slice() {
        [] => String::new(),
        names => format!(
            "; {} pivoted: their CAPI objects live in their own API servers and their agents keep them converged from git",
            names.join(" and ")
        ),
    };
    eprintln!(
        "cairn demo: done in {}\n  \
         local environment started in {}\n  \
         the example fleet ({} clusters) Ready at {} in {}{pivoted}\n  \
         commit {} \"{SCALE_MESSAGE}\" carried through in {}: from the commit to {SCALED_CLUSTER} Ready with 3 workers{}\n  \
         {}",
        human(total),
        human(up_took),
        done.clusters,
        short(&done.first),
        human(done.fleet_ready),
        short(&done.scaled),
        human(done.scale_took),
        match done.agents_caught_up {
            true => "; the agents read it too",
            false => "",
        },
        match kept {
            true => "the environment is still running (--keep)",
            false => "everything stopped",
        },
    );
}

/// Stops every process of the environment and removes its directory, saying so.
fn stop_environment(dir: &Path, out: &mut Progress) {
    out.clear();
    match env::down(dir) {
        Ok(n) => eprintln!(
            "stopped the local environment ({n} process(es)); removed {}",
            dir.display()
        ),
        Err(e) => eprintln!(
            "error: stopping the local environment in {}: {e}; `cairn local down --dir {0}` retries",
            dir.display()
        ),
    }
}

/// Stops the environment if the demo returns early (a panic included) while it is armed.
struct Cleanup {
    dir: PathBuf,
    armed: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.armed {
            let _ = env::down(&self.dir);
        }
    }
}

/// `env::up` empties its directory: refuse one that holds something else than an environment.
fn refuse_foreign_dir(dir: &Path) -> Result<()> {
    let Ok(mut entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let empty = entries.next().is_none();
    let ours = env::mgmt_kubeconfig_path(dir).exists() || dir.join("mgmt").exists();
    ensure!(
        empty || ours,
        "{} exists and is not a local environment; name a new directory with --dir",
        dir.display()
    );
    Ok(())
}

/// The demo was stopped by Ctrl-C or SIGTERM.
#[derive(Debug, thiserror::Error)]
#[error("interrupted (Ctrl-C or SIGTERM)")]
struct Interrupted;

/// Set to true on Ctrl-C or SIGTERM.
fn interruptible() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        super::args::shutdown_signal().await;
        let _ = tx.send(true);
    });
    rx
}

async fn wait_interrupted(mut interrupted: watch::Receiver<bool>) {
    if interrupted.wait_for(|i| *i).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn repo_url(dir: &Path) -> Option<String> {
    let repo = std::path::absolute(dir.join("fleet")).ok()?;
    Some(format!("file://{}", repo.to_str()?))
}

/// A git repository at `dir` holding the example fleet, committed on `main` by "cairn demo"
/// (no git binary or user configuration needed).
fn example_repo(dir: &Path) -> Result<git2::Repository> {
    for (path, text) in cairn::example::FILES {
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&file, text).with_context(|| format!("cannot write {}", file.display()))?;
    }
    let mut init = git2::RepositoryInitOptions::new();
    init.initial_head(BRANCH);
    let repo = git2::Repository::init_opts(dir, &init)
        .with_context(|| format!("cannot create a git repository in {}", dir.display()))?;
    let paths: Vec<&str> = cairn::example::FILES.iter().map(|(p, _)| *p).collect();
    commit(&repo, &paths, "the example fleet")?;
    Ok(repo)
}

/// Scales the worker pool in a new commit; returns the commit id.
fn scale_commit(repo: &git2::Repository, dir: &Path) -> Result<String> {
    let path = dir.join(SCALED_FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    ensure!(
        text.matches(SCALE_FROM).count() == 1,
        "{SCALED_FILE} of the example fleet no longer has exactly one `md-0` with 2 replicas:\n{text}"
    );
    std::fs::write(&path, text.replacen(SCALE_FROM, SCALE_TO, 1))
        .with_context(|| format!("cannot write {}", path.display()))?;
    commit(repo, &[SCALED_FILE], SCALE_MESSAGE)?;
    head(repo)
}

/// Commits `paths` (relative to the work tree) on top of HEAD, if any.
fn commit(repo: &git2::Repository, paths: &[&str], message: &str) -> Result<()> {
    let mut index = repo.index()?;
    for path in paths {
        index
            .add_path(Path::new(path))
            .with_context(|| format!("cannot add {path} to the git index"))?;
    }
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let who = git2::Signature::now("cairn demo", "demo@cairn.invalid")?;
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    repo.commit(Some("HEAD"), &who, &who, message, &tree, &parents)
        .context("cannot commit")?;
    Ok(())
}

fn head(repo: &git2::Repository) -> Result<String> {
    Ok(repo.head()?.peel_to_commit()?.id().to_string())
}

fn short(revision: &str) -> String {
    revision.chars().take(12).collect()
}

/// `8.1s`, `2m05s`.
fn human(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = d.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

/// A cluster's state in a few words: phase and what it is doing.
fn describe(c: &ClusterView, revision: &str) -> (String, String) {
    let detail = match c.phase.as_str() {
        READY if c.revision.as_deref() == Some(revision) => c
            .took_seconds
            .map(|s| format!("in {}", human(Duration::from_secs_f64(s))))
            .unwrap_or_default(),
        READY => format!(
            "at {}",
            c.revision.as_deref().map(short).unwrap_or_default()
        ),
        FAILED => format!(
            "{} (failure {}, retry in {}s)",
            c.last_error
                .as_deref()
                .and_then(|e| e.lines().next())
                .unwrap_or_default(),
            c.failures,
            c.retry_in_seconds.unwrap_or(0)
        ),
        _ if c.step.is_empty() => "starting".into(),
        _ => c.step.clone(),
    };
    (c.phase.clone(), detail)
}

/// The progress on stderr: spinners on a terminal, log lines elsewhere.
struct Progress {
    started: Instant,
    multi: Option<MultiProgress>,
    bars: BTreeMap<String, ProgressBar>,
    /// What was last shown per cluster.
    shown: BTreeMap<String, (String, String)>,
}

/// The demo's spinners while they are drawn: log lines are printed above them.
static BARS: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// Where the log goes (`tracing`'s writer): stderr, above the demo's spinners while they are
/// drawn, so that a log line does not tear them.
pub(crate) fn log_writer() -> LogWriter {
    LogWriter
}

pub(crate) struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let multi = BARS.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match multi {
            Some(multi) => multi.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// One step of the demo: a spinner on a terminal, a line when it starts and ends elsewhere.
struct Step {
    bar: Option<(MultiProgress, ProgressBar)>,
}

impl Step {
    fn done(self, message: String) {
        match self.bar {
            Some((multi, bar)) => {
                // A finished bar would stay in the area indicatif redraws (and vanish with it):
                // the outcome goes above, where it stays.
                bar.finish_and_clear();
                multi.remove(&bar);
                let _ = multi.println(format!("✔ {message}"));
            }
            None => eprintln!("{message}"),
        }
    }

    fn abandon(self) {
        if let Some((multi, bar)) = self.bar {
            bar.finish_and_clear();
            multi.remove(&bar);
        }
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix:.bold} {wide_msg} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

impl Progress {
    fn new(terminal: bool) -> Progress {
        let multi = terminal.then(MultiProgress::new);
        *BARS.lock().unwrap_or_else(|e| e.into_inner()) = multi.clone();
        Progress {
            started: Instant::now(),
            multi,
            bars: BTreeMap::new(),
            shown: BTreeMap::new(),
        }
    }

    fn note(&self, line: String) {
        match &self.multi {
            Some(multi) => {
                let _ = multi.println(line);
            }
            None => eprintln!("{line}"),
        }
    }

    fn step(&self, what: &str) -> Step {
        let Some(multi) = &self.multi else {
            eprintln!("{what} ...");
            return Step { bar: None };
        };
        let bar = multi.add(ProgressBar::new_spinner());
        bar.set_style(spinner_style());
        bar.set_message(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Step {
            bar: Some((multi.clone(), bar)),
        }
    }

    /// Shows the tracked clusters: a spinner each, or a line whenever one changes.
    fn show(&mut self, clusters: &BTreeMap<&String, &ClusterView>, revision: &str) {
        let width = clusters.keys().map(|n| n.len()).max().unwrap_or(0);
        for (name, c) in clusters {
            let (phase, detail) = describe(c, revision);
            let now = (phase.clone(), detail.clone());
            if self.shown.get(*name) == Some(&now) {
                continue;
            }
            self.shown.insert((*name).clone(), now);
            let Some(multi) = &self.multi else {
                eprintln!(
                    "[{:>6}] {name:<width$}  {phase:<11} {detail}",
                    human(self.started.elapsed())
                );
                continue;
            };
            if phase == READY && c.revision.as_deref() == Some(revision) {
                // Done: the line goes above the spinners, where it stays.
                if let Some(bar) = self.bars.remove(*name) {
                    bar.finish_and_clear();
                    multi.remove(&bar);
                }
                let _ = multi.println(format!("✔ {name:<width$}  {phase:<11} {detail}"));
                continue;
            }
            let bar = self.bars.entry((*name).clone()).or_insert_with(|| {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(spinner_style());
                bar.set_prefix(format!("{name:<width$}"));
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            });
            bar.set_message(format!("{phase:<11} {detail}"));
        }
    }

    /// Forgets what was shown: the next wait starts afresh.
    fn finish_bars(&mut self) {
        self.clear();
        self.shown.clear();
    }

    /// Removes the spinners still running (before an error or the end).
    fn clear(&mut self) {
        for (_, bar) in std::mem::take(&mut self.bars) {
            bar.finish_and_clear();
            if let Some(multi) = &self.multi {
                multi.remove(&bar);
            }
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
        *BARS.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scaling_commit_edits_exactly_one_pool_of_the_example() {
        let (_, text) = cairn::example::FILES
            .iter()
            .find(|(p, _)| *p == SCALED_FILE)
            .expect("the example has the scaled cluster");
        assert_eq!(text.matches(SCALE_FROM).count(), 1, "{text}");
        assert!(text.contains(&format!("name: {SCALED_CLUSTER}")));
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human(Duration::from_millis(8_140)), "8.1s");
        assert_eq!(human(Duration::from_secs(125)), "2m05s");
    }
}
