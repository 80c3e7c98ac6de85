# Sourced by bench/gpu/device-workflows.sh (T, RUN, REPO, SCALE, PIDS set there): the app's files and
# caches, the environment every process shares, and start_services (dev server, control worker, node agent).

# A loopback port nothing listens on.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Waits up to $2 seconds for $1 to print something matching $3.
wait_for_log() {
  for _ in $(seq 1 "$2"); do grep -q "$3" "$1" 2>/dev/null && return 0; sleep 1; done
  echo "no '$3' in $1 within $2 s:" >&2
  tail -30 "$1" >&2
  return 1
}

# Local workloads run as nobody (TORPOR_LOCAL_UID, never root); everything they read or write is theirs.
prepare_app() {
  umount -l "$RUN/containers" 2>/dev/null
  rm -rf "$RUN" && mkdir -p "$RUN/app" "$RUN/out" "$RUN/containers" "$T/cache"
  # The containers' overlay upper layers on a tmpfs: an overlay cannot take its upper layer from
  # another overlay, which a machine's root filesystem may be.
  mount -t tmpfs -o size=16g,mode=0755 torpor-containers "$RUN/containers" || return 1
  cp bench/gpu/llm_server.py bench/gpu/dry_run_app.py bench/gpu/bench_http.py deploy/images/smart-entrypoint.sh bench/gpu/tp2/*.py "$RUN/app/"
  chmod 755 "$RUN" "$RUN/app" && chmod 644 "$RUN"/app/*
  chmod 1777 "$RUN/out" "$T/cache"
  export BENCH_APP_DIR=$RUN/app BENCH_OUTPUT_DIR=$RUN/out BENCH_CONTAINER_DIR=$RUN/containers BENCH_OUT=$OUT
  export HOME=$T/cache TORCHINDUCTOR_CACHE_DIR=$T/cache/inductor TRITON_CACHE_DIR=$T/cache/triton XDG_CACHE_HOME=$T/cache/xdg
  # One process tree for CRIU: inductor compiles in the server process, not in a worker pool.
  export TORCHINDUCTOR_COMPILE_THREADS=1 PYTHONUNBUFFERED=1
  # No NVLink multicast on the GPU machines (device KINDS.md), in every environment, the workload's too.
  export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
  export BENCH_PYTHON=${BENCH_PYTHON:-$(command -v python3)} BENCH_HTTP_PORT=$(free_port)
  if [ -n "${DRY_RUN:-}" ]; then
    export BENCH_APP_SCRIPT=dry_run_app.py FAKE_LIBCUDA_DIR=$RUN/fakecuda TORPOR_LIBCUDA=$T/bin/libfakecuda.so
    mkdir -p "$FAKE_LIBCUDA_DIR" && chmod 1777 "$FAKE_LIBCUDA_DIR"
    cp bench/gpu/fake-nvidia-smi.sh "$T/bin/nvidia-smi" && chmod +x "$T/bin/nvidia-smi"
    # The TP=2 phase needs two (fake) GPUs and the ranks' GPU-less stand-in.
    case ",${BENCH_PHASES:-}," in *,tp2,*) export FAKE_NVIDIA_GPUS=${FAKE_NVIDIA_GPUS:-2} BENCH_TP2_RANK=tp2_rank_dry.py ;; esac
  else
    rm -f "$T/bin/nvidia-smi"
    nvidia-smi --query-gpu=index,name,uuid,driver_version,memory.used,memory.total --format=csv
    TORPOR_LIBCUDA=$(ldconfig -p | awk '/libcuda\.so\.1 /{print $NF; exit}')
    export TORPOR_LIBCUDA BENCH_APP_SCRIPT=llm_server.py BENCH_MODEL_DIR=$T/model-$SCALE
    echo "libcuda: $TORPOR_LIBCUDA; python: $BENCH_PYTHON; cgroup: $(stat -fc %T /sys/fs/cgroup)"
    if needs_model; then
      [ -f "$BENCH_MODEL_DIR/config.json" ] || BENCH_MODEL_SCALE=$SCALE python3 bench/gpu/make_model.py "$BENCH_MODEL_DIR" 2>&1 | tail -3
      chmod -R a+rX "$BENCH_MODEL_DIR"
    fi
  fi
  chmod -R a+rwX "$T/cache"
}

# The LLM app's phases need the model; the TP=2 phase alone does not.
needs_model() { case ",${BENCH_PHASES:-local,container}," in *,local,* | *,container,*) return 0 ;; *) return 1 ;; esac; }

# The local runtime runs the app as TORPOR_LOCAL_UID: it must be able to import torch and read the model.
check_workload_user() {
  local model=''
  needs_model && model="; import transformers; os.listdir('$BENCH_MODEL_DIR')"
  "$BENCH_PYTHON" -c "import os; os.setgid($TORPOR_LOCAL_GID); os.setuid($TORPOR_LOCAL_UID); import torch$model" && return 0
  echo "uid $TORPOR_LOCAL_UID cannot run $BENCH_PYTHON with torch or read $BENCH_MODEL_DIR: the local phase would fail" >&2
  return 1
}

start_services() {
  export TORPOR_LOCAL_UID=${TORPOR_LOCAL_UID:-65534} TORPOR_LOCAL_GID=${TORPOR_LOCAL_GID:-65534}
  prepare_app || return 1
  [ -n "${DRY_RUN:-}" ] || check_workload_user || return 1
  local port
  port=$(free_port)
  # Payload keys as the dev stack makes them (dev/payload-keys.ts): workers and runner share the file.
  (umask 077 && echo "gpu-1 $(head -c 32 /dev/urandom | base64 -w0)" >"$RUN/payload-keys")
  export TEMPORAL_ADDRESS=127.0.0.1:$port TORPOR_PAYLOAD_KEY_FILE=$RUN/payload-keys NODE_NAME=gpu-node
  export TORPOR_STORAGE_ROOT=$RUN/store TORPOR_CRIU=$T/bin/criu TORPOR_LOCAL_RUNTIME=on
  export TORPOR_RUNC=$T/bin/runc TORPOR_RUNC_ROOT=$RUN/runc-root TORPOR_CONTAINER_NAMESPACES=bench
  export TORPOR_WORKFLOW_BUNDLE=$T/js/workflows.js
  # What a python+torch process needed beside the agent's defaults on the GPU machine (MEASURED.md).
  export TORPOR_CRIU_DUMP_ARGS=${TORPOR_CRIU_DUMP_ARGS:---ext-unix-sk} TORPOR_CRIU_RESTORE_ARGS=${TORPOR_CRIU_RESTORE_ARGS:---ext-unix-sk}
  local attrs=()
  for a in TorporHash TorporNode TorporPhase TorporNamespace; do attrs+=(--search-attribute "$a=Keyword"); done
  "$T/temporal" server start-dev --headless --ip 127.0.0.1 --port "$port" --http-port "$(free_port)" \
    --metrics-port "$(free_port)" --db-filename "$RUN/temporal.db" "${attrs[@]}" --log-level warn >"$RUN/temporal.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 60); do "$T/temporal" operator cluster health --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1 && break; sleep 1; done
  "$T/node" "$T/js/control-worker.mjs" >"$RUN/control.log" 2>&1 &
  PIDS+=($!)
  "$T/node" "$T/js/node-agent.mjs" >"$RUN/agent.log" 2>&1 &
  PIDS+=($!)
  wait_for_log "$RUN/control.log" 60 'control worker polling' && wait_for_log "$RUN/agent.log" 60 'node agent for'
}
