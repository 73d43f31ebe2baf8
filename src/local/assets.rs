//! Finding (or building) the test assets: `kube-apiserver`, `etcd` and `kubectl`.
//!
//! Lookup follows controller-runtime's envtest: `TEST_ASSET_KUBE_APISERVER`, `TEST_ASSET_ETCD`,
//! `TEST_ASSET_KUBECTL`, then `$KUBEBUILDER_ASSETS/<name>`; cairn then falls back to building
//! them from the Go module proxy with `tools/build-assets.sh`, which caches by version.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum AssetError {
    #[error(
        "no {name} binary: set {env} or KUBEBUILDER_ASSETS, or build the assets with tools/build-assets.sh \
         (needs Go and the Go module proxy)"
    )]
    Missing {
        name: &'static str,
        env: &'static str,
    },
    #[error("{path} does not exist or is not executable (from {source_var})")]
    NotExecutable { path: PathBuf, source_var: String },
    #[error(transparent)]
    Build(#[from] super::tools::ToolsError),
}

#[derive(Clone, Debug)]
pub struct Assets {
    pub kube_apiserver: PathBuf,
    pub etcd: PathBuf,
    pub kubectl: PathBuf,
}

const BINARIES: [(&str, &str); 3] = [
    ("kube-apiserver", "TEST_ASSET_KUBE_APISERVER"),
    ("etcd", "TEST_ASSET_ETCD"),
    ("kubectl", "TEST_ASSET_KUBECTL"),
];

impl Assets {
    /// The assets named by the environment, without building anything.
    pub fn from_env() -> Result<Assets, AssetError> {
        let dir = std::env::var_os("KUBEBUILDER_ASSETS").map(PathBuf::from);
        Self::resolve(dir.as_deref())
    }

    fn resolve(dir: Option<&Path>) -> Result<Assets, AssetError> {
        let mut found = Vec::new();
        for (name, env) in BINARIES {
            let (path, source_var) = match (std::env::var_os(env), dir) {
                (Some(p), _) => (PathBuf::from(p), env.to_string()),
                (None, Some(d)) => (d.join(name), "KUBEBUILDER_ASSETS".to_string()),
                (None, None) => return Err(AssetError::Missing { name, env }),
            };
            if !is_executable(&path) {
                return Err(AssetError::NotExecutable { path, source_var });
            }
            found.push(path);
        }
        let [kube_apiserver, etcd, kubectl]: [PathBuf; 3] =
            found.try_into().expect("three binaries");
        Ok(Assets {
            kube_apiserver,
            etcd,
            kubectl,
        })
    }

    /// The assets from the environment, or built (once, cached by version) by
    /// `tools/build-assets.sh` under `tools_dir`.
    pub fn find_or_build(tools_dir: &Path) -> Result<Assets, AssetError> {
        if let Ok(assets) = Self::from_env() {
            return Ok(assets);
        }
        let dir = super::tools::cached_dir(tools_dir, "build-assets.sh")?;
        Self::resolve(Some(&dir))
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
