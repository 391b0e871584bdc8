#!/usr/bin/env bash
# Benchmark, run by hand: what the identifier echo check costs. De-identifies N small CT files
# (bench/gen_fixtures.py, default 3,000) with recipes/deid-longitudinal.yaml as shipped and with
# `echo_check: false`, one thread, three times each, and prints user and system CPU seconds
# (less sensitive than wall time to other work on the machine).
#
#   bash bench/echo.sh              # N=3000
#   N=10000 WORK=/tmp/e bash bench/echo.sh
#
# Needs python3 with pydicom in $VENV (default /tmp/dicognito-venv, as bench/deid.sh makes it).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-3000}
WORK=${WORK:-$(mktemp -d /tmp/dcmflow-echo.XXXXXX)}
VENV=${VENV:-/tmp/dicognito-venv}
TARGET=${CARGO_TARGET_DIR:-target}
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import pydicom' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q pydicom
fi
cargo build --release -q
BIN="$TARGET/release/dcmflow"
rm -rf "$WORK/in" "$WORK/o"
"$VENV/bin/python" bench/gen_fixtures.py "$WORK/in" "$N" >/dev/null
cat "$WORK"/in/*/*.dcm > /dev/null
sed 's/^      clean_descriptors: true$/      clean_descriptors: true\n      echo_check: false/' \
  recipes/deid-longitudinal.yaml > "$WORK/no-echo.yaml"
grep -q 'echo_check: false' "$WORK/no-echo.yaml"
secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
for run in 1 2 3; do
  for mode in on off; do
    recipe=recipes/deid-longitudinal.yaml
    [ "$mode" = off ] && recipe="$WORK/no-echo.yaml"
    rm -rf "$WORK/o"
    DCMFLOW_SECRET=$secret /usr/bin/time -f "echo check $mode: user %U s, system %S s, wall %e s ($N files)" \
      "$BIN" run "$recipe" --input "$WORK/in" --output "$WORK/o" --quiet --threads 1
  done
done
