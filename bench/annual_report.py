"""The annual report to the prefect for a year of a 50-camera commune (target: PDF + CSV in ≤ 5 s).

Builds one tenant with 50 cameras and 60 agents, then a year of activity, bulk-inserted: recordings (50 cameras ×
4 a day, 10 minutes on average; all deleted by retention since, 2 % late, a few erased on request), their journal
(one collection and one erasure entry each, consultations for 10 % of recordings with a motive, extractions for a
procedure, live viewings), live sessions, holds and rights requests. Then times `annual_report` + the PDF + the
CSV through the platform's engine, as `temoin report annual` and GET /api/v1/reports/annual/{year}.pdf run it.

    .venv/bin/python bench/annual_report.py            # 50 cameras × 4 a day × 365 days
    .venv/bin/python bench/annual_report.py --quick    # 50 cameras × 1 a day
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from datetime import datetime, timedelta, timezone

import common
from common import Results, Stopwatch

YEAR = 2025
MOTIVES = (
    ("judicial_procedure", 0.35),
    ("administrative_procedure", 0.1),
    ("disciplinary_procedure", 0.05),
    ("incident_review", 0.2),
    ("complaint", 0.1),
    ("report_facts", 0.2),
)
PROCEDURES = ("judicial", "administrative", "disciplinary")


def fmt(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).replace(tzinfo=None).isoformat(" ", "microseconds")


def main() -> int:
    ap = common.parser(__doc__.split("\n\n")[0])
    ap.add_argument("--per-day", type=int, default=None, help="recordings per camera per day (default 4)")
    ap.add_argument("--cameras", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3, help="timed runs (the median is kept)")
    args = ap.parse_args()
    per_day = args.per_day or (1 if args.quick else 4)
    rng = random.Random(args.seed)
    sw = Stopwatch()

    from temoin.reports import annual
    from temoin.reports.pdf import annual_pdf

    with common.bench_home(args, "annual") as home:
        p = common.open_platform(home)
        with sw.stage("setup: tenant, cameras, users"):
            fleet = common.make_fleet(p, 1, cameras=args.cameras, agents=60)
            tenant_id, slug = fleet.tenants[0]
            for n in range(3):
                common.make_user(p, slug, f"{slug}-agent-{n}", "agent", agent_number=f"AG-{n}")
            common.make_user(p, slug, f"{slug}-designated", "designated_agent")
        t0 = datetime(YEAR, 1, 1, tzinfo=timezone.utc) - timedelta(hours=1)
        span = (datetime(YEAR + 1, 1, 1, tzinfo=timezone.utc) - t0).total_seconds()
        n = args.cameras * per_day * 365
        recs, journal = [], []
        with sw.stage(f"setup: generate {n:,} recordings and their journal"):
            from sqlalchemy import select

            from temoin.journal.models import JournalHead

            with p.session() as db:  # continue the tenant's chain after what the setup journaled
                head = db.execute(select(JournalHead.seq, JournalHead.hash).where(JournalHead.chain == slug)).one()
            seq, prev = head.seq + 1, head.hash

            def entry(at: datetime, action: str, event: str, body: dict) -> None:
                nonlocal seq, prev
                text = json.dumps(
                    {
                        "v": 1,
                        "chain": slug,
                        "seq": seq,
                        "prev": prev,
                        "at": at.isoformat(),
                        "tenant": slug,
                        "action": action,
                        "event": event,
                        **body,
                    },
                    ensure_ascii=False,
                )
                digest = hashlib.sha256(text.encode()).hexdigest()
                journal.append((slug, seq, fmt(at), tenant_id, action, event, text, prev, digest))
                seq, prev = seq + 1, digest

            actor = {"kind": "user", "id": f"{slug}-chief", "name": "Chef de service", "function": "Responsable"}
            events = []
            for i in range(n):
                start = t0 + timedelta(seconds=rng.random() * span)
                end = start + timedelta(seconds=60 + rng.random() * 1080)
                until = start + timedelta(days=31)
                late = rng.random() < 0.02
                deleted = until + (timedelta(days=3) if late else timedelta(minutes=rng.random() * 60))
                rid = f"rec-{rng.getrandbits(64):016x}"
                device, agent = rng.choice(fleet.devices[tenant_id]), rng.choice(fleet.agents[tenant_id])
                sha = f"{rng.getrandbits(256):064x}"
                recs.append(
                    (
                        rid,
                        tenant_id,
                        device,
                        agent,
                        None,
                        fmt(start),
                        fmt(end),
                        "incident",
                        1,
                        None,
                        0,
                        0,
                        0,
                        "[]",
                        "deleted",
                        "retention",
                        '{"manifest":{}}',
                        sha,
                        sha,
                        4,
                        64 << 20,
                        None,
                        p.keyring.master_key_id,
                        fmt(end),
                        fmt(end),
                        fmt(until),
                        fmt(deleted),
                        None,
                    )
                )
                events.append(
                    (
                        end,
                        "collection",
                        "recording.collected",
                        {
                            "actor": actor,
                            "recordings": [rid],
                            "cameras": [device],
                            "motive": None,
                            "recipients": [],
                            "details": {},
                        },
                    )
                )
                events.append(
                    (
                        deleted,
                        "erasure",
                        "recording.deleted.retention",
                        {
                            "actor": actor,
                            "recordings": [rid],
                            "cameras": [device],
                            "motive": None,
                            "recipients": [],
                            "details": {"rule": "fr-police-municipale: 1 month"},
                        },
                    )
                )
                if rng.random() < 0.10:
                    code = rng.choices([m for m, _ in MOTIVES], [w for _, w in MOTIVES])[0]
                    events.append(
                        (
                            end + timedelta(days=rng.random() * 20),
                            "consultation",
                            "recording.consulted",
                            {
                                "actor": actor,
                                "recordings": [rid],
                                "cameras": [device],
                                "motive": {"code": code, "text": f"PV {YEAR}/{rng.randrange(400):04d}"},
                                "recipients": [],
                                "details": {},
                            },
                        )
                    )
                if rng.random() < 0.015:
                    kind = rng.choice(PROCEDURES)
                    events.append(
                        (
                            end + timedelta(days=rng.random() * 20),
                            "communication",
                            "extraction.created",
                            {
                                "actor": actor,
                                "recordings": [rid],
                                "cameras": [device],
                                "motive": None,
                                "recipients": ["OPJ Martin"],
                                "details": {
                                    "extraction_id": i,
                                    "procedure_type": kind,
                                    "reference": f"PV {YEAR}/{rng.randrange(400):04d}",
                                    "recipient_kind": "opj",
                                    "trimmed": False,
                                },
                            },
                        )
                    )
            for _ in range(150):
                events.append(
                    (
                        t0 + timedelta(seconds=rng.random() * span),
                        "communication",
                        "live.viewing_started",
                        {
                            "actor": actor,
                            "recordings": [],
                            "cameras": [],
                            "motive": None,
                            "recipients": [],
                            "details": {},
                        },
                    )
                )
            events.sort(key=lambda e: e[0])
            for at, action, event, body in events:
                entry(at, action, event, body)
        with sw.stage(f"setup: bulk insert {len(recs):,} recordings, {len(journal):,} journal entries"):
            common.bulk_insert_recordings(home, iter(recs))
            conn = common.raw_sqlite(home)
            conn.execute("BEGIN")
            conn.executemany(
                "INSERT INTO journal_entries (chain, seq, at, tenant_id, action, event, body, prev_hash, "
                "hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                journal,
            )
            conn.execute(
                "INSERT INTO journal_heads (chain, seq, hash) VALUES (?, ?, ?) ON CONFLICT(chain) DO "
                "UPDATE SET seq = excluded.seq, hash = excluded.hash",
                (slug, seq - 1, prev),
            )
            held = rng.sample(recs, 200)
            conn.executemany(
                "INSERT INTO holds (tenant_id, recording_id, procedure_type, reference, placed_by, "
                "placed_at) VALUES (?, ?, ?, ?, 1, ?)",
                [(tenant_id, r[0], rng.choice(PROCEDURES), "PV", r[6]) for r in held],
            )
            conn.executemany(
                "INSERT INTO live_sessions (id, tenant_id, device_id, reason, state, requested_at, "
                "acknowledged_at) VALUES (?, ?, ?, 'threat', 'ended', ?, ?)",
                [
                    (
                        f"ls-{k:05d}",
                        tenant_id,
                        rng.choice(fleet.devices[tenant_id]),
                        fmt(t0 + timedelta(seconds=rng.random() * span)),
                        fmt(t0 + timedelta(seconds=rng.random() * span)),
                    )
                    for k in range(120)
                ],
            )
            day0 = datetime(YEAR, 1, 1).date()
            conn.executemany(
                "INSERT INTO rights_requests (tenant_id, kind, status, person_description, contact, "
                "received_on, deadline, erased, created_by, created_at, updated_at, closed_at) VALUES "
                "(?, ?, ?, 'desc', 'contact', ?, ?, '[]', 1, ?, ?, ?)",
                [
                    (
                        tenant_id,
                        rng.choice(("access", "erasure", "limitation")),
                        rng.choice(("answered", "refused", "restricted")),
                        (day0 + timedelta(days=d)).isoformat(),
                        (day0 + timedelta(days=d + 61)).isoformat(),
                        fmt(t0),
                        fmt(t0),
                        fmt(t0 + timedelta(days=d + rng.randrange(70))),
                    )
                    for d in (rng.randrange(300) for _ in range(40))
                ],
            )
            conn.execute("COMMIT")
            conn.execute("ANALYZE")
            conn.close()
        common.stage_table("setup (not measured)", sw.stages)

        timings = []
        for _ in range(args.runs):
            with p.session() as db:
                tenant = p.tenant(db, slug)
                c, t = time.process_time(), time.perf_counter()
                report = annual.annual_report(db, tenant, YEAR)
                t_fig = time.perf_counter() - t
                pdf = annual_pdf(report)
                t_pdf = time.perf_counter() - t - t_fig
                text = annual.to_csv(annual.report_rows(report))
                timings.append((time.perf_counter() - t, time.process_time() - c, t_fig, t_pdf))
        timings.sort()
        total, cpu, t_fig, t_pdf = timings[len(timings) // 2]
        f = report.figures
        res = Results(
            "annual report",
            f"{args.cameras} cameras × {per_day} a day × 365 days: {f.recordings:,} "
            f"recordings, {len(journal):,} journal entries, SQLite",
        )
        res.add(
            "annual report, PDF + CSV (median of runs)",
            common.secs(total, cpu),
            "≤ 5 s",
            total <= 5,
            total_s=total,
            cpu_s=cpu,
        )
        res.add("  figures (SQL aggregates + one journal pass)", f"{t_fig:.2f} s", figures_s=t_fig)
        res.add("  PDF", f"{t_pdf:.2f} s ({len(pdf) / 1024:.0f} KiB)", pdf_s=t_pdf)
        res.add("  CSV", f"{len(text.splitlines())} rows")
        res.add(
            "figures",
            f"{f.recordings:,} recordings, {f.hours:,.0f} h, {f.consultations:,} consultations, "
            f"{f.extractions} extractions, procedures {f.procedures}",
        )
        res.add("deletions", f"{f.deletions:,} ({f.deletions_on_time:,} on time, {f.deletions_late:,} late)")
        res.raw.update(recordings=f.recordings, journal_entries=len(journal))
        res.print()
        res.write_json(args.json)
        p.close()
    return 0


if __name__ == "__main__":
    common.main_guard(main)
