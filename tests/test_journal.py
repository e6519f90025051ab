"""The tamper-evident journal (R241-14): every entry reaches both sinks, and verification names any
alteration, deletion, insertion or reordering, in either sink, by its sequence number.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from temoin.db import utcnow
from temoin.demo.commune import territory
from temoin.evidence.canonical import b64e, canonical_bytes
from temoin.identity import service
from temoin.journal import checkpoints
from temoin.journal.entry import GENESIS, PLATFORM_CHAIN
from temoin.journal.models import JournalCheckpoint
from temoin.journal.verify import verify_all
from temoin.law.profiles import get_profile
from tests.journal_helpers import (
    AGENT,
    CHAIN,
    cli,
    db_rows,
    draft,
    edit_file,
    file_lines,
    line_seq,
    named,
    sql,
    verify,
    write,
)

# --- helpers --------------------------------------------------------------------------------------


def seqs(result) -> set[int | None]:
    return {p.seq for p in result.problems}


def rehash_from(bodies: list[dict], start_seq: int, prev: str) -> list[tuple[int, bytes, str]]:
    """What an attacker who knows the format does: rewrite entries and recompute every hash after."""
    out = []
    for body in bodies:
        if body["seq"] < start_seq:
            continue
        body = dict(body, prev=prev)
        raw = canonical_bytes(body)
        prev = hashlib.sha256(raw).hexdigest()
        out.append((body["seq"], raw, prev))
    return out


@pytest.fixture
def journal(platform):
    """A tenant chain of six entries: the tenant's creation, then five consultations."""
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
    assert verify(platform).ok
    return platform


# --- both sinks -----------------------------------------------------------------------------------


def test_entries_reach_both_sinks_chained_and_verify(journal):
    platform = journal
    rows = db_rows(platform)
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[0].event == "tenant.created" and rows[0].prev_hash == GENESIS
    for before, row in zip(rows, rows[1:]):
        assert row.prev_hash == before.hash
    for row in rows:
        assert hashlib.sha256(row.body.encode()).hexdigest() == row.hash
    body = orjson.loads(rows[3].body)
    assert body["chain"] == CHAIN and body["seq"] == 4 and body["tenant"] == CHAIN
    assert body["action"] == "consultation" and body["event"] == "recording.consulted"
    assert body["actor"] == AGENT.model_dump() and body["recordings"] == ["rec-0002"]
    assert body["motive"] == {"code": "judicial_requisition", "text": "PV 2026/0002"}

    # The file sink holds the very same entries, byte for byte, in order: `<hash> <body>` per line.
    lines = file_lines(platform)
    assert all(path.parent == platform.settings.journal_dir / CHAIN for path, _ in lines)
    assert [raw for _, raw in lines] == [r.hash.encode() + b" " + r.body.encode() for r in rows]

    result = verify(platform)
    assert result.ok, result.problems
    reports = {(r.chain, r.sink): r for r in result.reports}
    for sink in ("database", "file"):
        assert reports[(CHAIN, sink)].entries == 6 and reports[(CHAIN, sink)].last_seq == 6
        assert reports[(CHAIN, sink)].last_hash == rows[-1].hash


def test_platform_entries_go_to_the_platform_chain(platform):
    write(platform, 2, slug=None)
    rows = db_rows(platform, PLATFORM_CHAIN)
    assert [r.seq for r in rows] == [1, 2] and all(r.tenant_id is None for r in rows)
    assert len(file_lines(platform, PLATFORM_CHAIN)) == 2
    assert verify(platform).ok


def test_an_entry_of_a_rolled_back_transaction_is_in_neither_sink(journal):
    platform = journal
    with platform.session() as db:
        platform.record(db, draft(99), platform.tenant(db, CHAIN))
        db.rollback()
    assert len(db_rows(platform)) == 6 and len(file_lines(platform)) == 6
    write(platform, 1, start=100)  # the next entry takes seq 7, not 8
    assert [r.seq for r in db_rows(platform)][-1] == 7
    assert verify(platform).ok


