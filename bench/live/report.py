"""Writes bench/README.md's table of the 4G bench from its JSON (`bench/live/impaired.json`), between the markers
`<!-- live-4g:begin -->` and `<!-- live-4g:end -->`: the figures are never typed by hand.

    .venv/bin/python bench/live/report.py [--check]   # --check: fail if the README is not what the JSON says
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE.parent / "README.md"
BEGIN, END = "<!-- live-4g:begin -->", "<!-- live-4g:end -->"
CAP_BEGIN, CAP_END = "<!-- live-capacity:begin -->", "<!-- live-capacity:end -->"


def _s(value: float) -> str:
    return "never" if value == float("inf") else ("–" if value != value else f"{value * 1000:,.0f} ms")


def _ms(value: float) -> str:
    if value != value:  # NaN: nothing to measure
        return "–"
    return "never" if value == float("inf") else f"{value:,.0f} ms"


def _lost(row: dict) -> str:
    """Pictures sent to viewers and not received (each carries its send time), where the run counted them."""
    if "pictures_sent" not in row:
        return "–"
    return f"**{row['pictures_missing']}** of {row['pictures_sent']:,}"


def table(report: dict, name: str = "impaired.json") -> str:
    targets = report["targets"]
    load = " / ".join(f"{x:.1f}" for x in report["loadavg_before"])
    after = " / ".join(f"{x:.1f}" for x in report["loadavg_after"])
    lines = [
        f"Measured {report['measured_at']} (`bench/live/impaired.py`, JSON in `bench/live/{name}`), "
        f"{report['machine']['cpus']} cores, **shared with other engineers' work: load average {load} before, "
        f"{after} after** (1 / 5 / 15 min), so latencies are pessimistic. Link: {report['link']}. Stream: "
        f"{report['stream']}. Sessions of {report['sessions_of_s']:.0f} s; in each, {report['burst']}.",
        "",
        "| loss each way | sessions | alert p50 / p99 | glass-to-glass p50 / p95 / max | longest freeze "
        "(burst aside) | pictures decoded | alert → first picture p50 / max | burst end → first picture "
        "captured after it, p50 / max | burst end → keyframe p50 / max (sessions that needed none) "
        "| uplink: lost / queue drops / rate |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in report["runs"]:
        a, g, f = run["alert_ms"], run["g2g_ms"], run["first_picture_ms"]
        b, fresh, up = run["burst_recovery_ms"], run["burst_fresh_picture_ms"], run["uplink"]
        lines.append(
            f"| {run['loss'] * 100:.0f} % | {run['sessions_seen']} of {run['sessions']} "
            f"| {_ms(a['p50'])} / **{_ms(a['p99'])}** | {_ms(g['p50'])} / **{_ms(g['p95'])}** / {_ms(g['max'])} "
            f"| **{_ms(run['longest_freeze_ms'])}** | {run['pictures']} of {run['pictures_expected']} "
            f"| {_ms(f['p50'])} / {_ms(f['max'])} | {_ms(fresh['p50'])} / **{_ms(fresh['max'])}** "
            f"| {_ms(b['p50'])} / {_ms(b['max'])} ({b['none_needed']}) "
            f"| {up['lost']} / {up['queue_drops']} of {up['packets'] + up['lost'] + up['queue_drops']} packets, "
            f"{run['uplink_kbit']:.0f} kbit/s |"
        )
    met = []
    for run in report["runs"]:
        fresh_max = run["burst_fresh_picture_ms"]["max"]
        checks = {
            f"glass-to-glass p95 ≤ {targets['g2g_p95_ms']} ms": run["g2g_ms"]["p95"] <= targets["g2g_p95_ms"],
            f"no freeze over {targets['longest_freeze_ms']} ms": run["longest_freeze_ms"]
            <= targets["longest_freeze_ms"],
            f"alert p99 ≤ {targets['alert_p99_ms']} ms": run["alert_ms"]["p99"] <= targets["alert_p99_ms"],
            f"a fresh picture ≤ {targets['burst_fresh_picture_ms']} ms after a burst": fresh_max
            <= targets["burst_fresh_picture_ms"],
        }
        said = "; ".join(f"{k}: {'met' if ok else '**not met**'}" for k, ok in checks.items())
        met.append(f"- {run['loss'] * 100:.0f} % loss: {said}.")
    return "\n".join([*lines, "", *met])


def _when(at: float | str | None) -> str:
    if isinstance(at, (int, float)):
        return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))
    return at or "?"


def capacity(report: dict, profile: dict | None) -> str:
    raw = report["figures"]
    load = " / ".join(f"{x:.1f}" for x in raw.get("loadavg_before", report["loadavg"]))
    lines = [
        f"Measured {raw.get('measured_at', report['date'])} (`bench/live/capacity.py`, JSON in "
        f"`bench/live/capacity.json`): {report['size']}. {report['machine']['cpus']} cores, "
        + (
            f"load average {load} before the run (a quiet machine)."
            if raw.get("loadavg_before", report["loadavg"])[0] < 1.5
            else f"**shared with other work: load average {load} before the run**, so losses and latencies are "
            "pessimistic."
        ),
        "",
        "Keyframe latency: from the camera handing a keyframe to its sender to a viewer holding it whole (every "
        "keyframe of the window at every viewer; the send time rides in the picture). Joining: a viewer's WHEP "
        "POST to its first keyframe, ICE and DTLS set-up included.",
        "",
        "| streams × viewers | server CPU (of a core) | per stream | share of the full frame rate delivered "
        "| per stream at the full rate | load generators' CPU (own process group) | machine busy (cores) "
        "| pictures lost (exact) | frames lost video / audio (counts) | worst viewer | viewers without a picture "
        "| keyframe latency p50 / p95 / max "
        "| picture latency p50 / p95 | joining p50 / p95 | load average |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    viewers = report["size"].split(" viewers per stream")[0].rsplit(" ", 1)[-1]
    for row in raw["rows"]:
        if "failed" in row:
            lines.append(f"| {row['streams']} × {viewers} | {row['failed']} |" + " |" * 13)
            continue
        lines.append(
            f"| {row['streams']} × {viewers} | {row['server_cpu'] * 100:.0f} % "
            f"| {row['server_cpu'] / row['streams'] * 100:.1f} % | {row['delivered'] * 100:.0f} % "
            f"| {row['server_cpu'] / row['streams'] / max(1e-9, row['delivered']) * 100:.1f} % "
            f"| {row['clients_cpu'] * 100:.0f} % "
            f"| {row['machine_busy']:.2f} | {_lost(row)} | {max(0, row['video_loss']) * 100:.2f} % / "
            f"{max(0, row['audio_loss']) * 100:.2f} % | {row['worst_viewer_fps']:.1f} fps "
            f"| {row['viewers_without_picture']} "
            f"| {_s(row['keyframe_latency_p50_s'])} / **{_s(row['keyframe_latency_p95_s'])}** / "
            f"{_s(row['keyframe_latency_max_s'])} ({row['keyframes_timed']} timed) "
            f"| {_s(row['picture_latency_p50_s'])} / {_s(row['picture_latency_p95_s'])} "
            f"| {_s(row['join_keyframe_p50_s'])} / {_s(row['join_keyframe_p95_s'])} "
            f"| {row['loadavg'][0]:.1f} |"
        )
    if profile:
        # Waiting, not working (a pool's idle worker waits in C inside `_worker`).
        idle = ("selectors.py:select", "threading.py:wait", "runners.py:run", "concurrent/futures/thread.py:_worker")
        busy: dict[str, int] = {}
        rows = []
        for key, count in profile["self"]:
            thread, where = key.split("\t", 1) if "\t" in key else key.split(" ", 1)
            if where.endswith(idle):
                continue
            busy[thread] = busy.get(thread, 0) + count
            rows.append((thread, where.split("site-packages/")[-1].split("/src/")[-1].split("python3.11/")[-1], count))
        lines += [
            "",
            f"Where the server's time goes (`--server-profile`, bench/live/sampled_serve.py, written "
            f"{_when(profile.get('written_at'))}: every thread sampled "
            f"every {profile['interval_s'] * 1000:.0f} ms over the whole run, set-up included; samples waiting in "
            "`select` or on a lock left out; share of the thread's busy samples):",
            "",
            "| thread | innermost function | share |",
            "| --- | --- | --- |",
        ]
        for thread, where, count in rows[:14]:
            lines.append(f"| {thread} | `{where}` | {count / max(1, busy[thread]) * 100:.1f} % |")
        if profile.get("cpu_s_per_thread"):
            spent = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in profile["cpu_s_per_thread"].items())
            lines += ["", f"CPU time per thread over that run (from /proc, the sampler's own included): {spent}."]
    return "\n".join(lines)


def _fill(text: str, begin: str, end: str, body: str) -> str:
    if begin not in text or end not in text:
        raise SystemExit(f"{README} has no {begin} ... {end} section")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{body}\n{end}{tail}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, nargs="*", default=None, help="default: bench/live/impaired*.json")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    text = README.read_text()
    runs = args.json or sorted(HERE.glob("impaired*.json"))
    new = _fill(text, BEGIN, END, "\n\n".join(table(json.loads(path.read_text()), path.name) for path in runs))
    cap = HERE / "capacity.json"
    if cap.exists():
        prof = HERE / "capacity-profile.json"
        body = capacity(json.loads(cap.read_text()), json.loads(prof.read_text()) if prof.exists() else None)
        new = _fill(new, CAP_BEGIN, CAP_END, body)
    if args.check:
        sys.exit(0 if new == text else f"{README} is not what the JSON says: run bench/live/report.py")
    README.write_text(new)


if __name__ == "__main__":
    main()
