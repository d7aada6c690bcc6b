"""An async Vault (OpenBao) client that keeps its AppRole token alive.

Why httpx rather than hvac: hvac is synchronous, so every call would hop to a worker thread, and a
stuck call could not be cancelled by the caller's timeout. The library needs nine endpoints
(login, renew, lookup, revoke, KV v2 read, PKI issue, CA chain); a native async client over
`httpx.AsyncClient` is a few lines each, is cancellable, shares one connection pool, and can be
tested in-process with `httpx.MockTransport`.

Token lifecycle (`plan_refresh` is the pure rule; the unit tests pin it down):
- renew at `token_renew_fraction` (2/3) of the lease granted by the last login or renewal;
- log in again instead when the token is not renewable, when the last renewal granted less than
  the login did (the max TTL is near: renewing cannot extend it), or when it has already expired;
- a single refresh is ever in flight (a lock and a generation number), whether started by the
  schedule or by a request that found its token refused;
- while Vault is unreachable, retries back off exponentially with jitter;
- credentials Vault refused (login answered 400/403: a secret-id destroyed or expired) are not
  tried again for `login_refused_retry` (16 minutes): a login every second would trip Vault's
  lockout (5 failures, then 15 minutes refused, even with a good secret-id). The role-id and
  secret-id are re-read before every attempt, so a new secret-id file is used as soon as the
  next refresh comes (within `backoff_max`), without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import random
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import structlog
from pydantic import SecretStr

from devstack_client.errors import (
    ConfigurationError,
    DependencyError,
    DependencyTimeout,
    DependencyUnavailable,
    VaultError,
)
from devstack_client.metrics import Metrics
from devstack_client.redaction import Redactor, mask_secret_data
from devstack_client.redaction import redactor as default_redactor
from devstack_client.settings import ClientSettings
from devstack_vault_errors import error_messages

log = structlog.get_logger("devstack_client.vault")

Clock = Callable[[], float]


# -- the token schedule (pure) ------------------------------------------------------------


@dataclass(frozen=True)
class TokenLease:
    """What Vault granted the current token; times are on the monotonic clock."""

    ttl: float  # seconds granted by the last login or renewal (0: never expires)
    login_ttl: float  # seconds granted by the login (what a renewal should give again)
    renewable: bool
    refreshed_at: float

    @property
    def expires_at(self) -> float:
        """When the token expires (monotonic clock); infinity for a token that never does."""
        return math.inf if self.ttl <= 0 else self.refreshed_at + self.ttl

    def remaining(self, now: float) -> float:
        """Seconds of life left at `now` (negative once expired)."""
        return self.expires_at - now


@dataclass(frozen=True)
class Refresh:
    """The next token action (`plan_refresh`) and when to take it (monotonic clock)."""

    action: Literal["renew", "login", "none"]
    at: float


CAPPED_TOLERANCE = 0.9  # a renewal granting under 90% of the login's TTL means max TTL is near


def plan_refresh(lease: TokenLease, now: float, *, fraction: float, can_login: bool) -> Refresh:
    """The next token action and when to take it."""
    if lease.ttl <= 0:
        return Refresh("none", math.inf)
    at = lease.refreshed_at + fraction * lease.ttl
    if not can_login:
        return Refresh("renew", at) if lease.renewable else Refresh("none", math.inf)
    expired = now >= lease.expires_at
    capped = lease.ttl < lease.login_ttl * CAPPED_TOLERANCE
    if expired:
        return Refresh("login", now)
    if capped or not lease.renewable:
        return Refresh("login", at)
    return Refresh("renew", at)


def backoff_delay(
    attempt: int, initial: float, maximum: float, rand: Callable[[], float] = random.random
) -> float:
    """Exponential backoff with jitter: between half and all of min(max, initial * 2^(n-1))."""
    ceiling: float = min(maximum, initial * 2.0 ** max(0, attempt - 1))
    return ceiling / 2 + rand() * ceiling / 2


# -- results ------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class VaultSecret:
    """A KV v2 secret. Its repr masks secret-looking values; `data` holds the real ones."""

    path: str
    data: Mapping[str, Any]
    version: int
    created_time: str = ""

    def masked(self) -> dict[str, Any]:
        """The data with secret-looking values masked (for logs and reprs)."""
        return mask_secret_data(self.data)

    def __repr__(self) -> str:
        return f"VaultSecret(path={self.path!r}, version={self.version}, data={self.masked()!r})"


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate Vault's PKI issued, with its chain; the private key is a `SecretStr`."""

    certificate: str
    issuing_ca: str
    ca_chain: list[str]
    private_key: SecretStr
    serial_number: str
    expiration: int  # unix time


