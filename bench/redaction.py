"""Redaction of a 1080p30 clip: our engine against the `deface` command, on the same clip, in the same run.

The clip is generated (tests/facesynth.py): real face photographs composited at known places and sizes, moving,
some entering late, over a textured wall, with a voice-like sound. Both outputs are scored the same way: a
ground-truth face box counts as redacted when its fine detail has collapsed (tests/facesynth.py `redacted`).

What is timed: the whole `redact_file` call (model load, decode, detection, tracking, blur, libx264 encode,
voice alteration, mux) and the whole `deface` command (same). Apart, to find the bottleneck: decoding alone,
libx264 alone on the decoded frames, the detector alone. Wall times on a shared machine are noisy: the CPU
time of each process is given beside them.

    .venv/bin/python bench/redaction.py              # 10 s of 1080p30, deface at full size and at 960x540
    .venv/bin/python bench/redaction.py --quick      # 3 s
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

import av  # noqa: E402

from bench.common import Results, console, main_guard, parser  # noqa: E402
from temoin.rights.redaction import Settings, redact_file  # noqa: E402
from temoin.rights.redaction.effects import frame_planes  # noqa: E402
from temoin.rights.redaction.model import network_input, shared_detector  # noqa: E402
from temoin.rights.redaction.pipeline import _network_image  # noqa: E402
from tests.facesynth import coverage, make_clip  # noqa: E402

TARGET_FPS = 30.0
TARGET_RECALL = 0.98


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_deface(src: Path, dst: Path, scale: str | None) -> tuple[float, float, str]:
    """(wall s, CPU s, backend line) of the deface command with its defaults (blur, threshold 0.2)."""
    exe = ROOT / ".venv" / "bin" / "deface"
    cmd = [str(exe) if exe.exists() else "deface", str(src), "-o", str(dst), "--keep-audio"]
    if scale:
        cmd += ["--scale", scale]
    cpu0, t0 = children_cpu(), time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    wall, cpu = time.perf_counter() - t0, children_cpu() - cpu0
    if done.returncode != 0:
        raise RuntimeError(f"deface failed: {done.stderr[-800:]}")
    backend = next((line for line in done.stdout.splitlines() if line.startswith("Running on")), "OpenCV DNN")
    return wall, cpu, backend


def stage_costs(src: Path, frames: int, settings: Settings) -> dict[str, float]:
    """Decode alone, libx264 alone, the detector alone: seconds of wall and CPU per frame."""
    out: dict[str, float] = {}
    arrays = []
    c0, t0 = time.process_time(), time.perf_counter()
    with av.open(str(src)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        width, height = stream.width, stream.height
        for frame in container.decode(stream):
            arrays.append(frame)
    out["decode_wall"], out["decode_cpu"] = time.perf_counter() - t0, time.process_time() - c0
    c0, t0 = time.process_time(), time.perf_counter()
    with av.open(os.devnull, "w", format="mp4") as sink:
        video = sink.add_stream("libx264", rate=30, options={"preset": settings.preset, "crf": str(settings.crf)})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        for i, frame in enumerate(arrays):
            frame.pts, frame.time_base = i, Fraction(1, 30)
            for packet in video.encode(frame):
                sink.mux(packet)
        for packet in video.encode(None):
            sink.mux(packet)
    out["encode_wall"], out["encode_cpu"] = time.perf_counter() - t0, time.process_time() - c0
    detector = shared_detector()
    net = network_input(width, height, settings.long_side)
    picks = arrays[:: max(1, len(arrays) // 20)][:20]
    detector.detect(_network_image(frame_planes(picks[0]), net))
    c0, t0 = time.process_time(), time.perf_counter()
    for frame in picks:
        detector.detect(_network_image(frame_planes(frame), net))
    out["detect_wall_each"] = (time.perf_counter() - t0) / len(picks)
    out["detect_cpu_each"] = (time.process_time() - c0) / len(picks)
    out["net"] = f"{net.width}x{net.height}"  # type: ignore[assignment]
    out["frames"] = len(arrays)
    return out


def main() -> int:
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument(
        "--deface-scales",
        default="full,960x540",
        help="deface runs, comma-separated: 'full' and/or WxH for its --scale; 'none' to skip",
    )
    ap.add_argument("--interval", type=int, default=None, help="frames between detections (default: fps / 6)")
    ap.add_argument("--long-side", type=int, default=Settings().long_side)
    ap.add_argument("--preset", default=Settings().preset)
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    args = ap.parse_args()
    if args.quick:
        args.seconds = 3.0
    if args.threads:
        os.environ["TEMOIN_REDACTION_THREADS"] = str(args.threads)
    settings = Settings(interval=args.interval, long_side=args.long_side, preset=args.preset)
    work = Path(tempfile.mkdtemp(prefix="temoin-bench-redaction-"))
    results = Results(
        "redaction", f"{args.width}x{args.height} @ {args.fps} fps, {args.seconds:g} s, 6 faces, {os.cpu_count()} cores"
    )
    try:
        t0 = time.perf_counter()
        clip = make_clip(work / "clip.mp4", width=args.width, height=args.height, fps=args.fps, seconds=args.seconds)
        console.print(
            f"[dim]clip generated in {time.perf_counter() - t0:.1f} s: {clip.frames} frames, "
            f"{sum(len(t) for t in clip.truth)} face boxes[/dim]"
        )

        stages = stage_costs(clip.path, clip.frames, settings)
        n = stages["frames"]
        results.add(
            "decode alone (PyAV, frame threads)",
            f"{n / stages['decode_wall']:.0f} fps",
            f"CPU {1000 * stages['decode_cpu'] / n:.1f} ms/frame",
            None,
            decode_fps=n / stages["decode_wall"],
            decode_cpu_ms=1000 * stages["decode_cpu"] / n,
        )
        results.add(
            f"libx264 alone ({settings.preset}, crf {settings.crf})",
            f"{n / stages['encode_wall']:.0f} fps",
            f"CPU {1000 * stages['encode_cpu'] / n:.1f} ms/frame",
            None,
            encode_fps=n / stages["encode_wall"],
            encode_cpu_ms=1000 * stages["encode_cpu"] / n,
        )
        results.add(
            f"detector alone ({stages['net']}, onnxruntime)",
            f"{1000 * stages['detect_wall_each']:.0f} ms",
            f"CPU {1000 * stages['detect_cpu_each']:.0f} ms/detection",
            None,
            detect_ms=1000 * stages["detect_wall_each"],
            detect_cpu_ms=1000 * stages["detect_cpu_each"],
        )

        ours = work / "ours.mp4"
        c0 = time.process_time()
        report = redact_file(clip.path, ours, settings=settings)
        cpu = time.process_time() - c0
        score = coverage(clip, ours)
        results.add(
            "ours: frames/s (whole redact_file)",
            f"{report.fps:.1f}",
            f">= {TARGET_FPS:g}",
            report.fps >= TARGET_FPS,
            ours_fps=report.fps,
            ours_seconds=report.seconds,
        )
        results.add(
            "ours: CPU per frame (all threads)",
            f"{1000 * cpu / report.frames:.1f} ms",
            f"{report.seconds:.1f} s wall, {cpu:.1f} s CPU",
            None,
            ours_cpu_ms=1000 * cpu / report.frames,
        )
        results.add(
            "ours: face recall",
            f"{score.recall:.4f} ({score.covered}/{score.total})",
            f">= {TARGET_RECALL}",
            score.recall >= TARGET_RECALL,
            ours_recall=score.recall,
        )
        every = round(report.frames / report.detection_frames) if report.detection_frames else 0
        results.add("ours: settings", f"every {every} frames, {stages['net']}", ", ".join(report.providers), None)
        console.print(
            f"[dim]ours: {report.tracks} tracks, {report.faces_detected} detections, "
            f"main-thread seconds {report.timings}[/dim]"
        )

        for scale in [s.strip() for s in args.deface_scales.split(",") if s.strip() and s.strip() != "none"]:
            out = work / f"deface-{scale}.mp4"
            wall, dcpu, backend = run_deface(clip.path, out, None if scale == "full" else scale)
            dscore = coverage(clip, out)
            label = f"deface ({'full size' if scale == 'full' else scale})"
            results.add(
                f"{label}: frames/s",
                f"{clip.frames / wall:.1f}",
                f"CPU {1000 * dcpu / clip.frames:.0f} ms/frame",
                None,
                **{f"deface_{scale}_fps": clip.frames / wall},
            )
            results.add(
                f"{label}: face recall",
                f"{dscore.recall:.4f} ({dscore.covered}/{dscore.total})",
                backend,
                None,
                **{f"deface_{scale}_recall": dscore.recall},
            )
        results.print()
        load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
        console.print(f"[dim]load average at the end: {load}[/dim]")
        results.write_json(args.json)
    finally:
        if args.keep:
            console.print(f"[dim]kept {work}[/dim]")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    main_guard(main)
