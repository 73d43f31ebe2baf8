//! Shared by the tests that need real API servers. They never skip: missing assets are built
//! (cached by version), and a failed build fails the test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use cairn::local::{ApiServer, ApiServerOptions, Assets};

pub fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools")
}

pub fn assets() -> Assets {
    Assets::find_or_build(&tools_dir()).unwrap_or_else(|e| panic!("test assets unavailable: {e}"))
}

pub fn crds() -> Vec<serde_json::Value> {
    let dir = cairn::local::crds::crd_dir(&tools_dir())
        .unwrap_or_else(|e| panic!("CRDs unavailable: {e}"));
    cairn::local::crds::load_crds(&dir).unwrap_or_else(|e| panic!("{e}"))
}

pub async fn start(name: &str, dir: &Path) -> ApiServer {
    ApiServer::start(&assets(), ApiServerOptions::new(name, dir.join(name)))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}
