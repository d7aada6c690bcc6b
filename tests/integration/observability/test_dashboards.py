"""Issue 17, dashboards: the console templates under stack/observability/ render with data, as a
person sees them (headless Chromium), and the overview's screenshot is saved for the docs
(in DEVSTACK_TEST_SCREENSHOTS when set, else the test's temporary folder)."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack_cli.settings import repo_root
from devstack_cli.stack import stack as service_table
from devstack_cli.tools import require
from tests.integration.observability.support import PROFILE, ObservedStack
from tests.support import wait_for_sync

CONSOLES = repo_root() / "stack" / "observability" / "consoles"
PAGES = sorted(p.name for p in CONSOLES.glob("*.html"))
APIS = [s.name for s in service_table().in_profile(PROFILE) if s.kind == "api"]


def chromium(url: str, *extra: str) -> str:
    """Open `url` in headless Chromium, give its scripts time to draw, return the DOM."""
    with tempfile.TemporaryDirectory(prefix="devstack-chromium-") as profile:
        result = subprocess.run(
            [
                require("chromium"),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--window-size=1400,1400",
                "--virtual-time-budget=10000",
                *extra,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_there_are_dashboards() -> None:
    assert {"index.html", "redis.html", "postgres.html", "mariadb.html"} <= set(PAGES)


@pytest.mark.parametrize("page", PAGES)
def test_each_dashboard_renders_without_a_template_error(
    observed: ObservedStack, page: str
) -> None:
    response = httpx.get(f"{observed.prometheus}/consoles/{page}", timeout=30)
    assert response.status_code == 200, response.text[:2000]
    assert "error executing template" not in response.text
    assert "<no value>" not in response.text


# The database pages' shared header and "reachable" row (console_libraries/page.lib).
HEADERS = {
    "postgres.html": ('<h1 id="postgresql">PostgreSQL</h1>', "pg_up"),
    "mariadb.html": ('<h1 id="mariadb">MariaDB</h1>', "mysql_up"),
}


@pytest.mark.parametrize("page", sorted(HEADERS))
def test_the_database_pages_show_their_title_and_that_the_server_is_reachable(
    observed: ObservedStack, page: str
) -> None:
    heading, metric = HEADERS[page]
    wait_for_sync(lambda: observed.query(f"{metric} == 1"), 30, f"{metric} == 1 (first scrape)")
    text = httpx.get(f"{observed.prometheus}/consoles/{page}", timeout=30).text
    assert text.count(heading) == 1
    assert text.count('class="prom_lhs_menu row"') == 1  # the menu, once
    assert f"<tr><th>Server reachable ({metric})</th><td>yes</td></tr>" in text


def wait_for_requests(observed: ObservedStack) -> None:
    """Send requests to every API until Prometheus has a rate for each (two samples)."""
    rated: list[dict[str, Any]] = []

    def every_api_rated() -> bool:
        nonlocal rated
        for api in APIS:
            httpx.get(f"http://127.0.0.1:{observed.stack.port(api, 'http')}/", timeout=30)
        rated = observed.query("sum by (job) (rate(devstack_http_requests_total{route='/'}[5m]))")
        return {r["metric"]["job"] for r in rated if float(r["value"][1]) > 0} >= set(APIS)

    wait_for_sync(every_api_rated, 60, "a request rate for every API", 1, lambda: rated)


def test_the_overview_shows_every_target_and_every_api_in_a_browser(
    observed: ObservedStack, tmp_path: Path
) -> None:
    wait_for_requests(observed)
    url = f"{observed.prometheus}/consoles/index.html"
    dom = chromium(url, "--dump-dom")
    targets = re.search(r'<table[^>]*id="targets".*?</table>', dom, re.S)
    assert targets is not None, dom[:2000]
    assert targets.group(0).count('class="target-up"') == len(observed.query("up"))
    assert 'class="alert-danger target-down"' not in targets.group(0)
    routes = re.search(r'<table[^>]*id="routes".*?</table>', dom, re.S)
    assert routes is not None
    for api in APIS:
        assert f"<td>{api}</td>" in routes.group(0), f"{api} is not in the routes table"
    # The graphs are drawn by the console's scripts (Rickshaw), from Prometheus's API (the
    # errors graph stays empty while no API answered a 5xx).
    for graph, following in (("requestGraph", "errorGraph"), ("latencyGraph", "</body>")):
        drawn = dom[dom.index(f'id="{graph}"') : dom.index(following, dom.index(f'id="{graph}"'))]
        assert "<svg" in drawn, f"{graph} was not drawn"
    folder = Path(os.environ.get("DEVSTACK_TEST_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    shot = folder / "observability-overview.png"
    chromium(url, f"--screenshot={shot}")
    assert shot.stat().st_size > 10_000


def test_a_dashboard_that_does_not_parse_is_named_with_its_line(
    observed: ObservedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    """What `prometheus-consoles` does at each `up`: the file's path and the line are named."""
    from devstack_cli.servers.prometheus import check_consoles

    broken = CONSOLES / f"zz-test-broken-{os.getpid()}.html"
    broken.write_text('{{ template "head" . }}\n<p>\n{{ if }}\n')
    try:
        assert check_consoles(observed.stack.settings) == 1
    finally:
        broken.unlink()
    out = capsys.readouterr().out
    assert f"{broken}: HTTP 500" in out
    assert f"{broken.name}:3: missing value for if" in out
    assert check_consoles(observed.stack.settings) == 0
