"""`temoin serve` with a sampling profiler of every thread (the web loop, the media plane's own loop, the thread
pool): every `interval` a daemon thread reads `sys._current_frames()` and counts, per thread name, the innermost
frames (self) and every frame on the stack (cumulative); every second it also reads each thread's CPU time from
/proc (`cpu_s_per_thread`: what a thread used, apart from the samples, which also count a thread waiting for the
GIL). On SIGTERM the counts go to `--out` as JSON. cProfile would see only the main thread, and cost far more.

    python bench/live/sampled_serve.py --out profile.json -- --port 8443    # the rest: `temoin serve`'s arguments
"""

from __future__ import annotations

import collections
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path


def _base(name: str) -> str:
    """A thread's name without its number (the pool's workers, the live backups' writers count together)."""
    return name.rstrip("0123456789_").rstrip("-").rstrip("0123456789_-")


def main() -> None:
    args = sys.argv[1:]
    split = args.index("--")
    out = Path(args[args.index("--out") + 1])
    interval = float(args[args.index("--interval") + 1]) if "--interval" in args[:split] else 0.005
    serve_args = args[split + 1 :]
    own: collections.Counter = collections.Counter()
    total: collections.Counter = collections.Counter()
    samples = collections.Counter()
    cpu: dict[int, tuple[str, float]] = {}  # native thread id -> (name, CPU seconds so far)
    stop = threading.Event()

    clock = os.sysconf("SC_CLK_TCK")

    def read_cpu() -> None:
        for t in threading.enumerate():
            if t.native_id is None:
                continue
            try:
                fields = Path(f"/proc/self/task/{t.native_id}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # ended meanwhile
            cpu[t.native_id] = (_base(t.name), (int(fields[11]) + int(fields[12])) / clock)

    def sample() -> None:
        me = threading.get_ident()  # the sampler itself; the main thread (uvicorn's event loop) is sampled
        last_cpu = 0.0
        while not stop.wait(interval):
            names = {t.ident: t.name for t in threading.enumerate()}
            if time.monotonic() - last_cpu >= 1.0:
                read_cpu()
                last_cpu = time.monotonic()
            for ident, frame in sys._current_frames().items():  # noqa: SLF001 - the point of this profiler
                if ident == me:
                    continue
                thread = _base(names.get(ident, "?"))
                samples[thread] += 1
                leaf = frame
                own[f"{thread}\t{leaf.f_code.co_filename}:{leaf.f_code.co_name}"] += 1
                seen = set()
                while frame is not None:
                    key = f"{thread}\t{frame.f_code.co_filename}:{frame.f_code.co_name}"
                    if key not in seen:
                        total[key] += 1
                        seen.add(key)
                    frame = frame.f_back

    def dump(*_: object) -> None:
        stop.set()
        read_cpu()
        per_thread: collections.Counter = collections.Counter()
        for name, seconds in cpu.values():
            per_thread[name] += seconds
        out.write_text(
            json.dumps(
                {
                    "interval_s": interval,
                    "samples_per_thread": dict(samples),
                    "cpu_s_per_thread": {k: round(v, 2) for k, v in per_thread.most_common()},
                    "self": own.most_common(60),
                    "cumulative": total.most_common(120),
                    "written_at": time.time(),
                },
                indent=1,
            )
        )

    threading.Thread(target=sample, daemon=True, name="sampler").start()
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: object) -> None:
        dump()
        if callable(previous):
            previous(signum, frame)  # type: ignore[arg-type]
        else:
            raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    from temoin.cli import main as temoin_main

    sys.argv = ["temoin", "serve", *serve_args]
    try:
        temoin_main()
    finally:
        if not stop.is_set():
            dump()


if __name__ == "__main__":
    main()
