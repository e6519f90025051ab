"""Agents on the CSU's map and reinforcements.

Positions: each camera on shift sends its position and status (patrol, recording, live) every few seconds;
only the last one per camera is kept (personal data: no history here, the recording's signed manifest has
the track), nothing is journaled per fix, and each one goes to the dashboards as an "agent" event.

Reinforcements: for a live session the CSU asks for the nearest available agents, then sends some of them.
Each gets an order whose target is the session's last position; its camera long-polls for orders, signals
the order to the wearer and acknowledges it; the order is arrived once the agent's position comes within
`ARRIVED_M` of the target. The CSU may cancel an order; closing the incident recalls its open orders (the end of the
live stream does not: the agent still needs help when the picture stops).
Sending, acknowledging, arriving and cancelling are journaled (communication) and announced as
"reinforcement" events; the live session moves to reinforcements_sent through `temoin.live.sessions`, which
refuses before the alert is acknowledged (the agent in danger must know the CSU has it first).

Distance and arrival estimate: the ground (great-circle) distance times `DETOUR_FACTOR`, because an agent
walks the streets, not a straight line; in a town's street grid a route is typically 1.2 to 1.4 times the
straight distance (1.27 on a perfect square grid on average, more across blocks, less along an avenue).
The estimate is divided by the tenant's `patrol_speed_m_s` for the ETA. Simple and honest: the dashboard
says "about".
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from temoin import errors
from temoin.context import Context
from temoin.db import utcnow
from temoin.evidence.manifest import GpsFix
from temoin.geo.geometry import bearing_deg, distance_m
from temoin.identity import shifts
from temoin.identity.devices import device_actor
from temoin.identity.models import Device, ShiftAssignment, Tenant, User
from temoin.identity.service import actor_of
from temoin.identity.tenant_settings import settings_of
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.live import sessions as live_sessions
from temoin.live.events import EventBus
from temoin.live.models import LiveSession, LiveState
from temoin.supervision.dispatch_models import OPEN_STATES, AgentPosition, AgentStatus, OrderState, ReinforcementOrder

DETOUR_FACTOR = 1.3  # route length / straight distance in a street grid (see the module's docstring)
FRESH_S = 120.0  # a fix older than this does not make an agent available: nobody knows where they are
ARRIVED_M = 30.0  # an agent this close to the target is there (a GPS fix is good to 5-15 m in a street)
MIN_INTERVAL_S = 1.0  # positions faster than this from one camera are refused (429), status changes aside
MAX_CANDIDATES = 20
MAX_ORDERS = 10  # agents in one sending
RECENTLY_CLOSED = timedelta(minutes=10)  # closed orders a camera still hears of (why its order went)


class DispatchError(errors.TemoinError):
    """A dispatch request refused; the subclass says why."""


class DispatchNotFound(errors.NotFound, DispatchError):
    pass


class DispatchConflict(errors.Conflict, DispatchError):
    pass


class DispatchInvalid(errors.InvalidInput, DispatchError):
    pass


class PositionTooFrequent(errors.TooManyRequests, DispatchError):
    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def _new_id() -> str:
    return f"ord-{secrets.token_hex(8)}"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _transition(db: Session, o: ReinforcementOrder, from_states: tuple[str, ...], **values: Any) -> bool:
    """Move an order on only if it is still in one of `from_states` (a conditional UPDATE): a camera and a
    dashboard closing the same order at the same moment journal it once."""
    # An UPDATE executes to a CursorResult, which has the row count.
    result = cast(
        CursorResult[Any],
        db.execute(
            update(ReinforcementOrder)
            .where(ReinforcementOrder.id == o.id, ReinforcementOrder.state.in_(from_states))
            .values(**values)
            .execution_options(synchronize_session=False)
        ),
    )
    done = result.rowcount == 1
    db.refresh(o)
    return done


def route_estimate(straight_m: float, speed_m_s: float) -> tuple[float, float]:
    """(distance along the streets, seconds to get there), from the straight distance."""
    distance = straight_m * DETOUR_FACTOR
    return distance, distance / speed_m_s


# --- who is on shift ------------------------------------------------------------------------------------


def _on_shift(db: Session, tenant_id: int) -> list[tuple[ShiftAssignment, User]]:
    rows = db.execute(
        select(ShiftAssignment, User)
        .join(User, User.id == ShiftAssignment.user_id)
        .where(ShiftAssignment.tenant_id == tenant_id, ShiftAssignment.checked_in_at.is_(None))
        .order_by(User.agent_number)
    )
    return [(s, u) for s, u in rows]


def _agent_name(db: Session, tenant_id: int, agent_number: str | None) -> str | None:
    if not agent_number:
        return None
    user = db.scalar(select(User).where(User.tenant_id == tenant_id, User.agent_number == agent_number).limit(1))
    return user.display_name if user else None


def _live_devices(db: Session, tenant_id: int) -> set[str]:
    return set(
        db.scalars(
            select(LiveSession.device_id).where(
                LiveSession.tenant_id == tenant_id, LiveSession.state != LiveState.ENDED.value
            )
        )
    )


def _open_orders(db: Session, tenant_id: int) -> dict[str, ReinforcementOrder]:
    """Device -> its open order."""
    rows = db.scalars(
        select(ReinforcementOrder)
        .where(ReinforcementOrder.tenant_id == tenant_id, ReinforcementOrder.state.in_(OPEN_STATES))
        .order_by(ReinforcementOrder.sent_at)
    )
    return {o.device_id: o for o in rows}


def _forget_off_shift(db: Session, tenant_id: int, on_shift: list[tuple[ShiftAssignment, User]]) -> None:
    """A position outlives its shift by no more than this: a camera checked in, or handed to another agent,
    no longer shows where its previous wearer was."""
    wearers = {s.device_id: u.id for s, u in on_shift}
    gone = [
        row
        for row in db.scalars(select(AgentPosition).where(AgentPosition.tenant_id == tenant_id))
        if wearers.get(row.device_id) != row.user_id
    ]
    for row in gone:
        db.delete(row)
    if gone:
        db.commit()


# --- positions ------------------------------------------------------------------------------------------


def _position_view(row: AgentPosition, now: datetime) -> dict[str, Any]:
    return {
        "lat": row.lat,
        "lon": row.lon,
        "accuracy_m": row.accuracy_m,
        "t": row.fix_at.isoformat(),
        "received_at": row.received_at.isoformat(),
        "age_s": round((now - row.received_at).total_seconds(), 1),
    }


def _fresh(row: AgentPosition | None, now: datetime) -> bool:
    return row is not None and (now - row.received_at).total_seconds() < FRESH_S


def record_position(
    p: Context, db: Session, bus: EventBus, device: Device, fix: GpsFix, status: AgentStatus
) -> AgentPosition:
    """The camera's last position and status (one row per camera), announced to the dashboards; an open
    order of this camera whose target is now within reach becomes arrived."""
    shift = shifts.current(db, device.id)
    if shift is None:
        raise DispatchConflict(
            "this camera is not checked out to an agent: positions are kept only for "
            "agents on shift (have it checked out)"
        )
    user = db.get_one(User, shift.user_id)
    now = utcnow()
    row = db.get(AgentPosition, device.id)
    if row is not None and row.user_id == user.id and row.status == status.value:
        since = (now - row.received_at).total_seconds()
        if 0 <= since < MIN_INTERVAL_S:
            raise PositionTooFrequent(
                f"positions at most every {MIN_INTERVAL_S:g} s per camera (every 5 s on patrol is plenty)",
                MIN_INTERVAL_S - since,
            )
    values = {
        "tenant_id": device.tenant_id,
        "user_id": user.id,
        "agent_id": user.agent_number,
        "status": status.value,
        "lat": fix.lat,
        "lon": fix.lon,
        "accuracy_m": fix.accuracy_m,
        "fix_at": fix.t,
        "received_at": now,
    }
    if row is None:
        row = AgentPosition(device_id=device.id, **values)
        db.add(row)
        try:
            db.flush()
        except IntegrityError:  # the same camera's other request got there first: update it instead
            db.rollback()
            row = db.get_one(AgentPosition, device.id)
            for key, value in values.items():
                setattr(row, key, value)
    else:
        for key, value in values.items():
            setattr(row, key, value)
    arrived = _arrivals(p, db, device, row, now)
    db.commit()
    order = db.scalar(
        select(ReinforcementOrder)
        .where(ReinforcementOrder.device_id == device.id, ReinforcementOrder.state.in_(OPEN_STATES))
        .limit(1)
    )
    bus.publish(device.tenant_id, "agent", _agent_event(row, user, order, now))
    for o in arrived:
        bus.publish(device.tenant_id, "reinforcement", order_view(db, o))
    return row


def _agent_event(row: AgentPosition, user: User, order: ReinforcementOrder | None, now: datetime) -> dict:
    out: dict[str, Any] = {
        "device_id": row.device_id,
        "agent": row.agent_id,
        "name": user.display_name,
        "status": row.status,
        "position": {"lat": row.lat, "lon": row.lon, "accuracy_m": row.accuracy_m, "t": row.fix_at.isoformat()},
        "at": now.isoformat(),
        "order": None,
    }
    if order is not None:
        remaining = distance_m(row.lat, row.lon, order.target_lat, order.target_lon)
        out["order"] = {
            "order_id": order.id,
            "session_id": order.session_id,
            "state": order.state,
            "remaining_m": round(remaining * DETOUR_FACTOR),
        }
    return out


def _arrivals(p: Context, db: Session, device: Device, row: AgentPosition, now: datetime) -> list[ReinforcementOrder]:
    out = []
    for order in db.scalars(
        select(ReinforcementOrder).where(
            ReinforcementOrder.device_id == device.id, ReinforcementOrder.state.in_(OPEN_STATES)
        )
    ).all():
        straight = distance_m(row.lat, row.lon, order.target_lat, order.target_lon)
        if straight > ARRIVED_M:
            continue
        if not _transition(db, order, OPEN_STATES, state=OrderState.ARRIVED.value, arrived_at=now):
            continue
        p.record(
            db,
            EntryDraft(
                action=Action.COMMUNICATION,
                event="dispatch.order_arrived",
                actor=device_actor(device),
                cameras=[device.id],
                recipients=["csu"],
                details={
                    "order_id": order.id,
                    "live_session": order.session_id,
                    "agent": order.agent_id,
                    "distance_to_target_m": round(straight, 1),
                    "sent_at": order.sent_at.isoformat(),
                    "at": now.isoformat(),
                    "travel_s": round((now - order.sent_at).total_seconds(), 1),
                },
            ),
            db.get_one(Tenant, order.tenant_id),
        )
        out.append(order)
    return out


def agents(p: Context, db: Session, bus: EventBus, tenant: Tenant) -> list[dict]:
    """The tenant's agents on shift, with their last position, its age, their status and whether the CSU
    could send them (fresh fix, not live, not already on an order)."""
    on_shift = _on_shift(db, tenant.id)
    _forget_off_shift(db, tenant.id, on_shift)
    now = utcnow()
    live = _live_devices(db, tenant.id)
    orders = _open_orders(db, tenant.id)
    out = []
    for shift, user in on_shift:
        row = db.get(AgentPosition, shift.device_id)
        status = AgentStatus.LIVE.value if shift.device_id in live else (row.status if row else None)
        order = orders.get(shift.device_id)
        out.append(
            {
                "device_id": shift.device_id,
                "agent": user.agent_number,
                "name": user.display_name,
                "status": status,
                "position": _position_view(row, now) if row else None,
                "age_s": round((now - row.received_at).total_seconds(), 1) if row else None,
                "fresh": _fresh(row, now),
                "live": shift.device_id in live,
                "order": {"order_id": order.id, "session_id": order.session_id, "state": order.state}
                if order
                else None,
                "available": _fresh(row, now) and status != AgentStatus.LIVE.value and order is None,
            }
        )
    return out


# --- candidates -----------------------------------------------------------------------------------------


def session_for(p: Context, db: Session, user: User, session_id: str) -> LiveSession:
    """The user's tenant's live session; another tenant's is a 404, and the attempt is journaled."""
    s = db.get(LiveSession, session_id)
    if s is None or s.tenant_id != user.tenant_id:
        if s is not None:
            p.record(
                db,
                EntryDraft(
                    action=Action.SECURITY,
                    event="dispatch.refused",
                    actor=actor_of(user),
                    details={"why": "another tenant's live session", "asked_for": session_id},
                ),
                db.get_one(Tenant, user.tenant_id),
            )
            db.commit()
        raise DispatchNotFound(f"no live session {session_id} in your tenant")
    return s