@dataclass(frozen=True)
class VaultStatus:
    """What the client knows about Vault, from its own traffic (no call is made to build it)."""

    reachable: bool
    authenticated: bool
    token_ttl: float | None  # seconds left, None when no token
    last_contact_age: float | None  # seconds since the last answer from Vault
    last_error: str | None
    down_for: float | None  # seconds since Vault stopped answering


@dataclass(frozen=True)
class _Refusal:
    """Credentials Vault refused: a digest of them (never the values) and when to try again."""

    digest: str
    retry_at: float


def _digest(role_id: str, secret_id: str) -> str:
    return hashlib.sha256(f"{role_id}\0{secret_id}".encode()).hexdigest()


@dataclass
class _Reachability:
    ok: bool = True
    last_answer: float | None = None
    last_error: str | None = None
    down_since: float | None = None


# -- the client -----------------------------------------------------------------------------


def vault_trust(settings: ClientSettings) -> ssl.SSLContext | bool:
    """What the Vault connection verifies against, without loading certifi when it is not used.

    httpx's default (`True`) loads certifi's ~140 CA certificates into every client: 3.6 MB
    of resident memory. Plain HTTP (loopback only, see ClientSettings) gets a context that
    trusts nothing: nothing over it speaks TLS, and a redirect to https fails. HTTPS trusts the
    stack's CA file when there is one, else the system's CAs.
    """
    if settings.resolved_vault_addr.startswith("http://"):
        return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca_file = settings.resolved_ca_file
    if ca_file is not None and ca_file.is_file():
        return ssl.create_default_context(cafile=str(ca_file))
    return True


