"""The library's memory measures are opt-in: importing it changes nothing process-wide."""

from __future__ import annotations

import asyncio.sslproto
import linecache
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from devstack_client import tuning

ASYNCIO_DEFAULT = 256 * 1024

IMPORT_EVERYTHING = textwrap.dedent(
    """
    import asyncio.sslproto, linecache, sys
    linecache.getlines(sys.modules["asyncio"].__file__)  # something in the cache
    cached = len(linecache.cache)
    import devstack_client, devstack_client.pools, devstack_client.usecases
    import devstack_web
    from devstack_client import ClientSettings, DevStackClient
    DevStackClient(ClientSettings(vault_token="t"))
    assert asyncio.sslproto.SSLProtocol.max_size == 256 * 1024, "TLS read buffer patched"
    assert len(linecache.cache) >= cached, "linecache cleared"
    assert devstack_client.tuning.tuned() is None
    devstack_client.tune_process()
    assert asyncio.sslproto.SSLProtocol.max_size == 16 * 1024
    print("untouched until tuned")
    """
)


def test_importing_the_libraries_changes_no_global_until_tune_process() -> None:
    """In a fresh interpreter: every module imported and a client built, then the call."""
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERYTHING],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "untouched until tuned"


@pytest.fixture
def untuned() -> Iterator[None]:
    tuning.reset_process_tuning()
    yield None
    tuning.reset_process_tuning()


@pytest.mark.usefixtures("untuned")
def test_tune_process_sets_the_tls_read_buffer_and_reset_puts_it_back() -> None:
    assert asyncio.sslproto.SSLProtocol.max_size == ASYNCIO_DEFAULT
    applied = tuning.tune_process(32 * 1024)
    assert applied == tuning.tuned() == tuning.Tuning(tls_read_buffer=32 * 1024)
    assert asyncio.sslproto.SSLProtocol.max_size == 32 * 1024
    tuning.reset_process_tuning()
    assert asyncio.sslproto.SSLProtocol.max_size == ASYNCIO_DEFAULT
    assert tuning.tuned() is None


@pytest.mark.usefixtures("untuned")
@pytest.mark.parametrize("size", [16 * 1024 - 1, ASYNCIO_DEFAULT + 1])
def test_a_tls_read_buffer_outside_one_record_to_asyncios_own_is_refused(size: int) -> None:
    with pytest.raises(ValueError, match="tls_read_buffer"):
        tuning.tune_process(size)
    assert tuning.tuned() is None


@pytest.mark.usefixtures("untuned")
def test_the_mongodb_hook_clears_linecache_only_when_tuned() -> None:
    linecache.getlines(asyncio.sslproto.__file__)
    tuning.after_mongo_client_built()
    assert asyncio.sslproto.__file__ in linecache.cache
    tuning.tune_process()
    tuning.after_mongo_client_built()
    assert asyncio.sslproto.__file__ not in linecache.cache
