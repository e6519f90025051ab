"""Access copies: a recording shown to the person who asks, with every other face hidden (R241-15; the
other people filmed have rights too).

Steps, each journaled: the faces are found (a background job: the recording is decrypted into a private
folder under TEMOIN_HOME, removed as soon as the engine is done); an operator entitled to see faces
(RECORDINGS_REDACT) picks the requester's track(s) and marks extra regions; the copy is produced (a background
job, with progress) and sealed at rest like the vault's blobs, in the platform's blob store (vault.artefact_blobs:
any node serves it); a person reviews it (approve or reject with a
reason); only an approved copy is handed to the requester, which is journaled as a communication to them.

The redaction engine (`temoin.rights.redaction`) is imported lazily: without it, these steps answer that the
engine is missing instead of failing the whole platform.
"""

from __future__ import annotations

import base64
import io
import logging
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson
from sqlalchemy.orm import Session

from temoin import errors, jobs
from temoin.db import utcnow
from temoin.evidence import crypto
from temoin.identity.models import Tenant, User
from temoin.identity.service import actor_of
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.law.access import MotiveCode
from temoin.rights import register
from temoin.rights.jobs import DETECT, REDACT, admission, latest
from temoin.rights.models import CopyState, RedactedCopy, RequestKind, RightsRequest
from temoin.rights.register import RightsError, delivery_refusal, recipient
from temoin.vault import artefact_blobs, catalogue, integrity
from temoin.vault.context import VaultContext
from temoin.vault.limitation import RecordingLimited, active_limitations
from temoin.vault.models import Recording, RecordingState
from temoin.vault.storage import BlobMissing

log = logging.getLogger("temoin.rights")

THUMB_PX = 128
RUNNING = (CopyState.DETECTING, CopyState.REDACTING)


class CopyContext(VaultContext, Protocol):
    """The platform as the steps that start a job see it."""

    jobs: jobs.Jobs


class EngineMissing(errors.Unavailable, RuntimeError):
    """The redaction engine cannot be loaded on this server: copies wait for an administrator to install it."""


class CopyNotFound(errors.NotFound, LookupError):
    pass


class CopyDeleted(errors.Gone):
    """The copy's key or files are gone (deleted with its recording)."""


def engine() -> Any:
    """The redaction engine module, or EngineMissing with what to do."""
    try:
        from temoin.rights import redaction

        redaction.detect_tracks, redaction.redact_file, redaction.ManualRegion  # noqa: B018 - the contract
    except (ImportError, AttributeError) as exc:
        raise EngineMissing(
            f"the redaction engine (temoin.rights.redaction) is not available ({exc}); redacted "
            "copies cannot be made on this installation until it is installed"
        ) from None
    return redaction


def _motive(req: RightsRequest) -> dict[str, str]:
    return {"code": MotiveCode.RIGHTS_REQUEST.value, "text": f"demande d'accès n° {req.id}"}


def copies_root(p: VaultContext) -> Path:
    return p.settings.home / "rights"


@contextmanager
def private_workdir(p: VaultContext, copy_id: int) -> Iterator[Path]:
    """A folder only this process's user can read, under TEMOIN_HOME (never /tmp), removed afterwards. What an
    attempt killed midway left for the same copy (clear media) is removed first."""
    base = p.settings.home / "tmp"
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in base.glob(f"rights-copy-{copy_id}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    work = base / f"rights-copy-{copy_id}-{uuid.uuid4().hex}"
    work.mkdir(mode=0o700)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def decrypt_recording(p: VaultContext, db: Session, rec: Recording, work: Path) -> Path:
    """The recording's media as one MP4 in `work`: segments decrypted, then joined without re-encoding (the same
    bytes give the same frame numbers each time, so tracks found once stay valid for the redaction). Segments lost
    at the camera were never in the vault: the copy is made of the stored ones, back to back."""
    parts = []
    for seg in (s.index for s in integrity.stored_segments(rec)):
        path = work / f"segment-{seg:05d}.mp4"
        with path.open("wb") as fh:
            for chunk in catalogue.read_segment(p, db, rec, seg):
                fh.write(chunk)
        parts.append(path)
    if len(parts) == 1:
        return parts[0]
    listing = work / "segments.txt"
    listing.write_text("".join(f"file '{part.name}'\n" for part in parts))
    out = work / "recording.mp4"
    done = subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            str(listing),
            "-c",
            "copy",
            "-map",
            "0",
            str(out),
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"joining the segments failed: {done.stderr.strip()[-500:]}")
    for part in parts:
        part.unlink()
    return out