def test_entry_missing_from_the_file_after_a_crash_is_appended_by_repair_not_by_opening(journal):
    from temoin.journal.repair import repair
    from temoin.platform import Platform

    platform = journal
    edit_file(platform, lambda lines: lines[:-2])  # the process died between commit and file write
    assert ("file", "deleted", 5) in named(verify(platform))
    reopened = Platform.open(platform.settings)  # opening the platform repairs nothing
    try:
        assert [line_seq(raw) for _, raw in file_lines(platform)] == [1, 2, 3, 4]
        with reopened.session() as db:
            (done,) = repair(db, reopened.journal, trigger="test", chains=[CHAIN])
        assert (done.appended, done.from_seq, done.refused) == (2, 5, None)
        assert [line_seq(raw) for _, raw in file_lines(platform)] == [1, 2, 3, 4, 5, 6, 7]
        repaired = orjson.loads(db_rows(platform)[-1].body)
        assert repaired["event"] == "journal.file_repaired"  # the repair is journaled, in the chain it repaired
        assert repaired["details"]["entries_appended"] == 2 and repaired["details"]["from_seq"] == 5
        assert verify(reopened).ok
    finally:
        reopened.close()


# --- tampering with the database sink -------------------------------------------------------------


def test_db_entry_body_altered_is_named(journal):
    sql(
        journal,
        "UPDATE journal_entries SET body = replace(body, 'PV 2026/0001', 'PV 2026/0666') WHERE chain = :c AND seq = 3",
        c=CHAIN,
    )
    result = verify(journal)
    assert not result.ok
    assert ("database", "altered", 3) in named(result)
    assert seqs(result) == {3}
    assert any("entry 3 was altered" in str(p) for p in result.problems)


def test_db_entry_altered_with_its_hash_recomputed_is_named(journal):
    row = db_rows(journal)[2]
    forged = row.body.replace("PV 2026/0001", "PV 2026/0666")
    sql(
        journal,
        "UPDATE journal_entries SET body = :b, hash = :h WHERE chain = :c AND seq = 3",
        b=forged,
        h=hashlib.sha256(forged.encode()).hexdigest(),
        c=CHAIN,
    )
    result = verify(journal)
    # Entry 4 no longer chains onto entry 3, and entry 3 differs from the file's.
    assert ("database", "altered", 4) in named(result)
    assert ("both", "mismatch", 3) in named(result)
    assert seqs(result) == {3, 4}


def test_db_entry_indexed_column_altered_is_named(journal):
    sql(journal, "UPDATE journal_entries SET event = 'recording.viewed' WHERE chain = :c AND seq = 5", c=CHAIN)
    result = verify(journal)
    assert ("database", "altered", 5) in named(result) and seqs(result) == {5}


def test_db_entry_deleted_in_the_middle_is_named(journal):
    sql(journal, "DELETE FROM journal_entries WHERE chain = :c AND seq = 3", c=CHAIN)
    result = verify(journal)
    assert ("database", "deleted", 3) in named(result)
    assert seqs(result) == {3}
    assert any("entry 3 missing" in str(p) for p in result.problems)


def test_db_entries_deleted_at_the_end_are_named(journal):
    sql(journal, "DELETE FROM journal_entries WHERE chain = :c AND seq >= 5", c=CHAIN)
    result = verify(journal)
    assert ("database", "deleted", 5) in named(result)  # the chain head still counts 6
    assert seqs(result) <= {5, 6}


def test_db_entries_deleted_at_the_end_with_the_head_rewound_are_caught_by_the_file(journal):
    fourth = db_rows(journal)[3]
    sql(journal, "DELETE FROM journal_entries WHERE chain = :c AND seq >= 5", c=CHAIN)
    sql(journal, "UPDATE journal_heads SET seq = 4, hash = :h WHERE chain = :c", h=fourth.hash, c=CHAIN)
    result = verify(journal)
    assert named(result) == {("database", "deleted", 5), ("database", "deleted", 6)}  # in the file, not the db


