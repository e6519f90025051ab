"""Test helpers: a commune with users of every role, enrolled cameras, signed sample recordings."""

from __future__ import annotations

import io
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from pypdf import PdfReader

from temoin.camera.offload import VaultClient
from temoin.db import utcnow
from temoin.demo.commune import territory
from temoin.demo.samples import sample_recording
from temoin.evidence.canonical import b64e
from temoin.evidence.manifest import SignedReceipt
from temoin.evidence.signing import public_key_bytes
from temoin.identity import devices, service
from temoin.identity.models import Device
from temoin.identity.secrets import current_totp
from temoin.journal.entry import Actor
from temoin.law.access import Role
from temoin.platform import Platform

PASSWORD = "correct horse battery staple"


@dataclass
class Commune:
    slug: str
    users: dict[Role, str] = field(default_factory=dict)  # role -> username
    cameras: list[tuple[str, Ed25519PrivateKey]] = field(default_factory=list)


def make_commune(p: Platform, slug: str = "port-temoin", cameras: int = 2, authorised: int = 4) -> Commune:
    out = Commune(slug)
    with p.session() as db:
        tenant = service.create_tenant(
            p,
            db,
            slug=slug,
            name=slug.title(),
            profile="fr-police-municipale",
            authorised_cameras=authorised,
            territory=territory(),
        )
        for role in Role:
            username = f"{slug}-{role.value}".replace("_", "-")
            service.create_user(
                p,
                db,
                tenant,
                username=username,
                display_name=f"{role.value} of {slug}",
                role=role,
                password=PASSWORD,
                agent_number=f"{slug[:3].upper()}-0001" if role == Role.AGENT else None,
            )
            out.users[role] = username
        db.commit()
        for n in range(cameras):
            out.cameras.append(enrol_camera(p, slug, f"{slug}-cam-{n}"))
    return out


def enrol_camera(p: Platform, slug: str, serial: str) -> tuple[str, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    with p.session() as db:
        code = devices.create_enrolment_code(p, db, p.tenant(db, slug), label=serial, by=Actor.system("test"))
        proof = b64e(key.sign(f"temoin-enrol\n{code}\n{serial}".encode()))
        device = devices.enrol(p, db, code=code, serial=serial, public_key=public_key_bytes(key), proof=proof)
        return device.id, key


def agent_number(commune: Commune) -> str:
    return f"{commune.slug[:3].upper()}-0001"


def vault_client(p: Platform, client: TestClient, camera: tuple[str, Ed25519PrivateKey]) -> VaultClient:
    return VaultClient(str(client.base_url), camera[0], camera[1], p.keyring.public_key, http=client)


def upload(
    p: Platform,
    client: TestClient,
    commune: Commune,
    *,
    camera: int = 0,
    started_at: datetime | None = None,
    agent: str | None = None,
    duration_s: float = 4,
    segment_s: float = 2,
    **kw,
) -> tuple[str, SignedReceipt]:
    cam = commune.cameras[camera]
    signed, segments = sample_recording(
        cam[1],
        camera_id=cam[0],
        agent_id=agent or agent_number(commune),
        started_at=started_at or utcnow(),
        duration_s=duration_s,
        segment_s=segment_s,
        **kw,
    )
    receipt = vault_client(p, client, cam).offload(signed, segments)
    client.auth = None
    return signed.manifest.recording_id, receipt


def upload_media(
    p: Platform,
    client: TestClient,
    commune: Commune,
    media: bytes,
    *,
    duration_s: float,
    started_at: datetime,
    place: tuple[float, float],
    camera: int = 0,
) -> str:
    """One recording of one segment holding `media` (any MP4), standing at `place`, signed by the camera."""
    import uuid
    from datetime import timedelta

    from temoin.camera.offload import SegmentFile, build_manifest
    from temoin.evidence.manifest import GpsFix, SignedManifest, Trigger

    cam = commune.cameras[camera]
    manifest = build_manifest(
        recording_id=f"rec-{uuid.uuid4().hex[:16]}",
        camera_id=cam[0],
        agent_id=agent_number(commune),
        segments=[SegmentFile(media, started_at, duration_s)],
        trigger=Trigger.INCIDENT,
        persons_informed=True,
        gps_track=[
            GpsFix(t=started_at + timedelta(seconds=i), lat=place[0], lon=place[1], accuracy_m=5.0)
            for i in range(int(duration_s) + 1)
        ],
        pre_event_buffer_s=0,
        clock_offset_ms=0,
    )
    signed = SignedManifest.sign(manifest, cam[1])
    vault_client(p, client, cam).offload(signed, [media])
    client.auth = None
    return signed.manifest.recording_id


def totp_code(p: Platform, username: str) -> str:
    """The user's current code; the last used step is reset so the same code may serve again in a test."""
    from sqlalchemy import select

    from temoin.identity.models import User

    with p.session() as db:
        user = db.scalar(select(User).where(User.username == username))
        code = current_totp(service.totp_secret_of(p, user))
        user.totp_last_step = 0
        db.commit()
    return code


def sign_in(p: Platform, client: httpx.Client, username: str) -> str:
    """Password then TOTP; returns the CSRF token for unsafe requests."""
    client.cookies.clear()
    r = client.post("/api/v1/session", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    r = client.post("/api/v1/session/totp", json={"code": totp_code(p, username)})
    assert r.status_code == 200, r.text
    return r.json()["csrf_token"]


def device_of(p: Platform, device_id: str) -> Device:
    with p.session() as db:
        return db.get(Device, device_id)


SIGN_IN_LABELS = {"fr": ("Identifiant", "Mot de passe", "Continuer"), "en": ("Username", "Password", "Continue")}


def sign_in_page(page, p: Platform, username: str, lang: str = "fr") -> None:
    """Sign in through the pages of a Playwright page (in the context's language): password, then the TOTP code."""
    from playwright.sync_api import expect

    user_label, password_label, go = SIGN_IN_LABELS[lang]
    page.goto("/login")
    page.get_by_label(user_label).fill(username)
    page.get_by_label(password_label).fill(PASSWORD)
    page.get_by_role("button", name=go).click()
    page.get_by_label("Code").fill(totp_code(p, username))
    page.get_by_role("button", name=go).click()
    expect(page.locator("header .who")).to_be_visible()


def approve_erasure(
    p: Platform, client: httpx.Client, commune: Commune, proposal_id: int, approver: Role = Role.MAYOR
) -> httpx.Response:
    """Four eyes: a second person (the mayor by default) approves an erasure proposal; that person stays signed in."""
    csrf = sign_in(p, client, commune.users[approver])
    return client.post(
        f"/api/v1/rights/erasure-proposals/{proposal_id}/decision",
        headers={"X-CSRF-Token": csrf},
        json={"approve": True},
    )


JUSTIFIED = "the person is seen in full, by the entrance, in this recording"


def pdf_text(data: bytes) -> str:
    assert data.startswith(b"%PDF")
    text = "\n".join(page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages)
    return " ".join(text.split())  # lines wrap anywhere: compare on single spaces


TEMOIN = [sys.executable, "-m", "temoin"]


def run(env: dict, *args: str) -> subprocess.CompletedProcess:
    """The `temoin` command in a child process, as a person runs it."""
    return subprocess.run([*TEMOIN, *args], env=env, capture_output=True, text=True, timeout=120)