def _data_key(p: VaultContext, copy: RedactedCopy) -> bytes:
    if copy.data_key is None:  # erased with its recording: nothing of the copy can be read any more
        raise CopyDeleted(f"copy {copy.id} cannot be read any more ({copy.error or 'its key was erased'})")
    return crypto.unwrap_key(p.keyring.master_key, copy.data_key, f"rights-copy-{copy.id}")


def _folder(copy: RedactedCopy) -> str:
    """The copy's name (vault.artefact_blobs): its files are sealed in the blob store under it (a copy made before
    has them in that folder under TEMOIN_HOME)."""
    if copy.folder is None:  # set when the copy is created; only a row written by hand lacks it
        raise CopyDeleted(f"copy {copy.id} has no folder: it holds nothing; start a new copy")
    return f"rights/{copy.folder}"


def _seal_bytes(p: VaultContext, folder: str, file: str, data_key: bytes, data: bytes) -> tuple[str, int]:
    return artefact_blobs.write_bytes(p.store, artefact_blobs.key(folder, file), data_key, data)


def _seal_file(p: VaultContext, src: Path, folder: str, file: str, data_key: bytes) -> tuple[str, int]:
    return artefact_blobs.write_file(p.store, artefact_blobs.key(folder, file), data_key, src)


def _has(p: VaultContext, folder: str, file: str) -> bool:
    return artefact_blobs.exists(p.store, artefact_blobs.key(folder, file), p.settings.home / folder / file)


def _open_sealed(
    p: VaultContext, folder: str, file: str, data_key: bytes, byte_range: tuple[int, int] | None = None
) -> Iterator[bytes]:
    """A sealed file of the copy, decrypted as it is read: from the store, or from TEMOIN_HOME if made before."""
    try:
        return artefact_blobs.read(
            p.store, artefact_blobs.key(folder, file), data_key, byte_range, legacy=p.settings.home / folder / file
        )
    except BlobMissing:
        raise CopyDeleted(f"the file {file} of copy {folder} is missing from the store: start a new copy") from None


# --- reading a copy ------------------------------------------------------------------------------------


def _of_my_communes(db: Session, user: User, copy: RedactedCopy) -> bool:
    """A commune-limited user reaches a copy only when both its request and its recording are of their communes."""
    if user.communes is None:
        return True
    req, rec = db.get(RightsRequest, copy.request_id), db.get(Recording, copy.recording_id)
    return req is not None and rec is not None and register.may_see(user, req) and catalogue.in_communes(user, rec)


def get_copy(p: VaultContext, db: Session, user: User, copy_id: int) -> RedactedCopy:
    copy = db.get(RedactedCopy, copy_id)
    if copy is not None and copy.tenant_id == user.tenant_id and not _of_my_communes(db, user, copy):
        raise CopyNotFound(f"no redacted copy {copy_id} in your commune")  # another commune of the EPCI
    if copy is None or copy.tenant_id != user.tenant_id:
        if copy is not None:
            p.record(
                db,
                EntryDraft(
                    action=Action.SECURITY,
                    event="access.cross_tenant",
                    actor=actor_of(user),
                    recordings=[copy.recording_id],
                    details={"asked_for": f"redacted_copy:{copy_id}"},
                ),
                db.get(Tenant, user.tenant_id),
            )
            db.commit()
        raise CopyNotFound(f"no redacted copy {copy_id} in your commune")
    if copy.state in RUNNING:
        _settle(p, db, copy)
    return copy


def _settle(p: VaultContext, db: Session, copy: RedactedCopy) -> None:
    """A copy whose step's job ended without finishing it (failed before it could say so, cancelled before it
    started, or died with the server on SQLite) is marked failed, with the job's reason, and journaled."""
    job = latest(db, copy.id)
    if job is not None and job.state not in jobs.FINISHED:
        return  # waiting or running
    state = copy.state
    db.refresh(copy)  # read after the job: a job that just finished has written the copy before its own row
    if copy.state != state:
        return
    if job is not None and job.state == jobs.JobState.CANCELLED:
        why = "cancelled before it started: start the step again"
    elif job is not None and job.error:
        why = job.error
    else:
        why = "interrupted (the server stopped): start the step again"
    copy.state, copy.error = CopyState.FAILED.value, why[:2000]
    p.record(
        db,
        EntryDraft(
            action=Action.MODIFICATION,
            event="rights.copy.failed",
            actor=Actor.system("rights"),
            recordings=[copy.recording_id],
            details={"copy_id": copy.id, "step": _STEPS[CopyState(state)], "error": why[:500]},
        ),
        db.get(Tenant, copy.tenant_id),
    )
    db.commit()


