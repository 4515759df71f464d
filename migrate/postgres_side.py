"""The PostgreSQL side of a migration: its `sql` part and its record, in one transaction.

The record lives in `cockpit_migrations` (version, name, checksum, applied_at, applied_by), as
Convex's does. One run holds a session advisory lock, so two operators cannot apply at once:
the second is told who holds it, and waits for nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import psycopg

from migrate.files import MigrationFile
from migrate.records import AppliedRecord

TABLE = "cockpit_migrations"
# pg_advisory_lock's key: any constant that no other tool takes by chance ("cockpit migrate").
_LOCK_KEY = 0x636F636B_70697421
_CREATE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    version text PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    applied_by text NOT NULL
)"""


class SideBusy(RuntimeError):
    """Another run of `cockpit migrate` holds this database."""


class PostgresSide:
    name = "postgres"

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    def _connection(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None:
            self._conn = psycopg.connect(self._dsn, connect_timeout=10, application_name="cockpit migrate")
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def lock(self) -> None:
        """Take the run's advisory lock (held until `close`), or raise SideBusy."""
        conn = self._connection()
        with conn.transaction():
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (_LOCK_KEY,)).fetchone()
            if row is not None and row[0]:
                return
            holder = conn.execute(
                "SELECT a.usename, a.client_addr, a.application_name FROM pg_locks l"
                " JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory' AND l.granted"
                " AND (l.classid::bigint << 32 | l.objid::bigint) = %s LIMIT 1",
                (_LOCK_KEY,),
            ).fetchone()
        who = f"{holder[0]} from {holder[1] or 'a local socket'}" if holder else "another session"
        raise SideBusy(f"another cockpit migrate is running on this database ({who})")

    def applied(self) -> dict[str, AppliedRecord]:
        conn = self._connection()
        with conn.transaction():
            exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (TABLE,)).fetchone()
            if not exists or not exists[0]:
                return {}
            rows = conn.execute(
                f"SELECT version, name, checksum, applied_at, applied_by FROM {TABLE} ORDER BY version"
            ).fetchall()
        return {
            str(version): AppliedRecord(str(version), str(name), str(checksum), _aware(at), str(by))
            for version, name, checksum, at, by in rows
        }

    @contextmanager
    def transaction(self) -> Iterator[PostgresTransaction]:
        """One transaction (a savepoint inside another): committed when the block ends, rolled
        back when it raises."""
        conn = self._connection()
        with conn.transaction():
            conn.execute(_CREATE)
            yield PostgresTransaction(conn)


class PostgresTransaction:
    def __init__(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        self._conn = conn

    def apply(self, file: MigrationFile, applied_by: str) -> None:
        migration = file.migration
        if migration.sql is not None:
            self._conn.execute(migration.sql.up.encode())  # bytes: a `%` in the SQL is not a placeholder
        self._conn.execute(
            f"INSERT INTO {TABLE} (version, name, checksum, applied_by) VALUES (%s, %s, %s, %s)",
            (migration.version, migration.name, file.checksum, applied_by),
        )

    def rollback(self, file: MigrationFile) -> None:
        migration = file.migration
        if migration.sql is not None:
            if migration.sql.down is None:
                raise ValueError(f"{file.path.name} has no sql.down")
            self._conn.execute(migration.sql.down.encode())
        self._conn.execute(f"DELETE FROM {TABLE} WHERE version = %s", (migration.version,))


def _aware(value: object) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"applied_at is {value!r}")
    return value