def _target(s: LiveSession) -> tuple[float, float]:
    if not s.position:
        raise DispatchConflict(
            f"live session {s.id} has no position yet: the agent's camera has not sent a "
            "fix; call the agent by radio for their location"
        )
    return float(s.position["lat"]), float(s.position["lon"])


def candidates(p: Context, db: Session, bus: EventBus, s: LiveSession, limit: int = 5) -> dict:
    """The nearest agents the CSU could send to the live session's position, nearest first."""
    if s.state == LiveState.ENDED.value:
        raise DispatchConflict(f"live session {s.id} has ended")
    lat, lon = _target(s)
    tenant = db.get_one(Tenant, s.tenant_id)
    speed = settings_of(tenant).patrol_speed_m_s
    now = utcnow()
    live = _live_devices(db, tenant.id)
    orders = _open_orders(db, tenant.id)
    out: list[dict[str, Any]] = []
    for shift, user in _on_shift(db, tenant.id):
        if shift.device_id == s.device_id or shift.device_id in live or shift.device_id in orders:
            continue
        if s.agent_id and user.agent_number == s.agent_id:  # the agent in danger, whatever camera
            continue
        row = db.get(AgentPosition, shift.device_id)
        if row is None or not _fresh(row, now) or row.user_id != user.id or row.status == AgentStatus.LIVE.value:
            continue
        straight = distance_m(row.lat, row.lon, lat, lon)
        distance, eta = route_estimate(straight, speed)
        out.append(
            {
                "device_id": shift.device_id,
                "agent": user.agent_number,
                "name": user.display_name,
                "status": row.status,
                "position": _position_view(row, now),
                "straight_m": round(straight, 1),
                "distance_m": round(distance),
                "eta_s": round(eta),
                "bearing_deg": round(bearing_deg(row.lat, row.lon, lat, lon)),
            }
        )
    out.sort(key=lambda c: c["straight_m"])
    return {
        "session_id": s.id,
        "target": {"lat": lat, "lon": lon},
        "speed_m_s": speed,
        "detour_factor": DETOUR_FACTOR,
        "fresh_s": FRESH_S,
        "candidates": out[: max(1, min(limit, MAX_CANDIDATES))],
    }


