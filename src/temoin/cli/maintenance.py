"""`temoin maintenance run`: the server's periodic pass, once, with a line for each of its duties."""

from __future__ import annotations

import typer

from temoin.cli.context import console, open_platform
from temoin.cli.journal import sealing_line

maintenance_app = typer.Typer(
    help="The platform's periodic duties (the server runs them on its own).", no_args_is_help=True
)


@maintenance_app.command("run")
def maintenance_run(
    orphans: bool = typer.Option(
        True,
        "--orphans/--no-orphans",
        help="also audit the whole blob store for folders of deleted recordings that no pending deletion "
        "names (slow on a large vault; the server does it at start-up, then daily); what an interrupted "
        "pass left pending is finished by every pass",
    ),
) -> None:
    """Run once the pass the server runs every TEMOIN_RETENTION_INTERVAL_S, the same function: delete the
    recordings whose retention is over and that no hold keeps, and the live backups past theirs; prune the
    journal past its retention; delete expired extraction packages; seal the journal and send the witness its
    checkpoints. For a platform run without `temoin serve`, or to do it now (e.g. from cron)."""
    from temoin.maintenance import periodic_pass

    p = open_platform()
    with console.status("periodic pass…"):
        done = periodic_pass(p, orphans=orphans)
    sweep = done.sweep
    console.print(
        f"retention: {len(sweep.deleted)} recordings deleted ({sweep.blobs_removed} blobs, "
        f"{sweep.derived_removed} derived files), {sweep.held} kept by a hold, "
        f"{sweep.live_backups_expired} live backups expired"
        + (f", {sweep.orphans_removed} orphan blobs removed" if orphans else ", orphan scan skipped")
    )
    console.print(f"journal: {done.journal_pruned} entries pruned past the journal's retention")
    console.print(f"extractions: {done.packages_purged} expired packages deleted")
    console.print(f"cameras: {done.nonces_purged} request nonces forgotten (past any replay window)")
    console.print(f"sealing: {sealing_line(done.sealing)}")
