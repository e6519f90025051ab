"""`temoin journal`: verify, seal, repair and prune the tamper-evident journal."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from temoin.cli.context import console, err, open_platform

journal_app = typer.Typer(help="The tamper-evident journal.", no_args_is_help=True)


def sealing_line(sealing) -> str:
    line = f"{sealing.chains} chains sealed"
    if sealing.witnessed is not None:
        line += f", {sealing.witnessed} checkpoints sent to the witness"
    if sealing.waiting:
        line += f" ([yellow]witness unreachable: {sealing.waiting} checkpoints kept to send later[/yellow])"
    return line


@journal_app.command("verify")
def journal_verify(
    witness_log: Path | None = typer.Option(
        None,
        "--witness-log",
        exists=True,
        dir_okay=False,
        readable=True,
        help="the witness's syslog file: every checkpoint it received must be here, identical",
    ),
    tsa_ca: Path | None = typer.Option(
        None, "--tsa-ca", help="the timestamp authority's CA certificates (PEM): verify the seals' RFC 3161 timestamps"
    ),
) -> None:
    """Verify both sinks of every chain, and that they agree; say what the last seal covers and what is
    not sealed yet, and when the seals were timestamped. Only reads. Exit 1 and name each problem if not intact."""
    from temoin.db import utcnow
    from temoin.journal.seal_timestamps import verify_all_seal_timestamps
    from temoin.journal.verify import verify_all
    from temoin.journal.witness import read_witness_log

    bundle = None
    if tsa_ca is not None:
        try:
            bundle = tsa_ca.read_bytes()
        except OSError as exc:
            err.print(f"[red]cannot read the TSA CA bundle {escape(str(tsa_ca))}: {exc.strerror}[/red]")
            raise typer.Exit(2) from None
    p = open_platform()
    witness = read_witness_log(witness_log, [k.public_key for k in p.keyring.trusted]) if witness_log else None
    now = utcnow()
    with p.session() as db, console.status("verifying the journal…"):
        result = verify_all(
            db,
            p.journal.sink,
            p.keyring.trusted,
            witness=witness,
            seal_interval_s=p.settings.journal_seal_interval_s,
            now=now,
        )
        stamps = verify_all_seal_timestamps(
            db, p.journal.sink, p.keyring.trusted, bundle, sorted({r.chain for r in result.reports}), result.checkpoints
        )
    table = Table("chain", "sink", "entries", "last entry", "last seal covers", "unsealed tail", "problems")
    for r in result.reports:
        seal = f"{r.last_seal.seq} ({r.last_seal.at[:19].replace('T', ' ')} UTC)" if r.last_seal else "none"
        tail = "-"
        if r.unsealed:
            tail = f"{r.unsealed} entries"
            if r.unsealed_since is not None:
                tail += f", oldest {_age((now - r.unsealed_since).total_seconds())} old"
        table.add_row(r.chain, r.sink, str(r.entries), str(r.last_seq), seal, tail, str(len(r.problems)))
    console.print(table)
    if witness is not None:
        console.print(
            f"witness log {witness_log}: {sum(len(c) for c in witness.chains.values())} checkpoints "
            f"of {len(witness.chains)} chains compared"
        )
    for warning in result.warnings:
        console.print(f"[yellow]{escape(warning)}[/yellow]")
    for stamp in stamps:
        console.print(escape(stamp.summary()), soft_wrap=True)
    problems = result.problems + [problem for stamp in stamps for problem in stamp.problems]
    if not problems:
        console.print("[green]journal intact[/green]")
        return
    for problem in problems:
        console.print(f"[red]{escape(str(problem))}[/red]", soft_wrap=True)
    raise typer.Exit(1)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{max(0, seconds):.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


@journal_app.command("seal")
def journal_seal() -> None:
    """Sign the current head of every chain that moved, and send the witness its checkpoints (the server
    does it every TEMOIN_JOURNAL_SEAL_INTERVAL_S)."""
    from temoin.maintenance import seal_journal

    p = open_platform()
    console.print(sealing_line(seal_journal(p)))


@journal_app.command("repair")
def journal_repair() -> None:
    """Bring the journal file level with the database after a crash or a full disk: remove an interrupted
    last line, append the entries and checkpoints the file lacks at its end if they carry on exactly from
    it (otherwise nothing is copied, and why is said). Journaled. `temoin serve` does it at start-up."""
    from temoin.journal.repair import repair
    from temoin.journal.sinks import JournalWriteError

    p = open_platform()
    with p.session() as db:
        try:
            results = repair(db, p.journal, trigger="temoin journal repair")
        except JournalWriteError as exc:
            err.print(f"[red]{escape(str(exc))}[/red]")
            raise typer.Exit(1) from None
    refused = False
    for r in results:
        for cut in r.interrupted:
            console.print(
                f"{r.chain}: interrupted write at byte {cut['at']} of {cut['file']} removed ({cut['bytes']} bytes)"
            )
        if r.gaps_filled:
            console.print(f"{r.chain}: {r.gaps_filled} entries missing in the middle of the file put back")
        if r.appended:
            console.print(f"{r.chain}: {r.appended} entries appended to the file from entry {r.from_seq}")
        if r.checkpoints_appended:
            console.print(f"{r.chain}: {r.checkpoints_appended} checkpoints appended to the file")
        if r.refused:
            refused = True
            err.print(f"[red]{r.chain}: {escape(r.refused)}[/red]")
    if not any(r.changed for r in results) and not refused:
        console.print("nothing to repair: the file is level with the database")
    if refused:
        raise typer.Exit(1)


@journal_app.command("prune")
def journal_prune() -> None:
    """Remove entries older than each tenant's journal retention (three years), behind a signed checkpoint."""
    from sqlalchemy import select

    from temoin.db import utcnow
    from temoin.identity.models import Tenant
    from temoin.journal.checkpoints import prune
    from temoin.law.profiles import get_profile

    p = open_platform()
    with p.session() as db:
        for t in db.scalars(select(Tenant)).all():
            cutoff = get_profile(t.profile).journal_cutoff(utcnow())
            console.print(f"{t.slug}: {prune(db, p.journal.sink, p.keyring, t.slug, cutoff)} entries pruned")
