#!/usr/bin/env bash
# Run every benchmark, one after the other (never in parallel: they would skew each other), camera and live
# included, then print one table of every figure that has a goal.
#   bench/run_all.sh            full sizes: JSON to bench/results/ (committed), then bench/README.md's tables
#                               are regenerated from it (bench/tables.py)
#   bench/run_all.sh --quick    small sizes, a smoke run: JSON to bench/out/ (git-ignored), README untouched
# $BENCH_RESULTS overrides the JSON folder; $PYTHON the interpreter (default .venv/bin/python).
# A bench that fails is reported and the others still run; the exit status says whether any failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
quick=0
for arg in "$@"; do [[ "$arg" == "--quick" ]] && quick=1; done
if (( quick )); then OUT=${BENCH_RESULTS:-bench/out}; else OUT=${BENCH_RESULTS:-bench/results}; fi
mkdir -p "$OUT"
failed=()
# Each path under bench/, without .py; the figures are printed, and written as JSON.
for bench in ingest axis retention journal_verify search camera/realtime camera/offload camera/buffer_rss \
             live/latency live/button live/mobile live/capacity cctv_nearby csu/dashboard extraction \
             redaction annual_report demo_rss; do
    echo "== $bench $* ($(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg))"
    "$PY" "bench/$bench.py" "$@" --json "$OUT/${bench//\//-}.json" || failed+=("$bench")
done
echo "== live/resume $*"  # network namespaces: needs root, like live/mobile; prints its figures, no JSON
"$PY" bench/live/resume.py "$@" || failed+=("live/resume")
echo
echo "== summary: every figure with a goal ($OUT)"
"$PY" bench/tables.py --summary "$OUT"
if (( ! quick )) && [[ "$OUT" == bench/results ]]; then
    "$PY" bench/tables.py
fi
if (( ${#failed[@]} )); then
    echo "failed: ${failed[*]}"
    exit 1
fi
