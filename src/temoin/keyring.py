"""The platform's keys: the master key that wraps data keys, and the signing key of receipts,
journal checkpoints and extraction packages.

The master key is read from TEMOIN_MASTER_KEY (base64, 32 bytes) or from a file
(TEMOIN_MASTER_KEY_FILE, default TEMOIN_HOME/keys/master.key). It is never stored in the database.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from temoin.evidence.canonical import b64e
from temoin.evidence.signing import load_private_key_pem, private_key_pem, public_key_bytes
from temoin.settings import Settings


class KeyError_(RuntimeError):
    """A key is missing or malformed; the message says where it was looked for."""


def _write_secret(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


@dataclass(frozen=True)
class Keyring:
    master_key: bytes
    signing_key: Ed25519PrivateKey

    @property
    def master_key_id(self) -> str:
        # Identifies which master key wrapped a data key, without revealing it.
        return hashlib.sha256(b"temoin-master-key-id" + self.master_key).hexdigest()[:16]

    @property
    def public_key(self) -> bytes:
        return public_key_bytes(self.signing_key)

    @property
    def public_key_id(self) -> str:
        return hashlib.sha256(self.public_key).hexdigest()[:16]

    def sign(self, message: bytes) -> str:
        return b64e(self.signing_key.sign(message))

    def public_key_pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self.signing_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    @classmethod
    def load(cls, settings: Settings, create: bool = False) -> "Keyring":
        return cls(master_key=_master_key(settings, create), signing_key=_signing_key(settings, create))


def _master_key(settings: Settings, create: bool) -> bytes:
    if settings.master_key_env:
        try:
            key = base64.b64decode(settings.master_key_env, validate=True)
        except ValueError:
            raise KeyError_("TEMOIN_MASTER_KEY is not valid base64; it must encode 32 random bytes") from None
        if len(key) != 32:
            raise KeyError_("TEMOIN_MASTER_KEY must encode exactly 32 bytes (AES-256)")
        return key
    path = settings.master_key_file or settings.keys_dir / "master.key"
    if not path.exists():
        if not create:
            raise KeyError_(f"no master key at {path}: run `temoin init`, or set TEMOIN_MASTER_KEY / "
                            "TEMOIN_MASTER_KEY_FILE to the key this vault was created with")
        _write_secret(path, base64.b64encode(os.urandom(32)) + b"\n")
    key = base64.b64decode(path.read_bytes().strip())
    if len(key) != 32:
        raise KeyError_(f"{path} must hold 32 bytes, base64-encoded")
    return key


def _signing_key(settings: Settings, create: bool) -> Ed25519PrivateKey:
    path = settings.keys_dir / "platform-signing.pem"
    if not path.exists():
        if not create:
            raise KeyError_(f"no platform signing key at {path}: run `temoin init`")
        _write_secret(path, private_key_pem(Ed25519PrivateKey.generate()))
    return load_private_key_pem(path.read_bytes())
