"""Ingest: a camera hands over a recording (manifest, then segments), the vault verifies
everything and answers with a signed receipt.

Protocol (documented in docs/ingest.md):
1. POST the signed manifest. The vault checks the device signature, the chain and the limits.
2. PUT each segment, whole or in pieces with `Content-Range: bytes START-END/TOTAL`. START must be
   what the vault already holds (HEAD tells it, in `Upload-Offset`). A cut upload resumes there.
3. POST complete: every segment is in and matched its hash; the recording becomes visible and the
   vault returns its signed receipt, which the camera keeps before deleting its own copy.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import orjson
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin import errors
from temoin.coordination import locks_for
from temoin.db import utcnow
from temoin.evidence import crypto
from temoin.evidence.chain import chain_links
from temoin.evidence.manifest import Receipt, SignedManifest, SignedReceipt
from temoin.geo.communes import commune_of
from temoin.identity.devices import certificate_of, device_actor, recording_key, signing_time
from temoin.identity.models import Device, Tenant
from temoin.journal.entry import Action, EntryDraft
from temoin.law.profiles import get_profile
from temoin.vault import field_checks
from temoin.vault.context import VaultContext
from temoin.vault.models import DeletionCertificate, Quarantine, Recording, RecordingState, Segment
from temoin.vault.storage import blob_key

CLOCK_DRIFT_FLAG_MS = 2000


class IngestError(errors.TemoinError):
    """An upload refused; the subclass says why. `offset`: how many bytes of the segment the vault holds (the
    camera resumes from there)."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


class IngestNotFound(errors.NotFound, IngestError):
    pass


class IngestForbidden(errors.Forbidden, IngestError):
    pass


class IngestConflict(errors.Conflict, IngestError):
    pass


class IngestInvalid(errors.InvalidInput, IngestError):
    pass


class IngestMalformed(errors.Malformed, IngestError):
    pass


class IngestTooLarge(errors.PayloadTooLarge, IngestError):
    pass


class IngestFault(errors.Fault, IngestError):
    pass


class RecordingGone(errors.Gone, IngestError):
    """The recording was deleted (retention, erasure) before its upload ended: the camera gets the
    platform-signed deletion certificate, which lets it delete its own copy instead of retrying forever."""

    def __init__(self, message: str, certificate: dict) -> None:
        super().__init__(message)
        self.certificate = certificate

    @property
    def extra(self) -> dict[str, object]:
        return {"deletion_certificate": self.certificate}


@dataclass(frozen=True)
class SegmentStatus:
    index: int
    size: int
    received: int
    complete: bool


@dataclass(frozen=True)
class UploadStatus:
    recording_id: str
    state: str
    segments: list[SegmentStatus]

    def as_dict(self) -> dict:
        return {"recording_id": self.recording_id, "state": self.state, "segments": [s.__dict__ for s in self.segments]}


def _tenant(db: Session, device: Device) -> Tenant:
    return db.get_one(Tenant, device.tenant_id)


def unfinished_uploads(db: Session, device_id: str) -> list[str]:
    """The camera's recordings whose upload started but is not complete, oldest first (checked at check-in)."""
    return list(
        db.scalars(
            select(Recording.id)
            .where(Recording.device_id == device_id, Recording.state == RecordingState.RECEIVING)
            .order_by(Recording.received_at)
        )
    )


def quarantine(
    p: VaultContext, db: Session, device: Device, recording_id: str | None, reason: str, evidence: bytes | None = None
) -> None:
    """Keep a failed upload apart, with its reason, and journal it."""
    tenant = _tenant(db, device)
    evidence_path = None
    if evidence is not None:
        folder = p.settings.home / "quarantine" / tenant.slug
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{utcnow().strftime('%Y%m%dT%H%M%S%f')}-{device.id}.json"
        path.write_bytes(evidence[: p.settings.max_manifest_bytes])
        evidence_path = str(path.relative_to(p.settings.home))
    db.add(
        Quarantine(
            tenant_id=tenant.id,
            device_id=device.id,
            recording_id=recording_id,
            reason=reason,
            evidence_path=evidence_path,
        )
    )
    if recording_id:
        rec = db.get(Recording, recording_id)
        if rec is not None and rec.tenant_id == tenant.id and rec.state == RecordingState.RECEIVING:
            rec.state, rec.state_reason = RecordingState.QUARANTINED, reason
        _progress.drop_recording(tenant.slug, recording_id)  # its unwrapped key is not kept in memory
    p.record(
        db,
        EntryDraft(
            action=Action.SECURITY,
            event="ingest.quarantined",
            actor=device_actor(device),
            recordings=[recording_id] if recording_id else [],
            cameras=[device.id],
            details={"reason": reason},
        ),
        tenant,
    )
    db.commit()


