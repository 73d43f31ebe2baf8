#!/usr/bin/env bash
# End-to-end check of the recipe in tools/clusterctl/NOTES.md: runs the real `clusterctl move`
# between two bare local API servers (etcd + kube-apiserver, CAPI/CAPD CRDs only, no controllers,
# no webhooks) and checks that a docker cluster's object graph arrived in the target.
#
#   tools/clusterctl/verify-move.sh [WORK_DIR]
#
# Environment:
#   VERIFY_PROVIDERS = both (default) | none | source-only
#       which API servers get the clusterctl Provider inventory objects (source-only must fail the
#       target-provider pre-check; the script then expects that failure).
#   KEEP=1   leave the API servers running (stop them with: two-apiservers.sh down WORK_DIR/servers).
#   NS, CLUSTER  namespace and Cluster name (default: move-test, c1).
#   WARM=0   skip the watch-cache warm-up before the move (see NOTES.md "Timing": a cold server
#            adds ~1 s per CRD type to the move).
#   CLUSTERCTL_V=N  clusterctl log verbosity (default 1; 5 shows every object and retry).
#
# Prints `verify-move: OK ...` on success; exits non-zero otherwise. Every process it starts is
# stopped on exit unless KEEP=1.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOOLS_DIR="$(cd "$HERE/.." && pwd)"
log() { printf 'verify-move: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

PROVIDERS_MODE="${VERIFY_PROVIDERS:-both}"
NS="${NS:-move-test}"
CLUSTER="${CLUSTER:-c1}"
WORK="${1:-$(mktemp -d /tmp/cairn-clusterctl-move.XXXXXX)}"
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"

version_of() { sed -n "s/^$1=//p" "$TOOLS_DIR/versions.env"; }
CAPI_VERSION="$(version_of CAPI_VERSION)"
CAPD_VERSION="$(version_of CAPD_VERSION)"
K8S_VERSION="$(version_of K8S_VERSION)"

CLUSTERCTL="$("$TOOLS_DIR/build-clusterctl.sh")"
ASSETS="$("$TOOLS_DIR/build-assets.sh")"
CRDS="$("$TOOLS_DIR/fetch-crds.sh")"
export KUBEBUILDER_ASSETS="$ASSETS"
KUBECTL="$ASSETS/kubectl"

SERVERS="$WORK/servers"
cleanup() {
  if [[ "${KEEP:-0}" != 1 ]]; then
    "$HERE/two-apiservers.sh" down "$SERVERS" || true
  else
    log "KEEP=1: servers left running; stop them with: $HERE/two-apiservers.sh down $SERVERS"
  fi
}
trap cleanup EXIT
"$HERE/two-apiservers.sh" up "$SERVERS" src dst >/dev/null
SRC="$SERVERS/src/kubeconfig"
DST="$SERVERS/dst/kubeconfig"
ks() { "$KUBECTL" --kubeconfig "$SRC" "$@"; }
kd() { "$KUBECTL" --kubeconfig "$DST" "$@"; }

# 1. CRDs: core CAPI, kubeadm bootstrap, kubeadm control plane, CAPD -- as `clusterctl init` labels them.
#    Plus clusterctl's own inventory CRD (providers.clusterctl.cluster.x-k8s.io) from the module,
#    labelled clusterctl.cluster.x-k8s.io/core=inventory exactly as clusterctl installs it
#    (inventory.go:EnsureCustomResourceDefinitions; clusterctl would create it itself if missing).
CAPI_DIR="$(go list -C "$HERE" -m -f '{{.Dir}}' sigs.k8s.io/cluster-api)"
[[ -n "$CAPI_DIR" ]] || { go mod download -C "$HERE" sigs.k8s.io/cluster-api; CAPI_DIR="$(go list -C "$HERE" -m -f '{{.Dir}}' sigs.k8s.io/cluster-api)"; }
INVENTORY_CRD="$CAPI_DIR/cmd/clusterctl/config/manifest/clusterctl-api.yaml"
for k in ks kd; do
  for p in cluster-api bootstrap-kubeadm control-plane-kubeadm infrastructure-docker; do
    $k apply --server-side -f "$CRDS/$p/" >/dev/null
  done
  $k apply --server-side -f "$INVENTORY_CRD" >/dev/null
  $k label --overwrite crd providers.clusterctl.cluster.x-k8s.io clusterctl.cluster.x-k8s.io/core=inventory >/dev/null
  $k wait --for condition=established --timeout=60s crd --all >/dev/null
done
log "CRDs installed in src and dst"

# 2. Provider inventory, as `clusterctl init` would write it (repository/components.go:InventoryObject).
providers_yaml() {
  local name ptype pname ns version
  while read -r name ptype pname ns version; do
    cat <<EOF
---
apiVersion: v1
kind: Namespace
metadata:
  name: $ns
---
apiVersion: clusterctl.cluster.x-k8s.io/v1alpha3
kind: Provider
metadata:
  name: $name
  namespace: $ns
  labels:
    clusterctl.cluster.x-k8s.io: ""
    clusterctl.cluster.x-k8s.io/core: inventory
    cluster.x-k8s.io/provider: $name
providerName: $pname
type: $ptype
version: $version
EOF
  done <<EOF
cluster-api CoreProvider cluster-api capi-system $CAPI_VERSION
bootstrap-kubeadm BootstrapProvider kubeadm capi-kubeadm-bootstrap-system $CAPI_VERSION
control-plane-kubeadm ControlPlaneProvider kubeadm capi-kubeadm-control-plane-system $CAPI_VERSION
infrastructure-docker InfrastructureProvider docker capd-system $CAPD_VERSION
EOF
}
providers_yaml > "$WORK/providers.yaml"
case "$PROVIDERS_MODE" in
  both) ks apply -f "$WORK/providers.yaml" >/dev/null; kd apply -f "$WORK/providers.yaml" >/dev/null ;;
  source-only) ks apply -f "$WORK/providers.yaml" >/dev/null ;;
  none) ;;
  *) die "VERIFY_PROVIDERS must be both, none or source-only" ;;
