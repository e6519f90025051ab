"""A request body handed to a sealing function record by record, receiving overlapping the sealing.

Used by the camera ingest (web.routes.ingest) and the Axis Swift PUT (web.routes.axis): both hash, seal and write
every MiB in a worker thread; awaiting each of those before reading more from the socket left one core idle.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fastapi.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

from temoin.evidence.crypto import RECORD_BYTES

# Records waiting between the socket reader and the sealing thread: receiving goes on while the previous records
# are hashed, sealed and written, in bounded memory (this many records of RECORD_BYTES, plus the one being sealed).
QUEUED_RECORDS = 2


async def pipe_body(request: Request, feed: Callable[..., None], *, begin: Callable[[], None] | None = None) -> bool:
    """Read the body on the event loop while a worker thread runs `feed(*chunks)` on what came before.

    `begin`, if given, runs in the worker thread before the first `feed`, while the first records are received
    (at most QUEUED_RECORDS wait for it); if it fails, nothing is fed and its error is raised here.

    The socket reader gathers a record's worth of chunks and queues it; the sealer takes them in order. A `feed`
    error (too many bytes, a full disk) stops the reading and is raised here. Returns False when the client went
    away before the end of its body (what was fed stays fed: the caller decides whether to keep it). Either way
    the sealer has stopped when this returns: the caller's finish or abort never runs beside a `feed`."""
    queue: asyncio.Queue[list[bytes] | None] = asyncio.Queue(maxsize=QUEUED_RECORDS)
    failed: list[BaseException] = []
    whole = True

    async def seal() -> None:
        if begin is not None:
            try:
                await run_in_threadpool(begin)
            except Exception as exc:  # noqa: BLE001 - not swallowed: handed to the reader, which raises it
                failed.append(exc)
        while (batch := await queue.get()) is not None:
            if not failed:  # after a failure, drain: the reader must never wait on a full queue
                try:
                    await run_in_threadpool(feed, *batch)
                except Exception as exc:  # noqa: BLE001 - not swallowed: handed to the reader, which raises it
                    failed.append(exc)

    sealer = asyncio.create_task(seal())
    try:
        pending: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                pending.append(chunk)
                size += len(chunk)
                if size >= RECORD_BYTES:
                    await queue.put(pending)
                    pending, size = [], 0
                    if failed:
                        break
        except ClientDisconnect:
            whole = False
        if pending and not failed:
            await queue.put(pending)
    finally:
        if not sealer.done():  # it ends once it has taken everything queued before this
            await asyncio.shield(queue.put(None))
        await asyncio.shield(sealer)
    if failed:
        raise failed[0]
    return whole
