#!/usr/bin/env bash
# Controller benchmark (BENCHMARKS.md, "Controller"): commit-to-applied latency of `cairn run`
# with the webhook, then one full pass over a synthetic fleet (management-side stages only) at
# each concurrency, with the memory of the controller's process.
#
#   benches/controller-bench.sh                        # 10 commits; 1,000 clusters at 4 and 16
#   COMMITS=20 benches/controller-bench.sh
#   CLUSTERS=2000 CONCURRENCY="4 8 16" benches/controller-bench.sh
#   ONLY=latency benches/controller-bench.sh           # or ONLY=fleet
#   JSON=1 benches/controller-bench.sh                 # a JSON line after each table
#   CAIRN=/path/to/cairn benches/controller-bench.sh   # the latency of another `cairn run` build
#
# Each fleet run is its own process with its own API server, so each peak (VmHWM) is its own.
# The test assets (kube-apiserver, etcd, CRDs) are built on first use, as for the tests.
# Exit code 1 when a goal is missed (overhead over 1 s, memory over 256 MiB) or when the
# converged fleet is written to again.
set -euo pipefail
cd "$(dirname "$0")/.."

COMMITS="${COMMITS:-10}"
CLUSTERS="${CLUSTERS:-1000}"
CONCURRENCY="${CONCURRENCY:-4 16}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
# A missed goal is an error message, not a stack trace.
export RUST_LIB_BACKTRACE="${RUST_LIB_BACKTRACE:-0}"
json=()
[[ -n "${JSON:-}" ]] && json=(--json)

echo "== building (release)" >&2
cargo build --release --quiet --bin cairn --example controller_bench
bench="$TARGET_DIR/release/examples/controller_bench"
cairn="${CAIRN:-$TARGET_DIR/release/cairn}"

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)," \
    "$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2

status=0
if [[ -z "${ONLY:-}" || "$ONLY" == latency ]]; then
    echo "== latency: $COMMITS commits, webhook, cairn run = $cairn" >&2
    "$bench" latency --commits "$COMMITS" --cairn "$cairn" "${json[@]}" || status=1
fi
if [[ -z "${ONLY:-}" || "$ONLY" == fleet ]]; then
    for c in $CONCURRENCY; do
        echo "== fleet: $CLUSTERS clusters, concurrency $c" >&2
        "$bench" fleet --clusters "$CLUSTERS" --concurrency "$c" "${json[@]}" || status=1
    done
fi
exit "$status"
