"""Camera agent, 720p30 on ONE core: capture + burn-in + H.264/AAC encode + encrypt + sign, as a real-time factor
(target ≥ 1.5: seconds of video recorded per second of wall time).

The real agent (`CameraAgent.step`) records with sound, GPS and the device store (AES-256-GCM sealing, a
signed checkpoint and fsyncs after every 2 s segment), pinned to one core with `os.sched_setaffinity`
before any encoder thread exists (x264's threads inherit it; checked at the end). The clock is simulated, so
the agent runs as fast as it can and never waits for frames. Two pictures: the clean synthetic street
(≈ 0.4 Mbit/s: an easy picture) and the same with sensor-like noise (≈ 4 Mbit/s: a body camera's bitrate).

    .venv/bin/python bench/camera/realtime.py            # 60 s of video per picture
    .venv/bin/python bench/camera/realtime.py --quick    # 10 s
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def pin(core: int) -> None:
    """This process and every thread it has to one core (threads created later inherit it)."""
    for task in os.listdir("/proc/self/task"):
        os.sched_setaffinity(int(task), {core})


# Before anything is imported: numpy's BLAS starts its threads at import time.
CORE = int(sys.argv[sys.argv.index("--core") + 1]) if "--core" in sys.argv[:-1] else 0
pin(CORE)

import _shared  # noqa: E402
from _shared import FPS, common  # noqa: E402
from common import Results, console  # noqa: E402


class Stages:
    """Wall time spent in each stage, by wrapping the functions that do it (for the whole process)."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}

    def wrap(self, owner: object, name: str, label: str) -> None:
        original = getattr(owner, name)  # a classmethod comes bound: the wrapper passes its arguments on
        spent = self.spent
        spent.setdefault(label, 0.0)

        def timed(*a, **k):  # noqa: ANN002, ANN003, ANN202
            t = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                spent[label] += time.perf_counter() - t

        setattr(owner, name, timed)


def instrument() -> Stages:
    from temoin.camera import device_store, media
    from temoin.camera.device_store import SignedCheckpoint

    stages = Stages()
    stages.wrap(media, "burn_in", "burn-in (overlay)")
    stages.wrap(media.SegmentWriter, "add_video", "video: convert + H.264 encode + mux")
    stages.wrap(media.SegmentWriter, "add_audio", "audio: AAC encode + mux")
    stages.wrap(media.SegmentWriter, "close", "segment close (encoder flush)")
    stages.wrap(device_store, "_seal", "encrypt (AES-256-GCM seal)")
    stages.wrap(SignedCheckpoint, "sign", "sign checkpoint (Ed25519)")
    stages.wrap(device_store, "atomic_write", "write + fsync (segment, checkpoint)")
    stages.wrap(device_store.RecordingWriter, "add_segment", "device store, whole (hash, seal, sign, write)")
    return stages


