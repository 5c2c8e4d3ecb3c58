#!/usr/bin/env bash
# GPU check of the paper profile (issue 16), in one call on one GPU: about 8 minutes, at most 13 (its timeouts
# add up to 760 s).
#
# Measures, on the machine it runs on:
#   1. task-episodes per second and peak GPU memory of the kit's real training step
#      (`training_step`: sampling, MONAI augmentation on the GPU, the batched generate/segment
#      pass, Dice + BCE, AdamW) at the paper profile's 128^3 patches, B = 8 tasks per step:
#      fp32, bf16 autocast (the paper profile's setting), and bf16 + torch.compile;
#   2. B = 16 tasks per step in bf16 (does a larger batch raise the rate?);
#   3. a short paper-profile training through `hyperkit train` on a small 1.5 mm phantom
#      cohort (phantom generation on the machine's CPUs, then 60 episodes with validation),
#      which times the whole loop, validation and checkpointing included.
#
# Channels-last 3D is not measured here: the kit has no layout switch for the hypernetwork's
# step (on the CPU only the supervised baselines use it, hyperkit/evaluation/baselines.py; the
# CPU what-if `benchmarks/train_bench.py --cpu-channels-last` measured 1.12x for the quick step).
#
# Usage (repository root; writes its tables and logs to $OUT, else to ./gpu-check):
#   bash benchmarks/gpu_check.sh
# On a machine without monai/nibabel, put their wheels in .whl/ first (for Python 3.12):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux2014_x86_64 -d .whl monai==1.6.1 nibabel==5.4.2
# The results go to BENCHMARKS.md ("Training (Algorithm 1)", GPU rows) by hand, with the date.
set -uo pipefail
OUT_DIR=${OUT:-gpu-check}
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1
if [ -d .whl ] && ! python3 -c "import monai, nibabel" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$OUT_DIR/gpu_check.log"; }

log "machine"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, monai; print('torch', torch.__version__, 'monai', monai.__version__, torch.cuda.get_device_name())"
  nproc; } 2>&1 | tee "$OUT_DIR/machine.txt"

bench() {  # name, timeout (s), train_bench arguments...
  local name=$1 limit=$2; shift 2
  log "bench $name: $*"
  timeout "$limit" python3 benchmarks/train_bench.py --device cuda --profiles paper "$@" \
    2>&1 | tee "$OUT_DIR/bench-$name.md" | grep -E '^\| paper|Error|error' | tee -a "$OUT_DIR/gpu_check.log"
}
bench fp32 90 --episodes 8 --warmup 2 --tasks 8 --no-amp
bench bf16 90 --episodes 8 --warmup 2 --tasks 8
bench bf16-b16 90 --episodes 6 --warmup 2 --tasks 16
bench bf16-compile 150 --episodes 8 --warmup 3 --tasks 8 --compile

# 10 subjects: the fewest that give validation tasks their subjects (s0008 val, s0009 test; with 6, as this script
# had it, training stops at once with "no val task with at least 2 cases")
log "phantoms (1.5 mm, 10 subjects, 4 cases per MSD task)"
timeout 100 python3 -m hyperkit.cli phantoms --out /tmp/gpu-phantoms --spacing 1.5 --subjects 10 --cases 4 \
  --workers "$(nproc)" --quiet 2>&1 | tail -3 | tee -a "$OUT_DIR/gpu_check.log"

# 240 s: before its first episode the training preprocesses the 10 subjects at 1.5 mm and cuts its bank (580 cubes
# of 192^3, 20.6 GiB at most: in memory on a machine with 128 GB); on a 2-core CPU that took 180 s with the cubes
# written to disk; now preprocessing the whole cohort takes 55 s (two cases at once) and indexing the bank 29 s ("The
# training bank in memory or on disk", "Preprocessing cases side by side" in BENCHMARKS.md); here every core works
log "short paper-profile training (60 episodes, validation every 30)"
start=$(date +%s)
timeout 240 python3 -m hyperkit.cli train --profile paper --data /tmp/gpu-phantoms \
  --out /tmp/gpu-train --episodes 60 --set train.val_every=30 --no-progress \
  > "$OUT_DIR/train.log" 2>&1
rc=$?
log "training wall time $(( $(date +%s) - start )) s (exit $rc)"
tail -5 "$OUT_DIR/train.log" | tee -a "$OUT_DIR/gpu_check.log"
cp /tmp/gpu-train/metrics.jsonl /tmp/gpu-train/validation.jsonl /tmp/gpu-train/run.json "$OUT_DIR"/ 2>/dev/null
python3 benchmarks/train_bench.py --run /tmp/gpu-train 2>&1 | tee -a "$OUT_DIR/gpu_check.log"
log "done"
