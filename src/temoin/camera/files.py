"""Crash-safe files on the camera: atomic writes (tmp, fsync, rename, fsync of the folder), 0600.

A camera can lose power at any instant: a file is either its old content or its new one, never
half of each, and only its owner can read it.
"""

from __future__ import annotations

from pathlib import Path

# The platform's crash-safe private write (a temporary .NAME.*.tmp, fsync, rename, fsync of the folder), under the
# camera's names; the camera makes its folders with private_dir first.
from temoin.private_files import fsync_dir, write_private as atomic_write  # noqa: F401 - re-exported for the camera's modules

PRIVATE = 0o600
PRIVATE_DIR = 0o700


def private_dir(folder: Path) -> Path:
    folder.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    return folder


def remove_stale_tmp(folder: Path) -> None:
    """Temporary files left by a crash mid-write are never part of anything: remove them."""
    for tmp in folder.glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def read_private(path: Path) -> bytes:
    """Read a secret file, refusing one that others could read (a key copied around carelessly)."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise PermissionError(f"{path} is readable by others (mode {mode:o}): chmod 600 it")
    return path.read_bytes()
