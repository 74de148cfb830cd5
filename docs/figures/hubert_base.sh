#!/usr/bin/env bash
# The emo-bench figures (README.md, docs/benchmarks.md) for full-size HuBERT-base, in one go:
#   docs/figures/hubert_base.sh cpu            # this project's CPU table (docs/figures/results/hubert-base-cpu)
#   docs/figures/hubert_base.sh cuda           # on a CUDA machine: the GPU tables
# It makes a demo corpus (8 speakers x 5 clips x 5 emotions), trains a head on UNTRAINED
# HuBERT-base features (speed, memory and parity depend on the architecture, not on the
# weights' values; accuracy figures are not meaningful), then runs emo-bench on every backend.
# Environment: BIN (default .venv/bin), WORK (default build/bench-hubert-base-<device>),
# BENCH_ARGS (extra emo-bench options, e.g. "--cell-budget 1").
set -euo pipefail
DEVICE=${1:-cpu}
OUT=${2:-docs/figures/results/hubert-base-${DEVICE%%:*}}
BIN=${BIN:-.venv/bin}
WORK=${WORK:-build/bench-hubert-base-${DEVICE%%:*}}

if [ ! -f "$WORK/corpus/demo-corpus.json" ]; then
  "$BIN/emo-data" demo "$WORK/corpus" --speakers 8 --clips-per-emotion 5
fi
if ! grep -q '"complete"' "$WORK/run/status.json" 2>/dev/null; then
  "$BIN/emo-train" "$WORK/corpus" --out "$WORK/run" --extractor hubert_base --untrained \
    --device "$DEVICE" --cache "$WORK/cache" --test-fraction 0.25 --epochs 15 --patience 8
fi
# shellcheck disable=SC2086
"$BIN/emo-bench" "$WORK/run" --device "$DEVICE" --out "$OUT" --force ${BENCH_ARGS:-}
