"""The PostgreSQL backend: procrastinate (a maintained job queue on PostgreSQL, psycopg 3).

The web nodes defer jobs with a synchronous connector; `temoin worker` processes (any number, on any machine) run
them, and the periodic duties as procrastinate periodic tasks: each period is deferred once for the whole cluster
(procrastinate's periodic-defer table), a queueing lock keeps one waiting at most, and a lock keeps one running at
most. A worker SIGKILLed mid-job stops sending its heartbeat; every worker looks for such stalled jobs and runs them
again (`execute` is idempotent, and each job function makes its result whole or not at all).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import procrastinate
import psycopg
import psycopg_pool
from procrastinate.exceptions import ProcrastinateException
from procrastinate.jobs import Status
from sqlalchemy.engine import make_url

from temoin.errors import InvalidInput, Unavailable
from temoin.jobs import Periodic, execute, periodic

log = logging.getLogger("temoin.jobs")

TASK = "temoin.job"  # the one task that runs any registered job function, by the job's id
QUEUE = "temoin"

_platform: Any = None  # the worker's platform, for the tasks it runs


def conninfo(database_url: str) -> str:
    """libpq's URL from the SQLAlchemy one (the same database as the platform's)."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        raise InvalidInput(
            f"TEMOIN_JOBS=postgresql needs a PostgreSQL database (TEMOIN_DATABASE_URL is {url.get_backend_name()}); "
            "with SQLite leave TEMOIN_JOBS=inline"
        )
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def cron_of(every_s: float) -> str:
    """A cron line for 'every `every_s` seconds' (croniter's sixth field is the seconds)."""
    s = max(1, round(every_s))
    if s < 60:
        return f"* * * * * */{s}"
    minutes = max(1, s // 60)
    if minutes < 60:
        return f"*/{minutes} * * * *"
    hours = minutes // 60
    return f"0 */{hours} * * *" if hours < 24 else "0 0 * * *"


def _app(connector: Any) -> procrastinate.App:
    app = procrastinate.App(connector=connector)

    @app.task(name=TASK, queue=QUEUE)
    def run_job(job_id: str) -> None:
        execute(_platform, job_id)

    return app


class QueueBackend:
    """What a web node (or a CLI command) uses: defer and withdraw, over a synchronous connection."""

    name = "postgresql"

    def __init__(self, database_url: str, wait_s: float = 3.0) -> None:
        # A small pool of its own; a request waits for it as for the platform's (TEMOIN_DB_POOL_TIMEOUT_S), then 503.
        self._conninfo, self._wait_s = conninfo(database_url), wait_s
        self.app = _app(procrastinate.SyncPsycopgConnector())
        self._opened = False
        self._lock = threading.Lock()  # requests defer from the thread pool

    def _open(self) -> procrastinate.App:
        with self._lock:  # opened on first use: a command that queues nothing never connects
            if not self._opened:
                # Opened without waiting for a first connection (procrastinate's own waits 30 s): a request waits
                # `wait_s` at most for one, then answers 503.
                pool = psycopg_pool.ConnectionPool(
                    self._conninfo, min_size=1, max_size=4, timeout=self._wait_s, open=False
                )
                pool.open(wait=False)
                self.app.open(pool)
                self._pool = pool
                self._opened = True
        return self.app

    def enqueue(self, job_id: str, kind: str) -> int | None:
        try:
            return self._open().configure_task(TASK, queue=QUEUE).defer(job_id=job_id)
        except (ProcrastinateException, psycopg.Error, psycopg_pool.PoolTimeout, OSError) as exc:
            raise Unavailable(f"the job queue cannot be reached ({type(exc).__name__}); try again shortly") from exc

    def withdraw(self, queue_job_id: int | None) -> bool:
        if queue_job_id is None:
            return False
        try:
            return self._open().job_manager.cancel_job_by_id(queue_job_id)  # only a job not started yet
        except (ProcrastinateException, psycopg.Error, psycopg_pool.PoolTimeout, OSError):
            log.exception("withdrawing queued job %s failed: it will see its cancellation when it starts", queue_job_id)
            return False

    def close(self) -> None:
        with self._lock:
            if self._opened:
                self.app.close()
                self._pool.close()  # given to procrastinate, which leaves it to its owner
                self._opened = False


def run_worker(p: Any, *, concurrency: int, heartbeat_s: float, stalled_after_s: float) -> None:
    """`temoin worker`: run jobs and the periodic duties until SIGTERM/SIGINT."""
    asyncio.run(_work(p, concurrency=concurrency, heartbeat_s=heartbeat_s, stalled_after_s=stalled_after_s))


async def _work(p: Any, *, concurrency: int, heartbeat_s: float, stalled_after_s: float) -> None:
    global _platform
    _platform = p
    app = _app(procrastinate.PsycopgConnector(conninfo=conninfo(p.settings.database_url)))
    for duty in periodic.values():
        _periodic_task(app, duty)
    async with app.open_async():
        rescuer = asyncio.create_task(_rescue_stalled(app, heartbeat_s, stalled_after_s))
        try:
            await app.run_worker_async(
                queues=[QUEUE],
                concurrency=concurrency,
                update_heartbeat_interval=heartbeat_s,
                stalled_worker_timeout=stalled_after_s,
                delete_jobs="successful",
            )
        finally:
            rescuer.cancel()


def _periodic_task(app: procrastinate.App, duty: Periodic) -> None:
    """One job per period for the whole cluster, never two at once (procrastinate's periodic defers and locks)."""

    def run(timestamp: int) -> None:
        duty.work(_platform)

    name = f"temoin.periodic.{duty.name}"
    task = app.task(name=name, queue=QUEUE, queueing_lock=duty.name, lock=duty.lock)(run)
    app.periodic(cron=cron_of(duty.every_s), periodic_id=duty.name)(task)


async def _rescue_stalled(app: procrastinate.App, heartbeat_s: float, stalled_after_s: float) -> None:
    """Run again the jobs of workers that stopped sending their heartbeat (killed, machine lost). A periodic duty
    is not run again but marked aborted: the next period's job does its work (and may already be queued)."""
    while True:
        try:
            for job in await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after_s):
                assert job.id is not None, "a job read from the database has its id"
                if job.task_name == TASK:
                    log.warning("job %s (%s) of a stalled worker: run again", job.id, job.call_string)
                    await app.job_manager.retry_job(job)
                else:
                    log.warning("periodic job %s of a stalled worker: left to the next period", job.call_string)
                    await app.job_manager.finish_job_by_id_async(job.id, Status.ABORTED, delete_job=False)
        except Exception:  # a lost connection, a race with another worker: the next round tries again
            log.exception("looking for stalled jobs failed; trying again")
        await asyncio.sleep(heartbeat_s)
