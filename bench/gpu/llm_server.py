#!/usr/bin/env python3
"""An LLM-like server for Torpor's GPU benchmark, written to ChReK's application contract
(the structure of sample-app/app.py): slow initialization, ready file, then wait for the signal
file (checkpoint complete, exit) or the restore marker (restored, continue).

Initialization is what a real inference server does at cold start: import torch and transformers,
load a Llama-style model's weights from local safetensors files, compile the decoding step with
torch.compile (mode "reduce-overhead": CUDA graphs), run a warm-up generation, and release the
caching allocator's spare memory (torch.cuda.empty_cache()) before writing the ready file, since
every reserved byte ends up in the checkpoint image. The weights are random (built by
make_model.py from a config: no network), so generations are token ids without a tokenizer.

One deterministic greedy generation is written to BENCH_OUTPUT_DIR/generation-before.json before
the ready file and again, as generation-after.json, once restored; both hold the token ids, a
sha256 of the logits and a checksum of every weight, so a restore is checked bit for bit. With
BENCH_HTTP_PORT set it also answers HTTP from its first second (bench_http.py: GET /health,
GET /generation), as a model server does.
"""
import hashlib
import json
import os
import sys
import time

import bench_http

STARTED = time.time()
TICK_SECONDS = 0.05
PROMPT_LEN = 64
NEW_TOKENS = 64


def log(message):
    print(f"[llm-server pid={os.getpid()} t={time.time() - STARTED:.1f}s] {message}", flush=True)


def write_json(path, payload):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=1)
    os.replace(tmp, path)


def load(model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    phases = {"import_s": time.time() - STARTED}
    t = time.time()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16, device_map="cuda")
    model.eval()
    torch.cuda.synchronize()
    phases["load_weights_s"] = time.time() - t
    return model, phases


def generate(model):
    """Greedy decoding with a static KV cache: generate() compiles the decode step (reduce-overhead)."""
    import torch

    prompt = torch.arange(1000, 1000 + PROMPT_LEN, device="cuda").unsqueeze(0)
    t = time.time()
    with torch.inference_mode():
        out = model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
            do_sample=False,
            cache_implementation="static",
            return_dict_in_generate=True,
            output_scores=True,
            pad_token_id=0,
        )
    torch.cuda.synchronize()
    seconds = time.time() - t
    tokens = out.sequences[0, PROMPT_LEN:].tolist()
    logits = hashlib.sha256()
    for score in out.scores:
        logits.update(score.float().cpu().numpy().tobytes())
    return {"tokens": tokens, "logits_sha256": logits.hexdigest(), "seconds": seconds, "tokens_per_s": len(tokens) / seconds}


def weights_checksum(model):
    import torch

    with torch.inference_mode():
        total = sum(p.detach().double().sum() for p in model.parameters())
    return float(total)


def memory():
    import torch

    return {
        "allocated_bytes": torch.cuda.memory_allocated(),
        "reserved_bytes": torch.cuda.memory_reserved(),
        "max_allocated_bytes": torch.cuda.max_memory_allocated(),
    }


def cudagraph_counters():
    try:
        from torch._dynamo.utils import counters

        return {k: dict(v) for k, v in counters.items() if k in ("inductor", "stats")}
    except Exception as err:  # only a report; the benchmark goes on without it
        return {"error": str(err)}


def initialize(out_dir):
    import torch

    model, phases = load(os.environ["BENCH_MODEL_DIR"])
    t = time.time()
    first = generate(model)  # compiles and captures the CUDA graphs
    phases["compile_and_first_generation_s"] = time.time() - t
    t = time.time()
    warm = [generate(model) for _ in range(2)]
    phases["warm_generations_s"] = time.time() - t
    before_release = memory()
    torch.cuda.empty_cache()
    after_release = memory()
    result = warm[-1]
    result.update(weights_checksum=weights_checksum(model), phase="before-checkpoint", pid=os.getpid())
    write_json(os.path.join(out_dir, "generation-before.json"), result)
    bench_http.publish(result)
    write_json(
        os.path.join(out_dir, "init.json"),
        {
            "phases": phases,
            "first_generation": {k: first[k] for k in ("seconds", "tokens_per_s")},
            "warm_generation": {k: warm[-1][k] for k in ("seconds", "tokens_per_s")},
            "first_equals_warm": first["tokens"] == warm[-1]["tokens"] and first["logits_sha256"] == warm[-1]["logits_sha256"],
            "memory_before_empty_cache": before_release,
            "memory_after_empty_cache": after_release,
            "parameters": sum(p.numel() for p in model.parameters()),
            "counters": cudagraph_counters(),
            "torch": torch.__version__,
            "init_s": time.time() - STARTED,
        },
    )
    return model


def main():
    signal_file = os.environ.get("DYN_CHECKPOINT_SIGNAL_FILE")
    ready_file = os.environ.get("DYN_CHECKPOINT_READY_FILE")
    restore_marker = os.environ.get("DYN_RESTORE_MARKER_FILE", "/tmp/dynamo-restored")
    out_dir = os.environ["BENCH_OUTPUT_DIR"]

    bench_http.serve()
    model = initialize(out_dir)
    log("initialized")
    if signal_file is None:
        return
    if ready_file:
        with open(ready_file, "w") as f:
            f.write("ready")
        log(f"Wrote checkpoint ready file: {ready_file}")
    log("CHECKPOINT_READY: Model loaded, ready for container checkpoint")
    while True:
        if os.path.exists(restore_marker):
            log(f"Detected restore from checkpoint (marker: {restore_marker})")
            break
        if os.path.exists(signal_file):
            log("Checkpoint complete, exiting")
            return
        time.sleep(TICK_SECONDS)
    restored_at = time.time()
    result = generate(model)
    result.update(weights_checksum=weights_checksum(model), phase="after-restore", pid=os.getpid(), marker_to_done_s=time.time() - restored_at)
    write_json(os.path.join(out_dir, "generation-after.json"), result)
    bench_http.publish(result)
    log("generated after restore; serving")
    while True:
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
