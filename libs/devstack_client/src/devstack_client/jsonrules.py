"""The JSON every implementation accepts, stores and returns: rules past the syntax.

JSON's grammar allows values that cannot travel further: a `\\ud800` escape decodes to a lone
surrogate that no UTF-8 encoder (Redis, PostgreSQL, an HTTP response) will take; `1e400` is a
number no double holds (it parses to infinity, which JSON cannot spell); a body nested thousands
of levels deep exhausts a recursive parser or serializer. Each such value is refused where it
enters (a request body, a published message) and skipped where it could come back out (a
consumed message), so that nothing accepted can fail later:

- no string (member name or value) holds a lone surrogate (U+D800 to U+DFFF);
- every number is finite as an IEEE 754 double;
- objects and arrays nest at most `MAX_DEPTH` (64) levels (the outermost one is level 1).

`first_violation` reports nesting first (for the whole value, JSON Pointer ""), else the first
bad string or number in document order, as (JSON Pointer, detail); a bad member name is reported
at the object that holds it. Everything here is iterative: no recursion limit.
"""

from __future__ import annotations

import math
from typing import Any

from devstack_client.errors import InvalidInput

MAX_DEPTH = 64

LONE_SURROGATE = "must not contain a lone surrogate (U+D800 to U+DFFF)"
NAME_LONE_SURROGATE = "has a member name with a lone surrogate (U+D800 to U+DFFF)"
OUT_OF_RANGE = "is a number out of range (not finite as a double)"
TOO_DEEP = f"nests objects and arrays deeper than {MAX_DEPTH} levels"


def pointer_token(name: str) -> str:
    """`name` as one reference token of a JSON Pointer (RFC 6901 escaping)."""
    return "/" + name.replace("~", "~0").replace("/", "~1")


def encodable(text: str) -> bool:
    """True when `text` encodes as UTF-8 (it holds no lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def nesting_depth(raw: bytes | str) -> int:
    """How deeply the objects and arrays of a JSON text nest, read without parsing it (string
    contents and escapes skipped); for a text that is not JSON, a number with no meaning."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x7B, 0x5B):  # { [
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x7D, 0x5D):  # } ]
            depth -= 1
    return deepest


def value_depth(value: Any) -> int:
    """How deeply the objects and arrays of a parsed JSON value nest."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in node.values())
        elif isinstance(node, list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in node)
    return deepest


def first_violation(value: Any) -> tuple[str, str] | None:
    """What breaks a rule: nesting too deep (reported for the whole value, pointer ""), else the
    first string or number in document order that breaks one: (JSON Pointer, detail)."""
    if value_depth(value) > MAX_DEPTH:
        return "", TOO_DEEP
    # A stack of (pointer, value); children pushed in reverse: visited in document order.
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        where, node = stack.pop()
        if isinstance(node, str):
            if not encodable(node):
                return where, LONE_SURROGATE
        elif isinstance(node, float):
            if not math.isfinite(node):
                return where, OUT_OF_RANGE
        elif isinstance(node, dict):
            children = []
            for name, child in node.items():
                if not encodable(name):
                    return where, NAME_LONE_SURROGATE
                children.append((where + pointer_token(name), child))
            stack.extend(reversed(children))
        elif isinstance(node, list):
            stack.extend((f"{where}/{i}", child) for i, child in reversed(list(enumerate(node))))
    return None


def check_json(value: Any, what: str = "the value") -> None:
    """Raise InvalidInput naming the first violation (see the module's rules)."""
    found = first_violation(value)
    if found is not None:
        where, detail = found
        at = f" at {where}" if where else ""
        raise InvalidInput(f"{what}{at} {detail}")
