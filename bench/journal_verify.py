"""`temoin journal verify` over a large journal (target: 1,000,000 entries verified in ≤ 5 s).

Builds N genuine hash-chained entries (bodies from `temoin.journal.entry.entry_body`, hashes from
`entry_hash`), spread over a few tenant chains and 30 months, and writes them to both sinks the way the
platform does: rows in `journal_entries` + `journal_heads` (bulk, through sqlite3), and `<hash> <body>` lines
in the per-chain, per-month files of the file sink. Every chain is then sealed with a platform-signed
checkpoint (`journal.checkpoints.seal`), as the server's scheduler does.

Measured: `verify_database` and `verify_file` of every chain on their own (time per sink), `verify_all` as
`temoin journal verify` calls it, and the command itself in a subprocess (start-up included).

    .venv/bin/python bench/journal_verify.py            # 1,000,000 entries
    .venv/bin/python bench/journal_verify.py --quick    # 50,000
"""

from __future__ import annotations

import os
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import common
from common import Results, Stopwatch, console


def drafts(rng: random.Random):  # noqa: ANN201
    """Reusable drafts of the kinds of entries a commune's chain holds, mutated per entry."""
    from temoin.journal.entry import Action, Actor, EntryDraft

    camera = Actor(kind="device", id="cam-0123456789ab", name="Caméra 3", function="camera")
    chief = Actor(kind="user", id="42", name="Cheffe de service", function="chief")
    system = Actor.system("retention")
    ingested = EntryDraft(
        action=Action.COLLECTION,
        event="recording.ingested",
        actor=camera,
        recordings=["rec-0"],
        cameras=[camera.id],
        details={
            "agent": "POR-0001",
            "started_at": "",
            "ended_at": "",
            "trigger": "incident",
            "persons_informed": True,
            "not_informed_reason": None,
            "outside_territory": False,
            "clock_drift": False,
            "bytes": 734003200,
            "segments": 12,
            "manifest_sha256": "",
            "retention_until": "",
        },
    )
    consulted = EntryDraft(
        action=Action.CONSULTATION,
        event="recording.consulted",
        actor=chief,
        recordings=["rec-0"],
        cameras=[camera.id],
        motive={"code": "judicial_requisition", "text": "Réquisition judiciaire n° 2026/118"},
    )
    deleted = EntryDraft(
        action=Action.ERASURE,
        event="recording.deleted.retention",
        actor=system,
        recordings=["rec-0"],
        cameras=[camera.id],
        details={
            "rule": "fr-police-municipale: 1 month from the day of recording (Europe/Paris)",
            "retention_until": "",
        },
    )
    refused = EntryDraft(
        action=Action.SECURITY,
        event="device.auth_refused",
        actor=camera,
        cameras=[camera.id],
        details={
            "reason": "device clock too far from the platform's: sync the camera's clock",
            "path": "/api/v1/ingest/recordings",
        },
    )
    weighted = [ingested] * 4 + [deleted] * 3 + [consulted] * 2 + [refused]

    def next_draft(at: datetime) -> EntryDraft:
        draft = rng.choice(weighted)
        rid = f"rec-{rng.getrandbits(64):016x}"
        if draft.recordings:
            draft.recordings[0] = rid
        if draft is ingested:
            draft.details["started_at"] = (at - timedelta(minutes=20)).isoformat()
            draft.details["ended_at"] = (at - timedelta(minutes=5)).isoformat()
            draft.details["manifest_sha256"] = f"{rng.getrandbits(256):064x}"
            draft.details["retention_until"] = (at + timedelta(days=31)).isoformat()
        elif draft is deleted:
            draft.details["retention_until"] = at.isoformat()
        return draft

    return next_draft


