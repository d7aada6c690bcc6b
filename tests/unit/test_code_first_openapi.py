"""code_first's generated OpenAPI (`app.openapi()`) is equivalent to openapi/devstack.yaml.

Compared, for every operation: the path and method, operationId, parameters (path-level and
operation-level merged, keyed by `in` and `name`: `required` and the schema), the request body
(`required`, media types, schema), and per status code the response's media types, schemas and
header names. Schemas are compared after resolving every `$ref` (a recursive one becomes a
marker naming its target) and normalising what carries no meaning on the wire:

- annotations: `title`, `description`, `example(s)`, `$comment` and `x-*` extensions, which
  are documentation (FastAPI adds titles, the contract adds examples);
- `default: null`: Pydantic's way of saying an optional member may be absent; the contract
  simply leaves it out of `required`. Any other default is compared;
- `anyOf: [S, {type: null}]` is how Pydantic spells a nullable S; the contract writes
  `type: [T, 'null']` (and `null` in an enum). Both become S with `null` added to its type
  (and to its enum);
- a `type` list of one is that type, and an `enum` whose values are all strings implies
  `type: string` (Pydantic omits it in `propertyNames`);
- numbers: 599.0 and 599 are the same bound; `required` is a set.

Response *descriptions* are not compared (prose), nor headers' schemas (names only).
The last tests check that the comparison itself fails on a missing route, status or field.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from code_first.app import create_app
from devstack_web import WebSettings

SPEC = Path(__file__).resolve().parents[2] / "openapi" / "devstack.yaml"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
ANNOTATIONS = {"title", "description", "example", "examples", "$comment"}


def load_contract() -> dict[str, Any]:
    with SPEC.open() as f:
        spec: dict[str, Any] = yaml.safe_load(f)
    return spec


def generated() -> dict[str, Any]:
    app = create_app(settings=WebSettings())
    return copy.deepcopy(app.openapi())


# -- resolving and normalising ------------------------------------------------------------------


def pointer(root: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def resolve(node: Any, root: dict[str, Any], active: tuple[str, ...] = ()) -> Any:
    if isinstance(node, list):
        return [resolve(n, root, active) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        if ref in active:  # a recursive schema (JsonValue): compare by name
            return {"$recursive": ref.rsplit("/", 1)[-1]}
        target = resolve(pointer(root, ref), root, (*active, ref))
        siblings = {k: resolve(v, root, active) for k, v in node.items() if k != "$ref"}
        return {**target, **siblings} if isinstance(target, dict) else target
    return {k: resolve(v, root, active) for k, v in node.items()}


def _number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def normalise(node: Any) -> Any:
    if isinstance(node, list):
        return [normalise(n) for n in node]
    if not isinstance(node, dict):
        return _number(node)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ANNOTATIONS or key.startswith("x-"):
            continue
        if key == "default" and value is None:
            continue
        if key in ("properties", "patternProperties"):
            out[key] = {name: normalise(v) for name, v in value.items()}
        else:
            out[key] = normalise(value)
    nullable = _nullable_branch(out)
    if nullable is not None:
        rest = {k: v for k, v in out.items() if k != "anyOf"}
        out = {**nullable, **rest}
        types = out.get("type")
        types = [types] if isinstance(types, str) else list(types or [])
        out["type"] = [*types, "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    if "required" in out:
        out["required"] = sorted(out["required"])
    if isinstance(out.get("type"), list):
        types = sorted(set(out["type"]))
        out["type"] = types[0] if len(types) == 1 else types
    if "enum" in out and "type" not in out and all(isinstance(v, str) for v in out["enum"]):
        out["type"] = "string"
    return out


def _nullable_branch(schema: dict[str, Any]) -> dict[str, Any] | None:
    branches = schema.get("anyOf")
    if not isinstance(branches, list) or len(branches) != 2:
        return None
    nulls = [b for b in branches if b == {"type": "null"}]
    others = [b for b in branches if b != {"type": "null"}]
    if len(nulls) != 1 or len(others) != 1 or not isinstance(others[0], dict):
        return None
    return dict(others[0])


def schema_of(node: Any, root: dict[str, Any]) -> Any:
    return normalise(resolve(node, root))


# -- the comparable view of a document ------------------------------------------------------------


def operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(METHOD, path) -> what is compared, every $ref resolved and every schema normalised."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path, item in doc["paths"].items():
        shared = [resolve(p, doc) for p in item.get("parameters", [])]
        for method in METHODS:
            if method not in item:
                continue
            op = item[method]
            params: dict[tuple[str, str], Any] = {}
            for p in [*shared, *(resolve(p, doc) for p in op.get("parameters", []))]:
                params[(p["in"], p["name"])] = {
                    "required": bool(p.get("required", False)),
                    "schema": normalise(p.get("schema")),
                }
            body = None
            if "requestBody" in op:
                rb = resolve(op["requestBody"], doc)
                body = {
                    "required": bool(rb.get("required", False)),
                    "content": {
                        media: normalise(c.get("schema")) for media, c in rb["content"].items()
                    },
                }
            responses: dict[str, Any] = {}
            for status, response in op.get("responses", {}).items():
                r = resolve(response, doc)
                responses[str(status)] = {
                    "content": {
                        media: normalise(c.get("schema"))
                        for media, c in (r.get("content") or {}).items()
                    },
                    "headers": sorted(r.get("headers", {})),
                }
            found[(method.upper(), path)] = {
                "operationId": op.get("operationId"),
                "parameters": params,
                "requestBody": body,
                "responses": responses,
            }
    return found


def differences(
    contract: dict[str, Any], app: dict[str, Any]
) -> list[str]:  # every difference, readable
    want, got = operations(contract), operations(app)
    problems: list[str] = []
    for key in sorted(set(want) - set(got)):
        problems.append(f"missing operation {key}")
    for key in sorted(set(got) - set(want)):
        problems.append(f"operation not in the contract {key}")
    for key in sorted(set(want) & set(got)):
        w, g = want[key], got[key]
        for aspect in ("operationId", "parameters", "requestBody"):
            if w[aspect] != g[aspect]:
                problems.append(f"{key} {aspect}:\n  contract {w[aspect]}\n  app      {g[aspect]}")
        if set(w["responses"]) != set(g["responses"]):
            problems.append(
                f"{key} status codes: contract {sorted(w['responses'])}, "
                f"app {sorted(g['responses'])}"
            )
        for status in sorted(set(w["responses"]) & set(g["responses"])):
            if w["responses"][status] != g["responses"][status]:
                problems.append(
                    f"{key} {status}:\n  contract {w['responses'][status]}\n"
                    f"  app      {g['responses'][status]}"
                )
    return problems


# -- the tests -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def contract() -> dict[str, Any]:
    return load_contract()


@pytest.fixture(scope="module")
def app_doc() -> dict[str, Any]:
    return generated()


def test_the_generated_openapi_is_the_contract(
    contract: dict[str, Any], app_doc: dict[str, Any]
) -> None:
    problems = differences(contract, app_doc)
    assert not problems, "\n".join(problems)


def test_it_covers_every_operation(contract: dict[str, Any], app_doc: dict[str, Any]) -> None:
    ids = {op["operationId"] for op in operations(app_doc).values()}
    assert ids == {op["operationId"] for op in operations(contract).values()}
    assert len(ids) == 32
    assert app_doc["openapi"].startswith("3.1")
    assert app_doc["info"]["version"] == contract["info"]["version"]


def test_no_fastapi_validation_error_schema_leaks(app_doc: dict[str, Any]) -> None:
    schemas = app_doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas


# -- the comparison can fail ---------------------------------------------------------------------


def test_a_missing_route_is_reported(contract: dict[str, Any], app_doc: dict[str, Any]) -> None:
    changed = copy.deepcopy(app_doc)
    del changed["paths"]["/examples/cache/{key}"]["delete"]
    assert any("missing operation ('DELETE'" in p for p in differences(contract, changed))


def test_a_different_status_code_is_reported(
    contract: dict[str, Any], app_doc: dict[str, Any]
) -> None:
    changed = copy.deepcopy(app_doc)
    responses = changed["paths"]["/examples/messaging/queues/{queue}/messages"]["post"]["responses"]
    responses["200"] = responses.pop("202")
    assert any("status codes" in p for p in differences(contract, changed))


def test_a_different_field_is_reported(contract: dict[str, Any], app_doc: dict[str, Any]) -> None:
    changed = copy.deepcopy(app_doc)
    item = changed["components"]["schemas"]["Item"]
    item["properties"]["quantity"]["maximum"] = 100
    assert differences(contract, changed)
    changed = copy.deepcopy(app_doc)
    del changed["components"]["schemas"]["CacheEntry"]["properties"]["ttl_seconds"]
    assert differences(contract, changed)
    changed = copy.deepcopy(app_doc)
    changed["components"]["schemas"]["ItemCreate"]["additionalProperties"] = True
    assert differences(contract, changed)


def test_a_different_parameter_is_reported(
    contract: dict[str, Any], app_doc: dict[str, Any]
) -> None:
    changed = copy.deepcopy(app_doc)
    for param in changed["paths"]["/examples/postgres/items"]["get"]["parameters"]:
        if param["name"] == "limit":
            param["schema"]["maximum"] = 1000
    assert any("parameters" in p for p in differences(contract, changed))
