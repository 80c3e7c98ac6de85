#!/bin/sh
# nvidia-smi for dry runs of bench/gpu/device-workflows.sh (DRY_RUN=1): one H100 with a made-up
# UUID, and every process the fake libcuda knows (FAKE_LIBCUDA_DIR/<pid>) holding 1 GiB on it.
# It answers the two queries the node agent asks (activities/node/gpu/gpu-info.ts), nothing else.
case "$*" in
*--query-gpu=*) echo "0, NVIDIA H100 80GB HBM3, GPU-00000000-0000-4000-8000-0000000d0d0d, 580.159.04, 81559, 0" ;;
*--query-compute-apps=*)
  for f in "${FAKE_LIBCUDA_DIR:-/tmp}"/*; do
    pid=${f##*/}
    case "$pid" in *[!0-9]* | '') ;; *) echo "$pid, GPU-00000000-0000-4000-8000-0000000d0d0d, 1024" ;; esac
  done
  ;;
*) echo "fake nvidia-smi (dry run): no GPU on this machine" ;;
esac
