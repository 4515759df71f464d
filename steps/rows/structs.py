"""The quickest path from an exported line to its document's JSON: msgspec Structs.

msgspec decodes the line straight into a Struct of the table's columns (no dict, no key
strings), each column typed by its rule's `struct_type` (`steps.rows.rules`), so that msgspec
itself checks what the rule would check in Python; what is left of a rule runs on the decoded
value (`after_struct`). Timestamps and dates are read as text: msgspec could read timestamps
itself, but it rounds digits past the microsecond where Python truncates them, and takes a
lowercase `t`: two answers for one line. The document is a second Struct, whose field names
are the document's, written by msgspec in the order of their names (as Convex holds them; see
encode_json).

This path only accelerates: whenever it refuses a line (another type, another column, a
missing one, NULL in a required field, a value a rule rejects, anything at all), the line
takes the dict path (`steps.rows.documents.converted`), which decides and says why. For every
line it does convert, its JSON is the dict path's, byte for byte when the columns come in the
order of the first row (tests/unit/test_row_struct.py holds it to that).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from steps.rows.rules import KEEPS_NAMES
from steps.rows.values import RejectRow

if TYPE_CHECKING:
    from steps.rows.transformer import RowTransformer


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


def _build(transform: RowTransformer, columns: list[str]) -> StructPath:
    namespace: dict[str, Any] = {"RejectRow": RejectRow, "UNSET": msgspec.UNSET, **KEEPS_NAMES}
    row_fields: list[tuple[str, Any, Any]] = []
    document_fields: list[tuple[str, Any, Any]] = []
    lines = ["def convert(r):"]
    for index, column in enumerate(columns):
        column_rule = transform.rule(column)
        if column_rule is None:  # dropped: read (any value), never written
            row_fields.append((f"c{index}", Any, msgspec.field(name=column)))
            continue
        name, rule = column_rule
        row_fields.append((f"c{index}", rule.struct_type, msgspec.field(name=column)))
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
        if rule.after_struct is not None:
            namespace[f"call_{index}"] = rule.after_struct
            test = f"    elif not ({rule.keeps}):" if rule.keeps is not None else "    else:"
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
