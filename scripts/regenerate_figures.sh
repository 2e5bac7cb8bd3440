#!/usr/bin/env bash
# Every measured figure in README.md, end to end, each into a file under results/ (or tests/golden/)
# that records the command, machine, thread count, git commit and weights sha256.
#
#   bash scripts/regenerate_figures.sh                 # all steps (~15 min on 2 cores)
#   bash scripts/regenerate_figures.sh bench loader    # some steps
#
# steps (README section -> output):
#   goldens  tests/golden/                          python tests/golden/make_golden.py
#   pinned   results/{image/kodak,audio}/pinned.json  per-file RD of every shipped preset (the tests check it)
#   kodak    results/image/kodak/                   Presets table: all 24 Kodak images vs JPEG/WebP (~3 min)
#   bench    results/bench/kodak.json               Evaluation and benchmarks: the bench table
#   audio    results/audio/music/                   Audio: the held-out music table (~15 min)
#   loader   results/learn/loader-*.json            Latent caches: the DataLoader samples/s
#   speech   results/audio/speech/                  Audio: the speech line (60 FSDD test clips, PESQ)
#   geometry results/audio/geometry.json            Audio: the packet geometry study (ideal linear ceilings, ~10 min)
#   entropy  results/entropy/benchmark.json         Entropy model: files vs the WebP mosaic and the previous model, speed
#   mpq      results/mpq/{imagenette,fsdd}/         Machine perceptual quality (not in the default list: ~45 min
#            on 1 thread; classifiers are trained only where results/mpq/*/classifier.safetensors is missing)
# Measure on a quiet machine: speeds scale with whatever else runs (each file records the load average).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
DATA=${DATA:-../shared/data}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
wl() { python -m wavelatent "$@"; }
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(goldens pinned kodak bench audio loader entropy)

