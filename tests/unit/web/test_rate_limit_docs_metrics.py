"""Rate limit headers (with a fake limiter), offline docs, metrics by route template, CORS,
settings validation."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from devstack_web import WebSettings
from tests.support import check_problem
from tests.unit.web.sample_app import FakeLimiter, make_app


async def test_over_the_quota_is_429_with_the_ietf_fields(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    app.state.rate_limiter = FakeLimiter(limit=2, window_seconds=60, reset=30)
    first = await client.get("/examples/ok")
    assert first.status_code == 200
    assert first.headers["ratelimit-policy"] == '"default";q=2;w=60'
    assert first.headers["ratelimit"] == '"default";r=1;t=30'
    assert (await client.get("/examples/ok")).status_code == 200
    refused = await client.get("/examples/ok")
    body = check_problem(refused, 429)
    assert refused.headers["retry-after"] == "30"
    assert refused.headers["ratelimit"] == '"default";r=0;t=30'
    assert refused.headers["ratelimit-policy"] == '"default";q=2;w=60'
    assert re.fullmatch(r'"default";r=[0-9]+;t=[0-9]+', refused.headers["ratelimit"])
    assert body["detail"] == "Rate limit exceeded; retry after 30 seconds."
    assert app.state.stack.calls == ["ok", "ok"]  # the refused request never ran


async def test_only_examples_are_limited(app: FastAPI, client: httpx.AsyncClient) -> None:
    limiter = FakeLimiter(limit=0)
    app.state.rate_limiter = limiter
    for _ in range(3):
        response = await client.get("/health")
        assert response.status_code == 200
        assert "ratelimit" not in response.headers
    assert (await client.get("/examples/ok")).status_code == 429
    assert limiter.counts == {"127.0.0.1": 1}


async def test_a_failing_limiter_lets_requests_through(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    app.state.rate_limiter = FakeLimiter(fail=True)
    assert (await client.get("/examples/ok")).status_code == 200


async def test_disabled_means_no_429_and_no_headers(client: httpx.AsyncClient) -> None:
    for _ in range(5):
        response = await client.get("/examples/ok")
        assert response.status_code == 200
        assert "ratelimit" not in response.headers


async def test_docs_are_served_offline(client: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        response = await client.get(page)
        assert response.status_code == 200
        html = response.text
        assert "cdn" not in html.lower()
        assert "googleapis" not in html
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert assets
        for asset in assets:
            assert asset.startswith("/"), asset  # served by the app itself
            assert (await client.get(asset)).status_code == 200, asset
    assert (await client.get("/openapi.json")).status_code == 200


async def test_metrics_are_labelled_by_route_template(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await client.get("/examples/things/abc")
    await client.get("/examples/things/def")
    await client.post(
        "/examples/things", content=b"{oops", headers={"content-type": "application/json"}
    )
    text = app.state.metrics.render()[0].decode()
    assert 'route="/examples/things/{thing_id}",status="200"} 2.0' in text
    assert 'method="POST",route="/examples/things",status="400"} 1.0' in text
    assert "/examples/things/abc" not in text


async def test_cors_only_when_configured() -> None:
    plain = make_app()
    cors = make_app(cors_origins="http://localhost:3000")
    headers = {"Origin": "http://localhost:3000"}
    for app, expected in ((plain, None), (cors, "http://localhost:3000")):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            response = await c.get("/examples/raise/missing", headers=headers)
            assert response.headers.get("access-control-allow-origin") == expected
            if expected:
                assert "x-request-id" in response.headers["access-control-expose-headers"].lower()


@pytest.mark.parametrize(
    "bad",
    [
        {"rate_limit": -1},
        {"rate_window_seconds": 0},
        {"body_limit": 0},
        {"http_port": 70000},
        {"cors_origins": "localhost:3000"},
        {"cors_origins": "http://x/path"},
        {"tls_cert_file": "/nonexistent/cert.pem", "tls_key_file": "/nonexistent/key.pem"},
        {"tls_cert_file": "/etc/hostname"},
        {"http_port": 8000, "https_port": 8000},
        {"log_level": "LOUD"},
    ],
)
def test_bad_settings_fail_fast(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        WebSettings.model_validate(bad)


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVSTACK_API_CORS_ORIGINS", "http://a.test, https://b.test:8443")
    monkeypatch.setenv("DEVSTACK_API_RATE_LIMIT", "100")
    monkeypatch.setenv("DEVSTACK_API_HTTP_PORT", "8300")
    s = WebSettings()
    assert s.cors_origins == ["http://a.test", "https://b.test:8443"]
    assert s.rate_limit == 100
    assert s.rate_window_seconds == 60
    assert s.body_limit == 1_048_576
    assert s.ports("api_first") == (8300, 8444)
    assert WebSettings().ports("code_first") == (8300, 8443)
