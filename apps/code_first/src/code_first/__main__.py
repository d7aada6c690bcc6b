"""`python -m code_first` (or `code-first`): serve the app over HTTP and HTTPS."""

from __future__ import annotations

from code_first.app import create_app
from devstack_web import serve


def main() -> None:
    serve(create_app())


if __name__ == "__main__":
    main()
