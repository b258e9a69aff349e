#!/usr/bin/env bash
# Lab-2 (and lab-1 throughput) runs on the device machine, after bench/gpu_pack.sh here.
# Phase `check`: golden conformance of labs 1 and 2 on cuda, then the lab-1 throughput
# comparison (bench/gpu_lab1.sh throughput). Phase `precision`: the same conformance plus
# the cross-entropy cases, then PyTorch eager f32/bf16 beside our trainer in f32 and
# bf16-mixed (and bf16-mixed with the tensor-op cross-entropy, LM_CUDA_FUSED_CE=0).
# Phase `profile [sizes] [contexts] [seconds]`: `cargo xtask lab2` on cuda beside
# bench/pytorch_profile.py. Phase `attention [grid] [seconds]`: PyTorch SDPA and
# `cargo xtask bench attention` on the same grid. Phase `flash [grid] [seconds]`: the
# flash_attention golden cases on cuda, then the `attention` phase's grid (unfused to 4096).
# Phase `flash-train [steps] [seconds]`: bf16-mixed lab-1 training with the tensor-core
# attention kernels and with the portable ones. Phase `modes`: the golden cases of labs 1-2
# on cuda with `--precision f32` and `--precision tf32`. Phase `adamw-train [steps]
# [seconds]`: bf16-mixed training with the AdamW kernel and with tensor ops. `seconds` (0: none) is the phase's time:
# our part stops when it is up, keeping the cases it finished (each is logged as it ends), so
# one device call can hold several phases. Phase `gemm [seconds]`: golden conformance of
# labs 1 and 2 on cuda (strict f32 through cuBLASLt), then `cargo xtask bench gemm` beside
# bench/pytorch_gemm.py and burn's own matmul on a subset. Phase `gemm-train [seconds]
# [steps]`, `gemm-order [steps]`, `gemm-quick [steps]`, `sizes [precisions] [ours s] [total s]`,
# `head-dims [xl seconds]`, `adamw [layouts] [seconds]`, `fusion-probe [adamw s] [harness s]`:
# see below.
# Text results are appended to $OUT/log.txt.
set -uo pipefail
phase=${1:-check}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0
source bench/gpu_unpack.sh
G=runs/gpu
X="bash $G/run-with-cuda.sh $G/xtask"
# Seconds left of the phase's time $1 (0: no limit; at least 1 once it is up).
left() { if [ "$1" -gt 0 ]; then echo $(( $1 - SECONDS > 1 ? $1 - SECONDS : 1 )); else echo 0; fi; }
# Lab-1 training (TinyStories config) for $steps steps within $BUDGET seconds of the phase.
train() { # run-dir label extra-settings...
    local dir=$1 label=$2; shift 2
    timeout "$(left "${BUDGET:-0}")" $LM train --config $CFG --run-dir $dir --set train.steps=$steps \
        --set train.eval_interval=$steps --set train.checkpoint_interval=0 "$@" 2>&1 | tail -4 | tee -a "$LOG"
    python3 bench/gpu_summarize.py $dir "$label" | tee -a "$LOG"
}
LM="bash $G/run-with-cuda.sh $G/lm"
CFG=fixtures/configs/tinystories-gpu.toml
LOG="$OUT/log.txt"
if [ "$phase" = check ]; then
    $X conformance --golden runs/golden --backend cuda --lab 1 --lab 2 2>&1 | tail -40 | tee -a "$OUT/log.txt"
    bash bench/gpu_lab1.sh throughput "${2:-150}"
elif [ "$phase" = flash-and-throughput ]; then
    # One call: the flash cases on cuda (every case line), lab-1 throughput, small attention grid.
    $X conformance --golden runs/golden --backend cuda --filter flash_attention 2>&1 | tee -a "$OUT/log.txt"
    bash bench/gpu_lab1.sh throughput "${2:-100}"
    PYTHONUNBUFFERED=1 python3 bench/pytorch_attention.py --grid small 2>&1 | tee -a "$OUT/log.txt"
    $X bench attention --backend cuda --grid small 2>&1 | grep -v '^JSON' | tee -a "$OUT/log.txt"
