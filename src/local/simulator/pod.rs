//! A Deployment's pod as a local process, held to what a kubelet would do with it: it runs
//! only where the scheduler would put it (its tolerations cover a Node's taints), with its
//! container's args and env, its volumes as directories (a ConfigMap's or Secret's keys as
//! files, an `emptyDir` kept across restarts) and its mount paths mapped onto them, no
//! writable temp dir under `readOnlyRootFilesystem`, and a kubeconfig holding its
//! ServiceAccount's token, not the admin's, so an RBAC gap fails as it would in a cluster.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::Value;

use super::SimulatorError;
use super::objects::{ident, s};
use super::schema::Server;

/// What the process of a pod is started with.
#[derive(Debug, PartialEq)]
pub struct Launch {
    /// The container's args, mount paths mapped.
    pub args: Vec<String>,
    /// The container's env (literal values), mount paths mapped, then KUBECONFIG, HOME, TMPDIR.
    pub env: Vec<(String, String)>,
}

/// Why a pod does not run (yet), as `kubectl describe` would say it.
pub type Pending = String;

/// Whether `toleration` tolerates `taint` (the scheduler's rule: an empty key with `Exists`
/// tolerates everything; an empty effect matches every effect).
fn tolerates(toleration: &Value, taint: &Value) -> bool {
    let effect = s(toleration, "/effect");
    if !effect.is_empty() && effect != s(taint, "/effect") {
        return false;
    }
    let key = s(toleration, "/key");
    match s(toleration, "/operator") {
        "Exists" => key.is_empty() || key == s(taint, "/key"),
        _ => key == s(taint, "/key") && s(toleration, "/value") == s(taint, "/value"),
    }
}

/// [`schedulable`] for the pod template of a workload (Deployment, DaemonSet).
pub fn template_schedulable(workload: &Value, nodes: &[Value]) -> Result<(), Pending> {
    let pod = workload
        .pointer("/spec/template/spec")
        .unwrap_or(&Value::Null);
    schedulable(pod, nodes)
}

