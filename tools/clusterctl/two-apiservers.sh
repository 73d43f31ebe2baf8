#!/usr/bin/env bash
# Starts (and stops) bare local API servers -- etcd + kube-apiserver each, no controllers, no
# webhooks -- the way controller-runtime's envtest and cairn's src/local/apiserver.rs do, for
# running `clusterctl move` between them.
#
#   tools/clusterctl/two-apiservers.sh up   DIR [NAME...]   # default names: src dst; prints DIR
#   tools/clusterctl/two-apiservers.sh down DIR             # stops every server started in DIR
#
# For each NAME: DIR/NAME/kubeconfig (admin client certificate in system:masters, context NAME),
# DIR/NAME/pki/ (openssl-made CA, serving cert for 127.0.0.1/localhost, client CA, admin cert,
# service-account key pair), DIR/NAME/etcd/ (data), DIR/NAME/{etcd,kube-apiserver}.{log,pid}.
# `up` returns once every server answers /readyz and has the `default` namespace. Processes run
# detached (setsid) and are stopped only by the pids recorded in DIR (`down`, also on a failed `up`).
#
# Binaries: $KUBEBUILDER_ASSETS/{etcd,kube-apiserver,kubectl}, else `tools/build-assets.sh`.
set -euo pipefail

TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { printf 'two-apiservers: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# stop_pidfile FILE BINARY: kill the process recorded in FILE if it still runs BINARY.
stop_pidfile() {
  local f="$1" bin="$2" pid exe i
  [[ -f "$f" ]] || return 0
  pid="$(cat "$f")"
  if [[ "$pid" =~ ^[0-9]+$ ]] && exe="$(readlink "/proc/$pid/exe" 2>/dev/null)" && [[ "$(basename "$exe")" == "$bin" ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

down() {
  local dir="$1" d
  for d in "$dir"/*/; do
    [[ -d "$d" ]] || continue
    stop_pidfile "$d/kube-apiserver.pid" kube-apiserver
    stop_pidfile "$d/etcd.pid" etcd
  done
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# pki DIR: envtest-style PKI.
pki() {
  local d="$1"
  mkdir -p "$d"
  (
    cd "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 365 \
      -subj "/CN=cairn-local-ca" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout serving.key -out serving.csr -subj "/CN=localhost" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' > serving.ext
    openssl x509 -req -in serving.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out serving.crt -days 365 \
      -extfile serving.ext 2>/dev/null
    openssl req -x509 -newkey rsa:2048 -nodes -keyout client-ca.key -out client-ca.crt -days 365 \
      -subj "/CN=cairn-local-client-ca" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=admin" 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' > admin.ext
    openssl x509 -req -in admin.csr -CA client-ca.crt -CAkey client-ca.key -CAcreateserial -out admin.crt -days 365 \
      -extfile admin.ext 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    rm -f ./*.csr ./*.ext ./*.srl
  )
}

start_one() {
  local name="$1" d="$2" etcd_port port
  mkdir -p "$d"
  pki "$d/pki"
  etcd_port="$(free_port)"
  port="$(free_port)"
  # etcd uses "$etcd_port" only; its peer listener is localhost:0, as envtest does.
  setsid "$ASSETS/etcd" --data-dir="$d/etcd" --name="$name" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls=http://localhost:0 --unsafe-no-fsync=true \
    </dev/null >"$d/etcd.log" 2>&1 &
  echo $! > "$d/etcd.pid"
  setsid "$ASSETS/kube-apiserver" --etcd-servers="http://127.0.0.1:$etcd_port" \
    --cert-dir="$d/pki" --tls-cert-file="$d/pki/serving.crt" --tls-private-key-file="$d/pki/serving.key" \
    --secure-port="$port" --bind-address=127.0.0.1 --service-cluster-ip-range=10.0.0.0/24 \
    --allow-privileged=true --disable-admission-plugins=ServiceAccount --authorization-mode=RBAC \
    --service-account-issuer="https://127.0.0.1:$port/" --service-account-key-file="$d/pki/sa.pub" \
    --service-account-signing-key-file="$d/pki/sa.key" --client-ca-file="$d/pki/client-ca.crt" \
    --endpoint-reconciler-type=none \
    </dev/null >"$d/kube-apiserver.log" 2>&1 &
  echo $! > "$d/kube-apiserver.pid"
  cat > "$d/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $name
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority-data: $(base64 -w0 < "$d/pki/ca.crt")
users:
- name: $name-admin
  user:
    client-certificate-data: $(base64 -w0 < "$d/pki/admin.crt")
    client-key-data: $(base64 -w0 < "$d/pki/admin.key")
contexts:
- name: $name
  context:
    cluster: $name
    user: $name-admin
    namespace: default
current-context: $name
EOF
  chmod 600 "$d/kubeconfig"
}

wait_ready() {
  local name="$1" d="$2" i
  for i in $(seq 1 600); do
    kill -0 "$(cat "$d/etcd.pid")" 2>/dev/null || { tail -20 "$d/etcd.log" >&2; return 1; }
    kill -0 "$(cat "$d/kube-apiserver.pid")" 2>/dev/null || { tail -20 "$d/kube-apiserver.log" >&2; return 1; }
    if "$ASSETS/kubectl" --kubeconfig "$d/kubeconfig" get --raw /readyz >/dev/null 2>&1 \
      && "$ASSETS/kubectl" --kubeconfig "$d/kubeconfig" get namespace default >/dev/null 2>&1; then
      log "$name ready: $(sed -n 's/^ *server: //p' "$d/kubeconfig")"
      return 0
    fi
    sleep 0.2
  done
  log "$name not ready after 120s"
  return 1
}

cmd="${1:-}"
dir="${2:-}"
[[ -n "$cmd" && -n "$dir" ]] || die "usage: $0 up|down DIR [NAME...]"
case "$cmd" in
  down)
    [[ -d "$dir" ]] || exit 0
    down "$dir"
    log "stopped servers in $dir"
    ;;
  up)
    shift 2
    names=("$@")
    (( ${#names[@]} > 0 )) || names=(src dst)
    if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "$KUBEBUILDER_ASSETS/kube-apiserver" ]]; then
      ASSETS="$KUBEBUILDER_ASSETS"
    else
      ASSETS="$("$TOOLS_DIR/build-assets.sh")"
    fi
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    trap 'down "$dir"' ERR INT TERM
    for n in "${names[@]}"; do
      [[ ! -e "$dir/$n/etcd.pid" ]] || die "$dir/$n already has running servers (run: $0 down $dir)"
      rm -rf "${dir:?}/$n"
      start_one "$n" "$dir/$n"
    done
    for n in "${names[@]}"; do
      wait_ready "$n" "$dir/$n"
    done
    trap - ERR INT TERM
    printf '%s\n' "$dir"
    ;;
  *) die "unknown command '$cmd' (up|down)" ;;
esac
