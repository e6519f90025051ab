"""From what the Body Worn system wrote to Témoin's own records: agents, cameras, recordings, quarantine.

A recording container turning Complete becomes a stored recording: its clips (sorted by start time) become its
segments in place (same sealed bytes, same data key), the GNSS trail its track, bookmarks its categories; the vault
signs a receipt and journals the collection. Axis cameras do not sign their recordings for the destination, so the
integrity proof starts at the vault's SHA-256 of each object on arrival (kept in the recording's manifest document,
which is hashed in turn); videos signed by the camera (StoreSignedVideo) are kept byte for byte.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin.axis import e2e
from temoin.axis.connection import private_key
from temoin.axis.models import AxisContainer, AxisObject
from temoin.axis.objects import (
    FIRST_SLOT,
    data_key,
    device_public_key,
    epoch,
    read_object,
    recording_metadata,
    text,
)
from temoin.db import utcnow
from temoin.errors import Forbidden, InvalidInput, NotFound
from temoin.evidence import crypto
from temoin.evidence.chain import chain_links
from temoin.evidence.manifest import Receipt, SignedReceipt
from temoin.geo.communes import commune_of
from temoin.identity.devices import device_actor
from temoin.identity.models import Device, Tenant, User
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.law.profiles import get_profile
from temoin.vault import field_checks
from temoin.vault.context import VaultContext
from temoin.vault.field_checks import Flag
from temoin.vault.integrity import is_axis
from temoin.vault.models import Quarantine, Recording, RecordingState, Segment
from temoin.vault.storage import blob_key

MANIFEST_FORMAT = "axis-body-worn/1"
PROOF = (
    "no device signature: Axis cameras do not sign recordings for the content destination; the integrity "
    "proof starts at the SHA-256 the vault computed of each object on arrival"
)
_POINT = re.compile(r"^\s*POINT\s*\(\s*(-?[0-9.]+)\s+(-?[0-9.]+)\s*\)\s*$", re.IGNORECASE)


def match_user(db: Session, tenant: Tenant, obj: AxisObject) -> None:
    """A Users/ object stands for the Témoin agent whose matricule is its UserID, if there is one."""
    user_id = text(obj.meta, "UserID")
    agent = (
        db.scalar(select(User).where(User.tenant_id == tenant.id, User.agent_number == user_id)) if user_id else None
    )
    obj.user_id = agent.id if agent else None


def register_device(p: VaultContext, db: Session, tenant: Tenant, obj: AxisObject) -> None:
    """A Devices/ object is a Témoin camera of the tenant (counted against the prefect's authorisation)."""
    if len(obj.name) > 128:
        raise InvalidInput("a camera serial number is at most 128 characters")
    active = (text(obj.meta, "Active") or "true").lower() != "false"
    label = (text(obj.meta, "Name") or obj.name)[:200]
    device = db.get(Device, obj.device_id) if obj.device_id else None
    actor = Actor(kind="system", id="axis-body-worn", name="Axis Body Worn system", function="content source")
    if device is None:
        device = Device(
            id=f"axis-cam-{uuid.uuid4().hex[:12]}",
            tenant_id=tenant.id,
            serial=obj.name,
            label=label,
            public_key=device_public_key(),
            status="active" if active else "revoked",
            revoked_at=None if active else utcnow(),
        )
        db.add(device)
        db.flush()
        obj.device_id = device.id
        p.record(
            db,
            EntryDraft(
                action=Action.ADMINISTRATION,
                event="device.enrolled",
                actor=actor,
                cameras=[device.id],
                details={"serial": obj.name, "label": label, "source": "axis", "model": text(obj.meta, "Model")},
            ),
            tenant,
        )
        return
    device.label = label
    if active and device.status != "active":
        device.status, device.revoked_at = "active", None
        p.record(
            db,
            EntryDraft(
                action=Action.ADMINISTRATION,
                event="device.reactivated",
                actor=actor,
                cameras=[device.id],
                details={"source": "axis"},
            ),
            tenant,
        )
    elif not active and device.status == "active":
        device.status, device.revoked_at = "revoked", utcnow()
        p.record(
            db,
            EntryDraft(
                action=Action.ADMINISTRATION,
                event="device.revoked",
                actor=actor,
                cameras=[device.id],
                details={"source": "axis"},
            ),
            tenant,
        )


def quarantine_rejected(p: VaultContext, db: Session, tenant: Tenant, container: AxisContainer) -> None:
    """Content the Body Worn system rejected is kept apart for review, with the reason it gives."""
    original = text(container.meta, "RejectedContentOriginalContainer") or ""
    reason = text(container.meta, "RejectedContentReason") or "no reason given"
    db.add(
        Quarantine(
            tenant_id=tenant.id,
            device_id=f"axis:{original or container.name}"[:128],
            recording_id=None,
            reason=f"Axis Body Worn rejected content, kept in container {container.name}: {reason}",
            evidence_path=None,
        )
    )
    p.record(
        db,
        EntryDraft(
            action=Action.SECURITY,
            event="axis.rejected_content",
            actor=Actor(kind="system", id="axis-body-worn", name="Axis Body Worn system", function="content source"),
            details={"container": container.name, "original_container": original, "reason": reason},
        ),
        tenant,
    )


def _track(
    p: VaultContext, db: Session, tenant: Tenant, container: AxisContainer, objects: dict[str, AxisObject]
) -> list[dict]:
    """The GNSS trail as Témoin fixes ({t, lat, lon}); WKT POINT(x y) is longitude, latitude."""
    fixes: list[dict] = []
    for obj in objects.values():
        if obj.kind != "gnss":
            continue
        raw = _plain(p, db, tenant, container, obj, objects)
        try:
            entries = orjson.loads(raw).get("CoordinateEntries") or []
        except (orjson.JSONDecodeError, AttributeError):
            raise InvalidInput(
                f"GNSS trail {obj.name!r} is not the JSON the integration API describes (CoordinateEntries)"
            ) from None
        for entry in entries:
            match = _POINT.match(str(entry.get("LocationWKT", "")))
            if not match:
                continue
            lon, lat = float(match[1]), float(match[2])
            try:
                at = datetime.fromisoformat(str(entry["Timestamp"]).replace("Z", "+00:00")).astimezone(UTC)
            except (KeyError, ValueError):
                continue
            if -90 <= lat <= 90 and -180 <= lon <= 180:
                fixes.append({"t": at.isoformat().replace("+00:00", "Z"), "lat": lat, "lon": lon, "accuracy_m": None})
    return sorted(fixes, key=lambda f: f["t"])


def key_object_for(name: str, objects: dict[str, AxisObject]) -> AxisObject | None:
    """The key file of an encrypted object: same name, extension `.key`."""
    stem = name.rsplit(".", 1)[0]
    found = objects.get(stem + ".key")
    return found if found is not None and found.kind == "key" else None


def _plain(
    p: VaultContext,
    db: Session,
    tenant: Tenant,
    container: AxisContainer,
    obj: AxisObject,
    objects: dict[str, AxisObject],
) -> bytes:
    """A small object's content, decrypted with the tenant's private key when the camera encrypted it."""
    raw = read_object(p, db, tenant, container, obj)
    key_obj = key_object_for(obj.name, objects)
    if key_obj is None:
        return raw
    key_file = e2e.KeyFile(read_object(p, db, tenant, container, key_obj))
    return b"".join(e2e.decrypt(private_key(p, db, tenant.id, key_file.public_key_id), key_file, [raw]))


def _bookmarks(
    p: VaultContext, db: Session, tenant: Tenant, container: AxisContainer, objects: dict[str, AxisObject]
) -> tuple[list[str], list[dict]]:
    categories: set[str] = set()
    marks = []
    for obj in objects.values():
        if obj.kind != "bookmark":
            continue
        cat = text(obj.meta, "CategoryID") or text(obj.meta, "CategoryName")
        if cat:
            categories.add(cat.strip()[:64])
        marks.append(
            {
                "name": obj.name,
                "category_id": text(obj.meta, "CategoryID"),
                "category_name": text(obj.meta, "CategoryName"),
                "tags": [t for t in (text(obj.meta, "Tags") or "").split(";") if t],
                "start": text(obj.meta, "StartTime"),
                "end": text(obj.meta, "EndTime"),
                "description": read_object(p, db, tenant, container, obj).decode("utf-8", "replace")[:4000],
            }
        )
    return sorted(categories), marks


def complete(p: VaultContext, db: Session, tenant: Tenant, container: AxisContainer) -> Recording:
    """The recording container is Complete: verify what is there, store it as a recording, sign, journal, commit.

    Raises InvalidInput (nothing changed) when it cannot be stored: no clip, a clip whose body never arrived, an
    encrypted clip or trail that does not decrypt (then journaled and quarantined once, see _undecryptable)."""
    rec = db.get(Recording, container.recording_id)
    if rec is None or rec.state == RecordingState.DELETED:
        raise Forbidden(f"the recording of container {container.name!r} was deleted")
    if rec.state != RecordingState.RECEIVING:
        raise Forbidden(f"the recording of container {container.name!r} is already {rec.state}")
    objects = {o.name: o for o in db.scalars(select(AxisObject).where(AxisObject.container_id == container.id))}
    clips = sorted(
        (o for o in objects.values() if o.kind == "clip"), key=lambda o: (epoch(o.meta, "StartTime"), o.name)
    )
    if not clips:
        raise InvalidInput(f"recording container {container.name!r} is Complete but holds no clip: nothing to store")
    device = db.get(Device, rec.device_id)
    assert device is not None
    # Every staged body must be whole on disk before anything moves (a blob lost to a crash is named here).
    keys = {c.name: key_object_for(c.name, objects) for c in clips}
    final = {c.name: blob_key(tenant.slug, rec.id, i) for i, c in enumerate(clips) if keys[c.name] is None}
    for obj in objects.values():
        key = blob_key(tenant.slug, container.storage_id, obj.slot)
        # Promoted already by an earlier try that died before its commit: the move is idempotent.
        if p.store.staged_size(key) == 0 and not p.store.exists(final.get(obj.name, key)):
            raise InvalidInput(
                f"object {obj.name!r} has no stored body (lost in a crash?): upload it again, then set Status Complete"
            )
    dk = data_key(p, db, container)
    try:
        track = _track(p, db, tenant, container, objects)
        # The segments are what was filmed: clips the camera encrypted are decrypted once, here, with the key the
        # connection file gave the Axis system; the received bytes stay as evidence beside them.
        bodies = [
            _decrypt_clip(p, db, tenant, container, dk, c, key_obj, blob_key(tenant.slug, rec.id, i))
            if (key_obj := keys[c.name]) is not None
            else _plain_clip(p, dk, c, blob_key(tenant.slug, rec.id, c.slot), final[c.name])
            for i, c in enumerate(clips)
        ]
    except (e2e.Undecryptable, NotFound) as exc:  # NotFound: no private key of that PublicKeyId for the tenant
        raise InvalidInput(_undecryptable(p, db, tenant, container, rec, str(exc))) from exc
    categories, marks = _bookmarks(p, db, tenant, container, objects)
    meta = container.meta or {}
    first_start = _clip_time(clips[0], "StartTime")
    last_stop = max(_clip_time(c, "StopTime") for c in clips)
    started = epoch(meta, "StartTime") or first_start
    ended = epoch(meta, "StopTime") or last_stop
    user_obj = db.scalar(
        select(AxisObject)
        .join(AxisContainer)
        .where(
            AxisContainer.tenant_id == tenant.id,
            AxisContainer.kind == "users",
            AxisObject.name == container.name.rsplit("_", 2)[0],
        )
    )
    systems = [
        o.name
        for o in db.scalars(
            select(AxisObject)
            .join(AxisContainer)
            .where(AxisContainer.tenant_id == tenant.id, AxisContainer.kind == "system")
        )
    ]
    hashes = [bytes.fromhex(b.sha256) for b in bodies]
    links = chain_links(rec.id, hashes)
    now = utcnow()
    body_of = {c.name: b for c, b in zip(clips, bodies, strict=True)}
    agent_ref = (text(user_obj.meta, "UserID") if user_obj else None) or rec.agent_ref
    # The checks a native recording gets at ingest (vault.field_checks): the Axis system measures no clock offset
    # for Témoin, so its times are its word (never deleted on it alone); the wearer against Témoin's shifts.
    checked = field_checks.check_declared(
        db,
        tenant,
        device,
        field_checks.Declared(
            started_at=started,
            ended_at=ended,
            clock_offset_ms=None,
            agent_id=agent_ref,
            fixes=[(f["lat"], f["lon"]) for f in track],
        ),
        get_profile(tenant.profile),
        now,
        p.settings.device_clock_window_s,
    )

    def describe(o: AxisObject) -> dict:
        key_obj = key_object_for(o.name, objects) if o.kind in ("clip", "gnss") else None
        return {
            "name": o.name,
            "kind": o.kind,
            "size": o.size,
            "sha256": o.sha256,
            "md5": o.md5,
            "received_at": o.received_at.isoformat(),
            "metadata": recording_metadata(o.meta),
            **({"encrypted_with": key_obj.name} if key_obj else {}),
            **(body_of[o.name].described(key_obj is not None) if o.name in body_of else {}),
        }

    doc = {
        "axis": {
            "container": container.name,
            "metadata": recording_metadata(meta),
            "objects": [describe(o) for o in sorted(objects.values(), key=lambda o: o.name)],
            "user": {"uuid": user_obj.name, "metadata": recording_metadata(user_obj.meta)} if user_obj else None,
            "camera": {"serial": device.serial, "label": device.label},
            "systems": systems,
            "bookmarks": marks,
            "segments": [c.name for c in clips],
        },
        "format": MANIFEST_FORMAT,
        "integrity": PROOF,
        "manifest": {
            "recording_id": rec.id,
            "camera_id": device.id,
            "agent_id": checked.agent_ref,
            "declared_agent_id": agent_ref,
            "started_at": started.isoformat(),
            "ended_at": ended.isoformat(),
            "flags": checked.flags,
            "gps_track": track,
            "segments": [
                {
                    "index": i,
                    "sha256": body_of[c.name].sha256,
                    "size": body_of[c.name].size,
                    "chain": links[i].hex(),
                    "started_at": _clip_time(c, "StartTime").isoformat(),
                    "duration_s": (_clip_time(c, "StopTime") - _clip_time(c, "StartTime")).total_seconds(),
                }
                for i, c in enumerate(clips)
            ],
            "chain_head": links[-1].hex(),
        },
    }
    manifest = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()
    for clip in clips:  # the clips become the recording's segments, in time order
        if clip.name in final:
            p.store.promote(blob_key(tenant.slug, rec.id, clip.slot), final[clip.name])
    for obj in objects.values():
        if obj.name not in final:  # key files, trails, bookmarks, and the received bytes of encrypted clips
            p.store.promote(blob_key(tenant.slug, rec.id, obj.slot))
    rec.segments = [
        Segment(
            index=i,
            size=body_of[c.name].size,
            sha256=body_of[c.name].sha256,
            chain=links[i].hex(),
            started_at=_clip_time(c, "StartTime"),
            duration_s=(_clip_time(c, "StopTime") - _clip_time(c, "StartTime")).total_seconds(),
            complete=True,
        )
        for i, c in enumerate(clips)
    ]
    for i, clip in enumerate(clips):
        if clip.name in final:
            clip.slot = i  # its blob now lives at the segment's index
    profile = get_profile(tenant.profile)
    rec.started_at, rec.ended_at = checked.started_at, checked.ended_at
    rec.declared_started_at, rec.declared_agent_ref = checked.declared_started_at, checked.declared_agent_ref
    rec.agent_ref, rec.agent_user_id = checked.agent_ref, checked.agent_user_id
    rec.retention_until = profile.retention.deadline(checked.retention_from)
    rec.categories = categories
    rec.commune = commune_of(tenant.territory, ((f["lat"], f["lon"]) for f in track))
    # Place (R241-10): a GNSS fix outside the authorised territory flags the recording, as for native cameras.
    rec.outside_territory = checked.outside_territory
    # A clip that is no MP4 or Matroska file is kept as received, but flagged: for instance clips the camera
    # encrypted whose key files never came (review says so; playback and redaction will fail on it).
    rec.flags = list(checked.flags) + ([Flag.CLIP_NOT_VIDEO.value] if not all(b.video for b in bodies) else [])
    rec.manifest, rec.manifest_sha256 = manifest, hashlib.sha256(manifest.encode()).hexdigest()
    rec.chain_head, rec.segment_count, rec.size_bytes = links[-1].hex(), len(clips), sum(c.size for c in clips)
    rec.state_reason = "received through the Axis Body Worn system: " + PROOF
    with p.keyring.signing() as signer:
        receipt = Receipt(
            recording_id=rec.id,
            camera_id=device.id,
            tenant=tenant.slug,
            manifest_sha256=rec.manifest_sha256,
            chain_head=rec.chain_head,
            segment_count=rec.segment_count,
            total_bytes=rec.size_bytes,
            stored_at=now,
            retention_until=rec.retention_until,
            platform_key_id=signer.key_id,
        )
        signed = SignedReceipt(receipt=receipt, signature=signer.sign(receipt.signing_bytes()))
    rec.state, rec.stored_at, rec.receipt = RecordingState.STORED, now, signed.model_dump_json()
    container.completed_at = now
    encrypted = any(keys.values())
    field_checks.journal(p, db, tenant, device, rec.id, checked, None)
    p.record(
        db,
        EntryDraft(
            action=Action.COLLECTION,
            event="recording.ingested",
            actor=device_actor(device),
            recordings=[rec.id],
            cameras=[device.id],
            details={
                "via": "axis-body-worn",
                "container": container.name,
                "agent": rec.agent_ref,
                "started_at": started.isoformat(),
                "ended_at": ended.isoformat(),
                "trigger": rec.trigger,
                "axis_trigger_on": text(meta, "TriggerOn"),
                "bytes": rec.size_bytes,
                "segments": rec.segment_count,
                "manifest_sha256": rec.manifest_sha256,
                "retention_until": rec.retention_until.isoformat(),
                "encrypted_by_camera": encrypted,
                "gnss_fixes": len(track),
                "bookmarks": len(marks),
                "outside_territory": rec.outside_territory,
                "signed_video": sum(b.signed_video for b in bodies),
                "integrity": PROOF,
                **field_checks.collected_details(rec.flags, rec.declared_started_at, rec.declared_agent_ref),
            },
        ),
        tenant,
    )
    db.commit()
    _sweep_staging(p, tenant, rec.id)
    return rec


# Axis Signed Video (StoreSignedVideo): the camera signs its H.264/H.265 stream in SEI "user data unregistered"
# messages carrying this UUID (Axis's signed-video-framework). Témoin notes their presence; it does not verify them.
SIGNED_VIDEO_UUID = b"Signed Video...0"
SIGNED_VIDEO_SCAN = 8 * 1024 * 1024  # signatures come every GOP: a signed clip shows one in its first MiBs


@dataclass(frozen=True)
class Body:
    """A clip as it becomes a segment: the SHA-256 and size of what was filmed (decrypted if the camera encrypted
    it), and whether it carries Axis signed-video SEIs."""

    sha256: str
    size: int
    signed_video: bool
    video: bool  # starts as an MP4 or Matroska file

    def described(self, decrypted: bool) -> dict:
        return {
            "signed_video": self.signed_video,
            "recognised_as_video": self.video,
            **({"decrypted": {"sha256": self.sha256, "size": self.size}} if decrypted else {}),
        }


def _records(p: VaultContext, dk: bytes, staged: str, final: str) -> Iterator[bytes]:
    """A body's plaintext records, from where it is now (staged, or promoted by an earlier try cut by a crash)."""
    opener = p.store.open if p.store.exists(final) else p.store.open_staged
    with opener(final if p.store.exists(final) else staged) as fh:
        yield from crypto.open_records(fh, dk)


_MP4_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"styp", b"moof")
_MATROSKA = b"\x1a\x45\xdf\xa3"  # EBML header


