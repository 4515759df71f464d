"""The stand-in's copies of convex/cockpit.ts, page by page, on a small store (no server)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

from cockpit.sandbox.convex import functions
from cockpit.sandbox.convex.store import DocumentStore


def _pages(call: Any, store: DocumentStore, args: dict[str, Any]) -> list[dict[str, Any]]:
    out, cursor = [], None
    while True:
        page = call(store, {**args, "cursor": cursor})
        out.append(page)
        if page["isDone"]:
            return out
        cursor = page["continueCursor"]


def _store(tmp_path: Path, engine: ModuleType) -> DocumentStore:
    store = DocumentStore(tmp_path / "store.db", engine)
    with store.transaction():
        store.insert_many("users", [{"legacyId": "u1"}, {"legacyId": "u2"}])
    user = store.by_legacy_id("users", "u1")
    assert user is not None
    cases: list[dict[str, Any]] = [
        {"legacyId": "c1", "status": "pwd", "wage": 100, "legacyUserId": "u1", "userId": user["_id"]},
        {"legacyId": "c2", "status": "pwd", "wage": 50.5, "legacyUserId": "u1"},  # unresolved
        {"legacyId": "c3", "status": None, "wage": "12", "legacyUserId": "u2", "userId": "nosuchid"},  # dangling
        {"legacyId": "c4", "wage": 7},  # no status, no reference
        {"legacyId": "c5", "status": ["a", None], "legacyUserId": None},
        {"legacyId": "c6", "status": True, "wage": 1},
        {"legacyId": "c7", "status": 3.0, "wage": 2},
    ]
    with store.transaction():
        store.insert_many("cases", cases)
    return store


def test_pages_count_every_document_once(tmp_path: Path, sqlite_engine: ModuleType) -> None:
    store = _store(tmp_path, sqlite_engine)
    pages = _pages(functions.count_page, store, {"table": "cases", "numItems": 3})
    assert [p["count"] for p in pages] == [3, 3, 1] and [p["isDone"] for p in pages] == [False, False, True]
    exact = _pages(functions.count_page, store, {"table": "cases", "numItems": 7})
    assert [(p["count"], p["isDone"]) for p in exact] == [(7, True)]
    empty = _pages(functions.count_page, store, {"table": "nothing", "numItems": 3})
    assert [(p["count"], p["isDone"]) for p in empty] == [(0, True)]


def test_aggregate_groups_as_javascript_would(tmp_path: Path, sqlite_engine: ModuleType) -> None:
    store = _store(tmp_path, sqlite_engine)
    groups: dict[str, dict[str, float]] = {}
    for page in _pages(
        functions.aggregate_page, store, {"table": "cases", "numItems": 2, "groupBy": "status", "sum": "wage"}
    ):
        for key, group in page["groups"].items():
            total = groups.setdefault(key, {"count": 0, "sum": 0})
            total["count"] += group["count"]
            total["sum"] += group["sum"]
    # String(x ?? "null"): missing and null are "null"; arrays join; a string wage is not summed.
    assert groups == {
        "pwd": {"count": 2, "sum": 150.5},
        "null": {"count": 2, "sum": 7},
        "a,": {"count": 1, "sum": 0},
        "true": {"count": 1, "sum": 1},
        "3": {"count": 1, "sum": 2},
    }
    counted = functions.aggregate_page(store, {"table": "cases", "cursor": None, "numItems": 100})
    assert counted["groups"] == {"": {"count": 7, "sum": 0}} and counted["isDone"]


def test_check_refs_finds_unresolved_and_dangling(tmp_path: Path, sqlite_engine: ModuleType) -> None:
    store = _store(tmp_path, sqlite_engine)
    totals = {"checked": 0, "unresolved": 0, "dangling": 0}
    for page in _pages(
        functions.check_refs,
        store,
        {"table": "cases", "legacyField": "legacyUserId", "idField": "userId", "target": "users", "numItems": 3},
    ):
        for key in totals:
            totals[key] += page[key]
    assert totals == {"checked": 3, "unresolved": 1, "dangling": 1}


def test_by_legacy_ids_keeps_the_order_asked_and_skips_the_missing(tmp_path: Path, sqlite_engine: ModuleType) -> None:
    store = _store(tmp_path, sqlite_engine)
    found = json.loads(functions.by_legacy_ids(store, {"table": "cases", "legacyIds": ["c3", "nope", "c1", "c3"]}).text)
    assert [d["legacyId"] for d in found] == ["c3", "c1", "c3"]
    assert all("_id" in d and "_creationTime" in d for d in found)


def test_field_names_with_quotes_reach_sql_as_literals(tmp_path: Path, sqlite_engine: ModuleType) -> None:
    store = DocumentStore(tmp_path / "store.db", sqlite_engine)
    with store.transaction():
        store.insert_many("t", [{"it's": "a", "wage'); --": 2}, {"it's": "a", "wage'); --": 3}, {"it's": "b"}])
    page = functions.aggregate_page(
        store, {"table": "t", "cursor": None, "numItems": 10, "groupBy": "it's", "sum": "wage'); --"}
    )
    assert page["groups"] == {"a": {"count": 2, "sum": 5}, "b": {"count": 1, "sum": 0}}
    refs = functions.check_refs(
        store,
        {"table": "t", "cursor": None, "numItems": 10, "legacyField": "it's", "idField": "wage'); --", "target": "t"},
    )
    assert (refs["checked"], refs["unresolved"], refs["dangling"]) == (3, 1, 2)


def _timed_store(tmp_path: Path, engine: ModuleType) -> DocumentStore:
    """Ten documents created at 1000, 1001, ... 1009 ms."""
    store = DocumentStore(tmp_path / "store.db", engine)
    with store.transaction():
        store.insert_many("t", [{"legacyId": f"d{i}", "_creationTime": 1000.0 + i, "n": i} for i in range(10)])
    return store


def test_a_share_holds_the_documents_from_its_start_up_to_before_its_end(
    tmp_path: Path, sqlite_engine: ModuleType
) -> None:
    store = _timed_store(tmp_path, sqlite_engine)
    assert functions.time_span(store, {"table": "t"}) == {"first": 1000.0, "last": 1009.0}
    assert functions.time_span(store, {"table": "none"}) == {"first": None, "last": None}

    def numbers(share: dict[str, float]) -> list[int]:
        out = []
        for page in _pages(functions.aggregate_page, store, {"table": "t", "numItems": 2, "groupBy": "n", **share}):
            out += [int(k) for k in page["groups"]]
        return sorted(out)

    # `from` is inclusive, `before` exclusive, either may be left open; paging stays inside.
    assert numbers({"before": 1003.0}) == [0, 1, 2]
    assert numbers({"from": 1003.0, "before": 1007.0}) == [3, 4, 5, 6]
    assert numbers({"from": 1007.0}) == [7, 8, 9]
    assert numbers({"from": 1003.5, "before": 1004.0}) == []
    counted = [
        p["count"]
        for p in _pages(functions.count_page, store, {"table": "t", "numItems": 3, "from": 1002, "before": 1009})
    ]
    assert counted == [3, 3, 1]
    checked = sum(
        p["checked"]
        for p in _pages(
            functions.check_refs,
            store,
            {"table": "t", "legacyField": "legacyId", "idField": "none", "target": "t", "numItems": 4, "from": 1005},
        )
    )
    assert checked == 5


def test_a_share_bound_that_is_not_a_number_is_refused_as_convex_refuses_it() -> None:
    for bad in ("1003", True, [1], None):
        refusal = functions.argument_error(
            "cockpit:countPage", {"table": "t", "cursor": None, "numItems": 3, "from": bad}
        )
        assert refusal is not None and refusal.startswith("ArgumentValidationError: Value does not match validator.")
        assert "Path: .from" in refusal and "Validator: v.optional(v.float64())" in refusal


def _exports(source: str) -> dict[str, tuple[str, set[str]]]:
    """The functions convex/cockpit.ts exports: name -> (kind, argument names), spreads expanded."""
    spreads = {
        name: set(re.findall(r"(\w+):", body)) for name, body in re.findall(r"^const (\w+) = \{(.*?)\};$", source, re.M)
    }
    out = {}
    for name, kind, args in re.findall(
        r"^export const (\w+) = internal(Query|Mutation)\(\{\n  args: \{(.*?)\},\n", source, re.M
    ):
        names = set(re.findall(r"(?<![.\w])(\w+): v\.", args))
        for spread in re.findall(r"\.\.\.(\w+)", args):
            names |= spreads[spread]
        out[name] = (kind.lower(), names)
    return out


def test_the_stand_in_has_every_function_of_cockpit_ts_with_the_same_kind_and_arguments() -> None:
    source = (Path(__file__).resolve().parents[2] / "convex" / "cockpit.ts").read_text()
    exported = _exports(source)
    assert len(exported) == source.count("export const"), "a function of cockpit.ts was not read"
    standin = {
        path.split(":")[1]: (kind, set(functions.ARGUMENTS[path]))
        for path, (kind, _internal, _call) in functions.FUNCTIONS.items()
    }
    assert standin == exported


def test_clear_legacy_fields_walks_every_table_and_removes_only_those_fields(
    tmp_path: Path, sqlite_engine: ModuleType
) -> None:
    store = _store(tmp_path, sqlite_engine)
    args = {"tables": ["users", "cases", "absent"], "fields": ["legacyId", "legacyUserId"], "numItems": 3}
    pages = _pages(functions.clear_legacy_fields, store, args)
    # users in one page, cases in three, then the table that does not exist: found empty.
    assert [(p["table"], p["processed"], p["cleared"]) for p in pages] == [
        ("users", 2, 2),
        ("cases", 3, 3),
        ("cases", 3, 3),
        ("cases", 1, 1),
        ("absent", 0, 0),
    ]
    assert [p["isDone"] for p in pages] == [False, False, False, False, True]
    cases = list(store.documents("cases"))
    assert not any("legacyId" in d or "legacyUserId" in d for d in [*cases, *store.documents("users")])
    assert [d.get("status") for d in cases][:2] == ["pwd", "pwd"] and "userId" in cases[0]  # the rest kept
    # Once more: nothing left to clear, nothing written.
    assert sum(p["cleared"] for p in _pages(functions.clear_legacy_fields, store, args)) == 0
