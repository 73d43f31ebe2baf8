//! The Cluster API and provider CRDs, as `tools/fetch-crds.sh` fetches and labels them.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid YAML")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    #[error(transparent)]
    Fetch(#[from] super::tools::ToolsError),
}

/// The directory of fetched CRDs: `$CAIRN_CRDS`, or the cache that `tools/fetch-crds.sh` fills
/// (running it when needed; it is cached by version).
pub fn crd_dir(tools_dir: &Path) -> Result<PathBuf, CrdError> {
    if let Some(dir) = std::env::var_os("CAIRN_CRDS") {
        return Ok(PathBuf::from(dir));
    }
    Ok(super::tools::cached_dir(tools_dir, "fetch-crds.sh")?)
}

/// Every CRD in `dir/all.yaml`.
pub fn load_crds(dir: &Path) -> Result<Vec<Value>, CrdError> {
    let path = dir.join("all.yaml");
    let text = std::fs::read_to_string(&path).map_err(|source| CrdError::Read {
        path: path.clone(),
        source,
    })?;
    parse_multi_doc(&text).map_err(|source| CrdError::Parse { path, source })
}

/// The non-empty documents of a multi-document YAML stream.
pub fn parse_multi_doc(text: &str) -> Result<Vec<Value>, serde_yaml::Error> {
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value = Value::deserialize(doc)?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}
