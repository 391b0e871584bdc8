#!/usr/bin/env bash
# Coverage-guided fuzzing with cargo-fuzz (libFuzzer + AddressSanitizer).
#
#   bash bench/fuzz.sh SECONDS [TARGET...]     # default targets: deid_write pixels_window recipe_plan
#   bash bench/fuzz.sh --harness SECONDS [SEED] # the stable-toolchain mutation harness (tests/mutate.rs)
#
# Needs `cargo install cargo-fuzz`. libFuzzer instrumentation uses unstable rustc flags; this
# machine has only the stable toolchain, so the script sets RUSTC_BOOTSTRAP=1 for the fuzz build
# (the flags are the ones a nightly toolchain would accept; the project itself never needs it).
# Seeds: every DICOM file under 256 KiB of ../shared/corpus and tests/data (DICOM targets), the
# shipped recipes (recipe target). Corpora grow in fuzz/corpus/<target>; crashing inputs land in
# fuzz/artifacts/<target>: copy each into tests/data/crashers/ (DICOM) or
# tests/data/crashers/recipes/ (YAML) so the regression tests replay it, then fix it.
# Each target's last libFuzzer status line (executions, coverage, features) goes to
# fuzz/logs/<target>.log.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--harness" ]; then
  DCMFLOW_FUZZ_SECONDS="${2:-300}" DCMFLOW_FUZZ_SEED="${3:-2}" \
    cargo test --release --test mutate -- --ignored --nocapture mutation_harness_long
  exit
fi
secs="${1:-600}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(deid_write pixels_window recipe_plan)
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2; exit 2; }
export RUSTC_BOOTSTRAP=1
root="$PWD"
corpus="${DCMFLOW_CORPUS:-$root/../shared/corpus}"
mkdir -p fuzz/logs
for t in "${targets[@]}"; do
  seeds="fuzz/seeds/$t"
  rm -rf "$seeds"; mkdir -p "$seeds" "fuzz/corpus/$t"
  if [ "$t" = recipe_plan ]; then
    cp recipes/*.yaml examples/*.yaml "$seeds/"
    max_len=16384
    malloc=64
  else
    find "$corpus" tests/data/sample tests/data/crashers -type f -size -256k 2>/dev/null |
      grep -Ev '\.(md|csv|txt)$' |
      while read -r f; do cp "$f" "$seeds/$(echo "$f" | sha1sum | cut -c1-12).dcm"; done
    max_len=262144
    # No single allocation over 64 MiB for a file of at most 256 KiB; decoding gets 512 MiB
    # (its target sets a 256 MiB decode ceiling, so anything past that is a bug).
    malloc=64
    [ "$t" = pixels_window ] && malloc=512
  fi
  echo "== $t: $secs s"
  (cd fuzz && cargo fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$secs" -max_len="$max_len" -rss_limit_mb=2048 -malloc_limit_mb="$malloc" -timeout=30 \
      -print_final_stats=1) >"fuzz/logs/$t.log" 2>&1 || status=$?
  grep -E "^#[0-9]+ +(INITED|DONE)|stat::" "fuzz/logs/$t.log" || true
  if [ -n "${status:-}" ] || ls "fuzz/artifacts/$t"/crash-* "fuzz/artifacts/$t"/oom-* "fuzz/artifacts/$t"/timeout-* >/dev/null 2>&1; then
    echo "!! $t found a problem: see fuzz/logs/$t.log and fuzz/artifacts/$t" >&2
    failed=1
  fi
  unset status
done
exit "${failed:-0}"
