"""convex.import, convex.run and convex.resolve_refs, and the client under them, against the Convex
stand-in with deterministic faults: each lost answer, refusal and error the protocol can meet."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from convex_official import convex_app
from datapath import V2_CONNECTION, env_for, log_of, step, wrap_function
from fakes import HEADER, Harness

from cockpit.engine.views import Outcome
from cockpit.events import StepProgress
from cockpit.sandbox.convex.functions import FunctionError, RawJSON
from cockpit.sandbox.convex.server import ConvexStandIn
from cockpit.sandbox.convex.store import DocumentStore
from steps.convex.client import ConvexClient, ConvexError, ConvexFunctionError
from steps.manifest import write_manifest

pytestmark = pytest.mark.integration


def write_transformed(folder: Path, tables: dict[str, list[dict[str, Any]]], *, prefix: bytes = b"") -> Path:
    """A transform's output folder as the transform step leaves it: JSON Lines and a manifest."""
    out = folder / "transformed"
    out.mkdir(mode=0o700, exist_ok=True)
    manifest: dict[str, Any] = {"tables": {}, "format": "jsonLines"}
    for table, documents in tables.items():
        data = prefix + b"".join(json.dumps(d).encode() + b"\n" for d in documents)
        (out / f"{table}.jsonl").write_bytes(data)
        manifest["tables"][table] = {
            "file": f"{table}.jsonl",
            "input_rows": len(documents),
            "output_rows": len(documents),
            "rejects": 0,
            "bytes": len(data),
        }
    write_manifest(out, manifest)
    return out


def run(
    folder: Path, body: str, standin: ConvexStandIn, timeout: float = 60, deploy_key: str | None = None
) -> tuple[Harness, Outcome]:
    env = {**env_for(standin=standin), "CONVEX_DEPLOY_KEY": deploy_key or standin.deploy_key}
    h = Harness(folder, body, header=HEADER + V2_CONNECTION, env=env).start()
    try:
        outcome = h.settle(timeout)
    finally:
        h.close()
    return h, outcome


def users(n: int, pad: int = 0) -> list[dict[str, Any]]:
    return [{"legacyId": f"u{i:05d}", "email": f"user{i}@example.com", "bio": "x" * pad} for i in range(n)]


def cases(n: int, users_count: int, pad: int = 0) -> list[dict[str, Any]]:
    return [{"legacyId": f"c{i:05d}", "legacyUserId": f"u{i % users_count:05d}", "notes": "n" * pad} for i in range(n)]


IMPORT = step("import", "convex.import", 'connection = "v2"\ninput = "transformed"')


# -- the client ----------------------------------------------------------------------------------------


def test_the_client_waits_out_429_and_retries_5xx_and_dropped_answers(standin: ConvexStandIn) -> None:
    standin.faults.refuse_next["/api/query"] = [429, 500, 503]
    standin.faults.retry_after = 0.3
    logged: list[str] = []
    with ConvexClient(standin.url, standin.deploy_key, log=logged.append, max_delay=0.2) as client:
        value = client.query("cockpit:countPage", {"table": "users", "cursor": None, "numItems": 10})
        assert value["count"] == 0 and value["isDone"] is True
        assert client.retries == 3
        assert "HTTP 429; retrying in 0.3s" in logged[0]
        # A query is safe to repeat: a lost answer is asked again.
        standin.faults.drop_next["/api/query"] = 1
        assert client.query("cockpit:countPage", {"table": "users", "cursor": None, "numItems": 10})["count"] == 0
        assert client.retries == 4
    assert standin.faults.injected == {"refused 429": 1, "refused 500": 1, "refused 503": 1, "dropped": 1}


def test_the_client_gives_up_after_its_attempts_and_says_why(standin: ConvexStandIn) -> None:
    standin.faults.refuse_next["/api/query"] = [500] * 3
    with (
        ConvexClient(standin.url, standin.deploy_key, attempts=3, max_delay=0.01) as client,
        pytest.raises(ConvexError, match=r"HTTP 500 after 3 attempts"),
    ):
        client.query("cockpit:countPage", {"table": "users"})


