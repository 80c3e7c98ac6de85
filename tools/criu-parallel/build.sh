#!/usr/bin/env bash
# Builds CRIU from Debian's source package with parallel-page-restore.patch and parallel-page-write.patch
# (issue 16) into
# DEST/criu-parallel/ with a wrapper DEST/bin/criu-parallel. The set-up (DEST .torpor, the default)
# makes it DEST/bin/criu; the agent image builds it into /opt/torpor. Idempotent: skips when the same
# version, patch, script, suite and DEST were built. Needs gcc, make, pkgconf, patch, curl and xz;
# everything else comes from the Debian archive through a private apt state (the system's apt
# configuration is not touched). `criu --version` prints "GitID: <version>+torpor.parallel-page-restore.parallel-page-write",
# and every CRIU log names it in its "Version:" line, so a run shows which CRIU it used.
# usage: build.sh [DEST]   (TORPOR_CRIU_DEPS_SUITE: bookworm or trixie; default: the host's release)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/tools/criu-parallel"
DEST=${1:-$ROOT/.torpor}
P="$DEST/criu-parallel"
VERSION=4.2.1-1        # the sid source package the patch is written against (scripts/versions.sh: CRIU 4.2 from sid)
UPSTREAM=${VERSION%-*}
TAG="$VERSION+torpor.parallel-page-restore.parallel-page-write"
PATCHES="parallel-page-restore.patch parallel-page-write.patch"
die() { printf 'criu-parallel: %s\n' "$*" >&2; exit 1; }

# The libraries it links must run on the host's libc, so they come from the host's release, not sid.
host_suite() {
  local codename
  codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release 2>/dev/null | tr -d '"')
  echo "${TORPOR_CRIU_DEPS_SUITE:-$codename}"
}
SUITE=$(host_suite)
case "$SUITE" in
bookworm) PROTOBUF="libprotoc32 libprotobuf32" SSL=libssl3 ;;
trixie) PROTOBUF="libprotoc32t64 libprotobuf32t64" SSL=libssl3t64 ;;
*) die "builds only against Debian bookworm or trixie libraries, not '${SUITE:-unknown}' (TORPOR_CRIU_DEPS_SUITE picks one; its libc must not be newer than this host's)" ;;
esac
DEPS="libprotobuf-c-dev libprotobuf-c1 protobuf-c-compiler protobuf-compiler libprotobuf-dev $PROTOBUF
  libnl-3-dev libnl-3-200 libnl-route-3-dev libnl-route-3-200 libnet1-dev libnet1 libcap-dev
  libcap2 libbsd-dev libbsd0 libmd-dev libmd0 libnftables-dev libnftables1 libnftnl11 libmnl0 libxtables12
  libjansson4 libgmp10 uuid-dev libuuid1 libssl-dev $SSL"

write_wrapper() {
  mkdir -p "$DEST/bin"
  printf '#!/bin/sh\n# CRIU %s with tools/criu-parallel/parallel-page-{restore,write}.patch (issue 16), %s libraries.\nexec "%s" "$@"\n' \
    "$VERSION" "$SUITE" "$P/usr/sbin/criu" >"$DEST/bin/criu-parallel"
  chmod +x "$DEST/bin/criu-parallel"
}

STAMP="$P/.built"
want="$( (cat "$0"; for p in $PATCHES; do cat "$HERE/$p"; done) | sha256sum | cut -d' ' -f1) $SUITE $DEST"
if [ -x "$P/usr/sbin/criu" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then
  write_wrapper
  echo "criu-parallel: already built ($("$DEST/bin/criu-parallel" --version | tr '\n' ' '))"
  exit 0
fi
missing=""
for tool in gcc make pkg-config patch curl xz apt-get dpkg tar sha256sum; do
  command -v "$tool" >/dev/null || missing+=" $tool"
done
[ -z "$missing" ] || die "missing build tools:$missing (Debian: apt-get install gcc libc6-dev make pkgconf patch curl xz-utils)"
# shellcheck source=../../scripts/debian-packages.sh
source "$ROOT/scripts/debian-packages.sh"

fetch_source() {
  local apt="$P/apt-src" uri file sum
  rm -rf "$apt" && mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main" >"$apt/sources.list"
  local opts=(-q -o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o APT::Sandbox::User=root)
  apt-get "${opts[@]}" update >/dev/null
  # Only the upstream tarball: the build needs none of Debian's packaging. Its hash comes from the
  # signed Sources index.
  read -r uri file _ sum < <(apt-get "${opts[@]}" source --print-uris "criu=$VERSION" | grep -F "orig.tar") ||
    die "Debian sid no longer serves the source of criu $VERSION (the patch is written against it)"
  curl -fsSL -o "$apt/$file" "${uri//\'/}"
  echo "${sum#SHA256:}  $apt/$file" | sha256sum -c --quiet
  rm -rf "$P/src" && mkdir -p "$P/src"
  tar -xJf "$apt/$file" -C "$P/src"
}

build() {
  local src="$P/src/criu-$UPSTREAM" d="$P/deps" lib
  lib="$d/usr/lib/x86_64-linux-gnu:$d/lib/x86_64-linux-gnu"
  for p in $PATCHES; do patch -d "$src" -p1 <"$HERE/$p"; done
  # The descriptor.proto rule hard-codes /usr/include; take protobuf's includedir from pkg-config.
  sed -i 's|--proto_path=/usr/include|--proto_path=$(patsubst %/google/protobuf,%,$(GOOGLE_INCLUDE))|' "$src/images/Makefile"
  # CFLAGS, LDFLAGS and LIBS through the environment: on make's command line they would replace
  # the flags CRIU's makefiles add (the parasite blobs need theirs), and CFLAGS must be set before
  # the feature tests. -isystem: bookworm's libnftables.h redefines _GNU_SOURCE, which -Werror would
  # turn into "no nftables". RPATH, not RUNPATH, so that libnftables finds libnftnl too. ld finds
  # the libraries' own dependencies through LD_LIBRARY_PATH. GITID (a tarball has no git) marks the build.
  (cd "$src" && PATH="$d/usr/bin:$PATH" LD_LIBRARY_PATH="$lib" PKG_CONFIG_SYSROOT_DIR="$d" \
    PKG_CONFIG_PATH="$d/usr/lib/x86_64-linux-gnu/pkgconfig" CFLAGS="-isystem $d/usr/include -isystem $d/usr/include/x86_64-linux-gnu" \
    LDFLAGS="-L${lib//:/ -L}" LIBS="-Wl,--disable-new-dtags,-rpath,$lib -lcrypto" \
    nice -n 10 make -j"$(nproc)" NO_GNUTLS=1 GITID="$TAG" criu)
  mkdir -p "$P/usr/sbin" "$P/bin"
  install -m 0755 "$src/criu/criu" "$P/usr/sbin/criu"
  ln -sfn ../usr/sbin/criu "$P/bin/criu"
}

# shellcheck disable=SC2086
unpack_debian_packages "$SUITE" "$P/deps" "$P/apt-deps" $DEPS
fetch_source
build
write_wrapper
"$DEST/bin/criu-parallel" --version | grep -qF "GitID: $TAG" ||
  die "the built CRIU does not start: $("$DEST/bin/criu-parallel" --version 2>&1 | head -3)"
"$DEST/bin/criu-parallel" --version | tr '\n' ' ' && echo
echo "$want" >"$STAMP"
