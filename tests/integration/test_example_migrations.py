"""The example's migrations (migrations/) as runbook.toml uses them, against a real PostgreSQL
seeded as v1 and the Convex stand-in: applied at T-2d, the bulk load and its first sync at
T-1d, users' changes, then the window's sync. Every document v2 then holds is as the
migrations declare (`cockpit migrate status` checks them), v1 has the indexes the sync reads
by, and a rollback takes them away again."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import COCKPIT, copy_example, subprocess_env

from cockpit.journal import Journal
from cockpit.sandbox.convex.server import ConvexStandIn

pytestmark = pytest.mark.integration

# The steps of runbook.toml's T-2d and T-1d phases and the window's sync, over two connections.
PLAN = """[runbook]
name = "The example's schema, bulk load and sync"
t0 = 2026-12-05T23:00:00-05:00
window = "30m"

[connections.v1]
kind = "postgres"
dsn = "${DATABASE_URL}"

[connections.v2]
kind = "convex"
url = "${CONVEX_URL}"
deploy_key = "${CONVEX_DEPLOY_KEY}"

[[phase]]
id = "schema"
at = "T-2d"

[[phase]]
id = "bulk-load"
at = "T-1d"

[[step]]
id = "migrate"
phase = "schema"
kind = "convex.migrate"
with = { postgres = "v1", convex = "v2", migrations = "migrations" }

[[step]]
id = "export"
phase = "bulk-load"
kind = "postgres.export"
with = { connection = "v1", out = "export", tables = ["auth.users", "public.cases", "public.user_settings", "public.user_preferences", "public.notifications"] }

[[step]]
id = "transform"
phase = "bulk-load"
kind = "transform"
needs = ["export"]
with = { mapping = "migration/perm-mapping.toml", input = "export", out = "transformed" }

[[step]]
id = "import"
phase = "bulk-load"
kind = "convex.import"
needs = ["transform", "migrate"]
with = { connection = "v2", input = "transformed", mode = "requireEmpty" }

[[step]]
id = "resolve"
phase = "bulk-load"
kind = "convex.resolve_refs"
needs = ["import"]
with = { connection = "v2", mapping = "migration/perm-mapping.toml", transformed = "transformed" }

[[step]]
id = "sync-baseline"
phase = "bulk-load"
kind = "sync"
needs = ["resolve"]
with = { source = "v1", target = "v2", mapping = "migration/perm-mapping.toml" }
"""  # noqa: E501

WINDOW_SYNC = PLAN.split("[[step]]")[0].replace('id = "bulk-load"\nat = "T-1d"', 'id = "window"\nat = "T-0"') + (
    '[[step]]\nid = "sync"\nphase = "window"\nkind = "sync"\n'
    'with = { source = "v1", target = "v2", mapping = "migration/perm-mapping.toml" }\n'
)

MIGRATE_TOML = """\
migrations = "migrations"
default = "sandbox"

