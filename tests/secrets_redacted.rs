//! "A canary Secret value never appears in any output, plain or base64": the real binary, with
//! debug logs, validates, diffs (text and JSON), applies, diffs a changed value, re-applies and
//! fails on a broken Secret, against a real management API server with the CAPI CRDs and the
//! provider simulator, and not one of those runs prints the value.
//!
//! `cairn render` is the exception by design (DESIGN.md §2): it writes the desired manifests,
//! which are the repository's own content, Secret included (`validate` warns that a plaintext
//! Secret is in git). Previews, diffs, logs and errors are what must redact (§4, §5), so render
//! output is checked here only as a positive control: the canary really is in the bundle.

mod common;
mod env;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cairn::apply::api::{ClusterApi, KubeClusterApi};
use cairn::lifecycle::workload::workload_api;
use common::{canary, forms};
use serde_json::{Value, json};

const CLUSTER: &str = "dev-docker-1";
const SECRET_FILE: &str = "addons/canary/secret.yaml";
const BROKEN_FILE: &str = "addons/canary/broken.yaml";

fn secret_manifest(token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: canary\ntype: Opaque\nstringData:\n  \
         token: {token}\n"
    )
}

/// Secrets the API server refuses: a data key that is not a valid config key, and a `data`
/// value that is not base64 (the value itself is what the server rejects).
fn broken_manifests(token: &str) -> [String; 2] {
    let head = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: canary-broken\ntype: Opaque\n";
    [
        format!("{head}stringData:\n  token: {token}\n  \"not a valid key!\": {token}\n"),
        format!("{head}data:\n  token: {token}\n"),
    ]
}

/// The example repository plus a `canary` layer in profile `base` (only dev-docker-1 is
/// diffed and applied; it does not pivot).
fn write_repo(dir: &Path, token: &str) {
    let files = cairn::example::FILES.iter().map(|(path, text)| {
        let text = if *path == "profiles/base.yaml" {
            format!(
                "{}\n    - name: canary\n      namespace: kube-system\n      manifests: \
                 [addons/canary/*.yaml]\n",
                text.trim_end()
            )
        } else {
            text.to_string()
        };
        (path.to_string(), text)
    });
    common::write_files(dir, files);
    common::write_files(dir, [(SECRET_FILE, secret_manifest(token))]);
}

struct Cli<'a> {
    repo: &'a Path,
    kubeconfig: &'a Path,
}

impl Cli<'_> {
    /// Runs the binary with debug logs; `--repo` and, for diff and apply, the kubeconfig and
    /// `--cluster` are added.
    fn run(&self, args: &[&str]) -> common::Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cairn"));
        command.args(args).arg("--repo").arg(self.repo);
        if matches!(args[0], "diff" | "apply") {
            command
                .arg("--kubeconfig")
                .arg(self.kubeconfig)
                .args(["--cluster", CLUSTER]);
        }
        let out = command
            .env("CAIRN_LOG", "debug")
            .output()
            .expect("run the cairn binary");
        common::Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Fails when any form of any of `secrets` is in the run's stdout or stderr.
fn assert_redacted(what: &str, run: &common::Run, secrets: &[&str]) {
    for secret in secrets {
        for form in forms(secret) {
            for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
                if let Some(at) = text.find(&form) {
                    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
                    let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
                    panic!(
                        "{what}: {stream} leaks a Secret value ({form}) on this line:\n{}",
                        &text[line_start..line_end]
                    );
                }
            }
        }
    }
    // The debug logs really were on: the runs are not passing for being silent.
    assert!(
        what.starts_with("validate") || run.stderr.contains("DEBUG"),
        "{what}: no debug logs on stderr:\n{}",
        run.stderr
    );
}

