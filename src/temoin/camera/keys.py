"""The camera's keys, each in its own 0600 file:

- `device.pem`: the Ed25519 identity key, enrolled with the vault; signs manifests and checkpoints;
- `storage.key`: the 256-bit device storage key that wraps each recording's data key;
- `platform.pub`: the platform's public key, pinned at enrolment; only receipts it signs (or a key it
  endorsed at a rotation: `platform-keys.json`, see `platform_keys.py`) let the camera delete a recording.

On real hardware the first two belong in a secure element or TPM; the files are the stand-in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from temoin.camera.files import atomic_write, private_dir, read_private
from temoin.camera.platform_keys import forget_followed
from temoin.evidence.canonical import b64d, b64e
from temoin.evidence.crypto import new_data_key
from temoin.evidence.signing import load_private_key_pem, private_key_pem, public_key_bytes

SIGNING_KEY_FILE = "device.pem"
STORAGE_KEY_FILE = "storage.key"
PLATFORM_KEY_FILE = "platform.pub"


@dataclass(frozen=True)
class DeviceKeys:
    signing_key: Ed25519PrivateKey
    storage_key: bytes

    @property
    def public_key(self) -> bytes:
        return public_key_bytes(self.signing_key)

    @classmethod
    def load_or_create(cls, folder: Path) -> DeviceKeys:
        private_dir(folder)
        signing, storage = folder / SIGNING_KEY_FILE, folder / STORAGE_KEY_FILE
        if not signing.exists():
            atomic_write(signing, private_key_pem(Ed25519PrivateKey.generate()), exclusive=True)
        if not storage.exists():
            atomic_write(storage, new_data_key(), exclusive=True)
        key = read_private(storage)
        if len(key) != 32:
            raise ValueError(f"{storage} is not a 256-bit key")
        return cls(load_private_key_pem(read_private(signing)), key)


def pin_platform_key(folder: Path, public_key: bytes) -> None:
    if len(public_key) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    atomic_write(private_dir(folder) / PLATFORM_KEY_FILE, b64e(public_key).encode())
    forget_followed(folder)  # rotations followed from a former pin are not this one's


def pinned_platform_key(folder: Path) -> bytes | None:
    path = folder / PLATFORM_KEY_FILE
    return b64d(path.read_text().strip()) if path.exists() else None
