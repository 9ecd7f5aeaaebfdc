#!/usr/bin/env bash
# One-shot check of the GPU paths on real hardware, in under 8 minutes on one modern GPU.
#
#   benchmarks/gpu_check.sh [--out DIR] [--wheels DIR] [--dry-run]
#
# Steps (each timed; a failing step is recorded and the others still run):
#   1. setup       installs what the check imports and lacks (from --wheels if given, else the
#                  package index, versions within requirements.txt); the GPU's torch is kept
#   2. kobart      a KoBART-base-shape model directory with random weights (benchmarks.kobart_shape;
#                  no hub access needed)
#   3. train_b8 / train_b32
#                  training throughput on that shape, bf16-mixed, batch 8 and 32: dynamic padding and
#                  length grouping vs pad-to-512 (benchmarks.train_throughput), the same batches
#                  twice: the second pass is reported, the first (new shapes, cold) is kept
#   4. finetune    a 2-epoch tiny-profile fine-tune through the real entry point
#                  (python -m keyword_extractor.training --accelerator gpu --precision bf16-mixed
#                  --strategy ddp), validation F1 per epoch as in every training run
#   5. serve_kobart / serve_tiny
#                  decoding throughput at 1, 16 and 64 questions per model call (what request merging
#                  hands the model at that concurrency), fp32 vs bf16 weights, grounded decoding on
#                  (benchmarks.extract_throughput); F1 and answers changed by bf16 for the tiny model
#
# Results: DIR/gpu_check.json (everything) and DIR/gpu_check.md (tables), plus each step's JSON
# and log. --dry-run runs every step on the CPU with a handful of rows and a one-layer model shape (the
# test suite does this), so the script is known to work before a GPU is at hand; there its training
# steps use bf16 only where the CPU has it natively (AVX-512 BF16/AMX), fp32 elsewhere (emulated bf16
# is many times slower). Exit status: 0 when every step passed.
set -uo pipefail

cd "$(dirname "$0")/.."
OUT=gpu-check
WHEELS=""
DRY_RUN=0
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT="$2"; shift 2 ;;
        --wheels) WHEELS="$2"; shift 2 ;;
        --dry-run) DRY_RUN=1; shift ;;
        -h|--help) sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
PY=${PYTHON:-python3}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
STEPS="$OUT/steps.tsv"
printf 'step\tstatus\tseconds\n' >"$STEPS"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TOKENIZERS_PARALLELISM=false

log() { printf '[gpu-check %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# step NAME COMMAND...: run it, log to $OUT/NAME.log, record its status and seconds.
step() {
    local name="$1"; shift
    log "$name: $*"
    local started=$SECONDS
    "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    local status=passed
    [ $rc -eq 0 ] || status="failed (exit $rc)"
    printf '%s\t%s\t%s\n' "$name" "$status" "$((SECONDS - started))" >>"$STEPS"
    log "$name: $status in $((SECONDS - started)) s"
    [ $rc -eq 0 ] || tail -n 20 "$OUT/$name.log" | sed 's/^/    /'
    return $rc
}

NEEDED="torch transformers tokenizers safetensors pytorch_lightning pandas kiwipiepy psutil tqdm"
missing_modules() {
    "$PY" - $NEEDED <<'EOF'
import importlib.util, sys
print(" ".join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is None))
EOF
}

