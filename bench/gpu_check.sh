#!/usr/bin/env bash
# One-shot check of aesthete's CUDA paths on a lent GPU machine (issue 16), in under 9 minutes:
#   1. nvidia-smi -L and the torch / torchvision / CUDA versions
#   2. `score` CUDA smoke: ~200 generated photos, a checkpoint made as bench does, bf16 autocast,
#      channels-last, pinned-memory transfers (ModelRunner's CUDA path); exit 0 + a JSON summary that
#      shows every photo scored on cuda; then the same with `--decode device` (the nvJPEG lane)
#   3. `train` CUDA smoke: --gpus 1 (one process, AMP; NCCL needs two GPUs), one epoch, synthetic AVA set
#   4. the benchmark, --device cuda --gpu-only (CUDA plan: 0.2 MP and 24 MP rows, nvJPEG decode lane,
#      e2e with --decode device, `score` without the forward pass: the ceiling the CPU side allows, and
#      the workers' hand-back through the pipe against the shared slots), markdown + json to $OUT
#   5. a cProfile of `score --decode device` on the benchmark's 0.2-MP photos (where the lane's time goes)
#   6. `score --compile on` CUDA smoke (the compiled path), same photos, fresh database
#   7. the benchmark's eager-vs-compiled model rows on CUDA (--compiled-only), with whatever time is left
# Every step's log goes to $OUT/NN-name.log and its exit status to $OUT/summary.txt; a failed step does
# not stop the ones after it. The steps run in order of importance, each with a timeout that keeps the
# whole script inside its budget.
#
#   bash bench/gpu_check.sh                  # on the GPU machine, from the repo root
#   bash bench/gpu_check.sh --device cpu     # dry run here: same steps, few photos, CPU (no NVIDIA needed)
#
# Wheels in .whl/ (`bash bench/gpu_wheels.sh` fetches them here) are installed into /tmp/site first when
# present. The device decode lane uses TorchCodec's JPEG decoder when it decodes on the GPU, else
# torchvision's: step 1 prints which one it got. With little device time left, BENCH_SIZE="0.2 MP"
# benchmarks that size alone, BUDGET_S sets the whole script's time (default 530 s), and FIRST=compiled
# runs the compiled steps (6, 7) before the train smoke and the eager benchmark (3-5).
set -u
set -x

DEVICE=cuda
if [[ "${1:-}" == "--device" && -n "${2:-}" ]]; then DEVICE=$2; fi
PY=${PYTHON:-python3}
OUT=${OUT:-/tmp/gpu-check-out}
BUDGET_S=${BUDGET_S:-530}  # 8 min 50 s: the lead's 9-minute limit, less a margin for the last step's exit
WORK=${WORK:-/tmp/gpu-check}
START=$(date +%s)
mkdir -p "$OUT" "$WORK"
: > "$OUT/summary.txt"

if [[ -d .whl ]] && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl > "$OUT/00-wheels.log" 2>&1
  echo "wheels rc=$?" >> "$OUT/summary.txt"
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
# aesthete's data, cache (inductor's compiled code too) and config in the work folder, never in a home.
export AESTHETE_DATA_DIR=$WORK/home/data AESTHETE_CACHE_DIR=$WORK/home/cache AESTHETE_CONFIG_DIR=$WORK/home/config

if [[ $DEVICE == cpu ]]; then  # dry run: the same steps, sized for a shared 2-core CPU
  # 48 photos: the files sent to the workers while the model loads (8 x workers + 8 = 24 on 2 cores) leave
  # the rest for the device lane, which its smoke then runs
  PHOTOS=48 SYN=48 LIMIT=16 GPUS=0 BENCH="--quick"
else
  PHOTOS=200 SYN=400 LIMIT=200 GPUS=1 BENCH=""
fi

left() { echo $((BUDGET_S - ($(date +%s) - START))); }

# step NAME MAX_SECONDS CMD...: run CMD with a timeout of MAX_SECONDS or the time left, whichever is less.
step() {
  local name=$1 max=$2
  shift 2
  local limit
  limit=$(left)
  ((limit > max)) && limit=$max
  if ((limit < 10)); then
    echo "$name skipped: out of time" >> "$OUT/summary.txt"
    return 0
  fi
  local t0=$(date +%s)
  timeout --kill-after=5 "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc ($(( $(date +%s) - t0 )) s of $limit s)" >> "$OUT/summary.txt"
  return $rc
}

# --- 1. the machine ----------------------------------------------------------------------------------------
step 01-machine 30 bash -c "nvidia-smi -L; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; \
  $PY -c 'import sys, torch, torchvision; print(sys.version); print(\"torch\", torch.__version__, \"torchvision\", \
torchvision.__version__, \"cuda\", torch.version.cuda, \"available\", torch.cuda.is_available()); \
print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else \"no GPU\"); \
print(\"bf16\", torch.cuda.is_bf16_supported() if torch.cuda.is_available() else None); \
print(\"nccl\", torch.distributed.is_nccl_available()); from aesthete.device_lane import pick_decoder; print(\"device lane decoder\", pick_decoder(torch.device(\"cuda\"))[1] if torch.cuda.is_available() else None)'"

