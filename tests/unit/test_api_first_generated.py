"""api_first's generated code (apps/api_first/src/api_first/generated/) matches the contract.

The models and the operation table are generated from openapi/devstack.yaml by
apps/api_first/generate.py; a contract change without a regeneration fails here. Regenerate with
`.venv/bin/python apps/api_first/generate.py`.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
GENERATE = ROOT / "apps" / "api_first" / "generate.py"
SPEC = ROOT / "openapi" / "devstack.yaml"


@pytest.fixture(scope="module")
def generate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("api_first_generate", GENERATE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(GENERATE), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, (
        "apps/api_first/src/api_first/generated/ is stale: run "
        "`.venv/bin/python apps/api_first/generate.py`\n" + result.stdout + result.stderr
    )


def test_the_generator_is_the_pinned_one(generate: ModuleType) -> None:
    version = subprocess.run(
        [generate.generator(), "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert version.split() == ["datamodel-codegen", "0.89.0"]


@pytest.fixture
def changed_spec(tmp_path: Path) -> Path:
    """The contract with a field's description, a schema's description (the operation table's
    SCHEMA_DESCRIPTIONS) and a parameter's bound changed."""
    text = SPEC.read_text(encoding="utf-8")
    changed = (
        text.replace("The KV v2 version of the secret.", "The KV v2 version, changed.", 1)
        .replace("A new item. Unknown", "A new item at all. Unknown", 1)
        .replace("        default: 20\n", "        default: 25\n", 1)
    )
    assert "version, changed" in changed
    assert "at all" in changed
    assert "default: 25" in changed
    path = tmp_path / "devstack.yaml"
    path.write_text(changed, encoding="utf-8")
    return path


def test_the_models_check_fails_when_the_contract_changes(
    generate: ModuleType, changed_spec: Path
) -> None:
    assert generate.run_models(check=True, spec=changed_spec) == 1


def test_the_operations_check_fails_when_the_contract_changes(
    generate: ModuleType, changed_spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert generate.run_operations(check=True, spec=changed_spec) == 1
    out = capsys.readouterr().out
    assert "default=25" in out
    assert "A new item at all" in out
