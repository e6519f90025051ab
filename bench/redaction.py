"""Redaction on hard 1080p clips: our engine against the `deface` command, on the same clips, in the same run.

The clips (bench/facegen.py) are made with faces no test uses, in three scenes: `street` (28-140 px, moving up
to 15 px/frame, turned or half-hidden faces), `hard` (24-70 px, 10-40 px/frame with as much motion blur, dim
light and sensor noise, busy background) and `crowd` (14 faces of 24-60 px). Every output is scored the same
way against the per-frame ground truth: a face box counts as covered when its fine detail has collapsed
(tests/facesynth.py `redacted`, the measure the tests use). Figures: recall over all face-frames, per size
bucket, per condition, the worst single face (the goal: each face covered on >= 98 % of the frames it is
visible on), and the share of the picture away from any face whose detail was blurred too (over-covering).

Speed: the whole `redact_file` call (model load, decode, detection, tracking, blur, libx264, mux), as frames/s
and CPU ms/frame, beside two anchors measured in the same run on the same clip: decoding alone, and the engine
with the settings it had before this benchmark (`--baseline`), since the machine's load moves every figure.
deface's output (1920×1088 for a 1080p input) is scaled back to the source size before scoring.

    .venv/bin/python bench/redaction.py --json bench/redaction.json --readme   # 4 s per clip, deface full size
    .venv/bin/python bench/redaction.py --quick                                # 1.5 s per clip, no deface
    .venv/bin/python bench/redaction.py --variant "no weak:track_threshold=0.2"  # also this engine, same run
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bench import facegen  # noqa: E402
from bench.common import Results, console, main_guard, parser  # noqa: E402
from temoin.rights.redaction import Settings, redact_file  # noqa: E402
from tests.facesynth import redacted  # noqa: E402

TARGET_FPS = 30.0
TARGET_RECALL = 0.98
SIZES = ((0, 32), (32, 48), (48, 72), (72, 110), (110, 10_000))
BLOCK = 16
README_START, README_END = "<!-- redaction-bench:start -->", "<!-- redaction-bench:end -->"
# The engine as it was before the small-face work (detector every 5th frame at 640 px, tracks end after two
# misses, no region-of-interest pass): the anchor the new figures are compared with in the same run.
BASELINE = {"long_side": 640, "max_missed": 2, "tiles": False, "roi": False}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def deface_exe() -> str:
    beside = Path(sys.executable).parent / "deface"
    return str(beside) if beside.exists() else "deface"


def run_deface(src: Path, dst: Path) -> tuple[float, float]:
    """(wall s, CPU s) of the deface command with its defaults (blur, threshold 0.2, full size)."""
    cmd = [deface_exe(), str(src), "-o", str(dst)]
    cpu0, t0 = children_cpu(), time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    wall, cpu = time.perf_counter() - t0, children_cpu() - cpu0
    if done.returncode != 0:
        raise RuntimeError(f"deface failed: {done.stderr[-800:]}")
    return wall, cpu


def decode_alone(src: Path) -> tuple[float, float, int]:
    """(wall s, CPU s, frames) of decoding the clip with PyAV frame threads, as the engine does."""
    c0, t0, n = time.process_time(), time.perf_counter(), 0
    with av.open(str(src)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in container.decode(stream):
            n += 1
    return time.perf_counter() - t0, time.process_time() - c0, n


def reencode(src: Path, dst: Path, settings: Settings) -> None:
    """The clip through libx264 only, nothing redacted: the floor of the scores (what encoding alone does)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = inp.streams.video[0]
        video = out.add_stream("libx264", rate=stream.average_rate, options={"preset": settings.preset})
        video.options = {"preset": settings.preset, "crf": str(settings.crf)}
        video.width, video.height, video.pix_fmt = stream.width, stream.height, "yuv420p"
        for i, frame in enumerate(inp.decode(stream)):
            frame.pts, frame.time_base = i, Fraction(1, 30)
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)


def luma(path: Path, width: int, height: int):  # noqa: ANN201 - a generator of arrays
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            y = frame.to_ndarray(format="gray")
            if y.shape != (height, width):  # deface: 1920×1088 for a 1080p source
                y = cv2.resize(y, (width, height), interpolation=cv2.INTER_AREA)
            yield y


