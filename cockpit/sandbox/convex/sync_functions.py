"""The stand-in's copies of the functions in convex/cockpitSync.ts, in behaviour.

Keep the two in step: each function here has the same arguments and returns the same fields
as its TypeScript original; one mutation is one store transaction. The lookups of a batch by
legacy id are one query each (the shipped loop's `.first()` per document), as in
functions.py. `legacyIds` pages the documents that have a text legacy id, in its order: the
shipped function pages the index whole and gives a document without one as null, which the
cockpit skips.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

from cockpit.sandbox.convex.functions import ThrownConvexError
from cockpit.sandbox.convex.store import DocumentStore
from cockpit.sandbox.convex.values import (
    ANY,
    BOOLEAN,
    NULL,
    NUMBER,
    STRING,
    Validator,
    array,
    optional,
    same_value,
    union,
)

WATERMARKS = "cockpit_sync"

SYNC_ARGUMENTS: dict[str, dict[str, Validator]] = {
    "cockpitSync:watermarks": {},
    "cockpitSync:upsert": {
        "table": STRING,
        "documents": array(ANY),
        "references": array(ANY),  # v.object({...}) in the original: the stand-in checks no object's fields
        "watermark": optional(ANY),
        "dryRun": optional(BOOLEAN),
    },
    "cockpitSync:legacyIds": {"table": STRING, "cursor": union(STRING, NULL), "numItems": NUMBER},
    "cockpitSync:deleteByLegacyIds": {"table": STRING, "legacyIds": array(STRING), "dryRun": optional(BOOLEAN)},
}


def watermarks(store: DocumentStore, args: dict[str, Any]) -> list[dict[str, Any]]:
    fields = ("table", "updatedAt", "lastId", "syncedAt")
    return [{f: doc.get(f) for f in fields} for doc in store.documents(WATERMARKS)]


def upsert(store: DocumentStore, args: dict[str, Any]) -> dict[str, Any]:
    table, references = args["table"], args["references"]
    counts = {"inserted": 0, "updated": 0, "unchanged": 0, "unresolved": 0}
    with store.transaction():
        incoming = [dict(doc) for doc in args["documents"]]
        for ref in references:
            wanted = {doc.get(ref["legacyField"]) for doc in incoming} - {None}
            # No require_index here: Convex creates every table its schema declares, empty or
            # not, so a reference into one that holds nothing yet (a dry run's first sync) finds
            # nothing; the stand-in has no schema to tell such a table from an unknown one.
            found = store.first_ids_by_legacy_ids(ref["target"], {w for w in wanted if isinstance(w, str)})
            for doc in incoming:
                doc.pop(ref["idField"], None)
                legacy = doc.get(ref["legacyField"])
                if legacy is None:
                    continue
                if legacy in found:
                    doc[ref["idField"]] = found[legacy]
                else:
                    counts["unresolved"] += 1
        existing = store.first_json_by_legacy_ids(table, [str(d.get("legacyId")) for d in incoming])
        for doc in incoming:
            current = existing.get(str(doc.get("legacyId")))
            if current is None:
                store.insert(table, doc)
                counts["inserted"] += 1
                continue
            held = json.loads(current)
            fields = {k: v for k, v in held.items() if k not in ("_id", "_creationTime")}
            if same_value(fields, doc):
                counts["unchanged"] += 1
            else:
                store.replace(held["_id"], doc)
                counts["updated"] += 1
        if args.get("dryRun"):
            raise ThrownConvexError({"dryRun": counts})
        mark = args.get("watermark")
        if mark is not None:
            _record_watermark(store, mark)
    return counts


def _record_watermark(store: DocumentStore, mark: dict[str, Any]) -> None:
    record = {
        "table": mark["table"],
        "updatedAt": mark["updatedAt"],
        "lastId": mark["lastId"],
        "syncedAt": int(time.time() * 1000),
    }
    found = next((doc for doc in store.documents(WATERMARKS) if doc.get("table") == mark["table"]), None)
    if found is None:
        store.insert(WATERMARKS, record)
    else:
        store.replace(found["_id"], record)


def legacy_ids(store: DocumentStore, args: dict[str, Any]) -> dict[str, Any]:
    table, size = args["table"], int(args["numItems"])
    after = json.loads(base64.urlsafe_b64decode(args["cursor"])) if args["cursor"] else None
    where, bound = ("", []) if after is None else (" AND (legacy_id, ct) > (?, ?)", after)
    rows = store.query(
        f"SELECT legacy_id, ct FROM documents WHERE tbl = ? AND legacy_id IS NOT NULL{where}"
        " ORDER BY legacy_id, ct LIMIT ?",
        [table, *bound, size + 1],
    )
    more = len(rows) > size
    rows = rows[:size]
    last = list(rows[-1]) if rows else after
    cursor = base64.urlsafe_b64encode(json.dumps(last).encode()).decode()
    return {"legacyIds": [r[0] for r in rows], "isDone": not more, "continueCursor": cursor}


def delete_by_legacy_ids(store: DocumentStore, args: dict[str, Any]) -> dict[str, Any]:
    table = args["table"]
    with store.transaction():
        found = store.first_ids_by_legacy_ids(table, args["legacyIds"])
        deleted = 0
        for legacy in args["legacyIds"]:
            if legacy in found:
                store.delete(found.pop(legacy))  # popped: the same id again finds nothing, as in Convex
                deleted += 1
        counts = {"deleted": deleted, "missing": len(args["legacyIds"]) - deleted}
        if args.get("dryRun"):
            raise ThrownConvexError({"dryRun": counts})
    return counts


SYNC_FUNCTIONS: dict[str, tuple[str, bool, Callable[[DocumentStore, dict[str, Any]], Any]]] = {
    "cockpitSync:watermarks": ("query", True, watermarks),
    "cockpitSync:upsert": ("mutation", True, upsert),
    "cockpitSync:legacyIds": ("query", True, legacy_ids),
    "cockpitSync:deleteByLegacyIds": ("mutation", True, delete_by_legacy_ids),
}
