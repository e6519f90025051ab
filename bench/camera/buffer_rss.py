"""Camera agent memory: resident set with a 120 s pre-event buffer at 4 Mbit/s (target ≤ 150 MB).

The real agent in standby at 720p30, its pre-event buffer set to 120 s with a 4 Mbit/s memory bound
(`buffer_bitrate_bps`: 120 s × 4 Mbit/s = 60 MB), fed a noisy synthetic street that H.264 encodes at
about 4.5 Mbit/s, so that the buffer really fills to its bound. The clock is simulated (the agent runs as
fast as it can). The process's VmRSS and VmHWM (peak) are read from /proc: after the imports, once the
buffer is full (and steady: 10 s more), then after the record button hands the whole buffer to the
encrypted device store (the moment the most is held at once). The buffer's bytes lie in a sealed ring file
on the camera's storage (`camera.buffer_ring`), not in the process's memory.

    .venv/bin/python bench/camera/buffer_rss.py            # 120 s buffer, 130 s of standby
    .venv/bin/python bench/camera/buffer_rss.py --quick    # 20 s buffer (not the target's size)
"""

from __future__ import annotations

import gc
import os
import time
from datetime import UTC, datetime

import _shared
from _shared import FPS, common
from common import Results, console

MiB = 1024 * 1024


def mb(mib: float) -> str:
    return f"{mib:.0f} MiB = {mib * MiB / 1e6:.0f} MB"


def main() -> int:
    ap = common.parser(__doc__.split("\n\n")[0])
    ap.add_argument("--buffer-s", type=float, default=None, help="pre-event buffer, seconds (default 120)")
    ap.add_argument("--bitrate", type=int, default=4_000_000, help="the buffer's memory bound, bit/s")
    args = ap.parse_args()
    buffer_s = args.buffer_s or (20 if args.quick else 120)
    measured_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    load_before = os.getloadavg()
    import temoin.camera.agent  # noqa: F401 - what a camera process loads
    import temoin.camera.runner  # noqa: F401

    gc.collect()
    _, rss_imports = _shared.rss_mib()
    with common.bench_home(args, "camera-rss") as home:
        agent = _shared.camera(home / "camera", noisy=True, pre_event_s=buffer_s, buffer_bitrate_bps=args.bitrate)
        _, rss_agent = _shared.rss_mib()
        pool = agent.video.pool_bytes
        samples: list[tuple[float, float, int]] = []
        standby = buffer_s + 10
        t = time.perf_counter()
        with console.status(f"standby, {standby:g} s of 720p30 into a {buffer_s:g} s buffer…"):
            for i in range(_shared.frames_for(standby)):
                agent.step()
                if i % (5 * FPS) == 0:
                    samples.append((i / FPS, _shared.rss_mib()[1], agent.buffer.bytes))
        wall = time.perf_counter() - t
        hwm_standby, rss_standby = _shared.rss_mib()
        buffered, seconds, bound = agent.buffer.bytes, agent.buffer.duration_s, agent.buffer.max_bytes
        in_memory = agent.buffer.in_memory_bytes  # 0: the buffer lies in its ring file (camera.buffer_ring)
        bitrate = buffered * 8 / seconds if seconds else 0.0
        with console.status("record: the buffer goes to the device store…"):
            rid = agent.press_record()
            for _ in range(_shared.frames_for(2)):
                agent.step()
            signed = agent.stop_recording()
        hwm_after, rss_after = _shared.rss_mib()
        stored = sum(f.stat().st_size for f in agent.store.folder(rid).iterdir())

    res = Results(
        "camera agent: memory with the pre-event buffer full",
        f"{buffer_s:g} s buffer, bound {args.bitrate / 1e6:g} Mbit/s, 720p30 noisy street, "
        f"{standby:g} s of standby ({wall:.0f} s of wall time)",
    )
    res.add("RSS after the imports (Python, PyAV, numpy, temoin.camera)", mb(rss_imports), rss_imports_mib=rss_imports)
    res.add("RSS with the agent built (encoder not yet opened)", mb(rss_agent), rss_agent_mib=rss_agent)
    res.add("  of which the bench's noise frames (not the camera's)", f"{pool / 1e6:.1f} MB", noise_pool_mb=pool / 1e6)
    res.add(
        "buffer held once full",
        f"{buffered / 1e6:.1f} MB = {seconds:.0f} s at {bitrate / 1e6:.2f} Mbit/s (bound {bound / 1e6:.0f} MB)",
        buffer_mb=buffered / 1e6,
        buffer_s=seconds,
        stream_mbit_s=bitrate / 1e6,
    )
    res.add(
        "RSS in standby, buffer full",
        mb(rss_standby),
        "≤ 150 MB",
        rss_standby * MiB / 1e6 <= 150,
        rss_standby_mib=rss_standby,
    )
    res.add(
        "peak RSS (VmHWM) in standby",
        mb(hwm_standby),
        "≤ 150 MB",
        hwm_standby * MiB / 1e6 <= 150,
        hwm_standby_mib=hwm_standby,
    )
    res.add(
        "peak RSS (VmHWM) once the buffer went to the store",
        mb(hwm_after),
        "≤ 150 MB",
        hwm_after * MiB / 1e6 <= 150,
        hwm_after_mib=hwm_after,
        rss_after_mib=rss_after,
    )
    res.add(
        "  recording stored (encrypted, on disk)",
        f"{stored / 1e6:.1f} MB, {len(signed.manifest.segments)} segments, {_shared.seconds_of(signed.manifest):.0f} s",
        stored_mb=stored / 1e6,
    )
    res.add(
        "  of which in the process's memory",
        f"{in_memory / 1e6:.1f} MB" + ("" if in_memory else " (in the sealed ring file on the camera's storage)"),
        buffer_in_memory_mb=in_memory / 1e6,
    )
    res.add(
        "RSS in standby less the buffer in memory and the bench's noise",
        mb(rss_standby - (in_memory + pool) / MiB),
        rss_without_buffer_mib=rss_standby - (in_memory + pool) / MiB,
    )
    tunables = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("MALLOC_")) or "none"
    res.add("glibc malloc tunables in the environment", tunables)
    res.raw.update(measured_at=measured_at, loadavg_before=load_before)  # the date and load of this run
    res.print()
    for at, rss, held in samples[:: max(1, len(samples) // 8)]:
        console.print(f"[dim]  t = {at:5.0f} s: RSS {rss:.0f} MiB, buffer {held / 1e6:.1f} MB[/dim]")
    res.write_json(args.json)
    return 0


if __name__ == "__main__":
    common.main_guard(main)
