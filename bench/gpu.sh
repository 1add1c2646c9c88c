#!/usr/bin/env bash
# The GPU benchmark in one command, for a machine with a CUDA GPU and no network:
#   1. writes the full-size profile (SD 1.5 + every add-on at their real configs, seeded random weights, fp16)
#      into a Hugging Face cache (python -m methods build-full; skipped where already built);
#   2. starts the hub on it offline and runs every method through its tab's endpoint at 512 px / 30 steps with its
#      cheapest settings: seconds, it/s, UNet calls per step and peak memory per method; then the hub-vs-direct
#      ratio and the plain sampler's speed-ups (SDPA, channels_last, torch.compile). JSON under bench/results/;
#   3. the layout and drag methods with their defaults (bench/bench_layout_drag.py), drag seconds vs distance.
# Usage: bash bench/gpu.sh                      # CUDA, 30 steps
#        bash bench/gpu.sh --device cpu --steps 2 --repeats 1   # no GPU: shows that it works
# HF_HUB_CACHE (default /tmp/fullsize-cache) is where the profile is written and read.
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=cuda
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE="$2"; ARGS+=("$1" "$2"); shift 2 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
export HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False PYTHONUNBUFFERED=1
export HF_HUB_CACHE="${HF_HUB_CACHE:-/tmp/fullsize-cache}"
PYTHON="${PYTHON:-python3}"
BUDGET=40
[ "$DEVICE" = "cpu" ] && BUDGET=8  # a 24 GB machine holds the fp32 base plus ~8 GB of add-ons
started=$(date +%s)
"$PYTHON" -m methods build-full --dtype fp16 --device "$DEVICE" --cache-dir "$HF_HUB_CACHE"
echo "build: $(( $(date +%s) - started )) s"
"$PYTHON" bench/bench_full.py --backbone sd15 --device "$DEVICE" --steps 30 --repeats 3 --speedups \
  --addon-budget-gb "$BUDGET" "${ARGS[@]}"
# 3. the layout and drag methods: seconds each, and drag seconds versus drag distance (defaults, 30 steps on CUDA).
LAYOUT_STEPS=30
[ "$DEVICE" = "cpu" ] && LAYOUT_STEPS=2
"$PYTHON" bench/bench_layout_drag.py --backbone sd15 --device "$DEVICE" --steps "$LAYOUT_STEPS" --repeats 1
# 4. the audio and class methods: seconds each (median of 3), and audio seconds versus the clip's length.
"$PYTHON" bench/bench_audio_class.py --backbone sd15 --device "$DEVICE" --steps "$LAYOUT_STEPS" --repeats 3
# 5. the streamed grid: seconds to the text tab's first cell against its whole grid, and a 2x3 sweep.
"$PYTHON" bench/bench_stream.py --backbone sd15 --device "$DEVICE" --steps "$LAYOUT_STEPS" --repeats 1 --sweep
echo "total: $(( $(date +%s) - started )) s"
