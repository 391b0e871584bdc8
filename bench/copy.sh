#!/usr/bin/env bash
# Benchmark (run by hand): the copy recipe over 10,000 small files against `cp -r` of the same
# folder, in the same run; and dcmflow's peak memory for 1,000 vs 10,000 files.
# usage: bash bench/copy.sh [WORKDIR]     (needs python3; installs pydicom into a venv)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-/tmp/dcmflow-bench}
VENV=/tmp/dcmflow-bench-venv
[ -x "$VENV/bin/python" ] || { python3 -m venv "$VENV"; "$VENV/bin/pip" -q install pydicom numpy; }
cargo build --release -q
BIN=$PWD/target/release/dcmflow
rm -rf "$W"; mkdir -p "$W"
for n in 1000 10000; do "$VENV/bin/python" bench/make_files.py "$W/in$n" $n; done
sync

secs() { python3 -c "import sys; print(f'{float(sys.argv[1]):.2f}')" "$1"; }
measure() { # label, command...: prints wall seconds and max RSS (KiB)
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$W/time.txt" "$@" >/dev/null 2>"$W/err.txt" || true
  read -r wall rss < "$W/time.txt"
  echo "$label: ${wall}s wall, peak RSS ${rss} KiB"
  eval "${label//[^a-zA-Z0-9]/_}_wall=$wall; ${label//[^a-zA-Z0-9]/_}_rss=$rss"
}

measure "cp_r_10000" cp -r "$W/in10000" "$W/cp10000"
measure "dcmflow_10000" "$BIN" run recipes/copy.yaml --input "$W/in10000" --output "$W/out10000" --quiet
measure "dcmflow_1000" "$BIN" run recipes/copy.yaml --input "$W/in1000" --output "$W/out1000" --quiet
written=$(python3 -c "import json;print(json.load(open('$W/out10000/run.json'))['outputs'])")
echo "files written: $written"
python3 - "$cp_r_10000_wall" "$dcmflow_10000_wall" "$dcmflow_1000_rss" "$dcmflow_10000_rss" <<'PY'
import sys
cp, df, rss1, rss10 = map(float, sys.argv[1:])
print(f"copy recipe / cp -r wall time: {df / max(cp, 1e-9):.2f}x  ({10000 / df:.0f} files/s vs {10000 / max(cp, 1e-9):.0f} files/s)")
print(f"peak RSS 1,000 files: {rss1 / 1024:.1f} MiB; 10,000 files: {rss10 / 1024:.1f} MiB")
PY
