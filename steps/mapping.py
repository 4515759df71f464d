"""The mapping file: how each v1 (PostgreSQL) row becomes a v2 (Convex) document.

A TOML file, checked like the runbook (every problem at file:line). Per source table:

    [table."public.cases"]
    target = "cases"                       # the Convex table
    references = { user_id = "users" }     # user_id -> legacyUserId, resolved later to userId
    timestamps = ["created_at"]            # ISO timestamps -> Unix milliseconds
    dates = ["pwd_filing_date"]            # kept as "YYYY-MM-DD" strings (checked)
    cents = ["pwd_wage_amount"]            # decimals -> integer cents, exactly
    json = { additional_recruitment_methods = "array" }   # parsed, and typed
    defaults = { is_favorite = false, tags = [] }         # the value when v1 has NULL
    rename = { beneficiary_identifier = "beneficiaryId" } # else snake_case -> camelCase
    drop = ["encrypted_password"]
    required = ["user_id", "employer_name"]                # NULL here rejects the row

The primary key (`id`, or `primary_key`) becomes `legacyId`. NULL fields are left out (Convex's
optional fields) unless a default is given. A row that cannot be converted is rejected with a
reason, never altered silently: `RejectRow`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cockpit.checked_toml import ProblemsError, load_checked
from cockpit.runbook import Problem

# Convex stores numbers as float64: integers are exact up to this (JavaScript's Number.MAX_SAFE_INTEGER);
# 2^53 itself is not safe, since 2^53 + 1 reads as the same float.
MAX_SAFE_INTEGER = 2**53 - 1
MAX_FIELDS = 1024
MAX_ARRAY = 8192
MAX_DEPTH = 16
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class RejectRow(Exception):
    """This row cannot become a document; the message says why."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Defaults(_Model):
    fields: Literal["camelCase", "keep"] = "camelCase"
    primary_key: str = "id"
    nulls: Literal["omit", "keep"] = "omit"


class TableMapping(_Model):
    target: str
    primary_key: str | None = None
    references: dict[str, str] = Field(default_factory=dict)
    timestamps: list[str] = Field(default_factory=list)
    dates: list[str] = Field(default_factory=list)
    cents: list[str] = Field(default_factory=list)
    json_: dict[str, Literal["array", "object", "any"]] = Field(default_factory=dict, alias="json")
    defaults: dict[str, Any] = Field(default_factory=dict)
    emails: list[str] = Field(default_factory=list, description="lower-cased and trimmed, as v2 matches them")
    rename: dict[str, str] = Field(default_factory=dict)
    drop: list[str] = Field(default_factory=list)
    required: list[str] = Field(default_factory=list)


class MappingFile(_Model):
    defaults: Defaults = Field(default_factory=Defaults)
    table: dict[str, TableMapping] = Field(min_length=1)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def reference_fields(column: str) -> tuple[str, str]:
    """A foreign key column's two document fields: `user_id` -> (`legacyUserId`, `userId`)."""
    base = column[:-3] if column.endswith("_id") else column
    id_field = camel(base) + "Id"
    return "legacy" + id_field[:1].upper() + id_field[1:], id_field


@dataclass(frozen=True)
class Reference:
    source_table: str
    table: str  # the Convex table holding the reference
    column: str
    legacy_field: str
    id_field: str
    target: str


@dataclass(frozen=True)
class Mapping:
    path: Path
    defaults: Defaults
    tables: dict[str, TableMapping]

    def references(self) -> list[Reference]:
        out = []
        for source, table in self.tables.items():
            for column, target in table.references.items():
                legacy, id_field = reference_fields(column)
                out.append(Reference(source, table.target, column, legacy, id_field, target))
        return out

    def target_of(self, source_table: str) -> str:
        return self.tables[source_table].target

    def compile(self, source_table: str) -> RowTransformer:
        return RowTransformer(self.tables[source_table], self.defaults)


class MappingError(ProblemsError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems)
        self.args = ("; ".join(str(p) for p in problems),)


