"""The journal against an insider: a tail that cannot vanish (chained seals every interval, a real
syslog witness), verification that never repairs what it verifies, and writes that never leave a
torn line (a real full filesystem). Also: `temoin retention run` does the server's whole pass.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select

from temoin.db import utcnow
from temoin.demo.commune import territory
from temoin.identity import service
from temoin.journal import checkpoints
from temoin.journal.checkpoints import body_hash
from temoin.journal.models import JournalCheckpoint
from temoin.journal.sinks import JournalWriteError
from temoin.journal.witness import read_witness_log
from temoin.maintenance import seal_journal
from temoin.platform import Platform
from tests.conftest import serve_in_thread, stop_served
from tests.journal_helpers import CHAIN, cli, db_rows, draft, edit_file, file_lines, line_seq, named, sql, verify, write

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"


# --- helpers --------------------------------------------------------------------------------------


@pytest.fixture
def journal(platform):
    with platform.session() as db:
        service.create_tenant(
            platform,
            db,
            slug=CHAIN,
            name="Port-Témoin",
            profile="fr-police-municipale",
            authorised_cameras=2,
            territory=territory(),
        )
        db.commit()
    write(platform, 5)
    return platform


def seal(platform) -> int:
    with platform.session() as db:
        return checkpoints.seal(db, platform.journal.sink, platform.keyring)


def local_checkpoints(platform, chain: str = CHAIN) -> list[JournalCheckpoint]:
    with platform.session() as db:
        return list(
            db.scalars(select(JournalCheckpoint).where(JournalCheckpoint.chain == chain).order_by(JournalCheckpoint.id))
        )


def remove_checkpoints(platform, n_from: int, chain: str = CHAIN) -> None:
    """What an insider does: delete checkpoints n >= n_from from the database and the file."""
    for cp in local_checkpoints(platform, chain):
        if orjson.loads(cp.body)["n"] >= n_from:
            sql(platform, "DELETE FROM journal_checkpoints WHERE id = :i", i=cp.id)
    path = platform.journal.sink.checkpoints_path(chain)
    kept = [line for line in path.read_bytes().splitlines() if orjson.loads(line.partition(b" ")[2])["n"] < n_from]
    path.write_bytes(b"".join(line + b"\n" for line in kept))


def cut_tail(platform, keep: int, chain: str = CHAIN) -> None:
    """Delete entries after `keep` from both sinks and rewind the head, as an insider with both would."""
    last = db_rows(platform, chain)[keep - 1]
    sql(platform, "DELETE FROM journal_entries WHERE chain = :c AND seq > :k", c=chain, k=keep)
    sql(platform, "UPDATE journal_heads SET seq = :k, hash = :h WHERE chain = :c", k=keep, h=last.hash, c=chain)
    edit_file(platform, lambda lines: [line for line in lines if line_seq(line) <= keep], chain)


def cli_env(platform, *args: str, **env: str) -> subprocess.CompletedProcess:
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return cli(platform, *args)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Rsyslog:
    """A real rsyslogd in the foreground: imtcp on a loopback port, every message to one file."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port, self.log = folder, port, folder / "witness.log"
        folder.mkdir(parents=True, exist_ok=True)
        conf = folder / "rsyslog.conf"
        conf.write_text(f'''global(workDirectory="{folder}")
module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="witness")
ruleset(name="witness") {{
  action(type="omfile" file="{self.log}" template="RSYSLOG_FileFormat" flushOnTXEnd="on" asyncWriting="off")
}}
''')
        self.proc = subprocess.Popen(
            [RSYSLOGD, "-n", "-f", str(conf), "-i", str(folder / "rsyslogd.pid")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    out = (
                        self.proc.communicate(timeout=5)[0].decode(errors="replace")
                        if self.proc.poll() is not None
                        else ""
                    )
                    self.stop()
                    pytest.fail(f"rsyslogd did not start on port {port}: {out}", pytrace=False)
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"syslog+tcp://127.0.0.1:{self.port}"

    def wait_for(self, count: int, timeout: float = 10) -> list[bytes]:
        """The checkpoint lines in the log once there are `count` (rsyslog writes after it reads)."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [
                line
                for line in (self.log.read_bytes().splitlines() if self.log.exists() else [])
                if b"temoin-checkpoint v1 " in line
            ]
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture
def rsyslog(tmp_path) -> Iterator[Rsyslog]:
    if not os.path.exists(RSYSLOGD):
        pytest.fail("rsyslogd is not installed: install Debian's rsyslog package (./dev.sh test does)", pytrace=False)
    server = Rsyslog(tmp_path / "witness", free_port())
    yield server
    server.stop()


def with_witness(platform, url: str) -> Platform:
    return Platform.open(platform.settings.model_copy(update={"journal_witness": url}))


# --- chained seals --------------------------------------------------------------------------------


def test_each_seal_chains_onto_the_previous_one_and_only_moved_heads_are_sealed(journal):
    assert seal(journal) == 1
    assert seal(journal) == 0  # nothing new: no seal
    write(journal, 2, start=10)
    assert seal(journal) == 1
    first, second = local_checkpoints(journal)
    a, b = orjson.loads(first.body), orjson.loads(second.body)
    assert (a["n"], a["seq"], b["n"], b["seq"]) == (1, 6, 2, 8)
    assert a["prev_checkpoint"] == "0" * 64 and b["prev_checkpoint"] == body_hash(first.body)
    # The file sink holds the same two, in order.
    lines = journal.journal.sink.checkpoints_path(CHAIN).read_bytes().splitlines()
    assert lines == [cp.signature.encode() + b" " + cp.body.encode() for cp in (first, second)]
    result = verify(journal)
    assert result.ok, result.problems
    report = next(r for r in result.reports if r.sink == "file" and r.chain == CHAIN)
    assert (report.last_seal.seq, report.unsealed) == (8, 0)


def test_a_removed_seal_is_named_by_the_seal_chain(journal):
    for n in range(3):
        write(journal, 1, start=20 + n)
        seal(journal)
    second = local_checkpoints(journal)[1]
    sql(journal, "DELETE FROM journal_checkpoints WHERE id = :i", i=second.id)
    path = journal.journal.sink.checkpoints_path(CHAIN)
    path.write_bytes(
        b"".join(
            line + b"\n" for line in path.read_bytes().splitlines() if orjson.loads(line.partition(b" ")[2])["n"] != 2
        )
    )
    result = verify(journal)
    assert named(result) == {("database", "checkpoint", None), ("file", "checkpoint", None)}
    assert all("checkpoint 2 missing (removed) before checkpoint 3" in p.message for p in result.problems)


def test_an_altered_seal_in_the_middle_of_the_chain_is_named(journal):
    for n in range(3):
        write(journal, 1, start=20 + n)
        seal(journal)
    second = local_checkpoints(journal)[1]
    forged = second.body.replace('"seq":8', '"seq":7')
    sql(journal, "UPDATE journal_checkpoints SET body = :b WHERE id = :i", b=forged, i=second.id)
    result = verify(journal)
    assert ("database", "checkpoint", None) in named(result)
    messages = [p.message for p in result.problems if p.sink == "database"]
    assert any("checkpoint 3" in m and "does not chain onto checkpoint 2" in m for m in messages)
    assert any("signature is invalid" in m for m in messages)  # the broken link sends it to the slow path


def test_tail_removed_with_its_seal_from_both_sinks_is_named_by_a_later_seal_pass(platform, monkeypatch):
    """Seals every interval: entries older than the last pass are sealed. Removing the seal that covered
    them leaves entries no seal covers although the platform sealed (another chain) after them."""
    base = utcnow() - timedelta(hours=1)
    clock = {"now": base}
    monkeypatch.setattr(checkpoints, "utcnow", lambda: clock["now"])
    with platform.session() as db:
        service.create_tenant(
            platform,
            db,
            slug=CHAIN,
            name="Port-Témoin",
            profile="fr-police-municipale",
            authorised_cameras=2,
            territory=territory(),
        )
        db.commit()

    def entries(count: int, at: datetime, slug: str | None = CHAIN) -> None:
        with platform.session() as db:
            tenant = platform.tenant(db, slug) if slug else None
            for n in range(count):
                platform.journal.write(
                    db,
                    draft(n),
                    tenant_id=tenant.id if tenant else None,
                    tenant_slug=slug,
                    at=at + timedelta(seconds=n),
                )
            db.commit()

    entries(3, base + timedelta(seconds=1))
    clock["now"] = base + timedelta(seconds=10)
    seal(platform)  # seal 1 covers entry 4
    entries(4, base + timedelta(seconds=20))  # entries 5-8
    entries(1, base + timedelta(seconds=300), slug=None)
    clock["now"] = base + timedelta(seconds=310)
    assert seal(platform) == 2  # seal 2 covers entry 8; the platform chain sealed in the same pass
    assert verify(platform).ok

    cut_tail(platform, keep=6)  # entries 7-8 gone from both sinks...
    remove_checkpoints(platform, n_from=2)  # ...and the seal that vouched for them
    result = verify(platform)
    assert named(result) == {("database", "unsealed", 5), ("file", "unsealed", 5)}
    assert all(
        "entries 5 to 6 are covered by no seal" in p.message and "seals that covered them were removed" in p.message
        for p in result.problems
    )


def test_unsealed_tail_is_reported_with_its_age(journal):
    seal(journal)
    write(journal, 3, start=30)
    out = cli(journal, "journal", "verify")
    assert out.returncode == 0, out.stdout + out.stderr
    row = next(line for line in out.stdout.splitlines() if CHAIN in line and "file" in line)
    assert "6 (" in row and "3 entries, oldest" in row  # last seal covers entry 6; entries 7-9 unsealed


# --- the witness (a real rsyslogd) ----------------------------------------------------------------


def test_seals_reach_a_real_syslog_witness_and_verify_against_it(journal, rsyslog):
    p = with_witness(journal, rsyslog.url)
    try:
        sealing = seal_journal(p)
        assert (sealing.chains, sealing.witnessed, sealing.waiting) == (1, 1, 0)
        write(p, 2, start=40)
        assert seal_journal(p).witnessed == 1  # only what the witness has not had
    finally:
        p.close()
    lines = rsyslog.wait_for(2)
    assert len(lines) == 2
    cps = local_checkpoints(journal)
    for line, cp in zip(lines, cps):
        assert line.endswith(b"temoin-checkpoint v1 " + cp.signature.encode() + b" " + cp.body.encode())
    assert set(read_witness_log(rsyslog.log, [journal.keyring.public_key]).of(CHAIN)) == {1, 2}

    ok = cli(journal, "journal", "verify", "--witness-log", str(rsyslog.log))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "2 checkpoints of 1 chains compared" in ok.stdout and "journal intact" in ok.stdout


def test_tail_and_its_seals_removed_from_both_sinks_are_named_with_the_witness_log(journal, rsyslog):
    p = with_witness(journal, rsyslog.url)
    try:
        seal_journal(p)  # seal 1: entry 6
        write(p, 3, start=50)
        seal_journal(p)  # seal 2: entry 9
    finally:
        p.close()
    rsyslog.wait_for(2)
    cut_tail(journal, keep=6)
    remove_checkpoints(journal, n_from=2)  # locally the journal now looks whole and sealed
    assert verify(journal).ok

    bad = cli(journal, "journal", "verify", "--witness-log", str(rsyslog.log))
    assert bad.returncode == 1, bad.stdout + bad.stderr
    for sink in ("database", "file"):
        assert (
            f"[{CHAIN}] {sink}: checkpoint 2 (a seal of entry 9" in bad.stdout
            and "received by the witness, missing here: checkpoints were removed" in bad.stdout
        )
        assert (
            f"[{CHAIN}] {sink}: the witness's signed checkpoint 2 vouches for entry 9 but the chain ends at 6"
            in bad.stdout
        )


def test_a_checkpoint_rewritten_locally_differs_from_the_witness(journal, rsyslog):
    p = with_witness(journal, rsyslog.url)
    try:
        seal_journal(p)
        write(p, 2, start=60)
        seal_journal(p)
    finally:
        p.close()
    rsyslog.wait_for(2)
    # The insider removes entries 7-8 and the last seal, then lets the platform seal again: seal 2 is remade.
    cut_tail(journal, keep=7)
    remove_checkpoints(journal, n_from=2)
    seal(journal)
    assert verify(journal).ok
    with journal.session() as db:
        from temoin.journal.verify import verify_all

        result = verify_all(
            db,
            journal.journal.sink,
            journal.keyring.public_key,
            witness=read_witness_log(rsyslog.log, [journal.keyring.public_key]),
        )
    messages = [str(p) for p in result.problems]
    assert any(
        "database: checkpoint 2 (seal of entry 7" in m
        and "differs from the one the witness received (seal of entry 8" in m
        for m in messages
    )
    assert ("file", "deleted", 8) in named(result)  # the witness's seal 2 vouches for entry 8


def test_witness_down_keeps_the_seals_and_sends_them_later(journal, tmp_path, caplog):
    port = free_port()
    p = with_witness(journal, f"syslog+tcp://127.0.0.1:{port}")
    try:
        sealing = seal_journal(p)  # nobody listening: the platform goes on
        assert (sealing.chains, sealing.witnessed, sealing.waiting) == (1, 0, 1)
        assert "unreachable" in caplog.text and "1 checkpoints kept to send later" in caplog.text
        write(p, 1, start=70)
        assert seal_journal(p).waiting == 2
        assert len(local_checkpoints(journal)) == 2  # sealed locally all the same
        server = Rsyslog(tmp_path / "late-witness", port)
        try:
            sealing = seal_journal(p)
            assert (sealing.chains, sealing.witnessed, sealing.waiting) == (0, 2, 0)
            assert len(server.wait_for(2)) == 2
            assert seal_journal(p).witnessed == 0  # sent once
        finally:
            server.stop()
    finally:
        p.close()


def test_witness_log_lines_not_signed_by_the_platform_are_ignored(journal, tmp_path):
    seal(journal)
    cp = local_checkpoints(journal)[0]
    forged = cp.body.replace('"seq":6', '"seq":60')
    log = tmp_path / "witness.log"
    log.write_bytes(
        b"2026-01-01T00:00:00Z host temoin[1] temoin-checkpoint v1 "
        + cp.signature.encode()
        + b" "
        + forged.encode()
        + b"\n"
    )
    witness = read_witness_log(log, [journal.keyring.public_key])
    assert witness.of(CHAIN) == {} and witness.not_ours == 1


def test_bad_witness_setting_is_a_clear_error(journal):
    out = cli_env(journal, "journal", "verify", TEMOIN_JOURNAL_WITNESS="udp://somewhere")
    assert out.returncode == 2
    assert "syslog+tcp://HOST:PORT" in out.stderr


# --- verification only reads ----------------------------------------------------------------------


def test_file_lines_removed_are_reported_and_not_repaired_by_any_command(journal):
    edit_file(journal, lambda lines: lines[:-2])
    before = [raw for _, raw in file_lines(journal)]
    for _ in range(2):
        out = cli(journal, "journal", "verify")
        assert out.returncode == 1, out.stdout + out.stderr
        assert f"[{CHAIN}] file: entry 5 is in the database but not in the file" in out.stdout
    assert cli(journal, "admin", "tenant", "list").returncode == 0
    assert [raw for _, raw in file_lines(journal)] == before  # still missing: nothing re-appended them

    fixed = cli(journal, "journal", "repair")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert f"{CHAIN}: 2 entries appended to the file from entry 5" in fixed.stdout
    assert cli(journal, "journal", "verify").returncode == 0


def test_forged_db_row_is_copied_into_the_file_by_no_ordinary_command(journal):
    rows = db_rows(journal)
    body = dict(
        orjson.loads(rows[-1].body),
        seq=7,
        prev=rows[-1].hash,
        motive={"code": "judicial_requisition", "text": "forged"},
    )
    raw = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    digest = hashlib.sha256(raw).hexdigest()
    sql(
        journal,
        "INSERT INTO journal_entries (chain, seq, at, tenant_id, action, event, body, prev_hash, hash) "
        "SELECT chain, 7, at, tenant_id, action, event, :b, :p, :h FROM journal_entries "
        "WHERE chain = :c AND seq = 6",
        b=raw.decode(),
        p=rows[-1].hash,
        h=digest,
        c=CHAIN,
    )
    sql(journal, "UPDATE journal_heads SET seq = 7, hash = :h WHERE chain = :c", h=digest, c=CHAIN)
    for args in (("journal", "verify"), ("admin", "tenant", "list"), ("retention", "run"), ("journal", "verify")):
        cli(journal, *args)
    assert [line_seq(raw) for _, raw in file_lines(journal)] == [1, 2, 3, 4, 5, 6]
    assert ("file", "deleted", 7) in named(verify(journal))


# --- torn writes ----------------------------------------------------------------------------------


@contextmanager
def small_filesystem(path: Path) -> Iterator[Path]:
    """A real 64 KiB tmpfs mounted on `path` (the test suite runs as root in CI)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs the suite as root)")
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path, leave: int) -> Path:
    """Fill the filesystem, then free about `leave` bytes."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as fh:
        try:
            while fh.write(b"\0" * 1024):
                pass
        except OSError:
            pass
    with filler.open("r+b") as fh:
        fh.truncate(max(0, filler.stat().st_size - leave))
    return filler


def test_append_on_a_full_disk_leaves_no_partial_line_and_repair_finishes_it(platform, caplog):
    with small_filesystem(platform.settings.journal_dir) as folder:
        with platform.session() as db:
            service.create_tenant(
                platform,
                db,
                slug=CHAIN,
                name="Port-Témoin",
                profile="fr-police-municipale",
                authorised_cameras=2,
                territory=territory(),
            )
            db.commit()
        write(platform, 3)
        assert seal(platform) == 1
        (month,) = platform.journal.sink.files(CHAIN)
        size = month.stat().st_size
        filler = fill(folder, leave=4096)

        with caplog.at_level(logging.CRITICAL, logger="temoin.journal"):
            write(platform, 12, start=100)  # ~7 KB of lines: part of them would fit; the operation still succeeds
        message = "\n".join(str(r.exc_info[1]) for r in caplog.records if r.exc_info)
        assert "No space left on device" in message and "nothing partial was left" in message
        assert "temoin journal repair" in message and "temoin journal repair" in caplog.text
        assert month.stat().st_size == size and month.read_bytes().endswith(b"\n")
        assert len(db_rows(platform)) == 16  # the operation committed; the database holds the entries
        cps = platform.journal.sink.checkpoints_path(CHAIN)
        before = cps.read_bytes()
        with pytest.raises(JournalWriteError, match="nothing partial was left"):  # the checkpoint file too
            platform.journal.sink.append_checkpoints(CHAIN, [b"c2ln " + b"x" * 9000])
        assert cps.read_bytes() == before
        result = verify(platform)
        assert ("file", "deleted", 5) in named(result)
        assert not [p for p in result.problems if p.kind in ("altered", "interrupted")]

        filler.unlink()
        fixed = cli(platform, "journal", "repair")
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert f"{CHAIN}: " in fixed.stdout and "entries appended to the file from entry 5" in fixed.stdout
        result = verify(platform)
        assert result.ok, result.problems
        assert orjson.loads(db_rows(platform)[-1].body)["event"] == "journal.file_repaired"


def test_an_interrupted_write_found_anyway_is_named_and_repaired(journal, caplog):
    seal(journal)
    (month,) = journal.journal.sink.files(CHAIN)
    size = month.stat().st_size
    with month.open("ab") as fh:  # power lost in the middle of a line
        fh.write(b"3f2a9c0d " + b'{"chain":"port-temoin","seq":7,"pr')
    cps = journal.journal.sink.checkpoints_path(CHAIN)
    cps_size = cps.stat().st_size
    with cps.open("ab") as fh:
        fh.write(b'c2lnbmF0dXJl {"chain"')

    result = verify(journal)
    assert named(result) == {("file", "interrupted", None)}  # an interruption, not tampering
    messages = sorted(p.message for p in result.problems)
    assert len(messages) == 2
    assert messages[0].startswith(f"file {CHAIN}/{month.name}: interrupted write at byte {size} ")
    assert messages[1].startswith(f"file {CHAIN}/checkpoints.jsonl: interrupted write at byte {cps_size} ")
    out = cli(journal, "journal", "verify")
    assert out.returncode == 1 and f"interrupted write at byte {size}" in out.stdout
    assert month.stat().st_size > size  # verification left it as it was

    with caplog.at_level(logging.CRITICAL, logger="temoin.journal"):
        write(journal, 1, start=80)  # nothing is glued onto a partial line (the operation itself commits)
    assert any(f"interrupted write at byte {size}" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)
    assert month.read_bytes()[size:].count(b"\n") == 0
    fixed = cli(journal, "journal", "repair")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert f"{CHAIN}: interrupted write at byte {size} of {month.name} removed" in fixed.stdout
    assert f"{CHAIN}: 1 entries appended to the file from entry 7" in fixed.stdout
    result = verify(journal)
    assert result.ok, result.problems
    repaired = orjson.loads(db_rows(journal)[-1].body)
    assert repaired["event"] == "journal.file_repaired" and repaired["details"]["trigger"] == "temoin journal repair"
    assert {c["file"] for c in repaired["details"]["interrupted_writes_removed"]} == {month.name, "checkpoints.jsonl"}


def test_repair_puts_back_an_entry_lost_in_the_middle_of_the_file(journal):
    """A write lost (crash between commit and file write) while later entries reached the file: the file's
    next line carries the hash of the missing one, so the database's copy is provably the original."""
    edit_file(journal, lambda lines: [*lines[:2], *lines[3:]])
    assert ("file", "deleted", 3) in named(verify(journal))
    fixed = cli(journal, "journal", "repair")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert f"{CHAIN}: 1 entries missing in the middle of the file put back" in fixed.stdout
    assert [line_seq(raw) for _, raw in file_lines(journal)] == [1, 2, 3, 4, 5, 6, 7]
    assert verify(journal).ok


