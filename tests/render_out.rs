//! `cairn render --out DIR` touches only what it wrote itself: a directory in the way that an
//! earlier render did not write is refused, all or nothing, with no staging left behind.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::tree;

/// A repository from `cairn init` with a second cluster named `profiles`, like the folder.
fn repo_with_cluster_named_profiles() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let run = common::cairn([OsArg::from("init"), dir.path().into()]);
    assert_eq!(run.code, 0, "{run:?}");
    let dev = std::fs::read_to_string(dir.path().join("clusters/dev-1.yaml")).unwrap();
    let profiles = dev.replace("name: dev-1", "name: profiles");
    assert_ne!(dev, profiles, "the cluster file names dev-1");
    std::fs::write(dir.path().join("clusters/profiles.yaml"), profiles).unwrap();
    dir
}

type OsArg = std::ffi::OsString;

fn render_into_itself(repo: &Path) -> common::Run {
    common::cairn_in(repo, ["render", "--repo", ".", "--out", "."])
}

#[test]
fn render_into_the_repository_never_replaces_its_folders() {
    let repo = repo_with_cluster_named_profiles();
    let before = tree(repo.path());
    let run = render_into_itself(repo.path());
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("profiles exists and was not written by cairn render"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("nothing was written"), "{}", run.stderr);
    assert_eq!(tree(repo.path()), before, "the repository is untouched");
}

#[test]
fn a_file_named_like_a_cluster_leaves_no_partial_output_and_no_staging() {
    let repo = repo_with_cluster_named_profiles();
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("profiles"), "mine\n").unwrap();
    let out_arg = out.path().to_str().unwrap();
    let run = common::cairn_in(repo.path(), ["render", "--repo", ".", "--out", out_arg]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        tree(out.path()),
        BTreeMap::from([(PathBuf::from("profiles"), b"mine\n".to_vec())]),
        "only the user's file is there: no dev-1/, no .cairn-render-*/"
    );
}

#[test]
fn a_render_replaces_its_own_earlier_output() {
    let repo = repo_with_cluster_named_profiles();
    let out = tempfile::tempdir().unwrap();
    let out_arg = out.path().to_str().unwrap();
    let args = ["render", "--repo", ".", "--out", out_arg];
    let first = common::cairn_in(repo.path(), args);
    assert_eq!(first.code, 0, "{first:?}");
    let rendered = tree(out.path());
    assert!(
        rendered.contains_key(Path::new("dev-1/03-workload.yaml")),
        "{:?}",
        rendered.keys()
    );
    assert!(rendered.contains_key(Path::new("profiles/.cairn-rendered")));
    // A stale file inside an earlier render goes with it; the user's file beside stays.
    std::fs::write(out.path().join("dev-1/stale.yaml"), "old\n").unwrap();
    std::fs::write(out.path().join("notes.txt"), "mine\n").unwrap();
    let second = common::cairn_in(repo.path(), args);
    assert_eq!(second.code, 0, "{second:?}");
    let again = tree(out.path());
    assert!(!again.contains_key(Path::new("dev-1/stale.yaml")));
    assert_eq!(again.get(Path::new("notes.txt")).unwrap(), b"mine\n");
    assert_eq!(
        again.len(),
        rendered.len() + 1,
        "the same render plus notes.txt"
    );
}
