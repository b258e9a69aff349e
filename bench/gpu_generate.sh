#!/usr/bin/env bash
# Generation on the device machine (issue 9), after bench/gpu_pack.sh here: our engine on a
# random Qwen2.5-0.5B-shaped decoder with the decode kernels (default), with all products
# through cuBLASLt (LM_CUDA_GEMM=cublaslt; SKIP_CUBLASLT=1 skips it), with WITH_BURN=1 all through burn's matmul
# (LM_CUDA_GEMM=burn), with WITH_PER_HEAD=1 the per-query-head attention
# kernel forced (LM_DECODE_GROUPED=0; the default takes one cube per kv head where it is faster) and, with
# WITH_TENSOR_OPS=1, without the kernels (LM_DECODE_KERNELS=0: the tensor-op step), then
# transformers `generate` on the same prompt ids, all in one call on one machine. Usage:
#   bash bench/gpu_generate.sh [batches (comma list)] [prompt len] [new tokens] [seconds]
# `seconds` bounds each of our runs (0: none). Each of our rows also times 32 decode steps
# apart (launching / waiting for the device / sampling: is the step host- or device-bound?).
# Results are appended to $OUT/log.txt; the kernel cache goes back as
# $OUT/kernel-cache.tgz for the next machine.
set -uo pipefail
batches=${1:-1,32,256}
prompt_len=${2:-256}
new_tokens=${3:-512}
seconds=${4:-0}
limit=$seconds; [ "$limit" -gt 0 ] || limit=86400
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
LOG="$OUT/log.txt"
source bench/gpu_unpack.sh
G=runs/gpu
X="bash $G/run-with-cuda.sh $G/xtask"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee -a "$LOG"
batch_args=""
for b in ${batches//,/ }; do batch_args="$batch_args --batch $b"; done
ours() { # label, then environment settings
    local label=$1; shift
    echo "== ours: $label" | tee -a "$LOG"
    env "$@" timeout "$limit" $X bench generate --random qwen2.5-0.5b --backend cuda \
        $batch_args --prompt-len "$prompt_len" --new-tokens "$new_tokens" --skip-peer 2>&1 \
        | grep -v '^JSON' | tail -20 | tee -a "$LOG"
}
ours "decode kernels (attention kernel chosen by batch; products of >= 128 rows through cuBLASLt)" LM_DECODE_KERNELS=1
if [ -z "${SKIP_CUBLASLT:-}" ]; then
    ours "decode kernels, products through cuBLASLt" LM_DECODE_KERNELS=1 LM_CUDA_GEMM=cublaslt
fi
if [ -n "${WITH_BURN:-}" ]; then
    ours "decode kernels, products through burn's matmul" LM_DECODE_KERNELS=1 LM_CUDA_GEMM=burn
fi
if [ -n "${WITH_PER_HEAD:-}" ]; then
    ours "decode kernels, per-head attention forced" LM_DECODE_KERNELS=1 LM_DECODE_GROUPED=0
fi
if [ -n "${WITH_TENSOR_OPS:-}" ]; then ours "tensor-op decode step" LM_DECODE_KERNELS=0; fi
tar -C "$(dirname "$LM_KERNEL_CACHE")" -czf "$OUT/kernel-cache.tgz" "$(basename "$LM_KERNEL_CACHE")"
echo "== transformers (f32, SDPA)" | tee -a "$LOG"
PYTHONUNBUFFERED=1 python3 bench/python_generate.py --random runs/bench-generate-random/random_case.json \
    --new-tokens "$new_tokens" --warmup-tokens 4 --device cuda $batch_args --dtype float32 2>&1 \
    | tail -12 | tee -a "$LOG"
