"""Domain errors to HTTP answers: one table from the kinds of temoin.errors to statuses, one RFC 9457
problem+json body (with `detail`, and the error's `extra` fields) per error.

A database that is full (SQLite SQLITE_FULL, PostgreSQL 53100) answers 507 Insufficient Storage, one that is
busy (no pooled connection free, a lock not granted in time) 503 with Retry-After, never a bare 500; the
request's transaction is rolled back by the session dependency on its way out.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, TimeoutError as PoolTimeout

from temoin import errors

log = logging.getLogger("temoin.web")

PROBLEM_JSON = "application/problem+json"
_BUSY = {"Retry-After": "2"}  # a busy database is a matter of seconds

# kind -> (status, title, problem type): the one table of the API's error statuses. An error answers with the
# entry of the first of its classes (most derived first) found here.
STATUS: dict[type[errors.TemoinError], tuple[int, str, str]] = {
    errors.Malformed: (400, "Bad Request", "urn:temoin:problem:malformed"),
    errors.Unauthenticated: (401, "Unauthorized", "urn:temoin:problem:unauthenticated"),
    errors.Forbidden: (403, "Forbidden", "urn:temoin:problem:forbidden"),
    errors.NotFound: (404, "Not Found", "urn:temoin:problem:not-found"),
    errors.Conflict: (409, "Conflict", "urn:temoin:problem:conflict"),
    errors.Gone: (410, "Gone", "urn:temoin:problem:gone"),
    errors.PayloadTooLarge: (413, "Content Too Large", "urn:temoin:problem:payload-too-large"),
    errors.InvalidInput: (422, "Invalid Input", "urn:temoin:problem:invalid-input"),
    errors.TooManyRequests: (429, "Too Many Requests", "urn:temoin:problem:too-many-requests"),
    errors.Fault: (500, "Internal Server Error", "urn:temoin:problem:fault"),
    errors.UpstreamFault: (502, "Bad Gateway", "urn:temoin:problem:upstream-fault"),
    errors.Unavailable: (503, "Service Unavailable", "urn:temoin:problem:unavailable"),
    errors.UpstreamTimeout: (504, "Gateway Timeout", "urn:temoin:problem:upstream-timeout"),
    errors.StorageFull: (507, "Insufficient Storage", "urn:temoin:problem:storage-full"),
}
_UNKNOWN = (500, "Internal Server Error", "about:blank")


def status_of(exc: errors.TemoinError) -> tuple[int, str, str]:
    return next((STATUS[cls] for cls in type(exc).__mro__ if cls in STATUS), _UNKNOWN)


def retry_headers(exc: errors.TemoinError) -> dict[str, str]:
    """`Retry-After` for an error that passes (its own delay, else 30 s for a 429 or 503); pages send it too."""
    if exc.retry_after_s is not None:
        return {"Retry-After": str(max(1, round(exc.retry_after_s)))}
    return {"Retry-After": "30"} if status_of(exc)[0] in (429, 503) else {}


def problem(exc: errors.TemoinError, *, extra: dict | None = None, headers: dict | None = None) -> JSONResponse:
    status, title, kind = status_of(exc)
    # `detail` also keeps the shape every other error of the API has ({"detail": ...}).
    body = {"type": kind, "title": title, "status": status, "detail": exc.message, **exc.extra, **(extra or {})}
    if retry := retry_headers(exc):
        headers = {**retry, **(headers or {})}
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.TemoinError)
    async def _domain(request: Request, exc: errors.TemoinError) -> JSONResponse:
        if isinstance(exc, errors.UpstreamFault):  # a device's trouble: the caller is told which
            log.warning("%s %s: %s", request.method, request.url.path, exc.message)
        elif status_of(exc)[0] >= 500:  # the platform's own trouble: an operator must look
            log.error(
                "%s %s: %s",
                request.method,
                request.url.path,
                exc.message,
                exc_info=exc if isinstance(exc, errors.Fault) else None,
            )
        return problem(exc)

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        mapped = errors.from_database(exc)
        if mapped is None:
            raise exc  # a real fault: the server error middleware answers 500 and logs it
        log.error("%s %s: %s (%s)", request.method, request.url.path, mapped.message, exc.orig)
        return problem(mapped, headers=_BUSY if mapped.message == errors.DATABASE_BUSY else None)

    @app.exception_handler(PoolTimeout)
    async def _pool(request: Request, exc: PoolTimeout) -> JSONResponse:
        # Every connection is in use: answer now (503) rather than queue until the server freezes.
        log.warning("%s %s: no database connection free within the pool timeout", request.method, request.url.path)
        return problem(errors.Unavailable(errors.DATABASE_BUSY), headers=_BUSY)