esac
log "provider inventory: $PROVIDERS_MODE"

# 3. A docker cluster's object graph in the source, with the ownerReferences and finalizers the
#    CAPI/CAPD controllers would set (UIDs read back after each create) and the statuses move's
#    pre-checks read.
uid() { ks get "$1" "$2" -n "$NS" -o jsonpath='{.metadata.uid}'; }
owner() { # owner APIVERSION KIND NAME UID CONTROLLER
  printf -- '- {apiVersion: %s, kind: %s, name: %s, uid: %s, controller: %s, blockOwnerDeletion: true}\n' "$@"
}
NOW="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
M="$CLUSTER-control-plane-abcde"
ks create namespace "$NS" >/dev/null
ks apply -f - >/dev/null <<EOF
apiVersion: cluster.x-k8s.io/v1beta2
kind: Cluster
metadata:
  name: $CLUSTER
  namespace: $NS
  finalizers: [cluster.cluster.x-k8s.io]
spec:
  clusterNetwork:
    pods: {cidrBlocks: [192.168.0.0/16]}
    services: {cidrBlocks: [10.128.0.0/12]}
  controlPlaneEndpoint: {host: 172.18.0.3, port: 6443}
  controlPlaneRef: {apiGroup: controlplane.cluster.x-k8s.io, kind: KubeadmControlPlane, name: $CLUSTER-control-plane}
  infrastructureRef: {apiGroup: infrastructure.cluster.x-k8s.io, kind: DockerCluster, name: $CLUSTER}
EOF
CLUSTER_UID="$(uid cluster.cluster.x-k8s.io "$CLUSTER")"
CLUSTER_OWNER="ownerReferences:
$(owner cluster.x-k8s.io/v1beta2 Cluster "$CLUSTER" "$CLUSTER_UID" true | sed 's/^/  /')"
CLUSTER_OWNER_NC="ownerReferences:
$(owner cluster.x-k8s.io/v1beta2 Cluster "$CLUSTER" "$CLUSTER_UID" false | sed 's/^/  /')"
ks apply -f - >/dev/null <<EOF
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: DockerCluster
metadata:
  name: $CLUSTER
  namespace: $NS
  labels: {cluster.x-k8s.io/cluster-name: $CLUSTER}
  finalizers: [dockercluster.infrastructure.cluster.x-k8s.io]
  $CLUSTER_OWNER