def test_a_refused_key_is_a_clear_error_that_does_not_show_the_key(tmp_path: Path, standin: ConvexStandIn) -> None:
    write_transformed(tmp_path, {"users": users(3)})
    wrong = "prod:standin|wrong-key-0123456789"
    h, outcome = run(tmp_path, IMPORT, standin, deploy_key=wrong)
    assert outcome == Outcome.FAILED
    reason = h.engine.step_runtime("import").reason
    assert "HTTP 401 BadAdminKey" in reason
    assert "wrong-key" not in reason and "wrong-key" not in log_of(h, "import")


@pytest.mark.parametrize("status", [200, 560])
def test_function_errors_are_read_from_the_body_at_200_and_560(tmp_path: Path, status: int) -> None:
    server = ConvexStandIn(tmp_path / "convex", function_error_status=status).start()
    try:
        with ConvexClient(server.url, server.deploy_key) as client:
            with pytest.raises(ConvexFunctionError, match="Could not find function for 'nowhere:fn'"):
                client.mutation("nowhere:fn", {})
            with pytest.raises(ConvexFunctionError, match="as Mutation, but it is defined as Query"):
                client.mutation("cockpit:countPage", {"table": "users"})
            assert client.retries == 0  # a function error is an answer, not a fault to retry
    finally:
        server.stop()


def test_values_decode_only_where_convex_encodes_them(standin: ConvexStandIn) -> None:
    seven, half = (base64.b64encode(struct.pack(f, x)).decode() for f, x in (("<q", 7), ("<d", 0.5)))
    answers = {
        # Encoded values, one with its key escaped as JSON allows: both are Int64 7.
        "t:encoded": {"n": {"$integer": seven}, "list": [{"$float": half}]},
        "t:escaped": RawJSON(f'{{"n": {{"\\u0024integer": "{seven}"}}}}'),
        # Text that looks like an encoding is text: a "$" inside a string, a key of two fields.
        "t:plain": {"s": 'say "$integer"', "two": {"$integer": seven, "other": 1}, "ok": True, "f": 0.1},
    }
    for name, value in answers.items():
        standin.functions[name] = ("query", False, lambda store, args, value=value: value)
    with ConvexClient(standin.url, standin.deploy_key) as client:
        assert client.query("t:encoded") == {"n": 7, "list": [0.5]}
        assert client.query("t:escaped") == {"n": 7}
        assert client.query("t:plain") == answers["t:plain"]
        standin.store.insert_many("some", [{"legacyId": "y"}])
        assert client.query("cockpit:byLegacyIds", {"table": "some", "legacyIds": ["x"]}) == []


# -- convex.import -------------------------------------------------------------------------------------


def imports_of(standin: ConvexStandIn, table: str) -> list[Any]:
    return [i for i in standin.imports.jobs.values() if i.table == table]


def test_import_uploads_in_parts_and_shows_upload_and_server_progress(tmp_path: Path, standin: ConvexStandIn) -> None:
    write_transformed(tmp_path, {"users": users(3000, pad=100), "cases": cases(2500, 3000)})
    body = step("import", "convex.import", 'connection = "v2"\ninput = "transformed"\npart_size = 65536')
    h, outcome = run(tmp_path, body, standin)
    assert outcome == Outcome.DONE, h.engine.step_runtime("import").reason
    assert standin.store.count("users") == 3000 and standin.store.count("cases") == 2500
    parts = [r for r in standin.requests if r.endswith("/api/import/upload_part")]
    assert len(parts) >= 6  # users alone are about 400 KB in 64 KB parts
    progress = [e for e in h.of_type(StepProgress) if e.step_id == "import"]
    assert any(e.unit == "bytes" and e.label == "users upload" for e in progress)
    assert any(e.unit == "documents" and e.done == 3000 and e.total == 3000 for e in progress)
    assert "Import change summary" in log_of(h, "import")
    assert h.engine.view().metrics["import.users.documents"] == 3000


