#!/usr/bin/env bash
# Builds the local-environment binaries (kube-apiserver, kubectl, etcd) from the Go module proxy,
# once, into a cache directory keyed by version, and prints that directory (the only stdout line;
# logs go to stderr). Use it as KUBEBUILDER_ASSETS:
#
#   export KUBEBUILDER_ASSETS="$(tools/build-assets.sh)"
#
# Environment:
#   KUBEBUILDER_ASSETS   if set and it holds all three binaries, it is printed and nothing is built.
#   CAIRN_ASSETS_CACHE   cache root (default: $HOME/.cache/cairn/assets).
#   CAIRN_ASSETS_FORCE=1 rebuild even if the cache entry is complete.
#
# The cache entry <cache>/k8s-<K8S_VERSION>-etcd-<ETCD_VERSION>/ is built in a temporary directory
# next to it and renamed into place only after every binary is built and the `.complete` marker is
# written, so an interrupted build is never mistaken for a finished one. A lock file serialises
# concurrent invocations. Versions come from tools/versions.env (the wrapper modules' go.mod files
# pin the same versions; regenerate them with tools/*/update-gomod.sh).
set -euo pipefail

TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BINARIES=(kube-apiserver kubectl etcd)

log() { printf 'build-assets: %s\n' "$*" >&2; }
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
die() { log "error: $*"; exit 1; }

has_all() {
  local dir="$1" b
  for b in "${BINARIES[@]}"; do
    [[ -x "$dir/$b" ]] || return 1
  done
}

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  if has_all "$KUBEBUILDER_ASSETS"; then
    printf '%s\n' "$KUBEBUILDER_ASSETS"
    exit 0
  fi
  log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks one of ${BINARIES[*]}; building instead"
fi

version_of() { sed -n "s/^$1=//p" "$TOOLS_DIR/versions.env"; }
K8S_VERSION="$(version_of K8S_VERSION)"
ETCD_VERSION="$(version_of ETCD_VERSION)"
[[ "$K8S_VERSION" =~ ^v1\.([0-9]+)\.[0-9]+$ ]] || die "bad K8S_VERSION '$K8S_VERSION' in versions.env"
K8S_MINOR="${BASH_REMATCH[1]}"
[[ "$ETCD_VERSION" =~ ^v3\.[0-9]+\.[0-9]+$ ]] || die "bad ETCD_VERSION '$ETCD_VERSION' in versions.env"

# The wrapper modules must pin the same versions as versions.env.
grep -qE "^[[:space:]]*k8s\.io/kubernetes ${K8S_VERSION//./\\.}( |$)" "$TOOLS_DIR/kube-apiserver/go.mod" \
  || die "tools/kube-apiserver/go.mod does not pin k8s.io/kubernetes $K8S_VERSION (run tools/kube-apiserver/update-gomod.sh)"
grep -qE "^[[:space:]]*go\.etcd\.io/etcd/server/v3 ${ETCD_VERSION//./\\.}( |$)" "$TOOLS_DIR/etcd/go.mod" \
  || die "tools/etcd/go.mod does not pin etcd $ETCD_VERSION (run tools/etcd/update-gomod.sh)"

NAME="k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}"
cached() { [[ -f "$DEST/$MARKER" ]] && has_all "$DEST"; }
begin_build ""

export CGO_ENABLED=0
# -buildvcs=false: the wrapper modules live inside cairn's git checkout; its commit/dirty state must
# not be stamped into (or break) the build.
export GOFLAGS="-mod=readonly -buildvcs=false"

# gitCommit is set empty: the module proxy does not tell which commit a tag is (otherwise the
# placeholder "$Format:%H$" from the source shows up in `kubectl version`).
# Reproducible build date: the publication time of the k8s.io/kubernetes module version.
BUILD_DATE="$(cd "$TOOLS_DIR/kube-apiserver" && go list -m -f '{{if .Time}}{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' k8s.io/kubernetes)"
[[ -n "$BUILD_DATE" ]] || BUILD_DATE="1970-01-01T00:00:00Z"

K8S_LDFLAGS="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  K8S_LDFLAGS+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$K8S_MINOR"
  K8S_LDFLAGS+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$BUILD_DATE -X $pkg.gitCommit="
done
ETCD_LDFLAGS="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=module-$ETCD_VERSION"

# build <module dir> <package> <output name> <ldflags>
build() {
  local start end
  start=$(date +%s.%N)
  log "building $3 ($2) ..."
  # In the background + `wait`, so that a signal interrupts the (minutes-long) build at once.
  go build -C "$TOOLS_DIR/$1" -trimpath -ldflags "$4" -o "$TMP/$3" "$2" &
  CHILD=$!
  local rc=0
  wait "$CHILD" || rc=$?
  CHILD=""
  (( rc == 0 )) || die "go build $2 failed (exit $rc)"
  end=$(date +%s.%N)
  log "built $3 in $(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.1f", b-a}')s, $(du -h "$TMP/$3" | cut -f1)"
}

build etcd go.etcd.io/etcd/server/v3 etcd "$ETCD_LDFLAGS"
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver kube-apiserver "$K8S_LDFLAGS"
build kube-apiserver k8s.io/kubernetes/cmd/kubectl kubectl "$K8S_LDFLAGS"

# Capture first, then match: `cmd | grep -q` can fail under pipefail when grep exits early (SIGPIPE).
out="$("$TMP/kube-apiserver" --version)"
[[ "$out" == "Kubernetes $K8S_VERSION" ]] || die "unexpected kube-apiserver --version: $out"
out="$("$TMP/etcd" --version)"
[[ "$out" == *"etcd Version: ${ETCD_VERSION#v}"* ]] || die "unexpected etcd --version: $out"
out="$("$TMP/kubectl" version --client)"
[[ "$out" == *"Client Version: $K8S_VERSION"* ]] || die "unexpected kubectl version --client: $out"

{
  echo "K8S_VERSION=$K8S_VERSION"
  echo "ETCD_VERSION=$ETCD_VERSION"
  echo "BUILD_DATE=$BUILD_DATE"
  echo "GO_VERSION=$(go env GOVERSION)"
} > "$TMP/versions.env"
touch "$TMP/$MARKER"
chmod 755 "$TMP"

# Atomic publish: rename the finished directory into place (replacing an incomplete or forced one).
publish_dir "$TMP" "$DEST" "$CACHE_ROOT" "$NAME"
trap - EXIT
log "assets ready in $DEST"
printf '%s\n' "$DEST"
