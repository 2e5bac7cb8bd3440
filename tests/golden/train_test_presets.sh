#!/usr/bin/env bash
# Train the tiny test presets for a few seconds and export them as shipped weights
# (src/wavelatent/weights/test-image.safetensors, test-audio.safetensors), so that the goldens and
# the rate tests code real (nonzero) symbols at every quality. Deterministic: one thread, fixed seed.
# Run from the repository root:  bash tests/golden/train_test_presets.sh   (then: python tests/golden/make_golden.py)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
DATA=${DATA:-../shared/data}
RUNS=$(mktemp -d)
trap 'rm -rf "$RUNS"' EXIT
python -m wavelatent --threads 1 train "$DATA/images/train" -o "$RUNS/test-image" --preset test-image \
    --steps 300 --batch-size 8 --crop 64 --val-count 4 --val-every 300 --seed 0 --no-progress
python -m wavelatent export "$RUNS/test-image/last.safetensors" -o src/wavelatent/weights/test-image.safetensors --force
python -m wavelatent --threads 1 train "$DATA/audio/fsdd" -o "$RUNS/test-audio" --preset test-audio \
    --steps 300 --batch-size 8 --seed 0 --no-progress
python -m wavelatent export "$RUNS/test-audio/last.safetensors" -o src/wavelatent/weights/test-audio.safetensors --force
