"""The stand-in's document store: reads side by side on connections of their own, a mutation
seeing its own writes, and no reader seeing a transaction before it commits."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cockpit.sandbox.convex_store import DocumentStore


def test_a_transaction_sees_its_writes_and_other_readers_see_them_only_after_commit(tmp_path: Path) -> None:
    store = DocumentStore(tmp_path / "documents.db")
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


def test_readers_on_many_threads_get_the_right_documents(tmp_path: Path) -> None:
    store = DocumentStore(tmp_path / "documents.db")
    store.insert_many("cases", [{"legacyId": f"c{i}", "n": i} for i in range(2000)])

    def look(i: int) -> int:
        found = store.first_by_legacy_ids("cases", [f"c{i}", f"c{(i * 7) % 2000}"])
        return int(found[f"c{i}"]["n"]) + int(found[f"c{(i * 7) % 2000}"]["n"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(look, range(2000)))
    assert results == [i + (i * 7) % 2000 for i in range(2000)]
    store.close()
    with pytest.raises(Exception, match="closed"):
        store.count("cases")


def test_a_read_of_several_statements_sees_one_snapshot(tmp_path: Path) -> None:
    store = DocumentStore(tmp_path / "documents.db")
    store.insert_many("users", [{"legacyId": "u1"}])
    with store._reading() as db:
        before = db.execute("SELECT count(*) FROM documents").fetchone()[0]
        writer = threading.Thread(target=store.insert_many, args=("users", [{"legacyId": "u2"}]))
        writer.start()
        writer.join()
        assert db.execute("SELECT count(*) FROM documents").fetchone()[0] == before == 1
    assert store.count("users") == 2
    store.close()
