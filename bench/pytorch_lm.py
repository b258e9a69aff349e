#!/usr/bin/env python3
"""PyTorch baseline for `lm train`: the same Transformer LM (the CS336 handout's: RMSNorm
pre-norm, causal MHA with interleaved RoPE, SwiGLU, untied LM head) and the handout's AdamW,
timed on random tokens. Prints one JSON line per configuration with tokens/s and MFU.

Usage: python3 bench/pytorch_lm.py [--steps 30] [--batch 32] [--modes eager-f32,eager-bf16,compile-f32,compile-bf16]
Model sizes default to the course's TinyStories configuration.
"""
import argparse, json, math, time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return (x * self.weight).to(dtype)


def rope_tables(d_k, max_len, theta, device):
    k = torch.arange(d_k // 2, dtype=torch.float64)
    inv = theta ** (-2 * k / d_k)
    ang = torch.arange(max_len, dtype=torch.float64)[:, None] * inv[None, :]
    return ang.cos().float().to(device), ang.sin().float().to(device)


def apply_rope(x, cos, sin):
    # interleaved pairs (x[2k], x[2k+1])
    x1, x2 = x[..., 0::2], x[..., 1::2]
    y1 = x1 * cos - x2 * sin
    y2 = x1 * sin + x2 * cos
    return torch.stack((y1, y2), dim=-1).flatten(-2)


class Block(nn.Module):
    def __init__(self, d, h, d_ff, sdpa=False):
        super().__init__()
        self.h, self.sdpa = h, sdpa
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, d, bias=False)
        self.v = nn.Linear(d, d, bias=False)
        self.o = nn.Linear(d, d, bias=False)
        self.w1 = nn.Linear(d, d_ff, bias=False)
        self.w2 = nn.Linear(d_ff, d, bias=False)
        self.w3 = nn.Linear(d, d_ff, bias=False)
        self.ln1, self.ln2 = RMSNorm(d), RMSNorm(d)

    def forward(self, x, cos, sin):
        b, t, d = x.shape
        hx = self.ln1(x)
        split = lambda z: z.view(b, t, self.h, d // self.h).transpose(1, 2)
        q, k, v = split(self.q(hx)), split(self.k(hx)), split(self.v(hx))
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if self.sdpa:  # PyTorch's fused attention (FlashAttention-2 on CUDA)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # plain attention as in the handout (our plain path is unfused too)
            s = (q @ k.transpose(-1, -2)) / math.sqrt(d // self.h)
            mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
            a = torch.softmax(s.masked_fill(~mask, float("-inf")), dim=-1) @ v
        x = x + self.o(a.transpose(1, 2).reshape(b, t, d))
        hx = self.ln2(x)
        return x + self.w2(F.silu(self.w1(hx)) * self.w3(hx))


class LM(nn.Module):
    def __init__(self, vocab, ctx, d, layers, h, d_ff, theta, sdpa=False):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(Block(d, h, d_ff, sdpa) for _ in range(layers))
        self.ln = RMSNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.ctx, self.d_k, self.theta = ctx, d // h, theta

    def forward(self, ids):
        cos, sin = rope_tables(self.d_k, ids.shape[1], self.theta, ids.device)
        x = self.emb(ids)
        for b in self.blocks:
            x = b(x, cos, sin)
        return self.head(self.ln(x))


class HandoutAdamW(torch.optim.Optimizer):
    """The handout's Algorithm 1 (decay after the step, eps on sqrt(v))."""

    def __init__(self, params, lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for g in self.param_groups:
            b1, b2 = g["betas"]
            for p in g["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                if not st:
                    st["t"], st["m"], st["v"] = 0, torch.zeros_like(p), torch.zeros_like(p)
                st["t"] += 1
                t = st["t"]
                st["m"].mul_(b1).add_(p.grad, alpha=1 - b1)
                st["v"].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
                a = g["lr"] * math.sqrt(1 - b2**t) / (1 - b1**t)
                p.addcdiv_(st["m"], st["v"].sqrt().add_(g["eps"]), value=-a)
                p.mul_(1 - g["lr"] * g["weight_decay"])


def flops_per_token(vocab, ctx, d, layers, d_ff):
    per_layer = 8 * d * d + 4 * ctx * d + 6 * d * d_ff
    return 3 * (layers * per_layer + 2 * d * vocab)


def bench(mode, args):
    torch.manual_seed(0)
    dev = "cuda"
    model = LM(args.vocab, args.ctx, args.d_model, args.layers, args.heads, args.d_ff, 1e4).to(dev)
    opt = HandoutAdamW(model.parameters(), lr=1e-3)
    compiled, prec = mode.split("-")
    fwd = torch.compile(model) if compiled == "compile" else model
    torch.backends.cuda.matmul.allow_tf32 = False  # f32 means IEEE f32, as our f32 precision
    ids = torch.randint(0, args.vocab, (args.batch, args.ctx + 1), device=dev)
    x, y = ids[:, :-1], ids[:, 1:]

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=prec == "bf16"):
            logits = fwd(x)
            loss = F.cross_entropy(logits.float().view(-1, args.vocab), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    t0 = time.time()
    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    warm_s = time.time() - t0
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(args.steps):
        loss = step()
    end.record()
    torch.cuda.synchronize()
    ms = start.elapsed_time(end) / args.steps
    tps = args.batch * args.ctx / (ms / 1e3)
    fpt = flops_per_token(args.vocab, args.ctx, args.d_model, args.layers, args.d_ff)
    peak = 989e12 if prec == "bf16" else 67e12
    return dict(impl="pytorch " + torch.__version__, mode=mode, batch=args.batch, ctx=args.ctx,
                ms_per_step=ms, tokens_per_s=tps, mfu=fpt * tps / peak, peak_tflops=peak / 1e12,
                warmup_s=warm_s, loss=float(loss))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--vocab", type=int, default=10000)
    p.add_argument("--ctx", type=int, default=256)
    p.add_argument("--d-model", type=int, default=512)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--d-ff", type=int, default=1344)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--modes", default="eager-f32,eager-bf16,compile-f32,compile-bf16")
    args = p.parse_args()
    for mode in args.modes.split(","):
        print(json.dumps(bench(mode, args)), flush=True)


if __name__ == "__main__":
    main()
