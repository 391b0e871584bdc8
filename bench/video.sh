#!/usr/bin/env bash
# Benchmark (run by hand): cine clips through recipes/cine-mp4.yaml (built-in OpenH264, and
# libx264 through ffmpeg) against the pipeline a user would otherwise run (pydicom frames
# written as PNG, then `ffmpeg -c:v libx264`), for the 96-frame XA and the 30-frame US of the
# corpus; then the peak RSS of recipes/series-mp4.yaml on a 500-slice 512x512 16-bit series.
# usage: bash bench/video.sh [WORKDIR] [SLICES]   (needs python3, ffmpeg; venv under /tmp)
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-/tmp/dcmflow-bench-video}
SLICES=${2:-500}
CORPUS=${CORPUS:-../shared/corpus}
VENV=/tmp/dcmflow-media-venv
[ -x "$VENV/bin/python" ] || { python3 -m venv "$VENV"; "$VENV/bin/pip" -q install pydicom numpy pillow; }
cargo build --release -q
BIN=$PWD/target/release/dcmflow
rm -rf "$W"; mkdir -p "$W"
cat > "$W/rules.yaml" <<'YAML'
- {name: bench, when: {Modality: [US, XA]}, rects: [{x: 0, y: 0, width: 64, height: 16}]}
YAML

timed() { # label, command...: wall seconds and peak RSS (KiB)
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$W/time.txt" "$@" >"$W/out.txt" 2>"$W/err.txt" || { cat "$W/err.txt"; exit 1; }
  read -r wall rss < "$W/time.txt"
  printf '  %-34s %6.2f s  peak RSS %7.1f MiB\n' "$label" "$wall" "$(echo "$rss / 1024" | bc -l)"
}

for f in xa/jpeg_baseline_8bit.dcm us/examples_ybr_color.dcm; do
  name=$(basename "$f" .dcm)
  mkdir -p "$W/in-$name"; cp "$CORPUS/$f" "$W/in-$name/"
  echo "$f:"
  timed "dcmflow cine-mp4 (OpenH264)" "$BIN" run recipes/cine-mp4.yaml --input "$W/in-$name" \
    --output "$W/dcmflow-$name" --quiet --set ephemeral_secret=true --set mask_rules="$W/rules.yaml"
  timed "dcmflow cine-mp4 (mp4_x264)" "$BIN" run recipes/cine-mp4.yaml --input "$W/in-$name" \
    --output "$W/dcmflow-x264-$name" --quiet --set ephemeral_secret=true --set mask_rules="$W/rules.yaml" \
    --set format=mp4_x264
  t0=$(date +%s.%N)
  timed "  pydicom frames -> PNG" "$VENV/bin/python" bench/frames_pydicom.py "$CORPUS/$f" "$W/png-$name"
  fps=$(cat "$W/out.txt")
  timed "  ffmpeg -c:v libx264" ffmpeg -v error -y -framerate "$fps" -i "$W/png-$name/%05d.png" \
    -c:v libx264 -pix_fmt yuv420p -movflags +faststart "$W/user-$name.mp4"
  t1=$(date +%s.%N)
  printf '  %-34s %6.2f s\n' "pydicom + ffmpeg total" "$(echo "$t1 - $t0" | bc)"
  for m in "$W"/dcmflow-$name/*/*/*.mp4 "$W"/dcmflow-x264-$name/*/*/*.mp4 "$W/user-$name.mp4"; do
    echo "    $(ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=codec_name,r_frame_rate,nb_read_packets -of csv=p=0 "$m"), $(stat -c %s "$m") bytes"
  done
done

echo "series-mp4 on $SLICES slices of 512x512x16 bit:"
"$VENV/bin/python" bench/make_series.py "$W/series" "$SLICES"
echo "  input $(du -sm "$W/series" | cut -f1) MiB on disk; decoded $(echo "$SLICES * 512 * 512 * 2 / 1048576" | bc) MiB"
timed "dcmflow series-mp4 (fps 25)" "$BIN" run recipes/series-mp4.yaml --input "$W/series" \
  --output "$W/series-out" --quiet --set ephemeral_secret=true --set fps=25
ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$W"/series-out/*/*/*.mp4 | sed 's/^/  frames in the clip: /'
