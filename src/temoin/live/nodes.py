"""Live media across nodes (issue 21, item 5): which node owns a stream, and the signed forwards to it.

A live stream's media stays on one node, its owner: the first node that needed the stream (the live button, a
WHIP publication or a WHEP viewer reaching it) claims it in the database (`live_media_owners`) under a lease it
renews while the stream lives. A WHIP or WHEP request that reaches another node is authenticated and authorised
there as usual, then forwarded server to server to the owner (`forward`); the owner's SDP answer, whose ICE
candidates are the owner's addresses, goes back to the client: the media flows between the client and the owner,
the HTTP between the client and any node. A node that dies stops renewing: once its lease has passed, the next
request claims the stream for its own node (the camera re-publishes there, its watchdog does it alone).

A forward carries an HMAC-SHA256 over the target node, an expiry a few seconds ahead, a nonce and the body, with
the secret every node shares (TEMOIN_NODE_SECRET); the owner refuses one that is forged, expired, meant for another
node, or already seen (a replay). A browser never holds the secret, so it cannot forge the forwarded identity.

TEMOIN_NODE_URL unset: one node, nothing here acts (`enabled` is False).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import threading
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from temoin import errors
from temoin.context import Context
from temoin.coordination import xact_lock
from temoin.db import utcnow
from temoin.live.models import LiveMediaOwner, LiveSession, LiveState

if TYPE_CHECKING:  # loaded by the first forward to another node: a single node never needs it
    import httpx

log = logging.getLogger("temoin.live.nodes")
PATH = "/api/v1/live/nodes/forward"
HEADER = "X-Temoin-Node-Auth"
FORWARD_TTL_S = 10  # a forward is good for this long after it was signed (the nodes' clocks agree within it)
CONNECT_TIMEOUT_S = 2.0  # an owner that does not take the connection by then is taken for down
CCTV_VIEWER = "cctv-viewer:"
ANSWER_TIMEOUT_S = 20.0  # the owner gathers its ICE candidates before answering (a loaded machine: seconds)

# What the owner's refusal was, by kind, raised again on the node that forwarded (its client gets the same answer).
KINDS: dict[str, type[errors.TemoinError]] = {
    k.__name__: k
    for k in (
        errors.Malformed,
        errors.InvalidInput,
        errors.Unauthenticated,
        errors.Forbidden,
        errors.NotFound,
        errors.Gone,
        errors.Conflict,
        errors.PayloadTooLarge,
        errors.TooManyRequests,
        errors.UpstreamTimeout,
        errors.UpstreamFault,
        errors.StorageFull,
        errors.Unavailable,
        errors.Fault,
    )
}


def cctv_viewer(tenant_id: int, camera_id: str, resource_id: str = "") -> str:
    """The ownership key of a CCTV viewing (without `resource_id`: the prefix of all the camera's viewings)."""
    return f"{CCTV_VIEWER}{tenant_id}:{camera_id}:{resource_id}"


class ForwardRefused(errors.Unauthenticated):
    """A forward whose signature, expiry, target or nonce does not hold."""


class OwnerUnreachable(errors.Unavailable):
    """The node that carries the stream does not answer."""


def kind_of(exc: errors.TemoinError) -> str:
    """The most derived kind of `exc` (its class's first base among the kinds)."""
    for cls in type(exc).__mro__:
        if cls.__name__ in KINDS and KINDS[cls.__name__] is cls:
            return cls.__name__
    return "Fault"


def error_view(exc: errors.TemoinError) -> dict[str, Any]:
    return {"kind": kind_of(exc), "message": exc.message, "retry_after_s": exc.retry_after_s}


def raise_error(view: dict[str, Any]) -> None:
    kind = KINDS.get(str(view.get("kind")), errors.Fault)
    exc = kind(str(view.get("message") or kind.__name__))
    if isinstance(view.get("retry_after_s"), int | float):
        exc.retry_after_s = float(view["retry_after_s"])
    raise exc


def _mac(secret: str, target: str, expires: int, nonce: str, body: bytes) -> str:
    digest = hashlib.sha256(body).digest()
    message = b"\n".join([b"temoin-live-forward-v1", target.encode(), str(expires).encode(), nonce.encode(), digest])
    return base64.urlsafe_b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def sign(secret: str, target: str, body: bytes, now: float | None = None) -> str:
    """The header value of a forward of `body` to the node at `target` (its base URL)."""
    expires = int(now if now is not None else time.time()) + FORWARD_TTL_S
    nonce = secrets.token_urlsafe(16)
    return f"v1 {expires} {nonce} {_mac(secret, target, expires, nonce, body)}"


class Nodes:
    """This node's view of the others: its ownership of streams, and forwards (see the module's doc)."""

    def __init__(self, p: Context) -> None:
        self.url = p.settings.node_url
        self._secret = p.settings.node_secret or ""
        self.lease_s = p.settings.live_owner_lease_s
        self._seen: dict[str, float] = {}  # nonces of the forwards accepted, until they expire
        self._seen_guard = threading.Lock()
        self._http: httpx.AsyncClient | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    # --- ownership (database; called in the thread pool) ---------------------------------------------------

    def claim(self, db: Session, stream: str) -> str | None:
        """Take the stream for this node, or keep it; None when this node owns it now, else the owner's URL."""
        xact_lock(db, f"live-owner:{stream}")  # one claim at a time per stream, whichever nodes
        now = utcnow()
        row = db.get(LiveMediaOwner, stream, with_for_update=True)
        if row is not None and row.node_url != self.url and row.expires_at > now:
            owner = row.node_url
            db.rollback()
            return owner
        if row is None:
            row = LiveMediaOwner(stream=stream, node_url=self.url, claimed_at=now)
            db.add(row)
        elif row.node_url != self.url:
            log.warning("live: stream %s taken over from %s, whose lease lapsed", stream, row.node_url)
            row.node_url, row.claimed_at = self.url, now
        row.expires_at = now + timedelta(seconds=self.lease_s)
        db.commit()
        return None

    def owner_of(self, db: Session, stream: str) -> tuple[str, datetime] | None:
        """(the owner's URL, its lease's end) while a lease holds, else None."""
        row = db.get(LiveMediaOwner, stream)
        if row is None or row.expires_at <= utcnow():
            return None
        return row.node_url, row.expires_at

    def renew(self, db: Session, streams: list[str]) -> list[str]:
        """Renew the leases of this node's streams; returns those it must end: owned by another node now (this
        node was cut from the database past its lease), or their session has ended (from another node)."""
        if not streams:
            return []
        now = utcnow()
        owned = db.scalars(select(LiveMediaOwner).where(LiveMediaOwner.stream.in_(streams)))
        rows = {r.stream: r for r in owned}
        ended = set(
            db.scalars(
                select(LiveSession.id).where(LiveSession.id.in_(streams), LiveSession.state == LiveState.ENDED.value)
            )
        )
        drop = []
        for sid in streams:
            row = rows.get(sid)
            if row is None or row.node_url != self.url:
                if not sid.startswith(CCTV_VIEWER):  # a CCTV viewing stays here whatever its row says
                    drop.append(sid)
            elif sid in ended:
                db.delete(row)
                drop.append(sid)
            else:
                row.expires_at = now + timedelta(seconds=self.lease_s)
        db.commit()
        return drop

    def release(self, db: Session, stream: str | None = None) -> None:
        """Give up one stream (ended), or all of this node's (it stops)."""
        q = delete(LiveMediaOwner).where(LiveMediaOwner.node_url == self.url)
        if stream is not None:
            q = q.where(LiveMediaOwner.stream == stream)
        db.execute(q)
        db.commit()

    def others_with(self, db: Session, prefix: str) -> dict[str, datetime]:
        """The other nodes holding a live lease on a stream named `prefix...`, with their leases' ends."""
        rows = db.execute(
            select(LiveMediaOwner.node_url, LiveMediaOwner.expires_at).where(
                LiveMediaOwner.stream.startswith(prefix, autoescape=True),
                LiveMediaOwner.node_url != self.url,
                LiveMediaOwner.expires_at > utcnow(),
            )
        )
        out: dict[str, datetime] = {}
        for url, until in rows:
            out[url] = max(until, out.get(url, until))
        return out

    # --- forwards --------------------------------------------------------------------------------------------

    def verify(self, header: str, body: bytes) -> None:
        """The owner's check of a forward; ForwardRefused says which part failed (never the secret)."""
        if not self.enabled:
            raise ForwardRefused("this node takes no forwards: TEMOIN_NODE_URL is not set on it")
        parts = header.split(" ")
        if len(parts) != 4 or parts[0] != "v1" or not parts[1].isdigit():
            raise ForwardRefused(f"a forward between nodes carries {HEADER}: v1 EXPIRES NONCE MAC")
        expires, nonce, mac = int(parts[1]), parts[2], parts[3]
        if not hmac.compare_digest(mac, _mac(self._secret, self.url, expires, nonce, body)):
            raise ForwardRefused(
                "the forward's signature does not hold: every node needs the same TEMOIN_NODE_SECRET, and the "
                "forward must be meant for this node's TEMOIN_NODE_URL"
            )
        now = time.time()
        if not now <= expires <= now + FORWARD_TTL_S + 1:
            raise ForwardRefused("the forward has expired (or the nodes' clocks disagree: synchronise them)")
        with self._seen_guard:
            for old in [n for n, t in self._seen.items() if t < now]:
                del self._seen[old]
            if nonce in self._seen:
                raise ForwardRefused("this forward was already received (a replay)")
            self._seen[nonce] = expires + 1

    async def forward(self, owner: str, retry_after_s: float, message: dict[str, Any]) -> dict[str, Any]:
        """Send `message` to the owner's forward endpoint; its result, or its refusal raised again here."""
        import httpx

        body = orjson.dumps(message)
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(ANSWER_TIMEOUT_S, connect=CONNECT_TIMEOUT_S), trust_env=False
            )
        try:
            r = await self._http.post(
                owner + PATH,
                content=body,
                headers={"Content-Type": "application/json", HEADER: sign(self._secret, owner, body)},
            )
        except httpx.HTTPError as exc:
            log.warning("live: node %s does not answer a %s forward: %r", owner, message.get("op"), exc)
            err = OwnerUnreachable(
                "the node carrying this live stream does not answer; try again shortly (if that node is down, "
                "another takes the stream once its lease has passed, and the camera publishes there)"
            )
            err.retry_after_s = max(1.0, round(retry_after_s))
            raise err from None
        try:
            out = r.json()
        except ValueError:
            out = None
        if r.status_code != 200 or not isinstance(out, dict):
            log.error("live: the owner %s refused a forward (%s): %s", owner, r.status_code, r.text[:300])
            raise errors.Fault(
                "another node refused to carry this live request: the nodes must share one TEMOIN_NODE_SECRET "
                "and each its own TEMOIN_NODE_URL (see the server logs)"
            )
        if "error" in out:
            raise_error(out["error"])
        result = out.get("ok")
        return result if isinstance(result, dict) else {}

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
