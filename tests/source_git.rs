//! The git source against real repositories made with the `git` command line.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod common;

use cairn::model::snapshot::{FileEntry, MAX_FILE_BYTES, RepoSnapshot};
use cairn::source::{Credentials, Mirror, SourceError, SourceSpec, snapshot_at};
use common::git;

/// A non-bare repository on branch `main`.
fn new_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q"]);
    dir
}

fn write(repo: &Path, path: &str, content: &str) {
    let full = repo.join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(full, content).unwrap();
}

/// Stages everything and commits; returns the commit id.
fn commit(repo: &Path, message: &str) -> String {
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
    git(repo, &["rev-parse", "HEAD"])
}

fn spec(url: &str, branch: &str) -> SourceSpec {
    SourceSpec {
        url: url.to_string(),
        branch: branch.to_string(),
        credentials: Credentials::default(),
    }
}

fn texts(snap: &RepoSnapshot) -> Vec<(String, String)> {
    snap.paths()
        .map(|p| {
            let text = match snap.get(p) {
                Some(FileEntry::Text(t)) => t.to_string(),
                other => format!("{other:?}"),
            };
            (p.to_string(), text)
        })
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect()
}

/// A port on 127.0.0.1 with nothing listening, so connections are refused at once.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn fetch_two_commits_through(url_of: impl Fn(&Path) -> String) {
    let origin = new_repo();
    write(origin.path(), "fleet.yaml", "name: one\n");
    write(origin.path(), "clusters/a.yaml", "a: 1\n");
    let first = commit(origin.path(), "first");

    let state = tempfile::tempdir().unwrap();
    let mirror = Mirror::open(&spec(&url_of(origin.path()), "main"), state.path()).unwrap();
    assert!(mirror.path().starts_with(state.path().join("mirrors")));
    let name = mirror.path().file_name().unwrap().to_str().unwrap();
    assert_eq!(name.len(), 16 + ".git".len(), "{name}");
    assert_eq!(mirror.last_fetched(), None);

    assert_eq!(mirror.fetch().unwrap(), first);
    assert_eq!(mirror.last_fetched().as_deref(), Some(first.as_str()));
    let want_first = pairs(&[("clusters/a.yaml", "a: 1\n"), ("fleet.yaml", "name: one\n")]);
    assert_eq!(texts(&mirror.snapshot(&first).unwrap()), want_first);

    write(origin.path(), "fleet.yaml", "name: two\n");
    std::fs::remove_file(origin.path().join("clusters/a.yaml")).unwrap();
    write(origin.path(), "clusters/b/c.yaml", "c: 3\n");
    let second = commit(origin.path(), "second");

    assert_eq!(mirror.fetch().unwrap(), second);
    assert_eq!(mirror.last_fetched().as_deref(), Some(second.as_str()));
    assert_eq!(
        texts(&mirror.snapshot(&second).unwrap()),
        pairs(&[
            ("clusters/b/c.yaml", "c: 3\n"),
            ("fleet.yaml", "name: two\n")
        ])
    );
    assert_eq!(texts(&mirror.snapshot("main").unwrap()).len(), 2);
    // The earlier revision stays readable from the mirror.
    assert_eq!(texts(&mirror.snapshot(&first).unwrap()), want_first);

    // Reopening finds the same mirror and what it fetched, without the network.
    let again = Mirror::open(&spec(&url_of(origin.path()), "main"), state.path()).unwrap();
    assert_eq!(again.path(), mirror.path());
    assert_eq!(again.last_fetched().as_deref(), Some(second.as_str()));
}

#[test]
fn fetches_through_a_plain_path_and_picks_up_a_second_commit() {
    fetch_two_commits_through(|p| p.display().to_string());
}

#[test]
fn fetches_through_a_file_url_and_picks_up_a_second_commit() {
    fetch_two_commits_through(|p| format!("file://{}", p.display()));
}

#[test]
fn fetches_from_a_bare_origin() {
    let work = new_repo();
    write(work.path(), "a.yaml", "a: 1\n");
    let id = commit(work.path(), "one");
    let bare = tempfile::tempdir().unwrap();
    let bare_path = bare.path().join("origin.git");
    git(
        bare.path(),
        &[
            "clone",
            "-q",
            "--bare",
            &work.path().display().to_string(),
            "origin.git",
        ],
    );
    let state = tempfile::tempdir().unwrap();
    let mirror = Mirror::open(
        &spec(&bare_path.display().to_string(), "main"),
        state.path(),
    )
    .unwrap();
    assert_eq!(mirror.fetch().unwrap(), id);
}

