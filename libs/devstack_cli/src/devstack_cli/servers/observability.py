"""What the observability services share: finding their programs (Debian packages).

The programs come from Debian 12 (`prometheus` 2.42 and the `prometheus-*-exporter` packages);
see docs/observability.md for why these parts. Each exporter reads its credentials with its own
AppRole into a file of mode 0600 (or its own configuration file), never its arguments or
environment, and verifies the server's certificate against the stack's CA.
"""

from __future__ import annotations

import shutil

# program -> the Debian package that provides it
PACKAGES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "prometheus-postgres-exporter": "prometheus-postgres-exporter",
    "prometheus-mysqld-exporter": "prometheus-mysqld-exporter",
    "prometheus-redis-exporter": "prometheus-redis-exporter",
}


def program(name: str) -> str:
    """The path of an observability program, or an error that names its package."""
    found = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/sbin")
    if found is None:
        package = PACKAGES.get(name, name)
        raise FileNotFoundError(
            f"{name} is not installed: sudo apt-get install -y --no-install-recommends {package}"
        )
    return found