/// Whether the pod may be scheduled on one of `nodes`: its `nodeSelector` matches the Node's
/// labels and every NoSchedule and NoExecute taint is tolerated. `Err` says why none fits, as
/// the scheduler's event does.
pub fn schedulable(pod: &Value, nodes: &[Value]) -> Result<(), Pending> {
    let none = Vec::new();
    let tolerations = pod["tolerations"].as_array().unwrap_or(&none);
    let selected = |node: &Value| {
        pod["nodeSelector"]
            .as_object()
            .into_iter()
            .flatten()
            .all(|(k, v)| node["metadata"]["labels"].get(k) == Some(v))
    };
    let nodes: Vec<&Value> = nodes.iter().filter(|n| selected(n)).collect();
    let blocking = |node: &&Value| -> Option<String> {
        node.pointer("/spec/taints")
            .and_then(Value::as_array)
            .unwrap_or(&none)
            .iter()
            .filter(|t| matches!(s(t, "/effect"), "NoSchedule" | "NoExecute"))
            .find(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
            .map(|t| format!("{{{}: {}}}", s(t, "/key"), s(t, "/effect")))
    };
    if nodes.is_empty() {
        return Err(
            "0 nodes are available: none has registered or matches the nodeSelector".into(),
        );
    }
    let untolerated: Vec<String> = nodes.iter().filter_map(blocking).collect();
    if untolerated.len() < nodes.len() {
        return Ok(());
    }
    Err(format!(
        "0/{} nodes are available: untolerated taint(s) {}",
        nodes.len(),
        untolerated.join(", ")
    ))
}

/// `text` with a leading mount path replaced by the directory standing for it (the longest
/// mount path that is a prefix of a path component boundary wins).
fn map_path(text: &str, mounts: &[(String, PathBuf)]) -> String {
    let hit = mounts
        .iter()
        .filter(|(at, _)| {
            text == at
                || text
                    .strip_prefix(at.as_str())
                    .is_some_and(|r| r.starts_with('/'))
        })
        .max_by_key(|(at, _)| at.len());
    match hit {
        Some((at, dir)) => format!("{}{}", dir.display(), &text[at.len()..]),
        None => text.to_string(),
    }
}

/// Prepares the pod of `deployment` (its first container) in `dir`: checks it can be
/// scheduled on `nodes`, writes its volumes and its ServiceAccount kubeconfig. `Ok(Err(why))`
/// when it cannot start yet (unschedulable, a volume's ConfigMap or Secret missing).
pub async fn prepare(
    server: &Server,
    admin_kubeconfig: &str,
    deployment: &Value,
    nodes: &[Value],
    dir: &Path,
) -> Result<Result<Launch, Pending>, SimulatorError> {
    let pod = &deployment["spec"]["template"]["spec"];
    if let Err(why) = schedulable(pod, nodes) {
        return Ok(Err(why));
    }
    let namespace = s(deployment, "/metadata/namespace");
    let container = &pod["containers"][0];
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SimulatorError::PodFiles {
            path: path.clone(),
            source,
        }
    };
    let mut mounts = Vec::new();
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let name = s(mount, "/name");
        let local = dir.join("volumes").join(name);
        let volume = pod["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| s(v, "/name") == name);
        let Some(volume) = volume else {
            return Ok(Err(format!("volumeMount {name} names no volume")));
        };
        if let Err(why) = fill_volume(server, namespace, volume, &local, io(&local)).await? {
            return Ok(Err(why));
        }
        mounts.push((s(mount, "/mountPath").to_string(), local));
    }
    let args = container["args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|a| map_path(a, &mounts))
        .collect();
    let mut env: Vec<(String, String)> = container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e.get("value").is_some())
        .map(|e| (s(e, "/name").to_string(), map_path(s(e, "/value"), &mounts)))
        .collect();
    let account = match s(pod, "/serviceAccountName") {
        "" => "default",
        name => name,
    };
    let kubeconfig = crate::local::token::service_account_kubeconfig(
        server.api.client(),
        admin_kubeconfig,
        namespace,
        account,
    )
    .await;
    let kubeconfig = match kubeconfig {
        Ok(k) => k,
        Err(e) => return Ok(Err(crate::errors::chain(&e))),
    };
    let kubeconfig_path = dir.join("serviceaccount.kubeconfig");
    write_private(&kubeconfig_path, kubeconfig.as_bytes()).map_err(io(&kubeconfig_path))?;
    // No home and, under a read-only root, no temp dir: paths below a file, so that creating
    // anything there fails even for root (permission bits would not stop it).
    let nowhere = dir.join("root-filesystem");
    std::fs::write(&nowhere, b"").map_err(io(&nowhere))?;
    let read_only = container
        .pointer("/securityContext/readOnlyRootFilesystem")
        .and_then(Value::as_bool)
        == Some(true);
    let tmp = if read_only {
        nowhere.join("tmp")
    } else {
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        tmp
    };
    env.push(("KUBECONFIG".into(), kubeconfig_path.display().to_string()));
    env.push(("HOME".into(), nowhere.join("home").display().to_string()));
    env.push(("TMPDIR".into(), tmp.display().to_string()));
    Ok(Ok(Launch { args, env }))
}

/// A volume backed by a ConfigMap or a Secret.
struct VolumeSource<'a> {
    kind: &'static str,
    name: &'a str,
    optional: bool,
}

