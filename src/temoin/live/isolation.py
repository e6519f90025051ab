"""The media plane in an event loop of its own, in a thread of its own.

The server's event loop runs the web requests; whatever stalls it (a slow handler, a burst of requests, a
bug) must not stall the live streams. `IsolatedMediaPlane` runs another `MediaPlane` (the aiortc relay) in a
dedicated loop: RTP, RTCP, ICE and DTLS are handled there, whatever the web side does. Its async methods are
awaited from the server's loop (the call hops to the media loop and its result back); the `on_ended`
callbacks run back in the server's loop, where the hub's state lives (journaling, events); a `LocalFeed`
pushes into the media loop directly.

`status` and `streams` read the relay's state from the caller's thread: plain reads of counters and dict
keys (atomic under the GIL), at worst one frame out of date.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

from temoin.live.plane import Answer, FrameSink, LocalFeed, MediaPlane, OnEnded, StreamStatus

log = logging.getLogger("temoin.live")
T = TypeVar("T")
STOP_WAIT_S = 5.0


class _FeedInMediaLoop(LocalFeed):
    """A `LocalFeed` of the isolated plane: pushed frames go to the media loop (`loop` is where a puller thread
    should send them, with `loop.call_soon_threadsafe`, to skip a hop through the server's loop)."""

    def __init__(self, inner: LocalFeed, loop: asyncio.AbstractEventLoop) -> None:
        self.inner = inner
        self.resource_id = inner.resource_id
        self.loop = loop

    def _call(self, fn: Callable[..., None], *args: object) -> None:
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is self.loop:
            fn(*args)
        elif not self.loop.is_closed():
            self.loop.call_soon_threadsafe(fn, *args)

    def push(self, kind: Literal["audio", "video"], data: bytes, timestamp: int) -> None:
        self._call(self.inner.push, kind, data, timestamp)

    def restart(self) -> None:
        self._call(self.inner.restart)

    @property
    def active(self) -> bool:
        return self.inner.active


class IsolatedMediaPlane(MediaPlane):
    def __init__(self, inner: MediaPlane, *, name: str = "temoin-media") -> None:
        self.inner = inner
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The media loop (None before `start` and after `close`)."""
        return self._loop

    # --- the thread -----------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._thread is not None:
            return
        started: concurrent.futures.Future[asyncio.AbstractEventLoop] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, args=(started,), name=self.name, daemon=True)
        self._thread.start()
        self._loop = await asyncio.wrap_future(started)
        await self._in_media(self.inner.start)

    @staticmethod
    def _run(started: concurrent.futures.Future) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        started.set_result(loop)
        try:
            loop.run_forever()
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for task in pending:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            except Exception:  # the server is going down: say it, carry on
                log.exception("live: closing the media loop")
            finally:
                loop.close()

    async def close(self) -> None:
        try:
            await self._in_media(self.inner.close)
        finally:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
            if loop is not None and thread is not None:
                loop.call_soon_threadsafe(loop.stop)
                await asyncio.to_thread(thread.join, STOP_WAIT_S)

    async def _in_media(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: object, **kwargs: object) -> T:
        """Run `fn(*args, **kwargs)` in the media loop and wait for it here without blocking this loop."""
        loop = self._loop
        if loop is None or loop is asyncio.get_running_loop():  # not started (or already there): run here
            return await fn(*args, **kwargs)
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(fn(*args, **kwargs), loop))

    @staticmethod
    def _back_here(on_ended: OnEnded | None) -> OnEnded | None:
        """`on_ended`, called from the media loop, run in the caller's loop (where the hub's state lives)."""
        if on_ended is None:
            return None
        home = asyncio.get_running_loop()

        async def call(reason: str) -> None:
            result = on_ended(reason)
            if inspect.isawaitable(result):
                await result

        async def ended(reason: str) -> None:
            if asyncio.get_running_loop() is home:
                await call(reason)
            elif not home.is_closed():
                await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call(reason), home))

        return ended

    # --- the media plane ------------------------------------------------------------------------------

    async def publish(self, stream: str, offer: str, *, on_ended: OnEnded | None = None) -> Answer:
        return await self._in_media(self.inner.publish, stream, offer, on_ended=self._back_here(on_ended))

    async def play(self, stream: str, offer: str, *, on_ended: OnEnded | None = None) -> Answer:
        return await self._in_media(self.inner.play, stream, offer, on_ended=self._back_here(on_ended))

    def open_stream(self, stream: str, sink: FrameSink | None = None) -> None:
        # Synchronous by contract (the hub checks `streams()` right after): the relay only registers the name.
        self.inner.open_stream(stream, sink)

    async def attach(
        self, stream: str, *, on_keyframe_request: Callable[[], None] | None = None, on_ended: OnEnded | None = None
    ) -> LocalFeed:
        feed = await self._in_media(
            self.inner.attach, stream, on_keyframe_request=on_keyframe_request, on_ended=self._back_here(on_ended)
        )
        return feed if self._loop is None else _FeedInMediaLoop(feed, self._loop)

    async def end(self, stream: str, resource_id: str) -> bool:
        return await self._in_media(self.inner.end, stream, resource_id)

    async def end_stream(self, stream: str, reason: str = "stream_ended") -> None:
        await self._in_media(self.inner.end_stream, stream, reason)

    def status(self, stream: str) -> StreamStatus | None:
        return self.inner.status(stream)

    def streams(self) -> list[str]:
        return self.inner.streams()
