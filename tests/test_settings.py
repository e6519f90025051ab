"""The platform's settings (temoin.settings): TEMOIN_* variables, their defaults and what a bad value does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from temoin.settings import InvalidSettings, Settings, variable

README = Path(__file__).resolve().parents[1] / "README.md"


def _temoin(tmp_path: Path, *args: str, **variables: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMOIN_")}
    env.update(TEMOIN_HOME=str(tmp_path / "home"), COLUMNS="250", **variables)
    return subprocess.run(
        [sys.executable, "-m", "temoin", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_defaults_run_a_demo_from_a_data_folder_under_the_current_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    assert settings.home == (tmp_path / "var").resolve()
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'var' / 'temoin.db'}"
    assert settings.keys_dir == settings.home / "keys" and settings.vault_dir == settings.home / "vault"
    assert (
        settings.secure_cookies,
        settings.session_hours,
        settings.tsa_url,
        settings.trusted_proxies,
        settings.redaction_jobs_per_tenant,
    ) == (True, 10, "", (), 4)


def test_each_variable_sets_its_setting():
    settings = Settings.from_env(
        {
            "TEMOIN_HOME": "/srv/temoin",
            "TEMOIN_DATABASE_URL": "postgresql://temoin@db/temoin",
            "TEMOIN_MASTER_KEY": "a2V5",
            "TEMOIN_INSECURE_COOKIES": "1",
            "TEMOIN_SESSION_HOURS": "8",
            "TEMOIN_LIVE_ICE_SERVERS": "stun:stun.example.org, turn:turn.example.org,",
            "TEMOIN_TSA_URL": " http://tsa/ ",
            "TEMOIN_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/24",
            "TEMOIN_REDACTION_JOBS_PER_TENANT": "0",
            "TEMOIN_DB_POOL_TIMEOUT_S": "1.5",
            "TEMOIN_TSA_USERNAME": "",
            "TEMOIN_UNRELATED": "ignored",
        }
    )
    assert settings.home == Path("/srv/temoin") and settings.journal_dir == Path("/srv/temoin/journal")
    assert settings.database_url == "postgresql://temoin@db/temoin" and settings.master_key_env == "a2V5"
    assert settings.secure_cookies is False and settings.session_hours == 8
    assert settings.live_ice_servers == ("stun:stun.example.org", "turn:turn.example.org")
    assert settings.tsa_url == "http://tsa/" and settings.tsa_username is None
    assert settings.trusted_proxies == ("127.0.0.1/32", "10.0.0.0/24")
    assert settings.redaction_jobs_per_tenant == 1  # at least one job, whatever is asked
    assert settings.db_pool_timeout_s == 1.5
    assert "a2V5" not in repr(settings)


def test_settings_are_frozen_and_copied_with_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("TEMOIN_SESSION_HOURS", "1")  # read by from_env only: what is given here is all there is
    settings = Settings(home=tmp_path, database_url="sqlite://", secure_cookies=False)
    assert settings.session_hours == 10 and Settings.from_env().session_hours == 1
    faster = settings.model_copy(update={"live_stall_after_s": 0.5})
    assert (faster.live_stall_after_s, settings.live_stall_after_s, faster.home) == (0.5, 2.0, tmp_path.resolve())
    with pytest.raises(ValueError):
        settings.session_hours = 1  # type: ignore[misc]  # the refusal under test


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("TEMOIN_SESSION_HOURS", "abc", "expected a whole number > 0, e.g. 10"),
        ("TEMOIN_DB_POOL_SIZE", "0", "greater than 0"),
        ("TEMOIN_TSA_TIMEOUT_S", "10s", "expected a number > 0, e.g. 10.0"),
        ("TEMOIN_INSECURE_COOKIES", "maybe", "expected 1 or 0"),
        ("TEMOIN_TRUSTED_PROXIES", "proxy.example", "not an IP address or network"),
    ],
)
def test_a_bad_value_is_one_error_naming_the_variable_and_the_expected_form(name, value, says):
    with pytest.raises(InvalidSettings) as caught:
        Settings.from_env({name: value})
    message = str(caught.value)
    assert message.startswith(f"{name}={value!r}: ") and says in message and "\n" not in message
    assert "pydantic" not in message and "validation error" not in message


def test_a_secret_with_a_bad_value_is_not_printed():
    with pytest.raises(InvalidSettings) as caught:
        Settings(tsa_password=["s3cret"])  # type: ignore[arg-type]  # the bad value under test
    assert "TEMOIN_TSA_PASSWORD" in str(caught.value) and "s3cret" not in str(caught.value)


@pytest.mark.parametrize("command", [["serve", "--port", "1"], ["init"], ["keys", "list"]])
def test_the_server_does_not_start_on_a_bad_variable_and_says_which(tmp_path, command):
    r = _temoin(tmp_path, *command, TEMOIN_SESSION_HOURS="abc")
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.strip() == (
        "TEMOIN_SESSION_HOURS='abc': input should be a valid integer, unable to parse string "
        "as an integer; expected a whole number > 0, e.g. 10 (how long a web sign-in lasts, "
        "in hours)"
    )
    assert not (tmp_path / "home").exists()  # nothing created


def test_the_readme_lists_every_variable():
    documented = set(re.findall(r"`(TEMOIN_[A-Z0-9_]+)`", README.read_text()))
    assert {variable(name) for name in Settings.model_fields} <= documented


def test_several_nodes_need_a_shared_secret_long_enough_and_never_print_it():
    with pytest.raises(InvalidSettings) as caught:
        Settings.from_env({"TEMOIN_NODE_URL": "http://10.0.0.5:8000"})
    assert "TEMOIN_NODE_SECRET" in str(caught.value) and "32 characters" in str(caught.value)
    with pytest.raises(InvalidSettings) as caught:
        Settings.from_env({"TEMOIN_NODE_URL": "http://10.0.0.5:8000", "TEMOIN_NODE_SECRET": "too-short"})
    assert "TEMOIN_NODE_SECRET" in str(caught.value) and "too-short" not in str(caught.value)
    with pytest.raises(InvalidSettings, match="TEMOIN_NODE_URL"):
        Settings.from_env({"TEMOIN_NODE_URL": "10.0.0.5:8000", "TEMOIN_NODE_SECRET": "s" * 32})
    node = Settings.from_env({"TEMOIN_NODE_URL": "http://10.0.0.5:8000/", "TEMOIN_NODE_SECRET": "s" * 32})
    assert node.node_url == "http://10.0.0.5:8000" and "s" * 32 not in repr(node)
    assert Settings.from_env({}).node_url == ""  # one node: nothing to share


def test_a_variable_no_part_of_temoin_reads_is_named_at_start_with_what_was_meant(tmp_path):
    """A typo or a removed setting would otherwise be ignored without a word, and the deployment would run with the
    default instead of what its administrator set."""
    r = _temoin(
        tmp_path,
        "init",
        TEMOIN_SESION_HOURS="1",
        TEMOIN_REDACTION_WORKERS="2",
        TEMOIN_API_TOKEN="read by the CLI, not a setting",
        TEMOIN_TEST_WORKERS="0",
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "TEMOIN_SESION_HOURS is not a Témoin setting and is ignored (did you mean TEMOIN_SESSION_HOURS?)" in (
        r.stderr
    )
    assert "TEMOIN_REDACTION_WORKERS is no longer a setting and is ignored" in r.stderr
    assert "TEMOIN_WORKER_CONCURRENCY" in r.stderr
    assert "TEMOIN_API_TOKEN" not in r.stderr and "TEMOIN_TEST_WORKERS" not in r.stderr


def test_every_variable_read_outside_the_settings_is_known_to_the_check():
    """A variable read elsewhere (the CLI's token, the demo, a tool) must not be reported as unknown."""
    from temoin.settings import OTHER_PREFIXES, OTHER_VARIABLES, REMOVED

    src = Path(__file__).resolve().parents[1] / "src"
    read = {
        name
        for path in src.rglob("*.py")
        for name in re.findall(r"[\"'](TEMOIN_[A-Z0-9_]+)[\"']", path.read_text())
        if not name.endswith("_")
    }
    settings = {variable(name) for name in Settings.model_fields}
    unknown = {n for n in read - settings - OTHER_VARIABLES - set(REMOVED) if not n.startswith(OTHER_PREFIXES)}
    assert not unknown, f"read in src/ but reported as unknown at start: {sorted(unknown)}"
