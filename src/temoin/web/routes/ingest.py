"""Camera-facing ingest API (device-signed). See docs/ingest.md for the resumable upload scheme."""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from temoin import errors
from temoin.evidence.device_requests import lost_declaration
from temoin.evidence.manifest import SignedReceipt
from temoin.identity.models import Device
from temoin.platform import Platform
from temoin.vault import ingest
from temoin.web import problems
from temoin.web.body_pipe import pipe_body
from temoin.web.deps import current_device, device_request_body, get_db, get_platform

OFFSET_HEADER = "Upload-Offset"
_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")


class IngestRoute(APIRoute):
    """An ingest route: a refused upload also says, in Upload-Offset, how much of the segment the vault holds
    (the camera resumes from there). The problem body is the app's (a 410 carries the deletion certificate)."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def with_offset(request: Request) -> Response:
            try:
                return await handler(request)
            except ingest.IngestError as exc:
                return problems.problem(
                    exc, headers={OFFSET_HEADER: str(exc.offset)} if exc.offset is not None else None
                )

        return with_offset


router = APIRouter(prefix="/api/v1/ingest", tags=["ingest (cameras)"], route_class=IngestRoute)


@router.post("/recordings", status_code=201, summary="Send a recording's signed manifest")
async def post_manifest(
    request: Request,
    device: Device = Depends(current_device),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> Response:
    limit = p.settings.max_manifest_bytes
    if int(request.headers.get("content-length") or 0) > limit:
        raise ingest.IngestTooLarge(f"manifest larger than {limit} bytes")
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise ingest.IngestTooLarge(f"manifest larger than {limit} bytes")
    status = await run_in_threadpool(ingest.open_upload, p, db, device, bytes(raw))
    return JSONResponse(status.as_dict(), status_code=201)


@router.get("/recordings/{recording_id}", summary="What the vault holds of an upload")
def get_upload(
    recording_id: str,
    device: Device = Depends(current_device),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> Response:
    return JSONResponse(ingest.upload_status(p, db, device, recording_id).as_dict())


@router.head("/recordings/{recording_id}/segments/{index}", summary="Bytes of a segment already received")
def head_segment(
    recording_id: str,
    index: int,
    device: Device = Depends(current_device),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> Response:
    status = ingest.upload_status(p, db, device, recording_id)
    seg = next((s for s in status.segments if s.index == index), None)
    if seg is None:
        return Response(status_code=404)
    return Response(
        headers={
            OFFSET_HEADER: str(seg.received),
            "Upload-Length": str(seg.size),
            "Upload-Complete": "1" if seg.complete else "0",
        }
    )


@router.put("/recordings/{recording_id}/segments/{index}", summary="Upload a segment, or resume it")
async def put_segment(
    recording_id: str,
    index: int,
    request: Request,
    device: Device = Depends(current_device),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> Response:
    try:
        start, total = _content_range(request)
    except ingest.IngestMalformed:
        await run_in_threadpool(db.commit)  # the nonce is spent even though the request is refused
        raise
    uploads: list[ingest.SegmentUpload] = []

    def begin() -> None:
        # current_device flushed the nonce (a replay is refused there) and left it to commit here: its fsync runs
        # while the first records of the body arrive, instead of before the first byte is read.
        db.commit()
        uploads.append(ingest.SegmentUpload(p, db, device, recording_id, index, start, total))

    def feed(*chunks: bytes) -> None:
        uploads[0].feed(*chunks)

    try:
        await pipe_body(request, feed, begin=begin)  # a camera that goes away keeps what arrived: it resumes
    except BaseException:  # not a mapping: the upload is finished (what arrived is kept), then the error answers
        if uploads:
            await run_in_threadpool(uploads[0].finish)
        raise
    upload = uploads[0]
    # A full disk answers 507: nothing partial becomes evidence; the camera keeps its copy and retries.
    seg = await run_in_threadpool(upload.finish)
    return JSONResponse(
        {"index": seg.index, "received": seg.received, "size": seg.size, "complete": seg.complete},
        headers={OFFSET_HEADER: str(seg.received)},
    )


def _content_range(request: Request) -> tuple[int, int | None]:
    """(start, total) of a piece: (0, None) for a whole segment sent without Content-Range."""
    content_range = request.headers.get("content-range")
    if not content_range:
        return 0, None
    match = _RANGE.match(content_range.strip())
    if not match:
        raise ingest.IngestMalformed("Content-Range must read `bytes START-END/TOTAL`")
    start, end, total = (int(g) for g in match.groups())
    if end < start or end >= total:
        raise ingest.IngestMalformed("Content-Range end must lie between start and total - 1")
    return start, total


class CompleteBody(BaseModel):
    lost_segments: list[int] = Field(
        default_factory=list, max_length=10_000, description="segments damaged on the camera: the others are stored"
    )


@router.post(
    "/recordings/{recording_id}/complete",
    response_model=SignedReceipt,
    summary="Close the upload: verify everything and get the vault's signed receipt",
)
def post_complete(
    recording_id: str,
    request: Request,
    body: CompleteBody | None = None,
    raw: bytes | None = Depends(device_request_body),
    device: Device = Depends(current_device),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> Response:
    # A loss is the camera's word: its signed request (checked by current_device) is kept as the evidence of it,
    # so a declaration must be one that can be kept whole (path and body: no query string, which it would not hold).
    if body and body.lost_segments and request.url.query:
        raise errors.InvalidInput(
            "a completion that declares lost segments takes no query string: send it to "
            f"/api/v1/recordings/{recording_id}/complete with the segments in the signed body"
        )
    said = (
        lost_declaration(request.headers.get("authorization", ""), request.url.path, raw)
        if body and body.lost_segments and raw is not None
        else None
    )
    receipt = ingest.complete(p, db, device, recording_id, body.lost_segments if body else (), declaration=said)
    return JSONResponse(receipt.model_dump(mode="json"))
