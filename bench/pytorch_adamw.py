#!/usr/bin/env python3
"""PyTorch peer of `cargo xtask bench adamw`: reads a JSON list of cases
({"size", "shapes": [[...], ...]}) on stdin and, for each, times the lab-2 harness's
optimizer phase on parameters of those shapes with fixed random gradients:
torch.nn.utils.clip_grad_norm_(params, 1.0) + torch.optim.AdamW(fused=True), a device sync
after every step (as bench/pytorch_profile.py does). Prints one JSON line per case:
{"size", "ms"} ("ms" null when the case does not fit in memory).
"""
import json, sys, time

import torch


def time_case(shapes, min_calls=5, min_seconds=0.5, warmup=2):
    dev = "cuda"
    gen = torch.Generator(device=dev).manual_seed(0)
    params = []
    for shape in shapes:
        p = torch.nn.Parameter(torch.randn(shape, device=dev, generator=gen) * 0.02)
        p.grad = torch.randn(shape, device=dev, generator=gen) * 1e-3
        params.append(p)
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)

    def step():
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    calls, start = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < min_seconds:
        step()
        calls += 1
    return (time.perf_counter() - start) / calls * 1e3


def main():
    for case in json.load(sys.stdin):
        torch.cuda.empty_cache()
        try:
            ms = time_case(case["shapes"])
        except torch.OutOfMemoryError:
            ms = None
        print(json.dumps({"size": case["size"], "ms": ms}), flush=True)


if __name__ == "__main__":
    main()
