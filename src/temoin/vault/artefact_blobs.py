"""What is made from recordings (extraction packages, redacted copies, live backups), kept in the platform's blob
store beside the recordings, so that any node can serve what another made.

Each artefact has a *name* (what its row stores: `extractions/<tenant>/<id>.zip`, `rights/<tenant>/copy-<id>`,
`live/<tenant>/<session>.ts.sealed`), the path it had under TEMOIN_HOME before artefacts went to the store. In the
store it is the folder `_artefacts/<name>/` holding its files: one deletion by prefix removes it, finished or
staged. A tenant's slug starts with a letter or digit, so `_artefacts` can never be mistaken for a tenant's
recordings (the stores' `prefixes()` skip it).

Every file is sealed with the vault's record format (`evidence.crypto`: AES-256-GCM records under a data key
wrapped by the master key, the key kept in the artefact's row): the store never sees plaintext. A file is staged
while it is written and promoted whole, so a reader never sees half of one.

Artefacts made before this (files under TEMOIN_HOME) are still read from there, and removed from there too.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from temoin.evidence import crypto
from temoin.vault.storage import BlobMissing, BlobStore, StorageError

log = logging.getLogger("temoin.vault")

ROOT = "_artefacts"
_FLUSH = crypto.RECORD_BYTES  # plaintext kept before it is sealed as one record: the writer's memory


def prefix(name: str) -> str:
    return f"{ROOT}/{name.strip('/')}"


def key(name: str, file: str) -> str:
    return f"{prefix(name)}/{file}"


class SealedWriter:
    """A write-only file sealing what it is given into a staged blob, promoted by `close()` only (dropped without
    it, nothing is promoted: the orphan sweep finds what was staged). Hashes the plaintext (`sha256`, `size`).
    Memory: one record of plaintext, and what the store buffers (a chunk on S3)."""

    def __init__(self, store: BlobStore, blob_key: str, data_key: bytes, *, hashed: bool = True) -> None:
        self.store, self.key = store, blob_key
        store.discard_staged(blob_key)  # what an attempt killed before left: this one starts afresh
        header = crypto.new_header()
        self._sealer = crypto.Sealer(data_key, header)
        store.append_staged(blob_key, header)  # staged from the start: what a killed writer leaves can be found
        self._pending = bytearray()
        self._sealed = bytearray(crypto.RECORD_BYTES + crypto.TAG_BYTES)
        self.sha256 = hashlib.sha256() if hashed else None  # None: the caller hashes what it writes itself
        self.size = 0
        self._done = False

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        written = len(view)
        if self.sha256 is not None:
            self.sha256.update(view)
        self.size += written
        while view:
            room = _FLUSH - len(self._pending)
            self._pending += view[:room]
            view = view[room:]
            if len(self._pending) >= _FLUSH:
                self._flush()
        return written

    def _flush(self) -> None:
        if self._pending:
            with memoryview(self._pending) as plain:  # released before the buffer is cleared
                # Into one reused buffer: the stores copy or write it before append_staged returns.
                length, sealed = self._sealer.seal_record_into(plain, self._sealed)
                self.store.append_staged(self.key, None, length, sealed)
            self._pending.clear()

    def flush(self) -> None:
        """Records are sealed whole: a partial one waits until it fills, the file is closed or `checkpoint()`."""

    def checkpoint(self) -> None:
        """Seal what is pending as a (short) record and have the store keep everything sealed so far while the
        writing goes on: what a killed process leaves staged then holds all of it, in authenticated records
        (`salvage`). Called every few seconds by a live backup."""
        if self._done:
            return
        self._flush()
        self.store.checkpoint_staged(self.key)

    def close(self) -> None:
        """Seal the rest and promote the blob: from here it is readable, whole, by every node."""
        if self._done:
            return
        self._done = True
        self._flush()
        self.store.sync_staged(self.key)
        self.store.promote(self.key, synced=True)

    def abort(self) -> None:
        """Drop what was staged: nothing of this file is kept."""
        if not self._done:
            self._done = True
            with contextlib.suppress(Exception):  # the store's own failure may be why we abort
                self.store.discard_staged(self.key)


def salvage(
    store: BlobStore, blob_key: str, data_key: bytes, sink: Callable[[bytes], None] | None = None
) -> tuple[str, int] | None:
    """A sealed file its writer left staged (killed mid-way): cut after its last complete record that authenticates,
    and promoted, so it reads like any other. Found promoted already (killed after the promotion), it is only read.
    Returns (plaintext SHA-256, size), size 0 when nothing of it authenticates (then nothing is kept), or None when
    the store holds nothing of it. `sink` is handed the plaintext as it is read."""
    staged = not store.exists(blob_key)
    try:
        fh = store.open_staged(blob_key) if staged else store.open(blob_key)
    except (BlobMissing, FileNotFoundError):
        return None
    digest, size, end = hashlib.sha256(), 0, crypto.HEADER_BYTES
    with fh:
        try:
            for plain in crypto.open_records(fh, data_key):
                digest.update(plain)
                size += len(plain)
                end += crypto.PREFIX_BYTES + len(plain) + crypto.TAG_BYTES
                if sink is not None:
                    sink(plain)
        except crypto.IntegrityError as exc:  # torn by the kill (or altered): what follows is not kept
            log.info("%s: kept up to byte %d (%s)", blob_key, end, exc)
    if staged:
        if size == 0:
            store.discard_staged(blob_key)
        else:
            if store.staged_size(blob_key) > end:
                store.truncate_staged(blob_key, end)
            store.promote(blob_key)
    return digest.hexdigest(), size


def write_bytes(store: BlobStore, blob_key: str, data_key: bytes, data: bytes) -> tuple[str, int]:
    """Seal `data` as the blob `blob_key`; (plaintext SHA-256, size)."""
    return _write(store, blob_key, data_key, [data])


def write_file(store: BlobStore, blob_key: str, data_key: bytes, src: Path) -> tuple[str, int]:
    """Seal the file `src` as the blob `blob_key`, record by record; (plaintext SHA-256, size)."""
    with src.open("rb") as fh:
        return _write(store, blob_key, data_key, iter(lambda: fh.read(_FLUSH), b""))


def _write(store: BlobStore, blob_key: str, data_key: bytes, chunks: Iterable[bytes]) -> tuple[str, int]:
    out = SealedWriter(store, blob_key, data_key)
    try:
        for chunk in chunks:
            out.write(chunk)
        out.close()
    except BaseException:
        out.abort()
        raise
    assert out.sha256 is not None, "hashed"
    return out.sha256.hexdigest(), out.size


def open_sealed(store: BlobStore, blob_key: str, legacy: Path | None = None) -> Any:
    """The sealed blob, or the sealed file `legacy` it was before artefacts went to the store. BlobMissing if
    neither is there."""
    try:
        return store.open(blob_key)
    except BlobMissing:
        if legacy is not None and legacy.is_file():
            return legacy.open("rb")
        raise


def read(
    store: BlobStore,
    blob_key: str,
    data_key: bytes,
    byte_range: tuple[int, int] | None = None,
    legacy: Path | None = None,
) -> Iterator[bytes]:
    """The plaintext of a sealed blob (or bytes [start, end) of it), decrypted record by record as it is read.
    Opened at once (a missing blob is told before the first byte); read lazily."""
    fh = open_sealed(store, blob_key, legacy)
    return _records(fh, data_key, byte_range)


def _records(fh: Any, data_key: bytes, byte_range: tuple[int, int] | None) -> Iterator[bytes]:
    with fh:
        yield from crypto.open_range(fh, data_key, *byte_range) if byte_range else crypto.open_records(fh, data_key)


def exists(store: BlobStore, blob_key: str, legacy: Path | None = None) -> bool:
    return store.exists(blob_key) or (legacy is not None and legacy.exists())


def remove(store: BlobStore, home: Path, names: Iterable[str]) -> int:
    """Remove these artefacts from the store and, for those made before, from under `home`. Returns how many were
    found (in either place)."""
    base, removed = home.resolve(), 0
    for name in names:
        found = False
        try:
            found = store.delete_prefixes([prefix(name)]) > 0
        except (StorageError, OSError) as exc:
            # Its key is gone already (cleared in the committed transaction): what stays is unreadable, and the
            # orphan sweep (vault.derived.remove_orphans) removes it once the store answers again.
            log.warning("artefact %s left in the blob store until the next orphan sweep: %s", name, exc)
        path = (base / name).resolve()
        if base in path.parents:  # never outside TEMOIN_HOME, whatever a row says
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
                found = True
            elif path.exists():
                path.unlink(missing_ok=True)
                found = True
        removed += found
    return removed


def names_older_than(store: BlobStore, home: Path, top: str, legacy_glob: str, older_than: float) -> set[str]:
    """The artefacts named `top/<tenant>/<one>`, in the store (finished or staged) or under `home` (made before:
    those `legacy_glob` matches under home/top), whose newest file is older than `older_than` (a time.time())."""
    depth = 2
    newest: dict[str, float] = {}
    base = f"{ROOT}/{top}/"
    for blob_key, mtime in store.listing(base):
        parts = blob_key[len(ROOT) + 1 :].split("/")
        if len(parts) > depth + 1:
            name = "/".join(parts[: depth + 1])
            newest[name] = max(newest.get(name, 0.0), mtime)
    folder = home / top
    if folder.is_dir():
        for path in folder.glob(legacy_glob):
            with contextlib.suppress(FileNotFoundError):
                name = str(path.relative_to(home))
                newest[name] = max(newest.get(name, 0.0), os.stat(path).st_mtime)
    return {name for name, mtime in newest.items() if mtime < older_than}
