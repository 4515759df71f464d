"""The values of a row: each mapping rule's conversion, and Convex's limits on a value.

Every conversion takes the value as the export's JSON holds it and returns the document's
value, or raises RejectRow with the reason the row cannot become a document.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

# Convex stores numbers as float64: integers are exact up to this (JavaScript's Number.MAX_SAFE_INTEGER);
# 2^53 itself is not safe, since 2^53 + 1 reads as the same float.
MAX_SAFE_INTEGER = 2**53 - 1
MAX_FIELDS = 1024
MAX_ARRAY = 8192
MAX_DEPTH = 16
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class RejectRow(Exception):
    """This row cannot become a document; the message says why."""


Convert = Callable[[Any], Any]


def to_millis(value: Any) -> int:
    if not isinstance(value, str):
        raise RejectRow(f"timestamp {value!r} is not a string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise RejectRow(f"timestamp {value!r} does not parse") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # Exact integer arithmetic: a timedelta keeps 0 <= seconds < 86400 and 0 <= microseconds
    # < 10^6 (days carry the sign), so this is the floor of its microseconds / 1000, without
    # the division of two timedeltas that `// timedelta(milliseconds=1)` costs.
    delta = moment - _EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


GOOD_DATES: set[str] = set()


def check_date(value: Any) -> str:
    # PostgreSQL writes only real dates as YYYY-MM-DD (else 'infinity', or a year past 9999):
    # the shape is the whole check for an export. Dates repeat, so a date seen once is known good.
    if type(value) is not str:
        raise RejectRow(f"date {value!r} is not YYYY-MM-DD")
    if value in GOOD_DATES:
        return value
    if (
        len(value) != 10
        or value[4] != "-"
        or value[7] != "-"
        or not (value[:4].isdigit() and value[5:7].isdigit() and value[8:].isdigit())
    ):
        raise RejectRow(f"date {value!r} is not YYYY-MM-DD")
    if len(GOOD_DATES) > 100_000:
        GOOD_DATES.clear()
    GOOD_DATES.add(value)
    return value


def legacy_key(value: Any) -> str:
    """A v1 key, primary or foreign, as the text of `legacyId` and `legacy<Target>Id`: a uuid
    or text key as it is, an integer key in decimal. Text, because a bigint key past 2^53 would
    not survive as a Convex number (two keys could become one id), and because the lookups by
    legacyId (resolveRefs, byLegacyIds, the `v.string()` of the schema) take text."""
    kind = type(value)
    if kind is str or kind is int:
        return str(value)  # str() of a str is the same object: no copy
    raise RejectRow(f"key {value!r} is neither text nor an integer")


def normalize_email(value: Any) -> str:
    if not isinstance(value, str):
        raise RejectRow(f"email {value!r} is not a string")
    return value.strip().lower()


def exact_decimal(value: Any) -> Decimal:
    """A JSON number as an exact, finite decimal; floats are trusted to 15 significant digits."""
    amount = _decimal(value)
    if not amount.is_finite():
        # 1e400 reads as an infinity and "NaN" as text is a Decimal: neither is an amount.
        raise RejectRow(f"{value!r} is not a finite number")
    return amount


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise RejectRow(f"{value!r} is not a number")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        text = repr(value)
        digits = len(text.split("e")[0].replace("-", "").replace(".", "").lstrip("0"))
        if digits >= 15:
            # Text of 16 or more digits reads into a float whose shortest form may have 15:
            # 90071992547409.91 becomes 90071992547409.9. Only the text is exact.
            raise NeedsExactParse
        return Decimal(text)
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str):
        try:
            return Decimal(value)
        except InvalidOperation:
            raise RejectRow(f"{value!r} is not a number") from None
    raise RejectRow(f"{value!r} is not a number")


class NeedsExactParse(Exception):
    """A float with too many digits to trust: the row is parsed again, exactly."""


def to_cents(value: Any) -> int:
    if type(value) is float and -1e13 < value < 1e13:
        # Below 10^13 a two-decimal amount has at most 15 significant digits, so the float read
        # from it is exact enough: round(v * 100) is its cents exactly, and dividing back gives
        # the same float only when v had no more than two decimals.
        cents = round(value * 100)
        if cents / 100 != value:
            raise RejectRow(f"{value!r} is not a whole number of cents")
        return cents
    if type(value) is float:
        # The shortest repr of a float read from up to 15 digits is those digits: cents are
        # exact integer arithmetic on the text, with no Decimal needed. A repr of 15 digits or
        # more may stand for longer text, which only an exact parse of the line recovers.
        text = repr(value)
        units, _, fraction = text.partition(".")
        if "e" not in text and "n" not in text and len(text.replace("-", "").replace(".", "").lstrip("0")) < 15:
            if len(fraction) > 2:
                raise RejectRow(f"{text} is not a whole number of cents")
            sign = -1 if units.startswith("-") else 1
            quick = sign * (abs(int(units)) * 100 + int(fraction.ljust(2, "0") or 0))
            if abs(quick) > MAX_SAFE_INTEGER:
                raise RejectRow(f"{text} is {quick} cents, beyond 2^53 - 1: not exact in Convex (float64)")
            return quick
    amount = exact_decimal(value)
    exact = amount * 100
    if exact != exact.to_integral_value():
        raise RejectRow(f"{amount} is not a whole number of cents")
    cents = int(exact)
    if abs(cents) > MAX_SAFE_INTEGER:
        raise RejectRow(f"{amount} is {cents} cents, beyond 2^53 - 1: not exact in Convex (float64)")
    return cents


decode_json = msgspec.json.Decoder().decode
# A document is written as Convex holds it: an object's fields in the order of their names
# (Convex keeps them in a BTreeMap), nested objects' too. A document read back from v2 then
# writes to the very bytes of its line (verify.sample compares them so, before looking closer).
encode_json = msgspec.json.Encoder(order="sorted").encode


class JsonCheck:
    """The rule of a json column: its kind ("array", "object", "any"), parsed if held as text."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __call__(self, value: Any) -> Any:
        kind = self.kind
        if isinstance(value, str):  # JSON kept in a text column
            try:
                # msgspec, as for the rows: NaN and 1e400 are not JSON, and deep nesting is a
                # refusal here, not a RecursionError that would end the whole range.
                value = decode_json(value)
            except Exception:  # noqa: BLE001 - DecodeError, RecursionError: the text is not JSON we can carry
                raise RejectRow("JSON text does not parse") from None
        if kind == "array" and not isinstance(value, list):
            raise RejectRow(f"expected a JSON array, got {type(value).__name__}")
        if kind == "object" and not isinstance(value, dict):
            raise RejectRow(f"expected a JSON object, got {type(value).__name__}")
        check_value(value, 1)
        return value


