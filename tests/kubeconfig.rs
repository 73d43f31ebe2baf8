//! Kubeconfigs as kubectl reads them, against real API servers: an unreachable server fails in
//! seconds and names its URL (while one that answered before is retried), `KUBECONFIG` lists
//! are merged (first wins), `--context` selects, and an exec plugin that is not installed is
//! named.

mod common;
mod env;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cairn::apply::api::{ApiError, ClusterApi, KubeClusterApi};
use cairn::kubeconfig::{KubeconfigError, KubeconfigFiles, client_for};
use serde_json::json;

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A kubeconfig with `contexts` (name, `cluster/user`), `clusters` (name, server URL; TLS not
/// verified), `users` (name, the user as flow YAML) and `current`-context.
fn kubeconfig(
    contexts: &[(&str, &str)],
    clusters: &[(&str, &str)],
    users: &[(&str, &str)],
    current: Option<&str>,
) -> String {
    let mut yaml = String::from("apiVersion: v1\nkind: Config\nclusters:\n");
    for (name, server) in clusters {
        yaml.push_str(&format!(
            "- name: {name}\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\n"
        ));
    }
    yaml.push_str("users:\n");
    for (name, user) in users {
        yaml.push_str(&format!("- name: {name}\n  user: {user}\n"));
    }
    yaml.push_str("contexts:\n");
    for (name, cluster_and_user) in contexts {
        let (cluster, user) = cluster_and_user.split_once('/').unwrap();
        yaml.push_str(&format!(
            "- name: {name}\n  context: {{cluster: {cluster}, user: {user}}}\n"
        ));
    }
    if let Some(current) = current {
        yaml.push_str(&format!("current-context: {current}\n"));
    }
    yaml
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const TOKEN_USER: &str = "{token: not-a-real-token}";

/// The URL of a server that refuses connections, and a kubeconfig pointing at it.
fn unreachable_kubeconfig(dir: &Path) -> (String, PathBuf) {
    let url = format!("https://127.0.0.1:{}", closed_port());
    let text = kubeconfig(
        &[("nowhere", "nowhere/bob")],
        &[("nowhere", &url)],
        &[("bob", TOKEN_USER)],
        Some("nowhere"),
    );
    (url, write(dir, "unreachable", &text))
}

#[test]
fn status_against_an_unreachable_server_fails_in_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let (url, file) = unreachable_kubeconfig(dir.path());
    let start = Instant::now();
    let run = common::cairn(["status", "--kubeconfig", file.to_str().unwrap()]);
    let took = start.elapsed();
    assert_eq!(run.code, 2, "{run:?}");
    assert!(took < Duration::from_secs(15), "took {took:?}: {run:?}");
    assert!(
        run.stderr.contains("cannot reach the API server"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("connection refused"), "{}", run.stderr);
    assert!(!run.stderr.contains("does not serve"), "{}", run.stderr);
    assert!(run.stderr.contains(&url), "names {url}: {}", run.stderr);
    // `--context` reaches the same kubeconfig loading from the command line.
    let run = common::cairn([
        "status",
        "--kubeconfig",
        file.to_str().unwrap(),
        "--context",
        "no-such-context",
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("no-such-context"), "{}", run.stderr);
    assert!(!run.stderr.contains("cannot reach"), "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_named_and_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let (url, file) = unreachable_kubeconfig(dir.path());
    let mgmt = client_for(&KubeconfigFiles::Flag(file.clone()), None)
        .await
        .unwrap();
    assert_eq!(mgmt.server, url);
    assert_eq!(mgmt.context.as_deref(), Some("nowhere"));
    assert_eq!(mgmt.files, vec![file]);
    let api = KubeClusterApi::with_server(mgmt.client, mgmt.server, false);

    let start = Instant::now();
    // Discovery first (the kind is looked up), so this is where "does not serve" used to come from.
    let e = api
        .list("cluster.x-k8s.io/v1beta2", "Cluster", None, None)
        .await
        .unwrap_err();
    let took = start.elapsed();
    let text = e.to_string();
    assert!(took < Duration::from_secs(10), "took {took:?}: {text}");
    assert!(e.is_unreachable(), "{text}");
    assert!(
        text.starts_with(&format!(
            "cannot reach the API server {url}: connection refused"
        )),
        "{text}"
    );
    assert!(
        text.contains("help: check --kubeconfig/--context"),
        "{text}"
    );
    assert!(!text.contains("does not serve"), "{text}");
    // At most one quick retry.
    let requests = api
        .counters
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(requests <= 2, "{requests} requests");

    // A plain get goes the same way.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "x", "namespace": "default"}});
    let e = api.get(&cm).await.unwrap_err();
    assert!(e.to_string().contains(&url), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_answered_before_is_retried_while_it_restarts() {
    let root = tempfile::tempdir().unwrap();
    let mut server = env::start("restarts", root.path()).await;
    let mgmt = client_for(&KubeconfigFiles::Flag(server.kubeconfig_path.clone()), None)
        .await
        .unwrap();
    assert_eq!(mgmt.server, format!("https://127.0.0.1:{}", server.port));
    let api = KubeClusterApi::with_server(mgmt.client, mgmt.server, false);
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}});
    assert!(api.get(&ns).await.unwrap().is_some());
    assert!(api.dynamic().has_answered());

    server.stop_apiserver();
    let (read, restarted) = tokio::join!(api.get(&ns), async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        server.restart_apiserver().await
    });
    restarted.unwrap();
    let read = read.unwrap_or_else(|e| panic!("not retried: {e}"));
    assert!(read.is_some());
    let requests = api
        .counters
        .requests
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        requests > 2,
        "the read while it was down was retried ({requests} requests)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_lists_merge_as_kubectl_merges_them() {
    let root = tempfile::tempdir().unwrap();
    let server = env::start("merged", root.path()).await;
    let real = format!("https://127.0.0.1:{}", server.port);
    let elsewhere = format!("https://127.0.0.1:{}", closed_port());

    // The first file: the real server's context, cluster and user, and a current-context.
    let a = server.kubeconfig_path.clone();
    // The second: another context, its own current-context, and a context named like the
    // first file's (pointing elsewhere), which must lose.
    let b = write(
        root.path(),
        "b",
        &kubeconfig(
            &[("other", "elsewhere/bob"), ("merged", "elsewhere/bob")],
            &[("elsewhere", &elsewhere)],
            &[("bob", TOKEN_USER)],
            Some("other"),
        ),
    );
    let missing = root.path().join("missing");
    let list = std::env::join_paths([&a, &missing, &b]).unwrap();
    let files = KubeconfigFiles::resolve(None, Some(list.as_os_str()), None);
    assert_eq!(
        files,
        KubeconfigFiles::Env(vec![a.clone(), missing, b.clone()])
    );

    // The first file's current-context wins, and its "merged" context.
    let current = client_for(&files, None).await.unwrap();
    assert_eq!(current.context.as_deref(), Some("merged"));
    assert_eq!(current.server, real);
    assert_eq!(
        current.files,
        vec![a.clone(), b.clone()],
        "the missing file is skipped"
    );
    cairn::kube_client::ready(&current.client).await.unwrap();

    // The second file's context is selectable.
    let other = client_for(&files, Some("other")).await.unwrap();
    assert_eq!(other.context.as_deref(), Some("other"));
    assert_eq!(other.server, elsewhere);

    // In the other order, the other current-context wins.
    let reversed = std::env::join_paths([&b, &a]).unwrap();
    let reversed = KubeconfigFiles::resolve(None, Some(reversed.as_os_str()), None);
    let first = client_for(&reversed, None).await.unwrap();
    assert_eq!(first.context.as_deref(), Some("other"));
    let merged = client_for(&reversed, Some("merged")).await.unwrap();
    assert_eq!(
        merged.server, elsewhere,
        "b's \"merged\" context comes first now"
    );

    // --kubeconfig wins over the list.
    let flag = KubeconfigFiles::resolve(Some(b.as_path()), Some(list.as_os_str()), None);
    assert_eq!(client_for(&flag, None).await.unwrap().server, elsewhere);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_context_names_itself_and_the_contexts_there_are() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "config",
        &kubeconfig(
            &[("dev", "c/bob"), ("staging", "c/bob")],
            &[("c", "https://127.0.0.1:6443")],
            &[("bob", TOKEN_USER)],
            Some("dev"),
        ),
    );
    let source = KubeconfigFiles::Flag(file.clone());
    assert_eq!(
        client_for(&source, Some("staging"))
            .await
            .unwrap()
            .context
            .as_deref(),
        Some("staging")
    );
    let e = client_for(&source, Some("prod")).await.unwrap_err();
    assert!(matches!(e, KubeconfigError::UnknownContext { .. }), "{e}");
    let text = e.to_string();
    assert!(text.contains("no context \"prod\""), "{text}");
    assert!(text.contains(&file.display().to_string()), "{text}");
    assert!(text.contains("dev, staging"), "{text}");

    // A --kubeconfig that does not exist is an error naming it (in a list it would be skipped).
    let gone = dir.path().join("gone");
    let e = client_for(&KubeconfigFiles::Flag(gone.clone()), None)
        .await
        .unwrap_err();
    assert!(matches!(e, KubeconfigError::Missing { .. }), "{e}");
    assert!(e.to_string().contains(&gone.display().to_string()), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_plugin_that_is_not_installed_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let exec = "{exec: {apiVersion: client.authentication.k8s.io/v1, command: cairn-no-such-plugin, \
                interactiveMode: Never}}";
    let file = write(
        dir.path(),
        "config",
        &kubeconfig(
            &[("eks", "c/alice")],
            &[("c", "https://127.0.0.1:6443")],
            &[("alice", exec)],
            Some("eks"),
        ),
    );
    let e = client_for(&KubeconfigFiles::Flag(file.clone()), None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, KubeconfigError::ExecPluginMissing { .. }),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.starts_with(
            "kubeconfig user \"alice\" runs the exec plugin \"cairn-no-such-plugin\", which is not on PATH"
        ),
        "{text}"
    );
    assert!(text.contains(&file.display().to_string()), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_plugin_that_fails_is_named() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let plugin = write(
        dir.path(),
        "failing-plugin",
        "#!/bin/sh\necho 'no SSO session' >&2\nexit 3\n",
    );
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exec = format!(
        "{{exec: {{apiVersion: client.authentication.k8s.io/v1, command: {}, interactiveMode: Never}}}}",
        plugin.display()
    );
    let file = write(
        dir.path(),
        "config",
        &kubeconfig(
            &[("sso", "c/carol")],
            &[("c", "https://127.0.0.1:6443")],
            &[("carol", &exec)],
            Some("sso"),
        ),
    );
    let e = client_for(&KubeconfigFiles::Flag(file), None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, KubeconfigError::ExecPluginFailed { .. }),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(text.contains("user \"carol\""), "{text}");
    assert!(text.contains("failing-plugin\", which failed"), "{text}");
    // What the plugin said is in the error chain.
    let chain = anyhow::Error::from(e);
    assert!(format!("{chain:#}").contains("no SSO session"), "{chain:#}");
}

/// The server's own error, through `ApiError`'s helpers, for a real 404 and 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_and_conflict_are_recognised() {
    let root = tempfile::tempdir().unwrap();
    let server = env::start("codes", root.path()).await;
    let api = KubeClusterApi::new(server.client().await.unwrap(), false);
    let dynamic = api.dynamic();
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "codes", "namespace": "nowhere"}});
    // A namespace that does not exist: 404 on a write.
    let e: ApiError = api
        .merge_patch(&cm, &json!({"data": {"a": "b"}}))
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert!(!e.is_conflict(), "{e}");

    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "codes", "namespace": "default"}, "data": {"a": "1"}});
    api.apply(&cm).await.unwrap();
    // A stale resourceVersion: 409.
    let stale = json!({"metadata": {"resourceVersion": "1"}, "data": {"a": "2"}});
    let e = dynamic.merge_patch(&cm, &stale, "test").await.unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert!(!e.is_not_found(), "{e}");
    let e: ApiError = e.into();
    assert!(e.is_conflict(), "{e}");
}

