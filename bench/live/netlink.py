"""An emulated mobile link between two network namespaces of this machine, for the live benchmarks.

`tc netem` would be the usual tool, but this machine's kernel has no netem qdisc (only pfifo, tbf and htb;
no module to load), so the link is emulated in user space: each namespace gets a TUN interface, and a thread
of this process moves the IP packets from one to the other, applying to each direction a one-way delay,
a random loss and a rate (serialisation at that rate behind a drop-tail queue). Traffic stays between the
namespaces created here; nothing leaves the machine. Must run as root.

    with MobileLink(delay_ms=40, loss=0.01, up_kbit=3000, down_kbit=20000) as link:
        # "tmn-cam" (10.78.0.1) <-> "tmn-srv" (10.78.0.2); run processes with `ip netns exec NS ...`
        ...
    link.stats  # packets and bytes through, dropped by loss, dropped by the full queue, per direction
"""

from __future__ import annotations

import fcntl
import heapq
import os
import random
import select
import struct
import subprocess
import threading
import time

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
CAM_NS, SRV_NS = "tmn-cam", "tmn-srv"
CAM_IP, SRV_IP = "10.78.0.1", "10.78.0.2"
MTU = 1500


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    os.set_blocking(fd, False)
    return fd


class _Direction:
    def __init__(
        self, name: str, delay_s: float, loss: float, kbit: float | None, queue_s: float, rng: random.Random
    ) -> None:
        self.name, self.delay_s, self.loss, self.rng = name, delay_s, loss, rng
        self.rate = kbit * 1000 / 8 if kbit else None  # bytes per second
        self.queue_bytes = int(self.rate * queue_s) if self.rate else None
        self.busy_until = 0.0  # when the link has sent what is queued
        self.stats = {"packets": 0, "bytes": 0, "lost": 0, "queue_drops": 0}

    def schedule(self, now: float, size: int) -> float | None:
        """When a packet of `size` bytes arriving now comes out at the far end; None if dropped."""
        if self.rng.random() < self.loss:
            self.stats["lost"] += 1
            return None
        departs = now
        if self.rate:
            start = max(now, self.busy_until)
            if (start - now) * self.rate > self.queue_bytes:
                self.stats["queue_drops"] += 1
                return None
            departs = self.busy_until = start + size / self.rate
        self.stats["packets"] += 1
        self.stats["bytes"] += size
        return departs + self.delay_s


class MobileLink:
    def __init__(
        self,
        *,
        delay_ms: float = 40,
        loss: float = 0.01,
        up_kbit: float | None = 3000,
        down_kbit: float | None = 20000,
        queue_ms: float = 200,
        seed: int = 20261123,
    ) -> None:
        rng = random.Random(seed)
        self.up = _Direction("camera→server", delay_ms / 1000, loss, up_kbit, queue_ms / 1000, rng)
        self.down = _Direction("server→camera", delay_ms / 1000, loss, down_kbit, queue_ms / 1000, rng)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fds: list[int] = []

    @property
    def stats(self) -> dict:
        return {self.up.name: dict(self.up.stats), self.down.name: dict(self.down.stats)}

    def __enter__(self) -> MobileLink:
        self.close_namespaces()
        for ns in (CAM_NS, SRV_NS):
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        cam, srv = _tun("tmcam0"), _tun("tmsrv0")
        self._fds = [cam, srv]
        for dev, ns, mine, peer in (("tmcam0", CAM_NS, CAM_IP, SRV_IP), ("tmsrv0", SRV_NS, SRV_IP, CAM_IP)):
            _ip("link", "set", dev, "netns", ns)
            _ip("-n", ns, "link", "set", dev, "mtu", str(MTU), "up")
            _ip("-n", ns, "addr", "add", f"{mine}/32", "peer", f"{peer}/32", "dev", dev)
        self._thread = threading.Thread(target=self._run, args=(cam, srv), daemon=True, name="mobile-link")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for fd in self._fds:
            os.close(fd)
        self.close_namespaces()

    @staticmethod
    def close_namespaces() -> None:
        for ns in (CAM_NS, SRV_NS):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    def _run(self, cam: int, srv: int) -> None:
        pending: list[tuple[float, int, int, bytes]] = []  # (due, order, fd to write, packet)
        order = 0
        routes = {cam: (self.up, srv), srv: (self.down, cam)}
        while not self._stop.is_set():
            now = time.monotonic()
            while pending and pending[0][0] <= now:
                _, _, fd, packet = heapq.heappop(pending)
                try:
                    os.write(fd, packet)
                except OSError:
                    pass
            timeout = max(0.0, min(0.05, pending[0][0] - now)) if pending else 0.05
            readable, _, _ = select.select([cam, srv], [], [], timeout)
            now = time.monotonic()
            for fd in readable:
                direction, out = routes[fd]
                while True:
                    try:
                        packet = os.read(fd, 65536)
                    except BlockingIOError:
                        break
                    due = direction.schedule(now, len(packet))
                    if due is not None:
                        order += 1
                        heapq.heappush(pending, (due, order, out, packet))