def test_entries_deleted_at_the_end_of_both_sinks_are_caught_by_the_seal(journal):
    platform = journal
    with platform.session() as db:
        assert checkpoints.seal(db, platform.journal.sink, platform.keyring) == 1
        assert checkpoints.seal(db, platform.journal.sink, platform.keyring) == 0  # nothing new to seal
    fourth = db_rows(platform)[3]
    sql(platform, "DELETE FROM journal_entries WHERE chain = :c AND seq >= 5", c=CHAIN)
    sql(platform, "UPDATE journal_heads SET seq = 4, hash = :h WHERE chain = :c", h=fourth.hash, c=CHAIN)
    edit_file(platform, lambda lines: lines[:4])
    result = verify(platform)
    assert named(result) == {("database", "deleted", 5), ("file", "deleted", 5)}
    assert all("signed checkpoint vouches for entry 6" in p.message for p in result.problems)


def test_whole_chain_wiped_from_both_sinks_is_caught_by_the_seal(journal):
    platform = journal
    with platform.session() as db:
        checkpoints.seal(db, platform.journal.sink, platform.keyring)
    sql(platform, "DELETE FROM journal_entries WHERE chain = :c", c=CHAIN)
    sql(platform, "DELETE FROM journal_heads WHERE chain = :c", c=CHAIN)
    for path in platform.journal.sink.files(CHAIN):
        path.unlink()
    result = verify(platform)
    assert named(result) == {("database", "deleted", 1), ("file", "deleted", 1)}


def _forge_next(journal, prev: str) -> None:
    last = orjson.loads(db_rows(journal)[-1].body)
    body = dict(
        last, seq=7, prev=prev, event="recording.consulted", motive={"code": "judicial_requisition", "text": "forged"}
    )
    raw = canonical_bytes(body)
    sql(
        journal,
        "INSERT INTO journal_entries (chain, seq, at, tenant_id, action, event, body, prev_hash, hash) "
        "SELECT chain, 7, at, tenant_id, action, :e, :b, :p, :h FROM journal_entries "
        "WHERE chain = :c AND seq = 6",
        e=body["event"],
        b=raw.decode(),
        p=prev,
        h=hashlib.sha256(raw).hexdigest(),
        c=CHAIN,
    )


def test_db_forged_entry_inserted_is_named(journal):
    _forge_next(journal, prev=db_rows(journal)[-1].hash)  # chains perfectly onto entry 6
    result = verify(journal)
    assert ("database", "inserted", 7) in named(result)  # beyond the chain head
    assert ("file", "deleted", 7) in named(result)  # and absent from the file sink
    assert seqs(result) == {7}


def test_db_forged_entry_that_does_not_chain_is_named(journal):
    _forge_next(journal, prev="f" * 64)
    result = verify(journal)
    assert ("database", "inserted", 7) in named(result)
    assert ("database", "altered", 7) in named(result)  # does not chain onto entry 6
    assert seqs(result) == {7}


def test_db_entries_swapped_are_named(journal):
    sql(journal, "UPDATE journal_entries SET seq = -1 WHERE chain = :c AND seq = 3", c=CHAIN)
    sql(journal, "UPDATE journal_entries SET seq = 3 WHERE chain = :c AND seq = 4", c=CHAIN)
    sql(journal, "UPDATE journal_entries SET seq = 4 WHERE chain = :c AND seq = -1", c=CHAIN)
    result = verify(journal)
    assert ("database", "reordered", 3) in named(result)
    assert seqs(result) <= {3, 4}
    assert any("entry 3 is out of order" in str(p) for p in result.problems)


# --- tampering with the file sink -----------------------------------------------------------------


def test_file_byte_edited_is_named(journal):
    def edit(lines):
        line = bytearray(lines[2])
        at = line.index(b"PV 2026/0001") + len(b"PV 2026/000")
        line[at] = ord("7")  # one byte: 0001 -> 0007
        return [*lines[:2], bytes(line), *lines[3:]]

    edit_file(journal, edit)
    result = verify(journal)
    assert ("file", "altered", 3) in named(result)
    assert seqs(result) == {3}


def test_file_hash_edited_is_named(journal):
    def edit(lines):
        line = bytearray(lines[3])
        line[0] = ord("0") if line[0] != ord("0") else ord("1")
        return [*lines[:3], bytes(line), *lines[4:]]

    edit_file(journal, edit)
    result = verify(journal)
    assert ("file", "altered", 4) in named(result) and seqs(result) <= {4, 5}


