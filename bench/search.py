"""Catalogue search on SQLite (target: p95 ≤ 50 ms by tenant + date range + agent over 1,000,000 recordings).

Loads N stored recordings (bulk) over 10 tenants, 8 cameras and 40 agents each, started uniformly over the
last 180 days, then times `temoin.vault.catalogue.search` (the code behind GET /api/v1/recordings, which
returns up to 100 rows per page) for random queries:

  * tenant + date range (1, 7 or 30 days) + agent, by a chief: the target;
  * tenant + date range, no agent, by a chief;
  * a wearing agent's own recordings (the role filter) + date range;
  * tenant + 30 days + agent where that agent's manifests are realistic in size (a GPS track: --big-manifest
    bytes each), since search loads the whole row, manifest included.

    .venv/bin/python bench/search.py            # 1,000,000 recordings, 200 queries per series
    .venv/bin/python bench/search.py --quick    # 50,000
"""

from __future__ import annotations

import random
import time
from datetime import datetime, timedelta, timezone

import common
from common import Results, Stopwatch, console

WINDOWS = (timedelta(days=1), timedelta(days=7), timedelta(days=30))


def explain(p, db, catalogue, user, q) -> str:  # noqa: ANN001
    """The SQL that catalogue.search emits, and the plan SQLite picks for it."""
    from sqlalchemy import event

    seen: list[tuple[str, tuple]] = []

    def grab(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001, ANN202
        seen.append((statement, parameters))

    event.listen(p.engine, "before_cursor_execute", grab)
    try:
        catalogue.search(db, user, q)
    finally:
        event.remove(p.engine, "before_cursor_execute", grab)
    statement, params = seen[-1]
    plan = db.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).all()
    where = statement[statement.index("WHERE") :].replace("\n", " ")
    return f"search SQL: … {where}\nplan: " + " | ".join(str(r[-1]) for r in plan)


def main() -> int:
    ap = common.parser(__doc__.split("\n\n")[0])
    ap.add_argument("--recordings", type=int, default=None, help="catalogue size (default 1,000,000)")
    ap.add_argument("--queries", type=int, default=200, help="queries per series (default 200)")
    ap.add_argument("--tenants", type=int, default=10)
    ap.add_argument("--agents", type=int, default=40, help="agents per tenant (default 40)")
    ap.add_argument(
        "--big-manifest",
        type=int,
        default=48_000,
        help="bytes of the realistic manifests given to one agent's recordings (0: skip)",
    )
    args = ap.parse_args()
    n = args.recordings or (50_000 if args.quick else 1_000_000)
    rng = random.Random(args.seed)
    sw = Stopwatch()

    from temoin.identity.models import User
    from temoin.vault import catalogue

    with common.bench_home(args, "search") as home:
        p = common.open_platform(home)
        now = datetime.now(timezone.utc).replace(microsecond=0)
        window = (now - timedelta(days=180), now)
        with sw.stage("setup: tenants and cameras"):
            fleet = common.make_fleet(p, args.tenants, cameras=8, agents=args.agents)
        with sw.stage(f"setup: bulk insert {n:,} recordings"):
            common.bulk_insert_recordings(
                home,
                common.recording_rows(
                    fleet, n, rng, started=window, retention=None, master_key_id=p.keyring.master_key_id
                ),
            )
        big_tenant, _ = fleet.tenants[0]
        big_agent = fleet.agents[big_tenant][0]
        big_rows = 0
        if args.big_manifest:
            with sw.stage(f"setup: {common.human_bytes(args.big_manifest)} manifests for agent {big_agent}"):
                conn = common.raw_sqlite(home)
                pad = "x" * args.big_manifest
                big_rows = conn.execute(
                    "UPDATE recordings SET manifest = ? WHERE tenant_id = ? AND agent_ref = ?",
                    ('{"manifest":{},"p":"' + pad + '"}', big_tenant, big_agent),
                ).rowcount
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                conn.close()
        common.stage_table("setup (not measured)", sw.stages)

        # Users as the web layer hands them to the catalogue (only tenant, role and agent number are read).
        chiefs = {tid: User(id=1000 + tid, tenant_id=tid, role="chief", agent_number=None) for tid, _ in fleet.tenants}

        def chief_query(
            with_agent: bool, tenant: int | None = None, agent: str | None = None, span: timedelta | None = None
        ):  # noqa: ANN202
            tid = tenant or rng.choice(fleet.tenants)[0]
            span = span or rng.choice(WINDOWS)
            start = window[0] + (window[1] - window[0] - span) * rng.random()
            q = catalogue.SearchQuery(
                start=start, end=start + span, agent=(agent or rng.choice(fleet.agents[tid])) if with_agent else None
            )
            return chiefs[tid], q

        def own_query():  # noqa: ANN202
            tid = rng.choice(fleet.tenants)[0]
            agent = rng.choice(fleet.agents[tid][1:])
            span = rng.choice(WINDOWS)
            start = window[0] + (window[1] - window[0] - span) * rng.random()
            user = User(id=5000, tenant_id=tid, role="agent", agent_number=agent)
            return user, catalogue.SearchQuery(start=start, end=start + span)

        series = [
            ("tenant + dates + agent", lambda: chief_query(True)),
            ("tenant + dates", lambda: chief_query(False)),
            ("agent's own + dates", own_query),
        ]
        if big_rows:
            series.append(
                (
                    f"tenant + 30 days + agent, {common.human_bytes(args.big_manifest)} manifests",
                    lambda: chief_query(True, big_tenant, big_agent, timedelta(days=30)),
                )
            )

        with p.session() as db:
            console.print("[dim]" + explain(p, db, catalogue, *chief_query(True)) + "[/dim]")

        res = Results(
            "catalogue search",
            f"{n:,} recordings, {args.tenants} tenants × {args.agents} agents, "
            f"{args.queries} queries per series, SQLite",
        )
        for name, make in series:
            lat, rows = [], 0
            with p.session() as db:
                catalogue.search(db, *make())  # warm the statement cache
                for _ in range(args.queries):
                    user, q = make()
                    t = time.perf_counter()
                    found = catalogue.search(db, user, q)
                    lat.append((time.perf_counter() - t) * 1000)
                    rows += len(found)
                    db.expunge_all()
            lat.sort()
            p50, p95, p99 = (common.percentile(lat, x) for x in (0.5, 0.95, 0.99))
            key = name.split(",")[0].replace(" + ", "_").replace(" ", "_").replace("'", "")
            ok = p95 <= 50 if name == "tenant + dates + agent" else None
            res.add(
                f"{name}: p50 / p95 / p99",
                f"{p50:.1f} / {p95:.1f} / {p99:.1f} ms",
                "p95 ≤ 50 ms" if ok is not None else "",
                ok,
                **{
                    f"{key}_p50_ms": p50,
                    f"{key}_p95_ms": p95,
                    f"{key}_p99_ms": p99,
                    f"{key}_rows_avg": rows / len(lat),
                },
            )
            res.add("  max, rows returned on average", f"{lat[-1]:.1f} ms, {rows / len(lat):.0f}")
        res.raw.update(recordings=n)
        res.print()
        res.write_json(args.json)
        p.close()
    return 0


if __name__ == "__main__":
    common.main_guard(main)
