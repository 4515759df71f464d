"""Cancelling a data step stops it at once, even in the middle of a slow transfer, and leaves
nothing that a retry could mistake for finished work."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from datapath import CONNECTIONS, env_for, step
from fakes import HEADER, Harness
from throttle import ThrottledProxy

from cockpit.engine.views import Outcome
from cockpit.operator import Operator
from cockpit.sandbox.convex.faults import Faults
from cockpit.sandbox.convex.server import ConvexStandIn

pytestmark = pytest.mark.integration

PROMPT = 2.0  # seconds from the cancel to the step's end: "at once" for an operator


@pytest.fixture
def slow_standin(tmp_path: Path) -> Iterator[ConvexStandIn]:
    # Every call takes 3 s: a cancel must not wait for the answer.
    server = ConvexStandIn(
        tmp_path / "convex", faults=Faults(latency=3.0, paths=("/api/mutation", "/api/import/upload_part"))
    ).start()
    yield server
    server.stop()


def cancel_when(h: Harness, step_id: str, ready: object, timeout: float = 30) -> float:
    """Wait until `ready()` holds while the step runs, cancel it, and return how long it took to stop."""
    h.wait_state(step_id, "running", timeout)
    h.wait_for(ready, timeout)  # type: ignore[arg-type]
    asked = time.monotonic()
    h.engine.cancel(step_id, Operator("tester"))
    h.wait_for(lambda: h.state(step_id) != "running", 30)
    return time.monotonic() - asked


def harness(folder: Path, body: str, dsn: str, standin: ConvexStandIn | None) -> Harness:
    return Harness(folder, body, header=HEADER + CONNECTIONS, env=env_for(dsn, standin)).start()


def test_cancelling_an_export_on_a_slow_link_stops_at_once_and_leaves_no_table_file(
    tmp_path: Path, perm_dsn: str, postgres: object
) -> None:
    proxy = ThrottledProxy(postgres.port, 100_000)  # type: ignore[attr-defined]
    slow = perm_dsn.replace(f":{postgres.port}/", f":{proxy.port}/")  # type: ignore[attr-defined]
    h = harness(
        tmp_path,
        step("export", "postgres.export", 'connection = "v1"\nout = "export"\ntables = ["public.cases"]'),
        slow,
        None,
    )
    try:
        took = cancel_when(h, "export", lambda: h.engine.step_runtime("export").progress)
        assert h.state("export") == "cancelled"
        assert took < PROMPT, f"the export took {took:.1f}s to stop"
        assert not (tmp_path / "export" / "cases.jsonl").exists()  # only whole tables get their name
    finally:
        h.close()
        proxy.close()


def test_cancelling_an_import_during_a_slow_upload_stops_at_once(
    tmp_path: Path, perm_dsn: str, slow_standin: ConvexStandIn
) -> None:
    out = tmp_path / "transformed"
    out.mkdir()
    data = b"".join(json.dumps({"legacyId": f"u{i}"}).encode() + b"\n" for i in range(20000))
    (out / "users.jsonl").write_bytes(data)
    (out / "manifest.json").write_text(
        json.dumps(
            {
                "tables": {
                    "users": {
                        "file": "users.jsonl",
                        "output_rows": 20000,
                        "input_rows": 20000,
                        "rejects": 0,
                        "bytes": len(data),
                    }
                }
            }
        )
    )
    h = harness(
        tmp_path,
        step("import", "convex.import", 'connection = "v2"\ninput = "transformed"\npart_size = 65536'),
        perm_dsn,
        slow_standin,
    )
    try:
        took = cancel_when(h, "import", lambda: slow_standin.requests.count("POST /api/import/upload_part") >= 1)
        assert h.state("import") == "cancelled"
        assert took < PROMPT, f"the import took {took:.1f}s to stop"
        assert slow_standin.store.count("users") == 0
    finally:
        h.close()


def test_cancelling_resolution_between_pages_stops_at_once_and_a_retry_finishes(
    tmp_path: Path, perm_dsn: str, slow_standin: ConvexStandIn
) -> None:
    mapping = (
        '[table."auth.users"]\ntarget = "users"\n\n[table."public.cases"]\ntarget = "cases"\n'
        'references = { user_id = "users" }\n'
    )
    (tmp_path / "mapping.toml").write_text(mapping)
    slow_standin.store.insert_many("users", [{"legacyId": f"u{i}"} for i in range(5)])
    slow_standin.store.insert_many("cases", [{"legacyId": f"c{i}", "legacyUserId": f"u{i % 5}"} for i in range(300)])
    body = step("resolve", "convex.resolve_refs", 'connection = "v2"\nmapping = "mapping.toml"')
    h = harness(tmp_path, body, perm_dsn, slow_standin)
    try:
        took = cancel_when(h, "resolve", lambda: slow_standin.requests.count("POST /api/mutation") >= 1)
        assert h.state("resolve") == "cancelled"
        assert took < PROMPT, f"resolution took {took:.1f}s to stop"
        slow_standin.faults.latency = 0.0
        time.sleep(3.2)  # the abandoned call lands: the retry must not count its page twice
        h.engine.retry("resolve", Operator("tester"))
        assert h.settle(60) == Outcome.DONE, h.engine.step_runtime("resolve").reason
        ids = {d["legacyId"]: d["_id"] for d in slow_standin.store.documents("users")}
        assert all(d["userId"] == ids[d["legacyUserId"]] for d in slow_standin.store.documents("cases"))
    finally:
        h.close()