def test_a_lost_finish_answer_is_adopted_not_imported_twice(tmp_path: Path, standin: ConvexStandIn) -> None:
    write_transformed(tmp_path, {"users": users(500)})
    standin.faults.drop_next["/api/import/finish_upload"] = 1
    h, outcome = run(tmp_path, IMPORT, standin)
    assert outcome == Outcome.DONE, h.engine.step_runtime("import").reason
    assert standin.faults.injected == {"dropped": 1}
    assert len(imports_of(standin, "users")) == 1
    assert standin.store.count("users") == 500
    assert "already started; following it" in log_of(h, "import")


@pytest.mark.parametrize("path", ["/api/import/upload_part", "/api/perform_import", "/api/import/start_upload"])
def test_other_lost_answers_are_retried_safely(tmp_path: Path, standin: ConvexStandIn, path: str) -> None:
    write_transformed(tmp_path, {"users": users(2000, pad=100)})
    standin.faults.drop_next[path] = 2
    body = step("import", "convex.import", 'connection = "v2"\ninput = "transformed"\npart_size = 65536')
    h, outcome = run(tmp_path, body, standin)
    assert outcome == Outcome.DONE, h.engine.step_runtime("import").reason
    assert standin.faults.injected == {"dropped": 2}
    assert standin.store.count("users") == 2000
    assert len({d["legacyId"] for d in standin.store.documents("users")}) == 2000


def test_require_empty_refuses_a_table_with_documents_and_replace_and_append_do_what_they_say(
    tmp_path: Path, standin: ConvexStandIn
) -> None:
    write_transformed(tmp_path, {"users": users(10)})
    standin.store.insert_many("users", [{"legacyId": "old1"}, {"legacyId": "old2"}])
    h, outcome = run(tmp_path, IMPORT, standin)
    assert outcome == Outcome.FAILED
    reason = h.engine.step_runtime("import").reason
    assert "requires the table 'users' to be empty, but it has 2 documents" in reason
    assert standin.store.count("users") == 2

    (tmp_path / "append").mkdir()
    body = step("import", "convex.import", 'connection = "v2"\ninput = "../transformed"\nmode = "append"')
    h, outcome = run(tmp_path / "append", body, standin)
    assert outcome == Outcome.DONE and standin.store.count("users") == 12

    (tmp_path / "replace").mkdir()
    h, outcome = run(tmp_path / "replace", body.replace('"append"', '"replace"'), standin)
    assert outcome == Outcome.DONE and standin.store.count("users") == 10
    assert {d["legacyId"] for d in standin.store.documents("users")} == {f"u{i:05d}" for i in range(10)}


def test_a_byte_order_mark_is_stripped_before_upload(tmp_path: Path, standin: ConvexStandIn) -> None:
    write_transformed(tmp_path, {"users": users(5)}, prefix=b"\xef\xbb\xbf")
    h, outcome = run(tmp_path, IMPORT, standin)
    assert outcome == Outcome.DONE, h.engine.step_runtime("import").reason
    assert standin.store.count("users") == 5


def test_a_failed_server_side_import_fails_the_step_with_the_servers_reason(
    tmp_path: Path, standin: ConvexStandIn
) -> None:
    out = write_transformed(tmp_path, {"users": users(3)})
    (out / "users.jsonl").write_bytes(b'{"legacyId": "a"}\n{"$bad": 1}\n')
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["tables"]["users"]["output_rows"] = 2
    write_manifest(out, manifest)
    h, outcome = run(tmp_path, IMPORT, standin)
    assert outcome == Outcome.FAILED
    assert (
        "users: the import failed: Hit an error while importing: line 2: Invalid field name '$bad'"
        in h.engine.step_runtime("import").reason
    )
    assert standin.store.count("users") == 0