elif [ "$phase" = precision ]; then
    steps=${2:-400}
    $X conformance --golden runs/golden --backend cuda --lab 1 --lab 2 2>&1 | tail -30 | tee -a "$LOG"
    $X conformance --golden runs/golden --backend cuda --filter cross_entropy 2>&1 \
        | tail -8 | tee -a "$LOG"
    PYTHONUNBUFFERED=1 python3 bench/pytorch_lm.py --steps 30 --warmup 5 --modes eager-f32,eager-bf16 2>&1 \
        | grep '^{' | tee -a "$LOG"
    train() { # run-dir label extra-settings...
        local dir=$1 label=$2; shift 2
        $LM train --config $CFG --run-dir $dir --set train.steps=$steps --set train.eval_interval=0 \
            --set train.checkpoint_interval=0 --set train.profile_steps=20 "$@" 2>&1 | tail -9 | tee -a "$LOG"
        python3 bench/gpu_summarize.py $dir "$label" | tee -a "$LOG"
    }
    train runs/gpu-f32 "ours f32, flash" --set model.precision=f32
    train runs/gpu-bf16 "ours bf16-mixed, flash" --set model.precision=bf16-mixed --set train.peak_tflops=989
    tar -C "$(dirname "$LM_KERNEL_CACHE")" -czf "$OUT/kernel-cache.tgz" "$(basename "$LM_KERNEL_CACHE")"
    export LM_CUDA_FUSED_CE=0
    train runs/gpu-bf16-noce "ours bf16-mixed, flash, tensor-op CE" \
        --set model.precision=bf16-mixed --set train.peak_tflops=989
elif [ "$phase" = profile ]; then
    # The lab-2 profiling harness beside PyTorch (fused SDPA + fused AdamW); $2 sizes, $3
    # contexts, $5 precisions (comma lists; "tf32" = f32 with TF32 matmuls on both sides).
    sizes=${2:-small,medium,large,xl}; contexts=${3:-128,256,512,1024}
    precisions=${5:-tf32,bf16-mixed}
    PYTHONUNBUFFERED=1 python3 bench/pytorch_profile.py --sizes $sizes --contexts $contexts \
        --precisions $precisions 2>&1 | tee runs/torch-profile.jsonl | tee -a "$OUT/log.txt"
    timeout "$(left "${4:-0}")" $X lab2 --backend cuda --size $sizes --context $contexts \
        --precision $precisions --baseline runs/torch-profile.jsonl --run-dir runs/lab2-gpu 2>&1 | tee -a "$OUT/log.txt"
    cp runs/lab2-gpu/profile.csv runs/lab2-gpu/profile.png runs/lab2-gpu/profile.md "$OUT/" 2>/dev/null
    tar -C "$(dirname "$LM_KERNEL_CACHE")" -czf "$OUT/kernel-cache.tgz" "$(basename "$LM_KERNEL_CACHE")"
elif [ "$phase" = gemm ]; then
    timeout 240 $X conformance --golden runs/golden --backend cuda --lab 1 --lab 2 2>&1 | tail -25 | tee -a "$LOG"
    timeout 200 $X bench gemm --backend cuda 2>&1 | tee "$OUT/gemm.txt" | grep -v '^JSON' | tee -a "$LOG"
    timeout "$(left "${2:-0}")" $X bench gemm --backend cuda --size small,xl --kind fwd,dw \
        --precision f32,bf16 --with-burn --skip-peer 2>&1 | tee "$OUT/gemm-burn.txt" | grep -v '^JSON' | tee -a "$LOG"
    tar -C "$(dirname "$LM_KERNEL_CACHE")" -czf "$OUT/kernel-cache.tgz" "$(basename "$LM_KERNEL_CACHE")"
elif [ "$phase" = gemm-train ]; then
    # One call: `gemm` without burn's matmul (with the algorithm tuning's timings), lab-1
    # training (TinyStories config, $3 steps, ≥ 250: the config warms up for 200) in
    # bf16-mixed, bf16-mixed with the products ordered through the host
    # (LM_CUDA_GEMM_SYNC=host), f32 (and tf32 with WITH_TF32=1) beside PyTorch eager
    # f32/bf16, then the lab 1-2 golden cases on cuda, all within $2 seconds.
    steps=${3:-250}
    BUDGET=${2:-0}
    LM_CUBLASLT_LOG=1 timeout 150 $X bench gemm --backend cuda --size "${GEMM_SIZES:-small,medium,large,xl}" 2>&1 \
        | tee "$OUT/gemm.txt" | grep -v '^JSON' | tee -a "$LOG"
    PYTHONUNBUFFERED=1 timeout 60 python3 bench/pytorch_lm.py --steps 30 --warmup 5 --modes eager-f32,eager-bf16 2>&1 \
        | grep '^{' | tee -a "$LOG"
    train runs/gpu-bf16 "ours bf16-mixed (cuBLASLt)" --set model.precision=bf16-mixed --set train.peak_tflops=989
    LM_CUDA_GEMM_SYNC=host train runs/gpu-bf16-host "ours bf16-mixed (cuBLASLt, host-ordered)" \
        --set model.precision=bf16-mixed --set train.peak_tflops=989
    train runs/gpu-f32 "ours f32 (cuBLASLt strict)" --set model.precision=f32
    if [ -n "${WITH_TF32:-}" ]; then train runs/gpu-tf32 "ours tf32 (cuBLASLt)" --set model.precision=tf32; fi
    tar -C "$(dirname "$LM_KERNEL_CACHE")" -czf "$OUT/kernel-cache.tgz" "$(basename "$LM_KERNEL_CACHE")"
    timeout "$(left "$BUDGET")" $X conformance --golden runs/golden --backend cuda --lab 1 --lab 2 2>&1 | tail -25 | tee -a "$LOG"
    tar -C "$(dirname "$LM_KERNEL_CACHE")" -czf "$OUT/kernel-cache.tgz" "$(basename "$LM_KERNEL_CACHE")"
