"""`up` after `down` with a Redis node still loading its data: the cluster check waits for it.

A node restarted with a large AOF answers `LOADING ...` for a while (redis-cli exits 0 on that
error reply). Read as CLUSTER INFO, that reply has no slots, and `up` failed with "the cluster
is partly configured ... run `devstack reset --yes`", whose advice deletes every store's data.
Here a real cluster-enabled redis-server owns every slot and is restarted with a data set it
loads slowly (`key-load-delay`, Redis's own knob for this in its test suite), so the check
runs while the node is loading, every time.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack_cli.servers.redis import loaded_cluster_info
from devstack_cli.tools import require
from tests.support import free_port, wait_for_sync


def free_port_and_bus_port() -> int:
    """A free port whose cluster bus port (10000 above it) is free and exists too."""

    def candidate() -> int | None:
        port = free_port()
        if port + 10000 > 65535:
            return None
        with socket.socket() as bus:
            return port if bus.connect_ex(("127.0.0.1", port + 10000)) != 0 else None

    return wait_for_sync(candidate, 30, "a free port with a free bus port", interval=0)


def cli(port: int, *args: str) -> str:
    done = subprocess.run(
        [require("redis-cli"), "-p", str(port), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return done.stdout


@contextlib.contextmanager
def node(folder: Path, port: int, *extra: str) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [
            require("redis-server"),
            *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)),
            *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
            *("--save", "", "--appendonly", "no", "--daemonize", "no"),
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_answering(port: int) -> None:
    def listening() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    wait_for_sync(listening, 30, f"redis-server to listen on port {port}", interval=0.05)


def test_a_node_loading_its_data_is_waited_for_not_read_as_empty(tmp_path: Path) -> None:
    port = free_port_and_bus_port()
    with node(tmp_path, port):
        wait_answering(port)
        cli(port, "cluster", "addslotsrange", "0", "16383")
        wait_for_sync(  # writable from then on
            lambda: "cluster_state:ok" in cli(port, "cluster", "info"),
            60,
            "the one-node cluster to be ok",
            interval=0.1,
        )
        # Values big enough (and not compressible) that loading spans many event-processing steps.
        for i in range(40):
            assert cli(port, "set", f"key{i}", os.urandom(1500).hex()).strip() == "OK"
        cli(port, "save")
    # Each key now takes 50 ms to load (2 s in all), and the node answers while loading.
    slow = ("--key-load-delay", "50000", "--loading-process-events-interval-bytes", "1024")
    with node(tmp_path, port, *slow):
        wait_answering(port)
        assert cli(port, "cluster", "info").startswith("LOADING"), "the node answers mid-load"
        info = loaded_cluster_info(
            lambda: cli(port, "cluster", "info"), "the node", time.monotonic() + 60
        )
        assert info["cluster_slots_assigned"] == "16384"
        assert int(cli(port, "dbsize")) == 40


def test_another_error_reply_is_named() -> None:
    with pytest.raises(RuntimeError, match="NOAUTH Authentication required"):
        loaded_cluster_info(
            lambda: "NOAUTH Authentication required.\n", "the node", time.monotonic() + 60
        )
