"""Latency of the CSU's events across nodes: an event published on node A's bus until node B's dashboard
subscription has it, through a real NATS JetStream (`temoin.live.events_nats.NatsEventBus`, one bus per node as
`temoin serve` makes them), and the same on the in-process bus (one node) as the baseline.

Both buses run in this process, so they share one clock. It measures the bus alone (publish, JetStream's store and
acknowledgement, the node's consumer, the hand-out to a subscription), not HTTP or the browser.

    .venv/bin/python bench/nodes_events.py                  # 2,000 events at 200 per second
    .venv/bin/python bench/nodes_events.py --quick          # 200 events
    .venv/bin/python bench/nodes_events.py --json bench/results/nodes_events.json   # the README's table
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import Results, percentile


async def _measure(publisher, reader, count: int, rate: float) -> list[float]:
    sub = reader.subscribe(1)
    latencies: list[float] = []

    async def read() -> None:
        while len(latencies) < count:
            event = await sub.next(10)
            if event is None:
                raise RuntimeError(f"only {len(latencies)} of {count} events arrived")
            latencies.append(time.perf_counter() - event.data["sent"])

    reading = asyncio.create_task(read())
    for n in range(count):
        publisher.publish(1, "position", {"n": n, "sent": time.perf_counter()})
        await asyncio.sleep(1 / rate)
    await reading
    sub.close()
    return sorted(latencies)


def main() -> None:
    ap = common.parser(__doc__.splitlines()[0])
    ap.add_argument("--nats", default="nats://127.0.0.1:4222", help="NATS server with JetStream")
    ap.add_argument("--events", type=int, default=None)
    ap.add_argument("--rate", type=float, default=200.0, help="events per second")
    args = ap.parse_args()
    count = args.events or (200 if args.quick else 2000)
    common.run_start()  # the date and load average at the start, recorded with the figures

    from temoin.live.events import InProcessEventBus
    from temoin.live.events_nats import NatsEventBus

    stream = f"BENCH_{uuid.uuid4().hex[:8]}"
    a, b = NatsEventBus(args.nats, stream, 600), NatsEventBus(args.nats, stream, 600)
    local = InProcessEventBus()
    try:
        if not (a.wait_ready(10) and b.wait_ready(10)):
            raise SystemExit(f"NATS JetStream not reachable at {args.nats}")
        across = asyncio.run(_measure(a, b, count, args.rate))
        alone = asyncio.run(_measure(local, local, count, args.rate))
    finally:
        a.close()
        b.close()
        local.close()
        asyncio.run(_drop_stream(args.nats, stream))

    results = Results("events across nodes", f"{count} events at {args.rate:g}/s")
    for name, values in (("node A → node B (NATS JetStream)", across), ("one node (in-process bus)", alone)):
        p50, p95, p99 = (percentile(values, q) * 1000 for q in (0.5, 0.95, 0.99))
        key = "nats" if "NATS" in name else "inprocess"
        results.add(
            f"{name} p50 / p95 / p99",
            f"{p50:.2f} / {p95:.2f} / {p99:.2f} ms",
            **{f"{key}_p50_ms": p50, f"{key}_p95_ms": p95, f"{key}_p99_ms": p99},
        )
    results.print()
    results.write_json(args.json)


async def _drop_stream(url: str, stream: str) -> None:
    import nats

    nc = await nats.connect(url, connect_timeout=3, allow_reconnect=False)
    try:
        await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()


if __name__ == "__main__":
    common.main_guard(main)
