"""The stand-in's copies of the functions in convex/cockpit.ts, line for line in behaviour.

Keep the two in step: each function here has the same arguments, the same page semantics and
returns the same fields as its TypeScript original.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from cockpit.sandbox.convex.store import DocumentStore
from cockpit.sandbox.convex.values import NULL, NUMBER, STRING, Validator, array, optional, union, validation_error


class RawJSON:
    """A function's value already written as JSON text: the server sends it as it is."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class FunctionError(Exception):
    """A function threw: the HTTP API answers status "error" with this message."""


class ThrownConvexError(FunctionError):
    """A function threw a ConvexError: the answer carries its data as `errorData`."""

    def __init__(self, data: Any) -> None:
        super().__init__(f"ConvexError: {json.dumps(data, separators=(',', ':'))}")
        self.data = data


# The validators of convex/cockpit.ts, path -> {argument: validator}.
_PAGE = {"cursor": union(STRING, NULL), "numItems": NUMBER}
_SHARE = {"from": optional(NUMBER), "before": optional(NUMBER)}
_REFERENCE = {"table": STRING, "legacyField": STRING, "idField": STRING, "target": STRING}
ARGUMENTS: dict[str, dict[str, Validator]] = {
    "cockpit:resolveRefs": {**_REFERENCE, **_PAGE, **_SHARE},
    "cockpit:timeSpan": {"table": STRING},
    "cockpit:countPage": {"table": STRING, **_PAGE, **_SHARE},
    "cockpit:byLegacyIds": {"table": STRING, "legacyIds": array(STRING)},
    "cockpit:checkRefs": {**_REFERENCE, **_PAGE, **_SHARE},
    "cockpit:aggregatePage": {"table": STRING, "groupBy": optional(STRING), "sum": optional(STRING), **_PAGE, **_SHARE},
    "cockpit:clearLegacyFields": {"tables": array(STRING), "fields": array(STRING), **_PAGE},
}


def argument_error(path: str, args: Any) -> str | None:
    """What Convex's validator says of these arguments (ArgumentValidationError), or None: a
    function without validators (one a test defines) takes anything."""
    validators = ARGUMENTS.get(path)
    return None if validators is None else validation_error(args, validators)


def share_of(store: DocumentStore, args: dict[str, Any]) -> tuple[float | None, float | None]:
    """The optional `from` and `before` of a share (validated before the call). A share is read
    through the table's by_creation_time index, which a table that does not exist lacks."""
    share = args.get("from"), args.get("before")
    if share != (None, None):
        require_index(store, args["table"], "by_creation_time")
    return share


def require_index(store: DocumentStore, table: str, index: str) -> None:
    """Convex answers a read through an index of a table that does not exist with IndexNotFoundError
    (a scan of the whole table finds nothing instead). Every table the stand-in has holds
    by_legacy_id, as the functions' instructions ask; one without it is Convex's to refuse."""
    if not store.has_table(table):
        raise FunctionError(f"Index {table}.{index} not found.")


def time_span(store: DocumentStore, args: dict[str, Any]) -> dict[str, Any]:
    span = store.time_span(args["table"])
    return {"first": span[0] if span else None, "last": span[1] if span else None}


def resolve_refs(store: DocumentStore, args: dict[str, Any]) -> dict[str, Any]:
    # The loop of the shipped mutation, in one transaction: a document with its legacy field
    # set and its id field absent is patched with the `_id` of the target's first document of
    # that legacyId; the lookups of a page are one query, the patches one statement.
    legacy_field, id_field = args["legacyField"], args["idField"]
    with store.transaction():
        page = store.paginate(
            args["table"], args["cursor"], int(args["numItems"]), [legacy_field, id_field], share_of(store, args)
        )
        wanted = [
            (doc["_id"], doc.get(legacy_field))
            for doc in page.documents
            if doc.get(legacy_field) is not None and id_field not in doc
        ]
        if wanted:
            require_index(store, args["target"], "by_legacy_id")
        # The stand-in indexes text legacy ids (the transform writes every key as text): any
        # other value finds nothing.
        found = store.first_ids_by_legacy_ids(args["target"], {v for _, v in wanted if isinstance(v, str)})
        patches = [(doc_id, found[legacy]) for doc_id, legacy in wanted if isinstance(legacy, str) and legacy in found]
        store.set_strings(id_field, patches)
    return {
        "processed": len(page.documents),
        "resolved": len(patches),
        "missing": len(wanted) - len(patches),
        "skipped": len(page.documents) - len(wanted),
        "isDone": page.is_done,
        "continueCursor": page.continue_cursor,
    }


def count_page(store: DocumentStore, args: dict[str, Any]) -> dict[str, Any]:
    page = store.page_meta(args["table"], args["cursor"], int(args["numItems"]), share_of(store, args))
    return {"count": page.count, "isDone": page.is_done, "continueCursor": page.continue_cursor}


