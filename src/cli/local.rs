//! `cairn local up|status|down`: a local environment of real API servers and the provider
//! simulator (`cairn::local::env`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Subcommand;

use super::ExitStatus;
use super::args::{OutputFormat, tools_dir};
use cairn::local::env;

#[derive(Subcommand)]
pub enum LocalCommand {
    /// Start a management API server with the CAPI CRDs and the provider simulator in the
    /// background; returns once the server is ready.
    ///
    /// Needs Go the first time: kube-apiserver and etcd are built from the Go module proxy and
    /// cached (or set KUBEBUILDER_ASSETS). Then `export KUBECONFIG=DIR/mgmt.kubeconfig`.
    Up {
        #[arg(long, default_value = ".cairn/local")]
        dir: PathBuf,
        /// How long the simulator takes to provision each machine.
        #[arg(long, default_value_t = 200)]
        machine_delay_ms: u64,
    },
    /// Show the processes of the local environment and whether its API server answers.
    /// Exit code 0 when everything runs, 2 otherwise.
    Status {
        #[arg(long, default_value = ".cairn/local")]
        dir: PathBuf,
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Stop every process of the local environment and remove its state.
    Down {
        #[arg(long, default_value = ".cairn/local")]
        dir: PathBuf,
    },
    /// Run the provider simulator in the foreground (what `up` starts in the background).
    #[command(hide = true)]
    Simulate {
        #[arg(long, default_value = ".cairn/local")]
        dir: PathBuf,
        #[arg(long, default_value_t = 200)]
        machine_delay_ms: u64,
    },
}

pub async fn run(command: LocalCommand) -> Result<ExitStatus> {
    match command {
        LocalCommand::Up {
            dir,
            machine_delay_ms,
        } => {
            let report =
                env::up(&dir, &tools_dir(), Duration::from_millis(machine_delay_ms)).await?;
            eprintln!(
                "management API server ready at {} with {} CRDs and the providers ({} objects); simulator pid {}",
                report.server, report.crds, report.provider_objects, report.simulator_pid
            );
            eprintln!(
                "  the providers' release components are in {}",
                dir.join("providers").display()
            );
            eprintln!("  export KUBECONFIG={}", report.kubeconfig.display());
            eprintln!(
                "  cairn local down --dir {}   # stops everything",
                dir.display()
            );
            Ok(ExitStatus::Success)
        }
        LocalCommand::Status { dir, output } => status(&dir, output).await,
        LocalCommand::Down { dir } => {
            let stopped = env::down(&dir)?;
            eprintln!("stopped {stopped} process(es); removed {}", dir.display());
            Ok(ExitStatus::Success)
        }
        LocalCommand::Simulate {
            dir,
            machine_delay_ms,
        } => {
            env::simulate(&dir, Duration::from_millis(machine_delay_ms)).await?;
            Ok(ExitStatus::Success)
        }
    }
}

async fn status(dir: &std::path::Path, output: OutputFormat) -> Result<ExitStatus> {
    let status = env::status(dir).await;
    match output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&status)?),
        OutputFormat::Text => {
            let server = match status.api_server_ready {
                true => "ready",
                false => "not answering",
            };
            println!("{}: API server {server}", dir.display());
            for p in &status.processes {
                let state = if p.running { "running" } else { "stopped" };
                println!("  {:<40} pid {:<8} {state}", p.name, p.pid);
            }
        }
    }
    Ok(ExitStatus::failed_unless(status.healthy()))
}
