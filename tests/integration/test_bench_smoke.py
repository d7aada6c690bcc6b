"""`devstack bench --smoke` against the session's stack: every implementation that is up is
measured on every scenario, and the outputs (results.json, results.md, the charts) are complete
and well-formed. No speed is asserted: only that each figure exists and is consistent.

Also: the bad inputs (one line, exit 2 or 3), `--compare`, and the pure parts of the harness
(Redis slot mapping, comparison) that the figures depend on.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import signal
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from devstack_cli.bench import SCENARIOS, SMOKE_CONNECTIONS, key_slot, keys_on_every_master
from devstack_cli.bench_report import compare
from devstack_cli.stack import stack as service_table
from tests.support import StackUnderTest, wait_for_sync

pytestmark = pytest.mark.integration

BASELINES = {
    "starlette": {"health"},
    "starlette_redis": {"health", "cache_get"},
    "starlette_postgres": {"postgres_get"},
}
CHARTS = ("requests_per_second.png", "latency_p99.png", "memory_startup.png")


def apis_up(stack: StackUnderTest) -> list[str]:
    services = stack.status()["services"]
    return [
        name
        for name, svc in services.items()
        if service_table().service(name).kind == "api" and svc["state"] == "healthy"
    ]


@pytest.fixture(scope="module")
def smoke(stack: StackUnderTest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    apis = apis_up(stack)
    assert apis, "the session's stack runs no implementation"
    folder = tmp_path_factory.mktemp("bench") / "run"
    result = stack.cli("bench", "--smoke", "--output", str(folder), timeout=1200)
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    report: dict[str, Any] = json.loads((folder / "results.json").read_text())
    return {"report": report, "folder": folder, "apis": apis, "stdout": result.stdout}


def test_every_implementation_that_is_up_runs_every_scenario(smoke: dict[str, Any]) -> None:
    report = smoke["report"]
    assert report["schema"] == 1
    assert report["mode"] == "smoke"
    assert report["errors"] == []
    assert set(smoke["apis"]) <= set(report["targets"])
    assert set(BASELINES) <= set(report["targets"])
    runs = {(r["target"], r["scenario"], r["connections"]): r for r in report["results"]}
    expected = [(api, s, c) for api in smoke["apis"] for s in SCENARIOS for c in SMOKE_CONNECTIONS]
    expected += [(b, s, c) for b, ss in BASELINES.items() for s in ss for c in SMOKE_CONNECTIONS]
    missing = [key for key in expected if key not in runs]
    assert not missing, missing
    assert len(runs) == len(report["results"]) == len(expected)
    for key, run in runs.items():
        assert run["requests"] > 0, key
        # Every answer was counted by status, and the statuses add up to the answers.
        assert sum(run["statuses"].values()) == run["requests"], key
        assert run["non_2xx"] == sum(
            n for status, n in run["statuses"].items() if not 200 <= int(status) < 300
        )
        assert run["requests_per_second"] == pytest.approx(
            run["requests"] / run["seconds"], rel=0.01
        )
        lat = run["latency_ms"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99.9"] <= lat["max"], key
        assert run["cpu_seconds"] >= 0, key
        assert run["cpu_seconds_per_1000_requests"] >= 0, key
        assert set(run["socket_errors"]) == {"connect", "read", "write", "timeout"}
        if key[0] in BASELINES:  # a floor answers what the APIs answer: the entry, the item
            assert run["non_2xx"] == 0, (key, run["statuses"])


def test_memory_start_up_ceilings_and_the_machine_are_recorded(
    smoke: dict[str, Any], stack: StackUnderTest
) -> None:
    report = smoke["report"]
    for name, target in report["targets"].items():
        assert target["rss_mb"]["idle"] > 0, name
        assert target["rss_mb"]["after_run"] > 0, name
        assert target["startup_s"]["runs"]
        assert all(t > 0 for t in target["startup_s"]["runs"])
        assert target["startup_s"]["median"] > 0, name
    for api in smoke["apis"]:
        assert report["targets"][api]["implementation"] == api
        assert report["targets"][api]["kind"] == "implementation"
    # The baselines run on the Python APIs' server settings: their event loop too.
    assert report["targets"]["code_first"]["event_loop"] == "asyncio"  # the default
    for name in BASELINES:
        assert report["targets"][name]["event_loop"] == "asyncio", name
    for tool in ("redis-benchmark", "pgbench"):
        rows = [c for c in report["ceilings"] if c["tool"] == tool]
        assert sorted(r["connections"] for r in rows) == list(SMOKE_CONNECTIONS), tool
        assert all(r["requests_per_second"] > 0 for r in rows), tool
    machine = report["machine"]
    assert machine["cores"] >= 1
    assert machine["kernel"]
    assert machine["cpu_model"]
    assert report["versions"]["wrk"]
    assert report["versions"]["redis"]
    assert len(report["commit"]) >= 7
    assert report["stack"]["port_offset"] == stack.port_offset
    # Nothing of the machine's paths goes into a file meant to be committed.
    text = (smoke["folder"] / "results.json").read_text()
    assert str(stack.state_dir) not in text
    assert str(Path.home()) not in text


def test_markdown_and_charts_are_written(smoke: dict[str, Any]) -> None:
    folder: Path = smoke["folder"]
    markdown = (folder / "results.md").read_text()
    for name in smoke["report"]["targets"]:
        assert f"| {name} |" in markdown
    for scenario in SCENARIOS:
        assert f"| {scenario} |" in markdown
    assert "## Ceilings" in markdown
    assert "## Memory and start-up" in markdown
    assert "## Headlines" in markdown
    assert "answers other than 2xx" in markdown
    for chart in CHARTS:
        data = (folder / chart).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", chart
        width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
        assert width > 300, chart
        assert height > 200, chart
    # The summary table is printed at the end.
    assert "requests/s (p99 ms)" in smoke["stdout"]


def test_the_run_leaves_the_stack_as_it_found_it(
    smoke: dict[str, Any], stack: StackUnderTest
) -> None:
    # Every implementation was restarted for its start-up time and is healthy again.
    assert set(smoke["apis"]) <= set(apis_up(stack))
    report = smoke["report"]
    for name in BASELINES:  # the baselines are stopped
        with pytest.raises(httpx.TransportError):
            httpx.get(report["targets"][name]["url"] + "/health", timeout=2)
    for api in smoke["apis"]:
        target = report["targets"][api]
        fixtures = target["fixtures"]
        with httpx.Client(base_url=target["url"], timeout=30) as client:
            queue = client.get(f"/examples/messaging/queues/{fixtures['queue']}")
            assert queue.status_code == 404, queue.text
            for path in fixtures["cache_keys"][:3] + fixtures["items"][:3]:
                assert client.get(path).status_code == 404, path


def test_compare_flags_a_regression(smoke: dict[str, Any], tmp_path: Path) -> None:
    report = smoke["report"]
    same_rows, same_regressions = compare(report, report, 10)
    assert same_rows
    assert not same_regressions
    worse = copy.deepcopy(report)
    worse["results"][0]["requests_per_second"] /= 2
    rows, regressions = compare(report, worse, 10)
    assert len(regressions) == 1
    assert "requests/s" in regressions[0]
    assert len(rows) == len(same_rows)
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(json.dumps(report))
    new.write_text(json.dumps(worse))
    result = cli(tmp_path, "bench", "--compare", str(old), "--against", str(new))
    assert result.returncode == 0, result.stderr
    assert "REGRESSION" in result.stdout
    assert "1 regression" in result.stdout


def test_https_loads_the_tls_ports(
    stack: StackUnderTest, smoke: dict[str, Any], tmp_path: Path
) -> None:
    # Also: --compare after a run, against the smoke run (the figures they share).
    earlier = smoke["folder"] / "results.json"
    result = stack.cli(
        "bench",
        "--compare",
        str(earlier),
        "--https",
        "--smoke",
        "--scenarios",
        "health",
        "--connections",
        "1",
        "--no-ceilings",
        "--startup-rounds",
        "0",
        "--output",
        str(tmp_path / "run"),
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "run" / "results.json").read_text())
    assert report["settings"]["scheme"] == "https"
    for api in apis_up(stack):
        assert report["targets"][api]["url"] == f"https://127.0.0.1:{stack.port(api, 'https')}"
    assert "baselines" in report["skipped"]  # they serve HTTP only
    assert all(r["requests"] > 0 for r in report["results"])
    assert [r["non_2xx"] for r in report["results"]] == [0] * len(report["results"])
    compared = (tmp_path / "run" / "compare.md").read_text()
    for api in apis_up(stack):
        assert f"| {api} health c=1 requests/s |" in compared


def test_isolated_starts_a_stack_of_its_own_and_removes_it(
    stack: StackUnderTest, tmp_path: Path
) -> None:
    # --isolated moves every port at least 500 above the offset it is given (further when a
    # port there is taken): clear of the session's stack.
    result = cli(
        tmp_path / "unused-state",
        "bench",
        "--isolated",
        "--smoke",
        "--scenarios",
        "health",
        "--connections",
        "1",
        "--no-ceilings",
        "--no-baselines",
        "--startup-rounds",
        "0",
        "--output",
        str(tmp_path / "run"),
        offset=stack.port_offset + 200,
    )
    assert result.returncode == 0, f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    report = json.loads((tmp_path / "run" / "results.json").read_text())
    assert report["stack"]["port_offset"] >= stack.port_offset + 700
    assert {"code_first", "api_first"} <= set(report["targets"])
    state = re.search(r"isolated stack \(profile \w+\) in (\S+)", result.stdout)
    assert state is not None, result.stdout
    assert not Path(state.group(1)).exists()  # stopped and deleted
    port = report["targets"]["code_first"]["url"]
    with pytest.raises(httpx.TransportError):
        httpx.get(port + "/health", timeout=2)


# -- bad input ---------------------------------------------------------------------------------


def cli(state_dir: Path, *args: str, offset: int = 0) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DEVSTACK_STATE_DIR": str(state_dir),
        "DEVSTACK_PORT_OFFSET": str(offset),
    }
    return subprocess.run(
        [sys.executable, "-m", "devstack_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:"), result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--implementations", "cobol"], "unknown implementation cobol"),
        (["--scenarios", "health,teleport"], "unknown scenario teleport"),
        (["--connections", "0"], "--connections"),
    ],
)
def test_bad_names_are_one_line_and_exit_2(
    stack: StackUnderTest, args: list[str], words: str
) -> None:
    result = stack.cli("bench", *args)
    assert result.returncode == 2
    assert words in one_error_line(result)


def test_a_stack_that_is_not_up_is_one_line_and_exit_3(tmp_path: Path) -> None:
    result = cli(tmp_path / "state", "bench", "--smoke", offset=3)
    assert result.returncode == 3
    assert "not running" in one_error_line(result)


def test_an_implementation_outside_the_running_profile_is_exit_3(stack: StackUnderTest) -> None:
    running = set(stack.status()["services"])
    outside = [
        s.name
        for s in service_table().services.values()
        if s.kind == "api" and s.name not in running
    ]
    if not outside:
        pytest.skip("every implementation of the table runs in this stack")
    result = stack.cli("bench", "--implementations", outside[0])
    assert result.returncode == 3
    assert "not part of the running stack" in one_error_line(result)


# -- signals and a second bench ----------------------------------------------------------------


def start_long_bench(stack: StackUnderTest, api: str, folder: Path) -> subprocess.Popen[str]:
    """A bench of `api` and the baselines on `health` long enough to be signalled mid-run."""
    options = ["--scenarios", "health", "--connections", "1", "--duration", "15", "--warmup", "0"]
    options += ["--no-ceilings", "--startup-rounds", "0", "--output", str(folder)]
    return subprocess.Popen(
        [sys.executable, "-m", "devstack_cli", "bench", "--implementations", api, *options],
        env=stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def baselines_of(bench: psutil.Process) -> list[psutil.Process]:
    return [c for c in bench.children() if "starlette_app.py" in " ".join(c.cmdline())]


def loading(bench: psutil.Process, port: int) -> bool:
    """wrk, started by the bench, is loading the server on `port` (so it is pinned now)."""
    return any(
        c.name() == "wrk" and f"http://127.0.0.1:{port}" in c.cmdline() for c in bench.children()
    )


@dataclass
class LoadingBench:
    """A bench started by `bench_loading_an_api`, and what it was started against."""

    bench: subprocess.Popen[str]
    api: str
    server: psutil.Process
    affinity: list[int]  # the server's before the bench
    baselines: list[psutil.Process]


@contextlib.contextmanager
def bench_loading_an_api(stack: StackUnderTest, folder: Path) -> Iterator[LoadingBench]:
    """A long bench, once wrk loads an API (which is pinned then); killed if still running at
    the end, and the API's threads given back the affinity they had, whatever happened."""
    api = apis_up(stack)[0]
    server = psutil.Process(int(stack.processes()[api]["pid"]))
    affinity = server.cpu_affinity()
    port = stack.port(api, "http")
    bench = start_long_bench(stack, api, folder)
    try:
        process = psutil.Process(bench.pid)
        wait_for_sync(lambda: loading(process, port), 180, f"the bench to load {api}")
        baselines = baselines_of(process)
        assert len(baselines) == len(BASELINES)
        yield LoadingBench(bench, api, server, affinity, baselines)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
        for thread in server.threads():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(thread.id, affinity)


