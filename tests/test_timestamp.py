"""RFC 3161 timestamps against a real OpenSSL TSA (tests/tsa.py): tokens requested and verified, every failure
named; packages' SHA256SUMS.tsr checked by `temoin verify --tsa-ca` and `openssl ts -verify`; journal seals
stamped and checked by `temoin journal verify --tsa-ca`; a TSA outage blocks nothing; without a TSA, everything
works and says "not timestamped".
"""

from __future__ import annotations

import base64
import hashlib
import logging
import shutil
import subprocess
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from typer.testing import CliRunner

from temoin.cli import app as cli_app
from temoin.evidence.timestamp import Failure, Timestamper, TimestampError, request_token, verify_token
from temoin.journal import checkpoints
from temoin.journal.models import JournalCheckpoint, JournalEntry
from temoin.journal.seal_timestamps import verify_all_seal_timestamps
from temoin.journal.service import parse_body
from temoin.journal.sinks import split_checkpoint_line
from temoin.journal.verify import verify_all
from temoin.law.access import Role
from temoin.platform import Platform
from temoin.settings import Settings
from temoin.web.app import create_app
from tests.helpers import make_commune, sign_in, upload
from tests.tsa import POLICY, TestCA, TestTSA, token_signed_by_a_non_tsa_certificate

runner = CliRunner()
DATA = b"3f2a...  media/rec-1/00000.mp4\n"


def _openssl_verify(data_file: Path, tsr: Path, ca: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["openssl", "ts", "-verify", "-data", str(data_file), "-in", str(tsr), "-CAfile", str(ca)],
        capture_output=True,
        text=True,
        timeout=30,
    )


# --- the protocol -----------------------------------------------------------------------------------------


def test_a_token_is_requested_with_a_nonce_and_verified(tsa: TestTSA, tmp_path):
    token = request_token(tsa.url, DATA, timeout=5, ca_bundle_pem=tsa.ca_pem)
    info = verify_token(token, DATA, tsa.ca_pem)
    assert abs((info.time - datetime.now(UTC)).total_seconds()) < 60
    assert "CN=Témoin test TSA" in info.tsa and info.policy == POLICY and info.serial >= 1
    # The request carried a nonce (OpenSSL's own reading of what we sent) and the reply echoes it.
    (tmp_path / "q.tsq").write_bytes(tsa.queries[-1])
    query = subprocess.run(
        ["openssl", "ts", "-query", "-in", str(tmp_path / "q.tsq"), "-text"], capture_output=True, text=True, timeout=30
    )
    assert "Nonce: 0x" in query.stdout and "Certificate required: yes" in query.stdout, query.stdout
    # What a recipient runs, with OpenSSL alone.
    (tmp_path / "data").write_bytes(DATA)
    (tmp_path / "t.tsr").write_bytes(token)
    check = _openssl_verify(tmp_path / "data", tmp_path / "t.tsr", tsa.write_ca(tmp_path / "ca.pem"))
    assert check.returncode == 0 and "Verification: OK" in check.stdout, check.stdout + check.stderr


def test_tampered_data_is_an_imprint_mismatch(tsa: TestTSA):
    token = request_token(tsa.url, DATA, timeout=5)
    with pytest.raises(TimestampError) as caught:
        verify_token(token, DATA.replace(b"3f", b"3e"), tsa.ca_pem)
    assert caught.value.failure == Failure.IMPRINT and "imprint mismatch" in caught.value.message


def test_a_token_checked_against_another_ca_is_untrusted(tsa: TestTSA):
    token = request_token(tsa.url, DATA, timeout=5)
    other = TestCA.create("Some other root").pem
    with pytest.raises(TimestampError) as caught:
        verify_token(token, DATA, other)
    assert caught.value.failure == Failure.UNTRUSTED and "chain not trusted" in caught.value.message
    # Checked at stamping time too, when a bundle is configured: the reply is not kept.
    with pytest.raises(TimestampError) as caught:
        request_token(tsa.url, DATA, timeout=5, ca_bundle_pem=other)
    assert caught.value.failure == Failure.UNTRUSTED