# --- orders ---------------------------------------------------------------------------------------------


def order_view(db: Session, o: ReinforcementOrder) -> dict[str, Any]:
    """An order as the dashboards, the journal's readers and the camera see it ("reinforcement" events)."""
    s = db.get(LiveSession, o.session_id)
    user = db.get(User, o.user_id) if o.user_id else None
    tenant = db.get_one(Tenant, o.tenant_id)
    return {
        "order_id": o.id,
        "session_id": o.session_id,
        "device_id": o.device_id,
        "agent": o.agent_id,
        "name": user.display_name if user else None,
        "state": o.state,
        "target": {"lat": o.target_lat, "lon": o.target_lon},
        "distance_m": o.distance_m,
        "eta_s": o.eta_s,
        "speed_m_s": settings_of(tenant).patrol_speed_m_s,
        "note": o.note,
        "for_agent": {"agent": s.agent_id, "name": _agent_name(db, o.tenant_id, s.agent_id), "device_id": s.device_id}
        if s
        else None,
        "sent_at": _iso(o.sent_at),
        "sent_by": o.sent_by,
        "acknowledged_at": _iso(o.acknowledged_at),
        "arrived_at": _iso(o.arrived_at),
        "cancelled_at": _iso(o.cancelled_at),
        "cancelled_by": o.cancelled_by,
        "cancel_reason": o.cancel_reason,
    }


