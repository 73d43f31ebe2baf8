//! Real API servers from the test assets: several at once, each answering, none left behind.

use std::path::Path;

use cairn::local::{ApiServer, ApiServerOptions, Assets};

fn assets() -> Assets {
    // Never skips: without assets this builds them, and a failed build fails the test.
    Assets::find_or_build(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tools"))
        .unwrap_or_else(|e| panic!("test assets unavailable: {e}"))
}

fn alive(pid: u32) -> bool {
    // Signal 0 checks existence; a zombie is reaped by our wait, so gone means gone.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_api_servers_at_once_each_answer_and_none_is_left_running() {
    let assets = assets();
    let root = tempfile::tempdir().unwrap();
    let starts = (0..4).map(|i| {
        let opts = ApiServerOptions::new(format!("test-{i}"), root.path().join(format!("s{i}")));
        let assets = assets.clone();
        async move { ApiServer::start(&assets, opts).await }
    });
    let servers: Vec<ApiServer> = futures_join_all(starts).await;
    let mut pids = Vec::new();
    for server in &servers {
        let client = server.client().await.unwrap();
        let version = client.apiserver_version().await.unwrap();
        assert!(
            version.git_version.starts_with("v1.34."),
            "{}",
            version.git_version
        );
        pids.extend(server.pids());
    }
    let ports: std::collections::HashSet<u16> = servers.iter().map(|s| s.port).collect();
    assert_eq!(ports.len(), 4, "each server has its own port");
    assert_eq!(pids.len(), 8);
    assert!(pids.iter().all(|&p| alive(p)));
    drop(servers);
    assert!(
        pids.iter().all(|&p| !alive(p)),
        "every etcd and kube-apiserver is gone"
    );
}

async fn futures_join_all<F, T, E>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap().unwrap_or_else(|e| panic!("{e}")));
    }
    out
}
