"""A bounded queue for long background jobs (face detection, redaction): a fixed number of workers, and at most so
many jobs waiting or running per tenant and in all. A job is admitted before anything is written for it, so a
refusal leaves nothing half made; a burst of requests cannot start unbounded threads nor exhaust the database pool.

Refusals are domain errors: one tenant over its share -> TenantBusy (429), the whole queue full -> QueueFull (503);
both say when to retry.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from temoin import errors
from temoin.settings import Settings

RETRY_AFTER_S = 30


class TenantBusy(errors.TooManyRequests):
    pass


class QueueFull(errors.Unavailable):
    pass


class Ticket:
    """A place in the queue, held from admission until its job ends (or `release` if it is never submitted)."""

    def __init__(self, queue: JobQueue, tenant_id: int) -> None:
        self.queue, self.tenant_id, self._done = queue, tenant_id, False

    def submit(self, name: str, job: Callable[[], None]) -> Future:
        def run() -> None:
            try:
                job()
            finally:
                self.release()

        try:
            return self.queue._executor.submit(run)
        except RuntimeError:  # shut down
            self.release()
            raise

    def release(self) -> None:
        with self.queue._lock:
            if self._done:
                return
            self._done = True
            self.queue._held[self.tenant_id] -= 1
            if not self.queue._held[self.tenant_id]:
                del self.queue._held[self.tenant_id]


class JobQueue:
    def __init__(self, *, workers: int, per_tenant: int, total: int, name: str = "job") -> None:
        self.workers, self.per_tenant, self.total = workers, per_tenant, total
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._held: dict[int, int] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, name: str) -> JobQueue:
        return cls(
            workers=settings.redaction_workers,
            per_tenant=settings.redaction_jobs_per_tenant,
            total=settings.redaction_jobs_max,
            name=name,
        )

    def held(self, tenant_id: int | None = None) -> int:
        with self._lock:
            return sum(self._held.values()) if tenant_id is None else self._held.get(tenant_id, 0)

    def reserve(self, tenant_id: int) -> Ticket:
        with self._lock:
            mine = self._held.get(tenant_id, 0)
            if mine >= self.per_tenant:
                raise TenantBusy(
                    f"your commune already has {mine} redaction jobs waiting or running, the most it may "
                    f"have at once: retry when one is done (in about {RETRY_AFTER_S} s)"
                )
            if sum(self._held.values()) >= self.total:
                raise QueueFull(
                    f"the server already has {self.total} redaction jobs waiting or running: retry in "
                    f"about {RETRY_AFTER_S} s"
                )
            self._held[tenant_id] = mine + 1
        return Ticket(self, tenant_id)
