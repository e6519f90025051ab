"""The blob store a deployment uses, chosen by one setting (TEMOIN_BLOB_STORE_URL). Apart from both stores' modules,
which it imports, so that neither imports the other."""

from __future__ import annotations

from pathlib import Path

from temoin.vault.storage import BlobStore, LocalBlobStore


def open_blob_store(url: str, root: Path) -> BlobStore:
    """The store TEMOIN_BLOB_STORE_URL names: empty, the local folder `root`; s3://..., an object store."""
    if not url:
        return LocalBlobStore(root)
    from temoin.vault.s3store import S3BlobStore  # boto3 is loaded only where an object store is used

    return S3BlobStore(url)
