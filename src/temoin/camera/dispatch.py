"""The camera's side of dispatch: its position on the CSU's map, and the reinforcement orders it receives.

While its wearer is on shift, the camera sends its last GPS fix and status (patrol, recording, live) every
`position_every_s` (`POST /api/v1/dispatch/camera/position`), and long-polls for orders
(`GET /api/v1/dispatch/camera/orders`). An order is signalled to the wearer (a vibration pattern of its
own, the LED and the text "Renfort demandé : <agent> à <distance> m, <direction>"), then acknowledged, so
that the CSU knows the wearer got it.

`DispatchLink` does the network work in two threads of its own (one sends positions and acknowledgements,
one long-polls for orders in an event loop, so that switching the camera off drops the poll at once):
nothing in the capture loop ever waits on the network, and a platform out of reach costs nothing but quiet
retries. While live, the live link also sends the position once a second or so to the live session; this
link goes on sending its own every few seconds with the status "live" (the two serve different maps: the
session's and the fleet's).

The capture loop calls `tick(agent)` at each frame: it hands over the fix and status, and signals what
arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from temoin import errors
from temoin.camera.offload import DeviceAuth, error_detail
from temoin.camera.platform_link import CameraSettings
from temoin.camera.signals import Led, Signals, Vibration
from temoin.evidence.manifest import GpsFix
from temoin.geo.geometry import bearing_deg, distance_m as ground_distance_m


class Wearer(Protocol):
    """What the link reads of the camera agent (camera.agent.CameraAgent, which holds the link and imports it)."""

    settings: CameraSettings | None
    last_fix: GpsFix | None
    signals: Signals

    @property
    def live(self) -> Any: ...  # camera.live_publisher.LiveLink | None (aiortc, loaded only when live)

    @property
    def state(self) -> Enum: ...  # camera.agent.AgentState


log = logging.getLogger("temoin.camera.dispatch")
POSITION_EVERY_S = 5.0
POLL_WAIT_S = 20.0  # the platform holds the long poll this long at most
RETRY_S = 5.0
OFF_SHIFT_RETRY_S = 60.0  # the platform says nobody wears this camera: ask again later
POSITION_PATH = "/api/v1/dispatch/camera/position"
ORDERS_PATH = "/api/v1/dispatch/camera/orders"
COMPASS_FR = ("nord", "nord-est", "est", "sud-est", "sud", "sud-ouest", "ouest", "nord-ouest")


# --- geometry ---------------------------------------------------------------------------------------


def compass_fr(bearing: float) -> str:
    """The eight points of the compass, in French, as a wearer reads them."""
    return COMPASS_FR[round((bearing % 360.0) / 45.0) % 8]


# --- what the wearer is told ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Order:
    id: str
    session_id: str
    state: str
    target_lat: float
    target_lon: float
    for_agent: str  # who needs help: name and matricule, as the wearer knows them
    distance_m: float | None  # the platform's estimate when it was sent
    note: str | None = None
    data: dict = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_view(cls, view: dict) -> Order:
        who = view.get("for_agent") or {}
        name, number = who.get("name"), who.get("agent")
        label = f"{name} ({number})" if name and number else (name or number or "un agent")
        return cls(
            id=view["order_id"],
            session_id=view["session_id"],
            state=view["state"],
            target_lat=float(view["target"]["lat"]),
            target_lon=float(view["target"]["lon"]),
            for_agent=label,
            distance_m=view.get("distance_m"),
            note=view.get("note"),
            data=view,
        )

    def message(self, here: GpsFix | None) -> str:
        """ "Renfort demandé : <agent> à <distance> m, <direction>", from where the wearer stands (straight
        line: what someone on foot steers by); the platform's estimate when the camera has no fix."""
        if here is not None:
            distance = ground_distance_m(here.lat, here.lon, self.target_lat, self.target_lon)
            direction = compass_fr(bearing_deg(here.lat, here.lon, self.target_lat, self.target_lon))
            text = f"Renfort demandé : {self.for_agent} à {_rounded(distance)} m, {direction}"
        elif self.distance_m is not None:
            text = (
                f"Renfort demandé : {self.for_agent} à {_rounded(self.distance_m)} m, direction inconnue (pas de GPS)"
            )
        else:
            text = f"Renfort demandé : {self.for_agent}, position sur la carte du CSU"
        return f"{text} ({self.note})" if self.note else text


def _rounded(metres: float) -> int:
    return int(round(metres / 10.0) * 10) if metres >= 100 else int(round(metres))


@dataclass(frozen=True)
class DispatchEvent:
    kind: str  # order (a new one) | acknowledged (the platform has the acknowledgement) | closed
    order: Order | None = None
    data: dict = field(default_factory=dict)


# --- the HTTP client ----------------------------------------------------------------------------------------


