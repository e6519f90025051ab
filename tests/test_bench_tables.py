"""bench/README.md's result tables come from the benches' JSON (bench/tables.py), with the run's date and load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TABLES = Path(__file__).resolve().parent.parent / "bench" / "tables.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TABLES), *args], capture_output=True, text=True, check=False)


def test_readme_sections_are_rewritten_from_the_json_and_checked(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "retention.json").write_text(
        json.dumps(
            {
                "bench": "retention sweep",
                "size": "200,000 recordings",
                "date": "2026-12-07 03:16 UTC",
                "machine": {"cpus": 2, "cpu": "Xeon", "memory_gib": 23.6, "python": "3.11.7", "sqlite": "3.40.1"},
                "loadavg_start": [14.8, 13.0, 9.7],
                "loadavg": [13.3, 12.8, 9.8],
                "rows": [
                    ["whole sweep", "4.22 s (CPU 1.56 s)", "≤ 30 s", True],
                    ["audit | daily", "1.90 s", "≤ 1 s", False],
                    ["recordings deleted", "6,458", "", None],
                ],
            }
        )
    )
    readme = tmp_path / "README.md"
    readme.write_text(
        "intro\n<!-- results:retention -->\nold hand-written table\n<!-- /results:retention -->\n"
        "<!-- results:missing -->\nkept as it is\n<!-- /results:missing -->\n"
    )
    assert run("--readme", str(readme), "--results", str(results), "--check").returncode == 1
    assert run("--readme", str(readme), "--results", str(results)).returncode == 0
    text = readme.read_text()
    assert "old hand-written table" not in text and "kept as it is" in text
    assert "run 2026-12-07 03:16 UTC" in text and "14.8 / 13.0 / 9.7 at the start" in text
    assert "| whole sweep | 4.22 s (CPU 1.56 s) | ≤ 30 s | yes |" in text
    assert "| audit \\| daily | 1.90 s | ≤ 1 s | **no** |" in text  # a pipe in a figure does not split the row
    assert run("--readme", str(readme), "--results", str(results), "--check").returncode == 0

    summary = run("--summary", str(results))
    assert "whole sweep" in summary.stdout and "recordings deleted" not in summary.stdout  # goals only
    assert "2 goals, 1 not met" in summary.stdout
