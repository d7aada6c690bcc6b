"""Every server of the standard profile is healthy, speaks TLS verified against the exported CA,
accepts the credentials its own AppRole reads from Vault, and refuses a client that trusts
another CA."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import aio_pika
import asyncmy
import asyncpg
import psutil
import pytest
from cryptography import x509
from pymongo import AsyncMongoClient
from redis.crc import key_slot

from devstack_cli.stack import stack as service_table
from tests.support import StackUnderTest


def test_status_reports_every_service_healthy(stack: StackUnderTest) -> None:
    report = stack.status()
    assert report["running"] is True
    assert report["profile"] == stack.profile
    assert sorted(report["services"]) == sorted(
        s.name for s in service_table().in_profile(stack.profile)
    )
    for name, service in report["services"].items():
        assert service["state"] == "healthy", (name, service["reason"])
    assert report["services"]["postgres"]["ports"] == {
        "postgres": stack.port("postgres", "postgres")
    }


def test_health_command_exits_zero_when_all_healthy(stack: StackUnderTest) -> None:
    result = stack.cli("health")
    assert result.returncode == 0, result.stdout + result.stderr


# -- PostgreSQL and PgBouncer ------------------------------------------------------------


async def test_postgres_tls_with_approle_credentials(stack: StackUnderTest) -> None:
    conn = await stack.postgres()
    try:
        in_tls = await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert in_tls is True
        assert (await conn.fetchval("SHOW server_version")).startswith("15.")
    finally:
        await conn.close()


async def test_pgbouncer_tls_with_postgres_credentials(stack: StackUnderTest) -> None:
    conn = await stack.postgres(via="pgbouncer")
    try:
        # The server side of PgBouncer's connection is TLS too (server_tls_sslmode=verify-full).
        assert (
            await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is True
        )
    finally:
        await conn.close()


@pytest.mark.parametrize("service", ["postgres", "pgbouncer"])
async def test_postgres_refuses_a_foreign_ca(
    stack: StackUnderTest, foreign_ca_file: str, service: str
) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        await stack.postgres(via=service, ca_file=foreign_ca_file)


# -- MariaDB -------------------------------------------------------------------------------


async def test_mysql_tls_with_approle_credentials(stack: StackUnderTest) -> None:
    creds = stack.creds("mysql")
    conn = await asyncmy.connect(
        host="127.0.0.1",
        port=stack.port("mysql", "mysql"),
        user=creds["user"],
        password=creds["password"],
        database=creds["database"],
        ssl=stack.tls_context(),
    )
    try:
        async with conn.cursor() as cur:
            await cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            (_, cipher) = await cur.fetchone()
            assert cipher, "the session is not encrypted"
            await cur.execute("SELECT VERSION()")
            (version,) = await cur.fetchone()
            assert "MariaDB" in version
    finally:
        conn.close()


async def test_mysql_refuses_a_foreign_ca(stack: StackUnderTest, foreign_ca_file: str) -> None:
    creds = stack.creds("mysql")
    with pytest.raises(Exception, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        await asyncmy.connect(
            host="127.0.0.1",
            port=stack.port("mysql", "mysql"),
            user=creds["user"],
            password=creds["password"],
            ssl=ssl.create_default_context(cafile=foreign_ca_file),
        )


# -- MongoDB protocol ----------------------------------------------------------------------


def mongo_client(stack: StackUnderTest, ca_file: str) -> AsyncMongoClient[dict[str, object]]:
    creds = stack.creds("mongodb")
    return AsyncMongoClient(
        host="127.0.0.1",
        port=stack.port("mongodb", "mongodb"),
        tls=True,
        tlsCAFile=ca_file,
        username=creds["user"],
        password=creds["password"],
        authSource=creds["database"],
        serverSelectionTimeoutMS=5000,
    )


async def test_mongodb_tls_with_approle_credentials(stack: StackUnderTest) -> None:
    client = mongo_client(stack, stack.ca_file)
    try:
        collection = client["devstack"]["tls_probe"]
        inserted = await collection.insert_one({"hello": "tls"})
        found = await collection.find_one({"_id": inserted.inserted_id})
        assert found is not None
        assert found["hello"] == "tls"
    finally:
        await client.close()


async def test_mongodb_rejects_a_wrong_password(stack: StackUnderTest) -> None:
    creds = stack.creds("mongodb")
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        host="127.0.0.1",
        port=stack.port("mongodb", "mongodb"),
        tls=True,
        tlsCAFile=stack.ca_file,
        username=creds["user"],
        password="not-the-password",
        authSource=creds["database"],
        serverSelectionTimeoutMS=5000,
    )
    try:
        with pytest.raises(Exception, match=r"(?i)auth"):
            await client["devstack"]["tls_probe"].find_one({})
    finally:
        await client.close()


# -- Redis Cluster -------------------------------------------------------------------------


def keys_on_each_master(count: int = 3) -> list[str]:
    """Keys whose slots fall in each third of the slot space, so each master owns one."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < count:
        key = f"devstack:key:{i}"
        found.setdefault(key_slot(key.encode()) * count // 16384, key)
        i += 1
    return [found[n] for n in range(count)]


async def test_redis_cluster_tls_on_every_master(stack: StackUnderTest) -> None:
    cluster = stack.redis_cluster()
    try:
        info = await cluster.cluster_info()
        assert info["cluster_state"] == "ok"
        masters = {node.port for node in cluster.get_primaries()}
        assert masters == {stack.port("redis", "tls", i) for i in range(3)}
        owners = set()
        for key in keys_on_each_master():
            await cluster.set(key, "value", ex=60)
            assert await cluster.get(key) == b"value"
            node = cluster.get_node_from_key(key)
            assert node is not None, key
            owners.add(node.port)
        assert owners == masters
    finally:
        await cluster.aclose()


async def test_redis_requires_the_password(stack: StackUnderTest) -> None:
    cluster = stack.redis_cluster(password=False)
    with pytest.raises(Exception, match=r"(?i)auth"):
        await cluster.initialize()
    await cluster.aclose()


# -- RabbitMQ ------------------------------------------------------------------------------


async def test_rabbitmq_tls_with_approle_credentials(stack: StackUnderTest) -> None:
    creds = stack.creds("rabbitmq")
    assert creds["vhost"] == "dev_vhost"
    connection = await aio_pika.connect(
        host="127.0.0.1",
        port=stack.port("rabbitmq", "amqps"),
        login=creds["user"],
        password=creds["password"],
        virtualhost=creds["vhost"],
        ssl=True,
        ssl_context=stack.tls_context(),
    )
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue("devstack.tls_probe", auto_delete=True)
        await channel.default_exchange.publish(
            aio_pika.Message(b"over tls"), routing_key=queue.name
        )
        message = await queue.get(timeout=5)
        assert message is not None
        assert message.body == b"over tls"
        await message.ack()
    finally:
        await connection.close()


# -- servers that speak TLS from the first byte ---------------------------------------------


@pytest.mark.parametrize(
    ("service", "port"), [("mongodb", "mongodb"), ("redis", "tls"), ("rabbitmq", "amqps")]
)
async def test_direct_tls_ports_refuse_a_foreign_ca(
    stack: StackUnderTest, foreign_ca_file: str, service: str, port: str
) -> None:
    """The same handshake succeeds with the exported CA and fails with any other."""
    address = ("127.0.0.1", stack.port(service, port))
    _, writer = await asyncio.open_connection(*address, ssl=stack.tls_context())
    writer.close()
    await writer.wait_closed()
    foreign = ssl.create_default_context(cafile=foreign_ca_file)
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.open_connection(*address, ssl=foreign)


# -- certificates --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "service", ["postgres", "pgbouncer", "redis", "mysql", "mongodb", "rabbitmq"]
)
def test_each_server_has_its_own_certificate(stack: StackUnderTest, service: str) -> None:
    folder = stack.settings.state.service_dir(service)
    tls = folder / "redis-1" / "tls" if service == "redis" else folder / "tls"
    pem = (tls / "cert.pem").read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) >= {service, "localhost"}
    assert "127.0.0.1" in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    assert cert.issuer.rfc4514_string() == "CN=DevStack Core Intermediate CA"
    key_file = tls / "key.pem"
    assert key_file.stat().st_mode & 0o077 == 0, "private keys are readable by their owner only"


