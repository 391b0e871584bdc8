#!/usr/bin/env bash
# Long mutation run (the stand-in for libFuzzer): bash bench/fuzz.sh SECONDS [SEED]
# Crashing inputs land in tests/data/crashers/ (keep them: they become regression tests).
set -euo pipefail
cd "$(dirname "$0")/.."
DCMFLOW_FUZZ_SECONDS="${1:-300}" DCMFLOW_FUZZ_SEED="${2:-2}" \
  cargo test --release --test mutate -- --ignored --nocapture mutation_harness_long
