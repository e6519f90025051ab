"""The error model holds: every error the platform raises on purpose is a kind of temoin.errors.TemoinError, no
domain module chooses an HTTP status, and the web layer answers each kind with its documented status (one table,
web/problems.py), as an RFC 9457 problem body that keeps `detail`."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import temoin
from temoin import errors
from temoin.web import problems

SRC = Path(temoin.__file__).parent

# The documented statuses (docs/architecture.md, "Errors"): clients rely on them.
DOCUMENTED = {
    errors.Malformed: 400,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.Gone: 410,
    errors.PayloadTooLarge: 413,
    errors.InvalidInput: 422,
    errors.TooManyRequests: 429,
    errors.Fault: 500,
    errors.UpstreamFault: 502,
    errors.Unavailable: 503,
    errors.UpstreamTimeout: 504,
    errors.StorageFull: 507,
}

# Not (yet) TemoinError, and why:
NOT_DOMAIN = {
    # control flow inside one function's loop, never leaves the module
    "temoin.extraction.package_verify._Stop",
    # the demo ONVIF camera's SOAP fault: it is what the simulated camera answers, not a platform error
    "temoin.demo.cctv.onvif_sim._Fault",
}


def _modules() -> list:
    out = []
    for info in pkgutil.walk_packages(temoin.__path__, "temoin."):
        if info.name.endswith("__main__") or info.name == "temoin.migrations.env":  # a CLI run, an Alembic script
            continue
        out.append(importlib.import_module(info.name))
    return out


def _exception_classes() -> list[type[BaseException]]:
    seen: dict[str, type[BaseException]] = {}
    for module in _modules():
        for obj in vars(module).values():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == module.__name__:
                seen[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return list(seen.values())


def test_every_error_class_is_a_kind_of_temoin_error() -> None:
    classes = _exception_classes()
    assert len(classes) > 60  # the walk found the packages
    outside = sorted(
        name
        for cls in classes
        if not issubclass(cls, errors.TemoinError)
        and (name := f"{cls.__module__}.{cls.__qualname__}") not in NOT_DOMAIN
    )
    assert not outside, f"derive these from a kind in temoin.errors: {outside}"


def _raised_classes() -> set[type]:
    """Every class some `raise X(...)` / `raise mod.X(...)` in src/temoin raises, resolved in its module."""
    out = set()
    for module in _modules():
        source = inspect.getsourcefile(module)
        if source is None:
            continue
        for node in ast.walk(ast.parse(Path(source).read_text(encoding="utf-8"))):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                func = node.exc.func
                if isinstance(func, ast.Name):
                    obj = vars(module).get(func.id)
                elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                    obj = getattr(vars(module).get(func.value.id), func.attr, None)
                else:
                    obj = None
                if inspect.isclass(obj):
                    out.add(obj)
    return out


def test_every_raised_domain_error_has_a_kind_with_a_status() -> None:
    """A family base (LiveError, IngestError...) has no status of its own: it must never be raised as such."""
    kindless = sorted(
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in _raised_classes()
        if issubclass(cls, errors.TemoinError)
        and problems.status_of(cls.__new__(cls))[0] == 500
        and not issubclass(cls, errors.Fault)
    )
    assert not kindless, f"raised without a kind (would answer 500): {kindless}"


def _http_status_literal(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return 100 <= node.value <= 599
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "HTTPStatus"


# The HTTP layers: the API (web), the camera's own little input server (its answers) and the camera agent's HTTP
# clients (their errors keep the status the platform answered: they read it, they do not choose it).
HTTP_LAYERS = (
    "web/",
    "camera/inputs.py",
    "camera/dispatch.py",
    "camera/live_publisher.py",
    "camera/live_whip.py",
    "demo/",
)
STATUS_CARRIERS: set[str] = set()  # error classes still allowed to carry an HTTP status: none


def test_no_domain_module_chooses_an_http_status() -> None:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith(HTTP_LAYERS):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module in ("fastapi", "starlette.exceptions")
                and any(a.name == "HTTPException" for a in node.names)
            ):
                found.append(f"{rel}:{node.lineno} imports HTTPException")
            if (
                isinstance(node, ast.Raise)
                and isinstance(node.exc, ast.Call)
                and node.exc.args
                and _http_status_literal(node.exc.args[0])
                and getattr(node.exc.func, "id", "") not in STATUS_CARRIERS
            ):
                found.append(f"{rel}:{node.lineno} raises with an HTTP status")
            if isinstance(node, ast.ClassDef):
                for stmt in node.body:
                    targets = (
                        stmt.targets
                        if isinstance(stmt, ast.Assign)
                        else [stmt.target]
                        if isinstance(stmt, ast.AnnAssign)
                        else []
                    )
                    names = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
                    if (
                        any(n in ("status", "status_code", "http_status") for n in names)
                        and any(issubclass_name(b) for b in node.bases)
                        and node.name not in STATUS_CARRIERS
                    ):
                        found.append(f"{rel}:{stmt.lineno} {node.name} carries an HTTP status")
    assert not found, found


def issubclass_name(base: ast.expr) -> bool:
    """An error class's base, by its name (…Error, a kind of temoin.errors, Exception)."""
    name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
    return name.endswith(("Error", "Exception")) or name in {k.__name__ for k in DOCUMENTED} | {"TemoinError"}


