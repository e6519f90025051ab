"""The CSU watching fixed CCTV cameras beside a live session: each camera's RTSP stream pulled once, forwarded over
WHEP to every viewer, each viewing journaled and announced; across nodes, a viewing's end and a camera's withdrawal
reach the node that holds it. Part of `LiveHub` (live.hub), apart because it is a concern of its own."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy.orm import Session

from temoin import errors
from temoin.db import utcnow
from temoin.identity.models import Tenant, User
from temoin.identity.service import actor_of
from temoin.journal.entry import Action, EntryDraft
from temoin.live.events import EventBus
from temoin.live.models import LiveSession
from temoin.live.nodes import Nodes, cctv_viewer
from temoin.live.plane import Answer, MediaPlane, check_offer
from temoin.live.rtsp_pull import CctvSources, cctv_stream, check_stream_url
from temoin.live.sessions import LiveNotFound
from temoin.vault.context import VaultContext

log = logging.getLogger("temoin.live")
T = TypeVar("T")


class _Hub(Protocol):
    """What the CCTV viewings use of the hub they are part of."""

    p: VaultContext
    plane: MediaPlane
    bus: EventBus
    nodes: Nodes
    cctv: CctvSources
    _tenant_of: dict[str, int]
    _link: dict[str, tuple[str, float]]
    _cctv_viewers: dict[str, CctvViewer]

    async def _db(self, fn: Callable[..., T], *args: Any) -> T: ...

    def user_session(self, db: Session, user: User, session_id: str) -> LiveSession: ...

    def _link_of(self, status: Any, now: float) -> str: ...


@dataclass
class CctvViewer:
    stream: str
    user_id: int
    tenant_id: int
    camera_id: str
    session_id: str | None
    started_at: datetime | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)


class CctvViewings:
    """LiveHub's CCTV cameras: their RTSP streams pulled, forwarded over WHEP."""

    async def watch_cctv(
        self: _Hub,
        user_id: int,
        tenant_id: int,
        camera_id: str,
        stream_url: str,
        offer: str,
        session_id: str | None = None,
    ) -> Answer:
        """A user watches a fixed CCTV camera (beside the live session `session_id`, if given). The platform
        pulls the camera's RTSP stream (one puller per camera whatever the number of viewers, see
        `live.rtsp_pull`) into the stream `cctv:{tenant_id}:{camera_id}` and forwards it, not transcoded, over
        WHEP. The viewing is journaled (start and end, Action.CONSULTATION) and announced ("cctv" event).
        The caller has checked the camera against the tenant's registry; raises LiveNotFound, or a
        MediaPlaneError (a bad offer; `rtsp_pull.CctvSourceError` when the camera cannot be read)."""
        check_offer(offer)
        check_stream_url(stream_url)

        def load(db: Session) -> None:
            user = db.get(User, user_id)
            if user is None or user.tenant_id != tenant_id:
                raise LiveNotFound("no such user in this tenant")
            if session_id is not None:
                self.user_session(db, user, session_id)

        await self._db(load)
        stream = cctv_stream(tenant_id, camera_id)
        viewer = CctvViewer(stream, user_id, tenant_id, camera_id, session_id)

        async def ended(reason: str) -> None:
            await viewer.ready.wait()  # the start entry is written (or failed) before the end one
            self._cctv_viewers.pop(answer.resource_id, None)
            try:
                if viewer.started_at is not None:
                    await self._db(lambda db: _journal(self, db, viewer, answer.resource_id, reason))
                if self.nodes.enabled:
                    await self._db(self.nodes.release, cctv_viewer(tenant_id, camera_id, answer.resource_id))
            finally:
                _announce(self, viewer)
                self.cctv.idle(stream)

        async with self.cctv.lock(stream):
            await self.cctv.open(stream, stream_url)
            self._tenant_of[stream] = tenant_id  # link health ("stream" events) as for a camera's stream
            try:
                answer = await self.plane.play(stream, offer, on_ended=ended)
            except BaseException:
                self.cctv.idle(stream)
                raise
        self._cctv_viewers[answer.resource_id] = viewer
        try:
            viewer.started_at = await self._db(lambda db: _journal(self, db, viewer, answer.resource_id))
            if self.nodes.enabled:  # its DELETE, or the camera's withdrawal, may reach another node: told here
                await self._db(self.nodes.claim, cctv_viewer(tenant_id, camera_id, answer.resource_id))
        except BaseException:
            viewer.ready.set()
            await self.plane.end(stream, answer.resource_id)  # no unjournaled viewing
            raise
        viewer.ready.set()
        _announce(self, viewer)
        return answer

    async def stop_cctv(
        self: _Hub, user_id: int, tenant_id: int, camera_id: str, resource_id: str, *, forwarded: bool = False
    ) -> None:
        """The viewer DELETEs its WHEP resource; the puller stops after the linger if it was the last one. Several
        nodes: a viewing another node answered is ended there."""
        viewer = self._cctv_viewers.get(resource_id)
        if viewer is None and self.nodes.enabled and not forwarded:
            key = cctv_viewer(tenant_id, camera_id, resource_id)
            held = await self._db(self.nodes.owner_of, key)
            if held is not None and held[0] != self.nodes.url:
                message = {"op": "stop_cctv", "user_id": user_id, "tenant_id": tenant_id, "camera_id": camera_id}
                left = (held[1] - utcnow()).total_seconds()
                await self.nodes.forward(held[0], left, {**message, "resource_id": resource_id})
                return
        if viewer is None or (viewer.user_id, viewer.tenant_id, viewer.camera_id) != (user_id, tenant_id, camera_id):
            raise LiveNotFound(f"no CCTV viewing {resource_id} of yours on camera {camera_id}")
        await self.plane.end(viewer.stream, resource_id)

    async def withdraw_cctv(self: _Hub, tenant_id: int, camera_id: str, *, forwarded: bool = False) -> None:
        """The camera left the registry: stop pulling it; its viewings end (journaled, reason "withdrawn"), on
        every node that has some."""
        await self.cctv.close(cctv_stream(tenant_id, camera_id), "withdrawn")
        if not self.nodes.enabled or forwarded:
            return
        others = await self._db(self.nodes.others_with, cctv_viewer(tenant_id, camera_id))
        for node, until in others.items():
            try:
                message = {"op": "withdraw_cctv", "tenant_id": tenant_id, "camera_id": camera_id}
                await self.nodes.forward(node, (until - utcnow()).total_seconds(), message)
            except errors.TemoinError:  # that node is down: its viewings died with it
                log.warning("live: CCTV camera %s withdrawn, but node %s was not told", camera_id, node)

    def cctv_status(self: _Hub, tenant_id: int, camera_id: str) -> dict | None:
        """The camera's feed as the dashboard shows it, None when it is not being pulled."""
        stream = cctv_stream(tenant_id, camera_id)
        status, puller = self.plane.status(stream), self.cctv.puller(stream)
        if status is None or puller is None:
            return None
        now = time.time()
        return {
            "camera_id": camera_id,
            "link": self._link_of(status, now),
            "silent_s": status.silent_for(now),
            "viewers": status.viewers,
            "video_frames": status.video_frames,
            "reconnections": max(0, puller.stats.connections - 1),
            "error": puller.stats.last_error,
        }

    def _cctv_closed(self: _Hub, stream: str) -> None:
        self._tenant_of.pop(stream, None)
        self._link.pop(stream, None)