def test_repair_does_not_put_back_a_forged_entry_in_the_middle(journal):
    edit_file(journal, lambda lines: [*lines[:2], *lines[3:]])
    sql(
        journal,
        "UPDATE journal_entries SET body = replace(body, 'PV 2026/0001', 'PV 2026/0666') WHERE chain = :c AND seq = 3",
        c=CHAIN,
    )
    out = cli(journal, "journal", "repair")
    assert out.returncode == 1 and "the file lacks entry 3 and the database's copy does not fit" in out.stderr
    assert [line_seq(raw) for _, raw in file_lines(journal)] == [1, 2, 4, 5, 6]


def test_repair_refuses_entries_that_do_not_chain_onto_the_file(journal):
    edit_file(journal, lambda lines: lines[:-2])
    fifth = db_rows(journal)[4]
    forged = fifth.body.replace(fifth.prev_hash, "e" * 64)  # a self-consistent entry 5 chained elsewhere
    sql(
        journal,
        "UPDATE journal_entries SET prev_hash = :p, body = :b, hash = :h WHERE chain = :c AND seq = 5",
        p="e" * 64,
        b=forged,
        h=hashlib.sha256(forged.encode()).hexdigest(),
        c=CHAIN,
    )
    out = cli(journal, "journal", "repair")
    assert out.returncode == 1
    assert "entry 5 does not chain onto the file's last entry (4)" in out.stderr
    assert [line_seq(raw) for _, raw in file_lines(journal)] == [1, 2, 3, 4]


