#!/usr/bin/env bash
# Installs the CRIU that versions.sh pins into DEST: Debian's packages of that suite unpacked into
# DEST/criu with their own loader and libraries (the host's libc may be older), and a wrapper
# DEST/bin/criu-stock: stock CRIU, kept beside the patched default (tools/criu-parallel/build.sh) for
# comparison and as the fallback (TORPOR_CRIU_PARALLEL=0). Used by setup.sh and by the agent image.
# Needs apt-get, dpkg and Debian's archive key.
set -euo pipefail
DEST=${1:?usage: install-criu.sh DEST}
# shellcheck source=versions.sh
source "$(dirname "${BASH_SOURCE[0]}")/versions.sh"
# shellcheck source=debian-packages.sh
source "$(dirname "${BASH_SOURCE[0]}")/debian-packages.sh"
[ "$(uname -m)" = x86_64 ] || { echo "install-criu: only x86_64 is supported (found $(uname -m))" >&2; exit 1; }
prefix="$DEST/criu"
mkdir -p "$DEST/bin"
# shellcheck disable=SC2086
unpack_debian_packages "$TORPOR_CRIU_SUITE" "$prefix" "$DEST/apt" $TORPOR_CRIU_PACKAGES
cat >"$DEST/bin/criu-stock" <<WRAP
#!/bin/sh
# CRIU from Debian $TORPOR_CRIU_SUITE, run through its own loader and libraries.
P="$prefix"
exec "\$P/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --library-path "\$P/usr/lib/x86_64-linux-gnu" "\$P/usr/sbin/criu" "\$@"
WRAP
chmod +x "$DEST/bin/criu-stock"
"$DEST/bin/criu-stock" --version | grep -q "Version: $TORPOR_CRIU_MIN" || {
  echo "install-criu: the unpacked CRIU does not start or is not $TORPOR_CRIU_MIN.x: $("$DEST/bin/criu-stock" --version 2>&1 | head -1)" >&2
  exit 1
}
