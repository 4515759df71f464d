"""The mapping's rules, in one table: what each accepts, how it converts, what it writes.

A rule is written once, here; both paths of the transform are derived from it:

- the dict path (`steps.rows.transformer`) decodes a line into a dict and converts each
  field: `keeps` (Python over the value `v`) says when the value is written as it is, else
  `convert` gives the document's value or raises RejectRow with the reason. For a table's
  columns it generates code that inlines `keeps` and calls `convert`; for any other row it
  calls them.
- the Struct path (`steps.rows.structs`) decodes a line straight into a msgspec Struct whose
  field of this rule's column has type `struct_type`, so that msgspec checks, as it decodes,
  what `keeps` would check; it then calls `after_struct` on a value `keeps` does not keep
  (None: msgspec's check was the whole rule). It only accelerates: whatever it refuses takes
  the dict path, which decides and says why.

The document field a rule writes is named by the mapping (`steps.rows.mapping`): a key as
`legacyId` or `legacy<Target>Id`, any other column by `rename` or in camelCase. A new rule is
a new entry here and, if the mapping file names its columns in a section of its own, that
section in `TableMapping`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Union

import msgspec

from steps.rows.values import (
    GOOD_DATES,
    MAX_ARRAY,
    MAX_FIELDS,
    MAX_SAFE_INTEGER,
    Convert,
    JsonCheck,
    RejectRow,
    check_date,
    finite_number,
    legacy_key,
    normalize_email,
    plain_value,
    to_cents,
    to_millis,
)

# What the `keeps` expressions may name besides `v`.
KEEPS_NAMES: dict[str, Any] = {"SAFE": MAX_SAFE_INTEGER, "GOOD_DATES": GOOD_DATES}


@dataclass(frozen=True)
class Rule:
    name: str
    convert: Convert
    keeps: str | None = None
    struct_type: Any = Any
    after_struct: Convert | None = None
    # `keeps` as a function: the dict path's general form calls the very expression the
    # generated code inlines.
    kept: Callable[[Any], bool] | None = field(init=False, default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.keeps is not None:
            test = eval(f"lambda v: {self.keeps}", dict(KEEPS_NAMES))  # noqa: S307 - our own table, not input
            object.__setattr__(self, "kept", test)


_SafeInt = Annotated[int, msgspec.Meta(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]
# Union[] rather than `|`: Annotated cannot take part in a `|` union at runtime.
_Scalar = Union[str, bool, _SafeInt, float, None]  # noqa: UP007
# What plain_value keeps without looking further; anything else (an object, nested arrays)
# is refused by the Struct path and checked by the dict path.
_Plain = Union[str, bool, _SafeInt, float, None, Annotated[list[_Scalar], msgspec.Meta(max_length=MAX_ARRAY)]]  # noqa: UP007
_Text = Union[str, None]  # noqa: UP007
_Number = Union[_SafeInt, float, None]  # noqa: UP007 - NaN comes as text, refused here
_Key = Union[str, int, None]  # noqa: UP007 - a uuid or text key, or an integer one (legacy_key)
# jsonb as export gives it, in the shapes check_value passes once the field names are known
# not to be reserved in Convex: an array of scalars and flat objects, or a flat object. The
# names are checked in Python (`_names_of_array`, `_names_of_object`): a msgspec pattern on
# the keys cost more than twice as much.
_FlatObject = Annotated[dict[str, _Scalar], msgspec.Meta(max_length=MAX_FIELDS)]
_JsonArray = Union[Annotated[list[Union[_Scalar, _FlatObject]], msgspec.Meta(max_length=MAX_ARRAY)], None]  # noqa: UP007
_JsonObject = Union[Annotated[dict[str, _Plain], msgspec.Meta(max_length=MAX_FIELDS)], None]  # noqa: UP007


def _names_of_array(value: list[Any]) -> list[Any]:
    for item in value:
        if type(item) is dict:
            _names_of_object(item)
    return value


def _names_of_object(value: dict[str, Any]) -> dict[str, Any]:
    for key in value:
        # As check_value tests them; the dict path says which name and why.
        if not key or key[0] in "$_" or not key.isascii() or not key.isprintable():
            raise RejectRow
    return value


def refusing(problem: str) -> Rule:
    """The rule of a column whose document field Convex would refuse: a row holding a value
    there is rejected with the reason (a NULL leaves the field out, and the row is fine)."""

    def refuse(value: Any) -> Any:
        raise RejectRow(problem)

    return Rule("refused field", refuse, after_struct=refuse)


# A column no rule names: kept as it is, within Convex's limits.
PLAIN = Rule(
    "plain",
    plain_value,
    keeps="type(v) is str or type(v) is bool or type(v) is float or (type(v) is int and -SAFE <= v <= SAFE)",
    struct_type=_Plain,
)
# A primary or foreign key, as text (legacy_key says why).
KEY = Rule("key", legacy_key, keeps="type(v) is str", struct_type=_Key, after_struct=legacy_key)

# A column of a number type that no rule names: a finite JSON number.
NUMBER = Rule(
    "number",
    finite_number,
    keeps="type(v) is float or (type(v) is int and -SAFE <= v <= SAFE)",
    struct_type=_Number,
)

# The rule a column takes by its type in v1 (the export's manifest), when the mapping names none.
BY_TYPE: dict[str, Rule] = {"real": NUMBER, "double precision": NUMBER, "numeric": NUMBER}

# The rules a mapping names columns for, by the mapping's section.
BY_SECTION: dict[str, Rule] = {
    "timestamps": Rule("timestamp", to_millis, struct_type=_Text, after_struct=to_millis),
    # Most dates were seen before: a set lookup, no call.
    "dates": Rule(
        "date", check_date, keeps="type(v) is str and v in GOOD_DATES", struct_type=_Text, after_struct=check_date
    ),
    "cents": Rule("cents", to_cents, after_struct=to_cents),
    "emails": Rule("email", normalize_email, after_struct=normalize_email),
}

# A json column's rule, by the kind the mapping gives it.
JSON: dict[str, Rule] = {
    "array": Rule("json array", JsonCheck("array"), struct_type=_JsonArray, after_struct=_names_of_array),
    "object": Rule("json object", JsonCheck("object"), struct_type=_JsonObject, after_struct=_names_of_object),
    "any": Rule("json", JsonCheck("any"), after_struct=JsonCheck("any")),
}
