//! Measures how long one etcd + kube-apiserver pair takes to become ready, and how much memory
//! it holds once ready. `cargo run --release --example apiserver_startup -- [RUNS]`
//! (assets from KUBEBUILDER_ASSETS, or built by tools/build-assets.sh).

use std::path::Path;
use std::time::Instant;

use cairn::local::{ApiServer, ApiServerOptions, Assets};

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let assets = Assets::find_or_build(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tools"))
        .expect("assets");
    let mut times = Vec::new();
    let mut rss = Vec::new();
    for i in 0..runs {
        let dir = tempfile::tempdir().unwrap();
        let start = Instant::now();
        let server = ApiServer::start(
            &assets,
            ApiServerOptions::new(format!("bench-{i}"), dir.path()),
        )
        .await
        .expect("start");
        times.push(start.elapsed().as_secs_f64());
        // Let the server finish its post-start hooks before reading memory.
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let pids = server.pids();
        rss.push((rss_mib(pids[0]), rss_mib(pids[1])));
        drop(server);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!("runs: {runs}");
    println!(
        "ready after (s): median {median:.2}, min {:.2}, max {:.2}",
        times[0],
        times[times.len() - 1]
    );
    let (etcd, api): (Vec<f64>, Vec<f64>) = rss.into_iter().unzip();
    let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "RSS when ready (MiB): etcd {:.0}, kube-apiserver {:.0}, pair {:.0}",
        avg(&etcd),
        avg(&api),
        avg(&etcd) + avg(&api)
    );
}