/// A kubeconfig whose YAML breaks right beside its credentials: the error says where, and
/// never quotes the lines (the parser's own message would), for files and for the text a
/// workload cluster's Secret holds.
#[tokio::test]
async fn a_broken_kubeconfig_names_its_line_and_never_quotes_credentials() {
    let token = common::canary("token");
    let key = common::canary("key");
    let broken = [
        format!(
            "apiVersion: v1\nusers:\n- name: u\n  user:\n    token: {token}\n    client-key-data: {key}\n  bad: [unclosed\ncontexts: []\n"
        ),
        format!("users:\n- name: u\n  user:\n    token: {token}\n\t bad\n"),
        format!("users: \"{token}\"\n"),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, text) in broken.iter().enumerate() {
        let file = write(dir.path(), &format!("broken-{i}.kubeconfig"), text);
        let run = common::cairn(["status".as_ref(), "--kubeconfig".as_ref(), file.as_os_str()]);
        assert_eq!(run.code, 2, "{run:?}");
        assert!(
            run.stderr.contains(&file.display().to_string()),
            "{}",
            run.stderr
        );
        let from_secret = cairn::kube_client::client_from_kubeconfig(text)
            .await
            .map(|_| ())
            .unwrap_err();
        let from_secret = cairn::errors::chain(&from_secret);
        for output in [&run.stderr, &run.stdout, &from_secret] {
            for secret in [&token, &key] {
                for form in common::forms(secret) {
                    assert!(!output.contains(&form), "leaked in: {output}");
                }
            }
        }
        if i < 2 {
            assert!(run.stderr.contains("at line "), "{}", run.stderr);
            assert!(from_secret.contains("at line "), "{from_secret}");
        }
    }
}
