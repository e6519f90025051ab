"""The command line's mistakes are the user's to fix: a name that does not exist, a file that cannot be written, a
setting that is wrong get one line saying what and an exit status, never a Python traceback."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from temoin.cli import app as cli_app
from temoin.demo.commune import territory
from tests.helpers import make_commune

runner = CliRunner()

# Every command that names a tenant, with its other arguments; the status an unknown tenant gets (2 for the
# report group, whose paperwork commands already answered 2: the command cannot run as given).
TENANT_COMMANDS = [
    (["report", "annual", "nowhere", "2026"], 2),
    (["report", "monthly", "nowhere", "2026-01"], 2),
    (["report", "notice", "nowhere", "--pdf", "{tmp}/notice.pdf"], 2),
    (["report", "processing-record", "nowhere", "--out", "{tmp}/record.pdf"], 2),
    (["report", "aipd", "nowhere", "--out", "{tmp}/aipd.pdf"], 2),
    (["rights", "list", "nowhere"], 1),
    (["rights", "create", "nowhere", "--kind", "access", "--description", "veste rouge", "--contact", "a@b.fr"], 1),
    (["admin", "tenant", "territory", "nowhere", "{tmp}/territory.geojson"], 1),
    (["admin", "tenant", "settings", "nowhere"], 1),
    (["admin", "user", "create", "nowhere", "maire", "Le maire", "--role", "mayor"], 1),
    (["admin", "user", "deactivate", "nowhere", "maire", "--reason", "left"], 1),
    (["admin", "device", "code", "nowhere", "cam-1"], 1),
    (["admin", "device", "list", "nowhere"], 1),
    (["cctv", "import", "nowhere", "{tmp}/registry.csv"], 1),
    (["cctv", "list", "nowhere"], 1),
    (["cctv", "withdraw", "nowhere", "cctv-01"], 1),
    (["axis", "revoke", "nowhere"], 2),
    (
        [
            "extract",
            "nowhere",
            "rec-1",
            "--recipient",
            "OPJ",
            "--kind",
            "judicial_police",
            "--procedure",
            "judicial",
            "--reference",
            "PV 1",
        ],
        1,
    ),
]


def _env(settings) -> dict:
    return {
        "TEMOIN_HOME": str(settings.home),
        "TEMOIN_DATABASE_URL": settings.database_url,
        "COLUMNS": "200",
        "TEMOIN_API_TOKEN": "",
    }


@pytest.mark.parametrize(
    "args, status", TENANT_COMMANDS, ids=lambda a: " ".join(a[:3]) if isinstance(a, list) else None
)
def test_an_unknown_tenant_is_named_with_an_exit_status_not_a_traceback(platform, settings, tmp_path, args, status):
    make_commune(platform, cameras=1)  # a tenant exists, just not this one
    (tmp_path / "registry.csv").write_text("id,name,lat,lon,heading,fov_deg\ncctv-01,Mairie,43.5,4.0,90,60\n")
    (tmp_path / "territory.geojson").write_text(json.dumps(territory()))
    result = runner.invoke(cli_app, [a.replace("{tmp}", str(tmp_path)) for a in args], env=_env(settings))
    assert result.exit_code == status, result.output
    assert isinstance(result.exception, SystemExit)  # an exit, not an exception escaping the command
    assert "no tenant 'nowhere'" in result.output and "temoin admin tenant list" in result.output
    assert "Traceback" not in result.output


def test_a_report_that_cannot_be_written_says_where_and_why(platform, settings, tmp_path):
    commune = make_commune(platform, cameras=1)
    out = tmp_path / "missing-folder" / "notice.pdf"
    result = runner.invoke(cli_app, ["report", "notice", commune.slug, "--pdf", str(out)], env=_env(settings))
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert str(out) in result.output and "No such file or directory" in result.output


def test_a_bug_still_shows_its_traceback(platform, settings, monkeypatch):
    """Only the user's errors are turned into a message: a programming error must stay visible."""
    from temoin.reports import monthly

    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("a bug")

    commune = make_commune(platform, cameras=1)
    monkeypatch.setattr(monthly, "monthly", broken)
    result = runner.invoke(cli_app, ["report", "monthly", commune.slug, "2026-01"], env=_env(settings))
    assert isinstance(result.exception, ZeroDivisionError)
