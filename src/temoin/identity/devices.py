"""Cameras: enrolment with an Ed25519 key pair, revocation, and signed device requests.

A camera never holds a shared password. It proves each request by signing
"<METHOD>\n<path?query>\n<unix time>\n<nonce>\n<content>" with its private key; the vault keeps only
the public key. <content> is the body's digest as sent in `Content-Digest: sha-256=:<base64>:` (RFC 9530),
checked against the body received; only streamed segment uploads sign "unsigned-payload" instead (their
bytes are bound by the segment's SHA-256 in the signed manifest). A nonce is accepted once, and only within
the clock window.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from temoin import errors
from temoin.context import Context
from temoin.db import utcnow
from temoin.evidence import certificates
from temoin.evidence.canonical import b64d, b64e
from temoin.evidence.certificates import SignedCertificate

# The request signature format lives with the evidence: the camera's signed `complete` request is kept as one.
from temoin.evidence.device_requests import content_digest, signing_string
from temoin.evidence.manifest import RecordingManifest
from temoin.evidence.signing import verify
from temoin.identity.models import Device, DeviceKey, DeviceNonce, EnrolmentCode, Tenant
from temoin.identity.secrets import token_hash
from temoin.journal.entry import Action, Actor, EntryDraft

AUTH_SCHEME = "Temoin-Device"
_PARAM = re.compile(r'(\w+)="([^"]*)"')
# What a streamed upload signs instead of its body's digest (declared in the Authorization header as
# content="unsigned-payload"); accepted only where the route says its bytes are bound by another proof.
UNSIGNED_PAYLOAD = "unsigned-payload"
_SHA256_MEMBER = re.compile(r"^sha-256=:([A-Za-z0-9+/]*={0,2}):$")


class DeviceError(errors.Malformed, ValueError):
    pass


class QuotaExceeded(errors.Conflict, DeviceError):
    pass


def display_name(device: Device) -> str:
    """The one name people use for a camera: the tenant's label (its asset tag, e.g. PT-BWC-005), else its serial.
    The technical id (cam-…) stays in the API and in tooltips."""
    return device.label.strip() or device.serial


def camera_names(db: Session, device_ids: Iterable[str]) -> dict[str, str]:
    """Display names by device id; an id no device answers to (a deleted camera) is its own name."""
    ids = set(device_ids)
    names = {d.id: display_name(d) for d in db.scalars(select(Device).where(Device.id.in_(ids)))} if ids else {}
    return {i: names.get(i, i) for i in ids}


def device_actor(device: Device) -> Actor:
    return Actor(kind="device", id=device.id, name=display_name(device), function="camera")


def create_enrolment_code(
    p: Context, db: Session, tenant: Tenant, *, label: str, by: Actor, valid_hours: int = 24
) -> str:
    code = "-".join(secrets.token_hex(3).upper() for _ in range(3))
    db.add(
        EnrolmentCode(
            code_hash=token_hash(code),
            tenant_id=tenant.id,
            label=label,
            created_by=by.id,
            expires_at=utcnow() + timedelta(hours=valid_hours),
        )
    )
    p.record(
        db,
        EntryDraft(
            action=Action.ADMINISTRATION,
            event="device.enrolment_code",
            actor=by,
            details={"label": label, "valid_hours": valid_hours},
        ),
        tenant,
    )
    db.commit()
    return code


def active_cameras(db: Session, tenant: Tenant) -> int:
    return (
        db.scalar(
            select(func.count()).select_from(Device).where(Device.tenant_id == tenant.id, Device.status == "active")
        )
        or 0
    )


def enrol(p: Context, db: Session, *, code: str, serial: str, public_key: bytes, proof: str) -> Device:
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
    tenant = db.get_one(Tenant, row.tenant_id)
    if active_cameras(db, tenant) >= tenant.authorised_cameras:
        raise QuotaExceeded(
            f"{tenant.name} already has {tenant.authorised_cameras} active cameras, the number "
            "the prefect authorised (R241-8): revoke one or have the authorisation amended"
        )
    existing = db.scalar(select(Device).where(Device.tenant_id == tenant.id, Device.serial == serial))
    if existing is not None and existing.status == "active":
        raise DeviceError(f"a camera with serial {serial!r} is already enrolled: revoke it first")
    device_id = existing.id if existing else f"cam-{uuid.uuid4().hex[:12]}"
    now = utcnow()
    if existing:
        # The new key joins the camera's history; the earlier keys still verify what they signed.
        existing.public_key, existing.status, existing.revoked_at = public_key, "active", None
        existing.enrolled_at, existing.label = now, row.label or existing.label
        device = existing
    else:
        device = Device(
            id=device_id, tenant_id=tenant.id, serial=serial, label=row.label, public_key=public_key, enrolled_at=now
        )
        db.add(device)
    db.flush()
    first = (
        existing is None
        or db.scalar(select(func.count()).select_from(DeviceKey).where(DeviceKey.device_id == device_id)) == 0
    )
    key = DeviceKey(device_id=device_id, public_key=public_key, enrolled_at=now, valid_from=None if first else now)
    db.add(key)
    certify(p, tenant, device, key)
    row.used_at, row.device_id = now, device_id
    db.flush()
    p.record(
        db,
        EntryDraft(
            action=Action.ADMINISTRATION,
            event="device.enrolled",
            actor=device_actor(device),
            cameras=[device_id],
            details={"serial": serial, "label": device.label},
        ),
        tenant,
    )
    db.commit()
    return device


def revoke(p: Context, db: Session, device: Device, by: Actor) -> None:
    device.status, device.revoked_at = "revoked", utcnow()
    tenant = db.get_one(Tenant, device.tenant_id)
    for key in db.scalars(select(DeviceKey).where(DeviceKey.device_id == device.id, DeviceKey.valid_until.is_(None))):
        key.valid_until = device.revoked_at  # what this key signs from now on is not the camera's
        certify(p, tenant, device, key)  # the new certificate ends at the revocation
    p.record(
        db, EntryDraft(action=Action.ADMINISTRATION, event="device.revoked", actor=by, cameras=[device.id]), tenant
    )
    db.commit()


def certify(p: Context, tenant: Tenant, device: Device, key: DeviceKey) -> SignedCertificate:
    """Sign the certificate of a camera key as it stands (its validity, revocation included) and keep it."""
    with p.keyring.signing() as signer:  # the key it names signs it, valid when it is issued
        signed = certificates.issue(
            signer.sign,
            signer.key_id,
            tenant=tenant.slug,
            camera_id=device.id,
            serial=device.serial,
            public_key=key.public_key,
            valid_from=key.valid_from,
            valid_until=key.valid_until,
            revoked=key.valid_until is not None,
            issued_at=utcnow(),
        )
    key.certificate = signed.model_dump_json(by_alias=True)
    return signed


def certificate_of(p: Context, db: Session, key: DeviceKey) -> SignedCertificate | None:
    """The key's stored certificate if a platform key signed it and it states this key and validity."""
    if not key.certificate:
        return None
    try:
        signed = SignedCertificate.model_validate_json(key.certificate)
    except ValueError:
        return None
    c = signed.certificate
    if (
        signed.signer(p.keyring.trusted) is None
        or c.raw_key != key.public_key
        or c.camera_id != key.device_id
        or c.valid_from != key.valid_from
        or c.valid_until != key.valid_until
    ):
        return None
    return signed


