"""`python -m code_first` (or `code-first`): serve the app over HTTP and HTTPS."""

from __future__ import annotations

from code_first.app import create_app
from devstack_client import tune_process
from devstack_web import serve


def main() -> None:
    """Serve the app, with the library's process-wide memory measures applied first."""
    tune_process()  # devstack_client.tuning: opt-in, before the client opens a connection
    serve(create_app())


if __name__ == "__main__":
    main()