_STEPS = {CopyState.DETECTING: "face detection", CopyState.REDACTING: "redaction"}


def cancel(p: CopyContext, db: Session, user: User, copy: RedactedCopy) -> RedactedCopy:
    """Stop the step under way: a waiting job never starts, a running one stops at its next progress report and
    keeps nothing; either way the copy is failed ("cancelled") and journaled; a new copy starts over."""
    if copy.state not in RUNNING:
        raise RightsError(f"the copy is {copy.state}: no step is under way to cancel")
    job = latest(db, copy.id)
    if job is not None and job.state not in jobs.FINISHED:
        try:
            p.jobs.cancel(db, job.id, copy.tenant_id)
        except errors.Conflict:
            pass  # it ended meanwhile: what it left is settled below
    db.refresh(copy)
    if copy.state in RUNNING:
        _settle(p, db, copy)
    return copy


def faces(p: VaultContext, db: Session, user: User, copy: RedactedCopy) -> list[dict]:
    """Each face track with a thumbnail (data URL). Shows faces: journaled as a consultation."""
    if copy.state == CopyState.DELETED:
        raise RightsError(f"copy {copy.id} was deleted with its recording ({copy.error}): no face is left to show")
    if copy.state in (CopyState.DETECTING, CopyState.FAILED) or not copy.folder:
        raise RightsError(f"the faces are not found yet (state {copy.state})")
    folder = _folder(copy)
    thumbs = (
        orjson.loads(b"".join(_open_sealed(p, folder, "thumbnails.sealed", _data_key(p, copy))))
        if _has(p, folder, "thumbnails.sealed")
        else {}
    )
    req = db.get_one(RightsRequest, copy.request_id)
    p.record(
        db,
        EntryDraft(
            action=Action.CONSULTATION,
            event="rights.copy.faces_viewed",
            actor=actor_of(user),
            recordings=[copy.recording_id],
            motive=_motive(req),
            details={"copy_id": copy.id, "request_id": req.id, "tracks": len(copy.tracks or [])},
        ),
        db.get(Tenant, copy.tenant_id),
    )
    db.commit()
    return [
        {**t, "thumbnail": f"data:image/jpeg;base64,{thumbs[str(t['id'])]}" if str(t["id"]) in thumbs else None}
        for t in copy.tracks or []
    ]


def copy_stream(
    p: VaultContext,
    db: Session,
    user: User,
    copy: RedactedCopy,
    *,
    deliver: bool,
    byte_range: tuple[int, int] | None = None,
) -> Iterator[bytes]:
    """The redacted copy's bytes (or bytes [start, end) of it). deliver=False: a reviewer watching it
    (consultation; a player's later range requests, its seeks, belong to the viewing that read from byte 0 and are
    not journaled again); deliver=True: handed to the requester (communication), only once approved."""
    req = db.get_one(RightsRequest, copy.request_id)
    tenant = db.get_one(Tenant, copy.tenant_id)
    if deliver:
        if copy.state != CopyState.APPROVED:
            raise RightsError(f"the copy is {copy.state}: only a copy approved by a reviewer may be handed over")
        refusal = delivery_refusal(db, req, copy.recording_id)
        if refusal is not None:
            p.record(
                db,
                EntryDraft(
                    action=Action.MODIFICATION,
                    event="rights.copy.delivery_refused",
                    actor=actor_of(user),
                    recordings=[copy.recording_id],
                    details={
                        "copy_id": copy.id,
                        "request_id": req.id,
                        "reason": "restricted" if req.status == "restricted" else "judicial_hold",
                    },
                ),
                tenant,
            )
            db.commit()
            raise refusal
        copy.delivered_at = utcnow()
        p.record(
            db,
            EntryDraft(
                action=Action.COMMUNICATION,
                event="rights.copy.delivered",
                actor=actor_of(user),
                recordings=[copy.recording_id],
                recipients=[recipient(req)],
                details={"copy_id": copy.id, "request_id": req.id, "sha256": copy.sha256},
            ),
            tenant,
        )
    else:
        if copy.state not in (CopyState.TO_REVIEW, CopyState.APPROVED, CopyState.REJECTED):
            raise RightsError(f"the copy is {copy.state}: there is nothing to watch yet")
        if byte_range is None or byte_range[0] == 0:
            p.record(
                db,
                EntryDraft(
                    action=Action.CONSULTATION,
                    event="rights.copy.viewed",
                    actor=actor_of(user),
                    recordings=[copy.recording_id],
                    motive=_motive(req),
                    details={"copy_id": copy.id, "request_id": req.id},
                ),
                tenant,
            )
    db.commit()
    return _open_sealed(p, _folder(copy), "copy.sealed", _data_key(p, copy), byte_range)


