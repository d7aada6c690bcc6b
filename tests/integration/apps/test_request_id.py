"""X-Request-ID end to end: a sane inbound id is echoed and logged; a bad one is replaced."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest

from tests.parity.compare import UUID4, assert_problem
from tests.parity.implementations import implementations_with
from tests.support import StackUnderTest, wait_for

pytestmark = pytest.mark.integration


def app_log(stack: StackUnderTest, app: str) -> Path:
    return stack.settings.state.log_file(app)


async def wait_for_log_line(log: Path, needle: str, timeout: float = 10) -> str:
    async def last_line() -> str:  # "" until the line is there
        text = await asyncio.to_thread(log.read_text, errors="replace")
        lines = [line for line in text.splitlines() if needle in line]
        return lines[-1] if lines else ""

    return await wait_for(last_line, timeout, f"{needle!r} in {log}", interval=0.2)


@pytest.mark.parametrize("app", implementations_with("request-log"))
async def test_inbound_request_id_is_echoed_and_logged(
    apps: dict[str, httpx.AsyncClient], stack: StackUnderTest, app: str
) -> None:
    client = apps[app]
    sent = f"it-apps-{uuid.uuid4()}"
    response = await client.get("/examples/postgres/query", headers={"X-Request-ID": sent})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == sent
    line = await wait_for_log_line(app_log(stack, app), sent)
    assert "/examples/postgres/query" in line, line

    missing = f"it-apps-missing-{uuid.uuid4()}"
    problem = assert_problem(
        await client.get("/examples/cache/it-apps-missing", headers={"X-Request-ID": missing}),
        404,
    )
    assert problem["request_id"] == missing
    await wait_for_log_line(app_log(stack, app), missing)


@pytest.mark.parametrize("app", implementations_with("request-log"))
async def test_bad_request_id_is_replaced_and_the_replacement_logged(
    apps: dict[str, httpx.AsyncClient], stack: StackUnderTest, app: str
) -> None:
    bad = f"bad id {uuid.uuid4()}"  # a space: not sane
    response = await apps[app].get("/examples/mysql/query", headers={"X-Request-ID": bad})
    assert response.status_code == 200
    replacement = response.headers["x-request-id"]
    assert UUID4.match(replacement), replacement
    line = await wait_for_log_line(app_log(stack, app), replacement)
    assert bad not in line
    text = await asyncio.to_thread(app_log(stack, app).read_text, errors="replace")
    assert bad not in text, "the refused id was logged as a request id"
