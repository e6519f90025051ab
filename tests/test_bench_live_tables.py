"""bench/README.md's live tables are what the benches' JSON says (written by bench/live/report.py, never by hand)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_live_bench_tables_are_generated_from_their_json():
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "live" / "report.py"), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr or done.stdout
