"""The Convex stand-in answers Convex's own HTTP client (`ConvexHttpClient` of the `convex` npm
package, which no one here wrote) as Convex does: positional arguments, encoded values, argument
validation, and both answer formats."""

from __future__ import annotations

import base64
import json
import math
import struct
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from convex_official import convex_app, convex_import, official
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from cockpit.sandbox.convex.server import ConvexStandIn
from cockpit.sandbox.convex.values import Int64
from steps.convex.client import ConvexClient

pytestmark = pytest.mark.integration


@pytest.fixture
def cases(tmp_path: Path) -> Any:
    standin = ConvexStandIn(tmp_path / "convex").start()
    standin.store.insert_many("cases", [{"legacyId": "a", "status": "open"}, {"legacyId": "b", "status": "filed"}])
    try:
        yield standin
    finally:
        standin.stop()


def test_the_official_client_calls_a_shipped_function_with_its_positional_arguments(cases: ConvexStandIn) -> None:
    outcome = official(cases, "query", "cockpit:countPage", {"table": "cases", "cursor": None, "numItems": 10})
    assert outcome["ok"], outcome
    assert outcome["value"]["count"] == 2 and outcome["value"]["isDone"] is True
    grouped = official(
        cases, "query", "cockpit:aggregatePage", {"table": "cases", "groupBy": "status", "cursor": None, "numItems": 10}
    )
    assert grouped["value"]["groups"] == {"open": {"count": 1, "sum": 0}, "filed": {"count": 1, "sum": 0}}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            {"table": "cases", "cursor": None, "numItems": {"$bigint": "10"}},
            "ArgumentValidationError: Value does not match validator.\nPath: .numItems\nValue: 10n\n"
            "Validator: v.float64()",
        ),
        (
            {"table": 5, "cursor": None, "numItems": 10},
            "ArgumentValidationError: Value does not match validator.\nPath: .table\nValue: 5\nValidator: v.string()",
        ),
        ({"cursor": None, "numItems": 10}, "ArgumentValidationError: Object is missing the required field `table`."),
        (
            {"table": "cases", "cursor": None, "numItems": 10, "limit": 3},
            "ArgumentValidationError: Object contains extra field `limit` that is not in the validator.",
        ),
    ],
)
def test_arguments_a_validator_refuses_are_answered_as_convex_answers_them(
    cases: ConvexStandIn, args: dict[str, Any], message: str
) -> None:
    outcome = official(cases, "query", "cockpit:countPage", args)
    assert not outcome["ok"], outcome
    assert outcome["message"].startswith(message), outcome["message"]
    assert "Uncaught" not in outcome["message"] and "TypeError" not in outcome["message"]


def test_an_int64_answer_comes_back_in_the_form_each_format_asks_for(cases: ConvexStandIn) -> None:
    cases.functions["tests:int64"] = ("query", False, lambda store, args: {"n": Int64(2**53 + 1), "f": 1.5})
    outcome = official(cases, "query", "tests:int64", {})
    assert outcome == {"ok": True, "value": {"n": f"{2**53 + 1}n", "f": 1.5}}  # a bigint, exact
    headers = {"Authorization": f"Convex {cases.deploy_key}"}
    plain = httpx.post(
        f"{cases.url}/api/query", json={"path": "tests:int64", "args": {}, "format": "json"}, headers=headers
    )
    assert plain.json()["value"] == {"n": str(2**53 + 1), "f": 1.5}  # Convex's JSON export form
    encoded = httpx.post(
        f"{cases.url}/api/query",
        json={"path": "tests:int64", "args": [{}], "format": "convex_encoded_json"},
        headers=headers,
    )
    packed = base64.b64encode(struct.pack("<q", 2**53 + 1)).decode()
    assert encoded.json()["value"] == {"n": {"$integer": packed}, "f": 1.5}


def test_the_cockpits_client_reads_a_shipped_functions_answer(cases: ConvexStandIn) -> None:
    client = ConvexClient(cases.url, cases.deploy_key)
    try:
        value = client.call("query", "cockpit:countPage", {"table": "cases", "cursor": None, "numItems": 10})
    finally:
        client.close()
    assert value["count"] == 2 and value["isDone"] is True


