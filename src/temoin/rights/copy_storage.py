"""Where an access copy's files live: a private working folder for the clear media while a step runs, and the
copy's sealed files in the platform's blob store (vault.artefact_blobs: any node serves them)."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.orm import Session

from temoin import errors
from temoin.evidence import crypto
from temoin.rights.models import RedactedCopy
from temoin.vault import artefact_blobs, catalogue, integrity
from temoin.vault.context import VaultContext
from temoin.vault.models import Recording
from temoin.vault.storage import BlobMissing


class CopyDeleted(errors.Gone):
    """The copy's key or files are gone (deleted with its recording)."""


def copies_root(p: VaultContext) -> Path:
    return p.settings.home / "rights"


@contextmanager
def private_workdir(p: VaultContext, copy_id: int) -> Iterator[Path]:
    """A folder only this process's user can read, under TEMOIN_HOME (never /tmp), removed afterwards. What an
    attempt killed midway left for the same copy (clear media) is removed first."""
    base = p.settings.home / "tmp"
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in base.glob(f"rights-copy-{copy_id}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    work = base / f"rights-copy-{copy_id}-{uuid.uuid4().hex}"
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
    for seg in (s.index for s in integrity.stored_segments(rec)):
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


def data_key_of(p: VaultContext, copy: RedactedCopy) -> bytes:
    if copy.data_key is None:  # erased with its recording: nothing of the copy can be read any more
        raise CopyDeleted(f"copy {copy.id} cannot be read any more ({copy.error or 'its key was erased'})")
    return crypto.unwrap_key(p.keyring.master_key, copy.data_key, f"rights-copy-{copy.id}")


def folder_of(copy: RedactedCopy) -> str:
    """The copy's name (vault.artefact_blobs): its files are sealed in the blob store under it (a copy made before
    has them in that folder under TEMOIN_HOME)."""
    if copy.folder is None:  # set when the copy is created; only a row written by hand lacks it
        raise CopyDeleted(f"copy {copy.id} has no folder: it holds nothing; start a new copy")
    return f"rights/{copy.folder}"


def seal_bytes(p: VaultContext, folder: str, file: str, data_key: bytes, data: bytes) -> tuple[str, int]:
    return artefact_blobs.write_bytes(p.store, artefact_blobs.key(folder, file), data_key, data)


def seal_file(p: VaultContext, src: Path, folder: str, file: str, data_key: bytes) -> tuple[str, int]:
    return artefact_blobs.write_file(p.store, artefact_blobs.key(folder, file), data_key, src)


def has_file(p: VaultContext, folder: str, file: str) -> bool:
    return artefact_blobs.exists(p.store, artefact_blobs.key(folder, file), p.settings.home / folder / file)


def open_sealed(
    p: VaultContext, folder: str, file: str, data_key: bytes, byte_range: tuple[int, int] | None = None
) -> Iterator[bytes]:
    """A sealed file of the copy, decrypted as it is read: from the store, or from TEMOIN_HOME if made before."""
    try:
        return artefact_blobs.read(
            p.store, artefact_blobs.key(folder, file), data_key, byte_range, legacy=p.settings.home / folder / file
        )
    except BlobMissing:
        raise CopyDeleted(f"the file {file} of copy {folder} is missing from the store: start a new copy") from None
