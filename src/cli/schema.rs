//! `cairn schema`: the JSON Schemas of the config files, for editors.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::ExitStatus;
use cairn::model::schema::{all_schemas, schema_text};

#[derive(clap::Args)]
pub struct SchemaArgs {
    /// Directory to write `*.schema.json` into, or `-` for one JSON object on stdout that
    /// maps each file name to its schema.
    #[arg(long, default_value = "schema")]
    out: PathBuf,
}

pub fn run(args: &SchemaArgs) -> Result<ExitStatus> {
    let out = &args.out;
    if out.as_os_str() == "-" {
        let all: serde_json::Map<String, serde_json::Value> = all_schemas()
            .into_iter()
            .map(|(file, schema)| (file.to_string(), schema))
            .collect();
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(ExitStatus::Success);
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for (file, schema) in all_schemas() {
        let path = out.join(file);
        std::fs::write(&path, schema_text(&schema))
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(ExitStatus::Success)
}
