"""An access copy's background jobs: finding the faces, then producing the copy, in the platform's bounded queue
(`rights.jobs`), each writing its progress and outcome to the copy's row and the journal.

The redaction engine (`temoin.rights.redaction`) is imported lazily: without it, these steps answer that the
engine is missing instead of failing the whole platform.
"""

from __future__ import annotations

import base64
import io
import logging
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import Future, wait as wait_futures
from pathlib import Path
from typing import Any

import orjson

from temoin import errors
from temoin.db import utcnow
from temoin.identity.models import Tenant
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.rights import copy_files
from temoin.rights.jobs import JobQueue, Ticket
from temoin.rights.models import CopyState, RedactedCopy
from temoin.vault.context import VaultContext
from temoin.vault.models import Recording

log = logging.getLogger("temoin.rights")

THUMB_PX = 128
_jobs: dict[int, Future] = {}  # copy id -> its job, in this process
_jobs_lock = threading.Lock()
# id(platform) -> (that platform, the bounded queue of its redaction jobs); the platform is kept to tell a
# reused id() apart once a platform is gone
_queues: dict[int, tuple[VaultContext, JobQueue]] = {}


class EngineMissing(errors.Unavailable, RuntimeError):
    """The redaction engine cannot be loaded on this server: copies wait for an administrator to install it."""


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


def queue_of(p: VaultContext) -> JobQueue:
    """The platform's redaction queue: settings.redaction_workers at once, bounded per tenant and in all."""
    with _jobs_lock:
        entry = _queues.get(id(p))
        if entry is None or entry[0] is not p:
            entry = _queues[id(p)] = (p, JobQueue.from_settings(p.settings, "rights-copy"))
        return entry[1]


def spawn(ticket: Ticket, copy_id: int, target: Callable[[], None]) -> None:
    with _jobs_lock:
        _jobs[copy_id] = ticket.submit(f"rights-copy-{copy_id}", target)


def running(copy_id: int) -> bool:
    """Whether the copy's job is waiting or running in this process."""
    with _jobs_lock:
        return copy_id in _jobs and not _jobs[copy_id].done()


def wait(copy_id: int, timeout: float | None = None) -> None:
    """Wait for a copy's job in this process (the CLI and tests)."""
    with _jobs_lock:
        job = _jobs.get(copy_id)
    if job is not None:
        wait_futures([job], timeout)


class _Progress:
    """Writes the job's progress to the copy's row, at most every 2 %."""

    def __init__(self, p: VaultContext, copy_id: int) -> None:
        self.p, self.copy_id, self.last = p, copy_id, -1.0

    def __call__(self, *args: Any) -> None:
        if len(args) < 2 or not args[1]:
            return
        fraction = max(0.0, min(1.0, float(args[0]) / float(args[1])))
        if fraction - self.last < 0.02 and fraction < 1.0:
            return
        self.last = fraction
        with self.p.session() as db:
            copy = db.get_one(RedactedCopy, self.copy_id)  # copies are marked deleted, never removed
            copy.progress = round(fraction * 0.95, 3)  # the rest is sealing
            db.commit()


def _fail(p: VaultContext, copy_id: int, actor: Actor, step: str, exc: BaseException) -> None:
    log.exception("rights copy %s: %s failed", copy_id, step)
    with p.session() as db:
        copy = db.get_one(RedactedCopy, copy_id)
        if copy.state == CopyState.DELETED:  # failed because its recording was deleted: it stays deleted
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
    path = copy_files.folder_of(p, copy) / "tracks.sealed"
    if not path.exists():
        return None
    from temoin.rights.redaction import FaceTrack

    rows = orjson.loads(b"".join(copy_files.open_sealed(path, copy_files.data_key(p, copy))))
    return [
        FaceTrack(
            int(r["id"]), {int(f): tuple(b) for f, b in r["boxes"].items()}, tuple(r["detected"]), float(r["score"])
        )
        for r in rows
    ]


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