#[test]
fn snapshot_at_reads_commits_and_leaves_the_working_tree_alone() {
    let repo = new_repo();
    write(repo.path(), "a.yaml", "a: 1\n");
    let first = commit(repo.path(), "first");
    write(repo.path(), "a.yaml", "a: 2\n");
    write(repo.path(), "b.yaml", "b: 2\n");
    let second = commit(repo.path(), "second");
    // Uncommitted edits, staged and not, and an untracked file.
    write(repo.path(), "a.yaml", "a: edited\n");
    write(repo.path(), "b.yaml", "b: staged\n");
    git(repo.path(), &["add", "b.yaml"]);
    write(repo.path(), "untracked.yaml", "u: 1\n");
    let status_before = git(repo.path(), &["status", "--porcelain"]);

    let (id, snap) = snapshot_at(repo.path(), "HEAD~1").unwrap();
    assert_eq!(id, first);
    assert_eq!(texts(&snap), pairs(&[("a.yaml", "a: 1\n")]));

    let (id, snap) = snapshot_at(repo.path(), &second).unwrap();
    assert_eq!(id, second);
    assert_eq!(
        texts(&snap),
        pairs(&[("a.yaml", "a: 2\n"), ("b.yaml", "b: 2\n")])
    );

    let (id, _) = snapshot_at(repo.path(), &second[..10]).unwrap();
    assert_eq!(id, second, "a short sha resolves");
    let (id, _) = snapshot_at(repo.path(), "main").unwrap();
    assert_eq!(id, second);

    assert_eq!(git(repo.path(), &["status", "--porcelain"]), status_before);
    assert_eq!(
        std::fs::read_to_string(repo.path().join("a.yaml")).unwrap(),
        "a: edited\n"
    );
    assert_eq!(
        std::fs::read_to_string(repo.path().join("b.yaml")).unwrap(),
        "b: staged\n"
    );
}