def send(
    p: Context, db: Session, bus: EventBus, s: LiveSession, by: User, device_ids: list[str], note: str | None
) -> list[dict]:
    """One order per agent, to the live session's position; the session moves to reinforcements_sent in the
    same transaction (refused before the alert is acknowledged)."""
    if s.state == LiveState.ENDED.value:
        raise DispatchConflict(f"live session {s.id} has ended")
    if s.acknowledged_at is None:
        raise DispatchConflict(
            "acknowledge the alert before sending reinforcements: the agent must know the CSU has the alert"
        )
    ids = list(dict.fromkeys(device_ids))
    if not ids:
        raise DispatchInvalid("choose at least one agent to send")
    if len(ids) > MAX_ORDERS:
        raise DispatchInvalid(f"at most {MAX_ORDERS} agents in one sending")
    lat, lon = _target(s)
    tenant = db.get_one(Tenant, s.tenant_id)
    speed = settings_of(tenant).patrol_speed_m_s
    live = _live_devices(db, tenant.id)
    busy = _open_orders(db, tenant.id)
    now = utcnow()
    orders: list[ReinforcementOrder] = []
    for device_id in ids:
        device = db.get(Device, device_id)
        if device is None or device.tenant_id != tenant.id:
            raise DispatchNotFound(f"no camera {device_id} in your tenant")
        shift = shifts.current(db, device_id)
        if shift is None:
            raise DispatchConflict(f"camera {device_id} is not on shift: nobody wears it")
        user = db.get_one(User, shift.user_id)
        if device_id == s.device_id or (s.agent_id and user.agent_number == s.agent_id):
            raise DispatchConflict(f"{user.display_name} is the agent in danger: send someone else")
        if device_id in live:
            raise DispatchConflict(f"{user.display_name} is live (needs help): not available")
        if device_id in busy:
            raise DispatchConflict(
                f"{user.display_name} is already on order {busy[device_id].id}: cancel it first to send them elsewhere"
            )
        row = db.get(AgentPosition, device_id)
        distance = eta = None
        if row is not None and row.user_id == user.id:
            distance, eta = route_estimate(distance_m(row.lat, row.lon, lat, lon), speed)
        order = ReinforcementOrder(
            id=_new_id(),
            tenant_id=tenant.id,
            session_id=s.id,
            device_id=device_id,
            user_id=user.id,
            agent_id=user.agent_number,
            state=OrderState.SENT.value,
            target_lat=lat,
            target_lon=lon,
            distance_m=round(distance) if distance is not None else None,
            eta_s=round(eta) if eta is not None else None,
            note=note,
            sent_at=now,
            sent_by=by.username,
        )
        db.add(order)
        orders.append(order)
    db.flush()
    p.record(
        db,
        EntryDraft(
            action=Action.COMMUNICATION,
            event="dispatch.order_sent",
            actor=actor_of(by),
            cameras=[s.device_id, *(o.device_id for o in orders)],
            recipients=[o.agent_id or o.device_id for o in orders],
            details={
                "live_session": s.id,
                "agent": s.agent_id,
                "target": {"lat": lat, "lon": lon},
                "note": note,
                "at": now.isoformat(),
                "orders": [
                    {
                        "order_id": o.id,
                        "device_id": o.device_id,
                        "agent": o.agent_id,
                        "distance_m": o.distance_m,
                        "eta_s": o.eta_s,
                    }
                    for o in orders
                ],
            },
        ),
        tenant,
    )
    try:
        # Journals live.reinforcements_sent and commits the orders with it, or nothing at all.
        live_sessions.reinforcements(p, db, bus, s, actor_of(by), note)
    except live_sessions.LiveError:
        db.rollback()
        raise
    views = [order_view(db, o) for o in orders]
    for view in views:
        bus.publish(tenant.id, "reinforcement", view)
    return views


