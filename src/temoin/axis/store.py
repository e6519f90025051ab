"""The Swift subset the Axis Body Worn system speaks, with the meaning the integration API gives each container.

Containers: `System` (the System ID object; Capabilities.json and Categories.json are Témoin's own), `Users`,
`Devices` (matched to Témoin's agents and cameras), one per recording (`<UserID>_<BWCSerial>_<YYYYMMDDTHHMMSSZ>`,
a Témoin recording in the `receiving` state until its Status turns Complete), and `RejectedContent_<time>_<uuid>`
(kept and quarantined, never refused).

Every object body is sealed as it arrives (evidence.crypto records, bounded memory) under a blob slot of its
container; a recording's bodies use the recording's own data key, so they become its segments in place.
Metadata keys are compared case-insensitively; values are kept exactly as received (percent-encoded UTF-8).
"""

from __future__ import annotations

import hashlib
import queue
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from temoin.axis import vault as axis_vault
from temoin.axis.models import AxisContainer, AxisObject
from temoin.axis.objects import FIRST_SLOT, MAX_SMALL_OBJECT, data_key, epoch, text, title_case
from temoin.db import utcnow
from temoin.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Unavailable,
)
from temoin.evidence import crypto
from temoin.identity.devices import active_cameras
from temoin.identity.models import Device, Tenant, User
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.law.profiles import get_profile
from temoin.vault.context import VaultContext
from temoin.vault.integrity import AXIS_TRIGGER
from temoin.vault.models import Recording, RecordingState
from temoin.vault.storage import blob_key