def test_the_cli_method_passes_the_key_in_the_environment_and_reads_the_count(
    tmp_path: Path, standin: ConvexStandIn
) -> None:
    write_transformed(tmp_path, {"users": users(40), "cases": cases(25, 40)})
    command = json.dumps([convex_app(tmp_path)])
    body = step(
        "import", "convex.import", f'connection = "v2"\ninput = "transformed"\nmethod = "cli"\ncommand = {command}'
    )
    h, outcome = run(tmp_path, body, standin)
    assert outcome == Outcome.DONE, h.engine.step_runtime("import").reason
    assert standin.store.count("users") == 40 and standin.store.count("cases") == 25
    log = log_of(h, "import")
    assert 'Added 40 documents to table "users"' in log and "import --table cases --format jsonLines -y" in log
    assert standin.deploy_key not in log and standin.deploy_key.split("|")[1] not in log
    assert h.engine.view().metrics["import.cases.documents"] == 25


def test_the_cli_method_fails_when_the_cli_fails(tmp_path: Path, standin: ConvexStandIn) -> None:
    write_transformed(tmp_path, {"users": users(4)})
    standin.store.insert_many("users", [{"legacyId": "old"}])  # requireEmpty: the CLI refuses
    command = json.dumps([convex_app(tmp_path)])
    body = step(
        "import", "convex.import", f'connection = "v2"\ninput = "transformed"\nmethod = "cli"\ncommand = {command}'
    )
    h, outcome = run(tmp_path, body, standin)
    assert outcome == Outcome.FAILED
    assert "requires the table 'users' to be empty" in log_of(h, "import")
    reason = h.engine.step_runtime("import").reason
    assert reason.startswith("users: convex import failed: ") and "requires the table 'users' to be empty" in reason
    assert standin.store.count("users") == 1


@pytest.mark.parametrize(
    ("documents", "key", "reason"),
    [
        (
            [{"legacyId": "u1"}],
            "self-hosted-standin|not-the-key-0123",
            "users: convex import failed: BadAdminKey: The provided admin key was invalid for this instance",
        ),
        (
            [{"legacyId": "u1"}, {"legacyId": "u2", "meta": {"$bad": 1}}],
            None,
            "users: convex import failed: Hit an error while importing: line 2: Invalid field name '$bad'",
        ),
    ],
    ids=["a wrong key", "a document Convex refuses"],
)
def test_what_convex_refuses_through_its_cli_is_the_steps_reason_and_changes_nothing(
    tmp_path: Path, standin: ConvexStandIn, documents: list[dict[str, Any]], key: str | None, reason: str
) -> None:
    write_transformed(tmp_path, {"users": documents})
    command = json.dumps([convex_app(tmp_path)])
    body = step(
        "import", "convex.import", f'connection = "v2"\ninput = "transformed"\nmethod = "cli"\ncommand = {command}'
    )
    h, outcome = run(tmp_path, body, standin, deploy_key=key)
    assert outcome == Outcome.FAILED
    assert h.engine.step_runtime("import").reason.startswith(reason)
    for secret in (standin.deploy_key, key or standin.deploy_key):
        assert secret.split("|")[1] not in h.engine.step_runtime("import").reason + log_of(h, "import")
    assert standin.store.tables() == []


# -- convex.run --------------------------------------------------------------------------------------


