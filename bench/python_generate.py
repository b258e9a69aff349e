#!/usr/bin/env python3
"""Peer of `cargo xtask bench generate`: Hugging Face transformers `generate` on the same
GGUF weights (dequantised to float32 by transformers' GGUF loader), the same prompts,
greedy, a fixed number of new tokens. Prints one JSON line per batch size.

Installs its peers from PyPI when missing (torch CPU wheel, transformers, gguf)."""

import argparse
import json
import os
import subprocess
import sys
import time


def ensure(pkgs):
    missing = []
    for mod, pip_name in pkgs:
        try:
            __import__(mod)
        except ImportError:
            missing.append(pip_name)
    if missing:
        print(f"installing {' '.join(missing)}", file=sys.stderr)
        cmd = [sys.executable, "-m", "pip", "install", "--quiet"]
        if "torch" in missing:
            # The CPU-only wheel index is smaller; PyPI's wheel (with CUDA libraries) also works.
            cpu = ["torch", "--index-url", "https://download.pytorch.org/whl/cpu"]
            if subprocess.call(cmd + cpu) == 0:
                missing.remove("torch")
        if missing:
            subprocess.check_call(cmd + missing)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="a .gguf file")
    ap.add_argument("--prompts", required=True, help="JSON list of prompt strings")
    ap.add_argument("--batch", type=int, action="append", required=True)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    ensure([("torch", "torch"), ("transformers", "transformers"), ("gguf", "gguf")])
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    folder, name = os.path.split(os.path.abspath(args.model))
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
    model.eval()
    load_s = time.perf_counter() - t0
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    prompts = json.load(open(args.prompts))
    for batch in args.batch:
        texts = [prompts[i % len(prompts)] for i in range(batch)]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        kwargs = dict(
            do_sample=False,
            max_new_tokens=args.new_tokens,
            min_new_tokens=args.new_tokens,
            pad_token_id=tok.pad_token_id,
        )
        with torch.inference_mode():
            model.generate(**enc, **dict(kwargs, max_new_tokens=2, min_new_tokens=2))  # warm-up
            t = time.perf_counter()
            out = model.generate(**enc, **kwargs)
            secs = time.perf_counter() - t
        generated = (out.shape[1] - enc["input_ids"].shape[1]) * batch
        print(json.dumps({
            "batch": batch,
            "seconds": secs,
            "generated": int(generated),
            "tokens_per_s": generated / secs,
            "load_s": load_s,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        }), flush=True)


if __name__ == "__main__":
    main()