def field_name_problem(name: str) -> str | None:
    """Why Convex refuses a field name, at any depth of a document, or None: it must be
    non-empty, of non-control ASCII characters, and start with neither `$` nor `_`."""
    if not name:
        return "an empty field name: Convex refuses it"
    if name[0] in "$_":
        return f"field name {name!r} is reserved in Convex"
    if not (name.isascii() and name.isprintable()):
        return f"field name {name!r} holds a character Convex refuses (only non-control ASCII)"
    return None


def check_value(value: Any, depth: int) -> None:
    """Convex's limits on a value: nesting, array length, field count and names, safe integers."""
    kind = type(value)
    if kind is str or kind is float or kind is bool or value is None:
        return
    if kind is int:
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise RejectRow(f"integer {value} is beyond 2^53 - 1: not exact in Convex (float64)")
        return
    if depth > MAX_DEPTH:
        raise RejectRow(f"nested more than {MAX_DEPTH} levels deep")
    if kind is dict:
        if len(value) > MAX_FIELDS:
            raise RejectRow(f"an object has {len(value)} fields, over {MAX_FIELDS}")
        for key, item in value.items():
            if not key or key[0] in "$_" or not key.isascii() or not key.isprintable():
                raise RejectRow(field_name_problem(key) or "")
            if type(item) is not str:
                check_value(item, depth + 1)
    elif kind is list:
        if len(value) > MAX_ARRAY:
            raise RejectRow(f"an array has {len(value)} elements, over {MAX_ARRAY}")
        for item in value:
            if type(item) is not str:
                check_value(item, depth + 1)


NON_FINITE = frozenset(("NaN", "Infinity", "-Infinity"))


def finite_number(value: Any) -> Any:
    """A value of a number column (`real`, `double precision`, `numeric`): a JSON number, kept
    as plain_value keeps it. row_to_json writes NaN and the infinities as text, which neither
    JSON numbers nor a Convex import can carry: the row is rejected, never given a string."""
    if type(value) is str:
        if value in NON_FINITE:
            raise RejectRow(f"{value} is not a finite number: a Convex document imported as JSON cannot hold it")
        raise RejectRow(f"{value!r} is text in a number column")
    return plain_value(value)


def plain_value(value: Any) -> Any:
    """A value with no rule: kept as it is, within Convex's limits. Types, not isinstance: JSON
    gives no subclasses, and `isinstance(v, dict | list)` built a union object on every call."""
    kind = type(value)
    if kind is int:
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise RejectRow(f"integer {value} is beyond 2^53 - 1: not exact in Convex (float64)")
    elif kind is list or kind is dict:
        check_value(value, 1)
    return value
