#!/usr/bin/env bash
# Builds CRIU from Debian's source package with parallel-page-restore.patch (issue 16) into
# .torpor/criu-parallel/, beside (not instead of) the stock .torpor/bin/criu. Idempotent: skips when
# the same version, patch and script were built. Needs gcc, make and pkgconf; everything else comes
# from the Debian archive through a private apt state (the system's apt configuration is not touched).
# Use: .torpor/bin/criu-parallel, or PATH=.torpor/criu-parallel/bin:$PATH for tools that run `criu`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/tools/criu-parallel"
P="$ROOT/.torpor/criu-parallel"
VERSION=4.2.1-1        # the sid source package the patch is written against (scripts/versions.sh: CRIU 4.2 from sid)
UPSTREAM=${VERSION%-*}
# Built against bookworm (the host's libc), not sid: sid's libraries need sid's libc.
DEPS_SUITE=bookworm
DEPS="libprotobuf-c-dev libprotobuf-c1 protobuf-c-compiler protobuf-compiler libprotobuf-dev libprotoc32
  libprotobuf32 libnl-3-dev libnl-3-200 libnl-route-3-dev libnl-route-3-200 libnet1-dev libnet1 libcap-dev
  libcap2 libbsd-dev libbsd0 libmd-dev libmd0 libnftables-dev libnftables1 libnftnl11 libmnl0 libxtables12
  libjansson4 libgmp10 uuid-dev libuuid1"
STAMP="$P/.built"
want=$(cat "$0" "$HERE/parallel-page-restore.patch" | sha256sum | cut -d' ' -f1)
if [ -x "$P/usr/sbin/criu" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then
  echo "criu-parallel: already built ($("$ROOT/.torpor/bin/criu-parallel" --version | head -1))"
  exit 0
fi
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
  read -r uri file _ sum < <(apt-get "${opts[@]}" source --print-uris "criu=$VERSION" | grep -F "orig.tar")
  curl -fsSL -o "$apt/$file" "${uri//\'/}"
  echo "${sum#SHA256:}  $apt/$file" | sha256sum -c --quiet
  rm -rf "$P/src" && mkdir -p "$P/src"
  tar -xJf "$apt/$file" -C "$P/src"
}

build() {
  local src="$P/src/criu-$UPSTREAM" d="$P/deps" lib
  lib="$d/usr/lib/x86_64-linux-gnu:$d/lib/x86_64-linux-gnu"
  patch -d "$src" -p1 <"$HERE/parallel-page-restore.patch"
  # The descriptor.proto rule hard-codes /usr/include; take protobuf's includedir from pkg-config.
  sed -i 's|--proto_path=/usr/include|--proto_path=$(patsubst %/google/protobuf,%,$(GOOGLE_INCLUDE))|' "$src/images/Makefile"
  # CFLAGS, LDFLAGS and LIBS through the environment: on make's command line they would replace
  # the flags CRIU's makefiles add (the parasite blobs need theirs), and CFLAGS must be set before
  # the feature tests. -isystem: bookworm's libnftables.h redefines _GNU_SOURCE, which -Werror would
  # turn into "no nftables". RPATH, not RUNPATH, so that libnftables finds libnftnl too. ld finds
  # the libraries' own dependencies through LD_LIBRARY_PATH.
  (cd "$src" && PATH="$d/usr/bin:$PATH" LD_LIBRARY_PATH="$lib" PKG_CONFIG_SYSROOT_DIR="$d" \
    PKG_CONFIG_PATH="$d/usr/lib/x86_64-linux-gnu/pkgconfig" CFLAGS="-isystem $d/usr/include" \
    LDFLAGS="-L${lib//:/ -L}" LIBS="-Wl,--disable-new-dtags,-rpath,$lib" nice -n 10 make -j"$(nproc)" NO_GNUTLS=1 criu)
  mkdir -p "$P/usr/sbin" "$P/bin"
  install -m 0755 "$src/criu/criu" "$P/usr/sbin/criu"
  ln -sfn ../usr/sbin/criu "$P/bin/criu"
}

unpack_debian_packages "$DEPS_SUITE" "$P/deps" "$P/apt-deps" $DEPS
fetch_source
build
mkdir -p "$ROOT/.torpor/bin"
printf '#!/bin/sh\n# CRIU %s with tools/criu-parallel/parallel-page-restore.patch (issue 16).\nexec "%s" "$@"\n' \
  "$VERSION" "$P/usr/sbin/criu" >"$ROOT/.torpor/bin/criu-parallel"
chmod +x "$ROOT/.torpor/bin/criu-parallel"
"$ROOT/.torpor/bin/criu-parallel" --version | head -1
echo "$want" >"$STAMP"