def _is_video(head: bytes) -> bool:
    """The first bytes of an MP4 (a top-level box) or Matroska (EBML) file, the containers Axis cameras write."""
    return head[4:8] in _MP4_BOXES or head.startswith(_MATROSKA)


class _SignedVideoScan:
    def __init__(self, limit: int | None) -> None:
        self.found, self.seen, self.limit, self.tail = False, 0, limit, b""
        self.head = b""  # the first bytes, to recognise the container

    def update(self, chunk: bytes) -> None:
        if len(self.head) < 8:
            self.head += chunk[: 8 - len(self.head)]
        if self.found or (self.limit is not None and self.seen >= self.limit):
            return
        self.found = SIGNED_VIDEO_UUID in self.tail + chunk[: len(SIGNED_VIDEO_UUID)] or SIGNED_VIDEO_UUID in chunk
        self.tail = chunk[-len(SIGNED_VIDEO_UUID) :]
        self.seen += len(chunk)


def _plain_clip(p: VaultContext, dk: bytes, clip: AxisObject, staged: str, final: str) -> Body:
    """A clip the camera did not encrypt: its hashes on arrival, what its first MiBs show."""
    scan = _SignedVideoScan(SIGNED_VIDEO_SCAN)
    for chunk in _records(p, dk, staged, final):
        scan.update(chunk)
        if scan.found or scan.seen >= SIGNED_VIDEO_SCAN:
            break
    return Body(clip.sha256, clip.size, scan.found, _is_video(scan.head))