def test_file_line_made_unreadable_is_named(journal):
    edit_file(journal, lambda lines: [*lines[:2], lines[2][:-10], *lines[3:]])
    result = verify(journal)
    assert named(result) == {("file", "altered", None), ("file", "deleted", 3)}
    assert any(
        f"{CHAIN}/" in p.message and "line 3" in p.message and "unreadable" in p.message for p in result.problems
    )


def test_file_line_deleted_is_named(journal):
    edit_file(journal, lambda lines: [*lines[:2], *lines[3:]])
    result = verify(journal)
    assert ("file", "deleted", 3) in named(result)
    assert seqs(result) == {3}


def test_file_line_duplicated_is_named(journal):
    edit_file(journal, lambda lines: [*lines[:3], lines[2], *lines[3:]])
    result = verify(journal)
    assert ("file", "inserted", 3) in named(result)
    assert seqs(result) == {3}


def test_file_forged_line_inserted_is_named(journal):
    rows = db_rows(journal)
    body = dict(orjson.loads(rows[3].body), motive={"code": "judicial_requisition", "text": "forged"})
    raw = canonical_bytes(body)  # a fake entry 4 that chains onto entry 3
    forged = hashlib.sha256(raw).hexdigest().encode() + b" " + raw
    edit_file(journal, lambda lines: [*lines[:3], forged, *lines[3:]])
    result = verify(journal)
    assert ("both", "mismatch", 4) in named(result)  # the forged one differs from the database's entry 4
    assert ("file", "inserted", 4) in named(result)  # and there are now two entries 4
    assert seqs(result) <= {4, 5}


def test_file_lines_swapped_are_named(journal):
    edit_file(journal, lambda lines: [*lines[:2], lines[3], lines[2], *lines[4:]])
    result = verify(journal)
    assert ("file", "reordered", 3) in named(result)
    assert seqs(result) <= {3, 4}
    assert any("entry 3 is out of order" in str(p) for p in result.problems)


# --- consistent rewrites and signed checkpoints ----------------------------------------------------


def _rewrite_db(platform, rewritten: list[tuple[int, bytes, str]]) -> None:
    for seq, raw, digest in rewritten:
        prev = orjson.loads(raw)["prev"]
        sql(
            platform,
            "UPDATE journal_entries SET body = :b, hash = :h, prev_hash = :p WHERE chain = :c AND seq = :s",
            b=raw.decode(),
            h=digest,
            p=prev,
            c=CHAIN,
            s=seq,
        )
    sql(platform, "UPDATE journal_heads SET hash = :h WHERE chain = :c", h=rewritten[-1][2], c=CHAIN)


def _consistent_rewrite(platform) -> list[tuple[int, bytes, str]]:
    rows = db_rows(platform)
    bodies = [orjson.loads(r.body) for r in rows]
    bodies[2]["motive"] = {"code": "judicial_requisition", "text": "rewritten"}
    return rehash_from(bodies, 3, rows[1].hash)


def test_consistent_db_rewrite_is_caught_by_the_file_sink(journal):
    _rewrite_db(journal, _consistent_rewrite(journal))
    result = verify(journal)
    db_report = next(r for r in result.reports if r.chain == CHAIN and r.sink == "database")
    assert db_report.problems == []  # the database chain alone looks perfect...
    assert ("both", "mismatch", 3) in named(result)  # ...but differs from the file from entry 3 on
    assert seqs(result) == {3, 4, 5, 6}


def test_consistent_rewrite_of_both_sinks_is_caught_by_the_seal(journal):
    platform = journal
    with platform.session() as db:
        checkpoints.seal(db, platform.journal.sink, platform.keyring)
    rewritten = _consistent_rewrite(platform)
    _rewrite_db(platform, rewritten)
    by_seq = {seq: digest.encode() + b" " + raw for seq, raw, digest in rewritten}
    edit_file(platform, lambda lines: [by_seq.get(line_seq(line), line) for line in lines])
    result = verify(platform)
    assert named(result) == {("database", "altered", 6), ("file", "altered", 6)}
    assert all("platform-signed checkpoint" in p.message for p in result.problems)