setup() {
    if [ -n "$WHEELS" ]; then
        "$PY" -m pip install -q --no-index --no-deps --no-build-isolation "$WHEELS"/* || return 1
    fi
    local missing
    missing=$(missing_modules)
    if [ -n "$missing" ]; then
        # module names to distributions; -c keeps every version within requirements.txt
        missing=$(echo "$missing" | sed 's/pytorch_lightning/pytorch-lightning/')
        echo "installing: $missing"
        "$PY" -m pip install -q -c requirements.txt $missing || return 1
    fi
    "$PY" - <<'EOF'
import json, torch
info = {"torch": torch.__version__, "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
if torch.cuda.is_available():
    info.update(gpu=torch.cuda.get_device_name(), gpus=torch.cuda.device_count(), bf16=torch.cuda.is_bf16_supported())
print(json.dumps(info))
EOF
}

if [ $DRY_RUN -eq 1 ]; then
    DEVICE=cpu ACCELERATOR=cpu STRATEGY=auto SERVE_PRECISIONS=fp32 SHAPE=tiny
    if "$PY" -c 'import sys; from keyword_extractor.common.cpu_info import native_bf16; sys.exit(not native_bf16())'; then
        BENCH_PRECISION=bf16 TRAIN_PRECISION=bf16-mixed
    else
        BENCH_PRECISION=fp32 TRAIN_PRECISION=32-true
    fi
    THROUGHPUT_BATCHES="2" DYNAMIC_STEPS=1 PAD_STEPS=1 PASSES=2
    FINETUNE_EXTRA=(--epochs 1 --limit-train-rows 48 --val-f1-rows 8 --tiny-vocab-size 600 --quantize off)
    SERVE_ARGS=(--batches 1,16 --limit 24 --single-limit 4)
else
    DEVICE=cuda ACCELERATOR=gpu STRATEGY=ddp TRAIN_PRECISION=bf16-mixed SERVE_PRECISIONS=fp32,bf16 SHAPE=kobart-base
    BENCH_PRECISION=bf16
    THROUGHPUT_BATCHES="8 32" DYNAMIC_STEPS=30 PAD_STEPS=10 PASSES=2
    FINETUNE_EXTRA=(--epochs 2)
    SERVE_ARGS=(--batches 1,16,64 --limit 512 --single-limit 128)
fi

log "output: $OUT (dry run: $DRY_RUN; training precision $TRAIN_PRECISION, model shape $SHAPE)"
step setup setup || { log "cannot run without its packages; see $OUT/setup.log"; exit 1; }
if [ $DRY_RUN -eq 0 ] && ! "$PY" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())'; then
    log "no CUDA device visible to torch: run with --dry-run to check the script on a CPU"; exit 1
fi
step kobart "$PY" -m benchmarks.kobart_shape --output "$WORK/kobart-shape" --shape "$SHAPE"
for batch in $THROUGHPUT_BATCHES; do
    step "train_b$batch" "$PY" -m benchmarks.train_throughput --device "$DEVICE" --precision "$BENCH_PRECISION" \
        --shape "$SHAPE" \
        --batch-size "$batch" --steps "$DYNAMIC_STEPS" --pad512-steps "$PAD_STEPS" --passes "$PASSES" --json "$OUT/train_b$batch.json"
done
step finetune "$PY" -m keyword_extractor.training --train data/train.tsv --base-model tiny \
    --accelerator "$ACCELERATOR" --devices 1 --strategy "$STRATEGY" --precision "$TRAIN_PRECISION" \
    --output-dir "$WORK/tiny" "${FINETUNE_EXTRA[@]}"
cp "$WORK/tiny/train_summary.json" "$OUT/finetune.json" 2>/dev/null
step serve_kobart "$PY" -m benchmarks.extract_throughput --model-dir "$WORK/kobart-shape" --device "$DEVICE" \
    --precisions "$SERVE_PRECISIONS" "${SERVE_ARGS[@]}" --json "$OUT/serve_kobart.json"
step serve_tiny "$PY" -m benchmarks.extract_throughput --model-dir "$WORK/tiny/model" --device "$DEVICE" \
    --precisions "$SERVE_PRECISIONS" "${SERVE_ARGS[@]}" --json "$OUT/serve_tiny.json"
"$PY" -m benchmarks.gpu_report "$OUT" --dry-run "$DRY_RUN"
if grep -q failed "$STEPS"; then
    log "some steps failed: $STEPS"; exit 1
fi
log "all steps passed: $OUT/gpu_check.md"
