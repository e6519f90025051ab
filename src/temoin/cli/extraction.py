"""`temoin verify PACKAGE` (offline, anyone) and `temoin extract ...` (on the platform, with a progress bar)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from temoin.cli.context import NotAuthenticated, authenticate, console, err, open_platform

# `temoin verify` exit statuses (documented in its --help and docs/extraction.md).
EXIT_INTACT, EXIT_DAMAGED, EXIT_USAGE, EXIT_UNPINNED = 0, 1, 2, 3


def verify_command(
    package: Path = typer.Argument(..., help="the package: its folder, or the .zip as downloaded"),
    key: list[Path] = typer.Option(
        None,
        "--key",
        help="a platform public key file (PEM, or the service's keys.json), "
        "obtained independently of the package; may be repeated",
    ),
    fingerprint: list[str] = typer.Option(
        None,
        "--fingerprint",
        help="the full SHA-256 fingerprint (64 hex digits) "
        "of the platform key, as the service publishes "
        "it; may be repeated",
    ),
    trust_store: Path | None = typer.Option(
        None,
        "--trust-store",
        envvar="TEMOIN_TRUST_STORE",
        help="a folder of trusted platform keys (.pem, .json) [default: "
        "$XDG_CONFIG_HOME/temoin/trusted-keys/, i.e. "
        "~/.config/temoin/trusted-keys/, when it exists]",
    ),
    tsa_ca: Path | None = typer.Option(
        None, "--tsa-ca", help="the timestamp authority's CA certificates (PEM): checks SHA256SUMS.tsr, and requires it"
    ),
) -> None:
    """Check an extraction package offline: every file's hash, the platform's signature, the cameras' keys
    and signatures, the segment chains and the manifest.

    The package is reported intact only when the key that signed it is pinned: --key, --fingerprint, or a
    trust store holding it (e.g. the service's /.well-known/temoin/keys.json, which pins its current and
    retired keys with their validity).

    Exit status: 0 intact and signed by a pinned key; 1 damaged or altered (each problem named); 2 the
    command could not run (unreadable key, trust store or fingerprint); 3 consistent, but signed by a key
    that is not pinned (the message gives its full fingerprint to compare)."""
    from temoin.evidence.keys import KeySet
    from temoin.evidence.trust_store import (
        TrustError,
        default_trust_store,
        load_key_file,
        load_trust_store,
        parse_fingerprint,
    )
    from temoin.extraction.package_verify import verify_package

    try:
        pins = KeySet()
        for path in key or []:
            pins = pins.merged(load_key_file(path), str(path))
        store = trust_store or default_trust_store()
        pins = pins.merged(load_trust_store(store, required=trust_store is not None), str(store))
        prints = tuple(parse_fingerprint(f) for f in fingerprint or [])
        tsa_bundle = tsa_ca.read_bytes() if tsa_ca is not None else None
    except TrustError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    except OSError as exc:
        err.print(f"[red]cannot read the TSA CA bundle {escape(str(tsa_ca))}: {exc.strerror}[/red]")
        raise typer.Exit(EXIT_USAGE) from None
    with console.status("verifying the package…"):
        report = verify_package(package, pins, fingerprints=prints, tsa_ca_pem=tsa_bundle)
    title = f"extraction {report.extraction_id}" if report.extraction_id else str(package)
    for line in report.checked:
        console.print(f"[green]ok[/green] {escape(line)}", soft_wrap=True)
    for line in report.notes:
        console.print(f"[blue]note[/blue] {escape(line)}", soft_wrap=True)
    for line in report.warnings:
        console.print(f"[yellow]WARNING[/yellow] {escape(line)}", soft_wrap=True)
    for line in report.problems:
        console.print(f"[red]FAIL[/red] {escape(line)}", soft_wrap=True)
    if report.signer is None and report.unpinned:
        console.print(f"[red]NOT PINNED[/red] {escape(report.unpinned)}", soft_wrap=True)
    if report.problems:
        console.print(
            f"[red]{escape(title)}: {len(report.problems)} problem(s): do not rely on this package[/red]",
            soft_wrap=True,
        )
        raise typer.Exit(EXIT_DAMAGED)
    if report.signer is None:
        console.print(
            f"[red]{escape(title)}: consistent, but not signed by a pinned key: not verified[/red]", soft_wrap=True
        )
        raise typer.Exit(EXIT_UNPINNED)
    lost = "; ".join(f"{rid} segments {indexes}" for rid, indexes in report.lost.items())
    console.print(
        f"[green]{escape(title)}: package intact[/green]"
        + (f" except segments lost at the camera, as the signed receipts declare ({escape(lost)})" if lost else "")
        + f", signed by the pinned platform key {report.signer.fingerprint}",
        soft_wrap=True,
    )


def extract_command(
    tenant: str = typer.Argument(..., help="tenant slug"),
    recordings: list[str] = typer.Argument(..., help="recording ids"),
    by: str | None = typer.Option(
        None, "--by", help="your username (mayor or chief): password and code are asked; or set TEMOIN_API_TOKEN"
    ),
    recipient: str = typer.Option(..., help="the recipient's name (e.g. 'OPJ Martin, commissariat de ...')"),
    kind: str = typer.Option(..., help="judicial_police | state_inspection | disciplinary_authority | trainer"),
    procedure: str = typer.Option(..., help="judicial | administrative | disciplinary | training"),
    reference: str = typer.Option(..., help="the procedure's reference (e.g. the parquet's number)"),
    trim: str | None = typer.Option(None, help="START:END in seconds from the recording's start (stream copy)"),
    trim_recording: str | None = typer.Option(None, help="which recording --trim applies to (default: the first)"),
    out: Path | None = typer.Option(None, help="also copy the zip here (a file or a folder)"),
) -> None:
    """Build an extraction package for a named recipient and procedure, and journal it."""
    from temoin.extraction import package as pkg

    try:
        request = pkg.ExtractionRequest(
            recording_ids=recordings,
            recipient_name=recipient,
            recipient_kind=pkg.RecipientKind(kind),
            procedure_type=pkg.ProcedureType(procedure),
            reference=reference,
            trim=_trim(trim, trim_recording or recordings[0]) if trim else None,
        )
    except ValueError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    p = open_platform()
    with p.session() as db:
        try:  # the person is authenticated, never just named: the journal names them
            user = authenticate(p, db, p.tenant(db, tenant), by)
        except NotAuthenticated as exc:
            err.print(f"[red]{escape(str(exc))}[/red]")
            raise typer.Exit(1) from None
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        with progress:
            task = progress.add_task("packaging", total=None)
            try:
                row, built = pkg.extract(
                    p, db, user, request, lambda done, total: progress.update(task, completed=done, total=total)
                )
            except pkg.ExtractionError as exc:
                err.print(f"[red]{escape(exc.message)}[/red]")
                raise typer.Exit(1) from None
    console.print(
        f"extraction [bold]{row.id}[/bold] for {escape(row.recipient_name)}: {built.name} (in the blob store)\n"
        f"  {built.size:,} bytes, SHA-256 {built.sha256}\n"
        f"  kept until {row.expires_at:%Y-%m-%d %H:%M} UTC, then deleted (the journal keeps its trace)",
        soft_wrap=True,
    )
    if built.timestamp is not None and built.timestamp.info is not None:
        console.print(f"  timestamped {escape(built.timestamp.info.describe())}", soft_wrap=True)
    elif built.timestamp is not None:
        console.print(f"  [yellow]not timestamped[/yellow]: {escape(built.timestamp.failure or '')}", soft_wrap=True)
    if out is not None:
        target = out / f"temoin-extraction-{row.id}.zip" if out.is_dir() else out
        pkg.copy_package(p, row, target)
        console.print(f"  copied to {target}")


def _trim(spec: str, recording_id: str):
    from temoin.extraction.package import TrimRequest

    try:
        start, end = (float(x) for x in spec.split(":", 1))
    except ValueError:
        raise ValueError(f"--trim takes START:END in seconds, e.g. 12:47.5 (got {spec!r})") from None
    return TrimRequest(recording_id=recording_id, start_s=start, end_s=end)