elif [ "$phase" = gemm-order ]; then
    # A short check of the device-flag ordering of cuBLASLt products: one bf16 product shape
    # (60 s; should it hang or fail, CUDA_MODULE_LOADING=EAGER is set for the rest), lab-1
    # bf16-mixed training ($2 steps) with the flags and with host ordering
    # (LM_CUDA_GEMM_SYNC=host), the GEMM bench on the small and xl sizes beside PyTorch, then
    # the lab 1-2 golden cases; each part with its own time bound.
    steps=${2:-250}
    if ! LM_CUBLASLT_LOG=1 timeout 60 $X bench gemm --backend cuda --size small --precision bf16 \
        --kind fwd --skip-peer 2>&1 | tee -a "$LOG"; then
        echo "== flag ordering hung or failed: CUDA_MODULE_LOADING=EAGER from here" | tee -a "$LOG"
        export CUDA_MODULE_LOADING=EAGER
    fi
    BUDGET=$((SECONDS + 100)) train runs/gpu-bf16 "ours bf16-mixed (cuBLASLt, device-ordered)" \
        --set model.precision=bf16-mixed --set train.peak_tflops=989
    LM_CUDA_GEMM_SYNC=host BUDGET=$((SECONDS + 100)) train runs/gpu-bf16-host \
        "ours bf16-mixed (cuBLASLt, host-ordered)" --set model.precision=bf16-mixed --set train.peak_tflops=989
    LM_CUBLASLT_LOG=1 timeout 110 $X bench gemm --backend cuda --size small,xl 2>&1 \
        | tee "$OUT/gemm.txt" | grep -v '^JSON' | tee -a "$LOG"
    timeout 90 $X conformance --golden runs/golden --backend cuda --lab 1 --lab 2 2>&1 | tail -25 | tee -a "$LOG"
    tar -C "$(dirname "$LM_KERNEL_CACHE")" -czf "$OUT/kernel-cache.tgz" "$(basename "$LM_KERNEL_CACHE")"
elif [ "$phase" = gemm-quick ]; then
    # The shortest comparison with PyTorch: eager bf16 (and f32), our bf16-mixed training
    # ($2 steps, device-ordered cuBLASLt products enqueued on cubecl's server thread, then
    # from the calling thread: LM_CUDA_GEMM_THREAD=caller), the GEMM bench on small and xl.
    steps=${2:-250}
    PYTHONUNBUFFERED=1 timeout 60 python3 bench/pytorch_lm.py --steps 30 --warmup 5 --modes eager-f32,eager-bf16 2>&1 \
        | grep '^{' | tee -a "$LOG"
    BUDGET=$((SECONDS + 100)) train runs/gpu-bf16 "ours bf16-mixed (cuBLASLt, device-ordered)" \
        --set model.precision=bf16-mixed --set train.peak_tflops=989
    LM_CUDA_GEMM_THREAD=caller BUDGET=$((SECONDS + 90)) train runs/gpu-bf16-caller \
        "ours bf16-mixed (cuBLASLt, device-ordered, enqueued from the caller)" \
        --set model.precision=bf16-mixed --set train.peak_tflops=989
    LM_CUBLASLT_LOG=1 timeout 100 $X bench gemm --backend cuda --size small,xl 2>&1 \
        | tee "$OUT/gemm.txt" | grep -v '^JSON' | tee -a "$LOG"
    tar -C "$(dirname "$LM_KERNEL_CACHE")" -czf "$OUT/kernel-cache.tgz" "$(basename "$LM_KERNEL_CACHE")"
