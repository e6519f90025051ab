"""Retention sweep over a large catalogue (target: 1,000,000 catalogued recordings swept in ≤ 30 s).

Loads N stored recordings (SQLite, bulk) spread over tenants, cameras and agents, with retention deadlines
uniform over [now - 1 day, now + 30 days]: 1/31 of them (≈ 32,000 of a million, one day's worth) are due.
A few due recordings are on hold. Each due recording gets a blob folder with one small sealed-looking file,
as a real vault has (--blob-dirs all gives every recording one, to measure the orphan scan).

Measured with the platform's own engine and code:
  * the due query alone (`retention.due_ids`, first batch of 500, and all due ids), with SQLite's plan;
  * the whole `retention.sweep` (keys destroyed, certificates signed, journal entries, blobs removed);
  * a second sweep with nothing due (what the hourly scheduler costs in steady state).

    .venv/bin/python bench/retention.py            # 1,000,000 recordings
    .venv/bin/python bench/retention.py --quick    # 20,000
"""

from __future__ import annotations

import cProfile
import os
import pstats
import random
import time
from datetime import datetime, timedelta, timezone

import common
from common import Results, Stopwatch, console
from rich.table import Table


def instrument() -> dict[str, list]:
    """Wrap what the sweep calls now with timers (in this process only; nothing in src/ changes)."""
    from concurrent.futures import Future

    from sqlalchemy.orm import Session

    from temoin.journal.service import Journal
    from temoin.keyring import Signer
    from temoin.vault import derived, retention
    from temoin.vault.storage import LocalBlobStore

    parts: dict[str, list] = {}

    def wrap(owner, name: str, label: str) -> None:  # noqa: ANN001
        fn = getattr(owner, name)
        slot = parts.setdefault(label, [0, 0.0])

        def timed(*a, **k):  # noqa: ANN002, ANN003, ANN202
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                slot[0] += 1
                slot[1] += time.perf_counter() - t

        setattr(owner, name, timed)

    wrap(retention, "remove_pending", "retention.remove_pending (what a killed pass left)")
    wrap(retention, "due_ids", "retention.due_ids (batch of 500)")
    wrap(retention, "_erase", "retention._erase (keys, certificates, journal)")
    wrap(derived, "of_recordings", "  derived.of_recordings")
    wrap(Signer, "sign", "  Signer.sign (certificate)")
    wrap(Journal, "write_many", "  Journal.write_many (head, entries, file sink + fsync)")
    wrap(Session, "commit", "Session.commit (per batch)")
    wrap(Future, "result", "waiting for the blob remover (main thread)")
    wrap(LocalBlobStore, "delete_prefixes", "LocalBlobStore.delete_prefixes (remover thread, overlapped)")
    wrap(derived, "remove_files", "derived.remove_files")
    wrap(derived, "expire", "derived.expire (live backups)")
    wrap(retention, "remove_orphans", "retention.remove_orphans (audit, not in the hourly pass)")
    wrap(derived, "remove_orphans", "derived.remove_orphans (audit, not in the hourly pass)")
    return parts


