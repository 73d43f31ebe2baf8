//! `cairn status`: one row per cluster, read where its CAPI objects live.

use anyhow::Result;

use super::ExitStatus;
use super::args::{KubeArgs, OutputFormat};
use cairn::lifecycle::status::{fleet_status, table};

#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    kube: KubeArgs,
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

pub async fn run(args: &StatusArgs) -> Result<ExitStatus> {
    let mgmt = args.kube.management(false).await?;
    let rows = fleet_status(&mgmt).await?;
    match args.output {
        OutputFormat::Text => print!("{}", table(&rows)),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
    }
    let reachable = rows.iter().all(|r| r.location != "unreachable");
    Ok(ExitStatus::failed_unless(reachable))
}
