"""Platform public keys with their validity: what the platform publishes and what a verifier pins.

The same JSON serves three purposes: the keyring's history on the platform (keys/platform-keys.json), the
well-known document (GET /.well-known/temoin/keys.json), and a file of a recipient's trust store. A key is
known by its id (the first 16 hex digits of the SHA-256 of its raw 32 bytes) and its full fingerprint (all
64 digits): the fingerprint is what people compare.

A retired key keeps its public part and its validity, so what it signed verifies for ever; it signs nothing
any more. A key introduced by rotation carries an endorsement: the key it replaced signed its introduction,
so a holder of the old key (a camera) can follow the rotation without trusting the network.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from temoin.evidence.canonical import b64d, b64e, canonical_bytes
from temoin.evidence.signing import load_public_key, verify

KEYS_SCHEMA = "temoin.platform-keys/1"
ENDORSEMENT_SCHEMA = "temoin.key-endorsement/1"


def fingerprint(raw: bytes) -> str:
    """The full SHA-256 fingerprint of a raw Ed25519 public key (64 hex digits)."""
    return hashlib.sha256(raw).hexdigest()


def key_id(raw: bytes) -> str:
    return fingerprint(raw)[:16]


def raw_of_pem(pem: bytes) -> bytes:
    """The raw 32 bytes of a PEM (SubjectPublicKeyInfo) Ed25519 public key; ValueError otherwise."""
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def pem_of_raw(raw: bytes) -> bytes:
    return load_public_key(raw).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    at = datetime.fromisoformat(str(value))
    if at.tzinfo is None:
        raise ValueError(f"time {value!r} has no time zone")
    return at


def endorsement_bytes(new_id: str, public_key: bytes, valid_from: datetime | None) -> bytes:
    return canonical_bytes(
        {
            "schema": ENDORSEMENT_SCHEMA,
            "id": new_id,
            "public_key": b64e(public_key),
            "valid_from": valid_from.isoformat() if valid_from else None,
        }
    )


@dataclass(frozen=True)
class PlatformKey:
    """One platform signing key's public part. valid_from None: since the beginning (a key made before key
    history existed); valid_until None: the current key."""

    public_key: bytes
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    endorsed_by: str | None = None  # id of the key that signed this one's introduction
    endorsement: str | None = None  # that signature, base64

    @property
    def id(self) -> str:
        return key_id(self.public_key)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_key)

    @property
    def current(self) -> bool:
        return self.valid_until is None

    def valid_at(self, at: datetime | None) -> bool:
        """Whether the key could sign at `at` (None: a time the signature does not state; any time)."""
        if at is None:
            return True
        return (self.valid_from is None or self.valid_from <= at) and (
            self.valid_until is None or at <= self.valid_until
        )

    def pem(self) -> bytes:
        return pem_of_raw(self.public_key)

    def validity(self) -> str:
        start = self.valid_from.isoformat() if self.valid_from else "the beginning"
        return f"valid from {start} " + (f"until {self.valid_until.isoformat()}" if self.valid_until else "(current)")

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "algorithm": "Ed25519",
            "status": "current" if self.current else "retired",
            "public_key": b64e(self.public_key),
            "sha256_fingerprint": self.fingerprint,
            "valid_from": self.valid_from.isoformat() if self.valid_from else None,
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
            "pem": self.pem().decode(),
        }
        if self.endorsed_by:
            out["endorsed_by"] = {"id": self.endorsed_by, "signature": self.endorsement}
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PlatformKey:
        raw = b64d(d["public_key"])
        load_public_key(raw)  # 32 bytes, a valid point
        key = cls(
            raw,
            _time(d.get("valid_from")),
            _time(d.get("valid_until")),
            (d.get("endorsed_by") or {}).get("id"),
            (d.get("endorsed_by") or {}).get("signature"),
        )
        if d.get("id") not in (None, key.id) or d.get("sha256_fingerprint") not in (None, key.fingerprint):
            raise ValueError(f"key {d.get('id')}: its id or fingerprint is not that of its public key")
        return key


@dataclass(frozen=True)
class KeySet:
    """Platform keys a verifier trusts (or the platform's own history): oldest first."""

    keys: tuple[PlatformKey, ...] = ()
    sources: tuple[str, ...] = field(default=(), compare=False)  # where they came from, for messages

    def __iter__(self) -> Iterator[PlatformKey]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def __bool__(self) -> bool:
        return bool(self.keys)

    def get(self, kid: str | None) -> PlatformKey | None:
        return next((k for k in self.keys if k.id == kid), None)

    def by_raw(self, raw: bytes) -> PlatformKey | None:
        return next((k for k in self.keys if k.public_key == raw), None)

    @property
    def current(self) -> PlatformKey | None:
        return next((k for k in reversed(self.keys) if k.current), None)

    def merged(self, other: Iterable[PlatformKey], source: str | None = None) -> KeySet:
        """This set and the keys of `other` it does not hold yet (a key in both keeps its validity here)."""
        keys = list(self.keys)
        for key in other:
            if all(k.public_key != key.public_key for k in keys):
                keys.append(key)
        return KeySet(tuple(keys), self.sources + ((source,) if source else ()))

    def signer(
        self, signature: bytes, message: bytes, *, key_id: str | None = None, at: datetime | None = None
    ) -> PlatformKey | None:
        """The key of this set that made `signature` over `message` and was valid at `at`, or None.

        `key_id` (what the signed object names) narrows the search; a signature does not verify under a key
        merely because it is named."""
        candidates = [self.get(key_id)] if key_id else list(self.keys)
        for key in candidates:
            if key is not None and key.valid_at(at) and verify(key.public_key, signature, message):
                return key
        return None

    def verify(
        self, signature: bytes, message: bytes, *, key_id: str | None = None, at: datetime | None = None
    ) -> bool:
        return self.signer(signature, message, key_id=key_id, at=at) is not None

    def as_json(self, issuer: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": KEYS_SCHEMA}
        if issuer:
            out["issuer"] = issuer
        out["keys"] = [k.as_json() for k in self.keys]
        return out

    def pem_bundle(self) -> bytes:
        """All keys as PEM blocks, each preceded by comment lines (id, fingerprint, validity)."""
        parts = []
        for k in self.keys:
            parts.append(
                f"# Témoin platform key {k.id} ({'current' if k.current else 'retired'})\n"
                f"# SHA-256 fingerprint {k.fingerprint}\n# {k.validity()}\n".encode()
                + k.pem()
            )
        return b"".join(parts)

    @classmethod
    def from_json(cls, doc: Any, source: str = "keys.json") -> KeySet:
        if not isinstance(doc, dict) or doc.get("schema") != KEYS_SCHEMA or not isinstance(doc.get("keys"), list):
            raise ValueError(f'{source}: not a Témoin key list (schema {KEYS_SCHEMA!r} with a "keys" list expected)')
        try:
            keys = tuple(PlatformKey.from_json(d) for d in doc["keys"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{source}: a key is malformed ({exc})") from None
        return cls(keys, (source,))

    @classmethod
    def of_raw(cls, raw: bytes, source: str) -> KeySet:
        """One pinned key whose validity the pin does not say (a PEM file, a fingerprint)."""
        return cls((PlatformKey(raw),), (source,))

    def rotation_endorsed(self, key: PlatformKey) -> bool:
        """Whether `key`'s introduction is signed by a key of this set that was valid when it began."""
        if not key.endorsed_by or not key.endorsement:
            return False
        try:
            signature = b64d(key.endorsement)
        except ValueError:
            return False
        return self.verify(
            signature,
            endorsement_bytes(key.id, key.public_key, key.valid_from),
            key_id=key.endorsed_by,
            at=key.valid_from,
        )

    def follow_rotations(self, published: KeySet) -> KeySet:
        """This set plus every key of `published` whose introduction a key already trusted endorsed, in
        order (a camera pinned to the first key follows each rotation).

        Only what the endorsements sign is taken from `published` (it may come from anyone): a followed key's
        start, and its endorser's end at that start (a rotation retires the key it replaces), never the
        document's unsigned `valid_until`."""
        trusted = self
        for key in published:
            if trusted.by_raw(key.public_key) is None and trusted.rotation_endorsed(key):
                keys = tuple(
                    replace(k, valid_until=key.valid_from) if k.id == key.endorsed_by and k.current else k
                    for k in trusted.keys
                )
                trusted = KeySet(keys + (replace(key, valid_until=None),), trusted.sources)
        return trusted

    def with_validity_from(self, published: KeySet) -> KeySet:
        """Our keys with the validity `published` (vouched for by one of them) gives them."""
        return KeySet(
            tuple(
                (published.by_raw(k.public_key) or k) if k.valid_from is None and k.valid_until is None else k
                for k in self.keys
            ),
            self.sources,
        )


def retire(key: PlatformKey, at: datetime) -> PlatformKey:
    return replace(key, valid_until=at)
