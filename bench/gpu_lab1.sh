#!/usr/bin/env bash
# Lab-1 GPU runs on the device machine, after bench/gpu_pack.sh here (runs/gpu carried:
# lm, run-with-cuda.sh, tokenizer/, train.bin, valid.bin, optional kernel-cache.tgz).
# Phase `first`: PyTorch baseline + our run for $2 s; `resume`: continue it (same warm
# machine) and sample; `throughput`: PyTorch eager baselines + a fresh run of ours (tokens/s
# and a per-phase profile, plain attention), then a second fresh process with the flash
# kernel, which also times the warm start from the on-disk kernel cache ($LM_KERNEL_CACHE, archived into $OUT for the next machine).
# Text results are appended to $OUT/log.txt (the device returns at most 8 files).
set -uo pipefail
phase=${1:-first}
budget=${2:-300}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
LOG="$OUT/log.txt"
export NCCL_NVLS_ENABLE=0
source bench/gpu_unpack.sh
G=runs/gpu
RUN=runs/gpu-run
LM="bash $G/run-with-cuda.sh $G/lm"
CFG=fixtures/configs/tinystories-gpu.toml
summarize() { python3 bench/gpu_summarize.py "$1" "$2" | tee -a "$LOG"; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee -a "$LOG"
if [ "$phase" = throughput ]; then
    RUN=runs/gpu-throughput
    PYTHONUNBUFFERED=1 python3 bench/pytorch_lm.py --steps 30 --warmup 5 --modes eager-f32,eager-bf16 2>&1 | grep '^{' | tee -a "$LOG"
    echo "kernel cache before: $(du -sh "$LM_KERNEL_CACHE" 2>/dev/null)" | tee -a "$LOG"
    # Plain (tensor-op) attention, as in the earlier runs; then a second process with the
    # FlashAttention-2 kernel, which also times the warm start from the on-disk kernel cache.
    $LM train --config $CFG --run-dir $RUN --set train.max_seconds=$budget --set train.eval_interval=0 \
        --set train.checkpoint_interval=0 --set train.profile_steps=20 --set model.attention=plain \
        2>&1 | tail -12 | tee -a "$LOG"
    cp $RUN/profile.json "$OUT/" 2>/dev/null
    $LM train --config $CFG --run-dir runs/gpu-warm --set train.steps=${WARM_STEPS:-600} --set train.eval_interval=0 \
        --set train.checkpoint_interval=0 2>&1 | tail -2 | tee -a "$LOG"
    echo "second process (flash attention), first flush: $(head -1 runs/gpu-warm/metrics.jsonl)" | tee -a "$LOG"
    summarize runs/gpu-warm "ours (burn 0.21 cuda, f32, flash attention kernel)"
    echo "kernel cache after: $(du -sh "$LM_KERNEL_CACHE")" | tee -a "$LOG"
elif [ "$phase" = first ]; then
    PYTHONUNBUFFERED=1 python3 bench/pytorch_lm.py --steps 30 --warmup 5 2>&1 | grep '^{' | tee -a "$LOG"
    $LM train --config $CFG --run-dir $RUN --set train.max_seconds=$budget 2>&1 | tail -30 | tee -a "$LOG"
else
    $LM train --config $CFG --run-dir $RUN --set train.max_seconds=$budget --resume 2>&1 | tail -30 | tee -a "$LOG"
    $LM generate --checkpoint $RUN/checkpoint.safetensors --tokenizer $G/tokenizer \
        --prompt "Once upon a time" --prompt "The old man said" --prompt "In the morning, the ship" \
        --max-tokens 80 --temperature 0.8 --top-p 0.95 --seed 1 2>&1 | tee -a "$LOG"
fi
summarize "$RUN" "ours (burn 0.21 cuda, f32, plain attention)"
cp $RUN/loss_curve.png "$OUT/" 2>/dev/null
gzip -c $RUN/metrics.jsonl > "$OUT/metrics.jsonl.gz"
tar -C "$(dirname "$LM_KERNEL_CACHE")" -czf "$OUT/kernel-cache.tgz" "$(basename "$LM_KERNEL_CACHE")"
