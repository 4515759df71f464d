"""`cockpit sync` against a real PostgreSQL and the Convex stand-in: v2 after a sync equals a
fresh full import (export, transform, import, resolve) document by document, after inserts,
updates and deletes on v1; a second sync reads only what changed; kill -9 in the middle
loses nothing and writes nothing twice."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import COCKPIT, subprocess_env
from datapath import MAPPING, wrap_function

from cockpit.sandbox.convex.server import ConvexStandIn

pytestmark = pytest.mark.integration

CONFIG = """\
mapping = "mapping.toml"

[environments.development]
postgres = { dsn = "${DATABASE_URL}" }
convex = { url = "${CONVEX_URL}", deploy_key = "${CONVEX_DEPLOY_KEY}", enabled = "${USE_CONVEX}" }
"""

FULL_PATH = """[runbook]
name = "A fresh full import"
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
id = "window"
at = "T-0"
window = true

[[step]]
id = "export"
phase = "window"
kind = "postgres.export"
with = { connection = "v1", out = "export", tables = ["auth.users", "public.cases", "public.user_settings", "public.user_preferences", "public.notifications"] }

[[step]]
id = "transform"
phase = "window"
kind = "transform"
needs = ["export"]
with = { mapping = "mapping.toml", input = "export", out = "transformed" }

[[step]]
id = "import"
phase = "window"
kind = "convex.import"
needs = ["transform"]
with = { connection = "v2", input = "transformed" }