def _block_detail(y: np.ndarray) -> np.ndarray:
    lap = np.abs(cv2.Laplacian(y.astype(np.float32), cv2.CV_32F, ksize=1))
    h, w = (y.shape[0] // BLOCK) * BLOCK, (y.shape[1] // BLOCK) * BLOCK
    return lap[:h, :w].reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).mean(axis=(1, 3))


def _block_mean(y: np.ndarray) -> np.ndarray:
    h, w = (y.shape[0] // BLOCK) * BLOCK, (y.shape[1] // BLOCK) * BLOCK
    return y[:h, :w].astype(np.float32).reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).mean(axis=(1, 3))


def score(clip: facegen.HardClip, out: Path) -> dict:
    """Recall (all, per size bucket, per condition, per face) and the share of non-face area blurred."""
    hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    per_face: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    runs: dict[int, int] = defaultdict(int)  # longest run of frames a face was left visible
    current: dict[int, int] = defaultdict(int)
    altered = away = 0
    conditions = {n: p.conditions(clip.dim, clip.crowd) for n, p in enumerate(clip.people)}
    frames = 0
    for f, (src_y, out_y) in enumerate(
        zip(luma(clip.path, clip.width, clip.height), luma(out, clip.width, clip.height), strict=False)
    ):
        frames += 1
        faces = np.zeros(((clip.height // BLOCK), (clip.width // BLOCK)), bool)
        for n, person in enumerate(clip.people):  # every face on screen, seen or hidden: its head may be blurred
            box = person.box_at(f, clip.width, clip.height)
            if box is None:
                continue
            x, y, w, h = box
            mx, my = int(w * 0.5) + person.blur, int(h * 0.5)
            faces[
                max(0, (y - my) // BLOCK) : max(0, (y + h + my) // BLOCK + 1),
                max(0, (x - mx) // BLOCK) : max(0, (x + w + mx) // BLOCK + 1),
            ] = True
        for n, box in clip.truth[f]:
            x, y, w, h = box
            x0, y0 = max(0, x), max(0, y)
            clipped = (x0, y0, min(clip.width, x + w) - x0, min(clip.height, y + h) - y0)
            ok = redacted(src_y, out_y, clipped)
            size = next(f"{lo}-{hi}" if hi < 10_000 else f">= {lo}" for lo, hi in SIZES if lo <= w < hi)
            for key in ["all", f"size {size} px", *conditions[n]]:
                hits[key][0] += ok
                hits[key][1] += 1
            per_face[n][0] += ok
            per_face[n][1] += 1
            current[n] = 0 if ok else current[n] + 1
            runs[n] = max(runs[n], current[n])
        before, after = _block_detail(src_y), _block_detail(out_y)
        moved = np.abs(_block_mean(src_y) - _block_mean(out_y)) > 12
        blurred = ((before > 6) & (after < 0.4 * before)) | moved
        altered += int(np.sum(blurred & ~faces))
        away += int(np.sum(~faces))
    recall = {k: v[0] / v[1] for k, v in hits.items() if v[1]}
    faces_recall = {n: v[0] / v[1] for n, v in per_face.items() if v[1]}
    worst = min(faces_recall, key=lambda n: faces_recall[n]) if faces_recall else -1
    return {
        "frames": frames,
        "face_frames": hits["all"][1],
        "recall": recall,
        "counts": {k: v[1] for k, v in hits.items()},
        "per_face": {str(n): round(r, 4) for n, r in sorted(faces_recall.items())},
        "worst_face": {
            "person": worst,
            "recall": faces_recall.get(worst, 1.0),
            "width_px": clip.people[worst].width0 if worst >= 0 else 0,
        },
        "faces_below_target": sum(r < TARGET_RECALL for r in faces_recall.values()),
        "longest_visible_run": max(runs.values(), default=0),
        "non_face_blurred": altered / away if away else 0.0,
    }


def run_ours(clip: facegen.HardClip, out: Path, settings: Settings) -> dict:
    c0 = time.process_time()
    report = redact_file(clip.path, out, settings=settings, voice=False)
    cpu = time.process_time() - c0
    return {
        "fps": report.fps,
        "seconds": report.seconds,
        "cpu_ms_per_frame": 1000 * cpu / report.frames,
        "tracks": report.tracks,
        "detection_frames": report.detection_frames,
        "providers": report.providers,
        "timings": report.timings,
    }


def fmt(r: float) -> str:
    return f"{r:.3f}"


def write_readme(data: dict) -> None:
    """The README's redaction table, generated from the JSON (never edited by hand)."""
    engines = data["engines"]
    lines = [
        README_START,
        f"Generated by `bench/redaction.py --readme` on {data['date']} (load average {data['loadavg_start']} at the "
        f"start, {data['loadavg_end']} at the end; a 2-core machine shared with other work: wall times are noisy). "
        f"{data['size']}.",
        "",
        "| clip | engine | recall | worst face | faces < 0.98 | longest miss (frames) | non-face blurred | fps | "
        "CPU ms/frame |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for clip, by_engine in data["clips"].items():
        for engine in engines:
            r = by_engine.get(engine)
            if not r:
                continue
            s = r["score"]
            speed = r.get("speed", {})
            lines.append(
                f"| {clip} | {engine} | {fmt(s['recall']['all'])} | {fmt(s['worst_face']['recall'])} "
                f"({s['worst_face']['width_px']:.0f} px) | {s['faces_below_target']} | {s['longest_visible_run']} | "
                f"{100 * s['non_face_blurred']:.1f} % | {speed.get('fps', 0):.1f} | "
                f"{speed.get('cpu_ms_per_frame', 0):.0f} |"
            )
    keys = sorted({k for c in data["clips"].values() for r in c.values() for k in r["score"]["recall"] if k != "all"})
    lines += ["", "Recall per size bucket and condition (face-frames in brackets):", ""]
    lines.append("| bucket / condition | " + " | ".join(engines) + " |")
    lines.append("| --- |" + " --- |" * len(engines))
    for key in keys:
        cells = []
        for engine in engines:
            got = [
                (c[engine]["score"]["recall"].get(key), c[engine]["score"]["counts"].get(key, 0))
                for c in data["clips"].values()
                if engine in c
            ]
            n = sum(cnt for _, cnt in got)
            covered = sum((rec or 0) * cnt for rec, cnt in got)
            cells.append(f"{covered / n:.3f} ({n})" if n else "")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    a = data["anchors"]
    lines += [
        "",
        f"Anchors in the same run: decoding alone {a['decode_fps']:.1f} fps ({a['decode_cpu_ms']:.1f} ms CPU/frame). "
        "The floor of the measures, re-encoding alone with nothing redacted: "
        + "; ".join(
            f"{name}: {100 * a[name]['reencode_non_face_blurred']:.1f} % of non-face blocks 'blurred', "
            f"{fmt(a[name]['reencode_recall'])} of faces 'covered'"
            for name in data["clips"]
            if name in a
        )
        + ".",
        README_END,
    ]
    readme = ROOT / "bench" / "README.md"
    text = readme.read_text()
    block = "\n".join(lines)
    if README_START in text:
        head, rest = text.split(README_START, 1)
        text = head + block + rest.split(README_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    readme.write_text(text)


def _value(text: str) -> bool | int | float | str:
    """A Settings field's value from the command line: true/false, a number, or a string."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def main() -> int:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0, help="length of each clip")
    ap.add_argument("--clips", default="street,hard,crowd")
    ap.add_argument(
        "--variants", type=int, default=1, help="clips made per scene, each with its own seed (people, tones, paths)"
    )
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--no-deface", action="store_true")
    ap.add_argument("--no-baseline", action="store_true", help="skip the engine with its former settings")
    ap.add_argument("--readme", action="store_true", help="rewrite the table in bench/README.md from this run")
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:FIELD=VALUE,...",
        help="also run the engine with these Settings fields changed, under this name (same clips, same run)",
    )
    args = ap.parse_args()
    if args.quick:
        args.seconds, args.no_deface = 1.5, True
    started = datetime.now(timezone.utc)
    load_start = [round(x, 2) for x in os.getloadavg()]
    settings = Settings()
    engines = {"ours": settings}
    for spec in args.variant:
        name, _, fields = spec.partition(":")
        engines[f"ours, {name}"] = Settings(
            **{k: _value(v) for k, _, v in (f.partition("=") for f in fields.split(","))}
        )
    if not args.no_baseline:
        engines["ours, former settings"] = Settings(**BASELINE)  # type: ignore[arg-type]
    work = Path(tempfile.mkdtemp(prefix="temoin-bench-redaction-"))
    names = [c.strip() for c in args.clips.split(",") if c.strip()]
    size = (
        f"{args.width}x{args.height} @ 30 fps, {args.seconds:g} s per clip ({', '.join(names)}"
        f"{f'; {args.variants} clips per scene, each with its own seed' if args.variants > 1 else ''}), "
        f"{os.cpu_count()} cores"
    )
    results = Results("redaction", size)
    data: dict = {
        "bench": "redaction",
        "date": started.strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_start": load_start,
        "size": size,
        "engines": [*engines, *([] if args.no_deface else ["deface"])],
        "clips": {},
        "anchors": {},
    }
    try:
        clips = []
        for v in range(args.variants):
            for i, name in enumerate(names):
                t0 = time.perf_counter()
                clip = facegen.make(
                    name,
                    work / f"{name}-{v}.mp4",
                    width=args.width,
                    height=args.height,
                    seconds=args.seconds,
                    seed=args.seed + i + 100 * v,
                )
                if v:  # another clip of the same scene: its own name in the tables
                    clip.name = f"{name} #{v + 1}"
                clips.append(clip)
            console.print(
                f"[dim]{name}: {clip.frames} frames, {sum(len(t) for t in clip.truth)} face boxes, "
                f"generated in {time.perf_counter() - t0:.1f} s[/dim]"
            )
        wall, cpu, n = decode_alone(clips[0].path)
        data["anchors"].update(decode_fps=n / wall, decode_cpu_ms=1000 * cpu / n)
        results.add("decode alone (anchor)", f"{n / wall:.1f} fps", f"CPU {1000 * cpu / n:.1f} ms/frame", None)
        for clip in clips:
            per: dict = {}
            floor = work / f"{clip.path.stem}-reencoded.mp4"
            reencode(clip.path, floor, settings)
            base = score(clip, floor)
            data["anchors"][clip.name] = {
                "reencode_recall": base["recall"]["all"],
                "reencode_non_face_blurred": base["non_face_blurred"],
            }
            for engine, engine_settings in engines.items():
                out = work / f"{clip.path.stem}-{engine.replace(' ', '_').replace(',', '')}.mp4"
                speed = run_ours(clip, out, engine_settings)
                per[engine] = {"speed": speed, "score": score(clip, out)}
            if not args.no_deface:
                out = work / f"{clip.path.stem}-deface.mp4"
                wall, dcpu = run_deface(clip.path, out)
                per["deface"] = {
                    "speed": {
                        "fps": clip.frames / wall,
                        "seconds": wall,
                        "cpu_ms_per_frame": 1000 * dcpu / clip.frames,
                    },
                    "score": score(clip, out),
                }
            data["clips"][clip.name] = per
            for engine, r in per.items():
                s, sp = r["score"], r["speed"]
                results.add(
                    f"{clip.name} · {engine}: recall (worst face)",
                    f"{s['recall']['all']:.3f} ({s['worst_face']['recall']:.3f})",
                    f">= {TARGET_RECALL} each face",
                    s["faces_below_target"] == 0 if engine == "ours" else None,
                )
                results.add(
                    f"{clip.name} · {engine}: fps, CPU/frame, non-face blurred",
                    f"{sp['fps']:.1f}",
                    f"{sp['cpu_ms_per_frame']:.0f} ms CPU/frame, {100 * s['non_face_blurred']:.1f} % non-face",
                    sp["fps"] >= TARGET_FPS if engine == "ours" else None,
                )
        data["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
        results.print()
        console.print(
            f"[dim]load average: {data['loadavg_start']} at the start, {data['loadavg_end']} at the end[/dim]"
        )
        if args.json:
            args.json.write_text(json.dumps(data, indent=2, default=float) + "\n")
        if args.readme:
            write_readme(data)
    finally:
        if args.keep:
            console.print(f"[dim]kept {work}[/dim]")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    main_guard(main)
