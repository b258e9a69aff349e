#!/usr/bin/env bash
# Packs runs/gpu for the device machine (the carry limit is 64 MiB): the CUDA builds of `lm`
# and `xtask` (target-cuda, see docs/PERF.md), stripped and gzipped, the lab-1 token files,
# the kernel cache a previous device run returned (runs/gpu/kernel-cache.tgz), and the
# golden cases; carry ["runs/gpu", "runs/golden"].
set -euo pipefail
G=runs/gpu
mkdir -p $G
for bin in lm xtask; do
    strip -o $G/$bin target-cuda/release/$bin
    gzip -f $G/$bin
done
if [ -f $G/train.bin ]; then gzip -kf $G/train.bin && rm $G/train.bin; fi
rm -rf $G/kernel-cache
# The golden cases of labs 1 and 2 (../shared does not travel), for conformance on cuda.
mkdir -p runs/golden/cases
cp ../shared/golden/manifest.json runs/golden/
for op in linear embedding rmsnorm silu swiglu softmax rope sdpa mha mha_rope transformer_block \
    transformer_lm cross_entropy lm_train_step gradient_clipping adamw lr_cosine flash_attention; do
    cp ../shared/golden/cases/$op.safetensors runs/golden/cases/
done
cp -f ../shared/gpu/run-with-cuda.sh $G/ 2>/dev/null || true
du -sh $G runs/golden