def test_a_json_lines_import_reads_numbers_as_float64_and_refuses_field_names_at_any_depth(
    cases: ConvexStandIn,
) -> None:
    headers = {"Authorization": f"Convex {cases.deploy_key}"}

    def once(table: str, lines: list[str]) -> httpx.Response:
        body = "\n".join(lines).encode()
        query = {"tableName": table, "format": "jsonLines", "mode": "requireEmpty"}
        return httpx.post(f"{cases.url}/api/import", params=query, content=body, headers=headers)

    assert once("numbers", ['{"legacyId": "x", "big": 9007199254740993, "small": 7}']).status_code == 200
    (document,) = cases.store.documents("numbers")
    assert document["big"] == 2**53 and document["small"] == 7  # float64: 2^53 + 1 is 2^53
    for name in ("$integer", "é", "tab\there", "", "_hidden"):
        refused = once("names", [json.dumps({"legacyId": "y", "nested": {name: 1}})])
        assert refused.status_code == 400 and "Invalid field name" in refused.json()["message"], (name, refused.text)
    assert cases.store.count("names") == 0


def test_the_official_cli_imports_and_follows_the_import_over_the_sync_websocket(
    cases: ConvexStandIn, tmp_path: Path
) -> None:
    project = tmp_path / "app"
    convex_app(project)
    (project / "users.jsonl").write_text("".join(f'{{"legacyId": "u{n}", "n": {n}}}\n' for n in range(50)))
    # No -y: an import that deletes nothing asks no confirmation, as on Convex.
    result = convex_import(project, cases, "--table", "users", "users.jsonl")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert 'Added 50 documents to table "users"' in result.stdout + result.stderr
    assert cases.store.count("users") == 50
    assert any(r.startswith("GET /api/") and r.endswith("/sync") for r in cases.requests)
    assert "POST /api/perform_import" in cases.requests and "POST /api/import" not in cases.requests


def test_the_official_cli_imports_a_zip_snapshot(cases: ConvexStandIn, tmp_path: Path) -> None:
    project = tmp_path / "app"
    convex_app(project)
    with zipfile.ZipFile(project / "snapshot.zip", "w") as archive:
        archive.writestr("_tables/documents.jsonl", '{"name": "people", "id": 10001}\n{"name": "pets", "id": 10002}\n')
        archive.writestr("people/documents.jsonl", "".join(f'{{"legacyId": "p{n}"}}\n' for n in range(7)))
        archive.writestr("pets/documents.jsonl", '{"legacyId": "cat"}\n{"legacyId": "dog"}\n')
        archive.writestr("_storage/documents.jsonl", "")
    result = convex_import(project, cases, "snapshot.zip")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert cases.store.count("people") == 7 and cases.store.count("pets") == 2
    assert "_tables" not in cases.store.tables() and "_storage" not in cases.store.tables()


def test_the_cockpits_client_keeps_int64_bytes_and_the_floats_json_cannot_write(cases: ConvexStandIn) -> None:
    edge = {"big": Int64(2**53 + 1), "negative": Int64(-(2**63)), "nan": math.nan, "inf": -math.inf, "zero": -0.0}
    cases.functions["tests:edges"] = ("query", False, lambda store, args: {**edge, "raw": b"\x00\xff"})
    client = ConvexClient(cases.url, cases.deploy_key)
    try:
        value = client.query("tests:edges")
    finally:
        client.close()
    assert value["big"] == 2**53 + 1 and type(value["big"]) is int
    assert value["negative"] == -(2**63)
    assert math.isnan(value["nan"]) and value["inf"] == -math.inf
    assert value["zero"] == 0 and math.copysign(1, value["zero"]) < 0
    assert value["raw"] == b"\x00\xff"
    # The same answer through ConvexHttpClient: the values the cockpit reads are Convex's.
    outcome = official(cases, "query", "tests:edges", {})
    assert outcome["ok"] and outcome["value"]["big"] == f"{2**53 + 1}n"


