"""The server itself: real HTTP on the running loop, TCP_NODELAY (no delayed-ACK stalls), a clear error for a
port in use, TLS (required off loopback), API_SERVING/API_STOPPED audited, and inside a desk the service
stops before the engine."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import logging
import socket
import ssl
import statistics
import threading
import time
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError
from websockets.asyncio.client import connect

from app.api import server as server_module
from app.api.alert_log import AlertLog
from app.api.server import UVICORN_LOGGERS, ApiServeError, ApiServer
from app.brokers.paper import PaperConfig
from app.desk import Desk, DeskOptions
from app.domain.actors import ApiScope
from app.domain.audit import AuditEventType
from app.domain.events import AlertLevel
from app.engine.bus import EventBus
from app.engine.engine import Engine, Lifecycle
from app.engine.risk.calendar_data import load_effective
from app.security.api_clients import ApiClientDirectory
from app.settings import ApiSettings
from app.store.audit_writer import AuditWriter
from app.store.export import rows
from tests.api.conftest import MonoClock, bearer, committed
from tests.engine.ticket_desk import ADMIN
from tests.support.calendar import cover_today


async def test_served_on_the_running_loop(server: ApiServer, viewer: httpx.AsyncClient) -> None:
    task = server._task
    assert task is not None and task.get_loop() is asyncio.get_running_loop()
    answer = await viewer.get("/v1/orders")
    assert answer.status_code == 200 and answer.json() == []
    schema = (await viewer.get("/openapi.json")).json()
    assert schema["info"]["title"] == "Bulwark local API"
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    assert (await viewer.get("/docs")).status_code == 200


async def test_a_keep_alive_client_is_not_held_by_delayed_ack(server: ApiServer, tokens: dict[str, str]) -> None:
    # A bare HTTP/1.1 client on one connection, so the time measured is the server's and the network's.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    request = f"GET /v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tokens['viewer']}\r\n\r\n".encode()

    async def one() -> float:
        started = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")).split(b":")[1])
        await reader.readexactly(length)
        assert head.startswith(b"HTTP/1.1 200")
        return time.perf_counter() - started

    try:
        await one()
        assert server._server is not None
        [connection] = server._server.server_state.connections
        accepted = connection.transport.get_extra_info("socket")
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        times = [await one() for _ in range(40)]
    finally:
        writer.close()
    # Without TCP_NODELAY each answer waits ~40 ms for the client's delayed ACK.
    # The bound is loose for a loaded 2-core CI machine and still well under that 40 ms; the socket option
    # asserted above is the exact check.
    assert statistics.median(times) < 0.030, f"median {statistics.median(times) * 1000:.1f} ms"


async def test_a_port_in_use_is_a_clear_error(engine: Engine, directory: ApiClientDirectory) -> None:
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ApiServer(ApiSettings(port=port), engine=engine, clients=directory)
        with pytest.raises(ApiServeError, match=f"port {port}: the port is in use"):
            await server.start()
        await server.stop()  # harmless: it never started
    finally:
        taken.close()


def test_off_loopback_needs_tls(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="only over TLS"):
        ApiSettings(host="0.0.0.0")
    cert, key = self_signed(tmp_path)
    assert ApiSettings(host="0.0.0.0", tls_cert=cert, tls_key=key).loopback is False


async def test_tls_with_a_self_signed_certificate(
    tmp_path: Path, engine: Engine, directory: ApiClientDirectory, tokens: dict[str, str],
) -> None:
    cert, key = self_signed(tmp_path)
    server = ApiServer(ApiSettings(port=0, tls_cert=cert, tls_key=key), engine=engine, clients=directory)
    await server.start()
    try:
        assert server.url.startswith("https://127.0.0.1:")
        trust = ssl.create_default_context(cafile=str(cert))
        async with httpx.AsyncClient(base_url=server.url, verify=trust, headers=bearer(tokens["viewer"])) as client:
            assert (await client.get("/v1/orders")).status_code == 200
        async with httpx.AsyncClient(base_url=server.url.replace("https", "http")) as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.get("/v1/health/live")
    finally:
        await server.stop()


async def test_unusable_tls_files_are_a_clear_error(
    tmp_path: Path, engine: Engine, directory: ApiClientDirectory,
) -> None:
    cert, key = self_signed(tmp_path)
    key.write_text("not a key", encoding="utf-8")
    server = ApiServer(ApiSettings(port=0, tls_cert=cert, tls_key=key), engine=engine, clients=directory)
    with pytest.raises(ApiServeError, match="cannot use its TLS certificate"):
        await server.start()


async def test_serving_and_stopping_are_audited(
    engine: Engine, directory: ApiClientDirectory, writer: AuditWriter, mono: MonoClock,
) -> None:
    server = ApiServer(ApiSettings(port=0), engine=engine, clients=directory, clock=mono)
    await server.start()
    url = server.url
    await server.stop()
    serving = await committed(writer, "api.serving")
    stopped = await committed(writer, "api.stopped")
    assert [(r["address"], r["tls"], r["source"]) for r in serving] == [(url, False, "api")]
    assert [r["address"] for r in stopped] == [url]
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient(base_url=url) as client:
            await client.get("/v1/health/live")


async def test_clients_changed_elsewhere_count_within_the_reload(
    engine: Engine, directory: ApiClientDirectory, writer: AuditWriter, tokens: dict[str, str],
) -> None:
    # The server reads its own directory on the same store, as a desk does beside the api-client command.
    own = ApiClientDirectory(writer.engine, engine.record)
    server = ApiServer(ApiSettings(port=0), engine=engine, clients=own, reload_seconds=0.05)
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, headers=bearer(tokens["viewer"])) as client:
            assert (await client.get("/v1/orders")).status_code == 200
            directory.disable("viewer", by=ADMIN)
            for _ in range(100):
                if (await client.get("/v1/orders")).status_code == 401:
                    break
                await asyncio.sleep(0.02)
            else:
                pytest.fail("the disabled client was still served")
    finally:
        await server.stop()


class _Watched(ApiServer):
    """Notes the engine's lifecycle when the desk stops the service."""

    engine_at_stop: Lifecycle | None = None

    async def stop(self) -> None:
        if self.context is not None:
            self.engine_at_stop = self.context.engine.lifecycle
        await super().stop()