@dataclass(frozen=True)
class Still:
    """One frame of the original recording, for drawing regions by hand over it."""

    jpeg: bytes
    frame: int  # its index in the whole recording, as the redaction numbers frames
    frame_rate: float
    at_s: float  # its time from the recording's start


def still(p: VaultContext, db: Session, user: User, copy: RedactedCopy, at_s: float) -> Still:
    """The frame shown at `at_s` seconds. Only the segment holding it is decrypted, in memory, so a still of a
    long recording costs one segment. Shows faces: journaled as a consultation."""
    import av

    if copy.state not in EDITABLE:
        raise RightsError(f"the copy is {copy.state}: stills are for preparing a copy (faces found, not yet approved)")
    rec = db.get(Recording, copy.recording_id)
    if rec is None or rec.state != RecordingState.STORED or rec.wrapped_key is None:
        raise CopyNotFound(f"{copy.recording_id} is not stored any more")
    segments = integrity.stored_segments(rec)  # in index order; the copy's timeline leaves lost ones out
    duration = sum(s.duration_s for s in segments)
    at_s = max(0.0, min(float(at_s), duration))
    offset = 0.0
    for segment in segments:
        if at_s < offset + segment.duration_s or segment is segments[-1]:
            break
        offset += segment.duration_s
    # Decoded from memory: one segment of plaintext, never written to disk.
    media = io.BytesIO(b"".join(catalogue.read_segment(p, db, rec, segment.index)))
    with av.open(media, mode="r") as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate) if stream.average_rate else 25.0
        start: float | None = None
        chosen = None
        for frame in container.decode(stream):
            t = float(frame.time or 0.0)
            start = t if start is None else start
            chosen = frame
            if t - start + 0.5 / rate >= at_s - offset:
                break
        if chosen is None or start is None:  # both set by the first frame
            raise RightsError(f"segment {segment.index} of {rec.id} holds no picture")
        local = float(chosen.time or 0.0) - start
        buf = io.BytesIO()
        chosen.to_image().save(buf, "JPEG", quality=88)
    req = db.get_one(RightsRequest, copy.request_id)
    shown = round(offset + local, 3)
    p.record(
        db,
        EntryDraft(
            action=Action.CONSULTATION,
            event="rights.copy.still_viewed",
            actor=actor_of(user),
            recordings=[rec.id],
            motive=_motive(req),
            details={"copy_id": copy.id, "request_id": req.id, "at_s": shown},
        ),
        db.get(Tenant, copy.tenant_id),
    )
    db.commit()
    return Still(buf.getvalue(), round(shown * rate), rate, shown)


# --- the steps -----------------------------------------------------------------------------------------


def start_copy(p: CopyContext, db: Session, user: User, req: RightsRequest, recording_id: str) -> RedactedCopy:
    """Create a copy for one recording and start finding the faces in it."""
    if req.kind != RequestKind.ACCESS:
        raise RightsError(f"request {req.id} is a {req.kind} request: redacted copies answer access requests")
    try:
        rec = catalogue.get_visible(p, db, user, recording_id)
    except catalogue.NotFound:
        raise CopyNotFound(f"no stored recording {recording_id} that you may see") from None
    if rec.state != RecordingState.STORED or rec.wrapped_key is None:
        raise CopyNotFound(f"{recording_id} is not stored any more")
    limits = active_limitations(db, [rec.id])
    if limits:
        raise RightsError(str(RecordingLimited(limits, "making a copy of it")))
    engine()  # refuse before anything is written when the engine is missing
    with admission(db, p.settings, req.tenant_id):  # likewise when too many jobs wait (429/503)
        copy = _create_copy(p, db, user, req, rec)
        job = _add_job(p, db, user, copy, DETECT)
        db.commit()
    p.jobs.start(job)
    return copy


def _add_job(p: CopyContext, db: Session, user: User, copy: RedactedCopy, kind: str, **more: Any) -> jobs.JobRecord:
    args = {"copy_id": copy.id, "actor": actor_of(user).model_dump(), **more}
    return p.jobs.add(db, kind, args, tenant_id=copy.tenant_id, created_by=user.id, subject=str(copy.id))


