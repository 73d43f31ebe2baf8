#!/usr/bin/env bash
# Pivot benchmark (BENCHMARKS.md, "Pivot"): cairn's mover and `clusterctl move` on the same
# ~40-object graph of dev-docker-1, side by side, with their target objects compared.
#
#   benches/pivot-bench.sh                          # 3 timed rounds, md-0 at 6 workers
#   benches/pivot-bench.sh --runs 5 --workers 8     # any examples/pivot_bench.rs flags
#   benches/pivot-bench.sh --json > pivot.json      # JSON on stdout, the table on stderr
#   benches/pivot-bench.sh --dump /tmp/pivot        # keep every target's objects and clusterctl's log
#   CLUSTERCTL=/path/to/clusterctl benches/pivot-bench.sh
#
# clusterctl is built first, gently (one Go job, niced: ~2 min once, cached after that), so the
# example finds it cached. If that build fails and CLUSTERCTL is unset, the example reports cairn
# alone and says why. Exit code 1 when the target objects differ in something not explained.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -z "${CLUSTERCTL:-}" ]]; then
    if CLUSTERCTL="$(GOFLAGS="${GOFLAGS:--p=1}" nice -n 10 tools/build-clusterctl.sh)"; then
        export CLUSTERCTL
    else
        unset CLUSTERCTL
        echo "== clusterctl did not build; the benchmark will say so and time cairn alone" >&2
    fi
fi
exec cargo run --quiet --release --example pivot_bench -- "$@"
