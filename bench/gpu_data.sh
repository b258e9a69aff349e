#!/usr/bin/env bash
# Makes the lab-1 GPU training data in runs/gpu on a fresh checkout (runs/ is not in git):
# a 10k BPE trained on the English prose corpus of `../shared/fetch-assets --corpora`, and
# the train/valid token files. Usage: bash bench/gpu_data.sh [path/to/lm] (any build of lm).
set -euo pipefail
LM=${1:-target/release/lm}
C=${LM_ASSETS:-$HOME/.cache/lm-assets}/corpora
G=runs/gpu
mkdir -p $G
if [ ! -f $G/tokenizer/vocab.json ]; then
    $LM tokenizer train --input $C/english-prose-train.txt --vocab-size 10000 \
        --special-token '<|endoftext|>' --out $G/tokenizer
fi
for split in train valid; do
    if [ ! -f $G/$split.bin ] && [ ! -f $G/$split.bin.gz ]; then
        $LM tokenizer encode --tokenizer $G/tokenizer --input $C/english-prose-$split.txt --out $G/$split.bin
    fi
done
ls -la $G