class DispatchError(errors.UpstreamFault, RuntimeError):
    """The platform refused or failed a request; `status` is its HTTP answer (this is an HTTP client)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


class DispatchClient:
    """Device-signed requests to the platform's dispatch routes (blocking; one per thread)."""

    def __init__(
        self,
        base_url: str,
        device_id: str,
        key: Ed25519PrivateKey,
        *,
        timeout: float = 10.0,
        clock_skew_s: float = 0.0,
        http: httpx.Client | None = None,
    ) -> None:
        self.auth = DeviceAuth(device_id, key, clock_skew_s)
        self.http = http or httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)
        self.timeout = timeout

    def close(self) -> None:
        self.http.close()

    @staticmethod
    def _check(response: httpx.Response, *ok: int) -> httpx.Response:
        if response.status_code not in ok:
            raise DispatchError(response.status_code, error_detail(response))
        return response

    def send_position(self, fix: GpsFix, status: str) -> None:
        self._check(
            self.http.post(
                POSITION_PATH, auth=self.auth, json={"position": fix.model_dump(mode="json"), "status": status}
            ),
            204,
        )

    def acknowledge(self, order_id: str) -> dict:
        return self._check(self.http.post(f"{ORDERS_PATH}/{order_id}/ack", auth=self.auth), 200).json()


# --- the link -----------------------------------------------------------------------------------------------


