#!/usr/bin/env bash
# The real local test stack, on loopback only:
#   kube-apiserver v1.20.2 (built once from Debian's kubernetes source package,
#   cached) + etcd-server, RBAC, a token-file admin, a service-account signing
#   key, OIDC discovery; and a moto server for IAM/STS/EKS.
#
#   scripts/stack.sh install   # packages, apiserver build (cached), moto venv
#   scripts/stack.sh up        # start (idempotent), write kubeconfig and env file
#   scripts/stack.sh down      # stop
#   scripts/stack.sh status
#
# Everything lives under $RUNNER_IDENTITY_CACHE (default ~/.cache/runner-identity):
# the built binary, the venv, and stack/ with certificates, data and logs.
set -euo pipefail

CACHE=${RUNNER_IDENTITY_CACHE:-$HOME/.cache/runner-identity}
STATE=$CACHE/stack
K8S_VERSION=1.20.2
# The suffix names the patches below: a binary built without them is never reused.
APISERVER=$CACHE/kube-apiserver-v$K8S_VERSION-ri2
APT=$CACHE/apt
VENV=$CACHE/venv
ETCD_PORT=${RI_ETCD_PORT:-23790}
ETCD_PEER_PORT=${RI_ETCD_PEER_PORT:-23800}
API_PORT=${RI_API_PORT:-16443}
MOTO_PORT=${RI_MOTO_PORT:-15000}
SERVER=https://127.0.0.1:$API_PORT
# The instance metadata service, for everything run with the stack's env: a
# loopback port nothing listens on, so no request ever leaves this machine
# (never 169.254.169.254).
IMDS_FAKE=http://127.0.0.1:${RI_IMDS_PORT:-1}

log() { printf '[stack] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} = 0 ] && return 0
  log "installing ${missing[*]}"
  as_root apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q "${missing[@]}" >/dev/null
}

# A private apt configuration under $APT: the machine's own Debian sources
# with deb-src entries added, its own package lists and cache. The system's
# sources are never changed.
private_apt() {
  local src=/etc/apt/sources.list.d/debian.sources
  [ -f "$src" ] || die "no $src (Debian deb822 sources) to derive a private apt configuration from"
  if [ ! -f "$APT/sources/debian.sources" ]; then
    mkdir -p "$APT/sources" "$APT/lists/partial" "$APT/cache/archives/partial"
    { cat "$src"; printf '\n'; sed 's/^Types: deb$/Types: deb-src/' "$src"; } >"$APT/sources/debian.sources"
  fi
  apt-get -q -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$APT/sources" \
    -o Dir::State::Lists="$APT/lists" -o Dir::Cache="$APT/cache" "$@"
}

# The private configuration's package lists, fetched once.
private_apt_lists() {
  compgen -G "$APT/lists/*Sources*" >/dev/null && return 0
  log "fetching package lists into the private apt configuration $APT"
  private_apt update >/dev/null || die "apt-get update of the private configuration in $APT failed"
}

