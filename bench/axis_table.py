"""Write the table of bench/results/axis-*.json (bench/axis.py --json) into bench/README.md, between its
`<!-- axis-results -->` markers: the figures are never typed by hand.

    .venv/bin/python bench/axis_table.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

HERE = Path(__file__).parent
START, END = "<!-- axis-results -->", "<!-- /axis-results -->"


def table() -> str:
    lines = [
        "| run | measured (UTC) | load before → after | size | PUT + Complete | hash + encrypt (1 thread) | disk | "
        "ratio (goal ≥ 0.5) | server CPU per GiB | peak RSS (idle) |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for path in sorted((HERE / "results").glob("axis-*.json")):
        doc = json.loads(path.read_text())
        f = doc["figures"]
        rows = {r[0]: r[1] for r in doc["rows"]}
        before = f.get("loadavg_before")
        load = f"{before[0]:.1f} → {doc['loadavg'][0]:.1f}" if before else f"{doc['loadavg'][0]:.1f}"
        cpu = f"{f['server_cpu_s_per_gib']:.2f} s" if "server_cpu_s_per_gib" in f else "—"
        lines.append(
            f"| {path.stem} | {f.get('measured_at', doc['date'])} | {load} | {doc['size']} | "
            f"{f['rate_mb_s']:.0f} MB/s | {f['hash_mb_s']:.0f} MB/s | {f['disk_mb_s']:.0f} MB/s | "
            f"{f['ratio']:.2f} | {cpu} | {rows['server peak RSS during the PUT']} |"
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
