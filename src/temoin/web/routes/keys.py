"""The platform's public keys at a well-known address (public): what recipients pin and cameras follow.

/.well-known/temoin/keys.json lists every signing key, current and retired, with its full fingerprint and
validity (a trust store holding it pins them all); /.well-known/temoin/keys.pem gives the same keys as PEM.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from temoin.platform import Platform
from temoin.web.deps import get_platform

router = APIRouter(prefix="/.well-known/temoin", tags=["platform"])


@router.get("/keys.json", summary="The platform's signing keys, current and retired, with their validity")
def keys_json(p: Platform = Depends(get_platform)) -> JSONResponse:
    return JSONResponse(p.keyring.trusted.as_json(issuer="Témoin"), headers={"Cache-Control": "max-age=300"})


@router.get("/keys.pem", summary="The same keys as PEM, each with its fingerprint and validity in comments")
def keys_pem(p: Platform = Depends(get_platform)) -> Response:
    return Response(
        p.keyring.trusted.pem_bundle(), media_type="application/x-pem-file", headers={"Cache-Control": "max-age=300"}
    )
