"""Serving a file by byte ranges (a video player seeks with them): parse the Range header, answer 206 or 200."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import HTTPException
from fastapi.responses import StreamingResponse


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """One `bytes=a-b`, `bytes=a-` or `bytes=-n` range as [start, end); None without a header (the whole file);
    416 when it cannot be served."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec or "-" not in spec:
        raise HTTPException(
            416, "ask for one byte range (bytes=START-END)", headers={"Content-Range": f"bytes */{size}"}
        )
    first, _, last = (part.strip() for part in spec.partition("-"))
    try:
        if first == "":
            start, end = max(0, size - int(last)), size
        else:
            start, end = int(first), min(size, int(last) + 1) if last else size
    except ValueError:
        raise HTTPException(416, f"bad byte range {header!r}", headers={"Content-Range": f"bytes */{size}"}) from None
    if start >= size or end <= start:
        raise HTTPException(
            416,
            f"the range {header!r} lies outside the file's {size} bytes",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, end


def ranged_response(
    chunks: Iterable[bytes],
    size: int,
    wanted: tuple[int, int] | None,
    media_type: str,
    headers: dict[str, str] | None = None,
) -> StreamingResponse:
    """The whole file (200) or the range asked for (206), saying that ranges are accepted."""
    headers = {**(headers or {}), "Accept-Ranges": "bytes"}
    if wanted is None:
        return StreamingResponse(chunks, media_type=media_type, headers={**headers, "Content-Length": str(size)})
    start, end = wanted
    return StreamingResponse(
        chunks,
        status_code=206,
        media_type=media_type,
        headers={**headers, "Content-Range": f"bytes {start}-{end - 1}/{size}", "Content-Length": str(end - start)},
    )
