#!/usr/bin/env python3
"""Markdown tables for docs/PERF.md from the log.txt files of `bench/gpu_lab2.sh attention`
and `bench/gpu_lab2.sh profile` (one or more device calls; a case measured twice keeps its
last measurement).

- attention: ours (flash), burn's unfused attention (plain) and PyTorch SDPA per shape (ms),
  and our speed relative to SDPA's = SDPA ms / ours (1: as fast; the target is 0.8).
- profile: our forward / backward / optimizer ms (mean ± std), step, tokens/s and reserved
  memory beside PyTorch's step time and memory; speedup = PyTorch step / ours.

Usage: python3 bench/gpu_tables.py attention|profile LOG...
"""
import json, re, sys


def records(paths):
    """(is_ours, record) for every JSON line; ours are printed by xtask with a `JSON ` prefix."""
    for path in paths:
        for line in open(path):
            line = line.strip()
            ours = line.startswith("JSON {")
            if ours:
                line = line[5:]
            if line.startswith("{"):
                try:
                    yield ours, json.loads(line)
                except json.JSONDecodeError:
                    pass


def ms(v):
    return "—" if v is None else f"{v:.3f}" if v < 10 else f"{v:.1f}"


def attention(paths):
    rows = {}
    for ours, r in records(paths):
        if "shape" not in r:
            continue
        s = r["shape"]
        key = (s["batch"], s["heads"], s["seq"], s["head_dim"], s["bf16"], s["causal"])
        impl = r["impl"] if ours else "sdpa"
        rows.setdefault(key, {})[impl] = r

    def cell(r, field):
        if r is None:
            return "—"
        return ms(r.get(field)) if r.get("status", "ok") == "ok" else r["status"]

    def ratio(torch, ours, field):
        ok = torch and ours and torch.get("status") == "ok" and ours.get("status", "ok") == "ok"
        return f"{torch[field] / ours[field]:.2f}" if ok else "—"

    print("| b | seq | d | dtype | SDPA fwd | flash fwd | unfused fwd | SDPA fwd+bwd | "
          "flash fwd+bwd | unfused fwd+bwd | flash TFLOP/s | flash÷SDPA speed fwd | "
          "flash÷SDPA speed fwd+bwd | flash max err |")
    print("|" + "---:|" * 4 + "---:|" * 10)
    for key, impls in rows.items():
        b, _, seq, d, bf16, _ = key
        t, f, p = impls.get("sdpa"), impls.get("flash"), impls.get("plain")
        err = f.get("max_err") if f else None
        tf = f.get("fwd_bwd_tflops") if f and f.get("status", "ok") == "ok" else None
        print(f"| {b} | {seq} | {d} | {'bf16' if bf16 else 'f32'} | {cell(t, 'fwd_ms')} | "
              f"{cell(f, 'fwd_ms')} | {cell(p, 'fwd_ms')} | {cell(t, 'fwd_bwd_ms')} | "
              f"{cell(f, 'fwd_bwd_ms')} | {cell(p, 'fwd_bwd_ms')} | "
              f"{'—' if tf is None else f'{tf:.2f}'} | {ratio(t, f, 'fwd_ms')} | "
              f"{ratio(t, f, 'fwd_bwd_ms')} | {'—' if err is None else f'{err:.1e}'} |")


def profile(paths):
    ours, torch, failed = {}, {}, {}
    for is_ours, r in records(paths):
        if is_ours and "case" in r:
            c = r["case"]
            ours[(c["size"], c["context"], c["precision"])] = r
        elif not is_ours and "size" in r:
            torch[(r["size"], r["context"], r["precision"])] = r
    # Our cases that ended without a result: "[i/n] size ctx N precision: reason (...)".
    pattern = re.compile(r"^\[\d+/\d+\] (\S+) ctx (\d+) (\S+): (.*) \(\d+ s so far\)$")
    for path in paths:
        for line in open(path):
            m = pattern.match(line.strip())
            if m and not m.group(4).startswith("step "):
                failed[(m.group(1), int(m.group(2)), m.group(3))] = m.group(4)

    def timing(t):
        return "—" if t is None else f"{t['mean_ms']:.1f} ± {t['std_ms']:.1f}"

    def gb(b):
        return "—" if b is None else f"{b / 2**30:.1f}"

    print("| size | ctx | precision | fwd ms | bwd ms | opt ms | step ms | tokens/s | "
          "mem GiB | PyTorch step ms | PyTorch tokens/s | PyTorch mem GiB | speedup |")
    print("|---|---:|---|" + "---:|" * 10)
    sizes = ["tiny", "small", "medium", "large", "xl"]
    keys = sorted(set(ours) | set(torch) | set(failed),
                  key=lambda k: (sizes.index(k[0]) if k[0] in sizes else 9, k[1], k[2] != "f32"))
    for key in keys:
        o, t = ours.get(key), torch.get(key)
        t_ok = t is not None and t.get("status") == "ok"
        if o is not None:
            mine = [timing(o["forward"]), timing(o["backward"]), timing(o["optimizer"]),
                    timing(o["step"]), f"{o['tokens_per_s']:,.0f}", gb(o.get("memory_reserved"))]
        else:
            mine = [failed.get(key, "not run")] + ["—"] * 5
        theirs = ([timing(t["step"]), f"{t['tokens_per_s']:,.0f}", gb(t.get("memory_reserved"))]
                  if t_ok else [t["status"] if t else "not run", "—", "—"])
        speedup = (f"{t['step']['mean_ms'] / o['step']['mean_ms']:.2f}×"
                   if o is not None and t_ok else "—")
        print(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(mine + theirs + [speedup]) + " |")


if __name__ == "__main__":
    {"attention": attention, "profile": profile}[sys.argv[1]](sys.argv[2:])