def _decrypt_clip(
    p: VaultContext,
    db: Session,
    tenant: Tenant,
    container: AxisContainer,
    dk: bytes,
    clip: AxisObject,
    key_obj: AxisObject,
    segment: str,
) -> Body:
    """Decrypt a clip the camera encrypted into its segment blob (sealed like any other), streamed, and hash it.

    AES-CBC has no authentication: what proves the bytes is the ETag (MD5) checked on upload and the SHA-256 taken on
    arrival; the padding check here catches a truncated or foreign ciphertext."""
    key_file = e2e.KeyFile(read_object(p, db, tenant, container, key_obj))
    private = private_key(p, db, tenant.id, key_file.public_key_id)
    received = blob_key(tenant.slug, container.storage_id, clip.slot)
    sha, size, scan = hashlib.sha256(), 0, _SignedVideoScan(None)
    if p.store.exists(segment):  # decrypted and promoted by an earlier try cut before its commit
        with p.store.open(segment) as fh:
            for chunk in crypto.open_records(fh, dk):
                sha.update(chunk)
                scan.update(chunk)
                size += len(chunk)
        return Body(sha.hexdigest(), size, scan.found, _is_video(scan.head))
    p.store.discard_staged(segment)
    pending: bytes | None = crypto.new_header()  # the blob header, written with the first record
    assert pending is not None
    sealer = crypto.Sealer(dk, pending)
    buffer = bytearray()
    try:
        for plain in e2e.decrypt(private, key_file, _records(p, dk, received, received)):
            sha.update(plain)
            scan.update(plain)
            size += len(plain)
            buffer += plain
            while len(buffer) >= crypto.RECORD_BYTES:
                p.store.append_staged(segment, pending, *sealer.seal_record(bytes(buffer[: crypto.RECORD_BYTES])))
                pending = None
                del buffer[: crypto.RECORD_BYTES]
        if buffer or pending is not None:
            p.store.append_staged(segment, pending, *(sealer.seal_record(bytes(buffer)) if buffer else ()))
        p.store.sync_staged(segment)
        p.store.promote(segment)
    except BaseException:
        p.store.discard_staged(segment)
        raise
    return Body(sha.hexdigest(), size, scan.found, _is_video(scan.head))


