"""Blobs in an S3-compatible object store (AWS, Ceph RGW, Scality, OVH, SeaweedFS...), through boto3.

Selected by TEMOIN_BLOB_STORE_URL=s3://BUCKET[/PREFIX][?endpoint=URL&region=NAME]; the credentials come from the
environment as boto3 finds them (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance role...), never
from the URL, and are never logged. The store only ever sees what the vault sealed: client-side encryption is
unchanged (temoin.evidence.crypto), the bucket holds ciphertext.

Layout under PREFIX:
  blobs/<tenant>/<recording>/<index>.seg              a promoted blob, one object, read-only
  staging/<tenant>/<recording>/<index>.seg/<n:06d>    an upload in progress, as numbered chunks

A staged blob is the concatenation of its chunks 0..n: every chunk but the last holds CHUNK_BYTES (or, for a writer
that checkpoints, at least CHECKPOINT_CHUNK_BYTES), the last one fewer. S3 cannot read back the parts of an unfinished
multipart upload, and a resumed upload (on this node after a restart, or on another node) must read what was staged to
hash it again: so staging uses ordinary objects, each written whole by one PUT (atomic), and promotion turns them into
one object server-side: CopyObject for one chunk, a multipart upload of UploadPartCopy parts for several (every part
but the last >= 5 MiB, as S3 requires), completed atomically: a reader never sees a half-written blob. Memory per
upload in progress is bounded by one chunk plus one record.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import parse_qs, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from temoin import errors
from temoin.evidence import crypto
from temoin.vault.storage import BlobMissing, StorageError, StorageFull

CHUNK_BYTES = 8 * 1024 * 1024  # a staged chunk, and a part at promotion (S3's minimum part is 5 MiB)
# A checkpoint (a live backup's, every few seconds) PUTs the chunk being filled again, and starts the next chunk
# once this one holds S3's minimum part: promotion stays server-side, and each re-PUT stays under 5 MiB plus one
# checkpoint's bytes.
CHECKPOINT_CHUNK_BYTES = 5 * 1024 * 1024
_SKIP_BYTES = 4 * 1024 * 1024  # a reader skips forward this far on its open stream rather than asking again
_DELETE_BATCH = 1000  # S3's limit per DeleteObjects request
_CHUNK = re.compile(r"^\d{6}$")
# Answers that mean "no room" across implementations (Ceph RGW, MinIO, generic 507).
_FULL_CODES = {"QuotaExceeded", "XMinioStorageFull", "InsufficientStorage", "StorageFull", "VolumeFull"}
_DENIED_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}


class StoreUnavailable(errors.Unavailable, StorageError):
    """The object store does not answer, refuses our credentials, or fails: retry once it is back (503)."""


class InvalidStoreUrl(errors.InvalidInput, ValueError):
    """TEMOIN_BLOB_STORE_URL cannot be used: the message says the expected form."""


@dataclass(frozen=True)
class StoreUrl:
    bucket: str
    prefix: str  # "" or ending with "/"
    endpoint: str | None
    region: str | None

    @classmethod
    def parse(cls, url: str) -> StoreUrl:
        parts = urlsplit(url.strip())
        form = "s3://BUCKET[/PREFIX][?endpoint=https://HOST:PORT&region=NAME]"
        if parts.scheme != "s3":
            raise InvalidStoreUrl(f"the blob store URL must start with s3:// ({form})")
        given_endpoint = parse_qs(parts.query).get("endpoint", [""])[-1]
        if "@" in parts.netloc or "@" in urlsplit(given_endpoint).netloc:  # the endpoint is in every error message
            raise InvalidStoreUrl(
                "the blob store URL must not hold credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                f"in the environment instead ({form})"
            )
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", parts.netloc or ""):
            raise InvalidStoreUrl(f"the blob store URL names no valid bucket (3-63 of a-z 0-9 . -): {form}")
        query = parse_qs(parts.query)
        unknown = sorted(set(query) - {"endpoint", "region"})
        if unknown:
            raise InvalidStoreUrl(f"unknown blob store URL parameter {', '.join(unknown)}: {form}")
        endpoint = query.get("endpoint", [None])[-1]
        if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
            raise InvalidStoreUrl(f"the endpoint must be an http:// or https:// URL: {form}")
        prefix = parts.path.strip("/")
        return cls(parts.netloc, f"{prefix}/" if prefix else "", endpoint, query.get("region", [None])[-1])

    def describe(self) -> str:
        where = f" at {self.endpoint}" if self.endpoint else ""
        return f"bucket {self.bucket}{where}"


@dataclass
class _Writer:
    """An upload in progress in this process: the chunk being filled (its index, its bytes so far)."""

    index: int
    buffer: bytearray = field(default_factory=bytearray)
    dirty: bool = False


class S3BlobStore:
    """The BlobStore protocol (temoin.vault.storage) over an S3 bucket. Thread-safe: boto3 clients are."""

    def __init__(self, url: str, *, connect_timeout_s: float = 5.0, read_timeout_s: float = 60.0) -> None:
        self.url = StoreUrl.parse(url)
        self.bucket = self.url.bucket
        self._client = boto3.session.Session().client(
            "s3",
            endpoint_url=self.url.endpoint,
            region_name=self.url.region,
            config=Config(
                connect_timeout=connect_timeout_s,
                read_timeout=read_timeout_s,
                retries={"mode": "standard", "max_attempts": 3},
                max_pool_connections=32,
                # A named endpoint (Ceph, SeaweedFS, MinIO...) is addressed by path; AWS picks its own style.
                s3={"addressing_style": "path" if self.url.endpoint else "auto"},
                # Checksums only where S3 requires them: several S3-compatible stores refuse the newer headers.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )
        self._writers: dict[str, _Writer] = {}
        # Uploads whose write failed: later appends would follow a gap, so they fail too until the upload is
        # resumed (staged_state with repair, which every new upload request starts with) or discarded.
        self._failed: set[str] = set()
        self._guard = threading.Lock()

    # Names in the bucket.

    def _blob(self, key: str) -> str:
        return f"{self.url.prefix}blobs/{_checked(key)}"

    def _staged_dir(self, key: str) -> str:
        return f"{self.url.prefix}staging/{_checked(key)}/"

    def _chunk(self, key: str, index: int) -> str:
        return f"{self._staged_dir(key)}{index:06d}"

    # Errors: every failure of the store becomes a TemoinError that says what to do.

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except ClientError as exc:
            raise self._mapped(exc, what) from exc
        except NoCredentialsError as exc:
            raise StoreUnavailable(
                f"no credentials for the object store ({self.url.describe()}) while {what}: set "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the server's environment (docs/deploy.md)"
            ) from exc
        except BotoCoreError as exc:  # connection refused, timeouts, a reply cut short
            raise StoreUnavailable(
                f"the object store ({self.url.describe()}) does not answer while {what} ({type(exc).__name__}): "
                "check that it runs and that this server reaches it; retry then (an upload resumes where it stopped)"
            ) from exc

    def _mapped(self, exc: ClientError, what: str) -> StorageError:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        said = f"{status} {code}".strip()
        where = self.url.describe()
        if code in _FULL_CODES or status == 507:
            return StorageFull(
                f"the object store ({where}) is full or over its quota while {what} ({said}): free space or raise "
                "the bucket's quota, then resume the upload; nothing partial was kept as evidence"
            )
        if code == "NoSuchBucket":
            return StoreUnavailable(
                f"the {where} does not exist: create it, or correct TEMOIN_BLOB_STORE_URL (docs/deploy.md)"
            )
        if code in _DENIED_CODES or status == 403:
            return StoreUnavailable(
                f"the object store ({where}) refused access while {what} ({said}): check the credentials in the "
                "server's environment (AWS_ACCESS_KEY_ID...) and the bucket's policy; a bucket over its quota "
                "may refuse writes this way too"
            )
        if status >= 500 or status == 0:
            return StoreUnavailable(
                f"the object store ({where}) failed while {what} ({said}): it may be full, over its quota or "
                "failing: check its free space and its logs; retry then (an upload resumes where it stopped)"
            )
        return StorageError(f"the object store ({where}) refused a request while {what} ({said})")

    # Staging: resumable, append-only, in chunks.

    def _list(self, prefix: str, delimiter: str | None = None) -> Iterator[dict[str, Any]]:
        """The pages of a listing (ListObjectsV2), in key order."""
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            args["Delimiter"] = delimiter
        while True:
            page = self._client.list_objects_v2(**args)
            yield page
            if not page.get("IsTruncated"):
                return
            args["ContinuationToken"] = page["NextContinuationToken"]

    def _chunks(self, key: str) -> tuple[list[tuple[str, int]], list[str]]:
        """(the staged chunks 0..n in order with their sizes, stray chunks after a gap: left by a cut discard)."""
        found: dict[int, tuple[str, int]] = {}
        base = self._staged_dir(key)
        with self._errors("reading a staged upload"):
            for page in self._list(base):
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(base) :]
                    if _CHUNK.match(name):
                        found[int(name)] = (obj["Key"], int(obj["Size"]))
        chunks, n = [], 0
        while n in found:
            chunks.append(found.pop(n))
            n += 1
        return chunks, [name for name, _ in found.values()]

    def _put(self, name: str, body: bytes | bytearray | memoryview, what: str) -> None:
        with self._errors(what):
            self._client.put_object(Bucket=self.bucket, Key=name, Body=bytes(body))

    def _delete(self, names: list[str], what: str) -> None:
        """Delete objects, the last named first (a cut deletion of chunks leaves a shorter staged blob, no gap)."""
        names = sorted(names, reverse=True)
        with self._errors(what):
            for start in range(0, len(names), _DELETE_BATCH):
                batch = names[start : start + _DELETE_BATCH]
                reply = self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": n} for n in batch], "Quiet": True}
                )
                failed = reply.get("Errors") or []
                if failed:
                    raise StorageError(
                        f"the object store ({self.url.describe()}) did not delete {len(failed)} objects while {what} "
                        f"(first: {failed[0].get('Key')}: {failed[0].get('Code')}): retry"
                    )

    def _drop_writer(self, key: str, *, failed: bool | None = None) -> _Writer | None:
        with self._guard:
            if failed:
                self._failed.add(key)
            elif failed is False:
                self._failed.discard(key)
            return self._writers.pop(key, None)

    def _refuse_if_failed(self, key: str) -> None:
        if key in self._failed:
            raise StoreUnavailable(
                f"an earlier write of {key} to the object store ({self.url.describe()}) failed: nothing more is "
                "appended; the upload resumes from what the store holds"
            )

    def _writer(self, key: str) -> _Writer:
        with self._guard:
            writer = self._writers.get(key)
        if writer is not None:
            return writer
        chunks, strays = self._chunks(key)
        if strays:
            self._delete(strays, "tidying a staged upload")
        if not chunks:
            writer = _Writer(0)
        elif chunks[-1][1] >= CHUNK_BYTES:
            writer = _Writer(len(chunks))
        else:
            with self._errors("resuming a staged upload"):
                tail = self._client.get_object(Bucket=self.bucket, Key=chunks[-1][0])["Body"].read()
            writer = _Writer(len(chunks) - 1, bytearray(tail))
        with self._guard:
            self._writers[key] = writer
        return writer

    def staged_state(self, key: str, *, repair: bool = True, _again: bool = False) -> tuple[bytes | None, int, int]:
        """(blob header, complete records, plaintext bytes) of a staged blob; cuts a torn record off.

        repair=False only reads (a status query while the upload may be writing), as LocalBlobStore; chunks gone
        while it reads (the upload was promoted meanwhile) make it look once more."""
        if repair:
            self._drop_writer(key, failed=False)
        chunks, strays = self._chunks(key)
        if repair and strays:
            self._delete(strays, "tidying a staged upload")
        total = sum(size for _, size in chunks)
        if total < crypto.HEADER_BYTES:
            if repair and chunks:
                self._delete([name for name, _ in chunks], "discarding a torn upload")
            return None, 0, 0
        try:
            with io.BufferedReader(_Reader(self, chunks, "reading a staged upload")) as fh:
                header = fh.read(crypto.HEADER_BYTES)
                count, plain, end = crypto.scan_records(fh)
        except BlobMissing:
            if repair or _again:
                raise
            return self.staged_state(key, repair=False, _again=True)  # promoted (or discarded) while read
        if repair and end != total:
            self._truncate(chunks, end)  # a record torn by a crash: the camera resends from `plain`
        return header, count, plain

    def _truncate(self, chunks: list[tuple[str, int]], length: int) -> None:
        start, keep = 0, 0
        for _, size in chunks:
            if start + size > length:
                break
            start, keep = start + size, keep + 1
        beyond = [name for name, _ in chunks[keep + 1 :]]
        if beyond:
            self._delete(beyond, "cutting a torn upload")
        if keep < len(chunks):
            name = chunks[keep][0]
            if length == start:
                self._delete([name], "cutting a torn upload")
            else:
                with self._errors("cutting a torn upload"):
                    body = self._client.get_object(Bucket=self.bucket, Key=name, Range=f"bytes=0-{length - start - 1}")
                    self._put(name, body["Body"].read(), "cutting a torn upload")

    def truncate_staged(self, key: str, length: int) -> None:
        """Cut a staged upload to `length` bytes (a record found damaged when it was resumed)."""
        self._drop_writer(key, failed=False)
        self._truncate(self._chunks(key)[0], length)

    def staged_size(self, key: str) -> int:
        return sum(size for _, size in self._chunks(key)[0])

    def append_staged(self, key: str, header: bytes | None, *parts: bytes | memoryview) -> None:
        self._refuse_if_failed(key)
        try:
            writer = self._writer(key)
            for data in (header or b"", *parts):
                writer.buffer += data
                writer.dirty = writer.dirty or bool(data)
                while len(writer.buffer) >= CHUNK_BYTES:
                    self._put(self._chunk(key, writer.index), memoryview(writer.buffer)[:CHUNK_BYTES], "staging")
                    del writer.buffer[:CHUNK_BYTES]
                    writer.index += 1
                    writer.dirty = bool(writer.buffer)
        except BaseException:
            self._drop_writer(key, failed=True)
            raise

    def sync_staged(self, key: str) -> bool:
        """Write the chunk being filled: what was appended is then in the store, acknowledged or not."""
        self._refuse_if_failed(key)
        writer = self._drop_writer(key)
        if writer is not None and writer.dirty:
            try:
                self._put(self._chunk(key, writer.index), writer.buffer, "staging an upload")
            except BaseException:
                self._drop_writer(key, failed=True)
                raise
            return True
        return False

    def checkpoint_staged(self, key: str) -> None:
        """Put what was appended in the store while the writer goes on (a live backup, every few seconds): the
        chunk being filled is PUT again (atomic: the store holds the previous one or this one), and once it holds
        CHECKPOINT_CHUNK_BYTES it is closed and the next begins (chunks of 5 to 8 MiB, not thousands of tiny
        objects). A process killed between two checkpoints loses only what came since the last."""
        self._refuse_if_failed(key)
        with self._guard:
            writer = self._writers.get(key)
        if writer is None or not writer.dirty:
            return
        try:
            self._put(self._chunk(key, writer.index), writer.buffer, "staging")
        except BaseException:
            self._drop_writer(key, failed=True)
            raise
        writer.dirty = False
        if len(writer.buffer) >= CHECKPOINT_CHUNK_BYTES:
            writer.buffer.clear()
            writer.index += 1

    def close_staged(self, key: str) -> None:
        """As sync_staged: a piece's bytes must be in the store before it is answered, since the next piece may
        reach another node, which knows only what the store holds (no page cache shared between nodes)."""
        self.sync_staged(key)

    def open_staged(self, key: str) -> BinaryIO:
        self.sync_staged(key)
        chunks, _ = self._chunks(key)
        if not chunks:
            raise BlobMissing(f"nothing staged for {key}")
        return io.BufferedReader(_Reader(self, chunks, "reading a staged upload"))

    def discard_staged(self, key: str) -> None:
        self._drop_writer(key, failed=False)
        chunks, strays = self._chunks(key)
        self._delete([name for name, _ in chunks] + strays, "discarding a staged upload")

    def staged_keys(self, prefix: str) -> list[str]:
        """The keys staged under `tenant/recording` (uploads in progress or cut by a crash)."""
        base = f"{self.url.prefix}staging/{prefix.rstrip('/')}/"
        keys = set()
        with self._errors("listing staged uploads"):
            for page in self._list(base):
                for obj in page.get("Contents", []):
                    keys.add(obj["Key"][len(f"{self.url.prefix}staging/") :].rsplit("/", 1)[0])
        return sorted(keys)

    def promote(self, key: str, final_key: str | None = None, *, synced: bool = False) -> None:
        """Staged -> final (under `final_key` if given), atomically, server-side. Idempotent: repeated after a
        crash it does the same again, or nothing once the chunks are gone."""
        self.sync_staged(key)
        dst = self._blob(final_key or key)
        chunks, strays = self._chunks(key)
        if not chunks:
            if self.exists(final_key or key):
                return
            raise BlobMissing(f"nothing staged for {key}")
        with self._errors("storing a blob"):
            if len(chunks) == 1:
                self._client.copy_object(
                    Bucket=self.bucket, Key=dst, CopySource={"Bucket": self.bucket, "Key": chunks[0][0]}
                )
            else:
                self._assemble(dst, chunks)
        self._delete([name for name, _ in chunks] + strays, "tidying a stored upload")

    def _assemble(self, dst: str, chunks: list[tuple[str, int]]) -> None:
        upload = self._client.create_multipart_upload(Bucket=self.bucket, Key=dst)["UploadId"]
        try:
            parts = []
            for number, (name, _) in enumerate(chunks, start=1):
                reply = self._client.upload_part_copy(
                    Bucket=self.bucket,
                    Key=dst,
                    UploadId=upload,
                    PartNumber=number,
                    CopySource={"Bucket": self.bucket, "Key": name},
                )
                parts.append({"PartNumber": number, "ETag": reply["CopyPartResult"]["ETag"]})
            self._client.complete_multipart_upload(
                Bucket=self.bucket, Key=dst, UploadId=upload, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            try:
                self._client.abort_multipart_upload(Bucket=self.bucket, Key=dst, UploadId=upload)
            except (ClientError, BotoCoreError):
                pass  # the store is failing already; a lifecycle rule removes the leftover (docs/deploy.md)
            raise

    # Final blobs: read-only once promoted.

    def _head(self, key: str) -> int | None:
        with self._errors("looking up a blob"):
            try:
                return int(self._client.head_object(Bucket=self.bucket, Key=self._blob(key))["ContentLength"])
            except ClientError as exc:
                if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                    return None
                raise

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def open(self, key: str) -> BinaryIO:
        size = self._head(key)
        if size is None:
            raise BlobMissing(f"blob {key} is missing from the store")
        return io.BufferedReader(_Reader(self, [(self._blob(key), size)], "reading a blob"))

    def discard(self, key: str) -> None:
        """Remove one final blob (an Axis object replaced by a newer version before it became evidence)."""
        self._delete([self._blob(key)], "removing a blob")

    def size(self, key: str) -> int:
        size = self._head(key)
        if size is None:
            raise BlobMissing(f"blob {key} is missing from the store")
        return size

    def delete_prefix(self, prefix: str) -> int:
        return self.delete_prefixes([prefix])

    def delete_prefixes(self, prefixes: list[str]) -> int:
        """Remove every blob (and staged upload) under each `tenant/recording`. Returns what was removed, counted
        as LocalBlobStore counts: blobs, and staged uploads (not their chunks). Two listings per recording, then
        deletions by batches of a thousand objects."""
        names: list[str] = []
        removed = 0
        staging = f"{self.url.prefix}staging/"
        for prefix in prefixes:
            prefix = _checked(prefix.strip("/"))
            staged: set[str] = set()
            with self._errors("deleting a recording's blobs"):
                for page in self._list(f"{self.url.prefix}blobs/{prefix}/"):
                    found = [obj["Key"] for obj in page.get("Contents", [])]
                    names += found
                    removed += len(found)
                for page in self._list(f"{staging}{prefix}/"):
                    for obj in page.get("Contents", []):
                        names.append(obj["Key"])
                        staged.add(obj["Key"][len(staging) :].rsplit("/", 1)[0])
            with self._guard:
                for key in [k for k in self._writers.keys() | self._failed if k.startswith(f"{prefix}/")]:
                    self._writers.pop(key, None)
                    self._failed.discard(key)
            removed += len(staged)
        self._delete(names, "deleting a recording's blobs")
        return removed

    def prefixes(self) -> Iterator[str]:
        """Every `tenant/recording` holding blobs (to find orphans)."""
        base = f"{self.url.prefix}blobs/"
        with self._errors("listing the blobs"):
            tenants = [
                p["Prefix"]
                for page in self._list(base, "/")
                for p in page.get("CommonPrefixes", [])
                # `_artefacts` (vault.artefact_blobs) is no tenant: a slug starts with a letter or digit.
                if not p["Prefix"][len(base) :].startswith("_")
            ]
            for tenant in tenants:
                for page in self._list(tenant, "/"):
                    for rec in page.get("CommonPrefixes", []):
                        yield rec["Prefix"][len(base) :].rstrip("/")

    def listing(self, prefix: str) -> Iterator[tuple[str, float]]:
        """(key, modification time) of every blob and staged upload whose key starts with `prefix` (a folder,
        ending with "/"); a staged upload once, with its newest chunk's time."""
        prefix = _checked(prefix.strip("/")) + "/"
        staging = f"{self.url.prefix}staging/"
        staged: dict[str, float] = {}
        with self._errors("listing the blobs"):
            for page in self._list(f"{self.url.prefix}blobs/{prefix}"):
                for obj in page.get("Contents", []):
                    yield obj["Key"][len(self.url.prefix) + len("blobs/") :], obj["LastModified"].timestamp()
            for page in self._list(f"{staging}{prefix}"):
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(staging) :].rsplit("/", 1)[0]
                    staged[name] = max(staged.get(name, 0.0), obj["LastModified"].timestamp())
        yield from staged.items()


