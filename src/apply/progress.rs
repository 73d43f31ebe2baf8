//! Where apply reports its steps: a callback, so the CLI can draw spinners on a terminal and
//! write log lines elsewhere, and the engine stays free of both.

use std::sync::Arc;

/// Called with the cluster and a short description of the step it reached.
pub type Progress = Arc<dyn Fn(&str, &str) + Send + Sync>;

/// Progress as log lines (`cluster NAME: step`), for pipes, CI logs and tests.
pub fn log_lines() -> Progress {
    Arc::new(|cluster, step| tracing::info!("cluster {cluster}: {step}"))
}