def _create_copy(p: VaultContext, db: Session, user: User, req: RightsRequest, rec: Recording) -> RedactedCopy:
    tenant = db.get_one(Tenant, req.tenant_id)
    copy = RedactedCopy(
        tenant_id=tenant.id,
        request_id=req.id,
        recording_id=rec.id,
        state=CopyState.DETECTING.value,
        progress=0.0,
        tracks=[],
        keep_tracks=[],
        add_regions=[],
        created_by=user.id,
    )
    db.add(copy)
    db.flush()
    copy.data_key = crypto.wrap_key(p.keyring.master_key, crypto.new_data_key(), f"rights-copy-{copy.id}")
    copy.folder = f"{tenant.slug}/copy-{copy.id}"
    lost = [x.index for x in integrity.lost_segments(rec)]
    p.record(
        db,
        EntryDraft(
            action=Action.CONSULTATION,
            event="rights.copy.started",
            actor=actor_of(user),
            recordings=[rec.id],
            cameras=[rec.device_id],
            motive=_motive(req),
            details={"copy_id": copy.id, "request_id": req.id, **({"lost_segments": lost} if lost else {})},
        ),
        tenant,
    )
    return copy


EDITABLE = (CopyState.TRACKS_READY, CopyState.REJECTED, CopyState.TO_REVIEW)


def redact(
    p: CopyContext,
    db: Session,
    user: User,
    copy: RedactedCopy,
    *,
    keep_tracks: list[int],
    add_regions: list[dict],
    remove_regions: Sequence[dict] = (),
    voice: bool = True,
) -> RedactedCopy:
    """Produce the copy with these choices: tracks kept visible (the requester's), regions hidden by hand (faces
    the detector missed), regions left clear by hand (a detection there is not a face)."""
    if copy.state not in EDITABLE:
        raise RightsError(f"the copy is {copy.state}: wait for the faces to be found")
    known = {t["id"] for t in copy.tracks or []}
    unknown = sorted(set(keep_tracks) - known)
    if unknown:
        raise RightsError(f"no face track {unknown} in this recording; tracks: {sorted(known)}")
    for region in [*add_regions, *remove_regions]:
        if region["end_frame"] < region["start_frame"] or region["w"] <= 0 or region["h"] <= 0:
            raise RightsError(f"region {region}: give start_frame <= end_frame and a positive size")
    engine()
    with admission(db, p.settings, copy.tenant_id):
        db.refresh(copy)  # read again under the lock: two requests do not both start it
        if copy.state not in EDITABLE:
            raise RightsError(f"the copy is {copy.state}: wait for the step under way")
        _redaction_started(p, db, user, copy, keep_tracks, add_regions, remove_regions, voice)
        job = _add_job(p, db, user, copy, REDACT, voice=voice)
        db.commit()
    p.jobs.start(job)
    return copy


def _redaction_started(
    p: VaultContext,
    db: Session,
    user: User,
    copy: RedactedCopy,
    keep_tracks: list[int],
    add_regions: list[dict],
    remove_regions: Sequence[dict],
    voice: bool,
) -> None:
    copy.keep_tracks, copy.add_regions = sorted(set(keep_tracks)), list(add_regions)
    copy.remove_regions = list(remove_regions)
    copy.redacted_by = user.id
    copy.state, copy.progress, copy.error = CopyState.REDACTING.value, 0.0, None
    copy.reviewed_by = copy.reviewed_at = copy.review_reason = None
    req = db.get_one(RightsRequest, copy.request_id)
    p.record(
        db,
        EntryDraft(
            action=Action.MODIFICATION,
            event="rights.copy.redaction_started",
            actor=actor_of(user),
            recordings=[copy.recording_id],
            details={
                "copy_id": copy.id,
                "request_id": req.id,
                "kept_tracks": copy.keep_tracks,
                "added_regions": len(add_regions),
                "removed_regions": len(remove_regions),
                "voice": voice,
            },
        ),
        db.get(Tenant, copy.tenant_id),
    )


