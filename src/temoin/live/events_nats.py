"""The CSU's events across nodes: `NatsEventBus` puts them on a NATS JetStream stream (TEMOIN_EVENTS_URL), so that
an alert raised on any node reaches the dashboards of every node, and a dashboard that reconnects to another node
gets what it missed. `event_bus(settings)` picks it, or the in-process bus when no URL is set.

An event's number is its JetStream stream sequence: the same on every node, so SSE `Last-Event-ID` works wherever
the dashboard reconnects. Every node (one `NatsEventBus`) reads the stream with one ordered consumer and hands each
event to its own dashboards; a reconnecting dashboard's backlog is read from the stream by a short-lived consumer.

NATS unreachable (at start or later): the outage is logged, and events raised on this node still reach this node's
dashboards at once, without a number (SSE events without `id:`). What is lost: those events never reach the other
nodes and are not replayed to a dashboard that reconnects; events of other nodes during the outage reach this node's
dashboards once NATS is back (the consumer resumes where it stopped, within TEMOIN_EVENTS_KEEP_S).

NATS itself runs in its own thread and event loop: publishing never blocks a request or the server's loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from typing import Any

import orjson

from temoin.live.events import Event, EventBus, InProcessEventBus, QueuedSubscription, Subscription
from temoin.settings import Settings

log = logging.getLogger("temoin.live.events")
RETRY_S = 2.0  # between two attempts to reach NATS
PUBLISH_TIMEOUT_S = 2.0  # JetStream's acknowledgement of one event
BACKLOG_TIMEOUT_S = 5.0  # reading a reconnecting dashboard's backlog
HEARTBEAT_S = 1.0  # the stream's heartbeat to this node's consumer: two missed, and it is recreated
BACKLOG_MAX = 5000  # events read from the stream for one backlog (the newest `buffer` are kept)


def event_bus(settings: Settings) -> EventBus:
    """NATS JetStream when TEMOIN_EVENTS_URL names one; otherwise the in-process bus (one server process)."""
    if not settings.events_url.strip():
        return InProcessEventBus()
    return NatsEventBus(settings.events_url, settings.events_stream, settings.events_keep_s)


class _Sub(QueuedSubscription):
    """One dashboard's events. While its backlog is read from the stream, live events are held back, then
    delivered after it in order, each once (the two overlap)."""

    def __init__(self, bus: NatsEventBus, tenant_id: int, catching_up: bool) -> None:
        self.bus, self.tenant_id = bus, tenant_id
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=1000)
        self.held: list[Event] | None = [] if catching_up else None
        self.last = 0  # the number of the last event delivered
        self.closed = False

    def _call(self, fn: Any, *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # its loop is gone
            self.closed = True

    def deliver(self, event: Event | None) -> None:
        self._call(self._put, event)

    def caught_up(self, backlog: list[Event]) -> None:
        self._call(self._release, backlog)

    def _put(self, event: Event | None) -> None:
        if self.held is not None and event is not None:
            self.held.append(event)
        else:
            self._push(event)

    def _release(self, backlog: list[Event]) -> None:
        held, self.held = self.held or [], None
        for event in [*backlog, *held]:
            self._push(event)

    def _push(self, event: Event | None) -> None:
        if event is not None and event.id and event.id <= self.last:
            return  # already delivered (backlog and live overlap, or a consumer's redelivery)
        if self.queue.full():  # a dashboard that does not read: it loses the oldest, and resyncs by id
            self.queue.get_nowait()
        self.queue.put_nowait(event)
        if event is not None and event.id:
            self.last = event.id


class NatsEventBus(EventBus):
    def __init__(self, url: str, stream: str, keep_s: int, buffer: int = 500) -> None:
        import nats  # imported here: the embedded default never needs it

        self._nats = nats
        self.servers = [u.strip() for u in url.split(",") if u.strip()]
        self.stream, self.keep_s, self._buffer = stream, keep_s, buffer
        self.root = f"{stream}.events"
        self._lock = threading.Lock()
        self._subs: dict[int, set[_Sub]] = {}
        self._seen: dict[int, deque[Event]] = {}  # what this node received, per tenant: `recent` without a number
        self._closed = False
        self._nc: Any = None
        self._js: Any = None
        self.ready = threading.Event()  # connected, the stream exists and this node reads it
        self._outage_logged = False
        self._last_seq = 0  # the last event this node handed out, by stream sequence
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="temoin-events-nats", daemon=True)
        self._thread.start()
        self._outbox: asyncio.Queue[tuple[int, str, dict[str, Any], float]] = asyncio.Queue()
        self._failing_until = 0.0  # monotonic time until which events are not offered to NATS
        self._runner = asyncio.run_coroutine_threadsafe(self._run(), self._loop)
        self._sender = asyncio.run_coroutine_threadsafe(self._send(), self._loop)

    # --- the connection, in the bus's own loop -------------------------------------------------------------

    async def _run(self) -> None:
        while not self._closed:
            try:
                await self._connect()  # tries until NATS answers (the client's own reconnection loop)
                return
            except Exception as exc:  # noqa: BLE001 - a failure past the connection (JetStream off...): said, retried
                self._outage(f"NATS JetStream not usable at {','.join(self.servers)} ({exc})")
                await self._drop()
                await asyncio.sleep(RETRY_S)

    def _outage(self, what: str) -> None:
        """Said once per outage, at error level: what the CSU loses until it ends."""
        if not self._outage_logged:
            self._outage_logged = True
            log.error(
                "%s: the CSU's events reach this node's dashboards only, not the other nodes', and are not kept "
                "for dashboards that reconnect, until it answers (trying again)",
                what,
            )

    async def _connect(self) -> None:
        from nats.js.api import ConsumerConfig, DeliverPolicy, StreamConfig
        from nats.js.errors import NotFoundError

        async def disconnected() -> None:
            if not self._closed:
                self._outage("NATS connection lost")

        async def reconnected() -> None:
            self._outage_logged = False
            log.warning("NATS connection back: the CSU's events are shared across nodes again")

        async def error(exc: Exception) -> None:
            if self._outage_logged:
                log.debug("NATS: %s", exc)  # the outage is already said
            elif not self.ready.is_set():
                self._outage(f"NATS unreachable at {','.join(self.servers)} ({exc})")
            else:
                log.warning("NATS: %s", exc)

        self._nc = await self._nats.connect(
            self.servers,
            name="temoin",
            connect_timeout=2,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            error_cb=error,
        )
        self._js = self._nc.jetstream(timeout=PUBLISH_TIMEOUT_S)
        try:
            info = await self._js.stream_info(self.stream)
        except NotFoundError:
            info = await self._js.add_stream(
                StreamConfig(name=self.stream, subjects=[f"{self.root}.>"], max_age=float(self.keep_s))
            )
        self._last_seq = max(self._last_seq, info.state.last_seq)
        # An ordered consumer from the event after the last one known (nothing raised meanwhile is missed); after an
        # outage (its heartbeats missed) the client recreates it from the last event it had, so what the other
        # nodes raised meanwhile still arrives.
        await self._js.subscribe(
            f"{self.root}.>",
            stream=self.stream,
            cb=self._received,
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self._last_seq + 1),
            idle_heartbeat=HEARTBEAT_S,
        )
        if self._outage_logged:
            log.warning("NATS JetStream reached at %s: the CSU's events are shared across nodes", self.servers)
        self._outage_logged = False
        self.ready.set()

    async def _drop(self) -> None:
        self.ready.clear()
        if self._nc is not None:
            nc, self._nc, self._js = self._nc, None, None
            try:
                await nc.close()
            except Exception as exc:  # noqa: BLE001 - closing what already failed
                log.debug("NATS connection closed with %s", exc)

    def wait_ready(self, timeout: float) -> bool:
        return self.ready.wait(timeout)

    def _up(self) -> bool:
        return self.ready.is_set() and self._nc is not None and self._nc.is_connected

    async def _received(self, msg: Any) -> None:
        try:
            body = orjson.loads(msg.data)
            event = Event(msg.metadata.sequence.stream, int(body["tenant"]), body["type"], body["data"], body["at"])
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("NATS: an event that is not Témoin's on %s skipped (%s)", msg.subject, exc)
            return
        if event.id <= self._last_seq:
            return  # had already, or older than this node's start (a consumer recreated from the stream's start)
        self._last_seq = event.id
        self._hand_out(event)

    def _hand_out(self, event: Event) -> None:
        with self._lock:
            self._seen.setdefault(event.tenant_id, deque(maxlen=self._buffer)).append(event)
            subs = list(self._subs.get(event.tenant_id, ()))
        for sub in subs:
            sub.deliver(event)

    async def _send(self) -> None:
        """One sender, in the order the events were raised (an alert before the session's next state)."""
        while True:
            tenant_id, type, data, at = await self._outbox.get()
            if self._up() and time.monotonic() >= self._failing_until:
                payload = orjson.dumps({"tenant": tenant_id, "type": type, "data": data, "at": at})
                try:
                    # Numbered by the stream; this node's dashboards get it back through its consumer like any other.
                    await self._js.publish(f"{self.root}.{tenant_id}.{type}", payload, stream=self.stream)
                    continue
                except Exception as exc:  # noqa: BLE001 - NATS failing here must not lose the event locally
                    # Connected but not storing (JetStream down, a full stream): local delivery for a while, not a
                    # wait of PUBLISH_TIMEOUT_S per event.
                    self._failing_until = time.monotonic() + RETRY_S
                    log.error("NATS did not take a %s event (%s): this node's dashboards only for now", type, exc)
            self._hand_out(Event(0, tenant_id, type, data, at))

    # --- the EventBus interface, from any thread ---------------------------------------------------------

    def publish(self, tenant_id: int, type: str, data: dict[str, Any]) -> Event:
        """Sent at once, without waiting: the returned event has no number yet (the stream gives it)."""
        at = time.time()
        if not self._closed:
            self._loop.call_soon_threadsafe(self._outbox.put_nowait, (tenant_id, type, data, at))
        return Event(0, tenant_id, type, data, at)

    def subscribe(self, tenant_id: int, after: int | None = None) -> Subscription:
        sub = _Sub(self, tenant_id, catching_up=after is not None)
        with self._lock:
            if self._closed:
                sub.closed = True
                return sub
            self._subs.setdefault(tenant_id, set()).add(sub)
        if after is not None:
            future = asyncio.run_coroutine_threadsafe(self._backlog(tenant_id, after, self._buffer), self._loop)

            def done(f: Future[list[Event]]) -> None:
                sub.caught_up(f.result() if not f.cancelled() and f.exception() is None else [])

            future.add_done_callback(done)
        return sub

    def recent(self, tenant_id: int, after: int | None = None, limit: int = 100) -> list[Event]:
        """Blocking when `after` is given (the stream is read): call it from a worker thread."""
        if after is None:
            with self._lock:
                return list(self._seen.get(tenant_id, ()))[-limit:]
        future = asyncio.run_coroutine_threadsafe(self._backlog(tenant_id, after, limit), self._loop)
        return future.result(BACKLOG_TIMEOUT_S + 1)

    async def _backlog(self, tenant_id: int, after: int, limit: int) -> list[Event]:
        """The tenant's events numbered after `after`, read from the stream (this node's own memory of them
        when NATS is unreachable)."""
        if self._up():
            try:
                return await asyncio.wait_for(self._read_stream(tenant_id, after, limit), BACKLOG_TIMEOUT_S)
            except Exception as exc:  # noqa: BLE001 - the dashboard still gets what this node saw
                log.error("NATS: the events after %d could not be read back (%s): this node's own sent", after, exc)
        with self._lock:
            return [e for e in self._seen.get(tenant_id, ()) if e.id > after][-limit:]

    async def _read_stream(self, tenant_id: int, after: int, limit: int) -> list[Event]:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=after + 1,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=30.0,
        )
        sub = await self._js.pull_subscribe(f"{self.root}.{tenant_id}.>", stream=self.stream, config=config)
        events: deque[Event] = deque(maxlen=limit)
        try:
            pending = min((await sub.consumer_info()).num_pending, BACKLOG_MAX)
            while pending > 0:
                batch = await sub.fetch(min(pending, 256), timeout=BACKLOG_TIMEOUT_S)
                for msg in batch:
                    body = orjson.loads(msg.data)
                    events.append(
                        Event(msg.metadata.sequence.stream, tenant_id, body["type"], body["data"], body["at"])
                    )
                pending -= len(batch)
        finally:
            await sub.unsubscribe()
        return list(events)

    def _remove(self, sub: _Sub) -> None:
        with self._lock:
            self._subs.get(sub.tenant_id, set()).discard(sub)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            subs = [s for group in self._subs.values() for s in group]
        for sub in subs:
            sub.close()

        async def shut() -> None:
            self._runner.cancel()
            self._sender.cancel()
            await self._drop()
            # What the client left running (an ordered consumer's checks) ends with the loop.
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(shut(), self._loop).result(5)
        except Exception:  # noqa: BLE001 - shutting down: NATS gone or slow, nothing more to do
            log.warning("NATS connection not closed cleanly at shutdown")
        self._loop.call_soon_threadsafe(self._loop.stop)