def test_the_official_cli_refuses_a_second_import_into_a_full_table_and_replaces_or_appends_when_told(
    cases: ConvexStandIn, tmp_path: Path
) -> None:
    project = tmp_path / "app"
    convex_app(project)
    (project / "users.jsonl").write_text("".join(f'{{"legacyId": "u{n}"}}\n' for n in range(5)))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return convex_import(project, cases, "--table", "users", *args, "users.jsonl")

    assert cli().returncode == 0 and cases.store.count("users") == 5
    refused = cli()  # requireEmpty, the default
    assert refused.returncode != 0
    assert "requires the table 'users' to be empty" in refused.stdout + refused.stderr
    assert cases.store.count("users") == 5  # nothing changed
    appended = cli("--append")
    assert appended.returncode == 0 and cases.store.count("users") == 10
    replaced = cli("--replace", "-y")  # deletes documents: Convex asks, -y answers
    assert replaced.returncode == 0, replaced.stdout[-1500:] + replaced.stderr[-1500:]
    assert cases.store.count("users") == 5
    assert "delete" in replaced.stdout + replaced.stderr


def test_every_function_of_convex_cockpit_ts_answers_both_clients_alike(tmp_path: Path) -> None:
    """Each function the cockpit ships, called through ConvexHttpClient and through the cockpit's
    own client with the same arguments, page after page: the values must be the same. The one
    mutation runs on two copies of the same table, one for each client."""
    standin = ConvexStandIn(tmp_path / "convex").start()
    people = [
        {"legacyId": f"u{n}", "email": f"u{n}@example.com", "score": n / 3, "profile": {"tags": ["a", n]}}
        for n in range(5)
    ]
    standin.store.insert_many("users", people)
    gone = "k57" + "0" * 29  # an id no document has: a dangling reference
    cases = [
        {"legacyId": f"c{n}", "legacyUserId": f"u{n % 6}", "status": ["open", "filed"][n % 2], "amount": n * 1.25}
        for n in range(8)  # u5 was never imported: missing
    ]
    cases += [
        {"legacyId": "c8", "status": None, "amount": "n/a"},
        {"legacyId": "c9", "legacyUserId": "u1", "userId": gone},
    ]
    standin.store.insert_many("cases", cases)
    standin.store.insert_many("casesCopy", cases)
    cockpit = ConvexClient(standin.url, standin.deploy_key)

    def both(kind: str, path: str, args: dict[str, Any], mine: dict[str, Any] | None = None) -> tuple[Any, Any]:
        """The value through ConvexHttpClient, and through the cockpit's client (with `mine` as
        its arguments, when they differ)."""
        outcome = official(standin, kind, path, args)
        assert outcome["ok"], outcome
        return outcome["value"], cockpit.call(kind, path, args if mine is None else mine)

    def pages(kind: str, path: str, args: dict[str, Any], copy: str | None = None) -> list[Any]:
        """Every page of a paged function, each answer the same from both clients; with `copy`,
        the cockpit's client reads that table instead, page by page with its own cursor."""
        answers, theirs_cursor, mine_cursor = [], None, None
        while True:
            theirs_args = {**args, "cursor": theirs_cursor, "numItems": 3}
            mine_args = {**theirs_args, "cursor": mine_cursor, **({"table": copy} if copy else {})}
            theirs, mine = both(kind, path, theirs_args, mine_args)
            theirs_cursor, mine_cursor = theirs.pop("continueCursor"), mine.pop("continueCursor")
            assert isinstance(theirs_cursor, str) and isinstance(mine_cursor, str)
            if not copy:
                assert theirs_cursor == mine_cursor
            assert theirs == mine, (path, args, theirs, mine)
            answers.append(theirs)
            if theirs["isDone"]:
                return answers

    try:
        span, mine = both("query", "cockpit:timeSpan", {"table": "cases"})
        assert span == mine and span["first"] < span["last"]
        assert both("query", "cockpit:timeSpan", {"table": "nothing"}) == ({"first": None, "last": None},) * 2

        counted = pages("query", "cockpit:countPage", {"table": "cases"})
        assert [page["count"] for page in counted] == [3, 3, 3, 1]
        share = {"from": span["first"], "before": span["last"]}  # all but the last document
        assert sum(page["count"] for page in pages("query", "cockpit:countPage", {"table": "cases", **share})) == 9

        found, mine = both("query", "cockpit:byLegacyIds", {"table": "users", "legacyIds": ["u3", "nobody", "u1"]})
        assert found == mine and [d["legacyId"] for d in found] == ["u3", "u1"]
        assert found[0]["score"] == 1.0 and found[1]["profile"] == {"tags": ["a", 1]}
        assert set(found[0]) == {"_id", "_creationTime", "legacyId", "email", "score", "profile"}

        reference = {"legacyField": "legacyUserId", "idField": "userId", "target": "users"}
        resolved = pages("mutation", "cockpit:resolveRefs", {"table": "cases", **reference}, copy="casesCopy")
        totals = {k: sum(page[k] for page in resolved) for k in ("processed", "resolved", "missing", "skipped")}
        assert totals == {"processed": 10, "resolved": 7, "missing": 1, "skipped": 2}
        ids = {d["legacyId"]: d["_id"] for d in standin.store.documents("users")}
        for table in ("cases", "casesCopy"):
            assert {d["legacyId"]: d.get("userId") for d in standin.store.documents(table)}["c1"] == ids["u1"]

        checked = pages("query", "cockpit:checkRefs", {"table": "cases", **reference})
        totals = {k: sum(page[k] for page in checked) for k in ("checked", "unresolved", "dangling")}
        assert totals == {"checked": 9, "unresolved": 1, "dangling": 1}

        grouped = pages("query", "cockpit:aggregatePage", {"table": "cases", "groupBy": "status", "sum": "amount"})
        groups: dict[str, list[float]] = {}
        for page in grouped:
            for name, group in page["groups"].items():
                groups.setdefault(name, [0, 0])
                groups[name] = [groups[name][0] + group["count"], groups[name][1] + group["sum"]]
        assert groups == {"open": [4, 15.0], "filed": [4, 20.0], "null": [2, 0]}
        one_group = pages("query", "cockpit:aggregatePage", {"table": "cases", **share})
        assert sum(page["groups"][""]["count"] for page in one_group) == 9
    finally:
        cockpit.close()
        standin.stop()


