"""A camera's signed HTTP request, and the one the vault keeps as evidence: the camera's own declaration of the
segments it lost (damaged on it before hand-over).

A camera signs each request with its device key over method, path (with query), time, nonce and the body's
`Content-Digest` (`identity.devices.authenticate` checks it). The camera's manifest is signed when the recording
ends, before any loss, so it lists every segment; the only statement of a loss the camera signs is its
`POST /api/v1/ingest/recordings/<id>/complete` request, whose body names the lost segments. The vault keeps that
request (the `recording.ingested` journal entry's details, and each package's recording section), so that the
loss a receipt declares is checked against what the camera said, with the camera's key: the platform, even with
its own key, cannot declare lost a segment the camera did not.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from temoin.evidence.canonical import b64d, b64e
from temoin.evidence.signing import verify

AUTH_SCHEME = "Temoin-Device"
LOST_DECLARATION_SCHEMA = "temoin.lost-declaration/1"
_PARAM = re.compile(r'(\w+)="([^"]*)"')


def content_digest(body: bytes) -> str:
    """The `Content-Digest` value of a body (RFC 9530, SHA-256): what the signature covers of it."""
    return f"sha-256=:{b64e(hashlib.sha256(body).digest())}:"


def signing_string(method: str, path: str, ts: int, nonce: str, content: str) -> bytes:
    """`path` with its query string; `content`: `content_digest(body)`, or UNSIGNED_PAYLOAD."""
    return f"{method.upper()}\n{path}\n{ts}\n{nonce}\n{content}".encode()


def complete_path(recording_id: str) -> str:
    return f"/api/v1/ingest/recordings/{recording_id}/complete"


def lost_declaration(authorization: str, path: str, body: bytes) -> dict[str, Any]:
    """The camera's signed `complete` request as kept: its signature header, its path and its body."""
    return {"schema": LOST_DECLARATION_SCHEMA, "path": path, "authorization": authorization, "body": body.decode()}


def camera_declared_lost(declaration: Any, device_key: bytes, recording_id: str) -> list[int] | str:
    """The segments the camera declared lost for this recording in its signed request, or why that request
    proves nothing (not the camera's signature, another recording, malformed)."""
    try:
        params = dict(_PARAM.findall(str(declaration["authorization"])))
        ts, nonce, signature = int(params["ts"]), params["nonce"], b64d(params["sig"])
        path, body = str(declaration["path"]), str(declaration["body"]).encode()
        lost = json.loads(body)["lost_segments"]
    except (KeyError, TypeError, ValueError):
        return "the camera's declaration of its lost segments is malformed"
    if path != complete_path(recording_id):
        return f"the camera's declaration of lost segments is for {path}, not this recording"
    if not verify(device_key, signature, signing_string("POST", path, ts, nonce, content_digest(body))):
        return "the declaration of lost segments is not signed by the camera's key (altered or forged)"
    if not isinstance(lost, list) or not all(isinstance(i, int) for i in lost):
        return "the camera's declaration of its lost segments is malformed"
    return sorted(set(lost))