def test_a_signalled_bench_cleans_up_and_a_second_one_is_refused(
    stack: StackUnderTest, tmp_path: Path
) -> None:
    with bench_loading_an_api(stack, tmp_path / "first") as run:
        bench, server, affinity = run.bench, run.server, run.affinity
        assert server.cpu_affinity() != affinity or len(affinity) == 1  # pinned while loaded

        second = stack.cli("bench", "--smoke", "--output", str(tmp_path / "second"))
        assert second.returncode == 3, second.stdout + second.stderr
        assert f"another `devstack bench` (pid {bench.pid})" in one_error_line(second)

        bench.send_signal(signal.SIGTERM)
        out, err = bench.communicate(timeout=120)
        assert bench.returncode == 128 + signal.SIGTERM, out + err
        assert "interrupted by SIGTERM" in err
        assert "Traceback" not in out + err
        _, alive = psutil.wait_procs(run.baselines, timeout=30)
        assert not alive, "baselines outlived the bench"
        assert server.cpu_affinity() == affinity, "the bench left the server pinned"
        assert not (tmp_path / "first" / "results.json").exists()


def test_a_killed_bench_leaves_no_baseline_and_the_next_one_unpins(
    stack: StackUnderTest, tmp_path: Path
) -> None:
    with bench_loading_an_api(stack, tmp_path / "killed") as run:
        run.bench.kill()  # SIGKILL: no cleanup of its own
        run.bench.communicate(timeout=30)
        _, alive = psutil.wait_procs(run.baselines, timeout=30)
        assert not alive, "baselines outlived a killed bench"
        if len(run.affinity) > 1:
            assert run.server.cpu_affinity() != run.affinity  # left pinned: nothing undid it

        options = ["--scenarios", "health", "--connections", "1", "--duration", "1"]
        options += ["--warmup", "0", "--no-ceilings", "--startup-rounds", "0", "--no-baselines"]
        after = stack.cli(
            "bench", "--implementations", run.api, *options, "--output", str(tmp_path / "next")
        )
        assert after.returncode == 0, after.stdout + after.stderr
        if len(run.affinity) > 1:
            assert "its CPU affinity is restored" in after.stdout
        assert run.server.cpu_affinity() == run.affinity


# -- the pure parts ---------------------------------------------------------------------------


def test_key_slot_is_redis_cluster_hashing() -> None:
    # Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
    assert key_slot("123456789") == 0x31C3
    assert key_slot("foo") == 12182
    assert key_slot("{user1000}.following") == key_slot("user1000")


def test_cache_keys_land_on_every_master() -> None:
    ranges: list[dict[str, Any]] = [
        {"start": 0, "end": 5460, "master": "a"},
        {"start": 5461, "end": 10922, "master": "b"},
        {"start": 10923, "end": 16383, "master": "c"},
    ]
    keys = keys_on_every_master(ranges, 4, "bench:x:")
    assert len(keys) == 12 == len(set(keys))
    owners = [
        next(r["master"] for r in ranges if r["start"] <= key_slot("cache:" + k) <= r["end"])
        for k in keys
    ]
    assert sorted(owners) == ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    assert owners[:3] in (["a", "b", "c"],)  # interleaved: consecutive requests spread
