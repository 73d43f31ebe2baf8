//! What several benchmark examples share (included with `#[path]`; not an example itself).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};

/// The `cairn` binary: `$CAIRN_BIN`, else the one of this example's profile, built (or found
/// up to date) first.
pub fn cairn_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("CAIRN_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("the example lives in target/<profile>/examples")?;
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--bin", "cairn", "--manifest-path"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"));
    if release {
        build.arg("--release");
    }
    ensure!(build.status()?.success(), "cargo build --bin cairn failed");
    Ok(profile_dir.join("cairn"))
}

/// Requests the API server has served so far (`apiserver_request_total`, every label). It counts
/// resource requests only: neither discovery (`/api`, `/apis/...`) nor `/metrics` itself.
pub async fn served(client: &kube::Client) -> Result<u64> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(request).await?;
    let mut total = 0.0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("apiserver_request_total{") {
            let value = rest.rsplit(' ').next().unwrap_or("0");
            total += value.parse::<f64>().unwrap_or(0.0);
        }
    }
    Ok(total as u64)
}
