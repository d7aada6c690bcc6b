"""Parity: every implementation answers the same request with the same status, headers and body.

Bodies are compared in full after normalising what legitimately differs (request ids, ids and
timestamps of new items, latencies, server time, the implementation's name). Data written through
one implementation is read through every other. Every error path of the contract is exercised,
and each error is checked against the contract's problem document as well as across
implementations. Add an implementation with DEVSTACK_PARITY_URLS="name=url,...".
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from tests.parity.compare import (
    ALWAYS_VOLATILE,
    ITEM_VOLATILE,
    NODE_INFO_VOLATILE,
    UUID4,
    assert_problem,
    assert_request_id,
    assert_same,
    describe,
    media_type,
    schema_errors,
)
from tests.parity.implementations import (
    IMPLEMENTATIONS,
    STACK_APPS,
    having,
    load_spec,
    operations,
)
from tests.support import StackUnderTest

pytestmark = pytest.mark.integration

DATABASES = ("postgres", "mysql", "mongodb")
DEPENDENCIES = ("vault", "postgres", "mysql", "mongodb", "redis", "rabbitmq")
SECRET_SERVICES = ("postgres", "mysql", "mongodb", "redis", "rabbitmq")
MAX_BODY = 1_048_576
PAIRS = [(a, b) for a, b in itertools.permutations(IMPLEMENTATIONS, 2)]
PAIR_IDS = [f"{a}->{b}" for a, b in PAIRS]


@dataclass(frozen=True)
class Call:
    """One request, sent as is to every implementation."""

    id: str
    method: str
    path: str
    status: int
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    schema: str | None = None  # the contract schema the body must match (errors: Problem)
    instance: str | None = None  # the problem's expected `instance`, when the path is plain
    error_field: tuple[str, str] | None = None  # a 422 must name this (location, field)
    gap: str | None = None  # a behaviour some implementations lack yet (implementations.GAPS)


async def send(client: httpx.AsyncClient, call: Call) -> httpx.Response:
    kwargs: dict[str, Any] = {"headers": call.headers, "params": call.params}
    if call.json is not None:
        kwargs["json"] = call.json
    elif call.content is not None:
        kwargs["content"] = call.content
    return await client.request(call.method, call.path, **kwargs)


async def ask_all(clients: dict[str, httpx.AsyncClient], call: Call) -> dict[str, httpx.Response]:
    return {name: await send(client, call) for name, client in clients.items()}


OVERSIZED = json.dumps({"name": "x", "quantity": 1, "padding": "a" * MAX_BODY}).encode()
assert len(OVERSIZED) > MAX_BODY


JSON = {"content-type": "application/json"}
TEXT = {"content-type": "text/plain"}


def body_error_calls(prefix: str, method: str, path: str, valid: dict[str, Any]) -> list[Call]:
    """413, 415, 400 and the ordering between them, for an operation that takes a JSON body."""
    good = json.dumps(valid).encode()
    return [
        Call(f"{prefix}-413", method, path, 413, content=OVERSIZED, headers=JSON),
        Call(f"{prefix}-413-before-415", method, path, 413, content=OVERSIZED, headers=TEXT),
        Call(f"{prefix}-415-text", method, path, 415, content=good, headers=TEXT),
        Call(f"{prefix}-415-missing", method, path, 415, content=good),
        Call(
            f"{prefix}-415-form",
            method,
            path,
            415,
            content=b"name=x",
            headers={"content-type": "application/x-www-form-urlencoded"},
        ),
        Call(f"{prefix}-415-before-400", method, path, 415, content=b"{not json", headers=TEXT),
        Call(f"{prefix}-400-malformed", method, path, 400, content=b'{"name": ', headers=JSON),
        Call(f"{prefix}-400-empty", method, path, 400, content=b"", headers=JSON),
        Call(f"{prefix}-422-array", method, path, 422, content=b"[]", headers=JSON),
        Call(f"{prefix}-422-string", method, path, 422, content=b'"x"', headers=JSON),
        Call(f"{prefix}-422-null", method, path, 422, content=b"null", headers=JSON),
    ]


def static_calls() -> list[Call]:
    calls = [
        Call("service-info", "GET", "/", 200, schema="ServiceInfo"),
        Call("liveness", "GET", "/health", 200, schema="Liveness"),
        Call("health-all", "GET", "/health/all", 200, schema="HealthReport"),
        Call("health-unknown", "GET", "/health/nope", 404, instance="/health/nope"),
        Call("health-case", "GET", "/health/Postgres", 404, instance="/health/Postgres"),
        Call("route-unknown", "GET", "/nope", 404, instance="/nope"),
        Call("examples-unknown", "GET", "/examples/nope", 404, instance="/examples/nope"),
        Call("method-not-allowed", "PATCH", "/examples/postgres/items", 405),
        Call("method-not-allowed-root", "DELETE", "/", 405),
        Call("secret-unknown", "GET", "/examples/vault/secret/nope", 404),
        Call("secret-admin", "GET", "/examples/vault/secret/admin", 404),
        Call("secret-admin-key", "GET", "/examples/vault/secret/admin/postgres", 404),
        Call("secret-vault", "GET", "/examples/vault/secret/vault", 404),
        Call("secret-app", "GET", "/examples/vault/secret/code_first", 404),
        Call("secret-key-unknown", "GET", "/examples/vault/secret/postgres/nokey", 404),
        Call("cluster-nodes", "GET", "/examples/redis/cluster/nodes", 200, "RedisClusterNodes"),
        Call("cluster-slots", "GET", "/examples/redis/cluster/slots", 200, "RedisClusterSlots"),
        Call("cluster-info", "GET", "/examples/redis/cluster/info", 200, "RedisClusterInfo"),
        Call("node-foreign", "GET", "/examples/redis/nodes/10.0.0.1:6379/info", 404),
        Call("node-nonsense", "GET", "/examples/redis/nodes/nonsense/info", 404),
        Call("cache-missing", "GET", "/examples/cache/parity-missing", 404),
        Call("cache-delete-missing", "DELETE", "/examples/cache/parity-missing", 404),
        Call(
            "cache-key-space", "GET", "/examples/cache/bad%20key", 422, error_field=("path", "key")
        ),
        Call("cache-key-star", "GET", "/examples/cache/a*b", 422, error_field=("path", "key")),
        Call("cache-key-long", "GET", "/examples/cache/" + "k" * 201, 422),
        Call("cache-key-dots", "GET", "/examples/cache/a..b", 404),
        Call("cache-put-bad-key", "PUT", "/examples/cache/a*b", 422, json={"value": "v"}),
        Call("cache-put-no-value", "PUT", "/examples/cache/p", 422, json={}),
        Call("cache-put-int", "PUT", "/examples/cache/p", 422, json={"value": 1}),
        Call(
            "cache-put-ttl-0",
            "PUT",
            "/examples/cache/p",
            422,
            json={"value": "v", "ttl_seconds": 0},
        ),
        Call(
            "cache-put-ttl-big",
            "PUT",
            "/examples/cache/p",
            422,
            json={"value": "v", "ttl_seconds": 86401},
            error_field=("body", "/ttl_seconds"),
        ),
        Call("cache-put-extra", "PUT", "/examples/cache/p", 422, json={"value": "v", "x": 1}),
        *body_error_calls("cache-put", "PUT", "/examples/cache/p", {"value": "v"}),
        Call("queue-missing", "GET", "/examples/messaging/queues/parity.missing", 404),
        Call("consume-missing", "GET", "/examples/messaging/queues/parity.missing/messages", 404),
        Call("queue-amq", "GET", "/examples/messaging/queues/amq.parity", 422),
        Call("queue-star", "GET", "/examples/messaging/queues/bad*name", 422),
        Call("queue-long", "GET", "/examples/messaging/queues/" + "q" * 201, 422),
        Call(
            "publish-amq",
            "POST",
            "/examples/messaging/queues/amq.parity/messages",
            422,
            json={"a": 1},
            error_field=("path", "queue"),
        ),
        *body_error_calls(
            "publish", "POST", "/examples/messaging/queues/parity.errors/messages", {"a": 1}
        ),
    ]
    for service in DEPENDENCIES:
        calls.append(Call(f"health-{service}", "GET", f"/health/{service}", 200, "HealthReport"))
    for service in SECRET_SERVICES:
        base = f"/examples/vault/secret/{service}"
        calls.append(Call(f"secret-{service}", "GET", base, 200, "VaultSecret"))
        calls.append(Call(f"secret-{service}-user", "GET", f"{base}/user", 200, "VaultSecretValue"))
        calls.append(
            Call(f"secret-{service}-password", "GET", f"{base}/password", 200, "VaultSecretValue")
        )
    for db in DATABASES:
        items = f"/examples/{db}/items"
        calls += [
            Call(f"{db}-query", "GET", f"/examples/{db}/query", 200, "DatabaseQueryResult"),
            Call(
                f"{db}-get-missing",
                "GET",
                f"{items}/parity-missing",
                404,
                instance=f"{items}/parity-missing",
            ),
            Call(f"{db}-get-uuid", "GET", f"{items}/00000000-0000-4000-8000-000000000000", 404),
            Call(f"{db}-get-objectid", "GET", f"{items}/000000000000000000000000", 404),
            Call(f"{db}-delete-missing", "DELETE", f"{items}/parity-missing", 404),
            Call(
                f"{db}-limit-0",
                "GET",
                items,
                422,
                params={"limit": "0"},
                error_field=("query", "limit"),
            ),
            Call(f"{db}-limit-101", "GET", items, 422, params={"limit": "101"}),
            Call(f"{db}-limit-text", "GET", items, 422, params={"limit": "ten"}),
            Call(f"{db}-limit-negative", "GET", items, 422, params={"limit": "-1"}),
            Call(f"{db}-create-empty", "POST", items, 422, json={}, error_field=("body", "/name")),
            Call(f"{db}-create-name-empty", "POST", items, 422, json={"name": ""}),
            Call(f"{db}-create-name-long", "POST", items, 422, json={"name": "n" * 101}),
            Call(f"{db}-create-negative", "POST", items, 422, json={"name": "n", "quantity": -1}),
            Call(
                f"{db}-create-overflow",
                "POST",
                items,
                422,
                json={"name": "n", "quantity": 2147483648},
                error_field=("body", "/quantity"),
            ),
            Call(f"{db}-create-float", "POST", items, 422, json={"name": "n", "quantity": 1.5}),
            Call(
                f"{db}-create-string-qty", "POST", items, 422, json={"name": "n", "quantity": "3"}
            ),
            Call(f"{db}-create-unknown", "POST", items, 422, json={"name": "n", "colour": "red"}),
            *body_error_calls(f"{db}-create", "POST", items, {"name": "n"}),
        ]
    return calls


STATIC_CALLS = static_calls()


@pytest.mark.parametrize("call", STATIC_CALLS, ids=[c.id for c in STATIC_CALLS])
async def test_same_answer(clients: dict[str, httpx.AsyncClient], call: Call) -> None:
    if call.gap is not None:
        clients = having(clients, call.gap)
    responses = await ask_all(clients, call)
    for response in responses.values():
        assert_request_id(response)
        if call.status >= 400:
            problem = assert_problem(response, call.status, call.instance)
            if call.error_field is not None:
                found = {(e["location"], e["field"]) for e in problem["errors"]}
                assert call.error_field in found, (call.error_field, problem)
        else:
            assert response.status_code == call.status, describe(response)
            assert media_type(response) == "application/json", describe(response)
            if call.schema:
                errors = schema_errors(response.json(), call.schema)
                assert not errors, (errors, describe(response))
    assert_same(responses)


def test_every_operation_has_a_parity_call() -> None:
    """The static calls plus the round trips below touch every operation of the contract."""
    round_trips = {
        "postgresCreateItem", "postgresListItems", "postgresGetItem", "postgresDeleteItem",
        "mysqlCreateItem", "mysqlListItems", "mysqlGetItem", "mysqlDeleteItem",
        "mongodbCreateItem", "mongodbListItems", "mongodbGetItem", "mongodbDeleteItem",
        "cacheGet", "cachePut", "cacheDelete", "messagingGetQueue", "messagingConsume",
        "messagingPublish", "redisNodeInfo", "serviceMetrics",
    }  # fmt: skip
    templates = {
        "/": "serviceInfo",
        "/health": "healthLiveness",
        "/health/all": "healthAll",
    }
    covered = set(round_trips)
    for call in STATIC_CALLS:
        if call.path in templates:
            covered.add(templates[call.path])
        elif call.path.startswith("/health/"):
            covered.add("healthService")
        elif call.path.startswith("/examples/vault/secret/"):
            parts = call.path.split("/")
            covered.add("vaultGetSecretKey" if len(parts) == 6 else "vaultGetSecret")
        elif call.path.endswith("/query"):
            covered.add(call.path.split("/")[2] + "Query")
        elif call.path.startswith("/examples/redis/cluster/"):
            covered.add("redisCluster" + call.path.rsplit("/", 1)[1].capitalize())
    assert {op for _, _, op in operations(load_spec())} <= covered


# --- request ids ---


@pytest.mark.parametrize(
    "sent",
    ["parity-0123", "a.b_c:d+e/f=g-h", "x" * 128],
    ids=["plain", "every-allowed-character", "128-characters"],
)
async def test_sane_request_id_is_echoed(clients: dict[str, httpx.AsyncClient], sent: str) -> None:
    for name, client in clients.items():
        ok = await client.get("/", headers={"X-Request-ID": sent})
        assert ok.headers.get("x-request-id") == sent, (name, describe(ok))
        missing = await client.get("/examples/cache/parity-missing", headers={"X-Request-ID": sent})
        problem = assert_problem(missing, 404)
        assert problem["request_id"] == sent == missing.headers["x-request-id"], name


@pytest.mark.parametrize(
    "sent",
    ["has space", "x" * 129, "semi;colon", 'quote"d', ""],
    ids=["space", "129-characters", "semicolon", "quote", "empty"],
)
async def test_insane_request_id_is_replaced(
    clients: dict[str, httpx.AsyncClient], sent: str
) -> None:
    for name, client in clients.items():
        response = await client.get(
            "/examples/cache/parity-missing", headers={"X-Request-ID": sent}
        )
        problem = assert_problem(response, 404)
        generated = response.headers["x-request-id"]
        assert UUID4.match(generated), (name, generated)
        assert problem["request_id"] == generated


async def test_generated_request_ids_are_uuid4_and_unique(
    clients: dict[str, httpx.AsyncClient],
) -> None:
    for name, client in clients.items():
        ids = {(await client.get("/health")).headers["x-request-id"] for _ in range(5)}
        assert len(ids) == 5, (name, ids)
        assert all(UUID4.match(i) for i in ids), (name, ids)


# --- service info, health and metrics ---


async def test_service_info_names_each_implementation(
    clients: dict[str, httpx.AsyncClient],
) -> None:
    version = load_spec()["info"]["version"]
    for name, client in clients.items():
        info = (await client.get("/")).json()
        assert info["version"] == version
        if name in STACK_APPS:
            assert info["implementation"] == name


async def test_health_reports_every_dependency(clients: dict[str, httpx.AsyncClient]) -> None:
    for name, client in clients.items():
        report = (await client.get("/health/all")).json()
        assert set(report["checks"]) == set(DEPENDENCIES), name
        assert report["status"] == "healthy"
        for service in DEPENDENCIES:
            one = (await client.get(f"/health/{service}")).json()
            assert set(one["checks"]) == {service}, (name, one)


async def test_metrics_use_route_templates(clients: dict[str, httpx.AsyncClient]) -> None:
    for name, client in clients.items():
        await client.get("/examples/cache/parity-metrics-probe")
        response = await client.get("/metrics")
        assert response.status_code == 200, describe(response)
        assert (
            response.headers["content-type"]
            .replace(" ", "")
            .lower()
            .startswith("text/plain;version=0.0.4")
        ), (name, response.headers["content-type"])
        assert_request_id(response)
        text = response.text
        assert "# TYPE devstack_http_requests_total counter" in text, name
        assert "# TYPE devstack_http_request_duration_seconds histogram" in text, name
        samples = [line for line in text.splitlines() if line.startswith("devstack_http_")]
        assert any('route="/examples/cache/{key}"' in s and 'status="404"' in s for s in samples)
        assert not any("parity-metrics-probe" in s for s in samples), "raw paths in labels"


# --- databases: the same data through every implementation ---


@pytest.mark.parametrize("db", DATABASES)
async def test_create_is_the_same_everywhere(
    clients: dict[str, httpx.AsyncClient], db: str
) -> None:
    created: dict[str, httpx.Response] = {}
    replace: dict[str, dict[str, str]] = {}
    body = {"name": f"parité ✓ {db}", "quantity": 2147483647}
    for name, client in clients.items():
        response = await client.post(
            f"/examples/{db}/items",
            content=json.dumps(body).encode(),
            headers={"content-type": "application/json; charset=utf-8"},
        )
        assert response.status_code == 201, describe(response)
        assert not schema_errors(response.json(), "Item"), describe(response)
        item_id = response.json()["id"]
        assert response.headers["location"] == f"/examples/{db}/items/{item_id}"
        created[name] = response
        replace[name] = {item_id: "<id>"}
    try:
        assert_same(created, ALWAYS_VOLATILE | ITEM_VOLATILE, replace)
        # Defaults: quantity 0 when omitted.
        for name, client in clients.items():
            response = await client.post(f"/examples/{db}/items", json={"name": "defaults"})
            assert response.status_code == 201, describe(response)
            assert response.json()["quantity"] == 0, name
            await client.delete(response.headers["location"])
    finally:
        client = next(iter(clients.values()))
        for response in created.values():
            await client.delete(response.headers["location"])


@pytest.mark.parametrize("db", DATABASES)
@pytest.mark.parametrize(("writer", "reader"), PAIRS, ids=PAIR_IDS)
async def test_items_cross_implementation(
    clients: dict[str, httpx.AsyncClient], db: str, writer: str, reader: str
) -> None:
    w, r = clients[writer], clients[reader]
    name = f"from {writer} to {reader} {uuid.uuid4().hex[:8]}"
    created = await w.post(f"/examples/{db}/items", json={"name": name, "quantity": 7})
    assert created.status_code == 201, describe(created)
    item = created.json()
    location = created.headers["location"]
    try:
        got = await r.get(location)
        assert got.status_code == 200, describe(got)
        assert got.json() == item, "read back through another implementation, byte for byte"
        listed = await r.get(f"/examples/{db}/items", params={"limit": "100"})
        assert listed.status_code == 200, describe(listed)
        assert not schema_errors(listed.json(), "ItemList")
        ids = [i["id"] for i in listed.json()["items"]]
        assert item["id"] in ids
        # Newest first, by created_at then id: what each implementation lists is the same.
        assert (
            listed.json() == (await w.get(f"/examples/{db}/items", params={"limit": "100"})).json()
        )
        one = await r.get(f"/examples/{db}/items", params={"limit": "1"})
        assert len(one.json()["items"]) == 1
        deleted = await r.delete(location)
        assert deleted.status_code == 204, describe(deleted)
        assert deleted.content == b""
        assert_request_id(deleted)
        assert_problem(await w.get(location), 404, location)
        assert_problem(await w.delete(location), 404, location)
    finally:
        await w.delete(location)


async def test_list_order_is_the_same(clients: dict[str, httpx.AsyncClient]) -> None:
    """Items created within the same moment list in the same order through every implementation."""
    writer = next(iter(clients.values()))
    for db in DATABASES:
        made = []
        for i in range(3):
            response = await writer.post(f"/examples/{db}/items", json={"name": f"order {i}"})
            made.append(response.headers["location"])
        try:
            lists = {
                name: await client.get(f"/examples/{db}/items", params={"limit": "5"})
                for name, client in clients.items()
            }
            assert_same(lists, frozenset({"request_id"}))
            stamps = [  # compared as instants: ISO strings of different precision do not sort
                (dt.datetime.fromisoformat(i["created_at"]), i["id"])
                for i in next(iter(lists.values())).json()["items"]
            ]
            assert stamps == sorted(stamps, reverse=True), f"{db}: not newest first"
        finally:
            for location in made:
                await writer.delete(location)


# --- cache: every master, through every implementation ---


async def masters(client: httpx.AsyncClient) -> list[tuple[int, int, str]]:
    slots = (await client.get("/examples/redis/cluster/slots")).json()
    return [(r["start"], r["end"], r["master"]) for r in slots["ranges"]]


def key_on_each_master(prefix: str, ranges: list[tuple[int, int, str]]) -> dict[str, str]:
    """master address -> a cache key whose Redis key `cache:<key>` hashes into its slots."""
    found: dict[str, str] = {}
    for i in itertools.count():
        key = f"{prefix}-{i}"
        slot = key_slot(f"cache:{key}".encode())
        owner = next(m for start, end, m in ranges if start <= slot <= end)
        found.setdefault(owner, key)
        if len(found) == len({m for *_, m in ranges}):
            return found
    raise AssertionError("unreachable")


async def stored_on(stack: StackUnderTest, address: str, redis_key: str) -> bool:
    """Ask the master itself (no cluster redirection) whether it holds `redis_key`."""
    host, port = address.rsplit(":", 1)
    creds = stack.creds("redis")
    node = aioredis.Redis(
        host=host,
        port=int(port),
        username=creds.get("user", "default"),
        password=creds["password"],
        ssl=True,
        ssl_ca_certs=stack.ca_file,
    )
    try:
        return bool(await node.exists(redis_key))
    finally:
        await node.aclose()


@pytest.mark.parametrize(("writer", "reader"), PAIRS, ids=PAIR_IDS)
async def test_cache_keys_on_every_master_cross_implementation(
    clients: dict[str, httpx.AsyncClient], stack: StackUnderTest, writer: str, reader: str
) -> None:
    w, r = clients[writer], clients[reader]
    ranges = await masters(w)
    assert len({m for *_, m in ranges}) == 3, ranges
    keys = key_on_each_master(f"parity:{writer}:{reader}:{uuid.uuid4().hex[:6]}", ranges)
    try:
        for master, key in keys.items():
            path = f"/examples/cache/{key}"
            put = await w.put(path, json={"value": f"v of {key}", "ttl_seconds": 120})
            assert put.status_code == 201, describe(put)
            assert put.json() == {"key": key, "value": f"v of {key}", "ttl_seconds": 120}
            assert await stored_on(stack, master, f"cache:{key}"), (
                f"cache:{key} is not on master {master}, the owner of its slot"
            )
            got = await r.get(path)
            assert got.status_code == 200, describe(got)
            assert got.json()["value"] == f"v of {key}"
            assert 115 <= got.json()["ttl_seconds"] <= 120
            replaced = await r.put(path, json={"value": "replaced"})
            assert replaced.status_code == 200, describe(replaced)
            assert replaced.json() == {"key": key, "value": "replaced", "ttl_seconds": None}
            assert (await w.get(path)).json() == {
                "key": key,
                "value": "replaced",
                "ttl_seconds": None,
            }
            deleted = await w.delete(path)
            assert deleted.status_code == 204, describe(deleted)
            assert not await stored_on(stack, master, f"cache:{key}")
            assert_problem(await r.get(path), 404, path)
    finally:
        for key in keys.values():
            await w.delete(f"/examples/cache/{key}")


async def test_cache_sequence_is_the_same(clients: dict[str, httpx.AsyncClient]) -> None:
    """The same sequence of cache calls gives the same answers everywhere (key names aside)."""
    answers: dict[str, list[Any]] = {}
    for name, client in clients.items():
        path = f"/examples/cache/parity.sequence.{name}"
        await client.delete(path)
        seen = []
        for method, body in [
            ("PUT", {"value": ""}),
            ("PUT", {"value": "ünïcødé ✓", "ttl_seconds": 86400}),
            ("GET", None),
            ("PUT", {"value": "no ttl"}),
            ("GET", None),
            ("DELETE", None),
            ("GET", None),
        ]:
            response = await client.request(method, path, json=body)
            normalised = json.loads(response.text.replace(name, "<impl>") or "null")
            if isinstance(normalised, dict):
                normalised.pop("request_id", None)
                if normalised.get("ttl_seconds") not in (None, 86400):
                    normalised["ttl_seconds"] = "<86400 or just under>"
                    assert 86390 <= response.json()["ttl_seconds"] <= 86400
            seen.append((response.status_code, media_type(response), normalised))
        answers[name] = seen
    reference = next(iter(answers.values()))
    assert [s for s, *_ in reference] == [201, 200, 200, 200, 200, 204, 404]
    for name, seen in answers.items():
        assert seen == reference, name


# --- messaging ---


@pytest.mark.parametrize(("writer", "reader"), PAIRS, ids=PAIR_IDS)
async def test_messages_cross_implementation(
    clients: dict[str, httpx.AsyncClient], writer: str, reader: str
) -> None:
    w, r = clients[writer], clients[reader]
    queue = f"parity.{writer}.{reader}.{uuid.uuid4().hex[:8]}"
    base = f"/examples/messaging/queues/{queue}"
    payloads = [{"n": 1, "nested": {"list": [1, "two", None, True, 2.5]}}, {"n": 2}, {"n": 3}]
    published = []
    for payload in payloads:
        response = await w.post(f"{base}/messages", json=payload)
        assert response.status_code == 202, describe(response)
        assert not schema_errors(response.json(), "PublishResult")
        assert response.json()["queue"] == queue
        published.append(response.json()["message_id"])
    info = await r.get(base)
    assert info.status_code == 200, describe(info)
    assert info.json() == {"queue": queue, "message_count": 3, "consumer_count": 0}
    assert (await w.get(base)).json() == info.json()
    assert_problem(await r.get(f"{base}/messages", params={"max": "0"}), 422)
    assert_problem(await r.get(f"{base}/messages", params={"max": "101"}), 422)
    first = await r.get(f"{base}/messages", params={"max": "2"})
    assert first.status_code == 200, describe(first)
    assert first.json() == {
        "queue": queue,
        "messages": [
            {"message_id": published[0], "payload": payloads[0], "redelivered": False},
            {"message_id": published[1], "payload": payloads[1], "redelivered": False},
        ],
        "rejected": 0,
    }
    rest = await w.get(f"{base}/messages")
    assert rest.json()["messages"] == [
        {"message_id": published[2], "payload": payloads[2], "redelivered": False}
    ]
    empty = await r.get(f"{base}/messages")
    assert empty.json() == {"queue": queue, "messages": [], "rejected": 0}
    assert (await w.get(base)).json()["message_count"] == 0


async def test_messaging_answers_are_the_same(clients: dict[str, httpx.AsyncClient]) -> None:
    queue = f"parity.same.{uuid.uuid4().hex[:8]}"
    base = f"/examples/messaging/queues/{queue}"
    writer = next(iter(clients.values()))
    for _ in range(len(clients)):
        assert (await writer.post(f"{base}/messages", json={"k": "v"})).status_code == 202
    inspected = {name: await client.get(base) for name, client in clients.items()}
    assert_same(inspected)
    consumed = {
        name: await client.get(f"{base}/messages", params={"max": "1"})
        for name, client in clients.items()
    }
    assert_same(consumed, ALWAYS_VOLATILE | {"message_id"})
    assert_same({n: await c.get(f"{base}/messages") for n, c in clients.items()})


# --- redis nodes ---


async def test_node_info_is_the_same(clients: dict[str, httpx.AsyncClient]) -> None:
    first = next(iter(clients.values()))
    nodes = (await first.get("/examples/redis/cluster/nodes")).json()["nodes"]
    assert len(nodes) == 3
    for node in nodes:
        path = f"/examples/redis/nodes/{node['address']}/info"
        answers = {name: await client.get(path) for name, client in clients.items()}
        for response in answers.values():
            assert response.status_code == 200, describe(response)
            assert not schema_errors(response.json(), "RedisNodeInfo")
            assert response.json()["node"] == node["address"]
        assert_same(answers, ALWAYS_VOLATILE | NODE_INFO_VOLATILE)


# --- methods a path lacks ---


SAMPLE_PARAMS = {
    "service": "postgres",
    "key": "user",
    "item_id": "parity-missing",
    "queue": "parity.methods",
    "node": "127.0.0.1:6379",
}


def contract_paths() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for method, template, _ in operations(load_spec()):
        path = template
        for name, value in SAMPLE_PARAMS.items():
            path = path.replace("{" + name + "}", value)
        found.setdefault(path, set()).add(method)
    return found


@pytest.mark.parametrize(("path", "methods"), sorted(contract_paths().items()))
async def test_method_not_allowed_lists_the_methods(
    clients: dict[str, httpx.AsyncClient], path: str, methods: set[str]
) -> None:
    call = Call(f"405 {path}", "PATCH", path, 405)
    responses = await ask_all(clients, call)
    for name, response in responses.items():
        assert_problem(response, 405, path)
        allowed = {m.strip().upper() for m in response.headers.get("allow", "").split(",")}
        allowed.discard("")
        extra_ok = {"HEAD"} if "GET" in methods else set()
        assert methods <= allowed <= methods | extra_ok, (name, path, allowed, methods)
    assert_same(responses)
