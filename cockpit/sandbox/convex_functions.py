"""The stand-in's copies of the functions in convex/cockpit.ts, line for line in behaviour.

Keep the two in step: each function here has the same arguments, the same page semantics and
returns the same fields as its TypeScript original.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from cockpit.sandbox.convex_store import DocumentStore


class FunctionError(Exception):
    """A function threw: the HTTP API answers status "error" with this message."""


def _require(args: dict[str, Any], *names: str) -> None:
    for name in names:
        if name not in args:
            raise FunctionError(f"ArgumentValidationError: Object is missing the required field `{name}`.")


def resolve_refs(store: DocumentStore, args: dict[str, Any]) -> dict[str, Any]:
    _require(args, "table", "legacyField", "idField", "target", "cursor", "numItems")
    page = store.paginate(args["table"], args["cursor"], int(args["numItems"]))
    resolved = missing = skipped = 0
    with store.transaction():  # a mutation is one transaction
        for doc in page.documents:
            legacy = doc.get(args["legacyField"])
            if legacy is None or args["idField"] in doc:
                skipped += 1
                continue
            found = store.by_legacy_id(args["target"], legacy)
            if found is None:
                missing += 1
                continue
            store.patch(doc["_id"], {args["idField"]: found["_id"]})
            resolved += 1
    return {"processed": len(page.documents), "resolved": resolved, "missing": missing, "skipped": skipped,
            "isDone": page.is_done, "continueCursor": page.continue_cursor}


def count_page(store: DocumentStore, args: dict[str, Any]) -> dict[str, Any]:
    _require(args, "table", "cursor", "numItems")
    page = store.paginate(args["table"], args["cursor"], int(args["numItems"]))
    return {"count": len(page.documents), "isDone": page.is_done, "continueCursor": page.continue_cursor}


def by_legacy_ids(store: DocumentStore, args: dict[str, Any]) -> list[dict[str, Any]]:
    _require(args, "table", "legacyIds")
    found = []
    for legacy_id in args["legacyIds"]:
        doc = store.by_legacy_id(args["table"], legacy_id)
        if doc is not None:
            found.append(doc)
    return found


def check_refs(store: DocumentStore, args: dict[str, Any]) -> dict[str, Any]:
    _require(args, "table", "legacyField", "idField", "target", "cursor", "numItems")
    page = store.paginate(args["table"], args["cursor"], int(args["numItems"]))
    checked = unresolved = dangling = 0
    for doc in page.documents:
        if doc.get(args["legacyField"]) is None:
            continue
        checked += 1
        target_id = doc.get(args["idField"])
        if target_id is None:
            unresolved += 1
            continue
        if store.get(target_id) is None:
            dangling += 1
    return {"checked": checked, "unresolved": unresolved, "dangling": dangling, "isDone": page.is_done,
            "continueCursor": page.continue_cursor}


def js_string(value: Any) -> str:
    """JavaScript's String(value), for group keys."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if value == int(value) and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    return str(value)


def aggregate_page(store: DocumentStore, args: dict[str, Any]) -> dict[str, Any]:
    _require(args, "table", "cursor", "numItems")
    page = store.paginate(args["table"], args["cursor"], int(args["numItems"]))
    group_by, total_of = args.get("groupBy"), args.get("sum")
    groups: dict[str, dict[str, float]] = {}
    for doc in page.documents:
        key = "" if group_by is None else js_string(doc.get(group_by))
        group = groups.setdefault(key, {"count": 0, "sum": 0})
        group["count"] += 1
        value = doc.get(total_of) if total_of is not None else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            group["sum"] += value
    return {"groups": groups, "isDone": page.is_done, "continueCursor": page.continue_cursor}


# path -> (kind, internal, implementation)
FUNCTIONS: dict[str, tuple[str, bool, Callable[[DocumentStore, dict[str, Any]], Any]]] = {
    "cockpit:resolveRefs": ("mutation", True, resolve_refs),
    "cockpit:countPage": ("query", True, count_page),
    "cockpit:byLegacyIds": ("query", True, by_legacy_ids),
    "cockpit:checkRefs": ("query", True, check_refs),
    "cockpit:aggregatePage": ("query", True, aggregate_page),
}