spec:
  controlPlaneEndpoint: {host: 172.18.0.3, port: 6443}
---
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: DockerMachineTemplate
metadata:
  name: $CLUSTER-control-plane
  namespace: $NS
  $CLUSTER_OWNER_NC
spec:
  template:
    spec:
      extraMounts: [{containerPath: /var/run/docker.sock, hostPath: /var/run/docker.sock}]
---
apiVersion: controlplane.cluster.x-k8s.io/v1beta2
kind: KubeadmControlPlane
metadata:
  name: $CLUSTER-control-plane
  namespace: $NS
  labels: {cluster.x-k8s.io/cluster-name: $CLUSTER}
  finalizers: [kubeadm.controlplane.cluster.x-k8s.io]
  $CLUSTER_OWNER
spec:
  replicas: 1
  version: $K8S_VERSION
  machineTemplate:
    spec:
      infrastructureRef: {apiGroup: infrastructure.cluster.x-k8s.io, kind: DockerMachineTemplate, name: $CLUSTER-control-plane}
  kubeadmConfigSpec:
    clusterConfiguration:
      apiServer:
        certSANs: [localhost, 127.0.0.1]
---
apiVersion: v1
kind: Secret
metadata:
  name: $CLUSTER-ca
  namespace: $NS
  labels: {cluster.x-k8s.io/cluster-name: $CLUSTER}
type: cluster.x-k8s.io/secret
stringData: {tls.crt: fake, tls.key: fake}
---
apiVersion: v1
kind: Secret
metadata:
  name: unrelated
  namespace: $NS
stringData: {k: v}
EOF
KCP_UID="$(uid kubeadmcontrolplane.controlplane.cluster.x-k8s.io "$CLUSTER-control-plane")"
KCP_OWNER="ownerReferences:
$(owner controlplane.cluster.x-k8s.io/v1beta2 KubeadmControlPlane "$CLUSTER-control-plane" "$KCP_UID" true | sed 's/^/  /')"
ks apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Secret
metadata:
  name: $CLUSTER-kubeconfig
  namespace: $NS
  labels: {cluster.x-k8s.io/cluster-name: $CLUSTER}
  $KCP_OWNER
type: cluster.x-k8s.io/secret
stringData: {value: "apiVersion: v1\nkind: Config\n"}
---
apiVersion: cluster.x-k8s.io/v1beta2
kind: Machine
metadata:
  name: $M
  namespace: $NS
  labels: {cluster.x-k8s.io/cluster-name: $CLUSTER, cluster.x-k8s.io/control-plane: "", cluster.x-k8s.io/control-plane-name: $CLUSTER-control-plane}
  finalizers: [machine.cluster.x-k8s.io]
  $KCP_OWNER
spec:
  clusterName: $CLUSTER
  version: $K8S_VERSION
  bootstrap:
    configRef: {apiGroup: bootstrap.cluster.x-k8s.io, kind: KubeadmConfig, name: $M}
    dataSecretName: $M
  infrastructureRef: {apiGroup: infrastructure.cluster.x-k8s.io, kind: DockerMachine, name: $M}
EOF
MACHINE_UID="$(uid machine.cluster.x-k8s.io "$M")"
MACHINE_OWNER="ownerReferences:
$(owner cluster.x-k8s.io/v1beta2 Machine "$M" "$MACHINE_UID" true | sed 's/^/  /')"
ks apply -f - >/dev/null <<EOF
apiVersion: bootstrap.cluster.x-k8s.io/v1beta2
kind: KubeadmConfig
metadata:
  name: $M
  namespace: $NS
  labels: {cluster.x-k8s.io/cluster-name: $CLUSTER}
  $MACHINE_OWNER