[environments.sandbox]
postgres = { dsn = "${DATABASE_URL}" }
convex = { url = "${CONVEX_URL}", deploy_key = "${CONVEX_DEPLOY_KEY}" }
"""

V1_INDEXES = ["cases_updated_at", "user_preferences_updated_at", "user_settings_updated_at"]


def _cockpit(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [COCKPIT, *args], cwd=folder, capture_output=True, text=True, timeout=300, env=subprocess_env(**env)
    )


def _step_log(folder: Path, env: dict[str, str], runbook: str, step_id: str) -> str:
    return _cockpit(folder, env, "status", runbook, "--log", step_id).stdout


def _progress(runbook: Path) -> list[tuple[str, str, float, float | None, str]]:
    journal = Journal.for_runbook(runbook)
    try:
        run = journal.latest_run(str(runbook.resolve()))
        assert run is not None
        return journal.progress(run.id)
    finally:
        journal.close()


def _v1_indexes(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT indexname FROM pg_indexes WHERE indexname LIKE '%%updated_at' ORDER BY 1")
        return [row[0] for row in rows]


def _users_at_work(dsn: str) -> None:
    """A day of v1's users: a case added, two changed, one closed, a notification read and one
    dismissed."""
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "INSERT INTO public.cases (id, user_id, employer_name, case_status, created_at, updated_at)"
            " SELECT '00000000-0000-4000-8000-0000000000c1', id, 'Acme', 'pwd', now(), now()"
            " FROM auth.users ORDER BY id LIMIT 1"
        )
        conn.execute(
            "UPDATE public.cases SET case_status = 'recruitment', notes = 'ads placed', updated_at = now()"
            " WHERE id IN (SELECT id FROM public.cases ORDER BY id OFFSET 5 LIMIT 2)"
        )
        conn.execute(
            "UPDATE public.cases SET deleted_at = now(), updated_at = now()"
            " WHERE id = (SELECT id FROM public.cases ORDER BY id OFFSET 9 LIMIT 1)"
        )
        conn.execute(
            "UPDATE public.notifications SET is_read = true, read_at = now()"
            " WHERE id = (SELECT id FROM public.notifications WHERE NOT is_read ORDER BY id LIMIT 1)"
        )
        conn.execute(
            "DELETE FROM public.notifications WHERE id = (SELECT id FROM public.notifications ORDER BY id DESC LIMIT 1)"
        )


def test_the_examples_migrations_declare_what_the_bulk_load_and_the_sync_write(
    tmp_path: Path, perm_dsn: str, standin: ConvexStandIn
) -> None:
    copy_example(tmp_path)
    (tmp_path / "plan.toml").write_text(PLAN)
    (tmp_path / "window.toml").write_text(WINDOW_SYNC)
    (tmp_path / "migrate.toml").write_text(MIGRATE_TOML)
    env = {"DATABASE_URL": perm_dsn, "CONVEX_URL": standin.url, "CONVEX_DEPLOY_KEY": standin.deploy_key}

    before = _cockpit(tmp_path, env, "run", "plan.toml", "--headless", "--rehearsal")
    assert before.returncode == 0, before.stdout[-3000:] + before.stderr[-3000:]
    assert "apply: 2 migrations" in _step_log(tmp_path, env, "plan.toml", "migrate")
    assert _v1_indexes(perm_dsn) == V1_INDEXES
    baseline = _step_log(tmp_path, env, "plan.toml", "sync-baseline")
    assert "cases (public.cases): read 1,000 (every row)" in baseline
    assert "  inserted 0, updated 0, unchanged 1,000, deleted 0" in baseline
    # Its progress: the tables, and each table's rows as their batches committed.
    bars = {label: (done, total, unit) for step, label, done, total, unit in _progress(tmp_path / "plan.toml")
            if step == "sync-baseline"}  # fmt: skip
    assert bars["sync"] == (5, 5, "tables")
    assert (bars["cases"], bars["notifications"]) == ((1000, 1000, "rows"), (300, 300, "rows"))

    _users_at_work(perm_dsn)
    window = _cockpit(tmp_path, env, "run", "window.toml", "--headless", "--rehearsal")
    assert window.returncode == 0, window.stdout[-3000:] + window.stderr[-3000:]
    moved = _step_log(tmp_path, env, "window.toml", "sync")
    assert "cases (public.cases): read 4 (changes since the watermark)" in moved, moved
    assert "  inserted 1, updated 3, unchanged 0, deleted 0" in moved
    assert "notifications (public.notifications): read 299 (every row)" in moved
    bars = {label: (done, total) for step, label, done, total, _ in _progress(tmp_path / "window.toml")}
    assert bars["cases"] == (4, 4) and "users" not in bars  # no bar for a table with nothing to read
    assert "  inserted 0, updated 1, unchanged 298, deleted 1" in moved

    status = _cockpit(tmp_path, env, "migrate", "status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    document: dict[str, Any] = json.loads(status.stdout)
    assert [m["state"] for m in document["migrations"]] == ["applied", "applied"]
    checks = {c["table"]: c for c in document["schema"]}
    assert sorted(checks) == ["cases", "notifications", "userPreferences", "userSettings", "users"]
    assert {t: c["checked"] for t, c in checks.items()} == {
        "users": 100, "cases": 1001, "userSettings": 98, "userPreferences": 100, "notifications": 299,
    }  # fmt: skip
    assert [c["violations"] for c in checks.values() if c["violating"]] == []

    back = _cockpit(tmp_path, env, "migrate", "rollback")
    assert back.returncode == 0, back.stdout + back.stderr
    assert _v1_indexes(perm_dsn) == []
