#!/bin/sh
# ChReK's smart entrypoint, for Torpor: when a committed checkpoint of this pod's hash exists, wait
# to be restored into (the node agent restores the process tree into this container); otherwise run
# the image's original command (a cold start).
set -eu
ckpt="${DYN_CHECKPOINT_PATH:-/checkpoints}/${DYN_CHECKPOINT_HASH:-}"
if [ -n "${DYN_CHECKPOINT_HASH:-}" ] && [ -f "$ckpt/checkpoint.done" ]; then
  echo "smart-entrypoint: checkpoint $DYN_CHECKPOINT_HASH found; waiting for the restore"
  # A placeholder that only waits: exec keeps PID 1 a plain sleeper the agent can see.
  exec sleep infinity
fi
echo "smart-entrypoint: no checkpoint for '${DYN_CHECKPOINT_HASH:-}'; cold start"
exec "$@"
