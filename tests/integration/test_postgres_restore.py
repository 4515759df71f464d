"""postgres.restore: v1's data back from the window's backup, in one transaction, against a real
PostgreSQL; a backup that differs from its manifest or a load that fails changes nothing."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from datapath import log_of
from fakes import HEADER, Harness

pytestmark = pytest.mark.integration

CONNECTION = '\n[connections.v1]\nkind = "postgres"\ndsn = "${TEST_DSN}"\n'
BACKUP = (
    '\n[[step]]\nid = "backup"\nphase = "window"\nkind = "postgres.backup"\n'
    'with = { connection = "v1", out = "backup" }\n'
)
RESTORE = (
    '\n[[step]]\nid = "restore"\nphase = "window"\nkind = "postgres.restore"\n'
    'with = { connection = "v1", backup = "backup" }\n'
)
SNAPSHOT = (
    "SELECT (SELECT count(*) FROM public.cases), (SELECT count(*) FROM public.notifications),"
    " (SELECT count(*) FROM auth.users), (SELECT min(email) FROM auth.users)"
)


def _run(folder: Path, dsn: str, body: str) -> Harness:
    h = Harness(folder, body, header=HEADER + CONNECTION, env={"TEST_DSN": dsn}).start()
    h.settle(120)
    h.close()
    return h


def _snapshot(dsn: str) -> tuple[object, ...]:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(SNAPSHOT).fetchone()
        assert row is not None
        return tuple(row)


def _backed_up(tmp_path: Path, dsn: str) -> tuple[object, ...]:
    (tmp_path / "first").mkdir()
    h = _run(tmp_path / "first", dsn, BACKUP)
    assert h.state("backup") == "succeeded", h.engine.step_runtime("backup").reason
    (tmp_path / "second").mkdir()
    (tmp_path / "first" / "backup").rename(tmp_path / "second" / "backup")
    return _snapshot(dsn)


def _damage(dsn: str) -> None:
    """What a broken go-live might leave: rows lost, a row changed; then v1 read-only again."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM public.notifications")
        conn.execute("DELETE FROM public.cases WHERE id IN (SELECT id FROM public.cases LIMIT 25)")
        conn.execute(
            "UPDATE auth.users SET email = 'aaa-changed@example.com'"
            " WHERE id = (SELECT id FROM auth.users ORDER BY email LIMIT 1)"
        )
        database = conn.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
        conn.execute(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')


def test_restore_puts_every_row_back_while_v1_stays_read_only(tmp_path: Path, perm_dsn: str) -> None:
    before = _backed_up(tmp_path, perm_dsn)
    _damage(perm_dsn)
    assert _snapshot(perm_dsn) != before
    h = _run(tmp_path / "second", perm_dsn, RESTORE)
    assert h.state("restore") == "succeeded", h.engine.step_runtime("restore").reason
    assert _snapshot(perm_dsn) == before
    log = log_of(h, "restore")
    assert "all 3 files match the manifest" in log
    assert "restoring 5 tables" in log and '"public"."cases"' in log
    assert "each table's count matches the backup" in log
    with psycopg.connect(perm_dsn) as conn:  # the restore did not lift the read-only setting
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)


def test_a_backup_that_differs_from_its_manifest_is_refused_before_anything_changes(
    tmp_path: Path, perm_dsn: str
) -> None:
    _backed_up(tmp_path, perm_dsn)
    _damage(perm_dsn)
    damaged = _snapshot(perm_dsn)
    data = tmp_path / "second" / "backup" / "data.sql"
    data.write_bytes(data.read_bytes().replace(b"\\.\n", b"\\.\n-- edited\n", 1))
    h = _run(tmp_path / "second", perm_dsn, RESTORE)
    assert h.state("restore") == "failed"
    assert h.engine.step_runtime("restore").reason == "data.sql differs from the manifest"
    assert _snapshot(perm_dsn) == damaged


def test_a_load_that_fails_half_way_rolls_back_the_emptied_tables(tmp_path: Path, perm_dsn: str) -> None:
    before = _backed_up(tmp_path, perm_dsn)
    with psycopg.connect(perm_dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM public.notifications WHERE id IN (SELECT id FROM public.notifications LIMIT 25)")
        # A column the backup's COPY names no longer exists: the load fails at that table.
        conn.execute("ALTER TABLE public.notifications DROP COLUMN title")
    damaged = _snapshot(perm_dsn)
    h = _run(tmp_path / "second", perm_dsn, RESTORE)
    assert h.state("restore") == "failed"
    assert 'column "title" of relation "notifications" does not exist' in log_of(h, "restore")
    # The truncation and every table loaded before it were rolled back: v1 as it was.
    assert _snapshot(perm_dsn) == damaged != before
