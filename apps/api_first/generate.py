"""Generate api_first's code from the contract, or check that it is up to date.

    .venv/bin/python apps/api_first/generate.py          # write src/api_first/generated/
    .venv/bin/python apps/api_first/generate.py --check  # exit 1, with a diff, when stale

Both files come from openapi/devstack.yaml alone and are formatted by the project's own ruff:
- `generated/models.py`: the schemas as Pydantic v2 models, by datamodel-code-generator (pinned
  exactly in the lock: its output changes between releases);
- `generated/operations.py`: the operation table (paths, methods, operationIds, parameters and
  their constraints, statuses), which the app builds its routes from.
`tests/unit/test_api_first_generated.py` runs `--check`, so a contract change without a
regeneration fails the unit tests. Never edit the generated files by hand.

The model options, and why:
- Pydantic v2 models, closed objects (`extra="forbid"`) as the contract's
  `additionalProperties: false` says; constraints in `Annotated[..., Field(...)]`; enums as
  `Literal`s, so the models carry no enum classes of their own.
- `--strict-nullable --use-missing-sentinel`: an optional member that is not nullable in the
  contract (`CacheWrite.ttl_seconds`, `ItemCreate.quantity`) refuses `null` (422) instead of
  reading it as "absent"; an omitted one is `pydantic.MISSING` (or its default).
- No model docstrings (`--use-schema-description`): the apps run with `python -OO`, which drops
  docstrings, and pydantic took the schemas' descriptions from them. The operation table
  carries the contract's schema descriptions instead (`SCHEMA_DESCRIPTIONS`), for the served
  OpenAPI document.
- `JsonValue` is Pydantic's own recursive JSON type: the generated union would turn every
  integer of a published message into a float (`42` -> `42.0`).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SPEC = ROOT / "openapi" / "devstack.yaml"
GENERATED = HERE / "src" / "api_first" / "generated"
OUTPUT = GENERATED / "models.py"
OPERATIONS = GENERATED / "operations.py"
METHODS = ("get", "put", "post", "patch", "delete")

OPTIONS: tuple[str, ...] = (
    "--input-file-type=openapi",
    "--output-model-type=pydantic_v2.BaseModel",
    "--target-python-version=3.11",
    "--target-pydantic-version=2.14",
    "--use-annotated",
    "--field-constraints",
    "--use-standard-collections",
    "--use-union-operator",
    "--enum-field-as-literal=all",
    "--strict-nullable",
    "--use-missing-sentinel",
    # JSON Schema's integer (3 and 3.0, never "3" or true): see devstack_web.ContractModel.
    "--base-class",
    "devstack_web.ContractModel",
    "--type-overrides=" + json.dumps({"JsonValue": "pydantic.JsonValue"}),
    "--use-double-quotes",
    "--disable-timestamp",
    "--formatters",
    "ruff-check",
    "ruff-format",
)


def generator() -> str:
    """The datamodel-codegen of the environment running this script (the locked one)."""
    beside = Path(sys.executable).parent / "datamodel-codegen"
    if beside.exists():
        return str(beside)
    found = shutil.which("datamodel-codegen")
    if found is None:
        raise SystemExit("datamodel-codegen is not installed: run `uv sync` first")
    return found


def command(*, check: bool = False, spec: Path = SPEC, output: Path = OUTPUT) -> list[str]:
    args = [generator(), f"--input={spec}", f"--output={output}", *OPTIONS]
    return [*args, "--check"] if check else args


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # The generator runs `ruff` to format: the environment's own, with the project's settings.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def run_models(*, check: bool = False, spec: Path = SPEC, output: Path = OUTPUT) -> int:
    """Generate (or check) the models; returns the generator's exit status."""
    if not check:
        output.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.run(command(check=check, spec=spec, output=output), env=_env()).returncode


