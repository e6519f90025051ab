"""The live subsystem assembled: sessions (database, journal), the media plane and the events channel.

Routes stay thin and call this. Database work runs in the thread pool, a short session per step (never held
across an await); media work in the media plane's own event loop (`live.isolation`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import or_, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from temoin import errors
from temoin.context import Context
from temoin.db import utcnow
from temoin.evidence.manifest import GpsFix
from temoin.identity.devices import device_actor
from temoin.identity.models import Device, Tenant, User
from temoin.identity.service import actor_of
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.law.profiles import get_profile
from temoin.live import backup, sessions, timeline, viewing
from temoin.live.events import EventBus
from temoin.live.events_nats import event_bus
from temoin.live.hub_cctv import CctvViewer, CctvViewings
from temoin.live.isolation import IsolatedMediaPlane
from temoin.live.models import LiveSession, LiveState
from temoin.live.nodes import Nodes, cctv_viewer
from temoin.live.plane import Answer, LazyMediaPlane, MediaPlane, check_offer
from temoin.live.rtsp_pull import CctvSources
from temoin.live.sessions import LiveNotFound, LiveReason, LiveRequest, view
from temoin.vault.context import VaultContext

log = logging.getLogger("temoin.live")
T = TypeVar("T")
WATCH_INTERVAL_S = 0.5
STATUS_EVERY_S = 5.0
RECENT = timedelta(hours=24)
READY_WAIT_S = 5.0  # at start, for the events bus to reach NATS (it goes on trying after)


@dataclass(frozen=True)
class _Ref:
    id: str
    tenant_id: int
    device_id: str
    backup: bool


@dataclass
class _Viewer:
    session_id: str
    user_id: int
    started_at: datetime | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)


def _relay(p: Context) -> MediaPlane:
    from temoin.live.relay import AiortcMediaPlane  # aiortc and PyAV: loaded by the first stream, not at start

    return AiortcMediaPlane(p.settings.live_ice_servers, p.settings.live_max_viewers)


class LiveHub(CctvViewings):
    def __init__(self, p: VaultContext, plane: MediaPlane | None = None, bus: EventBus | None = None) -> None:
        self.p = p
        # The media plane runs in its own thread and event loop: a stalled request never stalls a stream.
        self.plane = plane or IsolatedMediaPlane(LazyMediaPlane(lambda: _relay(p)))
        self.bus = bus or event_bus(p.settings)  # in-process, or NATS JetStream across nodes (TEMOIN_EVENTS_URL)
        self.stall_after_s = p.settings.live_stall_after_s
        self._tenant_of: dict[str, int] = {}
        self._link: dict[str, tuple[str, float]] = {}  # stream -> (link state, when last announced)
        self._viewers: dict[str, _Viewer] = {}
        self._publications: dict[str, list[str]] = {}  # session -> WHIP resources it has had, the last last
        self._monitor: asyncio.Task | None = None
        self._opening = asyncio.Lock()
        self._requesting: dict[str, asyncio.Lock] = {}  # device id -> its live requests, one at a time
        self.cctv = CctvSources(self.plane, on_closed=self._cctv_closed)  # CCTV cameras pulled over RTSP
        self._cctv_viewers: dict[str, CctvViewer] = {}
        # What closing an incident sets off (the recall of its reinforcements), in the closing transaction.
        self.on_incident_closed: list[Callable[[Session, LiveSession, Actor], None]] = []
        # Several nodes (TEMOIN_NODE_URL): a stream's media stays on the node that owns it, the others forward.
        self.nodes = Nodes(p)
        self._renewed_at = 0.0

    # --- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        # Across nodes (NATS): serve once this node reads the shared events, or say why not (the bus logs it).
        await asyncio.to_thread(self.bus.wait_ready, READY_WAIT_S)
        await self.plane.start()
        self._monitor = asyncio.create_task(self._watch())
        self._hook_shutdown_signals()

    async def stop(self) -> None:
        self._unhook_shutdown_signals()
        if self._monitor is not None:
            self._monitor.cancel()
        self.bus.close()
        await self.cctv.close_all()
        await self.plane.close()
        if self.nodes.enabled:  # a node that stops gives its streams up at once (one that dies: at its lease's end)
            try:
                await self._db(self.nodes.release)
            except Exception:
                log.exception("live: releasing this node's streams")
        await self.nodes.close()

    def _hook_shutdown_signals(self) -> None:
        """A server waits for open responses before it shuts down, and the events channel never ends by
        itself: on SIGINT/SIGTERM, end the event streams first, then let the server's own handler run."""
        self._previous_handlers: dict[int, object] = {}
        if threading.current_thread() is not threading.main_thread():
            return  # a server in a thread (tests) has no signal handlers of its own
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous = signal.getsignal(sig)
            if not callable(previous):
                continue

            def handler(signum: int, frame: object, _previous=previous) -> None:
                loop.call_soon_threadsafe(self.bus.close)  # not here: the bus lock may be held
                _previous(signum, frame)

            self._previous_handlers[sig] = previous
            signal.signal(sig, handler)

    def _unhook_shutdown_signals(self) -> None:
        for sig, previous in getattr(self, "_previous_handlers", {}).items():
            signal.signal(sig, previous)
        self._previous_handlers = {}

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        def work() -> T:
            with self.p.session() as db:
                return fn(db, *args)

        return await run_in_threadpool(work)

    # --- sessions -------------------------------------------------------------------------------------

    def _ref(self, db: Session, s: LiveSession) -> _Ref:
        tenant = db.get_one(Tenant, s.tenant_id)  # the session's tenant: a foreign key
        return _Ref(
            s.id, s.tenant_id, s.device_id, get_profile(tenant.profile).live_backup_recording and s.backup_file is None
        )

    def _device_session(self, db: Session, device_id: str, session_id: str, *, open_only: bool = True) -> LiveSession:
        s = db.get(LiveSession, session_id)
        if s is None or s.device_id != device_id:
            raise LiveNotFound(f"no live session {session_id} for this camera")
        if open_only and s.state == LiveState.ENDED.value:
            raise LiveNotFound(f"live session {session_id} has ended: press the live button again")
        return s

    def user_session(self, db: Session, user: User, session_id: str) -> LiveSession:
        s = db.get(LiveSession, session_id)
        if s is None or s.tenant_id != user.tenant_id:
            if s is not None:
                viewing.refused(self.p, db, user, session_id, "another tenant's live session")
            raise LiveNotFound(f"no live session {session_id} in your tenant")
        return s

    async def request(self, device_id: str, req: LiveRequest) -> tuple[dict, bool]:
        """The live button. A camera may send its request twice at once over two connections (a packet lost on
        a mobile link then costs nothing): one at a time per camera, the second finds the session the first
        opened."""

        def work(db: Session) -> tuple[dict, bool, _Ref]:
            s, created = sessions.request(self.p, db, self.bus, db.get_one(Device, device_id), req)
            return view(s), created, self._ref(db, s)

        async with self._requesting.setdefault(device_id, asyncio.Lock()):
            out, created, ref = await self._db(work)
        await self._ensure_stream(ref)
        return out, created

    async def _ensure_stream(self, ref: _Ref, *, forwarded: bool = False) -> str | None:
        """Open the session's stream here, or say which node owns it (its URL; several nodes only). A request
        forwarded by another node is never forwarded again: the stream moved meanwhile, the client tries again."""
        async with self._opening:  # one stream, and one backup recording, per session
            if ref.id in self.plane.streams():
                return None
            if self.nodes.enabled:
                owner = await self._db(self.nodes.claim, ref.id)
                if owner is not None:
                    if forwarded:
                        err = errors.Unavailable("this live stream has just moved to another node: try again")
                        err.retry_after_s = 1
                        raise err
                    return owner
            self._tenant_of[ref.id] = ref.tenant_id
            sink = None
            if ref.backup:
                sink = await self._db(self._start_backup, ref.id)
            self.plane.open_stream(ref.id, sink)
            return None

    async def _end_stream(self, session_id: str) -> None:
        await self.plane.end_stream(session_id)
        self._tenant_of.pop(session_id, None)
        self._link.pop(session_id, None)
        self._publications.pop(session_id, None)
        if self.nodes.enabled:
            await self._db(self.nodes.release, session_id)

    async def _forward(self, session_id: str, owner: str, message: dict[str, Any]) -> dict[str, Any]:
        """Hand a WHIP/WHEP request, already authorised here, to the node that owns the stream."""
        held = await self._db(self.nodes.owner_of, session_id)
        left = (held[1] - utcnow()).total_seconds() if held else 1.0
        return await self.nodes.forward(owner, left, {**message, "session_id": session_id})

    async def _remote_owner(self, session_id: str) -> str | None:
        """The node, other than this one, whose lease on the stream holds (several nodes only)."""
        if not self.nodes.enabled or session_id in self.plane.streams():
            return None
        held = await self._db(self.nodes.owner_of, session_id)
        return held[0] if held and held[0] != self.nodes.url else None

    async def forwarded(self, message: dict[str, Any]) -> dict[str, Any]:
        """A request another node authorised and forwarded here, the owner (its signature checked by the caller):
        done as if it had reached this node, never forwarded again."""
        op, sid = message.get("op"), message.get("session_id")

        def text(key: str) -> str:
            value = message.get(key)
            if not isinstance(value, str):
                raise errors.Malformed(f"a {op} forward carries {key}")
            return value

        def number(key: str) -> int:
            value = message.get(key)
            if not isinstance(value, int):
                raise errors.Malformed(f"a {op} forward carries {key}")
            return value

        if op == "stop_cctv":
            tenant_id, camera_id = number("tenant_id"), text("camera_id")
            await self.stop_cctv(number("user_id"), tenant_id, camera_id, text("resource_id"), forwarded=True)
            return {}
        if op == "withdraw_cctv":
            await self.withdraw_cctv(number("tenant_id"), text("camera_id"), forwarded=True)
            return {}
        if not isinstance(sid, str):
            raise errors.Malformed("a forward names its live session")
        if op == "play":
            answer = await self.play(number("user_id"), sid, text("offer"), forwarded=True)
            return {"resource_id": answer.resource_id, "sdp": answer.sdp}
        if op == "stop_playing":
            await self.stop_playing(number("user_id"), sid, text("resource_id"), forwarded=True)
            return {}
        if op == "publish":
            answer = await self.publish(text("device_id"), sid, text("offer"), forwarded=True)
            return {"resource_id": answer.resource_id, "sdp": answer.sdp}
        if op == "unpublish":
            return {"ended": await self.unpublish(text("device_id"), sid, text("resource_id"), forwarded=True)}
        raise errors.Malformed(f"no such forward: {op!r}")

    def _start_backup(self, db: Session, session_id: str) -> backup.BackupRecorder | None:
        s = db.get_one(LiveSession, session_id)  # the session whose stream is being opened
        if s.backup_file is not None:  # one backup per session (not resumed after a server restart)
            return None
        tenant = db.get_one(Tenant, s.tenant_id)
        key, wrapped = backup.new_key(self.p.keyring.master_key, s.id)
        name = backup.backup_name(tenant.slug, s.id)
        s.backup_file, s.backup_key = name, wrapped
        self.p.record(
            db,
            EntryDraft(
                action=Action.COLLECTION,
                event="live.backup_started",
                actor=Actor.system("live"),
                cameras=[s.device_id],
                details={"live_session": s.id, "file": s.backup_file},
            ),
            tenant,
        )
        db.commit()

        def stored(sha256: str, size: int, dropped: int) -> None:
            with self.p.session() as db2:
                sessions.backup_stored(self.p, db2, db2.get_one(LiveSession, session_id), sha256, size, dropped)

        return backup.BackupRecorder(self.p.store, name, key, stored)

    async def camera_view(
        self, device_id: str, session_id: str, known_state: str | None = None, wait_s: float = 0
    ) -> dict:
        """The session as its camera sees it; waits up to `wait_s` for its state to leave `known_state`
        (a long poll: the acknowledgement reaches the camera as soon as it is given)."""
        tenant_id = await self._db(
            lambda db: self._device_session(db, device_id, session_id, open_only=False).tenant_id
        )
        sub = self.bus.subscribe(tenant_id)
        try:
            deadline = time.monotonic() + max(0.0, min(wait_s, 25.0))
            while True:
                out = await self._db(lambda db: view(self._device_session(db, device_id, session_id, open_only=False)))
                if known_state is None or out["state"] != known_state:
                    return out
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return out
                    event = await sub.next(left)
                    if event is None:
                        return out
                    if event.type == "session" and event.data.get("id") == session_id:
                        break
        finally:
            sub.close()

    async def position(self, device_id: str, session_id: str, fix: GpsFix) -> None:
        await self._db(
            lambda db: sessions.update_position(db, self.bus, self._device_session(db, device_id, session_id), fix)
        )

    # --- publishing (WHIP) ----------------------------------------------------------------------------

    async def publish(self, device_id: str, session_id: str, offer: str, *, forwarded: bool = False) -> Answer:
        ref = await self._db(lambda db: self._ref(db, self._device_session(db, device_id, session_id)))
        owner = await self._ensure_stream(ref, forwarded=forwarded)
        if owner is not None:  # the camera's media goes to the owner's addresses, in its answer
            check_offer(offer)
            out = await self._forward(session_id, owner, {"op": "publish", "device_id": device_id, "offer": offer})
            return Answer(str(out["resource_id"]), str(out["sdp"]))

        async def ended(reason: str) -> None:
            await self._publication_ended(device_id, session_id, reason)

        answer = await self.plane.publish(session_id, offer, on_ended=ended)

        def journal(db: Session) -> None:
            sessions.streaming(
                self.p,
                db,
                self.bus,
                self._device_session(db, device_id, session_id),
                db.get_one(Device, device_id),
                answer.resource_id,
            )

        try:
            await self._db(journal)
        except Exception:
            await self.plane.end(session_id, answer.resource_id)
            raise
        self._publications.setdefault(session_id, []).append(answer.resource_id)
        return answer

    async def publish_as_camera(self, device_id: str, offer: str, detail: str) -> tuple[str, Answer]:
        """A standard WHIP encoder publishing for a camera (its bearer token): into the camera's open live
        session, or a new one, opened as the live button would (the CSU is alerted). Returns (session, answer)."""
        check_offer(offer)  # a bad offer opens no session and alerts nobody

        def open_one(db: Session) -> str:
            s = sessions.open_for_device(db, device_id)
            if s is None:
                s, _ = sessions.request(
                    self.p,
                    db,
                    self.bus,
                    db.get_one(Device, device_id),
                    LiveRequest(reason=LiveReason.THREAT, detail=detail),
                )
            return s.id

        async with self._requesting.setdefault(device_id, asyncio.Lock()):
            session_id = await self._db(open_one)
        return session_id, await self.publish(device_id, session_id, offer)

    async def _publication_ended(self, device_id: str, session_id: str, reason: str) -> None:
        if reason == "replaced":  # the camera reconnected: its new publication carries on
            await self._replaced_after_silence(device_id, session_id)
            return
        self._link.pop(session_id, None)
        if reason in ("failed", "closed"):  # not ended on purpose: every gap must be provable

            def journal(db: Session) -> None:
                s = db.get(LiveSession, session_id)
                if s is not None and s.state != LiveState.ENDED.value:
                    self.p.record(
                        db,
                        EntryDraft(
                            action=Action.COMMUNICATION,
                            event="live.stream_interrupted",
                            actor=Actor.system("live"),
                            cameras=[device_id],
                            details={"live_session": session_id, "reason": reason},
                        ),
                        db.get_one(Tenant, s.tenant_id),
                    )
                    db.commit()

            try:
                await self._db(journal)
            except Exception:
                log.exception("live: journaling an interrupted stream")
        tenant_id = self._tenant_of.get(session_id)
        if tenant_id is not None:
            self.bus.publish(tenant_id, "stream", {"id": session_id, "publishing": False, "reason": reason})

    async def _replaced_after_silence(self, device_id: str, session_id: str) -> None:
        """A camera that published again after its link went silent (a network cut, which it noticed before
        the platform's own 30 s ICE timeout): the gap is journaled, with when the media stopped."""
        status = self.plane.status(session_id)
        silent = status.silent_for(time.time()) if status else None
        if silent is None or silent <= self.stall_after_s:
            return

        def journal(db: Session) -> None:
            s = db.get(LiveSession, session_id)
            if s is not None and s.state != LiveState.ENDED.value:
                self.p.record(
                    db,
                    EntryDraft(
                        action=Action.COMMUNICATION,
                        event="live.stream_interrupted",
                        actor=Actor.system("live"),
                        cameras=[device_id],
                        details={
                            "live_session": session_id,
                            "reason": "link_lost",
                            "silent_s": round(silent, 1),
                            "since": (utcnow() - timedelta(seconds=silent)).isoformat(),
                        },
                    ),
                    db.get_one(Tenant, s.tenant_id),
                )
                db.commit()

        try:
            await self._db(journal)
        except Exception:
            log.exception("live: journaling an interrupted stream")

    async def unpublish(self, device_id: str, session_id: str, resource_id: str, *, forwarded: bool = False) -> bool:
        """The camera DELETEs its WHIP resource. Its current publication, or any when none is left (the link
        died): the live session ends. One that a newer publication replaced while that one carries the media
        (the encoder reconnected, the old connection's DELETE came late): that resource alone is gone, the
        session and its current publisher carry on. Returns whether the session ended."""
        await self._db(lambda db: self._device_session(db, device_id, session_id, open_only=False))
        if not forwarded and (owner := await self._remote_owner(session_id)) is not None:
            out = await self._forward(
                session_id, owner, {"op": "unpublish", "device_id": device_id, "resource_id": resource_id}
            )
            return bool(out.get("ended"))
        if resource_id not in self._publications.get(session_id, ()):
            raise LiveNotFound(f"no WHIP session {resource_id} on live session {session_id}")
        status = self.plane.status(session_id)
        if status is not None and status.publisher not in (None, resource_id):
            silent = status.silent_for(time.time())
            if silent is not None and silent <= self.stall_after_s:
                return False  # replaced by a live publication: ending this one was done by the replacement
            # The newer publication carries nothing: its offer came from the camera that now wants to end (its
            # answer lost on the way, say); nobody is cut off.

        def end(db: Session) -> None:
            s = self._device_session(db, device_id, session_id, open_only=False)
            sessions.end(self.p, db, self.bus, s, device_actor(db.get_one(Device, device_id)), "camera_ended")

        await self._db(end)
        await self._end_stream(session_id)
        return True

    # --- watching (WHEP) ------------------------------------------------------------------------------

    async def play(self, user_id: int, session_id: str, offer: str, *, forwarded: bool = False) -> Answer:
        def load(db: Session) -> _Ref:
            s = self.user_session(db, db.get_one(User, user_id), session_id)
            if s.state == LiveState.ENDED.value:
                raise LiveNotFound(f"live session {session_id} has ended")
            return self._ref(db, s)

        ref = await self._db(load)
        owner = await self._ensure_stream(ref, forwarded=forwarded)
        if owner is not None:  # the viewer's media comes from the owner's addresses, in its answer
            check_offer(offer)
            out = await self._forward(session_id, owner, {"op": "play", "user_id": user_id, "offer": offer})
            return Answer(str(out["resource_id"]), str(out["sdp"]))
        viewer = _Viewer(session_id, user_id)

        async def ended(reason: str) -> None:
            await viewer.ready.wait()  # the start entry is written (or failed) before the end one
            self._viewers.pop(answer.resource_id, None)
            started_at = viewer.started_at
            if started_at is not None:
                await self._db(
                    lambda db: viewing.ended(
                        self.p,
                        db,
                        db.get_one(LiveSession, session_id),
                        db.get_one(User, user_id),
                        answer.resource_id,
                        started_at,
                        reason,
                    )
                )

        answer = await self.plane.play(session_id, offer, on_ended=ended)
        self._viewers[answer.resource_id] = viewer
        try:
            viewer.started_at = await self._db(
                lambda db: viewing.started(
                    self.p, db, db.get_one(LiveSession, session_id), db.get_one(User, user_id), answer.resource_id
                )
            )
        except BaseException:
            viewer.ready.set()
            await self.plane.end(session_id, answer.resource_id)  # no unjournaled viewing
            raise
        viewer.ready.set()
        return answer

    async def stop_playing(self, user_id: int, session_id: str, resource_id: str, *, forwarded: bool = False) -> None:
        viewer = self._viewers.get(resource_id)
        if viewer is None and not forwarded and (owner := await self._remote_owner(session_id)) is not None:
            message = {"op": "stop_playing", "user_id": user_id, "resource_id": resource_id}
            await self._forward(session_id, owner, message)
            return
        if viewer is None or viewer.session_id != session_id or viewer.user_id != user_id:
            raise LiveNotFound(f"no WHEP session {resource_id} of yours on live session {session_id}")
        await self.plane.end(session_id, resource_id)

    # --- the CSU --------------------------------------------------------------------------------------

    async def list_sessions(self, user_id: int) -> list[dict]:
        def work(db: Session) -> list[dict]:
            user = db.get_one(User, user_id)
            rows = db.scalars(
                select(LiveSession)
                .where(
                    LiveSession.tenant_id == user.tenant_id,
                    or_(LiveSession.state != LiveState.ENDED.value, LiveSession.requested_at > utcnow() - RECENT),
                )
                .order_by(LiveSession.requested_at.desc())
            )
            return [self._with_link(view(s)) for s in rows]

        return await self._db(work)

    def _with_link(self, out: dict) -> dict:
        status = self.plane.status(out["id"])
        now = time.time()
        out["link"] = self._link_of(status, now) if status else None
        out["silent_s"] = status.silent_for(now) if status else None
        out["viewers"] = status.viewers if status else 0
        return out

    async def get_session(self, user_id: int, session_id: str) -> dict:
        return self._with_link(
            await self._db(lambda db: view(self.user_session(db, db.get_one(User, user_id), session_id)))
        )

    async def timeline(self, user_id: int, session_id: str) -> dict:
        """The incident record: the session and its journaled steps."""

        def work(db: Session) -> dict:
            s = self.user_session(db, db.get_one(User, user_id), session_id)
            return {"session": view(s), "entries": timeline.timeline(db, s)}

        return await self._db(work)

    async def acknowledge(self, user_id: int, session_id: str) -> dict:
        def work(db: Session) -> dict:
            user = db.get_one(User, user_id)
            s = self.user_session(db, user, session_id)
            sessions.acknowledge(self.p, db, self.bus, s, actor_of(user))
            return view(s)

        return await self._db(work)

    async def reinforcements(self, user_id: int, session_id: str, note: str | None) -> dict:
        def work(db: Session) -> dict:
            user = db.get_one(User, user_id)
            s = self.user_session(db, user, session_id)
            sessions.reinforcements(self.p, db, self.bus, s, actor_of(user), note)
            return view(s)

        return await self._db(work)

    async def end(self, user_id: int, session_id: str, reason: str) -> dict:
        def work(db: Session) -> dict:
            user = db.get_one(User, user_id)
            s = self.user_session(db, user, session_id)
            sessions.end(self.p, db, self.bus, s, actor_of(user), reason)
            return view(s)

        out = await self._db(work)
        await self._end_stream(session_id)
        return out

    async def close_incident(self, user_id: int, session_id: str) -> dict:
        """The operator closes the incident: the stream ends if it had not, then the followers (reinforcement
        orders recalled) act in the same transaction: all of it is journaled, or none."""

        def work(db: Session) -> dict:
            user = db.get_one(User, user_id)
            s = self.user_session(db, user, session_id)
            sessions.close_incident(self.p, db, s, actor_of(user))
            for hook in self.on_incident_closed:
                hook(db, s, actor_of(user))
            db.commit()
            self.bus.publish(s.tenant_id, "session", view(s))
            return view(s)

        out = await self._db(work)
        await self._end_stream(session_id)
        return out

    # --- link health ----------------------------------------------------------------------------------

    def _link_of(self, status, now: float) -> str:
        silent = status.silent_for(now)
        if silent is None:
            return "waiting"  # nothing received yet
        if silent > self.stall_after_s:
            return "lost"
        return "live"

    async def _watch(self) -> None:
        """Tell the dashboards when a stream's media stops ("link lost since N s") and when it comes back:
        a frozen picture is never shown as live."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            if self.nodes.enabled and time.monotonic() - self._renewed_at >= min(1.0, self.nodes.lease_s / 4):
                await self._renew_leases()
            try:
                now = time.time()
                for stream in self.plane.streams():
                    status = self.plane.status(stream)
                    tenant_id = self._tenant_of.get(stream)
                    if status is None or tenant_id is None:
                        continue
                    link = self._link_of(status, now)
                    previous = self._link.get(stream)
                    if previous is None or previous[0] != link or now - previous[1] >= STATUS_EVERY_S:
                        self._link[stream] = (link, now)
                        self.bus.publish(
                            tenant_id,
                            "stream",
                            {
                                "id": stream,
                                "link": link,
                                "publishing": status.publishing,
                                "silent_s": status.silent_for(now),
                                "last_packet_at": status.last_packet_at,
                                "viewers": status.viewers,
                                "video_frames": status.video_frames,
                                "audio_frames": status.audio_frames,
                            },
                        )
            except Exception:  # the watcher must outlive a bad tick
                log.exception("live: stream watch")

    async def _renew_leases(self) -> None:
        """Keep this node's streams its own, and end those it lost or whose session ended on another node."""
        self._renewed_at = time.monotonic()
        try:
            mine = [s for s in self.plane.streams() if not s.startswith("cctv:")]
            mine += [cctv_viewer(v.tenant_id, v.camera_id, rid) for rid, v in list(self._cctv_viewers.items())]
            for stream in await self._db(self.nodes.renew, mine):
                log.info("live: stream %s ends on this node (session ended, or owned by another node)", stream)
                await self._end_stream(stream)
        except Exception:  # the watcher must outlive a database outage; the leases lapse meanwhile
            log.exception("live: renewing this node's live streams")
