//! Writes a synthetic fleet (`cairn::synth`) to disk, for benchmarking `cairn render`.
//!
//! ```sh
//! cargo run --release --example synth_fleet -- DIR 10000
//! target/release/cairn render --repo DIR --out OUT
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, clusters) = match args.as_slice() {
        [dir] => (PathBuf::from(dir), 10_000),
        [dir, n] => match n.replace('_', "").parse::<usize>() {
            Ok(n) => (PathBuf::from(dir), n),
            Err(_) => return usage(&format!("CLUSTERS must be a number, got `{n}`")),
        },
        _ => return usage("expected DIR and optionally CLUSTERS"),
    };
    if dir.exists() && std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some()) {
        return usage(&format!("{} exists and is not empty", dir.display()));
    }
    match cairn::synth::write_synthetic_fleet(&dir, clusters) {
        Ok(()) => {
            eprintln!(
                "wrote a synthetic fleet of {clusters} clusters to {}",
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", dir.display());
            ExitCode::from(2)
        }
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("error: {problem}\nusage: synth_fleet DIR [CLUSTERS, default 10000]");
    ExitCode::from(2)
}
