"""No input gives a server error (docs/security.md, "Web and transport"): schemathesis generates requests from the
OpenAPI document for every operation, signed in as a chief and as a technical administrator (API tokens), and
every answer must be below 500. Bounded examples per operation; each run on SQLite and PostgreSQL. The inputs
that once gave a 500 are kept as plain cases below."""

from __future__ import annotations

import logging

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from sqlalchemy import select

from temoin.identity import service
from temoin.identity.models import User
from temoin.law.access import Role
from tests.helpers import make_commune, sign_in, upload

EXAMPLES = 4


@pytest.mark.slow
def test_no_operation_answers_a_server_error(platform, client) -> None:
    import schemathesis
    from schemathesis import GenerationMode

    commune = make_commune(platform, cameras=1)
    upload(platform, client, commune, duration_s=1, segment_s=1)
    tokens = {}
    with platform.session() as db:
        for role in (Role.CHIEF, Role.TECH_ADMIN):
            user = db.scalar(select(User).where(User.username == commune.users[role]))
            tokens[role] = service.issue_api_token(platform, db, user, "schemathesis")
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app)
    failures: list[str] = []
    operations = 0
    logging.disable(logging.ERROR)  # the server logs each refusal; the failures list says what matters
    try:
        for result in schema.get_all_operations():
            op = result.ok()
            operations += 1
            for role, token in tokens.items():
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                    @given(case=op.as_strategy(generation_mode=mode))
                    @settings(
                        max_examples=EXAMPLES,
                        deadline=None,
                        database=None,
                        phases=[Phase.generate],
                        suppress_health_check=list(HealthCheck),
                    )
                    def check(case) -> None:
                        try:
                            r = case.call(headers={"Authorization": f"Bearer {token}"})  # noqa: B023 - check() runs within this iteration
                        except Exception as exc:  # noqa: BLE001 - the app raised through the transport: a 500
                            failures.append(f"{op.method.upper()} {op.path} as {role}: {exc!r}"[:300])  # noqa: B023 - check() runs within this iteration
                            return
                        if r.status_code >= 500:
                            failures.append(
                                f"{op.method.upper()} {op.path} as {role}: {r.status_code} "  # noqa: B023 - check() runs within this iteration
                                f"{r.text[:120]!r} ({case.path_parameters} {case.query})"[:300]
                            )

                    try:
                        check()
                    except Exception as exc:  # no input satisfies a negative schema: nothing to try
                        if "Unsatisfiable" not in type(exc).__name__:
                            raise
    finally:
        logging.disable(logging.NOTSET)
    assert operations > 80
    assert failures == []


def test_the_inputs_that_gave_a_500(platform, client) -> None:
    commune = make_commune(platform, cameras=0)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    h = {"X-CSRF-Token": csrf}
    # An id beyond 64 bits: a validation error, not a database overflow.
    for method, path in (
        ("GET", "/api/v1/rights/copies/99999999999999999999999/video"),
        ("GET", "/api/v1/rights/requests/99999999999999999999999"),
        ("POST", "/api/v1/rights/requests/99999999999999999999999/status"),
        ("POST", "/api/v1/rights/requests/99999999999999999999999/limitations"),
    ):
        r = client.request(method, path, headers=h, json={})
        assert r.status_code == 422, (path, r.status_code, r.text)
    # Month "0000-01" (there is no year 0): 422 saying the format.
    for path in ("/api/v1/reports/monthly/0000-01", "/api/v1/reports/monthly/0000-01.csv"):
        r = client.get(path)
        assert (r.status_code == 422 and "YYYY-MM" in r.text) or "pattern" in r.text, r.text
    # JSON that is not UTF-8: a 4xx, never a 500.
    r = client.post(
        "/api/v1/rights/requests", content=b'{"kind": "\xff\xfe"}', headers={**h, "Content-Type": "application/json"}
    )
    assert 400 <= r.status_code < 500
    # A NUL character in a text field: PostgreSQL cannot store it, so neither database takes it: a 422 that says so.
    r = client.post(
        "/api/v1/rights/requests",
        headers=h,
        json={"kind": "access", "person_description": "veste\u0000rouge", "contact": "nul@example.org"},
    )
    assert r.status_code == 422 and "NUL" in r.json()["detail"], r.text