# -- plaintext is refused where the server lets us; every port is on loopback ---------------


@pytest.mark.parametrize("service", ["postgres", "pgbouncer"])
async def test_postgres_refuses_plaintext_with_a_valid_password(
    stack: StackUnderTest, service: str
) -> None:
    creds = stack.creds("postgres")

    async def connect_in_plaintext() -> None:
        conn = await asyncpg.connect(
            host="127.0.0.1",
            port=stack.port(service, service),
            user=creds["user"],
            password=creds["password"],
            database=creds["database"],
            ssl=False,
            timeout=30,
        )
        await conn.close()  # not reached when it is refused, as it must be

    with pytest.raises(Exception, match=r"(?i)no encryption|ssl required|SSL"):
        await connect_in_plaintext()


async def test_mysql_refuses_plaintext_with_a_valid_password(stack: StackUnderTest) -> None:
    """require_secure_transport: the same credentials that work over TLS are refused without
    it (MariaDB 10.11 answers "insecure transport" or, before reading the password, denies)."""
    creds = stack.creds("mysql")
    options = {
        "host": "127.0.0.1",
        "port": stack.port("mysql", "mysql"),
        "user": creds["user"],
        "password": creds["password"],
        "database": creds["database"],
    }
    over_tls = await asyncmy.connect(**options, ssl=stack.tls_context())
    over_tls.close()

    async def connect_in_plaintext() -> None:
        conn = await asyncmy.connect(**options)
        conn.close()  # not reached when it is refused, as it must be

    with pytest.raises(Exception, match=r"insecure transport|Access denied"):
        await connect_in_plaintext()


