#!/usr/bin/env bash
# End-to-end render benchmark: `cairn render` of a synthetic fleet (default 10,000 clusters),
# timed with /usr/bin/time -v. Budget (BENCHMARKS.md): at most 10 s wall and 2 GiB peak RSS.
#
#   benches/render-10k.sh                     # 10,000 clusters, 3 runs
#   CLUSTERS=1000 RUNS=5 benches/render-10k.sh
#   KEEP=1 benches/render-10k.sh              # keep the fleet and outputs (path printed)
#   CAIRN=/path/to/other/cairn benches/render-10k.sh   # time another build (A/B)
#   OUT_BASE=/dev/shm benches/render-10k.sh  # write the output to tmpfs (cairn without the disk)
#
# Each run writes into a fresh output directory, nothing is deleted until all runs are done,
# and the runs start only SETTLE seconds (default 40) after the fleet was written: on this
# machine's ext4, creating files within ~35 s after tens of thousands were deleted (by a
# previous run of this script, say) costs 3-5x the wall time in the kernel's inode allocator
# (`recently_deleted`), which would measure the file system rather than cairn.
# Exit code 1 when the budget is missed.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTERS="${CLUSTERS:-10000}"
RUNS="${RUNS:-3}"
MAX_WALL_S="${MAX_WALL_S:-10}"
MAX_RSS_KB="${MAX_RSS_KB:-$((2 * 1024 * 1024))}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"

if [[ ! -x /usr/bin/time ]]; then
    echo "== /usr/bin/time is missing; installing GNU time" >&2
    apt-get update -qq && apt-get install -y -qq time >/dev/null
fi

echo "== building (release)"
cargo build --release --quiet --bin cairn --example synth_fleet
cairn="${CAIRN:-$TARGET_DIR/release/cairn}"

work="$(mktemp -d "${TMPDIR:-/tmp}/cairn-render-bench.XXXXXX")"
outs="$(mktemp -d "${OUT_BASE:-$work}/cairn-render-out.XXXXXX")"
if [[ -z "${KEEP:-}" ]]; then
    trap 'rm -rf "$outs" "$work"' EXIT
fi

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)," \
    "$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo) RAM, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== generating $CLUSTERS clusters in $work/fleet"
"$TARGET_DIR/release/examples/synth_fleet" "$work/fleet" "$CLUSTERS"
echo "   $(find "$work/fleet" -type f | wc -l) files, $(du -sh "$work/fleet" | cut -f1)"
"$cairn" validate --repo "$work/fleet" 2>/dev/null || {
    echo "the synthetic fleet does not validate" >&2
    exit 2
}

to_seconds() { # h:mm:ss or m:ss.ss
    awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.2f", s }' <<<"$1"
}

settle="${SETTLE:-40}"
echo "== waiting ${settle} s for recently deleted inodes to age out (SETTLE=0 skips)"
sync
sleep "$settle"

walls=()
max_rss=0
for run in $(seq 1 "$RUNS"); do
    out="$outs/out-$run"
    sync
    /usr/bin/time -v -o "$work/time-$run.txt" "$cairn" render --repo "$work/fleet" --out "$out"
    wall=$(to_seconds "$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$work/time-$run.txt")")
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/time-$run.txt")
    user=$(sed -n 's/.*User time (seconds): //p' "$work/time-$run.txt")
    sys=$(sed -n 's/.*System time (seconds): //p' "$work/time-$run.txt")
    printf '   run %d: wall %6.2f s   max RSS %5d MiB   (user %s s, sys %s s)\n' \
        "$run" "$wall" $((rss / 1024)) "$user" "$sys"
    walls+=("$wall")
    ((rss > max_rss)) && max_rss=$rss
done

median=$(printf '%s\n' "${walls[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
worst=$(printf '%s\n' "${walls[@]}" | sort -n | tail -1)
files=$(find "$outs/out-1" -type f | wc -l)
bytes=$(du -sb "$outs/out-1" | cut -f1)
echo "== $CLUSTERS clusters: median wall ${median} s, worst ${worst} s, max RSS $((max_rss / 1024)) MiB"
echo "   output: $files files, $(awk -v b="$bytes" 'BEGIN { printf "%.0f MiB", b / 1048576 }') in $(df --output=fstype "$outs" | tail -1)"
[[ -n "${KEEP:-}" ]] && echo "   kept in $work"

if awk -v w="$worst" -v m="$MAX_WALL_S" 'BEGIN { exit !(w > m) }' || ((max_rss > MAX_RSS_KB)); then
    echo "== OVER BUDGET (${MAX_WALL_S} s, $((MAX_RSS_KB / 1024)) MiB)"
    exit 1
fi
echo "== within budget (${MAX_WALL_S} s, $((MAX_RSS_KB / 1024)) MiB)"