def main() -> int:
    ap = common.parser(__doc__.split("\n\n")[0])
    ap.add_argument("--recordings", type=int, default=None, help="catalogue size (default 1,000,000)")
    ap.add_argument("--tenants", type=int, default=10)
    ap.add_argument("--held", type=int, default=None, help="due recordings kept by a hold (default 50)")
    ap.add_argument(
        "--blob-dirs",
        choices=("due", "all", "none"),
        default="all",
        help="which recordings get a blob folder on disk (default: all, a real vault)",
    )
    ap.add_argument("--profile", action="store_true", help="cProfile the sweep and print the top functions")
    ap.add_argument(
        "--breakdown",
        action="store_true",
        help="time the sweep's parts (hold check, journal write, signing, blob removal, commits)",
    )
    args = ap.parse_args()
    n = args.recordings or (20_000 if args.quick else 1_000_000)
    held_n = args.held if args.held is not None else (5 if args.quick else 50)
    rng = random.Random(args.seed)
    sw = Stopwatch()

    from sqlalchemy import text

    from temoin.vault import retention

    with common.bench_home(args, "retention") as home:
        p = common.open_platform(home)
        now = datetime.now(timezone.utc).replace(microsecond=0)
        with sw.stage("setup: tenants and cameras"):
            fleet = common.make_fleet(p, args.tenants, cameras=8, agents=20)
            chief = common.make_user(p, fleet.tenants[0][1], "bench-chief", "chief")
        with sw.stage(f"setup: bulk insert {n:,} recordings"):
            rows = common.recording_rows(
                fleet,
                n,
                rng,
                started=(now - timedelta(days=32), now - timedelta(days=1)),
                retention=(now - timedelta(days=1), now + timedelta(days=30)),
                master_key_id=p.keyring.master_key_id,
            )
            common.bulk_insert_recordings(home, rows)
        conn = common.raw_sqlite(home)
        slugs = dict(fleet.tenants)
        due = conn.execute(
            "SELECT id, tenant_id FROM recordings WHERE state = 'stored' AND retention_until <= ?",
            (common.sql_dt(now),),
        ).fetchall()
        with sw.stage(f"setup: {held_n} holds"):
            t0_id = fleet.tenants[0][0]
            held_ids = [rid for rid, tid in due if tid == t0_id][:held_n]
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO holds (tenant_id, recording_id, procedure_type, reference, placed_by, "
                "placed_at) VALUES (?, ?, 'judicial', 'PV 2026/0001', ?, ?)",
                [(t0_id, rid, chief, common.sql_dt(now)) for rid in held_ids],
            )
            conn.execute("COMMIT")
        if args.blob_dirs == "all":
            blob_targets = conn.execute("SELECT id, tenant_id FROM recordings").fetchall()
        else:
            blob_targets = due if args.blob_dirs == "due" else []
        conn.close()
        with sw.stage(f"setup: {len(blob_targets):,} blob folders"):
            record = os.urandom(4096)
            for rid, tid in blob_targets:
                folder = p.store.blobs / slugs[tid] / rid
                folder.mkdir(parents=True)
                (folder / "00000.seg").write_bytes(record)
        common.stage_table("setup (not measured)", sw.stages)
        expected = len(due) - len(held_ids)

        with p.session() as db:
            plan = db.execute(
                text(
                    "EXPLAIN QUERY PLAN SELECT recordings.id FROM recordings WHERE recordings.state = 'stored' "
                    "AND recordings.retention_until <= :now AND NOT (EXISTS (SELECT * FROM holds WHERE "
                    "holds.recording_id = recordings.id AND holds.lifted_at IS NULL)) "
                    "ORDER BY recordings.retention_until LIMIT 500"
                ),
                {"now": common.sql_dt(now)},
            ).all()
            console.print("[dim]due query plan: " + " | ".join(r[-1] for r in plan) + "[/dim]")
            first, t_first, _ = common.timed(retention.due_ids, db, now, retention.BATCH)
            all_due, t_all, c_all = common.timed(retention.due_ids, db, now, 10**9)
        assert len(first) == min(retention.BATCH, expected), (len(first), expected)
        assert len(all_due) == expected, (len(all_due), expected)

        parts = instrument() if args.breakdown else None
        profiler = cProfile.Profile() if args.profile else None
        with p.session() as db:
            c, t = time.process_time(), time.perf_counter()
            if profiler:
                profiler.enable()
            result = retention.sweep(p, db, now, orphans=False)  # the hourly pass
            if profiler:
                profiler.disable()
            t_sweep, c_sweep = time.perf_counter() - t, time.process_time() - c
        if parts is not None:
            breakdown = Table(title="where the sweep's time goes (wall, nested parts overlap)", title_justify="left")
            for col in ("part", "calls", "seconds", "ms per call"):
                breakdown.add_column(col, justify="left" if col == "part" else "right")
            for name, (calls, spent) in parts.items():
                if calls:
                    breakdown.add_row(name, f"{calls:,}", f"{spent:.2f}", f"{spent / max(1, calls) * 1000:.3f}")
            for slot in parts.values():
                slot[:] = [0, 0.0]
        assert len(result.deleted) == expected, (len(result.deleted), expected)
        assert result.held == len(held_ids), (result.held, len(held_ids))

        with p.session() as db:
            idle, t_idle, c_idle = common.timed(retention.sweep, p, db, now, orphans=False)
        assert not idle.deleted

        def audit() -> int:
            from temoin.vault import derived

            with p.session() as db:
                return retention.remove_orphans(p, db) + derived.remove_orphans(p, db)

        orphans, t_audit, c_audit = common.timed(audit)
        assert orphans == 0, orphans
        if parts is not None:
            for name, (calls, spent) in parts.items():
                if calls and "audit" in name:
                    breakdown.add_row(name, f"{calls:,}", f"{spent:.2f}", f"{spent / max(1, calls) * 1000:.3f}")

        res = Results(
            "retention sweep",
            f"{n:,} recordings, {len(due):,} due, {len(held_ids)} held, "
            f"{args.tenants} tenants, blob folders: {args.blob_dirs}",
        )
        res.add("due query, first batch of 500", f"{t_first * 1000:.1f} ms", due_first_batch_s=t_first)
        res.add(f"due query, all {expected:,} ids", common.secs(t_all, c_all), due_all_s=t_all)
        res.add(
            "whole sweep (the hourly pass, no store audit)",
            common.secs(t_sweep, c_sweep),
            "≤ 30 s",
            t_sweep <= 30,
            sweep_s=t_sweep,
            sweep_cpu_s=c_sweep,
        )
        res.add("recordings deleted", f"{len(result.deleted):,}", deleted=len(result.deleted))
        per = 1000 / max(1, len(result.deleted))
        res.add(
            "per deleted recording",
            f"{t_sweep * per:.2f} ms (CPU {c_sweep * per:.2f} ms)",
            per_recording_ms=t_sweep * per,
            per_recording_cpu_ms=c_sweep * per,
        )
        res.add("blobs removed", f"{result.blobs_removed:,}", blobs_removed=result.blobs_removed)
        res.add("held (kept)", f"{result.held}", held=result.held)
        res.add("second sweep, nothing due (the hourly pass)", common.secs(t_idle, c_idle), idle_sweep_s=t_idle)
        res.add(
            f"orphan audit of the whole store ({len(blob_targets) - len(result.deleted):,} folders; daily)",
            common.secs(t_audit, c_audit),
            audit_s=t_audit,
            audit_cpu_s=c_audit,
        )
        res.raw.update(recordings=n, due=len(due))
        res.print()
        if parts is not None:
            console.print(breakdown)
        res.write_json(args.json)
        if profiler:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
        p.close()
    return 0


if __name__ == "__main__":
    common.main_guard(main)
