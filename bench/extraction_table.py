"""Write the table of bench/results/extraction-*.json (bench/extraction.py --json) into bench/README.md, between
its `<!-- extraction-results -->` markers: the figures are never typed by hand.

    .venv/bin/python bench/extraction_table.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

HERE = Path(__file__).parent
START, END = "<!-- extraction-results -->", "<!-- /extraction-results -->"


def table() -> str:
    lines = [
        "| run | measured (UTC) | load before → after | size | packaging | in-memory SHA-256 + decrypt (1 thread) "
        "| disk write + fsync | ratio to min (goal ≥ 0.8) | CPU per MiB: packaging / in-memory |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for path in sorted((HERE / "results").glob("extraction-*.json")):
        doc = json.loads(path.read_text())
        f = doc["figures"]
        before = f.get("loadavg_before")
        load = f"{before[0]:.1f} → {doc['loadavg'][0]:.1f}" if before else f"{doc['loadavg'][0]:.1f}"
        cpu = (
            f"{f['packaging_cpu_ms_per_mib']:.2f} / {f['in_memory_cpu_ms_per_mib']:.2f} ms"
            if "packaging_cpu_ms_per_mib" in f
            else "—"
        )
        lines.append(
            f"| {path.stem} | {f.get('measured_at', doc['date'])} | {load} | {doc['size']} | "
            f"{f['packaging_mb_s']:.0f} MB/s ({f['packaging_wall_s']:.2f} s) | {f['in_memory_mb_s']:.0f} MB/s | "
            f"{f['disk_mb_s']:.0f} MB/s | {f['ratio_to_bound']:.2f} | {cpu} |"
        )
    return "\n".join(lines)


def main() -> None:
    readme = HERE / "README.md"
    text = readme.read_text()
    block = f"{START}\n{table()}\n{END}"
    new = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    readme.write_text(new)


if __name__ == "__main__":
    main()
