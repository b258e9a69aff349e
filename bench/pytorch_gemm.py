#!/usr/bin/env python3
"""PyTorch peer of `cargo xtask bench gemm`: reads the case list (JSON) on stdin, times
each product with torch.matmul on the GPU laid out as the Rust side lays it out
(fwd: x @ W.t(), dx: dY @ W, dw: dY.t() @ X), and prints one JSON line per case, in order:
{"ms": mean milliseconds per product}. Precision "f32" is strict (no TF32), "tf32" allows
TF32, "bf16" is bf16 in and out with f32 accumulation (cuBLAS's default).
CUDA events around 3 warm-up + N calls, N so that the timed part lasts >= 0.2 s."""
import json
import sys

import torch


def operands(case, dtype):
    m, n, k, kind = case["m"], case["n"], case["k"], case["kind"]
    r = lambda *shape: torch.randn(*shape, device="cuda", dtype=dtype)
    if kind == "fwd":
        return r(m, k), r(n, k).t()
    if kind == "dx":
        return r(m, k), r(k, n)
    return r(k, m).t(), r(k, n)  # dw


def time_ms(f):
    for _ in range(3):
        f()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    calls, elapsed = 5, 0.0
    while True:
        start.record()
        for _ in range(calls):
            f()
        end.record()
        end.synchronize()
        elapsed = start.elapsed_time(end)
        if elapsed >= 200.0:
            return elapsed / calls
        calls *= 2


def main():
    cases = json.load(sys.stdin)
    for case in cases:
        precision = case["precision"]
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        try:
            a, b = operands(case, dtype)
            ms = time_ms(lambda: torch.matmul(a, b))
            print(json.dumps({"ms": ms}), flush=True)
        except torch.cuda.OutOfMemoryError:
            print(json.dumps({"ms": None, "status": "OOM"}), flush=True)
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