# -- the operation table ------------------------------------------------------------------------


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        ref: str = node["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"only local references are supported: {ref}")
        target: Any = spec
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def _text(value: Any) -> str | None:
    return None if value is None else " ".join(str(value).split())


def _schema_name(schema: dict[str, Any] | None) -> str | None:
    if schema is None or "$ref" not in schema:
        return None
    return str(schema["$ref"]).rsplit("/", 1)[-1]


def _parameter(spec: dict[str, Any], raw: dict[str, Any]) -> str:
    p = _resolve(spec, raw)
    schema = _resolve(spec, p.get("schema", {}))
    if schema.get("type") not in ("string", "integer"):
        raise ValueError(f"parameter {p['name']}: unsupported type {schema.get('type')!r}")
    fields: dict[str, Any] = {
        "name": p["name"],
        "location": p["in"],
        "required": bool(p.get("required", False)),
        "type": schema["type"],
        "description": _text(p.get("description")),
        "pattern": schema.get("pattern"),
        "min_length": schema.get("minLength"),
        "max_length": schema.get("maxLength"),
        "minimum": schema.get("minimum"),
        "maximum": schema.get("maximum"),
        "default": schema.get("default"),
        **_refused(schema.get("not")),
    }
    args = ", ".join(f"{k}={v!r}" for k, v in fields.items() if v is not None or k == "required")
    return f"Parameter({args})"


def _refused(schema: dict[str, Any] | None) -> dict[str, Any]:
    """A parameter schema's `not` (an enum, a pattern, or anyOf those): what it refuses."""
    if not schema:
        return {}
    branches = schema.get("anyOf", [schema])
    values = tuple(v for b in branches for v in b.get("enum", ()))
    patterns = tuple(b["pattern"] for b in branches if "pattern" in b)
    unsupported = any(set(b) - {"enum", "pattern", "type"} for b in branches)
    if unsupported or not (values or patterns):
        raise ValueError(f"unsupported `not` in a parameter schema: {schema}")
    return {"not_enum": values or None, "not_patterns": patterns or None}


def _response(spec: dict[str, Any], status: str, raw: dict[str, Any]) -> str:
    r = _resolve(spec, raw)
    content: dict[str, Any] = r.get("content", {})
    media_type = next(iter(content), None)
    schema = None if media_type is None else _schema_name(content[media_type].get("schema"))
    headers = tuple(r.get("headers", {}))
    return (
        f"Response(status={int(status)}, description={_text(r['description'])!r}, "
        f"media_type={media_type!r}, schema={schema!r}, headers={headers!r})"
    )


def render_operations(spec: dict[str, Any]) -> str:
    """The source of generated/operations.py, before formatting."""
    rows: list[str] = []
    for path, item in spec["paths"].items():
        shared = item.get("parameters", [])
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            parameters = [_parameter(spec, p) for p in [*shared, *op.get("parameters", [])]]
            body = None
            if "requestBody" in op:
                content = _resolve(spec, op["requestBody"])["content"]
                body = _schema_name(content["application/json"]["schema"])
            responses = [_response(spec, s, r) for s, r in sorted(op["responses"].items())]
            rows.append(
                "Operation("
                f"operation_id={op['operationId']!r}, method={method.upper()!r}, path={path!r}, "
                f"tag={op['tags'][0]!r}, summary={_text(op.get('summary'))!r}, "
                f"description={_text(op.get('description'))!r}, "
                f"parameters=({''.join(p + ', ' for p in parameters)}), "
                f"request_body={body!r}, "
                f"responses=({''.join(r + ', ' for r in responses)}),"
                ")"
            )
    schemas: dict[str, dict[str, Any]] = spec.get("components", {}).get("schemas", {})
    descriptions = {name: s["description"] for name, s in schemas.items() if "description" in s}
    return (
        "# generated by apps/api_first/generate.py from openapi/devstack.yaml: do not edit.\n"
        '"""The contract\'s operations, in its path order (see api_first.contract)."""\n\n'
        "from __future__ import annotations\n\n"
        "from api_first.contract import Operation, Parameter, Response\n\n"
        f"CONTRACT_VERSION = {spec['info']['version']!r}\n\n"
        f"OPERATIONS: tuple[Operation, ...] = ({''.join(r + ', ' for r in rows)})\n\n"
        "# The description of each schema that has one, for the served OpenAPI document.\n"
        f"SCHEMA_DESCRIPTIONS: dict[str, str] = {descriptions!r}\n"
    )


def _format(source: str, filename: Path) -> str:
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run(
        [str(ruff if ruff.exists() else "ruff"), "format", f"--stdin-filename={filename}", "-"],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
        check=True,
    )
    return result.stdout


def run_operations(*, check: bool = False, spec: Path = SPEC, output: Path = OPERATIONS) -> int:
    with spec.open(encoding="utf-8") as f:
        document: dict[str, Any] = yaml.safe_load(f)
    expected = _format(render_operations(document), output)
    if not check:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(expected, encoding="utf-8")
        return 0
    current = output.read_text(encoding="utf-8") if output.exists() else ""
    if current == expected:
        return 0
    sys.stdout.writelines(
        difflib.unified_diff(
            current.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            str(output),
            f"{output} (expected)",
        )
    )
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when the generated code is stale"
    )
    args = parser.parse_args(argv)
    models = run_models(check=args.check)
    operations = run_operations(check=args.check)
    return max(models, operations)


if __name__ == "__main__":
    raise SystemExit(main())