def certify_uncertified(p: Context, db: Session) -> int:
    """Certify the keys the 0010 migration carried over (it cannot sign). Journaled; returns how many."""
    count = 0
    for key in db.scalars(select(DeviceKey).where(DeviceKey.certificate.is_(None))):
        device = db.get_one(Device, key.device_id)
        tenant = db.get_one(Tenant, device.tenant_id)
        signed = certify(p, tenant, device, key)
        p.record(
            db,
            EntryDraft(
                action=Action.ADMINISTRATION,
                event="device.key_certified",
                actor=Actor.system("keys"),
                cameras=[device.id],
                details={
                    "fingerprint": signed.certificate.sha256_fingerprint,
                    "reason": "key enrolled before device certificates existed",
                },
            ),
            tenant,
        )
        count += 1
    db.commit()
    return count


def keys_of(db: Session, device_id: str) -> list[DeviceKey]:
    """A camera's keys, oldest first."""
    return list(
        db.scalars(
            select(DeviceKey).where(DeviceKey.device_id == device_id).order_by(DeviceKey.enrolled_at, DeviceKey.id)
        )
    )


def key_at(db: Session, device_id: str, at: datetime) -> DeviceKey | None:
    """The camera's key that was valid at `at` (when it signed a recording's manifest: its end), if any."""
    return next((k for k in reversed(keys_of(db, device_id)) if k.valid_at(at)), None)


def signing_time(manifest: RecordingManifest) -> datetime:
    """When the camera signed a recording's manifest, by its own clock: the recording's end."""
    return manifest.ended_at


def recording_key(db: Session, manifest: RecordingManifest) -> DeviceKey | None:
    return key_at(db, manifest.camera_id, signing_time(manifest))


def signed_headers(
    device_id: str, private_key, method: str, path: str, body: bytes = b"", *, unsigned_payload: bool = False
) -> dict[str, str]:
    """The headers a camera sends (`Authorization`, and `Content-Digest` of `body`); the camera agent signs
    the same way (camera.offload.DeviceAuth). `unsigned_payload`: a streamed segment upload."""
    ts, nonce = int(time.time()), secrets.token_hex(16)
    content = UNSIGNED_PAYLOAD if unsigned_payload else content_digest(body)
    signature = b64e(private_key.sign(signing_string(method, path, ts, nonce, content)))
    marker = f' content="{UNSIGNED_PAYLOAD}",' if unsigned_payload else ""
    headers = {
        "Authorization": f'{AUTH_SCHEME} id="{device_id}", ts="{ts}", nonce="{nonce}",{marker} sig="{signature}"'
    }
    if not unsigned_payload:
        headers["Content-Digest"] = content
    return headers


