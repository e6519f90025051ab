"""Where sealed blobs live. One interface, two implementations: the local filesystem (the default) and an
S3-compatible object store (`temoin.vault.s3store`, chosen by TEMOIN_BLOB_STORE_URL).

A blob is first *staged* (appended to as an upload arrives, resumable), then *promoted*: on the local disk fsync,
atomic rename into place, fsync of the folder. A reader never sees a half-written blob.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from temoin import errors
from temoin.evidence import crypto

# Linux sync_file_range(2): start writing a file's dirty pages back without waiting for them. An upload calls it
# after each record, so the disk works while the next bytes arrive and the fsync before the answer only waits
# for the tail. Elsewhere (or without libc) the fsync does all the work, as before.
_SYNC_FILE_RANGE_WRITE = 2


def _writeback_starter() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_sync_file_range = _writeback_starter()


def start_writeback(fd: int) -> None:
    """Ask the kernel to start writing `fd`'s dirty pages to disk now (not a durability point: fsync is)."""
    if _sync_file_range is not None:
        _sync_file_range(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)  # a failure only means the fsync does the work


_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class StorageError(errors.Fault, RuntimeError):
    pass


class StorageFull(errors.StorageFull, StorageError):
    """No space left for blobs (ENOSPC): the web layer answers 507, like a full database."""


class BlobMissing(StorageError):
    pass


def blob_key(tenant: str, recording_id: str, segment_index: int) -> str:
    """The storage name of a segment. Parts are checked: no name can climb out of the store."""
    for part in (tenant, recording_id):
        if not _PART.match(part):
            raise StorageError(f"unsafe name {part!r} in a blob key")
    return f"{tenant}/{recording_id}/{segment_index:05d}.seg"


class BlobStore(Protocol):
    """What the vault needs of a storage backend (LocalBlobStore, s3store.S3BlobStore)."""

    def staged_state(self, key: str, *, repair: bool = True) -> tuple[bytes | None, int, int]: ...
    def staged_size(self, key: str) -> int: ...
    def append_staged(self, key: str, header: bytes | None, *parts: bytes | memoryview) -> None: ...
    def sync_staged(self, key: str) -> bool: ...
    def checkpoint_staged(self, key: str) -> None: ...
    def close_staged(self, key: str) -> None: ...
    def open_staged(self, key: str) -> BinaryIO: ...
    def discard_staged(self, key: str) -> None: ...
    def staged_keys(self, prefix: str) -> list[str]: ...
    def truncate_staged(self, key: str, length: int) -> None: ...
    def promote(self, key: str, final_key: str | None = None, *, synced: bool = False) -> None: ...
    def exists(self, key: str) -> bool: ...
    def open(self, key: str) -> BinaryIO: ...
    def discard(self, key: str) -> None: ...
    def delete_prefixes(self, prefixes: list[str]) -> int: ...
    def prefixes(self) -> Iterator[str]: ...
    def listing(self, prefix: str) -> Iterator[tuple[str, float]]: ...


def _raise_storage(exc: OSError, what: str) -> None:
    if exc.errno == errno.ENOSPC:
        raise StorageFull(
            f"disk full while {what}: free space in the vault folder, then resume the upload; "
            "nothing partial was kept as evidence"
        ) from exc
    raise StorageError(f"storage failure while {what}: {exc.strerror}") from exc


