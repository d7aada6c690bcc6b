"""The apps' server, run for real on a free port: asyncio's event loop by default (uvloop's when
chosen), httptools' parser (with the parse-error problem documents and the header-block limit),
no uvicorn access line and exactly one of our own per request, with the request id (issue 15)."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import structlog
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from devstack_client import DevStackClient, Metrics, configure_logging
from devstack_client.redaction import redactor
from devstack_web import WebSettings, contract_router, create_app, edge
from devstack_web.edge import _log_access
from devstack_web.server import (
    MAX_HEAD_BYTES,
    Admission,
    ProblemHttpToolsProtocol,
    _configs,
    run,
)
from tests.support import free_port, wait_for

router = contract_router()


@router.get("/examples/stream")
async def stream() -> StreamingResponse:
    async def parts() -> AsyncIterator[bytes]:
        for part in (b"one,", b"two,", b"three"):
            yield part

    return StreamingResponse(parts(), media_type="text/plain")


@router.delete("/examples/nothing", status_code=204)
async def nothing() -> None:
    return None


@router.get("/examples/loop")
async def loop_kind() -> dict[str, str]:
    return {"loop": type(asyncio.get_running_loop()).__module__}


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "healthy"}


# What the /examples/held route has seen: requests that entered it, and the event releasing them.
HELD: dict[str, Any] = {}
# Set by each held request: a request must not find it set by another one.
SET_BY_A_REQUEST: contextvars.ContextVar[str] = contextvars.ContextVar("set_by_a_request")


@router.get("/examples/held")
async def held() -> dict[str, str]:
    HELD["entered"] += 1
    found = SET_BY_A_REQUEST.get("nothing")
    SET_BY_A_REQUEST.set("a held request")
    await HELD["release"].wait()
    return {"found": found}


class FakeClient:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def fake_client(metrics: Metrics) -> DevStackClient:
    return cast(DevStackClient, FakeClient(metrics))  # what create_app uses of a client


def test_both_listeners_use_httptools_and_no_uvicorn_access_log(tmp_path: Path) -> None:
    for name in ("cert.pem", "key.pem"):
        (tmp_path / name).write_text("x")
    settings = WebSettings(tls_cert_file=tmp_path / "cert.pem", tls_key_file=tmp_path / "key.pem")
    app = create_app("code_first", [router], settings=settings)
    configs = _configs(app, settings)
    assert len(configs) == 2
    for config in configs:
        assert config.http is ProblemHttpToolsProtocol
        assert config.access_log is False
        assert config.lifespan == "off"


async def exchange(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


@pytest.mark.parametrize("event_loop", ["asyncio", "uvloop"])
def test_served_with_httptools_and_one_access_line_on_either_loop(
    event_loop: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the app's own handler on the root logger, as in the app (pytest's capture handler
    # would send the access line through logging's slower path instead).
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    port = free_port()
    settings = WebSettings(http_port=port)
    app = create_app("code_first", [router], settings=settings, client_factory=fake_client)
    seen: dict[str, Any] = {}

    async def main() -> None:
        from devstack_web import serve_async

        server = asyncio.create_task(serve_async(app, settings))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def answer_once_up() -> httpx.Response | None:
                try:
                    return await client.get("/examples/loop", headers={"X-Request-ID": "t-1"})
                except httpx.TransportError:
                    return None  # not listening yet

            answer = await wait_for(answer_once_up, 10, "the server to listen", interval=0.05)
            seen["loop"] = answer.json()["loop"]
            seen["id"] = answer.headers["x-request-id"]
            # The head is written with the first body message: every kind of answer is whole.
            for _ in range(3):  # on one kept connection
                streamed = await client.get("/examples/stream")
                assert streamed.text == "one,two,three"
                assert streamed.headers["transfer-encoding"] == "chunked"
                head = await client.head("/examples/loop")
                assert head.status_code == 200
                assert head.content == b""
                assert int(head.headers["content-length"]) == len(answer.content)
                empty = await client.delete("/examples/nothing")
                assert empty.status_code == 204
                assert empty.content == b""
        seen["garbage"] = await exchange(port, b"GARBAGE\r\n\r\n")
        big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n"
        seen["big"] = await exchange(port, big)
        os.kill(os.getpid(), signal.SIGTERM)  # serve_async's own handler stops both servers
        await asyncio.wait_for(server, 10)

    run(main(), event_loop)
    assert seen["loop"].split(".")[0] == event_loop, seen
    assert seen["id"] == "t-1"
    for raw in (seen["garbage"], seen["big"]):
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400"), raw[:200]
        assert b"content-type: application/problem+json" in head.lower()
        assert json.loads(body)["detail"] == "The request is not valid HTTP/1.1."

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    serving = [line for line in lines if line.get("event") == "serving"]
    assert serving
    assert serving[0]["loop"] == event_loop
    assert serving[0]["http"] == "ProblemHttpToolsProtocol"
    access = [line for line in lines if line.get("logger") == "devstack_web.access"]
    assert len(access) == 10, access  # the parse errors never reached the app
    assert access[0]["request_id"] == "t-1"
    assert access[0]["path"] == "/examples/loop"
    assert access[0]["status"] == 200
    assert access[0]["method"] == "GET"
    assert access[0]["duration_ms"] >= 0
    assert not [line for line in lines if line.get("logger") == "uvicorn.access"]


def test_the_fast_access_line_is_the_line_logging_would_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The access line rendered by edge.py has the fields, order and redaction of the same line
    through structlog and logging (used when another handler is on the root logger)."""
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    redactor.add("s3cr3t-value-for-the-test")
    scope: dict[str, Any] = {
        "path": "/examples/cache/s3cr3t-value-for-the-test",
        "query_string": b"dsn=postgres://u:pw@h/db",
        "client": ("127.0.0.1", 5000),
        "http_version": "1.1",
    }
    lines = []
    for extra_handler in (False, True):
        stream = io.StringIO()
        configure_logging("INFO", stream=stream)
        if extra_handler:
            logging.getLogger().addHandler(logging.NullHandler())
        with structlog.contextvars.bound_contextvars(request_id="hvs.AAAAAAAAAAAAAAAAAAAAAAAA"):
            _log_access(scope, "GET", 404, 0.0125)
        lines.append(json.loads(stream.getvalue()))
    fast, slow = lines
    assert list(fast) == list(slow)
    fast.pop("timestamp"), slow.pop("timestamp")
    assert fast == slow
    assert fast["path"] == "/examples/cache/********"
    assert fast["query"] == "dsn=postgres://***@h/db"
    assert fast["request_id"] == "[REDACTED TOKEN]"