def define_migration(standin: ConvexStandIn, table: str, calls: list[dict[str, Any]]) -> None:
    """A user's migration as `@convex-dev/migrations` runs it: a batch per call, a cursor between."""

    def migrate(store: DocumentStore, args: dict[str, Any]) -> dict[str, Any]:
        calls.append(dict(args))
        page = store.paginate(table, args.get("cursor"), int(args.get("batchSize", 10)))
        for doc in page.documents:
            store.patch(doc["_id"], {"migrated": True})
        return {"isDone": page.is_done, "continueCursor": page.continue_cursor, "processed": len(page.documents)}

    def status(store: DocumentStore, args: dict[str, Any]) -> list[dict[str, Any]]:
        done = sum(1 for d in store.documents(table) if d.get("migrated"))
        total = store.count(table)
        return [
            {
                "name": "migrations:setMigrated",
                "isDone": done == total,
                "processed": done,
                "state": "success" if done == total else "inProgress",
            }
        ]

    def broken(store: DocumentStore, args: dict[str, Any]) -> None:
        raise FunctionError("the data is not what this migration expects")

    standin.functions["migrations:run"] = ("mutation", True, migrate)
    standin.functions["migrations:getStatus"] = ("query", True, status)
    standin.functions["migrations:broken"] = ("mutation", True, broken)
    standin.functions["migrations:count"] = ("query", False, lambda store, args: {"count": store.count(table)})


def test_run_loops_while_the_cursor_is_not_done_and_checks_expect(tmp_path: Path, standin: ConvexStandIn) -> None:
    standin.store.insert_many("users", users(95))
    calls: list[dict[str, Any]] = []
    define_migration(standin, "users", calls)
    body = step(
        "migrate",
        "convex.run",
        'connection = "v2"\nfunction = "migrations:run"\n'
        "args = { batchSize = 10 }\nloop = true\nexpect = { isDone = true }",
    )
    h, outcome = run(tmp_path, body, standin)
    assert outcome == Outcome.DONE, h.engine.step_runtime("migrate").reason
    assert len(calls) == 10 and calls[0]["cursor"] is None and calls[1]["cursor"] is not None
    assert all(d.get("migrated") for d in standin.store.documents("users"))
    assert "done after 10 calls" in log_of(h, "migrate")
    assert {e.label for e in h.of_type(StepProgress) if e.step_id == "migrate"} == {"migrations:run"}


def test_run_polls_a_status_function_and_shows_its_progress(tmp_path: Path, standin: ConvexStandIn) -> None:
    standin.store.insert_many("users", users(30))
    define_migration(standin, "users", [])
    body = step(
        "migrate",
        "convex.run",
        'connection = "v2"\nfunction = "migrations:run"\n'
        "args = { batchSize = 30 }\n"
        '[step.with.status]\nfunction = "migrations:getStatus"\nselect = "0"\nevery = "100ms"\ntotal = 30',
    )
    h, outcome = run(tmp_path, body, standin)
    assert outcome == Outcome.DONE, h.engine.step_runtime("migrate").reason
    assert "migrations:getStatus: state success, processed 30" in log_of(h, "migrate")
    assert any(e.done == 30 and e.total == 30 for e in h.of_type(StepProgress) if e.step_id == "migrate")


def test_run_fails_with_the_functions_error_and_with_an_unmet_expect(tmp_path: Path, standin: ConvexStandIn) -> None:
    define_migration(standin, "users", [])
    body = step("broken", "convex.run", 'connection = "v2"\nfunction = "migrations:broken"')
    body += step(
        "expect",
        "convex.run",
        'connection = "v2"\nfunction = "migrations:count"\ntype = "query"\nexpect = { count = 5 }',
    )
    h, outcome = run(tmp_path, body, standin)
    assert outcome == Outcome.FAILED
    assert (
        "migrations:broken: Uncaught Error: the data is not what this migration expects"
        in h.engine.step_runtime("broken").reason
    )
    assert h.engine.step_runtime("expect").reason == "count is 0, expected 5"


# -- convex.resolve_refs -----------------------------------------------------------------------------

MAPPING = """
[table."auth.users"]
target = "users"

[table."public.cases"]
target = "cases"
references = { user_id = "users" }
"""