# --- the server: sealing loop and start-up repair ---------------------------------------------------


def test_the_server_seals_within_the_interval_while_entries_are_written(journal):
    from temoin.web.app import create_app

    p = Platform.open(journal.settings.model_copy(update={"journal_seal_interval_s": 0.5}))
    _url, server, thread, sock = serve_in_thread(create_app(p))
    try:
        written = []
        for n in range(8):
            write(p, 1, start=90 + n)
            written.append((db_rows(p)[-1].seq, utcnow()))
            time.sleep(0.25)
        time.sleep(1.5)
    finally:
        stop_served(server, thread, sock, 10)
        p.close()
    seals = [(cp.seq, cp.at) for cp in local_checkpoints(journal) if cp.kind == "seal"]
    assert len(seals) >= 3  # more than the start-up seal: the loop ran while entries came
    for seq, at in written:
        covering = min(s_at for s_seq, s_at in seals if s_seq >= seq)
        assert covering - at < timedelta(seconds=2), (seq, at, seals)
    assert verify(journal).ok


def test_the_server_repairs_the_file_at_start_up_journaled(journal):
    from temoin.web.app import create_app

    edit_file(journal, lambda lines: lines[:-1])
    _url, server, thread, sock = serve_in_thread(create_app(journal))
    stop_served(server, thread, sock, 10)
    events = [orjson.loads(r.body) for r in db_rows(journal)]
    assert events[-1]["event"] == "journal.file_repaired" and events[-1]["details"]["trigger"] == "server start-up"
    assert verify(journal).ok


