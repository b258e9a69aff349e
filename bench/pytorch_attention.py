#!/usr/bin/env python3
"""PyTorch baseline for `cargo xtask bench attention`: torch.nn.functional.scaled_dot_product_attention
on the same grid (mirrors `grid()` in xtask/src/bench/attention.rs), forward and forward+backward
latency with CUDA events, TFLOP/s by the FlashAttention-2 paper's count (backward = 2.5x forward).
Prints one JSON line per shape; out-of-memory shapes are reported as OOM.

Usage: python3 bench/pytorch_attention.py [--grid quick|small|large|full|head-dims]
"""
import argparse, json

import torch
import torch.nn.functional as F


def grid(which):
    shape = lambda b, s, d, bf16: dict(batch=b, heads=16, seq=s, head_dim=d, bf16=bf16, causal=True)
    if which == "quick":
        return [shape(1, 128, 64, False), shape(1, 256, 32, False)]
    if which == "head-dims":
        return [shape(1, 1000, 16 * i, True) for i in range(1, 9)]
    bf16_causal = lambda seqs: [shape(1, s, d, True) for s in seqs for d in [64, 128]]
    if which == "small":
        return bf16_causal([1024, 4096, 16384])
    if which == "large":
        return bf16_causal([4096, 8192, 16384])
    shapes = bf16_causal([4096, 8192, 16384]) + bf16_causal([128, 512, 1024, 2048])
    shapes += [shape(1, 4096, d, True) for d in [16, 32]]
    for s in [1024, 4096]:
        shapes += [shape(1, s, 64, False), shape(8, s, 64, True)]
    return shapes


def time_ms(fn, min_s=0.3):
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    calls, total = 0, 0.0
    while calls < 3 or total < min_s * 1e3:
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        total += start.elapsed_time(end)
        calls += 1
    return total / calls


def run(shape):
    dtype = torch.bfloat16 if shape["bf16"] else torch.float32
    dims = (shape["batch"], shape["heads"], shape["seq"], shape["head_dim"])
    q, k, v, do = (torch.randn(dims, device="cuda", dtype=dtype) for _ in range(4))
    causal = shape["causal"]
    with torch.no_grad():
        fwd = time_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))
    qg, kg, vg = (t.clone().requires_grad_() for t in (q, k, v))

    def fwd_bwd():
        o = F.scaled_dot_product_attention(qg, kg, vg, is_causal=causal)
        o.backward(do)

    both = time_ms(fwd_bwd)
    flops = 4 * shape["batch"] * shape["heads"] * shape["seq"] ** 2 * shape["head_dim"] / (2 if causal else 1)
    return dict(fwd_ms=fwd, fwd_bwd_ms=both, bwd_ms=both - fwd, fwd_tflops=flops / fwd / 1e9,
                fwd_bwd_tflops=3.5 * flops / both / 1e9)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--grid", choices=["quick", "small", "large", "full", "head-dims"], default="full")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    for shape in grid(args.grid):
        rec = dict(shape=shape, impl=f"pytorch {torch.__version__} sdpa")
        try:
            rec.update(run(shape), status="ok")
        except torch.cuda.OutOfMemoryError:
            rec["status"] = "OOM"
        torch.cuda.empty_cache()
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
