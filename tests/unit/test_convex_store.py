"""The stand-in's document store: reads side by side on connections of their own, a mutation
seeing its own writes, and no reader seeing a transaction before it commits."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from cockpit.sandbox.convex.sqlite import best_engine, has_jsonb
from cockpit.sandbox.convex.store import DocumentStore


def test_a_transaction_sees_its_writes_and_other_readers_see_them_only_after_commit(
    tmp_path: Path, sqlite_engine: ModuleType
) -> None:
    store = DocumentStore(tmp_path / "documents.db", sqlite_engine)
    store.insert_many("users", [{"legacyId": "u1"}])
    inside, committed = threading.Event(), threading.Event()
    seen_inside: list[int] = []

    def mutation() -> None:
        with store.transaction():
            store.insert_many("users", [{"legacyId": "u2"}])
            seen_inside.append(store.count("users"))
            assert store.by_legacy_id("users", "u2") is not None
            inside.set()
            committed.wait(5)

    writer = threading.Thread(target=mutation)
    writer.start()
    try:
        assert inside.wait(5)
        assert store.count("users") == 1  # another thread: the open transaction is not visible
        assert store.by_legacy_id("users", "u2") is None
    finally:
        committed.set()
        writer.join()
    assert seen_inside == [2]
    assert store.count("users") == 2
    assert store.by_legacy_id("users", "u2") is not None
    store.close()


def test_readers_on_many_threads_get_the_right_documents(tmp_path: Path, sqlite_engine: ModuleType) -> None:
    store = DocumentStore(tmp_path / "documents.db", sqlite_engine)
    store.insert_many("cases", [{"legacyId": f"c{i}", "n": i} for i in range(2000)])

    def look(i: int) -> int:
        found = {
            k: json.loads(v)
            for k, v in store.first_json_by_legacy_ids("cases", [f"c{i}", f"c{(i * 7) % 2000}"]).items()
        }
        return int(found[f"c{i}"]["n"]) + int(found[f"c{(i * 7) % 2000}"]["n"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(look, range(2000)))
    assert results == [i + (i * 7) % 2000 for i in range(2000)]
    store.close()
    with pytest.raises(Exception, match="closed"):
        store.count("cases")


def test_a_read_of_several_statements_sees_one_snapshot(tmp_path: Path, sqlite_engine: ModuleType) -> None:
    store = DocumentStore(tmp_path / "documents.db", sqlite_engine)
    store.insert_many("users", [{"legacyId": "u1"}])
    with store.reading() as db:
        before = db.execute("SELECT count(*) FROM documents").fetchone()[0]
        writer = threading.Thread(target=store.insert_many, args=("users", [{"legacyId": "u2"}]))
        writer.start()
        writer.join()
        assert db.execute("SELECT count(*) FROM documents").fetchone()[0] == before == 1
    assert store.count("users") == 2
    store.close()


def test_documents_come_back_exactly_as_stored(tmp_path: Path, sqlite_engine: ModuleType) -> None:
    hostile: dict[str, Any] = {
        "legacyId": "h1",
        "quote": 'a"b\\c\nd\te',
        "unicode": "Zoë 名前 \U0001f680 \u2028",
        "empty": "",
        "floats": [0.1, 1e300, -2.5e-308, 123456789.123456789],
        "big": 2**53 + 1,
        "negative": -(2**62),
        "nested": {"a": [1, {"b": None}], "c": {}},
        "flags": [True, False, None],
        'odd "key"': 1,
    }
    store = DocumentStore(tmp_path / "documents.db", sqlite_engine)
    store.insert_many("cases", [hostile, {"legacyId": "h2"}])
    kind = store.query("SELECT DISTINCT typeof(body) FROM documents", [])
    assert kind == [("blob",)] if store.jsonb else [("text",)]

    def without_system_fields(doc: dict[str, Any] | None) -> dict[str, Any]:
        assert doc is not None
        return {k: v for k, v in doc.items() if not k.startswith("_")}

    first = store.by_legacy_id("cases", "h1")
    assert without_system_fields(first) == hostile
    assert first is not None and store.get(first["_id"]) == ("cases", first)
    assert [without_system_fields(d) for d in store.documents("cases")] == [hostile, {"legacyId": "h2"}]
    # The JSON text the sample's function sends, system fields and all, is the same document.
    assert json.loads(store.first_json_by_legacy_ids("cases", ["h1"])["h1"]) == first
    picked = store.paginate("cases", None, 1, ["unicode", "nested", "missing"]).documents
    assert picked == [{"_id": first["_id"], "unicode": hostile["unicode"], "nested": hostile["nested"]}]
    store.patch(first["_id"], {"userId": "x" * 32, "unicode": None}, remove=["empty"])
    patched = {k: v for k, v in hostile.items() if k != "empty"} | {"userId": "x" * 32, "unicode": None}
    assert without_system_fields(store.by_legacy_id("cases", "h1")) == patched
    store.close()


def test_the_bundled_sqlite_keeps_no_memory_statistics(tmp_path: Path) -> None:
    # With statistics on, every allocation takes one process-wide mutex and threads reading side
    # by side slow each other down; SQLite counts no memory when they are off.
    engine = best_engine()
    if not has_jsonb(engine):
        pytest.skip("pysqlite3-binary is not installed: the stand-in uses Python's own SQLite")
    import ctypes

    from pysqlite3 import _sqlite3  # type: ignore[import-untyped,import-not-found,unused-ignore]

    library = ctypes.CDLL(_sqlite3.__file__)
    library.sqlite3_memory_used.restype = ctypes.c_int64
    store = DocumentStore(tmp_path / "store.db")
    with store.transaction():
        store.insert_many("t", [{"legacyId": f"d{i}", "pad": "x" * 500} for i in range(200)])
    assert store.count("t") == 200
    assert library.sqlite3_memory_used() == 0
