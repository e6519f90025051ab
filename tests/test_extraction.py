"""Extractions: a package for a named recipient that the standard tools (sha256sum, openssl, ffprobe) and
`temoin verify` accept; tampering caught with the right message; trimming by stream copy; tenants apart;
the chain of custody from the journal; the package's life.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
import zipfile
from datetime import timedelta
from pathlib import Path

import av
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from temoin.cli import app as cli_app
from temoin.db import utcnow
from temoin.extraction import package as pkg
from temoin.extraction.models import Extraction
from temoin.extraction.writing import PACKAGE_FILE
from temoin.journal.entry import Actor
from temoin.journal.models import JournalEntry
from temoin.journal.service import parse_body
from temoin.law.access import Role
from temoin.vault import artefact_blobs, catalogue
from temoin.vault.models import Recording
from temoin.vault.retention import delete_recording
from tests.artefact_helpers import artefact_keys
from tests.extraction_helpers import _download, _extract, _pinned, _verify, runner
from tests.helpers import PASSWORD, make_commune, pdf_text, sign_in, totp_code, upload


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is required for these tests (apt-get install coreutils openssl ffmpeg)")
    return path


def _events(platform, event: str) -> list[dict]:
    with platform.session() as db:
        return [
            parse_body(e.body)
            for e in db.scalars(select(JournalEntry).where(JournalEntry.event == event).order_by(JournalEntry.id))
        ]


def test_a_package_verifies_with_sha256sum_openssl_ffprobe_and_temoin_verify(platform, client, tmp_path):
    commune = make_commune(platform, cameras=1)
    rid1, _ = upload(platform, client, commune, duration_s=4, segment_s=2)
    rid2, _ = upload(platform, client, commune, duration_s=2, segment_s=2, seed=3)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    r = client.post(
        f"/api/v1/recordings/{rid1}/consultations",
        headers={"X-CSRF-Token": csrf},
        json={"motive": {"code": "judicial_procedure", "text": "réquisition du parquet n° 4512"}},
    )
    assert r.status_code == 201
    assert (
        client.post(
            f"/api/v1/recordings/{rid1}/holds",
            headers={"X-CSRF-Token": csrf},
            json={"procedure": "judicial", "reference": "PV 2026/004512"},
        ).status_code
        == 201
    )
    out = _extract(client, csrf, [rid1, rid2])
    assert out["media_kind"] == "original" and out["download_url"].endswith(f"/{out['id']}/package")
    zpath, folder = _download(client, out, tmp_path)

    # The standard tools, as the recipient would run them.
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert {
        "README.txt",
        "manifest.json",
        "chain-of-custody.pdf",
        "platform-public-key.pem",
        "SHA256SUMS",
        "SHA256SUMS.sig",
    } <= set(files)
    check = subprocess.run([_tool("sha256sum"), "-c", "SHA256SUMS"], cwd=folder, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count(": OK") == len(files) - 2  # every file but the list and its signature
    sig = subprocess.run(
        [
            _tool("openssl"),
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "platform-public-key.pem",
            "-rawin",
            "-in",
            "SHA256SUMS",
            "-sigfile",
            "SHA256SUMS.sig",
        ],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    assert sig.returncode == 0 and "Signature Verified Successfully" in sig.stdout, sig.stdout + sig.stderr
    assert (folder / "platform-public-key.pem").read_bytes() == platform.keyring.public_key_pem()

    manifest = json.loads((folder / "manifest.json").read_text("utf-8"))
    assert manifest["recipient"] == {
        "name": "OPJ Claire Martin, commissariat de Port-Témoin",
        "kind": "judicial_police",
    }
    assert manifest["procedure"] == {"type": "judicial", "reference": "PV 2026/004512"}
    assert manifest["extracted_by"]["id"] == commune.users[Role.CHIEF]
    with platform.session() as db:
        for rec in manifest["recordings"]:
            row = db.get(Recording, rec["id"])
            assert rec["device_manifest"]["envelope"] == row.manifest and rec["chain_head"] == row.chain_head
            assert rec["gps_track"] and rec["receipt"]["receipt"]["recording_id"] == row.id
            assert [m["sha256"] for m in rec["media"]] == [s.sha256 for s in row.segments]  # the camera's bytes
            for media in rec["media"]:
                probe = subprocess.run(
                    [_tool("ffprobe"), "-v", "error", "-show_streams", "-of", "json", str(folder / media["file"])],
                    capture_output=True,
                    text=True,
                )
                assert probe.returncode == 0, probe.stderr
                assert {s["codec_name"] for s in json.loads(probe.stdout)["streams"]} >= {"h264", "aac"}
    assert manifest["recordings"][0]["hold"] == {"procedure": "judicial", "reference": "PV 2026/004512"}

    key = tmp_path / "platform.pem"
    key.write_bytes(platform.keyring.public_key_pem())
    for target in (folder, zpath):
        code, output = _verify(target, key)
        assert code == 0, output
        assert "package intact" in output and "WARNING" not in output
    code, output = _verify(folder)  # consistent, but nothing pinned: not verified, and its own exit status
    assert code == 3 and "not pinned" in output and platform.keyring.fingerprint in output, output
    assert "package intact" not in output

    # The chain of custody, from the journal, times in Europe/Paris.
    text = pdf_text((folder / "chain-of-custody.pdf").read_bytes())
    assert "Chaîne de possession" in text and out["id"] in text
    assert "recording.ingested" in text and "recording.consulted" in text and "hold.placed" in text
    assert "réquisition du parquet n° 4512" in text and "extraction.created" in text
    assert re.search(r"\d\d/\d\d/\d{4} \d\d:\d\d:\d\d (CET|CEST)", text)
    events = [e["event"] for e in manifest["custody"]["entries"]]
    assert events[:1] == ["recording.ingested"] and {"recording.consulted", "hold.placed"} <= set(events)

    created = _events(platform, "extraction.created")
    assert len(created) == 1
    assert created[0]["action"] == "communication" and created[0]["recipients"] == [manifest["recipient"]["name"]]
    assert created[0]["recordings"] == [rid1, rid2]
    details = created[0]["details"]
    assert {k: details[k] for k in ("extraction_id", "procedure_type", "recipient_kind", "reference", "trimmed")} == {
        "extraction_id": out["id"],
        "procedure_type": "judicial",
        "recipient_kind": "judicial_police",
        "reference": "PV 2026/004512",
        "trimmed": False,
    }
    assert details["package_sha256"] == out["sha256"]
    downloaded = _events(platform, "extraction.downloaded")
    assert len(downloaded) == 1 and downloaded[0]["recipients"] == [manifest["recipient"]["name"]]
    listed = client.get("/api/v1/extractions").json()
    assert [x["id"] for x in listed] == [out["id"]] and listed[0]["downloads"] == 1

    # A second extraction's custody lists the first one and its download.
    second = _extract(client, csrf, [rid1], recipient_kind="state_inspection", procedure_type="administrative")
    with zipfile.ZipFile(io.BytesIO(client.get(second["download_url"]).content)) as zf:
        inner = json.loads(zf.read(f"temoin-extraction-{second['id']}/manifest.json"))
    assert {"extraction.created", "extraction.downloaded"} <= {e["event"] for e in inner["custody"]["entries"]}


def _copy(folder: Path, tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(folder, target)
    return target


def test_a_tampered_package_fails_temoin_verify_with_the_right_message(platform, client, tmp_path):
    commune = make_commune(platform, cameras=1)
    rid, _ = upload(platform, client, commune, duration_s=2, segment_s=1)
    csrf = sign_in(platform, client, commune.users[Role.MAYOR])
    out = _extract(client, csrf, [rid])
    zpath, folder = _download(client, out, tmp_path)
    key = tmp_path / "platform.pem"
    key.write_bytes(platform.keyring.public_key_pem())
    media = sorted((folder / "media" / rid).iterdir())[0]
    media_name = media.relative_to(folder).as_posix()

    flipped = _copy(folder, tmp_path, "flipped")
    data = bytearray((flipped / media_name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (flipped / media_name).write_bytes(bytes(data))
    code, output = _verify(flipped, key)
    assert code == 1 and f"altered: {media_name}" in output
    assert "not the camera's original" in output  # and the device-signed hash says the same

    removed = _copy(folder, tmp_path, "removed")
    (removed / "chain-of-custody.pdf").unlink()
    code, output = _verify(removed, key)
    assert code == 1 and "missing: chain-of-custody.pdf" in output

    extra = _copy(folder, tmp_path, "extra")
    (extra / "media" / rid / "99999.mp4").write_bytes(b"not evidence")
    code, output = _verify(extra, key)
    assert code == 1 and f"extra file not covered by SHA256SUMS: media/{rid}/99999.mp4" in output

    # The manifest edited, and SHA256SUMS recomputed by the attacker: only the signature can tell.
    edited = _copy(folder, tmp_path, "edited")
    manifest = json.loads((edited / "manifest.json").read_text("utf-8"))
    manifest["procedure"]["reference"] = "PV 2026/999999"
    (edited / "manifest.json").write_text(json.dumps(manifest), "utf-8")
    sums = subprocess.run(
        [_tool("sha256sum")] + [line.split("  ", 1)[1] for line in (edited / "SHA256SUMS").read_text().splitlines()],
        cwd=edited,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (edited / "SHA256SUMS").write_text(sums)
    assert subprocess.run([_tool("sha256sum"), "-c", "SHA256SUMS"], cwd=edited, capture_output=True).returncode == 0
    code, output = _verify(edited, key)
    assert code == 1 and "signature: SHA256SUMS.sig is not a valid signature of SHA256SUMS" in output
    assert "altered" not in output

    # The same attacker re-signs with a key of their own and ships it: only a pinned key can tell.
    forged = _copy(edited, tmp_path, "forged")
    attacker = Ed25519PrivateKey.generate()
    (forged / "platform-public-key.pem").write_bytes(
        attacker.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    sums = subprocess.run(
        [_tool("sha256sum")] + [line.split("  ", 1)[1] for line in (forged / "SHA256SUMS").read_text().splitlines()],
        cwd=forged,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (forged / "SHA256SUMS").write_text(sums)
    (forged / "SHA256SUMS.sig").write_bytes(attacker.sign((forged / "SHA256SUMS").read_bytes()))
    attacker_print = hashlib.sha256(
        attacker.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    ).hexdigest()
    code, output = _verify(forged)
    assert code == 3 and "not pinned" in output and attacker_print in output  # consistent with itself...
    code, output = _verify(forged, key)
    assert code == 3 and "none of the pinned keys" in output and attacker_print in output
    assert "package intact" not in output

    garbage = _copy(folder, tmp_path, "garbage-signature")
    (garbage / "SHA256SUMS.sig").write_bytes(bytes(64))
    code, output = _verify(garbage, key)
    assert code == 1 and "signature: SHA256SUMS.sig is not a valid signature" in output

    # A byte flipped inside the zip itself.
    raw = bytearray(zpath.read_bytes())
    start = raw.find(b"ftyp")  # inside the first media file
    raw[start + 200] ^= 0x01
    bad_zip = tmp_path / "flipped.zip"
    bad_zip.write_bytes(bytes(raw))
    code, output = _verify(bad_zip, key)
    assert code == 1 and f"damaged zip member: {media_name}: its bytes do not match the CRC-32" in output
    for line in output.splitlines():  # one line per problem
        assert not line.startswith(" ")


def _packets(data: bytes) -> list[bytes]:
    with av.open(io.BytesIO(data)) as container:
        return [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]


def test_trimmed_extraction_is_a_stream_copy_of_the_range(platform, client, tmp_path):
    commune = make_commune(platform, cameras=1)
    rid, _ = upload(platform, client, commune, duration_s=6, segment_s=3)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    out = _extract(client, csrf, [rid], trim={"recording_id": rid, "start_s": 2.5, "end_s": 4.5})
    assert out["media_kind"] == "trimmed"
    _, folder = _download(client, out, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text("utf-8"))
    rec = manifest["recordings"][0]
    assert [m["file"] for m in rec["media"]] == [f"media/{rid}/trimmed.mp4"]  # no original bytes
    trim = rec["trim"]
    assert trim["requested"] == {"start_s": 2.5, "end_s": 4.5}
    assert trim["kept"]["start_s"] == 2.0  # the keyframe at or before 2.5 (one every 2 s)
    assert 4.5 <= trim["kept"]["end_s"] < 4.6
    with platform.session() as db:
        row = db.get(Recording, rid)
        assert trim["source_segments"] == [{"index": s.index, "sha256": s.sha256} for s in row.segments]
        originals = [b"".join(catalogue.read_segment(platform, db, row, s.index)) for s in row.segments]
    assert "NOT in this package" in (folder / "README.txt").read_text("utf-8")

    trimmed = folder / rec["media"][0]["file"]
    fields = "format=duration:stream=codec_name,profile,width,height,pix_fmt,sample_rate,channels,extradata_hash"
    probe = json.loads(
        subprocess.run(
            [_tool("ffprobe"), "-v", "error", "-show_entries", fields, "-of", "json", str(trimmed)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    (tmp_path / "seg0.mp4").write_bytes(originals[0])
    source = json.loads(
        subprocess.run(
            [_tool("ffprobe"), "-v", "error", "-show_entries", fields, "-of", "json", str(tmp_path / "seg0.mp4")],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert 2.4 < float(probe["format"]["duration"]) < 2.7 < 6  # shorter than the recording
    assert probe["streams"] == source["streams"]  # same codecs, parameters, even the codec's extradata
    # Packets copied, not re-encoded: the video packets are the originals' bytes from 2 s to 4.5 s.
    copied = _packets(trimmed.read_bytes())
    first, second = _packets(originals[0]), _packets(originals[1])
    fps = 15
    assert copied == first[2 * fps :] + second[: int(1.5 * fps) + 1]

    code, output = _verify(folder, *_pinned(platform))
    assert code == 0, output
    created = _events(platform, "extraction.created")[-1]["details"]
    assert created["trimmed"] is True and created["trim"] == {"recording_id": rid, "start_s": 2.5, "end_s": 4.5}
    r = client.post(
        "/api/v1/extractions",
        headers={"X-CSRF-Token": csrf},
        json={
            "recording_ids": [rid],
            "recipient_name": "OPJ Martin",
            "recipient_kind": "judicial_police",
            "procedure_type": "judicial",
            "reference": "PV 2026/1",
            "trim": {"recording_id": rid, "start_s": 60, "end_s": 90},
        },
    )
    assert r.status_code == 422 and "lasts" in r.json()["detail"]


def test_refusals_tenants_apart_and_the_package_life(platform, client, tmp_path):
    a = make_commune(platform, "aval", cameras=1)
    b = make_commune(platform, "brume", cameras=1)
    rid_a, _ = upload(platform, client, a, duration_s=1, segment_s=1)
    gone, _ = upload(platform, client, a, duration_s=1, segment_s=1)
    rid_b, _ = upload(platform, client, b, duration_s=1, segment_s=1)
    with platform.session() as db:
        delete_recording(platform, db, db.get(Recording, gone), reason="erasure_request", actor=Actor.system("test"))
        db.commit()

    csrf_b = sign_in(platform, client, b.users[Role.CHIEF])
    out_b = _extract(client, csrf_b, [rid_b])

    csrf = sign_in(platform, client, a.users[Role.CHIEF])
    body = {
        "recipient_name": "OPJ Martin",
        "recipient_kind": "judicial_police",
        "procedure_type": "judicial",
        "reference": "PV 2026/1",
    }
    r = client.post(
        "/api/v1/extractions", headers={"X-CSRF-Token": csrf}, json={"recording_ids": [rid_a, rid_b], **body}
    )
    assert r.status_code == 404 and rid_b in r.json()["detail"]
    assert client.get(out_b["download_url"]).status_code == 404
    attempts = [e for e in _events(platform, "access.cross_tenant") if e["chain"] == "aval"]
    assert [e["details"]["asked_for"] for e in attempts] == [rid_b, out_b["id"]]
    assert all(e["action"] == "security" for e in attempts)
    assert client.get("/api/v1/extractions").json() == []

    r = client.post("/api/v1/extractions", headers={"X-CSRF-Token": csrf}, json={"recording_ids": [gone], **body})
    assert r.status_code == 409 and "deleted" in r.json()["detail"]

    r = client.post(
        "/api/v1/extractions",
        headers={"X-CSRF-Token": csrf},
        json={"recording_ids": [rid_a], **body, "recipient_kind": "trainer", "procedure_type": "training"},
    )
    if pkg._redactor() is None:
        assert r.status_code == 409 and "R241-13" in r.json()["detail"]
    else:  # the redaction engine is there: a training copy, anonymised, that still verifies
        assert r.status_code == 201 and r.json()["media_kind"] == "redacted", r.text
        _, folder = _download(client, r.json(), tmp_path)
        rec = json.loads((folder / "manifest.json").read_text("utf-8"))["recordings"][0]
        assert [m["kind"] for m in rec["media"]] == ["redacted"] and rec["redaction"]["reports"]
        assert rec["media"][0]["derived_from"] == [{"index": 0, "sha256": rec["segments"][0]["sha256"]}]
        assert _verify(folder, *_pinned(platform))[0] == 0
        assert "NOT in this package" in (folder / "README.txt").read_text("utf-8")

    # Roles without the right: the agent, the DPO.
    for role in (Role.AGENT, Role.DPO, Role.DESIGNATED_AGENT):
        csrf_x = sign_in(platform, client, a.users[role])
        r = client.post(
            "/api/v1/extractions", headers={"X-CSRF-Token": csrf_x}, json={"recording_ids": [rid_a], **body}
        )
        assert r.status_code == 403

    # The zip lives PACKAGE_DAYS days, sealed in the blob store (nothing of it on the disk), then goes; the row
    # and the journal stay.
    csrf = sign_in(platform, client, a.users[Role.CHIEF])
    out = _extract(client, csrf, [rid_a])
    name = f"extractions/aval/{out['id']}.zip"
    assert artefact_keys(platform.store, name) == [artefact_blobs.key(name, PACKAGE_FILE)]
    assert not (platform.settings.home / "extractions" / "aval").exists() or not any(
        (platform.settings.home / "extractions" / "aval").iterdir()
    )
    with platform.session() as db:
        row = db.get(Extraction, out["id"])
        assert row.expires_at - row.created_at == timedelta(days=pkg.PACKAGE_DAYS)
        assert pkg.purge_expired(platform, db, now=utcnow() + timedelta(days=pkg.PACKAGE_DAYS, seconds=1)) >= 1
    assert artefact_keys(platform.store, name) == []
    r = client.get(out["download_url"])
    assert r.status_code == 410 and "make a new extraction" in r.json()["detail"]
    listed = {x["id"]: x for x in client.get("/api/v1/extractions").json()}
    assert listed[out["id"]]["available"] is False and listed[out["id"]]["sha256"] == out["sha256"]
    deleted = _events(platform, "extraction.package_deleted")
    assert out["id"] in {e["details"]["extraction_id"] for e in deleted}
    assert orjson.loads(orjson.dumps(deleted[0]))["action"] == "erasure"


def test_temoin_extract_on_the_command_line(platform, client, settings, tmp_path):
    commune = make_commune(platform, cameras=1)
    rid, _ = upload(platform, client, commune, duration_s=2, segment_s=1)
    env = {"TEMOIN_HOME": str(settings.home), "TEMOIN_DATABASE_URL": settings.database_url, "COLUMNS": "200"}
    out = tmp_path / "out"
    out.mkdir()
    result = runner.invoke(
        cli_app,
        [
            "extract",
            commune.slug,
            rid,
            "--by",
            commune.users[Role.CHIEF],
            "--recipient",
            "Inspection générale de l'administration",
            "--kind",
            "state_inspection",
            "--procedure",
            "administrative",
            "--reference",
            "IGA 2026-17",
            "--trim",
            "0:1",
            "--out",
            str(out),
        ],
        env=env,
        input=f"{PASSWORD}\n{totp_code(platform, commune.users[Role.CHIEF])}\n",
    )
    assert result.exit_code == 0, result.output
    zips = list(out.glob("*.zip"))
    assert len(zips) == 1 and "SHA-256" in result.output
    code, output = _verify(zips[0], *_pinned(platform))
    assert code == 0, output
    created = _events(platform, "extraction.created")[-1]
    assert created["actor"]["id"] == commune.users[Role.CHIEF] and created["details"]["trimmed"] is True
    result = runner.invoke(
        cli_app,
        [
            "extract",
            commune.slug,
            rid,
            "--by",
            commune.users[Role.AGENT],
            "--recipient",
            "x y",
            "--kind",
            "judicial_police",
            "--procedure",
            "judicial",
            "--reference",
            "PV 1",
        ],
        env=env,
        input=f"{PASSWORD}\n{totp_code(platform, commune.users[Role.AGENT])}\n",
    )
    assert result.exit_code == 1 and "does not allow extractions" in result.output
    result = runner.invoke(cli_app, ["verify", str(tmp_path / "nothing-here")])
    assert result.exit_code == 1 and "no such folder or zip" in result.output