#[test]
fn unknown_revisions_are_named() {
    let repo = new_repo();
    write(repo.path(), "a.yaml", "a: 1\n");
    let id = commit(repo.path(), "first");
    let err = snapshot_at(repo.path(), "no-such-tag").unwrap_err();
    assert!(
        matches!(err, SourceError::RevisionNotFound { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("\"no-such-tag\""), "{err}");

    let state = tempfile::tempdir().unwrap();
    let mirror = Mirror::open(
        &spec(&repo.path().display().to_string(), "main"),
        state.path(),
    )
    .unwrap();
    let err = mirror.snapshot(&id).unwrap_err();
    assert!(
        matches!(err, SourceError::RevisionNotFound { .. }),
        "nothing fetched yet: {err:?}"
    );
    mirror.fetch().unwrap();
    let missing = "0123456789abcdef0123456789abcdef01234567";
    let err = mirror.snapshot(missing).unwrap_err();
    assert!(err.to_string().contains(missing), "{err}");

    let not_repo = tempfile::tempdir().unwrap();
    let err = snapshot_at(not_repo.path(), "HEAD").unwrap_err();
    assert!(matches!(err, SourceError::NotARepository { .. }), "{err:?}");
}

#[test]
fn missing_branch_is_named_with_the_branches_that_exist() {
    let origin = new_repo();
    write(origin.path(), "a.yaml", "a: 1\n");
    commit(origin.path(), "first");
    git(origin.path(), &["branch", "dev"]);
    git(origin.path(), &["branch", "feature/x"]);

    let state = tempfile::tempdir().unwrap();
    let url = origin.path().display().to_string();
    let mirror = Mirror::open(&spec(&url, "release"), state.path()).unwrap();
    let err = mirror.fetch().unwrap_err();
    let SourceError::BranchNotFound {
        branch, existing, ..
    } = &err
    else {
        panic!("expected BranchNotFound, got {err:?}");
    };
    assert_eq!(branch, "release");
    assert_eq!(existing, &["dev", "feature/x", "main"]);
    let text = err.to_string();
    for word in ["\"release\"", "dev, feature/x, main", url.as_str()] {
        assert!(text.contains(word), "{word} missing from: {text}");
    }
    assert_eq!(mirror.last_fetched(), None);
}

#[test]
fn a_missing_path_is_unreachable() {
    let gone = tempfile::tempdir().unwrap().path().join("nowhere");
    for url in [
        gone.display().to_string(),
        format!("file://{}", gone.display()),
    ] {
        let state = tempfile::tempdir().unwrap();
        let mirror = Mirror::open(&spec(&url, "main"), state.path()).unwrap();
        let err = mirror.fetch().unwrap_err();
        assert!(
            matches!(err, SourceError::Unreachable { .. }),
            "{url}: {err:?}"
        );
        assert!(err.to_string().contains(&url), "{err}");
    }
}

#[test]
fn ssh_and_https_transports_are_built_in() {
    // Refused connections, not "unsupported URL protocol": the transports exist.
    let port = closed_port();
    for url in [
        format!("ssh://git@127.0.0.1:{port}/org/repo.git"),
        format!("https://127.0.0.1:{port}/org/repo.git"),
    ] {
        let state = tempfile::tempdir().unwrap();
        let mirror = Mirror::open(&spec(&url, "main"), state.path()).unwrap();
        let err = mirror.fetch().unwrap_err();
        assert!(
            matches!(err, SourceError::Unreachable { .. }),
            "{url}: {err:?}"
        );
        assert!(!err.to_string().contains("unsupported"), "{err}");
    }
}

#[test]
fn links_outside_the_repository_are_marked_and_links_inside_are_read() {
    let repo = new_repo();
    write(repo.path(), "clusters/a.yaml", "a: 1\n");
    write(repo.path(), "base/values.yaml", "v: 1\n");
    let link = |target: &str, at: &str| {
        let at = repo.path().join(at);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, at).unwrap();
    };
    link("../../outside.yaml", "clusters/escape.yaml");
    link("/etc/passwd", "absolute.yaml");
    link("../base/values.yaml", "clusters/values.yaml");
    link("base", "base-link");
    link("../base-link/values.yaml", "clusters/via-dir-link.yaml");
    link("missing.yaml", "dangling.yaml");
    link("loop-b.yaml", "loop-a.yaml");
    link("loop-a.yaml", "loop-b.yaml");
    commit(repo.path(), "links");

    for snap in both_snapshots(repo.path()) {
        assert_eq!(
            snap.get("clusters/escape.yaml"),
            Some(&FileEntry::LinkOutside("../../outside.yaml".into()))
        );
        assert_eq!(
            snap.get("absolute.yaml"),
            Some(&FileEntry::LinkOutside("/etc/passwd".into()))
        );
        for inside in ["clusters/values.yaml", "clusters/via-dir-link.yaml"] {
            assert_eq!(
                snap.get(inside),
                Some(&FileEntry::Text("v: 1\n".into())),
                "{inside}"
            );
        }
        // A link to a directory lists its files; links that lead nowhere are listed as such
        // (not left out, where a cluster file would vanish silently), as in from_dir.
        assert_eq!(snap.get("base-link"), None);
        assert_eq!(
            snap.get("dangling.yaml"),
            Some(&FileEntry::LinkBroken("missing.yaml".into()))
        );
        assert_eq!(
            snap.get("loop-a.yaml"),
            Some(&FileEntry::LinkBroken("loop-b.yaml".into()))
        );
    }
}

/// The tree at `main`, read through a fetched mirror and straight from the repository.
fn both_snapshots(repo: &Path) -> [RepoSnapshot; 2] {
    let state = tempfile::tempdir().unwrap();
    let mirror = Mirror::open(&spec(&repo.display().to_string(), "main"), state.path()).unwrap();
    let id = mirror.fetch().unwrap();
    let (_, from_workdir_repo) = snapshot_at(repo, "HEAD").unwrap();
    [mirror.snapshot(&id).unwrap(), from_workdir_repo]
}

#[test]
fn files_over_the_limit_are_too_large() {
    let repo = new_repo();
    let size = MAX_FILE_BYTES + 1;
    std::fs::write(repo.path().join("huge.bin"), vec![b'x'; size as usize]).unwrap();
    write(repo.path(), "small.yaml", "s: 1\n");
    std::fs::write(repo.path().join("blob.bin"), [0xff, 0xfe, 0x00]).unwrap();
    commit(repo.path(), "big");

    for snap in both_snapshots(repo.path()) {
        assert_eq!(snap.get("huge.bin"), Some(&FileEntry::TooLarge(size)));
        assert_eq!(snap.get("blob.bin"), Some(&FileEntry::Binary));
        assert_eq!(
            snap.get("small.yaml"),
            Some(&FileEntry::Text("s: 1\n".into()))
        );
    }
}

#[test]
fn a_corrupt_mirror_names_its_path_and_says_deleting_is_safe() {
    let origin = new_repo();
    write(origin.path(), "a.yaml", "a: 1\n");
    commit(origin.path(), "first");
    let state = tempfile::tempdir().unwrap();
    let source = spec(&origin.path().display().to_string(), "main");
    let path: PathBuf = Mirror::open(&source, state.path()).unwrap().path().into();
    std::fs::remove_dir_all(&path).unwrap();
    std::fs::create_dir_all(&path).unwrap();
    std::fs::write(path.join("HEAD"), "garbage").unwrap();

    let err = Mirror::open(&source, state.path()).unwrap_err();
    assert!(matches!(err, SourceError::CorruptMirror { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("deleting that directory is safe"), "{text}");

    std::fs::remove_dir_all(&path).unwrap();
    let mirror = Mirror::open(&source, state.path()).unwrap();
    assert!(mirror.fetch().is_ok(), "a deleted mirror is made again");
}

const CANARY: &str = "canary-7f3a9c1e-token-do-not-print";

fn token_credentials(dir: &Path) -> Credentials {
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{CANARY}\n")).unwrap();
    Credentials {
        ssh_key_file: None,
        token_file: Some(token_file),
        username: Some("bot".into()),
    }
}

#[test]
fn a_token_never_appears_in_errors_when_the_host_is_down() {
    let secrets = tempfile::tempdir().unwrap();
    let port = closed_port();
    for url in [
        format!("https://127.0.0.1:{port}/org/repo.git"),
        format!("https://bot:{CANARY}@127.0.0.1:{port}/org/repo.git"),
    ] {
        let state = tempfile::tempdir().unwrap();
        let source = SourceSpec {
            url: url.clone(),
            branch: "main".into(),
            credentials: token_credentials(secrets.path()),
        };
        let mirror = Mirror::open(&source, state.path()).unwrap();
        let err = mirror.fetch().unwrap_err();
        assert!(matches!(err, SourceError::Unreachable { .. }), "{err:?}");
        for text in [
            err.to_string(),
            format!("{err:?}"),
            format!("{mirror:?}"),
            format!("{source:?}"),
        ] {
            assert!(!text.contains(CANARY), "token leaked: {text}");
        }
        let config = std::fs::read_to_string(mirror.path().join("config")).unwrap();
        assert!(
            !config.contains(CANARY),
            "token written to the mirror: {config}"
        );
    }
}

/// Answers every request with 401 until stopped or 20 s have passed; counts requests and those
/// that carried credentials.
struct RejectingServer {
    port: u16,
    requests: Arc<AtomicUsize>,
    with_auth: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RejectingServer {
    fn start() -> RejectingServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let with_auth = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, a, s) = (requests.clone(), with_auth.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !s.load(Ordering::SeqCst) && Instant::now() < deadline {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                r.fetch_add(1, Ordering::SeqCst);
                if String::from_utf8_lossy(&request)
                    .to_ascii_lowercase()
                    .contains("\r\nauthorization: basic ")
                {
                    a.fetch_add(1, Ordering::SeqCst);
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\n\
                      Content-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        RejectingServer {
            port,
            requests,
            with_auth,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for RejectingServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn a_rejected_token_is_an_auth_error_that_names_the_file_not_the_token() {
    let server = RejectingServer::start();
    let secrets = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let credentials = token_credentials(secrets.path());
    let token_file = credentials.token_file.clone().unwrap();
    let source = SourceSpec {
        url: format!("http://127.0.0.1:{}/org/repo.git", server.port),
        branch: "main".into(),
        credentials,
    };
    let mirror = Mirror::open(&source, state.path()).unwrap();
    let err = mirror.fetch().unwrap_err();
    assert!(matches!(err, SourceError::AuthFailed { .. }), "{err:?}");
    let text = err.to_string();
    assert!(!text.contains(CANARY), "token leaked: {text}");
    assert!(
        !format!("{err:?}").contains(CANARY),
        "token leaked: {err:?}"
    );
    assert!(text.contains("CAIRN_GIT_TOKEN_FILE"), "{text}");
    assert!(text.contains(&token_file.display().to_string()), "{text}");

    let requests = server.requests.load(Ordering::SeqCst);
    let with_auth = server.with_auth.load(Ordering::SeqCst);
    assert!(
        with_auth >= 1,
        "the token was never offered ({requests} requests)"
    );
    assert!(requests <= 4, "kept retrying: {requests} requests");
}

#[test]
fn no_credentials_for_a_protected_remote_says_what_to_set() {
    let server = RejectingServer::start();
    let state = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}/org/repo.git", server.port);
    let mirror = Mirror::open(&spec(&url, "main"), state.path()).unwrap();
    let err = mirror.fetch().unwrap_err();
    assert!(matches!(err, SourceError::AuthFailed { .. }), "{err:?}");
    assert!(
        err.to_string().contains("set CAIRN_GIT_TOKEN_FILE"),
        "{err}"
    );
    assert!(server.requests.load(Ordering::SeqCst) <= 2);
}

#[test]
fn a_missing_token_file_is_named() {
    let server = RejectingServer::start();
    let state = tempfile::tempdir().unwrap();
    let missing = state.path().join("no-such-token");
    let source = SourceSpec {
        url: format!("http://127.0.0.1:{}/org/repo.git", server.port),
        branch: "main".into(),
        credentials: Credentials {
            token_file: Some(missing.clone()),
            ..Credentials::default()
        },
    };
    let err = Mirror::open(&source, state.path())
        .unwrap()
        .fetch()
        .unwrap_err();
    assert!(matches!(err, SourceError::AuthFailed { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&missing.display().to_string()), "{text}");
    assert!(text.contains("CAIRN_GIT_TOKEN_FILE"), "{text}");
}
