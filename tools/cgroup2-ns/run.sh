#!/bin/sh
# Runs a command (e.g. `vitest run test/containers/...`) in a private mount namespace whose
# /sys/fs/cgroup is this host's cgroup2 hierarchy, so runc and the agent see a unified (v2) host on
# a cgroup v1/hybrid machine. The host's own mounts are untouched. Needs root and util-linux unshare.
# On a hybrid host the v2 hierarchy has no cpu/memory/pids controllers (v1 holds them): runc's
# freezer (cgroup.freeze) and cgroup placement work, resource limits cannot be set.
set -eu
[ "$#" -gt 0 ] || { echo "usage: $0 command [args...]" >&2; exit 2; }
exec unshare -m sh -c '
  mount --make-rprivate /
  umount -l /sys/fs/cgroup
  mount -t cgroup2 cgroup2 /sys/fs/cgroup
  [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] || { echo "no cgroup2 at /sys/fs/cgroup" >&2; exit 1; }
  exec "$@"' sh "$@"
