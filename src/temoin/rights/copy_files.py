"""An access copy's files: the private folder its recording is decrypted into, and its sealed files (thumbnails,
tracks, the redacted video) under TEMOIN_HOME/rights, each encrypted with the copy's own key."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.orm import Session

from temoin import errors
from temoin.evidence import crypto
from temoin.live.backup import SealedFile
from temoin.rights.models import RedactedCopy
from temoin.vault import catalogue
from temoin.vault.context import VaultContext
from temoin.vault.models import Recording


class CopyDeleted(errors.Gone):
    """The copy's key or files are gone (deleted with its recording)."""


def copies_root(p: VaultContext) -> Path:
    return p.settings.home / "rights"


@contextmanager
def private_workdir(p: VaultContext) -> Iterator[Path]:
    """A folder only this process's user can read, under TEMOIN_HOME (never /tmp), removed afterwards."""
    base = p.settings.home / "tmp"
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    work = base / f"rights-{uuid.uuid4().hex}"
    work.mkdir(mode=0o700)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def decrypt_recording(p: VaultContext, db: Session, rec: Recording, work: Path) -> Path:
    """The recording's media as one MP4 in `work`: segments decrypted, then joined without re-encoding (the same
    bytes give the same frame numbers each time, so tracks found once stay valid for the redaction). Segments lost
    at the camera were never in the vault: the copy is made of the stored ones, back to back."""
    parts = []
    for seg in (s.index for s in catalogue.stored_segments(rec)):
        path = work / f"segment-{seg:05d}.mp4"
        with path.open("wb") as fh:
            for chunk in catalogue.read_segment(p, db, rec, seg):
                fh.write(chunk)
        parts.append(path)
    if len(parts) == 1:
        return parts[0]
    listing = work / "segments.txt"
    listing.write_text("".join(f"file '{part.name}'\n" for part in parts))
    out = work / "recording.mp4"
    done = subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            str(listing),
            "-c",
            "copy",
            "-map",
            "0",
            str(out),
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"joining the segments failed: {done.stderr.strip()[-500:]}")
    for part in parts:
        part.unlink()
    return out


def data_key(p: VaultContext, copy: RedactedCopy) -> bytes:
    if copy.data_key is None:  # erased with its recording: nothing of the copy can be read any more
        raise CopyDeleted(f"copy {copy.id} cannot be read any more ({copy.error or 'its key was erased'})")
    return crypto.unwrap_key(p.keyring.master_key, copy.data_key, f"rights-copy-{copy.id}")


def folder_of(p: VaultContext, copy: RedactedCopy) -> Path:
    if copy.folder is None:  # set when the copy is created; only a row written by hand lacks it
        raise CopyDeleted(f"copy {copy.id} has no folder: it holds nothing; start a new copy")
    return copies_root(p) / copy.folder


def seal_bytes(path: Path, data_key: bytes, data: bytes) -> tuple[str, int]:
    tmp = path.with_suffix(".part")
    tmp.unlink(missing_ok=True)
    sealed = SealedFile(tmp, data_key)
    sealed.write(data)
    sealed.close()
    os.replace(tmp, path)
    return sealed.sha256.hexdigest(), sealed.size


def seal_file(src: Path, path: Path, data_key: bytes) -> tuple[str, int]:
    tmp = path.with_suffix(".part")
    tmp.unlink(missing_ok=True)
    sealed = SealedFile(tmp, data_key)
    with src.open("rb") as fh:
        while chunk := fh.read(crypto.RECORD_BYTES):
            sealed.write(chunk)
    sealed.close()
    os.replace(tmp, path)
    return sealed.sha256.hexdigest(), sealed.size


def open_sealed(path: Path, data_key: bytes, byte_range: tuple[int, int] | None = None) -> Iterator[bytes]:
    with path.open("rb") as fh:
        yield from crypto.open_range(fh, data_key, *byte_range) if byte_range else crypto.open_records(fh, data_key)
