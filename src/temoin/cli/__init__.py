"""The `temoin` command: serve, demo, administration, retention, journal and vault checks.

One module per command group; `context` holds what they share (opening the platform, signing in, errors and
exit statuses). Domain packages hold no command-line code."""

from __future__ import annotations

import typer
from rich.markup import escape

from temoin.cli import (
    admin,
    axis,
    backup,
    camera,
    demo,
    extraction,
    jobs,
    journal,
    keys,
    maintenance,
    reports,
    rights,
    server,
    supervision,
    vault,
    worker,
)
from temoin.cli.context import CommandGroup, err

app = typer.Typer(help="Témoin: body-worn cameras for municipal police.", no_args_is_help=True, cls=CommandGroup)
app.add_typer(admin.admin_app, name="admin")
app.add_typer(vault.retention_app, name="retention")
app.add_typer(maintenance.maintenance_app, name="maintenance")
app.add_typer(journal.journal_app, name="journal")
app.add_typer(vault.vault_app, name="vault")
app.add_typer(camera.camera_app, name="camera")
app.add_typer(rights.rights_app, name="rights")
app.add_typer(reports.report_app, name="report")
app.add_typer(supervision.cctv_app, name="cctv")
app.add_typer(keys.keys_app, name="keys")
app.add_typer(axis.axis_app, name="axis")
app.add_typer(backup.backup_app, name="backup")
app.add_typer(jobs.jobs_app, name="jobs")
app.command("verify")(extraction.verify_command)
app.command("extract")(extraction.extract_command)
app.command("init")(server.init)
app.command("serve")(server.serve)
app.command("demo")(demo.demo)
app.command("worker")(worker.worker)


def main() -> None:
    from temoin.private_files import restrict_umask
    from temoin.settings import InvalidSettings

    restrict_umask()  # every file and folder the platform creates is private to its user (docs/security.md)
    try:
        app(prog_name="temoin")
    except InvalidSettings as exc:  # a bad TEMOIN_* variable, whatever the command: say which, not a traceback
        err.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise SystemExit(2) from None