def test_the_table_is_the_documented_one() -> None:
    assert {kind: status for kind, (status, _, _) in problems.STATUS.items()} == DOCUMENTED


class _Late(errors.TooManyRequests):
    retry_after_s = 7.4


class _WithCode(errors.Conflict):
    @property
    def extra(self) -> dict[str, object]:
        return {"code": "already_done"}


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    problems.install(app)
    raising = {f"{kind.__name__}": kind for kind in DOCUMENTED} | {"late": _Late, "code": _WithCode}

    @app.get("/raise/{name}")
    def raise_it(name: str) -> None:
        raise raising[name](f"{name}: what went wrong, and what to do")

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize("kind", list(DOCUMENTED), ids=lambda k: k.__name__)
def test_each_kind_answers_its_status_as_a_problem(client: TestClient, kind: type[errors.TemoinError]) -> None:
    r = client.get(f"/raise/{kind.__name__}")
    assert r.status_code == DOCUMENTED[kind]
    assert r.headers["content-type"] == problems.PROBLEM_JSON
    body = r.json()
    assert body["status"] == DOCUMENTED[kind] and body["detail"] == f"{kind.__name__}: what went wrong, and what to do"
    assert body["type"].startswith("urn:temoin:problem:")
    assert ("retry-after" in r.headers) == (DOCUMENTED[kind] in (429, 503))  # when to come back, where it helps


def test_a_subclass_answers_with_its_own_kind_first_and_carries_its_extras(client: TestClient) -> None:
    late = client.get("/raise/late")
    assert late.status_code == 429 and late.headers["retry-after"] == "7"
    coded = client.get("/raise/code")
    assert coded.status_code == 409 and coded.json()["code"] == "already_done"


def test_domain_errors_keep_their_older_catch_behaviour() -> None:
    """Code that caught these as builtins (the CLI, the agent) still catches them."""
    from temoin.identity.errors import IdentityError, Throttled
    from temoin.identity.lifecycle import UserNotFound
    from temoin.law.profiles import UnknownProfile
    from temoin.supervision.registry import UnknownCamera
    from temoin.vault import catalogue

    assert issubclass(IdentityError, ValueError) and issubclass(Throttled, IdentityError)
    assert issubclass(UserNotFound, LookupError) and issubclass(UnknownCamera, LookupError)
    assert issubclass(UnknownProfile, KeyError)
    assert issubclass(catalogue.NotFound, LookupError) and issubclass(catalogue.Forbidden, PermissionError)
    # a catalogue refusal that needs a motive is the caller's to fix (422), not a refusal of the person (403)
    assert problems.status_of(catalogue.PlaceMotiveRequired("the GPS track"))[0] == 422


def test_a_database_pool_timeout_reads_as_busy() -> None:
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    found = errors.from_database(PoolTimeout("QueuePool limit reached"))
    assert isinstance(found, errors.Unavailable) and found.message == errors.DATABASE_BUSY
