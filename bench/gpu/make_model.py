#!/usr/bin/env python3
"""Builds the benchmark's model once: a Llama-style config with random weights (no network, no hub),
saved as safetensors under the directory given, which llm_server.py then loads like a real
checkpoint. BENCH_MODEL_SCALE=tiny makes a small one for a smoke run."""
import json
import os
import sys
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

SIZES = {
    # About Llama 3.2 3B: 3.2 billion parameters, 6.4 GB in bfloat16.
    "3b": dict(hidden_size=3072, intermediate_size=8192, num_hidden_layers=28, num_attention_heads=24, num_key_value_heads=8),
    "tiny": dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2),
}


def main(out_dir):
    scale = os.environ.get("BENCH_MODEL_SCALE", "3b")
    config = LlamaConfig(vocab_size=128256, max_position_embeddings=4096, tie_word_embeddings=True, **SIZES[scale])
    started = time.time()
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = LlamaForCausalLM(config)
    bad = [n for n, p in model.named_parameters() if not torch.isfinite(p).all() or (p.dim() > 1 and p.float().std() == 0)]
    if bad:
        raise SystemExit(f"random initialization left non-finite or constant weights: {bad[:5]}")
    model.save_pretrained(out_dir, safe_serialization=True)
    size = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    print(json.dumps({"scale": scale, "parameters": sum(p.numel() for p in model.parameters()), "bytes": size, "seconds": time.time() - started}))


if __name__ == "__main__":
    main(sys.argv[1])
