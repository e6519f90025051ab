"""Nearby CCTV cameras (target: ≤ 1 ms per query): which cameras can see the agent who pressed the live button.

10,000 cameras scattered over a 10 km × 10 km city (Paris-sized; 15 % PTZ, headings at random, fields of view
40–90°, ranges 60–250 m), then 10,000 queries at random points with the tenant's default radius (300 m):

  * the in-memory grid index alone (`NearbyIndex.query`): build time and time per query;
  * what GET /api/v1/cctv/nearby runs (`supervision.nearby.nearby`): the registry version read (one primary-key
    SELECT on SQLite) plus the query; the first call rebuilds the index from the database (timed apart), after a
    real import of the 10,000 cameras through `registry.import_rows` (validation, upsert, journal entry).

    .venv/bin/python bench/cctv_nearby.py            # 10,000 cameras, 10,000 queries
    .venv/bin/python bench/cctv_nearby.py --quick    # 2,000 cameras, 2,000 queries
"""

from __future__ import annotations

import math
import random
import time

import common
from common import Results, console

CITY = (48.8566, 2.3522)  # the centre of the box
SIDE_M = 10_000.0


def city_point(rng: random.Random) -> tuple[float, float]:
    lat0, lon0 = CITY
    north, east = rng.uniform(-SIDE_M / 2, SIDE_M / 2), rng.uniform(-SIDE_M / 2, SIDE_M / 2)
    return lat0 + north / 111_195, lon0 + east / (111_195 * math.cos(math.radians(lat0)))


def camera_rows(n: int, rng: random.Random):  # noqa: ANN201
    from temoin.supervision.registry import CameraRow

    rows = []
    for i in range(n):
        lat, lon = city_point(rng)
        ptz = rng.random() < 0.15
        rows.append(
            CameraRow(
                id=f"cctv-{i:05d}",
                name=f"Caméra {i}",
                lat=lat,
                lon=lon,
                height_m=rng.uniform(4, 12),
                heading_deg=rng.uniform(0, 360),
                fov_deg=rng.uniform(40, 90),
                range_m=rng.uniform(60, 250),
                ptz=ptz,
                max_zoom=30 if ptz else 1,
                stream_url=f"rtsp://10.1.{i // 250}.{i % 250}:554/stream1",
            )
        )
    return rows


def timed_queries(fn, points: list[tuple[float, float]], radius: float) -> tuple[list[float], int, float]:  # noqa: ANN001
    """Wall time of each query (sorted, ms), cameras found in all, and the mean CPU time per query (ms): on a
    shared machine the wall-time tail is mostly the process waiting for a core."""
    times, found = [], 0
    cpu = time.process_time()
    for lat, lon in points:
        t = time.perf_counter()
        out = fn(lat, lon, radius)
        times.append((time.perf_counter() - t) * 1000)
        found += len(out)
    cpu_ms = (time.process_time() - cpu) * 1000 / max(len(points), 1)
    times.sort()
    return times, found, cpu_ms


def main() -> int:
    ap = common.parser(__doc__.split("\n", 1)[0])
    ap.add_argument("--cameras", type=int, default=None)
    ap.add_argument("--queries", type=int, default=None)
    ap.add_argument("--radius", type=float, default=300.0)
    ap.add_argument("--cell", type=float, default=None, help="grid cell side in metres (default: the module's)")
    args = ap.parse_args()
    n_cams = args.cameras or (2_000 if args.quick else 10_000)
    n_queries = args.queries or (2_000 if args.quick else 10_000)
    rng = random.Random(args.seed)

    from temoin.supervision import nearby as nb

    cell = args.cell or nb.CELL_M
    rows = camera_rows(n_cams, rng)
    points = [city_point(rng) for _ in range(n_queries)]
    results = Results(
        "cctv nearby",
        f"{n_cams:,} cameras over {SIDE_M / 1000:g} km × {SIDE_M / 1000:g} km, "
        f"{n_queries:,} queries, radius {args.radius:g} m, cells {cell:g} m",
    )

    cams = [
        nb.IndexedCamera(r.id, r.name, r.lat, r.lon, r.heading_deg, r.fov_deg, r.range_m, r.ptz, r.height_m, r.max_zoom)
        for r in rows
    ]
    t, c = time.perf_counter(), time.process_time()
    index = nb.NearbyIndex(cams, cell_m=cell)
    build_ms, build_cpu_ms = (time.perf_counter() - t) * 1000, (time.process_time() - c) * 1000
    results.add(
        "index build (in memory)",
        f"{build_ms:.1f} ms (CPU {build_cpu_ms:.1f} ms)",
        build_ms=build_ms,
        build_cpu_ms=build_cpu_ms,
    )
    times, found, cpu_ms = timed_queries(index.query, points, args.radius)
    p50, p95, p99 = (common.percentile(times, q) for q in (0.5, 0.95, 0.99))
    results.add(
        "query, index alone: p50 / p95 / p99",
        f"{p50:.3f} / {p95:.3f} / {p99:.3f} ms",
        "≤ 1 ms",
        p99 <= 1.0,
        index_p50_ms=p50,
        index_p95_ms=p95,
        index_p99_ms=p99,
    )
    results.add("query, index alone: CPU per query (mean)", f"{cpu_ms:.3f} ms", index_cpu_ms=cpu_ms)
    results.add("cameras returned per query (mean)", f"{found / n_queries:.2f}", found_mean=found / n_queries)

    with common.bench_home(args, "cctv") as home:
        p = common.open_platform(home)
        tenant = common.make_tenant(p, "ville", cameras=0)
        from temoin.journal.entry import Actor
        from temoin.supervision.registry import import_rows

        with p.session() as db:
            t = time.perf_counter()
            import_rows(p, db, db.merge(tenant), rows, actor=Actor.system("bench"), source="bench")
            import_s = time.perf_counter() - t
        results.add(
            f"import of {n_cams:,} cameras (validated rows → upsert + journal)", f"{import_s:.2f} s", import_s=import_s
        )
        with p.session() as db:
            t = time.perf_counter()
            nb.nearby(db, tenant.id, *points[0], args.radius)
            rebuild_ms = (time.perf_counter() - t) * 1000
            results.add(
                "first query after a registry change (reads the rows, rebuilds)",
                f"{rebuild_ms:.0f} ms",
                rebuild_ms=rebuild_ms,
            )
            times, _, api_cpu_ms = timed_queries(
                lambda lat, lon, r: nb.nearby(db, tenant.id, lat, lon, r), points, args.radius
            )
        q50, q95, q99 = (common.percentile(times, q) for q in (0.5, 0.95, 0.99))
        results.add(
            "query as the API runs it (+ version read): p50 / p95 / p99",
            f"{q50:.3f} / {q95:.3f} / {q99:.3f} ms",
            "",
            None,
            api_p50_ms=q50,
            api_p95_ms=q95,
            api_p99_ms=q99,
        )
        results.add("query as the API runs it: CPU per query (mean)", f"{api_cpu_ms:.3f} ms", api_cpu_ms=api_cpu_ms)
        p.close()

    results.print()
    results.write_json(args.json)
    if p99 > 1.0:
        console.print("[yellow]the index alone misses the 1 ms target on this machine[/yellow]")
    return 0


if __name__ == "__main__":
    common.main_guard(main)
