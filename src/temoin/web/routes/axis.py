"""The Swift endpoints the Axis Body Worn system calls (temoin.axis; docs/axis.md). Thin: auth, headers, streaming.

Answers are plain text, as a Swift server's: the system controller logs them. The camera system's credential can
only write: GET outside System/, DELETE and COPY are refused (403), so it can never read or delete evidence.
"""

from __future__ import annotations

import logging
from email.utils import formatdate

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from temoin import errors
from temoin.axis import connection, objects, store
from temoin.identity.models import Tenant
from temoin.identity.service import actor_of
from temoin.law.access import Permission
from temoin.platform import Platform
from temoin.vault.storage import StorageError
from temoin.web.body_pipe import pipe_body
from temoin.web.deps import Principal, get_db, get_platform, require

log = logging.getLogger("temoin.axis")
router = APIRouter(tags=["Axis Body Worn (Swift)"], include_in_schema=True)
admin_router = APIRouter(prefix="/api/v1/admin/axis", tags=["Axis Body Worn (administration)"])

TOKEN_TTL_S = 8 * 3600
WRITE_ONLY = "the Axis Body Worn credential can only store content; reading, listing, copying or deleting it is refused"


def _text(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(message + "\n", status_code=status, media_type="text/plain; charset=utf-8", headers=headers)


# The Axis routes speak Swift's dialect (plain-text bodies, 402 for no licence, 400 for a bad name, 403 for a
# conflict): they keep their own mapping of the kinds instead of the API's problem+json (web/problems.py).
def _status(exc: BaseException) -> int:
    if isinstance(exc, store.PaymentRequired):
        return 402
    if isinstance(exc, store.ChecksumMismatch):
        return 422
    for cls, status in (
        (errors.StorageFull, 507),
        (errors.NotFound, 404),
        (errors.Forbidden, 403),
        (errors.Conflict, 403),
        (errors.Unavailable, 503),
        (errors.InvalidInput, 400),
    ):
        if isinstance(exc, cls):
            return status
    return 500


def _error(exc: BaseException) -> Response:
    if isinstance(exc, SQLAlchemyError):
        mapped = errors.from_database(exc)
        if mapped is None:
            log.exception("database failure on an Axis request")
            return _text(500, "internal error: retry later")
        exc = mapped
    if isinstance(exc, StorageError) and not isinstance(exc, errors.StorageFull):
        log.error("storage failure on an Axis request: %s", exc)
        return _text(500, str(exc))
    return _text(_status(exc), exc.message if isinstance(exc, errors.TemoinError) else str(exc))


_HANDLED = (errors.TemoinError, StorageError, SQLAlchemyError)


@router.get("/auth/v1.0", summary="Swift v1 auth: a token and the storage URL")
@router.get("/auth/v1.0/", include_in_schema=False)
def auth(request: Request, db: Session = Depends(get_db), p: Platform = Depends(get_platform)) -> Response:
    user = request.headers.get("x-auth-user") or request.headers.get("x-storage-user") or ""
    key = request.headers.get("x-auth-key") or request.headers.get("x-storage-pass") or ""
    conn = connection.authenticate(db, user, key) if user and key else None
    if conn is None:
        return _text(401, "unknown user or key, or a revoked connection: import a new connection file")
    tenant = db.get_one(Tenant, conn.tenant_id)
    token, _ = connection.new_token(p, conn, TOKEN_TTL_S)
    base = str(request.base_url).rstrip("/")  # same scheme and host the system controller used
    storage_url = f"{base}/v1/{connection.account_of(tenant)}"
    headers = {
        "X-Auth-Token": token,
        "X-Storage-Token": token,
        "X-Storage-Url": storage_url,
        "X-Auth-Token-Expires": str(TOKEN_TTL_S),
    }
    return Response(status_code=200, headers=headers)


def _authorised(request: Request, db: Session, p: Platform, account: str) -> Tenant | Response:
    token = request.headers.get("x-auth-token") or request.headers.get("x-storage-token")
    conn = connection.check_token(p, db, token)
    if conn is None:
        return _text(401, "missing, expired or invalid token: authenticate again at /auth/v1.0")
    tenant = db.get_one(Tenant, conn.tenant_id)
    if account != connection.account_of(tenant):
        return _text(403, "this token is for another account")
    raw = request.scope.get("raw_path") or b""
    if b"%2f" in raw.lower() or b"%5c" in raw.lower():
        return _text(400, "encoded slashes are not allowed in names")
    return tenant


def _meta_headers(kind: str, meta: dict[str, str]) -> dict[str, str]:
    return {f"X-{kind.title()}-Meta-{objects.title_case(k)}": v for k, v in meta.items()}


@router.api_route("/v1/{account}", methods=["GET", "HEAD", "PUT", "POST", "DELETE", "COPY"], include_in_schema=False)
@router.api_route("/v1/{account}/", methods=["GET", "HEAD", "PUT", "POST", "DELETE", "COPY"], include_in_schema=False)
def account_root(
    account: str, request: Request, db: Session = Depends(get_db), p: Platform = Depends(get_platform)
) -> Response:
    tenant = _authorised(request, db, p, account)
    if isinstance(tenant, Response):
        return tenant
    if request.method == "HEAD":
        return Response(status_code=204)
    return _text(403, WRITE_ONLY)


def container_route(
    account: str, container: str, request: Request, db: Session = Depends(get_db), p: Platform = Depends(get_platform)
) -> Response:
    tenant = _authorised(request, db, p, account)
    if isinstance(tenant, Response):
        return tenant
    method = request.method
    try:
        store.check_container_name(container)
        if method == "PUT":
            change = store.MetaChange.from_headers(request.headers.items(), "container")
            created = store.put_container(p, db, tenant, container, change)
            return _text(201 if created else 202, "created" if created else "accepted")
        if method == "POST":
            change = store.MetaChange.from_headers(request.headers.items(), "container")
            store.update_container(p, db, tenant, store.find_container(db, tenant, container), change)
            return Response(status_code=204)
        if method == "HEAD":
            found = store.find_container(db, tenant, container)
            count, used = store.container_stats(db, found)
            return Response(
                status_code=204,
                headers={
                    "X-Container-Object-Count": str(count),
                    "X-Container-Bytes-Used": str(used),
                    **_meta_headers("container", found.meta or {}),
                },
            )
        return _text(403, WRITE_ONLY)
    except _HANDLED as exc:
        db.rollback()
        return _error(exc)


async def object_route(
    account: str,
    container: str,
    name: str,
    request: Request,
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> Response:
    tenant = await run_in_threadpool(_authorised, request, db, p, account)
    if isinstance(tenant, Response):
        return tenant
    method = request.method
    try:
        store.check_container_name(container)
        store.check_object_name(name)
        if method == "PUT":
            return await _put_object(p, db, tenant, container, name, request)
        if method == "POST":
            change = store.MetaChange.from_headers(request.headers.items(), "object")

            def post() -> None:
                store.post_object(p, db, tenant, store.find_container(db, tenant, container), name, change)

            await run_in_threadpool(post)
            return _text(202, "accepted")
        if method in ("GET", "HEAD"):
            return await run_in_threadpool(_read, p, db, tenant, container, name, method, request)
        return _text(403, WRITE_ONLY)
    except _HANDLED as exc:
        await run_in_threadpool(db.rollback)  # the database only ever from the thread pool
        return _error(exc)


# One route per method, each with its own summary and operation id (one route for several methods gives them all
# one id in the OpenAPI document). Reading evidence, deleting and copying are refused (403) and left out of it.
_SWIFT_ROUTES = (
    ("/v1/{account}/{container}", container_route, "container", {
        "PUT": "Swift container: create (201) or merge its metadata (202)",
        "POST": "Swift container: merge its metadata (204)",
        "HEAD": "Swift container: object count, bytes used and metadata",
        "GET": None, "DELETE": None, "COPY": None,
    }),
    ("/v1/{account}/{container}/{name:path}", object_route, "object", {
        "PUT": "Swift object: store it (201), byte-exact, ETag the body's MD5",
        "POST": "Swift object: replace its metadata (202)",
        "HEAD": "Swift object: size, ETag and metadata",
        "GET": "Swift object: read, in System/ only",
        "DELETE": None, "COPY": None,
    }),
)  # fmt: skip
for _path, _endpoint, _kind, _summaries in _SWIFT_ROUTES:
    for _method, _summary in _summaries.items():
        router.add_api_route(
            _path,
            _endpoint,
            methods=[_method],
            summary=_summary,
            operation_id=f"swift_{_kind}_{_method.lower()}",
            include_in_schema=_summary is not None,
        )


def _read(
    p: Platform, db: Session, tenant: Tenant, container: str, name: str, method: str, request: Request
) -> Response:
    if container == "System" and name in store.GENERATED:
        from temoin.web.i18n import label
        from temoin.web.routes.recording_pages import CATEGORIES

        body = store.generated_document(name, [(c, label("fr", "category", c)) for c in CATEGORIES])
        etag = store.hashlib.md5(body, usedforsecurity=False).hexdigest()
        headers = {"Etag": etag, "Content-Length": str(len(body))}
        if method == "HEAD":
            return Response(status_code=200, headers=headers, media_type="application/json")
        return Response(body, status_code=200, headers={"Etag": etag}, media_type="application/json")
    found = store.find_container(db, tenant, container)
    obj = store.find_object(db, found, name)
    headers = {
        "Etag": obj.md5,
        "Last-Modified": formatdate(obj.received_at.timestamp(), usegmt=True),
        "X-Timestamp": f"{obj.received_at.timestamp():.5f}",
        **_meta_headers("object", obj.meta or {}),
    }
    if method == "HEAD":
        return Response(status_code=200, headers={**headers, "Content-Length": str(obj.size)})
    if found.kind != "system":
        return _text(403, WRITE_ONLY)
    body = objects.read_object(p, db, tenant, found, obj)
    return Response(body, status_code=200, headers=headers, media_type="application/octet-stream")


async def _put_object(
    p: Platform, db: Session, tenant: Tenant, container: str, name: str, request: Request
) -> Response:
    change = store.MetaChange.from_headers(request.headers.items(), "object")
    raw_length = request.headers.get("content-length")
    if raw_length is not None and not raw_length.isdigit():
        return _text(400, "Content-Length must be a number of bytes")
    length = int(raw_length) if raw_length is not None else None
    if length is None and "chunked" not in (request.headers.get("transfer-encoding") or "").lower():
        return _text(411, "send Content-Length or a chunked body")

    def begin() -> store.ObjectUpload:
        return store.ObjectUpload(
            p,
            db,
            tenant,
            store.find_container(db, tenant, container),
            name,
            change,
            length=length,
            etag=request.headers.get("etag"),
        )

    upload = await run_in_threadpool(begin)
    try:
        # Receiving overlaps hashing and sealing (bounded queue); a cut upload keeps nothing, the system retries.
        if not await pipe_body(request, upload.feed):
            await run_in_threadpool(upload.abort)
            return _text(400, "upload cut before its end: nothing was kept")
    except BaseException:
        await run_in_threadpool(upload.abort)
        raise
    obj = await run_in_threadpool(upload.finish)
    return _text(201, "created", headers={"Etag": obj.md5})


class ConnectionFileIn(BaseModel):
    urls: list[str] = Field(min_length=1, max_length=10, description="addresses of Témoin the docking stations reach")
    certificates: list[str] = Field(
        default_factory=list, max_length=10, description="PEM certificates of Témoin's HTTPS server"
    )
    want_encryption: bool = True
    container_type: str = "mp4"


@admin_router.post("/connection-file", summary="Issue the connection file for AXIS Body Worn Manager (rotates)")
def issue_connection_file(
    body: ConnectionFileIn,
    who: Principal = require(Permission.ADMIN_DEVICES),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> Response:
    issued = connection.issue(
        p,
        db,
        who.tenant,
        urls=body.urls,
        by=actor_of(who.user),
        certificates=[c.encode() for c in body.certificates],
        want_encryption=body.want_encryption,
        container_type=body.container_type,
    )
    return Response(
        issued.json_bytes(),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="temoin-axis-{who.tenant.slug}.json"',
            "Cache-Control": "no-store",
        },
    )


@admin_router.post("/revoke", summary="Revoke the tenant's Axis connection")
def revoke_connection(
    who: Principal = require(Permission.ADMIN_DEVICES),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> dict:
    return {"revoked": connection.revoke(p, db, who.tenant, by=actor_of(who.user))}