def _checked(key: str) -> str:
    """A key as the vault names blobs: relative, no empty, `.` or `..` part (no name climbs out of the prefix)."""
    parts = key.split("/")
    if not key or any(part in ("", ".", "..") for part in parts) or "\\" in key:
        raise StorageError(f"blob key {key!r} leaves the store")
    return key


class _Reader(io.RawIOBase):
    """A seekable read of objects laid end to end (a blob, or a staged upload's chunks), by ranged GETs.

    One response stream is kept open and read sequentially; a short forward seek reads past the gap, a longer one
    or a backward one opens a new range. Memory: what the caller's buffer holds."""

    def __init__(self, store: S3BlobStore, objects: list[tuple[str, int]], what: str) -> None:
        super().__init__()
        self._store, self._what = store, what
        self._objects: list[tuple[str, int, int]] = []  # (name, start, size)
        start = 0
        for name, size in objects:
            self._objects.append((name, start, size))
            start += size
        self._size = start
        self._pos = 0
        self._stream: Any = None
        self._stream_pos = 0
        self._stream_end = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        if self._pos >= self._size:
            return 0
        view = memoryview(buffer).cast("B")
        ahead = self._pos - self._stream_pos
        if self._stream is not None and 0 < ahead <= _SKIP_BYTES and self._pos < self._stream_end:
            with self._store._errors(self._what):
                self._stream.read(ahead)  # cheaper than a new request
            self._stream_pos = self._pos
        if self._stream is None or self._stream_pos != self._pos or self._pos >= self._stream_end:
            self._open()
        want = min(len(view), self._stream_end - self._pos)
        with self._store._errors(self._what):
            data = self._stream.read(want)
        if not data:
            raise StorageError(f"{self._what}: the object store's reply ended early: retry")
        view[: len(data)] = data
        self._pos += len(data)
        self._stream_pos = self._pos
        return len(data)

    def _open(self) -> None:
        self._close_stream()
        name, start, size = next(o for o in self._objects if o[1] <= self._pos < o[1] + o[2])
        with self._store._errors(self._what):
            try:
                reply = self._store._client.get_object(
                    Bucket=self._store.bucket, Key=name, Range=f"bytes={self._pos - start}-{size - 1}"
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                    raise BlobMissing(f"{name} is missing from the store (deleted meanwhile?)") from None
                raise
        self._stream = reply["Body"]
        self._stream_pos, self._stream_end = self._pos, start + size

    def _close_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def close(self) -> None:
        self._close_stream()
        super().close()
