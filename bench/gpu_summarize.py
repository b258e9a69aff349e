#!/usr/bin/env python3
"""One JSON line summarising a run directory's metrics.jsonl: median tokens/s and MFU over
steps 51.. (after compilation and autotuning), the last loss and the eval losses.
Usage: python3 bench/gpu_summarize.py RUN_DIR LABEL"""
import json, statistics, sys

rows = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl") if l.strip()]
steps = [r for r in rows if "loss" in r]
evals = [r for r in rows if "eval_loss" in r]
warm = steps[50:] or steps
print(json.dumps({
    "impl": sys.argv[2], "steps": len(steps),
    "median_tokens_per_s": statistics.median(r["tokens_per_s"] for r in warm),
    "median_mfu": statistics.median(r.get("mfu", 0) for r in warm),
    "last_loss": steps[-1]["loss"],
    "evals": [(e["step"], round(e["eval_loss"], 4)) for e in evals],
    "wall_s": steps[-1]["wall_s"],
}))
