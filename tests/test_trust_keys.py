"""Evidence you can prove against an insider: pinned signers, certified camera keys with a history, platform key
rotation, the published keys, fingerprints on paper, a damaged zip named, and private key files kept private.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import zipfile
from datetime import timedelta
from pathlib import Path

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from temoin.camera.offload import DeviceAuth
from temoin.cli import app as cli_app
from temoin.db import utcnow
from temoin.demo.samples import sample_recording
from temoin.evidence.canonical import b64e
from temoin.evidence.certificates import SignedCertificate
from temoin.evidence.keys import KeySet
from temoin.evidence.manifest import SignedManifest, SignedReceipt
from temoin.evidence.signing import public_key_bytes
from temoin.identity import devices
from temoin.identity.models import Device, DeviceKey
from temoin.journal.checkpoints import seal
from temoin.journal.entry import Actor
from temoin.journal.verify import verify_all
from temoin.keyring import KeyError_, Keyring
from temoin.law.access import Role
from temoin.platform import Platform
from temoin.reports import annual
from temoin.vault import integrity
from temoin.vault.models import Quarantine, Recording
from temoin.web.app import create_app
from tests.extraction_helpers import _download, _extract, verify_with_env as _verify
from tests.helpers import agent_number, enrol_camera, make_commune, pdf_text, sign_in, upload

runner = CliRunner()


def _pem(raw_or_key) -> bytes:
    key = raw_or_key.public_key() if isinstance(raw_or_key, Ed25519PrivateKey) else raw_or_key
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _resum(folder: Path) -> bytes:
    names = [line.split("  ", 1)[1] for line in (folder / "SHA256SUMS").read_text().splitlines()]
    sums = "".join(f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}\n" for n in names).encode()
    (folder / "SHA256SUMS").write_bytes(sums)
    return sums


def _package(platform, client, tmp_path: Path, commune=None, rids=None):
    commune = commune or make_commune(platform, cameras=1)
    rids = rids or [upload(platform, client, commune, duration_s=2, segment_s=1)[0]]
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    out = _extract(client, csrf, rids)
    (tmp_path / out["id"]).mkdir(parents=True)
    return _download(client, out, tmp_path / out["id"])


def test_a_package_re_signed_with_a_fresh_key_shipped_inside_is_not_intact(platform, client, tmp_path):
    zpath, folder = _package(platform, client, tmp_path)
    real = tmp_path / "real.pem"
    real.write_bytes(platform.keyring.public_key_pem())

    # The insider's forgery: another recipient, receipts and SHA256SUMS re-signed with a fresh key shipped inside.
    forged = tmp_path / "forged"
    shutil.copytree(folder, forged)
    attacker = Ed25519PrivateKey.generate()
    raw = public_key_bytes(attacker)
    manifest = json.loads((forged / "manifest.json").read_text("utf-8"))
    manifest["recipient"]["name"] = "Someone else entirely"
    for rec in manifest["recordings"]:
        receipt = SignedReceipt.model_validate(rec["receipt"])
        receipt.receipt.platform_key_id = hashlib.sha256(raw).hexdigest()[:16]
        rec["receipt"] = SignedReceipt(
            receipt=receipt.receipt, signature=b64e(attacker.sign(receipt.receipt.signing_bytes()))
        ).model_dump(mode="json")
        cert = SignedCertificate.model_validate(rec["device"]["certificate"]).certificate
        cert.platform_key_id = hashlib.sha256(raw).hexdigest()[:16]
        rec["device"]["certificate"] = SignedCertificate(
            certificate=cert, signature=b64e(attacker.sign(cert.signing_bytes()))
        ).model_dump(mode="json", by_alias=True)
    (forged / "manifest.json").write_text(json.dumps(manifest), "utf-8")
    (forged / "platform-public-key.pem").write_bytes(_pem(attacker))
    (forged / "platform-keys.json").write_bytes(orjson.dumps(KeySet.of_raw(raw, "x").as_json()))
    (forged / "SHA256SUMS.sig").write_bytes(attacker.sign(_resum(forged)))
    attacker_print = hashlib.sha256(raw).hexdigest()

    code, output = _verify(forged)
    assert code == 3, output  # its own status: not "damaged", not "intact"
    assert "package intact" not in output and "not pinned" in output and attacker_print in output
    code, output = _verify(forged, "--key", str(real))
    assert code == 3 and "none of the pinned keys" in output and attacker_print in output
    assert platform.keyring.fingerprint in output  # what was pinned, in full
    code, output = _verify(forged, "--fingerprint", platform.keyring.fingerprint)
    assert code == 3 and attacker_print in output

    # The genuine package, pinned three ways: intact.
    code, output = _verify(zpath, "--key", str(real))
    assert code == 0 and "package intact" in output and platform.keyring.fingerprint in output, output
    spaced = " ".join(platform.keyring.fingerprint[i : i + 4] for i in range(0, 64, 4)).upper()
    assert _verify(folder, "--fingerprint", spaced)[0] == 0
    code, output = _verify(folder, "--fingerprint", platform.keyring.fingerprint[:16])
    assert code == 2 and "64 hex digits" in output
    store = tmp_path / "config" / "temoin" / "trusted-keys"
    store.mkdir(parents=True)
    (store / "port-temoin.json").write_bytes(client.get("/.well-known/temoin/keys.json").content)
    assert _verify(folder, "--trust-store", str(store))[0] == 0
    assert _verify(folder, env={"TEMOIN_TRUST_STORE": str(store)})[0] == 0
    assert _verify(zpath, env={"XDG_CONFIG_HOME": str(tmp_path / "config")})[0] == 0  # the default place
    code, output = _verify(forged, "--trust-store", str(store))
    assert code == 3 and attacker_print in output
    (store / "broken.pem").write_text("not a key")
    code, output = _verify(folder, "--trust-store", str(store))
    assert code == 2 and "broken.pem" in output


def test_a_camera_key_swapped_in_the_database_is_refused(platform, client, tmp_path):
    """An insider with database access replaces a camera's key and re-signs a recording's manifest with his own:
    the platform's certificate of the camera key says otherwise, in review and in the package."""
    commune = make_commune(platform, cameras=1)
    rid, _ = upload(platform, client, commune, duration_s=2, segment_s=1)
    insider = Ed25519PrivateKey.generate()
    with platform.session() as db:
        rec = db.get(Recording, rid)
        envelope = SignedManifest.model_validate_json(rec.manifest)
        rec.manifest = SignedManifest.sign(envelope.manifest, insider).model_dump_json()  # same content, same receipt
        key = db.scalar(select(DeviceKey).where(DeviceKey.device_id == rec.device_id))
        key.public_key = public_key_bytes(insider)
        db.get(Device, rec.device_id).public_key = public_key_bytes(insider)
        db.commit()
        assert integrity.integrity_of(platform, db, db.get(Recording, rid)).signature_ok is False
    real = tmp_path / "real.pem"
    real.write_bytes(platform.keyring.public_key_pem())
    _, folder = _package(platform, client, tmp_path, commune, [rid])
    code, output = _verify(folder, "--key", str(real))
    assert code == 1 and "is not the one its certificate names" in output, output

    with platform.session() as db:  # and without any certificate
        db.scalar(select(DeviceKey).where(DeviceKey.device_id == commune.cameras[0][0])).certificate = None
        db.commit()
    _, folder = _package(platform, client, tmp_path / "again", commune, [rid])
    code, output = _verify(folder, "--key", str(real))
    assert code == 1 and "comes with no certificate from the platform" in output, output


