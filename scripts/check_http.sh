#!/usr/bin/env bash
# Check images with a running app over plain HTTP (Gradio's API), with curl alone:
#   bash scripts/check_http.sh http://127.0.0.1:7860 photo.jpg [more.jpg ...]
# prints the JSON list of records `predict --json` gives (DETECTOR=native etc. picks the detector,
# default: the app's own; OPERATING_POINT=strict says AI only where at most 1% of validation
# reals scored as high, default balanced). Three calls: upload, start the job, read its result.
set -euo pipefail
url="${1%/}"; shift
detector="${DETECTOR:-}"
point="${OPERATING_POINT:-balanced}"
uploads=()
for image in "$@"; do uploads+=(-F "files=@${image}"); done
# 1. upload: the server answers with the paths it stored the files under
paths=$(curl -sSf "${uploads[@]}" "$url/gradio_api/upload")
files=$(printf '%s' "$paths" | sed 's/"\([^"]*\)"/{"path": "\1", "meta": {"_type": "gradio.FileData"}}/g')
choice=$([ -n "$detector" ] && printf '"%s"' "$detector" || printf 'null')
# 2. start the job on the batch endpoint (/predict; /analyze is the one-image tab)
event=$(curl -sSf -X POST "$url/gradio_api/call/predict" -H "Content-Type: application/json" \
  -d "{\"data\": [$files, $choice, \"$point\"]}" | sed 's/.*"event_id": *"\([^"]*\)".*/\1/')
# 3. read the result: a server-sent event stream ending with "event: complete" (or "error")
curl -sSfN "$url/gradio_api/call/predict/$event" | awk '
  /^event: error/ { failed = 1 }
  /^data:/ { sub(/^data: /, ""); last = $0 }
  END { if (!failed) { sub(/^\[/, "", last); sub(/\]$/, "", last) }; print last; exit failed }'
