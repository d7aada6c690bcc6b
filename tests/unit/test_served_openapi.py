"""The OpenAPI document each Python app serves does not depend on docstrings.

The apps run with `python -OO` (devstack_cli.appenv), which drops docstrings, and pydantic and
FastAPI take descriptions from them when nothing else gives one. So every description of the
served document is configuration, and these tests build each app in a `python -OO` process and
compare its document with the one built here, with docstrings.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from api_first.app import create_app as create_api_first
from code_first.app import create_app as create_code_first
from devstack_web import WebSettings

SPEC = Path(__file__).resolve().parents[2] / "openapi" / "devstack.yaml"
APPS = {"code_first": create_code_first, "api_first": create_api_first}
DUMP = (
    "import json, sys; from devstack_web import WebSettings; "
    "from {app}.app import create_app; "
    "assert sys.flags.optimize == 2; assert create_app.__doc__ is None; "
    "json.dump(create_app(settings=WebSettings()).openapi(), sys.stdout)"
)


def served_under_minus_oo(app: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-OO", "-c", DUMP.format(app=app)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    document: dict[str, Any] = json.loads(done.stdout)
    return document


@pytest.mark.parametrize("app", sorted(APPS))
def test_the_document_is_the_same_without_docstrings(app: str) -> None:
    with_docstrings = json.loads(json.dumps(APPS[app](settings=WebSettings()).openapi()))
    assert served_under_minus_oo(app) == with_docstrings


@pytest.mark.parametrize("app", sorted(APPS))
def test_every_schema_description_is_the_contracts(app: str) -> None:
    """Problem (shared) and, in api_first, every schema: the contract's words."""
    with SPEC.open() as f:
        contract = yaml.safe_load(f)["components"]["schemas"]
    served = APPS[app](settings=WebSettings()).openapi()["components"]["schemas"]
    names = ["Problem"] if app == "code_first" else sorted(set(served) & set(contract))
    for name in names:
        assert served[name].get("description") == contract[name].get("description"), name
