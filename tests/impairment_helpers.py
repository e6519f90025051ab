"""A userspace UDP impairment proxy between a WebRTC publisher and the relay: one-way delay, jitter, random
loss, a rate limit behind a drop-tail queue, and loss bursts on demand; seeded, so that a run's loss pattern
(which packets of each direction are dropped) is the same from one run to the next.

This kernel has no `tc netem`, and `bench/live/netlink.py` (TUN interfaces between network namespaces) needs
root; this proxy needs neither, so the test suite can use it as any user. It carries the media only (ICE,
DTLS, RTP, RTCP over UDP): the HTTP of WHIP goes straight to the server, unimpaired.

How the media is made to go through it: the publisher's offer and the server's answer are rewritten so that
each side's only ICE candidate is a socket of the proxy (`rewrite_offer`, `rewrite_answer`): the publisher
sends to `publisher_side`, which forwards from `server_side` to the server's own candidate, and back. Both
rewrites are done by `client()`, an httpx client for the WHIP POST (before the camera's request signature,
which covers the body, and on the answer received), or by hand for another WHIP client.

    with UdpImpairment(up=Shape(delay_ms=40, loss=0.05, kbit=3000), down=Shape(delay_ms=40)) as link:
        publisher = LivePublisher(url, device_id, key, http=link.client(url, DeviceAuth(device_id, key)))
        ...
        link.burst(0.5)  # every uplink packet lost for half a second
        link.stats       # per direction: packets through, bytes, lost, dropped by the full queue
"""

from __future__ import annotations

import heapq
import random
import re
import select
import socket
import threading
import time
from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass

import httpx
import numpy as np

BITS = 32
_CANDIDATE = re.compile(r"^a=candidate:\S+ 1 udp \d+ (\d+\.\d+\.\d+\.\d+) (\d+) typ host", re.IGNORECASE)
SDP_TYPE = "application/sdp"
DROPPED_HEADERS = ("content-length", "content-encoding", "transfer-encoding")  # the body is rebuilt, decoded


