#!/usr/bin/env bash
# Run every benchmark, one after the other (never in parallel: they would skew each other).
#   bench/run_all.sh            full sizes
#   bench/run_all.sh --quick    small sizes, a smoke run of a minute or two
# Figures are also written as JSON to $BENCH_RESULTS (default bench/out/, git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
OUT=${BENCH_RESULTS:-bench/out}
mkdir -p "$OUT"
suffix=""
for arg in "$@"; do [[ "$arg" == "--quick" ]] && suffix="-quick"; done
# Each path under bench/, without .py; the figures are printed, and written as JSON where the bench takes --json.
for bench in ingest retention journal_verify search camera/realtime camera/offload camera/buffer_rss \
             live/latency live/button live/mobile live/capacity cctv_nearby csu/dashboard extraction \
             redaction annual_report; do
    echo "== $bench $*"
    "$PY" "bench/$bench.py" "$@" --json "$OUT/${bench//\//-}$suffix.json"
done
echo "== live/resume $*"  # network namespaces: needs root, like live/mobile
"$PY" bench/live/resume.py "$@"
