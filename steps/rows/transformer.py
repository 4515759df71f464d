"""One table's mapping, compiled: `row -> document`, raising RejectRow.

Each column gets its rule from the table in `steps.rows.rules`. Every exported row of a table
has the same columns, so the transformer writes Python code for them when it sees the first
row (`_generate`): direct key access, the rule's `keeps` inlined, no lookups. A row with other
columns takes the general form (`general`), which calls the same rules and behaves exactly
as the generated code does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from steps.rows.rules import BY_SECTION, BY_TYPE, JSON, KEEPS_NAMES, KEY, PLAIN, Rule, refusing
from steps.rows.structs import StructPath, struct_path
from steps.rows.values import RejectRow, field_name_problem

if TYPE_CHECKING:
    from steps.rows.mapping import Defaults, TableMapping

RowFunction = Callable[[dict[str, Any]], dict[str, Any]]
# A column's document field and its rule; None when the column is dropped.
ColumnRule = tuple[str, Rule] | None
_UNSEEN: Any = object()


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def reference_fields(column: str) -> tuple[str, str]:
    """A foreign key column's two document fields: `user_id` -> (`legacyUserId`, `userId`)."""
    base = column[:-3] if column.endswith("_id") else column
    id_field = camel(base) + "Id"
    return "legacy" + id_field[:1].upper() + id_field[1:], id_field


class RowTransformer:
    """One table's mapping, compiled: `row -> document`, raising RejectRow."""

    def __init__(self, table: TableMapping, defaults: Defaults, column_types: Mapping[str, str] | None = None) -> None:
        self.table = table
        self.keep_nulls = defaults.nulls == "keep"
        primary = table.primary_key or defaults.primary_key
        self.required = frozenset(table.required)
        self.defaults = dict(table.defaults)
        self._camel_case = defaults.fields == "camelCase"
        self.rules: dict[str, ColumnRule] = {}
        # By type first: a rule the mapping names for a column replaces it.
        for field, kind in (column_types or {}).items():
            if kind in BY_TYPE:
                self._assign(field, self._name(field), BY_TYPE[kind])
        for field in table.drop:
            self.rules[field] = None
        for section, rule in BY_SECTION.items():
            for field in getattr(table, section):
                self._assign(field, self._name(field), rule)
        for field, kind in table.json_.items():
            self._assign(field, self._name(field), JSON[kind])
        for column in table.references:
            self._assign(column, reference_fields(column)[0], KEY)
        self._assign(primary, "legacyId", KEY)
        self._fast: RowFunction | None = None
        self._fast_width = 0
        # Built with the generated code, from the same first row: see steps/rows/structs.py.
        self.struct_path: StructPath | None = None

    def _name(self, field: str) -> str:
        if field in self.table.rename:
            return self.table.rename[field]
        return camel(field) if self._camel_case else field

    def rule(self, field: str) -> ColumnRule:
        """(document field, rule) of a column; None when it is dropped."""
        rule = self.rules.get(field, _UNSEEN)
        if rule is _UNSEEN:
            rule = self._assign(field, self._name(field), PLAIN)
        return rule  # type: ignore[no-any-return]

    def _assign(self, field: str, name: str, rule: Rule) -> ColumnRule:
        """Give a column its document field and rule; a field Convex would refuse refuses its values."""
        problem = field_name_problem(name)
        if problem is not None:
            rule = refusing(f"column {field!r} would be written as {problem}; rename or drop it in the mapping")
        column = self.rules[field] = (name, rule)
        return column

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        fast = self._fast
        if fast is not None and type(row) is dict and len(row) == self._fast_width:
            try:
                return fast(row)
            except KeyError:
                pass  # other columns than the first row's: the general form below
        elif fast is None and type(row) is dict:
            self._fast = self._generate(list(row))
            self._fast_width = len(row)
            self.struct_path = struct_path(self, list(row))
            return self(row)
        return self.general(row)

    def _generate(self, fields: list[str]) -> RowFunction:
        """Python code for rows with these columns. Its behaviour is exactly `general`'s."""
        namespace: dict[str, Any] = {"RejectRow": RejectRow, **KEEPS_NAMES}
        lines = ["def fast(row):", "    d = {}"]
        for index, field in enumerate(fields):
            lines += self._field_code(index, field, namespace)
        lines.append("    return d")
        exec("\n".join(lines), namespace)  # noqa: S102 - our own generated code, from the mapping
        generated: RowFunction = namespace["fast"]
        return generated

    def _field_code(self, index: int, field: str, namespace: dict[str, Any]) -> list[str]:
        column = self.rule(field)
        if column is None:
            return []
        name, rule = column
        key, out = repr(field), repr(name)
        lines = [f"    v = row[{key}]", "    if v is None:"]
        if field in self.required:
            lines.append(f"        raise RejectRow({repr(f'NULL in required field {field!r}')})")
        elif field in self.defaults:
            namespace[f"default_{index}"] = self.defaults[field]
            lines.append(f"        d[{out}] = default_{index}")
        elif self.keep_nulls:
            lines.append(f"        d[{out}] = None")
        else:
            lines.append("        pass")
        namespace[f"convert_{index}"] = rule.convert
        indent = "    "
        if rule.keeps is not None:
            lines += [f"    elif {rule.keeps}:", f"        d[{out}] = v"]
        lines += [
            f"{indent}else:",
            f"{indent}    try:",
            f"{indent}        d[{out}] = convert_{index}(v)",
            f"{indent}    except RejectRow as exc:",
            f"{indent}        raise RejectRow({field!r} + ': ' + str(exc)) from None",
        ]
        return lines

    def general(self, row: dict[str, Any]) -> dict[str, Any]:
        """Any row, whatever its columns: the rules called one field at a time."""
        if not isinstance(row, dict):
            raise RejectRow("the line is not a JSON object")
        document: dict[str, Any] = {}
        rules = self.rules
        for field, value in row.items():
            column = rules.get(field, _UNSEEN)
            if column is _UNSEEN:
                column = self.rule(field)
            if column is None:
                continue
            name, rule = column
            if value is None:
                if field in self.required:
                    raise RejectRow(f"NULL in required field {field!r}")
                if field in self.defaults:
                    document[name] = self.defaults[field]
                elif self.keep_nulls:
                    document[name] = None
                continue
            kept = rule.kept
            if kept is not None and kept(value):
                document[name] = value
                continue
            try:
                document[name] = rule.convert(value)
            except RejectRow as exc:
                raise RejectRow(f"{field}: {exc}") from None
        for field in self.required:
            if field not in row:
                raise RejectRow(f"required field {field!r} is missing")
        return document