def test_seal_replaced_by_an_attacker_is_reported(journal):
    platform = journal
    with platform.session() as db:
        checkpoints.seal(db, platform.journal.sink, platform.keyring)
    rewritten = _consistent_rewrite(platform)
    _rewrite_db(platform, rewritten)
    # The attacker re-seals the rewritten head with a key of his own.
    with platform.session() as db:
        cp = db.scalar(select(JournalCheckpoint).where(JournalCheckpoint.chain == CHAIN))
        body = dict(orjson.loads(cp.body), hash=rewritten[-1][2])
        raw = canonical_bytes(body)
        signature = b64e(Ed25519PrivateKey.generate().sign(raw))
    sql(
        platform,
        "UPDATE journal_checkpoints SET body = :b, hash = :h, signature = :s WHERE id = :i",
        b=raw.decode(),
        h=body["hash"],
        s=signature,
        i=cp.id,
    )
    result = verify(platform)
    assert ("database", "checkpoint", None) in named(result)
    assert ("both", "mismatch", 3) in named(result)


# --- pruning --------------------------------------------------------------------------------------


def _old_and_new(platform) -> None:
    """Three entries four years old, then three of today, on the platform chain."""
    old = utcnow() - timedelta(days=4 * 366)
    with platform.session() as db:
        for n in range(3):
            platform.journal.write(db, draft(n), tenant_id=None, tenant_slug=None, at=old + timedelta(hours=n))
        db.commit()
    write(platform, 3, slug=None, start=3)


def test_prune_removes_old_entries_from_both_sinks_behind_a_signed_checkpoint(platform):
    _old_and_new(platform)
    sink = platform.journal.sink
    assert len(sink.files(PLATFORM_CHAIN)) == 2  # an old month file and this month's
    old_hash = db_rows(platform, PLATFORM_CHAIN)[2].hash
    cutoff = get_profile("fr-police-municipale").journal_cutoff(utcnow())
    with platform.session() as db:
        assert checkpoints.prune(db, sink, platform.keyring, PLATFORM_CHAIN, cutoff) == 3
    assert [r.seq for r in db_rows(platform, PLATFORM_CHAIN)] == [4, 5, 6]
    assert [line_seq(raw) for _, raw in file_lines(platform, PLATFORM_CHAIN)] == [4, 5, 6]
    assert len(sink.files(PLATFORM_CHAIN)) == 1  # the emptied old month file is gone
    with platform.session() as db:
        cp = db.scalar(select(JournalCheckpoint).where(JournalCheckpoint.chain == PLATFORM_CHAIN))
    assert (cp.kind, cp.seq, cp.hash) == ("prune", 3, old_hash)
    assert orjson.loads(cp.body)["pruned_from"] == 1
    assert sink.checkpoints_path(PLATFORM_CHAIN).read_bytes().count(b"\n") == 1

    result = verify(platform)
    assert result.ok, result.problems
    assert {(r.sink, r.first_seq, r.last_seq) for r in result.reports} == {("database", 4, 6), ("file", 4, 6)}
    # The journal goes on after pruning, and nothing is pruned twice.
    write(platform, 1, slug=None, start=10)
    with platform.session() as db:
        assert checkpoints.prune(db, sink, platform.keyring, PLATFORM_CHAIN, cutoff) == 0
    assert verify(platform).ok


def test_prune_keeps_entries_younger_than_the_cutoff(platform):
    write(platform, 3, slug=None)
    cutoff = get_profile("fr-police-municipale").journal_cutoff(utcnow())
    with platform.session() as db:
        assert checkpoints.prune(db, platform.journal.sink, platform.keyring, PLATFORM_CHAIN, cutoff) == 0
    assert len(db_rows(platform, PLATFORM_CHAIN)) == 3 and len(file_lines(platform, PLATFORM_CHAIN)) == 3
    assert not platform.journal.sink.checkpoints_path(PLATFORM_CHAIN).exists()