def record_resolve_calls(standin: ConvexStandIn) -> list[dict[str, Any]]:
    """Each call of resolveRefs: its arguments and, under "answer", what it returned."""
    return wrap_function(standin, "cockpit:resolveRefs")


RESOLVE = step(
    "resolve", "convex.resolve_refs", 'connection = "v2"\nmapping = "mapping.toml"\ntransformed = "transformed"'
)


@pytest.mark.parametrize(("pad", "batch"), [(0, 100), (3000, 50), (20000, 25)])
def test_resolve_sizes_its_batches_by_the_documents_size(
    tmp_path: Path, standin: ConvexStandIn, pad: int, batch: int
) -> None:
    (tmp_path / "mapping.toml").write_text(MAPPING)
    tables = {"users": users(20), "cases": cases(260, 20, pad=pad)}
    write_transformed(tmp_path, tables)
    for table, documents in tables.items():
        standin.store.insert_many(table, documents)
    calls = record_resolve_calls(standin)
    h, outcome = run(tmp_path, RESOLVE, standin)
    assert outcome == Outcome.DONE, h.engine.step_runtime("resolve").reason
    assert {c["numItems"] for c in calls} == {batch}
    # One bar per reference, named the same at every page (a label that changes makes a new bar).
    assert {e.label for e in h.of_type(StepProgress) if e.step_id == "resolve"} == {"cases.userId"}
    ids = {d["legacyId"]: d["_id"] for d in standin.store.documents("users")}
    for doc in standin.store.documents("cases"):
        assert doc["userId"] == ids[doc["legacyUserId"]]


def test_resolve_fails_on_missing_targets_unless_allowed_and_a_rerun_writes_nothing(
    tmp_path: Path, standin: ConvexStandIn
) -> None:
    (tmp_path / "mapping.toml").write_text(MAPPING)
    tables = {"users": users(10), "cases": cases(50, 12)}  # u00010 and u00011 were never imported
    write_transformed(tmp_path, tables)
    for table, documents in tables.items():
        standin.store.insert_many(table, documents)
    h, outcome = run(tmp_path, RESOLVE, standin)
    assert outcome == Outcome.FAILED
    assert "8 references name a document that is not in v2" in h.engine.step_runtime("resolve").reason
    assert h.engine.view().metrics["resolve.missing"] == 8

    (tmp_path / "again").mkdir()
    (tmp_path / "again" / "mapping.toml").write_text(MAPPING)
    calls = record_resolve_calls(standin)
    body = RESOLVE.replace('"transformed"', '"../transformed"').replace(
        "\n[step.with]\n", "\n[step.with]\nmax_missing = 8\n"
    )
    h, outcome = run(tmp_path / "again", body, standin)
    assert outcome == Outcome.DONE, h.engine.step_runtime("resolve").reason
    assert sum(c["answer"]["resolved"] for c in calls) == 0  # every page again, nothing written twice
    assert sum(c["answer"]["skipped"] for c in calls) == 42
    assert sum(c["answer"]["missing"] for c in calls) == 8
    assert "cases.userId: 0 resolved, 8 not found" in log_of(h, "resolve")


def test_resolve_into_a_table_that_is_not_in_v2_shows_convexs_refusal_and_writes_nothing(
    tmp_path: Path, standin: ConvexStandIn
) -> None:
    (tmp_path / "mapping.toml").write_text(MAPPING)
    write_transformed(tmp_path, {"users": users(5), "cases": cases(20, 5)})
    standin.store.insert_many("cases", cases(20, 5))  # users was never imported
    h, outcome = run(tmp_path, RESOLVE, standin)
    assert outcome == Outcome.FAILED
    reason = h.engine.step_runtime("resolve").reason
    assert "cases.userId: cockpit:resolveRefs: Uncaught Error: Index users.by_legacy_id not found." in reason
    assert "there is no table users in this deployment" in reason
    assert not any("userId" in doc for doc in standin.store.documents("cases"))
