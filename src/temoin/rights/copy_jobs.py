"""The background steps of an access copy (temoin.jobs, run by `temoin worker` or in-process): finding the faces,
then producing the copy. Each starts over when run again after a killed attempt; its files are replaced whole.

The redaction engine (`temoin.rights.redaction`) is imported lazily: without it, these steps answer that the
engine is missing instead of failing the whole platform."""

from __future__ import annotations

import base64
import functools
import io
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from temoin import errors, jobs
from temoin.coordination import locks_for
from temoin.db import utcnow
from temoin.identity.models import Tenant
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.rights.copy_storage import (
    data_key_of,
    decrypt_recording,
    folder_of,
    has_file,
    open_sealed,
    private_workdir,
    seal_bytes,
    seal_file,
)
from temoin.rights.jobs import DETECT, REDACT
from temoin.rights.models import CopyState, RedactedCopy
from temoin.vault import artefact_blobs
from temoin.vault.context import VaultContext
from temoin.vault.models import Recording

log = logging.getLogger("temoin.rights")

THUMB_PX = 128
RUNNING = (CopyState.DETECTING, CopyState.REDACTING)


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
            db.get_one(Tenant, copy.tenant_id),
        )
        db.commit()


@contextmanager
def _failing_the_copy(p: VaultContext, copy_id: int, actor: Actor, step: str) -> Iterator[None]:
    """Whatever stops a step fails the copy, saying why (cancelled, or the error), then goes on to the job (and the
    worker's log)."""
    try:
        yield
    except jobs.JobCancelled:
        _fail(p, copy_id, actor, step, "cancelled")
        raise
    except Exception as exc:
        _fail(p, copy_id, actor, step, exc)
        raise


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
    folder = folder_of(copy)
    if not has_file(p, folder, "tracks.sealed"):
        return None
    from temoin.rights.redaction import FaceTrack

    rows = orjson.loads(b"".join(open_sealed(p, folder, "tracks.sealed", data_key_of(p, copy))))
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


def copy_lock(copy_id: int) -> str:
    """The coordination lock an attempt at a copy's step holds for as long as it runs."""
    return f"rights.copy:{copy_id}"


def _one_attempt_at_a_time(job: Callable[[VaultContext, jobs.Run, dict], dict]) -> Callable[..., dict]:
    """A second attempt of a step (its worker taken for dead while it was only slow) would decrypt into the same
    private folder and stage the same sealed files as the first: it waits for the first here, on every node, then
    finds the step done (`_step`) and does nothing."""

    @functools.wraps(job)
    def attempt(p: VaultContext, run: jobs.Run, args: dict) -> dict:
        with p.session() as db:
            locks = locks_for(db)
        with locks.held(copy_lock(int(args["copy_id"]))):
            return job(p, run, args)

    return attempt


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


@_one_attempt_at_a_time
def _detect_job(p: VaultContext, run: jobs.Run, args: dict) -> dict:
    """Find the faces. Run again after a killed attempt, it starts over; its files are replaced whole."""
    begun = _step(p, args, CopyState.DETECTING)
    if begun is None:
        return {"copy_id": args["copy_id"]}
    copy_id, actor = begun
    with _failing_the_copy(p, copy_id, actor, "face detection"):
        redaction = engine()
        with private_workdir(p, copy_id) as work:
            with p.session() as db:  # read what the job needs; no session is held across the long work
                copy = db.get_one(RedactedCopy, copy_id)
                rec = db.get_one(Recording, copy.recording_id)  # recordings are erased, never removed
                src = decrypt_recording(p, db, rec, work)
                folder, data_key = folder_of(copy), data_key_of(p, copy)
            found = redaction.detect_tracks(src, progress=_Progress(p, run, copy_id))
            fps = _frame_rate(src)
            thumbs = thumbnails(src, found)
            seal_bytes(p, folder, "thumbnails.sealed", data_key, orjson.dumps(thumbs))
            # The boxes themselves, so the copy applies exactly the tracks the operator reviewed (and the
            # detector does not run twice).
            seal_bytes(
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
                db.get_one(Tenant, copy.tenant_id),
            )
            db.commit()
    return {"copy_id": copy_id}


@_one_attempt_at_a_time
def _redact_job(p: VaultContext, run: jobs.Run, args: dict) -> dict:
    """Produce the copy. Run again after a killed attempt, it starts over; the sealed copy is replaced whole."""
    begun = _step(p, args, CopyState.REDACTING)
    if begun is None:
        return {"copy_id": args["copy_id"]}
    (copy_id, actor), voice = begun, bool(args.get("voice", True))
    with _failing_the_copy(p, copy_id, actor, "redaction"):
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
                folder, data_key = folder_of(copy), data_key_of(p, copy)
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
            sha256, size = seal_file(p, dst, folder, "copy.sealed", data_key)
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
                db.get_one(Tenant, copy.tenant_id),
            )
            db.commit()
    return {"copy_id": copy_id}


jobs.register(DETECT, _detect_job)
jobs.register(REDACT, _redact_job)
