#!/usr/bin/env bash
# Builds clusterctl (sigs.k8s.io/cluster-api/cmd/clusterctl at CAPI_VERSION from tools/versions.env)
# from the Go module proxy, once, into a cache directory keyed by version, and prints the path of
# the binary (the only stdout line; logs go to stderr):
#
#   CLUSTERCTL="$(tools/build-clusterctl.sh)"
#
# Environment:
#   CLUSTERCTL            if set to an executable file, it is printed and nothing is built.
#   CAIRN_ASSETS_CACHE    cache root (default: $HOME/.cache/cairn/assets).
#   CAIRN_ASSETS_FORCE=1  rebuild even if the cache entry is complete.
#   GOFLAGS               kept (e.g. GOFLAGS=-p=1 on a busy machine); -mod=readonly -buildvcs=false are added.
#
# The cache entry <cache>/clusterctl-<CAPI_VERSION>/ (binary `clusterctl`, `versions.env`, marker
# `.complete`) is built in a temporary directory next to it and renamed into place only when
# complete; a lock file serialises concurrent invocations (same scheme as build-assets.sh). The
# wrapper module tools/clusterctl/go.mod pins the same version (regenerate it with
# tools/clusterctl/update-gomod.sh).
set -euo pipefail

TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

log() { printf 'build-clusterctl: %s\n' "$*" >&2; }
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
die() { log "error: $*"; exit 1; }

if [[ -n "${CLUSTERCTL:-}" ]]; then
  if [[ -f "$CLUSTERCTL" && -x "$CLUSTERCTL" ]]; then
    printf '%s\n' "$CLUSTERCTL"
    exit 0
  fi
  log "CLUSTERCTL=$CLUSTERCTL is not an executable file; building instead"
fi

version_of() { sed -n "s/^$1=//p" "$TOOLS_DIR/versions.env"; }
CAPI_VERSION="$(version_of CAPI_VERSION)"
[[ "$CAPI_VERSION" =~ ^v1\.([0-9]+)\.[0-9]+$ ]] || die "bad CAPI_VERSION '$CAPI_VERSION' in versions.env"
CAPI_MINOR="${BASH_REMATCH[1]}"

grep -qE "^[[:space:]]*(require[[:space:]]+)?sigs\.k8s\.io/cluster-api ${CAPI_VERSION//./\\.}( |$)" "$TOOLS_DIR/clusterctl/go.mod" \
  || die "tools/clusterctl/go.mod does not pin sigs.k8s.io/cluster-api $CAPI_VERSION (run tools/clusterctl/update-gomod.sh)"

NAME="clusterctl-${CAPI_VERSION}"
cached() { [[ -f "$DEST/$MARKER" && -x "$DEST/clusterctl" ]]; }
begin_build "/clusterctl"

export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=readonly -buildvcs=false"

# Reproducible build date: the publication time of the sigs.k8s.io/cluster-api module version.
BUILD_DATE="$(go list -C "$TOOLS_DIR/clusterctl" -m -f '{{if .Time}}{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' sigs.k8s.io/cluster-api)"
[[ -n "$BUILD_DATE" ]] || BUILD_DATE="1970-01-01T00:00:00Z"

# sigs.k8s.io/cluster-api/version is what `clusterctl version` prints (and what clusterctl compares
# with provider metadata / the latest release); without these it reports an empty version.
# gitCommit stays empty: the module proxy does not say which commit a tag is.
pkg=sigs.k8s.io/cluster-api/version
LDFLAGS="-s -w -X $pkg.gitVersion=$CAPI_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$CAPI_MINOR"
LDFLAGS+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$BUILD_DATE -X $pkg.gitCommit="

start=$(date +%s.%N)
log "building clusterctl $CAPI_VERSION (sigs.k8s.io/cluster-api/cmd/clusterctl) ..."
# In the background + `wait`, so that a signal interrupts the build at once.
go build -C "$TOOLS_DIR/clusterctl" -trimpath -ldflags "$LDFLAGS" -o "$TMP/clusterctl" sigs.k8s.io/cluster-api/cmd/clusterctl &
CHILD=$!
rc=0
wait "$CHILD" || rc=$?
CHILD=""
(( rc == 0 )) || die "go build sigs.k8s.io/cluster-api/cmd/clusterctl failed (exit $rc)"
end=$(date +%s.%N)
log "built clusterctl in $(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.1f", b-a}')s, $(du -h "$TMP/clusterctl" | cut -f1)"

# Capture first, then match (see build-assets.sh). Keep clusterctl from reading/writing ~/.cluster-api
# or checking GitHub for a newer release while we ask its version.
out="$(CLUSTERCTL_DISABLE_VERSIONCHECK=true XDG_CONFIG_HOME="$TMP/.xdg" "$TMP/clusterctl" version -o short)"
[[ "$out" == "$CAPI_VERSION" ]] || die "unexpected clusterctl version -o short: $out"
rm -rf "$TMP/.xdg"

{
  echo "CAPI_VERSION=$CAPI_VERSION"
  echo "BUILD_DATE=$BUILD_DATE"
  echo "GO_VERSION=$(go env GOVERSION)"
} > "$TMP/versions.env"
touch "$TMP/$MARKER"
chmod 755 "$TMP"

publish_dir "$TMP" "$DEST" "$CACHE_ROOT" "$NAME"
trap - EXIT
log "clusterctl ready: $DEST/clusterctl"
printf '%s\n' "$DEST/clusterctl"
