"""`temoin keys list` and `temoin keys rotate`: the platform's signing keys."""

from __future__ import annotations

import typer
from rich.markup import escape

from temoin.cli.context import console, err

keys_app = typer.Typer(
    help="The platform's signing keys (published at /.well-known/temoin/keys.json).", no_args_is_help=True
)


def _settings():
    from temoin.settings import Settings

    return Settings.from_env()


@keys_app.command("list")
def list_keys() -> None:
    """Every platform signing key, current and retired, with its full fingerprint and validity."""
    from temoin.keyring import KeyError_, Keyring

    try:
        keyring = Keyring.load(_settings())
    except KeyError_ as exc:
        err.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None
    # One key per paragraph, not a table: the fingerprint is what a recipient pins, so it is never cut or folded,
    # whatever the terminal's width.
    for key in keyring.trusted:
        since = key.valid_from.isoformat(timespec="seconds") if key.valid_from else "-"
        until = key.valid_until.isoformat(timespec="seconds") if key.valid_until else "-"
        status = "current" if key.current else "retired"
        console.print(f"[bold]{escape(key.id)}[/bold]  {status}  valid from {since} until {until}", soft_wrap=True)
        console.print(f"  SHA-256 fingerprint: {key.fingerprint}", soft_wrap=True, highlight=False)


@keys_app.command("rotate")
def rotate_key(yes: bool = typer.Option(False, "--yes", help="do not ask for confirmation")) -> None:
    """Make a new signing key and retire the current one (its private part is destroyed; what it signed
    still verifies with its public part and validity). Running servers sign with the new key from their next
    signature; cameras follow the rotation at their next offload (the old key endorsed the new one)."""
    from temoin.keyring import KeyError_, rotate

    if not yes:
        typer.confirm(
            "Rotate the platform signing key? Recipients must pin the new key (/.well-known/temoin/keys.json)",
            abort=True,
        )
    try:
        old, new = rotate(_settings())
    except KeyError_ as exc:
        err.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(2) from None
    assert old.valid_until is not None  # the rotation ends the retired key
    console.print(
        f"retired {old.id} (SHA-256 {old.fingerprint}) at {old.valid_until.isoformat(timespec='seconds')}\n"
        f"current {new.id} (SHA-256 {new.fingerprint})\n"
        "Running servers sign with the new key from their next signature (no restart needed); cameras "
        "learn it from /.well-known/temoin/keys.json at their next offload, through the old key's "
        "endorsement. Recipients who pinned the old key must pin the new one.",
        soft_wrap=True,
    )
