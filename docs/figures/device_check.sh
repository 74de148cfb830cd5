#!/usr/bin/env bash
# One command for a lent GPU (an H200 in the project's device pool): the CUDA figures the
# README's GPU goals are read against, in under 8 minutes, written under $OUT.
#
#   docs/figures/device_check.sh             # on the GPU: HuBERT-base (UNTRAINED), the short grid
#   docs/figures/device_check.sh --dry-run   # on a CPU: the tiny model and a tiny grid (tests run it)
#
# The GPU image has Python 3.12 with torch 2.11 (CUDA) and onnxruntime, no package index and
# no network: modules it lacks are installed from build/device-wheels (`make device-wheels`
# fills it here; carry it with the command), then the project with
# `pip install --no-deps --no-build-isolation -e .` (the emo_toolkit namespace maps the
# repository's folders, so it cannot run from PYTHONPATH).
# Steps, in order of value, each under the time left of BUDGET_S (default 450 s):
#   1 train: demo corpus, feature extraction and ONE training epoch on the device
#   2 extraction: extractor throughput at batch 1, 16 and 64 (fp32, fp16)
#   3 bench-eager, bench-torchscript: emo-bench at 3 and 10 s x batch 1, 8, 32, fp32/bf16/fp16
#   4 tests: the CUDA tests (tests/test_cuda.py)
#   5 bench-compile-* (torch.compile with CUDA graphs), bench-aoti-* (AOTInductor, bf16 and
#     fp32), and bench-ragged (a lengths graph: 16 clips of 1-10 s in one call); the dry
#     run leaves out the first two (CUDA graphs need CUDA; AOTInductor compiles for minutes)
# Then docs/figures/device_check.py writes device-check.json and device-check.md: the goals, met or not.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
OUT=${OUT:-build/device-check}
PY=${PYTHON:-python3}
BUDGET_S=${BUDGET_S:-450}
START=$(date +%s)
mkdir -p "$OUT"
export TQDM_DISABLE=1 PYTHONUNBUFFERED=1

if [ "$DRY" = 1 ]; then
  DEVICE=cpu MODEL=hubert_tiny LENGTHS=0.5 BATCHES=1,2 PRECISIONS=fp32 EXTRACT_BATCHES=1,2
  CORPUS_ARGS=(--speakers 2 --clips-per-emotion 2) EVAL_LIMIT=2 RAGGED_CLIPS=3
  CELL_BUDGET=0.02 WARMUP=1
  TRAIN_ARGS=(--embed-dim 16 --conv-channels 8 --lstm-hidden 16 --test-fraction 0.5)
  COMPILE_PRECISIONS="" AOTI_PRECISIONS=""  # (CUDA graphs: CUDA only; AOTI: minutes)
else
  DEVICE=cuda MODEL=hubert_base LENGTHS=3,10 BATCHES=1,8,32 PRECISIONS=fp32,bf16,fp16
  EXTRACT_BATCHES=1,16,64 CORPUS_ARGS=(--speakers 4 --clips-per-emotion 4) EVAL_LIMIT=10
  RAGGED_CLIPS=16 TRAIN_ARGS=(--test-fraction 0.25) CELL_BUDGET=0.5 WARMUP=2
  COMPILE_PRECISIONS=bf16,fp32,fp16 AOTI_PRECISIONS=bf16,fp32
fi

STEPS="$OUT/steps.json"
echo '{}' > "$STEPS"
left() { echo $(( BUDGET_S - ($(date +%s) - START) )); }

# step NAME CAP_S COMMAND...: runs COMMAND under min(CAP_S, time left), logs to $OUT/NAME.log
# and records its status and seconds in steps.json.
step() {
  local name=$1 cap=$2; shift 2
  local limit status began
  limit=$(left)
  [ "$limit" -gt "$cap" ] && limit=$cap
  began=$(date +%s)
  if [ "$limit" -lt 10 ]; then
    status="skipped: no time left"
  else
    echo "== $name (at most ${limit} s)" >&2
    # (through bash: a step may be one of the functions below, exported)
    timeout --kill-after=10 "$limit" bash -c '"$@"' "$name" "$@" > "$OUT/$name.log" 2>&1
    case $? in
      0) status=ok ;;
      124|137) status="timed out after ${limit} s" ;;
      *) status="failed (see $name.log)" ;;
    esac
  fi
  echo "   $name: $status" >&2
  "$PY" - "$STEPS" "$name" "$status" "$(( $(date +%s) - began ))" <<'PYEOF'
import json, sys
path, name, status, seconds = sys.argv[1:]
steps = json.load(open(path))
steps[name] = {"status": status, "seconds": int(seconds)}
json.dump(steps, open(path, "w"), indent=1)
PYEOF
}

