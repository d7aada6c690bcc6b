"""Lint the API contract, openapi/devstack.yaml, and keep docs/api.md's operation table true to it.

Each rule is a function that returns the violations it finds (empty when the contract obeys it),
so a failure names every offending place at once, and `test_each_rule_catches_a_violation`
proves that every rule fails when its rule is broken.
"""

from __future__ import annotations

import copy
import importlib.util
import re
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

# jsonschema comes with openapi-spec-validator (it is what that package validates with).
from jsonschema import Draft202012Validator
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

ROOT = Path(__file__).resolve().parents[2]
SPEC_PATH = ROOT / "openapi" / "devstack.yaml"
RENDER_DOCS_PATH = ROOT / "openapi" / "render_docs.py"
DOCS_PATH = ROOT / "docs" / "api.md"
SERVICES_PATH = ROOT / "stack" / "services.toml"
MASK = "********"

Spec = dict[str, Any]
Operation = tuple[str, str, dict[str, Any], dict[str, Any]]  # path, method, operation, path item

HTTP_METHODS = ("get", "put", "post", "patch", "delete", "head", "options", "trace")
PROBLEM = "#/components/schemas/Problem"
HEALTH_REPORT = "#/components/schemas/HealthReport"
# The readiness endpoints answer 503 with the health report itself, so a client sees which check
# failed; everywhere else an error is a problem document.
HEALTH_PATHS = frozenset({"/health/all", "/health/{service}"})
CAMEL_CASE = re.compile(r"^[a-z][a-z0-9]*(?:[A-Z][a-z0-9]*)*$")
BODY_ERRORS = ("400", "413", "415", "422")
# Parameter schema keywords that can make a value invalid, so the operation must declare 422.
CONSTRAINTS = frozenset(
    {
        "pattern",
        "format",
        "enum",
        "const",
        "not",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "maxLength",
    }
)
# What makes a schema typed: without one of these a schema accepts anything.
TYPING_KEYWORDS = frozenset({"$ref", "type", "const", "enum", "allOf", "anyOf", "oneOf", "not"})
SINGLE_SUBSCHEMAS = (
    "items",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
)
MAP_SUBSCHEMAS = ("properties", "patternProperties", "$defs", "dependentSchemas")
LIST_SUBSCHEMAS = ("allOf", "anyOf", "oneOf", "prefixItems")
# Lookaround and backreferences: ECMA-262 and Python have them, Go (RE2) and Rust `regex` do not.
NON_PORTABLE_REGEX = re.compile(r"\(\?(?:=|!|<=|<!)|\\[1-9]|\\k<")


# --- helpers ---------------------------------------------------------------------------------


def load_spec() -> Spec:
    with SPEC_PATH.open(encoding="utf-8") as f:
        spec: Spec = yaml.safe_load(f)
    return spec


@pytest.fixture(scope="module")
def spec() -> Spec:
    return load_spec()