class DispatchLink:
    """Positions out and orders in, beside the capture loop (see the module's docstring)."""

    def __init__(
        self,
        base_url: str,
        device_id: str,
        key: Ed25519PrivateKey,
        *,
        clock_skew_s: float | Callable[[], float] = 0.0,
        position_every_s: float = POSITION_EVERY_S,
        wait_s: float = POLL_WAIT_S,
        retry_s: float = RETRY_S,
        timeout: float = 10.0,
        name: str = "camera-dispatch",
        start: bool = True,
    ) -> None:
        self.base_url, self.device_id, self.key = base_url, device_id, key
        self._skew = clock_skew_s if callable(clock_skew_s) else (lambda: clock_skew_s)
        self.position_every_s, self.wait_s, self.retry_s, self.timeout = position_every_s, wait_s, retry_s, timeout
        self.name = name
        self.orders: dict[str, Order] = {}  # open orders, as last heard
        self.sent_positions = 0
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._fix: GpsFix | None = None
        self._status = "patrol"
        self._on_shift = False
        self._poll_cancel: Callable[[], object] | None = None
        self._events: queue.SimpleQueue[DispatchEvent] = queue.SimpleQueue()
        self._acks: queue.Queue[str] = queue.Queue()
        self._signalled: set[str] = set()  # orders the wearer was told of (told once only)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        if start:
            self.start()

    # --- the capture loop's side ---------------------------------------------------------------------

    def start(self) -> None:
        if self._threads:
            return
        for target, suffix in ((self._send_loop, "send"), (self._poll_loop, "orders")):
            thread = threading.Thread(target=target, daemon=True, name=f"{self.name}-{suffix}")
            thread.start()
            self._threads.append(thread)

    def update(self, fix: GpsFix | None, status: str, on_shift: bool) -> None:
        with self._lock:
            self._fix, self._status = fix, status
            self._on_shift = on_shift

    def events(self) -> list[DispatchEvent]:
        out = []
        while True:
            try:
                out.append(self._events.get_nowait())
            except queue.Empty:
                return out

    def acknowledge(self, order_id: str) -> None:
        """Confirm to the platform (in the link's thread; retried until it gets through or the order goes)."""
        self._acks.put(order_id)

    def tick(self, agent: Wearer) -> None:
        """At each frame: the fix and status to send, and what the platform said to the wearer. Never raises:
        the capture loop (the recording) must not stop for dispatch."""
        try:
            live = agent.live is not None and agent.live.active
            status = "live" if live else "recording" if agent.state.value == "recording" else "patrol"
            settings = agent.settings
            self.update(agent.last_fix, status, settings is not None and settings.assignment is not None)
            for event in self.events():
                if event.kind == "order" and event.order is not None and event.order.id not in self._signalled:
                    self._signalled.add(event.order.id)
                    signal_order(agent, event.order)
                    self.acknowledge(event.order.id)  # after the wearer was told, not before
                elif event.kind == "closed" and event.order is not None:
                    signal_closed(agent, event.order, event.data.get("state", ""))
        except Exception:
            log.exception("dispatch: signalling an order")

    def close(self, timeout: float = 2.0) -> None:
        """Stop the threads; a long poll in flight is cancelled (its connection dropped)."""
        self._stop.set()
        self._acks.put("")
        with self._lock:
            cancel = self._poll_cancel
        if cancel is not None:
            with contextlib.suppress(RuntimeError):  # its loop has just finished
                cancel()
        for thread in self._threads:
            thread.join(timeout)

    # --- the link's threads --------------------------------------------------------------------------

    def _client(self) -> DispatchClient:
        return DispatchClient(self.base_url, self.device_id, self.key, timeout=self.timeout, clock_skew_s=self._skew())

    def _send_loop(self) -> None:
        """Acknowledgements as soon as they are asked for; the position every `position_every_s`, when there
        is something new to say (a new fix, another status)."""
        client = self._client()
        sent: tuple[GpsFix, str] | None = None
        next_position = 0.0
        pending_acks: list[str] = []
        try:
            while not self._stop.is_set():
                wait = max(0.05, min(next_position - time.monotonic(), self.retry_s if pending_acks else 60.0))
                try:
                    order_id = self._acks.get(timeout=wait)
                    if order_id:
                        pending_acks.append(order_id)
                except queue.Empty:
                    pass
                if self._stop.is_set():
                    return
                client.auth.clock_skew_s = self._skew()
                pending_acks = [o for o in dict.fromkeys(pending_acks) if not self._send_ack(client, o)]
                if time.monotonic() < next_position:
                    continue
                next_position = time.monotonic() + self.position_every_s
                with self._lock:
                    fix, status, on_shift = self._fix, self._status, self._on_shift
                if not on_shift or fix is None or sent == (fix, status):
                    continue
                try:
                    client.send_position(fix, status)
                    sent = (fix, status)
                    self.sent_positions += 1
                    self.last_error = None
                except DispatchError as exc:
                    self.last_error = str(exc)
                    if exc.status == 409:  # not on shift on the platform's side: ask again later
                        next_position = time.monotonic() + OFF_SHIFT_RETRY_S
                except httpx.HTTPError as exc:  # out of reach: the next position will do
                    self.last_error = f"{type(exc).__name__}: {exc}"
        finally:
            client.close()

    def _send_ack(self, client: DispatchClient, order_id: str) -> bool:
        """True once done with (acknowledged, or the platform will never take it)."""
        try:
            view = client.acknowledge(order_id)
        except DispatchError as exc:
            if exc.status in (404, 409):  # cancelled meanwhile, or not ours: nothing to confirm
                return True
            self.last_error = str(exc)
            return False
        except httpx.HTTPError as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            return False
        self._events.put(DispatchEvent("acknowledged", Order.from_view(view)))
        return True

    def _poll_loop(self) -> None:
        """The long poll runs in an event loop of its own, so that `close` can cancel it in flight: a
        camera switched off drops its connection at once (the platform stops waiting for it)."""
        loop = asyncio.new_event_loop()
        try:
            task = loop.create_task(self._poll())
            with self._lock:
                self._poll_cancel = lambda: loop.call_soon_threadsafe(task.cancel)
            if self._stop.is_set():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(task)
        finally:
            with self._lock:
                self._poll_cancel = None
            loop.close()

    async def _poll(self) -> None:
        auth = DeviceAuth(self.device_id, self.key, self._skew())
        cursor: str | None = None
        async with httpx.AsyncClient(base_url=self.base_url.rstrip("/"), timeout=self.timeout, auth=auth) as http:
            while not self._stop.is_set():
                with self._lock:
                    on_shift = self._on_shift
                if not on_shift:
                    await asyncio.sleep(0.5)
                    continue
                auth.clock_skew_s = self._skew()
                # The first call answers at once (what is open now); then wait for a change.
                wait = self.wait_s if cursor is not None else 0
                params: dict[str, Any] = {"wait_s": wait} | ({"after": cursor} if cursor else {})
                try:
                    response = await http.get(ORDERS_PATH, params=params, timeout=self.timeout + wait)
                    out = DispatchClient._check(response, 200).json()
                except (DispatchError, httpx.HTTPError, ValueError) as exc:
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    await asyncio.sleep(self.retry_s)
                    continue
                cursor = out.get("cursor")
                self._heard(out)

    def _heard(self, out: dict) -> None:
        current = {o.id: o for o in (Order.from_view(v) for v in out.get("orders", []))}
        closed = {v["order_id"]: v for v in out.get("closed", [])}
        with self._lock:
            known, self.orders = self.orders, current
        for order_id, order in current.items():
            if order_id not in known:
                self._events.put(DispatchEvent("order", order))
        for order_id, order in known.items():
            if order_id not in current:
                view = closed.get(order_id, {})
                self._events.put(
                    DispatchEvent(
                        "closed", order, {"state": view.get("state", "closed"), "reason": view.get("cancel_reason")}
                    )
                )


# --- signals --------------------------------------------------------------------------------------------


def signal_order(agent: Wearer, order: Order) -> None:
    """The wearer feels it (a vibration of its own), sees it (the LED, unless the steady red of a recording
    must stay: the legal signal comes first) and reads it."""
    signals = agent.signals
    signals.vibrate(Vibration.REINFORCEMENT)
    if agent.state.value != "recording":
        signals.led(Led.REINFORCEMENT)
    message = order.message(agent.last_fix)
    told = getattr(signals, "reinforcement", None)
    if callable(told):
        told(message)
    else:  # a backend written before orders existed still shows the text
        signals.warn(message)


def signal_closed(agent: Wearer, order: Order, state: str) -> None:
    signals = agent.signals
    if state == "cancelled":
        signals.warn(f"CSU : renfort annulé ({order.for_agent})")
    elif state == "arrived":
        signals.warn(f"CSU : arrivée sur place enregistrée ({order.for_agent})")
    if agent.state.value != "recording":
        signals.led(Led.STANDBY)
