"""A container's healthcheck: the native engine's probe of that process, run inside the container.

compose.yaml (rendered by `devstack compose render` from the plan the native supervisor runs)
gives each service `python3 -I probe.py '<probe as JSON>'`, where ports are the table's base
ports; DEVSTACK_PORT_OFFSET (the container's environment) is added here, as `devstack` adds it
natively. Standard library only: Docker runs this every few seconds in every container, so it
must start in milliseconds (the `devstack` command imports far more).

The probe has exactly one of (as devstack_cli.plan.Probe):
  {"tcp": [base ports], "send": "hex"}  every port answers at least one byte after `send`;
  {"http": "http://127.0.0.1:BASE/path"}  a 200;
  {"exec": ["program", "arg", ...]}  exit 0; an argument "@BASE" is that port with the offset;
  {"postgres": BASE}  PostgreSQL accepts connections (pg_isready's question, as the supervisor's).
Exit 0 when the probe passes, 1 otherwise (the reason on stderr: `docker inspect` shows it).

`probe.py --exec PROGRAM ARG...` replaces itself with PROGRAM, each "@BASE" argument moved by
the offset: how a process of the plan that is not the `devstack` launcher (RabbitMQ's epmd) gets
its port, since Compose cannot add numbers.
"""

import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

TIMEOUT = 5.0
# Where Debian puts programs that are not on PATH (as devstack_cli.tools.EXTRA_DIRS).
EXTRA_PATH = "/usr/lib/postgresql/15/bin:/usr/lib/rabbitmq/bin:/usr/sbin"


def tcp(ports: list[int], send: bytes, offset: int) -> str | None:
    for base in ports:
        port = base + offset
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            if send:
                sock.sendall(send)
            if not sock.recv(1):
                return f"port {port} closed without answering"
    return None


def http(url: str, offset: int) -> str | None:
    parts = urllib.parse.urlsplit(url)
    netloc = f"{parts.hostname}:{(parts.port or 80) + offset}"
    moved = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    try:
        with urllib.request.urlopen(moved, timeout=TIMEOUT) as response:  # noqa: S310 (http only)
            code = response.status
    except urllib.error.HTTPError as exc:
        code = exc.code
    return None if code == 200 else f"HTTP {code}"


def postgres(base: int, offset: int) -> str | None:
    """TLS, then a startup packet for a role that need not exist: an authentication request, or
    any error but 57P03 (starting up), means the server accepts connections. No secret is sent."""
    port = base + offset
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        # SSLRequest (devstack_cli.plan.POSTGRES_SSL_REQUEST; this file imports only the stdlib)
        raw.sendall(bytes.fromhex("0000000804d2162f"))
        if raw.recv(1) != b"S":
            return f"port {port} does not speak TLS"
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with context.wrap_socket(raw) as sock:
            params = b"user\0devstack_probe\0database\0postgres\0\0"
            sock.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
            answer = sock.recv(4096)
    if answer[:1] == b"R" or (answer[:1] == b"E" and b"\0C57P03\0" not in answer):
        return None
    return f"port {port} does not accept connections yet"


def moved(argv: list[str], offset: int) -> list[str]:
    return [str(int(a[1:]) + offset) if a.startswith("@") else a for a in argv]


def run(argv: list[str], offset: int) -> str | None:
    args = moved(argv, offset)
    program = shutil.which(args[0]) or shutil.which(args[0], path=EXTRA_PATH) or args[0]
    code = subprocess.run(
        [program, *args[1:]],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=TIMEOUT,
        check=False,
    ).returncode
    return None if code == 0 else f"probe exited {code}"


def main() -> int:
    offset = int(os.environ.get("DEVSTACK_PORT_OFFSET") or "0")
    if sys.argv[1:2] == ["--exec"]:
        argv = moved(sys.argv[2:], offset)
        os.execvp(argv[0], argv)  # noqa: S606 (the plan's command, from compose.yaml)
    probe = json.loads(sys.argv[1])
    try:
        if probe.get("tcp"):
            reason = tcp(probe["tcp"], bytes.fromhex(probe.get("send", "")), offset)
        elif probe.get("http"):
            reason = http(probe["http"], offset)
        elif probe.get("postgres"):
            reason = postgres(probe["postgres"], offset)
        else:
            reason = run(probe["exec"], offset)
    except (OSError, subprocess.TimeoutExpired) as exc:
        reason = type(exc).__name__
    if reason:
        print(reason, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