@dataclass(frozen=True)
class Shape:
    """One direction of the link. `kbit` None: no rate limit."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0  # a further delay drawn uniformly in [0, jitter]; packets are never reordered
    loss: float = 0.0  # probability that a packet is lost
    kbit: float | None = None
    queue_ms: float = 200.0  # the drop-tail queue in front of the rate limit, in time at that rate


class _Direction:
    def __init__(self, name: str, shape: Shape, seed: int) -> None:
        self.name, self.shape = name, shape
        self.loss_rng, self.jitter_rng = random.Random(seed), random.Random(seed + 1)
        self.rate = shape.kbit * 1000 / 8 if shape.kbit else None  # bytes per second
        self.queue_bytes = self.rate * shape.queue_ms / 1000 if self.rate else None
        self.busy_until = 0.0  # when the link has sent what is queued
        self.last_due = 0.0
        self.burst_until = 0.0
        self.stats = {"packets": 0, "bytes": 0, "lost": 0, "burst_lost": 0, "queue_drops": 0}

    def schedule(self, now: float, size: int) -> float | None:
        """When a packet of `size` bytes arriving now comes out at the far end; None if it is dropped. One
        draw of the loss generator per packet whatever happens to it, so the pattern depends on the count."""
        lost = self.loss_rng.random() < self.shape.loss
        jitter = self.jitter_rng.uniform(0, self.shape.jitter_ms / 1000) if self.shape.jitter_ms else 0.0
        if now < self.burst_until:
            self.stats["burst_lost"] += 1
            return None
        if lost:
            self.stats["lost"] += 1
            return None
        departs = now
        if self.rate and self.queue_bytes is not None:
            start = max(now, self.busy_until)
            if (start - now) * self.rate > self.queue_bytes:
                self.stats["queue_drops"] += 1
                return None
            departs = self.busy_until = start + size / self.rate
        self.stats["packets"] += 1
        self.stats["bytes"] += size
        due = max(departs + self.shape.delay_ms / 1000 + jitter, self.last_due)  # never overtakes
        self.last_due = due
        return due


def host_address() -> str:
    """An IPv4 address of this machine that aiortc gathers host candidates on (it leaves out 127.0.0.1)."""
    from aioice.ice import get_host_addresses

    addresses = get_host_addresses(use_ipv4=True, use_ipv6=False)
    if not addresses:
        raise RuntimeError("no IPv4 address besides loopback: aiortc would have no candidate to proxy")
    return addresses[0]


def _with_candidate(sdp: str, host: str, port: int) -> str:
    """The SDP with every candidate (and each section's default address) replaced by `host:port`."""
    out: list[str] = []
    sections = 0
    for line in sdp.replace("\r\n", "\n").rstrip("\n").split("\n"):
        if line.startswith(("a=candidate:", "a=end-of-candidates")):
            continue
        if line.startswith("m="):
            if sections:
                out += [f"a=candidate:1 1 udp 2130706431 {host} {port} typ host", "a=end-of-candidates"]
            sections += 1
            kind, _, rest = line[2:].split(" ", 2)
            line = f"m={kind} {port} {rest}"
        elif line.startswith("c=IN IP4 ") and sections:
            line = f"c=IN IP4 {host}"
        out.append(line)
    if sections:
        out += [f"a=candidate:1 1 udp 2130706431 {host} {port} typ host", "a=end-of-candidates"]
    return "\r\n".join(out) + "\r\n"


class UdpImpairment:
    def __init__(self, up: Shape, down: Shape | None = None, *, seed: int = 20261207, host: str | None = None):
        self.host = host or host_address()
        self.up = _Direction("publisher→server", up, seed)
        self.down = _Direction("server→publisher", down or Shape(delay_ms=up.delay_ms), seed + 100)
        self.publisher_side = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.server_side = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for sock in (self.publisher_side, self.server_side):
            sock.bind((self.host, 0))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
            sock.setblocking(False)
        self.server_addr: tuple[str, int] | None = None  # the server's candidate, from its answer
        self.publisher_addr: tuple[str, int] | None = None  # where the publisher's packets come from
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="udp-impairment")

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        return {self.up.name: dict(self.up.stats), self.down.name: dict(self.down.stats)}

    def burst(self, seconds: float, *, down: bool = False) -> None:
        """Lose every packet of the uplink (and the downlink too if `down`) from now for `seconds`."""
        until = time.monotonic() + seconds
        self.up.burst_until = until
        if down:
            self.down.burst_until = until

    # --- signalling ------------------------------------------------------------------------------------

    def rewrite_offer(self, sdp: str) -> str:
        """The publisher's offer as the server must see it: the proxy's server side as its only candidate."""
        return _with_candidate(sdp, self.host, self.server_side.getsockname()[1])

    def rewrite_answer(self, sdp: str) -> str:
        """The server's answer as the publisher must see it: the proxy's publisher side as its only candidate;
        the server's own candidate (the one on this proxy's address, else the first IPv4 host one) is kept."""
        found = [m.groups() for m in map(_CANDIDATE.match, sdp.replace("\r\n", "\n").split("\n")) if m]
        if not found:
            raise ValueError("the answer has no IPv4 host candidate to forward to")
        ip, port = next((c for c in found if c[0] == self.host), found[0])
        self.server_addr = (ip, int(port))
        return _with_candidate(sdp, self.host, self.publisher_side.getsockname()[1])

    def client(self, base_url: str, auth: httpx.Auth | None = None, **kw) -> httpx.AsyncClient:
        """An httpx client whose SDP POSTs (WHIP) go through `rewrite_offer` and `rewrite_answer`; `auth` (the
        camera's `DeviceAuth`, say) signs the rewritten offer."""
        return httpx.AsyncClient(
            base_url=base_url,
            auth=_RewriteOffer(self, auth),
            transport=_RewriteAnswer(self, httpx.AsyncHTTPTransport()),
            **kw,
        )

    # --- forwarding ------------------------------------------------------------------------------------

    def __enter__(self) -> UdpImpairment:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.publisher_side.close()
        self.server_side.close()

    def _run(self) -> None:
        pending: list[tuple[float, int, socket.socket, bytes, tuple[str, int]]] = []
        order = 0
        pub, srv = self.publisher_side, self.server_side
        while not self._stop.is_set():
            now = time.monotonic()
            while pending and pending[0][0] <= now:
                _, _, sock, data, addr = heapq.heappop(pending)
                try:
                    sock.sendto(data, addr)
                except OSError:
                    pass  # the far end went away: as a real network would, say nothing
            timeout = max(0.0, min(0.05, pending[0][0] - now)) if pending else 0.05
            readable, _, _ = select.select([pub, srv], [], [], timeout)
            now = time.monotonic()
            for sock in readable:
                while True:
                    try:
                        data, source = sock.recvfrom(65536)
                    except (BlockingIOError, OSError):
                        break
                    if sock is pub:
                        self.publisher_addr = source
                        direction, out, to = self.up, srv, self.server_addr
                    else:
                        direction, out, to = self.down, pub, self.publisher_addr
                    due = direction.schedule(now, len(data) + 28)  # + IPv4 and UDP headers
                    if due is not None and to is not None:
                        order += 1
                        heapq.heappush(pending, (due, order, out, data, to))


