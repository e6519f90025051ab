"""`temoin serve` with a sampling profiler of every thread (the web loop, the media plane's own loop, the thread
pool): every `interval` a daemon thread reads `sys._current_frames()` and counts, per thread name, the innermost
frames (self) and every frame on the stack (cumulative). On SIGTERM the counts go to `--out` as JSON. cProfile
would see only the main thread, and cost far more.

    python bench/live/sampled_serve.py --out profile.json -- --port 8443    # the rest: `temoin serve`'s arguments
"""

from __future__ import annotations

import collections
import json
import signal
import sys
import threading
import time
from pathlib import Path


def main() -> None:
    args = sys.argv[1:]
    split = args.index("--")
    out = Path(args[args.index("--out") + 1])
    interval = float(args[args.index("--interval") + 1]) if "--interval" in args[:split] else 0.005
    serve_args = args[split + 1 :]
    own: collections.Counter = collections.Counter()
    total: collections.Counter = collections.Counter()
    samples = collections.Counter()
    stop = threading.Event()

    def sample() -> None:
        me = threading.get_ident()  # the sampler itself; the main thread (uvicorn's event loop) is sampled
        while not stop.wait(interval):
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():  # noqa: SLF001 - the point of this profiler
                if ident == me:
                    continue
                thread = names.get(ident, "?").rstrip("0123456789_").rstrip("-").rstrip("0123456789_-")
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
        out.write_text(
            json.dumps(
                {
                    "interval_s": interval,
                    "samples_per_thread": dict(samples),
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