def build_journal(home: Path, chains: list[tuple[int, str]], per_chain: int, rng: random.Random) -> int:
    """Write per_chain entries to each chain, in both sinks. Returns the bytes of bodies written."""
    from temoin.journal.entry import GENESIS, entry_body, entry_hash
    from temoin.journal.sinks import FileSink

    conn = common.raw_sqlite(home)
    sink = FileSink(home / "journal")
    next_draft = drafts(rng)
    end = datetime.now(timezone.utc) - timedelta(hours=1)
    start = end - timedelta(days=30 * 30)
    step = (end - start) / per_chain
    total_bytes = 0
    sql = (
        "INSERT INTO journal_entries (chain, seq, at, tenant_id, action, event, body, prev_hash, hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    for tenant_id, chain in chains:
        prev, rows, month, lines = GENESIS, [], None, []
        folder = sink.chain_dir(chain)
        folder.mkdir(parents=True, exist_ok=True)
        conn.execute("BEGIN")
        for seq in range(1, per_chain + 1):
            at = start + step * seq
            draft = next_draft(at)
            body = entry_body(draft, chain=chain, seq=seq, prev=prev, at=at, tenant=chain)
            digest = entry_hash(body)
            text = body.decode()
            rows.append((chain, seq, common.sql_dt(at), tenant_id, draft.action.value, draft.event, text, prev, digest))
            m = at.strftime("%Y-%m")
            if m != month:
                if lines:
                    with (folder / f"{month}.jsonl").open("ab") as fh:
                        fh.write(b"".join(lines))
                month, lines = m, []
            lines.append(digest.encode() + b" " + body + b"\n")
            total_bytes += len(body)
            prev = digest
            if len(rows) >= 50_000:
                conn.executemany(sql, rows)
                rows.clear()
        if rows:
            conn.executemany(sql, rows)
        if lines:
            with (folder / f"{month}.jsonl").open("ab") as fh:
                fh.write(b"".join(lines))
        conn.execute("INSERT INTO journal_heads (chain, seq, hash) VALUES (?, ?, ?)", (chain, per_chain, prev))
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return total_bytes


def main() -> int:
    ap = common.parser(__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=None, help="entries in all (default 1,000,000)")
    ap.add_argument("--chains", type=int, default=4, help="tenant chains sharing the entries (default 4)")
    ap.add_argument("--no-cli", action="store_true", help="skip timing `temoin journal verify` itself")
    args = ap.parse_args()
    n = args.entries or (50_000 if args.quick else 1_000_000)
    per_chain = n // args.chains
    rng = random.Random(args.seed)
    sw = Stopwatch()

    from temoin.journal.checkpoints import seal
    from temoin.journal.verify import compare, verify_all, verify_chain, verify_database, verify_file

    with common.bench_home(args, "journal") as home:
        p = common.open_platform(home)
        # Tenants straight into the table: their chains are built here from entry 1.
        conn = common.raw_sqlite(home)
        now = common.sql_dt(datetime.now(timezone.utc))
        chains = []
        for t in range(args.chains):
            slug = f"commune-{t:02d}"
            cur = conn.execute(
                "INSERT INTO tenants (slug, name, kind, communes, profile, territory, "
                "authorised_cameras, demo, created_at) VALUES (?, ?, 'commune', '[]', "
                "'fr-police-municipale', NULL, 20, 0, ?)",
                (slug, slug.title(), now),
            )
            chains.append((cur.lastrowid, slug))
        conn.close()
        with sw.stage(f"setup: {per_chain * args.chains:,} entries in {args.chains} chains, both sinks"):
            body_bytes = build_journal(home, chains, per_chain, rng)
        with sw.stage("setup: seal every chain (signed checkpoints)"), p.session() as db:
            sealed = seal(db, p.journal.sink, p.keyring)
        assert sealed == args.chains
        db_size = sum(f.stat().st_size for f in home.glob("temoin.db*"))
        file_size = sum(f.stat().st_size for f in (home / "journal").rglob("*.jsonl"))
        common.stage_table("setup (not measured)", sw.stages)
        console.print(
            f"[dim]database {common.human_bytes(db_size)}, journal files {common.human_bytes(file_size)}, "
            f"bodies {common.human_bytes(body_bytes)}[/dim]"
        )
        total = per_chain * args.chains

        # Each sink on its own, chain by chain (first read of the files after writing them: page cache warm).
        t_db = t_file = t_cmp = c_db = c_file = 0.0
        with p.session() as db:
            for _, chain in chains:
                dbr, w, c = common.timed(verify_database, db, chain, p.keyring.public_key)
                t_db, c_db = t_db + w, c_db + c
                fr, w, c = common.timed(verify_file, p.journal.sink, chain, p.keyring.public_key)
                t_file, c_file = t_file + w, c_file + c
                problems, w, _ = common.timed(compare, db, p.journal.sink, chain, dbr, fr)
                t_cmp += w
                assert not dbr.problems and not fr.problems and not problems, (dbr.problems, fr.problems, problems)
                assert dbr.entries == fr.entries == per_chain

        # Both sinks in one pass, chain after chain, in this process: what one core does.
        t_one = c_one = 0.0
        with p.session() as db:
            for _, chain in chains:
                (dbr, fr, problems), w, c = common.timed(verify_chain, db, p.journal.sink, chain, p.keyring.public_key)
                t_one, c_one = t_one + w, c_one + c
                assert not dbr.problems and not fr.problems and not problems, (dbr.problems, fr.problems, problems)

        with p.session() as db:
            result, t_all, c_all = common.timed(verify_all, db, p.journal.sink, p.keyring.public_key)
        assert result.ok, result.problems[:5]
        assert sum(r.entries for r in result.reports if r.sink == "database") == total
        cores = len(os.sched_getaffinity(0))

        # Floors, under the same load: the least any verifier in Python must do per entry.
        import hashlib

        import orjson

        def floor(parse: bool) -> None:
            for _, chain in chains:
                for path in p.journal.sink.files(chain):
                    with path.open("rb") as fh:
                        for raw in fh:
                            digest, _, body = raw.rstrip(b"\n").partition(b" ")
                            if hashlib.sha256(body).hexdigest() != digest.decode():
                                raise AssertionError(path)
                            if parse:
                                orjson.loads(body)

        _, t_floor_hash, c_floor_hash = common.timed(floor, False)
        _, t_floor_parse, c_floor_parse = common.timed(floor, True)

        t_cli = rss_cli = None
        if not args.no_cli:
            # A fresh process: its peak RSS is the command's own, not this bench's (see common.run_measured).
            env = dict(os.environ, TEMOIN_HOME=str(home))
            proc, t_cli, rss_cli = common.run_measured(
                [str(Path(sys.executable).with_name("temoin")), "journal", "verify"], env=env
            )
            assert proc.returncode == 0, proc.stdout
        res = Results(
            "journal verify",
            f"{total:,} entries in {args.chains} chains, {common.human_bytes(file_size)} of journal files",
        )
        res.add("database sink, all chains", common.secs(t_db, c_db), database_s=t_db, database_cpu_s=c_db)
        res.add("  rate (CPU)", f"{total / c_db:,.0f} entries/s")
        res.add("file sink, all chains", common.secs(t_file, c_file), file_s=t_file, file_cpu_s=c_file)
        res.add("  rate (CPU)", f"{total / c_file:,.0f} entries/s")
        res.add("comparison of the sinks", f"{t_cmp * 1000:.1f} ms", compare_s=t_cmp)
        res.add(
            "both sinks in one pass (`verify_chain`), one process",
            common.secs(t_one, c_one),
            one_pass_s=t_one,
            one_pass_cpu_s=c_one,
        )
        res.add(
            f"verify_all (what the command runs; chains in parallel, {cores} cores)",
            common.secs(t_all, c_all),
            "≤ 5 s",
            t_all <= 5,
            verify_all_s=t_all,
            verify_all_cpu_s=c_all,
        )
        if t_cli is not None:
            res.add("`temoin journal verify`, whole command", f"{t_cli:.2f} s", "≤ 5 s", t_cli <= 5, cli_s=t_cli)
            res.add(
                "  its peak RSS (fresh process; the command or a worker, the larger)",
                f"{rss_cli:.0f} MiB",
                cli_peak_rss_mib=rss_cli,
            )
        res.add(
            "floor: read + SHA-256 of every file line",
            common.secs(t_floor_hash, c_floor_hash),
            floor_hash_s=t_floor_hash,
            floor_hash_cpu_s=c_floor_hash,
        )
        res.add(
            "floor: read + SHA-256 + orjson.loads",
            common.secs(t_floor_parse, c_floor_parse),
            floor_parse_s=t_floor_parse,
            floor_parse_cpu_s=c_floor_parse,
        )
        res.raw.update(entries=total, chains=args.chains)
        res.print()
        res.write_json(args.json)
        p.close()
    return 0


if __name__ == "__main__":
    common.main_guard(main)
