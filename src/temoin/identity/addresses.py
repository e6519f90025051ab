"""The client's address for throttling and the journal: the peer's, unless the peer is a reverse proxy named in
TEMOIN_TRUSTED_PROXIES, whose X-Forwarded-For is then read from the right (the last hop not a trusted proxy is
the client). Anyone can write that header: believed from anyone, it lets a stranger pick any address."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.requests import Request


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def _trusted(address: str, networks: Iterable[str]) -> bool:
    ip = _ip(address)
    return ip is not None and any(ip in ipaddress.ip_network(n, strict=False) for n in networks)


def client_address(request: Request, trusted_proxies: tuple[str, ...]) -> str:
    peer = request.client.host if request.client else "unknown"
    if not trusted_proxies or not _trusted(peer, trusted_proxies):
        return peer
    hops = [h.strip() for line in request.headers.getlist("x-forwarded-for") for h in line.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted_proxies):
            return str(_ip(hop)) if _ip(hop) is not None else peer  # garbage in the header: the proxy's own
    return peer
