"""A real `temoin serve` in a process of its own, for the tests that need what an in-process app cannot give: a
SIGKILL, another release's code, several nodes. One copy of the start-up dance (a free port, an environment without
the caller's TEMOIN_* settings, the output in a log file, a wait until the server answers, a stop that cannot hang)
instead of one per test file."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx
import pytest

from temoin.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A port nothing listens on now (the OS picks it), for a server started next."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def installed_temoin() -> Path | None:
    """The `temoin` script next to the test interpreter (or in the checkout's .venv); None if there is none."""
    for candidate in (Path(sys.executable).parent / "temoin", ROOT / ".venv" / "bin" / "temoin"):
        if candidate.exists():
            return candidate
    return None


def temoin() -> str:
    """The `temoin` command, as an operator runs it: a test of the real command must not quietly run something
    else, so a missing script fails the test loudly."""
    script = installed_temoin()
    if script is None:
        pytest.fail("the `temoin` command is not installed next to the test interpreter", pytrace=False)
    return str(script)


def base_env(settings: Settings, **more: str) -> dict[str, str]:
    """The child's environment: this one's without TEMOIN_* (the caller's own settings must not leak into the
    server), then the settings' home and database, cookies over plain HTTP, unbuffered output (the log is read
    while the process runs), and `more`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMOIN_")}
    env.update(
        TEMOIN_HOME=str(settings.home),
        TEMOIN_DATABASE_URL=settings.database_url,
        TEMOIN_INSECURE_COOKIES="1",
        PYTHONUNBUFFERED="1",
        **more,
    )
    return env


def answers(url: str, timeout: float = 1) -> bool:
    """Whether the server at `url` answers GET /api/v1/platform with a 200 now (False while nothing listens)."""
    try:
        return httpx.get(f"{url}/api/v1/platform", timeout=timeout).status_code == 200
    except httpx.TransportError:
        return False


class ServerProcess:
    """A command in its own process, its output (stdout and stderr) appended to `log`.

    `name` says which process in failure messages ("the server", "node A"). `grace_s` is how long `stop` lets it
    shut down after SIGTERM before the SIGKILL; 0 means no SIGTERM at all (a test that wants a crash, not a
    shutdown)."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        log: Path,
        url: str = "",
        grace_s: float = 15,
    ) -> None:
        self.name = name
        self.url = url
        self.log = log
        self.grace_s = grace_s
        with log.open("ab") as out:
            self.proc = subprocess.Popen(list(command), env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, chars: int = 3000) -> str:
        """The end of the log: what a failure shows of the process."""
        return self.log.read_text(errors="replace")[-chars:]

    def wait_answering(self, timeout_s: float) -> None:
        """Until GET <url>/api/v1/platform answers 200. The test fails with the log's tail when the process exits
        first, or (the process stopped) when `timeout_s` passes: a server that cannot start says why."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.name} exited ({self.proc.returncode}):\n{self.tail()}")
            if answers(self.url):
                return
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"{self.name} did not start:\n{self.tail()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: the machine lost, no clean-up of any kind (nothing is sent if the process is already gone)."""
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM, `grace_s` to shut down, then SIGKILL; a process already gone is left alone."""
        if self.proc.poll() is not None:
            return
        if self.grace_s <= 0:
            self.kill()
            return
        self.proc.terminate()
        try:
            self.proc.wait(self.grace_s)
        except subprocess.TimeoutExpired:
            self.kill()
