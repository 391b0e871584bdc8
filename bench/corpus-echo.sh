#!/usr/bin/env bash
# Every de-identifying shipped recipe over ../shared/corpus: how many instances the identifier
# echo check quarantined, and why (reasons name attributes, never values). Scrubs show in
# run.json under summaries.deid.actions_per_attribute as "scrubbed".
# Usage: bash bench/corpus-echo.sh   (BIN=target/release/dcmflow OUT=/tmp/x to change)
cd "$(dirname "$0")/.."
BIN=${BIN:-./target/debug/dcmflow}
OUT=${OUT:-/tmp/corpus-echo}
rm -rf "$OUT"; mkdir -p "$OUT"
export DCMFLOW_SECRET=corpus-echo-secret-0123456789abcdef
for spec in "deid-safe-harbor" "deid-longitudinal" "deid-longitudinal:descriptors=scrub" "stills" "cine-mp4" "series-mp4"; do
  r=${spec%%:*}; set=(); name=$r
  if [[ $spec == *:* ]]; then set=(--set "${spec#*:}"); name="$r-${spec#*:}"; fi
  $BIN run recipes/$r.yaml --input ../shared/corpus --output "$OUT/$name" "${set[@]}" --quiet >/dev/null 2>&1
  python3 - "$OUT/$name" "$name" <<'PY'
import json,sys,collections
r=json.load(open(sys.argv[1]+"/run.json"))
p=r.get("problems",[])
echo=[x for x in p if "identifier echo" in x["reason"]]
st=r.get("stages",{})
c=collections.Counter(x["outcome"] for x in p)
acts=r.get("summaries",{}).get("deid",{}).get("actions_per_attribute",{})
scrubbed=sum(v.get("scrubbed",0) for v in acts.values())
print(f"{sys.argv[2]}: problems {dict(c)}; echo-quarantined {len(echo)}; echo-scrubbed values {scrubbed}")
for x in echo: print("   ", x["reason"][:300])
PY
done