impl<'a> VolumeSource<'a> {
    fn of(volume: &'a Value) -> Option<VolumeSource<'a>> {
        let (kind, spec, name) = if let Some(cm) = volume.get("configMap") {
            ("ConfigMap", cm, s(cm, "/name"))
        } else {
            let secret = volume.get("secret")?;
            ("Secret", secret, s(secret, "/secretName"))
        };
        let optional = spec["optional"].as_bool() == Some(true);
        Some(VolumeSource {
            kind,
            name,
            optional,
        })
    }

    fn ident(&self, namespace: &str) -> Value {
        ident("v1", self.kind, namespace, self.name)
    }

    /// What a pod whose volume source is missing is: running if it is optional.
    fn missing(&self, namespace: &str) -> Result<(), Pending> {
        match self.optional {
            true => Ok(()),
            false => Err(format!("{} {namespace}/{} not found", self.kind, self.name)),
        }
    }
}

/// Whether every ConfigMap and Secret the pod template of `workload` mounts exists (the
/// kubelet does not start a container before its volumes are set up); `Err` names the first
/// one missing.
pub async fn template_volumes_exist(
    server: &Server,
    workload: &Value,
) -> Result<Result<(), Pending>, SimulatorError> {
    let namespace = s(workload, "/metadata/namespace");
    let volumes = workload.pointer("/spec/template/spec/volumes");
    for source in volumes
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(VolumeSource::of)
    {
        if server.fetch(&source.ident(namespace)).await?.is_none() {
            if let Err(why) = source.missing(namespace) {
                return Ok(Err(why));
            }
        }
    }
    Ok(Ok(()))
}

/// Writes a volume's content into `local`: an `emptyDir` is created (and kept), a ConfigMap's
/// or Secret's keys become files, written afresh on each start.
async fn fill_volume(
    server: &Server,
    namespace: &str,
    volume: &Value,
    local: &Path,
    io: impl Fn(std::io::Error) -> SimulatorError,
) -> Result<Result<(), Pending>, SimulatorError> {
    let Some(source) = VolumeSource::of(volume) else {
        // emptyDir, and anything else: a directory that lives as long as the pod's slot.
        return std::fs::create_dir_all(local).map(Ok).map_err(io);
    };
    let live = server.fetch(&source.ident(namespace)).await?;
    let _ = std::fs::remove_dir_all(local);
    std::fs::create_dir_all(local).map_err(&io)?;
    let Some(live) = live else {
        return Ok(source.missing(namespace));
    };
    let kind = source.kind;
    for (key, value) in live["data"].as_object().into_iter().flatten() {
        let text = value.as_str().unwrap_or_default();
        let bytes = if kind == "Secret" {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .unwrap_or_default()
        } else {
            text.as_bytes().to_vec()
        };
        write_private(&local.join(key), &bytes).map_err(&io)?;
    }
    Ok(Ok(()))
}

/// Writes a file only its owner may read (tokens, Secret keys).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(taints: Value) -> Value {
        json!({"spec": {"taints": taints}})
    }

    #[test]
    fn a_pod_runs_only_where_its_tolerations_cover_the_taints() {
        let control_plane =
            node(json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]));
        let plain = json!({"containers": []});
        let err = schedulable(&plain, std::slice::from_ref(&control_plane)).unwrap_err();
        assert!(
            err.contains("node-role.kubernetes.io/control-plane: NoSchedule"),
            "{err}"
        );
        let tolerating = json!({"tolerations": [
            {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]});
        assert_eq!(
            schedulable(&tolerating, std::slice::from_ref(&control_plane)),
            Ok(())
        );
        // A worker without taints takes the plain pod; PreferNoSchedule never blocks.
        let soft = node(json!([{"key": "x", "effect": "PreferNoSchedule"}]));
        assert_eq!(schedulable(&plain, &[control_plane.clone(), soft]), Ok(()));
        let everything = json!({"tolerations": [{"operator": "Exists"}]});
        assert_eq!(schedulable(&everything, &[control_plane]), Ok(()));
        assert!(schedulable(&everything, &[]).is_err(), "no node, no pod");
        let pinned =
            json!({"nodeSelector": {"role": "cp"}, "tolerations": [{"operator": "Exists"}]});
        let mut labelled = node(json!([]));
        labelled["metadata"] = json!({"labels": {"role": "cp"}});
        assert!(
            schedulable(&pinned, &[node(json!([]))]).is_err(),
            "not selected"
        );
        assert_eq!(schedulable(&pinned, &[labelled]), Ok(()));
        let wrong_value = json!({"tolerations": [{"key": "k", "value": "a"}]});
        let tainted = node(json!([{"key": "k", "value": "b", "effect": "NoExecute"}]));
        assert!(schedulable(&wrong_value, &[tainted]).is_err());
    }

    #[test]
    fn mount_paths_map_onto_their_directories_at_component_boundaries() {
        let mounts = vec![
            ("/etc/cairn".to_string(), PathBuf::from("/tmp/p/volumes/a")),
            (
                "/etc/cairn/config".to_string(),
                PathBuf::from("/tmp/p/volumes/b"),
            ),
        ];
        assert_eq!(
            map_path("/etc/cairn/config/config.yaml", &mounts),
            "/tmp/p/volumes/b/config.yaml"
        );
        assert_eq!(map_path("/etc/cairn", &mounts), "/tmp/p/volumes/a");
        assert_eq!(map_path("/etc/cairnish", &mounts), "/etc/cairnish");
        assert_eq!(map_path("--cluster", &mounts), "--cluster");
    }
}
