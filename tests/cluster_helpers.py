"""A cluster on this machine, of real processes: `temoin serve` nodes and `temoin worker`s on one PostgreSQL
database, one S3 store and one NATS, each node with a data folder of its own (as separate machines have), the keys
copied into each and the journal's folder shared (TEMOIN_JOURNAL_FOLDER, a network share) as docs/deploy.md says.
Shared by tests/test_cluster.py and bench/cluster.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy.orm import Session

import temoin
from temoin.db import make_engine
from temoin.identity.secrets import current_totp
from tests.serve_helpers import ServerProcess, answers, free_port, installed_temoin

PASSWORD = "correct horse battery staple"


def temoin_command() -> list[str]:
    """The installed `temoin` next to the interpreter, or the module (the nodes' PYTHONPATH names these sources)."""
    script = installed_temoin()
    return [str(script)] if script else [sys.executable, "-m", "temoin"]


@dataclass
class Cluster:
    """What every node shares, and the folder where each gets its own home."""

    root: Path
    database_url: str
    blob_store_url: str
    events_url: str
    events_stream: str
    extra_env: dict[str, str] = field(default_factory=dict)
    shared_home: bool = False  # one data folder for every node (a network share), as docs/deploy.md has it today

    def home(self, name: str) -> Path:
        return self.root / ("shared" if self.shared_home else name) / "home"

    def env(self, name: str, **more: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TEMOIN_")}
        env.update(
            TEMOIN_HOME=str(self.home(name)),
            TEMOIN_DATABASE_URL=self.database_url,
            TEMOIN_BLOB_STORE_URL=self.blob_store_url,
            TEMOIN_EVENTS_URL=self.events_url,
            TEMOIN_EVENTS_STREAM=self.events_stream,
            TEMOIN_JOBS="postgresql",
            TEMOIN_INSECURE_COOKIES="1",
            TEMOIN_WORKER_HEARTBEAT_S="0.5",
            TEMOIN_WORKER_STALLED_AFTER_S="10",
            TEMOIN_RETENTION_INTERVAL_S="3600",  # the test triggers the pass itself
            PYTHONUNBUFFERED="1",
            # One journal file for the cluster, as a network share gives (a node's own data folder holds the rest).
            **({} if self.shared_home else {"TEMOIN_JOURNAL_FOLDER": str(self.root / "journal")}),
            # The nodes run the same sources as this process (a worktree's, not whatever the venv installed).
            PYTHONPATH=os.pathsep.join([str(Path(temoin.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
            **self.extra_env,
            **more,
        )
        return env

    def give_keys(self, source: str, *names: str) -> None:
        """Each node's own data folder, with the keys of the first (the master key and the signing key must be the
        same on every node: docs/deploy.md)."""
        if self.shared_home:
            return
        keys = self.home(source) / "keys"
        for name in names:
            home = self.home(name)
            home.mkdir(parents=True, mode=0o700)
            shutil.copytree(keys, home / "keys")

    def cli(self, name: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*temoin_command(), *args],
            env=self.env(name),
            cwd=self.home(name),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def popen_cli(self, name: str, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [*temoin_command(), *args],
            env=self.env(name),
            cwd=self.home(name),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    @contextmanager
    def db(self) -> Iterator[Session]:
        engine = make_engine(self.database_url)
        try:
            with Session(engine) as session:
                yield session
        finally:
            engine.dispose()


class Process(ServerProcess):
    """`temoin serve` (a node) or `temoin worker`, in its own process, its output in a log file."""

    def __init__(self, cluster: Cluster, name: str, *args: str, port: int | None = None) -> None:
        self.port = port
        super().__init__(
            name,
            [*temoin_command(), *args],
            env=cluster.env(name),
            cwd=cluster.home(name),
            log=cluster.root / f"{name}-{args[0]}-{time.monotonic_ns()}.log",
            url=f"http://127.0.0.1:{port}" if port else "",
            grace_s=30,
        )

    def tail(self, chars: int = 4000) -> str:
        return f"--- {self.name} ({self.log.name}) ---\n{super().tail(chars)}"


def serve(cluster: Cluster, name: str) -> Process:
    port = free_port()
    return Process(cluster, name, "serve", "--host", "127.0.0.1", "--port", str(port), port=port)


def worker(cluster: Cluster, name: str) -> Process:
    return Process(cluster, name, "worker")


def wait_up(*nodes: Process, timeout: float = 90) -> None:
    """Until every node answers (they start in parallel); a node that exits or stays silent fails with its log."""
    deadline = time.monotonic() + timeout
    waiting = list(nodes)
    while waiting:
        for node in list(waiting):
            if not node.alive():
                raise AssertionError(f"{node.name} exited ({node.proc.returncode}):\n{node.tail()}")
            if answers(node.url, timeout=2):
                waiting.remove(node)
        if waiting and time.monotonic() > deadline:
            raise AssertionError(f"not up within {timeout} s:\n" + "\n".join(n.tail() for n in waiting))
        time.sleep(0.1)


def sign_in_http(http: httpx.Client, username: str, totp_secret: str) -> str:
    """Password then TOTP over HTTP; returns the CSRF token (the session cookie stays in `http`)."""
    r = http.post("/api/v1/session", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    r = http.post("/api/v1/session/totp", json={"code": current_totp(totp_secret)})
    assert r.status_code == 200, r.text
    return r.json()["csrf_token"]


def sign_in_browser(context, username: str, totp_secret: str) -> None:
    """The same through a browser context's own requests: the session cookie lands in the context."""
    r = context.request.post("/api/v1/session", data={"username": username, "password": PASSWORD})
    assert r.status == 200, r.text()
    r = context.request.post("/api/v1/session/totp", data={"code": current_totp(totp_secret)})
    assert r.status == 200, r.text()
