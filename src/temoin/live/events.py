"""The events channel of the CSU's dashboards: alerts, acknowledgements, positions, session states and
stream health, per tenant. `EventBus` is the interface; `InProcessEventBus` serves one server process
(`live.events_nats.NatsEventBus` carries them across nodes through NATS JetStream: TEMOIN_EVENTS_URL).

Events are numbered; a dashboard that reconnects sends the last number it saw (SSE `Last-Event-ID`)
and gets what it missed, as far as the ring buffer reaches.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(frozen=True)
class Event:
    id: int
    tenant_id: int
    type: str  # alert | session | position | stream
    data: dict[str, Any]
    at: float = field(default_factory=time.time)

    def as_dict(self) -> dict:
        return {"id": self.id, "type": self.type, "at": self.at, "data": self.data}

    def sse(self) -> bytes:
        # Number 0: an event not numbered (NATS unreachable, live.events_nats): the dashboard keeps its last id.
        return (
            (f"id: {self.id}\n" if self.id else "").encode()
            + f"event: {self.type}\n".encode()
            + b"data: "
            + orjson.dumps({"at": self.at, **self.data})
            + b"\n\n"
        )


class Subscription(ABC):
    closed: bool = False  # ended: closed by its reader, or its bus or loop gone

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[Event]: ...

    @abstractmethod
    async def next(self, timeout: float | None = None) -> Event | None:
        """The next event, or None after `timeout` seconds or once closed."""

    @abstractmethod
    def close(self) -> None: ...


class QueuedSubscription(Subscription):
    """A subscription its reader takes from an asyncio queue, which its bus fills from any thread (`deliver`);
    None in the queue ends it. Each bus's subscription says how events are delivered."""

    bus: Any  # the bus that feeds it: forgets it on close (`_remove`)
    queue: asyncio.Queue[Event | None]

    @abstractmethod
    def deliver(self, event: Event | None) -> None: ...

    async def next(self, timeout: float | None = None) -> Event | None:
        if self.closed and self.queue.empty():
            return None
        try:
            event = await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None
        if event is None:
            self.closed = True
        return event

    async def __aiter__(self) -> AsyncIterator[Event]:
        while (event := await self.next()) is not None:
            yield event

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.bus._remove(self)
            self.deliver(None)


class EventBus(ABC):
    @abstractmethod
    def publish(self, tenant_id: int, type: str, data: dict[str, Any]) -> Event:
        """Thread-safe: request handlers running in the thread pool publish too."""

    @abstractmethod
    def subscribe(self, tenant_id: int, after: int | None = None) -> Subscription:
        """Events of one tenant from now on, preceded by those after `after` still in the buffer.
        Must be called from the event loop that will read the subscription."""

    @abstractmethod
    def recent(self, tenant_id: int, after: int | None = None, limit: int = 100) -> list[Event]: ...

    @abstractmethod
    def close(self) -> None:
        """Ends every subscription (server shutdown)."""

    def wait_ready(self, timeout: float) -> bool:
        """Blocks until the bus carries events between nodes (at most `timeout` s); True once it does."""
        return True


class _Sub(QueuedSubscription):
    def __init__(self, bus: InProcessEventBus, tenant_id: int, backlog: list[Event]) -> None:
        self.bus, self.tenant_id = bus, tenant_id
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=1000)
        for event in backlog:
            self.queue.put_nowait(event)
        self.closed = False

    def deliver(self, event: Event | None) -> None:
        def put() -> None:
            if self.queue.full():  # a dashboard that does not read: it loses the oldest, and resyncs by id
                self.queue.get_nowait()
            self.queue.put_nowait(event)

        try:
            self.loop.call_soon_threadsafe(put)
        except RuntimeError:  # its loop is gone
            self.closed = True


class InProcessEventBus(EventBus):
    def __init__(self, buffer: int = 500) -> None:
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._buffers: dict[int, deque[Event]] = {}
        self._subs: dict[int, set[_Sub]] = {}
        self._buffer = buffer
        self._closed = False

    def publish(self, tenant_id: int, type: str, data: dict[str, Any]) -> Event:
        with self._lock:
            event = Event(next(self._ids), tenant_id, type, data)
            self._buffers.setdefault(tenant_id, deque(maxlen=self._buffer)).append(event)
            subs = list(self._subs.get(tenant_id, ()))
        for sub in subs:
            sub.deliver(event)
        return event

    def recent(self, tenant_id: int, after: int | None = None, limit: int = 100) -> list[Event]:
        with self._lock:
            events = [e for e in self._buffers.get(tenant_id, ()) if after is None or e.id > after]
        return events[-limit:]

    def subscribe(self, tenant_id: int, after: int | None = None) -> Subscription:
        with self._lock:
            backlog = [e for e in self._buffers.get(tenant_id, ()) if after is not None and e.id > after]
            sub = _Sub(self, tenant_id, backlog)
            if self._closed:  # shutting down: the subscriber gets the backlog, then the end
                sub.closed = True
                return sub
            self._subs.setdefault(tenant_id, set()).add(sub)
        return sub

    def _remove(self, sub: _Sub) -> None:
        with self._lock:
            self._subs.get(sub.tenant_id, set()).discard(sub)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            subs = [s for group in self._subs.values() for s in group]
        for sub in subs:
            sub.close()