spec:
  format: cloud-config
---
apiVersion: infrastructure.cluster.x-k8s.io/v1beta2
kind: DockerMachine
metadata:
  name: $M
  namespace: $NS
  labels: {cluster.x-k8s.io/cluster-name: $CLUSTER}
  finalizers: [dockermachine.infrastructure.cluster.x-k8s.io]
  $MACHINE_OWNER
spec:
  providerID: docker:////$M
EOF
KC_UID="$(uid kubeadmconfig.bootstrap.cluster.x-k8s.io "$M")"
ks apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Secret
metadata:
  name: $M
  namespace: $NS
  labels: {cluster.x-k8s.io/cluster-name: $CLUSTER}
  ownerReferences:
  - {apiVersion: bootstrap.cluster.x-k8s.io/v1beta2, kind: KubeadmConfig, name: $M, uid: $KC_UID, controller: true}
type: cluster.x-k8s.io/secret
stringData: {value: "#cloud-config", format: cloud-config}
EOF

# Statuses, through the status subresource (the only way without controllers). These are exactly
# the fields mover.go:checkProvisioningCompleted reads.
ks patch cluster.cluster.x-k8s.io "$CLUSTER" -n "$NS" --subresource=status --type=merge -p "{\"status\":{
  \"initialization\":{\"infrastructureProvisioned\":true,\"controlPlaneInitialized\":true},
  \"conditions\":[{\"type\":\"ControlPlaneInitialized\",\"status\":\"True\",\"reason\":\"Initialized\",\"message\":\"\",\"lastTransitionTime\":\"$NOW\"}]}}" >/dev/null
ks patch machine.cluster.x-k8s.io "$M" -n "$NS" --subresource=status --type=merge \
  -p "{\"status\":{\"nodeRef\":{\"name\":\"$M\"}}}" >/dev/null
log "source object graph created in namespace $NS"

# Expected to move: everything above except the Secret "unrelated".
EXPECTED=(
  "cluster.cluster.x-k8s.io/$CLUSTER"
  "dockercluster.infrastructure.cluster.x-k8s.io/$CLUSTER"
  "dockermachinetemplate.infrastructure.cluster.x-k8s.io/$CLUSTER-control-plane"
  "kubeadmcontrolplane.controlplane.cluster.x-k8s.io/$CLUSTER-control-plane"
  "machine.cluster.x-k8s.io/$M"
  "kubeadmconfig.bootstrap.cluster.x-k8s.io/$M"
  "dockermachine.infrastructure.cluster.x-k8s.io/$M"
  "secret/$CLUSTER-kubeconfig"
  "secret/$CLUSTER-ca"
  "secret/$M"
)

# 4. The move. No network: the version check is off (env var, and the same key in the config
#    file); the config file is explicit and XDG_CONFIG_HOME/HOME point into WORK, so no
#    ~/.cluster-api or ~/.config/cluster-api file is read or written.
printf 'CLUSTERCTL_DISABLE_VERSIONCHECK: "true"\n' > "$WORK/clusterctl.yaml"
# Warm-up: on a fresh kube-apiserver the first LIST of each CRD resource answers
# `429 Retry-After: 1` while that resource's watch cache initialises (client-go then waits 1 s),
# which adds ~20 s to the first move out of (or into) a fresh server. List every type move
# discovers once, in both servers, so the timed move measures clusterctl and not the cache warm-up.
warm() { # warm KUBECONFIG
  local kc="$1"
  { "$KUBECTL" --kubeconfig "$kc" get crd -l clusterctl.cluster.x-k8s.io -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}'
    printf '%s\n' secrets configmaps namespaces providers.clusterctl.cluster.x-k8s.io; } \
    | xargs -P 8 -I{} "$KUBECTL" --kubeconfig "$kc" get {} -A -o name >/dev/null
}
if [[ "${WARM:-1}" == 1 ]]; then
  wstart=$(date +%s.%N)
  warm "$SRC" & w1=$!
  warm "$DST" & w2=$!
  wait "$w1"; wait "$w2"
  log "warmed the watch caches of both servers in $(awk -v a="$wstart" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s (WARM=0 to skip)"