# -- bad input, through the official clients ------------------------------------------------------------

WRONG_KEY = "self-hosted-standin|0123456789abcdef"


def test_a_wrong_admin_key_is_refused_to_each_official_client_as_convex_refuses_it(
    cases: ConvexStandIn, tmp_path: Path
) -> None:
    refused = official(
        cases, "query", "cockpit:countPage", {"table": "cases", "cursor": None, "numItems": 5}, key=WRONG_KEY
    )
    assert not refused["ok"]
    assert (
        refused["message"] == '{"code":"BadAdminKey","message":"The provided admin key was invalid for this instance"}'
    )
    project = tmp_path / "app"
    convex_app(project)
    (project / "users.jsonl").write_text('{"legacyId": "u1"}\n')
    result = convex_import(project, cases, "--table", "users", "users.jsonl", key=WRONG_KEY)
    assert result.returncode != 0
    assert "BadAdminKey" in result.stderr and "invalid for this instance" in result.stderr
    assert cases.store.tables() == ["cases"]  # nothing imported
    # Over the sync WebSocket the key travels inside the protocol, and is refused there.
    with connect(cases.url.replace("http://", "ws://") + "/api/1.48.0/sync") as sync:
        sync.send(json.dumps({"type": "Connect", "sessionId": "s", "connectionCount": 0, "lastCloseReason": None}))
        sync.send(json.dumps({"type": "Authenticate", "tokenType": "Admin", "value": WRONG_KEY, "baseVersion": 0}))
        answer = json.loads(sync.recv(timeout=10))
        assert answer["type"] == "AuthError"
        assert answer["error"] == "The provided admin key was invalid for this instance"
        with pytest.raises(ConnectionClosed):  # and closes the connection, as Convex does
            sync.recv(timeout=10)
    with connect(cases.url.replace("http://", "ws://") + "/api/1.48.0/sync") as sync:
        sync.send(json.dumps({"type": "Connect", "sessionId": "s", "connectionCount": 1, "lastCloseReason": None}))
        sync.send(
            json.dumps({"type": "Authenticate", "tokenType": "Admin", "value": cases.deploy_key, "baseVersion": 0})
        )
        assert json.loads(sync.recv(timeout=10))["type"] == "Transition"