def open_upload(p: VaultContext, db: Session, device: Device, raw: bytes) -> UploadStatus:
    """Accept a signed manifest; idempotent, so a camera that lost the answer simply asks again."""
    if len(raw) > p.settings.max_manifest_bytes:
        raise IngestTooLarge(f"manifest larger than {p.settings.max_manifest_bytes} bytes")
    try:
        envelope = SignedManifest.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "manifest"
        raise IngestInvalid(f"malformed manifest at {where}: {first['msg']}") from None
    manifest = envelope.manifest
    if manifest.camera_id != device.id:
        quarantine(
            p,
            db,
            device,
            None,
            f"manifest names camera {manifest.camera_id!r}, signed request came from {device.id!r}",
            raw,
        )
        raise IngestForbidden("the manifest names another camera than the one signing the request")
    key = recording_key(db, manifest)  # the camera's key when it signed, not necessarily today's
    if key is None:
        quarantine(
            p,
            db,
            device,
            None,
            f"no key of camera {device.id} was valid at "
            f"{signing_time(manifest).isoformat()}, when the manifest says it was signed",
            raw,
        )
        raise IngestForbidden(
            "no key of this camera was valid when the manifest says it was signed (before a "
            "re-enrolment or after a revocation): upload quarantined"
        )
    if certificate_of(p, db, key) is None:
        quarantine(
            p, db, device, None, f"camera key {key.public_key.hex()[:16]} has no valid platform certificate", raw
        )
        raise IngestForbidden(
            "this camera's key has no valid certificate from the platform (added to the database "
            "by other means than enrolment?): upload quarantined"
        )
    if not envelope.verify(key.public_key):
        quarantine(p, db, device, None, "device signature of the manifest is invalid", raw)
        raise IngestForbidden("the manifest's device signature is invalid (forged or altered): upload quarantined")
    for seg in manifest.segments:
        if seg.size > p.settings.max_segment_bytes:
            raise IngestTooLarge(
                f"segment {seg.index} declares {seg.size} bytes, more than the {p.settings.max_segment_bytes} allowed"
            )
    digest = envelope.digest()
    existing = db.get(Recording, manifest.recording_id)
    if existing is not None:
        if existing.device_id != device.id or existing.manifest_sha256 != digest:
            raise IngestConflict(f"recording {manifest.recording_id} already exists with another manifest")
        return upload_status(p, db, device, manifest.recording_id)
    tenant = _tenant(db, device)
    profile = get_profile(tenant.profile)
    # Time, wearer and place checked against the clock offset, the shift and the territory (vault.field_checks).
    checked = field_checks.check(db, tenant, device, manifest, profile, utcnow(), p.settings.device_clock_window_s)
    commune = commune_of(tenant.territory, ((fix.lat, fix.lon) for fix in manifest.gps_track))
    data_key = crypto.new_data_key()
    rec = Recording(
        id=manifest.recording_id,
        tenant_id=tenant.id,
        device_id=device.id,
        agent_ref=checked.agent_ref,
        agent_user_id=checked.agent_user_id,
        started_at=checked.started_at,
        ended_at=checked.ended_at,
        flags=checked.flags,
        declared_started_at=checked.declared_started_at,
        declared_agent_ref=checked.declared_agent_ref,
        trigger=manifest.trigger.value,
        persons_informed=manifest.persons_informed,
        not_informed_reason=manifest.not_informed_reason.value if manifest.not_informed_reason else None,
        outside_territory=checked.outside_territory,
        commune=commune,
        clock_offset_ms=manifest.clock_offset_ms,
        clock_drift_flag=abs(manifest.clock_offset_ms or 0) > CLOCK_DRIFT_FLAG_MS,
        categories=[],
        state=RecordingState.RECEIVING,
        manifest=raw.decode(),
        manifest_sha256=digest,
        chain_head=manifest.chain_head,
        segment_count=len(manifest.segments),
        size_bytes=manifest.total_bytes,
        wrapped_key=crypto.wrap_key(p.keyring.master_key, data_key, manifest.recording_id),
        master_key_id=p.keyring.master_key_id,
        retention_until=profile.retention.deadline(checked.retention_from),
    )
    rec.segments = [
        Segment(
            index=s.index, size=s.size, sha256=s.sha256, chain=s.chain, started_at=s.started_at, duration_s=s.duration_s
        )
        for s in manifest.segments
    ]
    db.add(rec)
    field_checks.journal(p, db, tenant, device, rec.id, checked, manifest.clock_offset_ms)
    db.commit()
    return upload_status(p, db, device, rec.id)


