"""Agents on patrol (positions, status) and reinforcement orders: the CSU sends, the cameras acknowledge.

The camera's routes are device-signed (its position, the long poll for its orders, the acknowledgement);
the CSU's need LIVE_VIEW to see the agents and orders, LIVE_DISPATCH to look for candidates, send and cancel.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

from fastapi import APIRouter, Body, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from temoin.evidence.manifest import GpsFix
from temoin.identity.models import Device, Tenant, User
from temoin.law.access import Permission
from temoin.live.events import EventBus
from temoin.platform import Platform
from temoin.supervision import dispatch
from temoin.supervision.dispatch_models import AgentStatus
from temoin.web.deps import Principal, current_device, get_platform, require

router = APIRouter(prefix="/api/v1/dispatch", tags=["dispatch"])
pages = APIRouter(include_in_schema=False)
T = TypeVar("T")
MAX_WAIT_S = 25.0


def _bus(request: Request) -> EventBus:
    return request.app.state.live.bus


async def _db(p: Platform, fn: Callable[[Session], T]) -> T:
    """Database work in the thread pool (the long poll waits in the event loop)."""

    def work() -> T:
        with p.session() as db:
            return fn(db)

    return await run_in_threadpool(work)


# --- the camera (device-signed) ------------------------------------------------------------------------


class PositionIn(BaseModel):
    position: GpsFix
    status: AgentStatus = AgentStatus.PATROL


@router.post(
    "/camera/position",
    status_code=204,
    response_class=Response,
    summary="The agent's position and status for the CSU's map (the last one is kept, nothing more)",
)
async def camera_position(
    body: PositionIn, request: Request, device: Device = Depends(current_device), p: Platform = Depends(get_platform)
) -> Response:
    bus, device_id = _bus(request), device.id
    await _db(
        p, lambda db: dispatch.record_position(p, db, bus, db.get_one(Device, device_id), body.position, body.status)
    )
    return Response(status_code=204)


@router.get("/camera/orders", summary="The camera's reinforcement orders (long poll: returns when they change)")
async def camera_orders(
    request: Request,
    wait_s: float = Query(0, ge=0, le=MAX_WAIT_S),
    after: str | None = Query(None, max_length=64),
    device: Device = Depends(current_device),
    p: Platform = Depends(get_platform),
) -> dict:
    """Without `after`: at once if an order is open, else as soon as one is (or after `wait_s`). With `after`
    (the `cursor` of the previous answer): as soon as anything differs from that answer."""
    bus, device_id, tenant_id = _bus(request), device.id, device.tenant_id
    sub = bus.subscribe(tenant_id)
    # A camera that hangs up (switched off, out of coverage) is not waited for: a server shutting down
    # waits for every request in flight.
    gone = asyncio.ensure_future(_hung_up(request))
    try:
        deadline = time.monotonic() + wait_s
        while True:
            out = await _db(p, lambda db: dispatch.camera_orders(p, db, bus, db.get_one(Device, device_id)))
            if (out["cursor"] != after) if after is not None else bool(out["orders"]):
                return out
            while True:  # until something that may concern this camera happens
                left = deadline - time.monotonic()
                # Declared by every subscription but not by live.events.Subscription (another branch's module).
                if left <= 0 or sub.closed:
                    return out
                heard = asyncio.ensure_future(sub.next(left))
                await asyncio.wait({heard, gone}, return_when=asyncio.FIRST_COMPLETED)
                if gone.done():
                    heard.cancel()
                    return out
                event = heard.result()
                if event is None:
                    continue
                if (event.type == "reinforcement" and event.data.get("device_id") == device_id) or (
                    event.type == "session" and event.data.get("state") == "ended"
                ):
                    break
    finally:
        gone.cancel()
        sub.close()


async def _hung_up(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


@router.post("/camera/orders/{order_id}/ack", summary="The camera signalled the order to its wearer")
async def camera_ack(
    order_id: str, request: Request, device: Device = Depends(current_device), p: Platform = Depends(get_platform)
) -> dict:
    bus, device_id = _bus(request), device.id
    view, _ = await _db(p, lambda db: dispatch.acknowledge(p, db, bus, db.get_one(Device, device_id), order_id))
    return view


# --- the CSU ----------------------------------------------------------------------------------------------


@router.get("/agents", summary="Agents on shift: last position, its age, status, availability")
async def list_agents(
    request: Request, who: Principal = require(Permission.LIVE_VIEW), p: Platform = Depends(get_platform)
) -> list[dict]:
    bus, tenant_id = _bus(request), who.tenant.id
    return await _db(p, lambda db: dispatch.agents(p, db, bus, db.get_one(Tenant, tenant_id)))


@router.get(
    "/sessions/{session_id}/candidates",
    summary="The nearest available agents for a live session, with distance and ETA estimates",
)
async def candidates(
    session_id: str,
    request: Request,
    limit: int = Query(5, ge=1, le=dispatch.MAX_CANDIDATES),
    who: Principal = require(Permission.LIVE_DISPATCH),
    p: Platform = Depends(get_platform),
) -> dict:
    bus, user_id = _bus(request), who.user.id
    return await _db(
        p,
        lambda db: dispatch.candidates(
            p, db, bus, dispatch.session_for(p, db, db.get_one(User, user_id), session_id), limit
        ),
    )


class ReinforcementsIn(BaseModel):
    device_ids: list[str] = Field(min_length=1, max_length=dispatch.MAX_ORDERS)
    note: str | None = Field(default=None, max_length=500)


@router.post(
    "/sessions/{session_id}/reinforcements",
    status_code=201,
    summary="Send agents to the live session's position: one order each, their cameras are told",
)
async def send_reinforcements(
    session_id: str,
    body: ReinforcementsIn,
    request: Request,
    who: Principal = require(Permission.LIVE_DISPATCH),
    p: Platform = Depends(get_platform),
) -> dict:
    bus, user_id = _bus(request), who.user.id

    def work(db: Session) -> dict:
        user = db.get_one(User, user_id)
        s = dispatch.session_for(p, db, user, session_id)
        orders = dispatch.send(p, db, bus, s, user, body.device_ids, body.note)
        return {"session_id": s.id, "state": s.state, "orders": orders}

    return await _db(p, work)


@router.get("/sessions/{session_id}/orders", summary="A live session's reinforcement orders")
async def session_orders(
    session_id: str,
    request: Request,
    who: Principal = require(Permission.LIVE_VIEW),
    p: Platform = Depends(get_platform),
) -> list[dict]:
    bus, user_id = _bus(request), who.user.id
    return await _db(
        p,
        lambda db: dispatch.session_orders(
            p, db, bus, dispatch.session_for(p, db, db.get_one(User, user_id), session_id)
        ),
    )


class CancelIn(BaseModel):
    reason: str | None = Field(default=None, max_length=200)


@router.post("/orders/{order_id}/cancel", summary="Cancel a reinforcement order (the camera is told)")
async def cancel_order(
    order_id: str,
    request: Request,
    body: CancelIn | None = Body(default=None),
    who: Principal = require(Permission.LIVE_DISPATCH),
    p: Platform = Depends(get_platform),
) -> dict:
    bus, user_id = _bus(request), who.user.id

    def work(db: Session) -> dict:
        user = db.get_one(User, user_id)
        return dispatch.cancel(
            p, db, bus, dispatch.order_for_user(p, db, user, order_id), user, body.reason if body else None
        )

    return await _db(p, work)
