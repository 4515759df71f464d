"""The schema the migrations declare, as the convex/schema.ts that Convex deploys from code.

Convex takes its schema from the project's code, not from a migration at run time, so the
tables, fields and indexes of the migrations up to a version are printed as a `defineSchema`
to merge into convex/schema.ts, with the cockpit_migrations table the runner records in.
"""

from __future__ import annotations

import json
import re

from migrate.files import MigrationFile

_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
_VALIDATORS = {
    "string": "v.string()",
    "number": "v.number()",
    "float64": "v.float64()",
    "int64": "v.int64()",
    "boolean": "v.boolean()",
    "bytes": "v.bytes()",
    "null": "v.null()",
    "any": "v.any()",
    "array": "v.array(v.any())",
    "object": "v.record(v.string(), v.any())",
}
_RECORDS_TABLE = """  cockpit_migrations: defineTable({
    version: v.string(),
    name: v.string(),
    checksum: v.string(),
    appliedAt: v.number(),
    appliedBy: v.string(),
    undo: v.array(v.any()),
  }),"""


def validator(kind: str) -> str:
    base = kind.removesuffix("?")
    inner = f"v.id({json.dumps(base[3:])})" if base.startswith("id:") else _VALIDATORS[base]
    return f"v.optional({inner})" if kind.endswith("?") else inner


def schema_ts(files: list[MigrationFile]) -> str:
    """The schema of `files` (in version order: a later migration's field overrides an earlier's)."""
    tables: dict[str, dict[str, str]] = {}
    indexes: dict[str, dict[str, list[str]]] = {}
    for file in files:
        for table, fields in file.migration.schema_.items():
            tables.setdefault(table, {}).update(fields)
        for index in file.migration.indexes:
            indexes.setdefault(index.table, {})[index.name] = index.fields
    span = f"migrations {files[0].version} to {files[-1].version}" if files else "no migrations"
    lines = [
        f"// The schema of {span}, from `cockpit migrate schema`: merge it into convex/schema.ts.",
        'import { defineSchema, defineTable } from "convex/server";',
        'import { v } from "convex/values";',
        "",
        "export default defineSchema({",
    ]
    for table, fields in tables.items():
        lines.append(f"  {_key(table)}: defineTable({{")
        lines += [f"    {_key(field)}: {validator(kind)}," for field, kind in fields.items()]
        declared = indexes.get(table, {})
        chained = "".join(f"\n    .index({json.dumps(name)}, {json.dumps(cols)})" for name, cols in declared.items())
        lines.append(f"  }}){chained},")
    lines += [_RECORDS_TABLE, "});", ""]
    return "\n".join(lines)


def _key(name: str) -> str:
    return name if _IDENTIFIER.match(name) else json.dumps(name)