def _undecryptable(
    p: VaultContext, db: Session, tenant: Tenant, container: AxisContainer, rec: Recording, why: str
) -> str:
    """The recording cannot be stored as video Témoin can read: nothing is stored (the received bytes stay staged,
    Complete may be sent again), and the refusal is journaled and quarantined once for the operator to act on."""
    db.rollback()
    reason = (
        f"Axis recording container {container.name} could not be decrypted: {why}. The Axis system encrypts for the "
        "public key of the connection file it was given: import Témoin's current connection file in AXIS Body Worn "
        "Manager (temoin axis connection-file); clips already encrypted for a key Témoin never issued cannot be read "
        "by Témoin"
    )[:2000]
    where = f"axis:{container.name}"[:128]
    same = (Quarantine.tenant_id == tenant.id, Quarantine.device_id == where, Quarantine.reason == reason)
    if db.scalar(select(Quarantine.id).where(*same).limit(1)):  # this tenant's: another's never hides it
        return reason
    db.add(Quarantine(tenant_id=tenant.id, device_id=where, recording_id=None, reason=reason, evidence_path=None))
    p.record(
        db,
        EntryDraft(
            action=Action.SECURITY,
            event="axis.undecryptable",
            actor=Actor(kind="system", id="axis-body-worn", name="Axis Body Worn system", function="content source"),
            recordings=[rec.id],
            details={"container": container.name, "reason": why[:500]},
        ),
        tenant,
    )
    db.commit()
    return reason