def test_re_enrolment_keeps_old_recordings_verifiable_and_the_old_key_dies_at_revocation(platform, client, tmp_path):
    commune = make_commune(platform, cameras=1, authorised=2)
    device_id, old_key = commune.cameras[0]
    before, _ = upload(platform, client, commune, started_at=utcnow() - timedelta(hours=1), duration_s=2, segment_s=1)
    with platform.session() as db:
        devices.revoke(platform, db, db.get(Device, device_id), Actor.system("test"))
    again, new_key = enrol_camera(platform, commune.slug, f"{commune.slug}-cam-0")  # the same serial
    assert again == device_id and public_key_bytes(new_key) != public_key_bytes(old_key)
    commune.cameras[0] = (device_id, new_key)
    after, _ = upload(platform, client, commune, duration_s=2, segment_s=1, seed=5)

    with platform.session() as db:
        history = devices.keys_of(db, device_id)
        assert [k.public_key for k in history] == [public_key_bytes(old_key), public_key_bytes(new_key)]
        assert history[0].valid_until is not None and history[1].valid_until is None
        revoked_at = history[0].valid_until
        for rid in (before, after):  # review: each checked against the key valid when it was signed
            assert integrity.integrity_of(platform, db, db.get(Recording, rid)).signature_ok, rid
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    assert client.get(f"/api/v1/recordings/{before}/integrity").json()["signature_ok"] is True
    out = _extract(client, csrf, [before, after])
    _, folder = _download(client, out, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text("utf-8"))
    certs = [r["device"]["certificate"]["certificate"] for r in manifest["recordings"]]
    assert certs[0]["revoked"] is True and certs[0]["valid_until"] and certs[1]["valid_until"] is None
    code, output = _verify(folder, "--fingerprint", platform.keyring.fingerprint)
    assert code == 0, output

    # The old key (stolen with the camera?) signs a recording after its revocation: refused at ingest.
    signed, _segments = sample_recording(
        old_key,
        camera_id=device_id,
        agent_id=agent_number(commune),
        started_at=revoked_at + timedelta(seconds=1),
        duration_s=2,
        segment_s=1,
        seed=9,
    )
    client.auth = None
    r = client.post(
        "/api/v1/ingest/recordings",
        content=signed.model_dump_json(),
        auth=DeviceAuth(device_id, new_key),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 403, r.text
    with platform.session() as db:
        assert db.scalar(select(Recording).where(Recording.id == signed.manifest.recording_id)) is None
        assert db.scalars(select(Quarantine).where(Quarantine.device_id == device_id)).first() is not None


def test_rotation_keeps_old_packages_receipts_and_journal_verifiable(platform, client, tmp_path):
    commune = make_commune(platform, cameras=1)
    old_rid, old_receipt = upload(platform, client, commune, duration_s=2, segment_s=1)
    old_zip, _ = _package(platform, client, tmp_path / "p1", commune, [old_rid])
    with platform.session() as db:
        seal(db, platform.journal.sink, platform.keyring)
    # The keys as they are now (platform.keyring itself follows the rotation below, as a running server's does).
    old = Keyring(platform.keyring.master_key, platform.keyring.signing_key, platform.keyring.history)
    old_pem = tmp_path / "old.pem"
    old_pem.write_bytes(old.public_key_pem())

    home = {"TEMOIN_HOME": str(platform.settings.home), "TEMOIN_DATABASE_URL": platform.settings.database_url}
    result = runner.invoke(cli_app, ["keys", "rotate", "--yes"], env=home)
    assert result.exit_code == 0, result.output
    pems = sorted(p.name for p in platform.settings.keys_dir.iterdir() if p.suffix == ".pem")
    assert pems == ["platform-signing.pem"]  # the retired private key is gone
    p2 = Platform.open(platform.settings)
    try:
        assert p2.keyring.public_key != old.public_key and len(p2.keyring.trusted) == 2
        with TestClient(create_app(p2, scheduler=False), base_url="http://testserver") as c2:
            new_rid, new_receipt = upload(p2, c2, commune, duration_s=2, segment_s=1, seed=4)
            new_id, old_id = new_receipt.receipt.platform_key_id, old_receipt.receipt.platform_key_id
            assert new_id == p2.keyring.public_key_id != old_id
            published = c2.get("/.well-known/temoin/keys.json")
            pem_bundle = c2.get("/.well-known/temoin/keys.pem")
            new_zip, _ = _package(p2, c2, tmp_path / "p2", commune, [old_rid, new_rid])
        listed = runner.invoke(cli_app, ["keys", "list"], env={**home, "COLUMNS": "80"})
        assert old.fingerprint in listed.output and p2.keyring.fingerprint in listed.output
        assert "retired" in listed.output and "current" in listed.output

        # The well-known keys: current and retired, with validity; public.
        assert published.status_code == 200 and pem_bundle.status_code == 200
        keys = published.json()["keys"]
        assert [(k["sha256_fingerprint"], k["status"]) for k in keys] == [
            (old.fingerprint, "retired"),
            (p2.keyring.fingerprint, "current"),
        ]
        assert keys[0]["valid_until"] == keys[1]["valid_from"] and keys[1]["valid_until"] is None
        assert pem_bundle.text.count("BEGIN PUBLIC KEY") == 2 and old.fingerprint in pem_bundle.text
        # The old key endorsed the new one: a holder of the old key can follow the rotation.
        followed = KeySet.of_raw(old.public_key, "pinned").follow_rotations(KeySet.from_json(published.json()))
        assert followed.by_raw(p2.keyring.public_key) is not None

        # Old package: verifies with the old key, or with the published keys; not with the new key alone.
        new_pem = tmp_path / "new.pem"
        new_pem.write_bytes(p2.keyring.public_key_pem())
        assert _verify(old_zip, "--key", str(old_pem))[0] == 0
        store = tmp_path / "store"
        store.mkdir()
        (store / "keys.json").write_bytes(published.content)
        code, output = _verify(old_zip, "--trust-store", str(store))
        assert code == 0, output
        assert _verify(old_zip, "--key", str(new_pem))[0] == 3
        # New package, with a receipt by the retired key: the new key vouches for the history it ships.
        code, output = _verify(new_zip, "--key", str(new_pem))
        assert code == 0, output

        # The journal: checkpoints by the old key and the new one all verify.
        with p2.session() as db:
            seal(db, p2.journal.sink, p2.keyring)
            assert verify_all(db, p2.journal.sink, p2.keyring.trusted).ok
    finally:
        p2.close()


def test_custody_pdf_and_annual_report_carry_the_full_fingerprint(platform, client, tmp_path):
    commune = make_commune(platform, cameras=1)
    _, folder = _package(platform, client, tmp_path, commune)
    assert platform.keyring.fingerprint in pdf_text((folder / "chain-of-custody.pdf").read_bytes())
    year = utcnow().year
    csv = client.get(f"/api/v1/reports/annual/{year}.csv").text
    assert platform.keyring.fingerprint in csv and "Clés de signature de la plateforme" in csv
    with platform.session() as db:  # the rows the PDF is rendered from
        rows = annual.report_rows(
            annual.annual_report(db, platform.tenant(db, commune.slug), year, platform.keyring.trusted)
        )
    assert [r for r in rows if r[2] == platform.keyring.fingerprint and "en vigueur" in r[1]]


def _deflated(zpath: Path, out: Path) -> None:
    with zipfile.ZipFile(zpath) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info), zipfile.ZIP_DEFLATED)


