"""The stand-in's resolveRefs (a page's lookups in one query, its patches in one statement)
against a plain transcription of the loop in convex/cockpit.ts, on the same documents."""

from __future__ import annotations

import random
from pathlib import Path
from types import ModuleType
from typing import Any

from cockpit.sandbox.convex import functions
from cockpit.sandbox.convex.store import DocumentStore

OTHERS = [i for i in range(12) if i != 3]  # u3 has a twin
ARGS = {"table": "cases", "legacyField": "legacyUserId", "idField": "userId", "target": "users"}


def loop_of_cockpit_ts(store: DocumentStore, args: dict[str, Any]) -> dict[str, Any]:
    """resolveRefs as convex/cockpit.ts writes it, a document at a time."""
    page = store.paginate(args["table"], args["cursor"], int(args["numItems"]), share=functions.share_of(store, args))
    resolved = missing = skipped = 0
    with store.transaction():
        for doc in page.documents:
            legacy = doc.get(args["legacyField"])
            if legacy is None or args["idField"] in doc:  # undefined or null; an id field already there
                skipped += 1
                continue
            found = store.by_legacy_id(args["target"], legacy) if isinstance(legacy, str) else None
            if found is None:
                missing += 1
                continue
            store.patch(doc["_id"], {args["idField"]: found["_id"]})
            resolved += 1
    return {
        "processed": len(page.documents),
        "resolved": resolved,
        "missing": missing,
        "skipped": skipped,
        "isDone": page.is_done,
        "continueCursor": page.continue_cursor,
    }


def fill(path: Path, engine: ModuleType) -> DocumentStore:
    """Users, two of them sharing a legacyId (the earlier one is found), and cases of every kind."""
    store = DocumentStore(path, engine)
    rng = random.Random(7)
    with store.transaction():
        store.insert_many("users", [{"legacyId": f"u{i}", "_creationTime": 100.0 + i} for i in range(12)])
        store.insert_many("users", [{"legacyId": "u3", "_creationTime": 50.0, "twin": True}])
        cases: list[dict[str, Any]] = []
        for i in range(140):
            kind = rng.choice(
                [
                    "plain",
                    "plain",
                    "plain",
                    "unknown",
                    "no-legacy",
                    "null-legacy",
                    "resolved",
                    "null-id",
                    "number",
                    "twin",
                ]
            )
            case: dict[str, Any] = {"legacyId": f"c{i}", "_creationTime": 1000.0 + i, "kind": kind}
            if kind != "no-legacy":
                case["legacyUserId"] = {"unknown": "u-nobody", "null-legacy": None, "number": 4, "twin": "u3"}.get(
                    kind, f"u{rng.choice(OTHERS)}"
                )
            if kind == "resolved":
                case["userId"] = "k57alreadyset"
            if kind == "null-id":
                case["userId"] = None
            cases.append(case)
        store.insert_many("cases", cases)
    return store


def run_pages(call: Any, store: DocumentStore, num_items: int, share: dict[str, float]) -> list[dict[str, Any]]:
    answers, cursor = [], None
    while True:
        answer = call(store, {**ARGS, **share, "cursor": cursor, "numItems": num_items})
        answers.append(answer)
        if answer["isDone"]:
            return answers
        cursor = answer["continueCursor"]


def answers(call: Any, store: DocumentStore, share: dict[str, float]) -> list[dict[str, Any]]:
    """The pages' answers without their cursors (which hold the store's random ids)."""
    return [{k: v for k, v in a.items() if k != "continueCursor"} for a in run_pages(call, store, 7, share)]


def comparable(store: DocumentStore) -> list[dict[str, Any]]:
    """The cases without their random `_id`s, each userId told by the user it names."""
    users = {u["_id"]: ("user", u["legacyId"], u.get("twin", False)) for u in store.documents("users")}
    return [
        {k: users.get(v, v) if k == "userId" else v for k, v in d.items() if k != "_id"}
        for d in store.documents("cases")
    ]


def test_resolve_refs_does_what_the_loop_of_cockpit_ts_does(tmp_path: Path, sqlite_engine: ModuleType) -> None:
    ours = fill(tmp_path / "ours.db", sqlite_engine)
    loop = fill(tmp_path / "loop.db", sqlite_engine)
    # Whole, then in shares by creation time, each paged on its own: page by page the same answers.
    for share in ({"before": 1040.0}, {"from": 1040.0, "before": 1100.0}, {"from": 1100.0}, {}):
        assert answers(functions.resolve_refs, ours, share) == answers(loop_of_cockpit_ts, loop, share)
    documents = list(ours.documents("cases"))
    assert comparable(ours) == comparable(loop)
    twin = next(u["_id"] for u in ours.documents("users") if u.get("twin"))
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in documents:
        by_kind.setdefault(doc["kind"], []).append(doc)
    assert set(by_kind) == {"plain", "unknown", "no-legacy", "null-legacy", "resolved", "null-id", "number", "twin"}
    assert all(d["userId"] == twin for d in by_kind["twin"])  # the earliest document of the legacyId
    assert all(d["userId"] == "k57alreadyset" for d in by_kind["resolved"])
    assert all(d["userId"] is None for d in by_kind["null-id"])
    for kind in ("unknown", "no-legacy", "null-legacy", "number"):
        assert all("userId" not in d for d in by_kind[kind]), kind
    users = {u["legacyId"]: u["_id"] for u in ours.documents("users") if not u.get("twin")}
    assert all(d["userId"] == users[d["legacyUserId"]] for d in by_kind["plain"])


def test_a_share_resolves_only_its_own_documents(tmp_path: Path, sqlite_engine: ModuleType) -> None:
    store = fill(tmp_path / "store.db", sqlite_engine)
    before = {d["legacyId"]: d for d in store.documents("cases")}
    answers = run_pages(functions.resolve_refs, store, 5, {"from": 1020.0, "before": 1030.0})
    assert sum(a["processed"] for a in answers) == 10
    changed = {d["legacyId"] for d in store.documents("cases") if d != before[d["legacyId"]]}
    assert changed and changed <= {f"c{i}" for i in range(20, 30)}
    assert sum(a["resolved"] for a in answers) == len(changed)
