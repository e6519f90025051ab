"""Camera-facing ingest API (device-signed). See docs/ingest.md for the resumable upload scheme."""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session
from starlette.requests import ClientDisconnect

from temoin.evidence.crypto import RECORD_BYTES
from temoin.evidence.manifest import SignedReceipt
from temoin.identity.models import Device
from temoin.platform import Platform
from temoin.vault import ingest
from temoin.vault.storage import StorageError, StorageFull
from temoin.web import problems
from temoin.web.deps import current_device, get_db, get_platform

router = APIRouter(prefix="/api/v1/ingest", tags=["ingest (cameras)"])

OFFSET_HEADER = "Upload-Offset"
_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


def _error(exc: ingest.IngestError) -> JSONResponse:
    headers = {OFFSET_HEADER: str(exc.offset)} if exc.offset is not None else {}
    body = {"detail": exc.message}
    if isinstance(exc, ingest.RecordingGone):  # 410: the camera may delete its copy on this signed statement
        body["deletion_certificate"] = exc.certificate
    return JSONResponse(body, status_code=exc.status, headers=headers)


@router.post("/recordings", status_code=201, summary="Send a recording's signed manifest")
async def post_manifest(request: Request, device: Device = Depends(current_device),
                        db: Session = Depends(get_db), p: Platform = Depends(get_platform)) -> Response:
    limit = p.settings.max_manifest_bytes
    if int(request.headers.get("content-length") or 0) > limit:
        return _error(ingest.IngestError(413, f"manifest larger than {limit} bytes"))
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            return _error(ingest.IngestError(413, f"manifest larger than {limit} bytes"))
    try:
        status = await run_in_threadpool(ingest.open_upload, p, db, device, bytes(raw))
    except ingest.IngestError as exc:
        return _error(exc)
    return JSONResponse(status.as_dict(), status_code=201)


@router.get("/recordings/{recording_id}", summary="What the vault holds of an upload")
def get_upload(recording_id: str, device: Device = Depends(current_device), db: Session = Depends(get_db),
               p: Platform = Depends(get_platform)) -> Response:
    try:
        return JSONResponse(ingest.upload_status(p, db, device, recording_id).as_dict())
    except ingest.IngestError as exc:
        return _error(exc)


@router.head("/recordings/{recording_id}/segments/{index}", summary="Bytes of a segment already received")
def head_segment(recording_id: str, index: int, device: Device = Depends(current_device),
                 db: Session = Depends(get_db), p: Platform = Depends(get_platform)) -> Response:
    try:
        status = ingest.upload_status(p, db, device, recording_id)
    except ingest.IngestError as exc:
        return Response(status_code=exc.status)
    seg = next((s for s in status.segments if s.index == index), None)
    if seg is None:
        return Response(status_code=404)
    return Response(headers={OFFSET_HEADER: str(seg.received), "Upload-Length": str(seg.size),
                             "Upload-Complete": "1" if seg.complete else "0"})


@router.put("/recordings/{recording_id}/segments/{index}", summary="Upload a segment, or resume it")
async def put_segment(recording_id: str, index: int, request: Request, device: Device = Depends(current_device),
                      db: Session = Depends(get_db), p: Platform = Depends(get_platform)) -> Response:
    start, total = 0, None
    content_range = request.headers.get("content-range")
    if content_range:
        match = _RANGE.match(content_range.strip())
        if not match:
            return _error(ingest.IngestError(400, "Content-Range must read `bytes START-END/TOTAL`"))
        start, end, total = (int(g) for g in match.groups())
        if end < start or end >= total:
            return _error(ingest.IngestError(400, "Content-Range end must lie between start and total - 1"))
    try:
        upload = await run_in_threadpool(ingest.SegmentUpload, p, db, device, recording_id, index, start, total)
    except ingest.IngestError as exc:
        return _error(exc)
    try:
        try:
            await _receive(request, upload)
        except ingest.IngestError as exc:
            await run_in_threadpool(upload.finish)
            return _error(exc)
        except BaseException:
            await run_in_threadpool(upload.finish)
            raise
        seg = await run_in_threadpool(upload.finish)
    except ingest.IngestError as exc:
        return _error(exc)
    except StorageFull as exc:
        # Disk full: nothing partial becomes evidence; the camera keeps its copy and retries (507).
        return problems.problem(exc)
    except StorageError as exc:
        return _error(ingest.IngestError(500, str(exc)))
    return JSONResponse({"index": seg.index, "received": seg.received, "size": seg.size, "complete": seg.complete},
                        headers={OFFSET_HEADER: str(seg.received)})


async def _receive(request: Request, upload: ingest.SegmentUpload) -> None:
    """Gather what the socket gives until a record is full, then hash and seal it off the event loop."""
    pending: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            pending.append(chunk)
            size += len(chunk)
            if size >= RECORD_BYTES:
                await run_in_threadpool(upload.feed, *pending)
                pending.clear()
                size = 0
    except ClientDisconnect:
        pass  # the camera went away: keep what arrived, it resumes from there
    if pending:
        await run_in_threadpool(upload.feed, *pending)


class CompleteBody(BaseModel):
    lost_segments: list[int] = Field(default_factory=list, max_length=10_000,
                                     description="segments damaged on the camera: the others are stored")


@router.post("/recordings/{recording_id}/complete", response_model=SignedReceipt,
             summary="Close the upload: verify everything and get the vault's signed receipt")
def post_complete(recording_id: str, body: CompleteBody | None = None, device: Device = Depends(current_device),
                  db: Session = Depends(get_db), p: Platform = Depends(get_platform)) -> Response:
    try:
        receipt = ingest.complete(p, db, device, recording_id, body.lost_segments if body else ())
    except ingest.IngestError as exc:
        return _error(exc)
    return JSONResponse(receipt.model_dump(mode="json"))
