"""Writes bench/README.md's table of the 4G bench from its JSON (`bench/live/impaired.json`), between the markers
`<!-- live-4g:begin -->` and `<!-- live-4g:end -->`: the figures are never typed by hand.

    .venv/bin/python bench/live/report.py [--check]   # --check: fail if the README is not what the JSON says
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"
BEGIN, END = "<!-- live-4g:begin -->", "<!-- live-4g:end -->"


def _ms(value: float) -> str:
    return "none" if value == float("inf") else f"{value:,.0f} ms"


def table(report: dict) -> str:
    targets = report["targets"]
    load = " / ".join(f"{x:.1f}" for x in report["loadavg_before"])
    after = " / ".join(f"{x:.1f}" for x in report["loadavg_after"])
    lines = [
        f"Measured {report['measured_at']} (`bench/live/impaired.py`, JSON in `bench/live/impaired.json`), "
        f"{report['machine']['cpus']} cores, **shared with other engineers' work: load average {load} before, "
        f"{after} after** (1 / 5 / 15 min), so latencies are pessimistic. Link: {report['link']}. Stream: "
        f"{report['stream']}. Sessions of {report['sessions_of_s']:.0f} s; in each, {report['burst']}.",
        "",
        "| loss each way | sessions | alert p50 / p99 | glass-to-glass p50 / p95 / max | longest freeze "
        "(burst aside) | pictures decoded | alert → first picture p50 / max | burst end → keyframe p50 / max "
        "| uplink: lost / queue drops / rate |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in report["runs"]:
        a, g, f, b, up = (
            run["alert_ms"],
            run["g2g_ms"],
            run["first_picture_ms"],
            run["burst_recovery_ms"],
            run["uplink"],
        )
        lines.append(
            f"| {run['loss'] * 100:.0f} % | {run['sessions_seen']} of {run['sessions']} "
            f"| {_ms(a['p50'])} / **{_ms(a['p99'])}** | {_ms(g['p50'])} / **{_ms(g['p95'])}** / {_ms(g['max'])} "
            f"| **{_ms(run['longest_freeze_ms'])}** | {run['pictures']} of {run['pictures_expected']} "
            f"| {_ms(f['p50'])} / {_ms(f['max'])} | {_ms(b['p50'])} / **{_ms(b['max'])}** "
            f"| {up['lost']} / {up['queue_drops']} of {up['packets'] + up['lost'] + up['queue_drops']} packets, "
            f"{run['uplink_kbit']:.0f} kbit/s |"
        )
    met = []
    for run in report["runs"]:
        checks = {
            f"glass-to-glass p95 ≤ {targets['g2g_p95_ms']} ms": run["g2g_ms"]["p95"] <= targets["g2g_p95_ms"],
            f"no freeze over {targets['longest_freeze_ms']} ms": run["longest_freeze_ms"]
            <= targets["longest_freeze_ms"],
            f"alert p99 ≤ {targets['alert_p99_ms']} ms": run["alert_ms"]["p99"] <= targets["alert_p99_ms"],
            f"keyframe ≤ {targets['burst_recovery_ms']} ms after a burst": run["burst_recovery_ms"]["max"]
            <= targets["burst_recovery_ms"],
        }
        said = "; ".join(f"{k}: {'met' if ok else '**not met**'}" for k, ok in checks.items())
        met.append(f"- {run['loss'] * 100:.0f} % loss: {said}.")
    return "\n".join([*lines, "", *met])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, default=HERE / "impaired.json")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    text = README.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{README} has no {BEGIN} ... {END} section")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{BEGIN}\n{table(json.loads(args.json.read_text()))}\n{END}{tail}"
    if args.check:
        sys.exit(0 if new == text else f"{README} is not what {args.json} says: run bench/live/report.py")
    README.write_text(new)


if __name__ == "__main__":
    main()
