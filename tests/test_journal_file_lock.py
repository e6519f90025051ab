"""Pruning and `temoin journal repair` rewrite a month file while the running server appends to it: no appended
entry is lost. The appender is another process (as the server is to `temoin journal repair`), appending through
the real file sink; the rewrites are the real prune and gap-fill code."""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select

from temoin.journal import checkpoints
from temoin.journal.models import JournalEntry
from temoin.journal.repair import ChainRepair, _fill_gaps
from temoin.journal.sinks import FileSink
from tests.helpers import make_commune

CHAIN, MONTH = "port-temoin", "2026-01"
APPENDED = 400  # entries the other process appends, one write each

APPENDER = """
import sys, hashlib, orjson
from pathlib import Path
from temoin.journal.sinks import FileSink
sink = FileSink(Path(sys.argv[1]))
for seq in range(100_000, 100_000 + int(sys.argv[2])):
    body = orjson.dumps({"seq": seq, "prev": "x"})
    sink.append(sys.argv[3], sys.argv[4], [(hashlib.sha256(body).hexdigest(), body)])
"""


def _line(seq: int) -> tuple[str, bytes]:
    body = orjson.dumps({"seq": seq, "prev": "x"})
    return hashlib.sha256(body).hexdigest(), body


def _seqs(path: Path) -> list[int]:
    return [int(orjson.loads(raw.partition(b" ")[2])["seq"]) for raw in path.read_bytes().splitlines()]


def _appender(root: Path, month: str = MONTH) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-c", APPENDER, str(root), str(APPENDED), CHAIN, month], env=env)


def test_a_prune_rewriting_the_month_file_loses_no_entry_appended_meanwhile(tmp_path: Path) -> None:
    sink = FileSink(tmp_path)
    sink.append(CHAIN, MONTH, [_line(seq) for seq in range(1, 2001)])
    path = sink.chain_dir(CHAIN) / f"{MONTH}.jsonl"
    other = _appender(tmp_path)
    seq = 2001
    while other.poll() is None:  # prune again and again while the other process appends
        sink.append(CHAIN, MONTH, [_line(seq)])
        checkpoints._drop_file_lines(sink, CHAIN, upto=seq)
        seq += 1
    assert other.wait() == 0
    checkpoints._drop_file_lines(sink, CHAIN, upto=seq)
    assert seq > 2001, "the prune never ran while the other process appended"
    assert _seqs(path) == list(range(100_000, 100_000 + APPENDED))  # every appended entry, in order, no pruned one


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # files and processes: same on both databases
def test_repair_filling_a_gap_loses_no_entry_appended_meanwhile(platform, tmp_path: Path) -> None:
    """`temoin journal repair`'s gap fill (the database's entries put back into the file) again and again while
    the other process appends to the same month file."""
    make_commune(platform)
    sink = platform.journal.sink
    with platform.session() as db:
        rows = db.scalars(select(JournalEntry).where(JournalEntry.chain == CHAIN).order_by(JournalEntry.seq)).all()
    assert len(rows) >= 3
    month, gap = rows[1].at.strftime("%Y-%m"), rows[1].seq
    path = sink.chain_dir(CHAIN) / f"{month}.jsonl"
    other = _appender(sink.root, month)
    turns = 0
    while other.poll() is None:
        _lose(path, gap)
        result = ChainRepair(CHAIN)
        with platform.session() as db:
            _fill_gaps(db, sink, CHAIN, result)
        assert result.gaps_filled == 1 and gap in _seqs(path)
        turns += 1
    assert other.wait() == 0
    assert turns > 1, "the repair never ran while the other process appended"
    assert [s for s in _seqs(path) if s >= 100_000] == list(range(100_000, 100_000 + APPENDED))


def _lose(path: Path, seq: int) -> None:
    """A write that was lost while later ones landed: the line of `seq` taken out in place, under the lock."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        data = os.pread(fd, os.fstat(fd).st_size, 0)
        kept = b"".join(raw + b"\n" for raw in data.splitlines() if _seq(raw) != seq)
        os.ftruncate(fd, 0)
        os.pwrite(fd, kept, 0)
    finally:
        os.close(fd)


def _seq(raw: bytes) -> int:
    return int(orjson.loads(raw.partition(b" ")[2])["seq"])
