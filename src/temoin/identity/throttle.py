"""Sign-in throttling with growing delays, never a hard lock.

Failures are counted over the window (settings.login_window_s) three ways: per account and per address for
attempts from unknown browsers, per device for a known browser (identity.known_devices). Past a free number
of failures, each new attempt waits BASE_DELAY_S doubled per further failure, at most the window. So a
password spray from one address slows down, a guess at one account slows down, and the account's own user,
from a browser already used, is held only by their own mistakes."""

from __future__ import annotations

import math
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from temoin.context import Context
from temoin.db import utcnow
from temoin.identity.errors import Throttled
from temoin.identity.models import LoginAttempt

BASE_DELAY_S = 4.0
ADDRESS_FACTOR = 2  # an address gets twice an account's free failures (several users behind one NAT)


def delay_s(failures: int, free: int, cap_s: float) -> float:
    """The wait after `failures` recent failures: none below `free`, then doubling, at most `cap_s`."""
    if failures < free:
        return 0.0
    return min(cap_s, BASE_DELAY_S * 2 ** min(failures - free, 30))


def _wait(db: Session, where: list, free: int, window_s: int) -> int:
    now = utcnow()
    n, last = db.execute(
        select(func.count(), func.max(LoginAttempt.at)).where(
            *where, LoginAttempt.success.is_(False), LoginAttempt.at >= now - timedelta(seconds=window_s)
        )
    ).one()
    if not n:
        return 0
    remaining = (last + timedelta(seconds=delay_s(n, free, window_s)) - now).total_seconds()
    return math.ceil(remaining) if remaining > 0 else 0


def check(p: Context, db: Session, *, account: str, address: str, device: str | None) -> None:
    """Raise Throttled(retry_after) when this attempt must wait."""
    free, window = p.settings.login_max_failures, p.settings.login_window_s
    if device is not None:
        waits = [_wait(db, [LoginAttempt.device == device], free, window)]
    else:
        unknown = LoginAttempt.device.is_(None)
        waits = [
            _wait(db, [LoginAttempt.username == account, unknown], free, window),
            _wait(db, [LoginAttempt.address == address, unknown], free * ADDRESS_FACTOR, window),
        ]
    if max(waits) > 0:
        raise Throttled(max(waits))


def record(db: Session, *, account: str, address: str, device: str | None, factor: str, success: bool) -> None:
    db.add(LoginAttempt(username=account[:200], address=address[:64], device=device, factor=factor, success=success))
