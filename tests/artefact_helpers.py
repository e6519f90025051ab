"""What the blob store holds of an artefact (a package, a redacted copy, a live backup: vault.artefact_blobs), read
through the store's own listing, finished or staged, on either store."""

from __future__ import annotations

from temoin.vault import artefact_blobs
from tests.s3_helpers import _is_s3


def artefact_keys(store, name: str) -> list[str]:
    """Every key the store holds under the artefact `name` (promoted blobs and staged uploads)."""
    return sorted(key for key, _ in store.listing(artefact_blobs.prefix(name) + "/"))


def artefact_raw(store, name: str) -> list[bytes]:
    """The raw bytes of everything the store holds under the artefact (what one holding the bucket would read)."""
    if not _is_s3(store):
        folders = [store.blobs / artefact_blobs.prefix(name), store.staging / artefact_blobs.prefix(name)]
        return [p.read_bytes() for folder in folders if folder.is_dir() for p in folder.rglob("*") if p.is_file()]
    reply = store._client.list_objects_v2(Bucket=store.bucket, Prefix=store.url.prefix)
    wanted = artefact_blobs.prefix(name) + "/"
    return [
        store._client.get_object(Bucket=store.bucket, Key=obj["Key"])["Body"].read()
        for obj in reply.get("Contents", [])
        if wanted in obj["Key"]
    ]


def staged_artefacts(store) -> list[str]:
    """What is staged (being written, or left by a killed writer) under every artefact."""
    if not _is_s3(store):
        folder = store.staging / artefact_blobs.ROOT
        return sorted(str(p.relative_to(store.staging)) for p in folder.rglob("*") if p.is_file())
    reply = store._client.list_objects_v2(
        Bucket=store.bucket, Prefix=f"{store.url.prefix}staging/{artefact_blobs.ROOT}/"
    )
    return sorted(obj["Key"] for obj in reply.get("Contents", []))
