//! `cairn local up`, `status` and `down` as a user runs them: everything `up` starts is gone
//! after `down`.

mod env;

use std::process::Command;

fn cairn(args: &[&str], assets: &cairn::local::Assets) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .env("TEST_ASSET_KUBE_APISERVER", &assets.kube_apiserver)
        .env("TEST_ASSET_ETCD", &assets.etcd)
        .env("TEST_ASSET_KUBECTL", &assets.kubectl)
        .env("CAIRN_TOOLS_DIR", env::tools_dir())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

#[test]
fn local_up_then_down_leaves_no_process_behind() {
    let assets = env::assets();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("local");
    let dir_arg = dir.to_str().unwrap();

    let (code, _, stderr) = cairn(&["local", "up", "--dir", dir_arg], &assets);
    assert_eq!(code, 0, "{stderr}");
    assert!(dir.join("mgmt.kubeconfig").exists());

    let (code, stdout, stderr) = cairn(
        &["local", "status", "--dir", dir_arg, "--output", "json"],
        &assets,
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let status: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(status["api_server_ready"], true);
    let pids: Vec<u64> = status["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pid"].as_u64().unwrap())
        .collect();
    // etcd, kube-apiserver and the simulator.
    assert!(pids.len() >= 3, "{status}");
    assert!(pids.iter().all(|&p| alive(p)), "{status}");

    let (code, _, stderr) = cairn(&["local", "up", "--dir", dir_arg], &assets);
    assert_eq!(code, 2, "a second up refuses: {stderr}");
    assert!(stderr.contains("already running"), "{stderr}");

    let (code, _, stderr) = cairn(&["local", "down", "--dir", dir_arg], &assets);
    assert_eq!(code, 0, "{stderr}");
    assert!(!dir.exists());
    assert!(
        pids.iter().all(|&p| !alive(p)),
        "a process survived `down`: {pids:?}"
    );

    let (code, _, _) = cairn(&["local", "status", "--dir", dir_arg], &assets);
    assert_eq!(code, 2, "status of a stopped environment is a failure");
}
