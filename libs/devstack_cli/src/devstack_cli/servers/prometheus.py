"""Prometheus 2 (Debian's `prometheus` 2.42): the metrics store, its web UI and the dashboards.

Three processes:
- `prometheus-vault-token` logs in with Prometheus's own AppRole, writes the token to a file of
  mode 0600 and keeps it alive (renewed at two thirds of its TTL, a new login when renewal
  fails or the token reaches its maximum life). Vault's `/v1/sys/metrics` needs a token; the
  policy grants `read` on `sys/metrics` and nothing else. Prometheus reads the file at each
  scrape (`credentials_file`), so the token is never in its arguments or configuration.
- `prometheus` scrapes every service of the running profile (every API's `/metrics`, Vault,
  FerretDB's debug port, RabbitMQ's Prometheus plugin when its table entry has that port, and
  the exporters), every 5 s; its web UI and the console templates (the dashboards, files under
  `stack/observability/`) on 127.0.0.1 only, plain HTTP like the other local web UIs.
- `prometheus-consoles` (one-shot, once Prometheus is ready) asks for every dashboard once:
  Prometheus parses a console template only when it is asked for it, so a template that does
  not parse fails `up`, naming its file and line.

The configuration is generated at each start from the table and checked with `promtool`
before Prometheus starts: an error names the file and the line.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from devstack_cli.plan import Probe, ProcessSpec
from devstack_cli.servers.base import Exec, Launch, PlanContext
from devstack_cli.servers.observability import program
from devstack_cli.settings import Settings, repo_root, write_private
from devstack_cli.stack import Service, stack
from devstack_cli.vault import VaultError, login_as

SCRAPE_INTERVAL = "5s"
RETENTION = "7d"
TOKEN_KEEPER = 1  # `_serve prometheus --instance 1` is the Vault token keeper
CONSOLE_CHECK = 2  # `_serve prometheus --instance 2` renders every dashboard once
FOLDER = Path("stack") / "observability"


def token_file(settings: Settings) -> Path:
    return settings.state.service_dir("prometheus") / "vault-token"


def processes(ctx: PlanContext) -> list[ProcessSpec]:
    keeper = ctx.process(
        "prometheus-vault-token",
        Probe(exec=("test", "-s", str(token_file(ctx.settings)))),
        ctx.after(),
        instance=TOKEN_KEEPER,
    )
    server = ctx.process(
        "prometheus",
        Probe(http=f"http://127.0.0.1:{ctx.port('http')}/-/ready"),
        {**ctx.after(), keeper.name: "healthy"},
    )
    # Prometheus parses a console template when it is asked for it: each is asked once, so
    # that `up` fails on a dashboard that does not parse, naming its file and line.
    consoles = ctx.process(
        "prometheus-consoles",
        None,
        {server.name: "healthy"},
        instance=CONSOLE_CHECK,
        one_shot=True,
    )
    return [keeper, server, consoles]


# -- the scrape configuration ---------------------------------------------------------------


def running_profile(settings: Settings) -> str:
    try:
        return settings.state.profile_file.read_text().strip() or "observability"
    except FileNotFoundError:
        return "observability"


def _static(job: str, target: str, **extra: Any) -> dict[str, Any]:
    return {
        "job_name": job,
        "static_configs": [{"targets": [target], "labels": {"service": job}}],
        **extra,
    }


def scrape_configs(
    settings: Settings, services: list[Service], vault_metrics: bool = True
) -> list[dict[str, Any]]:
    """One job per service of the profile that has metrics; named by the service.

    `vault_metrics`: Vault serves the Prometheus format (its configuration has a `telemetry`
    stanza with `prometheus_retention_time`); without it, Vault's job is left out."""
    names = {s.name for s in services}
    table = stack()
    port = settings.port
    jobs: list[dict[str, Any]] = [
        _static("prometheus", f"127.0.0.1:{port(table.service('prometheus').ports['http'])}")
    ]
    for service in services:
        if service.kind == "api":
            jobs.append(_static(service.name, f"127.0.0.1:{port(service.ports['http'])}"))
    if "vault" in names and vault_metrics:
        jobs.append(
            _static(
                "vault",
                f"127.0.0.1:{port(table.service('vault').ports['api'])}",
                metrics_path="/v1/sys/metrics",
                params={"format": ["prometheus"]},
                authorization={"credentials_file": str(token_file(settings))},
            )
        )
    if "mongodb" in names:
        mongodb = table.service("mongodb")
        jobs.append(
            _static(
                "mongodb",
                f"127.0.0.1:{port(mongodb.ports['debug'])}",
                metrics_path="/debug/metrics",
            )
        )
    if "rabbitmq" in names and "prometheus" in table.service("rabbitmq").ports:
        rabbitmq = table.service("rabbitmq")
        # Per object: one series per queue (the queues dashboard), a few hundred on a dev stack.
        target = f"127.0.0.1:{port(rabbitmq.ports['prometheus'])}"
        jobs.append(_static("rabbitmq", target, metrics_path="/metrics/per-object"))
    for exporter in ("postgres_exporter", "mysqld_exporter", "victorialogs", "vlagent"):
        if exporter in names:
            service = table.service(exporter)
            jobs.append(_static(exporter, f"127.0.0.1:{port(service.ports['http'])}"))
    if "redis_exporter" in names:
        from devstack_cli.servers.redis_exporter import targets

        exporter = f"127.0.0.1:{port(table.service('redis_exporter').ports['http'])}"
        jobs.append(
            {
                "job_name": "redis",
                "metrics_path": "/scrape",
                "static_configs": [{"targets": targets(settings), "labels": {"service": "redis"}}],
                # The node's URL becomes the `target` parameter and the `instance` label; the
                # request goes to the exporter.
                "relabel_configs": [
                    {"source_labels": ["__address__"], "target_label": "__param_target"},
                    {"source_labels": ["__param_target"], "target_label": "instance"},
                    {"target_label": "__address__", "replacement": exporter},
                ],
            }
        )
        jobs.append(_static("redis_exporter", exporter))
    return jobs