def test_a_token_signed_by_a_certificate_not_meant_for_timestamps_is_named(tsa: TestTSA):
    forged = token_signed_by_a_non_tsa_certificate(tsa, request_token(tsa.url, DATA, timeout=5))
    with pytest.raises(TimestampError) as caught:
        verify_token(forged, DATA, tsa.ca_pem)  # same CA, same TSTInfo, same data: only the signer differs
    assert caught.value.failure == Failure.NOT_TIMESTAMPING
    assert "not a timestamping certificate: CN=Agent document signing" in caught.value.message


def test_an_altered_or_truncated_token_is_named(tsa: TestTSA):
    token = request_token(tsa.url, DATA, timeout=5)
    for bad in (token[:-40], b"not a token", token[:200] + bytes([token[200] ^ 1]) + token[201:]):
        with pytest.raises(TimestampError) as caught:
            verify_token(bad, DATA, tsa.ca_pem)
        assert caught.value.failure in (Failure.MALFORMED, Failure.UNTRUSTED, Failure.IMPRINT), caught.value.message
    with pytest.raises(TimestampError) as caught:
        verify_token(token, DATA, b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
    assert caught.value.failure == Failure.BAD_BUNDLE and "CA bundle" in caught.value.message


def test_a_replayed_reply_is_refused_by_its_nonce(tsa: TestTSA):
    request_token(tsa.url, DATA, timeout=5)
    tsa.mode = "replay"  # a genuine token for the same bytes, but not an answer to this request
    with pytest.raises(TimestampError) as caught:
        request_token(tsa.url, DATA, timeout=5)
    assert caught.value.failure == Failure.NONCE and "nonce" in caught.value.message


def test_tsa_unreachable_slow_garbage_or_rejecting_is_a_clear_error_in_bounded_time(tsa: TestTSA, closed_port):
    started = time.monotonic()
    with pytest.raises(TimestampError) as caught:
        request_token(f"http://127.0.0.1:{closed_port}/tsr", DATA, timeout=2)
    assert caught.value.failure == Failure.UNREACHABLE and "cannot reach" in caught.value.message
    assert time.monotonic() - started < 2

    tsa.mode, tsa.delay_s = "slow", 5
    started = time.monotonic()
    with pytest.raises(TimestampError) as caught:
        request_token(tsa.url, DATA, timeout=1)
    assert caught.value.failure == Failure.TIMEOUT and "did not answer within 1 s" in caught.value.message
    assert time.monotonic() - started < 2.5

    tsa.mode = "garbage"
    with pytest.raises(TimestampError) as caught:
        request_token(tsa.url, DATA, timeout=5)
    assert caught.value.failure == Failure.MALFORMED and "not an RFC 3161 reply" in caught.value.message

    tsa.mode = "reject"
    with pytest.raises(TimestampError) as caught:
        request_token(tsa.url, DATA, timeout=5)
    assert caught.value.failure == Failure.REJECTED
    assert "rejected the request: status rejection" in caught.value.message and "not supported" in caught.value.message


def test_credentials_never_appear_in_messages_or_logs(tsa: TestTSA, closed_port, caplog):
    stamper = Timestamper(url=f"http://alice:s3cret@127.0.0.1:{closed_port}/tsr", timeout_s=2, auth=("alice", "s3cret"))
    with caplog.at_level(logging.WARNING, logger="temoin.timestamp"):
        stamp = stamper.stamp(DATA, what="a test")
    assert stamp.token is None and "cannot reach" in stamp.failure
    assert "s3cret" not in stamp.failure and "s3cret" not in caplog.text and "s3cret" not in repr(stamper)
    assert "a test not timestamped: cannot reach the timestamp authority at http://127.0.0.1:" in caplog.text
    settings = Settings.from_env(
        {
            "TEMOIN_HOME": "/tmp/x",
            "TEMOIN_TSA_URL": tsa.url,
            "TEMOIN_TSA_USERNAME": "alice",
            "TEMOIN_TSA_PASSWORD": "s3cret",
            "TEMOIN_TSA_TIMEOUT_S": "3.5",
            "TEMOIN_TSA_CA_BUNDLE": "/etc/tsa.pem",
        }
    )
    assert (
        settings.tsa_url,
        settings.tsa_username,
        settings.tsa_password,
        settings.tsa_timeout_s,
        settings.tsa_ca_bundle,
    ) == (tsa.url, "alice", "s3cret", 3.5, Path("/etc/tsa.pem"))
    assert "s3cret" not in repr(settings)


def test_the_timestamper_never_raises_and_backs_off_for_periodic_seals(tsa: TestTSA):
    stamper = Timestamper(url=tsa.url, timeout_s=5, ca_bundle_pem=tsa.ca_pem)
    ok = stamper.stamp(DATA, what="a test")
    assert ok.token and ok.info and ok.failure is None and ok.as_dict()["status"] == "timestamped"
    tsa.mode = "garbage"
    failed = stamper.stamp(DATA, what="a test")
    assert failed.token is None and "not an RFC 3161 reply" in failed.failure
    asked = tsa.requests
    skipped = stamper.stamp(DATA, what="a seal", backoff=True)  # seals do not retry within retry_after_s
    assert skipped.token is None and "not asked again yet" in skipped.failure and tsa.requests == asked
    tsa.mode = "ok"
    assert stamper.stamp(DATA, what="a package").token  # packages always ask
    assert stamper.stamp(DATA, what="a seal", backoff=True).token  # and a success ends the back-off


def test_bad_tsa_settings_stop_start_up_with_a_clear_message(settings, tsa, tmp_path):
    with pytest.raises(TimestampError, match="cannot read TEMOIN_TSA_CA_BUNDLE"):
        Platform.open(
            settings.model_copy(update={"tsa_url": tsa.url, "tsa_ca_bundle": tmp_path / "missing.pem"}), init=True
        )
    with pytest.raises(TimestampError, match="TEMOIN_TSA_URL must be an http"):
        Timestamper(url="tsa.example.org")


# --- packages ---------------------------------------------------------------------------------------------


@pytest.fixture
def stamped(settings: Settings, tsa: TestTSA, tmp_path: Path) -> Iterator[Platform]:
    """A platform with a TSA configured (replies checked against its CA at stamping time)."""
    p = Platform.open(
        settings.model_copy(
            update={"tsa_url": tsa.url, "tsa_timeout_s": 5, "tsa_ca_bundle": tsa.write_ca(tmp_path / "tsa-ca.pem")}
        ),
        init=True,
    )
    yield p
    p.close()


def _package(p: Platform, tmp_path: Path) -> tuple[Path, Path]:
    """One extraction through the API; returns (unzipped folder, the platform's public key file)."""
    with TestClient(create_app(p, scheduler=False), base_url="http://testserver") as client:
        commune = make_commune(p, cameras=1)
        rid, _ = upload(p, client, commune, duration_s=2, segment_s=1)
        csrf = sign_in(p, client, commune.users[Role.CHIEF])
        r = client.post(
            "/api/v1/extractions",
            headers={"X-CSRF-Token": csrf},
            json={
                "recording_ids": [rid],
                "recipient_name": "OPJ Claire Martin",
                "recipient_kind": "judicial_police",
                "procedure_type": "judicial",
                "reference": "PV 2026/004512",
            },
        )
        assert r.status_code == 201, r.text
        out = r.json()
        data = client.get(out["download_url"]).content
    zpath = tmp_path / f"{out['id']}.zip"
    zpath.write_bytes(data)
    with zipfile.ZipFile(zpath) as zf:
        zf.extractall(tmp_path / "unzipped")
    key = tmp_path / "platform.pem"
    key.write_bytes(p.keyring.public_key_pem())
    return tmp_path / "unzipped" / f"temoin-extraction-{out['id']}", key


def _verify(path: Path, *options: str) -> tuple[int, str]:
    result = runner.invoke(cli_app, ["verify", str(path), *options], env={"COLUMNS": "250"})
    return result.exit_code, result.output


def _created(p: Platform) -> dict:
    with p.session() as db:
        (entry,) = db.scalars(select(JournalEntry).where(JournalEntry.event == "extraction.created"))
        return parse_body(entry.body)["details"]


def test_a_package_carries_a_token_that_temoin_verify_and_openssl_check(stamped, tsa, tmp_path):
    folder, key = _package(stamped, tmp_path)
    ca = tsa.write_ca(tmp_path / "tsa-ca.pem")
    assert (folder / "SHA256SUMS.tsr").exists() and "SHA256SUMS.tsr" not in (folder / "SHA256SUMS").read_text()
    code, output = _verify(folder, "--key", str(key), "--tsa-ca", str(ca))
    assert code == 0, output
    assert "SHA256SUMS.tsr: SHA256SUMS timestamped" in output and "CN=Témoin test TSA" in output
    assert "package intact" in output and "WARNING" not in output and "extra file" not in output
    check = _openssl_verify(folder / "SHA256SUMS", folder / "SHA256SUMS.tsr", ca)
    assert check.returncode == 0 and "Verification: OK" in check.stdout, check.stdout + check.stderr
    details = _created(stamped)["timestamp"]
    assert details["status"] == "timestamped" and "Témoin test TSA" in details["tsa"]

    # No CA given: said, not silently passed.
    code, output = _verify(folder, "--key", str(key))
    assert code == 0 and "timestamp present but not checked: give --tsa-ca" in output, output

    # Another TSA's CA: the chain is not trusted.
    other = tmp_path / "other-ca.pem"
    other.write_bytes(TestCA.create("Some other root").pem)
    code, output = _verify(folder, "--key", str(key), "--tsa-ca", str(other))
    assert code == 1 and "timestamp: SHA256SUMS.tsr: chain not trusted" in output, output

    # The token altered.
    altered = shutil.copytree(folder, tmp_path / "altered-token")
    token = bytearray((altered / "SHA256SUMS.tsr").read_bytes())
    token[len(token) // 3] ^= 0x01
    (altered / "SHA256SUMS.tsr").write_bytes(bytes(token))
    code, output = _verify(altered, "--key", str(key), "--tsa-ca", str(ca))
    assert code == 1 and "FAIL timestamp: SHA256SUMS.tsr:" in output, output

    # An insider with the platform key: a file changed, SHA256SUMS recomputed and re-signed. Every signature
    # holds; only the timestamp, made before, shows SHA256SUMS is not the one that existed then.
    insider = shutil.copytree(folder, tmp_path / "insider")
    (insider / "README.txt").write_text("rewritten\n")
    sums = "".join(
        f"{hashlib.sha256((insider / name).read_bytes()).hexdigest()}  {name}\n"
        for name in sorted(line.split("  ", 1)[1] for line in (folder / "SHA256SUMS").read_text().splitlines())
    ).encode()
    (insider / "SHA256SUMS").write_bytes(sums)
    (insider / "SHA256SUMS.sig").write_bytes(stamped.keyring.signing_key.sign(sums))
    code, output = _verify(insider, "--key", str(key), "--tsa-ca", str(ca))
    assert code == 1 and "imprint mismatch" in output and "signature" not in output.split("FAIL", 1)[1], output
    code, output = _verify(insider, "--key", str(key))  # even without the CA, the imprint is checked
    assert code == 1 and "imprint mismatch" in output, output

    # The token removed: a recipient who asks for a timestamp is told.
    stripped = shutil.copytree(folder, tmp_path / "stripped")
    (stripped / "SHA256SUMS.tsr").unlink()
    code, output = _verify(stripped, "--key", str(key), "--tsa-ca", str(ca))
    assert code == 1 and "not timestamped: no SHA256SUMS.tsr, though --tsa-ca asks for a timestamp" in output, output


def test_a_tsa_down_at_extraction_still_delivers_the_package_marked_not_timestamped(
    settings, closed_port, tmp_path, caplog
):
    p = Platform.open(
        settings.model_copy(update={"tsa_url": f"http://127.0.0.1:{closed_port}/tsr", "tsa_timeout_s": 2}), init=True
    )
    try:
        with caplog.at_level(logging.WARNING, logger="temoin.timestamp"):
            folder, key = _package(p, tmp_path)
        assert not (folder / "SHA256SUMS.tsr").exists()
        details = _created(p)["timestamp"]
        assert details["status"] == "not_timestamped" and "cannot reach the timestamp authority" in details["reason"]
        assert "not timestamped: cannot reach the timestamp authority" in caplog.text
        code, output = _verify(folder, "--key", str(key))
        assert code == 0 and "not timestamped (no SHA256SUMS.tsr)" in output, output
    finally:
        p.close()


# --- journal seals ----------------------------------------------------------------------------------------


def _seal(p: Platform) -> int:
    with p.session() as db:
        return checkpoints.seal(db, p.journal.sink, p.keyring, p.timestamper)


def _stamps(p: Platform, ca: bytes | None):
    with p.session() as db:
        return {s.chain: s for s in verify_all_seal_timestamps(db, p.journal.sink, p.keyring.public_key, ca)}


def _checkpoint_lines(p: Platform, chain: str) -> list[bytes]:
    return p.journal.sink.checkpoints_path(chain).read_bytes().splitlines()


def _journal_cli(p: Platform, *args: str) -> tuple[int, str]:
    env = {
        "TEMOIN_HOME": str(p.settings.home),
        "TEMOIN_DATABASE_URL": p.settings.database_url,
        "COLUMNS": "250",
        "NO_COLOR": "1",
        "TEMOIN_MASTER_KEY": None,
        "TEMOIN_MASTER_KEY_FILE": None,
    }
    result = runner.invoke(cli_app, ["journal", "verify", *args], env=env)
    return result.exit_code, result.output


def test_seals_carry_tokens_that_journal_verify_checks(stamped, tsa, tmp_path):
    make_commune(stamped, cameras=0)
    assert _seal(stamped) >= 1
    chain = "port-temoin"
    with stamped.session() as db:
        row = db.scalars(select(JournalCheckpoint).where(JournalCheckpoint.chain == chain)).one()
    token = base64.b64decode(row.timestamp_token)
    assert verify_token(token, row.body.encode(), tsa.ca_pem)  # over the signed body, exactly
    signature, body, in_file = split_checkpoint_line(_checkpoint_lines(stamped, chain)[-1])
    assert (signature, body.decode(), in_file) == (row.signature, row.body, row.timestamp_token)

    ca = tsa.write_ca(tmp_path / "tsa-ca.pem")
    # The recipe of docs/timestamping.md, with a copy of the file sink and OpenSSL alone.
    shutil.copy(stamped.journal.sink.checkpoints_path(chain), tmp_path / "checkpoints.jsonl")
    recipe = subprocess.run(  # noqa: S602 - runs the shell recipe of docs/timestamping.md as written
        "line=$(tail -n1 checkpoints.jsonl); echo \"$line\" | cut -d' ' -f3 | base64 -d > seal.tsr; "
        "echo \"$line\" | cut -d' ' -f2 | tr -d '\\n' > seal.json; "
        f"openssl ts -verify -data seal.json -in seal.tsr -CAfile {ca}",
        shell=True,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "Verification: OK" in recipe.stdout, recipe.stdout + recipe.stderr
    code, output = _journal_cli(stamped, "--tsa-ca", str(ca))
    assert code == 0, output
    assert f"[{chain}] last seal (entry {row.seq}" in output and "anchored 20" in output
    assert "verified against the CA bundle" in output and "journal intact" in output
    code, output = _journal_cli(stamped)
    assert code == 0 and "timestamp present but not checked: give --tsa-ca" in output, output

    other = tmp_path / "other-ca.pem"
    other.write_bytes(TestCA.create("Some other root").pem)
    code, output = _journal_cli(stamped, "--tsa-ca", str(other))
    assert code == 1 and "chain not trusted" in output, output

    # A token swapped for another genuine one (a later seal's) in the database: caught by its imprint and by
    # the file's copy.
    with stamped.engine.begin() as conn:
        conn.execute(
            text("UPDATE journal_checkpoints SET timestamp_token = :t WHERE id = :i"),
            {"t": base64.b64encode(request_token(tsa.url, b"another seal", timeout=5)).decode(), "i": row.id},
        )
    found = _stamps(stamped, tsa.ca_pem)[chain]
    messages = " | ".join(p.message for p in found.problems)
    assert "different timestamp tokens in the two sinks" in messages and "imprint mismatch" in messages

    # The token removed from the database only: the file still has it, and says so.
    with stamped.engine.begin() as conn:
        conn.execute(text("UPDATE journal_checkpoints SET timestamp_token = NULL WHERE id = :i"), {"i": row.id})
    found = _stamps(stamped, tsa.ca_pem)[chain]
    assert [p.message for p in found.problems] == [
        f"the seal of entry {row.seq} ({orjson.loads(row.body)['at']}) has a timestamp token in one sink only: "
        "it was removed from the other"
    ]


def test_journal_verify_reads_each_chains_checkpoints_once(stamped, tsa, tmp_path, monkeypatch):
    """The integrity check and the timestamp check share one reading of each sink (a journal of years is long)."""
    from collections import Counter

    from temoin.journal import checkpoint_check
    from temoin.journal.sinks import FileSink

    make_commune(stamped, cameras=0)
    assert _seal(stamped) >= 1
    reads: Counter[tuple[str, str]] = Counter()
    from_file, from_db = FileSink.read_checkpoint_lines, checkpoint_check.db_checkpoints

    def file_read(self: FileSink, chain: str) -> list:
        reads["file", chain] += 1
        return from_file(self, chain)

    def db_read(db, chain: str) -> list:
        reads["database", chain] += 1
        return from_db(db, chain)

    monkeypatch.setattr(FileSink, "read_checkpoint_lines", file_read)
    monkeypatch.setattr(checkpoint_check, "db_checkpoints", db_read)
    code, output = _journal_cli(stamped, "--tsa-ca", str(tsa.write_ca(tmp_path / "tsa-ca.pem")))
    assert code == 0 and "verified against the CA bundle" in output, output
    assert ("file", "port-temoin") in reads and set(reads.values()) == {1}, reads


def test_a_backdated_seal_is_betrayed_by_its_timestamp(stamped, monkeypatch):
    """An insider with the platform key rewrites the tail and seals it "two hours ago": the signature holds,
    but the TSA's time says when the seal was really made."""
    make_commune(stamped, cameras=0)
    real = checkpoints.utcnow
    monkeypatch.setattr(checkpoints, "utcnow", lambda: real() - timedelta(hours=2))
    _seal(stamped)
    found = _stamps(stamped, None)["port-temoin"]
    assert found.stamped == 1 and len(found.problems) == 1
    assert "was made or re-made at another time than it says" in found.problems[0].message


def test_a_tsa_outage_does_not_stop_sealing(settings, closed_port, caplog):
    p = Platform.open(
        settings.model_copy(update={"tsa_url": f"http://127.0.0.1:{closed_port}/tsr", "tsa_timeout_s": 2}), init=True
    )
    try:
        make_commune(p, cameras=0)
        with caplog.at_level(logging.WARNING, logger="temoin.timestamp"):
            assert _seal(p) >= 1
        assert "journal seal port-temoin#" in caplog.text and "cannot reach" in caplog.text
        with p.session() as db:
            assert all(row.timestamp_token is None for row in db.scalars(select(JournalCheckpoint)))
            assert verify_all(db, p.journal.sink, p.keyring.public_key).ok
        assert all(split_checkpoint_line(line)[2] is None for line in _checkpoint_lines(p, "port-temoin"))
        assert _stamps(p, None)["port-temoin"].summary().endswith(": not timestamped")
    finally:
        p.close()


# --- without a TSA ----------------------------------------------------------------------------------------


def test_without_a_tsa_everything_works_and_says_not_timestamped(platform, tmp_path):
    assert platform.timestamper is None
    folder, key = _package(platform, tmp_path)
    assert not (folder / "SHA256SUMS.tsr").exists() and "timestamp" not in _created(platform)
    code, output = _verify(folder, "--key", str(key))
    assert code == 0 and "not timestamped (no SHA256SUMS.tsr)" in output and "WARNING" not in output, output
    assert _seal(platform) >= 1
    assert all(b" " not in line.partition(b" ")[2] for line in _checkpoint_lines(platform, "port-temoin"))
    code, output = _journal_cli(platform)
    assert code == 0 and "journal intact" in output, output
    assert "[port-temoin] last seal (entry" in output and ": not timestamped" in output
