"""A compose stack whose containers all died (the engine killed under it, a reboot) comes back
with one `devstack up`, with its data."""

from __future__ import annotations

from devstack_cli.vault import Vault
from tests.integration.compose.conftest import COMPOSE_PROFILE, ComposeStack, devstack

MARK = "secret/data/compose-restart-proof"


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