def _own_recording(db: Session, device: Device, recording_id: str) -> Recording:
    rec = db.get(Recording, recording_id)
    if rec is None or rec.device_id != device.id:
        raise IngestNotFound(f"no upload {recording_id} from this camera: send its manifest first")
    return rec


def gone(p: VaultContext, db: Session, device: Device, rec: Recording) -> RecordingGone:
    """The answer for a deleted recording: its signed certificate, and a journal entry saying the camera
    was told (each time: a camera that keeps asking shows in the journal)."""
    cert = db.scalar(select(DeletionCertificate).where(DeletionCertificate.recording_id == rec.id))
    if cert is None:  # deleted without a certificate: cannot happen through retention or erasure
        raise IngestConflict(f"recording {rec.id} is deleted: keep the camera's copy and report this")
    reason = rec.state_reason or "deleted"
    p.record(
        db,
        EntryDraft(
            action=Action.ERASURE,
            event="ingest.deleted_answered",
            actor=device_actor(device),
            recordings=[rec.id],
            cameras=[device.id],
            details={"certificate_id": cert.id, "reason": reason},
        ),
        _tenant(db, device),
    )
    db.commit()
    return RecordingGone(
        f"recording {rec.id} was deleted by the vault ({reason}) on {cert.deleted_at.isoformat()} before its "
        "upload ended: the signed deletion certificate lets the camera delete its copy",
        {"id": cert.id, "body": cert.body, "signature": cert.signature},
    )


def _live_recording(p: VaultContext, db: Session, device: Device, recording_id: str) -> Recording:
    """The camera's recording, or the signed answer that it was deleted."""
    rec = _own_recording(db, device, recording_id)
    if rec.state == RecordingState.DELETED:
        raise gone(p, db, device, rec)
    return rec


def upload_status(p: VaultContext, db: Session, device: Device, recording_id: str) -> UploadStatus:
    rec = _live_recording(p, db, device, recording_id)
    tenant = _tenant(db, device)
    segments = []
    for seg in rec.segments:
        if seg.complete:
            received = seg.size
        else:
            _, _, received = p.store.staged_state(blob_key(tenant.slug, rec.id, seg.index), repair=False)
        segments.append(SegmentStatus(seg.index, seg.size, received, seg.complete))
    return UploadStatus(rec.id, rec.state, segments)


@dataclass
class _Progress:
    """Where an upload stopped, so the next piece need not re-read what is staged."""

    received: int
    records: int
    file_end: int
    header: bytes
    hasher: hashlib._Hash
    data_key: bytes | None = None  # the unwrapped key and the blob's cipher, kept between the pieces of an upload
    sealer: crypto.Sealer | None = None


class _ProgressCache:
    """Uploads in progress, by staged key: bounded in number and idle time, since each entry holds an unwrapped
    data key (an abandoned or quarantined upload must not keep its key in memory for the process's life). A
    missing entry costs only a re-read of what is staged."""

    def __init__(self, limit: int = 256, idle_s: float = 900.0) -> None:
        self.limit, self.idle_s = limit, idle_s
        self._entries: OrderedDict[str, tuple[float, _Progress]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> _Progress | None:
        with self._lock:
            self._expire(time.monotonic())
            found = self._entries.get(key)
            return found[1] if found else None

    def __setitem__(self, key: str, value: _Progress) -> None:
        with self._lock:
            now = time.monotonic()
            self._entries[key] = (now, value)
            self._entries.move_to_end(key)
            self._expire(now)
            while len(self._entries) > self.limit:
                self._entries.popitem(last=False)

    def pop(self, key: str, default: None = None) -> _Progress | None:
        with self._lock:
            found = self._entries.pop(key, None)
            return found[1] if found else default

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget everything, as a restart does."""
        with self._lock:
            self._entries.clear()

    def drop_recording(self, tenant: str, recording_id: str) -> None:
        """Forget every segment of a recording (quarantined: its key is not needed any more)."""
        prefix = f"{tenant}/{recording_id}/"
        with self._lock:
            for key in [k for k in self._entries if k.startswith(prefix)]:
                del self._entries[key]

    def _expire(self, now: float) -> None:
        while self._entries:
            at, _ = next(iter(self._entries.values()))
            if now - at <= self.idle_s:
                break
            self._entries.popitem(last=False)


# After a restart (or if the staged file changed under us) the state is rebuilt from the sealed bytes.
_progress = _ProgressCache()


class _UploadLock:
    """One segment's upload at a time, across requests and nodes (temoin.coordination)."""

    def __init__(self, db: Session, key: str) -> None:
        self.locks, self.name = locks_for(db), f"upload:{key}"

    def acquire(self, blocking: bool = False) -> bool:
        assert not blocking  # an upload never waits for another: the camera is told to retry
        return self.locks.try_acquire(self.name)

    def release(self) -> None:
        self.locks.release(self.name)


def _lock(db: Session, key: str) -> _UploadLock:
    return _UploadLock(db, key)


# SHA-256 of stored records, beside the sealing and writing of the next record (hashlib releases the GIL): the
# hash is most of the work per byte, and it cannot be split (one sequential SHA-256 per segment).
_hashing = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="ingest-hash")


