//! `cairn preview`: the preview core (`cairn::preview`) on two git revisions, and with
//! `--live` the live objects it asks for, read where each one lives.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Result;
use clap::ValueEnum;

use super::ExitStatus;
use super::args::KubeArgs;

use cairn::apply::api::{ClusterApi, KubeClusterApi};
use cairn::errors::chain;
use cairn::lifecycle::workload::reach_workload;
use cairn::model::types::StageName;
use cairn::preview::live::LiveCluster;
use cairn::preview::{GITHUB_COMMENT_LIMIT, LiveRequest, LiveState, PreviewOptions};
use cairn::render::capi::cluster_ref;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PreviewFormat {
    Markdown,
    Json,
}

#[derive(clap::Args)]
pub struct PreviewArgs {
    /// The config repository: a git checkout or a bare repository. Its working tree is never
    /// read or touched; both revisions come from git objects.
    #[arg(long, value_name = "DIR", default_value = ".")]
    repo: PathBuf,
    /// The revision the change starts from: a branch, tag, commit or `HEAD~1`.
    #[arg(long, value_name = "REV")]
    base: String,
    /// The revision with the change.
    #[arg(long, value_name = "REV", default_value = "HEAD")]
    head: String,
    /// Also compare the head render with the live clusters, keeping what this change does apart
    /// from drift that is already there.
    #[arg(long)]
    live: bool,
    /// How to reach the management cluster, for --live.
    #[command(flatten)]
    kube: KubeArgs,
    /// `markdown` for a pull-request comment, `json` for machines (`--format` also works).
    #[arg(short, long, alias = "format", value_enum, default_value_t = PreviewFormat::Markdown)]
    output: PreviewFormat,
    /// Warn when the change touches more than this percentage of the fleet's clusters at once.
    #[arg(long, value_name = "PERCENT", default_value_t = 10.0)]
    max_share: f64,
    /// Render every cluster of both revisions, not only those whose inputs differ (slower; also
    /// reports errors the base already had in untouched clusters).
    #[arg(long)]
    full: bool,
}

/// Prints the preview; `Differences` when head does not validate (the preview says why).
pub async fn run(args: &PreviewArgs) -> Result<ExitStatus> {
    let mgmt = match args.live {
        true => Some(args.kube.management(false).await?),
        false => None,
    };
    let opts = PreviewOptions {
        max_share_percent: args.max_share,
        full: args.full,
        live: args.live,
    };
    let (repo, base, head) = (args.repo.clone(), args.base.clone(), args.head.clone());
    let prepared = tokio::task::spawn_blocking(move || {
        cairn::preview::read_revisions(&repo, &base, &head)
            .map(|revisions| cairn::preview::prepare_revisions(&revisions, &opts))
    })
    .await??;
    let state = match &mgmt {
        Some(mgmt) => Some(live_state(mgmt, prepared.live_requests()).await),
        None => None,
    };
    let preview = prepared.finish(state.as_ref());
    match args.output {
        PreviewFormat::Markdown => print!(
            "{}",
            cairn::preview::markdown(&preview, GITHUB_COMMENT_LIMIT)
        ),
        PreviewFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&cairn::preview::json(&preview))?
        ),
    }
    Ok(match preview.head_valid() {
        true => ExitStatus::Success,
        false => ExitStatus::Differences,
    })
}

/// The live copy of every requested object, read where it lives: bootstrap and (unless the
/// cluster pivoted) workload objects in the management cluster, the rest in the workload
/// cluster (through the kubeconfig kept in cairn-system, or CAPI's Secret).
async fn live_state(mgmt: &KubeClusterApi, requests: Vec<LiveRequest>) -> LiveState {
    let mut state = LiveState::default();
    for request in requests {
        let cluster = request.cluster.clone();
        let entry = match live_cluster(mgmt, request).await {
            Ok(objects) => LiveCluster::Objects(objects),
            Err(why) => LiveCluster::Unavailable(why),
        };
        state.clusters.insert(cluster, entry);
    }
    state
}

async fn live_cluster(
    mgmt: &KubeClusterApi,
    request: LiveRequest,
) -> Result<HashMap<cairn::diff::ObjectKey, serde_json::Value>, String> {
    let name = &request.cluster;
    let in_mgmt = mgmt
        .get(&cluster_ref(name))
        .await
        .map_err(|e| format!("the management cluster cannot be read: {}", chain(&e)))?
        .is_some();
    let workload = reach_workload(mgmt, name).await.map_err(|e| {
        format!(
            "the workload cluster of {name} cannot be reached: {}",
            chain(&e)
        )
    })?;
    let mut objects = HashMap::new();
    for (stage, key) in request.objects {
        let api = match stage {
            StageName::Bootstrap | StageName::Workload if in_mgmt => Some(mgmt),
            _ => workload.as_ref(),
        };
        let Some(api) = api else { continue };
        // A kind the cluster does not serve yet means the object is not there.
        if let Ok(Some(live)) = api
            .dynamic()
            .get_by_key(&key.group, &key.kind, &key.namespace, &key.name)
            .await
        {
            objects.insert(key, live);
        }
    }
    Ok(objects)
}
