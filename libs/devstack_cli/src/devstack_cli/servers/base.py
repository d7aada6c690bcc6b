"""What every server module shares: the plan context and the launch context.

Each server of the table has a module in this package with two functions:
- `processes(ctx: PlanContext) -> list[ProcessSpec]`: what the supervisor runs for it, with its
  probe and dependencies;
- `launch(ctx: Launch) -> Exec`: run by `devstack _serve NAME` just before the server starts, it
  logs in with the server's own AppRole, fetches its credentials and certificate, writes its
  configuration into the state folder, and returns the command to exec. The server process then
  replaces the launcher, so it holds nothing but its own configuration.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import grp
import hashlib
import os
import pwd
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devstack_cli import lifeline
from devstack_cli.plan import Condition, Probe, ProcessSpec
from devstack_cli.settings import Settings, write_private
from devstack_cli.stack import Service

if TYPE_CHECKING:
    from devstack_cli.vault import Vault

BOOTSTRAP = "vault-bootstrap"


@dataclass
class PlanContext:
    settings: Settings
    service: Service
    ready: dict[str, ProcessSpec]  # service -> the process that says it is ready

    def port(self, name: str, instance: int = 0) -> int:
        return self.settings.port(self.service.ports[name] + instance)

    def log_file(self, process: str) -> str:
        return str(self.settings.state.log_file(process))

    def serve_command(self, instance: int | None = None) -> tuple[str, ...]:
        """The launcher: `python -m devstack_cli _serve NAME [--instance N]`."""
        argv = [sys.executable, "-m", "devstack_cli", "_serve", self.service.name]
        if instance is not None:
            argv += ["--instance", str(instance)]
        return tuple(argv)

    def after(self) -> dict[str, Condition]:
        """Dependencies of a process: the bootstrap, then the services it comes after.

        A server waits for them to be healthy. An API waits only for them to have started (and
        for one-shot steps, like the Redis cluster's creation, to be done): it connects lazily
        and reports itself degraded until they answer (devstack_client's pools), so it boots
        while they do instead of after the slowest (RabbitMQ); `up` still returns only once
        every service is healthy."""
        deps: dict[str, Condition] = {BOOTSTRAP: "completed"}
        for name in self.service.after:
            if name != "vault":
                ready = self.ready[name]
                if ready.one_shot:
                    deps[ready.name] = "completed"
                else:
                    deps[ready.name] = "started" if self.service.kind == "api" else "healthy"
        return deps

    def process(
        self,
        name: str,
        probe: Probe | None,
        depends_on: dict[str, Condition],
        *,
        instance: int | None = None,
        **extra: Any,
    ) -> ProcessSpec:
        return ProcessSpec(
            name=name,
            service=self.service.name,
            command=extra.pop("command", None) or self.serve_command(instance),
            depends_on=depends_on,
            probe=probe,
            log_file=self.log_file(name),
            **extra,
        )


@dataclass
class Exec:
    """The command a launcher execs into."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None  # drop to this user first (PostgreSQL refuses to run as root)


@dataclass(frozen=True)
class TlsFiles:
    cert: Path  # the server's certificate followed by the intermediate CA
    key: Path
    ca: Path  # the CA chain (intermediate and root)


class Launch:
    """Everything a launcher needs for one server process."""

    def __init__(self, settings: Settings, service: Service, instance: int = 0) -> None:
        self.settings = settings
        self.service = service
        self.instance = instance
        self.dir = settings.state.service_dir(service.name)
        self.dir.mkdir(parents=True, exist_ok=True)

    def port(self, name: str, instance: int | None = None) -> int:
        index = self.instance if instance is None else instance
        return self.settings.port(self.service.ports[name] + index)

    def reachable_by(self, user: str | None) -> None:
        """Make this server's folder one that `user` (the account it runs as) can reach.

        When the state folder lies where that account cannot go (root's home is mode 0700 on
        Debian), the folder moves outside (`outside_root`) and the state folder links to it."""
        if user is None or reachable(self.dir, user):
            return
        root = outside_root(self.settings)
        for folder in (root.parent, root):
            folder.mkdir(mode=0o711, exist_ok=True)
            st = folder.lstat()
            if folder.is_symlink() or st.st_uid != os.getuid():
                raise PermissionError(f"{folder} is not a folder of ours: remove it")
            folder.chmod(0o711)  # searchable, not listable
        (root / "state-dir").write_text(f"{self.settings.state.root}\n")
        outside = root / self.service.name
        outside.mkdir(mode=0o700, exist_ok=True)
        chown(outside, user)
        link = self.dir
        if not link.is_symlink():
            for child in link.iterdir():  # a folder made before: its contents move along
                shutil.move(str(child), outside / child.name)
            link.rmdir()
            link.symlink_to(outside, target_is_directory=True)
        self.dir = outside
        if not reachable(self.dir, user):
            raise PermissionError(f"the {user} account cannot reach {self.dir} either")

    @property
    def instance_dir(self) -> Path:
        """This process's own folder: the service folder, or `redis/redis-2` for an instance."""
        if self.service.instances == 1:
            return self.dir
        path = self.dir / f"{self.service.name}-{self.instance + 1}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @cached_property
    def vault(self) -> Vault:
        """A client logged in with this server's own AppRole (never the root token)."""
        # Here, not at the top: hvac and requests cost a launcher about 0.2 s to import
        # (docs/architecture.md), and the launchers that never call Vault need not pay it.
        from devstack_cli.vault import login_as

        return login_as(self.settings, self.service.name)

    def secret(self, name: str | None = None) -> dict[str, Any]:
        path = name or self.service.secret_path
        value = self.vault.kv_get(path)
        if value is None:
            raise RuntimeError(f"secret/{path} is missing: run `devstack vault bootstrap`")
        return value

    def admin_secret(self) -> dict[str, Any]:
        return self.secret(self.service.admin_path)

    def tls(self, owner: str | None = None) -> TlsFiles:
        """This server's certificate, issued by Vault; re-issued in the last third of its life."""
        tls_dir = self.instance_dir / "tls"
        files = TlsFiles(tls_dir / "cert.pem", tls_dir / "key.pem", tls_dir / "ca.pem")
        if not certificate_is_fresh(files.cert):
            host = self.service.hostname
            issued = self.vault.issue_certificate(
                self.service.name, host, alt_names=f"{host},localhost", ip_sans="127.0.0.1"
            )
            write_private(files.key, issued["private_key"].strip() + "\n")
            leaf_and_issuer = issued["certificate"].strip() + "\n" + issued["issuing_ca"].strip()
            write_private(files.cert, leaf_and_issuer + "\n", mode=0o644)
            write_private(files.ca, self.settings.state.ca_chain.read_text(), mode=0o644)
            # Its validity, so that the next start decides without parsing the certificate.
            validity = f"{int(time.time())} {int(issued['expiration'])}\n"
            write_private(validity_file(files.cert), validity, mode=0o644)
        if owner is not None:
            for path in (tls_dir, files.cert, files.key, files.ca):
                chown(path, owner)
        return files


def validity_file(cert: Path) -> Path:
    return cert.with_name("validity")


def certificate_is_fresh(path: Path, now: dt.datetime | None = None) -> bool:
    """True when the certificate exists and has more than a third of its lifetime left.

    Read from the `validity` file written beside it when it was issued (two epoch seconds),
    else from the certificate itself (a parser costs a launcher more than its Vault calls)."""
    moment = (now or dt.datetime.now(dt.UTC)).timestamp()
    try:
        issued, expires = (int(x) for x in validity_file(path).read_text().split())
    except (FileNotFoundError, ValueError):
        pass
    else:
        return path.exists() and expires - moment > (expires - issued) / 3
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return False
    now = now or dt.datetime.now(dt.UTC)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    return cert.not_valid_after_utc - now > lifetime / 3


def unprivileged_user(name: str) -> str | None:
    """The account to run a server that refuses root: `name` when we are root, else ourselves."""
    return name if os.geteuid() == 0 else None


def chown(path: Path, user: str | None) -> None:
    if user is not None:
        shutil.chown(path, user, pwd.getpwnam(user).pw_gid)


def reachable(path: Path, user: str) -> bool:
    """True when the account `user` can search every folder from / down to `path`."""
    entry = pwd.getpwnam(user)
    groups = {g.gr_gid for g in grp.getgrall() if user in g.gr_mem} | {entry.pw_gid}
    for parent in [path, *path.parents]:
        if not parent.exists():
            continue
        st = parent.stat()
        if st.st_uid == entry.pw_uid:
            ok = st.st_mode & 0o100
        elif st.st_gid in groups:
            ok = st.st_mode & 0o010
        else:
            ok = st.st_mode & 0o001
        if not ok:
            return False
    return True


def outside_root(settings: Settings) -> Path:
    """Where servers that run under their own account keep their folder when that account
    cannot reach the state folder (a checkout in a home folder of mode 0700): one folder per
    state folder under /var/tmp, linked from the state folder and removed by `reset`."""
    digest = hashlib.sha256(str(settings.state.root).encode()).hexdigest()[:16]
    # /var/tmp is shared: reachable_by refuses a folder there that is a link or not ours.
    return Path("/var/tmp") / f"devstack-{os.getuid()}" / digest  # noqa: S108


def exec_server(ctx: Launch, command: Exec) -> None:
    """Replace this launcher with the server: revoke the AppRole token, drop root if asked, exec.

    The server inherits no Vault token and no `DEVSTACK_*` variables, only what it is given.
    """
    if "vault" in ctx.__dict__:
        with contextlib.suppress(Exception):
            ctx.vault.revoke_token()
        ctx.vault.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEVSTACK_", "VAULT_", "BAO_"))}
    env.update(command.env)
    sys.stdout.flush()
    if command.user is not None:
        entry = pwd.getpwnam(command.user)
        os.initgroups(command.user, entry.pw_gid)
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)
        # A change of user clears the parent-death signal the supervisor set: set it again.
        supervisor = os.environ.get("DEVSTACK_SUPERVISOR_PID")
        if supervisor:
            sig = getattr(signal, os.environ.get("DEVSTACK_STOP_SIGNAL", "SIGTERM"))
            lifeline.die_with_parent(sig, int(supervisor))
        env["HOME"] = entry.pw_dir
        env["USER"] = env["LOGNAME"] = command.user
    os.chdir(ctx.dir)
    os.execvpe(command.argv[0], command.argv, env)  # noqa: S606 (replacing ourselves is the point)
