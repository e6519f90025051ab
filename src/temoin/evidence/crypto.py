"""Encryption at rest: one AES-256-GCM data key per recording, wrapped by the master key.

A blob is a header (magic, random salt) followed by records. Each record is one AES-256-GCM
message of at most RECORD_BYTES plaintext, prefixed by its ciphertext length. The blob key is
derived from the recording's data key and the blob's salt (HKDF), so a segment uploaded twice
never reuses a nonce; the record index is the nonce, so records cannot be reordered.

Records make uploads resumable at any byte while never writing plaintext to disk: what a
camera sends is sealed as it arrives, and a record cut by a crash is simply dropped.
"""

from __future__ import annotations

import os
import struct
import sys
from collections.abc import Callable, Iterator
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from temoin import errors

MAGIC = b"TMNB1\x00"
SALT_BYTES = 16
HEADER_BYTES = len(MAGIC) + SALT_BYTES
RECORD_BYTES = 1024 * 1024
TAG_BYTES = 16
_LEN = struct.Struct(">I")
PREFIX_BYTES = _LEN.size  # a sealed record's length prefix


class IntegrityError(errors.Fault):
    """Stored bytes do not decrypt: altered, truncated, or sealed with another key."""


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def wrap_key(master_key: bytes, data_key: bytes, recording_id: str) -> bytes:
    # The recording id is authenticated: a wrapped key moved to another recording fails to open.
    nonce = os.urandom(12)
    return nonce + AESGCM(master_key).encrypt(nonce, data_key, b"temoin-data-key\x00" + recording_id.encode())


def unwrap_key(master_key: bytes, wrapped: bytes, recording_id: str) -> bytes:
    try:
        return AESGCM(master_key).decrypt(wrapped[:12], wrapped[12:], b"temoin-data-key\x00" + recording_id.encode())
    except InvalidTag:
        raise IntegrityError(f"the data key of {recording_id} does not open with this master key") from None


def _blob_cipher(data_key: bytes, header: bytes) -> AESGCM:
    salt = header[len(MAGIC) : HEADER_BYTES]
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"temoin-blob-v1").derive(data_key)
    return AESGCM(key)


def _nonce(index: int) -> bytes:
    return b"\x00\x00\x00\x00" + index.to_bytes(8, "big")


def new_header() -> bytes:
    return MAGIC + os.urandom(SALT_BYTES)


class Sealer:
    """Seals plaintext into records for one blob; `index` continues where a resumed blob stopped."""

    def __init__(self, data_key: bytes, header: bytes, next_index: int = 0) -> None:
        self._aead = _blob_cipher(data_key, header)
        self.header = header
        self.index = next_index

    def at(self, index: int) -> Sealer:
        """A sealer of the same blob (same derived cipher, no key derivation) that continues at record `index`."""
        other = Sealer.__new__(Sealer)
        other._aead, other.header, other.index = self._aead, self.header, index
        return other

    def seal_record(self, plaintext: bytes | memoryview) -> tuple[bytes, bytes]:
        """One record (at most RECORD_BYTES): its length prefix and its ciphertext, kept apart so
        that the caller writes them without concatenating a MiB."""
        if len(plaintext) > RECORD_BYTES:
            raise ValueError(f"a record holds at most {RECORD_BYTES} bytes")
        sealed = self._aead.encrypt(_nonce(self.index), plaintext, self.header)
        self.index += 1
        return _LEN.pack(len(sealed)), sealed

    def seal_record_into(self, plaintext: bytes | memoryview, out: bytearray) -> tuple[bytes, memoryview]:
        """`seal_record`, the ciphertext written into `out` (RECORD_BYTES + TAG_BYTES long, reused record after
        record) instead of a new MiB each time: no allocation, no page faults, no heap growth per record."""
        if len(plaintext) > RECORD_BYTES:
            raise ValueError(f"a record holds at most {RECORD_BYTES} bytes")
        sealed = memoryview(out)[: len(plaintext) + TAG_BYTES]
        self._aead.encrypt_into(_nonce(self.index), plaintext, self.header, sealed)
        self.index += 1
        return _LEN.pack(len(sealed)), sealed

    def seal(self, plaintext: bytes) -> bytes:
        """Seal any length as consecutive records (small data; the vault's upload path uses seal_record)."""
        view = memoryview(plaintext)
        return b"".join(
            part
            for start in range(0, len(view), RECORD_BYTES)
            for part in self.seal_record(view[start : start + RECORD_BYTES])
        )


