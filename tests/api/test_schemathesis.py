"""Schemathesis against the schema the API serves: no 5xx, no answer outside the schema, for valid and invalid input.

The server is the real one (``tests/api/conftest.py``: ``ApiServer`` on 127.0.0.1 over a real engine on
the paper broker, a frozen clock). Schemathesis loads ``/openapi.json`` from it over the socket and
sends every operation's generated requests with ``requests``, from a worker thread: the server runs on
this test's event loop, which must stay free to answer.

One client holds every scope (read, trade, kill), so every operation is reachable. The kill switch
halts the desk at the first ``POST /v1/kill``, and submits are refused ``HALTED`` from then on (still
200 and still in the schema): that is robustness too. Generation is bounded and derandomized (a fixed
number of examples per operation and mode, the same every run), with Hypothesis' database off, so the
run is the same on every machine and every day.

Checks: no server error; status code, content type and body as the schema declares them; invalid data
(negative mode) refused with a 4xx; and ``ignored_auth``: an operation that answered 2xx with the token
is sent again without it and with a wrong one, and must refuse both. A failure names the operation, the
mode and schemathesis' minimal reproduction (``curl``, token filtered).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import hypothesis
import hypothesis.errors
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from app.domain.actors import ApiScope
from app.security.api_clients import ApiClientDirectory
from tests.engine.ticket_desk import ADMIN

CHECKS: list[Callable[..., Any]] = [
    not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance,
    negative_data_rejection, ignored_auth,
]
EXAMPLES = 25
# Paths that serve something other than the JSON API (the docs page, the schema itself).
NOT_API = ("/docs", "/openapi.json")
UNAUTHENTICATED = ("/v1/health/live", "/v1/health/ready")


def fuzz(schema_url: str, token: str) -> list[str]:
    """Every operation, positive then negative data, ``EXAMPLES`` each; a line per operation and mode that failed."""
    # The token as the served scheme's credentials: schemathesis then knows the Authorization header as auth
    # (a negative case that drops it expects a refusal), rather than as a header it was told to send anyway.
    config = schemathesis.Config.from_dict({"auth": {"openapi": {"HTTPBearer": {"bearer": token}}}})
    schema = schemathesis.openapi.from_url(schema_url, config=config)
    failures: list[str] = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            failures.append(f"an operation the schema does not describe validly: {result.err()}")
            continue
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @hypothesis.settings(
                max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
                phases=[Phase.explicit, Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck),
            )
            @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
            def check(case: schemathesis.Case[Any]) -> None:
                case.call_and_validate(checks=CHECKS, timeout=10)

            try:
                check()
            except hypothesis.errors.Unsatisfiable:
                # Nothing to negate: an operation without parameters or body (the health checks) has no invalid input.
                if mode is not GenerationMode.NEGATIVE:
                    raise
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - every operation is tried; each failure is reported
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
    return failures


@pytest.fixture
async def fuzzer(directory: ApiClientDirectory) -> str:
    """The token of a client with every scope (added on the loop: the directory audits through the engine)."""
    return directory.add("fuzzer", {ApiScope.READ, ApiScope.TRADE, ApiScope.KILL}, by=ADMIN)[1]


@pytest.mark.slow
async def test_the_served_schema_survives_schemathesis(base_url: str, fuzzer: str) -> None:
    failures = await asyncio.to_thread(fuzz, f"{base_url}/openapi.json", fuzzer)
    assert not failures, "\n\n".join(failures)


async def test_the_schema_declares_bearer_auth_and_every_operation_but_health_needs_it(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        schema = (await client.get("/openapi.json")).json()
    schemes = schema["components"]["securitySchemes"]
    bearer_schemes = {name for name, scheme in schemes.items() if scheme.get("type") == "http" and scheme.get("scheme") == "bearer"}
    assert bearer_schemes, schemes
    checked = 0
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            required = {name for requirement in operation.get("security", []) for name in requirement}
            if path in UNAUTHENTICATED:
                assert not required, f"{method.upper()} {path} should need no token"
            else:
                checked += 1
                assert required & bearer_schemes, f"{method.upper()} {path} does not declare the bearer scheme"
    assert checked >= 10
