#!/usr/bin/env bash
# Benchmark, run by hand (not in CI): de-identify N small CT files (default 10,000) and compare
# wall-clock files/second of `cp -r`, `dcmflow run recipes/deid-longitudinal.yaml` (release
# build) and `python -m dicognito` on the same files, warm page cache for all three.
#
#   bash bench/deid.sh            # N=10000, work folder under /tmp
#   N=2000 WORK=/tmp/b bash bench/deid.sh
#
# Needs python3 (venv + pip from PyPI for pydicom and dicognito, in $VENV, default
# /tmp/dicognito-venv) and the Rust toolchain. Uses every core for dcmflow (--threads to change:
# DCMFLOW_THREADS); dicognito is single-process.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-10000}
WORK=${WORK:-$(mktemp -d /tmp/dcmflow-bench.XXXXXX)}
VENV=${VENV:-/tmp/dicognito-venv}
TARGET=${CARGO_TARGET_DIR:-target}

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import dicognito, pydicom' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q dicognito pydicom
fi
cargo build --release -q
BIN="$TARGET/release/dcmflow"

echo "generating $N files in $WORK/in ..."
rm -rf "$WORK/in" "$WORK/cp" "$WORK/dcmflow" "$WORK/dicognito"
"$VENV/bin/python" bench/gen_fixtures.py "$WORK/in" "$N"
cat "$WORK"/in/*/*.dcm > /dev/null # warm the page cache

now() { date +%s.%N; }
threads=()
if [ -n "${DCMFLOW_THREADS:-}" ]; then threads=(--threads "$DCMFLOW_THREADS"); fi
# A throwaway secret for the benchmark only (read from the environment, never printed).
secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')

t0=$(now); cp -r "$WORK/in" "$WORK/cp"; t1=$(now)
DCMFLOW_SECRET=$secret "$BIN" run recipes/deid-longitudinal.yaml --input "$WORK/in" \
  --output "$WORK/dcmflow" --quiet "${threads[@]}"
t2=$(now)
"$VENV/bin/python" -m dicognito --quiet --output-directory "$WORK/dicognito" "$WORK/in"
t3=$(now)

written=$(find "$WORK/dcmflow" -name '*.dcm' | wc -l)
dico=$(find "$WORK/dicognito" -type f | wc -l)
python3 - "$N" "$t0" "$t1" "$t2" "$t3" "$written" "$dico" "$(nproc)" <<'PY'
import sys
n, t0, t1, t2, t3, written, dico, cores = sys.argv[1:]
n = int(n); t0, t1, t2, t3 = map(float, (t0, t1, t2, t3))
rows = [("cp -r", t1 - t0, n), ("dcmflow deid-longitudinal", t2 - t1, int(written)),
        ("dicognito", t3 - t2, int(dico))]
print(f"{n} files, {cores} cores")
for name, secs, out in rows:
    print(f"{name:28s} {secs:8.2f} s {n / secs:10.0f} files/s  ({out} files out)")
cp, dcm, dico = (r[1] for r in rows)
print(f"dcmflow / cp -r time: {dcm / cp:.1f}x   dicognito / dcmflow time: {dico / dcm:.1f}x")
PY