def review(
    p: VaultContext,
    db: Session,
    user: User,
    copy: RedactedCopy,
    *,
    approve: bool,
    reason: str | None = None,
    flagged_seen: bool = False,
) -> RedactedCopy:
    """A person looked at the copy: approved, it may be handed over; rejected, it must be redacted again.
    Where the machine flagged stretches as unsure, approving says that the person looked at each of them."""
    if copy.state != CopyState.TO_REVIEW:
        raise RightsError(f"the copy is {copy.state}: only a produced copy awaiting review can be reviewed")
    flagged = flagged_stretches(copy)
    if approve and flagged and not flagged_seen:
        raise RightsError(
            f"the detector was unsure on {flagged} stretch(es) of this recording (flagged beside the faces): "
            "watch each of them in the copy, hide what is still visible, then confirm that you looked at them"
        )
    reason = (reason or "").strip() or None
    if not approve and not reason:
        raise RightsError("say what is wrong with the copy (a face left visible, a region to add...)")
    if approve and user.id in (copy.created_by, copy.redacted_by):
        raise RightsError(
            "four eyes: a copy is approved by someone other than its author (who started it or "
            "chose what to hide); ask a colleague entitled to redact to review it"
        )
    copy.state = (CopyState.APPROVED if approve else CopyState.REJECTED).value
    copy.reviewed_by, copy.reviewed_at, copy.review_reason = user.id, utcnow(), reason
    p.record(
        db,
        EntryDraft(
            action=Action.MODIFICATION,
            event=f"rights.copy.{copy.state}",
            actor=actor_of(user),
            recordings=[copy.recording_id],
            details={
                "copy_id": copy.id,
                "request_id": copy.request_id,
                "reason": reason,
                "flagged_stretches": flagged,
                "flagged_seen": bool(flagged_seen and flagged),
            },
        ),
        db.get(Tenant, copy.tenant_id),
    )
    db.commit()
    return copy


# --- background jobs -----------------------------------------------------------------------------------


class _Progress:
    """Writes the job's progress to the copy's row, at most every 2 % (and to the job's row, where a cancellation
    is seen: JobCancelled then stops the engine)."""

    def __init__(self, p: VaultContext, run: jobs.Run, copy_id: int) -> None:
        self.p, self.run, self.copy_id, self.last = p, run, copy_id, -1.0

    def __call__(self, *args: Any) -> None:
        if len(args) < 2 or not args[1]:
            return
        self.run.progress(int(args[0]), int(args[1]))
        fraction = max(0.0, min(1.0, float(args[0]) / float(args[1])))
        if fraction - self.last < 0.02 and fraction < 1.0:
            return
        self.last = fraction
        with self.p.session() as db:
            copy = db.get_one(RedactedCopy, self.copy_id)  # copies are marked deleted, never removed
            copy.progress = round(fraction * 0.95, 3)  # the rest is sealing
            db.commit()


def _fail(p: VaultContext, copy_id: int, actor: Actor, step: str, exc: BaseException | str) -> None:
    log.warning("rights copy %s: %s failed: %s", copy_id, step, exc)
    with p.session() as db:
        copy = db.get_one(RedactedCopy, copy_id)
        if copy.state not in RUNNING:  # deleted with its recording (it stays so), or finished by another attempt
            return
        copy.state, copy.error = CopyState.FAILED.value, f"{step} failed: {exc}"[:2000]
        p.record(
            db,
            EntryDraft(
                action=Action.MODIFICATION,
                event="rights.copy.failed",
                actor=actor,
                recordings=[copy.recording_id],
                details={"copy_id": copy.id, "step": step, "error": str(exc)[:500]},
            ),
            db.get(Tenant, copy.tenant_id),
        )
        db.commit()


