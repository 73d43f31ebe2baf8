//! Helpers shared by the integration tests: config repositories written to temporary
//! directories, and the built `cairn` binary run against them.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

/// Writes `files` (repository-relative path, content) into a new temporary directory.
pub fn write_repo<P, C>(files: impl IntoIterator<Item = (P, C)>) -> tempfile::TempDir
where
    P: AsRef<Path>,
    C: AsRef<[u8]>,
{
    let dir = tempfile::tempdir().expect("create a temporary directory");
    write_files(dir.path(), files);
    dir
}

/// Writes `files` below `root`, creating parent directories as needed.
pub fn write_files<P, C>(root: &Path, files: impl IntoIterator<Item = (P, C)>)
where
    P: AsRef<Path>,
    C: AsRef<[u8]>,
{
    for (path, content) in files {
        let path = root.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent directories");
        }
        std::fs::write(&path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

/// What a run of the binary produced.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the built `cairn` binary with `args`, in the current directory.
pub fn cairn<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> Run {
    cairn_in(Path::new("."), args)
}

/// Runs the built `cairn` binary with `args`, in `cwd`.
pub fn cairn_in<S: AsRef<OsStr>>(cwd: &Path, args: impl IntoIterator<Item = S>) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .current_dir(cwd)
        .env_remove("CAIRN_LOG")
        .output()
        .expect("run the cairn binary");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Address space a measured child may use: far above any budget, low enough that an unbounded
/// input fails the child (an allocation failure) instead of exhausting the machine.
pub const MEASURED_ADDRESS_SPACE: u64 = 6 << 30;

/// Runs the built `cairn` binary with `args` in `cwd`, as [`cairn_in`], under
/// [`MEASURED_ADDRESS_SPACE`]; returns the run and the child's peak resident memory in bytes
/// (from `wait4`'s rusage, so only this child is counted).
pub fn cairn_measured<S: AsRef<OsStr>>(
    cwd: &Path,
    args: impl IntoIterator<Item = S>,
) -> (Run, u64) {
    use std::os::unix::process::ExitStatusExt;
    // The cap is set by a shell that then execs cairn, not by a `pre_exec` hook: that hook makes
    // std fork (copying this test process's resident pages into the child's peak) instead of
    // spawning with vfork semantics, and the peak must be cairn's own.
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(format!(
            "ulimit -v {} && exec \"$0\" \"$@\"",
            MEASURED_ADDRESS_SPACE / 1024
        ))
        .arg(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .current_dir(cwd)
        .env_remove("CAIRN_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("run the cairn binary");
    // Drain the pipes on threads so a chatty child never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for this child only.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4: {}", std::io::Error::last_os_error());
    let status = std::process::ExitStatus::from_raw(status);
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    // ru_maxrss is in KiB on Linux.
    (run, usage.ru_maxrss as u64 * 1024)
}

/// Runs `git` in `dir` with a fixed identity and no system or user configuration that could
/// change its behaviour; panics with git's error output when it fails.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A git repository at `dir` holding the example fleet without the clusters whose file names
/// are in `without`, committed on `main`. Returns the commit.
pub fn example_git_repo(dir: &Path, without: &[&str]) -> String {
    for (path, text) in cairn::example::FILES {
        if without.iter().any(|w| path.ends_with(w)) {
            continue;
        }
        let file = dir.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "the example fleet"]);
    git(dir, &["rev-parse", "HEAD"])
}

/// A value nobody would type: `CANARY-` and 24 hex digits of a hash of the time, the process and
/// `salt`. 31 characters, so its base64 form is padded (`==`) and the padded and unpadded forms
/// differ.
pub fn canary(salt: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let hash =
        <sha2::Sha256 as sha2::Digest>::digest(format!("{nanos}/{}/{salt}", std::process::id()));
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("CANARY-{}", &hex[..24])
}

/// Every form in which a leaked value would show: plain, its random part alone, and base64
/// (standard and URL-safe, padded and unpadded).
pub fn forms(secret: &str) -> Vec<String> {
    let bytes = secret.as_bytes();
    vec![
        secret.to_string(),
        secret.trim_start_matches("CANARY-").to_string(),
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes),
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD_NO_PAD, bytes),
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE, bytes),
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes),
    ]
}

/// Every file below `root` (relative path) with its content.
pub fn tree(root: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// A CNI as a fleet ships it in a `bootstrap: true` layer: a DaemonSet that tolerates every
/// taint and writes the node's CNI configuration. Real Nodes are not Ready without one, and
/// neither are the simulator's.
pub const CNI_DAEMONSET: &str = "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: cni}\nspec:\n  \
     selector: {matchLabels: {app: cni}}\n  template:\n    metadata: {labels: {app: cni}}\n    \
     spec:\n      hostNetwork: true\n      tolerations: [{operator: Exists}]\n      \
     containers: [{name: cni, image: registry.k8s.io/pause:3.10}]\n      \
     volumes: [{name: net, hostPath: {path: /etc/cni/net.d}}]\n";