for step in "${steps[@]}"; do
  echo "== $step" >&2
  case $step in
    goldens)
      python tests/golden/make_golden.py ;;
    mpq)
      started=$(date +%s)
      for d in imagenette fsdd; do
        if [ ! -f results/mpq/$d/classifier.safetensors ]; then
          if [ $d = imagenette ]; then src="$DATA/imagenette" opts="--width 32 --epochs 16"; else src="$DATA/audio/fsdd" opts="--width 48 --epochs 18"; fi
          wl --threads 1 train-classifier "$src" -o results/mpq/$d/classifier.safetensors $opts --work "$WORK/$d"
        fi
      done
      cmd="wavelatent --threads 1 evaluate ../shared/data/imagenette/val -o results/mpq/imagenette --task classify --classifier results/mpq/imagenette/classifier.safetensors --jobs 2"
      wl --threads 1 evaluate "$DATA/imagenette/val" -o results/mpq/imagenette --task classify \
          --classifier results/mpq/imagenette/classifier.safetensors --jobs 2 --no-progress
      python scripts/provenance.py results/mpq/imagenette/correlation.json --command "$cmd" --threads 1
      cmd="wavelatent --threads 1 evaluate-audio ../shared/data/audio/fsdd -o results/mpq/fsdd --task classify --classifier results/mpq/fsdd/classifier.safetensors"
      wl --threads 1 evaluate-audio "$DATA/audio/fsdd" -o results/mpq/fsdd --task classify \
          --classifier results/mpq/fsdd/classifier.safetensors --no-progress
      python scripts/provenance.py results/mpq/fsdd/correlation.json --command "$cmd" --threads 1
      echo "mpq: $(( $(date +%s) - started )) s" >&2 ;;
    pinned)
      python scripts/pin_rd.py ;;
    kodak)
      wl evaluate "$DATA/images/kodak" -o results/image/kodak --reference "$DATA/reference/kodak" \
          --presets image-rgb-16x,image-rgb-4x --baselines jpeg,webp,avif --jobs 2 --force
      echo '{"what": "provenance of the files in this folder"}' > results/image/kodak/provenance.json
      python scripts/provenance.py results/image/kodak/provenance.json --command "wavelatent evaluate KODAK -o results/image/kodak --reference REF --presets image-rgb-16x,image-rgb-4x --baselines jpeg,webp,avif --jobs 2 --force" --threads 1 ;;
    bench)
      mkdir -p results/bench
      cmd="wavelatent bench $DATA/images/kodak --limit 4 --threads 1,2 --repeats 5 --json results/bench/kodak.json"
      wl bench "$DATA/images/kodak" --limit 4 --threads 1,2 --repeats 5 --json results/bench/kodak.json
      python scripts/provenance.py results/bench/kodak.json --command "$cmd" --threads 0 ;;  # 0: several, see the rows
    audio)
      # held out of training (README "Audio"): the waltz, Vibe Ace and the drum-and-bass piece
      mkdir -p "$WORK/held-out"
      for f in 147793__setuniman__sweet-waltz-0i-22mi.hq.ogg Kevin_MacLeod_-_Vibe_Ace.hq.ogg admiralbob77_-_Choice_-_Drum-bass.hq.ogg; do
        ln -s "$(cd "$DATA/audio/music" && pwd)/$f" "$WORK/held-out/$f"
      done
      # and two produced songs of music-cc (never trained on)
      for f in unwrittenstories_its_simple.mp3 maddirtmonkey_electronic_happy_song.mp3; do
        ln -s "$(cd "$DATA/audio/music-cc" && pwd)/$f" "$WORK/held-out/$f"
      done
      cmd="wavelatent --threads 1 evaluate-audio HELD_OUT -o results/audio/music --presets audio-stereo-5x,audio-stereo-20x --max-seconds 30"
      wl --threads 1 evaluate-audio "$WORK/held-out" -o results/audio/music --presets audio-stereo-5x,audio-stereo-20x \
          --max-seconds 30 --no-progress --force
      python scripts/provenance.py results/audio/music/results.json --command "$cmd" --threads 1 ;;
    entropy)
      python benchmarks/entropy_coding.py ;;
    geometry)
      python scripts/packet_geometry.py ;;
    speech)
      # the first 60 recordings of the FSDD test split (recordings 0-4 of each speaker and digit), sorted
      mkdir -p "$WORK/speech"
      count=0
      while read -r f; do
        n=$(basename "$f" .wav); n=${n##*_}
        if [ "$n" -lt 5 ] && [ "$count" -lt 60 ]; then ln -s "$(realpath "$f")" "$WORK/speech/"; count=$((count + 1)); fi
      done < <(find "$DATA/audio/fsdd" -name '*.wav' | sort)
      cmd="wavelatent --threads 1 evaluate-audio FSDD_TEST_FIRST_60 -o results/audio/speech --presets audio-mono-2x"
      wl --threads 1 evaluate-audio "$WORK/speech" -o results/audio/speech --presets audio-mono-2x --no-progress --force
      python scripts/provenance.py results/audio/speech/results.json --command "$cmd" --threads 1 ;;
    loader)
      mkdir -p results/learn
      wl --threads 2 cache "$DATA/imagenette/train" -o "$WORK/in-train" --preset image-rgb-16x --size 144 --jobs 2 --no-progress
      for args in "--crop 16 --flip" ""; do
        name=loader${args:+-crop16-flip}
        cmd="python benchmarks/latent_loader.py CACHE $args --json results/learn/$name.json  (CACHE: wavelatent --threads 2 cache $DATA/imagenette/train -o CACHE --preset image-rgb-16x --size 144 --jobs 2)"
        # shellcheck disable=SC2086
        python benchmarks/latent_loader.py "$WORK/in-train" $args --json "results/learn/$name.json"
        python scripts/provenance.py "results/learn/$name.json" --command "$cmd" --threads 1
      done ;;
    *)
      echo "unknown step $step" >&2; exit 2 ;;
  esac
done
