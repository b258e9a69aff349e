#!/usr/bin/env bash
# Unpacks what bench/gpu_pack.sh carried to the device in runs/gpu: gzipped binaries and
# token files, and the CubeCL kernel cache of earlier runs (so kernels are not recompiled).
# Sourced: it must not change the caller's shell options (no `set -e` here).
G=runs/gpu
for f in lm xtask train.bin; do
    if [ -f "$G/$f.gz" ] && [ ! -f "$G/$f" ]; then gunzip -k "$G/$f.gz"; fi
done
chmod +x $G/lm $G/xtask $G/run-with-cuda.sh 2>/dev/null || true
# The cache lives outside the carried runs/gpu: each call's carry replaces runs/gpu, which
# wiped a cache kept there between calls on the same warm machine (seen 2026-12-05).
export LM_KERNEL_CACHE=${LM_KERNEL_CACHE:-/tmp/lm-kernel-cache}
if [ -f "$G/kernel-cache.tgz" ] && [ ! -d "$LM_KERNEL_CACHE" ]; then
    mkdir -p "$LM_KERNEL_CACHE" && tar -C "$LM_KERNEL_CACHE" --strip-components=1 -xzf "$G/kernel-cache.tgz"
fi
