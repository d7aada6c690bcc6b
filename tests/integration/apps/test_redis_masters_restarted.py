"""The Redis masters killed under load and replaced by the supervisor: as soon as the cluster is
whole again, every app's health check of Redis says healthy, on its first call, without a
restart. (Go's check used to fail on one dead pooled connection per master and call, and stayed
`unavailable` long after the masters were back, while its cache routes worked.)"""

from __future__ import annotations

import asyncio
import os
import signal

import httpx

from tests.support import StackUnderTest, wait_for

MASTERS = ("redis-1", "redis-2", "redis-3")
RECOVERY_TIMEOUT = 180.0  # generous: a loaded 2-core machine; no figure depends on it


def redis_processes(stack: StackUnderTest) -> tuple[str, dict[str, int | None]]:
    redis = stack.status()["services"]["redis"]
    return redis["state"], {p["name"]: p["pid"] for p in redis["processes"] if p["name"] in MASTERS}


async def test_redis_health_is_back_with_the_masters(
    apps: dict[str, httpx.AsyncClient], stack: StackUnderTest
) -> None:
    for name, client in apps.items():
        assert (await client.get("/health/redis")).status_code == 200, name
    # Connections to every master in every app's pools: concurrent writes of keys on all slots.
    await asyncio.gather(
        *(
            client.put(f"/examples/cache/restart-{i}", json={"value": "v"})
            for client in apps.values()
            for i in range(48)
        )
    )
    _, before = redis_processes(stack)
    for name, pid in before.items():
        assert pid is not None, name
        os.kill(pid, signal.SIGKILL)

    async def replaced() -> bool:
        state, now = await asyncio.to_thread(redis_processes, stack)
        return state == "healthy" and all(now[n] not in (None, before[n]) for n in MASTERS)

    async def cluster_ok() -> bool:
        cluster = stack.redis_cluster()
        try:
            info = await cluster.cluster_info()
            return bool(info.get("cluster_state") == "ok")
        except Exception:  # the cluster is still converging
            return False
        finally:
            await cluster.aclose()

    await wait_for(replaced, RECOVERY_TIMEOUT, "the supervisor to replace the Redis masters")
    await wait_for(cluster_ok, RECOVERY_TIMEOUT, "the cluster to be whole again")
    # No app was asked anything during the outage: its pools still hold the dead connections.
    answers = {name: await client.get("/health/redis") for name, client in apps.items()}
    assert {n: r.status_code for n, r in answers.items()} == dict.fromkeys(apps, 200), {
        n: r.text for n, r in answers.items()
    }
