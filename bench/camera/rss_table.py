"""Write the table of bench/results/camera-rss-*.json (bench/camera/buffer_rss.py --json) into bench/README.md,
between its `<!-- camera-rss-results -->` markers: the figures are never typed by hand.

    .venv/bin/python bench/camera/rss_table.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/: the shared table helpers
from tables import load_change, runs, write_marked

MB = 1024 * 1024 / 1e6  # MB per MiB


def table() -> str:
    lines = [
        "| run | measured (UTC) | load before → after | buffer held | of which in memory | RSS after imports | RSS in "
        "standby, buffer full (goal ≤ 150 MB) | peak (VmHWM) | the same less the buffer in memory and the bench's "
        "noise |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, doc in runs("camera-rss-*.json"):
        f = doc["figures"]
        lines.append(
            f"| {name} | {f.get('measured_at', '—')} | {load_change(doc)} | "
            f"{f['buffer_mb']:.1f} MB = {f['buffer_s']:.0f} s | "
            # Runs before the ring file (camera.buffer_ring) held the whole buffer in memory.
            f"{f.get('buffer_in_memory_mb', f['buffer_mb']):.1f} MB | "
            f"{f['rss_imports_mib']:.0f} MiB | {f['rss_standby_mib']:.0f} MiB = **{f['rss_standby_mib'] * MB:.0f} MB** "
            f"| {f['hwm_after_mib'] * MB:.0f} MB | {f['rss_without_buffer_mib']:.0f} MiB |"
        )
    return "\n".join(lines)


def main() -> None:
    write_marked("camera-rss-results", table())


if __name__ == "__main__":
    main()
