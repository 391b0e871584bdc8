#!/usr/bin/env bash
# Benchmark (run by hand): stills per second for the corpus CT and MR files, dcmflow
# (recipes/stills.yaml, PNG) against dcmj2pnm in a loop and a pydicom + Pillow script, on the
# same files in the same run. Only files that all three decode are used; each is repeated
# REPS times so the run lasts a few seconds.
# usage: bash bench/stills.sh [WORKDIR] [REPS]     (needs python3, dcmtk; venv under /tmp)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-/tmp/dcmflow-bench-stills}
REPS=${2:-20}
CORPUS=${CORPUS:-../shared/corpus}
VENV=/tmp/dcmflow-media-venv
[ -x "$VENV/bin/python" ] || { python3 -m venv "$VENV"; "$VENV/bin/pip" -q install pydicom numpy pillow; }
cargo build --release -q
BIN=$PWD/target/release/dcmflow
rm -rf "$W"; mkdir -p "$W/in"

# The files every tool decodes.
mapfile -t candidates < <(ls "$CORPUS"/ct/*.dcm "$CORPUS"/mr/*.dcm)
mapfile -t pyok < <("$VENV/bin/python" bench/stills_pydicom.py --check "${candidates[@]}")
files=()
for f in "${pyok[@]}"; do
  dcmj2pnm +on +Wm "$f" "$W/probe.png" >/dev/null 2>&1 || continue
  files+=("$f")
done
# dcmflow must export them too (a probe run, not timed).
for f in "${files[@]}"; do
  rm -rf "$W/probe"; mkdir -p "$W/probe-in"; rm -f "$W/probe-in"/*; cp "$f" "$W/probe-in/"
  "$BIN" run recipes/stills.yaml --input "$W/probe-in" --output "$W/probe" --quiet \
    --set ephemeral_secret=true --set format=png >/dev/null 2>&1 || { echo "dcmflow cannot export $f"; exit 1; }
done
echo "files: ${#files[@]} (of ${#candidates[@]} CT/MR), each x$REPS"
printf '  %s\n' "${files[@]##*/}"
list=()
for r in $(seq 1 "$REPS"); do
  mkdir -p "$W/in/$r"
  for f in "${files[@]}"; do cp "$f" "$W/in/$r/"; list+=("$W/in/$r/${f##*/}"); done
done
n=${#list[@]}
sync

now() { date +%s.%N; }
rate() { python3 -c "import sys; n,t=int(sys.argv[1]),float(sys.argv[2]); print(f'{n} stills in {t:.2f} s = {n/t:.0f} stills/s')" "$@"; }

t0=$(now)
"$BIN" run recipes/stills.yaml --input "$W/in" --output "$W/out-dcmflow" --quiet \
  --set ephemeral_secret=true --set format=png 2>/dev/null
t1=$(now)
echo "dcmflow ($(nproc) cores, $(ls -R "$W/out-dcmflow" | grep -c '\.png$') PNGs): $(rate "$n" "$(echo "$t1 - $t0" | bc)")"

t0=$(now)
"$BIN" run recipes/stills.yaml --input "$W/in" --output "$W/out-dcmflow-1" --quiet --threads 1 \
  --set ephemeral_secret=true --set format=png 2>/dev/null
t1=$(now)
echo "dcmflow --threads 1: $(rate "$n" "$(echo "$t1 - $t0" | bc)")"

mkdir -p "$W/out-dcmj2pnm"
t0=$(now)
i=0
for f in "${list[@]}"; do dcmj2pnm +on +Wm "$f" "$W/out-dcmj2pnm/$i.png" 2>/dev/null; i=$((i+1)); done
t1=$(now)
echo "dcmj2pnm loop (1 core): $(rate "$n" "$(echo "$t1 - $t0" | bc)")"

t0=$(now)
"$VENV/bin/python" bench/stills_pydicom.py "$W/out-pydicom" "${list[@]}"
t1=$(now)
echo "pydicom + Pillow (1 core): $(rate "$n" "$(echo "$t1 - $t0" | bc)")"