# Two vendored defects of v1.20.2 that Debian's Go 1.19 exposes:
# - github.com/modern-go/reflect2 v1.0.1 crashes (SIGSEGV in
#   UnsafeMapType.UnsafeIterate <- mapiterinit) on Go >= 1.18: replaced by
#   v1.0.2 from Debian's golang-github-modern-go-reflect2-dev;
# - the OpenAPI type validator treats "" as null since Go 1.19
#   (reflect.DeepEqual of a reflect.Value with the zero Value), which rejects
#   ARC's CRDs and any custom resource holding "": `if data == nil {`, as
#   current kube-openapi has it.
patch_sources() { # tree
  local tree=$1 deb_dir=$CACHE/src/reflect2
  if ! grep -qs 'go1.18' "$tree/vendor/github.com/modern-go/reflect2/"*.go; then
    log "replacing vendored reflect2 v1.0.1 by Debian's v1.0.2"
    rm -rf "$deb_dir" && mkdir -p "$deb_dir"
    private_apt_lists
    (cd "$deb_dir" && private_apt download golang-github-modern-go-reflect2-dev >/dev/null) \
      || die "apt-get download golang-github-modern-go-reflect2-dev failed"
    dpkg -x "$deb_dir"/golang-github-modern-go-reflect2-dev_*.deb "$deb_dir/root"
    local new=$deb_dir/root/usr/share/gocode/src/github.com/modern-go/reflect2
    grep -qs 'go1.18' "$new"/*.go || die "the reflect2 package holds no Go 1.18 support: $new"
    rm -f "$tree/vendor/github.com/modern-go/reflect2/"*.go "$tree/vendor/github.com/modern-go/reflect2/"*.s
    cp "$new"/*.go "$new"/*.s "$tree/vendor/github.com/modern-go/reflect2/"
    rm -f "$tree/vendor/github.com/modern-go/reflect2/"*_test.go
  fi
  local f
  for f in vendor/k8s.io/kube-openapi/pkg/validation/validate/type.go vendor/github.com/go-openapi/validate/type.go; do
    sed -i 's/if data == nil || reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data)), reflect.ValueOf(data)) {/if data == nil {/' "$tree/$f"
    grep -q 'if data == nil {' "$tree/$f" || die "could not patch the type validator in $f"
    if grep -q 'reflect.DeepEqual(reflect.Zero(reflect.TypeOf(data))' "$tree/$f"; then
      die "the type validator in $f still compares with the zero value"
    fi
  done
}

build_apiserver() {
  if [ -x "$APISERVER" ]; then log "kube-apiserver v$K8S_VERSION cached at $APISERVER"; return 0; fi
  apt_install golang-go dpkg-dev rsync make
  local src=$CACHE/src
  mkdir -p "$src"
  local tree
  tree=$(find "$src" -maxdepth 1 -type d -name "kubernetes-*$K8S_VERSION*" | head -n1)
  if [ -z "$tree" ]; then
    log "fetching Debian's kubernetes source package"
    private_apt_lists
    (cd "$src" && private_apt source kubernetes >/dev/null 2>&1) || die "apt-get source kubernetes failed"
    tree=$(find "$src" -maxdepth 1 -type d -name "kubernetes-*$K8S_VERSION*" | head -n1)
  fi
  [ -n "$tree" ] || die "the kubernetes source package is not version $K8S_VERSION"
  patch_sources "$tree"
  log "building kube-apiserver (about 6 to 9 minutes on 2 cores)"
  local start=$SECONDS
  (
    cd "$tree"
    mkdir -p .go/src/k8s.io
    [ -L .go/src/k8s.io/kubernetes ] || ln -s ../../.. .go/src/k8s.io/kubernetes
    GOPATH=$PWD/.go CGO_ENABLED=0 make WHAT=cmd/kube-apiserver >"$CACHE/apiserver-build.log" 2>&1
  ) || die "kube-apiserver build failed; see $CACHE/apiserver-build.log"
  cp "$tree/_output/bin/kube-apiserver" "$APISERVER.tmp" && mv "$APISERVER.tmp" "$APISERVER"
  log "built kube-apiserver in $((SECONDS - start)) s"
}

install_moto() {
  if [ -x "$VENV/bin/moto_server" ]; then return 0; fi
  log "installing moto[server] into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'moto[server]' >/dev/null
}

# Debian's busybox-static for arm64, for the arm64 image (the machine's
# architecture stays amd64: the package lists of arm64 are fetched into a
# private apt state of their own, the system's are never changed), and
# qemu-user-static to run arm64 programs in the tests.
install_arm64_busybox() {
  local dest=$CACHE/busybox/arm64/busybox
  [ -x "$dest" ] && return 0
  local state=$CACHE/apt-arm64
  mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$state/sources" "$(dirname "$dest")"
  cp /etc/apt/sources.list.d/debian.sources "$state/sources/"
  local opts=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$state/sources"
    -o Dir::State::Lists="$state/lists" -o Dir::Cache="$state/cache"
    -o Dir::State::status=/dev/null -o APT::Architecture=arm64 -o APT::Architectures::=arm64)
  log "fetching busybox-static for arm64"
  apt-get -q "${opts[@]}" update >/dev/null || die "apt-get update for arm64 failed"
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get -q "${opts[@]}" download busybox-static:arm64 >/dev/null 2>&1) \
    || die "apt-get download busybox-static:arm64 failed"
  dpkg-deb -x "$tmp"/busybox-static_*_arm64.deb "$tmp/x"
  install -m 0755 "$tmp/x/bin/busybox" "$dest"
  rm -rf "$tmp"
}

install() {
  mkdir -p "$CACHE"
  apt_install etcd-server openssl curl musl-tools busybox-static strace umoci skopeo buildah \
    docker-registry qemu-user-static
  install_arm64_busybox
  command -v kubectl >/dev/null || apt_install kubernetes-client
  build_apiserver
  install_moto
}

alive() { [ -f "$STATE/$1.pid" ] && kill -0 "$(cat "$STATE/$1.pid")" 2>/dev/null; }

start() { # name, command...
  local name=$1; shift
  alive "$name" && return 0
  setsid nohup "$@" >"$STATE/$name.log" 2>&1 < /dev/null &
  echo $! >"$STATE/$name.pid"
}

certs() {
  local d=$STATE/pki
  [ -f "$d/apiserver.crt" ] && return 0
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=runner-identity-test-ca" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$d/apiserver.key" -out "$d/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n' >"$d/san.ext"
  openssl x509 -req -in "$d/apiserver.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 3650 -extfile "$d/san.ext" -out "$d/apiserver.crt" 2>/dev/null
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
  # The admin token is random per stack; it lives only in the state directory.
  openssl rand -hex 24 >"$d/admin-token"
  printf '%s,admin,admin,"system:masters"\n' "$(cat "$d/admin-token")" >"$d/tokens.csv"
  chmod 600 "$d"/*.key "$d/admin-token" "$d/tokens.csv"
}

wait_ready() {
  local token; token=$(cat "$STATE/pki/admin-token")
  for _ in $(seq 1 240); do
    if curl -sf --cacert "$STATE/pki/ca.crt" -H "Authorization: Bearer $token" "$SERVER/readyz" >/dev/null 2>&1; then
      return 0
    fi
    alive apiserver || die "kube-apiserver exited; see $STATE/apiserver.log"
    sleep 0.5
  done
  die "kube-apiserver not ready after 120 s; see $STATE/apiserver.log"
}

up() {
  [ -x "$APISERVER" ] || die "kube-apiserver not built: run scripts/stack.sh install"
  [ -x "$VENV/bin/moto_server" ] || die "moto not installed: run scripts/stack.sh install"
  mkdir -p "$STATE"
  local start_s=$SECONDS
  certs
  start etcd etcd --name runner-identity --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "runner-identity=http://127.0.0.1:$ETCD_PEER_PORT"
  cat >"$STATE/audit-policy.yaml" <<'EOF'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
EOF
  local p=$STATE/pki
  start apiserver "$APISERVER" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" --insecure-port 0 \
    --tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" --client-ca-file "$p/ca.crt" \
    --token-auth-file "$p/tokens.csv" --authorization-mode RBAC \
    --service-account-issuer "$SERVER" --service-account-signing-key-file "$p/sa.key" \
    --service-account-key-file "$p/sa.pub" \
    --api-audiences "https://kubernetes.default.svc,sts.amazonaws.com" \
    --service-cluster-ip-range 10.96.0.0/24 \
    --audit-policy-file "$STATE/audit-policy.yaml" --audit-log-path "$STATE/audit.log" \
    --audit-log-maxsize 200 --audit-log-maxbackup 1
  # AWS managed policies (arn:aws:iam::aws:policy/...) exist in moto only when loaded.
  MOTO_IAM_LOAD_MANAGED_POLICIES=true start moto "$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT"
  wait_ready
  for _ in $(seq 1 60); do
    curl -sf "http://127.0.0.1:$MOTO_PORT/moto-api/" >/dev/null 2>&1 && break
    alive moto || die "moto exited; see $STATE/moto.log"
    sleep 0.5
  done
  write_kubeconfig
  cat >"$STATE/env" <<EOF
KUBECONFIG=$STATE/kubeconfig
RUNNER_IDENTITY_KUBECONFIG=$STATE/kubeconfig
RUNNER_IDENTITY_STACK=$STATE
RUNNER_IDENTITY_ISSUER=$SERVER
RUNNER_IDENTITY_AUDIT_LOG=$STATE/audit.log
AWS_ENDPOINT_URL=http://127.0.0.1:$MOTO_PORT
AWS_REGION=us-east-1
AWS_EC2_METADATA_SERVICE_ENDPOINT=$IMDS_FAKE
EOF
  log "stack ready in $((SECONDS - start_s)) s: apiserver $SERVER, moto http://127.0.0.1:$MOTO_PORT; env in $STATE/env"
}

write_kubeconfig() {
  local ca; ca=$(base64 -w0 <"$STATE/pki/ca.crt")
  umask 077
  cat >"$STATE/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: runner-identity-test
    cluster:
      server: $SERVER
      certificate-authority-data: $ca
users:
  - name: admin
    user:
      token: $(cat "$STATE/pki/admin-token")
contexts:
  - name: runner-identity-test
    context: {cluster: runner-identity-test, user: admin}
current-context: runner-identity-test
EOF
}

down() {
  for name in moto apiserver etcd; do
    if alive "$name"; then
      kill "$(cat "$STATE/$name.pid")" 2>/dev/null || true
      for _ in $(seq 1 40); do alive "$name" || break; sleep 0.25; done
      alive "$name" && kill -9 "$(cat "$STATE/$name.pid")" 2>/dev/null || true
    fi
    rm -f "$STATE/$name.pid"
  done
  log "stack stopped"
}

status() {
  for name in etcd apiserver moto; do
    if alive "$name"; then echo "$name: running (pid $(cat "$STATE/$name.pid"))"; else echo "$name: stopped"; fi
  done
}

case "${1:-}" in
  install) install ;;
  up) up ;;
  down) down ;;
  reset) down; rm -rf "$STATE"; log "state removed" ;;
  status) status ;;
  *) echo "usage: $0 install|up|down|reset|status" >&2; exit 2 ;;
esac
