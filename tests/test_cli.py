"""The administration CLI as an operator uses it: a tenant, a user, a camera code, on a fresh home."""

from __future__ import annotations

import json
import os
from pathlib import Path

from temoin.demo.commune import territory
from tests.helpers import run


def test_admin_flow_from_a_fresh_home(tmp_path: Path, empty_database_url: str):
    env = {
        **os.environ,
        "TEMOIN_HOME": str(tmp_path / "home"),
        "TEMOIN_DATABASE_URL": empty_database_url,
        "COLUMNS": "200",
    }
    shape = tmp_path / "territory.geojson"
    shape.write_text(json.dumps(territory()))
    r = run(env, "init")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "home" / "keys" / "master.key").stat().st_mode & 0o077 == 0  # secrets are private
    r = run(env, "admin", "tenant", "create", "ville", "Ville", "--cameras", "3", "--territory", str(shape))
    assert r.returncode == 0, r.stderr
    r = run(env, "admin", "tenant", "create", "autre", "Autre", "--cameras", "1", "--profile", "nope")
    assert r.returncode == 1 and "fr-police-municipale" in r.stderr  # says which profiles exist
    # Duties apart: a role that sees content needs an authenticated mayor; the tenant's first mayor and technical
    # accounts are created on the server (the bootstrap).
    r = run(env, "admin", "user", "create", "ville", "chef", "Chef de service", "--role", "chief")
    assert r.returncode == 2 and "--by" in r.stderr
    r = run(env, "admin", "user", "create", "ville", "tech", "Technicien", "--role", "tech_admin")
    assert r.returncode == 0, r.stderr
    r = run(env, "admin", "user", "create", "ville", "maire", "Le maire", "--role", "mayor")
    assert r.returncode == 0 and "password:" in r.stdout and "otpauth://" in r.stdout
    r = run(env, "admin", "user", "create", "ville", "maire2", "Un autre maire", "--role", "mayor")
    assert r.returncode == 2  # no longer the first
    from temoin.identity import service
    from temoin.law.access import Permission
    from temoin.platform import Platform
    from temoin.settings import Settings

    p = Platform.open(Settings.from_env(env))
    try:
        with p.session() as db:
            tech = service.find_user(db, "tech@ville")
            mayor = service.find_user(db, "maire@ville")
            tech_token = service.issue_api_token(p, db, tech, "cli")
            mayor_token = service.issue_api_token(p, db, mayor, "cli", scopes=[Permission.ADMIN_USERS])
    finally:
        p.close()
    r = run(
        {**env, "TEMOIN_API_TOKEN": tech_token},
        "admin",
        "user",
        "create",
        "ville",
        "chef",
        "Chef de service",
        "--role",
        "chief",
    )
    assert r.returncode == 1 and "duties apart" in r.stderr
    r = run(
        {**env, "TEMOIN_API_TOKEN": mayor_token},
        "admin",
        "user",
        "create",
        "ville",
        "chef",
        "Chef de service",
        "--role",
        "chief",
    )
    assert r.returncode == 0 and "password:" in r.stdout and "otpauth://" in r.stdout
    r = run(
        {**env, "TEMOIN_API_TOKEN": mayor_token}, "admin", "user", "deactivate", "ville", "chef", "--reason", "test"
    )
    assert r.returncode == 0 and "deactivated" in r.stdout
    r = run(env, "admin", "device", "code", "ville", "Caméra 1")
    assert r.returncode == 0 and "enrolment code" in r.stdout
    r = run(env, "admin", "user", "totp", "chef")
    assert r.returncode == 1  # real users' codes are never printed
    # Tenant settings: validated together, journaled, and used (the public notice names the controller).
    r = run(
        env,
        "admin",
        "tenant",
        "settings",
        "ville",
        "ptz_auto_aim=true",
        "cctv_radius_m=250",
        "notice_controller=Le maire de Ville, M. Dupont",
        "tile_url=https://tiles.example/{z}/{x}/{y}.png?key=s3cr3t",
    )
    assert r.returncode == 0, r.stderr
    assert "250.0" in r.stdout and "True" in r.stdout
    r = run(env, "admin", "tenant", "settings", "ville", "cctv_radius_m=-1", "ptz_auto_aim=false")
    assert r.returncode == 1 and "cctv_radius_m" in r.stderr and "nothing was changed" in r.stderr
    r = run(env, "admin", "tenant", "settings", "ville", "radius=3")
    assert r.returncode == 1 and "unknown tenant setting" in r.stderr and "cctv_radius_m" in r.stderr
    r = run(env, "admin", "tenant", "settings", "ville")
    assert "True" in r.stdout and "250.0" in r.stdout  # the refused changes left everything as it was
    r = run(env, "report", "notice", "ville", "--pdf", str(tmp_path / "notice.pdf"))
    assert r.returncode == 0 and (tmp_path / "notice.pdf").read_bytes().startswith(b"%PDF"), r.stderr
    changes = [
        json.loads(line.split(" ", 1)[1])
        for line in (tmp_path / "home" / "journal" / "ville").glob("*.jsonl").__next__().read_text().splitlines()
        if "tenant.settings_changed" in line
    ]
    assert len(changes) == 1 and "s3cr3t" not in json.dumps(changes)  # a tile provider's key is never journaled
    assert "tiles.example" in json.dumps(changes)
    r = run(env, "journal", "verify")
    assert r.returncode == 0 and "journal intact" in r.stdout
    r = run(env, "vault", "scrub")
    assert r.returncode == 0 and "no corruption" in r.stdout


def test_missing_master_key_is_a_clear_error(tmp_path: Path):
    env = {**os.environ, "TEMOIN_HOME": str(tmp_path / "empty")}
    r = run(env, "journal", "verify")
    assert r.returncode == 2 and "temoin init" in r.stderr
