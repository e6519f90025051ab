"""`temoin demo`: the platform with a demo commune, its users, recordings and simulated cameras."""

from __future__ import annotations

import typer

from temoin.cli.context import console


def demo(
    host: str = "127.0.0.1",
    port: int = 8000,
    recordings: int = typer.Option(4, min=0, max=50),
    cameras: int = typer.Option(6, min=0, max=8, help="simulated cameras on patrol (each the real agent)"),
) -> None:
    """Start the platform with a demo commune, users, sample recordings and a fleet of simulated cameras."""
    from temoin.demo.run import run_demo

    run_demo(host=host, port=port, recordings=recordings, console=console, cameras=cameras)
