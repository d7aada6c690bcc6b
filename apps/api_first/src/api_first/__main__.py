"""`python -m api_first` (or `api-first`): serve the app over HTTP and HTTPS from one process.

Ports, TLS and the stack it talks to come from the environment (see devstack_web's
WebSettings and docs/client.md): by default :8001 and https :8444.
"""

from __future__ import annotations

from api_first.app import create_app
from devstack_client import tune_process
from devstack_web import serve


def main() -> None:
    """Serve the app, with the library's process-wide memory measures applied first."""
    tune_process()  # devstack_client.tuning: opt-in, before the client opens a connection
    serve(create_app())


if __name__ == "__main__":
    main()
