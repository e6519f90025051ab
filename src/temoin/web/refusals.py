"""Refused device authentications, journaled by the minute: one entry per camera, source address and minute, with
the count, so that a stream of forged requests naming a real camera cannot flood the journal (it used to write
one entry per request: ~30 a second).

A minute's entry is written once the minute is over: by the next refusal after it, by the server's periodic
sealing pass, and at shutdown. A crash loses at most the counts of the current minute. Distinct sources per
minute are bounded: beyond MAX_SOURCES, further addresses of a camera are counted together as "other".
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from temoin.identity.models import Tenant
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.platform import Platform

WINDOW_S = 60
MAX_SOURCES = 10_000
OTHER = "other"


@dataclass
class _Window:
    tenant_id: int
    actor: Actor
    camera_id: str
    address: str
    minute: int
    count: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)


class RefusalLog:
    def __init__(self, clock=time.time) -> None:  # a clock the tests can move
        self.clock = clock
        self._windows: dict[tuple[str, str, int], _Window] = {}
        self._lock = threading.Lock()

    def note(
        self, *, tenant_id: int, actor: Actor, camera_id: str, address: str | None, reason: str, path: str
    ) -> None:
        minute = int(self.clock() // WINDOW_S)
        address = address or "unknown"
        with self._lock:
            key = (camera_id, address, minute)
            if key not in self._windows and len(self._windows) >= MAX_SOURCES:
                key, address = (camera_id, OTHER, minute), OTHER
            window = self._windows.get(key)
            if window is None:
                window = self._windows[key] = _Window(tenant_id, actor, camera_id, address, minute)
            window.count += 1
            window.reasons[reason] = window.reasons.get(reason, 0) + 1
            if len(window.paths) < 5 and path not in window.paths:
                window.paths.append(path)

    def _take(self, every: bool) -> list[_Window]:
        now = int(self.clock() // WINDOW_S)
        with self._lock:
            due = [k for k, w in self._windows.items() if every or w.minute < now]
            return [self._windows.pop(k) for k in due]

    def flush(self, p: Platform, db: Session | None = None, *, every: bool = False) -> int:
        """Journal the minutes that are over (all of them with every=True, at shutdown); committed here."""
        windows = self._take(every)
        if not windows:
            return 0
        if db is None:
            with p.session() as own:
                return self._write(p, own, windows)
        return self._write(p, db, windows)

    @staticmethod
    def _write(p: Platform, db: Session, windows: list[_Window]) -> int:
        for w in sorted(windows, key=lambda w: (w.minute, w.camera_id, w.address)):
            start = datetime.fromtimestamp(w.minute * WINDOW_S, UTC)
            end = datetime.fromtimestamp((w.minute + 1) * WINDOW_S, UTC)
            p.record(
                db,
                EntryDraft(
                    action=Action.SECURITY,
                    event="device.auth_refused",
                    actor=w.actor,
                    cameras=[w.camera_id],
                    details={
                        "count": w.count,
                        "address": w.address,
                        "from": start.isoformat(),
                        "until": end.isoformat(),
                        "reasons": w.reasons,
                        "paths": w.paths,
                        "reason": max(w.reasons, key=w.reasons.__getitem__),
                    },
                ),
                db.get_one(Tenant, w.tenant_id),
            )
        db.commit()
        return len(windows)
