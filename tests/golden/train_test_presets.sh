#!/usr/bin/env bash
# Train the tiny test presets for a few seconds and export them as shipped weights
# (src/wavelatent/weights/test-image.safetensors, test-audio.safetensors), so that the goldens and
# the rate tests code real (nonzero) symbols at every quality. Deterministic (one thread, fixed seed,
# fixed paths): rerunning it reproduces the committed files exactly on this machine.
# Run from the repository root:  bash tests/golden/train_test_presets.sh   (then: python tests/golden/make_golden.py)
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
DATA=${DATA:-../shared/data}
# A fixed relative run folder: the run's options (its paths included) go into the weights' metadata,
# so the same command gives the same weights file, byte for byte (checked: sha256 below).
RUNS=.train-test-presets
rm -rf "$RUNS"
trap 'rm -rf "$RUNS"' EXIT
python -m wavelatent --threads 1 train "$DATA/images/train" -o "$RUNS/test-image" --preset test-image \
    --steps 300 --batch-size 8 --crop 64 --val-count 4 --val-every 300 --seed 0 --no-progress
python -m wavelatent export "$RUNS/test-image/last.safetensors" -o "$RUNS/test-image.safetensors" --force
# the grid context model, fitted on the training images (every 5th left out)
python -m wavelatent --threads 1 fit-entropy "$RUNS/test-image.safetensors" -o src/wavelatent/weights/test-image.safetensors \
    --data "$DATA/images/train" --force
python -m wavelatent --threads 1 train "$DATA/audio/fsdd" -o "$RUNS/test-audio" --preset test-audio \
    --steps 300 --batch-size 8 --seed 0 --no-progress
python -m wavelatent export "$RUNS/test-audio/last.safetensors" -o "$RUNS/test-audio.safetensors" --force
python -m wavelatent --threads 1 fit-entropy "$RUNS/test-audio.safetensors" -o src/wavelatent/weights/test-audio.safetensors \
    --data "$DATA/audio/fsdd" --force
sha256sum src/wavelatent/weights/test-image.safetensors src/wavelatent/weights/test-audio.safetensors
