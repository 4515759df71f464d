"""postgres.sql, postgres.read_only and postgres.read_write against a real PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest
from fakes import HEADER, Harness

from cockpit.engine.views import Outcome

pytestmark = pytest.mark.integration

CONNECTION = '\n[connections.db]\nkind = "postgres"\ndsn = "${TEST_DSN}"\n'


def _step(step_id: str, kind: str, with_: str, extra: str = "") -> str:
    return f'\n[[step]]\nid = "{step_id}"\nphase = "window"\nkind = "{kind}"\n{extra}\n[step.with]\n{with_}\n'


def _run(tmp_path: Path, dsn: str, body: str, **options: object) -> Harness:
    return Harness(tmp_path, body, header=HEADER + CONNECTION, env={"TEST_DSN": dsn}, **options).start()


def test_sql_logs_the_result_and_checks_expect(tmp_path: Path, perm_dsn: str) -> None:
    body = _step(
        "count",
        "postgres.sql",
        'connection = "db"\nread_only = true\n'
        'sql = "SELECT count(*) AS users, count(*) - count(email) AS null_emails FROM auth.users"\n'
        "expect = { users = 100 }",
    )
    h = _run(tmp_path, perm_dsn, body)
    try:
        assert h.settle() == Outcome.DONE
        log = h.journal.log_lines(h.engine.run_id, "count")
        assert log[1].split("|")[0].strip() == "users"
        assert log[3].split("|")[0].strip() == "100"
        assert log[-1] == "expect holds: {'users': 100}"
    finally:
        h.close()


def test_sql_expect_mismatch_fails_with_the_values(tmp_path: Path, perm_dsn: str) -> None:
    body = _step(
        "count",
        "postgres.sql",
        'connection = "db"\nread_only = true\n'
        'sql = "SELECT count(*) AS cases FROM public.cases"\nexpect = { cases = 999, nope = 1 }',
    )
    h = _run(tmp_path, perm_dsn, body)
    try:
        assert h.settle() == Outcome.FAILED
        reason = h.engine.step_runtime("count").reason
        assert "cases is 1000, expected 999" in reason and "no column 'nope'" in reason
    finally:
        h.close()


def test_a_read_only_sql_step_cannot_write(tmp_path: Path, pg_dsn: str) -> None:
    body = _step("sneaky", "postgres.sql", 'connection = "db"\nread_only = true\nsql = "CREATE TABLE t (x int)"')
    h = _run(tmp_path, pg_dsn, body)
    try:
        assert h.settle() == Outcome.FAILED
        assert h.engine.step_runtime("sneaky").reason.startswith("25006: cannot execute CREATE TABLE")
        assert h.engine.view().steps["sneaky"].effect == "probe"
    finally:
        h.close()


def test_statements_run_in_one_transaction(tmp_path: Path, pg_dsn: str) -> None:
    body = _step(
        "half",
        "postgres.sql",
        'connection = "db"\nsql = ["CREATE TABLE made (x int)", "INSERT INTO made VALUES (1)", "SELECT 1/0"]',
    )
    h = _run(tmp_path, pg_dsn, body)
    try:
        assert h.settle() == Outcome.FAILED
        assert "22012" in h.engine.step_runtime("half").reason  # division by zero
        with psycopg.connect(pg_dsn) as conn:
            exists = conn.execute("SELECT to_regclass('public.made')").fetchone()
        assert exists == (None,)  # the CREATE was rolled back with the rest
    finally:
        h.close()


def test_cancelling_a_long_query_stops_it_at_once(tmp_path: Path, pg_dsn: str) -> None:
    body = _step("sleepy", "postgres.sql", 'connection = "db"\nread_only = true\nsql = "SELECT pg_sleep(60)"')
    h = _run(tmp_path, pg_dsn, body)
    try:
        h.wait_state("sleepy", "running")
        time.sleep(0.3)
        started = time.monotonic()
        h.engine.cancel("sleepy", h.engine.operator)
        h.wait_state("sleepy", "cancelled", timeout=10)
        assert time.monotonic() - started < 3
    finally:
        h.close()


def test_an_unreachable_database_fails_clearly_without_the_password(tmp_path: Path) -> None:
    dsn = "postgresql://app:very-secret-pw@127.0.0.1:1/nowhere"
    body = _step("count", "postgres.sql", 'connection = "db"\nsql = "SELECT 1"')
    h = _run(tmp_path, dsn, body)
    try:
        assert h.settle() == Outcome.FAILED
        reason = h.engine.step_runtime("count").reason
        assert reason.startswith("cannot connect to 'db':")
        assert "very-secret-pw" not in reason
    finally:
        h.close()


def _write_refused(dsn: str, user: str = "authenticator", role: str = "authenticated") -> bool:
    with psycopg.connect(dsn, user=user) as conn:
        try:
            conn.execute(f"SET ROLE {role}")
            conn.execute("CREATE TEMP TABLE probe (x int)")
            return False
        except psycopg.errors.ReadOnlySqlTransaction:
            return True
        finally:
            conn.rollback()


def test_read_only_ends_the_roles_sessions_and_proves_writes_are_refused(tmp_path: Path, perm_dsn: str) -> None:
    # An application session, open before the switch, as the API server would hold it.
    app = psycopg.connect(perm_dsn, user="authenticator", autocommit=True)
    app.execute("SET ROLE authenticated")
    body = (
        _step("freeze", "postgres.read_only", 'connection = "db"\nroles = ["authenticator", "anon"]', 'undo = "thaw"')
        + '\n[[step]]\nid = "watch"\nphase = "window"\nkind = "wait"\nneeds = ["freeze"]\n'
        'with = { duration = "1h" }\n' + '\n[[step]]\nid = "thaw"\nphase = "rollback"\nkind = "postgres.read_write"\n'
        'with = { connection = "db", roles = ["authenticator", "anon"] }\n'
    )
    h = _run(tmp_path, perm_dsn, body, speed=60)
    try:
        h.wait_state("watch", "running")
        log = h.journal.log_lines(h.engine.run_id, "freeze")
        assert any("ended 1 open session(s)" in line and "1 of authenticator" in line for line in log)
        assert "proved: a write as authenticator is refused (25006 read-only transaction)" in log
        with pytest.raises(psycopg.OperationalError):
            app.execute("SELECT 1")  # its session was ended
        assert _write_refused(perm_dsn)
        # Rolling back makes the database writable again, and proves it.
        h.engine.rollback(h.engine.operator, "rehearsing the undo")
        outcome = h.settle()
        assert outcome == Outcome.ROLLED_BACK, {s: (v.state.value, v.reason) for s, v in h.engine.view().steps.items()}
        assert "proved: a write as anon is accepted" in h.journal.log_lines(h.engine.run_id, "thaw")
        assert not _write_refused(perm_dsn)
    finally:
        app.close()
        h.close()


def test_read_only_refuses_unknown_roles(tmp_path: Path, perm_dsn: str) -> None:
    body = _step("freeze", "postgres.read_only", 'connection = "db"\nroles = ["anon", "ghost"]')
    h = _run(tmp_path, perm_dsn, body)
    try:
        assert h.settle() == Outcome.FAILED
        assert h.engine.step_runtime("freeze").reason == f"no such role in {perm_dsn.rsplit('/', 1)[1]!r}: ghost"
    finally:
        h.close()


def test_dry_run_of_read_only_changes_nothing(tmp_path: Path, perm_dsn: str) -> None:
    body = _step("freeze", "postgres.read_only", 'connection = "db"\nroles = ["anon"]')
    h = _run(tmp_path, perm_dsn, body, dry_run=True)
    try:
        assert h.settle() == Outcome.DONE
        assert h.engine.view().steps["freeze"].not_run
        assert not _write_refused(perm_dsn)
        log = h.journal.log_lines(h.engine.run_id, "freeze")
        assert log == ["dry run: would set the database of 'db' read-only and end the sessions of anon"]
    finally:
        h.close()
