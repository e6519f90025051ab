"""What a recipient pins: a platform key file, a fingerprint, or a trust store (a folder of trusted keys).

A trust store holds PEM files (one or more public keys each, e.g. the service's /.well-known/temoin/keys.pem)
and JSON files (the service's /.well-known/temoin/keys.json: every key it has used, with its validity). Its
default place is $XDG_CONFIG_HOME/temoin/trusted-keys/ (~/.config/temoin/trusted-keys/), or TEMOIN_TRUST_STORE.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import orjson

from temoin import errors
from temoin.evidence.keys import KeySet, PlatformKey, raw_of_pem

_PEM = re.compile(rb"-----BEGIN PUBLIC KEY-----.+?-----END PUBLIC KEY-----", re.S)
_HEX = re.compile(r"^[0-9a-f]{64}$")


class TrustError(errors.InvalidInput, ValueError):
    """A key file, fingerprint or trust store cannot be used; the message names it and says why."""


def default_trust_store() -> Path:
    env = os.environ.get("TEMOIN_TRUST_STORE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "temoin" / "trusted-keys"


def load_key_file(path: Path) -> KeySet:
    """The keys of a PEM file (one or more public keys) or of a Témoin keys JSON file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TrustError(f"cannot read the key file {path}: {exc.strerror}") from None
    if data.lstrip().startswith(b"{"):
        try:
            return KeySet.from_json(orjson.loads(data), str(path))
        except (orjson.JSONDecodeError, ValueError) as exc:
            raise TrustError(f"{path} is not a Témoin key list: {exc}") from None
    blocks = _PEM.findall(data)
    if not blocks:
        raise TrustError(f'{path} holds no public key (PEM "BEGIN PUBLIC KEY" or the service\'s keys.json expected)')
    keys = []
    for block in blocks:
        try:
            keys.append(PlatformKey(raw_of_pem(block)))
        except ValueError as exc:
            raise TrustError(f"{path}: not an Ed25519 public key ({exc})") from None
    return KeySet(tuple(keys), (str(path),))


def load_trust_store(folder: Path, *, required: bool) -> KeySet:
    """Every key in the folder's .pem and .json files; nothing when the folder does not exist and is optional."""
    if not folder.is_dir():
        if required:
            raise TrustError(f"the trust store {folder} is not a folder")
        return KeySet()
    keys = KeySet()
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in (".pem", ".json", ".pub"):
            keys = keys.merged(load_key_file(path), str(path))
    return keys


def parse_fingerprint(text: str) -> str:
    """A full SHA-256 fingerprint (64 hex digits; spaces and colons allowed)."""
    clean = re.sub(r"[\s:]", "", text).lower()
    if not _HEX.match(clean):
        raise TrustError(
            f"--fingerprint takes the full SHA-256 fingerprint of the platform key, 64 hex digits "
            f"(got {len(clean)} characters): a shorter one could be matched by a key made for it"
        )
    return clean