def test_an_unknown_table_is_answered_as_convex_answers_it(cases: ConvexStandIn) -> None:
    # A scan of a table that does not exist finds nothing; a read through one of its indexes
    # (by_legacy_id, or by_creation_time for a share) is Convex's IndexNotFoundError.
    scanned = official(cases, "query", "cockpit:countPage", {"table": "nope", "cursor": None, "numItems": 5})
    assert scanned["ok"] and scanned["value"]["count"] == 0 and scanned["value"]["isDone"] is True
    looked_up = official(cases, "query", "cockpit:byLegacyIds", {"table": "nope", "legacyIds": ["a"]})
    assert not looked_up["ok"]
    assert "Uncaught Error: Index nope.by_legacy_id not found." in looked_up["message"]
    shared = official(
        cases, "query", "cockpit:countPage", {"table": "nope", "cursor": None, "numItems": 5, "from": 0, "before": 1e15}
    )
    assert "Uncaught Error: Index nope.by_creation_time not found." in shared["message"]
    resolving = official(
        cases,
        "mutation",
        "cockpit:resolveRefs",
        {
            "table": "cases",
            "legacyField": "legacyId",
            "idField": "ownId",
            "target": "nope",
            "cursor": None,
            "numItems": 5,
        },
    )
    assert "Uncaught Error: Index nope.by_legacy_id not found." in resolving["message"]
    assert not any("ownId" in doc for doc in cases.store.documents("cases"))  # the mutation wrote nothing


def test_a_document_convex_refuses_fails_the_official_cli_and_imports_nothing(
    cases: ConvexStandIn, tmp_path: Path
) -> None:
    project = tmp_path / "app"
    convex_app(project)
    (project / "users.jsonl").write_text('{"legacyId": "u1"}\n{"legacyId": "u2", "meta": {"$bad": 1}}\n')
    result = convex_import(project, cases, "--table", "users", "users.jsonl")
    assert result.returncode != 0
    said = result.stdout + result.stderr
    assert 'Importing data from "users.jsonl" to table "users" failed' in said
    assert "line 2: Invalid field name '$bad'" in said
    assert cases.store.count("users") == 0


def test_the_official_client_reads_a_migration_dry_run_as_a_convex_error_with_its_data(cases: ConvexStandIn) -> None:
    migration = {
        "version": "001",
        "name": "close_open",
        "checksum": "sha256:1",
        "appliedBy": "ops",
        "operations": [
            {"type": "update", "table": "cases", "where": {"status": "open"}, "set": {"status": "closed"},
             "original": {"status": "open"}},
        ],
    }  # fmt: skip
    dry = official(cases, "mutation", "cockpitMigrations:apply", {**migration, "dryRun": True})
    assert dry["ok"] is False and dry["error"] == "ConvexError"
    assert dry["data"] == {"dryRun": {"applied": True, "inserted": 0, "updated": 1, "deleted": 0}}
    assert official(cases, "query", "cockpitMigrations:applied", {})["value"] == []
    applied = official(cases, "mutation", "cockpitMigrations:apply", migration)
    assert applied["value"] == {"applied": True, "inserted": 0, "updated": 1, "deleted": 0}
    [record] = official(cases, "query", "cockpitMigrations:applied", {})["value"]
    assert (record["version"], record["checksum"], record["appliedBy"]) == ("001", "sha256:1", "ops")
    refused = official(cases, "mutation", "cockpitMigrations:apply", {**migration, "dryRun": "yes"})
    assert refused["ok"] is False and "Path: .dryRun" in refused["message"]
