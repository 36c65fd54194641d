"""Tokens and scopes: missing, wrong and disabled tokens get 401 with WWW-Authenticate, a token without the
scope 403; each refusal is audited, and a flood of them is coalesced into a few records."""

from __future__ import annotations

import httpx
import pytest

from app.api.auth import COALESCE_SECONDS, RefusalAuditor
from app.domain.audit import AuditEventType, AuditSource
from app.store.audit_writer import AuditWriter
from tests.api.conftest import MonoClock, bearer, committed, order_body


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing"),
        (bearer("bwk_not-a-token"), "unknown"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "missing"),
    ],
    ids=["missing", "wrong", "not-bearer"],
)
async def test_missing_or_wrong_token_is_401_and_audited(
    http: httpx.AsyncClient, writer: AuditWriter, headers: dict[str, str], reason: str,
) -> None:
    answer = await http.get("/v1/orders", headers=headers)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert answer.json()["code"] == "UNAUTHENTICATED"
    records = await committed(writer, "api.refused")
    assert [(r["reason"], r["path"], r["source"]) for r in records] == [(reason, "/v1/orders", "api")]
    assert "bwk_not-a-token" not in str(records)


async def test_disabled_client_is_401(http: httpx.AsyncClient, tokens: dict[str, str], writer: AuditWriter) -> None:
    answer = await http.get("/v1/orders", headers=bearer(tokens["off"]))
    assert answer.status_code == 401 and answer.headers["WWW-Authenticate"] == "Bearer"
    assert "disabled" in answer.json()["message"]
    assert [r["reason"] for r in await committed(writer, "api.refused")] == ["disabled"]


async def test_wrong_scope_is_403_and_audited_under_the_client(
    viewer: httpx.AsyncClient, stopper: httpx.AsyncClient, writer: AuditWriter,
) -> None:
    assert (await viewer.post("/v1/orders", json=order_body())).status_code == 403
    assert (await stopper.get("/v1/orders")).status_code == 403
    records = await committed(writer, "api.refused")
    assert sorted((r["actor"], r["reason"], r["scope"]) for r in records) == [
        ("api:stopper", "scope", "read"), ("api:viewer", "scope", "trade"),
    ]


async def test_a_flood_of_bad_tokens_is_coalesced(http: httpx.AsyncClient, writer: AuditWriter, mono: MonoClock) -> None:
    for _ in range(30):
        assert (await http.get("/v1/orders", headers=bearer("bwk_guess"))).status_code == 401
    mono.advance(COALESCE_SECONDS)
    assert (await http.get("/v1/orders", headers=bearer("bwk_guess"))).status_code == 401
    records = await committed(writer, "api.refused")
    assert [r["suppressed"] for r in records] == [0, 29]


def test_coalescing_is_per_reason_and_subject_and_bounded() -> None:
    seen: list[tuple[AuditEventType, dict[str, object], str, AuditSource]] = []
    clock = MonoClock()
    auditor = RefusalAuditor(lambda *record: seen.append(record), clock=clock, max_tracked=2)
    assert auditor.refused("unknown", client=None, remote="10.0.0.1", path="/v1/x")
    assert not auditor.refused("unknown", client=None, remote="10.0.0.1", path="/v1/x")
    assert auditor.refused("missing", client=None, remote="10.0.0.1", path="/v1/x")
    assert auditor.refused("scope", client="viewer", remote="10.0.0.1", path="/v1/x", scope="trade")
    # Three subjects tracked with room for two: the oldest is forgotten, so it records again.
    assert auditor.refused("unknown", client=None, remote="10.0.0.1", path="/v1/x")
    assert [r[2] for r in seen] == ["api:?", "api:?", "api:viewer", "api:?"]
    assert all(r[0] is AuditEventType.API_REFUSED and r[3] is AuditSource.API for r in seen)


async def test_health_needs_no_token(http: httpx.AsyncClient) -> None:
    assert (await http.get("/v1/health/live")).status_code == 200


def test_unauthenticated_refusals_are_capped_in_total_whatever_the_address() -> None:
    # Off loopback each address has its own coalescing window: a sweep from many must not write a record each.
    seen: list[tuple[AuditEventType, dict[str, object], str, AuditSource]] = []
    clock = MonoClock()
    auditor = RefusalAuditor(lambda *record: seen.append(record), clock=clock, max_unauthenticated=10)
    recorded = [auditor.refused("unknown", client=None, remote=f"10.0.{n // 250}.{n % 250}", path="/v1/x") for n in range(30)]
    assert recorded == [True] * 10 + [False] * 20
    # A refusal that names its client is not held by the cap on anonymous ones.
    assert auditor.refused("scope", client="viewer", remote="10.9.9.9", path="/v1/x", scope="trade")
    clock.advance(COALESCE_SECONDS)
    assert auditor.refused("unknown", client=None, remote="10.9.9.9", path="/v1/x")
    anonymous = [payload for _, payload, actor, _ in seen if actor == "api:?"]
    assert len(anonymous) == 11
    # The next record tells how many the cap left out; the ones before it had left out none.
    assert [p["capped"] for p in anonymous] == [0] * 10 + [20]
    assert "capped" not in seen[10][1]
