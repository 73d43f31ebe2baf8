//! `cairn init`, `cairn completion` and `cairn schema --out -` as a new user runs them.

mod common;

#[test]
fn init_writes_a_repository_that_validates_and_renders_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("fleet");
    let repo_arg = repo.to_str().unwrap();
    let run = common::cairn(["init", repo_arg]);
    assert_eq!(run.code, 0, "{run:?}");
    for file in [
        "fleet.yaml",
        "clusters/dev-1.yaml",
        "profiles/base.yaml",
        "schema/cluster.schema.json",
    ] {
        assert!(repo.join(file).is_file(), "{file} missing");
    }
    let valid = common::cairn(["validate", "--repo", repo_arg]);
    assert_eq!(valid.code, 0, "{valid:?}");
    let render = common::cairn(["render", "--repo", repo_arg, "--out", "-"]);
    assert_eq!(render.code, 0, "{render:?}");
    assert!(
        render.stdout.contains("kind: MachineDeployment"),
        "{}",
        render.stdout
    );
    assert!(
        render.stdout.contains("cluster: dev-1"),
        "variables substituted: {}",
        render.stdout
    );

    std::fs::write(repo.join("fleet.yaml"), "# mine\n").unwrap();
    let again = common::cairn(["init", repo_arg]);
    assert_eq!(again.code, 2, "{again:?}");
    assert!(
        again.stderr.contains("already holds a fleet repository"),
        "{}",
        again.stderr
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("fleet.yaml")).unwrap(),
        "# mine\n"
    );
}

#[test]
fn completion_and_schemas_go_to_stdout() {
    let bash = common::cairn(["completion", "bash"]);
    assert_eq!(bash.code, 0, "{bash:?}");
    assert!(
        bash.stdout.contains("_cairn") && bash.stdout.contains("preview"),
        "{}",
        bash.stdout
    );
    let dir = tempfile::tempdir().unwrap();
    let schemas = common::cairn_in(dir.path(), ["schema", "--out", "-"]);
    assert_eq!(schemas.code, 0, "{schemas:?}");
    let all: serde_json::Value = serde_json::from_str(&schemas.stdout).unwrap();
    let files: Vec<&String> = all.as_object().unwrap().keys().collect();
    assert_eq!(
        files,
        [
            "cluster.schema.json",
            "clusterprofile.schema.json",
            "fleet.schema.json"
        ]
    );
    assert!(!dir.path().join("-").exists(), "no directory named -");
}
