"""Swagger UI and ReDoc work offline: every asset comes from the app, and headless Chromium
(with no network beyond loopback needed) renders every operation of the contract in /docs."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import tempfile

import httpx
import pytest

from tests.parity.implementations import PYTHON_APPS, app_url, load_spec, operations
from tests.support import StackUnderTest

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ASSET = re.compile(r"""(?:src|href)=["']([^"']+)["']""")
EXTERNAL = re.compile(r"""["'(](?:https?:)?//(?!127\.0\.0\.1|localhost)[^"' )]+""")


def dump_dom(url: str) -> str:
    with tempfile.TemporaryDirectory(prefix="devstack-chromium-") as profile:
        result = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=15000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def rendered_operation_ids(dom: str) -> set[str]:
    """operationIds of the operation blocks Swagger UI rendered (`id="operations-<tag>-<id>"`)."""
    return set(re.findall(r'id="operations-[A-Za-z0-9_]+-([A-Za-z0-9_]+)"', dom))


@pytest.mark.parametrize("app", PYTHON_APPS)
async def test_swagger_ui_renders_every_operation(stack: StackUnderTest, app: str) -> None:
    dom = await asyncio.to_thread(dump_dom, f"{app_url(stack, app)}/docs")
    assert "swagger-ui" in dom, dom[:2000]
    expected = {op for _, _, op in operations(load_spec())}
    rendered = rendered_operation_ids(dom)
    assert expected <= rendered, f"not rendered: {sorted(expected - rendered)}"
    assert 'class="opblock opblock-get' in dom
    assert "opblock-post" in dom
    assert "DevStack Core reference API" in dom


@pytest.mark.parametrize("app", PYTHON_APPS)
@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_use_no_cdn(stack: StackUnderTest, app: str, page: str) -> None:
    async with httpx.AsyncClient(base_url=app_url(stack, app), timeout=30) as client:
        response = await client.get(page)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/html")
        html = response.text
        external = EXTERNAL.findall(html)
        assert not external, f"{page} loads from elsewhere: {external}"
        assets = [a for a in ASSET.findall(html) if not a.startswith(("data:", "#"))]
        assert assets, f"{page} references no asset of its own"
        for asset in assets:
            loaded = await client.get(asset)
            assert loaded.status_code == 200, (asset, loaded.status_code)
            assert loaded.content, asset
            if asset.endswith(".js"):
                assert "javascript" in loaded.headers["content-type"], asset
        # The page's schema is served by the app too, and is the contract's.
        schema = await client.get("/openapi.json")
        assert schema.status_code == 200
        paths = set(schema.json()["paths"])
        assert paths == set(load_spec()["paths"]), sorted(paths ^ set(load_spec()["paths"]))
