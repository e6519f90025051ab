"""Shared by the extraction and trust tests: a package made through the API, downloaded, checked by `temoin
verify`; a redacted copy waited for; a finalised recording stored directly."""

from __future__ import annotations

import hashlib
import time
import zipfile
from datetime import timedelta
from pathlib import Path

from typer.testing import CliRunner

from temoin.cli import app as cli_app
from temoin.db import utcnow

runner = CliRunner()


def _extract(client, csrf: str, recording_ids: list[str], **extra) -> dict:
    body = {
        "recording_ids": recording_ids,
        "recipient_name": "OPJ Claire Martin, commissariat de Port-Témoin",
        "recipient_kind": "judicial_police",
        "procedure_type": "judicial",
        "reference": "PV 2026/004512",
        **extra,
    }
    r = client.post("/api/v1/extractions", headers={"X-CSRF-Token": csrf}, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _download(client, out: dict, tmp_path: Path) -> tuple[Path, Path]:
    r = client.get(out["download_url"])
    assert r.status_code == 200, r.text
    assert hashlib.sha256(r.content).hexdigest() == out["sha256"] and len(r.content) == out["size"]
    zpath = tmp_path / f"{out['id']}.zip"
    zpath.write_bytes(r.content)
    with zipfile.ZipFile(zpath) as zf:
        zf.extractall(tmp_path / "unzipped")
    return zpath, tmp_path / "unzipped" / f"temoin-extraction-{out['id']}"


def _verify(path: Path, key: Path | None = None, *more: str) -> tuple[int, str]:
    args = ["verify", str(path)] + (["--key", str(key)] if key else []) + list(more)
    # No trust store but what a test gives: not the machine's ~/.config/temoin/trusted-keys.
    result = runner.invoke(
        cli_app,
        args,
        env={"COLUMNS": "200", "XDG_CONFIG_HOME": "/nonexistent-temoin-config", "TEMOIN_TRUST_STORE": None},
    )
    return result.exit_code, result.output


def _pinned(platform) -> tuple[None, str, str]:
    """`temoin verify` arguments pinning the platform's key by its full fingerprint."""
    return None, "--fingerprint", platform.keyring.fingerprint


def _wait(client, copy_id: int, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        copy = client.get(f"/api/v1/rights/copies/{copy_id}").json()
        if copy["state"] not in ("detecting", "redacting") or time.monotonic() > deadline:
            return copy
        time.sleep(0.2)


def device_recording(store, camera_id: str, agent_id: str, segments: list[bytes]) -> str:
    """A finalised recording of `segments` (any bytes: the store seals and chains them as given)."""
    import uuid

    from temoin.camera.device_store import Notice, RecordingHeader
    from temoin.evidence.manifest import Trigger

    start = utcnow()
    rid = f"rec-{uuid.uuid4().hex[:16]}"
    writer = store.begin(
        RecordingHeader(
            recording_id=rid,
            camera_id=camera_id,
            agent_id=agent_id,
            trigger=Trigger.INCIDENT,
            triggered_at=start,
            pre_event_buffer_s=0,
        )
    )
    for i, data in enumerate(segments):
        writer.add_segment(data, start + timedelta(seconds=2 * i), 2.0, notice=Notice.told())
    writer.finalise()
    store.release(writer)
    return rid


def verify_with_env(path: Path, *args: str, env: dict | None = None) -> tuple[int, str]:
    """`temoin verify PATH ARGS` with `env` added, and no trust store but what a test gives."""
    env = {"COLUMNS": "250", "XDG_CONFIG_HOME": "/nonexistent-temoin-config", "TEMOIN_TRUST_STORE": None, **(env or {})}
    result = runner.invoke(cli_app, ["verify", str(path), *args], env=env)
    return result.exit_code, result.output