async def test_mysql_has_no_account_without_a_password(stack: StackUnderTest) -> None:
    with stack.login("mysql") as vault:
        admin = vault.kv_get("admin/mysql")
    assert admin is not None
    conn = await asyncmy.connect(
        host="127.0.0.1",
        port=stack.port("mysql", "mysql"),
        user=admin["user"],
        password=admin["password"],
        ssl=stack.tls_context(),
    )
    try:
        async with conn.cursor() as cur:
            await cur.execute(
                "SELECT user, host FROM mysql.global_priv "
                "WHERE IFNULL(JSON_VALUE(Priv, '$.authentication_string'), '') = '' "
                "AND IFNULL(JSON_VALUE(Priv, '$.account_locked'), 0) != 1"
            )
            assert await cur.fetchall() in ((), [])  # no account logs in without a password
            await cur.execute("SELECT host FROM mysql.user WHERE user = 'root' ORDER BY host")
            assert [row[0] for row in await cur.fetchall()] == ["127.0.0.1", "localhost"]
    finally:
        conn.close()


def stack_pids(stack: StackUnderTest) -> set[int]:
    pids: set[int] = set()
    for service in stack.status()["services"].values():
        for p in service["processes"]:
            if p["pid"] is not None and not p["one_shot"]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc = psutil.Process(p["pid"])
                    pids |= {proc.pid, *(c.pid for c in proc.children(recursive=True))}
    return pids


def test_every_listening_port_is_on_loopback(stack: StackUnderTest) -> None:
    """Every socket any process of the stack listens on (Erlang's distribution port and
    FerretDB's debug port included) is bound to 127.0.0.1 or ::1."""
    pids = stack_pids(stack)
    listening = [
        (c.pid, str(getattr(c.laddr, "ip", "")), int(getattr(c.laddr, "port", 0)))
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.pid in pids
    ]
    ports = {port for _, _, port in listening}
    assert stack.port("rabbitmq", "dist") in ports
    assert stack.port("mongodb", "debug") in ports
    exposed = [entry for entry in listening if entry[1] not in ("127.0.0.1", "::1")]
    assert exposed == []
