//! Serializing bundles: one YAML stream per stage, byte-for-byte deterministic.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::Bundle;
use super::finalize::sorted;

/// The objects as a multi-document YAML stream, every mapping's keys sorted.
pub fn objects_yaml(objects: &[Value]) -> String {
    let mut out = String::new();
    for obj in objects {
        out.push_str("---\n");
        // Serializing a Value cannot fail: its keys are strings.
        out.push_str(&serde_yaml::to_string(&sorted(obj)).unwrap_or_default());
    }
    out
}

/// Writes `DIR/<cluster>/NN-<stage>.yaml` for each present stage.
pub fn write_bundle(out_dir: &Path, bundle: &Bundle) -> std::io::Result<()> {
    let dir = out_dir.join(&bundle.cluster);
    std::fs::create_dir_all(&dir)?;
    for stage in &bundle.stages {
        std::fs::write(
            dir.join(stage.name.file_name()),
            objects_yaml(&stage.objects),
        )?;
    }
    Ok(())
}

/// A hidden directory inside the output directory that bundles are written to first.
pub struct Staging {
    out_dir: PathBuf,
    dir: PathBuf,
    /// Whether the output directory was made for this render (and goes if it fails).
    created_out_dir: bool,
}

impl Staging {
    pub fn create(out_dir: &Path) -> std::io::Result<Staging> {
        let created_out_dir = !out_dir.exists();
        let dir = out_dir.join(format!(".cairn-render-{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        Ok(Staging {
            out_dir: out_dir.to_path_buf(),
            dir,
            created_out_dir,
        })
    }

    pub fn write(&self, bundle: &Bundle) -> std::io::Result<()> {
        write_bundle(&self.dir, bundle)
    }

    /// Replaces each rendered cluster's directory in the output with its new one.
    pub fn commit(self) -> std::io::Result<()> {
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let target = self.out_dir.join(entry.file_name());
            if target.exists() {
                std::fs::remove_dir_all(&target)?;
            }
            std::fs::rename(entry.path(), &target)?;
        }
        std::fs::remove_dir_all(&self.dir)
    }

    /// Removes everything this render wrote, leaving the output as it was.
    pub fn discard(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if self.created_out_dir {
            let _ = std::fs::remove_dir(&self.out_dir);
        }
    }
}

/// All bundles as one stream (`--out -`), with a comment heading each cluster's stage.
pub fn bundles_stream(bundles: &[Bundle]) -> String {
    let mut out = String::new();
    for bundle in bundles {
        for stage in &bundle.stages {
            out.push_str(&format!(
                "# cluster: {} stage: {} ({})\n",
                bundle.cluster,
                stage.name.as_str(),
                stage.name.file_name()
            ));
            out.push_str(&objects_yaml(&stage.objects));
        }
    }
    out
}
