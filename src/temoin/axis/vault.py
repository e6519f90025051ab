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
from datetime import UTC, datetime

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin.axis import e2e
from temoin.axis.connection import private_key
from temoin.axis.models import AxisContainer, AxisObject
from temoin.axis.objects import FIRST_SLOT, device_public_key, epoch, read_object, recording_metadata, text
from temoin.db import utcnow
from temoin.errors import Conflict, Forbidden, InvalidInput
from temoin.evidence.chain import chain_links
from temoin.evidence.manifest import Receipt, SignedReceipt
from temoin.geo.communes import commune_of
from temoin.geo.territory import contains
from temoin.identity.devices import device_actor
from temoin.identity.models import Device, Tenant, User
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.law.profiles import get_profile
from temoin.vault.catalogue import is_axis
from temoin.vault.context import VaultContext
from temoin.vault.field_checks import Flag
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

    Raises InvalidInput (nothing changed) when it cannot be stored: no clip, a clip whose body never arrived."""
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
    track = _track(p, db, tenant, container, objects)
    categories, marks = _bookmarks(p, db, tenant, container, objects)
    meta = container.meta or {}
    first_start = _clip_time(clips[0], "StartTime")
    last_stop = max(_clip_time(c, "StopTime") for c in clips)
    started = epoch(meta, "StartTime") or first_start
    ended = epoch(meta, "StopTime") or last_stop
    hashes = [bytes.fromhex(c.sha256) for c in clips]
    links = chain_links(rec.id, hashes)
    now = utcnow()

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
        }

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
            "agent_id": rec.agent_ref,
            "started_at": started.isoformat(),
            "ended_at": ended.isoformat(),
            "gps_track": track,
            "segments": [
                {
                    "index": i,
                    "sha256": c.sha256,
                    "size": c.size,
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
    # Every staged body must be whole on disk before anything moves (a blob lost to a crash is named here).
    final = {c.name: blob_key(tenant.slug, rec.id, i) for i, c in enumerate(clips)}
    for obj in objects.values():
        key = blob_key(tenant.slug, container.storage_id, obj.slot)
        # Promoted already by an earlier try that died before its commit: the move is idempotent.
        if p.store.staged_size(key) == 0 and not p.store.exists(final.get(obj.name, key)):
            raise InvalidInput(
                f"object {obj.name!r} has no stored body (lost in a crash?): upload it again, then set Status Complete"
            )
    for index, clip in enumerate(clips):  # the clips become the recording's segments, in time order
        p.store.promote(blob_key(tenant.slug, rec.id, clip.slot), blob_key(tenant.slug, rec.id, index))
    for obj in objects.values():
        if obj.kind != "clip":
            p.store.promote(blob_key(tenant.slug, rec.id, obj.slot))
    rec.segments = [
        Segment(
            index=i,
            size=c.size,
            sha256=c.sha256,
            chain=links[i].hex(),
            started_at=_clip_time(c, "StartTime"),
            duration_s=(_clip_time(c, "StopTime") - _clip_time(c, "StartTime")).total_seconds(),
            complete=True,
        )
        for i, c in enumerate(clips)
    ]
    for i, clip in enumerate(clips):
        clip.slot = i  # its blob now lives at the segment's index
    profile = get_profile(tenant.profile)
    rec.started_at, rec.ended_at = started, ended
    rec.retention_until = profile.retention.deadline(started)
    rec.categories = categories
    rec.commune = commune_of(tenant.territory, ((f["lat"], f["lon"]) for f in track))
    # Place (R241-10): a GNSS fix outside the authorised territory flags the recording, as for native cameras.
    rec.outside_territory = bool(tenant.territory) and any(
        not contains(tenant.territory, f["lat"], f["lon"]) for f in track
    )
    if not tenant.territory:
        rec.flags = [Flag.TERRITORY_UNKNOWN.value]
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
    encrypted = any(key_object_for(c.name, objects) for c in clips)
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
                "integrity": PROOF,
            },
        ),
        tenant,
    )
    db.commit()
    _sweep_staging(p, tenant, rec.id)
    return rec


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
    """The clip decrypted on the fly from its original bytes, when the camera encrypted it; None otherwise."""
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


def clip_plaintext(p: VaultContext, db: Session, rec: Recording, index: int) -> bytes | None:
    """For playback of a clip the camera encrypted: its plaintext (None if it was not encrypted)."""
    container = db.scalar(select(AxisContainer).where(AxisContainer.recording_id == rec.id))
    if container is None:
        return None
    tenant = db.get_one(Tenant, rec.tenant_id)
    objects = {o.name: o for o in db.scalars(select(AxisObject).where(AxisObject.container_id == container.id))}
    clip = next((o for o in objects.values() if o.kind == "clip" and o.slot == index), None)
    key_obj = key_object_for(clip.name, objects) if clip else None
    if clip is None or key_obj is None:
        return None
    from temoin.evidence import crypto

    key_file = e2e.KeyFile(read_object(p, db, tenant, container, key_obj))
    assert rec.wrapped_key is not None, "an Axis recording gets its data key when its container opens (store)"
    dk = crypto.unwrap_key(p.keyring.master_key, rec.wrapped_key, rec.id)
    with p.store.open(blob_key(tenant.slug, rec.id, index)) as fh:
        return b"".join(
            e2e.decrypt(private_key(p, db, tenant.id, key_file.public_key_id), key_file, crypto.open_records(fh, dk))
        )


PROVENANCE = "axis-body-worn"


def package_fields(p: VaultContext, db: Session, rec: Recording) -> dict:
    """What a package carries of an Axis recording in place of the device-signed manifest: the vault's manifest
    document (hashes on arrival) that its signed receipt states. Refused for clips the camera encrypted."""
    container = db.scalar(select(AxisContainer).where(AxisContainer.recording_id == rec.id))
    if (
        container is not None
        and db.scalar(
            select(AxisObject.id).where(AxisObject.container_id == container.id, AxisObject.kind == "key").limit(1)
        )
        is not None
    ):
        raise Conflict(
            f"{rec.id} came through the Axis Body Worn system with clips encrypted by the "
            "camera: packages of such recordings are not supported yet"
        )
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