async def test_a_desk_serves_the_api_and_stops_it_before_the_engine(tmp_path: Path) -> None:
    cover_today(tmp_path)
    service = _Watched(ApiSettings(port=0))
    options = DeskOptions(
        command="test", database_url=f"sqlite:///{tmp_path / 'bulwark.db'}", instruments=3,
        paper=PaperConfig(tick_interval_ms=None), calendar=load_effective(tmp_path), services=(service,),
    )
    async with Desk(options) as desk:
        assert service.context is not None and service.context.desk is desk
        async with httpx.AsyncClient(base_url=service.url) as client:
            assert (await client.get("/v1/health/live")).status_code == 200
        writer = desk.writer
        assert writer is not None
        store = writer.engine
    assert service.engine_at_stop is Lifecycle.RUNNING
    kinds = [r["event_type"] for r in rows(store)]
    assert kinds.index("api.serving") < kinds.index("api.stopped") < kinds.index("app.stop")


async def test_a_desk_runs_on_when_the_api_cannot_start(tmp_path: Path) -> None:
    cover_today(tmp_path)
    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        service = ApiServer(ApiSettings(port=taken.getsockname()[1]))
        options = DeskOptions(
            command="test", database_url=f"sqlite:///{tmp_path / 'bulwark.db'}", instruments=3,
            paper=PaperConfig(tick_interval_ms=None), calendar=load_effective(tmp_path), services=(service,),
        )
        async with Desk(options) as desk:
            assert desk.running_engine.running
            assert service.context is None
            writer = desk.writer
            assert writer is not None
            store = writer.engine
    finally:
        taken.close()
    alerts = [json.loads(str(r["payload"])) for r in rows(store) if r["event_type"] == AuditEventType.ALERT_RAISED]
    assert any(a["level"] == "CRITICAL" and "the port is in use" in a["message"] for a in alerts), alerts


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made now (never a committed file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # Fixed bounds, wide: OpenSSL checks them against the machine's real clock, whatever a test fakes.
        .not_valid_before(dt.datetime(2000, 1, 1, tzinfo=dt.UTC)).not_valid_after(dt.datetime(2099, 1, 1, tzinfo=dt.UTC))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "api-cert.pem", folder / "api-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption(),
    ))
    return cert_path, key_path


