"""The stand-in's copies of the functions in convex/cockpitMigrations.ts, in behaviour.

Keep the two in step: each function here has the same arguments, writes the same record and
returns the same fields as its TypeScript original. One call is one store transaction, as one
Convex mutation is one transaction: a throw leaves nothing written.

Two differences the stand-in cannot avoid, neither of which the cockpit relies on: it keeps
values as JSON, so an Int64 reads back as an integral number (the `int64` check accepts one);
and its ids do not encode their table, so `id:<table>` accepts any id that is not a document
of another table (Convex's `normalizeId` reads the table from the id).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from cockpit.sandbox.convex.functions import FunctionError, ThrownConvexError
from cockpit.sandbox.convex.store import DocumentStore
from cockpit.sandbox.convex.values import (
    ANY,
    BOOLEAN,
    NULL,
    NUMBER,
    STRING,
    Int64,
    Validator,
    array,
    optional,
    record,
    same_value,
    union,
)

TABLE = "cockpit_migrations"
_PAGE = {"cursor": union(STRING, NULL), "numItems": NUMBER}
_ID = re.compile(r"^[0-9a-hjkmnp-tv-z]{32}$")

MIGRATION_ARGUMENTS: dict[str, dict[str, Validator]] = {
    "cockpitMigrations:applied": {},
    "cockpitMigrations:apply": {
        "version": STRING,
        "name": STRING,
        "checksum": STRING,
        "appliedBy": STRING,
        "operations": array(ANY),
        "dryRun": optional(BOOLEAN),
    },
    "cockpitMigrations:rollback": {"version": STRING, "dryRun": optional(BOOLEAN)},
    "cockpitMigrations:checkSchema": {"table": STRING, "fields": record(STRING, STRING), **_PAGE},
}


def _record_of(store: DocumentStore, version: str) -> dict[str, Any] | None:
    return next((doc for doc in store.documents(TABLE) if doc.get("version") == version), None)


_MISSING = object()


def _shown(value: Any) -> str:
    return json.dumps(None if value is _MISSING else value, separators=(",", ":"))


def _differs(doc: dict[str, Any], expected: dict[str, Any]) -> str | None:
    for field, value in expected.items():
        current = doc.get(field, _MISSING)
        if current is _MISSING or not same_value(current, value):
            return f"{field} is {_shown(current)}, not {_shown(value)}"
    return None


def _matching(store: DocumentStore, table: str, where: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        doc
        for doc in store.documents(table)
        if all(field in doc and same_value(doc[field], value) for field, value in where.items())
    ]


def applied(store: DocumentStore, args: dict[str, Any]) -> list[dict[str, Any]]:
    fields = ("version", "name", "checksum", "appliedAt", "appliedBy")
    return sorted(({f: doc.get(f) for f in fields} for doc in store.documents(TABLE)), key=lambda r: r["version"])


def _checked(store: DocumentStore, op: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """The documents an update or a delete finds, each as the migration's `original` says."""
    found = _matching(store, op["table"], op["where"])
    for doc in found:
        difference = _differs(doc, op["original"])
        if difference is not None:
            raise FunctionError(f"{where}: document {doc['_id']}: {difference} as the migration's original says")
    return found


def _apply_one(store: DocumentStore, op: Any, where: str, counts: dict[str, int]) -> dict[str, Any]:
    """Apply one operation; what its rollback needs."""
    kind = op.get("type") if isinstance(op, dict) else None
    if kind == "insert":
        counts["inserted"] += 1
        return {"type": "insert", "table": op["table"], "ids": [store.insert(op["table"], op["data"])]}
    if kind == "update":
        before = []
        for doc in _checked(store, op, where):
            fields = {f: doc[f] for f in op["set"] if f in doc}
            before.append({"id": doc["_id"], "fields": fields, "absent": [f for f in op["set"] if f not in doc]})
            store.patch(doc["_id"], op["set"])
            counts["updated"] += 1
        return {"type": "update", "table": op["table"], "set": op["set"], "before": before}
    if kind == "delete":
        documents = []
        for doc in _checked(store, op, where):
            fields = {k: v for k, v in doc.items() if k not in ("_id", "_creationTime")}
            documents.append({"id": doc["_id"], "fields": fields})
            store.delete(doc["_id"])
            counts["deleted"] += 1
        return {"type": "delete", "table": op["table"], "documents": documents}
    raise FunctionError(f"{where}: unknown operation type")


def apply(store: DocumentStore, args: dict[str, Any]) -> dict[str, Any]:
    version, checksum = args["version"], args["checksum"]
    with store.transaction():
        existing = _record_of(store, version)
        if existing is not None:
            if existing["checksum"] != checksum:
                applied_as = existing["checksum"]
                raise FunctionError(f"migration {version} is applied with checksum {applied_as}, not {checksum}")
            return {"applied": False, "inserted": 0, "updated": 0, "deleted": 0}
        counts = {"inserted": 0, "updated": 0, "deleted": 0}
        undo = []
        for index, op in enumerate(args["operations"]):
            described = op if isinstance(op, dict) else {}
            where = f"operation {index + 1} ({described.get('type')} of {described.get('table')})"
            undo.append(_apply_one(store, op, where, counts))
        result = {"applied": True, **counts}
        if args.get("dryRun"):
            raise ThrownConvexError({"dryRun": result})
        record = {"version": version, "name": args["name"], "checksum": checksum}
        applied_by = {"appliedAt": int(time.time() * 1000), "appliedBy": args["appliedBy"]}
        store.insert(TABLE, {**record, **applied_by, "undo": undo})
    return result


