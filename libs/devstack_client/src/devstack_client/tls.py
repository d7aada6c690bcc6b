"""TLS trust: the CA chain Vault issues server certificates from, as a context and as a file.

Every server of the stack presents a certificate issued by Vault's intermediate CA, with SANs for
its name, `localhost` and `127.0.0.1`, so clients verify the chain and the hostname. PyMongo
needs the chain as a file, the other clients take an `ssl.SSLContext` (or the PEM text).
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from devstack_client.errors import ConfigurationError
from devstack_client.settings import ClientSettings
from devstack_client.vault import VaultClient


def ssl_context(ca_pem: str) -> ssl.SSLContext:
    """A client context that trusts only `ca_pem`, checks hostnames and requires TLS 1.2+."""
    context = ssl.create_default_context(cadata=ca_pem)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


@dataclass
class TrustStore:
    """The CA chain as PEM text and as a file, and one client context made from it."""

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
        """Delete the temporary CA file, if one was written."""
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