class SegmentUpload:
    """Receives one piece of one segment: hashes and seals bytes as they arrive (bounded memory).

    Bytes are copied once, into one of two record buffers; each full record is sealed and written from it, then
    hashed in another thread while the next record is filled, sealed and written from the other buffer (call
    `feed` from a worker thread: sealing a MiB costs milliseconds of CPU). A record is hashed only once stored,
    so the hash always covers exactly the bytes the staged blob holds.
    """

    def __init__(
        self, p: VaultContext, db: Session, device: Device, recording_id: str, index: int, start: int, total: int | None
    ) -> None:
        self.p, self.db, self.device = p, db, device
        rec = _live_recording(p, db, device, recording_id)
        if rec.state != RecordingState.RECEIVING:
            raise IngestConflict(f"recording {recording_id} is {rec.state}: nothing more can be uploaded")
        seg = next((s for s in rec.segments if s.index == index), None)
        if seg is None:
            raise IngestNotFound(f"the manifest of {recording_id} has no segment {index}")
        if total is not None and total != seg.size:
            raise IngestMalformed(f"segment {index} is {seg.size} bytes per the manifest, not {total}")
        self.rec, self.seg = rec, seg
        self.tenant = _tenant(db, device)
        self.key = blob_key(self.tenant.slug, rec.id, index)
        self.lock = _lock(db, self.key)
        if not self.lock.acquire(blocking=False):
            raise IngestConflict(f"segment {index} is already being uploaded by another request")
        try:
            # Read again now that the lock is held: a request (on any node) that held it before may have completed
            # the segment since it was read. Nothing is written yet: the rollback only ends the read transaction.
            db.rollback()
            if seg.complete:
                raise IngestConflict(f"segment {index} is already complete", offset=seg.size)
            assert rec.wrapped_key is not None  # a receiving recording holds its key
            state = self._resume_state(rec.wrapped_key)
            if start != state.received:
                raise IngestConflict(
                    f"segment {index}: the vault holds {state.received} bytes, resume from there", offset=state.received
                )
            self.header_to_write = None if state.file_end else state.header
            if state.sealer is not None:  # the cipher of the previous piece: no key unwrap or derivation again
                self.sealer = state.sealer.at(state.records)
            else:
                self.sealer = crypto.Sealer(self.data_key, state.header, state.records)
            self.hasher = state.hasher
            self.received, self.file_end = state.received, state.file_end
            self.buffers = (bytearray(crypto.RECORD_BYTES), bytearray(crypto.RECORD_BYTES))
            self.buffer = self.buffers[0]
            self.hashing: Future[None] | None = None  # the stored record being hashed, from the other buffer
            self.sealed = bytearray(crypto.RECORD_BYTES + crypto.TAG_BYTES)
            self.fill = 0
            db.commit()  # end the read: no pooled connection is held while the body arrives (minutes on 4G)
        except BaseException:
            self.lock.release()
            raise

    def _resume_state(self, wrapped_key: bytes) -> _Progress:
        cached = _progress.get(self.key)
        if cached is not None and cached.data_key is not None and self.p.store.staged_size(self.key) == cached.file_end:
            self.data_key = cached.data_key
            return _Progress(
                cached.received,
                cached.records,
                cached.file_end,
                cached.header,
                cached.hasher.copy(),
                cached.data_key,
                cached.sealer,
            )
        self.data_key = crypto.unwrap_key(self.p.keyring.master_key, wrapped_key, self.rec.id)
        header, records, received = self.p.store.staged_state(self.key)
        hasher = hashlib.sha256()
        if header is None:
            return _Progress(0, 0, 0, crypto.new_header(), hasher)
        count, plain_bytes, end = 0, 0, crypto.HEADER_BYTES
        try:
            with self.p.store.open_staged(self.key) as fh:
                for plain in crypto.open_records(fh, self.data_key):
                    hasher.update(plain)
                    count, plain_bytes = count + 1, plain_bytes + len(plain)
                    end += crypto.PREFIX_BYTES + len(plain) + crypto.TAG_BYTES
        except crypto.IntegrityError:
            # A record whose pages did not all reach the disk before a machine crash (pieces are answered before
            # the segment's fsync): cut there; the camera resends from it (409 with the offset).
            self.p.store.truncate_staged(self.key, end)
            return _Progress(plain_bytes, count, end, header, hasher)
        return _Progress(received, records, self.p.store.staged_size(self.key), header, hasher)

    def feed(self, *chunks: bytes) -> None:
        for chunk in chunks:
            if self.received + self.fill + len(chunk) > self.seg.size:
                raise IngestTooLarge(f"segment {self.seg.index}: more bytes than the {self.seg.size} declared")
            view, room = memoryview(chunk), crypto.RECORD_BYTES
            while view:
                take = min(len(view), room - self.fill)
                self.buffer[self.fill : self.fill + take] = view[:take]
                self.fill += take
                view = view[take:]
                if self.fill == room:
                    self._seal()

    def _seal(self) -> None:
        plain = memoryview(self.buffer)[: self.fill]
        index = self.sealer.index
        prefix, sealed = self.sealer.seal_record_into(plain, self.sealed)
        try:
            self.p.store.append_staged(self.key, self.header_to_write, prefix, sealed)
        except BaseException:
            # Not stored: `finish` seals it again at the same place (same nonce, same bytes), hashed once.
            self.sealer.index = index
            raise
        self._settle()  # the previous record is hashed: its buffer is free, and the hash goes on in order
        self.hashing = _hashing.submit(self.hasher.update, plain)
        self.buffer = self.buffers[1] if self.buffer is self.buffers[0] else self.buffers[0]
        self.file_end += (len(self.header_to_write) if self.header_to_write else 0) + len(prefix) + len(sealed)
        self.header_to_write = None
        self.received += self.fill
        self.fill = 0

    def _settle(self) -> None:
        """Wait until every stored record is hashed."""
        if self.hashing is not None:
            hashing, self.hashing = self.hashing, None
            hashing.result()

    def finish(self) -> SegmentStatus:
        """Seal what is buffered and, once the segment is whole, make it durable and verify it.

        Called also when the camera's connection breaks: what arrived is kept for the resume. One fsync per
        segment, at its end, before the camera is told it is complete (an fsync per 4 MiB piece cost as much as
        the piece's transfer). A piece answered before then survives the process (the page cache keeps it) but
        may be lost with the machine: the vault then says how much it holds (HEAD, or 409 with Upload-Offset)
        and the camera, which deletes nothing before the receipt, resends from there. Writeback is started
        record by record, so that the fsync at the end waits only for the tail.
        """
        try:
            if self.fill:
                self._seal()
            self._settle()
            if self.received < self.seg.size:
                self.p.store.close_staged(self.key)
                _progress[self.key] = _Progress(
                    self.received,
                    self.sealer.index,
                    self.file_end,
                    self.sealer.header,
                    self.hasher.copy(),
                    self.data_key,
                    self.sealer,
                )
                return SegmentStatus(self.seg.index, self.seg.size, self.received, False)
            _progress.pop(self.key, None)
            synced = self.p.store.sync_staged(self.key)  # durable before the camera is told it is complete
            digest = self.hasher.hexdigest()
            if digest != self.seg.sha256:
                self.db.rollback()
                quarantine(
                    self.p,
                    self.db,
                    self.device,
                    self.rec.id,
                    f"segment {self.seg.index}: SHA-256 {digest} does not match the manifest's "
                    f"{self.seg.sha256} (altered, or a segment of another recording)",
                )
                raise IngestInvalid(
                    f"segment {self.seg.index} does not match its hash in the manifest: the recording is quarantined"
                )
            self.p.store.promote(self.key, synced=synced)  # the fsync above made it durable: rename only
            self.seg.complete = True
            self.db.commit()
            return SegmentStatus(self.seg.index, self.seg.size, self.received, True)
        finally:
            self.lock.release()

    def abort(self) -> None:
        _progress.pop(self.key, None)
        try:
            self._settle()  # nothing may read the buffers once the caller lets go of them
        finally:
            self.lock.release()