fi
mkdir -p "$WORK/home"
start=$(date +%s.%N)
# Each log line is prefixed with the seconds since the start (clusterctl's own log has no times).
set +e
env HOME="$WORK/home" XDG_CONFIG_HOME="$WORK/home/.config" CLUSTERCTL_DISABLE_VERSIONCHECK=true \
  "$CLUSTERCTL" move --config "$WORK/clusterctl.yaml" --kubeconfig "$SRC" --to-kubeconfig "$DST" \
  --namespace "$NS" -v "${CLUSTERCTL_V:-1}" 2>&1 \
  | while IFS= read -r line; do
      printf '%7.3f %s\n' "$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{print b-a}')" "$line"
    done > "$WORK/move.log"
rc="${PIPESTATUS[0]}"
set -e
end=$(date +%s.%N)
secs="$(awk -v a="$start" -v b="$end" 'BEGIN{printf "%.2f", b-a}')"
sed 's/^/  | /' "$WORK/move.log" >&2

if [[ "$PROVIDERS_MODE" == source-only ]]; then
  (( rc != 0 )) || die "move succeeded although the target has no providers"
  grep -q 'not found in the target cluster' "$WORK/move.log" || die "move failed for another reason"
  ks get cluster.cluster.x-k8s.io "$CLUSTER" -n "$NS" >/dev/null || die "source Cluster is gone"
  log "OK: move refused as expected (source has providers, target has none) in ${secs}s; nothing was paused or moved"
  exit 0
fi
(( rc == 0 )) || die "clusterctl move failed (exit $rc); log: $WORK/move.log"

# 5. Checks.
for o in "${EXPECTED[@]}"; do
  kd get "$o" -n "$NS" >/dev/null 2>&1 || die "$o did not arrive in the target"
  if ks get "$o" -n "$NS" >/dev/null 2>&1; then die "$o is still in the source"; fi
done
kd get secret unrelated -n "$NS" >/dev/null 2>&1 && die "Secret unrelated was moved"
ks get secret unrelated -n "$NS" >/dev/null || die "Secret unrelated vanished from the source"
# ownerReferences point at the target's new UIDs.
T_CLUSTER_UID="$(kd get cluster.cluster.x-k8s.io "$CLUSTER" -n "$NS" -o jsonpath='{.metadata.uid}')"
T_KCP_UID="$(kd get kubeadmcontrolplane.controlplane.cluster.x-k8s.io "$CLUSTER-control-plane" -n "$NS" -o jsonpath='{.metadata.uid}')"
[[ "$T_CLUSTER_UID" != "$CLUSTER_UID" ]] || die "target Cluster kept the source UID"
[[ "$(kd get kubeadmcontrolplane.controlplane.cluster.x-k8s.io "$CLUSTER-control-plane" -n "$NS" -o jsonpath='{.metadata.ownerReferences[0].uid}')" == "$T_CLUSTER_UID" ]] \
  || die "KCP ownerReference not rebuilt"
[[ "$(kd get machine.cluster.x-k8s.io "$M" -n "$NS" -o jsonpath='{.metadata.ownerReferences[0].uid}')" == "$T_KCP_UID" ]] \
  || die "Machine ownerReference not rebuilt"
[[ -z "$(kd get cluster.cluster.x-k8s.io "$CLUSTER" -n "$NS" -o jsonpath='{.spec.paused}')" ]] || die "target Cluster is still paused"
# Status is a subresource: not copied.
[[ -z "$(kd get machine.cluster.x-k8s.io "$M" -n "$NS" -o jsonpath='{.status.nodeRef.name}')" ]] \
  || log "note: target Machine has status.nodeRef (unexpected: status is not expected to be copied)"
log "OK: ${#EXPECTED[@]} objects moved from src to dst in ${secs}s (providers: $PROVIDERS_MODE); 'unrelated' stayed; ownerRefs rebuilt; target unpaused"
log "move log: $WORK/move.log"