def now_ms() -> int:
    """Wall-clock milliseconds, on 32 bits: what a picture's stamp carries."""
    return int(time.time() * 1000) & 0xFFFFFFFF


def stamp(rgb: np.ndarray, value: int) -> np.ndarray:
    """Two rows of 32 black-or-white blocks: the value, then its bits inverted (a check)."""
    block, row = rgb.shape[1] // BITS, max(8, rgb.shape[0] // 15)
    for n, word in ((0, value), (1, ~value & 0xFFFFFFFF)):
        for bit in range(BITS):
            rgb[n * row : (n + 1) * row, bit * block : (bit + 1) * block] = 255 * ((word >> (BITS - 1 - bit)) & 1)
    return rgb


def read_stamp(y: np.ndarray, width: int, height: int) -> int | None:
    block, row = width // BITS, max(8, height // 15)
    words = []
    for n in (0, 1):
        line = n * row + row // 2
        word = 0
        for bit in range(BITS):
            word = (word << 1) | int(y[line, bit * block + block // 2] > 128)
        words.append(word)
    return words[0] if words[0] == (~words[1] & 0xFFFFFFFF) else None


class _RewriteOffer(httpx.Auth):
    """Rewrites a WHIP offer before the wrapped authentication (which may sign the body) sees it."""

    def __init__(self, link: UdpImpairment, inner: httpx.Auth | None) -> None:
        self.link, self.inner = link, inner

    def _rewritten(self, request: httpx.Request) -> httpx.Request:
        if request.method != "POST" or not request.headers.get("content-type", "").startswith(SDP_TYPE):
            return request
        headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
        body = self.link.rewrite_offer(request.content.decode())
        return httpx.Request(request.method, request.url, headers=headers, content=body.encode())

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.read()
        request = self._rewritten(request)
        if self.inner is None:
            yield request
        else:
            yield from self.inner.sync_auth_flow(request)

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await request.aread()
        request = self._rewritten(request)
        if self.inner is None:
            yield request
            return
        flow = self.inner.async_auth_flow(request)
        signed = await flow.__anext__()
        while True:
            response = yield signed
            try:
                signed = await flow.asend(response)
            except StopAsyncIteration:
                return


class _RewriteAnswer(httpx.AsyncBaseTransport):
    def __init__(self, link: UdpImpairment, inner: httpx.AsyncBaseTransport) -> None:
        self.link, self.inner = link, inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if response.status_code != 201 or not response.headers.get("content-type", "").startswith(SDP_TYPE):
            return response
        body = await response.aread()
        await response.aclose()
        headers = [(k, v) for k, v in response.headers.items() if k.lower() not in DROPPED_HEADERS]
        return httpx.Response(
            response.status_code, headers=headers, content=self.link.rewrite_answer(body.decode()).encode()
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


class TcpDelay:
    """A TCP forwarder that delays what it carries by `delay_ms` each way: the HTTP of WHIP and of the live
    request over the same emulated link as the media. Delay only: a userspace forwarder cannot lose a TCP
    segment (the kernel's TCP on each side retransmits, unseen), so the cost of a loss on the HTTP request
    (a retransmission timeout, >= 200 ms) is not emulated here; `bench/live/netlink.py` (TUN, root) does that.

        with TcpDelay("127.0.0.1", 8443, delay_ms=40) as relay:
            relay.url  # http://127.0.0.1:<port>, to give the camera
    """

    def __init__(self, host: str, port: int, delay_ms: float) -> None:
        import asyncio

        self.target, self.delay_s = (host, port), delay_ms / 1000
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="tcp-delay")
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.target[0]}:{self.port}"

    def __enter__(self) -> TcpDelay:
        import asyncio

        self._thread.start()
        server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, self.target[0], 0), self.loop
        ).result(10)
        self._server = server
        self.port = server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        import asyncio

        async def shut() -> None:
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shut(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()

    async def _handle(self, reader, writer) -> None:
        import asyncio

        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return

        async def pump(src, dst) -> None:
            queue: asyncio.Queue = asyncio.Queue()

            async def deliver() -> None:
                while (item := await queue.get()) is not None:
                    due, data = item
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    dst.write(data)
                    await dst.drain()
                await asyncio.sleep(max(0.0, self.delay_s))
                dst.close()

            sender = asyncio.ensure_future(deliver())
            try:
                while data := await src.read(65536):
                    queue.put_nowait((time.monotonic() + self.delay_s, data))
            except OSError:
                pass
            queue.put_nowait(None)
            await sender

        try:
            await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer), return_exceptions=True)
        except asyncio.CancelledError:  # the forwarder closes with the connection still open: nothing to say
            pass
