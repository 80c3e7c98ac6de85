#!/bin/sh
# nvidia-smi for dry runs of bench/gpu/device-workflows.sh (DRY_RUN=1): FAKE_NVIDIA_GPUS H100s
# (default 1) with made-up UUIDs, and every process the fake libcuda knows (FAKE_LIBCUDA_DIR/<pid>)
# holding 1 GiB on GPU 0, or on the GPU FAKE_LIBCUDA_DIR/<pid>.gpu names (the TP=2 stand-in's ranks).
# It answers the two queries the node agent asks (activities/node/gpu/gpu-info.ts), nothing else.
uuid() { if [ "$1" = 0 ]; then echo GPU-00000000-0000-4000-8000-0000000d0d0d; else echo "GPU-00000000-0000-4000-8000-0000000d0d0$1"; fi; }
case "$*" in
*--query-gpu=*)
  i=0
  while [ "$i" -lt "${FAKE_NVIDIA_GPUS:-1}" ]; do
    echo "$i, NVIDIA H100 80GB HBM3, $(uuid "$i"), 580.159.04, 81559, 0"
    i=$((i + 1))
  done
  ;;
*--query-compute-apps=*)
  for f in "${FAKE_LIBCUDA_DIR:-/tmp}"/*; do
    pid=${f##*/}
    case "$pid" in *[!0-9]* | '') ;; *) echo "$pid, $(uuid "$(cat "$f.gpu" 2>/dev/null || echo 0)"), 1024" ;; esac
  done
  ;;
*) echo "fake nvidia-smi (dry run): no GPU on this machine" ;;
esac