def session_orders(p: Context, db: Session, bus: EventBus, s: LiveSession) -> list[dict]:
    rows = db.scalars(
        select(ReinforcementOrder)
        .where(ReinforcementOrder.session_id == s.id)
        .order_by(ReinforcementOrder.sent_at, ReinforcementOrder.id)
    )
    return [order_view(db, o) for o in rows]


def order_for_user(p: Context, db: Session, user: User, order_id: str) -> ReinforcementOrder:
    o = db.get(ReinforcementOrder, order_id)
    if o is None or o.tenant_id != user.tenant_id:
        if o is not None:
            p.record(
                db,
                EntryDraft(
                    action=Action.SECURITY,
                    event="dispatch.refused",
                    actor=actor_of(user),
                    details={"why": "another tenant's reinforcement order", "asked_for": order_id},
                ),
                db.get_one(Tenant, user.tenant_id),
            )
            db.commit()
        raise DispatchNotFound(f"no reinforcement order {order_id} in your tenant")
    return o


def _cancel(p: Context, db: Session, o: ReinforcementOrder, by: Actor, reason: str) -> bool:
    if not _transition(
        db,
        o,
        OPEN_STATES,
        state=OrderState.CANCELLED.value,
        cancelled_at=utcnow(),
        cancelled_by=by.id,
        cancel_reason=reason,
    ):
        return False
    p.record(
        db,
        EntryDraft(
            action=Action.COMMUNICATION,
            event="dispatch.order_cancelled",
            actor=by,
            cameras=[o.device_id],
            recipients=[o.agent_id or o.device_id],
            details={
                "order_id": o.id,
                "live_session": o.session_id,
                "agent": o.agent_id,
                "reason": reason,
                "at": _iso(o.cancelled_at),
            },
        ),  # set by _transition
        db.get_one(Tenant, o.tenant_id),
    )
    return True