def _clip_time(clip: AxisObject, key: str) -> datetime:
    """StartTime or StopTime of a stored clip: present, since store._check_clip refuses a clip without both."""
    at = epoch(clip.meta, key)
    assert at is not None, f"clip {clip.name!r} was stored without {key} (store._check_clip requires it)"
    return at


def _sweep_staging(p: VaultContext, tenant: Tenant, rec_id: str) -> None:
    """Bodies cut by a crash (never an object) are left in staging: gone once the recording is stored."""
    for key in p.store.staged_keys(f"{tenant.slug}/{rec_id}"):
        name = key.rsplit("/", 1)[-1]
        if name.endswith(".seg") and int(name.split(".")[0]) >= FIRST_SLOT:
            p.store.discard_staged(key)


def playback(
    p: VaultContext, db: Session, rec: Recording, index: int, original: Iterator[bytes]
) -> Iterator[bytes] | None:
    """The clip decrypted on the fly from its original bytes, for a recording stored before clips were decrypted
    at ingest (its segment is still the received ciphertext); None otherwise (since then, a segment is what was
    filmed, and the encrypted clip's slot is no segment index)."""
    if not is_axis(rec):
        return None
    container = db.scalar(select(AxisContainer).where(AxisContainer.recording_id == rec.id))
    if container is None:
        return None
    objects = {o.name: o for o in db.scalars(select(AxisObject).where(AxisObject.container_id == container.id))}
    clip = next((o for o in objects.values() if o.kind == "clip" and o.slot == index), None)
    key_obj = key_object_for(clip.name, objects) if clip else None
    if key_obj is None:
        return None
    tenant = db.get_one(Tenant, rec.tenant_id)
    key_file = e2e.KeyFile(read_object(p, db, tenant, container, key_obj))
    return e2e.decrypt(private_key(p, db, tenant.id, key_file.public_key_id), key_file, original)