# --- one periodic pass ----------------------------------------------------------------------------


def test_retention_run_prunes_purges_and_seals_like_the_server(platform):
    from temoin.extraction.models import Extraction
    from temoin.identity.models import User
    from tests.helpers import make_commune

    commune = make_commune(platform, cameras=0)
    old = utcnow() - timedelta(days=4 * 366)
    with platform.session() as db:
        tenant = platform.tenant(db, commune.slug)
        for n in range(3):
            platform.journal.write(
                db, draft(n), tenant_id=tenant.id, tenant_slug=tenant.slug, at=old + timedelta(hours=n)
            )
        db.commit()
    pruned = db_rows(platform, commune.slug)[-1].seq  # prune goes by sequence: all up to the last old entry
    package = platform.settings.home / "extractions" / "old.zip"
    package.parent.mkdir(parents=True, exist_ok=True)
    package.write_bytes(b"PK plaintext copy")
    with platform.session() as db:
        chief = db.scalar(select(User).where(User.username == next(iter(commune.users.values()))))
        db.add(
            Extraction(
                id="ext-old",
                tenant_id=chief.tenant_id,
                created_by=chief.id,
                recipient_name="OPJ",
                recipient_kind="judicial",
                procedure_type="judicial",
                reference="PV 1",
                recording_ids=[],
                media_kind="original",
                package_path="extractions/old.zip",
                package_sha256="0" * 64,
                package_bytes=17,
                sums_sha256="0" * 64,
                expires_at=utcnow() - timedelta(days=1),
            )
        )
        db.commit()

    out = cli(platform, "retention", "run")
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{pruned} journal entries pruned, 1 expired extraction packages deleted, 1 chains sealed" in out.stdout
    assert not package.exists()
    kinds = {(cp.chain, cp.kind) for cp in local_checkpoints(platform, commune.slug)}
    assert kinds == {(commune.slug, "prune"), (commune.slug, "seal")}
    with platform.session() as db:
        from temoin.journal.models import JournalHead

        head = db.get(JournalHead, commune.slug)
    last = max((cp for cp in local_checkpoints(platform, commune.slug) if cp.kind == "seal"), key=lambda c: c.seq)
    assert last.seq == head.seq  # sealed after the pass's own entries
    assert verify(platform).ok
    # The server's scheduler runs this very function.
    import inspect

    from temoin.web import app as web_app

    assert "maintenance.periodic_pass" in inspect.getsource(web_app._retention_loop)
