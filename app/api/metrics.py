"""The desk's metrics in Prometheus' text format (0.0.4), read from the engine when scraped.

Nothing runs between scrapes: the engine already counts what matters (ticks, loop lag, gate and
broker-call latency histograms, rejections by reason, the governor's windows, the audit writer's
backlog) and ``EngineCollector`` reads those counters at scrape time. The API's own requests are
counted by a small ASGI middleware (``install_metrics``) into the same fixed-bucket histograms the
engine uses. Each app has its own ``CollectorRegistry``: no process-global state, so two apps (or
tests) never share counts. A scrape reads a few dozen numbers and sorts at most ``LAG_WINDOW`` lag
samples; its cost does not grow with the number of instruments or orders.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from itertools import islice

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.context import ApiContext
from app.api.routes.stream import STREAM_QUEUE_PREFIX, stream_stats
from app.domain.trading_state import TradingState
from app.engine.call_stats import LatencyHistogram

LAG_WINDOW = 1000
"""Loop-lag samples the quantiles are taken over: the latest ten seconds at the engine's 10 ms interval."""
UNMATCHED_ROUTE = "unmatched"
"""The route label of a request no route matched (one label for every unknown path: bounded series)."""


class RequestCounts:
    """The API's requests by route template and status, and their latency by route."""

    def __init__(self) -> None:
        self.by_status: dict[tuple[str, int], int] = {}
        self.latency: dict[str, LatencyHistogram] = {}

    def observe(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        self.by_status[key] = self.by_status.get(key, 0) + 1
        histogram = self.latency.get(route)
        if histogram is None:
            histogram = self.latency[route] = LatencyHistogram()
        histogram.observe(seconds)


def _buckets(histogram: LatencyHistogram) -> list[tuple[str, float]]:
    """Cumulative buckets with their bounds written as Prometheus writes them ("0.005", "+Inf")."""
    return [("+Inf" if math.isinf(bound) else repr(bound), float(count)) for bound, count in histogram.cumulative()]


def _histogram(name: str, doc: str, label: str, histograms: Iterable[tuple[str, LatencyHistogram]]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=[label])
    for value, histogram in histograms:
        family.add_metric([value], _buckets(histogram), sum_value=histogram.sum_s)
    return family


def _quantile(ordered: list[float], q: float) -> float:
    """Nearest-rank quantile (0-1) of sorted samples."""
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


class EngineCollector(Collector):
    """Yields the desk's metric families from the engine's own counters, at scrape time."""

    def __init__(self, context: ApiContext, app: FastAPI, requests: RequestCounts) -> None:
        self._context = context
        self._app = app
        self._requests = requests

    def collect(self) -> Iterator[Metric]:
        engine = self._context.engine
        yield CounterMetricFamily(
            "bulwark_ticks", "Market ticks the engine received (ticks per second: rate() of this).",
            value=engine.market_data.ticks,
        )
        lag = GaugeMetricFamily(
            "bulwark_loop_lag_ms",
            f"How late the event loop's {engine.loop_lag.interval * 1000:g} ms timer woke, over its latest "
            f"{LAG_WINDOW} wake-ups, in ms.",
            labels=["quantile"],
        )
        samples = sorted(islice(reversed(engine.loop_lag.samples_ms), LAG_WINDOW))
        if samples:
            lag.add_metric(["0.5"], _quantile(samples, 0.5))
            lag.add_metric(["0.99"], _quantile(samples, 0.99))
        yield lag
        gate = HistogramMetricFamily("bulwark_gate_latency_seconds", "Time the risk gate took to check an order.")
        gate.add_metric([], _buckets(engine.gate_latency), sum_value=engine.gate_latency.sum_s)
        yield gate
        stats = engine.call_stats
        yield _histogram(
            "bulwark_broker_call_seconds", "Broker calls' latency by method.", "method", sorted(stats.latency.items()),
        )
        errors = CounterMetricFamily(
            "bulwark_broker_call_errors", "Failed broker calls by method and error code (or timeout).",
            labels=["method", "code"],
        )
        for (method, code), count in sorted(stats.errors.items()):
            errors.add_metric([method, code], count)
        yield errors
        yield from self._governor()
        yield from self._orders()
        recorder = engine.recorder
        if recorder is not None:
            yield GaugeMetricFamily(
                "bulwark_audit_queue_depth", "Audit records and desk rows written but not yet committed.",
                value=recorder.writer.pending,
            )
        state = GaugeMetricFamily("bulwark_trading_state", "1 for the desk's trading state now, 0 for the others.",
                                  labels=["state"])
        for each in TradingState:
            state.add_metric([str(each)], 1.0 if engine.trading_state is each else 0.0)
        yield state
        yield from self._bus()
        yield from self._api()

    def _governor(self) -> Iterator[Metric]:
        budget = self._context.engine.governor.remaining()
        windows = (
            ("actions_per_second", budget.actions_per_second, budget.actions_left),
            ("calls_per_minute", budget.calls_per_minute, budget.minute_left),
            ("calls_per_day", budget.calls_per_day, budget.day_left),
        )
        used = GaugeMetricFamily("bulwark_governor_used", "Broker rate budget spent in its window.", labels=["budget"])
        capacity = GaugeMetricFamily("bulwark_governor_capacity", "Broker rate budget per window.", labels=["budget"])
        for name, cap, left in windows:
            used.add_metric([name], cap - left)
            capacity.add_metric([name], cap)
        yield used
        yield capacity
        yield GaugeMetricFamily(
            "bulwark_governor_queued", "Broker calls waiting for the governor's slot.",
            value=self._context.engine.governor.queued,
        )

    def _orders(self) -> Iterator[Metric]:
        engine = self._context.engine
        orders = CounterMetricFamily(
            "bulwark_orders",
            "Orders by outcome: submitted (every submit), accepted (acknowledged by the broker), "
            "rejected (by the gate, the governor or the broker; by reason code).",
            labels=["outcome", "reason"],
        )
        orders.add_metric(["submitted", ""], engine.submitted)
        orders.add_metric(["accepted", ""], engine.accepted)
        for reason, count in sorted(engine.rejections.items()):
            orders.add_metric(["rejected", str(reason)], count)
        yield orders

    def _bus(self) -> Iterator[Metric]:
        dropped = CounterMetricFamily(
            "bulwark_bus_dropped", "Events a slow queue subscriber of the engine's bus lost (oldest first).",
            labels=["queue"],
        )
        for name, queue in sorted(self._context.engine.bus.queue_stats().items()):
            # Stream connections come and go (their counts would jump back): counted as too_slow below.
            if not name.startswith(STREAM_QUEUE_PREFIX):
                dropped.add_metric([name], queue["dropped"])
        yield dropped
        stream = stream_stats(self._app)
        yield GaugeMetricFamily("bulwark_stream_connections", "Open /v1/stream connections.", value=stream.open)
        yield CounterMetricFamily(
            "bulwark_stream_too_slow", "Stream connections dropped for falling behind (close code 1013).",
            value=stream.too_slow,
        )

    def _api(self) -> Iterator[Metric]:
        requests = self._requests
        counts = CounterMetricFamily(
            "bulwark_api_requests", "API requests by route and HTTP status.", labels=["route", "status"],
        )
        for (route, status), count in sorted(requests.by_status.items()):
            counts.add_metric([route, str(status)], count)
        yield counts
        yield _histogram(
            "bulwark_api_request_seconds", "API requests' time in the app, by route.", "route",
            sorted(requests.latency.items()),
        )


class ApiMetrics:
    """An app's metrics: its own registry with the engine's collector, and the request counts."""

    def __init__(self, context: ApiContext, app: FastAPI) -> None:
        self.requests = RequestCounts()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(EngineCollector(context, app, self.requests))

    def exposition(self) -> bytes:
        """The text exposition format 0.0.4 of every metric now."""
        return generate_latest(self.registry)


class RequestMetrics:
    """ASGI middleware: counts each HTTP request by its route template and status, and times it."""

    def __init__(self, app: ASGIApp, counts: RequestCounts) -> None:
        self.app = app
        self.counts = counts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        # An exception escaping the app becomes a 500 further out.
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # The router leaves the matched route in the scope: its template, not the path, is the label.
            route = scope.get("route")
            self.counts.observe(getattr(route, "path", UNMATCHED_ROUTE), status, time.perf_counter() - started)


def install_metrics(app: FastAPI, context: ApiContext) -> ApiMetrics:
    """Give ``app`` its metrics (kept on ``app.state.metrics``, served at GET /metrics) and count its requests.

    Call before the app serves its first request (Starlette fixes its middleware then); added last,
    the counter is outermost and sees every answer, 413s and 500s included.
    """
    metrics = ApiMetrics(context, app)
    app.state.metrics = metrics
    app.add_middleware(RequestMetrics, counts=metrics.requests)
    return metrics


def metrics_of(app: FastAPI) -> ApiMetrics:
    """The metrics ``install_metrics`` gave ``app``."""
    metrics: ApiMetrics = app.state.metrics
    return metrics
