#!/usr/bin/env bash
# Lab-2 (and lab-1 throughput) runs on the device machine, after bench/gpu_pack.sh here.
# Phase `check`: golden conformance of labs 1 and 2 on cuda, then the lab-1 throughput
# comparison (bench/gpu_lab1.sh throughput). Phase `attention`: PyTorch SDPA and
# `cargo xtask bench attention` on the same grid. Text results are appended to $OUT/log.txt.
set -uo pipefail
phase=${1:-check}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0
source bench/gpu_unpack.sh
G=runs/gpu
X="bash $G/run-with-cuda.sh $G/xtask"
if [ "$phase" = check ]; then
    $X conformance --golden runs/golden --backend cuda --lab 1 --lab 2 2>&1 | tail -40 | tee -a "$OUT/log.txt"
    bash bench/gpu_lab1.sh throughput "${2:-150}"
elif [ "$phase" = flash-and-throughput ]; then
    # One call: the flash cases on cuda (every case line), lab-1 throughput, small attention grid.
    $X conformance --golden runs/golden --backend cuda --filter flash_attention 2>&1 | tee -a "$OUT/log.txt"
    bash bench/gpu_lab1.sh throughput "${2:-100}"
    PYTHONUNBUFFERED=1 python3 bench/pytorch_attention.py --grid small 2>&1 | tee -a "$OUT/log.txt"
    $X bench attention --backend cuda --grid small 2>&1 | grep -v '^JSON' | tee -a "$OUT/log.txt"
elif [ "$phase" = attention ]; then
    PYTHONUNBUFFERED=1 python3 bench/pytorch_attention.py --grid "${2:-full}" 2>&1 | tee -a "$OUT/log.txt"
    $X bench attention --backend cuda --grid "${2:-full}" 2>&1 | tee -a "$OUT/log.txt"
    tar -C $G -czf "$OUT/kernel-cache.tgz" kernel-cache
fi