def test_prune_interrupted_before_the_file_rewrite_still_verifies_and_finishes_later(platform, monkeypatch):
    _old_and_new(platform)
    sink = platform.journal.sink
    cutoff = get_profile("fr-police-municipale").journal_cutoff(utcnow())

    def crash(*args, **kwargs):
        raise OSError("killed")

    monkeypatch.setattr(sink, "rewrite", crash)
    with platform.session() as db, pytest.raises(OSError):
        checkpoints.prune(db, sink, platform.keyring, PLATFORM_CHAIN, cutoff)
    monkeypatch.undo()
    assert [r.seq for r in db_rows(platform, PLATFORM_CHAIN)] == [4, 5, 6]
    assert len(file_lines(platform, PLATFORM_CHAIN)) == 6
    assert verify(platform).ok  # the file's pruned entries lie behind the signed checkpoint
    # The next run removes what the crash left in the file: nothing outlives its retention.
    with platform.session() as db:
        checkpoints.prune(db, sink, platform.keyring, PLATFORM_CHAIN, cutoff)
    assert [line_seq(raw) for _, raw in file_lines(platform, PLATFORM_CHAIN)] == [4, 5, 6]
    assert verify(platform).ok


def test_forged_prune_checkpoint_does_not_hide_deleted_entries(platform):
    write(platform, 6, slug=None)
    rows = db_rows(platform, PLATFORM_CHAIN)
    # The attacker removes entries 1-3 from both sinks and leaves a prune checkpoint signed by his own key.
    sql(platform, "DELETE FROM journal_entries WHERE chain = :c AND seq <= 3", c=PLATFORM_CHAIN)
    edit_file(platform, lambda lines: lines[3:], chain=PLATFORM_CHAIN)
    body = canonical_bytes(
        {
            "chain": PLATFORM_CHAIN,
            "kind": "prune",
            "seq": 3,
            "hash": rows[2].hash,
            "at": utcnow().isoformat(),
            "platform_key_id": platform.keyring.public_key_id,
            "pruned_from": 1,
            "cutoff": utcnow().isoformat(),
        }
    )
    signature = b64e(Ed25519PrivateKey.generate().sign(body))
    with platform.session() as db:
        db.add(
            JournalCheckpoint(
                chain=PLATFORM_CHAIN,
                kind="prune",
                seq=3,
                hash=rows[2].hash,
                at=utcnow(),
                body=body.decode(),
                signature=signature,
            )
        )
        db.commit()
    platform.journal.sink.append_checkpoint(PLATFORM_CHAIN, signature.encode() + b" " + body)
    result = verify(platform)
    assert named(result) == {
        ("database", "checkpoint", None),
        ("file", "checkpoint", None),
        ("database", "deleted", 1),
        ("file", "deleted", 1),
    }
    assert any("signature is invalid" in p.message for p in result.problems)


def test_genuine_prune_checkpoint_altered_is_reported(platform):
    _old_and_new(platform)
    cutoff = get_profile("fr-police-municipale").journal_cutoff(utcnow())
    with platform.session() as db:
        checkpoints.prune(db, platform.journal.sink, platform.keyring, PLATFORM_CHAIN, cutoff)
    # Entry 4 deleted, and the signed checkpoint's body edited to claim it was pruned.
    sql(platform, "DELETE FROM journal_entries WHERE chain = :c AND seq = 4", c=PLATFORM_CHAIN)
    sql(
        platform,
        "UPDATE journal_checkpoints SET body = replace(body, :old, :new), seq = 4 WHERE chain = :c",
        old='"seq":3',
        new='"seq":4',
        c=PLATFORM_CHAIN,
    )
    result = verify(platform)
    assert ("database", "checkpoint", None) in named(result)
    assert ("database", "deleted", 4) in named(result)


# --- the command line -----------------------------------------------------------------------------


def test_cli_journal_verify(journal):
    ok = cli(journal, "journal", "verify")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "journal intact" in ok.stdout

    sql(
        journal,
        "UPDATE journal_entries SET body = replace(body, 'PV 2026/0001', 'PV 2026/0666') WHERE chain = :c AND seq = 3",
        c=CHAIN,
    )
    bad = cli(journal, "journal", "verify")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "journal intact" not in bad.stdout
    assert "database entry 3: entry 3 was altered" in bad.stdout


