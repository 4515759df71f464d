"""What the incremental sync reads from v1: the rows changed since a watermark, and every
primary key in the order Convex's by_legacy_id index keeps legacy ids.

A table with an `updated_at` column is read from its watermark on, in (updated_at, key)
order, one server-side cursor for the whole delta; rows whose updated_at is null are read
every time (they cannot be placed after a watermark, and an unchanged one writes nothing). A
table without one is read whole each time: a full comparison by legacy id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from steps.postgres.json_rows import EXACT_SESSION, ROW, column_types, rows_as_json

WATERMARK_COLUMN = "updated_at"


@dataclass(frozen=True)
class Watermark:
    """How far a table is synced: the last (updated_at, key) written, as text."""

    updated_at: str | None
    last_key: str | None


@dataclass(frozen=True)
class Horizon:
    """The time before which every row v1 will ever commit is visible now (as text)."""

    at: str
    held_by: str | None = None  # the transaction holding it back, when one has been open for minutes


@dataclass(frozen=True)
class ChangedRow:
    line: bytes  # row_to_json's text: what the transform reads
    updated_at: str | None  # no later than the horizon
    key: str
    settled: bool = True  # False: stamped at or after the horizon, to be read again next time


class Source:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn = psycopg.connect(dsn, connect_timeout=10, application_name="cockpit sync", options=EXACT_SESSION)

    def close(self) -> None:
        self._conn.close()

    def table_exists(self, table: str) -> bool:
        row = self._conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
        self._conn.rollback()
        return bool(row and row[0])

    def columns(self, table: str) -> dict[str, str]:
        types = column_types(self._conn, f"SELECT * FROM {_quoted(table)}")
        self._conn.rollback()
        return types

    def stamped_ahead(self, table: str) -> str | None:
        """The newest updated_at when it is ahead of the server's clock (by more than a
        minute of skew), else None. Rows changed now would sort before such a watermark and be
        missed, so a table like that is compared whole."""
        row = self._conn.execute(
            f"SELECT max({WATERMARK_COLUMN})::text FROM {_quoted(table)}"
            f" HAVING max({WATERMARK_COLUMN}) > now() + interval '1 minute'"
        ).fetchone()
        self._conn.rollback()
        return None if row is None else str(row[0])

    def horizon(self) -> Horizon:
        """v1's horizon now: the oldest open transaction's start on this database (a sync's
        own sessions only read), else now. Asked before a read's snapshot: a transaction that
        begins between the two starts after it."""
        row = self._conn.execute(
            "SELECT least(now(), a.xact_start)::text, a.xact_start < now() - interval '5 minutes',"
            " a.xact_start::text, a.pid, a.application_name"
            " FROM (SELECT 1) AS one LEFT JOIN LATERAL ("
            "   SELECT xact_start, pid, application_name FROM pg_stat_activity"
            "   WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
            "     AND application_name <> 'cockpit sync' ORDER BY xact_start LIMIT 1"
            " ) AS a ON true"
        ).fetchone()
        self._conn.rollback()
        assert row is not None
        at, long_open, since, pid, application = row
        held_by = f"a transaction open since {since} (pid {pid}, {application or 'no application name'})"
        return Horizon(str(at), held_by if long_open else None)

    def changed_rows(
        self,
        table: str,
        key: str,
        since: Watermark | None,
        batch: int,
        *,
        incremental: bool = True,
        horizon: Horizon | None = None,
        counted: Callable[[int], None] | None = None,
    ) -> Iterator[list[ChangedRow]]:
        """The rows changed after `since` (every row without it, or when not `incremental`), in
        batches, in one snapshot; their stamps held at `horizon`. `counted` hears how many
        there are before the first batch."""
        types = self.columns(table)
        column = sql.Identifier(key).as_string(None)
        incremental = incremental and WATERMARK_COLUMN in types
        stamp = f"{ROW}.{WATERMARK_COLUMN}" if incremental else "NULL"
        where = ""
        filtering: list[Any] = []
        if incremental and since is not None and since.updated_at is not None:
            where = f'({stamp}, {ROW}.{column}::text COLLATE "C") > (%s::timestamptz, %s) OR {stamp} IS NULL'
            filtering = [since.updated_at, since.last_key or ""]
        parameters: list[Any] = []
        if incremental and horizon is not None:
            # A stamp at or after the horizon is held at it, and the row not settled.
            columns = f"least({stamp}, %s::timestamptz)::text, {ROW}.{column}::text, coalesce({stamp} < %s, true)"
            parameters = [horizon.at, horizon.at]
        else:
            columns = f"{stamp}::text, {ROW}.{column}::text, true"
        parameters += filtering
        query = rows_as_json(f"SELECT * FROM {_quoted(table)}", types, where).replace(
            f"SELECT row_to_json({ROW})", f"SELECT row_to_json({ROW})::text, {columns}", 1
        )
        order = f"{stamp} NULLS FIRST, " if incremental else ""
        query += f' ORDER BY {order}{ROW}.{column}::text COLLATE "C"'
        with self._conn.transaction(), self._conn.cursor(name="cockpit_sync_changes") as cursor:
            self._conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            if counted is not None:
                count = f"SELECT count(*) FROM {_quoted(table)} {ROW}" + (f" WHERE {where}" if where else "")
                total = self._conn.execute(count.encode(), filtering).fetchone()
                counted(int(total[0]) if total else 0)
            cursor.itersize = batch
            cursor.execute(query.encode(), parameters)
            while rows := cursor.fetchmany(batch):
                yield [
                    ChangedRow(text.encode(), stamp_text, key_text, settled)
                    for text, stamp_text, key_text, settled in rows
                ]

    def keys_in_order(self, table: str, key: str, batch: int = 10_000) -> Iterator[list[str]]:
        """Every primary key as text, in byte order (the order of Convex's index on legacyId),
        a batch at a time, on a connection of its own (it is read while other work goes on)."""
        with psycopg.connect(self._dsn, connect_timeout=10, application_name="cockpit sync") as conn:
            column = sql.Identifier(key).as_string(None)
            kind = column_types(conn, f"SELECT * FROM {_quoted(table)}").get(key)
            conn.rollback()
            # A uuid's order is its text's: its index serves the order. Other keys sort as text.
            order = column if kind == "uuid" else f'{column}::text COLLATE "C"'
            query = f"SELECT {column}::text FROM {_quoted(table)} ORDER BY {order}"
            with conn.transaction(), conn.cursor(name="cockpit_sync_keys") as cursor:
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                cursor.itersize = batch
                cursor.execute(query.encode())
                while rows := cursor.fetchmany(batch):
                    yield [row[0] for row in rows]

    def existing_keys(self, table: str, key: str, candidates: list[str]) -> set[str]:
        """Which of these keys (as text) are rows of `table` now, asked on a connection of its
        own (the walk for deletions runs beside the changes)."""
        column = sql.Identifier(key).as_string(None)
        query = f"SELECT {column}::text FROM {_quoted(table)} WHERE {column}::text = ANY(%s)"
        with psycopg.connect(self._dsn, connect_timeout=10, application_name="cockpit sync") as conn:
            return {row[0] for row in conn.execute(query.encode(), (candidates,)).fetchall()}


def _quoted(table: str) -> str:
    return ".".join(sql.Identifier(part).as_string(None) for part in table.split("."))
