//! Rendering benchmarks on the synthetic fleet (`cairn::synth`): whole-repository renders in
//! memory, and the YAML writer. `cargo bench --bench render` (about a minute); the 10,000-cluster
//! end-to-end figure comes from `benches/render-10k.sh`. Figures: BENCHMARKS.md.

use std::time::Duration;

use cairn::model::RepoSnapshot;
use cairn::render::yaml::objects_yaml;
use cairn::render::{Bundle, render_repo};
use cairn::synth::synthetic_fleet;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;
use std::hint::black_box;

fn snapshot(clusters: usize) -> RepoSnapshot {
    RepoSnapshot::from_files(synthetic_fleet(clusters))
}

fn rendered(clusters: usize) -> Vec<Bundle> {
    let rendered = render_repo(&snapshot(clusters), &[]);
    assert!(!rendered.has_errors(), "{:#?}", rendered.diagnostics);
    rendered.bundles
}

/// Load, validate and render every cluster, in memory (no output written).
fn render(c: &mut Criterion) {
    let mut group = c.benchmark_group("render_repo");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6));
    for clusters in [100, 1_000] {
        let snap = snapshot(clusters);
        group.throughput(Throughput::Elements(clusters as u64));
        group.bench_with_input(BenchmarkId::from_parameter(clusters), &snap, |b, snap| {
            b.iter(|| {
                let r = render_repo(black_box(snap), &[]);
                assert_eq!(r.bundles.len(), clusters);
                r
            })
        });
    }
    group.finish();
}

/// The YAML of every stage of 100 rendered clusters, with serde_yaml (what cairn used before
/// its own writer, and what the writer's output must equal) for reference.
fn yaml(c: &mut Criterion) {
    let bundles = rendered(100);
    let stages: Vec<&[Value]> = bundles
        .iter()
        .flat_map(|b| &b.stages)
        .map(|s| s.objects.as_slice())
        .collect();
    let bytes: usize = stages.iter().map(|s| objects_yaml(s).len()).sum();
    let mut group = c.benchmark_group("objects_yaml_100_clusters");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("cairn", |b| {
        b.iter(|| {
            stages
                .iter()
                .map(|s| objects_yaml(black_box(s)).len())
                .sum::<usize>()
        })
    });
    group.bench_function("serde_yaml", |b| {
        b.iter(|| {
            let mut total = 0;
            for objects in &stages {
                let mut out = String::new();
                for obj in black_box(*objects) {
                    out.push_str("---\n");
                    out.push_str(
                        &serde_yaml::to_string(&cairn::render::finalize::sorted(obj)).unwrap(),
                    );
                }
                total += out.len();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, render, yaml);
criterion_main!(benches);
