"""One exported line as its document: the Struct path first, the dict path for what it refuses,
and the exact path for what msgspec cannot read or write. RejectRow says why a line cannot be
a document."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

from pydantic_core import from_json, to_json

from steps.rows.transformer import RowTransformer
from steps.rows.values import NeedsExactParse, RejectRow, decode_json, encode_json

MAX_DOCUMENT_BYTES = 1 << 20  # Convex's limit on one document


def _decimals_to_floats(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _decimals_to_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decimals_to_floats(v) for v in value]
    return value


def document_of(transform: RowTransformer, line: bytes) -> bytes:
    """One exported line (without its newline) as its document's JSON; RejectRow says why not.

    Lines go first through msgspec Structs (steps/rows/structs.py); what they refuse, for any
    reason, takes the dict path, which decides and says why."""
    quick = transform.struct_path
    data = quick(line) if quick is not None else None
    if data is not None and len(data) < MAX_DOCUMENT_BYTES:
        return data
    return converted(transform, line)[1]


def converted(transform: RowTransformer, line: bytes) -> tuple[dict[str, Any], bytes]:
    """One exported line as its document and that document's JSON; RejectRow says why not.

    The dict path: `document_of` takes it for every line the Struct path refuses, and for the
    lines that path converts, its JSON is this one's (held by tests/unit/test_row_struct.py).
    The document holds only JSON's types (decimals read exactly are floats again), so it
    equals its JSON read back.

    msgspec reads and writes the JSON, more cheaply than pydantic's parser and serializer. It
    refuses what JSON does not allow (NaN, numbers beyond float64, lone surrogates, nesting it
    cannot follow) and keeps integers of any size exact. What it refuses, and what it cannot
    write, takes `converted_exactly`, which says why in our words.
    """
    try:
        row = decode_json(line)
    except Exception:  # noqa: BLE001 - any refusal (DecodeError, UnicodeDecodeError, RecursionError)
        return converted_exactly(transform, line)
    try:
        document = transform(row)
    except NeedsExactParse:
        return converted_exactly(transform, line)
    try:
        data = encode_json(document)
    except Exception:  # noqa: BLE001 - nothing decoded should fail here: if it does, the exact path says why
        return converted_exactly(transform, line)
    if len(data) >= MAX_DOCUMENT_BYTES:
        raise RejectRow(f"the document is {len(data):,} bytes, over Convex's 1 MiB")
    return document, data


# msgspec would write a non-finite float as null; none reaches it: its parser refuses NaN and
# 1e400, for rows and for JSON kept in text columns alike, and the mapping's defaults are checked
# when it is loaded.


def _not_finite(value: Any) -> bool:
    """Whether the document holds NaN or an infinity (pydantic's parser reads 1e400 as one)."""
    if type(value) is float:
        return not math.isfinite(value)
    if type(value) is dict:
        return any(_not_finite(v) for v in value.values())
    if type(value) is list:
        return any(_not_finite(v) for v in value)
    return False


def _sorted_fields(value: Any) -> Any:
    """The value with every object's fields in the order of their names, as encode_json writes."""
    if type(value) is dict:
        return {key: _sorted_fields(value[key]) for key in sorted(value)}
    if type(value) is list:
        return [_sorted_fields(item) for item in value]
    return value


def converted_exactly(transform: RowTransformer, line: bytes) -> tuple[dict[str, Any], bytes]:
    """The reference path: pydantic's parser says why a line is not JSON, and decimals that a
    float cannot hold are read exactly. Rows come here only when the fast path refuses them."""
    try:
        # Cached keys: every row repeats the same column names, and a cached string keeps its
        # hash, so the mapping's dict lookups cost less.
        row = from_json(line, cache_strings="keys", allow_inf_nan=False)
    except ValueError as exc:
        raise RejectRow(_parse_error(line, exc)) from None
    try:
        document = transform(row)
    except NeedsExactParse:
        document = _decimals_to_floats(transform(json.loads(line, parse_float=Decimal)))
    if _not_finite(document):
        raise RejectRow("a number is NaN or beyond float64: JSON cannot carry it")
    try:
        data: bytes = to_json(_sorted_fields(document))
    except ValueError as exc:  # a lone surrogate from a JSON text column
        raise RejectRow(f"the document cannot be written as JSON: {str(exc).splitlines()[0]}") from None
    if len(data) >= MAX_DOCUMENT_BYTES:
        raise RejectRow(f"the document is {len(data):,} bytes, over Convex's 1 MiB")
    return document, data


def _parse_error(line: bytes, exc: Exception) -> str:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"invalid UTF-8 at byte {bad.start}"
    return f"not valid JSON: {str(exc).splitlines()[0]}"
