"""The administration CLI as an operator uses it: a tenant, a user, a camera code, on a fresh home."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from temoin.demo.commune import territory

TEMOIN = [sys.executable, "-m", "temoin"]


def run(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*TEMOIN, *args], env=env, capture_output=True, text=True, timeout=120)


def test_admin_flow_from_a_fresh_home(tmp_path: Path, database_url: str):
    env = {**os.environ, "TEMOIN_HOME": str(tmp_path / "home"), "TEMOIN_DATABASE_URL": database_url,
           "COLUMNS": "200"}
    shape = tmp_path / "territory.geojson"
    shape.write_text(json.dumps(territory()))
    r = run(env, "init")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "home" / "keys" / "master.key").stat().st_mode & 0o077 == 0  # secrets are private
    r = run(env, "admin", "tenant", "create", "ville", "Ville", "--cameras", "3", "--territory", str(shape))
    assert r.returncode == 0, r.stderr
    r = run(env, "admin", "tenant", "create", "autre", "Autre", "--cameras", "1", "--profile", "nope")
    assert r.returncode == 1 and "fr-police-municipale" in r.stderr  # says which profiles exist
    r = run(env, "admin", "user", "create", "ville", "chef", "Chef de service", "--role", "chief")
    assert r.returncode == 0 and "password:" in r.stdout and "otpauth://" in r.stdout
    r = run(env, "admin", "device", "code", "ville", "Caméra 1")
    assert r.returncode == 0 and "enrolment code" in r.stdout
    r = run(env, "admin", "user", "totp", "chef")
    assert r.returncode == 1  # real users' codes are never printed
    r = run(env, "journal", "verify")
    assert r.returncode == 0 and "journal intact" in r.stdout
    r = run(env, "vault", "scrub")
    assert r.returncode == 0 and "no corruption" in r.stdout


def test_missing_master_key_is_a_clear_error(tmp_path: Path):
    env = {**os.environ, "TEMOIN_HOME": str(tmp_path / "empty")}
    r = run(env, "journal", "verify")
    assert r.returncode == 2 and "temoin init" in r.stderr
