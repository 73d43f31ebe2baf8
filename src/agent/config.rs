//! The agent's configuration: the `config.yaml` the pivot stage renders into the
//! `cairn-agent-config` ConfigMap, read from a mounted file in the cluster or from the
//! ConfigMap itself when the agent runs outside it (`--kubeconfig`).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::json;

use crate::apply::api::ClusterApi;
use crate::render::pivot::{AGENT_NAME, AGENT_NAMESPACE};
use crate::source::Credentials;

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct AgentConfig {
    pub cluster: String,
    pub source: SourceConfig,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct SourceConfig {
    pub url: String,
    pub branch: String,
    /// Where the credentials Secret is mounted, if there is one.
    pub credentials_path: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the agent config {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read ConfigMap {AGENT_NAMESPACE}/{AGENT_NAME}-config: {0}")]
    Api(String),
    #[error(
        "ConfigMap {AGENT_NAMESPACE}/{AGENT_NAME}-config does not exist\n  help: `cairn apply` installs it with the \
         pivot stage; or pass --config FILE"
    )]
    Missing,
    #[error("{origin}: not an agent config ({detail})")]
    Invalid { origin: String, detail: String },
}

fn parse(text: &str, origin: &str) -> Result<AgentConfig, ConfigError> {
    serde_yaml::from_str(text).map_err(|e| ConfigError::Invalid {
        origin: origin.to_string(),
        detail: e.to_string(),
    })
}

/// From `file` when given, else from the ConfigMap in the cluster.
pub async fn load(api: &impl ClusterApi, file: Option<&Path>) -> Result<AgentConfig, ConfigError> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        return parse(&text, &path.display().to_string());
    }
    let stub = json!({"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": format!("{AGENT_NAME}-config"), "namespace": AGENT_NAMESPACE}});
    let live = api
        .get(&stub)
        .await
        .map_err(|e| ConfigError::Api(e.to_string()))?
        .ok_or(ConfigError::Missing)?;
    let text = live
        .pointer("/data/config.yaml")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    parse(
        text,
        &format!("ConfigMap {AGENT_NAMESPACE}/{AGENT_NAME}-config"),
    )
}

/// Git credentials: files of the mounted Secret (`identity` or `ssh-privatekey` for SSH,
/// `password` or `token` for HTTPS, `username`), then the environment.
pub fn credentials(source: &SourceConfig) -> Credentials {
    let mut creds = Credentials::from_env();
    let Some(dir) = &source.credentials_path else {
        return creds;
    };
    let existing = |names: &[&str]| names.iter().map(|n| dir.join(n)).find(|p| p.is_file());
    if let Some(key) = existing(&["identity", "ssh-privatekey"]) {
        creds.ssh_key_file = Some(key);
    }
    if let Some(token) = existing(&["password", "token"]) {
        creds.token_file = Some(token);
    }
    if let Some(user) = existing(&["username"]).and_then(|p| std::fs::read_to_string(p).ok()) {
        creds.username = Some(user.trim().to_string());
    }
    creds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rendered_config_parses() {
        let text = "cluster: c1\nnamespace: c1\nsource:\n  url: file:///tmp/x\n  branch: main\n  credentialsSecret: null\n  credentialsPath: null\n";
        let config = parse(text, "test").unwrap();
        assert_eq!(config.cluster, "c1");
        assert_eq!(config.source.url, "file:///tmp/x");
        assert_eq!(config.source.branch, "main");
        assert!(
            parse("- a list", "origin")
                .unwrap_err()
                .to_string()
                .starts_with("origin: not an agent config")
        );
    }

    #[test]
    fn credentials_come_from_the_mounted_secret_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ssh-privatekey"), "key").unwrap();
        std::fs::write(dir.path().join("username"), "bot\n").unwrap();
        let source = SourceConfig {
            credentials_path: Some(dir.path().to_path_buf()),
            ..SourceConfig::default()
        };
        let creds = credentials(&source);
        assert_eq!(creds.ssh_key_file, Some(dir.path().join("ssh-privatekey")));
        assert_eq!(creds.username.as_deref(), Some("bot"));
    }
}
