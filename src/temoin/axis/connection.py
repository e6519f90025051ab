"""The connection file a Body Worn Manager imports, the credential in it, and the tokens it buys.

The credential (BlobAPIUserName + BlobAPIKey) is per tenant, random, stored as its SHA-256 only; issuing a new file
rotates it (the previous connection is revoked at once). The RSA key pair asked for by WantEncryption is generated
here; its private half is kept wrapped by the vault's master key, never written out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin import __version__
from temoin.axis.models import AxisConnection
from temoin.db import utcnow
from temoin.errors import InvalidInput, NotFound
from temoin.identity.models import Tenant
from temoin.identity.secrets import token_hash
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.vault.context import VaultContext

RSA_BITS = 3072
TOKEN_PREFIX = "AUTH_tk"  # noqa: S105 - the token's prefix, not a secret
MAX_CONNECTION_FILE = 64 * 1024
# Length limits of the connection file (Axis Body worn integration API, "JSON file format").
LIMITS = {
    "SiteName": 64,
    "ApplicationName": 256,
    "ApplicationVersion": 128,
    "BlobAPIKey": 64,
    "BlobAPIUserName": 64,
    "PublicKey": 2048,
    "PublicKeyId": 128,
}
MAX_URIS, MAX_URI, MAX_CERTIFICATES, MAX_CERTIFICATE = 10, 512, 10, 16 * 1024
CONTAINER_TYPES = ("mkv", "mp4")


class AxisConnectionError(InvalidInput):
    pass


def account_of(tenant: Tenant) -> str:
    """The Swift account of a tenant, the path part after /v1/."""
    return f"AUTH_{tenant.slug}"


def _wrap(master_key: bytes, data: bytes, aad: str) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(master_key).encrypt(nonce, data, b"temoin-axis-key\x00" + aad.encode())


def _unwrap(master_key: bytes, wrapped: bytes, aad: str) -> bytes:
    return AESGCM(master_key).decrypt(wrapped[:12], wrapped[12:], b"temoin-axis-key\x00" + aad.encode())


@dataclass(frozen=True)
class IssuedConnection:
    connection_file: dict
    username: str
    public_key_id: str

    def json_bytes(self) -> bytes:
        return orjson.dumps(self.connection_file, option=orjson.OPT_INDENT_2)


def _username(tenant: Tenant) -> str:
    return f"temoin-{tenant.slug[:40]}-{secrets.token_hex(4)}"


def _check_uri(uri: str) -> str:
    if not re.match(r"^https?://[^/\s]+", uri):
        raise AxisConnectionError(
            f"{uri!r} is not an http(s) address the docking stations can reach (give it as https://host[:port])"
        )
    return uri.rstrip("/") + "/auth/v1.0"


def _certificate_b64(pem: bytes) -> str:
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise AxisConnectionError(
            "the HTTPS certificate is not a PEM X.509 certificate: give the server's "
            "certificate file (-----BEGIN CERTIFICATE-----)"
        ) from None
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


def issue(
    p: VaultContext,
    db: Session,
    tenant: Tenant,
    *,
    urls: list[str],
    by: Actor,
    certificates: Sequence[bytes] = (),
    want_encryption: bool = True,
    container_type: str = "mp4",
    site_name: str | None = None,
) -> IssuedConnection:
    """A new connection file for the tenant; the previous connection stops working at once (rotation)."""
    if not urls:
        raise AxisConnectionError("give at least one address of Témoin that the docking stations reach (--url)")
    if len(urls) > MAX_URIS or len(certificates) > MAX_CERTIFICATES:
        raise AxisConnectionError(
            f"a connection file holds at most {MAX_URIS} addresses and {MAX_CERTIFICATES} certificates"
        )
    if container_type not in CONTAINER_TYPES:
        raise AxisConnectionError(f"container type must be one of {', '.join(CONTAINER_TYPES)}")
    token_uris = [_check_uri(u) for u in urls]
    for uri in token_uris:
        if len(uri) > MAX_URI:
            raise AxisConnectionError(f"address {uri!r} is longer than the {MAX_URI} characters allowed")
    certs = [_certificate_b64(c) for c in certificates]
    if any(len(c) > MAX_CERTIFICATE for c in certs):
        raise AxisConnectionError(f"a certificate is larger than the {MAX_CERTIFICATE} bytes allowed")
    if certs and not all(u.startswith("https://") for u in token_uris):
        raise AxisConnectionError("with an HTTPS certificate, every address must start with https://")
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_id = f"temoin-{tenant.slug[:40]}-{hashlib.sha256(public_pem).hexdigest()[:16]}"
    private_der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    api_key = secrets.token_urlsafe(32)  # 43 characters, 256 bits
    username = _username(tenant)
    now = utcnow()
    for old in db.scalars(
        select(AxisConnection).where(AxisConnection.tenant_id == tenant.id, AxisConnection.revoked_at.is_(None))
    ):
        old.revoked_at = now
    db.add(
        AxisConnection(
            tenant_id=tenant.id,
            username=username,
            key_hash=token_hash(api_key),
            public_key_id=key_id,
            public_key_pem=public_pem.decode(),
            wrapped_private_key=_wrap(p.keyring.master_key, private_der, key_id),
            master_key_id=p.keyring.master_key_id,
            want_encryption=want_encryption,
            created_by=by.id,
            created_at=now,
        )
    )
    doc: dict = {
        "ConnectionFileVersion": "1.0",
        "SiteName": (site_name or tenant.name)[: LIMITS["SiteName"]],
        "ApplicationName": "Témoin",
        "ApplicationVersion": __version__[: LIMITS["ApplicationVersion"]],
        "ContentDestinationAsNTPServer": False,
        "AuthenticationTokenURI": token_uris,
        "BlobAPIKey": api_key,
        "BlobAPIUserName": username,
        "ContainerType": container_type,
        "FullStoreAndReadSupport": False,  # Témoin publishes what it supports in System/Capabilities.json
        "WantEncryption": want_encryption,
    }
    if certs:
        doc["HTTPSCertificate"] = certs
    if want_encryption:  # "No value allowed otherwise"
        doc["PublicKey"] = base64.b64encode(public_pem).decode()
        doc["PublicKeyId"] = key_id
    for field, limit in LIMITS.items():
        if field in doc and len(doc[field].encode()) > limit:
            raise AssertionError(f"{field} exceeds {limit} bytes")  # our own generation, never user input
    p.record(
        db,
        EntryDraft(
            action=Action.ADMINISTRATION,
            event="axis.connection_issued",
            actor=by,
            details={
                "username": username,
                "public_key_id": key_id,
                "urls": token_uris,
                "https_certificates": len(certs),
                "want_encryption": want_encryption,
            },
        ),
        tenant,
    )
    db.commit()
    issued = IssuedConnection(doc, username, key_id)
    assert len(issued.json_bytes()) <= MAX_CONNECTION_FILE
    return issued


def revoke(p: VaultContext, db: Session, tenant: Tenant, *, by: Actor) -> int:
    """Stop every connection of the tenant (its tokens stop working with it). Returns how many were active."""
    now, count = utcnow(), 0
    for conn in db.scalars(
        select(AxisConnection).where(AxisConnection.tenant_id == tenant.id, AxisConnection.revoked_at.is_(None))
    ):
        conn.revoked_at, count = now, count + 1
    p.record(
        db,
        EntryDraft(
            action=Action.ADMINISTRATION, event="axis.connection_revoked", actor=by, details={"connections": count}
        ),
        tenant,
    )
    db.commit()
    return count


def authenticate(db: Session, username: str, api_key: str) -> AxisConnection | None:
    conn = db.scalar(select(AxisConnection).where(AxisConnection.username == username))
    if conn is None or conn.revoked_at is not None:
        return None
    return conn if hmac.compare_digest(conn.key_hash, token_hash(api_key)) else None


def _token_key(master_key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"temoin-axis-token-v1").derive(master_key)


_TOKEN = struct.Struct(">QQ")  # connection id, expiry (unix seconds)


def new_token(p: VaultContext, conn: AxisConnection, ttl_s: int) -> tuple[str, int]:
    """An unforgeable, expiring token: the connection and expiry, MAC'd with a key derived from the master key."""
    expires = int(time.time()) + ttl_s
    body = _TOKEN.pack(conn.id, expires)
    mac = hmac.new(_token_key(p.keyring.master_key), body, hashlib.sha256).digest()
    return TOKEN_PREFIX + base64.urlsafe_b64encode(body + mac).decode().rstrip("="), expires


