//! Pid files of the processes `cairn local` starts, and stopping them safely from another run.
//!
//! A pid file holds the pid and the binary it runs; a process is only signalled when its
//! `/proc/<pid>/exe` still names that binary, so a reused pid is never killed by mistake.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Writes `pid` and `binary` to `path`.
pub fn write(path: &Path, pid: u32, binary: &Path) -> std::io::Result<()> {
    std::fs::write(path, format!("{pid}\n{}\n", binary.display()))
}

/// A process recorded in a pid file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub pid_file: PathBuf,
    pub pid: u32,
    pub binary: PathBuf,
}

impl Recorded {
    /// Whether the recorded process is still running the recorded binary.
    pub fn alive(&self) -> bool {
        let exe = std::fs::read_link(format!("/proc/{}/exe", self.pid));
        // A binary replaced since it started (a rebuild) shows as `<path> (deleted)`.
        let exe = exe.map(|e| {
            let text = e.to_string_lossy();
            PathBuf::from(text.strip_suffix(" (deleted)").unwrap_or(&text))
        });
        let binary = self
            .binary
            .canonicalize()
            .unwrap_or_else(|_| self.binary.clone());
        let same_binary = exe.is_ok_and(|exe| exe == binary);
        same_binary && !is_zombie(self.pid)
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// Every pid file below `dir`.
pub fn find(dir: &Path) -> Vec<Recorded> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "pid"))
        .filter_map(|e| read(e.path()))
        .collect()
}

fn read(path: &Path) -> Option<Recorded> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    let pid = lines.next()?.trim().parse().ok()?;
    let binary = PathBuf::from(lines.next()?.trim());
    Some(Recorded {
        pid_file: path.to_path_buf(),
        pid,
        binary,
    })
}

/// Sends SIGTERM to every live recorded process, waits up to `grace`, then SIGKILLs the rest.
/// Returns the processes that were running.
pub fn stop_all(processes: &[Recorded], grace: Duration) -> Vec<Recorded> {
    let running: Vec<Recorded> = processes.iter().filter(|p| p.alive()).cloned().collect();
    for p in &running {
        // SAFETY: plain kill(2) on a pid we verified runs our binary.
        unsafe { libc::kill(p.pid as i32, libc::SIGTERM) };
    }
    wait_gone(&running, grace);
    for p in running.iter().filter(|p| p.alive()) {
        // SAFETY: as above.
        unsafe { libc::kill(p.pid as i32, libc::SIGKILL) };
    }
    // A killed process is gone only once the kernel has torn it down; return after that, so
    // whoever called us never sees a survivor.
    wait_gone(&running, Duration::from_secs(10));
    running
}

fn wait_gone(processes: &[Recorded], limit: Duration) {
    let start = Instant::now();
    while processes.iter().any(Recorded::alive) && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_alive_only_while_it_runs_the_recorded_binary() {
        let me = std::process::id();
        let exe = std::env::current_exe().unwrap();
        let recorded = |binary: PathBuf| Recorded {
            pid_file: PathBuf::from("x.pid"),
            pid: me,
            binary,
        };
        assert!(recorded(exe).alive());
        assert!(!recorded(PathBuf::from("/bin/not-this-one")).alive());
    }
}