def scan_records(fh: BinaryIO) -> tuple[int, int, int]:
    """Walk a blob's record lengths without decrypting.

    Returns (complete records, plaintext bytes in them, file offset where they end). A record cut
    short (a crash mid-write) is not counted; the caller truncates the file there.
    """
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    if size < HEADER_BYTES:
        return 0, 0, 0
    pos, count, plain = HEADER_BYTES, 0, 0
    while pos + _LEN.size <= size:
        fh.seek(pos)
        (length,) = _LEN.unpack(fh.read(_LEN.size))
        if length < TAG_BYTES or length > RECORD_BYTES + TAG_BYTES or pos + _LEN.size + length > size:
            break
        pos += _LEN.size + length
        count += 1
        plain += length - TAG_BYTES
    return count, plain, pos


def open_records(fh: BinaryIO, data_key: bytes) -> Iterator[bytes]:
    """Decrypt a blob record by record; raises IntegrityError naming the first bad record."""
    return open_range(fh, data_key, 0, sys.maxsize)  # a whole record is yielded as is, not copied


def open_records_into(fh: BinaryIO, data_key: bytes, buffer: Callable[[], bytearray]) -> Iterator[memoryview]:
    """`open_records` without allocating: each record is read into one reused buffer and decrypted into a
    buffer from `buffer()` (RECORD_BYTES long at least), yielded as a view of it. The caller owns that buffer
    from then on (hands it back to its pool when done), so views may be queued to other threads."""
    fh.seek(0)
    header = fh.read(HEADER_BYTES)
    if len(header) != HEADER_BYTES or not header.startswith(MAGIC):
        raise IntegrityError("not a Témoin blob (bad header)")
    aead = _blob_cipher(data_key, header)
    sealed_buf = bytearray(RECORD_BYTES + TAG_BYTES)
    readinto: Callable[[memoryview], int | None]
    readinto = fh.readinto  # type: ignore[attr-defined]  # BinaryIO omits it; the stores' buffered files have it
    index, offset = 0, HEADER_BYTES
    while raw_len := fh.read(_LEN.size):
        if len(raw_len) != _LEN.size:
            raise IntegrityError(f"record {index} at byte {offset}: truncated length")
        (length,) = _LEN.unpack(raw_len)
        if length < TAG_BYTES or length > RECORD_BYTES + TAG_BYTES:
            raise IntegrityError(f"record {index} at byte {offset}: impossible length {length}")
        sealed = memoryview(sealed_buf)[:length]
        got = 0
        while got < length and (n := readinto(sealed[got:])):
            got += n
        if got != length:
            raise IntegrityError(f"record {index} at byte {offset}: truncated ({got} of {length} bytes)")
        out = buffer()
        plain = memoryview(out)[: length - TAG_BYTES]
        try:
            aead.decrypt_into(_nonce(index), sealed, header, plain)
        except InvalidTag:
            raise IntegrityError(f"record {index} at byte {offset}: authentication failed (altered)") from None
        yield plain
        index += 1
        offset += _LEN.size + length


def open_range(fh: BinaryIO, data_key: bytes, start: int, end: int) -> Iterator[bytes]:
    """The plaintext bytes [start, end) of a blob: records before `start` are stepped over by their length
    prefix, not decrypted (each record has its own nonce), so a seek costs no decryption. Raises
    IntegrityError like `open_records`."""
    fh.seek(0)
    header = fh.read(HEADER_BYTES)
    if len(header) != HEADER_BYTES or not header.startswith(MAGIC):
        raise IntegrityError("not a Témoin blob (bad header)")
    aead = _blob_cipher(data_key, header)
    index, offset, plain = 0, HEADER_BYTES, 0  # plain: plaintext bytes before this record
    while plain < end:
        raw_len = fh.read(_LEN.size)
        if not raw_len:
            return
        if len(raw_len) != _LEN.size:
            raise IntegrityError(f"record {index} at byte {offset}: truncated length")
        (length,) = _LEN.unpack(raw_len)
        size = length - TAG_BYTES
        if plain + size <= start:
            fh.seek(length, os.SEEK_CUR)
        else:
            sealed = fh.read(length)
            if len(sealed) != length:
                raise IntegrityError(f"record {index} at byte {offset}: truncated ({len(sealed)} of {length} bytes)")
            try:
                data = aead.decrypt(_nonce(index), sealed, header)
            except InvalidTag:
                raise IntegrityError(f"record {index} at byte {offset}: authentication failed (altered)") from None
            yield data[max(0, start - plain) : end - plain]
        index += 1
        offset += _LEN.size + length
        plain += size