# emo CLI ARGS...: a toolkit command through the image's Python, installed or not.
emo() {
  local module func
  case $1 in
    data) module=emo_toolkit.cli.training func=data_cli ;;
    train) module=emo_toolkit.cli.training func=train_cli ;;
    bench) module=emo_toolkit.cli.bench func=main ;;
  esac
  shift
  "$PY" -c "import sys; from $module import $func as f; sys.argv[0] = 'emo'; f()" "$@"
}

install_missing() {
  # module:wheel name, for each module the project (and its tests) import; only missing ones
  # are installed, so nothing the image has (its torch, its CUDA libraries) is replaced
  local wheels=build/device-wheels pair module files=()
  for pair in torchaudio:torchaudio soundfile:soundfile cffi:cffi pycparser:pycparser \
              click:click tqdm:tqdm safetensors:safetensors pytest:pytest pluggy:pluggy \
              iniconfig:iniconfig packaging:packaging pygments:pygments; do
    module=${pair%%:*}
    "$PY" -c "import $module" 2>/dev/null && continue
    [ -d "$wheels" ] || { echo "$module is missing and $wheels is absent"; return 1; }
    files+=("$wheels/${pair#*:}"-*.whl)
  done
  if [ ${#files[@]} -gt 0 ]; then
    echo "installing ${files[*]}"
    "$PY" -m pip install --no-index --no-deps "${files[@]}" || return 1
  fi
  if ! (cd / && "$PY" -c "import emo_toolkit" 2>/dev/null); then
    # the build backend pyproject.toml names (setuptools>=77), where the image's is older
    "$PY" -c "import setuptools, sys; sys.exit(int(setuptools.__version__.split('.')[0]) < 77)" \
      2>/dev/null || "$PY" -m pip install --no-index --no-deps "$wheels"/setuptools-*.whl ||
      { echo "setuptools>=77 is missing and not in $wheels"; return 1; }
    "$PY" -m pip install --no-deps --no-build-isolation -e . ||
      { echo "the editable install of emo-toolkit failed"; return 1; }
  fi
  "$PY" -c "import torch, torchaudio, emo_toolkit; print('torch', torch.__version__, 'cuda',
torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
}

train() {
  rm -rf "$OUT/corpus" "$OUT/run" "$OUT/cache"
  # shellcheck disable=SC2086  # (arrays do not cross an exported function: word lists do)
  emo data demo "$OUT/corpus" $CORPUS_ARGS_LINE &&
  "$PY" - "$OUT" "$PY" "$DEVICE" "$MODEL" $TRAIN_ARGS_LINE <<'PYEOF'
import json, subprocess, sys, time
out, py, device, model, *extra = sys.argv[1:]
cmd = [py, "-c", "import sys; from emo_toolkit.cli.training import train_cli as f; sys.argv[0] = 'emo'; f()",
       f"{out}/corpus", "--out", f"{out}/run", "--extractor", model, "--untrained",
       "--device", device, "--cache", f"{out}/cache", "--epochs", "1", *extra]
start = time.perf_counter()
proc = subprocess.run(cmd)
json.dump({"wall_s": time.perf_counter() - start, "returncode": proc.returncode, "model": model,
           "device": device}, open(f"{out}/training.json", "w"))
sys.exit(proc.returncode)
PYEOF
}

bench() {  # bench GROUP EMO-BENCH-OPTIONS...
  local group=$1; shift
  emo bench "$OUT/run" --device "$DEVICE" --out "$OUT/bench-$group" --force \
    --lengths "$LENGTHS" --batch-sizes "$BATCHES" --cell-budget "$CELL_BUDGET" --warmup "$WARMUP" \
    --eval-limit "$EVAL_LIMIT" --ragged-clips "$RAGGED_CLIPS" "$@"
}

export OUT PY DEVICE MODEL LENGTHS BATCHES EVAL_LIMIT RAGGED_CLIPS CELL_BUDGET WARMUP
export CORPUS_ARGS_LINE="${CORPUS_ARGS[*]}" TRAIN_ARGS_LINE="${TRAIN_ARGS[*]}"
export -f emo install_missing train bench

step install 120 install_missing
step train 180 train
step extraction 90 "$PY" -m docs.figures.device_check extraction --model "$MODEL" --device "$DEVICE" \
  --batches "$EXTRACT_BATCHES" --out "$OUT/extraction.json"
step bench-eager 120 bench eager --backends eager --precision "$PRECISIONS"
step bench-torchscript 150 bench torchscript --backends torchscript --precision "$PRECISIONS"
step tests 120 "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py
# one step per precision: a compile that runs out of time loses only its own figures
for p in ${COMPILE_PRECISIONS//,/ }; do
  step "bench-compile-$p" 120 bench "compile-$p" --backends compile-cudagraphs --precision "$p"
done
for p in ${AOTI_PRECISIONS//,/ }; do
  step "bench-aoti-$p" 150 bench "aoti-$p" --backends aoti --precision "$p"
done
step bench-ragged 90 bench ragged --ragged --max-padding 1 --backends torchscript \
  --precision "${PRECISIONS%%,*}"
"$PY" -m docs.figures.device_check summary "$OUT"