def thumbnails(src: Path, tracks: list[Any]) -> dict[str, str]:
    """One JPEG per track (base64), cut around its largest box."""
    import av
    from PIL import Image

    wanted: dict[int, list[tuple[int, tuple]]] = {}
    for track in tracks:
        if track.boxes:
            frame, box = max(track.boxes.items(), key=lambda kv: kv[1][2] * kv[1][3])
            wanted.setdefault(int(frame), []).append((int(track.id), box))
    out: dict[str, str] = {}
    if not wanted:
        return out
    last = max(wanted)
    with av.open(str(src)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                image = frame.to_image()
                for track_id, (x, y, w, h) in wanted[index]:
                    pad_w, pad_h = w * 0.25, h * 0.25
                    box = (
                        max(0, int(x - pad_w)),
                        max(0, int(y - pad_h)),
                        min(image.width, int(x + w + pad_w)),
                        min(image.height, int(y + h + pad_h)),
                    )
                    crop = image.crop(box) if box[2] > box[0] and box[3] > box[1] else image
                    crop.thumbnail((THUMB_PX, THUMB_PX), Image.Resampling.LANCZOS)
                    buf = io.BytesIO()
                    crop.convert("RGB").save(buf, "JPEG", quality=85)
                    out[str(track_id)] = base64.b64encode(buf.getvalue()).decode()
            if index >= last:
                break
    return out


def _reviewed_tracks(p: VaultContext, copy: RedactedCopy) -> list[Any] | None:
    """The tracks found for the review, box by box; None for a copy made before they were kept (detect again)."""
    folder = _folder(copy)
    if not _has(p, folder, "tracks.sealed"):
        return None
    from temoin.rights.redaction import FaceTrack

    rows = orjson.loads(b"".join(_open_sealed(p, folder, "tracks.sealed", _data_key(p, copy))))
    return [
        FaceTrack(
            int(r["id"]),
            {int(f): tuple(b) for f, b in r["boxes"].items()},
            tuple(r["detected"]),
            float(r["score"]),
            tuple((int(a), int(b), str(why)) for a, b, why in r.get("review", ())),  # none before they were kept
        )
        for r in rows
    ]


def _stretch(track: Any, first: int, last: int, why: str, fps: float) -> dict:
    """A stretch of a track flagged for review, with the box that covers the face all along it (grown by a
    quarter on each side): the page can hide the whole stretch in one click."""
    boxes = [track.boxes[f] for f in range(first, last + 1) if f in track.boxes]
    if not boxes:  # a stretch between two of the track's boxes: those on either side frame it
        near = sorted(track.boxes, key=lambda f: min(abs(f - first), abs(f - last)))[:2]
        boxes = [track.boxes[f] for f in near]
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
    gx, gy = (x1 - x0) // 4, (y1 - y0) // 4
    return {
        "start_frame": first,
        "end_frame": last,
        "start_s": round(first / fps, 2),
        "end_s": round((last + 1) / fps, 2),
        "why": why,
        "box": [max(0, x0 - gx), max(0, y0 - gy), x1 - x0 + 2 * gx, y1 - y0 + 2 * gy],
    }


def flagged_stretches(copy: RedactedCopy) -> int:
    """How many stretches of the copy's tracks the machine flagged for a person to look at."""
    return sum(len(t.get("review") or []) for t in copy.tracks or [])


def _largest(track: Any) -> list[int] | None:
    """The track's largest box (x, y, w, h in source pixels): where the face shows best."""
    if not track.boxes:
        return None
    return [int(v) for v in max(track.boxes.values(), key=lambda b: b[2] * b[3])]


def _frame_rate(src: Path) -> float:
    import av

    with av.open(str(src)) as container:
        rate = container.streams.video[0].average_rate
        return float(rate) if rate else 25.0


def _step(p: VaultContext, args: dict, state: CopyState) -> tuple[int, Actor] | None:
    """The copy and actor of a job; None when there is nothing to do (an earlier attempt of a job run again after
    its worker died finished the step, or the copy was deleted or failed meanwhile)."""
    copy_id = int(args["copy_id"])
    with p.session() as db:
        copy = db.get(RedactedCopy, copy_id)
        if copy is None or copy.state != state:
            return None
    return copy_id, Actor.model_validate(args["actor"])


def _ended_elsewhere(p: VaultContext, copy: RedactedCopy, state: CopyState, folder: str) -> bool:
    """At the end of a step: the copy was deleted meanwhile (nothing of it may stay), or another attempt finished
    the step (its result stands)."""
    if copy.state == CopyState.DELETED:
        artefact_blobs.remove(p.store, p.settings.home, [folder])
    return copy.state != state


def _detect_job(p: VaultContext, run: jobs.Run, args: dict) -> dict:
    """Find the faces. Run again after a killed attempt, it starts over; its files are replaced whole."""
    begun = _step(p, args, CopyState.DETECTING)
    if begun is None:
        return {"copy_id": args["copy_id"]}
    copy_id, actor = begun
    try:
        redaction = engine()
        with private_workdir(p, copy_id) as work:
            with p.session() as db:  # read what the job needs; no session is held across the long work
                copy = db.get_one(RedactedCopy, copy_id)
                rec = db.get_one(Recording, copy.recording_id)  # recordings are erased, never removed
                src = decrypt_recording(p, db, rec, work)
                folder, data_key = _folder(copy), _data_key(p, copy)
            found = redaction.detect_tracks(src, progress=_Progress(p, run, copy_id))
            fps = _frame_rate(src)
            thumbs = thumbnails(src, found)
            _seal_bytes(p, folder, "thumbnails.sealed", data_key, orjson.dumps(thumbs))
            # The boxes themselves, so the copy applies exactly the tracks the operator reviewed (and the
            # detector does not run twice).
            _seal_bytes(
                p,
                folder,
                "tracks.sealed",
                data_key,
                orjson.dumps(
                    [
                        {
                            "id": t.id,
                            "boxes": {str(f): list(b) for f, b in t.boxes.items()},
                            "detected": list(t.detected),
                            "score": t.score,
                            "review": [list(stretch) for stretch in t.review],
                        }
                        for t in found
                    ]
                ),
            )
        with p.session() as db:
            copy = db.get_one(RedactedCopy, copy_id)
            if _ended_elsewhere(p, copy, CopyState.DETECTING, folder):
                return {"copy_id": copy_id}
            copy.tracks = [
                {
                    "id": int(t.id),
                    "frames": len(t.boxes),
                    "first_frame": min(t.boxes, default=0),
                    "last_frame": max(t.boxes, default=0),
                    "start_s": round(min(t.boxes, default=0) / fps, 2),
                    "end_s": round(max(t.boxes, default=0) / fps, 2),
                    "box": _largest(t),
                    # Where the machine was unsure: the page flags these stretches for the operator.
                    "review": [_stretch(t, a, b, why, fps) for a, b, why in t.review],
                }
                for t in found
            ]
            copy.state, copy.progress = CopyState.TRACKS_READY.value, 1.0
            p.record(
                db,
                EntryDraft(
                    action=Action.MODIFICATION,
                    event="rights.copy.faces_found",
                    actor=actor,
                    recordings=[copy.recording_id],
                    details={"copy_id": copy.id, "tracks": len(found), "flagged_stretches": flagged_stretches(copy)},
                ),
                db.get(Tenant, copy.tenant_id),
            )
            db.commit()
    except jobs.JobCancelled:
        _fail(p, copy_id, actor, "face detection", "cancelled")
        raise
    except Exception as exc:  # the copy says why, then the job (and the worker's log)
        _fail(p, copy_id, actor, "face detection", exc)
        raise
    return {"copy_id": copy_id}


def _redact_job(p: VaultContext, run: jobs.Run, args: dict) -> dict:
    """Produce the copy. Run again after a killed attempt, it starts over; the sealed copy is replaced whole."""
    begun = _step(p, args, CopyState.REDACTING)
    if begun is None:
        return {"copy_id": args["copy_id"]}
    (copy_id, actor), voice = begun, bool(args.get("voice", True))
    try:
        redaction = engine()

        def regions(rows: list[dict] | None) -> list[Any]:
            return [
                redaction.ManualRegion(
                    int(r["start_frame"]), int(r["end_frame"]), int(r["x"]), int(r["y"]), int(r["w"]), int(r["h"])
                )
                for r in rows or []
            ]

        with private_workdir(p, copy_id) as work:
            with p.session() as db:  # read what the job needs; no session is held across the long work
                copy = db.get_one(RedactedCopy, copy_id)
                rec = db.get_one(Recording, copy.recording_id)  # recordings are erased, never removed
                src = decrypt_recording(p, db, rec, work)
                keep, add, remove = (
                    list(copy.keep_tracks or []),
                    regions(copy.add_regions),
                    regions(copy.remove_regions),
                )
                tracks = _reviewed_tracks(p, copy)
                folder, data_key = _folder(copy), _data_key(p, copy)
            dst = work / "redacted.mp4"
            report = redaction.redact_file(
                src,
                dst,
                mode="blur",
                keep_tracks=keep,
                add_regions=add,
                remove_regions=remove,
                voice=voice,
                progress=_Progress(p, run, copy_id),
                tracks=tracks,
            )
            src.unlink(missing_ok=True)  # the clear original goes first
            sha256, size = _seal_file(p, dst, folder, "copy.sealed", data_key)
        with p.session() as db:
            copy = db.get_one(RedactedCopy, copy_id)
            if _ended_elsewhere(p, copy, CopyState.REDACTING, folder):
                return {"copy_id": copy_id}
            copy.sha256, copy.size_bytes, copy.produced_at = sha256, size, utcnow()
            copy.state, copy.progress = CopyState.TO_REVIEW.value, 1.0
            p.record(
                db,
                EntryDraft(
                    action=Action.MODIFICATION,
                    event="rights.copy.produced",
                    actor=actor,
                    recordings=[copy.recording_id],
                    details={
                        "copy_id": copy.id,
                        "sha256": sha256,
                        "bytes": size,
                        "boxes_redacted": report.boxes_redacted,
                        "detections": report.detection_frames,
                        "audio": report.audio,
                    },
                ),
                db.get(Tenant, copy.tenant_id),
            )
            db.commit()
    except jobs.JobCancelled:
        _fail(p, copy_id, actor, "redaction", "cancelled")
        raise
    except Exception as exc:  # the copy says why, then the job (and the worker's log)
        _fail(p, copy_id, actor, "redaction", exc)
        raise
    return {"copy_id": copy_id}


jobs.register(DETECT, _detect_job)
jobs.register(REDACT, _redact_job)