def rollback(store: DocumentStore, args: dict[str, Any]) -> dict[str, Any]:
    version = args["version"]
    with store.transaction():
        found = _record_of(store, version)
        if found is None:
            return {"rolledBack": False, "removed": 0, "restored": 0, "reinserted": 0}
        counts = {"removed": 0, "restored": 0, "reinserted": 0}
        renamed: dict[str, str] = {}
        for step in reversed(found["undo"]):
            if step["type"] == "insert":
                for doc_id in step["ids"]:
                    if store.get(doc_id) is not None:
                        store.delete(doc_id)
                        counts["removed"] += 1
            elif step["type"] == "update":
                for before in step["before"]:
                    current = store.get(before["id"])
                    if current is None:
                        raise FunctionError(f"migration {version}: document {before['id']} it updated is gone")
                    difference = _differs(current[1], step["set"])
                    if difference is not None:
                        raise FunctionError(f"migration {version}: document {before['id']} changed since: {difference}")
                    store.patch(before["id"], before["fields"], remove=before["absent"])
                    counts["restored"] += 1
            else:
                for deleted in step["documents"]:
                    renamed[deleted["id"]] = store.insert(step["table"], deleted["fields"])
                    counts["reinserted"] += 1
        result = {"rolledBack": True, **counts}
        if args.get("dryRun"):
            raise ThrownConvexError({"dryRun": result})
        store.delete(found["_id"])
        _rename_in_records(store, renamed)
    return result


def _rename_in_records(store: DocumentStore, renamed: dict[str, str]) -> None:
    """renameInRecords: the records before it learn the new _id of each document put back."""
    if not renamed:
        return
    for found in list(store.documents(TABLE)):
        undo = []
        for step in found["undo"]:
            if step["type"] == "insert":
                step = {**step, "ids": [renamed.get(i, i) for i in step["ids"]]}
            elif step["type"] == "update":
                step = {**step, "before": [{**b, "id": renamed.get(b["id"], b["id"])} for b in step["before"]]}
            undo.append(step)
        store.patch(found["_id"], {"undo": undo})


def _type_problem(store: DocumentStore, value: Any, kind: str) -> str | None:
    base = kind.removesuffix("?")
    if value is _MISSING:
        return None if kind.endswith("?") else "missing"
    number = isinstance(value, int | float) and not isinstance(value, bool)
    checks: dict[str, Callable[[], bool]] = {
        "any": lambda: True,
        "string": lambda: isinstance(value, str),
        "number": lambda: number and not isinstance(value, Int64),
        "float64": lambda: number and not isinstance(value, Int64),
        "int64": lambda: isinstance(value, Int64) or (number and float(value).is_integer()),
        "boolean": lambda: isinstance(value, bool),
        "bytes": lambda: isinstance(value, bytes),
        "null": lambda: value is None,
        "array": lambda: isinstance(value, list),
        "object": lambda: isinstance(value, dict),
    }
    if base.startswith("id:"):
        ok = isinstance(value, str) and _ID.match(value) is not None and _table_of(store, value) in (None, base[3:])
    else:
        ok = checks.get(base, lambda: False)()
    return None if ok else f"not {base}"


def _table_of(store: DocumentStore, doc_id: str) -> str | None:
    found = store.get(doc_id)
    return None if found is None else found[0]


def check_schema(store: DocumentStore, args: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, str] = args["fields"]
    page = store.paginate(args["table"], args["cursor"], int(args["numItems"]))
    violations: list[dict[str, str]] = []
    violating = 0
    for doc in page.documents:
        found = []
        for field, kind in fields.items():
            problem = _type_problem(store, doc.get(field, _MISSING), kind)
            if problem is not None:
                found.append({"id": doc["_id"], "field": field, "problem": problem})
        found += [
            {"id": doc["_id"], "field": field, "problem": "not in the schema"}
            for field in doc
            if not field.startswith("_") and field not in fields
        ]
        violating += 1 if found else 0
        violations += found
    return {
        "checked": len(page.documents),
        "violating": violating,
        "violations": violations[:20],
        "isDone": page.is_done,
        "continueCursor": page.continue_cursor,
    }


MIGRATION_FUNCTIONS: dict[str, tuple[str, bool, Callable[[DocumentStore, dict[str, Any]], Any]]] = {
    "cockpitMigrations:applied": ("query", True, applied),
    "cockpitMigrations:apply": ("mutation", True, apply),
    "cockpitMigrations:rollback": ("mutation", True, rollback),
    "cockpitMigrations:checkSchema": ("query", True, check_schema),
}
