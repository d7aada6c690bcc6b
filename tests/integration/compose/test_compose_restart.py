"""A server container whose process dies is started again by the engine, and Vault comes back
unsealed; a compose stack whose containers all died (the engine killed under it, a reboot) comes
back with one `devstack up`, with its data."""

from __future__ import annotations

import os
import signal
from typing import Any

from devstack_cli.vault import Vault
from tests.integration.compose.support import COMPOSE_PROFILE, ComposeStack, devstack
from tests.support import wait_for_sync

MARK = "secret/data/compose-restart-proof"
RECOVERY_TIMEOUT = 300.0  # generous: a loaded 2-core machine; no figure depends on it


def container(stack: ComposeStack, service: str) -> dict[str, Any]:
    return next(
        c
        for c in stack.containers()
        if c["Config"]["Labels"]["com.docker.compose.service"] == service
    )


def all_healthy(stack: ComposeStack) -> bool:
    report = stack.status()
    return all(s["state"] == "healthy" for s in report["services"].values())


def test_vault_killed_in_its_container_is_restarted_and_unsealed(
    compose_stack: ComposeStack,
) -> None:
    before = container(compose_stack, "vault")
    os.kill(before["State"]["Pid"], signal.SIGKILL)  # a crash, not `docker stop`

    def restarted_and_healthy() -> bool:
        now = container(compose_stack, "vault")
        return now["RestartCount"] > before["RestartCount"] and all_healthy(compose_stack)

    wait_for_sync(
        restarted_and_healthy, RECOVERY_TIMEOUT, "Vault to be restarted and unsealed", interval=1.0
    )
    assert compose_stack.creds("postgres")["password"]
    logs = compose_stack.docker("logs", container(compose_stack, "vault-bootstrap")["Id"])
    assert (logs.stdout + logs.stderr).count("unsealing Vault") >= 2


def test_up_brings_back_a_stack_whose_containers_were_all_killed(
    compose_stack: ComposeStack,
) -> None:
    with Vault.for_settings(compose_stack.settings, compose_stack.root_token()) as vault:
        vault.write(MARK, {"data": {"kept": "yes"}})

    running = [c["Id"] for c in compose_stack.containers() if c["State"]["Status"] == "running"]
    assert running
    compose_stack.docker("kill", *running)  # every container exited, none removed

    again = devstack(
        compose_stack, "up", "--engine", "compose", "--profile", COMPOSE_PROFILE, timeout=1200
    )
    assert again.returncode == 0, f"{again.stdout}\n{again.stderr}"
    report = compose_stack.status()
    unhealthy = {n: s["reason"] for n, s in report["services"].items() if s["state"] != "healthy"}
    assert not unhealthy

    with Vault.for_settings(compose_stack.settings, compose_stack.root_token()) as vault:
        kept = vault.read(MARK)
    assert kept is not None
    assert kept["data"]["data"] == {"kept": "yes"}
