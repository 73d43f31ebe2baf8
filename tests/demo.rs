//! `cairn demo` as a user runs it (not on a terminal, so progress comes as log lines): the
//! example fleet Ready, one commit carried through, the status table, and nothing left running.

mod common;

use std::path::Path;
use std::time::Instant;

const CLUSTERS: [&str; 3] = ["prod-vsphere-1", "staging-aws-1", "dev-docker-1"];

/// Every live process whose command line mentions `dir`, as `pid: command line`.
fn processes_mentioning(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let zombie = std::fs::read_to_string(entry.path().join("stat")).is_ok_and(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        });
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if !zombie && cmdline.contains(&needle) {
            found.push(format!("{name}: {cmdline}"));
        }
    }
    found
}

/// The table row of `cluster`, split into columns.
fn row<'a>(table: &'a str, cluster: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&cluster))
        .unwrap_or_else(|| panic!("no row for {cluster} in the table:\n{table}"))
}

#[test]
fn the_demo_brings_the_example_fleet_to_ready_carries_a_commit_through_and_stops_everything() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("demo");
    let dir_arg = dir.to_str().unwrap();

    let start = Instant::now();
    let run = common::cairn_in(root.path(), ["demo", "--dir", dir_arg]);
    let elapsed = start.elapsed();
    eprintln!("cairn demo took {elapsed:.1?}");
    let output = format!("stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert_eq!(run.code, 0, "{output}");

    // The status table on stdout: every cluster Ready, the pivoted ones read in their own API
    // servers, and dev-docker-1 with its scaled pool (1 control-plane machine + 3 workers).
    assert!(run.stdout.starts_with("NAME"), "{output}");
    let header: Vec<&str> = run
        .stdout
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME", "PROVIDER", "PHASE", "REVISION", "CAPI", "OBJECTS", "IN", "MACHINES",
            "CREATED", "LAST", "ERROR"
        ],
        "the table's columns changed; this test reads them by position"
    );
    let mut revisions = Vec::new();
    for cluster in CLUSTERS {
        let cells = row(&run.stdout, cluster);
        assert_eq!(cells[2], "Ready", "{cluster}: {output}");
        revisions.push(cells[3].to_string());
        let location = match cluster {
            "dev-docker-1" => "management",
            _ => "workload",
        };
        assert_eq!(cells[4], location, "{cluster}: {output}");
        let (ready, desired) = cells[5].split_once('/').unwrap();
        assert_eq!(ready, desired, "{cluster}: every machine ready: {output}");
    }
    assert_eq!(
        row(&run.stdout, "dev-docker-1")[5],
        "4/4",
        "dev-docker-1: 1 control-plane machine and md-0 scaled to 3: {output}"
    );
    // The agents of the pivoted clusters read the commit from git too.
    assert!(
        revisions.iter().all(|r| r == &revisions[0]),
        "every cluster at the scaled commit: {output}"
    );

    // The summary on stderr: the scaling commit carried through, at the revision the table shows.
    let carried = run
        .stderr
        .lines()
        .find(|l| l.contains("carried through"))
        .unwrap_or_else(|| panic!("no line says the commit was carried through: {output}"));
    assert!(
        carried.contains("scale worker pool md-0 from 2 to 3"),
        "{carried}"
    );
    assert!(
        carried.contains(&row(&run.stdout, "dev-docker-1")[3].to_string()),
        "the table shows dev-docker-1 at the scaled commit: {output}"
    );
    assert!(
        run.stderr.contains("all 3 clusters Ready at"),
        "the fleet was Ready before the commit: {output}"
    );
    // Progress came as log lines (stderr is not a terminal), one per change of a cluster.
    for cluster in CLUSTERS {
        assert!(
            run.stderr
                .lines()
                .any(|l| l.contains(cluster) && l.contains("Reconciling")),
            "no progress line for {cluster}: {output}"
        );
    }

    // Nothing is left: no state directory, no process, and `cairn local status` says so.
    assert!(!dir.exists(), "{} is left behind", dir.display());
    let survivors = processes_mentioning(&dir);
    assert!(
        survivors.is_empty(),
        "processes survived the demo: {survivors:#?}"
    );
    let status = common::cairn_in(root.path(), ["local", "status", "--dir", dir_arg]);
    assert_ne!(status.code, 0, "the environment is stopped: {status:?}");
}