def cancel(p: Context, db: Session, bus: EventBus, o: ReinforcementOrder, by: User, reason: str | None) -> dict:
    if not _cancel(p, db, o, actor_of(by), reason or "cancelled_by_csu"):
        raise DispatchConflict(f"order {o.id} is already {o.state}")
    db.commit()
    view = order_view(db, o)
    bus.publish(o.tenant_id, "reinforcement", view)
    return view


def recall_for_incident(p: Context, db: Session, bus: EventBus, s: LiveSession, by: Actor) -> int:
    """The operator closed the incident: its open orders are recalled (cancelled, journaled, the cameras told).
    Not the end of the live stream: an agent in danger still needs help when the picture stops. Runs inside the
    transaction that closes the incident and commits it. Returns how many."""
    rows = [
        o
        for o in db.scalars(
            select(ReinforcementOrder).where(
                ReinforcementOrder.session_id == s.id, ReinforcementOrder.state.in_(OPEN_STATES)
            )
        )
        if _cancel(p, db, o, by, "incident_closed")
    ]
    db.commit()
    for o in rows:
        bus.publish(s.tenant_id, "reinforcement", order_view(db, o))
    return len(rows)


# --- the camera's side ----------------------------------------------------------------------------------


def camera_orders(p: Context, db: Session, bus: EventBus, device: Device) -> dict:
    """What the camera sees: its open orders, those closed lately (so that it can tell the wearer why), and a
    cursor that changes whenever any of them does (the long poll's `after`)."""
    since = utcnow() - RECENTLY_CLOSED
    rows = list(
        db.scalars(
            select(ReinforcementOrder)
            .where(ReinforcementOrder.device_id == device.id)
            .where(
                (ReinforcementOrder.state.in_(OPEN_STATES))
                | (ReinforcementOrder.cancelled_at > since)
                | (ReinforcementOrder.arrived_at > since)
            )
            .order_by(ReinforcementOrder.sent_at, ReinforcementOrder.id)
        )
    )
    open_ = [order_view(db, o) for o in rows if o.state in OPEN_STATES]
    closed = [order_view(db, o) for o in rows if o.state not in OPEN_STATES]
    cursor = hashlib.sha256("|".join(f"{o.id}:{o.state}" for o in rows).encode()).hexdigest()[:16]
    return {"orders": open_, "closed": closed, "cursor": cursor}


def acknowledge(p: Context, db: Session, bus: EventBus, device: Device, order_id: str) -> tuple[dict, bool]:
    """The camera signalled the order to its wearer. Idempotent: (view, False) if already acknowledged."""
    o = db.get(ReinforcementOrder, order_id)
    if o is None or o.device_id != device.id:
        raise DispatchNotFound(f"no reinforcement order {order_id} for this camera")
    if o.state == OrderState.CANCELLED.value:
        raise DispatchConflict(f"order {o.id} was cancelled ({o.cancel_reason})")
    if o.acknowledged_at is not None:
        return order_view(db, o), False
    now = utcnow()
    if not _transition(db, o, (OrderState.SENT.value,), state=OrderState.ACKNOWLEDGED.value, acknowledged_at=now):  # noqa: SIM102 - the comment belongs to the outer condition
        # Arrived before the camera confirmed (it walked there first): the acknowledgement is kept.
        if o.state != OrderState.ARRIVED.value or not _transition(
            db, o, (OrderState.ARRIVED.value,), acknowledged_at=now
        ):
            db.rollback()
            return acknowledge(p, db, bus, device, order_id)  # what happened meanwhile, told as it is
    p.record(
        db,
        EntryDraft(
            action=Action.COMMUNICATION,
            event="dispatch.order_acknowledged",
            actor=device_actor(device),
            cameras=[device.id],
            recipients=["csu"],
            details={
                "order_id": o.id,
                "live_session": o.session_id,
                "agent": o.agent_id,
                "at": _iso(o.acknowledged_at),
            },
        ),  # set by _transition (refreshed)
        db.get_one(Tenant, o.tenant_id),
    )
    db.commit()
    view = order_view(db, o)
    bus.publish(o.tenant_id, "reinforcement", view)
    return view, True