# --- 2. score smoke --------------------------------------------------------------------------------------
# A freshly initialised nima (ResNet-50 at 300x300) saved as bench saves it; generated photos as bench makes
# them: 3:2 at 0.2 MP, plus a few at 12 MP so the reduced-size decode runs too.
step 02-score-assets 60 $PY -c "
import sys
from pathlib import Path
from bench.assets import make_checkpoint
from bench import photos
work = Path('$WORK')
make_checkpoint(str(work / 'nima.safetensors'), 'nima', {})
photos.photo_set(work / 'photos' / 'small', (548, 365), $PHOTOS - 8, processes=8)
photos.photo_set(work / 'photos' / 'big', (4000, 3000), 8, processes=8)
print('ok')
"

# score_smoke NAME EXTRA_ARGS...: score the photos on a fresh database; check exit 0 and the JSON summary.
score_smoke() {
  local name=$1
  shift
  rm -f "$WORK/$name.db"*
  step "$name" "$SMOKE_MAX" $PY -m aesthete score "$WORK/photos" --weights "$WORK/nima.safetensors" \
    --db "$WORK/$name.db" --device "$DEVICE" --json "$@"
  local rc=$?
  $PY - "$OUT/$name.log" "$PHOTOS" "$DEVICE" "$rc" >> "$OUT/summary.txt" 2>&1 <<'EOF'
import json, sys
log, photos, device, rc = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
text = open(log).read()
start = text.find("{")  # stderr (torch's warnings) may come first; the summary is the JSON object
try:
    data = json.JSONDecoder().raw_decode(text[start:])[0] if start >= 0 else None
except json.JSONDecodeError:
    data = None
if data is None:
    print(f"  CHECK FAILED: no JSON summary (exit {rc})")
    sys.exit()
keys = ("scored", "failed", "device", "precision", "compiled", "device_decoded", "decode_notice", "seconds",
        "throughput", "exit_code")
print("  " + ", ".join(f"{k}={data.get(k)}" for k in keys))
ok = rc == 0 and data.get("scored") == photos and not data.get("failed") and str(data.get("device")).startswith(device)
print("  check " + ("ok" if ok else "FAILED: want exit 0, every photo scored on " + device))
EOF
}
SMOKE_MAX=90
score_smoke 03-score --decode workers
# The device decode lane (nvJPEG, signals and model input on the GPU): 192 of the photos are
# plain 0.2-MP JPEGs it takes; "device_decoded" in the summary says how many it decoded.
score_smoke 03b-score-device-lane --decode device

# Steps 3-5 and 6-7 as two parts; FIRST=compiled runs 6-7 first (they never got time in the H200 runs).
eager_part() {
  # --- 3. train smoke --------------------------------------------------------------------------------------
  rm -rf "$WORK/syn" "$WORK/run"
  step 04-train-data 60 $PY -m aesthete.training.synthetic "$WORK/syn" --n "$SYN"
  step 05-train 150 $PY -m aesthete train nima --dataset ava --data-root "$WORK/syn" --gpus "$GPUS" --epochs 1 \
    --no-pretrained --limit "$LIMIT" --output "$WORK/run"
  ls -la "$WORK/run" >> "$OUT/05-train.log" 2>&1
  [[ -f "$WORK/run/model.safetensors" ]] && echo "  train check ok: model.safetensors written" >> "$OUT/summary.txt" \
    || echo "  train check FAILED: no model.safetensors" >> "$OUT/summary.txt"

  # --- 4. the benchmark ------------------------------------------------------------------------------------
  # BENCH_SIZE narrows it to one size of the plan (a short rerun: BENCH_SIZE="0.2 MP").
  step 06-bench 400 $PY bench/run.py --device "$DEVICE" --gpu-only --skip-compiled $BENCH --work "$WORK/bench" \
    ${BENCH_SIZE:+--size "$BENCH_SIZE"} \
    --markdown "$OUT/bench-$DEVICE.md" --json "$OUT/bench-$DEVICE.json"

  # --- 5. where the device lane's time goes ----------------------------------------------------------------
  # cProfile sees the main thread only: the workers' share is in the bench's "workers' share" figure.
  BENCH_SET=$WORK/bench/$([[ $DEVICE == cpu ]] && echo quick || echo cuda)
  rm -f "$WORK/profile.db"*
  step 07-lane-profile 90 $PY -m cProfile -o "$WORK/lane.prof" -m aesthete score "$BENCH_SET/photos/548x365" \
    --weights "$BENCH_SET/nima-bench.safetensors" --db "$WORK/profile.db" --device "$DEVICE" --decode device --json
  $PY -c "import pstats, sys; s = pstats.Stats('$WORK/lane.prof', stream=sys.stdout); s.sort_stats('tottime').print_stats(30); \
  s.sort_stats('cumulative').print_stats(40)" >> "$OUT/07-lane-profile.log" 2>&1
}

compiled_part() {
  # --- 6. compiled score smoke -----------------------------------------------------------------------------
  SMOKE_MAX=120
  score_smoke 08-score-compiled --compile on

  # --- 7. eager vs compiled model rows ---------------------------------------------------------------------
  # Each row's figures are logged as it finishes, so a run cut short by the time limit still tells them.
  step 09-bench-compiled 300 $PY bench/run.py --device "$DEVICE" --compiled-only $BENCH --work "$WORK/bench" \
    --markdown "$OUT/bench-compiled-$DEVICE.md" --json "$OUT/bench-compiled-$DEVICE.json"
}

if [[ ${FIRST:-} == compiled ]]; then
  compiled_part
  eager_part
else
  eager_part
  compiled_part
fi

echo "total $(( $(date +%s) - START )) s" >> "$OUT/summary.txt"
cat "$OUT/summary.txt"