class VaultClient:
    """An AppRole (or static-token) Vault client that keeps its token alive (module docstring).

    Use it as an async context (`start`, then `aclose`); an authenticated call is retried once
    after a fresh login when Vault refuses the token."""

    def __init__(
        self,
        settings: ClientSettings,
        *,
        metrics: Metrics | None = None,
        redactor: Redactor = default_redactor,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._redactor = redactor
        self._clock = clock
        self._http = httpx.AsyncClient(
            base_url=settings.resolved_vault_addr,
            timeout=settings.vault_timeout,
            transport=transport,
            verify=vault_trust(settings),
        )
        self._static = settings.vault_token is not None
        self._token: str | None = None
        self._lease: TokenLease | None = None
        self._generation = 0
        self._auth_lock = asyncio.Lock()
        self._force_login = False
        self._task: asyncio.Task[None] | None = None
        self._state = _Reachability()
        self._probe: asyncio.Future[None] | None = None
        self._refused: _Refusal | None = None
        # The generation whose token Vault declared invalid (only a login can help), if any.
        self._dead_generation: int | None = None
        self.probes = 0
        self.login_refusals = 0  # logins Vault refused (each one sent)
        self.logins = 0
        self.renewals = 0
        self.requests = 0
        if metrics is not None:
            metrics.bind_token_ttl(self.token_ttl)

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Authenticate (retrying while Vault is unreachable, up to vault_start_timeout), then
        keep the token alive in the background."""
        if self._static:
            await self._adopt_static_token()
        else:
            deadline = self._clock() + self._settings.vault_start_timeout
            attempt = 0
            while True:
                try:
                    await self._refresh("login", self._generation)
                    break
                except (DependencyUnavailable, DependencyTimeout) as exc:
                    if isinstance(exc, VaultError) and exc.status in (400, 403):
                        raise ConfigurationError(f"Vault refused the AppRole login: {exc}") from exc
                    attempt += 1
                    delay = self._backoff(attempt)
                    if self._clock() + delay > deadline:
                        raise
                    log.warning("vault not ready, retrying login", retry_in=round(delay, 2))
                    await asyncio.sleep(delay)
        self._task = asyncio.create_task(self._keep_alive(), name="devstack-vault-token")

    async def aclose(self) -> None:
        """Stop the token schedule, revoke the token (best effort, 1 s) and close connections."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._token is not None and not self._static:
            # Best effort: the token dies with the client instead of living on until its TTL.
            with contextlib.suppress(DependencyError, httpx.HTTPError):
                async with asyncio.timeout(1.0):
                    await self._send("revoke", "POST", "auth/token/revoke-self", None, auth=True)
            self._token = None
        await self._http.aclose()

    async def __aenter__(self) -> VaultClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- state --------------------------------------------------------------------------

    @property
    def generation(self) -> int:
        """Increases with every login (a new token)."""
        return self._generation

    def token_ttl(self) -> float | None:
        """Seconds the current token has left (0 once expired); None without a token or for one
        that never expires."""
        if self._lease is None:
            return None
        remaining = self._lease.remaining(self._clock())
        return None if math.isinf(remaining) else max(0.0, remaining)

    def status(self) -> VaultStatus:
        """The client's own view of Vault, for health: reachability, token, last contact."""
        now = self._clock()
        state = self._state
        ttl = self.token_ttl()
        return VaultStatus(
            reachable=state.ok,
            authenticated=self._token is not None and (ttl is None or ttl > 0),
            token_ttl=ttl,
            last_contact_age=None if state.last_answer is None else now - state.last_answer,
            last_error=state.last_error,
            down_for=None if state.down_since is None else now - state.down_since,
        )

    async def probe(self, within: float | None = None) -> VaultStatus:
        """Ask Vault whether it serves (`GET sys/health`: no token, not in Vault's audit log),
        update what `status()` says, and return it. Concurrent callers share one request.

        Without it, a Vault that died is noticed only by the next token or secret refresh
        (minutes at steady state); a health check calls it, so it reports Vault down at once."""
        if self._probe is None:
            self._probe = asyncio.ensure_future(self._probe_once(within))
            self._probe.add_done_callback(self._probe_done)
        await asyncio.shield(self._probe)
        return self.status()

    def _probe_done(self, future: asyncio.Future[None]) -> None:
        self._probe = None
        if not future.cancelled():
            future.exception()  # retrieved: _probe_once records failures, never raises

    async def _probe_once(self, within: float | None) -> None:
        self.probes += 1
        try:
            # Standby (429) and performance standby (473) serve too; 503 is sealed, 501 not
            # initialised.
            response = await self._http.get(
                "/v1/sys/health?standbyok=true&perfstandbyok=true",
                timeout=within if within is not None else self._settings.vault_timeout,
            )
        except httpx.TimeoutException:
            self._unreachable("health", "timed out")
            return
        except httpx.HTTPError as exc:
            self._unreachable("health", type(exc).__name__)
            return
        if response.status_code in (501, 503) or response.status_code >= 500:
            reason = "sealed or not ready" if response.status_code == 503 else "not initialised"
            self._unreachable("health", f"{response.status_code} {reason}")
            return
        self._state = _Reachability(ok=True, last_answer=self._clock())

    # -- the token ----------------------------------------------------------------------

    async def _adopt_static_token(self) -> None:
        if self._settings.vault_token is None:
            raise ConfigurationError("no vault_token configured")
        token = self._settings.vault_token.get_secret_value()
        self._redactor.add(token)
        log.warning(
            "using an explicitly configured Vault token instead of an AppRole; it is renewed "
            "while renewable but cannot be replaced when it expires"
        )
        self._token = token
        data = (await self._call("lookup", "GET", "auth/token/lookup-self") or {})["data"]
        if "root" in (data.get("policies") or []):
            self._token = None
            raise ConfigurationError("refusing a root token: configure an AppRole instead")
        ttl = float(data.get("ttl") or 0)
        self._lease = TokenLease(ttl, ttl, bool(data.get("renewable")), self._clock())
        self._generation += 1

    async def _refresh(self, action: Literal["renew", "login"], seen_generation: int) -> None:
        """Renew or log in, once: a caller that saw an older generation finds it already done."""
        async with self._auth_lock:
            if self._generation != seen_generation and action == "login":
                return
            if action == "renew":
                await self._renew()
            else:
                await self._login()

    async def _login(self) -> None:
        role_id = await asyncio.to_thread(self._settings.read_role_id)
        secret_id = await asyncio.to_thread(self._settings.read_secret_id)
        self._redactor.add(role_id, secret_id)
        digest = _digest(role_id, secret_id)
        refused = self._refused
        if refused is not None and refused.digest == digest and self._clock() < refused.retry_at:
            wait = refused.retry_at - self._clock()
            raise DependencyUnavailable(
                "vault",
                f"the AppRole credentials were refused; not retried for {wait:.0f}s "
                "unless the secret-id changes",
                retry_after=max(1, math.ceil(wait)),
            )
        try:
            result = await self._send(
                "login",
                "POST",
                "auth/approle/login",
                {"role_id": role_id, "secret_id": secret_id},
                auth=False,
            )
        except VaultError as exc:
            self._count(self._metrics and self._metrics.vault_logins, "failure")
            if exc.status in (400, 403):
                self.login_refusals += 1
                self._refused = _Refusal(digest, self._clock() + self._settings.login_refused_retry)
                log.error(
                    "vault refused the AppRole login; waiting for a new secret-id",
                    approle=self._settings.approle,
                    retry_in=self._settings.login_refused_retry,
                )
            raise
        except DependencyError:
            self._count(self._metrics and self._metrics.vault_logins, "failure")
            raise
        self._refused = None
        auth = (result or {})["auth"]
        self._token = auth["client_token"]
        self._redactor.add(self._token)
        ttl = float(auth.get("lease_duration") or 0)
        self._lease = TokenLease(ttl, ttl, bool(auth.get("renewable")), self._clock())
        self._generation += 1
        self._force_login = False
        self.logins += 1
        self._count(self._metrics and self._metrics.vault_logins, "success")
        log.info("vault login", approle=self._settings.approle, ttl=ttl)

    async def _renew(self) -> None:
        try:
            result = await self._send("renew", "POST", "auth/token/renew-self", {}, auth=True)
        except DependencyError:
            self._count(self._metrics and self._metrics.vault_renewals, "failure")
            raise
        auth = (result or {})["auth"]
        login_ttl = self._lease.login_ttl if self._lease is not None else 0.0
        self._lease = TokenLease(
            float(auth.get("lease_duration") or 0),
            login_ttl,
            bool(auth.get("renewable")),
            self._clock(),
        )
        self.renewals += 1
        self._count(self._metrics and self._metrics.vault_renewals, "success")
        log.debug("vault token renewed", ttl=self._lease.ttl)

    async def _keep_alive(self) -> None:
        failures = 0
        while True:
            lease = self._lease
            if lease is None:
                return
            now = self._clock()
            plan = plan_refresh(
                lease, now, fraction=self._settings.token_renew_fraction, can_login=not self._static
            )
            if plan.action == "none":
                return
            action: Literal["renew", "login"] = plan.action
            if self._force_login and not self._static:
                action = "login"
            delay = self._backoff(failures) if failures else plan.at - now
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                await self._refresh(action, self._generation)
                failures = 0
            except (DependencyError, ConfigurationError) as exc:
                failures += 1
                if isinstance(exc, VaultError) and action == "renew":
                    self._force_login = True  # refused (revoked, expired): a new token is needed
                log.warning(
                    "vault token refresh failed", action=action, attempt=failures, error=str(exc)
                )
            except Exception:
                failures += 1
                log.exception("vault token refresh failed unexpectedly", action=action)

    def _backoff(self, attempt: int) -> float:
        s = self._settings
        return backoff_delay(attempt, s.backoff_initial, s.backoff_max)

    # -- requests -----------------------------------------------------------------------

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        missing_ok: bool = False,
    ) -> dict[str, Any] | None:
        """An authenticated call; a refused token is checked, replaced and the call retried once."""
        generation = self._generation
        if self._dead_generation != generation or self._static:
            try:
                return await self._send(
                    operation, method, path, body, auth=True, missing_ok=missing_ok
                )
            except VaultError as exc:
                if exc.status != 403 or self._static:
                    raise
                token_is_fine = self._generation == generation and not (
                    await self._token_is_invalid()
                )
                if token_is_fine and self._generation == generation:
                    raise  # a genuine permission error
                if self._generation != generation:
                    # A login replaced the token while this call (or its check) was in flight:
                    # the refusal was the old token's, so ask again with the new one.
                    return await self._send(
                        operation, method, path, body, auth=True, missing_ok=missing_ok
                    )
            self._dead_generation = generation
        # The token is known dead: log in first (held back while refused credentials wait).
        await self._refresh("login", generation)
        return await self._send(operation, method, path, body, auth=True, missing_ok=missing_ok)

    async def _token_is_invalid(self) -> bool:
        try:
            await self._send("lookup", "GET", "auth/token/lookup-self", None, auth=True)
        except VaultError as exc:
            return exc.status == 403
        return False

    async def _send(
        self,
        operation: str,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        *,
        auth: bool,
        missing_ok: bool = False,
    ) -> dict[str, Any] | None:
        headers = {"X-Vault-Token": self._token} if auth and self._token else {}
        self.requests += 1
        if self._metrics is not None:
            self._metrics.vault_requests.labels(operation).inc()
        try:
            response = await self._http.request(method, f"/v1/{path}", json=body, headers=headers)
        except httpx.TimeoutException as exc:
            self._unreachable(operation, "timed out")
            raise DependencyTimeout("vault", f"{operation} timed out") from exc
        except httpx.TransportError as exc:
            self._unreachable(operation, type(exc).__name__)
            raise DependencyUnavailable("vault", f"{operation}: unreachable") from exc
        if response.status_code >= 500:
            reason = "sealed or not ready" if response.status_code == 503 else "server error"
            self._unreachable(operation, f"{response.status_code} {reason}")
            raise VaultError(method, path, response.status_code, [reason])
        self._state = _Reachability(ok=True, last_answer=self._clock())
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400:
            if self._metrics is not None:
                self._metrics.vault_failures.labels(operation).inc()
            errors = error_messages(response.content, response.status_code)
            raise VaultError(method, path, response.status_code, errors)
        if response.status_code == 204 or not response.content:
            return {}
        result: dict[str, Any] = response.json()
        return result

    def _unreachable(self, operation: str, reason: str) -> None:
        now = self._clock()
        previous = self._state
        self._state = _Reachability(
            ok=False,
            last_answer=previous.last_answer,
            last_error=reason,
            down_since=previous.down_since if not previous.ok else now,
        )
        if self._metrics is not None:
            self._metrics.vault_failures.labels(operation).inc()

    @staticmethod
    def _count(counter: Any, result: str) -> None:
        if counter:
            counter.labels(result).inc()

    # -- what applications use ------------------------------------------------------------

    async def kv_read(self, path: str) -> VaultSecret | None:
        """The latest version of a KV v2 secret, or None when it does not exist."""
        mount = self._settings.vault_kv_mount
        result = await self._call("kv_read", "GET", f"{mount}/data/{path}", missing_ok=True)
        if result is None or not result.get("data"):
            return None
        data: dict[str, Any] = result["data"].get("data") or {}
        metadata: dict[str, Any] = result["data"].get("metadata") or {}
        self._redactor.add_secret_data(data)
        return VaultSecret(
            path=path,
            data=data,
            version=int(metadata.get("version") or 0),
            created_time=str(metadata.get("created_time") or ""),
        )

    async def issue_certificate(
        self,
        role: str,
        common_name: str,
        *,
        alt_names: tuple[str, ...] = (),
        ip_sans: tuple[str, ...] = (),
        ttl: str | None = None,
    ) -> IssuedCertificate:
        """A certificate and key from the PKI role `role` (the key is never logged)."""
        body: dict[str, Any] = {"common_name": common_name}
        if alt_names:
            body["alt_names"] = ",".join(alt_names)
        if ip_sans:
            body["ip_sans"] = ",".join(ip_sans)
        if ttl:
            body["ttl"] = ttl
        mount = self._settings.vault_pki_mount
        result = await self._call("pki_issue", "POST", f"{mount}/issue/{role}", body)
        data = (result or {})["data"]
        self._redactor.add(data["private_key"])
        return IssuedCertificate(
            certificate=data["certificate"],
            issuing_ca=data["issuing_ca"],
            ca_chain=list(data.get("ca_chain") or [data["issuing_ca"]]),
            private_key=SecretStr(data["private_key"]),
            serial_number=data["serial_number"],
            expiration=int(data["expiration"]),
        )

    async def ca_chain(self) -> str:
        """The PEM chain of the issuing CA (intermediate, then root); no token needed."""
        mount = self._settings.vault_pki_mount
        response = await self._raw_get("ca_chain", f"/v1/{mount}/ca_chain")
        if "BEGIN CERTIFICATE" not in response:
            raise VaultError("GET", f"{mount}/ca_chain", 200, ["no CA chain in the answer"])
        return response.strip() + "\n"

    async def _raw_get(self, operation: str, url: str) -> str:
        self.requests += 1
        if self._metrics is not None:
            self._metrics.vault_requests.labels(operation).inc()
        try:
            response = await self._http.get(url)
        except httpx.HTTPError as exc:
            self._unreachable(operation, type(exc).__name__)
            raise DependencyUnavailable("vault", f"{operation}: unreachable") from exc
        if response.status_code >= 400:
            errors = error_messages(response.content, response.status_code)
            raise VaultError("GET", url, response.status_code, errors)
        self._state = _Reachability(ok=True, last_answer=self._clock())
        return response.text