# Swift's own limits on metadata (swift/common/constraints.py defaults).
MAX_META_NAME, MAX_META_VALUE, MAX_META_COUNT, MAX_META_OVERALL = 128, 256, 90, 4096
MAX_CONTAINER_NAME, MAX_OBJECT_NAME = 256, 1024
GENERATED = ("Capabilities.json", "Categories.json")
EARLIEST = datetime(2010, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(hours=1)

_RECORDING = re.compile(r"^(?P<user>.+)_(?P<serial>[^_]+)_(?P<time>\d{8}T\d{6}Z)$")
_REJECTED = re.compile(r"^RejectedContent_(\d{8}T\d{6}Z|UnknownTime)_[^/]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class PaymentRequired(Forbidden):
    """No licence left: here, the prefect's authorisation has no room for another camera (Swift's 402)."""


class ChecksumMismatch(InvalidInput):
    """The body does not match the ETag the client sent (Swift answers 422)."""


class UploadIncomplete(InvalidInput):
    """Fewer bytes arrived than Content-Length announced: the client went away; nothing was kept."""


# --- names and metadata ------------------------------------------------------------------------------


def check_container_name(name: str) -> None:
    if (
        not name
        or len(name.encode()) > MAX_CONTAINER_NAME
        or "/" in name
        or name in (".", "..")
        or _CONTROL.search(name)
    ):
        raise InvalidInput(
            f"invalid container name {name[:80]!r}: 1 to {MAX_CONTAINER_NAME} bytes, no '/', "
            "no control character, not '.' or '..'"
        )


def check_object_name(name: str) -> None:
    if (
        not name
        or len(name.encode()) > MAX_OBJECT_NAME
        or _CONTROL.search(name)
        or any(part in (".", "..") for part in name.split("/"))
    ):
        raise InvalidInput(
            f"invalid object name {name[:80]!r}: 1 to {MAX_OBJECT_NAME} bytes, no control "
            "character, no '.' or '..' path segment"
        )


@dataclass(frozen=True)
class MetaChange:
    """Metadata from a request: keys to set (lower-cased, value as received) and keys to remove."""

    set: dict[str, str]
    remove: frozenset[str]

    @classmethod
    def from_headers(cls, headers: list[tuple[str, str]], kind: str) -> MetaChange:
        prefix, remove_prefix = f"x-{kind}-meta-", f"x-remove-{kind}-meta-"
        values: dict[str, str] = {}
        removed: set[str] = set()
        for name, value in headers:
            low = name.lower()
            if low.startswith(prefix) and len(low) > len(prefix):
                key = low[len(prefix) :]
                if len(key) > MAX_META_NAME:
                    raise InvalidInput(f"metadata name {key[:40]!r}... longer than {MAX_META_NAME} bytes")
                if len(value.encode()) > MAX_META_VALUE:
                    raise InvalidInput(f"metadata {title_case(key)} is longer than {MAX_META_VALUE} bytes")
                if _CONTROL.search(value):
                    raise InvalidInput(f"metadata {title_case(key)} holds a control character: percent-encode it")
                values[key] = value
            elif low.startswith(remove_prefix) and len(low) > len(remove_prefix):
                removed.add(low[len(remove_prefix) :])
        # An empty value deletes the key (Swift's rule for container metadata and POST).
        removed |= {k for k, v in values.items() if v == ""}
        return cls({k: v for k, v in values.items() if v != ""}, frozenset(removed))

    def merged_into(self, meta: dict[str, str]) -> dict[str, str]:
        out = {k: v for k, v in meta.items() if k not in self.remove}
        out.update(self.set)
        _check_totals(out)
        return out

    def as_new(self) -> dict[str, str]:
        _check_totals(self.set)
        return dict(self.set)


def _check_totals(meta: dict[str, str]) -> None:
    if len(meta) > MAX_META_COUNT:
        raise InvalidInput(f"more than {MAX_META_COUNT} metadata items")
    if sum(len(k) + len(v.encode()) for k, v in meta.items()) > MAX_META_OVERALL:
        raise InvalidInput(f"metadata larger than {MAX_META_OVERALL} bytes in all")


def _in_bounds(at: datetime, what: str) -> datetime:
    if not EARLIEST <= at <= utcnow() + FUTURE_SLACK:
        raise InvalidInput(
            f"{what} {at.isoformat()} is out of bounds (before {EARLIEST.year} or in the future): "
            "check the camera's clock; the recording cannot be stored"
        )
    return at


# --- containers --------------------------------------------------------------------------------------


def container_kind(name: str) -> str:
    if name in ("System", "Users", "Devices"):
        return name.lower()
    if _REJECTED.match(name):
        return "rejected"
    if _RECORDING.match(name):
        return "recording"
    raise InvalidInput(
        f"container {name[:80]!r} is none of System, Users, Devices, a recording "
        "(<UserID>_<BWCSerialNumber>_<YYYYMMDDTHHMMSSZ>) or RejectedContent_<time>_<id>"
    )


def find_container(db: Session, tenant: Tenant, name: str) -> AxisContainer:
    check_container_name(name)
    container = db.scalar(select(AxisContainer).where(AxisContainer.tenant_id == tenant.id, AxisContainer.name == name))
    if container is None:
        raise NotFound(f"no container {name[:80]!r}: create it with PUT first")
    return container


def _axis_actor(tenant: Tenant) -> Actor:
    return Actor(kind="system", id="axis-body-worn", name="Axis Body Worn system", function="content source")


def _user_object(db: Session, tenant: Tenant, user_uuid: str) -> AxisObject | None:
    return db.scalar(
        select(AxisObject)
        .join(AxisContainer)
        .where(AxisContainer.tenant_id == tenant.id, AxisContainer.kind == "users", AxisObject.name == user_uuid)
    )


def _device_object(db: Session, tenant: Tenant, serial: str) -> AxisObject | None:
    return db.scalar(
        select(AxisObject)
        .join(AxisContainer)
        .where(AxisContainer.tenant_id == tenant.id, AxisContainer.kind == "devices", AxisObject.name == serial)
    )


def _new_recording(p: VaultContext, db: Session, tenant: Tenant, name: str, meta: dict[str, str]) -> Recording:
    """A recording container names its user, camera and trigger time: all must be known (else 400)."""
    match = _RECORDING.match(name)
    assert match is not None
    user_obj = _user_object(db, tenant, match["user"])
    if user_obj is None or (text(user_obj.meta, "Active") or "true").lower() == "false":
        raise InvalidInput(
            f"unknown or disabled user {match['user'][:80]!r}: register (or re-enable) the user in "
            "AXIS Body Worn Manager so that it is written to Users/ first"
        )
    dev_obj = _device_object(db, tenant, match["serial"])
    device = db.get(Device, dev_obj.device_id) if dev_obj is not None and dev_obj.device_id else None
    if device is None or device.status != "active":
        raise InvalidInput(
            f"unknown or inactive camera {match['serial'][:80]!r}: register it in AXIS Body Worn "
            "Manager so that it is written to Devices/ first"
        )
    trigger_at = _in_bounds(
        datetime.strptime(match["time"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC), "the recording's trigger time"
    )
    started = epoch(meta, "StartTime") or trigger_at
    agent = db.get(User, user_obj.user_id) if user_obj.user_id else None
    agent_ref = (
        agent.agent_number
        if agent and agent.agent_number
        else text(user_obj.meta, "UserID") or text(user_obj.meta, "Name") or user_obj.name
    )[:128]
    rec_id = f"axis-{uuid.uuid4().hex[:20]}"
    profile = get_profile(tenant.profile)
    rec = Recording(
        id=rec_id,
        tenant_id=tenant.id,
        device_id=device.id,
        agent_ref=agent_ref,
        agent_user_id=agent.id if agent else None,
        started_at=started,
        ended_at=started,
        trigger=AXIS_TRIGGER,
        persons_informed=False,
        not_informed_reason=None,
        categories=[],
        state=RecordingState.RECEIVING,
        manifest="{}",
        manifest_sha256="",
        chain_head="",
        segment_count=0,
        size_bytes=0,
        wrapped_key=crypto.wrap_key(p.keyring.master_key, crypto.new_data_key(), rec_id),
        master_key_id=p.keyring.master_key_id,
        retention_until=profile.retention.deadline(started),
        flags=[],
    )
    db.add(rec)
    db.flush()  # before the container row that refers to it
    return rec


def put_container(p: VaultContext, db: Session, tenant: Tenant, name: str, change: MetaChange) -> bool:
    """Create a container (True) or merge its metadata (False, Swift's 202)."""
    check_container_name(name)
    existing = db.scalar(select(AxisContainer).where(AxisContainer.tenant_id == tenant.id, AxisContainer.name == name))
    if existing is not None:
        update_container(p, db, tenant, existing, change)
        return False
    kind = container_kind(name)
    meta = change.as_new()
    storage_id, wrapped, rec = f"axis-{uuid.uuid4().hex[:20]}", None, None
    if kind == "recording":
        rec = _new_recording(p, db, tenant, name, meta)
        storage_id = rec.id
    else:
        wrapped = crypto.wrap_key(p.keyring.master_key, crypto.new_data_key(), storage_id)
    container = AxisContainer(
        tenant_id=tenant.id,
        name=name,
        kind=kind,
        meta=meta,
        storage_id=storage_id,
        wrapped_key=wrapped,
        recording_id=rec.id if rec else None,
        next_slot=0,
    )
    db.add(container)
    db.flush()
    if kind == "rejected":
        axis_vault.quarantine_rejected(p, db, tenant, container)
    p.record(
        db,
        EntryDraft(
            action=Action.COLLECTION if kind == "recording" else Action.ADMINISTRATION,
            event="axis.container_created",
            actor=_axis_actor(tenant),
            recordings=[rec.id] if rec else [],
            cameras=[rec.device_id] if rec else [],
            details={"container": name, "kind": kind},
        ),
        tenant,
    )
    if kind == "recording" and (text(meta, "Status") or "") == "Complete":
        axis_vault.complete(p, db, tenant, container)  # commits
        return True
    db.commit()
    return True


def update_container(
    p: VaultContext, db: Session, tenant: Tenant, container: AxisContainer, change: MetaChange
) -> None:
    """Merge metadata (PUT on an existing container, or POST). Status turning Complete hands it to the vault."""
    merged = change.merged_into(container.meta or {})
    if container.completed_at is not None:
        if merged == container.meta:
            return  # the same Complete sent again (an answer lost on the way): nothing to do
        raise Forbidden(
            f"recording container {container.name!r} is complete and sealed in the vault: no further change is accepted"
        )
    container.meta = merged
    if container.kind == "recording" and (text(merged, "Status") or "") == "Complete":
        axis_vault.complete(p, db, tenant, container)  # commits, or raises with nothing changed
        return
    db.commit()


def container_stats(db: Session, container: AxisContainer) -> tuple[int, int]:
    rows = db.execute(select(AxisObject.size).where(AxisObject.container_id == container.id)).all()
    return len(rows), sum(r.size for r in rows)


# --- objects -----------------------------------------------------------------------------------------


def object_kind(container: AxisContainer, name: str) -> str:
    if container.kind == "system":
        return "system"
    if container.kind == "users":
        return "user"
    if container.kind == "devices":
        return "device"
    low = name.lower()
    if low.endswith((".mkv", ".mp4")):
        return "clip"
    if low.endswith(".key"):
        return "key"
    if low.endswith("_gpstrail.json"):
        return "gnss"
    if name.startswith("bookmark_"):
        return "bookmark"
    return "other"


def find_object(db: Session, container: AxisContainer, name: str) -> AxisObject:
    check_object_name(name)
    obj = db.scalar(select(AxisObject).where(AxisObject.container_id == container.id, AxisObject.name == name))
    if obj is None:
        raise NotFound(f"no object {name[:80]!r} in container {container.name[:80]!r}")
    return obj


def _check_clip(meta: dict[str, str]) -> None:
    start, stop = epoch(meta, "StartTime"), epoch(meta, "StopTime")
    if start is None or stop is None:
        raise InvalidInput("a clip needs its StartTime and StopTime metadata (UNIX times)")
    _in_bounds(start, "the clip's start")
    _in_bounds(stop, "the clip's end")
    if stop <= start:
        raise InvalidInput(
            f"the clip has no duration (StopTime {stop.isoformat()} is not after StartTime "
            f"{start.isoformat()}): it cannot be stored"
        )


def _check_device_licence(db: Session, tenant: Tenant, name: str, meta: dict[str, str]) -> None:
    if (text(meta, "Active") or "true").lower() == "false":
        return
    existing = _device_object(db, tenant, name)
    device = db.get(Device, existing.device_id) if existing is not None and existing.device_id else None
    if device is not None and device.status == "active":
        return
    other = db.scalar(select(Device).where(Device.tenant_id == tenant.id, Device.serial == name))
    if other is not None and (existing is None or other.id != existing.device_id):
        raise Conflict(
            f"a Témoin camera with serial {name[:80]!r} is already enrolled natively: revoke it "
            "before registering the Axis camera of that serial"
        )
    if active_cameras(db, tenant) >= tenant.authorised_cameras:
        raise PaymentRequired(
            f"{tenant.name} already has {tenant.authorised_cameras} active cameras, the number "
            "the prefect authorised (R241-8): deactivate one or have the authorisation amended"
        )


_locks: dict[tuple[int, str], threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock(container_id: int, name: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault((container_id, name), threading.Lock())


class _Stages:
    """Each record of a body through every stage, each stage in its own thread, in order; at most DEPTH records
    waiting per stage (memory stays bounded whatever the size). SHA-256, MD5 and sealing + writing release the GIL,
    so they run side by side and beside the request's receiving, instead of one after the other."""

    DEPTH = 4

    def __init__(self, *stages: Callable[[bytes], None]) -> None:
        self.error: BaseException | None = None
        self.queues: list[queue.Queue[bytes | None]] = [queue.Queue(maxsize=self.DEPTH) for _ in stages]
        self.threads = [
            threading.Thread(target=self._run, args=(q, stage), name="axis-upload", daemon=True)
            for q, stage in zip(self.queues, stages, strict=True)
        ]
        for thread in self.threads:
            thread.start()

    def _run(self, q: queue.Queue[bytes | None], stage: Callable[[bytes], None]) -> None:
        while (record := q.get()) is not None:
            if self.error is None:  # after a failure, drain (a producer never blocks on a dead stage)
                try:
                    stage(record)
                except BaseException as exc:  # noqa: BLE001 - handed to the request's thread, raised there
                    self.error = exc

    def put(self, record: bytes) -> None:
        if self.error is not None:
            raise self.error
        for q in self.queues:
            q.put(record)

    def close(self) -> None:
        """Wait until every stage has done every record; raise the first stage failure."""
        for q in self.queues:
            q.put(None)
        for thread in self.threads:
            thread.join()
        if self.error is not None:
            raise self.error


class ObjectUpload:
    """One object PUT: checks everything it can before the body, then seals the body as it arrives.

    The object (or its new version) exists only once every byte is in, durable, and matched Content-Length and
    ETag; until then the previous version, if any, stays. `feed` from a worker thread, then `finish` or `abort`.
    """

    def __init__(
        self,
        p: VaultContext,
        db: Session,
        tenant: Tenant,
        container: AxisContainer,
        name: str,
        change: MetaChange,
        *,
        length: int | None,
        etag: str | None,
    ) -> None:
        check_object_name(name)
        self.p, self.db, self.tenant, self.container, self.name = p, db, tenant, container, name
        if container.completed_at is not None:
            raise Forbidden(
                f"recording container {container.name!r} is complete and sealed in the vault: "
                "no further object is accepted"
            )
        if container.kind == "system" and name in GENERATED:
            raise Forbidden(f"System/{name} is published by Témoin and cannot be written")
        self.kind = object_kind(container, name)
        self.meta = change.as_new()
        if self.kind == "clip" and container.kind == "recording":
            _check_clip(self.meta)
        if self.kind == "device":
            _check_device_licence(db, tenant, name, self.meta)
        self.limit = (
            p.settings.max_segment_bytes
            if self.kind in ("clip", "other") or container.kind == "rejected"
            else MAX_SMALL_OBJECT
        )
        if length is not None and length > self.limit:
            raise InvalidInput(
                f"object of {length} bytes is larger than the {self.limit} bytes Témoin accepts for a {self.kind}"
            )
        self.length, self.etag = length, (etag or "").strip('"').lower() or None
        self.lock = _lock(container.id, name)
        self._aborted = False
        if not self.lock.acquire(timeout=60):
            raise Unavailable(f"object {name[:80]!r} is being written by another request: try again shortly")
        try:
            self.data_key = data_key(p, db, container)
            # scalar_one: the container row exists (we hold its object), so the update returns exactly one slot
            slot = db.execute(
                update(AxisContainer)
                .where(AxisContainer.id == container.id)
                .values(next_slot=AxisContainer.next_slot + 1)
                .returning(AxisContainer.next_slot)
            ).scalar_one()
            db.commit()  # the slot is ours even if the server dies now: a retry takes the next one
            self.slot = FIRST_SLOT + slot
            self.key = blob_key(tenant.slug, container.storage_id, self.slot)
            p.store.discard_staged(self.key)
            self.header = crypto.new_header()
            self.header_pending = True
            self.sealer = crypto.Sealer(self.data_key, self.header)
            self._sealed = bytearray(crypto.RECORD_BYTES + crypto.TAG_BYTES)
            self.sha256, self.md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
            self.pieces: list[bytes | memoryview] = []  # what arrived since the last whole record
            self.fill, self.received = 0, 0
            self.stages = _Stages(self.sha256.update, self.md5.update, self._write)
        except BaseException:
            self.lock.release()
            raise

    def feed(self, *chunks: bytes) -> None:
        """Take the next bytes of the body: checked against the limits here, hashed and sealed by the stages
        (this blocks only while they are DEPTH records behind)."""
        for chunk in chunks:
            if self.received + self.fill + len(chunk) > self.limit:
                raise InvalidInput(f"object larger than the {self.limit} bytes Témoin accepts for a {self.kind}")
            if self.length is not None and self.received + self.fill + len(chunk) > self.length:
                raise InvalidInput("more bytes than Content-Length announced")
            view = memoryview(chunk)
            while view:
                take = min(len(view), crypto.RECORD_BYTES - self.fill)
                # A chunk that is a whole record goes as is; otherwise the record is made in one copy (the
                # stages hold it while the next is received, so it cannot be a reused buffer).
                self.pieces.append(chunk if take == len(chunk) else view[:take])
                self.fill += take
                view = view[take:]
                if self.fill == crypto.RECORD_BYTES:
                    pieces, self.pieces, self.fill = self.pieces, [], 0
                    self._record(pieces[0] if len(pieces) == 1 and isinstance(pieces[0], bytes) else b"".join(pieces))

    def _record(self, record: bytes) -> None:
        self.stages.put(record)
        self.received += len(record)

    def _write(self, record: bytes) -> None:
        # Sealed into one buffer reused record after record (only this stage's thread writes it): no MiB
        # allocated and faulted in per record.
        prefix, sealed = self.sealer.seal_record_into(record, self._sealed)
        self.p.store.append_staged(self.key, self.header if self.header_pending else None, prefix, sealed)
        self.header_pending = False

    def finish(self) -> AxisObject:
        """Seal the rest, make it durable, then make this version the object (the previous one is dropped)."""
        try:
            if self.fill:
                self._record(b"".join(self.pieces))
                self.pieces, self.fill = [], 0
            self.stages.close()
            if self.header_pending:  # an empty object: a blob with its header and no record
                self.p.store.append_staged(self.key, self.header)
            self.p.store.sync_staged(self.key)
            if self.length is not None and self.received != self.length:
                raise UploadIncomplete(
                    f"the upload stopped after {self.received} of {self.length} bytes: "
                    "nothing was kept, send the object again"
                )
            md5 = self.md5.hexdigest()
            if self.etag is not None and self.etag != md5:
                raise ChecksumMismatch(
                    f"the body's MD5 is {md5}, not the ETag {self.etag} sent: nothing was kept, send the object again"
                )
            db, container = self.db, self.container
            db.refresh(container)
            if container.completed_at is not None:
                raise Forbidden(f"recording container {container.name!r} was completed during this upload")
            obj = db.scalar(
                select(AxisObject).where(AxisObject.container_id == container.id, AxisObject.name == self.name)
            )
            replaced = obj.slot if obj is not None else None
            if obj is None:
                obj = AxisObject(container_id=container.id, name=self.name)
                db.add(obj)
            obj.kind, obj.meta, obj.slot, obj.size = self.kind, self.meta, self.slot, self.received
            obj.sha256, obj.md5, obj.received_at = self.sha256.hexdigest(), md5, utcnow()
            if self.kind == "user":
                axis_vault.match_user(db, self.tenant, obj)
            elif self.kind == "device":
                axis_vault.register_device(self.p, db, self.tenant, obj)
            if container.kind != "recording":  # a recording's bodies are promoted when it is complete
                self.p.store.promote(self.key)
            db.commit()
            if replaced is not None:
                _drop_slot(self.p, self.tenant, container, replaced)
            return obj
        except BaseException:
            self._stop()
            self.db.rollback()
            self.p.store.discard_staged(self.key)
            raise
        finally:
            self.lock.release()

    def _stop(self) -> None:
        """The stages finished (nothing writes the staged blob any more), their failure, if any, dropped."""
        try:
            self.stages.close()
        except BaseException:  # noqa: BLE001, S110 - the upload is being dropped: its cause is raised already
            pass

    def abort(self) -> None:
        """Drop what was staged and let the object go. Idempotent: a failing abort inside an error handler may be
        followed by another, which must not release the lock twice (a RuntimeError, a 500)."""
        if self._aborted:
            return
        self._aborted = True
        try:
            self._stop()
            self.p.store.discard_staged(self.key)
        finally:
            self.lock.release()


def _drop_slot(p: VaultContext, tenant: Tenant, container: AxisContainer, slot: int) -> None:
    key = blob_key(tenant.slug, container.storage_id, slot)
    p.store.discard_staged(key)
    p.store.discard(key)


def post_object(
    p: VaultContext, db: Session, tenant: Tenant, container: AxisContainer, name: str, change: MetaChange
) -> None:
    """POST on an object: its metadata becomes exactly what was sent (Swift replaces the whole set)."""
    obj = find_object(db, container, name)
    if container.completed_at is not None:
        raise Forbidden(f"recording container {container.name!r} is complete and sealed in the vault")
    meta = change.as_new()
    if obj.kind == "clip" and container.kind == "recording":
        _check_clip(meta)
    if obj.kind == "device":
        _check_device_licence(db, tenant, name, meta)
    obj.meta = meta
    if obj.kind == "user":
        axis_vault.match_user(db, tenant, obj)
    elif obj.kind == "device":
        axis_vault.register_device(p, db, tenant, obj)
    db.commit()


def generated_document(name: str, categories: list[tuple[str, str]]) -> bytes:
    """System/Capabilities.json and System/Categories.json, byte-stable so that their ETag (MD5) is too."""
    if name == "Capabilities.json":
        doc: object = {
            "Read": {"ReadCategories": True},
            "Store": {
                "StoreBookmarks": True,
                "StoreGNSSTrackRecording": True,
                "StoreRejectedContent": True,
                "StoreSignedVideo": True,
                "StoreUserIDKey": True,
            },
            "StoreAndRead": {"StoreReadSystemID": True},
        }
    else:
        doc = [{"Name": label, "Id": cid} for cid, label in categories]
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