def resolve(spec: Spec, node: Any) -> Any:
    """Follow local `$ref`s ("#/components/...") until a node without one."""
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), f"only local references are expected, got {ref}"
        node = spec
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def operations(spec: Spec) -> Iterator[Operation]:
    for path, item in spec["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield path, method, item[method], item


def where(path: str, method: str) -> str:
    return f"{method.upper()} {path}"


def responses(spec: Spec, op: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for code, response in op["responses"].items():
        yield str(code), resolve(spec, response)


def parameters(spec: Spec, op: dict[str, Any], item: dict[str, Any]) -> list[dict[str, Any]]:
    return [resolve(spec, p) for p in [*item.get("parameters", []), *op.get("parameters", [])]]


def schema_tree(schema: Any, at: str) -> Iterator[tuple[str, Any]]:
    """A schema and every subschema in it, each with a readable location."""
    yield at, schema
    if not isinstance(schema, dict):
        return
    for key in SINGLE_SUBSCHEMAS:
        if key in schema:
            yield from schema_tree(schema[key], f"{at}/{key}")
    for key in MAP_SUBSCHEMAS:
        for name, sub in schema.get(key, {}).items():
            yield from schema_tree(sub, f"{at}/{key}/{name}")
    for key in LIST_SUBSCHEMAS:
        for i, sub in enumerate(schema.get(key, [])):
            yield from schema_tree(sub, f"{at}/{key}/{i}")


def schema_holders(node: Any, at: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every object with a `schema` member (parameters, headers, media types), outside examples."""
    if isinstance(node, dict):
        if isinstance(node.get("schema"), dict | bool):
            yield at, node
        for key, value in node.items():
            if key not in ("schema", "example", "examples"):
                yield from schema_holders(value, f"{at}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from schema_holders(value, f"{at}/{i}")


def all_schemas(spec: Spec) -> Iterator[tuple[str, Any]]:
    for name, schema in spec["components"]["schemas"].items():
        yield from schema_tree(schema, f"#/components/schemas/{name}")
    document = {k: v for k, v in spec.items() if k != "components"}
    components = {k: v for k, v in spec["components"].items() if k != "schemas"}
    for at, holder in [
        *schema_holders(document, "#"),
        *schema_holders(components, "#/components"),
    ]:
        yield from schema_tree(holder["schema"], f"{at}/schema")


def validator(spec: Spec, schema: Any) -> Draft202012Validator:
    # The contract's components sit at the root, so "#/components/..." resolves as in the spec.
    root = {"components": spec["components"], "allOf": [schema]}
    return Draft202012Validator(root, format_checker=Draft202012Validator.FORMAT_CHECKER)


# --- rules: each returns the violations it finds -------------------------------------------


def operation_id_violations(spec: Spec) -> list[str]:
    found: list[str] = []
    seen: dict[str, str] = {}  # operationId: where it is first used
    for path, method, op, _ in operations(spec):
        op_id = op.get("operationId")
        if not isinstance(op_id, str) or not CAMEL_CASE.match(op_id):
            found.append(f"{where(path, method)}: operationId {op_id!r} is not camelCase")
        elif op_id in seen:
            found.append(f"{where(path, method)}: operationId {op_id} also used by {seen[op_id]}")
        else:
            seen[op_id] = where(path, method)
    return found


def tag_violations(spec: Spec) -> list[str]:
    declared = {t["name"] for t in spec.get("tags", [])}
    found = []
    for path, method, op, _ in operations(spec):
        tags = op.get("tags", [])
        if not tags:
            found.append(f"{where(path, method)}: no tag")
        found += [
            f"{where(path, method)}: tag {t!r} not declared" for t in tags if t not in declared
        ]
    return found


def content_schema_violations(spec: Spec) -> list[str]:
    found = []
    for path, method, op, _ in operations(spec):
        if "requestBody" in op:
            body = resolve(spec, op["requestBody"])
            if not body.get("content"):
                found.append(f"{where(path, method)}: request body without content")
            for media, obj in body.get("content", {}).items():
                if "schema" not in obj:
                    found.append(f"{where(path, method)}: request body {media} has no schema")
        for code, response in responses(spec, op):
            for media, obj in response.get("content", {}).items():
                if "schema" not in obj:
                    found.append(f"{where(path, method)} {code}: {media} has no schema")
    return found


def untyped_schema_violations(spec: Spec) -> list[str]:
    found = []
    for at, schema in all_schemas(spec):
        if schema is False:
            continue  # `additionalProperties: false`, the closed object
        if schema is True or schema == {}:
            found.append(f"{at}: empty schema accepts anything")
        elif isinstance(schema, dict):
            if not TYPING_KEYWORDS & schema.keys():
                found.append(f"{at}: schema has no type")
            types = schema.get("type", [])
            if "object" in ([types] if isinstance(types, str) else types):
                extra = schema.get("additionalProperties")
                if "properties" not in schema and not isinstance(extra, dict | bool):
                    found.append(f"{at}: object without properties or additionalProperties")
                if extra is True:
                    found.append(f"{at}: additionalProperties: true leaves map values untyped")
    return found


def error_response_violations(spec: Spec) -> list[str]:
    found = []
    for path, method, op, _ in operations(spec):
        for code, response in responses(spec, op):
            if not code.startswith(("4", "5")):
                continue
            media, ref = "application/problem+json", PROBLEM
            if path in HEALTH_PATHS and code == "503":
                media, ref = "application/json", HEALTH_REPORT
            content = response.get("content", {})
            schema = content.get(media, {}).get("schema", {})
            if list(content) != [media] or schema.get("$ref") != ref:
                found.append(
                    f"{where(path, method)} {code}: must be exactly {media} with schema {ref}, "
                    f"has {sorted(content)}"
                )
    return found


def server_error_violations(spec: Spec) -> list[str]:
    found = []
    for path, method, op, _ in operations(spec):
        for code in op["responses"]:
            if str(code) in ("500", "5XX", "default"):
                found.append(
                    f"{where(path, method)}: declares {code}; a failure is 503 or 504, never 500"
                )
    return found


def request_id_violations(spec: Spec) -> list[str]:
    found = []
    for path, method, op, item in operations(spec):
        names = {(p["in"], p["name"].lower()) for p in parameters(spec, op, item)}
        if ("header", "x-request-id") not in names:
            found.append(f"{where(path, method)}: does not accept an X-Request-ID header")
        for code, response in responses(spec, op):
            if "X-Request-ID" not in response.get("headers", {}):
                found.append(f"{where(path, method)} {code}: no X-Request-ID header")
    return found


def touches_dependency(path: str) -> bool:
    return path.startswith("/examples/") or path in HEALTH_PATHS


def dependency_status_violations(spec: Spec) -> list[str]:
    found = []
    for path, method, op, _ in operations(spec):
        codes = {str(c) for c in op["responses"]}
        if touches_dependency(path):
            needed = {"503"} | ({"504", "429"} if path.startswith("/examples/") else set())
            found += [
                f"{where(path, method)}: does not declare {c}" for c in sorted(needed - codes)
            ]
        elif codes & {"503", "504"}:
            found.append(f"{where(path, method)}: touches no dependency, yet declares 503/504")
    return found


def header_violations(spec: Spec) -> list[str]:
    required = {"429": ("Retry-After", "RateLimit", "RateLimit-Policy"), "503": ("Retry-After",)}
    found = []
    for path, method, op, _ in operations(spec):
        for code, response in responses(spec, op):
            headers = response.get("headers", {})
            for name in required.get(code, ()):
                if name not in headers:
                    found.append(f"{where(path, method)} {code}: no {name} header")
                elif not resolve(spec, headers[name]).get("required"):
                    found.append(f"{where(path, method)} {code}: {name} is not required")
    return found


def request_body_violations(spec: Spec) -> list[str]:
    found = []
    for path, method, op, _ in operations(spec):
        if "requestBody" not in op:
            continue
        body = resolve(spec, op["requestBody"])
        if body.get("required") is not True:
            found.append(f"{where(path, method)}: request body is not required")
        if list(body.get("content", {})) != ["application/json"]:
            found.append(f"{where(path, method)}: request body must be application/json only")
        codes = {str(c) for c in op["responses"]}
        found += [
            f"{where(path, method)}: takes a body but does not declare {c}"
            for c in BODY_ERRORS
            if c not in codes
        ]
    return found


def parameter_violations(spec: Spec) -> list[str]:
    found = []
    for path, method, op, item in operations(spec):
        codes = {str(c) for c in op["responses"]}
        for param in parameters(spec, op, item):
            schema = resolve(spec, param["schema"])
            constrained = bool(CONSTRAINTS & schema.keys()) or schema.get("type") != "string"
            if constrained and "422" not in codes:
                found.append(
                    f"{where(path, method)}: parameter {param['name']} can be invalid, "
                    "but 422 is not declared"
                )
    return found


def pattern_violations(spec: Spec) -> list[str]:
    found = []
    for at, schema in all_schemas(spec):
        pattern = schema.get("pattern") if isinstance(schema, dict) else None
        if pattern is None:
            continue
        try:
            re.compile(pattern)
        except re.error as e:
            found.append(f"{at}: pattern {pattern!r} does not compile: {e}")
        if NON_PORTABLE_REGEX.search(pattern):
            found.append(f"{at}: pattern {pattern!r} uses lookaround or a backreference")
    return found


def example_violations(spec: Spec) -> list[str]:
    cases: list[tuple[str, Any, Any]] = []
    for name, schema in spec["components"]["schemas"].items():
        if "example" in schema:
            cases.append((f"#/components/schemas/{name}", schema, schema["example"]))
    for at, holder in schema_holders(spec, "#"):
        if "example" in holder:
            cases.append((at, holder["schema"], holder["example"]))
        for key, example in holder.get("examples", {}).items():
            cases.append((f"{at}/examples/{key}", holder["schema"], example["value"]))
    found = []
    for at, schema, example in cases:
        found += [
            f"{at}: example invalid: {e.message}"
            for e in validator(spec, schema).iter_errors(example)
        ]
    return found


RULES: dict[str, Callable[[Spec], list[str]]] = {
    "operationIds are unique and camelCase": operation_id_violations,
    "every operation has a declared tag": tag_violations,
    "every request body and response content has a schema": content_schema_violations,
    "no schema is empty or untyped": untyped_schema_violations,
    "every error is a problem document": error_response_violations,
    "no 500 is declared": server_error_violations,
    "X-Request-ID is accepted and returned everywhere": request_id_violations,
    "operations touching a dependency declare 503 (and 504, 429)": dependency_status_violations,
    "429 and 503 declare their headers": header_violations,
    "request bodies are JSON and declare 400/413/415/422": request_body_violations,
    "parameters that can be invalid declare 422": parameter_violations,
    "patterns compile and are portable": pattern_violations,
    "examples match their schemas": example_violations,
}


# --- tests -----------------------------------------------------------------------------------


def test_validates_as_openapi_3_1(spec: Spec) -> None:
    assert str(spec["openapi"]).startswith("3.1."), f"expected OpenAPI 3.1, got {spec['openapi']}"
    validate(spec, cls=OpenAPIV31SpecValidator)


def test_info_and_servers(spec: Spec) -> None:
    assert spec["info"]["version"] == "1.0.0"
    urls = {s["url"] for s in spec["servers"]}
    assert {"http://localhost:8000", "http://localhost:8001"} <= urls, f"servers: {urls}"


@pytest.mark.parametrize("rule", RULES)
def test_rule(spec: Spec, rule: str) -> None:
    violations = RULES[rule](spec)
    assert not violations, f"{rule}:\n  " + "\n  ".join(violations)


def _break_operation_id(spec: Spec) -> None:
    spec["paths"]["/examples/postgres/query"]["get"]["operationId"] = "postgres_query"


def _break_tag(spec: Spec) -> None:
    spec["paths"]["/metrics"]["get"]["tags"] = []


def _break_content_schema(spec: Spec) -> None:
    del spec["components"]["responses"]["ItemOk"]["content"]["application/json"]["schema"]


def _break_typing(spec: Spec) -> None:
    spec["components"]["schemas"]["CacheWrite"]["properties"]["value"] = {}


def _break_error_media(spec: Spec) -> None:
    response = spec["components"]["responses"]["NotFound"]
    response["content"] = {"application/json": response["content"]["application/problem+json"]}


def _break_500(spec: Spec) -> None:
    spec["paths"]["/examples/mysql/query"]["get"]["responses"]["500"] = {"description": "oops"}


def _break_request_id(spec: Spec) -> None:
    del spec["components"]["responses"]["NoContent"]["headers"]["X-Request-ID"]


def _break_503(spec: Spec) -> None:
    del spec["paths"]["/examples/cache/{key}"]["get"]["responses"]["503"]


def _break_retry_after(spec: Spec) -> None:
    del spec["components"]["responses"]["TooManyRequests"]["headers"]["Retry-After"]


def _break_body_errors(spec: Spec) -> None:
    del spec["paths"]["/examples/cache/{key}"]["put"]["responses"]["415"]


def _break_422(spec: Spec) -> None:
    del spec["paths"]["/examples/mongodb/items"]["get"]["responses"]["422"]


def _break_pattern(spec: Spec) -> None:
    spec["components"]["parameters"]["CacheKey"]["schema"]["pattern"] = "^(?!amq\\.).+$"


def _break_example(spec: Spec) -> None:
    spec["components"]["schemas"]["QueueInfo"]["example"]["message_count"] = -1


BREAKAGES: dict[str, Callable[[Spec], None]] = {
    "operationIds are unique and camelCase": _break_operation_id,
    "every operation has a declared tag": _break_tag,
    "every request body and response content has a schema": _break_content_schema,
    "no schema is empty or untyped": _break_typing,
    "every error is a problem document": _break_error_media,
    "no 500 is declared": _break_500,
    "X-Request-ID is accepted and returned everywhere": _break_request_id,
    "operations touching a dependency declare 503 (and 504, 429)": _break_503,
    "429 and 503 declare their headers": _break_retry_after,
    "request bodies are JSON and declare 400/413/415/422": _break_body_errors,
    "parameters that can be invalid declare 422": _break_422,
    "patterns compile and are portable": _break_pattern,
    "examples match their schemas": _break_example,
}


def test_every_rule_has_a_breakage() -> None:
    assert BREAKAGES.keys() == RULES.keys(), "each rule needs a breakage proving it can fail"


@pytest.mark.parametrize("rule", RULES)
def test_each_rule_catches_a_violation(spec: Spec, rule: str) -> None:
    broken = copy.deepcopy(spec)
    BREAKAGES[rule](broken)
    assert RULES[rule](broken), f"rule {rule!r} did not notice its own breakage"


def test_masking_rule_is_stated_once_and_holds(spec: Spec) -> None:
    secret = spec["components"]["schemas"]["VaultSecret"]
    substrings: list[str] = secret["x-masked-key-substrings"]

    def masked(key: str) -> bool:
        return any(s in key.lower() for s in substrings)

    unstated = [s for s in substrings if f"`{s}`" not in secret["description"]]
    assert not unstated, f"VaultSecret's description does not name {unstated}"
    docs = DOCS_PATH.read_text(encoding="utf-8")
    undocumented = [s for s in substrings if f"`{s}`" not in docs]
    assert not undocumented, f"docs/api.md's masking rule does not name {undocumented}"
    example = secret["example"]
    for key, value in example["data"].items():
        assert (value == MASK) == masked(key), f"example: {key}={value!r} contradicts the rule"
    assert example["masked_keys"] == sorted(k for k in example["data"] if masked(k))
    # The stack's own secrets: their generated password is masked, their other keys are not.
    services = tomllib.loads(SERVICES_PATH.read_text(encoding="utf-8"))["services"]
    plain = {k for svc in services.values() for k in svc.get("secret", {})}
    assert masked("password")
    assert not [k for k in plain if masked(k)], (
        f"the stack's plain secret keys {sorted(plain)} must stay visible, password masked"
    )
    for key in ("db_password", "dbPassword", "api_key", "client_token", "private_key", "secret_id"):
        assert masked(key), f"{key} must be masked"


def _render_docs() -> ModuleType:
    module_spec = importlib.util.spec_from_file_location("render_docs", RENDER_DOCS_PATH)
    assert module_spec is not None
    assert module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_docs_operation_table_is_generated_from_the_spec(spec: Spec) -> None:
    render_docs = _render_docs()
    expected = render_docs.render_table(spec)
    actual = render_docs.extract(DOCS_PATH.read_text(encoding="utf-8"))
    assert actual == expected, (
        "docs/api.md's operation table differs from the contract; "
        "run `.venv/bin/python openapi/render_docs.py --write docs/api.md`"
    )


def test_docs_table_lists_every_operation(spec: Spec) -> None:
    table = _render_docs().render_table(spec)
    missing = [
        op["operationId"] for _, _, op, _ in operations(spec) if op["operationId"] not in table
    ]
    assert not missing, f"operations missing from the rendered table: {missing}"
