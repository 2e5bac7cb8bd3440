#!/usr/bin/env bash
# Accuracy per byte on disk (issue 16): every input of the Pareto, 3 seeds each, Imagenette and
# the spoken digits; then the stem check (does a wider stem let 128 px pull ahead of 32 px?).
#
#   bash scripts/learning_pareto.sh [IMAGENETTE] [FSDD] [OUT] [JOBS] [THREADS]
#
# Defaults: ../shared/data/imagenette ../shared/data/audio/fsdd runs/pareto, JOBS=1, THREADS=1.
# JOBS learn processes run at once (each a group of inputs, all seeds); they share OUT/<experiment>
# and `learn --collect` gathers their runs. Training uses CUDA where torch sees it (--device auto).
# The stored results came from one run with JOBS=10 THREADS=1 on a 16-core machine with one GPU
# (see the provenance inside each results file).
set -euo pipefail
IMG=${1:-../shared/data/imagenette}
FSDD=${2:-../shared/data/audio/fsdd}
OUT=${3:-runs/pareto}
JOBS=${4:-1}
THREADS=${5:-1}
SEEDS=${SEEDS:-3}
EXTRA=${EXTRA:-}  # more learn flags for every process (a smoke test: EXTRA="--epochs 1 --limit-per-class 2")
WL=${WL:-wavelatent}
mkdir -p "$OUT"

L16="latents:image-rgb-16x@1,latents:image-rgb-16x@2,latents:image-rgb-16x@3,latents:image-rgb-16x@4,latents:image-rgb-16x@5"
L4="latents:image-rgb-4x@1,latents:image-rgb-4x@4"
J="jpeg:32@50,jpeg:32@75,jpeg:32@90,jpeg:64@10,jpeg:64@25,jpeg:64@50,jpeg:128@5,jpeg:128@10,jpeg:128@20"
W="webp:32@50,webp:32@75,webp:32@90,webp:64@10,webp:64@25,webp:64@50,webp:128@5,webp:128@10,webp:128@20"
P="png:32,png:64,png:128"
IMAGE_INPUTS="$L16,$L4,$J,$W,$P"
A2="latents:audio-mono-2x@1,latents:audio-mono-2x@2,latents:audio-mono-2x@3,latents:audio-mono-2x@4"
A2="$A2,latents:audio-mono-2x@5,latents:audio-mono-2x@6,latents:audio-mono-2x@7"
AUDIO_INPUTS="$A2,samples:2000,samples:4000,samples:8000,opus:8000@0.9,opus:8000@0.97,opus:8000@1.0,opus:4000@1.0,opus:2000@1.0"

# the stored images are prepared once, before the parallel jobs read them
python3 - "$IMG" "$OUT/imagenette" <<'PY'
import sys
from pathlib import Path
from wavelatent.learn.experiment import prepare_split
data, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
train, classes = prepare_split(data / "train", out, "train", 144, None, None, False)
prepare_split(data / "val", out, "val", 144, classes, None, False)
PY

# one line per learn process: OUT-subfolder DATA extra-flags inputs (one group of inputs each)
jobs() {
  local groups=(
    "imagenette $IMG - latents:image-rgb-16x@1,latents:image-rgb-16x@2,latents:image-rgb-16x@3"
    "imagenette $IMG - latents:image-rgb-16x@4,latents:image-rgb-16x@5,latents:image-rgb-4x@1"
    "imagenette $IMG - latents:image-rgb-4x@4,png:32,png:64"
    "imagenette $IMG - jpeg:32@50,jpeg:32@75,jpeg:32@90,jpeg:64@10,jpeg:64@25,jpeg:64@50"
    "imagenette $IMG - webp:32@50,webp:32@75,webp:32@90,webp:64@10"
    "imagenette $IMG - webp:64@25,webp:64@50,png:128"
    "imagenette $IMG - jpeg:128@5,jpeg:128@10,jpeg:128@20"
    "imagenette $IMG - webp:128@5"
    "imagenette $IMG - webp:128@10"
    "imagenette $IMG - webp:128@20"
    "imagenette-stem-thin $IMG --stem=thin png:128"
    "imagenette-stem-resnet $IMG --stem=resnet png:128,png:64,png:32"
    "fsdd $FSDD --epochs=30 latents:audio-mono-2x@1,latents:audio-mono-2x@2,latents:audio-mono-2x@3,latents:audio-mono-2x@4"
    "fsdd $FSDD --epochs=30 latents:audio-mono-2x@5,latents:audio-mono-2x@6,latents:audio-mono-2x@7"
    "fsdd $FSDD --epochs=30 samples:2000,samples:4000,samples:8000"
    "fsdd $FSDD --epochs=30 opus:8000@0.9,opus:8000@0.97,opus:8000@1.0,opus:4000@1.0,opus:2000@1.0"
  )
  printf '%s\n' "${groups[@]}"
}
for sub in imagenette-stem-thin imagenette-stem-resnet; do  # share the stored images
  mkdir -p "$OUT/$sub"
  for f in "$OUT"/imagenette/images-*; do ln -sf "$(realpath "$f")" "$OUT/$sub/"; done
done

run_one() {
  read -r sub data flags inputs <<<"$1"
  [ "$flags" = "-" ] && flags=""
  $WL --threads "$THREADS" learn "$data" -o "$OUT/$sub" --inputs "$inputs" --seeds "$SEEDS" $flags ${EXTRA:-} --no-progress \
    >"$OUT/$sub.$(echo "$inputs" | md5sum | cut -c1-8).log" 2>&1 || echo "FAILED: $1" >&2
}
export -f run_one
export OUT WL THREADS SEEDS EXTRA
jobs | xargs -P "$JOBS" -I{} bash -c 'run_one "$@"' _ {}

$WL learn "$IMG" -o "$OUT/imagenette" --collect --inputs "$IMAGE_INPUTS" --no-progress
$WL learn "$FSDD" -o "$OUT/fsdd" --collect --inputs "$AUDIO_INPUTS" --no-progress
$WL learn "$IMG" -o "$OUT/imagenette-stem-thin" --collect --no-progress
$WL learn "$IMG" -o "$OUT/imagenette-stem-resnet" --collect --no-progress
