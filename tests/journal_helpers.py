"""Shared by the journal tests: the CLI's verdict, the rows and file lines of a chain, and edits of either."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
from sqlalchemy import select, text

from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.journal.models import JournalEntry
from temoin.journal.service import parse_body
from temoin.journal.verify import verify_all

CHAIN = "port-temoin"


AGENT = Actor(kind="user", id="port-temoin-chief", name="Cheffe Martin", function="chief")


TEMOIN = Path(sys.executable).with_name("temoin")


def draft(n: int, event: str = "recording.consulted") -> EntryDraft:
    return EntryDraft(
        action=Action.CONSULTATION,
        event=event,
        actor=AGENT,
        recordings=[f"rec-{n:04d}"],
        cameras=["cam-1"],
        motive={"code": "judicial_requisition", "text": f"PV 2026/{n:04d}"},
        details={"n": n},
    )


def write(platform, count: int, slug: str | None = CHAIN, start: int = 0) -> None:
    with platform.session() as db:
        tenant = platform.tenant(db, slug) if slug else None
        for n in range(start, start + count):
            platform.record(db, draft(n), tenant)
        db.commit()


def verify(platform):
    with platform.session() as db:
        return verify_all(db, platform.journal.sink, platform.keyring.public_key)


def named(result) -> set[tuple[str, str, int | None]]:
    return {(p.sink, p.kind, p.seq) for p in result.problems}


def sql(platform, statement: str, **params) -> None:
    with platform.engine.begin() as conn:
        conn.execute(text(statement), params)


def db_rows(platform, chain: str = CHAIN) -> list[JournalEntry]:
    with platform.session() as db:
        return list(db.scalars(select(JournalEntry).where(JournalEntry.chain == chain).order_by(JournalEntry.seq)))


def file_lines(platform, chain: str = CHAIN) -> list[tuple[Path, bytes]]:
    return [(path, raw) for path in platform.journal.sink.files(chain) for raw in path.read_bytes().splitlines()]


def line_seq(raw: bytes) -> int:
    return int(orjson.loads(raw.partition(b" ")[2])["seq"])


def edit_file(platform, edit, chain: str = CHAIN) -> None:
    """Apply `edit(lines) -> lines` to the month file holding the chain's entries."""
    (path,) = {p for p, _ in file_lines(platform, chain)}
    lines = path.read_bytes().splitlines()
    path.write_bytes(b"".join(line + b"\n" for line in edit(lines)))


def cli(platform, *args: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        TEMOIN_HOME=str(platform.settings.home),
        TEMOIN_DATABASE_URL=platform.settings.database_url,
        COLUMNS="250",
        NO_COLOR="1",
    )
    env.pop("TEMOIN_MASTER_KEY", None)
    env.pop("TEMOIN_MASTER_KEY_FILE", None)
    return subprocess.run([str(TEMOIN), *args], env=env, capture_output=True, text=True, timeout=120)


def journal(platform, chain: str, prefix: str) -> list[dict]:
    with platform.session() as db:
        rows = db.scalars(select(JournalEntry).where(JournalEntry.chain == chain).order_by(JournalEntry.seq))
        return [parse_body(e.body) for e in rows if e.event.startswith(prefix)]