def load_mapping(path: Path) -> Mapping:
    """Read and check a mapping file; raise MappingError listing every problem with its line."""
    parsed, collect = load_checked(path, MappingFile, "mapping file", MappingError)
    targets: dict[str, str] = {}
    for source, table in parsed.table.items():
        where = ("table", source)
        if not _NAME.match(table.target):
            collect.error(where + ("target",), f"table {source!r}: target {table.target!r} is not a valid "
                                               "Convex table name")
        if table.target in targets:
            collect.error(where + ("target",), f"table {source!r}: target {table.target!r} is also the target "
                                               f"of {targets[table.target]!r}")
        targets[table.target] = source
        listed: dict[str, str] = {}
        for kind in ("timestamps", "dates", "cents", "emails", "drop"):
            for index, field in enumerate(getattr(table, kind)):
                if field in listed:
                    collect.error(where + (kind, index), f"table {source!r}: {field!r} is in both {listed[field]} "
                                                         f"and {kind}")
                listed[field] = kind
        for field, value in table.rename.items():
            if not _NAME.match(value):
                collect.error(where + ("rename", field), f"table {source!r}: {value!r} is not a valid field name")
    known_targets = {t.target for t in parsed.table.values()}
    for source, table in parsed.table.items():
        for column, target in table.references.items():
            if target not in known_targets:
                collect.error(("table", source, "references", column),
                              f"table {source!r}: {column} refers to {target!r}, which no table of this mapping "
                              f"targets (one of: {', '.join(sorted(known_targets))})")
    if collect.problems:
        raise MappingError(collect.problems)
    return Mapping(path, parsed.defaults, dict(parsed.table))


# -- converting rows ----------------------------------------------------------------------------

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
    # < 10^6 (days carry the sign), so this is the floor of its microseconds / 1000. About 10%
    # quicker than `// timedelta(milliseconds=1)`, measured side by side.
    delta = moment - _EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


_GOOD_DATES: set[str] = set()


def check_date(value: Any) -> str:
    # PostgreSQL writes only real dates as YYYY-MM-DD (else 'infinity', or a year past 9999):
    # the shape is the whole check for an export. Dates repeat, so a date seen once is known good.
    if type(value) is not str:
        raise RejectRow(f"date {value!r} is not YYYY-MM-DD")
    if value in _GOOD_DATES:
        return value
    if len(value) != 10 or value[4] != "-" or value[7] != "-" or not (
            value[:4].isdigit() and value[5:7].isdigit() and value[8:].isdigit()):
        raise RejectRow(f"date {value!r} is not YYYY-MM-DD")
    if len(_GOOD_DATES) > 100_000:
        _GOOD_DATES.clear()
    _GOOD_DATES.add(value)
    return value


def normalize_email(value: Any) -> str:
    if not isinstance(value, str):
        raise RejectRow(f"email {value!r} is not a string")
    return value.strip().lower()


def exact_decimal(value: Any) -> Decimal:
    """A JSON number as an exact decimal; floats are trusted to 15 significant digits."""
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
            raise _NeedsExactParse
        return Decimal(text)
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str):
        try:
            return Decimal(value)
        except InvalidOperation:
            raise RejectRow(f"{value!r} is not a number") from None
    raise RejectRow(f"{value!r} is not a number")


class _NeedsExactParse(Exception):
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


def check_json(kind: str) -> Convert:
    import json as _json

    def convert(value: Any) -> Any:
        if isinstance(value, str):  # JSON kept in a text column
            try:
                value = _json.loads(value)
            except ValueError:
                raise RejectRow("JSON text does not parse") from None
        if kind == "array" and not isinstance(value, list):
            raise RejectRow(f"expected a JSON array, got {type(value).__name__}")
        if kind == "object" and not isinstance(value, dict):
            raise RejectRow(f"expected a JSON object, got {type(value).__name__}")
        check_value(value, 1)
        return value

    return convert


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
            if key[:1] in ("$", "_"):
                raise RejectRow(f"field name {key!r} is reserved in Convex")
            if type(item) is not str:
                check_value(item, depth + 1)
    elif kind is list:
        if len(value) > MAX_ARRAY:
            raise RejectRow(f"an array has {len(value)} elements, over {MAX_ARRAY}")
        for item in value:
            if type(item) is not str:
                check_value(item, depth + 1)