def by_legacy_ids(store: DocumentStore, args: dict[str, Any]) -> RawJSON:
    # The shipped loop's `.first()` per id through the by_legacy_id index, as one query: the
    # earliest document of each id, returned in the order asked (as JSON text, unparsed).
    if args["legacyIds"]:
        require_index(store, args["table"], "by_legacy_id")
    first = store.first_json_by_legacy_ids(args["table"], [str(x) for x in args["legacyIds"]])
    return RawJSON("[" + ",".join(first[legacy] for legacy in args["legacyIds"] if legacy in first) + "]")


def check_refs(store: DocumentStore, args: dict[str, Any]) -> dict[str, Any]:
    cte, parameters, page = store.page_fields(
        args["table"],
        args["cursor"],
        int(args["numItems"]),
        [(args["legacyField"], "value"), (args["idField"], "value")],
        share_of(store, args),
    )
    # The loop of the shipped function, in SQL: a set legacy field is checked; no id is
    # unresolved; an id that is no document (ctx.db.get is null) is dangling.
    row = store.query(
        f"{cte}, refs AS (SELECT f1 AS target FROM page WHERE f0 IS NOT NULL)"
        " SELECT count(*), count(*) FILTER (WHERE target IS NULL),"
        " count(*) FILTER (WHERE target IS NOT NULL AND NOT EXISTS (SELECT 1 FROM documents d WHERE d.id = target))"
        " FROM refs",
        parameters,
    )[0]
    return {
        "checked": row[0],
        "unresolved": row[1],
        "dangling": row[2],
        "isDone": page.is_done,
        "continueCursor": page.continue_cursor,
    }


def js_string(value: Any) -> str:
    """JavaScript's String(value), for group keys."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, list):
        return ",".join("" if v is None else js_string(v) for v in value)
    if isinstance(value, dict):
        return "[object Object]"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if value == int(value) and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    return str(value)


def aggregate_page(store: DocumentStore, args: dict[str, Any]) -> dict[str, Any]:
    group_by, total_of = args.get("groupBy"), args.get("sum")
    # The loop of the shipped function, in SQL: the raw JSON of the group field (named as
    # JavaScript's String() would, below), a count, and the sum of the values that are numbers
    # (total(): a float, as JavaScript sums); a missing field and a null both read as null, as
    # `?? "null"` does.
    fields = ([(group_by, "json")] if group_by is not None else []) + ([(total_of, "number")] if total_of else [])
    key = "f0" if group_by is not None else "NULL"
    number = f"f{len(fields) - 1}" if total_of else "0"
    cte, parameters, page = store.page_fields(
        args["table"], args["cursor"], int(args["numItems"]), fields, share_of(store, args)
    )
    rows = store.query(f"{cte} SELECT {key} AS k, count(*), total({number}) FROM page GROUP BY k", parameters)
    groups: dict[str, dict[str, float]] = {}
    for raw, count, total in rows:
        name = "" if group_by is None else js_string(None if raw is None else json.loads(raw))
        group = groups.setdefault(name, {"count": 0, "sum": 0})
        group["count"] += count
        group["sum"] += total if total != int(total) else int(total)
    return {"groups": groups, "isDone": page.is_done, "continueCursor": page.continue_cursor}


# path -> (kind, internal, implementation)
def clear_legacy_fields(store: DocumentStore, args: dict[str, Any]) -> dict[str, Any]:
    # One page of one table per call; the cursor is "<table index>:<page cursor>".
    tables, fields = args["tables"], args["fields"]
    cursor = args["cursor"]
    index, _, page_cursor = ("0", "", "") if cursor is None else cursor.partition(":")
    position = int(index) if index.isdigit() else 0
    if position >= len(tables):
        return {"table": None, "processed": 0, "cleared": 0, "isDone": True, "continueCursor": f"{position}:"}
    table = tables[position]
    with store.transaction():
        page = store.paginate(table, page_cursor or None, int(args["numItems"]), fields)
        touched = [(doc["_id"], [f for f in fields if f in doc]) for doc in page.documents]
        touched = [(doc_id, present) for doc_id, present in touched if present]
        for doc_id, present in touched:
            store.patch(doc_id, {}, remove=present)
    last = position == len(tables) - 1
    following = f"{position + 1}:" if page.is_done else f"{position}:{page.continue_cursor}"
    return {
        "table": table,
        "processed": len(page.documents),
        "cleared": len(touched),
        "isDone": page.is_done and last,
        "continueCursor": following,
    }


FUNCTIONS: dict[str, tuple[str, bool, Callable[[DocumentStore, dict[str, Any]], Any]]] = {
    "cockpit:resolveRefs": ("mutation", True, resolve_refs),
    "cockpit:timeSpan": ("query", True, time_span),
    "cockpit:countPage": ("query", True, count_page),
    "cockpit:byLegacyIds": ("query", True, by_legacy_ids),
    "cockpit:checkRefs": ("query", True, check_refs),
    "cockpit:aggregatePage": ("query", True, aggregate_page),
    "cockpit:clearLegacyFields": ("mutation", True, clear_legacy_fields),
}
