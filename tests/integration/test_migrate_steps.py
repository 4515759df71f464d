"""The step kinds `convex.migrate` and `sync` in a runbook, and the fallback: a connection with
`enabled = "${USE_CONVEX}"` false skips every step that targets it (the reason journaled),
while `convex.migrate` migrates PostgreSQL alone; switched on again, Convex catches up."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import COCKPIT, subprocess_env
from datapath import MAPPING
from test_migrate import MIGRATIONS

from cockpit.sandbox.convex.server import ConvexStandIn

pytestmark = pytest.mark.integration

RUNBOOK = """[runbook]
name = "Migrations and sync"
t0 = 2026-12-05T23:00:00-05:00
window = "30m"

[connections.v1]
kind = "postgres"
dsn = "${DATABASE_URL}"

[connections.v2]
kind = "convex"
url = "${CONVEX_URL}"
deploy_key = "${CONVEX_DEPLOY_KEY}"
enabled = "${USE_CONVEX}"

[[phase]]
id = "prep"
at = "T-2d"

[[phase]]
id = "window"
at = "T-0"
window = true

[[step]]
id = "migrate"
phase = "prep"
kind = "convex.migrate"
with = { postgres = "v1", convex = "v2", migrations = "migrations" }

[[step]]
id = "sync"
phase = "window"
kind = "sync"
with = { source = "v1", target = "v2", mapping = "mapping.toml", tables = ["users", "cases"] }

[[step]]
id = "count"
phase = "window"
kind = "convex.run"
needs = ["sync"]
with = { connection = "v2", function = "cockpit:countPage", type = "query", args = { table = "cases", cursor = "", numItems = 10 } }
"""  # noqa: E501


def _project(folder: Path) -> Path:
    (folder / "runbook.toml").write_text(RUNBOOK)
    (folder / "mapping.toml").write_text(MAPPING)
    (folder / "migrations").mkdir()
    for stem, body in MIGRATIONS.items():
        version, name = stem.split("_", 1)
        text = json.dumps({"version": version, "name": name, **body}, indent=2)
        (folder / "migrations" / f"{stem}.json").write_text(text)
    return folder


def _run(folder: Path, dsn: str, standin: ConvexStandIn, use_convex: str, *extra: str) -> dict[str, Any]:
    env = {"DATABASE_URL": dsn, "CONVEX_URL": standin.url, "CONVEX_DEPLOY_KEY": standin.deploy_key}
    env["USE_CONVEX"] = use_convex
    done = subprocess.run(
        [COCKPIT, "run", "runbook.toml", "--headless", "--rehearsal", *extra],
        cwd=folder, capture_output=True, text=True, timeout=300, env=subprocess_env(**env),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    status = subprocess.run(
        [COCKPIT, "status", "runbook.toml", "--json"], cwd=folder, capture_output=True, text=True,
        timeout=60, env=subprocess_env(**env),
    )  # fmt: skip
    document: dict[str, Any] = json.loads(status.stdout)
    return document


def _versions(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT version FROM cockpit_migrations ORDER BY version")]


def test_with_convex_switched_off_its_steps_are_skipped_and_postgres_alone_migrates(
    tmp_path: Path, perm_dsn: str, standin: ConvexStandIn
) -> None:
    folder = _project(tmp_path)
    off = _run(folder, perm_dsn, standin, "false")
    steps = off["steps"]
    assert steps["migrate"]["state"] == "succeeded"
    assert steps["sync"]["state"] == "skipped"
    assert steps["sync"]["note"] == "connection 'v2' is switched off (enabled = false)"
    assert steps["count"]["state"] == "skipped"
    assert _versions(perm_dsn) == ["001", "002", "003"] and standin.store.count("cockpit_migrations") == 0
    assert standin.store.count("cases") == 0

    on = _run(folder, perm_dsn, standin, "true", "--new")
    assert [on["steps"][s]["state"] for s in ("migrate", "sync", "count")] == ["succeeded"] * 3
    assert standin.store.count("cockpit_migrations") == 3 and standin.store.count("cases") == 1000
    assert {d["email"]: d.get("role") for d in standin.store.documents("users")}["admin@x.test"] == "owner"


def test_check_reads_the_migrations_of_a_step(tmp_path: Path) -> None:
    folder = _project(tmp_path)
    (folder / "migrations" / "005_skipped.json").write_text('{"version": "005", "name": "skipped"}')
    done = subprocess.run(
        [COCKPIT, "check", "runbook.toml"], cwd=folder, capture_output=True, text=True, timeout=60,
        env=subprocess_env(),
    )  # fmt: skip
    assert done.returncode == 2
    assert "005_skipped.json" in done.stderr and "out of sequence: 004 comes first" in done.stderr


def test_check_refuses_a_sync_of_a_table_the_mapping_lacks(tmp_path: Path) -> None:
    folder = _project(tmp_path)
    runbook = folder / "runbook.toml"
    runbook.write_text(runbook.read_text().replace('tables = ["users", "cases"]', 'tables = ["users", "invoices"]'))
    done = subprocess.run(
        [COCKPIT, "check", "runbook.toml"], cwd=folder, capture_output=True, text=True, timeout=60,
        env=subprocess_env(),
    )  # fmt: skip
    assert done.returncode == 2
    assert "step 'sync' (sync)" in done.stderr
    assert "tables: the mapping mapping.toml has no table invoices" in done.stderr
