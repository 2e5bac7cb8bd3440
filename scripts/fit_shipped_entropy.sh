#!/usr/bin/env bash
# Fit the grid context model of every shipped preset on its training data, starting from the
# release before it (git), and write the shipped weights:
#
#   bash scripts/fit_shipped_entropy.sh            # ~20 min on 2 cores (image-rgb-4x is most of it)
#   bash scripts/fit_shipped_entropy.sh image-rgb-16x audio-mono-2x
#
# Data: images/train (every 5th image left out, to measure on: benchmarks/entropy_coding.py), the 11
# training files of audio/music (the waltz, Vibe Ace and drum-and-bass are held out, as in training),
# the FSDD train split (recordings 5-49) for speech, FSDD for the tiny test-audio preset.
# Then: python tests/golden/make_golden.py && python scripts/pin_rd.py (and the figures:
# scripts/regenerate_figures.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
DATA=${DATA:-../shared/data}
BASE=${BASE:-8fb0355}            # the last release with the previous entropy models
BASE_TEST=${BASE_TEST:-ea98a37}  # the trained test presets came later
W=.fit-entropy                   # a fixed relative folder: the data paths go into the weights' metadata
rm -rf "$W"
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/music_train" "$W/fsdd_train" "$W/previous"
for f in "$DATA"/audio/music/*.ogg; do
  case "$f" in *waltz*|*Vibe_Ace*|*Drum-bass*) ;; *) ln -s "$(realpath "$f")" "$W/music_train/" ;; esac
done
for f in "$DATA"/audio/fsdd/*.wav; do
  n=$(basename "$f" .wav); n=${n##*_}
  [ "$n" -ge 5 ] && ln -s "$(realpath "$f")" "$W/fsdd_train/"
done

presets=("$@")
[ ${#presets[@]} -eq 0 ] && presets=(image-rgb-16x image-rgb-4x image-gray-16x test-image audio-stereo-5x audio-stereo-20x audio-mono-2x test-audio)
for p in "${presets[@]}"; do
  base=$BASE; case $p in test-*) base=$BASE_TEST ;; esac
  git show "$base:src/wavelatent/weights/$p.safetensors" > "$W/previous/$p.safetensors"
  case $p in
    image-*|test-image) data="$DATA/images/train"; holdout=5 ;;
    audio-stereo-*) data="$W/music_train"; holdout=0 ;;
    audio-mono-2x) data="$W/fsdd_train"; holdout=0 ;;
    test-audio) data="$DATA/audio/fsdd"; holdout=5 ;;
  esac
  python -m wavelatent --threads 1 fit-entropy "$W/previous/$p.safetensors" -o "src/wavelatent/weights/$p.safetensors" \
      --data "$data" --holdout "$holdout" --force
done
sha256sum src/wavelatent/weights/*.safetensors
