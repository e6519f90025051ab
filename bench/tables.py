"""The benchmarks' tables, made from their JSON (never written by hand).

    .venv/bin/python bench/tables.py                 # rewrite the marked sections of bench/README.md
    .venv/bin/python bench/tables.py --check         # exit 1 if README.md differs from what the JSON gives
    .venv/bin/python bench/tables.py --summary DIR   # print one table of every figure that has a goal

Each bench run with `--json bench/results/<name>.json` (what `bench/run_all.sh` does for a full run) leaves its
figures, the date of the run, the load average at its start and end, and the machine. In README.md a section

    <!-- results:<name> -->
    ...
    <!-- /results:<name> -->

is replaced by the table of bench/results/<name>.json (figure, measured, target, met?) under a line giving the date,
the load and the machine. A section whose JSON is missing is left as it is.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SECTION = re.compile(r"(<!-- results:(?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.S)


def _load(data: list[float] | None) -> str:
    return " / ".join(f"{x:.1f}" for x in data) if data else "?"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _met(ok: bool | None) -> str:
    return "" if ok is None else ("yes" if ok else "**no**")


def caption(data: dict) -> str:
    m = data.get("machine", {})
    return (
        f"{data['bench']}, {data['size']}: run {data.get('date', '?')}, {m.get('cpus', '?')} cores "
        f"({m.get('cpu', '?')}), {m.get('memory_gib', '?')} GiB, Python {m.get('python', '?')}, "
        f"SQLite {m.get('sqlite', '?')}; load average (1/5/15 min) {_load(data.get('loadavg_start'))} at the start, "
        f"{_load(data.get('loadavg'))} at the end (the machine may be shared: wall times then include waiting "
        "for a core)."
    )


def table(data: dict) -> str:
    lines = [caption(data), "", "| figure | measured | target | met? |", "| --- | --- | --- | --- |"]
    for row in data["rows"]:
        figure, value, target = row[:3]
        ok = row[3] if len(row) > 3 else None
        lines.append(f"| {_cell(figure)} | {_cell(value)} | {_cell(target)} | {_met(ok)} |")
    return "\n".join(lines) + "\n"


# --- the run-by-run tables (before/after pairs: bench/axis_table.py, extraction_table.py, camera/rss_table.py) ---


def runs(pattern: str, results: Path = HERE / "results") -> list[tuple[str, dict]]:
    """(name, JSON) of every run whose file matches `pattern`, in name order."""
    return [(path.stem, json.loads(path.read_text())) for path in sorted(results.glob(pattern))]


def load_change(doc: dict) -> str:
    """The 1-minute load average at the start → at the end of a run (the end alone if the start was not kept)."""
    before = doc["figures"].get("loadavg_before")
    return f"{before[0]:.1f} → {doc['loadavg'][0]:.1f}" if before else f"{doc['loadavg'][0]:.1f}"


def write_marked(marker: str, body: str, readme: Path = HERE / "README.md") -> None:
    """Replace what stands between `<!-- marker -->` and `<!-- /marker -->` in README.md by `body`."""
    start, end = f"<!-- {marker} -->", f"<!-- /{marker} -->"
    text = readme.read_text()
    block = f"{start}\n{body}\n{end}"
    readme.write_text(re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S))


def render(readme: str, results: Path) -> str:
    def replace(m: re.Match) -> str:
        path = results / f"{m['name']}.json"
        if not path.exists():
            return m.group(0)
        return m.group(1) + table(json.loads(path.read_text())) + m.group(4)

    return SECTION.sub(replace, readme)


def summary(folder: Path) -> int:
    """Every figure with a goal, from every JSON in `folder`; returns how many goals are not met."""
    rows = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        for row in data.get("rows", []):
            if len(row) > 2 and row[2]:
                rows.append((data["bench"], row[0], row[1], row[2], row[3] if len(row) > 3 else None, data))
    if not rows:
        print(f"no figures with a goal in {folder}")
        return 0
    widths = [max(len(str(r[i])) for r in rows) for i in range(4)]
    head = ("bench", "figure", "measured", "goal")
    widths = [max(w, len(h)) for w, h in zip(widths, head, strict=True)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + "  met?  run (load at start)")
    missed = 0
    for bench, figure, value, goal, ok, data in rows:
        missed += ok is False
        cells = (bench, figure, value, goal)
        print(
            "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True))
            + f"  {_met(ok).strip('*') or '-':4}  {data.get('date', '?')} ({_load(data.get('loadavg_start'))})"
        )
    print(f"{len(rows)} goals, {missed} not met")
    return missed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--readme", type=Path, default=HERE / "README.md")
    ap.add_argument("--results", type=Path, default=HERE / "results", help="folder of the JSON (default bench/results)")
    ap.add_argument("--check", action="store_true", help="only say whether README.md is up to date")
    ap.add_argument("--summary", type=Path, default=None, metavar="DIR", help="print the goals table of DIR's JSON")
    args = ap.parse_args()
    if args.summary is not None:
        summary(args.summary)
        return 0
    before = args.readme.read_text()
    after = render(before, args.results)
    if args.check:
        if before != after:
            print(f"{args.readme} is not what {args.results} gives: run bench/tables.py")
            return 1
        return 0
    if after != before:
        args.readme.write_text(after)
        print(f"{args.readme}: tables rewritten from {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