def _plain(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INTEGER:
        raise RejectRow(f"integer {value} is beyond 2^53 - 1: not exact in Convex (float64)")
    if isinstance(value, dict | list):
        check_value(value, 1)
    return value


_UNSEEN: Any = object()


class RowTransformer:
    """One table's mapping, compiled: `row -> document`, raising RejectRow."""

    def __init__(self, table: TableMapping, defaults: Defaults) -> None:
        self.table = table
        self.keep_nulls = defaults.nulls == "keep"
        primary = table.primary_key or defaults.primary_key
        self.required = frozenset(table.required)
        self.defaults = dict(table.defaults)
        self.rules: dict[str, tuple[str, Convert | None] | None] = {}
        for field in table.drop:
            self.rules[field] = None
        for field in table.timestamps:
            self.rules[field] = (self._name(field, defaults), to_millis)
        for field in table.dates:
            self.rules[field] = (self._name(field, defaults), check_date)
        for field in table.cents:
            self.rules[field] = (self._name(field, defaults), to_cents)
        for field, kind in table.json_.items():
            self.rules[field] = (self._name(field, defaults), check_json(kind))
        for field in table.emails:
            self.rules[field] = (self._name(field, defaults), normalize_email)
        for column in table.references:
            self.rules[column] = (reference_fields(column)[0], None)
        self.rules[primary] = ("legacyId", None)
        self._fields_default = defaults.fields
        self._fast: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        self._fast_width = 0

    def _name(self, field: str, defaults: Defaults) -> str:
        if field in self.table.rename:
            return self.table.rename[field]
        return camel(field) if defaults.fields == "camelCase" else field

    def _rule(self, field: str) -> tuple[str, Convert | None] | None:
        rule = self.rules.get(field, False)
        if rule is False:
            name = self.table.rename.get(field) or (camel(field) if self._fields_default == "camelCase" else field)
            rule = self.rules[field] = (name, _plain)
        return rule  # type: ignore[return-value]

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        fast = self._fast
        if fast is not None and type(row) is dict and len(row) == self._fast_width:
            try:
                return fast(row)
            except KeyError:
                pass  # other columns than the first row's: the general path below
        elif fast is None and type(row) is dict:
            self._fast = self._generate(list(row))
            self._fast_width = len(row)
            return self(row)
        return self._general(row)

    def _generate(self, fields: list[str]) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """Python code for rows with these columns: direct key access, no rule lookups.

        Every row of an exported table has the same columns, so this function serves them all;
        its behaviour is exactly `_general`'s, only faster.
        """
        namespace: dict[str, Any] = {"RejectRow": RejectRow, "_plain": _plain, "SAFE": MAX_SAFE_INTEGER}
        lines = ["def fast(row):", "    d = {}"]
        for index, field in enumerate(fields):
            rule = self._rule(field)
            if rule is None:
                continue
            name, convert = rule
            key, out = repr(field), repr(name)
            lines.append(f"    v = row[{key}]")
            lines.append("    if v is None:")
            if field in self.required:
                lines.append(f"        raise RejectRow({repr(f'NULL in required field {field!r}')})")
            elif field in self.defaults:
                namespace[f"default_{index}"] = self.defaults[field]
                lines.append(f"        d[{out}] = default_{index}")
            elif self.keep_nulls:
                lines.append(f"        d[{out}] = None")
            else:
                lines.append("        pass")
            lines.append("    else:")
            if convert is None:
                lines.append(f"        d[{out}] = v")
            elif convert is _plain:
                lines.append("        t = type(v)")
                lines.append("        if t is str or t is bool or t is float or (t is int and -SAFE <= v <= SAFE):")
                lines.append(f"            d[{out}] = v")
                lines.append("        else:")
                lines.append("            try:")
                lines.append(f"                d[{out}] = _plain(v)")
                lines.append("            except RejectRow as exc:")
                lines.append(f"                raise RejectRow({field!r} + ': ' + str(exc)) from None")
            else:
                namespace[f"convert_{index}"] = convert
                indent = "        "
                if convert is check_date:
                    # Most dates were seen before: a set lookup, no call.
                    namespace["GOOD_DATES"] = _GOOD_DATES
                    lines.append("        if type(v) is str and v in GOOD_DATES:")
                    lines.append(f"            d[{out}] = v")
                    lines.append("        else:")
                    indent += "    "
                lines.append(f"{indent}try:")
                lines.append(f"{indent}    d[{out}] = convert_{index}(v)")
                lines.append(f"{indent}except RejectRow as exc:")
                lines.append(f"{indent}    raise RejectRow({field!r} + ': ' + str(exc)) from None")
        lines.append("    return d")
        exec("\n".join(lines), namespace)  # noqa: S102 - our own generated code, from the mapping
        generated: Callable[[dict[str, Any]], dict[str, Any]] = namespace["fast"]
        return generated

    def _general(self, row: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(row, dict):
            raise RejectRow("the line is not a JSON object")
        document: dict[str, Any] = {}
        rules = self.rules
        for field, value in row.items():
            rule = rules.get(field, _UNSEEN)
            if rule is _UNSEEN:
                rule = self._rule(field)
            if rule is None:
                continue
            name, convert = rule
            if value is None:
                if field in self.required:
                    raise RejectRow(f"NULL in required field {field!r}")
                if field in self.defaults:
                    document[name] = self.defaults[field]
                elif self.keep_nulls:
                    document[name] = None
                continue
            # Fast paths first: most fields are plain strings, booleans and floats.
            if convert is None:
                document[name] = value
                continue
            if convert is _plain:
                kind = type(value)
                if kind is str or kind is bool or kind is float:
                    document[name] = value
                    continue
            try:
                document[name] = convert(value)
            except RejectRow as exc:
                raise RejectRow(f"{field}: {exc}") from None
        for field in self.required:
            if field not in row:
                raise RejectRow(f"required field {field!r} is missing")
        return document


NeedsExactParse = _NeedsExactParse
