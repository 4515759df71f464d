"""The quickest path from an exported line to its document's JSON: msgspec Structs.

msgspec decodes the line straight into a Struct of the table's columns (no dict, no key
strings), typed so that msgspec itself checks what the rules would check in Python: a plain
field is a string, a boolean, a float, an integer within 2^53 - 1 or an array of those of at
most 8,192 elements; jsonb is an array of scalars and flat objects, or a flat object; a
timestamp or a date is a string (msgspec could read timestamps itself, 4,000 instructions a
row cheaper, but it rounds digits past the microsecond where Python truncates them and takes
a lowercase `t`: two answers for one line). The document is a second Struct,
whose field names are the document's, written by msgspec in the order of their names (as
Convex holds them; see encode_json). Counted under callgrind on 10,000 cases rows, a line
costs 71,600 instructions through the transform (3,700 of them for that order), against
105,500 when every line took the dict path.

This path only accelerates: whenever it refuses a line (another type, another column, a
missing one, NULL in a required field, a value a rule rejects, anything at all), the line
takes the dict path (`steps.rows.transform.converted`), which decides and says why. For every line
it does convert, its JSON is the dict path's, byte for byte when the columns come in the
order of the first row (tests/unit/test_row_struct.py holds it to that).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Union

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
    legacy_key,
    plain_value,
    to_millis,
)

if TYPE_CHECKING:
    from steps.rows.transformer import RowTransformer

_SafeInt = Annotated[int, msgspec.Meta(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]
# Union[] rather than `|`: Annotated cannot take part in a `|` union at runtime.
_Scalar = Union[str, bool, _SafeInt, float, None]  # noqa: UP007
# What plain_value keeps without looking further; anything else (an object, nested arrays)
# is refused here and checked by the dict path.
_Plain = Union[str, bool, _SafeInt, float, None, Annotated[list[_Scalar], msgspec.Meta(max_length=MAX_ARRAY)]]  # noqa: UP007
_Text = Union[str, None]  # noqa: UP007
_Key = Union[str, int, None]  # noqa: UP007 - a uuid or text key, or an integer one (legacy_key)
# jsonb as export gives it, in the shapes check_value passes once the field names are known
# not to be reserved in Convex: an array of scalars and flat objects, or a flat object. The
# names are checked in Python (`_names_of_array`, `_names_of_object`): a msgspec pattern on
# the keys cost 8,000 instructions a row, against about 3,000.
_FlatObject = Annotated[dict[str, _Scalar], msgspec.Meta(max_length=MAX_FIELDS)]
_JsonArray = Union[Annotated[list[Union[_Scalar, _FlatObject]], msgspec.Meta(max_length=MAX_ARRAY)], None]  # noqa: UP007
_JsonObject = Union[Annotated[dict[str, _Plain], msgspec.Meta(max_length=MAX_FIELDS)], None]  # noqa: UP007


def _names_of_array(value: list[Any]) -> list[Any]:
    for item in value:
        if type(item) is dict:
            for key in item:
                if key and key[0] in "$_":
                    raise RejectRow  # the dict path says which
    return value


def _names_of_object(value: dict[str, Any]) -> dict[str, Any]:
    for key in value:
        if key and key[0] in "$_":
            raise RejectRow
    return value


def struct_path(transform: RowTransformer, columns: list[str]) -> StructPath | None:
    """The Struct path for lines with exactly these columns; None when msgspec cannot describe
    the table (two columns written under one name, for one)."""
    try:
        return _build(transform, columns)
    except (TypeError, ValueError):
        return None


class StructPath:
    """`line -> JSON`, or None when it refuses the line (the dict path then decides).

    A table whose lines it mostly refuses (jsonb nested deeper than it reads, say) stops paying
    for the attempt, which costs up to a fifth of a line: every WEIGHED_AFTER refusals, the
    path stops for good if they were over half of the lines it was offered."""

    WEIGHED_AFTER = 1000

    def __init__(
        self, decode: Callable[[bytes], Any], convert_row: Callable[[Any], Any], encode: Callable[[Any], bytes]
    ) -> None:
        self._decode, self._convert_row, self._encode = decode, convert_row, encode
        self.stopped = False
        self._lines = self._refusals = 0  # since the path was last weighed

    def __call__(self, line: bytes) -> bytes | None:
        if self.stopped:
            return None
        self._lines += 1
        try:
            return self._encode(self._convert_row(self._decode(line)))
        except Exception:  # noqa: BLE001 - any refusal: the dict path decides, and says why
            self._refusals += 1
            if self._refusals == self.WEIGHED_AFTER:
                self.stopped = self._refusals * 2 > self._lines
                self._lines = self._refusals = 0
            return None


def _column_type(convert: Convert | None) -> tuple[Any, Convert | None]:
    """The Struct's type for a column with this rule, and what is left to call on a value of
    that type (besides NULL) once msgspec has checked it as it decoded."""
    if convert is plain_value:
        return _Plain, None
    if convert is to_millis or convert is check_date:
        return _Text, convert
    if convert is legacy_key:
        return _Key, convert
    if isinstance(convert, JsonCheck) and convert.kind == "array":
        return _JsonArray, _names_of_array
    if isinstance(convert, JsonCheck) and convert.kind == "object":
        return _JsonObject, _names_of_object
    return Any, convert


def _build(transform: RowTransformer, columns: list[str]) -> StructPath:
    namespace: dict[str, Any] = {"RejectRow": RejectRow, "GOOD_DATES": GOOD_DATES, "UNSET": msgspec.UNSET}
    row_fields: list[tuple[str, Any, Any]] = []
    document_fields: list[tuple[str, Any, Any]] = []
    lines = ["def convert(r):"]
    for index, column in enumerate(columns):
        rule = transform.rule(column)
        if rule is None:  # dropped: read (any value), never written
            row_fields.append((f"c{index}", Any, msgspec.field(name=column)))
            continue
        name, convert = rule
        kind, call = _column_type(convert)
        row_fields.append((f"c{index}", kind, msgspec.field(name=column)))
        # UNSET, not None, marks an omitted field: a rule may give None itself (JSON text
        # holding `null`), and the dict path writes that as null.
        document_fields.append((f"d{index}", Any, msgspec.field(default=msgspec.UNSET, name=name)))
        lines += [f"    v = r.c{index}", "    if v is None:"]
        if column in transform.required:
            lines.append("        raise RejectRow")  # the dict path says which field
        elif column in transform.defaults:
            namespace[f"default_{index}"] = transform.defaults[column]
            lines.append(f"        v = default_{index}")
        elif transform.keep_nulls:
            lines.append("        pass")
        else:
            lines.append("        v = UNSET")
        if call is not None:
            namespace[f"call_{index}"] = call
            # Most dates were seen before: a set lookup, no call. Most keys are text: no call.
            test = (
                "    elif v not in GOOD_DATES:"
                if call is check_date
                else "    elif type(v) is not str:"
                if call is legacy_key
                else "    else:"
            )
            lines += [test, f"        v = call_{index}(v)"]
        lines.append(f"    d{index} = v")
    # The document's fields in the order of their names, as Convex holds them (see encode_json).
    document_fields.sort(key=lambda field: field[2].name)
    lines.append(f"    return Document({', '.join(field[0] for field in document_fields)})")
    row_type = msgspec.defstruct("Row", row_fields, forbid_unknown_fields=True, gc=False)
    namespace["Document"] = msgspec.defstruct("Document", document_fields, gc=False)
    exec("\n".join(lines), namespace)  # noqa: S102 - our own generated code, from the mapping
    # Sorted as encode_json sorts a document (its fields, and the fields of objects in jsonb).
    return StructPath(
        msgspec.json.Decoder(row_type).decode, namespace["convert"], msgspec.json.Encoder(order="sorted").encode
    )
