"""The rules openapi/devstack.yaml fixes for every implementation, written once for both apps.

Each app keeps its own models (code_first's hand-written, api_first's generated); what an answer
must be is decided here:

- `service_info`: the service document of `GET /` (name, implementation, version, links);
- `metrics_response`: `GET /metrics`, the Prometheus text of the app's metrics;
- `health_report`: `/health/all` and `/health/{service}`: 200 when healthy, else 503 with
  `Retry-After` (`HEALTH_RETRY_AFTER_SECONDS`); an unknown service is 404;
- `item_created`: a created item's `Location` header (201 is the route's status);
- `cache_written`: a cache PUT is 201 when it created the key, 200 when it replaced it.
"""

from __future__ import annotations

from typing import Any

from fastapi import Response

from devstack_client import DevStackClient, HealthReport, NotFound

SERVICE_NAME = "devstack-core"
SERVICE_LINKS: dict[str, str] = {
    "self": "/",
    "health": "/health",
    "health_all": "/health/all",
    "metrics": "/metrics",
}
HEALTH_RETRY_AFTER_SECONDS = 5
# The two headers as openapi/devstack.yaml declares them (for routes declared in code).
HEALTH_RETRY_AFTER_HEADER: dict[str, Any] = {
    "Retry-After": {
        "description": "Seconds to wait before checking again.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}
LOCATION_HEADER: dict[str, Any] = {
    "Location": {
        "description": "The absolute path of the created resource.",
        "required": True,
        "schema": {"type": "string", "format": "uri-reference"},
    }
}


def service_info(implementation: str, version: str) -> dict[str, Any]:
    """The body of `GET /` (`serviceInfo`), for the app's own model to validate."""
    return {
        "name": SERVICE_NAME,
        "implementation": implementation,
        "version": version,
        "links": dict(SERVICE_LINKS),
    }


def metrics_response(stack: DevStackClient) -> Response:
    """`GET /metrics` (`serviceMetrics`): the app's metrics in Prometheus's text format."""
    body, content_type = stack.metrics.render()
    return Response(body, media_type=content_type)


async def health_report(
    stack: DevStackClient, response: Response, service: str | None = None
) -> HealthReport:
    """Every dependency's check (or `service`'s alone), with the answer's status set on
    `response`: 200 when healthy, else 503 with Retry-After. An unknown service is NotFound."""
    if service is not None and service not in stack.health_checker.probes:
        raise NotFound(f"there is no dependency named {service!r}")
    report = await stack.health(None if service is None else [service])
    response.status_code = report.http_status
    if report.http_status == 503:
        response.headers["Retry-After"] = str(HEALTH_RETRY_AFTER_SECONDS)
    return report


def item_location(backend: str, item_id: str) -> str:
    """The path of an item, as the `Location` of its creation says it."""
    return f"/examples/{backend}/items/{item_id}"


def item_created(response: Response, backend: str, item_id: str) -> None:
    """The `Location` header of a created item's 201 answer."""
    response.headers["Location"] = item_location(backend, item_id)


def cache_written(response: Response, *, created: bool) -> None:
    """A cache PUT's status: 201 when the key was created, 200 when its value was replaced."""
    response.status_code = 201 if created else 200
