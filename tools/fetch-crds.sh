#!/usr/bin/env bash
# Fetches the Cluster API v1.14 CRDs and the provider CRDs (CAPD, CAPV, CAPA) from their Go modules
# (`go mod download`, i.e. the Go module cache; nothing is committed), labels them as
# `clusterctl init` does, and writes them into a directory, which it prints as its only stdout line
# (logs go to stderr). The work is done by the Go program in tools/crds (see the comment there for
# the exact transformation, including why spec.conversion is set to `strategy: None`). Beside them
# it builds each provider's components (`kustomize build config/default`, as the providers' release
# builds them; tools/crds/components.go), and cert-manager's static manifest, which clusterctl
# installs first (`helm template` of its chart with Helm's Go library; tools/crds/certmanager.go).
#
#   tools/fetch-crds.sh [OUT_DIR]
#
# Default OUT_DIR: ${CAIRN_ASSETS_CACHE:-$HOME/.cache/cairn/assets}/crds-capi-<v>-capd-<v>-capv-<v>-capa-<v>-cm-<v>-<layout>/
# Layout:  OUT_DIR/<provider>/<crd name>.yaml   one CRD per file, provider = clusterctl provider label
#          OUT_DIR/all.yaml                     every CRD, multi-document, in install order
#          OUT_DIR/index.json                   provider, group, kind, plural, scope, served, storage, labels per CRD
#          OUT_DIR/components/<provider>.yaml  the provider's release components, ${VARIABLES} kept
#          OUT_DIR/components/cert-manager.yaml cert-manager's, labelled as clusterctl installs it
#          OUT_DIR/components/index.json       provider, type, version, namespace, variables
#          OUT_DIR/.complete                    marker: written last; a directory without it is not reused
# Versions come from tools/versions.env. CAIRN_CRDS_FORCE=1 refetches.
set -euo pipefail

TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf 'fetch-crds: %s\n' "$*" >&2; }
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
die() { log "error: $*"; exit 1; }

version_of() { sed -n "s/^$1=//p" "$TOOLS_DIR/versions.env"; }
CAPI_VERSION="$(version_of CAPI_VERSION)"
CAPD_VERSION="$(version_of CAPD_VERSION)"
CAPV_VERSION="$(version_of CAPV_VERSION)"
CAPA_VERSION="$(version_of CAPA_VERSION)"
CERT_MANAGER_VERSION="$(version_of CERT_MANAGER_VERSION)"
[[ -n "$CAPI_VERSION" ]] || die "CAPI_VERSION is not set in versions.env"

# The last part names the layout: a new one (components/ was added in 2, cert-manager's in 3)
# refetches.
STAMP="capi-${CAPI_VERSION}-capd-${CAPD_VERSION:-none}-capv-${CAPV_VERSION:-none}-capa-${CAPA_VERSION:-none}-cm-${CERT_MANAGER_VERSION:-none}-3"
CACHE_ROOT="${CAIRN_ASSETS_CACHE:-${HOME:?HOME is not set}/.cache/cairn/assets}"
DEST="${1:-$CACHE_ROOT/crds-$STAMP}"
DEST="${DEST%/}"
MARKER=".complete"

# A finished directory holds the marker, whose content is the version stamp it was made for.
cached() { [[ -f "$DEST/$MARKER" && "$(cat "$DEST/$MARKER")" == "$STAMP" && -s "$DEST/index.json" ]]; }

if [[ "${CAIRN_CRDS_FORCE:-0}" != 1 ]] && cached; then
  printf '%s\n' "$DEST"
  exit 0
fi

PARENT="$(dirname "$DEST")"
NAME="$(basename "$DEST")"
mkdir -p "$PARENT"
exec 9>"$PARENT/.$NAME.lock"
if ! flock -n 9; then
  log "another fetch into $DEST is running; waiting for it"
  flock 9
fi
if [[ "${CAIRN_CRDS_FORCE:-0}" != 1 ]] && cached; then
  printf '%s\n' "$DEST"
  exit 0
fi
if [[ -e "$DEST" && ! -f "$DEST/$MARKER" && -n "$(ls -A "$DEST" 2>/dev/null)" && ! -f "$DEST/index.json" ]]; then
  die "$DEST exists, is not empty and was not made by this script; refusing to replace it"
fi

command -v go >/dev/null || die "go is not installed"
# We hold the lock, so leftovers of earlier runs (killed with SIGKILL) are stale.
rm -rf "$PARENT/.$NAME.tmp."* "$PARENT/.$NAME.old."*
TMP="$(mktemp -d "$PARENT/.$NAME.tmp.XXXXXX")"
cleanup() { rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

log "fetching CRDs and building provider components ($STAMP)"
GOFLAGS="-mod=readonly -buildvcs=false" go run -C "$TOOLS_DIR/crds" . -out "$TMP" -components "$TMP/components" \
  -capi "$CAPI_VERSION" -capd "$CAPD_VERSION" -capv "$CAPV_VERSION" -capa "$CAPA_VERSION" \
  -cert-manager "$CERT_MANAGER_VERSION" 2> >(grep -v '^# Warning: ' >&2)
printf '%s' "$STAMP" > "$TMP/$MARKER"
chmod 755 "$TMP"

publish_dir "$TMP" "$DEST" "$PARENT" "$NAME"
trap - EXIT
log "CRDs ready in $DEST"
printf '%s\n' "$DEST"
