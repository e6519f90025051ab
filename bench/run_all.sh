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
for bench in ingest retention journal_verify search; do
    echo "== $bench $*"
    "$PY" "bench/$bench.py" "$@" --json "$OUT/$bench$suffix.json"
done