def threads_cores() -> set[str]:
    out = set()
    for task in Path("/proc/self/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                out.add(line.split(":", 1)[1].strip())
    return out


def run(home: Path, noisy: bool, seconds: float, stages: Stages) -> dict:
    agent = _shared.camera(home / ("noisy" if noisy else "clean"), noisy=noisy)
    video_read = agent.video.read
    capture = {"s": 0.0}

    def read():  # noqa: ANN202
        t = time.perf_counter()
        try:
            return video_read()
        finally:
            capture["s"] += time.perf_counter() - t

    agent.video.read = read  # type: ignore[method-assign]
    for k in stages.spent:
        stages.spent[k] = 0.0
    frames = _shared.frames_for(seconds)
    agent.press_record()
    c, t = time.process_time(), time.perf_counter()
    for _ in range(frames):
        agent.step()
    signed = agent.stop_recording()
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    m = signed.manifest
    video_s = _shared.seconds_of(m)
    return {
        "frames": frames,
        "video_s": video_s,
        "wall": wall,
        "cpu": cpu,
        "rtf": video_s / wall,
        "bitrate": m.total_bytes * 8 / video_s,
        "segments": len(m.segments),
        "capture": capture["s"],
        "stages": dict(stages.spent),
    }


def main() -> int:
    ap = common.parser(__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=None, help="seconds of video per picture (default 60)")
    ap.add_argument("--core", type=int, default=0, help="the core to pin to (default 0)")
    ap.add_argument("--picture", choices=("both", "clean", "noisy"), default="both")
    args = ap.parse_args()
    pin(args.core)
    seconds = args.seconds or (10 if args.quick else 60)
    pictures = {"both": (False, True), "clean": (False,), "noisy": (True,)}[args.picture]
    stages = instrument()
    figures = {}
    with common.bench_home(args, "camera-realtime") as home:
        for noisy in pictures:
            name = "noisy" if noisy else "clean"
            with console.status(f"recording {seconds:g} s of 720p30 ({name})…"):
                figures[name] = run(home, noisy, seconds, stages)
            f = figures[name]
            console.print(f"[dim]{name}: {f['video_s']:.1f} s of video in {f['wall']:.1f} s → RTF {f['rtf']:.2f}[/dim]")
    cores = threads_cores()

    res = Results(
        "camera agent: 720p30 record on one core",
        f"{seconds:g} s of video per picture, {_shared.WIDTH}x{_shared.HEIGHT} @ {FPS} fps, H.264 veryfast "
        f"crf 23 + AAC 64 kbit/s, 2 s segments, core {args.core} only",
    )
    for name, f in figures.items():
        label = "clean street" if name == "clean" else "street + sensor noise"
        res.add(
            f"{label}: real-time factor (capture + encode + encrypt + sign)",
            f"{f['rtf']:.2f} ({f['video_s']:.1f} s of video in {common.secs(f['wall'], f['cpu'])})",
            "≥ 1.5",
            f["rtf"] >= 1.5,
            **{f"{name}_rtf": f["rtf"], f"{name}_wall_s": f["wall"], f"{name}_cpu_s": f["cpu"]},
        )
        res.add(
            "  bitrate recorded (video + sound)",
            f"{f['bitrate'] / 1e6:.2f} Mbit/s, {f['segments']} segments",
            **{f"{name}_mbit_s": f["bitrate"] / 1e6},
        )
        per = 1000 / f["frames"]
        res.add(
            "  capture (synthetic scene, noise)",
            f"{f['capture'] * per:.2f} ms/frame",
            **{f"{name}_capture_ms": f["capture"] * per},
        )
        for stage, spent in f["stages"].items():
            res.add(f"  {stage}", f"{spent * per:.2f} ms/frame", **{f"{name}_{stage.split(' ')[0]}_ms": spent * per})
        res.add(
            "  RTF by CPU time (the core to itself: a shared machine steals wall time)",
            f"{f['video_s'] / f['cpu']:.2f}",
            **{f"{name}_rtf_cpu": f["video_s"] / f["cpu"]},
        )
        res.add(
            "  RTF without the synthetic capture (wall)",
            f"{f['video_s'] / (f['wall'] - f['capture']):.2f}",
            **{f"{name}_rtf_no_capture": f["video_s"] / (f["wall"] - f["capture"])},
        )
    res.add(
        "cores allowed to the process's threads", ", ".join(sorted(cores)), str(args.core), cores == {str(args.core)}
    )
    res.print()
    console.print(
        f"[dim]load average at the end: {os.getloadavg()[0]:.1f}. Stages nest: 'video' includes burn-in; "
        "'device store, whole' includes encrypt, sign and write + fsync. A frame's budget at 30 fps is "
        "33.3 ms; RTF 1.5 leaves 22.2 ms.[/dim]"
    )
    res.write_json(args.json)
    return 0


if __name__ == "__main__":
    common.main_guard(main)