def test_verify_names_the_damaged_zip_member(platform, client, tmp_path):
    zpath, _ = _package(platform, client, tmp_path)
    real = tmp_path / "real.pem"
    real.write_bytes(platform.keyring.public_key_pem())
    deflated = tmp_path / "recompressed.zip"  # a recipient re-zipped it, compressed
    _deflated(zpath, deflated)
    assert _verify(deflated, "--key", str(real))[0] == 0
    with zipfile.ZipFile(deflated) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith("manifest.json"))
        name = info.filename.split("/", 1)[1]
        data_at = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw = bytearray(deflated.read_bytes())
    raw[data_at + info.compress_size // 2] ^= 0x10
    flipped = tmp_path / "flipped.zip"
    flipped.write_bytes(bytes(raw))
    code, output = _verify(flipped, "--key", str(real))
    assert code == 1 and f"damaged zip member: {name}:" in output, output
    assert "Traceback" not in output

    cut = tmp_path / "cut.zip"  # the central directory lost (a download cut short)
    cut.write_bytes(zpath.read_bytes()[:-200])
    code, output = _verify(cut, "--key", str(real))
    assert code == 1 and "the zip itself is damaged" in output, output


def test_private_keys_are_private_and_an_exposed_one_stops_start_up(settings):
    p = Platform.open(settings, init=True)
    p.close()
    keys = settings.keys_dir
    assert keys.stat().st_mode & 0o777 == 0o700
    for name in ("platform-signing.pem", "master.key"):
        assert (keys / name).stat().st_mode & 0o777 == 0o600
    assert not [n for n in os.listdir(keys) if n.endswith(".tmp")]

    env = {
        "TEMOIN_HOME": str(settings.home),
        "TEMOIN_DATABASE_URL": settings.database_url,
        "TEMOIN_MASTER_KEY": None,
        "TEMOIN_MASTER_KEY_FILE": None,
        "COLUMNS": "250",
    }
    for name, mode in (("platform-signing.pem", 0o644), ("master.key", 0o640)):
        path = keys / name
        os.chmod(path, mode)
        try:
            Platform.open(settings)
        except KeyError_ as exc:
            assert str(path) in str(exc) and f"chmod 600 {path}" in str(exc)
        else:
            raise AssertionError(f"the platform started with {name} mode {mode:o}")
        result = runner.invoke(cli_app, ["journal", "verify"], env=env)
        assert result.exit_code == 2 and f"chmod 600 {path}" in result.output, result.output
        os.chmod(path, 0o600)
    Platform.open(settings).close()
