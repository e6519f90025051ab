"""Every platform signature names the key that made it, even when `temoin keys rotate` runs at that moment.

Each test starts a real rotation (keyring.rotate, its own thread, the key files on disk) at the worst moment of a
statement: after the statement would read the key id and before it is signed. Signing takes the key, its id and
its history at once under the rotation's lock, so the rotation waits for the signature; before, the statement
named the old key and was signed by the new one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from temoin import keyring as keyring_module
from temoin.evidence import certificates
from temoin.evidence.canonical import b64d
from temoin.evidence.keys import KeySet
from temoin.extraction import writing
from temoin.identity import devices
from temoin.identity.models import Device, DeviceKey
from temoin.journal import checkpoints
from temoin.journal.entry import Actor
from temoin.journal.models import JournalCheckpoint
from temoin.keyring import Keyring
from temoin.law.access import Role
from temoin.vault import retention
from temoin.vault.models import DeletionCertificate, Recording
from tests.extraction_helpers import _download, _extract
from tests.helpers import make_commune, sign_in, upload

# Key files and threads: the same on both databases.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def rotate_inside(monkeypatch, owner: Any, name: str, settings, wait: float | None = 1.0) -> list[threading.Thread]:
    """Replace owner.name by a wrapper that, at its first call, starts a rotation and gives it `wait` seconds to
    finish (it finishes unless the caller holds the rotation's lock; None: wait until it has)."""
    original: Callable = getattr(owner, name)
    started: list[threading.Thread] = []

    def wrapper(*args, **kwargs):
        if not started:
            rotation = threading.Thread(target=keyring_module.rotate, args=(settings,))
            started.append(rotation)
            rotation.start()
            rotation.join(wait)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return started


def finished(started: list[threading.Thread]) -> None:
    assert len(started) == 1, "the rotation was not started: the hook is no longer on the signing path"
    started[0].join(30)
    assert not started[0].is_alive()


def assert_names_its_signer(settings, body: bytes | str, signature: str, at_field: str) -> None:
    body = body.encode() if isinstance(body, str) else body
    statement = orjson.loads(body)
    trusted = Keyring.load(settings).trusted
    assert len(trusted) == 2  # the rotation happened
    at = statement[at_field]
    signer = trusted.signer(
        b64d(signature), body, key_id=statement["platform_key_id"], at=datetime.fromisoformat(at) if at else None
    )
    assert signer is not None, f"signed by another key than the {statement['platform_key_id']} it names"


def test_a_journal_seal_made_during_a_rotation_names_the_key_that_signed_it(platform, monkeypatch) -> None:
    make_commune(platform)
    started = rotate_inside(monkeypatch, checkpoints, "canonical_bytes", platform.settings)
    with platform.session() as db:
        assert checkpoints.seal(db, platform.journal.sink, platform.keyring) >= 1
        db.commit()
        made = db.scalars(select(JournalCheckpoint)).all()
    finished(started)
    for checkpoint in made:
        assert_names_its_signer(platform.settings, checkpoint.body, checkpoint.signature, "at")


def test_a_deletion_certificate_made_during_a_rotation_names_the_key_that_signed_it(
    platform, client, monkeypatch
) -> None:
    commune = make_commune(platform)
    rid, _ = upload(platform, client, commune, duration_s=2, segment_s=1)
    started = rotate_inside(monkeypatch, retention, "canonical_bytes", platform.settings)
    with platform.session() as db:
        retention.delete_recording(
            platform,
            db,
            db.get(Recording, rid),
            reason="request",
            actor=Actor.system("test"),
            rule="test",
        )
        db.commit()
        cert = db.scalar(select(DeletionCertificate).where(DeletionCertificate.recording_id == rid))
    finished(started)
    assert cert is not None
    assert_names_its_signer(platform.settings, cert.body, cert.signature, "deleted_at")


def test_a_camera_certificate_made_during_a_rotation_names_the_key_that_signed_it(platform, monkeypatch) -> None:
    commune = make_commune(platform, cameras=1)
    started = rotate_inside(monkeypatch, certificates.DeviceCertificate, "signing_bytes", platform.settings)
    with platform.session() as db:
        device = db.get(Device, commune.cameras[0][0])
        key = db.scalar(select(DeviceKey).where(DeviceKey.device_id == device.id))
        signed = devices.certify(platform, platform.tenant(db, commune.slug), device, key)
    finished(started)
    trusted = Keyring.load(platform.settings).trusted
    assert len(trusted) == 2
    assert signed.signer(trusted) is not None, "signed by another key than the one the certificate names"


def test_a_package_built_during_a_rotation_is_signed_by_the_key_it_names(platform, client, monkeypatch, tmp_path):
    commune = make_commune(platform, cameras=1)
    rid, _ = upload(platform, client, commune, duration_s=2, segment_s=1)
    started = rotate_inside(monkeypatch, writing.custody, "render_pdf", platform.settings)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    _, folder = _download(client, _extract(client, csrf, [rid]), tmp_path)
    finished(started)
    manifest = orjson.loads((folder / writing.MANIFEST).read_bytes())
    named = manifest["platform_key"]
    published = KeySet.from_json(orjson.loads((folder / writing.KEYS_FILE).read_bytes()))
    key = published.get(named["id"])
    assert key is not None and key.fingerprint == named["sha256_fingerprint"]
    sums, signature = (folder / writing.SUMS).read_bytes(), (folder / writing.SIGNATURE).read_bytes()
    assert KeySet((key,)).verify(signature, sums, at=datetime.fromisoformat(manifest["created_at"]))


def test_a_package_whose_build_straddles_a_rotation_is_refused_clearly(platform, client, monkeypatch) -> None:
    """A rotation after the package's date (its plan) and before its signature: the new key cannot vouch for an
    earlier date and the old one is gone, so no package is made, and the answer says to ask again."""
    commune = make_commune(platform, cameras=1)
    rid, _ = upload(platform, client, commune, duration_s=2, segment_s=1)
    # Before the signing block: nothing holds the lock, so the rotation is waited for whole.
    started = rotate_inside(monkeypatch, writing, "_write_media", platform.settings, wait=None)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    r = client.post(
        "/api/v1/extractions",
        headers={"X-CSRF-Token": csrf},
        json={
            "recording_ids": [rid],
            "recipient_name": "OPJ Martin",
            "recipient_kind": "judicial_police",
            "procedure_type": "judicial",
            "reference": "PV 2026/7",
        },
    )
    finished(started)
    assert r.status_code == 409 and "rotated" in r.json()["detail"] and "ask for the extraction again" in r.text
    again = _extract(client, csrf, [rid])  # asked again: made and signed by the new key
    assert again["id"]
