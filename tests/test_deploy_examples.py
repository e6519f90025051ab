"""The deployment examples in deploy/ work as written: the systemd units' commands, run with their settings files as
systemd would run them, start a server and a worker of a cluster, and stop on the units' stop signal in time."""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from temoin.settings import PREFIX, Settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
BINARY = "/opt/temoin/.venv/bin/temoin"
SERVER, WORKER = DEPLOY / "temoin.service", DEPLOY / "temoin-worker@.service"
ENV_FILES = {
    "/etc/temoin/temoin.env": DEPLOY / "temoin.env",
    "/etc/temoin/temoin-cluster.env": DEPLOY / "temoin-cluster.env",
}


def _unit(path: Path) -> dict[str, list[str]]:
    """The [Service] section's keys, each with all its values in order (systemd allows a key several times)."""
    keys: dict[str, list[str]] = {}
    section = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service":
            key, _, value = line.partition("=")
            keys.setdefault(key.strip(), []).append(value.strip())
    return keys


def _env_file(path: Path) -> dict[str, str]:
    out = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def _environment(unit: dict[str, list[str]]) -> dict[str, str]:
    """The variables systemd would give the unit's command: each EnvironmentFile in order ('-': may be absent)."""
    env: dict[str, str] = {}
    for name in unit["EnvironmentFile"]:
        env.update(_env_file(ENV_FILES[name.removeprefix("-")]))
    return env


def _command(unit: dict[str, list[str]]) -> list[str]:
    argv = shlex.split(unit["ExecStart"][-1])
    assert argv[0] == BINARY, f"the unit runs {argv[0]}, not the installed temoin ({BINARY})"
    return [sys.executable, "-m", "temoin", *argv[1:]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_settings_files_name_only_real_settings() -> None:
    """A misspelt variable in an example would be ignored silently by the platform (extra settings are ignored)."""
    fields = {name.upper() for name in Settings.model_fields}
    for path in ENV_FILES.values():
        unknown = [k for k in _env_file(path) if not k.startswith(PREFIX) or k.removeprefix(PREFIX) not in fields]
        assert unknown == [], f"{path.name} sets {unknown}, which no setting reads"
    for path in (SERVER, WORKER):
        unit = _unit(path)
        assert set(unit["EnvironmentFile"]) <= {*ENV_FILES, *(f"-{n}" for n in ENV_FILES)}
        # The data folder private to the service's user (temoin serve refuses a folder open to others).
        assert unit["UMask"] == ["0077"] and unit["StateDirectoryMode"] == ["0700"] and unit["User"] == ["temoin"]


def _stop(proc: subprocess.Popen, unit: dict[str, list[str]]) -> None:
    """What `systemctl stop` does: the unit's KillSignal (SIGTERM by default), then at most TimeoutStopSec."""
    proc.send_signal(getattr(signal, unit.get("KillSignal", ["SIGTERM"])[-1]))
    try:
        proc.wait(int(unit["TimeoutStopSec"][-1]))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"{proc.args} did not stop within the unit's TimeoutStopSec")


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # a cluster: PostgreSQL only
def test_the_units_start_a_cluster_node_and_a_worker_and_stop_in_time(
    database_url: str, tmp_path: Path, s3_server, nats_stream: tuple[str, str]
) -> None:
    home = tmp_path / "var-lib-temoin"
    home.mkdir(mode=0o700)
    port = _free_port()
    events_url, stream = nats_stream
    # The examples' values that name machines of a real site, pointed at this test's own servers.
    site = {
        "TEMOIN_HOME": str(home),
        "TEMOIN_DATABASE_URL": database_url,
        "TEMOIN_EVENTS_URL": events_url,
        "TEMOIN_BLOB_STORE_URL": s3_server.url(),
        "TEMOIN_NODE_URL": f"http://127.0.0.1:{port}",
        "TEMOIN_JOURNAL_FOLDER": str(tmp_path / "mnt-temoin-journal"),
    }
    from tests.s3_helpers import ACCESS_KEY, SECRET_KEY

    base = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": os.pathsep.join(sys.path),
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "TEMOIN_EVENTS_STREAM": stream,
    }
    server_unit, worker_unit = _unit(SERVER), _unit(WORKER)
    examples = _environment(server_unit)
    assert set(site) <= set(examples), "the examples set every variable a cluster node needs"
    env = {**base, **examples, **site}
    server_argv = _command(server_unit)
    server_argv[server_argv.index("--port") + 1] = str(port)

    # As shipped, the node secret is empty: the node refuses to start, and says which setting to give.
    refused = subprocess.run(server_argv, env=env, cwd=home, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "TEMOIN_NODE_SECRET" in refused.stdout + refused.stderr

    env["TEMOIN_NODE_SECRET"] = secrets.token_urlsafe(32)
    init = subprocess.run([sys.executable, "-m", "temoin", "init"], env=env, cwd=home, capture_output=True, timeout=120)
    assert init.returncode == 0, init.stdout + init.stderr
    server_log, worker_log = (tmp_path / "server.log").open("wb"), (tmp_path / "worker.log").open("wb")
    server = subprocess.Popen(server_argv, env=env, cwd=home, stdout=server_log, stderr=subprocess.STDOUT)
    worker = subprocess.Popen(_command(worker_unit), env=env, cwd=home, stdout=worker_log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v1/platform", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server's unit did not answer within 60 s"
            time.sleep(0.2)
        while b"worker: jobs from" not in (tmp_path / "worker.log").read_bytes():
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            assert time.monotonic() < deadline, "the worker's unit did not start within 60 s"
            time.sleep(0.2)
        assert SECRET_KEY not in (tmp_path / "worker.log").read_text()  # credentials never in the log
    finally:
        for proc, unit in ((worker, worker_unit), (server, server_unit)):
            if proc.poll() is None:
                _stop(proc, unit)
    # A clean stop: status 0, or the stop signal raised again after a graceful shutdown (uvicorn does), which
    # systemd counts as success for a service.
    clean = (0, -signal.SIGTERM)
    assert server.returncode in clean and worker.returncode in clean, (server.returncode, worker.returncode)
    logs = (tmp_path / "server.log").read_text() + (tmp_path / "worker.log").read_text()
    assert env["TEMOIN_NODE_SECRET"] not in logs
