//! `cairn render`: each cluster's bundle as files, or one stream on stdout. The files go to a
//! staging directory first and replace the old output only when the whole repository rendered.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::ExitStatus;
use super::args::{RepoArgs, print_diagnostics};
use cairn::model::Diagnostic;
use cairn::render::{self, Bundle, output};

#[derive(clap::Args)]
pub struct RenderArgs {
    #[command(flatten)]
    repo: RepoArgs,
    /// Render only these clusters (repeatable); all by default.
    #[arg(long = "cluster", value_name = "NAME")]
    clusters: Vec<String>,
    /// Output directory, or `-` for stdout.
    #[arg(long)]
    out: String,
}

pub fn run(args: &RenderArgs) -> Result<ExitStatus> {
    let snap = args.repo.snapshot()?;
    if args.out == "-" {
        let rendered = render::render_repo(&snap, &args.clusters);
        print_diagnostics(&rendered.diagnostics);
        if rendered.has_errors() {
            return Ok(ExitStatus::Failure);
        }
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(output::bundles_stream(&rendered.bundles).as_bytes())?;
        return Ok(ExitStatus::Success);
    }
    let out_dir = PathBuf::from(&args.out);
    // Bundles are streamed into the staging directory as they are rendered, so the fleet is
    // never held in memory whole.
    let staging = Staging::create(&out_dir)?;
    let diagnostics = render::render_repo_with(&snap, &args.clusters, |bundle| {
        staging.write(&bundle).map_err(|e| {
            Diagnostic::error(
                out_dir.join(&bundle.cluster).display().to_string(),
                Default::default(),
                format!("cannot write the rendered bundle: {e}"),
            )
        })
    });
    print_diagnostics(&diagnostics);
    if diagnostics.iter().any(Diagnostic::is_error) {
        staging.discard();
        return Ok(ExitStatus::Failure);
    }
    staging.commit()?;
    Ok(ExitStatus::Success)
}

/// The file in each cluster directory that says cairn wrote it: a render replaces only
/// directories that hold it, so `--out .` cannot delete a repository's own `profiles/`.
const MARKER: &str = ".cairn-rendered";
const MARKER_TEXT: &str = "Written by `cairn render`; the next render replaces this directory.\n";

/// A hidden directory inside the output directory that bundles are written to first: a failed
/// render never leaves half an output.
struct Staging {
    out_dir: PathBuf,
    dir: PathBuf,
    /// Whether the output directory was made for this render (and goes if it fails).
    created_out_dir: bool,
}

impl Staging {
    fn create(out_dir: &Path) -> std::io::Result<Staging> {
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

    fn write(&self, bundle: &Bundle) -> std::io::Result<()> {
        let cluster_dir = self.dir.join(&bundle.cluster);
        std::fs::create_dir_all(&cluster_dir)?;
        std::fs::write(cluster_dir.join(MARKER), MARKER_TEXT)?;
        for (file, yaml) in output::bundle_files(bundle) {
            std::fs::write(self.dir.join(file), yaml)?;
        }
        Ok(())
    }

    /// Replaces each rendered cluster's directory in the output with its new one, all or none:
    /// every target is checked first, and a failed swap puts back the ones already made. The
    /// staging directory is gone afterwards either way.
    fn commit(self) -> Result<()> {
        let result = self.swap_all();
        let _ = std::fs::remove_dir_all(&self.dir);
        if result.is_err() && self.created_out_dir {
            let _ = std::fs::remove_dir(&self.out_dir);
        }
        result
    }

    fn swap_all(&self) -> Result<()> {
        let mut clusters = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            check_replaceable(&self.out_dir.join(&name))?;
            clusters.push(name);
        }
        let replaced = self.dir.join(".replaced");
        std::fs::create_dir(&replaced)?;
        let mut done = Vec::new();
        for name in &clusters {
            let target = self.out_dir.join(name);
            let swapped = (|| {
                if target.exists() {
                    std::fs::rename(&target, replaced.join(name))?;
                }
                std::fs::rename(self.dir.join(name), &target)
            })();
            if let Err(e) = swapped {
                self.put_back(&replaced, &done, name);
                return Err(anyhow::Error::new(e).context(format!(
                    "cannot move the new {} into place",
                    target.display()
                )));
            }
            done.push(name);
        }
        Ok(())
    }

    /// Undoes the swaps of `done` (and a half-done swap of `failed`).
    fn put_back(&self, replaced: &Path, done: &[&std::ffi::OsString], failed: &std::ffi::OsStr) {
        for name in done {
            let _ = std::fs::remove_dir_all(self.out_dir.join(name));
        }
        for name in done.iter().map(|n| n.as_os_str()).chain([failed]) {
            if replaced.join(name).exists() {
                let _ = std::fs::rename(replaced.join(name), self.out_dir.join(name));
            }
        }
    }

    /// Removes everything this render wrote, leaving the output as it was.
    fn discard(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if self.created_out_dir {
            let _ = std::fs::remove_dir(&self.out_dir);
        }
    }
}

/// A target is replaceable when it does not exist or is a directory an earlier render wrote.
fn check_replaceable(target: &Path) -> Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(target) else {
        return Ok(());
    };
    if meta.is_dir() && target.join(MARKER).is_file() {
        return Ok(());
    }
    anyhow::bail!(
        "{} exists and was not written by cairn render (it has no {MARKER}); nothing was written\n  \
         help: render into an empty or new directory, or remove that path",
        target.display()
    )
}
