"""GET /metrics over a real server: Prometheus' text format, every family the desk promises, sane values."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from itertools import pairwise

import httpx
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from app.api.metrics import UNMATCHED_ROUTE, metrics_of
from app.api.server import ApiServer
from app.engine.engine import Engine
from tests.api.conftest import bearer, order_body

FAMILIES = {
    "bulwark_ticks": "counter",
    "bulwark_loop_lag_ms": "gauge",
    "bulwark_gate_latency_seconds": "histogram",
    "bulwark_broker_call_seconds": "histogram",
    "bulwark_broker_call_errors": "counter",
    "bulwark_governor_used": "gauge",
    "bulwark_governor_capacity": "gauge",
    "bulwark_governor_queued": "gauge",
    "bulwark_audit_queue_depth": "gauge",
    "bulwark_orders": "counter",
    "bulwark_trading_state": "gauge",
    "bulwark_bus_dropped": "counter",
    "bulwark_stream_connections": "gauge",
    "bulwark_stream_too_slow": "counter",
    "bulwark_api_requests": "counter",
    "bulwark_api_request_seconds": "histogram",
}


async def scrape(client: httpx.AsyncClient) -> dict[str, Metric]:
    answer = await client.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {family.name: family for family in text_string_to_metric_families(answer.text)}


def value(family: Metric, suffix: str = "", **labels: str) -> float:
    found = [s.value for s in family.samples if s.name == family.name + suffix and s.labels == labels]
    assert len(found) == 1, (family.name, suffix, labels, family.samples)
    return found[0]


def check_histograms(family: Metric) -> int:
    """Each series' buckets are cumulative, ascending in ``le``, end at +Inf equal to its count; the series."""
    series: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = defaultdict(list)
    counts: dict[tuple[tuple[str, str], ...], float] = {}
    for sample in family.samples:
        key = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
        if sample.name.endswith("_bucket"):
            series[key].append((float(sample.labels["le"]), sample.value))
        elif sample.name.endswith("_count"):
            counts[key] = sample.value
    for key, buckets in series.items():
        bounds = [b for b, _ in buckets]
        assert bounds == sorted(bounds) and math.isinf(bounds[-1]), (family.name, key)
        cumulative = [c for _, c in buckets]
        assert all(a <= b for a, b in pairwise(cumulative)), (family.name, key, cumulative)
        assert cumulative[-1] == counts[key], (family.name, key)
    return len(series)


async def test_every_family_is_there_with_sane_values_after_some_orders(
    engine: Engine, bot: httpx.AsyncClient, viewer: httpx.AsyncClient,
) -> None:
    for _ in range(3):
        assert (await bot.post("/v1/orders", json=order_body())).json()["accepted"]
    refused = (await bot.post("/v1/orders", json=order_body(quantity=100_000))).json()
    assert not refused["accepted"]
    families = await scrape(viewer)

    for name, kind in FAMILIES.items():
        assert name in families, f"{name} missing"
        assert families[name].type == kind, (name, families[name].type)
    assert value(families["bulwark_ticks"], "_total") == engine.market_data.ticks >= 2
    p50 = value(families["bulwark_loop_lag_ms"], quantile="0.5")
    assert 0 <= p50 <= value(families["bulwark_loop_lag_ms"], quantile="0.99")
    assert value(families["bulwark_gate_latency_seconds"], "_count") == 4  # the refusal was the gate's too
    assert value(families["bulwark_broker_call_seconds"], "_count", method="place") == 3
    orders = families["bulwark_orders"]
    assert value(orders, "_total", outcome="submitted", reason="") == 4
    assert value(orders, "_total", outcome="accepted", reason="") == 3
    assert value(orders, "_total", outcome="rejected", reason=refused["rejection"]["code"]) == 1
    for budget in ("actions_per_second", "calls_per_minute", "calls_per_day"):
        capacity = value(families["bulwark_governor_capacity"], budget=budget)
        assert 0 < capacity and 0 <= value(families["bulwark_governor_used"], budget=budget) <= capacity
    assert value(families["bulwark_governor_used"], budget="calls_per_day") >= 3
    assert value(families["bulwark_audit_queue_depth"]) >= 0
    states = {s.labels["state"]: s.value for s in families["bulwark_trading_state"].samples}
    assert states == {"ACTIVE": 1.0, "REDUCING": 0.0, "HALTED": 0.0}
    assert value(families["bulwark_api_requests"], "_total", route="/v1/orders", status="200") == 4
    assert check_histograms(families["bulwark_api_request_seconds"]) >= 1
    assert value(families["bulwark_api_request_seconds"], "_count", route="/v1/orders") == 4
    for name, kind in FAMILIES.items():
        if kind == "histogram":
            check_histograms(families[name])


async def test_the_trading_state_and_refusals_show_in_the_next_scrape(
    engine: Engine, http: httpx.AsyncClient, viewer: httpx.AsyncClient, tokens: dict[str, str],
) -> None:
    assert (await http.get("/metrics")).status_code == 401
    assert (await http.get("/metrics", headers=bearer(tokens["stopper"]))).status_code == 403
    assert (await http.get("/no/such/path/42")).status_code == 404
    engine.engage_kill_switch("metrics test", "tester")
    families = await scrape(viewer)
    assert value(families["bulwark_trading_state"], state="HALTED") == 1
    assert value(families["bulwark_trading_state"], state="ACTIVE") == 0
    requests = families["bulwark_api_requests"]
    assert value(requests, "_total", route="/metrics", status="401") == 1
    assert value(requests, "_total", route="/metrics", status="403") == 1
    # Unknown paths share one label: a scanner cannot grow the series without bound.
    assert value(requests, "_total", route=UNMATCHED_ROUTE, status="404") == 1


async def test_without_a_token_is_401_with_the_error_body(http: httpx.AsyncClient) -> None:
    answer = await http.get("/metrics")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"
    assert answer.json()["code"] == "UNAUTHENTICATED"


async def test_a_scrape_costs_a_few_milliseconds(server: ApiServer, bot: httpx.AsyncClient, viewer: httpx.AsyncClient) -> None:
    for _ in range(5):
        await bot.post("/v1/orders", json=order_body())
    await scrape(viewer)  # every route and method seen so far has its series
    assert server.app is not None
    metrics = metrics_of(server.app)
    costs = []
    for _ in range(20):
        started = time.perf_counter()
        metrics.exposition()
        costs.append(time.perf_counter() - started)
    assert min(costs) < 0.005, f"a scrape took {min(costs) * 1000:.2f} ms at best"
