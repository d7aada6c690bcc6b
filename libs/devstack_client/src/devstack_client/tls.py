"""TLS trust: the CA chain Vault issues server certificates from, as a context and as a file.

Every server of the stack presents a certificate issued by Vault's intermediate CA, with SANs for
its name, `localhost` and `127.0.0.1`, so clients verify the chain and the hostname. PyMongo
needs the chain as a file, the other clients take an `ssl.SSLContext` (or the PEM text).
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import shutil
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from devstack_client.errors import ConfigurationError
from devstack_client.settings import ClientSettings
from devstack_client.vault import VaultClient


def limit_tls_read_buffer(size: int) -> None:
    """Make every asyncio TLS connection opened from now on read into a `size`-byte buffer.

    CPython 3.11's asyncio gives each TLS connection a zero-filled read buffer of
    `SSLProtocol.max_size` (256 KiB), resident for the connection's whole life: about 8 MB for
    the 30-odd connections an app's pools hold, where a TLS record is at most 16 KiB.
    asyncio has one class for every TLS connection of the process, so this is process-wide:
    `DevStackClient.start()` applies `ClientSettings.tls_read_buffer` (16 KiB by default: one
    record per read; the payloads here are small).
    """
    if size < 16 * 1024:
        raise ValueError("a TLS read buffer smaller than one record (16 KiB) only costs reads")
    asyncio.sslproto.SSLProtocol.max_size = size


def ssl_context(ca_pem: str) -> ssl.SSLContext:
    """A client context that trusts only `ca_pem`, checks hostnames and requires TLS 1.2+."""
    context = ssl.create_default_context(cadata=ca_pem)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


@dataclass
class TrustStore:
    ca_pem: str
    ca_file: Path
    _tmpdir: Path | None = None
    _context: ssl.SSLContext | None = field(default=None, repr=False)

    def ssl_context(self) -> ssl.SSLContext:
        """The client context every pool connects with: one for all (each connection takes its
        own SSL object from it; a context per pool would only hold more memory)."""
        if self._context is None:
            self._context = ssl_context(self.ca_pem)
        return self._context

    def close(self) -> None:
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None


async def load_trust(settings: ClientSettings, vault: VaultClient) -> TrustStore:
    """The configured CA file, else the chain from Vault (written to a private temp file)."""
    if settings.ca_file is not None:
        try:
            pem = await asyncio.to_thread(settings.ca_file.read_text)
        except OSError as exc:
            raise ConfigurationError(f"cannot read ca_file {settings.ca_file}: {exc}") from None
        if "BEGIN CERTIFICATE" not in pem:
            raise ConfigurationError(f"ca_file {settings.ca_file} holds no PEM certificate")
        return TrustStore(pem, settings.ca_file)
    pem = await vault.ca_chain()
    tmpdir = Path(tempfile.mkdtemp(prefix="devstack-client-ca-"))
    path = tmpdir / "ca-chain.pem"
    await asyncio.to_thread(path.write_text, pem)
    return TrustStore(pem, path, tmpdir)
