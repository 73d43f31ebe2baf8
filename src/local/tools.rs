//! Running the `tools/*.sh` scripts that build or fetch a cached directory and print its path.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum ToolsError {
    #[error("cannot run {script}")]
    Spawn {
        script: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{script} failed (exit {code:?}); its log is above")]
    Failed { script: PathBuf, code: Option<i32> },
}

/// Runs `tools_dir/name` (its log goes to our stderr) and returns the directory it prints.
pub fn cached_dir(tools_dir: &Path, name: &str) -> Result<PathBuf, ToolsError> {
    let script = tools_dir.join(name);
    let output = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| ToolsError::Spawn {
            script: script.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(ToolsError::Failed {
            script,
            code: output.status.code(),
        });
    }
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim(),
    ))
}
