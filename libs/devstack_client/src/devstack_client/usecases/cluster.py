"""The Redis Cluster described: nodes, slot ranges, state, and each node's INFO."""

from __future__ import annotations

from typing import Any

from devstack_client.errors import (
    DependencyUnavailable,
    NotFound,
)
from devstack_client.models import (
    ClusterInfo,
    ClusterSlots,
    NodeInfo,
    RedisNode,
    SlotAssignment,
    SlotCoverage,
    SlotRange,
)
from devstack_client.pools import (
    RedisPool,
)


def _address(raw: str) -> str:
    return raw.split("@", 1)[0]


class ClusterService:
    """Describe the Redis Cluster: its nodes, slot ranges, state, and each node's INFO."""

    def __init__(self, pool: RedisPool) -> None:
        self._pool = pool

    async def nodes(self) -> list[RedisNode]:
        """Every node the cluster knows, sorted by address."""
        async with self._pool.operation("cluster nodes") as cluster:
            raw = await cluster.cluster_nodes()
        return parse_cluster_nodes(raw)

    async def slots(self) -> ClusterSlots:
        """Every slot range with its master and replicas, and the coverage."""
        nodes = await self.nodes()
        by_id = {n.id: n for n in nodes}
        replicas: dict[str, list[str]] = {}
        for node in nodes:
            if node.role == "replica" and node.master_id in by_id:
                replicas.setdefault(node.master_id, []).append(node.address)
        ranges = sorted(
            (
                SlotAssignment(
                    start=r.start,
                    end=r.end,
                    master=node.address,
                    replicas=sorted(replicas.get(node.id, [])),
                )
                for node in nodes
                if node.role == "master"
                for r in node.slots
            ),
            key=lambda a: a.start,
        )
        assigned = sum(r.end - r.start + 1 for r in ranges)
        return ClusterSlots(
            ranges=ranges,
            coverage=SlotCoverage(slots_assigned=assigned, all_covered=assigned == 16384),
        )

    async def info(self) -> ClusterInfo:
        """CLUSTER INFO."""
        async with self._pool.operation("cluster info") as cluster:
            info = await cluster.cluster_info()
        counters = {
            name: int(info.get(name, 0))
            for name in ClusterInfo.model_fields
            if name != "cluster_state"
        }
        return ClusterInfo(cluster_state=str(info.get("cluster_state", "fail")), **counters)

    async def node_info(self, node: str) -> NodeInfo:
        """INFO of one node named `host:port` as the cluster lists it; any other name is
        NotFound without a connection attempt."""
        listed = {n.address for n in await self.nodes()}
        if node not in listed:
            raise NotFound(f"the cluster has no node {node!r}")
        host, port = node.rsplit(":", 1)
        async with self._pool.operation("node info") as cluster:
            target = cluster.get_node(host=host, port=int(port))
            if target is None:
                raise DependencyUnavailable("redis", f"node {node} is not connected")
            info: dict[str, Any] = await cluster.info(target_nodes=target)
            keys = await cluster.dbsize(target_nodes=target)
        role = str(info.get("role", "master"))
        return NodeInfo(
            node=node,
            role="replica" if role in ("slave", "replica") else "master",
            redis_version=str(info.get("redis_version", "")),
            uptime_seconds=int(info.get("uptime_in_seconds", 0)),
            connected_clients=int(info.get("connected_clients", 0)),
            used_memory_bytes=int(info.get("used_memory", 0)),
            keys=int(keys),
        )


def parse_cluster_nodes(raw: Any) -> list[RedisNode]:
    """CLUSTER NODES, as redis-py parses it (address -> fields) or as raw text lines."""
    if isinstance(raw, bytes):
        raw = raw.decode()
    if isinstance(raw, str):
        raw = _parse_cluster_nodes_text(raw)
    if not isinstance(raw, dict):
        raise DependencyUnavailable("redis", "unexpected CLUSTER NODES answer")
    nodes: list[RedisNode] = []
    for address, fields in raw.items():
        flags = [f for f in str(fields.get("flags", "")).split(",") if f]
        slots = sorted(
            (
                SlotRange(start=int(pair[0]), end=int(pair[-1]))
                for pair in fields.get("slots") or []
                if pair and not str(pair[0]).startswith("[")
            ),
            key=lambda s: s.start,
        )
        master_id = str(fields.get("master_id") or "-")
        failing = "fail" in flags or "fail?" in flags
        nodes.append(
            RedisNode(
                id=str(fields.get("node_id", "")),
                address=_address(str(address)),
                role="master" if "master" in flags else "replica",
                master_id=None if master_id == "-" else master_id,
                connected=bool(fields.get("connected")) and not failing,
                slots=slots,
            )
        )
    return sorted(nodes, key=lambda n: n.address)


def _parse_cluster_nodes_text(raw: str) -> dict[str, dict[str, Any]]:
    """`<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot> ...` lines."""
    parsed: dict[str, dict[str, Any]] = {}
    for line in raw.strip().splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        parsed[_address(parts[1])] = {
            "node_id": parts[0],
            "flags": parts[2],
            "master_id": parts[3],
            "connected": parts[7] == "connected",
            "slots": [spec.split("-") for spec in parts[8:] if not spec.startswith("[")],
        }
    return parsed