[[step]]
id = "resolve"
phase = "window"
kind = "convex.resolve_refs"
needs = ["import"]
with = { connection = "v2", mapping = "mapping.toml", transformed = "transformed" }
"""  # noqa: E501
TABLES = ["users", "cases", "userSettings", "userPreferences", "notifications"]
ID_FIELDS = {"userId": "users", "caseId": "cases"}


def _env(dsn: str, standin: ConvexStandIn, **extra: str) -> dict[str, str]:
    base = {"DATABASE_URL": dsn, "CONVEX_URL": standin.url, "CONVEX_DEPLOY_KEY": standin.deploy_key}
    return subprocess_env(**{**base, "USE_CONVEX": "true", **extra})


def _folder(tmp_path: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "migrate.toml").write_text(CONFIG)
    (folder / "mapping.toml").write_text(MAPPING)
    return folder


def sync(folder: Path, dsn: str, standin: ConvexStandIn, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [COCKPIT, "sync", *args], cwd=folder, capture_output=True, text=True, timeout=300, env=_env(dsn, standin, **env)
    )


def full_import(tmp_path: Path, dsn: str) -> ConvexStandIn:
    """A fresh stand-in holding what the full path imports from v1 now."""
    folder = tmp_path / f"full-{time.monotonic_ns()}"
    folder.mkdir()
    (folder / "runbook.toml").write_text(FULL_PATH)
    (folder / "mapping.toml").write_text(MAPPING)
    standin = ConvexStandIn(folder / "convex").start()
    done = subprocess.run(
        [COCKPIT, "run", "runbook.toml", "--headless", "--rehearsal"], cwd=folder, capture_output=True, text=True,
        timeout=300, env=_env(dsn, standin),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return standin


def canonical(standin: ConvexStandIn) -> dict[str, dict[str, dict[str, Any]]]:
    """Every migrated document by table and legacy id, without Convex's own fields, each id
    field given as the legacy id of the document it points at (ids differ between deployments)."""
    legacy_of = {doc["_id"]: doc.get("legacyId") for table in TABLES for doc in standin.store.documents(table)}
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for table in TABLES:
        docs: dict[str, dict[str, Any]] = {}
        for doc in standin.store.documents(table):
            fields = {k: v for k, v in doc.items() if not k.startswith("_")}
            for field in ID_FIELDS:
                if field in fields:
                    fields[field] = ("id of", legacy_of.get(fields[field]))
            assert doc["legacyId"] not in docs, f"{table}: {doc['legacyId']} twice"
            docs[doc["legacyId"]] = fields
        out[table] = docs
    return out


def _change_v1(dsn: str) -> dict[str, int]:
    """Inserts, updates and deletes on v1, as its users would make them; how many rows changed."""
    with psycopg.connect(dsn) as conn:
        user = conn.execute("SELECT id FROM auth.users ORDER BY id LIMIT 1").fetchone()
        assert user is not None
        conn.execute(
            "INSERT INTO auth.users (id, email, created_at, updated_at) VALUES"
            " ('00000000-0000-4000-8000-000000000001', 'new@x.test', now(), now())"
        )
        updated = conn.execute(
            "UPDATE public.cases SET case_status = 'certified', notes = 'synced', updated_at = now()"
            " WHERE id IN (SELECT id FROM public.cases ORDER BY id LIMIT 7)"
        ).rowcount
        # A case moves to another user: its reference changes too.
        conn.execute(
            "UPDATE public.cases SET user_id = %s, updated_at = now()"
            " WHERE id = (SELECT id FROM public.cases ORDER BY id DESC LIMIT 1)",
            (user[0],),
        )
        conn.execute(
            "INSERT INTO public.cases (id, user_id, employer_name, case_status, created_at, updated_at) VALUES"
            " ('00000000-0000-4000-8000-000000000002', '00000000-0000-4000-8000-000000000001', 'Acme', 'pwd',"
            " now(), now())"
        )
        gone = conn.execute("SELECT id FROM public.cases ORDER BY id OFFSET 20 LIMIT 3").fetchall()
        conn.execute("DELETE FROM public.notifications WHERE case_id = ANY(%s)", ([g[0] for g in gone],))
        conn.execute("DELETE FROM public.cases WHERE id = ANY(%s)", ([g[0] for g in gone],))
        conn.execute("UPDATE public.notifications SET is_read = true, read_at = now() WHERE id IN"
                     " (SELECT id FROM public.notifications ORDER BY id LIMIT 4)")  # fmt: skip
    return {"users": 1, "cases": 1 + updated + 1}


@pytest.fixture
def target(tmp_path: Path) -> Any:
    standin = ConvexStandIn(tmp_path / "target").start()
    yield standin
    standin.stop()


def test_a_sync_leaves_v2_equal_to_a_fresh_full_import_and_then_reads_only_changes(
    tmp_path: Path, perm_dsn: str, target: ConvexStandIn
) -> None:
    folder = _folder(tmp_path, "project")
    first = sync(folder, perm_dsn, target, "--format", "json")
    assert first.returncode == 0, first.stdout + first.stderr
    tables = {t["table"]: t for t in json.loads(first.stdout)["tables"]}
    assert list(tables) == ["users", "cases", "userSettings", "userPreferences", "notifications"]
    assert tables["cases"]["inserted"] == 1000 and tables["cases"]["unresolved"] == 0
    reference = full_import(tmp_path, perm_dsn)
    try:
        assert canonical(target) == canonical(reference)
    finally:
        reference.stop()

    changed = _change_v1(perm_dsn)
    second = sync(folder, perm_dsn, target)
    assert second.returncode == 0, second.stdout + second.stderr
    # Only the changed rows are read where a table has updated_at; notifications has none and
    # is compared whole, writing only what differs.
    assert f"cases (public.cases): read {changed['cases']} (changes since the watermark) in" in second.stdout
    assert "\n  inserted 1, updated 8, unchanged 0, deleted 3\n" in second.stdout
    assert "users (auth.users): read 1 (changes since the watermark) in" in second.stdout
    assert "\n  inserted 1, updated 0, unchanged 0, deleted 0\n" in second.stdout
    assert "notifications (public.notifications): read 300 (every row) in" in second.stdout
    assert "\n  inserted 0, updated 4, unchanged 296, deleted 0\n" in second.stdout
    reference = full_import(tmp_path, perm_dsn)
    try:
        assert canonical(target) == canonical(reference)
    finally:
        reference.stop()
    third = sync(folder, perm_dsn, target, "cases")
    assert "cases (public.cases): read 0 (changes since the watermark)" in third.stdout


def test_a_dry_run_says_what_would_change_and_writes_nothing(
    tmp_path: Path, perm_dsn: str, target: ConvexStandIn
) -> None:
    folder = _folder(tmp_path, "project")
    empty = sync(folder, perm_dsn, target, "--dry-run")  # before anything is in v2
    assert empty.returncode == 0, empty.stdout + empty.stderr
    assert "cases (public.cases): read 1,000 (every row) in" in empty.stdout
    assert "\n  inserted 1,000, updated 0, unchanged 0, deleted 0; 1,000 references not resolved yet\n" in empty.stdout
    assert target.store.tables() == []
    assert sync(folder, perm_dsn, target, "users", "cases").returncode == 0
    before = canonical(target)
    _change_v1(perm_dsn)
    dry = sync(folder, perm_dsn, target, "--dry-run", "cases", "auth.users")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "dry run of a sync of auth.users, public.cases" in dry.stdout
    assert "cases (public.cases): read 9 (changes since the watermark) in" in dry.stdout
    # The new user was not written, so the new case's reference could not be resolved: said so.
    assert "\n  inserted 1, updated 8, unchanged 0, deleted 3; 1 references not resolved yet\n" in dry.stdout
    assert canonical(target) == before
    assert "cases (public.cases): read 9" in sync(folder, perm_dsn, target, "cases").stdout  # still to do


def test_bad_requests_are_refused_before_anything_is_written(
    tmp_path: Path, perm_dsn: str, target: ConvexStandIn
) -> None:
    folder = _folder(tmp_path, "project")
    unknown = sync(folder, perm_dsn, target, "cases", "invoices")
    assert unknown.returncode == 2
    assert "refused: the mapping mapping.toml has no table invoices (it has auth.users, public.cases," in unknown.stdout
    assert target.store.count("cases") == 0
    limit = sync(folder, perm_dsn, target, "--limit", "0")
    assert limit.returncode == 2 and "--limit 0: at least 1" in limit.stderr
    off = sync(folder, perm_dsn, target, USE_CONVEX="false")
    assert off.returncode == 0 and "nothing to sync: v1 and v2 must both be enabled (convex" in off.stdout
    (folder / "migrate.toml").write_text(CONFIG.replace('mapping = "mapping.toml"', 'mapping = "nowhere.toml"'))
    missing = sync(folder, perm_dsn, target)
    assert missing.returncode == 2 and "nowhere.toml" in missing.stderr


def test_limit_syncs_part_and_the_next_run_the_rest(tmp_path: Path, perm_dsn: str, target: ConvexStandIn) -> None:
    folder = _folder(tmp_path, "project")
    part = sync(folder, perm_dsn, target, "users", "--limit", "60")
    assert "users (auth.users): read 60 (every row) in" in part.stdout
    assert "\n  inserted 60, updated 0, unchanged 0, deleted 0; stopped at --limit" in part.stdout
    assert "stopped at --limit" in part.stdout and target.store.count("users") == 60
    rest = sync(folder, perm_dsn, target, "users")
    assert "users (auth.users): read 40 (changes since the watermark) in" in rest.stdout
    assert "\n  inserted 40, updated 0, unchanged 0, deleted 0\n" in rest.stdout


def test_kill_minus_nine_during_a_sync_loses_nothing_and_repeats_nothing(
    tmp_path: Path, perm_dsn: str, target: ConvexStandIn
) -> None:
    folder = _folder(tmp_path, "project")
    committed = threading.Semaphore(0)

    def slowly(implementation: Any, store: Any, args: dict[str, Any]) -> Any:
        answer = implementation(store, args)
        committed.release()
        time.sleep(0.4)  # the answer is slow: the kill lands after a commit, before the client hears
        return answer

    wrap_function(target, "cockpitSync:upsert", slowly)
    proc = subprocess.Popen(
        [COCKPIT, "sync"], cwd=folder, env=_env(perm_dsn, target), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        for _ in range(2):  # users, then the first page of cases
            assert committed.acquire(timeout=60)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert (target.store.count("users"), target.store.count("cases")) == (100, 500)
    again = sync(folder, perm_dsn, target, "--format", "json")
    assert again.returncode == 0, again.stderr
    tables = {t["table"]: t for t in json.loads(again.stdout)["tables"]}
    # The first page of cases and its watermark committed together: the second run starts after it.
    assert (tables["users"]["read"], tables["cases"]["read"]) == (0, 500)
    assert sum(t["unchanged"] + t["updated"] for t in tables.values() if t["incremental"]) == 0
    reference = full_import(tmp_path, perm_dsn)
    try:
        assert canonical(target) == canonical(reference)
    finally:
        reference.stop()
    shutil.rmtree(folder / "migration_logs")


def test_a_table_stamped_ahead_of_v1s_clock_is_compared_whole(
    tmp_path: Path, perm_dsn: str, target: ConvexStandIn
) -> None:
    folder = _folder(tmp_path, "project")
    assert sync(folder, perm_dsn, target, "users").returncode == 0
    with psycopg.connect(perm_dsn) as conn:
        conn.execute(
            "UPDATE auth.users SET updated_at = '2040-01-01' WHERE id = (SELECT id FROM auth.users ORDER BY id LIMIT 1)"
        )
        conn.execute(
            "UPDATE auth.users SET email = 'changed@x.test', updated_at = now()"
            " WHERE id = (SELECT id FROM auth.users ORDER BY id DESC LIMIT 1)"
        )
    # With a watermark in 2040, a row changed now would sort before it: every row is compared.
    done = sync(folder, perm_dsn, target, "users")
    assert "users: updated_at reaches 2040-01-01 00:00:00+00, ahead of v1's clock" in done.stdout
    assert "users (auth.users): read 100 (every row) in" in done.stdout
    assert "\n  inserted 0, updated 2, unchanged 98, deleted 0\n" in done.stdout
    assert "changed@x.test" in {d.get("email") for d in target.store.documents("users")}


def test_a_row_committed_late_by_a_transaction_open_during_a_sync_is_not_passed_over(
    tmp_path: Path, perm_dsn: str, target: ConvexStandIn
) -> None:
    folder = _folder(tmp_path, "project")
    assert sync(folder, perm_dsn, target, "users", "cases").returncode == 0
    first_case = "(SELECT id FROM public.cases ORDER BY id LIMIT 1)"
    last_case = "(SELECT id FROM public.cases ORDER BY id DESC LIMIT 1)"
    # A user's transaction stamps its row (now() is its start) and commits only after the sync,
    # which meanwhile saw a row stamped later.
    late = psycopg.connect(perm_dsn)
    try:
        late.execute(f"UPDATE public.cases SET notes = 'committed late', updated_at = now() WHERE id = {first_case}")
        time.sleep(0.05)
        with psycopg.connect(perm_dsn, autocommit=True) as conn:
            conn.execute(f"UPDATE public.cases SET notes = 'seen', updated_at = now() WHERE id = {last_case}")
        during = sync(folder, perm_dsn, target, "cases")
        assert "cases (public.cases): read 1 (changes since the watermark)" in during.stdout, during.stdout
        late.commit()
    finally:
        late.close()
    after = sync(folder, perm_dsn, target, "cases")
    # The watermark stayed before the open transaction's start: both rows are read again.
    assert "cases (public.cases): read 2 (changes since the watermark)" in after.stdout, after.stdout
    assert "\n  inserted 0, updated 1, unchanged 1, deleted 0\n" in after.stdout
    notes = {d.get("notes") for d in target.store.documents("cases")}
    assert {"committed late", "seen"} <= notes
    settled = sync(folder, perm_dsn, target, "cases")
    assert "cases (public.cases): read 0 (changes since the watermark)" in settled.stdout