elif [ "$phase" = sizes ]; then
    # Issue 13's size table in one call, at context 512 for the course's four sizes in
    # precisions $2: the lab 1-2 golden cases on cuda (unless SKIP_CONFORMANCE=1), PyTorch
    # eager, ours (`xtask lab2`, FlashAttention kernel, within $3 seconds), ours in bf16-mixed
    # with the plain attention (cuBLASLt score/value products) when PLAIN_SECONDS > 0, then
    # PyTorch with torch.compile within what is left of $4 seconds.
    precisions=${2:-bf16-mixed,f32}; BUDGET=${4:-0}; sizes=${SIZES:-small,medium,large,xl}
    if [ -z "${SKIP_CONFORMANCE:-}" ]; then
        timeout 100 $X conformance --golden runs/golden --backend cuda --lab 1 --lab 2 2>&1 | tail -6 | tee -a "$LOG"
    fi
    PYTHONUNBUFFERED=1 timeout 150 python3 bench/pytorch_profile.py --sizes $sizes --contexts 512 \
        --precisions $precisions 2>&1 | tee runs/torch-profile.jsonl | tee -a "$LOG"
    timeout "${3:-240}" $X lab2 --backend cuda --size $sizes --context 512 \
        --precision $precisions --baseline runs/torch-profile.jsonl --run-dir runs/lab2-gpu 2>&1 | tee -a "$LOG"
    cp runs/lab2-gpu/profile.csv runs/lab2-gpu/profile.md "$OUT/" 2>/dev/null
    if [ "${PLAIN_SECONDS:-0}" -gt 0 ]; then
        echo "== plain attention" | tee -a "$LOG"
        timeout "$PLAIN_SECONDS" $X lab2 --backend cuda --size $sizes --context 512 \
            --precision bf16-mixed --attention plain --baseline runs/torch-profile.jsonl \
            --run-dir runs/lab2-gpu-plain 2>&1 | tee -a "$LOG"
    fi
    tar -C "$(dirname "$LM_KERNEL_CACHE")" -czf "$OUT/kernel-cache.tgz" "$(basename "$LM_KERNEL_CACHE")"
    PYTHONUNBUFFERED=1 timeout "$(left "$BUDGET")" python3 bench/pytorch_profile.py --compile \
        --sizes $sizes --contexts 512 --precisions $precisions 2>&1 | tee -a "$LOG"
elif [ "$phase" = head-dims ]; then
    # The tensor-core attention on every head dim 16-128 (forward error against f32 plain
    # attention; d 80/96/112 were wrong before session 14's fix), the flash golden cases, then
    # the xl size (head dim 80) in the profiling harness within $2 seconds (0: skipped).
    # ATTENTION_SECONDS bounds the grid (default 90; a cold kernel cache needs more).
    timeout "${ATTENTION_SECONDS:-90}" $X bench attention --backend cuda --grid head-dims --plain-max-seq 1024 2>&1 \
        | grep -v '^JSON' | tee -a "$LOG"
    timeout 60 $X conformance --golden runs/golden --backend cuda --filter flash_attention 2>&1 | tail -4 | tee -a "$LOG"
    if [ "${2:-200}" -gt 0 ]; then
        timeout "${2:-200}" $X lab2 --backend cuda --size xl --context 512 --precision bf16-mixed,f32 \
            --run-dir runs/lab2-xl 2>&1 | grep -v '^JSON' | tee -a "$LOG"
    fi
    tar -C "$(dirname "$LM_KERNEL_CACHE")" -czf "$OUT/kernel-cache.tgz" "$(basename "$LM_KERNEL_CACHE")"
elif [ "$phase" = adamw ]; then
    # The optimizer phase alone (clip + AdamW over each size's parameters) in the fused
    # step's buffer layouts $2 beside PyTorch's clip_grad_norm_ + fused AdamW, within $3 s
    # (JSON lines in $OUT/adamw.txt: bench/adamw_layout.py names the fastest).
    timeout "${3:-240}" $X bench adamw --backend cuda --size "${SIZES:-small,medium,large,xl}" \
        --layout "${2:-concat,alone,alone-from-1048576}" 2>&1 | tee "$OUT/adamw.txt" | grep -v '^JSON' | tee -a "$LOG"
