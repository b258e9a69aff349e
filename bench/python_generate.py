#!/usr/bin/env python3
"""Peer of `cargo xtask bench generate`: Hugging Face transformers `generate` on the same
GGUF weights (dequantised to float32 by transformers' GGUF loader), the same prompts,
greedy, a fixed number of new tokens. Prints one JSON line per batch size.

--random CASE.json: a randomly initialised `Qwen2ForCausalLM` of CASE's `config` (Hugging
Face keys) on --device, fed CASE's `prompts` (token ids; batch b takes the first b rows),
exactly --new-tokens per row, once per --dtype; one JSON line per (dtype, batch), with
"error": "OOM" when the batch does not fit.

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
    ap.add_argument("--model", help="a .gguf file")
    ap.add_argument("--prompts", help="JSON list of prompt strings")
    ap.add_argument("--random", help="JSON case: {config, prompts (token ids)}")
    ap.add_argument("--batch", type=int, action="append", required=True)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--warmup-tokens", type=int, default=4)
    ap.add_argument("--dtype", action="append", help="float32, bfloat16, float16 (--random)")
    ap.add_argument("--device", default="cuda", help="--random only")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()
    if args.random:
        ensure([("torch", "torch"), ("transformers", "transformers")])
        return random_mode(args)
    if not (args.model and args.prompts):
        ap.error("--model and --prompts are required without --random")
    gguf_mode(args)


def random_mode(args):
    import torch
    import transformers
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.set_num_threads(args.threads)
    case = json.load(open(args.random))
    hf = {k: v for k, v in case["config"].items() if k != "model_type"}
    ids = torch.tensor(case["prompts"], dtype=torch.long)
    kwargs = dict(
        do_sample=False,
        max_new_tokens=args.new_tokens,
        min_new_tokens=args.new_tokens,
        eos_token_id=None,  # random weights, no stop token: every row runs to the end
        pad_token_id=0,
    )

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    for dtype_name in args.dtype or ["float32"]:
        dtype = getattr(torch, dtype_name)
        torch.manual_seed(case.get("seed", 0))
        t0 = time.perf_counter()
        config = Qwen2Config(**hf)  # transformers 5 moves the legacy rope_theta into rope_parameters
        theta = (getattr(config, "rope_parameters", None) or {}).get(
            "rope_theta", getattr(config, "rope_theta", None))
        with torch.device(args.device):
            model = Qwen2ForCausalLM(config).to(dtype).eval()
        model.generation_config.eos_token_id = None
        model.generation_config.pad_token_id = 0
        sync()
        load_s = time.perf_counter() - t0
        for batch in args.batch:
            row = {"batch": batch, "dtype": dtype_name, "device": args.device}
            try:
                x = ids[:batch].to(args.device)
                mask = torch.ones_like(x)
                with torch.inference_mode():
                    warm = dict(kwargs, max_new_tokens=args.warmup_tokens,
                                min_new_tokens=args.warmup_tokens)
                    model.generate(input_ids=x, attention_mask=mask, **warm)
                    sync()
                    t = time.perf_counter()
                    model.generate(input_ids=x, attention_mask=mask,
                                   **dict(kwargs, max_new_tokens=1, min_new_tokens=1))
                    sync()
                    prefill_s = time.perf_counter() - t
                    t = time.perf_counter()
                    out = model.generate(input_ids=x, attention_mask=mask, **kwargs)
                    sync()
                    secs = time.perf_counter() - t
                per_row = out.shape[1] - x.shape[1]
                if per_row != args.new_tokens:
                    raise RuntimeError(f"generated {per_row} of {args.new_tokens} tokens per row")
                generated = per_row * batch
                row.update(seconds=secs, prefill_s=prefill_s, generated=int(generated),
                           tokens_per_s=generated / secs)
            except torch.OutOfMemoryError:
                row["error"] = "OOM"
            except RuntimeError as e:  # some kernels raise plain RuntimeErrors on OOM
                row["error"] = "OOM" if "out of memory" in str(e).lower() else f"{e}"[:300]
            out = x = mask = None
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
                row["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
                torch.cuda.reset_peak_memory_stats()
            row.update(load_s=load_s, torch=torch.__version__,
                       transformers=transformers.__version__,
                       attn=getattr(model.config, "_attn_implementation", None),
                       tf32=torch.backends.cuda.matmul.allow_tf32, rope_theta=theta)
            print(json.dumps(row), flush=True)
        del model
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()


def gguf_mode(args):
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
