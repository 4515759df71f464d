"""The stand-in's copies of convex/cockpitMigrations.ts on a small store (no server): one
migration is one transaction, its record keeps what the rollback needs, and a refusal leaves
nothing written."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from cockpit.sandbox.convex import migration_functions as mf
from cockpit.sandbox.convex.functions import FunctionError, ThrownConvexError
from cockpit.sandbox.convex.store import DocumentStore

OPERATIONS: list[dict[str, Any]] = [
    {"type": "insert", "table": "tags", "data": {"name": "urgent", "color": "red"}},
    {"type": "update", "table": "cases", "where": {"status": "pwd"}, "set": {"status": "prevailing_wage"},
     "original": {"status": "pwd"}},
    {"type": "update", "table": "cases", "where": {"legacyId": "c3"}, "set": {"priority": 1},
     "original": {"legacyId": "c3"}},
    {"type": "delete", "table": "cases", "where": {"legacyId": "c4"}, "original": {"legacyId": "c4", "status": None}},
]  # fmt: skip


def _store(tmp_path: Path, engine: ModuleType) -> DocumentStore:
    store = DocumentStore(tmp_path / "store.db", engine)
    with store.transaction():
        store.insert_many(
            "cases",
            [
                {"legacyId": "c1", "status": "pwd"},
                {"legacyId": "c2", "status": "pwd", "wage": 50.5},
                {"legacyId": "c3", "status": "filed"},
                {"legacyId": "c4", "status": None},
            ],
        )
    return store


def _apply(store: DocumentStore, operations: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    args = {"version": "002", "name": "tags", "checksum": "sha256:a", "appliedBy": "ops", "operations": operations}
    return mf.apply(store, {**args, **extra})


def _contents(store: DocumentStore) -> list[tuple[str, list[tuple[str, Any]]]]:
    return sorted(
        (table, sorted((k, v) for k, v in doc.items() if k not in ("_id", "_creationTime")))
        for table in store.tables()
        for doc in store.documents(table)
        if table != mf.TABLE
    )


def test_apply_then_rollback_leaves_the_documents_as_they_were(tmp_path: Path, sqlite_engine: ModuleType) -> None:
    store = _store(tmp_path, sqlite_engine)
    before = _contents(store)
    assert _apply(store, OPERATIONS) == {"applied": True, "inserted": 1, "updated": 3, "deleted": 1}
    cases = {d["legacyId"]: d for d in store.documents("cases")}
    assert sorted(cases) == ["c1", "c2", "c3"] and cases["c1"]["status"] == "prevailing_wage"
    assert cases["c3"]["priority"] == 1 and [t["name"] for t in store.documents("tags")] == ["urgent"]
    [record] = mf.applied(store, {})
    assert (record["version"], record["name"], record["checksum"], record["appliedBy"]) == (
        "002",
        "tags",
        "sha256:a",
        "ops",
    )
    # Applied again (a retried call): found by its record, nothing written twice.
    assert _apply(store, OPERATIONS) == {"applied": False, "inserted": 0, "updated": 0, "deleted": 0}
    assert store.count("tags") == 1
    assert mf.rollback(store, {"version": "002"}) == {"rolledBack": True, "removed": 1, "restored": 3, "reinserted": 1}
    # c3 had no priority: the rollback removes the field rather than setting it to null.
    assert _contents(store) == before and mf.applied(store, {}) == []
    assert mf.rollback(store, {"version": "002"})["rolledBack"] is False


def test_a_document_unlike_the_original_refuses_the_whole_migration(tmp_path: Path, sqlite_engine: ModuleType) -> None:
    store = _store(tmp_path, sqlite_engine)
    before = _contents(store)
    wrong = [*OPERATIONS[:2], {**OPERATIONS[3], "original": {"legacyId": "c4", "status": "closed"}}]
    with pytest.raises(
        FunctionError, match=r"operation 3 \(delete of cases\): document \w+: status is null, not \"closed\""
    ):
        _apply(store, wrong)
    assert _contents(store) == before and mf.applied(store, {}) == []  # the insert and update before it: undone


def test_a_dry_run_throws_its_counts_and_writes_nothing(tmp_path: Path, sqlite_engine: ModuleType) -> None:
    store = _store(tmp_path, sqlite_engine)
    before = _contents(store)
    with pytest.raises(ThrownConvexError) as thrown:
        _apply(store, OPERATIONS, dryRun=True)
    assert thrown.value.data == {"dryRun": {"applied": True, "inserted": 1, "updated": 3, "deleted": 1}}
    assert _contents(store) == before and mf.applied(store, {}) == []
    _apply(store, OPERATIONS)
    with pytest.raises(ThrownConvexError):
        mf.rollback(store, {"version": "002", "dryRun": True})
    assert len(mf.applied(store, {})) == 1 and store.count("tags") == 1


def test_the_same_version_with_another_checksum_is_refused(tmp_path: Path, sqlite_engine: ModuleType) -> None:
    store = _store(tmp_path, sqlite_engine)
    _apply(store, OPERATIONS)
    with pytest.raises(FunctionError, match="migration 002 is applied with checksum sha256:a, not sha256:b"):
        _apply(store, OPERATIONS, checksum="sha256:b")


def test_a_rollback_over_a_later_change_is_refused_whole(tmp_path: Path, sqlite_engine: ModuleType) -> None:
    store = _store(tmp_path, sqlite_engine)
    _apply(store, OPERATIONS)
    changed = next(d for d in store.documents("cases") if d["legacyId"] == "c2")
    with store.transaction():
        store.patch(changed["_id"], {"status": "certified"})
    after = _contents(store)
    with pytest.raises(FunctionError, match=rf"document {changed['_id']} changed since: status is \"certified\""):
        mf.rollback(store, {"version": "002"})
    assert _contents(store) == after and len(mf.applied(store, {})) == 1


def test_check_schema_reports_missing_wrong_and_undeclared_fields(tmp_path: Path, sqlite_engine: ModuleType) -> None:
    store = _store(tmp_path, sqlite_engine)
    user = None
    with store.transaction():
        user = store.insert("users", {"name": "a"})
        store.insert("cases", {"legacyId": "c5", "status": "x", "owner": user})
        store.insert("cases", {"legacyId": "c6", "status": "x", "owner": "not-an-id"})
    fields = {"legacyId": "string", "status": "string?", "wage": "number?", "owner": "id:users?"}
    pages, cursor = [], None
    while True:
        page = mf.check_schema(store, {"table": "cases", "fields": fields, "cursor": cursor, "numItems": 4})
        pages.append(page)
        if page["isDone"]:
            break
        cursor = page["continueCursor"]
    assert [p["checked"] for p in pages] == [4, 2]
    found = {(v["field"], v["problem"]) for p in pages for v in p["violations"]}
    # c4's status is null, not a string; c6's owner is no id.
    assert found == {("status", "not string"), ("owner", "not id:users")}
    assert sum(p["violating"] for p in pages) == 2
    strict = mf.check_schema(store, {"table": "cases", "fields": {"legacyId": "string"}, "cursor": None, "numItems": 9})
    assert {v["field"] for v in strict["violations"]} == {"status", "wage", "owner"}
    assert all(v["problem"] == "not in the schema" for v in strict["violations"])
    missing = mf.check_schema(
        store, {"table": "cases", "fields": {**fields, "wage": "number"}, "cursor": None, "numItems": 9}
    )
    assert sum(1 for v in missing["violations"] if v["problem"] == "missing") == 5


def _exports(source: str) -> dict[str, tuple[str, set[str]]]:
    """The functions a .ts file exports: name -> (kind, argument names), spreads expanded."""
    spreads = {
        name: set(re.findall(r"(\w+):", body)) for name, body in re.findall(r"^const (\w+) = \{(.*?)\};$", source, re.M)
    }
    out = {}
    for name, kind, args in re.findall(
        r"^export const (\w+) = internal(Query|Mutation)\(\{\s*args: \{(.*?)\},\s*handler", source, re.M | re.S
    ):
        names = set(re.findall(r"(?<![.\w])(\w+): v\.", args))
        for spread in re.findall(r"\.\.\.(\w+)", args):
            names |= spreads[spread]
        out[name] = (kind.lower(), names)
    return out


def test_the_stand_in_has_every_function_of_cockpit_migrations_ts() -> None:
    source = (Path(__file__).resolve().parents[2] / "convex" / "cockpitMigrations.ts").read_text()
    exported = _exports(source)
    assert len(exported) == source.count("export const"), "a function of cockpitMigrations.ts was not read"
    standin = {
        path.split(":")[1]: (kind, set(mf.MIGRATION_ARGUMENTS[path]))
        for path, (kind, _internal, _call) in mf.MIGRATION_FUNCTIONS.items()
    }
    assert standin == exported


def test_a_document_put_back_by_a_rollback_is_found_by_the_earlier_migrations(
    tmp_path: Path, sqlite_engine: ModuleType
) -> None:
    store = DocumentStore(tmp_path / "store.db", sqlite_engine)
    insert = {"type": "insert", "table": "users", "data": {"email": "guest@x.test"}}
    update = {
        "type": "update",
        "table": "users",
        "where": {"email": "guest@x.test"},
        "set": {"role": "guest"},
        "original": {"email": "guest@x.test"},
    }
    delete = {"type": "delete", "table": "users", "where": {"email": "guest@x.test"}, "original": {"role": "guest"}}
    for version, operations in (("001", [insert]), ("002", [update]), ("003", [delete])):
        mf.apply(
            store, {"version": version, "name": "m", "checksum": "c", "appliedBy": "ops", "operations": operations}
        )
    assert store.count("users") == 0
    mf.rollback(store, {"version": "003"})  # the guest is back, with a new _id
    mf.rollback(store, {"version": "002"})  # ... which 002's record now names: its role goes
    assert [(d["email"], d.get("role")) for d in store.documents("users")] == [("guest@x.test", None)]
    assert mf.rollback(store, {"version": "001"})["removed"] == 1
    assert store.count("users") == 0


def test_the_stand_in_has_every_function_of_cockpit_sync_ts() -> None:
    from cockpit.sandbox.convex import sync_functions

    source = (Path(__file__).resolve().parents[2] / "convex" / "cockpitSync.ts").read_text()
    exported = _exports(source)
    assert len(exported) == source.count("export const"), "a function of cockpitSync.ts was not read"
    standin = {
        path.split(":")[1]: (kind, set(sync_functions.SYNC_ARGUMENTS[path]))
        for path, (kind, _internal, _call) in sync_functions.SYNC_FUNCTIONS.items()
    }
    assert standin == exported