@dataclass
class DeviceAuthFailure(errors.Unauthenticated):
    """A request not signed by an enrolled, active camera; `device` is the camera named, when known."""

    message: str
    device: Device | None = None


class DeviceRevoked(errors.Forbidden, DeviceAuthFailure):
    """The signature is the camera's, but the camera was revoked."""


def _signed_content(header_params: dict[str, str], digest_header: str | None, body: bytes | None) -> str:
    """What the signature must cover of the body, once the body received matches what the request declares.
    `body` None: the route streams its body (segment uploads) and takes only an unsigned payload."""
    marker = header_params.get("content")
    if body is None:
        if marker != UNSIGNED_PAYLOAD:
            raise ValueError(
                f'segment uploads are streamed: sign them with content="{UNSIGNED_PAYLOAD}" in the '
                "Authorization header (the segment's SHA-256 in the signed manifest binds its bytes)"
            )
        return UNSIGNED_PAYLOAD
    if marker is not None:
        raise ValueError(
            f'content="{UNSIGNED_PAYLOAD}" is accepted for segment uploads only: sign the body\'s Content-Digest'
        )
    if not digest_header:
        raise ValueError(
            "missing Content-Digest: device requests carry `Content-Digest: sha-256=:<base64>:` "
            "(RFC 9530), the SHA-256 of the body (of nothing for GET), covered by the signature; "
            "update the camera's software"
        )
    members = [m.strip() for m in digest_header.split(",")]
    sha256 = next((m for m in members if m.startswith("sha-256=")), None)
    match = _SHA256_MEMBER.match(sha256 or "")
    try:
        declared = b64d(match.group(1)) if match else b""
    except ValueError:
        declared = b""
    if len(declared) != hashlib.sha256().digest_size:
        raise ValueError("malformed Content-Digest: a sha-256 member `sha-256=:<base64 of 32 bytes>:` is required")
    if declared != hashlib.sha256(body).digest():
        raise ValueError(
            "Content-Digest does not match the body received (the body was changed after signing, "
            "or digested before a change): send the SHA-256 of the exact bytes sent"
        )
    return content_digest(body)


def authenticate(
    p: Context,
    db: Session,
    header: str | None,
    method: str,
    path: str,
    *,
    digest_header: str | None,
    body: bytes | None,
) -> Device:
    """The camera that signed this request, if it did: its signature over method, path with query, time,
    nonce and the body's digest (`digest_header`, checked against `body`, the bytes received; `body` None on
    a streamed upload route, which takes an unsigned payload only)."""
    if not header or not header.startswith(AUTH_SCHEME + " "):
        raise DeviceAuthFailure(f"device requests must carry an `Authorization: {AUTH_SCHEME} ...` signature header")
    params = dict(_PARAM.findall(header))
    try:
        device_id, ts, nonce, sig = params["id"], int(params["ts"]), params["nonce"], b64d(params["sig"])
    except (KeyError, ValueError):
        raise DeviceAuthFailure("malformed device signature header: id, ts, nonce and sig are required") from None
    if not (8 <= len(nonce) <= 64):
        raise DeviceAuthFailure("nonce must be 8 to 64 characters")
    device = db.get(Device, device_id)
    if device is None:
        raise DeviceAuthFailure("unknown camera: enrol it first (`temoin camera enroll`)")
    try:
        content = _signed_content(params, digest_header, body)
    except ValueError as exc:
        raise DeviceAuthFailure(str(exc), device if device.status == "active" else None) from None
    # The signature first: an unsigned request naming a revoked camera must not flood the journal.
    if not verify(device.public_key, sig, signing_string(method, path, ts, nonce, content)):
        raise DeviceAuthFailure(
            "device signature invalid (forged, signed for another request or body, or "
            "an old-style signature without the body's digest: update the camera)",
            device if device.status == "active" else None,
        )
    if device.status != "active":
        raise DeviceRevoked("this camera has been revoked", device)
    if abs(time.time() - ts) > p.settings.device_clock_window_s:
        raise DeviceAuthFailure("device clock too far from the platform's: sync the camera's clock", device)
    db.add(DeviceNonce(device_id=device_id, nonce=nonce))
    try:
        db.flush()
    except IntegrityError:
        db.rollback()
        raise DeviceAuthFailure("replayed request: this signature was already used", device) from None
    return device


def purge_nonces(p: Context, db: Session, now: datetime | None = None) -> int:
    """Forget the nonces no request can replay any more (older than twice the clock window); how many. Not
    committed here."""
    cutoff = (now or utcnow()) - timedelta(seconds=2 * p.settings.device_clock_window_s)
    result = cast("CursorResult[Any]", db.execute(delete(DeviceNonce).where(DeviceNonce.at < cutoff)))
    return result.rowcount or 0