def _announce(hub: _Hub, viewer: CctvViewer) -> None:
    status = hub.plane.status(viewer.stream)
    hub.bus.publish(
        viewer.tenant_id,
        "cctv",
        {
            "camera_id": viewer.camera_id,
            "session_id": viewer.session_id,
            "viewers": status.viewers if status else 0,
        },
    )


def _journal(hub: _Hub, db: Session, viewer: CctvViewer, resource_id: str, ended_reason: str | None = None) -> datetime:
    """Watching a CCTV camera is a consultation of its images: the start, then the end with its duration."""
    user = db.get_one(User, viewer.user_id)  # checked by watch_cctv before the viewing began
    at = utcnow()
    details: dict[str, Any] = {
        "camera_id": viewer.camera_id,
        "live_session": viewer.session_id,
        "resource": resource_id,
    }
    if ended_reason is None:
        event, details["started_at"] = "cctv.viewing_started", at.isoformat()
    else:
        assert viewer.started_at is not None
        event = "cctv.viewing_ended"
        details.update(
            started_at=viewer.started_at.isoformat(),
            ended_at=at.isoformat(),
            duration_s=round((at - viewer.started_at).total_seconds(), 3),
            reason=ended_reason,
        )
    hub.p.record(
        db,
        EntryDraft(
            action=Action.CONSULTATION,
            event=event,
            actor=actor_of(user),
            cameras=[viewer.camera_id],
            recipients=[user.username],
            details=details,
        ),
        db.get_one(Tenant, viewer.tenant_id),
    )
    db.commit()
    return at
