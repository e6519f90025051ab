"""The pre-event buffer's bytes on the camera's storage: a preallocated file written in place as a ring, sealed.

A body-worn camera keeps its pre-event loop in its flash, not in RAM: 120 s at 4 Mbit/s is 60 MB, as much as the
rest of the agent. The ring is one file, preallocated once to the buffer's bound (so standby never runs out of
room nor grows the store), written round and round: each segment lands after the previous one and overwrites
the oldest. What is kept in memory is only where each segment lies.

Protection, at least what standby footage had in memory (never readable once the camera is off, never reaching
a recording unnoticed if altered):

- the file has no name: opened `O_TMPFILE` in the store's private folder (or created 0600 and unlinked at once),
  so no other process finds it, and the system frees it when the agent's process ends, however it ends;
- each segment is sealed with AES-256-GCM under a key that lives in this process only and is never written: once
  the process is gone (power cut, crash) what the flash holds cannot be read, as RAM would have lost it;
- the key is replaced whenever the buffer is emptied (a recording took it, a wearer changed, the clock jumped):
  what lay in the ring before cannot be opened any more, even by this process;
- the nonce is the segment's sequence number under that key (never reused), so a segment swapped with another,
  moved or altered in the file fails to open, and is reported rather than handed over.

Nothing is fsynced: standby footage is not meant to survive a power cut (it never did in RAM); a recording that
starts copies it into the device store, which is crash-safe.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from temoin.errors import Fault

TAG_BYTES = 16  # AES-GCM's tag, added to each sealed segment
SLACK_BYTES = 64 * 1024  # room beyond the bound for the tags (4,096 segments' worth)


class RingDamaged(Fault):
    """A segment read back from the ring does not open: the file was altered or the flash failed."""


def ring_capacity(bound_bytes: int) -> int:
    """The file's size for a buffer that holds at most `bound_bytes` of segments."""
    return bound_bytes + SLACK_BYTES


def _anonymous_file(folder: Path) -> int:
    """A file descriptor on a new, private file in `folder` that has no name (gone with the process)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0)
    tmpfile = getattr(os, "O_TMPFILE", 0)
    if tmpfile:
        try:
            return os.open(folder, flags | tmpfile, 0o600)
        except OSError:  # a file system without O_TMPFILE: a named file, unlinked at once
            pass
    path = folder / f".pre-event-{os.getpid()}-{os.urandom(6).hex()}.ring"
    fd = os.open(path, flags | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    path.unlink()
    return fd


class SealedRing:
    """A preallocated file of `capacity` bytes, written as a ring of sealed segments.

    `write` seals and places a segment after the last one, wrapping at the end of the file; the caller (the
    buffer) decides what it holds and forgets the oldest segments first, so that a write never lands on a
    segment still held (`free_after`). `read` opens one back. `rekey` forgets every segment written so far."""

    def __init__(self, folder: Path, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("a ring needs a positive capacity")
        self.capacity = capacity
        self._fd = _anonymous_file(folder)
        self._close = weakref.finalize(self, os.close, self._fd)
        try:
            os.posix_fallocate(self._fd, 0, capacity)  # the room is taken now, not while recording
        except (AttributeError, OSError):  # no fallocate here: the file grows on its first turn
            os.ftruncate(self._fd, capacity)
        self.head = 0  # where the next segment goes
        self._aead = AESGCM(AESGCM.generate_key(bit_length=256))
        self._seq = 0

    @staticmethod
    def sealed_size(size: int) -> int:
        return size + TAG_BYTES

    def rekey(self) -> None:
        """A new key: every segment written before can no longer be opened (the buffer was emptied)."""
        self._aead = AESGCM(AESGCM.generate_key(bit_length=256))
        self._seq = 0

    def write(self, data: bytes) -> tuple[AESGCM, int, int]:
        """Seal `data` and write it at the head; returns (the key it was sealed with, its sequence number, its
        offset), which `read` needs to open it."""
        seq, offset = self._seq, self.head
        self._seq += 1
        sealed = self._aead.encrypt(_nonce(seq), data, None)
        self._pwrite(sealed, offset)
        self.head = (offset + len(sealed)) % self.capacity
        return self._aead, seq, offset

    def read(self, aead: AESGCM, seq: int, offset: int, size: int) -> bytes:
        """The plaintext of the segment written at `offset` as sequence `seq` under `aead`."""
        sealed = self._pread(self.sealed_size(size), offset)
        try:
            return aead.decrypt(_nonce(seq), sealed, None)
        except InvalidTag:
            raise RingDamaged(
                f"a pre-event segment ({size} bytes) does not open from the camera's buffer file: the file was "
                "altered or the storage is failing; the recording goes on without it (have the camera checked)"
            ) from None

    def close(self) -> None:
        self._close()

    def _pwrite(self, data: bytes, offset: int) -> None:
        first = min(len(data), self.capacity - offset)
        view = memoryview(data)
        _pwrite_all(self._fd, view[:first], offset)
        if first < len(data):  # wraps round to the start of the file
            _pwrite_all(self._fd, view[first:], 0)

    def _pread(self, size: int, offset: int) -> bytes:
        first = min(size, self.capacity - offset)
        data = _pread_all(self._fd, first, offset)
        if first < size:
            data += _pread_all(self._fd, size - first, 0)
        return data


def _nonce(seq: int) -> bytes:
    return seq.to_bytes(12, "big")


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        n = os.pwrite(fd, data, offset)
        data, offset = data[n:], offset + n


def _pread_all(fd: int, size: int, offset: int) -> bytes:
    parts = []
    while size:
        part = os.pread(fd, size, offset)
        if not part:
            raise RingDamaged("the camera's buffer file is shorter than written: the storage is failing")
        parts.append(part)
        size, offset = size - len(part), offset + len(part)
    return b"".join(parts)
