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

import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
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
from temoin.rights import copy_jobs, register
from temoin.rights.copy_jobs import RUNNING, flagged_stretches
from temoin.rights.copy_storage import data_key_of, folder_of, has_file, open_sealed
from temoin.rights.jobs import DETECT, REDACT, admission, latest
from temoin.rights.models import CopyState, RedactedCopy, RequestKind, RightsRequest
from temoin.rights.register import RightsError, delivery_refusal, recipient
from temoin.vault import catalogue, integrity
from temoin.vault.context import VaultContext
from temoin.vault.limitation import RecordingLimited, active_limitations
from temoin.vault.models import Recording, RecordingState

log = logging.getLogger("temoin.rights")


class CopyContext(VaultContext, Protocol):
    """The platform as the steps that start a job see it."""

    jobs: jobs.Jobs


class CopyNotFound(errors.NotFound, LookupError):
    pass


def _motive(req: RightsRequest) -> dict[str, str]:
    return {"code": MotiveCode.RIGHTS_REQUEST.value, "text": f"demande d'accès n° {req.id}"}


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
                db.get_one(Tenant, user.tenant_id),
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
        db.get_one(Tenant, copy.tenant_id),
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
    folder = folder_of(copy)
    thumbs = (
        orjson.loads(b"".join(open_sealed(p, folder, "thumbnails.sealed", data_key_of(p, copy))))
        if has_file(p, folder, "thumbnails.sealed")
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
        db.get_one(Tenant, copy.tenant_id),
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
    return open_sealed(p, folder_of(copy), "copy.sealed", data_key_of(p, copy), byte_range)


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
        db.get_one(Tenant, copy.tenant_id),
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
    copy_jobs.engine()  # refuse before anything is written when the engine is missing
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
    copy_jobs.engine()
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
        db.get_one(Tenant, copy.tenant_id),
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
        db.get_one(Tenant, copy.tenant_id),
    )
    db.commit()
    return copy
