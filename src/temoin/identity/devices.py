"""Cameras: enrolment with an Ed25519 key pair, revocation, and signed device requests.

A camera never holds a shared password. It proves each request by signing
"<METHOD>\n<path?query>\n<unix time>\n<nonce>" with its private key; the vault keeps only the
public key. A nonce is accepted once, and only within the clock window.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from temoin.db import utcnow
from temoin.evidence.canonical import b64d, b64e
from temoin.evidence.signing import verify
from temoin.identity.models import Device, DeviceNonce, EnrolmentCode, Tenant
from temoin.identity.secrets import token_hash
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.platform import Platform

AUTH_SCHEME = "Temoin-Device"
_PARAM = re.compile(r'(\w+)="([^"]*)"')


class DeviceError(ValueError):
    pass


class QuotaExceeded(DeviceError):
    pass


def device_actor(device: Device) -> Actor:
    return Actor(kind="device", id=device.id, name=device.label or device.serial, function="camera")


def create_enrolment_code(p: Platform, db: Session, tenant: Tenant, *, label: str, by: Actor,
                          valid_hours: int = 24) -> str:
    code = "-".join(secrets.token_hex(3).upper() for _ in range(3))
    db.add(EnrolmentCode(code_hash=token_hash(code), tenant_id=tenant.id, label=label, created_by=by.id,
                         expires_at=utcnow() + timedelta(hours=valid_hours)))
    p.record(db, EntryDraft(action=Action.ADMINISTRATION, event="device.enrolment_code", actor=by,
                            details={"label": label, "valid_hours": valid_hours}), tenant)
    db.commit()
    return code


def active_cameras(db: Session, tenant: Tenant) -> int:
    return db.scalar(select(func.count()).select_from(Device).where(Device.tenant_id == tenant.id,
                                                                   Device.status == "active")) or 0


def enrol(p: Platform, db: Session, *, code: str, serial: str, public_key: bytes, proof: str) -> Device:
    """Register a camera's public key against a one-time code.

    `proof` is the camera's signature of "temoin-enrol\n<code>\n<serial>": it shows the camera holds
    the private key. Refused beyond the number of cameras the prefect authorised (R241-8).
    """
    row = db.get(EnrolmentCode, token_hash(code.strip().upper()))
    if row is None or row.used_at is not None or row.expires_at <= utcnow():
        raise DeviceError("enrolment code unknown, already used or expired: ask an administrator for a new one")
    message = f"temoin-enrol\n{code.strip().upper()}\n{serial}".encode()
    try:
        proof_ok = verify(public_key, b64d(proof), message)
    except ValueError:
        proof_ok = False
    if not proof_ok:
        raise DeviceError("the enrolment proof is not a valid signature by the submitted public key")
    tenant = db.get(Tenant, row.tenant_id)
    assert tenant is not None
    if active_cameras(db, tenant) >= tenant.authorised_cameras:
        raise QuotaExceeded(f"{tenant.name} already has {tenant.authorised_cameras} active cameras, the number "
                            "the prefect authorised (R241-8): revoke one or have the authorisation amended")
    existing = db.scalar(select(Device).where(Device.tenant_id == tenant.id, Device.serial == serial))
    if existing is not None and existing.status == "active":
        raise DeviceError(f"a camera with serial {serial!r} is already enrolled: revoke it first")
    device_id = existing.id if existing else f"cam-{uuid.uuid4().hex[:12]}"
    if existing:
        existing.public_key, existing.status, existing.revoked_at = public_key, "active", None
        existing.enrolled_at, existing.label = utcnow(), row.label or existing.label
        device = existing
    else:
        device = Device(id=device_id, tenant_id=tenant.id, serial=serial, label=row.label, public_key=public_key)
        db.add(device)
    row.used_at, row.device_id = utcnow(), device_id
    db.flush()
    p.record(db, EntryDraft(action=Action.ADMINISTRATION, event="device.enrolled", actor=device_actor(device),
                            cameras=[device_id], details={"serial": serial, "label": device.label}), tenant)
    db.commit()
    return device


def revoke(p: Platform, db: Session, device: Device, by: Actor) -> None:
    device.status, device.revoked_at = "revoked", utcnow()
    tenant = db.get(Tenant, device.tenant_id)
    p.record(db, EntryDraft(action=Action.ADMINISTRATION, event="device.revoked", actor=by, cameras=[device.id]),
             tenant)
    db.commit()


def signing_string(method: str, path: str, ts: int, nonce: str) -> bytes:
    return f"{method.upper()}\n{path}\n{ts}\n{nonce}".encode()


def authorization_header(device_id: str, private_key, method: str, path: str) -> str:  # noqa: ANN001
    """What a camera sends (used by the camera agent and the tests)."""
    ts, nonce = int(time.time()), secrets.token_hex(16)
    signature = b64e(private_key.sign(signing_string(method, path, ts, nonce)))
    return f'{AUTH_SCHEME} id="{device_id}", ts="{ts}", nonce="{nonce}", sig="{signature}"'


@dataclass
class DeviceAuthFailure(Exception):
    status: int
    message: str
    device: Device | None = None


def authenticate(p: Platform, db: Session, header: str | None, method: str, path: str) -> Device:
    if not header or not header.startswith(AUTH_SCHEME + " "):
        raise DeviceAuthFailure(401, f"device requests must carry an `Authorization: {AUTH_SCHEME} ...` "
                                     "signature header")
    params = dict(_PARAM.findall(header))
    try:
        device_id, ts, nonce, sig = params["id"], int(params["ts"]), params["nonce"], b64d(params["sig"])
    except (KeyError, ValueError):
        raise DeviceAuthFailure(401, "malformed device signature header: id, ts, nonce and sig are required")
    if not (8 <= len(nonce) <= 64):
        raise DeviceAuthFailure(401, "nonce must be 8 to 64 characters")
    device = db.get(Device, device_id)
    if device is None:
        raise DeviceAuthFailure(401, "unknown camera: enrol it first (`temoin camera enroll`)")
    # The signature first: an unsigned request naming a revoked camera must not flood the journal.
    if not verify(device.public_key, sig, signing_string(method, path, ts, nonce)):
        raise DeviceAuthFailure(401, "device signature invalid (forged, or signed for another request)",
                                device if device.status == "active" else None)
    if device.status != "active":
        raise DeviceAuthFailure(403, "this camera has been revoked", device)
    if abs(time.time() - ts) > p.settings.device_clock_window_s:
        raise DeviceAuthFailure(401, "device clock too far from the platform's: sync the camera's clock", device)
    db.add(DeviceNonce(device_id=device_id, nonce=nonce))
    try:
        db.flush()
    except IntegrityError:
        db.rollback()
        raise DeviceAuthFailure(401, "replayed request: this signature was already used", device) from None
    return device


def purge_nonces(p: Platform, db: Session) -> None:
    cutoff = utcnow() - timedelta(seconds=2 * p.settings.device_clock_window_s)
    db.execute(delete(DeviceNonce).where(DeviceNonce.at < cutoff))
    db.commit()
