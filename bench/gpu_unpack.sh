#!/usr/bin/env bash
# Unpacks what bench/gpu_pack.sh carried to the device in runs/gpu: gzipped binaries and
# token files, and the CubeCL kernel cache of earlier runs (so kernels are not recompiled).
# Sourced: it must not change the caller's shell options (no `set -e` here).
G=runs/gpu
for f in lm xtask train.bin; do
    if [ -f "$G/$f.gz" ] && [ ! -f "$G/$f" ]; then gunzip -k "$G/$f.gz"; fi
done
chmod +x $G/lm $G/xtask $G/run-with-cuda.sh 2>/dev/null || true
if [ -f "$G/kernel-cache.tgz" ] && [ ! -d "$G/kernel-cache" ]; then tar -C $G -xzf "$G/kernel-cache.tgz"; fi
export LM_KERNEL_CACHE=${LM_KERNEL_CACHE:-$PWD/$G/kernel-cache}
