"""Encryption at rest and the scrub: stored bytes are sealed, and any change to them is found and named."""

from __future__ import annotations

import io
import os

import pytest

from temoin.evidence import crypto
from temoin.vault.models import Recording
from temoin.vault.scrub import scrub
from temoin.vault.storage import LocalBlobStore, StorageError, blob_key
from tests.helpers import make_commune, upload
from tests.s3_helpers import BOTH_STORES, read_raw, remove_raw, write_raw


def test_records_resume_after_a_torn_write(tmp_path):
    key = crypto.new_data_key()
    store = LocalBlobStore(tmp_path)
    name = blob_key("t", "r1", 0)
    header = crypto.new_header()
    sealer = crypto.Sealer(key, header)
    store.append_staged(name, header, sealer.seal(b"a" * 1000))
    store.append_staged(name, None, sealer.seal(b"b" * 500))
    store.sync_staged(name)
    with open(store.staging / name, "ab") as fh:  # a crash in the middle of the next record
        fh.write(b"\x00\x00\x01\x00partial")
    got_header, records, plain = store.staged_state(name)
    assert (got_header, records, plain) == (header, 2, 1500)  # the torn record is cut off
    resumed = crypto.Sealer(key, got_header, records)
    store.append_staged(name, None, resumed.seal(b"c" * 10))
    store.sync_staged(name)
    store.promote(name)
    with store.open(name) as fh:
        assert b"".join(crypto.open_records(fh, key)) == b"a" * 1000 + b"b" * 500 + b"c" * 10


def test_reordered_or_altered_records_do_not_open(tmp_path):
    key = crypto.new_data_key()
    header = crypto.new_header()
    sealer = crypto.Sealer(key, header)
    first, second = sealer.seal(b"x" * 100), sealer.seal(b"y" * 100)
    with pytest.raises(crypto.IntegrityError, match="record 0"):
        list(crypto.open_records(io.BytesIO(header + second + first), key))
    altered = bytearray(header + first + second)
    altered[len(header) + 10] ^= 1
    with pytest.raises(crypto.IntegrityError, match="record 0 at byte 22: authentication failed"):
        list(crypto.open_records(io.BytesIO(bytes(altered)), key))
    with pytest.raises(crypto.IntegrityError):
        list(crypto.open_records(io.BytesIO(header + first + second), crypto.new_data_key()))


def test_records_opened_into_reused_buffers_match_and_refuse_the_same_damage():
    """The extraction's reader (`open_records_into`, pooled buffers) opens what `open_records` opens, and refuses
    what it refuses: reordered, altered, cut short."""
    key = crypto.new_data_key()
    header = crypto.new_header()
    sealer = crypto.Sealer(key, header)
    data = os.urandom(crypto.RECORD_BYTES + 1000)
    blob = header + sealer.seal(data)
    pool = [bytearray(crypto.RECORD_BYTES) for _ in range(2)]
    views = list(crypto.open_records_into(io.BufferedReader(io.BytesIO(blob)), key, pool.pop))
    assert [len(v) for v in views] == [crypto.RECORD_BYTES, 1000]
    assert b"".join(bytes(v) for v in views) == data == b"".join(crypto.open_records(io.BytesIO(blob), key))

    def buffers():
        return bytearray(crypto.RECORD_BYTES)

    first, second = crypto.Sealer(key, header).seal(b"x" * 100), sealer.seal(b"y" * 100)
    with pytest.raises(crypto.IntegrityError, match="record 0"):
        list(crypto.open_records_into(io.BytesIO(header + second + first), key, buffers))
    altered = bytearray(blob)
    altered[len(header) + 10] ^= 1
    with pytest.raises(crypto.IntegrityError, match="record 0 at byte 22: authentication failed"):
        list(crypto.open_records_into(io.BytesIO(bytes(altered)), key, buffers))
    with pytest.raises(crypto.IntegrityError, match=r"record 1 at byte \d+: truncated"):
        list(crypto.open_records_into(io.BytesIO(blob[:-10]), key, buffers))


def test_a_byte_range_opens_only_the_records_it_needs(tmp_path):
    key, header = crypto.new_data_key(), crypto.new_header()
    plain = os.urandom(2 * crypto.RECORD_BYTES + 12345)
    blob = header + crypto.Sealer(key, header).seal(plain)
    for start, end in [
        (0, 10),
        (5, crypto.RECORD_BYTES + 7),
        (crypto.RECORD_BYTES, crypto.RECORD_BYTES + 1),
        (crypto.RECORD_BYTES - 3, 2 * crypto.RECORD_BYTES + 3),
        (len(plain) - 9, len(plain)),
        (0, len(plain)),
    ]:
        assert b"".join(crypto.open_range(io.BytesIO(blob), key, start, end)) == plain[start:end], (start, end)
    # A record before the range is stepped over, not opened: altering it does not stop a read beyond it...
    altered = bytearray(blob)
    altered[len(header) + 100] ^= 1
    tail = crypto.RECORD_BYTES + 1
    assert b"".join(crypto.open_range(io.BytesIO(bytes(altered)), key, tail, tail + 10)) == plain[tail : tail + 10]
    # ...but a read through it fails, naming it.
    with pytest.raises(crypto.IntegrityError, match="record 0 at byte 22: authentication failed"):
        list(crypto.open_range(io.BytesIO(bytes(altered)), key, 50, 60))


