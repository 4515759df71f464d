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
from conftest import ROOT, subprocess_env

from cockpit.sandbox.convex.server import ConvexStandIn
from cockpit.sandbox.convex.values import Int64
from steps.convex.client import ConvexClient

pytestmark = pytest.mark.integration

CLIENTS = ROOT / "tests" / "convex_clients"


def official(standin: ConvexStandIn, kind: str, path: str, args: dict[str, Any]) -> dict[str, Any]:
    """One call through ConvexHttpClient, in Node; its outcome as call.mjs prints it."""
    assert (CLIENTS / "node_modules" / "convex").is_dir(), "run `make convex-clients` (npm ci) first"
    result = subprocess.run(
        ["node", str(CLIENTS / "call.mjs"), standin.url, standin.deploy_key, kind, path, json.dumps(args)],
        cwd=CLIENTS,
        env={**subprocess_env(), "CI": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    outcome: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return outcome


def convex_app(tmp_path: Path) -> Path:
    """A Convex app's folder, as the CLI wants to be run from: a package.json, and the pinned
    `convex` package in node_modules."""
    project = tmp_path / "app"
    project.mkdir()
    (project / "package.json").write_text('{"name": "app", "private": true, "dependencies": {"convex": "1.48.0"}}')
    (project / "node_modules").symlink_to(CLIENTS / "node_modules")
    return project


def cli_env(standin: ConvexStandIn) -> dict[str, str]:
    """The CLI's environment for a self-hosted deployment: the stand-in's URL and admin key."""
    return {
        **subprocess_env(),
        "CI": "1",
        "CONVEX_SELF_HOSTED_URL": standin.url,
        "CONVEX_SELF_HOSTED_ADMIN_KEY": standin.deploy_key,
    }


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
    project = convex_app(tmp_path)
    (project / "users.jsonl").write_text("".join(f'{{"legacyId": "u{n}", "n": {n}}}\n' for n in range(50)))
    env = cli_env(cases)
    # No -y: an import that deletes nothing asks no confirmation, as on Convex.
    result = subprocess.run(
        [str(CLIENTS / "node_modules" / ".bin" / "convex"), "import", "--table", "users", "users.jsonl"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert 'Added 50 documents to table "users"' in result.stdout + result.stderr
    assert cases.store.count("users") == 50
    assert any(r.startswith("GET /api/") and r.endswith("/sync") for r in cases.requests)
    assert "POST /api/perform_import" in cases.requests and "POST /api/import" not in cases.requests


def test_the_official_cli_imports_a_zip_snapshot(cases: ConvexStandIn, tmp_path: Path) -> None:
    project = convex_app(tmp_path)
    with zipfile.ZipFile(project / "snapshot.zip", "w") as archive:
        archive.writestr("_tables/documents.jsonl", '{"name": "people", "id": 10001}\n{"name": "pets", "id": 10002}\n')
        archive.writestr("people/documents.jsonl", "".join(f'{{"legacyId": "p{n}"}}\n' for n in range(7)))
        archive.writestr("pets/documents.jsonl", '{"legacyId": "cat"}\n{"legacyId": "dog"}\n')
        archive.writestr("_storage/documents.jsonl", "")
    env = cli_env(cases)
    result = subprocess.run(
        [str(CLIENTS / "node_modules" / ".bin" / "convex"), "import", "snapshot.zip"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
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
    project = convex_app(tmp_path)
    (project / "users.jsonl").write_text("".join(f'{{"legacyId": "u{n}"}}\n' for n in range(5)))
    env = cli_env(cases)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CLIENTS / "node_modules" / ".bin" / "convex"), "import", "--table", "users", *args, "users.jsonl"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

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
