//! Hostile and mistaken repositories, generated here and run through the real binary under an
//! address-space cap (`common::cairn_measured`): cairn reads only what a fleet uses, the git
//! bombs stop at a named budget (or cost nothing when unused), and nothing is skipped
//! silently: a `--repo` that is not a fleet, a directory linked from outside, control
//! characters in a file are errors with a place to look.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use cairn::model::snapshot::FileEntry;
use common::{Run, cairn_measured, git, write_files, write_repo};

const MIB: u64 = 1024 * 1024;

fn example_files() -> Vec<(String, String)> {
    cairn::example::FILES
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect()
}

fn example_dir() -> tempfile::TempDir {
    write_repo(example_files())
}

/// Runs the binary under the cap; prints what the report needs (exit, peak memory).
fn measured(label: &str, cwd: &Path, args: &[&str]) -> (Run, u64) {
    let (run, peak) = cairn_measured(cwd, args);
    eprintln!(
        "{label}: exit {}, peak RSS {:.1} MiB",
        run.code,
        peak as f64 / MIB as f64
    );
    (run, peak)
}

fn validate(dir: &Path) -> (Run, u64) {
    let dir = dir.to_str().unwrap();
    cairn_measured(Path::new("."), ["validate", "--repo", dir])
}

/// `git` with `input` on stdin (mktree), output trimmed.
fn git_in(dir: &Path, args: &[&str], input: &str) -> String {
    let mut child = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("git runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn mktree(dir: &Path, lines: &[String]) -> String {
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    git_in(dir, &["mktree"], &input)
}

/// A git repository holding the example fleet on `main`; returns it and the commit.
fn example_git() -> (tempfile::TempDir, String) {
    let dir = example_dir();
    git(dir.path(), &["init", "-q", "-b", "main"]);
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-qm", "the example fleet"]);
    let base = git(dir.path(), &["rev-parse", "HEAD"]);
    (dir, base)
}

/// A commit on top of `base` whose root tree is `base`'s plus `extra` entries (mktree lines),
/// made with plumbing only: nothing is checked out or written but the new objects.
fn commit_with(dir: &Path, base: &str, replace: Option<&str>, extra: &[String]) -> String {
    let mut lines: Vec<String> = git(dir, &["ls-tree", base])
        .lines()
        .filter(|l| replace.is_none_or(|name| !l.ends_with(&format!("\t{name}"))))
        .map(str::to_string)
        .collect();
    lines.extend(extra.iter().cloned());
    let tree = mktree(dir, &lines);
    git(dir, &["commit-tree", &tree, "-p", base, "-m", "head"])
}

fn blob(dir: &Path, bytes: &[u8]) -> String {
    let file = dir.join(".git/blob-input");
    std::fs::write(&file, bytes).unwrap();
    let oid = git(dir, &["hash-object", "-w", file.to_str().unwrap()]);
    std::fs::remove_file(file).unwrap();
    oid
}

/// A 9 MiB blob of YAML comments (it compresses to a few KB).
fn nine_mib_blob(dir: &Path) -> String {
    let line = format!("# {}\n", "x".repeat(78));
    blob(dir, line.repeat((9 * MIB as usize) / line.len()).as_bytes())
}

fn git_dir_size(dir: &Path) -> u64 {
    walk_size(&dir.join(".git"))
}

fn walk_size(path: &Path) -> u64 {
    let meta = std::fs::symlink_metadata(path).unwrap();
    if meta.is_dir() {
        std::fs::read_dir(path)
            .unwrap()
            .map(|e| walk_size(&e.unwrap().path()))
            .sum()
    } else {
        meta.len()
    }
}

fn preview(label: &str, dir: &Path, base: &str, head: &str) -> (Run, u64) {
    let repo = dir.to_str().unwrap();
    measured(
        label,
        Path::new("."),
        &["preview", "--repo", repo, "--base", base, "--head", head],
    )
}

#[test]
fn sixty_unrelated_ten_mib_files_are_never_read() {
    let dir = example_dir();
    for i in 0..60 {
        let path = dir.path().join(format!("vendor/big-{i:02}.yaml"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // Sparse: 10 MiB each (at the per-file limit, so today's reader took them whole)
        // without 600 MiB on disk.
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(10 * MIB).unwrap();
    }
    let (run, peak) = measured(
        "60 unrelated 10 MiB files, validate",
        Path::new("."),
        &["validate", "--repo", dir.path().to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert!(peak < 100 * MIB, "peak RSS {peak} bytes");
}

#[test]
fn a_blob_named_two_hundred_times_is_read_once_or_not_at_all() {
    let (dir, base) = example_git();
    let big = nine_mib_blob(dir.path());
    let entries: Vec<String> = (0..200)
        .map(|i| format!("100644 blob {big}\tcopy-{i:03}.yaml"))
        .collect();
    let vendor = mktree(dir.path(), &entries);

    // Unrelated to the fleet: never read, the preview succeeds.
    let head = commit_with(
        dir.path(),
        &base,
        None,
        &[format!("040000 tree {vendor}\tvendor")],
    );
    eprintln!("blob bomb: .git is {} KB", git_dir_size(dir.path()) / 1024);
    let (run, peak) = preview("blob bomb under vendor/, preview", dir.path(), &base, &head);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(peak < 256 * MIB, "peak RSS {peak} bytes");

    // Under clusters/: every path is read, the blob once; past the read budget the files are
    // refused with a diagnostic naming it, and the head does not validate (preview exit 1).
    let clusters_tree = git(dir.path(), &["rev-parse", &format!("{base}:clusters")]);
    let mut clusters: Vec<String> = git(dir.path(), &["ls-tree", &clusters_tree])
        .lines()
        .map(str::to_string)
        .collect();
    clusters.push(format!("040000 tree {vendor}\tbomb"));
    let clusters = mktree(dir.path(), &clusters);
    let head = commit_with(
        dir.path(),
        &base,
        Some("clusters"),
        &[format!("040000 tree {clusters}\tclusters")],
    );
    let (run, peak) = preview(
        "blob bomb under clusters/, preview",
        dir.path(),
        &base,
        &head,
    );
    assert_eq!(run.code, 1, "the head does not validate: {run:?}");
    assert!(run.stdout.contains("MAX_READ_BYTES"), "{}", run.stdout);
    assert!(run.stdout.contains("clusters/bomb/copy-"), "{}", run.stdout);
    assert!(peak < 256 * MIB, "peak RSS {peak} bytes");
}

#[test]
fn a_tree_of_a_billion_paths_stops_at_the_entry_budget() {
    let (dir, base) = example_git();
    let leaf = blob(dir.path(), b"a: 1\n");
    let mut tree = mktree(
        dir.path(),
        &(0..10)
            .map(|i| format!("100644 blob {leaf}\tf{i}.yaml"))
            .collect::<Vec<_>>(),
    );
    // Nine levels of ten directories that are all the same tree: 10⁹ paths.
    for _ in 0..8 {
        tree = mktree(
            dir.path(),
            &(0..10)
                .map(|i| format!("040000 tree {tree}\td{i}"))
                .collect::<Vec<_>>(),
        );
    }
    let head = commit_with(
        dir.path(),
        &base,
        None,
        &[format!("040000 tree {tree}\tjunk")],
    );
    eprintln!("tree bomb: .git is {} KB", git_dir_size(dir.path()) / 1024);
    let (run, peak) = preview("tree bomb of 10^9 paths, preview", dir.path(), &base, &head);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("MAX_REPO_ENTRIES"), "{}", run.stderr);
    assert!(run.stderr.contains("head revision"), "{}", run.stderr);
    assert!(peak < 256 * MIB, "peak RSS {peak} bytes");
}

#[test]
fn a_tree_nested_past_the_depth_budget_is_refused() {
    let (dir, base) = example_git();
    let leaf = blob(dir.path(), b"a: 1\n");
    let mut tree = mktree(dir.path(), &[format!("100644 blob {leaf}\tf.yaml")]);
    for _ in 0..100 {
        tree = mktree(dir.path(), &[format!("040000 tree {tree}\td")]);
    }
    let head = commit_with(
        dir.path(),
        &base,
        None,
        &[format!("040000 tree {tree}\tdeep")],
    );
    let (run, peak) = preview("tree nested 100 deep, preview", dir.path(), &base, &head);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("MAX_REPO_DEPTH"), "{}", run.stderr);
    assert!(peak < 256 * MIB, "peak RSS {peak} bytes");
}

#[test]
fn a_repo_that_is_not_a_fleet_is_an_error() {
    let empty = tempfile::tempdir().unwrap();
    let (run, _) = validate(empty.path());
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("neither fleet.yaml nor a clusters/ directory"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("it is empty"), "{}", run.stderr);

    // Files, but no fleet.yaml and nothing under clusters/ a cluster could be in.
    let stray = write_repo([
        ("README.md", "# notes\n"),
        ("random.yaml", "a: 1\n"),
        ("clusters/README.md", "clusters go here\n"),
    ]);
    let (run, _) = validate(stray.path());
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("neither fleet.yaml nor any cluster file"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("valid\n"), "{}", run.stderr);

    // The clusters directory given instead of the repository.
    let repo = example_dir();
    let (run, _) = validate(&repo.path().join("clusters"));
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("its parent directory"),
        "{}",
        run.stderr
    );

    // The project's own checkout.
    let (run, _) = validate(Path::new(env!("CARGO_MANIFEST_DIR")));
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("not a config repository"),
        "{}",
        run.stderr
    );

    // A head revision with no fleet left in it (everything deleted).
    let (dir, base) = example_git();
    let empty_tree = mktree(dir.path(), &[]);
    let head = git(
        dir.path(),
        &["commit-tree", &empty_tree, "-p", &base, "-m", "empty"],
    );
    let (run, _) = preview("empty head, preview", dir.path(), &base, &head);
    assert_eq!(run.code, 1, "the head does not validate: {run:?}");
    assert!(
        run.stdout
            .contains("neither fleet.yaml nor any cluster file"),
        "{}",
        run.stdout
    );
}

/// The example fleet with the dev cluster's file moved to `shared/dev/` and `clusters/dev`
/// a link to `target`.
fn with_linked_dev(target: impl Fn(&Path) -> std::path::PathBuf) -> tempfile::TempDir {
    let dir = example_dir();
    let dev = dir.path().join("clusters/dev");
    let shared = dir.path().join("shared/dev");
    std::fs::create_dir_all(shared.parent().unwrap()).unwrap();
    std::fs::rename(&dev, &shared).unwrap();
    std::os::unix::fs::symlink(target(dir.path()), &dev).unwrap();
    dir
}

#[test]
fn a_linked_directory_inside_is_followed_and_one_outside_is_an_error() {
    let inside = with_linked_dev(|_| "../shared/dev".into());
    // A link back up is a loop: it adds nothing and is not walked forever.
    std::os::unix::fs::symlink("..", inside.path().join("clusters/loop")).unwrap();
    let (run, _) = validate(inside.path());
    assert_eq!(run.code, 0, "{run:?}");
    let repo = inside.path().to_str().unwrap();
    let (run, _) = cairn_measured(Path::new("."), ["render", "--repo", repo, "--out", "-"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("dev-docker-1"),
        "the linked cluster renders"
    );

    // The same repository in git: the link is followed there too.
    git(inside.path(), &["init", "-q", "-b", "main"]);
    git(inside.path(), &["add", "-A"]);
    git(inside.path(), &["commit", "-qm", "linked"]);
    let (_, snap) = cairn::source::snapshot_at(inside.path(), "HEAD").unwrap();
    assert!(matches!(
        snap.get("clusters/dev/docker-1.yaml"),
        Some(FileEntry::Text(_))
    ));
    let rendered = cairn::render::render_repo(&snap, &[]);
    assert!(!rendered.has_errors(), "{:?}", rendered.diagnostics);
    assert!(rendered.bundles.iter().any(|b| b.cluster == "dev-docker-1"));

    let outside = tempfile::tempdir().unwrap();
    let elsewhere = outside.path().to_path_buf();
    let linked_out = with_linked_dev(|repo| {
        let moved = elsewhere.join("dev");
        std::fs::rename(repo.join("shared/dev"), &moved).unwrap();
        moved
    });
    let (run, _) = validate(linked_out.path());
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("clusters/dev:1:1: error")
            && run.stderr.contains("outside the repository"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_link_that_leads_nowhere_is_an_error_not_a_departed_cluster() {
    // `clusters/dev` links to a directory that was moved away: its clusters must not vanish
    // from the render (with --prune they would be deleted).
    let dir = with_linked_dev(|_| "../shared/moved-away".into());
    std::os::unix::fs::symlink("nowhere.yaml", dir.path().join("clusters/gone.yaml")).unwrap();
    let (run, _) = validate(dir.path());
    assert_eq!(run.code, 2, "{run:?}");
    for file in ["clusters/dev:1:1: error", "clusters/gone.yaml:1:1: error"] {
        assert!(
            run.stderr.contains(file) && run.stderr.contains("does not exist"),
            "{file}: {}",
            run.stderr
        );
    }

    // The same in git.
    git(dir.path(), &["init", "-q", "-b", "main"]);
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-qm", "broken links"]);
    let (_, snap) = cairn::source::snapshot_at(dir.path(), "HEAD").unwrap();
    let rendered = cairn::render::render_repo(&snap, &[]);
    let files: Vec<&str> = rendered
        .diagnostics
        .iter()
        .map(|d| d.file.as_str())
        .collect();
    assert!(
        files.contains(&"clusters/dev") && files.contains(&"clusters/gone.yaml"),
        "{:?}",
        rendered.diagnostics
    );
}

/// `text` with `ch` inserted just before the first `needle`, and the 1-based line and column
/// where it lands.
fn insert_before(text: &str, needle: &str, ch: char) -> (String, usize, usize) {
    let at = text.find(needle).unwrap();
    let line = text[..at].matches('\n').count() + 1;
    let col = text[..at].rsplit('\n').next().unwrap().chars().count() + 1;
    let mut out = text.to_string();
    out.insert(at, ch);
    (out, line, col)
}

fn example_file(path: &str) -> String {
    cairn::example::FILES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, t)| t.to_string())
        .unwrap()
}

#[test]
fn control_characters_are_errors_at_their_position() {
    let cluster = "clusters/dev/docker-1.yaml";
    let manifest = "addons/calico/configmap.yaml";
    let escaped = "addons/calico/namespace.yaml";
    let (cluster_text, cl, cc) = insert_before(&example_file(cluster), "docker: {}", '\0');
    let (manifest_text, ml, mc) = insert_before(&example_file(manifest), "calico_backend", '\0');
    let (escaped_text, el, ec) = insert_before(&example_file(escaped), "name:", '\u{1b}');
    let dir = example_dir();
    write_files(
        dir.path(),
        [
            (cluster, cluster_text),
            (manifest, manifest_text),
            (escaped, escaped_text),
        ],
    );
    let (run, _) = validate(dir.path());
    assert_eq!(run.code, 2, "{run:?}");
    for (file, line, col, what) in [
        (cluster, cl, cc, "a NUL byte"),
        (manifest, ml, mc, "a NUL byte"),
        (escaped, el, ec, "an escape character"),
    ] {
        let at = format!("{file}:{line}:{col}: error: ");
        assert!(
            run.stderr
                .lines()
                .any(|l| l.starts_with(&at) && l.contains(what)),
            "{at}{what} missing from:\n{}",
            run.stderr
        );
    }
    assert!(
        !run.stderr.contains('\u{1b}'),
        "no raw escape reaches the terminal"
    );
}

#[test]
fn an_escape_in_an_object_name_is_printed_escaped() {
    // YAML's `\e` puts a real ESC in the name: valid YAML, so it reaches the messages that
    // name the object, which must not write it to the terminal.
    let doc = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: \"evil\\e[2J\"\n  namespace: \
               calico-system\n";
    let dir = example_dir();
    write_files(
        dir.path(),
        [("addons/calico/evil.yaml", format!("{doc}---\n{doc}"))],
    );
    let (run, _) = validate(dir.path());
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("ConfigMap/calico-system/evil\\u{1b}[2J"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains('\u{1b}'), "{}", run.stderr);
}

#[test]
fn a_byte_order_mark_is_accepted() {
    let dir = example_dir();
    let files = [
        "clusters/dev/docker-1.yaml",
        "addons/calico/configmap.yaml",
        "fleet.yaml",
    ];
    write_files(
        dir.path(),
        files.map(|f| (f, format!("\u{feff}{}", example_file(f)))),
    );
    let (run, _) = validate(dir.path());
    assert_eq!(run.code, 0, "{run:?}");
}