elif [ "$phase" = fusion-probe ]; then
    # Is burn's fusion layer the host cost? The optimizer phase (sizes $SIZES, concatenated
    # layout, PyTorch once) and then the harness at context 512 in bf16-mixed (sizes
    # $HARNESS_SIZES, within $3 seconds each), with the fusion layer and without it
    # (LM_CUDA_FUSION=0), in one call on one machine.
    sizes=${SIZES:-small,large}
    for fusion in 1 0; do
        echo "== LM_CUDA_FUSION=$fusion" | tee -a "$LOG"
        skip=""; [ "$fusion" = 0 ] && skip=--skip-peer
        LM_CUDA_FUSION=$fusion timeout "${2:-120}" $X bench adamw --backend cuda --size "$sizes" \
            --layout concat $skip 2>&1 | tee -a "$OUT/adamw.txt" | grep -v '^JSON' | tee -a "$LOG"
    done
    if [ -n "${HARNESS_SIZES:-}" ]; then
        for fusion in 1 0; do
            echo "== harness, LM_CUDA_FUSION=$fusion" | tee -a "$LOG"
            LM_CUDA_FUSION=$fusion timeout "${3:-150}" $X lab2 --backend cuda --size "$HARNESS_SIZES" \
                --context 512 --precision bf16-mixed --run-dir runs/lab2-fusion-$fusion 2>&1 \
                | grep -v '^JSON' | tee -a "$LOG"
        done
    fi
    tar -C "$(dirname "$LM_KERNEL_CACHE")" -czf "$OUT/kernel-cache.tgz" "$(basename "$LM_KERNEL_CACHE")"
elif [ "$phase" = flash ]; then
    # The flash_attention golden cases on cuda (every case line), then the attention grid.
    timeout 200 $X conformance --golden runs/golden --backend cuda --filter flash_attention 2>&1 | tee -a "$OUT/log.txt"
    PYTHONUNBUFFERED=1 python3 bench/pytorch_attention.py --grid "${2:-small}" 2>&1 | tee -a "$OUT/log.txt"
    # JSON lines stay in the log for bench/gpu_tables.py.
    timeout "$(left "${3:-0}")" $X bench attention --backend cuda --grid "${2:-small}" --plain-max-seq 4096 2>&1 | tee -a "$OUT/log.txt"
    tar -C "$(dirname "$LM_KERNEL_CACHE")" -czf "$OUT/kernel-cache.tgz" "$(basename "$LM_KERNEL_CACHE")"
elif [ "$phase" = modes ]; then
    # The golden cases of labs 1-2 on cuda in strict f32 and in tf32 (tolerances x1000).
    for precision in f32 tf32; do
        timeout 240 $X conformance --golden runs/golden --backend cuda --lab 1 --lab 2 \
            --precision $precision 2>&1 | tail -25 | tee -a "$LOG"
    done
elif [ "$phase" = flash-train ]; then
    # bf16-mixed lab-1 training with the tensor-core attention kernels, then with the
    # portable ones (LM_FLASH_TENSOR_CORES=0): same loss curve, and the speed difference.
    steps=${2:-250}
    BUDGET=${3:-0}
    train runs/gpu-bf16-tc "ours bf16-mixed, tensor-core flash" --set model.precision=bf16-mixed
    LM_FLASH_TENSOR_CORES=0 train runs/gpu-bf16-portable "ours bf16-mixed, portable flash" \
        --set model.precision=bf16-mixed
elif [ "$phase" = adamw-train ]; then
    # Lab-1 training with the one-kernel AdamW step, then with tensor ops (LM_FUSED_ADAMW=0):
    # the same losses, and the speed difference.
    steps=${2:-250}
    BUDGET=${3:-0}
    train runs/gpu-adamw-kernel "ours bf16-mixed, AdamW kernel" --set model.precision=bf16-mixed
    LM_FUSED_ADAMW=0 train runs/gpu-adamw-ops "ours bf16-mixed, AdamW tensor ops" \
        --set model.precision=bf16-mixed
elif [ "$phase" = attention ]; then
    PYTHONUNBUFFERED=1 python3 bench/pytorch_attention.py --grid "${2:-full}" 2>&1 | tee -a "$OUT/log.txt"
    timeout "$(left "${3:-0}")" $X bench attention --backend cuda --grid "${2:-full}" 2>&1 | tee -a "$OUT/log.txt"
    tar -C "$(dirname "$LM_KERNEL_CACHE")" -czf "$OUT/kernel-cache.tgz" "$(basename "$LM_KERNEL_CACHE")"
fi