def complete(
    p: VaultContext,
    db: Session,
    device: Device,
    recording_id: str,
    lost: Sequence[int] = (),
    *,
    declaration: dict | None = None,
) -> SignedReceipt:
    """Every segment arrived and matched: make the recording visible and sign the receipt.

    `lost`: segments the camera declares damaged on its side and cannot send. The others are stored and
    still proven by the device-signed manifest (each hash, and the chain over all of them, which ends at
    the signed head); the lost ones are named in the receipt, the journal and the recording's state reason.
    `declaration`: the camera's signed request saying so (evidence.device_requests), kept in the journal entry.
    """
    rec = _live_recording(p, db, device, recording_id)
    if rec.state == RecordingState.STORED and rec.receipt:
        return SignedReceipt.model_validate_json(rec.receipt)
    if rec.state != RecordingState.RECEIVING:
        raise IngestConflict(f"recording {recording_id} is {rec.state}")
    indexes = {s.index for s in rec.segments}
    lost_set = set(lost)
    if lost_set - indexes:
        raise IngestInvalid(f"the manifest of {recording_id} has no segment {sorted(lost_set - indexes)[:20]}")
    if lost_set == indexes:
        raise IngestInvalid("every segment is declared lost: nothing to store, keep the recording on the camera")
    lost_set -= {s.index for s in rec.segments if s.complete}  # damaged on the camera after it reached the vault
    missing = [s.index for s in rec.segments if not s.complete and s.index not in lost_set]
    if missing:
        raise IngestConflict(f"segments still missing or incomplete: {missing[:20]}")
    tenant = _tenant(db, device)
    for seg in rec.segments:
        if seg.index not in lost_set and not p.store.exists(blob_key(tenant.slug, rec.id, seg.index)):
            raise IngestFault(
                f"segment {seg.index} is marked complete but its blob is missing: run `temoin vault scrub`"
            )
    # The hashes were verified piece by piece; the chain over them must end at the signed head.
    links = chain_links(rec.id, (bytes.fromhex(s.sha256) for s in rec.segments))
    if links[-1].hex() != rec.chain_head:
        quarantine(p, db, device, rec.id, "segment chain does not end at the signed head")
        raise IngestInvalid("the segment chain does not match the signed manifest: quarantined")
    with p.keyring.signing() as signer:  # stamped and signed by one key, valid then, even during a rotation
        now = utcnow()
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
            lost_segments=sorted(lost_set),
        )
        signed = SignedReceipt(receipt=receipt, signature=signer.sign(receipt.signing_bytes()))
    rec.state, rec.stored_at, rec.receipt = RecordingState.STORED, now, signed.model_dump_json()
    if lost_set:
        rec.state_reason = (
            f"segments {sorted(lost_set)} lost on the camera (damaged there before hand-over): "
            "not in the vault; the others are verified against the device-signed manifest"
        )
    manifest = orjson.loads(rec.manifest)["manifest"]
    p.record(
        db,
        EntryDraft(
            action=Action.COLLECTION,
            event="recording.ingested",
            actor=device_actor(device),
            recordings=[rec.id],
            cameras=[device.id],
            details={
                "agent": rec.agent_ref,
                "started_at": manifest["started_at"],
                "ended_at": manifest["ended_at"],
                "trigger": rec.trigger,
                "persons_informed": rec.persons_informed,
                "not_informed_reason": rec.not_informed_reason,
                "outside_territory": rec.outside_territory,
                "clock_drift": rec.clock_drift_flag,
                "bytes": rec.size_bytes,
                "segments": rec.segment_count,
                "manifest_sha256": rec.manifest_sha256,
                "retention_until": rec.retention_until.isoformat(),
                **({"lost_segments": sorted(lost_set)} if lost_set else {}),
                # The camera's signed request declaring them: what the receipt's loss is checked against.
                **({"lost_declaration": declaration} if lost_set and declaration else {}),
                **field_checks.collected_details(rec.flags, rec.declared_started_at, rec.declared_agent_ref),
            },
        ),
        tenant,
    )
    db.commit()
    return signed