def detect_job(p: VaultContext, copy_id: int, actor: Actor) -> None:
    try:
        redaction = engine()
        with copy_files.private_workdir(p) as work:
            with p.session() as db:  # read what the job needs; no session is held across the long work
                copy = db.get_one(RedactedCopy, copy_id)
                rec = db.get_one(Recording, copy.recording_id)  # recordings are erased, never removed
                src = copy_files.decrypt_recording(p, db, rec, work)
                folder, data_key = copy_files.folder_of(p, copy), copy_files.data_key(p, copy)
            found = redaction.detect_tracks(src, progress=_Progress(p, copy_id))
            fps = _frame_rate(src)
            thumbs = thumbnails(src, found)
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            copy_files.seal_bytes(folder / "thumbnails.sealed", data_key, orjson.dumps(thumbs))
            # The boxes themselves, so the copy applies exactly the tracks the operator reviewed (and the
            # detector does not run twice).
            copy_files.seal_bytes(
                folder / "tracks.sealed",
                data_key,
                orjson.dumps(
                    [
                        {
                            "id": t.id,
                            "boxes": {str(f): list(b) for f, b in t.boxes.items()},
                            "detected": list(t.detected),
                            "score": t.score,
                        }
                        for t in found
                    ]
                ),
            )
        with p.session() as db:
            copy = db.get_one(RedactedCopy, copy_id)
            if copy.state == CopyState.DELETED:  # its recording was deleted meanwhile: nothing of it may stay
                shutil.rmtree(folder, ignore_errors=True)
                return
            copy.tracks = [
                {
                    "id": int(t.id),
                    "frames": len(t.boxes),
                    "first_frame": min(t.boxes, default=0),
                    "last_frame": max(t.boxes, default=0),
                    "start_s": round(min(t.boxes, default=0) / fps, 2),
                    "end_s": round(max(t.boxes, default=0) / fps, 2),
                    "box": _largest(t),
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
                    details={"copy_id": copy.id, "tracks": len(found)},
                ),
                db.get(Tenant, copy.tenant_id),
            )
            db.commit()
    except Exception as exc:  # noqa: BLE001 - the copy says why; the server goes on
        _fail(p, copy_id, actor, "face detection", exc)


def redact_job(p: VaultContext, copy_id: int, actor: Actor, voice: bool) -> None:
    try:
        redaction = engine()

        def regions(rows: list[dict] | None) -> list[Any]:
            return [
                redaction.ManualRegion(
                    int(r["start_frame"]), int(r["end_frame"]), int(r["x"]), int(r["y"]), int(r["w"]), int(r["h"])
                )
                for r in rows or []
            ]

        with copy_files.private_workdir(p) as work:
            with p.session() as db:  # read what the job needs; no session is held across the long work
                copy = db.get_one(RedactedCopy, copy_id)
                rec = db.get_one(Recording, copy.recording_id)  # recordings are erased, never removed
                src = copy_files.decrypt_recording(p, db, rec, work)
                keep, add, remove = (
                    list(copy.keep_tracks or []),
                    regions(copy.add_regions),
                    regions(copy.remove_regions),
                )
                tracks = _reviewed_tracks(p, copy)
                folder, data_key = copy_files.folder_of(p, copy), copy_files.data_key(p, copy)
            dst = work / "redacted.mp4"
            report = redaction.redact_file(
                src,
                dst,
                mode="blur",
                keep_tracks=keep,
                add_regions=add,
                remove_regions=remove,
                voice=voice,
                progress=_Progress(p, copy_id),
                tracks=tracks,
            )
            src.unlink(missing_ok=True)  # the clear original goes first
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            sha256, size = copy_files.seal_file(dst, folder / "copy.sealed", data_key)
        with p.session() as db:
            copy = db.get_one(RedactedCopy, copy_id)
            if copy.state == CopyState.DELETED:
                shutil.rmtree(folder, ignore_errors=True)
                return
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
    except Exception as exc:  # noqa: BLE001 - the copy is marked failed with the reason; the server goes on
        _fail(p, copy_id, actor, "redaction", exc)
