#!/usr/bin/env python3
"""PyTorch baseline for `cargo xtask lab2`: the same model (bench/pytorch_lm.py's, with
PyTorch's fused SDPA attention) at the course's sizes, timed the same way: warm-up steps,
then timed steps with a device sync after the forward (+ loss), the backward and the
optimizer step (clip to norm 1 + torch.optim.AdamW(fused=True)). One JSON line per case,
in the fields lm_systems::report::BaselineResult reads; out-of-memory cases are reported
as status "OOM".

Usage: python3 bench/pytorch_profile.py [--sizes small,medium,large,xl]
    [--contexts 128,256,512,1024] [--precisions f32,tf32,bf16-mixed] [--batch 4] [--steps 10]
    [--compile]
"""
import argparse, json, statistics, time

import torch
import torch.nn.functional as F

from pytorch_lm import LM

SIZES = {  # d_model, d_ff, layers, heads (lm_systems::profile::SIZES)
    "tiny": (512, 1344, 4, 16),
    "small": (768, 3072, 12, 12),
    "medium": (1024, 4096, 24, 16),
    "large": (1280, 5120, 36, 20),
    "xl": (2560, 10240, 32, 32),
}


def timing(seconds):
    mean = statistics.fmean(seconds)
    std = statistics.stdev(seconds) if len(seconds) > 1 else 0.0
    return {"mean_ms": mean * 1e3, "std_ms": std * 1e3}


def profile(size, ctx, precision, args):
    d, d_ff, layers, heads = SIZES[size]
    torch.manual_seed(args.seed)
    dev = "cuda"
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = LM(args.vocab, ctx, d, layers, heads, d_ff, 1e4, sdpa=True).to(dev)
    params = list(model.parameters())
    if args.compile:
        model = torch.compile(model)
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1,
                            fused=True)
    ids = torch.randint(0, args.vocab, (args.batch, ctx + 1), device=dev)
    x, y = ids[:, :-1], ids[:, 1:]
    times = [[], [], []]
    for step in range(args.warmup + args.steps):
        torch.cuda.synchronize()
        marks = [time.perf_counter()]
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
            logits = model(x)
            loss = F.cross_entropy(logits.float().view(-1, args.vocab), y.reshape(-1))
        torch.cuda.synchronize()
        marks.append(time.perf_counter())
        loss.backward()
        torch.cuda.synchronize()
        marks.append(time.perf_counter())
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        marks.append(time.perf_counter())
        if step >= args.warmup:
            for i in range(3):
                times[i].append(marks[i + 1] - marks[i])
    steps = [sum(t) for t in zip(*times)]
    step = timing(steps)
    return {
        "forward": timing(times[0]), "backward": timing(times[1]),
        "optimizer": timing(times[2]), "step": step,
        "tokens_per_s": args.batch * ctx / (step["mean_ms"] / 1e3),
        "memory_reserved": torch.cuda.max_memory_reserved(),
        "last_loss": loss.item(),
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="small,medium,large,xl")
    p.add_argument("--contexts", default="128,256,512,1024")
    p.add_argument("--precisions", default="f32,bf16-mixed")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--vocab", type=int, default=10000)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model (its compilation falls in the warm-up steps)")
    p.add_argument("--allow-tf32", action="store_true",
                   help="f32 matmuls on TF32 tensor cores (what burn's CUDA matmul does)")
    args = p.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = args.allow_tf32
    torch.backends.cudnn.allow_tf32 = args.allow_tf32
    for size in args.sizes.split(","):
        for ctx in map(int, args.contexts.split(",")):
            for precision in args.precisions.split(","):
                # "tf32": f32 tensors, TF32 tensor-core matmuls (our `precision = "tf32"`).
                tf32 = args.allow_tf32 or precision == "tf32"
                torch.backends.cuda.matmul.allow_tf32 = tf32
                torch.backends.cudnn.allow_tf32 = tf32
                row = {"size": size, "context": ctx, "precision": precision,
                       "impl": "pytorch " + torch.__version__ + (" tf32" if tf32 else "")
                       + (" compile" if args.compile else ""), "forward": None, "backward": None,
                       "optimizer": None, "step": None, "tokens_per_s": None,
                       "memory_reserved": None}
                try:
                    row.update(profile(size, ctx, precision, args), status="ok")
                except torch.cuda.OutOfMemoryError as e:
                    row.update(status="OOM", error="OOM")
                except Exception as e:  # report, keep going
                    row.update(status="failed", error=f"failed: {e}".splitlines()[0])
                torch.cuda.empty_cache()
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