class LocalBlobStore:
    """Blobs under <root>/blobs, uploads in progress under <root>/staging (same filesystem)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs"
        self.staging = root / "staging"
        self._handles: dict[str, BinaryIO] = {}
        # Resolved once (the vault's root may be reached through a link); keys are then checked by their text.
        self._bases = {self.blobs: self.blobs.resolve(), self.staging: self.staging.resolve()}

    def _path(self, base: Path, key: str) -> Path:
        """`key` under `base`. A key is relative, of plain names (no empty part, no `.` or `..`): checked on its
        text, with no resolve() per call (two system calls per path part). Links inside the store are not
        followed out of it by anything the platform writes: it makes none."""
        if not key or key[0] == "/" or "\0" in key or any(part in ("", ".", "..") for part in key.split("/")):
            raise StorageError(f"blob key {key!r} leaves the store")
        return self._bases[base] / key

    # Staging: resumable, append-only.

    def staged_state(self, key: str, *, repair: bool = True) -> tuple[bytes | None, int, int]:
        """(blob header, complete records, plaintext bytes) of a staged blob; cuts a torn record off.

        repair=False only reads: for status queries, which may run while an upload of the same blob
        is writing (a record being written looks torn, and must not be cut under the writer's feet).
        Only the upload itself, holding the blob's lock, repairs.
        """
        if repair:
            self._close_handle(key)
        path = self._path(self.staging, key)
        if not path.exists():
            return None, 0, 0
        with path.open("r+b" if repair else "rb") as fh:
            header = fh.read(crypto.HEADER_BYTES)
            if len(header) < crypto.HEADER_BYTES:
                if repair:
                    fh.truncate(0)
                return None, 0, 0
            count, plain, end = crypto.scan_records(fh)
            if repair and end != fh.seek(0, os.SEEK_END):
                fh.truncate(end)  # a record torn by a crash: the camera resends from `plain`
                os.fsync(fh.fileno())
        return header, count, plain

    def staged_size(self, key: str) -> int:
        try:
            return self._path(self.staging, key).stat().st_size
        except FileNotFoundError:
            return 0

    def append_staged(self, key: str, header: bytes | None, *parts: bytes | memoryview) -> None:
        fh = self._handles.get(key)
        start: int | None = None
        try:
            if fh is None:
                path = self._path(self.staging, key)
                try:
                    fh = path.open("ab", buffering=0)
                except FileNotFoundError:  # the recording's first segment: its folder is made once, not per piece
                    path.parent.mkdir(parents=True, exist_ok=True)
                    fh = path.open("ab", buffering=0)
                self._handles[key] = fh
            start = os.fstat(fh.fileno()).st_size
            for part in (header, *parts) if header is not None else parts:
                view = memoryview(part)
                while view:  # an unbuffered write may be short (a disk filling up): the rest, or the error
                    written = fh.write(view)
                    if not written:
                        raise OSError(errno.EIO, "a write to the staging folder made no progress")
                    view = view[written:]
            start_writeback(fh.fileno())
        except OSError as exc:
            if start is not None and fh is not None:  # all or nothing: no partial record before a retry's bytes
                with contextlib.suppress(OSError):
                    os.ftruncate(fh.fileno(), start)
            self._close_handle(key)
            _raise_storage(exc, "staging an upload")

    def sync_staged(self, key: str) -> bool:
        """Make what was appended durable before it is acknowledged to the camera. False: nothing was appended
        since the last sync (nothing done)."""
        fh = self._handles.pop(key, None)
        if fh is None:
            return False
        try:
            fh.flush()
            os.fsync(fh.fileno())
        except OSError as exc:
            _raise_storage(exc, "syncing an upload")
        finally:
            fh.close()
        return True

    def checkpoint_staged(self, key: str) -> None:
        """Make what was appended durable while the writer goes on (a live backup, every few seconds): each
        append already reached the file (a killed process loses none of it); this survives a power cut too."""
        fh = self._handles.get(key)
        if fh is not None:
            try:
                os.fdatasync(fh.fileno())
            except OSError as exc:
                _raise_storage(exc, "syncing a staged file")

    def close_staged(self, key: str) -> None:
        """Close an upload's handle without an fsync: the bytes stay in the page cache, being written back."""
        fh = self._handles.pop(key, None)
        if fh is not None:
            try:
                fh.close()
            except OSError as exc:
                _raise_storage(exc, "staging an upload")

    def open_staged(self, key: str) -> BinaryIO:
        return self._path(self.staging, key).open("rb")

    def discard_staged(self, key: str) -> None:
        self._close_handle(key)
        self._path(self.staging, key).unlink(missing_ok=True)

    def staged_keys(self, prefix: str) -> list[str]:
        """The keys staged under `tenant/recording` (uploads in progress or cut by a crash)."""
        folder = self._path(self.staging, prefix.rstrip("/"))
        if not folder.is_dir():
            return []
        return sorted(f"{prefix.rstrip('/')}/{part.name}" for part in folder.iterdir() if part.is_file())

    def truncate_staged(self, key: str, length: int) -> None:
        self._close_handle(key)
        path = self._path(self.staging, key)
        if path.exists():
            os.truncate(path, length)

    def promote(self, key: str, final_key: str | None = None, *, synced: bool = False) -> None:
        """Staged -> final (under `final_key` if given), atomically. Idempotent: a promote repeated after a
        crash does nothing. `synced`: the caller has just fsynced the staged file (sync_staged), no second fsync."""
        src, dst = self._path(self.staging, key), self._path(self.blobs, final_key or key)
        if not src.exists():
            if dst.exists():
                return
            raise BlobMissing(f"nothing staged for {key}")
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            if not synced:
                with src.open("rb") as fh:
                    os.fsync(fh.fileno())
            os.replace(src, dst)
            _fsync_dir(dst.parent)
        except OSError as exc:
            _raise_storage(exc, "storing a blob")

    # Final blobs: read-only once promoted.

    def exists(self, key: str) -> bool:
        return self._path(self.blobs, key).exists()

    def open(self, key: str) -> BinaryIO:
        try:
            return self._path(self.blobs, key).open("rb")
        except FileNotFoundError:
            raise BlobMissing(f"blob {key} is missing from the store") from None

    def discard(self, key: str) -> None:
        """Remove one final blob (an Axis object replaced by a newer version before it became evidence)."""
        self._path(self.blobs, key).unlink(missing_ok=True)

    def size(self, key: str) -> int:
        return self._path(self.blobs, key).stat().st_size

    def delete_prefix(self, prefix: str) -> int:
        return self.delete_prefixes([prefix])

    def delete_prefixes(self, prefixes: list[str]) -> int:
        """Remove every blob (and staged part) under each `tenant/recording`. Returns files removed.

        The parent folders are fsynced once for the whole batch, not once per recording."""
        removed, parents = 0, set()
        for prefix in prefixes:
            for base in (self.blobs, self.staging):
                folder = self._path(base, prefix.rstrip("/"))
                try:
                    removed += _remove_folder(folder)
                except FileNotFoundError:
                    continue
                parents.add(folder.parent)
        for parent in parents:
            _fsync_dir(parent)
        return removed

    def prefixes(self) -> Iterator[str]:
        """Every `tenant/recording` folder holding blobs (to find orphans), in no particular order."""
        try:
            tenants = list(os.scandir(self.blobs))
        except FileNotFoundError:
            return
        for tenant in tenants:
            # `_artefacts` (vault.artefact_blobs) is no tenant: a slug starts with a letter or digit.
            if tenant.is_dir(follow_symlinks=False) and not tenant.name.startswith("_"):
                with os.scandir(tenant.path) as recordings:
                    for rec in recordings:
                        if rec.is_dir(follow_symlinks=False):
                            yield f"{tenant.name}/{rec.name}"

    def listing(self, prefix: str) -> Iterator[tuple[str, float]]:
        """(key, modification time) of every blob and staged upload whose key starts with `prefix` (a folder,
        ending with "/"), in no particular order."""
        for base in (self.blobs, self.staging):
            folder = self._path(base, prefix.rstrip("/"))
            if folder.is_dir():
                for path in folder.rglob("*"):
                    with contextlib.suppress(FileNotFoundError):  # removed while listed
                        if path.is_file():
                            yield str(path.relative_to(self._bases[base])), path.stat().st_mtime

    def _close_handle(self, key: str) -> None:
        fh = self._handles.pop(key, None)
        if fh is not None:
            try:
                fh.close()
            except OSError:
                pass


def _remove_folder(folder: Path) -> int:
    """Remove a recording's folder (plain files, maybe a subfolder); returns the entries it held. Raises
    FileNotFoundError if there is none. Cheaper than shutil.rmtree for the usual flat folder."""
    with os.scandir(folder) as it:
        entries = list(it)
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)
    os.rmdir(folder)
    return len(entries)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