fn expect(what: &str, run: &common::Run, code: i32) {
    assert_eq!(
        run.code, code,
        "{what}: exit code\nstdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
}

/// A run that fails on the refused Secret: exit code 2, an error that names it, no values.
fn refused(cli: &Cli, args: &[&str], secrets: &[&str]) {
    let what = format!("{} (refused Secret)", args.join(" "));
    let out = cli.run(args);
    expect(&what, &out, 2);
    assert!(
        out.stderr.contains("canary-broken"),
        "{what}: the error names the object:\n{}",
        out.stderr
    );
    assert_redacted(&what, &out, secrets);
}

async fn live_token(workload: &KubeClusterApi) -> Option<String> {
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
                        "metadata": {"name": "canary", "namespace": "kube-system"}});
    let live = workload.get(&secret).await.unwrap()?;
    let encoded = live["data"]["token"].as_str()?;
    Some(String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_secret_value_never_appears_in_any_output() {
    let root = tempfile::tempdir().unwrap();
    let management = env::Management::start(root.path(), Duration::from_millis(50)).await;
    let mgmt = management.api.clone();
    let mgmt_server = &management.server;

    let first = canary("first");
    let second = canary("second");
    let third = canary("third");
    assert!(first != second && second != third);
    let all = [first.as_str(), second.as_str(), third.as_str()];
    // The check itself catches each form.
    for form in forms(&first) {
        let leaky = common::Run {
            code: 0,
            stdout: format!("DEBUG x{form}x"),
            stderr: "DEBUG".into(),
        };
        let caught = std::panic::catch_unwind(|| assert_redacted("self-check", &leaky, &all));
        assert!(caught.is_err(), "{form} would go unnoticed");
    }

    let repo = root.path().join("repo");
    write_repo(&repo, &first);
    let cli = Cli {
        repo: &repo,
        kubeconfig: &mgmt_server.kubeconfig_path,
    };

    // validate: valid, with the plaintext-Secret warning.
    let out = cli.run(&["validate"]);
    expect("validate", &out, 0);
    assert!(
        out.stderr.contains("plaintext `kind: Secret`") && out.stderr.contains(SECRET_FILE),
        "validate warns about the plaintext Secret:\n{}",
        out.stderr
    );
    assert_redacted("validate", &out, &all);
    let out = cli.run(&["validate", "--output", "json"]);
    expect("validate --output json", &out, 0);
    assert_redacted("validate --output json", &out, &all);

    // render: the desired manifests, the repository's own content, so the value is there (a
    // positive control that the Secret reaches the bundle every later run works on).
    let out = cli.run(&["render", "--cluster", CLUSTER, "--out", "-"]);
    expect("render", &out, 0);
    assert!(out.stdout.contains(&first), "render carries the Secret");

    // diff before anything exists: the Secret is created, its value masked.
    let out = cli.run(&["diff"]);
    expect("diff (nothing live)", &out, 1);
    assert!(
        out.stdout.contains("Secret/kube-system/canary")
            && out.stdout.contains("<redacted: added>"),
        "{}",
        out.stdout
    );
    assert_redacted("diff (nothing live)", &out, &all);
    let out = cli.run(&["diff", "--output", "json"]);
    expect("diff --output json (nothing live)", &out, 1);
    assert_redacted("diff --output json (nothing live)", &out, &all);

    // apply: from nothing to Ready, the Secret included.
    let out = cli.run(&["apply", "--timeout", "180s"]);
    expect("apply", &out, 0);
    assert_redacted("apply", &out, &all);
    let workload = workload_api(mgmt.as_ref(), CLUSTER)
        .await
        .unwrap()
        .expect("the workload cluster exists");
    assert_eq!(live_token(&workload).await.as_deref(), Some(first.as_str()));

    // diff of the live Secret, now with a data field on the server: still converged and masked.
    let out = cli.run(&["diff"]);
    expect("diff (converged)", &out, 0);
    assert_redacted("diff (converged)", &out, &all);

    // The value changes in git: the diff says so without showing either value.
    common::write_files(&repo, [(SECRET_FILE, secret_manifest(&second))]);
    let out = cli.run(&["diff"]);
    expect("diff (changed)", &out, 1);
    assert!(
        out.stdout.contains("<redacted: changed>"),
        "the changed key is marked:\n{}",
        out.stdout
    );
    assert_redacted("diff (changed)", &out, &all);
    let out = cli.run(&["diff", "--output", "json"]);
    expect("diff --output json (changed)", &out, 1);
    let json: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(
        json.to_string().contains("<redacted: changed>"),
        "{}",
        out.stdout
    );
    assert_redacted("diff --output json (changed)", &out, &all);

    let out = cli.run(&["apply", "--timeout", "180s"]);
    expect("apply (changed)", &out, 0);
    assert_redacted("apply (changed)", &out, &all);
    assert_eq!(
        live_token(&workload).await.as_deref(),
        Some(second.as_str())
    );

    // A Secret the API server refuses: diff and apply fail, and the error names it without
    // its values.
    let [bad_key, bad_base64] = broken_manifests(&third);
    common::write_files(&repo, [(BROKEN_FILE, bad_key)]);
    for args in [
        &["diff"][..],
        &["diff", "--output", "json"],
        &["apply", "--timeout", "60s"],
    ] {
        refused(&cli, args, &all);
    }
    // The server answers this one with a 500 ("failed to convert new object ... illegal base64
    // data"), which the client retries for its whole budget (about a minute): one run only.
    common::write_files(&repo, [(BROKEN_FILE, bad_base64)]);
    refused(&cli, &["diff"], &all);
    assert_eq!(
        live_token(&workload).await.as_deref(),
        Some(second.as_str())
    );

    management.stop().await;
}