def config(
    settings: Settings, services: list[Service], vault_metrics: bool = True
) -> dict[str, Any]:
    return {
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "scrape_timeout": "4s",
            "evaluation_interval": SCRAPE_INTERVAL,
        },
        "scrape_configs": scrape_configs(settings, services, vault_metrics),
    }


def vault_serves_prometheus(ctx: Launch) -> bool:
    """Asked with Prometheus's own token: does Vault answer its metrics in Prometheus's format?
    (400 "prometheus is not enabled" when Vault's configuration has no telemetry stanza.)
    hvac has no method for sys/metrics: the facade sends it through hvac's adapter. Only an
    answer leaves the metrics out: a failed login, or no answer, fails the launcher (the
    supervisor starts it again), as a silent omission would last until the next start."""
    vault = ctx.vault  # outside the `try`: a refused login is not a missing telemetry stanza
    try:
        vault.call("GET", "sys/metrics?format=prometheus")
    except VaultError as exc:
        if not exc.answered:
            raise
        print(f"Vault's metrics are left out: {exc}", flush=True)
        return False
    return True


def check_config(path: Path) -> None:
    """`promtool check config`: a bad file fails the start with promtool's words (file, line)."""
    result = subprocess.run(
        [program("promtool"), "check", "config", str(path)], capture_output=True, text=True
    )
    if result.returncode:
        raise RuntimeError(
            f"{path} is not a valid Prometheus configuration:\n{result.stdout}{result.stderr}"
        )


def launch(ctx: Launch) -> Exec:
    if ctx.instance == TOKEN_KEEPER:
        keep_vault_token(ctx.settings)
        raise SystemExit(0)
    if ctx.instance == CONSOLE_CHECK:
        raise SystemExit(check_consoles(ctx.settings))
    services = stack().in_profile(running_profile(ctx.settings))
    path = ctx.dir / "prometheus.yml"
    # JSON is YAML: written as JSON, no YAML writer needed.
    vault_metrics = any(s.name == "vault" for s in services) and vault_serves_prometheus(ctx)
    path.write_text(json.dumps(config(ctx.settings, services, vault_metrics), indent=2) + "\n")
    check_config(path)
    folder = repo_root() / FOLDER
    return Exec(
        [
            program("prometheus"),
            f"--config.file={path}",
            f"--storage.tsdb.path={ctx.dir / 'data'}",
            f"--storage.tsdb.retention.time={RETENTION}",
            f"--web.listen-address=127.0.0.1:{ctx.port('http')}",
            f"--web.console.templates={folder / 'consoles'}",
            f"--web.console.libraries={folder / 'console_libraries'}",
            "--log.format=json",
        ]
    )


# -- the dashboards ---------------------------------------------------------------------------


def check_consoles(settings: Settings) -> int:
    """Ask the running Prometheus for every console template; 1 when one fails, with
    Prometheus's words (`template: __console_/NAME.html:LINE: ...`) and the file's path."""
    folder = repo_root() / FOLDER / "consoles"
    port = settings.port(stack().service("prometheus").ports["http"])
    failed = 0
    for page in sorted(folder.glob("*.html")):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.request("GET", f"/consoles/{page.name}")
            response = conn.getresponse()
            body = response.read().decode(errors="replace")
        finally:
            conn.close()
        if response.status == 200:
            print(f"{page.name}: rendered", flush=True)
        else:
            failed += 1
            print(f"{page}: HTTP {response.status}: {body.strip()[:500]}", flush=True)
    return 1 if failed else 0


# -- the Vault token keeper -----------------------------------------------------------------


def keep_vault_token(settings: Settings) -> None:
    """Keep a token of Prometheus's AppRole in `token_file` until SIGTERM, then revoke it."""
    path = token_file(settings)
    path.unlink(missing_ok=True)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    vault = None
    backoff = 1.0
    try:
        while True:
            try:
                if vault is None:
                    vault = login_as(settings, "prometheus")
                    write_private(path, f"{vault.token}\n")
                    print("logged in; token written", flush=True)
                    ttl = vault.token_ttl()
                time.sleep(max(ttl * 2 / 3, 1))
                renewed = vault.renew_token()
                if int(renewed) < ttl * 2 / 3:  # the maximum life is near: log in again
                    vault = None
                else:
                    ttl = int(renewed)
                backoff = 1.0
            except (OSError, RuntimeError, KeyError, TypeError) as exc:
                print(
                    f"Vault: {type(exc).__name__}; logging in again in {backoff:.0f}s", flush=True
                )
                vault = None
                time.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
    finally:
        if vault is not None:
            with contextlib.suppress(Exception):
                vault.revoke_token()
        path.unlink(missing_ok=True)
        sys.stdout.flush()
