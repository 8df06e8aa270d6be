#!/usr/bin/env bash
# `make run`: the whole service on this machine. Starts vidgen-server and a local 2-rank vidgen-worker group on a
# Wan2.1 checkpoint (the demo model by default), submits one prompt with the `vidgen` client, waits for it with a
# progress bar, downloads the MP4, checks it with ffprobe, stops what it started and prints where the video is.
# PROMPT, SIZE, FRAMES, STEPS and CACHE override the request. By default: a prompt the demo model never saw in
# training, at the size and frames the model declares (the demo model: 32×32, 17 frames, which ffmpeg also scales
# up 8× to look at), 50 steps of which 10 full, the guidance difference reused (calibrated where the checkpoint
# has a calibration, as the demo model does). The server also serves the HTTP API and the web page (HTTP_LISTEN,
# 127.0.0.1 on any free port by default); with SERVE=1 everything stays up after the job until Ctrl-C.
set -euo pipefail

build=${1:-build}
model=${2:-assets/wan2.1-demo}
out=${3:-$build/run}
name=$(basename "$model")
cache=taylorseer-cfg
[[ -f "$model/vidgen_cache_calibration.json" ]] && cache=taylorseer-cfg-calibrated

rm -rf "$out" && mkdir -p "$out"
umask 077
od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$out/worker.token"
key=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
printf '[{"tenant": "demo", "key": "%s"}]\n' "$key" > "$out/keys.json"

pids=()
stop() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap stop EXIT

"$build/server/vidgen-server" --listen 127.0.0.1:0 --port-file "$out/port" --data-dir "$out/server" \
  --keys-file "$out/keys.json" --worker-token-file "$out/worker.token" --model "$name:wan2.1" \
  --http-listen "${HTTP_LISTEN:-127.0.0.1:0}" --http-port-file "$out/http.port" > "$out/server.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [[ -s "$out/port" ]] && break; sleep 0.1; done
[[ -s "$out/port" ]] || { echo "vidgen-server did not start; see $out/server.log" >&2; exit 1; }
server=127.0.0.1:$(cat "$out/port")
for _ in $(seq 100); do [[ -s "$out/http.port" ]] && break; sleep 0.1; done
http_host=${HTTP_LISTEN:-127.0.0.1:0}
page="http://${http_host%:*}:$(cat "$out/http.port")/"

"$build/worker/vidgen-worker" --server "$server" --worker-token-file "$out/worker.token" --model-dir "$model" \
  --model-name "$name" --nproc 2 --dtype fp32 --work-dir "$out/worker" > "$out/worker.log" 2>&1 &
pids+=($!)

echo "vidgen: server on $server, a 2-rank worker group on $name (logs in $out/); web page $page"
# The model's own defaults (size, frames) reach the server when its group registers: wait for that.
registered=false
for _ in $(seq 600); do
  if "$build/tools/vidgen" --server "$server" --key "$key" models 2>/dev/null | grep -q "^$name .* [1-9][0-9]* worker group"; then
    registered=true
    break
  fi
  sleep 0.1
done
$registered || { echo "the worker group did not register within a minute; see $out/worker.log" >&2; exit 1; }
"$build/tools/vidgen" --server "$server" --key "$key" submit --model "$name" \
  --prompt "${PROMPT:-a yellow circle moving right on a dark green background}" ${SIZE:+--size "$SIZE"} \
  ${FRAMES:+--frames "$FRAMES"} --steps "${STEPS:-50}" --cache "${CACHE:-$cache}" --wait --out "$out/video.mp4"

ffprobe -v error -count_frames -select_streams v:0 \
  -show_entries stream=codec_name,width,height,pix_fmt,nb_read_frames -of default=noprint_wrappers=1 "$out/video.mp4"
width=$(ffprobe -v error -select_streams v:0 -show_entries stream=width -of csv=p=0 "$out/video.mp4")
if (( width < 256 )); then  # a small model's video, scaled up to look at
  ffmpeg -v error -y -i "$out/video.mp4" -vf "scale=iw*8:ih*8:flags=neighbor" -pix_fmt yuv420p "$out/video-x8.mp4"
  echo "vidgen: the video is $out/video.mp4 (scaled up 8x: $out/video-x8.mp4)"
else
  echo "vidgen: the video is $out/video.mp4"
fi

if [[ "${SERVE:-0}" == 1 ]]; then
  echo "vidgen: the web page is $page (API key: $key); Ctrl-C stops the server and the worker group"
  wait
fi
