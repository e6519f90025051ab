"""Where the platform may connect for a tenant's CCTV cameras: only the address ranges the tenant declared as its
CCTV network (tenant setting `cctv_networks`). A registry that names another host (a mistake, or an
administrator's account used to reach the platform's own network or the Internet) is refused before any
connection, with the camera's credentials never sent.

No range declared: nothing is reached, and the message says how to declare them. The demo commune only
(tenant.demo) defaults to loopback and the private ranges, where its simulated cameras live.

Names are resolved here and every address they resolve to must lie in the ranges. The connection then resolves
the name again: a DNS server that answers differently the second time could still steer it (declare cameras by
address, or use a resolver you control).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

from temoin import errors
from temoin.identity.tenant_settings import settings_of

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
DEMO_NETWORKS = ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
HOW_TO_DECLARE = (
    "an administrator declares the commune's CCTV network: `temoin tenant settings SLUG "
    "cctv_networks=10.20.0.0/16,192.168.5.0/24`"
)


class OutsideNetwork(errors.Forbidden):
    """The address is not in the tenant's declared CCTV network; `message` says which and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def declared_networks(tenant: Any) -> tuple[Network, ...]:
    declared = settings_of(tenant).cctv_networks
    if not declared and getattr(tenant, "demo", False):
        declared = list(DEMO_NETWORKS)
    return tuple(ipaddress.ip_network(n, strict=False) for n in declared)


def _inside(address: str, networks: tuple[Network, ...]) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == n.version and ip in n for n in networks)


async def check_host(host: str, networks: tuple[Network, ...], *, what: str) -> None:
    """Raise OutsideNetwork unless every address `host` resolves to is inside `networks`."""
    host = host.strip("[]")
    if not networks:
        raise OutsideNetwork(
            f"{what}: no CCTV network is declared for this commune, so the platform connects to "
            f"none of its cameras; {HOW_TO_DECLARE}"
        )
    try:
        addresses = {ipaddress.ip_address(host).compressed}
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise OutsideNetwork(f"{what}: the name {host!r} does not resolve ({exc})") from None
        addresses = {str(info[4][0]) for info in infos}  # the host part: a str for IPv4 and IPv6
    outside = sorted(a for a in addresses if not _inside(a, networks))
    if outside:
        raise OutsideNetwork(
            f"{what}: {host} ({', '.join(outside)}) is outside the commune's declared CCTV "
            f"network ({', '.join(map(str, networks))}); correct the camera's address in the "
            f"registry, or {HOW_TO_DECLARE}"
        )


async def check_url(url: str, networks: tuple[Network, ...], *, what: str) -> None:
    host = urlsplit(url).hostname
    if not host:
        raise OutsideNetwork(f"{what}: {url!r} names no host")
    await check_host(host, networks, what=what)
