"""`temoin camera` end to end, as an installer and a wearer use it, against a real server over HTTP:
enrol with a one-time code, check the camera out to an agent, run it, arm a Taser on the local
input port, see what the camera holds, offload it. The vault must then hold the recording under
the agent of the shift, and the camera must no longer hold it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from temoin.camera.keys import pinned_platform_key
from temoin.camera.runner import CameraHome, CameraSetupError
from temoin.demo.server import BackgroundServer, free_port
from temoin.evidence.manifest import SignedReceipt, Trigger
from temoin.identity import shifts
from temoin.identity.devices import create_enrolment_code
from temoin.identity.models import Device, User
from temoin.journal.entry import Actor
from temoin.law.access import Role
from temoin.vault.models import Recording, RecordingState
from temoin.web.app import create_app
from tests.helpers import agent_number, make_commune

TEMOIN = [sys.executable, "-m", "temoin"]


def camera(cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([*TEMOIN, "camera", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def wait_for_inputs(port: int, proc: subprocess.Popen, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"camera exited early: {proc.communicate()}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/status", timeout=2).json()
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("the camera's input port never answered")


@pytest.fixture
def server(platform):
    with BackgroundServer(create_app(platform, scheduler=False)) as s:
        yield s


# The camera's side is the same whatever the vault's database; subprocesses dominate the time, and
# the ingest path is exercised on both databases by test_camera_agent and test_ingest.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_enrol_run_trigger_and_offload(platform, server: BackgroundServer, tmp_path: Path) -> None:
    commune = make_commune(platform, cameras=0)
    home = tmp_path / "camera"
    r = camera(tmp_path, "status", "--home", str(home))
    assert r.returncode == 1 and "temoin camera enroll" in r.stderr  # not enrolled yet: says what to do

    with platform.session() as db:
        code = create_enrolment_code(
            platform, db, platform.tenant(db, commune.slug), label="Caméra CLI", by=Actor.system("test")
        )
    r = camera(tmp_path, "enroll", "--url", server.url, "--code", code, "--serial", "CLI-0001", "--home", str(home))
    assert r.returncode == 0, r.stderr
    assert "nobody yet" in r.stdout  # enrolled, not checked out yet
    device_id = json.loads((home / "device.json").read_text())["device_id"]
    assert pinned_platform_key(home / "keys") == platform.keyring.public_key

    with platform.session() as db:
        agent = db.scalar(select(User).where(User.username == commune.users[Role.AGENT]))
        shifts.check_out(platform, db, db.get(Device, device_id), agent, Actor.system("test"))
        agent_user_id = agent.id

    port = free_port()
    proc = subprocess.Popen(
        [
            *TEMOIN,
            "camera",
            "run",
            "--home",
            str(home),
            "--trigger-port",
            str(port),
            "--duration",
            "6",
            "--width",
            "160",
            "--height",
            "120",
            "--fps",
            "5",
        ],
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        status = wait_for_inputs(port, proc)
        assert status["agent"] == agent_number(commune) and status["state"] == "standby"
        assert abs(status["clock_offset_ms"]) < 2000
        armed = httpx.post(f"http://127.0.0.1:{port}/trigger/taser", json={"armed": True}, timeout=10)
        assert armed.status_code == 200 and armed.json()["state"] == "recording", armed.text
        rid = armed.json()["recording_id"]
        unknown = httpx.post(f"http://127.0.0.1:{port}/trigger/siren", json={"armed": True}, timeout=10)
        assert unknown.status_code == 404 and "taser" in unknown.json()["detail"]
        bad = httpx.post(f"http://127.0.0.1:{port}/trigger/taser", json={"armed": "yes"}, timeout=10)
        assert bad.status_code == 422
        out, errors = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, errors
    assert "REC started" in out and "1 recording(s) waiting for the vault" in out

    r = camera(tmp_path, "status", "--home", str(home))
    assert r.returncode == 0, r.stderr
    assert rid in r.stdout and "pending offload" in r.stdout and "automatic" in r.stdout
    assert agent_number(commune) in r.stdout

    r = camera(tmp_path, "offload", "--home", str(home))
    assert r.returncode == 0, r.stderr
    assert "1 offloaded, 0 kept" in r.stdout and "local copy deleted" in r.stdout
    assert not (home / "recordings" / rid).exists()  # gone from the camera...
    receipt = SignedReceipt.model_validate_json((home / "receipts" / f"{rid}.json").read_bytes())
    assert receipt.verify(platform.keyring.public_key)  # ...and the vault's signed receipt kept instead
    with platform.session() as db:
        rec = db.get(Recording, rid)
        assert rec.state == RecordingState.STORED and rec.device_id == device_id
        assert rec.agent_ref == agent_number(commune) and rec.agent_user_id == agent_user_id
        assert rec.trigger == Trigger.AUTOMATIC and not rec.clock_drift_flag and not rec.outside_territory
        assert "R511-28" in json.loads(rec.manifest)["manifest"]["trigger_detail"]


def test_run_refuses_a_missing_v4l2_camera_by_name(tmp_path: Path) -> None:
    r = camera(tmp_path, "run", "--home", str(tmp_path / "cam"), "--source", "v4l2:/dev/video9")
    assert r.returncode == 1 and "/dev/video9" in r.stderr


def test_one_process_at_a_time_per_camera_home(tmp_path: Path) -> None:
    home = CameraHome(tmp_path / "cam")
    with home.lock():  # e.g. `temoin camera run`...
        with pytest.raises(CameraSetupError, match="another `temoin camera` process"):
            with home.lock():  # ...and `temoin camera offload` would both claim the recording being written
                pass
    with home.lock():
        pass  # released
