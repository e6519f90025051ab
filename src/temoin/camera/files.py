"""Crash-safe files on the camera: atomic writes (tmp, fsync, rename, fsync of the folder), 0600.

A camera can lose power at any instant: a file is either its old content or its new one, never
half of each, and only its owner can read it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

PRIVATE = 0o600
PRIVATE_DIR = 0o700


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def private_dir(folder: Path) -> Path:
    folder.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    return folder


def atomic_write(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Write `data` to `path` (mode 0600) so that a crash leaves either nothing new or all of it.

    `exclusive` refuses to replace an existing file (keys: never overwrite one by accident).
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            os.link(tmp, path)  # fails if `path` exists
            tmp.unlink()
        else:
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


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