@pytest.mark.parametrize(
    ("method", "scope", "context"),
    [
        ("GET", {"path": "/examples/cache/k1", "client": ("127.0.0.1", 5000)}, {}),
        (
            "PURGE",  # not a usual method: redacted as a text
            {"path": '/caf\u00e9/\u2603/"q"/\\/\x00\t\n', "query_string": b'a="b"&c=\\\xff'},
            {"request_id": "0f4f6a8e-1b7c-4c1e-9a51-3f1f5d1c2a7b"},
        ),
        (
            "DELETE",
            {"path": "/x", "client": ("::1", 1), "http_version": "2"},
            {
                "request_id": "caller-chosen/id=1",
                "count": 3,
                "ratio": 0.25,
                "flag": True,
                "nothing": None,
                "items": [1, "two", {"three": 3.0}],
                "password": "hunter2-is-a-secret",  # a secret-looking key: masked
                "not_a_number": float("nan"),
                "an_object": object,  # str() of it, as default=str writes it
                "status": "a bound variable never repeats a field of the line",
            },
        ),
    ],
)
def test_the_access_line_is_the_json_of_its_fields(
    method: str, scope: dict[str, Any], context: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`_access_line` joins its parts by hand: the same text, character for character, as
    encoding the line's dict the way structlog's JSONRenderer does."""
    monkeypatch.setattr(edge, "utc_timestamp", lambda: "2026-11-29T06:00:00.000001Z")
    scope = {"http_version": "1.1", **scope}
    with structlog.contextvars.bound_contextvars(**context):
        line = edge._access_line(scope, method, 201, 0.0123456)
        bound = structlog.contextvars.get_contextvars()  # in the context's own order
    expected: dict[str, Any] = edge._access_fields(scope, method, 201, 0.0123456)
    expected["event"] = "request"
    for key, value in bound.items():
        if key not in expected:
            generated = isinstance(value, str) and edge._GENERATED.fullmatch(value)
            expected[key] = value if generated else redactor.redact(value, key)
    expected |= {"level": "info", "logger": "devstack_web.access"}
    expected["timestamp"] = "2026-11-29T06:00:00.000001Z"
    assert line == json.dumps(expected, default=str) + "\n"
    assert '"password": "********"' in line or "password" not in context


@pytest.mark.parametrize(
    "nanoseconds",
    [
        1_764_384_861_388_051_123,
        1_764_384_861_388_051_999,  # the same second again: the formatted second is reused
        1_764_384_862_000_000_000,  # a fraction of 0 is left out, as isoformat leaves it out
        1_764_384_862_000_001_000,
        1_764_384_860_999_999_999,  # an earlier second (the clock stepped back)
        0,
    ],
)
def test_the_access_line_s_timestamp_is_structlog_s(
    nanoseconds: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`utc_timestamp` writes what `TimeStamper(fmt="iso", utc=True)` writes: the datetime's
    isoformat in UTC with `Z`."""
    monkeypatch.setattr(time, "time_ns", lambda: nanoseconds)
    instant = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=nanoseconds // 1000)
    assert edge.utc_timestamp() == instant.isoformat().replace("+00:00", "Z")


HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


async def serving(app: FastAPI, settings: WebSettings, port: int) -> asyncio.Task[None]:
    """`serve_async(app)` in a task, returned once its HTTP `port` answers."""
    from devstack_web import serve_async

    server = asyncio.create_task(serve_async(app, settings))

    async def up() -> bytes | None:
        try:
            return await exchange(port, HEALTH)
        except OSError:
            return None  # not listening yet

    await wait_for(up, 10, "the server to listen", interval=0.05)
    return server


def test_requests_beyond_the_limit_wait_before_the_app(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With two places in the app, the third and fourth requests wait for them; /health answers
    meanwhile; a request whose client left while it waited never reaches the app; a request's
    logged duration counts its wait."""
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    admission = Admission(2)
    monkeypatch.setattr(ProblemHttpToolsProtocol, "admission", admission)
    port = free_port()
    settings = WebSettings(http_port=port)
    app = create_app("code_first", [router], settings=settings, client_factory=fake_client)
    seen: dict[str, Any] = {}
    request = b"GET /examples/held HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

    async def main() -> None:
        HELD.update(entered=0, release=asyncio.Event())
        server = await serving(app, settings, port)
        try:
            answers = [asyncio.create_task(exchange(port, request)) for _ in range(4)]
            await wait_for(
                lambda: _true(len(admission.waiting) == 2),
                10,
                "two requests waiting",
                interval=0.02,
                detail=lambda: (HELD["entered"], len(admission.waiting)),
            )
            queued_by = time.perf_counter()
            _, leaving = await asyncio.open_connection("127.0.0.1", port)
            leaving.write(request)
            await wait_for(lambda: _true(len(admission.waiting) == 3), 10, "a third", interval=0.02)
            leaving.close()
            await wait_for(
                lambda: _true(admission.waiting[-1][1].disconnected),
                10,
                "it to leave",
                interval=0.02,
            )
            seen["entered while held"] = HELD["entered"]
            health = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            seen["health while held"] = await exchange(port, health)
            await asyncio.sleep(0.1)  # each held request has waited at least this long
            seen["held for"] = time.perf_counter() - queued_by
            HELD["release"].set()
            seen["answers"] = await asyncio.wait_for(asyncio.gather(*answers), 10)
            seen["entered"] = HELD["entered"]
        finally:  # a failure above must not leave the held requests and the server running
            HELD["release"].set()
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(server, 10)

    run(main())
    assert seen["entered while held"] == 2
    assert seen["health while held"].startswith(b"HTTP/1.1 200 ")
    assert [a.split(b"\r\n", 1)[0] for a in seen["answers"]] == [b"HTTP/1.1 200 OK"] * 4
    found = [json.loads(a.partition(b"\r\n\r\n")[2])["found"] for a in seen["answers"]]
    assert found == ["nothing"] * 4, "a request started after another kept its own context"
    assert seen["entered"] == 4, "the request whose client left was not run"
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    held_ms = [
        line["duration_ms"]
        for line in lines
        if line.get("logger") == "devstack_web.access" and line["path"] == "/examples/held"
    ]
    assert len(held_ms) == 4
    assert min(held_ms) >= seen["held for"] * 1000, (held_ms, seen["held for"])
    assert (admission.running, len(admission.waiting)) == (0, 0)


async def _true(value: bool) -> bool:
    return value


# Modules whose objects a request creates on the server's side.
SERVER_SIDE = ("uvicorn", "starlette", "fastapi", "devstack_web", "devstack_client")


def test_a_request_leaves_no_reference_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reference counting frees everything a request made, on a new or a kept connection. A cycle
    per request is only freed by the garbage collector, which under many connections promotes it
    to older generations first: the wrapper that coalesces a response's head and body once held
    its request cycle that way, and a burst of 500 connections left code_first 60 MB larger
    (docs/apps.md#memory-after-a-burst-of-connections)."""
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    port = free_port()
    settings = WebSettings(http_port=port)
    app = create_app("code_first", [router], settings=settings, client_factory=fake_client)
    found: list[str] = []

    async def main() -> None:
        server = await serving(app, settings, port)
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector finds unreachable is kept in gc.garbage
        try:
            kept = b"GET /examples/loop HTTP/1.1\r\nHost: x\r\n\r\n" * 3
            for request in (
                kept + b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                b"GET /examples/stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                b"HEAD /examples/loop HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            ):
                answer = await exchange(port, request)
                assert answer.startswith(b"HTTP/1.1 "), answer[:100]
            await asyncio.sleep(0.1)  # each request's task has finished with its connection
            gc.collect()
            for thing in gc.garbage:
                module = getattr(thing, "__module__", None) or type(thing).__module__
                if isinstance(module, str) and module.startswith(SERVER_SIDE):
                    found.append(f"{type(thing).__qualname__} of {module}")
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(server, 10)

    run(main())
    assert found == []


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


@pytest.mark.parametrize("keep_alive", [True, False])
async def test_head_and_body_leave_in_one_write(keep_alive: bool) -> None:
    from uvicorn._types import HTTPScope
    from uvicorn.protocols.http.flow_control import FlowControl
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

    from devstack_web.server import _coalesce_head_and_body

    # Only what the cycle reads of a scope and a transport (a recording fake of the latter).
    recording = RecordingTransport()
    transport = cast(asyncio.Transport, recording)
    cycle = RequestResponseCycle(
        scope=cast("HTTPScope", {"type": "http", "method": "GET", "http_version": "1.1"}),
        transport=transport,
        flow=FlowControl(transport),
        logger=logging.getLogger("test"),
        access_logger=logging.getLogger("test.access"),
        access_log=False,
        default_headers=[],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: None,
    )
    _coalesce_head_and_body(cycle)
    await cycle.send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
    )
    assert recording.writes == []
    await cycle.send({"type": "http.response.body", "body": b"ok"})
    assert len(recording.writes) == 1
    assert recording.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert recording.writes[0].endswith(b"\r\n\r\nok")
    assert recording.closed is not keep_alive


@pytest.mark.parametrize(("setting", "module"), [("uvloop", "uvloop"), ("asyncio", "asyncio")])
def test_the_event_loop_setting(setting: str, module: str) -> None:
    async def kind() -> str:
        return type(asyncio.get_running_loop()).__module__.split(".")[0]

    assert run(kind(), setting) == module
    assert WebSettings().event_loop == "asyncio"  # uvloop's 4.3 MB buy less than 1.5x


def test_the_default_loop_is_asyncio_s() -> None:
    async def kind() -> str:
        return type(asyncio.get_running_loop()).__module__.split(".")[0]

    assert run(kind()) == "asyncio"


def test_asyncio_s_loop_does_not_load_uvloop() -> None:
    """uvloop is imported only when chosen: its module and libuv are 1.8 MB resident."""
    code = (
        "import asyncio, sys\n"
        "from devstack_web.server import run\n"
        "async def kind():\n"
        "    return type(asyncio.get_running_loop()).__module__\n"
        "print(run(kind(), 'asyncio'), 'uvloop' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["asyncio.unix_events", "False"], done.stderr