def test_wrapped_key_is_bound_to_its_recording_and_master_key():
    master, data_key = os.urandom(32), crypto.new_data_key()
    wrapped = crypto.wrap_key(master, data_key, "rec-1")
    assert crypto.unwrap_key(master, wrapped, "rec-1") == data_key
    with pytest.raises(crypto.IntegrityError):
        crypto.unwrap_key(master, wrapped, "rec-2")
    with pytest.raises(crypto.IntegrityError):
        crypto.unwrap_key(os.urandom(32), wrapped, "rec-1")


def test_blob_keys_cannot_leave_the_store(tmp_path):
    with pytest.raises(StorageError):
        blob_key("..", "x", 0)
    with pytest.raises(StorageError):
        blob_key("t", "../../etc", 0)
    with pytest.raises(StorageError):
        LocalBlobStore(tmp_path).open("../../etc/passwd")


def test_master_key_is_never_in_the_database(platform, client):
    commune = make_commune(platform)
    upload(platform, client, commune)
    url = platform.settings.database_url
    if url.startswith("sqlite"):
        raw = open(url.removeprefix("sqlite:///"), "rb").read()  # noqa: SIM115 - a test: read whole, closed by the collector
        assert platform.keyring.master_key not in raw
    with platform.session() as db:
        rec = db.query(Recording).one()
        assert platform.keyring.master_key not in rec.wrapped_key


@BOTH_STORES
def test_scrub_names_each_corrupted_segment(platform, client):
    commune = make_commune(platform)
    good, _ = upload(platform, client, commune, duration_s=4, segment_s=2)
    bad, _ = upload(platform, client, commune, duration_s=4, segment_s=2)
    gone, _ = upload(platform, client, commune, duration_s=2, segment_s=2)
    with platform.session() as db:
        assert scrub(platform, db).ok
    data = bytearray(read_raw(platform.store, blob_key(commune.slug, bad, 1)))
    data[len(data) // 2] ^= 0x40  # one bit flipped on disk, or in the bucket
    write_raw(platform.store, blob_key(commune.slug, bad, 1), bytes(data))
    remove_raw(platform.store, blob_key(commune.slug, gone, 0))
    with platform.session() as db:
        result = scrub(platform, db)
    problems = sorted(str(p) for p in result.problems)
    assert len(problems) == 2
    assert any(p.startswith(f"{bad} segment 1: record 0 at byte") and "authentication failed" in p for p in problems)
    assert any(p == f"{gone} segment 0: blob missing from the store" for p in problems)
    assert not any(good in p for p in problems)


class _FillingDisk:
    """The OS boundary of a disk filling up: the first write stores only the first half of what it is given (a short
    write, as Linux answers when space runs out mid-write), the next `fail` writes raise ENOSPC; afterwards the disk
    has room again (the retention sweep freed some). One state for every file opened."""

    def __init__(self, fail: int) -> None:
        self.fail, self.short_done = fail, False

    def wrap(self, fh):
        disk = self

        class Handle:
            def write(self, data):
                import errno

                if not disk.short_done:
                    disk.short_done = True
                    return fh.write(memoryview(data)[: len(data) // 2])
                if disk.fail:
                    disk.fail -= 1
                    raise OSError(errno.ENOSPC, "No space left on device")
                return fh.write(data)

            def __getattr__(self, name):
                return getattr(fh, name)

        return Handle()


@pytest.mark.parametrize("fail", [0, 1])
def test_an_append_is_whole_or_absent_when_the_disk_fills(tmp_path, monkeypatch, fail):
    """A short write is continued, and a write that fails leaves no partial record: otherwise a retry's record would
    follow half a record, and the promoted blob would not open there although every hash matched."""
    from pathlib import Path

    key = crypto.new_data_key()
    store = LocalBlobStore(tmp_path)
    name = blob_key("t", "r1", 0)
    header = crypto.new_header()
    sealer = crypto.Sealer(key, header)
    store.append_staged(name, header, sealer.seal(b"a" * 1000))
    store.sync_staged(name)
    real_open = Path.open
    disk = _FillingDisk(fail)
    monkeypatch.setattr(Path, "open", lambda self, *a, **k: disk.wrap(real_open(self, *a, **k)))
    record = sealer.seal(b"b" * 5000)
    if fail:
        with pytest.raises(StorageError):
            store.append_staged(name, None, record[:4], record[4:])
        assert store.staged_size(name) == len(header) + 4 + 1000 + crypto.TAG_BYTES  # as before the failed call
    store.append_staged(name, None, record[:4], record[4:])
    monkeypatch.setattr(Path, "open", real_open)
    store.sync_staged(name)
    store.promote(name)
    with store.open(name) as fh:
        assert b"".join(crypto.open_records(fh, key)) == b"a" * 1000 + b"b" * 5000