async def test_a_token_in_the_stream_query_never_reaches_uvicorns_log(
    engine: Engine, directory: ApiClientDirectory, tokens: dict[str, str], caplog: pytest.LogCaptureFixture,
) -> None:
    # uvicorn.error writes "WebSocket /v1/stream?token=... [accepted]" at INFO whatever access_log says.
    # caplog's handler has none of app.logs' redaction: the server's own filter is what is tested.
    caplog.set_level(logging.DEBUG, logger="uvicorn")
    token = tokens["viewer"]
    server = ApiServer(ApiSettings(port=0), engine=engine, clients=directory)
    await server.start()
    try:
        url = server.url.replace("http", "ws", 1) + f"/v1/stream?token={token}&types=alert"
        async with connect(url, proxy=None, open_timeout=5) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "hello"
        logging.getLogger("uvicorn.error").info("a stray %s", token)  # a bare token, wherever it comes from
    finally:
        await server.stop()
    messages = [record.getMessage() for record in caplog.records if record.name.startswith("uvicorn")]
    assert any("token=<hidden>" in m and "[accepted]" in m for m in messages), messages
    assert "a stray <hidden>" in messages
    assert not any(token in m or token[4:12] in m for m in messages), messages
    assert all(not logging.getLogger(name).filters for name in UVICORN_LOGGERS), "the filter outlived the server"


async def test_a_client_disabled_in_the_desk_is_refused_at_once(tmp_path: Path) -> None:
    cover_today(tmp_path)
    # A reload far away: only the desk's own directory, shared with the server, can refuse at once.
    service = ApiServer(ApiSettings(port=0), reload_seconds=3600)
    options = DeskOptions(
        command="test", database_url=f"sqlite:///{tmp_path / 'bulwark.db'}", instruments=3,
        paper=PaperConfig(tick_interval_ms=None), calendar=load_effective(tmp_path), services=(service,),
    )
    async with Desk(options) as desk:
        _, token = desk.api_clients.add("watcher", frozenset({ApiScope.READ}), by=ADMIN)
        async with httpx.AsyncClient(base_url=service.url, headers=bearer(token)) as client:
            assert (await client.get("/v1/orders")).status_code == 200
            desk.api_clients.disable("watcher", by=ADMIN)
            assert (await client.get("/v1/orders")).status_code == 401


async def test_starting_and_stopping_twice_leaves_the_engine_bus_as_it_was(
    engine: Engine, directory: ApiClientDirectory,
) -> None:
    logs = []
    for _ in range(2):
        server = ApiServer(ApiSettings(port=0), engine=engine, clients=directory)
        await server.start()
        assert server.context is not None
        logs.append(server.context.alerts)
        await server.stop()
    engine.alert(AlertLevel.WARNING, "test", "after both stopped")
    assert [log.last_seq for log in logs] == [0, 0], "a stopped server's alert log still hears the bus"


class _SlowReload(ApiClientDirectory):
    """A directory whose reload takes a while in its worker thread, noting when it began and ended."""

    began = threading.Event()
    ended = threading.Event()

    def reload(self) -> None:
        self.began.set()
        time.sleep(0.5)
        super().reload()
        self.ended.set()


async def test_stop_waits_for_a_reload_in_its_worker_thread(engine: Engine, writer: AuditWriter) -> None:
    # The desk closes its store right after the service stops: no reload may still be reading it.
    clients = _SlowReload(writer.engine, engine.record)
    clients.began, clients.ended = threading.Event(), threading.Event()
    server = ApiServer(ApiSettings(port=0), engine=engine, clients=clients, reload_seconds=0.01)
    await server.start()
    try:
        assert await asyncio.to_thread(clients.began.wait, 5)
    finally:
        await server.stop()
    assert clients.ended.is_set(), "stop returned while a reload was still reading the store"


async def test_a_server_that_fails_to_start_says_why_and_leaves_nothing_behind(
    engine: Engine, directory: ApiClientDirectory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[AlertLog] = []

    class _Noted(AlertLog):
        def __init__(self, bus: EventBus, *, keep: int = 1000) -> None:
            super().__init__(bus, keep=keep)
            made.append(self)

    async def failing_startup(self: object, sockets: object = None) -> None:
        raise RuntimeError("startup broke")

    monkeypatch.setattr(server_module, "AlertLog", _Noted)
    monkeypatch.setattr(server_module._DeskServer, "startup", failing_startup)
    server = ApiServer(ApiSettings(port=0), engine=engine, clients=directory)
    with pytest.raises(ApiServeError, match="did not start .*RuntimeError: startup broke"):
        await server.start()
    engine.alert(AlertLevel.WARNING, "test", "after the failed start")
    assert [log.last_seq for log in made] == [0], "the failed server's alert log still hears the bus"
    assert all(not logging.getLogger(name).filters for name in UVICORN_LOGGERS), "the log filter outlived the start"
