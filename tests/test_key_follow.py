"""A platform key rotation reaches everything that signs or checks: the running server signs with the new key at
once (no restart), and cameras follow the rotation through the old key's endorsement, never through a key list
alone (a forged platform must not be able to make a camera delete footage).

The servers are real (uvicorn over HTTP), the rotations are made by `temoin keys rotate` in a process of its
own, the cameras are the real camera program (`temoin camera offload`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from temoin.camera.device_store import ReceiptRejected
from temoin.camera.offload import VaultClient
from temoin.camera.platform_keys import TRUST_FILE
from temoin.camera.runner import CameraHome
from temoin.db import utcnow
from temoin.demo.samples import sample_recording
from temoin.demo.server import BackgroundServer
from temoin.evidence.canonical import b64d, b64e
from temoin.evidence.keys import KeySet, PlatformKey, endorsement_bytes
from temoin.evidence.manifest import Receipt, SignedReceipt
from temoin.evidence.signing import load_private_key_pem, private_key_pem, public_key_bytes
from temoin.identity.devices import create_enrolment_code
from temoin.journal.entry import Actor
from temoin.keyring import HISTORY_FILE, SIGNING_KEY_FILE, Keyring, write_private
from temoin.law.access import Role
from temoin.platform import Platform
from temoin.vault import retention
from temoin.vault.models import Recording
from temoin.web.app import create_app
from tests.extraction_helpers import _download, _extract, device_recording, verify_with_env as _verify
from tests.helpers import agent_number, make_commune, sign_in

TEMOIN = [sys.executable, "-m", "temoin"]

# Key files and processes: the same on both databases; the vault side of ingest runs on both elsewhere.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _run(*args: str, platform: Platform | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "250"}
    if platform is not None:
        env |= {"TEMOIN_HOME": str(platform.settings.home), "TEMOIN_DATABASE_URL": platform.settings.database_url}
    return subprocess.run([*TEMOIN, *args], check=False, env=env, capture_output=True, text=True, timeout=timeout)


def rotate(platform: Platform) -> Keyring:
    """`temoin keys rotate` in its own process, as an administrator runs it; returns the keys now on disk."""
    r = _run("keys", "rotate", "--yes", platform=platform)
    assert r.returncode == 0, r.stdout + r.stderr
    return Keyring.load(platform.settings)


def offload(home: CameraHome) -> tuple[int, str]:
    r = _run("camera", "offload", "--home", str(home.root))
    return r.returncode, " ".join((r.stdout + r.stderr).split())


def enrolled(platform: Platform, server: BackgroundServer, home: CameraHome, slug: str, serial: str) -> str:
    with platform.session() as db:
        code = create_enrolment_code(platform, db, platform.tenant(db, slug), label=serial, by=Actor.system("test"))
    return home.enrol(server.url, code, serial).device_id


# --- the running server ------------------------------------------------------------------------------------


def test_a_running_server_signs_with_the_new_key_right_after_a_rotation(platform: Platform, tmp_path: Path) -> None:
    commune = make_commune(platform, cameras=1)
    cam_id, cam_key = commune.cameras[0]
    with BackgroundServer(create_app(platform, scheduler=False)) as server:
        before = httpx.get(f"{server.url}/api/v1/platform").json()["public_key_id"]
        new = rotate(platform)  # another process; the server is not restarted nor told
        assert new.public_key_id != before

        info = httpx.get(f"{server.url}/api/v1/platform").json()
        assert info["public_key_id"] == new.public_key_id and info["public_key_fingerprint"] == new.fingerprint
        published = httpx.get(f"{server.url}/.well-known/temoin/keys.json").json()
        assert [(k["id"], k["status"]) for k in published["keys"]] == [
            (before, "retired"),
            (new.public_key_id, "current"),
        ]

        # A receipt made now: by the new key, and it verifies with the keys as published.
        signed, segments = sample_recording(
            cam_key, camera_id=cam_id, agent_id=agent_number(commune), started_at=utcnow(), duration_s=2, segment_s=1
        )
        with httpx.Client(base_url=server.url, timeout=60) as http:
            receipt = VaultClient(server.url, cam_id, cam_key, new.public_key, http=http).offload(signed, segments)
        r = receipt.receipt
        assert r.platform_key_id == new.public_key_id
        assert KeySet.from_json(published).verify(
            b64d(receipt.signature), r.signing_bytes(), key_id=r.platform_key_id, at=r.stored_at
        )

        # An extraction made now: its package is signed by the new key, pinned by its fingerprint alone.
        with httpx.Client(base_url=server.url, timeout=120) as web:
            csrf = sign_in(platform, web, commune.users[Role.CHIEF])
            zpath, folder = _download(web, _extract(web, csrf, [r.recording_id]), tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["platform_key"]["sha256_fingerprint"] == new.fingerprint
    code, output = _verify(zpath, "--fingerprint", new.fingerprint)
    assert code == 0, output


def test_every_process_switches_and_a_half_written_rotation_changes_nothing(settings) -> None:
    """Two server processes' keyrings (loaded before) switch at their next use; between the rotation's two writes
    (new private key, old history) a keyring keeps its key and writes nothing (no history "repaired" under the
    rotation's feet, which would lose the endorsement cameras follow)."""
    from temoin.keyring import rotate as rotate_keys

    Keyring.load(settings, create=True)
    first, second = Keyring.load(settings), Keyring.load(settings)
    old_id, history = first.public_key_id, settings.keys_dir / HISTORY_FILE
    old_history = history.read_bytes()
    _, new = rotate_keys(settings)
    new_history = history.read_bytes()

    write_private(history, old_history)  # as if caught between the two writes
    with first.signing() as signer:
        assert signer.key_id == old_id and signer.sign(b"x")
    assert history.read_bytes() == old_history
    write_private(history, new_history)  # the second write
    for keyring in (first, second):
        assert keyring.public_key_id == new.id and keyring.history.current == new
        with keyring.signing() as signer:
            assert keyring.trusted.verify(b64d(signer.sign(b"x")), b"x", key_id=signer.key_id, at=utcnow())


def test_a_receipt_made_during_a_rotation_is_valid_when_stamped(platform: Platform, client, monkeypatch) -> None:
    """A slow disk holds the rotation between its start (the old key's end) and its writes; a receipt asked for
    then waits, and is stamped and signed by the new key, not stamped after the old key's end and signed by it
    (a receipt the camera would refuse for ever: the vault answers a stored recording with its stored receipt)."""
    import threading
    import time

    from temoin import keyring as keyring_module
    from tests.helpers import vault_client

    commune = make_commune(platform, cameras=1)
    cam_id, cam_key = commune.cameras[0]
    signed, segments = sample_recording(
        cam_key, camera_id=cam_id, agent_id=agent_number(commune), started_at=utcnow(), duration_s=2, segment_s=1
    )
    rid = signed.manifest.recording_id
    vault = vault_client(platform, client, commune.cameras[0])
    vault.send_manifest(signed)
    for i, data in enumerate(segments):
        vault.upload_segment(rid, i, data)

    writing, write = threading.Event(), keyring_module.write_private

    def slow_write(path, data, **kw) -> None:
        writing.set()
        time.sleep(0.5)
        write(path, data, **kw)

    monkeypatch.setattr(keyring_module, "write_private", slow_write)
    rotation = threading.Thread(target=keyring_module.rotate, args=(platform.settings,))
    rotation.start()
    assert writing.wait(10)  # the rotation began: the old key's end is set, nothing written yet
    receipt = vault.complete(rid)
    rotation.join(10)
    client.auth = None
    r, now = receipt.receipt, Keyring.load(platform.settings)
    assert r.platform_key_id == now.public_key_id
    assert now.trusted.verify(b64d(receipt.signature), r.signing_bytes(), key_id=r.platform_key_id, at=r.stored_at)


# --- the camera ----------------------------------------------------------------------------------------------


def _partly_uploaded(server: BackgroundServer, home: CameraHome, rid: str) -> None:
    """The camera was undocked after the first segment of `rid`."""
    identity, store = home.identity(), home.store()
    with httpx.Client(base_url=server.url, timeout=30) as http:
        vault = VaultClient(server.url, identity.device_id, home.keys().signing_key, home.platform_key(), http=http)
        vault.send_manifest(store.manifest(rid))
        vault.upload_segment(rid, 0, b"first" * 1000)


def test_a_camera_follows_rotations_and_deletes_its_copy_on_the_new_keys_word(
    platform: Platform, tmp_path: Path
) -> None:
    commune = make_commune(platform, cameras=0)
    home = CameraHome(tmp_path / "camera")
    with BackgroundServer(create_app(platform, scheduler=False)) as server:
        device_id = enrolled(platform, server, home, commune.slug, "KEY-0001")
        first = home.keys_dir.joinpath("platform.pub").read_bytes()
        store = home.store()
        agent = agent_number(commune)
        segments = [b"first" * 1000, b"second" * 1000]
        rid = device_recording(store, device_id, agent, segments)
        code, out = offload(home)
        assert code == 0 and "1 offloaded, 0 kept" in out, out
        old_pem = (platform.settings.keys_dir / SIGNING_KEY_FILE).read_bytes()  # an old key that leaked, later

        # Rotation between two offloads: the next receipt is signed by a key the camera never saw.
        second = rotate(platform)
        rid = device_recording(store, device_id, agent, segments)
        code, out = offload(home)
        assert code == 0 and "1 offloaded, 0 kept" in out and "local copy deleted" in out, out
        assert store.recording_ids() == []  # its copy deleted...
        receipt = store.receipt(rid)  # ...on a receipt by the new key
        assert receipt.receipt.platform_key_id == second.public_key_id
        trust_file = home.keys_dir / TRUST_FILE
        assert trust_file.stat().st_mode & 0o777 == 0o600  # what it trusts now, kept, private
        trusted = KeySet.from_json(orjson.loads(trust_file.read_bytes()))
        assert [k.id for k in trusted] == [k.id for k in second.trusted]
        assert trusted.keys[0].valid_until == second.history.current.valid_from  # the old key retired then
        assert home.keys_dir.joinpath("platform.pub").read_bytes() == first  # the enrolment's pin stays
        followed = [e for e in store.events() if e["event"] == "platform_key.followed"]
        assert [e["keys"] for e in followed] == [[second.public_key_id]]
        status = _run("camera", "status", "--home", str(home.root))
        assert f"platform key rotations followed: 1, now trusting {second.public_key_id}" in status.stdout, status

        # A second rotation, seen first in a 410: retention deleted a half-uploaded recording after it; the
        # certificate is signed by the third key, endorsed by the second, which the camera now trusts.
        rid = device_recording(store, device_id, agent, segments)
        _partly_uploaded(server, home, rid)
        third = rotate(platform)
        with platform.session() as db:
            db.get(Recording, rid).retention_until = utcnow() - timedelta(seconds=1)
            db.commit()
            assert rid in retention.sweep(platform, db).deleted
        code, out = offload(home)
        assert code == 0 and f"{rid} was deleted by the vault (retention" in out and "local copy deleted" in out, out
        assert store.recording_ids() == []
        certificate = json.loads(store.receipts_dir.joinpath(f"{rid}.deleted.json").read_text())
        assert json.loads(certificate["body"])["platform_key_id"] == third.public_key_id
        assert [k.id for k in KeySet.from_json(orjson.loads(trust_file.read_bytes()))] == [k.id for k in third.trusted]

    # The first key leaked after its rotation: a receipt it signs, stamped since, deletes nothing.
    rid = device_recording(store, device_id, agent, segments)
    m = store.manifest(rid)
    leaked = load_private_key_pem(old_pem)
    fake = Receipt(
        recording_id=rid,
        camera_id=device_id,
        tenant=commune.slug,
        manifest_sha256=m.digest(),
        chain_head=m.manifest.chain_head,
        segment_count=2,
        total_bytes=m.manifest.total_bytes,
        stored_at=utcnow(),
        retention_until=utcnow() + timedelta(days=30),
        platform_key_id=trusted.keys[0].id,
    )
    forged = SignedReceipt(receipt=fake, signature=b64e(leaked.sign(fake.signing_bytes())))
    with pytest.raises(ReceiptRejected, match="was not the platform's key at"):
        store.hand_over(rid, lambda signed, segments: forged)
    assert store.pending() == [rid]


def _forge_platform_key(platform: Platform, endorse_with: Ed25519PrivateKey) -> PlatformKey:
    """An insider with write access to the keys folder, but not the platform's private key: a key of their own
    made current, its introduction "endorsed" by a key that is not the platform's (claiming the real one)."""
    keys_dir = platform.settings.keys_dir
    history = KeySet.from_json(orjson.loads((keys_dir / HISTORY_FILE).read_bytes()))
    real, key, now = history.current, Ed25519PrivateKey.generate(), utcnow()
    raw = public_key_bytes(key)
    forged = PlatformKey(
        raw,
        valid_from=now,
        endorsed_by=real.id,
        endorsement=b64e(endorse_with.sign(endorsement_bytes(PlatformKey(raw).id, raw, now))),
    )
    keys = tuple(
        k if k is not real else PlatformKey(k.public_key, k.valid_from, now, k.endorsed_by, k.endorsement)
        for k in history
    ) + (forged,)
    write_private(keys_dir / SIGNING_KEY_FILE, private_key_pem(key))
    write_private(keys_dir / HISTORY_FILE, orjson.dumps(KeySet(keys).as_json()))
    return forged


def test_a_forged_key_list_makes_the_camera_keep_its_footage(platform: Platform, tmp_path: Path) -> None:
    commune = make_commune(platform, cameras=0)
    home = CameraHome(tmp_path / "camera")
    with BackgroundServer(create_app(platform, scheduler=False)) as server:
        device_id = enrolled(platform, server, home, commune.slug, "KEY-0002")
        store = home.store()
        rids = {
            device_recording(store, device_id, agent_number(commune), [bytes([i]) * 3000, b"x" * 3000])
            for i in range(2)
        }
        forged = _forge_platform_key(platform, Ed25519PrivateKey.generate())
        published = httpx.get(f"{server.url}/.well-known/temoin/keys.json").json()
        assert published["keys"][-1]["id"] == forged.id  # the platform now signs and publishes the forged key

        code, out = offload(home)
    assert code != 0, out
    assert "0 offloaded, 2 kept" in out, out
    assert f"names platform key {forged.id}" in out and "without an unbroken chain of endorsements" in out, out
    assert set(store.pending()) == rids  # every copy kept, whole
    assert all(store.verify(rid).finalised and store.receipt(rid) is None for rid in rids)
    assert not (home.keys_dir / TRUST_FILE).exists()  # nothing learnt from the forged list
    rejected = [e for e in store.events() if e["event"] == "receipt.rejected"]
    assert {e["recording"] for e in rejected} == rids
    assert all("forged key list" in e["detail"] for e in rejected), rejected
    assert not [e for e in store.events() if e["event"] == "platform_key.followed"]
