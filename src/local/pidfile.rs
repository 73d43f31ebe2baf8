//! Pid files of the processes `cairn local` starts, and stopping them safely from another run.
//!
//! A pid file holds the pid, the binary it runs and the process's start time (field 22 of
//! `/proc/<pid>/stat`). A process is only signalled while a process with that pid and that start
//! time exists, so a reused pid is never killed by mistake. The start time, unlike
//! `/proc/<pid>/exe`, is readable without ptrace rights and stays readable while the process
//! exits, so `down` waits until the process is really gone.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Writes `pid`, `binary` and the process's start time to `path`.
pub fn write(path: &Path, pid: u32, binary: &Path) -> std::io::Result<()> {
    let started = proc_stat(pid)
        .map(|s| s.started.to_string())
        .unwrap_or_default();
    std::fs::write(path, format!("{pid}\n{}\n{started}\n", binary.display()))
}

/// A process recorded in a pid file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub pid_file: PathBuf,
    pub pid: u32,
    pub binary: PathBuf,
    /// Clock ticks after boot when the process started; `None` when it was not recorded.
    pub started: Option<u64>,
}

impl Recorded {
    /// Whether the recorded process still runs: its pid exists, is not a zombie, and started
    /// when the recorded one did (or, without a recorded start time, runs the recorded binary).
    pub fn alive(&self) -> bool {
        let Some(stat) = proc_stat(self.pid) else {
            return false;
        };
        if stat.zombie {
            return false;
        }
        match self.started {
            Some(started) => stat.started == started,
            None => self.runs_recorded_binary(),
        }
    }

    fn runs_recorded_binary(&self) -> bool {
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
        exe.is_ok_and(|exe| exe == binary)
    }
}

struct ProcStat {
    zombie: bool,
    started: u64,
}

/// The state and start time of `pid`, from `/proc/<pid>/stat`; `None` when there is no such
/// process.
fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces; fields after it are
    // plain. After the `)`, field 3 (state) comes first and field 22 (starttime) 20th.
    let (_, rest) = text.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    let started = fields.nth(18)?.parse().ok()?;
    Some(ProcStat {
        zombie: state.starts_with('Z') || state.starts_with('X'),
        started,
    })
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
    let started = lines.next().and_then(|l| l.trim().parse().ok());
    Some(Recorded {
        pid_file: path.to_path_buf(),
        pid,
        binary,
        started,
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
    fn a_process_is_alive_only_while_it_is_the_recorded_one() {
        let me = std::process::id();
        let exe = std::env::current_exe().unwrap();
        let started = proc_stat(me).unwrap().started;
        assert!(started > 0);
        let recorded = |binary: PathBuf, started| Recorded {
            pid_file: PathBuf::from("x.pid"),
            pid: me,
            binary,
            started,
        };
        assert!(recorded(exe.clone(), Some(started)).alive());
        assert!(
            !recorded(exe.clone(), Some(started + 1)).alive(),
            "a reused pid"
        );
        assert!(
            recorded(exe, None).alive(),
            "an old pid file without a start time"
        );
        assert!(!recorded(PathBuf::from("/bin/not-this-one"), None).alive());
    }

    #[test]
    fn a_written_pid_file_reads_back_with_its_start_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("me.pid");
        let exe = std::env::current_exe().unwrap();
        write(&path, std::process::id(), &exe).unwrap();
        let found = find(dir.path());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].pid, std::process::id());
        assert!(found[0].started.is_some_and(|t| t > 0));
        assert!(found[0].alive());
    }

    #[test]
    fn stop_all_returns_only_after_the_process_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let path = dir.path().join("sleep.pid");
        write(&path, child.id(), Path::new("/bin/sleep")).unwrap();
        let recorded = find(dir.path());
        assert!(recorded[0].alive());
        // Reap in the background, as init would for a detached process.
        let reaper = std::thread::spawn(move || child.wait());
        let stopped = stop_all(&recorded, Duration::from_secs(5));
        assert_eq!(stopped.len(), 1);
        assert!(!recorded[0].alive());
        reaper.join().unwrap().unwrap();
    }
}
