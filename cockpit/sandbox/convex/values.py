"""Convex's values as its HTTP API reads and writes them, and its argument validators.

Arguments arrive in Convex's encoded JSON (`convex_encoded_json`, what `convexToJson` writes):
an Int64 as `{"$integer": base64 of 8 little-endian bytes}`, bytes as `{"$bytes": base64}`, a
float JSON cannot write (NaN, the infinities, -0) as `{"$float": base64}`, and every JSON
number is a float64. Positional arguments are one object in a one-element array (what
`ConvexHttpClient` sends). An answer is written in the format the request asked for: the
encoded form, or Convex's plain JSON export form (`format: "json"`: an Int64 as its decimal
text, bytes as base64 text, a float JSON cannot write as the text of its name).
"""

from __future__ import annotations

import base64
import json
import math
import struct
from dataclasses import dataclass
from typing import Any

ENCODED = "convex_encoded_json"
PLAIN = "json"
FORMATS = (ENCODED, PLAIN)


class Int64(int):
    """A Convex Int64 (a JavaScript bigint): an integer that is not a float64."""


class ValueError64(Exception):
    """A value Convex's encoding does not allow; the message says why."""


def float64(number: int) -> int | float:
    """A JSON number as Convex reads it, a float64, kept as an int where JavaScript would print
    it as one (an integral value below 1e21), so that it is written back as JavaScript writes it."""
    value = float(number)
    return int(value) if abs(value) < 1e21 else value


def decode(value: Any) -> Any:
    """Encoded JSON (already parsed) to Python: Int64, float, bytes, str, bool, None, list, dict."""
    if type(value) is int:
        return float64(value)
    if isinstance(value, list):
        return [decode(item) for item in value]
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, inner),) = value.items()
            if key == "$integer":
                return Int64(struct.unpack("<q", _bytes_of(inner, 8, key))[0])
            if key == "$float":
                return struct.unpack("<d", _bytes_of(inner, 8, key))[0]
            if key == "$bytes":
                return _bytes_of(inner, None, key)
        for key in value:
            if key.startswith("$"):
                raise ValueError64(f"field name {key!r} starts with '$', which is reserved")
        return {key: decode(item) for key, item in value.items()}
    return value


def _bytes_of(text: Any, size: int | None, key: str) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except (TypeError, ValueError):
        raise ValueError64(f"{key}: not base64") from None
    if size is not None and len(data) != size:
        raise ValueError64(f"{key}: {len(data)} bytes, expected {size}")
    return data


def encode(value: Any, form: str) -> Any:
    """Python to JSON-ready values, in the encoded form or the plain JSON export form."""
    if isinstance(value, Int64):
        if form == ENCODED:
            return {"$integer": base64.b64encode(struct.pack("<q", value)).decode()}
        return str(int(value))
    if isinstance(value, float) and (not math.isfinite(value) or (value == 0 and math.copysign(1, value) < 0)):
        if form == ENCODED:
            return {"$float": base64.b64encode(struct.pack("<d", value)).decode()}
        return "-0" if value == 0 else ("NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity"))
    if isinstance(value, bytes):
        text = base64.b64encode(value).decode()
        return {"$bytes": text} if form == ENCODED else text
    if isinstance(value, list):
        return [encode(item, form) for item in value]
    if isinstance(value, dict):
        return {key: encode(item, form) for key, item in value.items()}
    return value


def same_value(a: Any, b: Any) -> bool:
    """The shipped functions' sameValue: JavaScript's strict equality, or deep equality of
    objects and arrays (a boolean is never a number)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        return False
    return bool(a == b)


def shown(value: Any) -> str:
    """A value as Convex shows it in a validation error: a bigint with its `n`."""
    if isinstance(value, Int64):
        return f"{int(value)}n"
    if isinstance(value, bytes):
        return "ArrayBuffer"
    return json.dumps(encode(value, PLAIN))


# -- validators ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Validator:
    """One of convex/values' `v.*`, as far as the shipped functions use them."""

    kind: str  # string | float64 | boolean | null | any | union | array | record
    members: tuple[Validator, ...] = ()
    optional: bool = False

    def accepts(self, value: Any) -> bool:
        if self.kind == "string":
            return isinstance(value, str)
        if self.kind == "float64":
            return isinstance(value, int | float) and not isinstance(value, bool | Int64)
        if self.kind == "boolean":
            return isinstance(value, bool)
        if self.kind == "null":
            return value is None
        if self.kind == "any":
            return True
        if self.kind == "union":
            return any(member.accepts(value) for member in self.members)
        if self.kind == "array":
            return isinstance(value, list) and all(self.members[0].accepts(item) for item in value)
        if self.kind == "record":
            key, item = self.members
            return isinstance(value, dict) and all(key.accepts(k) and item.accepts(v) for k, v in value.items())
        return False

    def __str__(self) -> str:
        inner = {
            "string": "v.string()",
            "float64": "v.float64()",
            "boolean": "v.boolean()",
            "null": "v.null()",
            "any": "v.any()",
            "union": "v.union(" + ", ".join(str(m) for m in self.members) + ")",
            "array": f"v.array({self.members[0] if self.members else ''})",
            "record": "v.record(" + ", ".join(str(m) for m in self.members) + ")",
        }[self.kind]
        return f"v.optional({inner})" if self.optional else inner


STRING = Validator("string")
NUMBER = Validator("float64")
NULL = Validator("null")
BOOLEAN = Validator("boolean")
ANY = Validator("any")


def union(*members: Validator) -> Validator:
    return Validator("union", members)


def array(member: Validator) -> Validator:
    return Validator("array", (member,))


def record(key: Validator, item: Validator) -> Validator:
    return Validator("record", (key, item))


def optional(inner: Validator) -> Validator:
    return Validator(inner.kind, inner.members, optional=True)


def validation_error(args: Any, validators: dict[str, Validator]) -> str | None:
    """Convex's ArgumentValidationError for these arguments, or None when they pass."""
    if not isinstance(args, dict):
        return (
            "ArgumentValidationError: Value does not match validator.\n"
            f"Value: {shown(args)}\nValidator: v.object({{...}})"
        )
    for name, validator in validators.items():
        if name not in args and not validator.optional:
            return (
                f"ArgumentValidationError: Object is missing the required field `{name}`. Consider wrapping "
                "the field validator in `v.optional(...)` if this is expected."
            )
    for name, value in args.items():
        declared = validators.get(name)
        if declared is None:
            return f"ArgumentValidationError: Object contains extra field `{name}` that is not in the validator."
        if not declared.accepts(value):
            return (
                f"ArgumentValidationError: Value does not match validator.\nPath: .{name}\n"
                f"Value: {shown(value)}\nValidator: {declared}"
            )
    return None
