"""What the Axis store and the vault hand-over both read of a container's objects: metadata values, the
container's data key, a small object's plaintext (kept apart so that neither imports the other)."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import unquote

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy.orm import Session

from temoin.axis.models import AxisContainer, AxisObject
from temoin.errors import Forbidden, InvalidInput
from temoin.evidence import crypto
from temoin.identity.models import Tenant
from temoin.vault.context import VaultContext
from temoin.vault.models import Recording
from temoin.vault.storage import blob_key

MAX_SMALL_OBJECT = 32 * 1024 * 1024  # key files, GNSS trails, bookmarks, system/user/device objects
FIRST_SLOT = 10_000  # staged slots never collide with the segment indexes (0..n-1) of the finished recording


def title_case(key: str) -> str:
    """`x-object-meta` keys as the integration API writes them: first letter and each after a hyphen upper."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in key.split("-"))


def text(meta: dict[str, str], key: str) -> str | None:
    """A metadata value decoded from its percent-encoded UTF-8; None when absent."""
    value = meta.get(key.lower())
    return None if value is None else unquote(value, errors="strict")


def epoch(meta: dict[str, str], key: str) -> datetime | None:
    value = text(meta, key)
    if value is None or value == "":
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (ValueError, OverflowError, OSError):
        raise InvalidInput(f"metadata {key} is {value[:40]!r}, not a UNIX time") from None


def data_key(p: VaultContext, db: Session, container: AxisContainer) -> bytes:
    if container.recording_id is not None:
        rec = db.get(Recording, container.recording_id)
        if rec is None or rec.wrapped_key is None:
            raise Forbidden(f"recording {container.recording_id} was deleted: its content is destroyed")
        return crypto.unwrap_key(p.keyring.master_key, rec.wrapped_key, rec.id)
    assert container.wrapped_key is not None
    return crypto.unwrap_key(p.keyring.master_key, container.wrapped_key, container.storage_id)


def read_object(p: VaultContext, db: Session, tenant: Tenant, container: AxisContainer, obj: AxisObject) -> bytes:
    """The plaintext of a small object (System/ objects, key files, GNSS trails, bookmarks)."""
    if obj.size > MAX_SMALL_OBJECT:
        raise InvalidInput(f"object {obj.name[:80]!r} is too large to be read whole")
    key = blob_key(tenant.slug, container.storage_id, obj.slot)
    dk = data_key(p, db, container)
    opener = p.store.open if p.store.exists(key) else p.store.open_staged
    with opener(key) as fh:
        return b"".join(crypto.open_records(fh, dk))


def device_public_key() -> bytes:
    """An Ed25519 public key whose private half is thrown away: an Axis camera never signs Témoin requests."""
    return Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def recording_metadata(obj_meta: dict[str, str]) -> dict[str, str]:
    return {title_case(k): v for k, v in sorted(obj_meta.items())}
