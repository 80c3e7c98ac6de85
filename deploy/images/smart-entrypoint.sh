#!/bin/sh
# ChReK's smart entrypoint, for Torpor: when a committed checkpoint of this pod's hash exists, wait
# to be restored into (the node agent restores the process tree into this container); otherwise run
# the image's original command (a cold start).
set -eu
ckpt="${DYN_CHECKPOINT_PATH:-/checkpoints}/${DYN_CHECKPOINT_HASH:-}"
# A restore placed by the scheduler: the node's agent fetches the checkpoint while this pod starts,
# and sets TORPOR_CHECKPOINT_WAIT_SECONDS so that it is waited for instead of cold-starting.
wait_s="${TORPOR_CHECKPOINT_WAIT_SECONDS:-0}"
while [ -n "${DYN_CHECKPOINT_HASH:-}" ] && [ ! -f "$ckpt/checkpoint.done" ] && [ "$wait_s" -gt 0 ]; do
  sleep 1
  wait_s=$((wait_s - 1))
done
if [ -z "${DYN_CHECKPOINT_HASH:-}" ] || [ ! -f "$ckpt/checkpoint.done" ]; then
  echo "smart-entrypoint: no checkpoint for '${DYN_CHECKPOINT_HASH:-}'; cold start"
  exec "$@"
fi

echo "smart-entrypoint: checkpoint $DYN_CHECKPOINT_HASH found; waiting for the node agent to restore it into this container"
# As the container's PID 1 this shell adopts the restored process tree. `wait` reaps every child,
# adopted ones too, so nothing lingers as a zombie. Once a restored process has been seen, the
# container lives as long as one does; its exit status is not visible here, so the exit is 1.
# It looks five times a second, so that a restored process that runs only briefly is still seen.
seen=""
while :; do
  sleep 0.2 &
  wait
  others=0
  for dir in /proc/[0-9]*; do
    [ "${dir#/proc/}" = "$$" ] || others=$((others + 1))
  done
  if [ "$others" -gt 0 ]; then
    [ -n "$seen" ] || echo "smart-entrypoint: restored process running"
    seen=1
  elif [ -n "$seen" ]; then
    echo "smart-entrypoint: the restored process tree has exited"
    exit 1
  fi
done