def test_cli_journal_verify_names_the_chain_of_each_problem(journal):
    sql(
        journal,
        "UPDATE journal_entries SET body = replace(body, 'PV 2026/0001', 'PV 2026/0666') WHERE chain = :c AND seq = 3",
        c=CHAIN,
    )
    bad = cli(journal, "journal", "verify")
    assert bad.returncode == 1
    assert f"[{CHAIN}] database: database entry 3: entry 3 was altered" in bad.stdout


def test_chains_verified_in_worker_processes_find_what_one_process_finds(journal):
    """A large journal is verified one chain per process: the same problems, named the same way."""
    other = "vieux-bourg"
    with journal.session() as db:
        service.create_tenant(
            journal,
            db,
            slug=other,
            name="Vieux-Bourg",
            profile="fr-police-municipale",
            authorised_cameras=2,
            territory=territory(),
        )
        db.commit()
    write(journal, 4, slug=other)
    with journal.session() as db:
        chains = verify_all(db, journal.journal.sink, journal.keyring.public_key, workers=2)
    assert chains.ok and {r.chain for r in chains.reports} == {CHAIN, other}
    sql(
        journal,
        "UPDATE journal_entries SET body = replace(body, 'PV 2026/0001', 'PV 2026/0666') WHERE chain = :c AND seq = 3",
        c=CHAIN,
    )

    def edit(lines):
        return [*lines[:1], *lines[2:]]  # the file of the other chain loses its second line

    edit_file(journal, edit, chain=other)
    with journal.session() as db:
        alone = verify_all(db, journal.journal.sink, journal.keyring.public_key, workers=1)
        side_by_side = verify_all(db, journal.journal.sink, journal.keyring.public_key, workers=2)
    assert ("database", "altered", 3) in named(side_by_side) and ("file", "deleted", 2) in named(side_by_side)
    assert [str(p) for p in side_by_side.problems] == [str(p) for p in alone.problems]
    assert [(r.chain, r.sink, r.entries, r.last_seq) for r in side_by_side.reports] == [
        (r.chain, r.sink, r.entries, r.last_seq) for r in alone.reports
    ]


def test_a_node_with_a_journal_folder_of_its_own_is_told_loudly(journal, tmp_path, monkeypatch, caplog):
    """Two nodes, one database, each with its own journal folder (a misconfiguration: TEMOIN_JOURNAL_FOLDER must be
    shared). The other node's entries never reach this node's file, so each of this node's entries waits for them
    after its commit: the log says why and what to do, once, not at every entry."""
    import logging
    import time

    from temoin.journal import service as journal_service
    from temoin.journal.service import Journal
    from temoin.journal.sinks import FileSink

    platform = journal
    monkeypatch.setattr(journal_service, "APPEND_WAIT_S", 0.2)
    other = Journal(FileSink(tmp_path / "other-node-journal"))
    caplog.set_level(logging.ERROR, logger="temoin.journal")
    for n in (90, 92):
        with platform.session() as db:  # the other node journals an entry of the same chain...
            other.write(db, draft(n), tenant_id=platform.tenant(db, CHAIN).id, tenant_slug=CHAIN)
            db.commit()
        began = time.monotonic()
        write(platform, 1, start=n + 1)  # ...then this node: its predecessor never reaches this node's file
        assert time.monotonic() - began >= 0.2
    told = [r.getMessage() for r in caplog.records if "TEMOIN_JOURNAL_FOLDER" in r.getMessage()]
    here = [m for m in told if str(platform.journal.sink.root) in m]
    assert len(here) == 1, told  # this node waited twice, and says it once
    assert f"entry 8 of chain {CHAIN}" in here[0]
    assert len([m for m in told if str(other.sink.root) in m]) == 1  # the other node, whose file lacks 8, too
    # The database has every entry; this node's file lacks the other node's, which verify names.
    assert [r.seq for r in db_rows(platform)][-4:] == [7, 8, 9, 10]
    assert {("file", "deleted", 7), ("file", "deleted", 9)} <= named(verify(platform))
