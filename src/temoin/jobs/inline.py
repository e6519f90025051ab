"""The in-process backend: jobs run in a small thread pool of the process that asks for them (SQLite, one machine)."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from temoin.jobs import execute

log = logging.getLogger("temoin.jobs")


class InlineBackend:
    name = "inline"

    def __init__(self, p: Any, threads: int) -> None:
        self._p = p
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="temoin-job")

    def enqueue(self, job_id: str, kind: str) -> int | None:
        self._pool.submit(self._run, job_id)
        return None

    def _run(self, job_id: str) -> None:
        try:
            execute(self._p, job_id)
        except Exception:  # recorded as failed in the job's row; the pool goes on with the next job
            log.exception("job %s failed", job_id)

    def withdraw(self, queue_job_id: int | None) -> bool:
        return False  # the pool starts it soon; `execute` sees the cancellation and does not run it

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
