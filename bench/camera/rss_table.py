"""Write the table of bench/results/camera-rss-*.json (bench/camera/buffer_rss.py --json) into bench/README.md,
between its `<!-- camera-rss-results -->` markers: the figures are never typed by hand.

    .venv/bin/python bench/camera/rss_table.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
START, END = "<!-- camera-rss-results -->", "<!-- /camera-rss-results -->"
MB = 1024 * 1024 / 1e6  # MB per MiB


def table() -> str:
    lines = [
        "| run | measured (UTC) | load before → after | buffer held | RSS after imports | RSS in standby, buffer "
        "full (goal ≤ 150 MB) | peak (VmHWM) | the same less the buffer and the bench's noise |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for path in sorted((BENCH / "results").glob("camera-rss-*.json")):
        doc = json.loads(path.read_text())
        f = doc["figures"]
        before = f.get("loadavg_before")
        load = f"{before[0]:.1f} → {doc['loadavg'][0]:.1f}" if before else f"{doc['loadavg'][0]:.1f}"
        lines.append(
            f"| {path.stem} | {f.get('measured_at', '—')} | {load} | {f['buffer_mb']:.1f} MB = {f['buffer_s']:.0f} s | "
            f"{f['rss_imports_mib']:.0f} MiB | {f['rss_standby_mib']:.0f} MiB = **{f['rss_standby_mib'] * MB:.0f} MB** "
            f"| {f['hwm_after_mib'] * MB:.0f} MB | {f['rss_without_buffer_mib']:.0f} MiB |"
        )
    return "\n".join(lines)


def main() -> None:
    readme = BENCH / "README.md"
    text = readme.read_text()
    block = f"{START}\n{table()}\n{END}"
    new = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    readme.write_text(new)


if __name__ == "__main__":
    main()
