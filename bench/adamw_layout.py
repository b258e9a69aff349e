#!/usr/bin/env python3
"""Reads `cargo xtask bench adamw` output (its JSON lines) and prints the
LM_ADAMW_ALONE_VALUES value of the layout with the least total time over the sizes every
layout finished: 1 for `alone`, N for `alone-from-N`, and a value above any parameter
count for `concat`.

Usage: python3 bench/adamw_layout.py ADAMW_OUTPUT
"""
import json, sys
from collections import defaultdict

rows = [json.loads(line[5:]) for line in open(sys.argv[1]) if line.startswith("JSON ")]
times = defaultdict(dict)
for row in rows:
    if row["ours_ms"] is not None:
        times[row["layout"]][row["size"]] = row["ours_ms"]
if not times:
    sys.exit("no finished rows")
common = set.intersection(*(set(t) for t in times.values()))
best = min(times, key=lambda layout: sum(times[layout][s] for s in common))
if best == "alone":
    print(1)
elif best.startswith("alone-from-"):
    print(best[len("alone-from-"):])
else:
    print(2**62)