def check_token(p: VaultContext, db: Session, token: str | None) -> AxisConnection | None:
    """The live connection a token stands for, or None (forged, expired, or its connection revoked)."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    raw = token[len(TOKEN_PREFIX) :]
    try:
        data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except ValueError:
        return None
    if len(data) != _TOKEN.size + 32:
        return None
    body, mac = data[: _TOKEN.size], data[_TOKEN.size :]
    if not hmac.compare_digest(mac, hmac.new(_token_key(p.keyring.master_key), body, hashlib.sha256).digest()):
        return None
    conn_id, expires = _TOKEN.unpack(body)
    if expires < time.time():
        return None
    conn = db.get(AxisConnection, conn_id)
    return conn if conn is not None and conn.revoked_at is None else None


def private_key(p: VaultContext, db: Session, tenant_id: int, public_key_id: str) -> RSAPrivateKey:
    """The tenant's private key named by a clip's key file (revoked connections' keys included)."""
    conn = db.scalar(
        select(AxisConnection).where(
            AxisConnection.tenant_id == tenant_id, AxisConnection.public_key_id == public_key_id
        )
    )
    if conn is None:
        raise NotFound(
            f"no Axis encryption key {public_key_id!r} for this tenant: the clip was encrypted for "
            "another content destination"
        )
    key = serialization.load_der_private_key(
        _unwrap(p.keyring.master_key, conn.wrapped_private_key, conn.public_key_id), password=None
    )
    assert isinstance(key, RSAPrivateKey)
    return key
