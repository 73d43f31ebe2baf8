//! `cairn init DIR`: a small valid fleet repository to start from (fleet.yaml, one Docker
//! cluster, one profile with one layer, the JSON Schemas and the modelines that use them).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::ExitStatus;

#[derive(clap::Args)]
pub struct InitArgs {
    /// Where to write it (created if missing).
    dir: PathBuf,
}

/// The files of a new repository, relative to its root.
const FILES: &[(&str, &str)] = &[
    (
        "fleet.yaml",
        "# yaml-language-server: $schema=schema/fleet.schema.json
#
# Fleet-wide settings and defaults for every cluster in this repository.
apiVersion: cairn.dev/v1alpha1
kind: Fleet
metadata:
  name: my-fleet
spec:
  defaults:
    kubernetesVersion: v1.34.2
    pivot: false
",
    ),
    (
        "clusters/dev-1.yaml",
        "# yaml-language-server: $schema=../schema/cluster.schema.json
#
# A development cluster on CAPD (Docker): one control-plane node, two workers.
apiVersion: cairn.dev/v1alpha1
kind: Cluster
metadata:
  name: dev-1
  labels:
    env: dev
spec:
  infrastructure:
    provider: docker
    docker: {}
  controlPlane:
    replicas: 1
    machine: {}
  workers:
    - name: md-0
      replicas: 2
      machine: {}
  profiles: [base]
",
    ),
    (
        "profiles/base.yaml",
        "# yaml-language-server: $schema=../schema/clusterprofile.schema.json
#
# What every cluster gets. Layers reference manifests by repo-relative globs.
apiVersion: cairn.dev/v1alpha1
kind: ClusterProfile
metadata:
  name: base
spec:
  variables:
    TEAM: {default: platform}
  layers:
    - name: platform
      manifests: [addons/platform/*.yaml]
",
    ),
    (
        "addons/platform/namespace.yaml",
        "apiVersion: v1
kind: Namespace
metadata:
  name: platform
  labels:
    team: ${TEAM}
    cluster: ${CLUSTER_NAME}
",
    ),
];

/// Writes a new repository into `dir` (created if missing); refuses to write over one.
pub fn run(args: &InitArgs) -> Result<ExitStatus> {
    let dir = &args.dir;
    for existing in ["fleet.yaml", "clusters"] {
        if dir.join(existing).exists() {
            bail!(
                "{} already holds a fleet repository ({existing} exists); nothing was written\n  \
                 help: pick an empty or new directory",
                dir.display()
            );
        }
    }
    for (file, text) in FILES {
        write(&dir.join(file), text)?;
    }
    for (file, schema) in cairn::model::schema::all_schemas() {
        write(
            &dir.join("schema").join(file),
            &cairn::model::schema::schema_text(&schema),
        )?;
    }
    eprintln!(
        "wrote a fleet repository to {0}\n  cairn validate --repo {0}\n  cairn render --repo {0} --out -",
        dir.display()
    );
    Ok(ExitStatus::Success)
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}