PROVENANCE = "axis-body-worn"


@dataclass(frozen=True)
class MediaNotes:
    """What review says of an Axis recording's clips, from the manifest document the vault wrote on arrival."""

    clips: int
    encrypted: int  # encrypted by the camera for Témoin, decrypted on arrival (the received bytes are kept)
    signed_video: int  # carrying Axis signed-video SEIs (kept untouched; not verified by Témoin)


def media_notes(rec: Recording) -> MediaNotes | None:
    if not is_axis(rec):
        return None
    try:
        clips = [o for o in orjson.loads(rec.manifest)["axis"]["objects"] if o.get("kind") == "clip"]
    except (ValueError, KeyError, TypeError):
        return None  # an altered document: review already says so (integrity)
    return MediaNotes(
        len(clips), sum(1 for c in clips if c.get("encrypted_with")), sum(1 for c in clips if c.get("signed_video"))
    )


def package_fields(p: VaultContext, db: Session, rec: Recording) -> dict:
    """What a package carries of an Axis recording in place of the device-signed manifest: the vault's manifest
    document (hashes on arrival, and of the decrypted clips when the camera encrypted them) that its signed receipt
    states. The package carries the decrypted clips (the segments): the received ciphertext stays in the vault."""
    container = db.scalar(select(AxisContainer).where(AxisContainer.recording_id == rec.id))
    doc = orjson.loads(rec.manifest)
    return {
        "provenance": PROVENANCE,
        "integrity": PROOF,
        "trigger_detail": text(container.meta, "TriggerOn") if container else None,
        "pre_event_buffer_s": None,
        "gps_track": doc["manifest"]["gps_track"],
        "device": None,
        "device_manifest": None,
        "vault_manifest": {"sha256": rec.manifest_sha256, "document": rec.manifest},
    }
