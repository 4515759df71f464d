"""PostgreSQL kinds: `postgres.sql`, `postgres.read_only`, `postgres.read_write`."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from cockpit.step_api import ConnectionRef, Effect, Step, StepCancelled, StepContext, StepFailed, StepParams

if TYPE_CHECKING:
    import psycopg

# SQLSTATE 25006: "cannot execute ... in a read-only transaction".
READ_ONLY_SQL_TRANSACTION = "25006"
_APP = "cutover-cockpit"


def connect(ctx: StepContext[Any], name: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """Open a connection, turning libpq's failure into a one-line, secret-free message."""
    import psycopg

    dsn = ctx.connection(name).dsn
    try:
        return psycopg.connect(dsn, connect_timeout=10, application_name=_APP, **kwargs)
    except psycopg.OperationalError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StepFailed(f"cannot connect to {name!r}: {first}") from None


def query_rows(
    ctx: StepContext[Any], connection: str, sql: str, what: str, required: tuple[str, ...]
) -> list[dict[str, Any]]:
    """The rows of a query a runbook wrote (`what` names its parameter), as dicts by column; the
    query's error, or a required column it does not return, as one clear sentence."""
    import psycopg

    with connect(ctx, connection, autocommit=True) as conn:
        try:
            cursor = conn.execute(sql)
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StepFailed(f"{what}: {first}") from None
        names = [c.name for c in cursor.description or []]
        missing = [n for n in required if n not in names]
        if missing:
            returned = ", ".join(names) or "nothing"
            raise StepFailed(f"{what} returns no {', '.join(f'`{m}`' for m in missing)} column (it returns {returned})")
        return [dict(zip(names, row, strict=True)) for row in cursor]


def quote_table(name: str) -> str:
    """`schema.table` as a quoted SQL identifier."""
    from psycopg import sql

    return sql.Identifier(*name.split(".")).as_string(None)


class CancelWatch:
    """Cancels the connection's running query when the step is cancelled.

    The polite way first (a cancel request). A query that is still busy half a second later is
    usually a COPY draining what the server already sent over a slow link: then the socket is
    shut, so that the step stops now rather than when the buffers empty. The server rolls the
    transaction back either way.
    """

    GRACE = 0.5

    def __init__(self, conn: psycopg.Connection[Any], cancel: threading.Event) -> None:
        self._conn = conn
        self._cancel = cancel
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._done.is_set():
            if self._cancel.wait(0.1):
                with contextlib.suppress(Exception):  # the query may have ended meanwhile
                    self._conn.cancel_safe()
                if not self._done.wait(self.GRACE):
                    # A duplicate of the descriptor: shutting it ends the connection for both.
                    with contextlib.suppress(Exception), socket.socket(fileno=os.dup(self._conn.fileno())) as dup:
                        dup.shutdown(socket.SHUT_RDWR)
                return

    def __enter__(self) -> CancelWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()


class SqlParams(StepParams):
    connection: Annotated[str, ConnectionRef("postgres")]
    sql: str | list[str] = Field(description="one statement or a list, run in one transaction")
    expect: dict[str, Any] | None = Field(default=None, description="column = value the first row must hold")
    read_only: bool = Field(default=False, description="run in a READ ONLY transaction: the step is a probe")


class SqlStep(Step[SqlParams]):
    """Runs SQL in one transaction; logs the result; checks `expect` against the first row."""

    kind = "postgres.sql"
    effect = Effect.MUTATE
    Params = SqlParams

    def effect_of(self, params: SqlParams) -> Effect:
        return Effect.PROBE if params.read_only else Effect.MUTATE

    def describe(self, params: SqlParams) -> str:
        statements = [params.sql] if isinstance(params.sql, str) else params.sql
        return f"run {len(statements)} SQL statement(s) on {params.connection!r}: {_short(statements[0])}"

    def run(self, ctx: StepContext[SqlParams]) -> None:
        import psycopg

        params = ctx.params
        statements = [params.sql] if isinstance(params.sql, str) else params.sql
        with connect(ctx, params.connection) as conn, CancelWatch(conn, ctx.cancel):
            conn.read_only = params.read_only
            try:
                with conn.transaction(), conn.cursor() as cur:
                    for n, statement in enumerate(statements, 1):
                        ctx.raise_if_cancelled()
                        ctx.log(f"> {_short(statement)}")
                        cur.execute(statement.encode())
                        ctx.progress(n, len(statements), "statements")
                        if cur.description is None:
                            ctx.log(f"  {cur.statusmessage}")
                    columns = [d.name for d in cur.description] if cur.description else []
                    rows = cur.fetchmany(21) if cur.description else []
            except psycopg.errors.QueryCanceled:
                if ctx.cancelled:
                    raise StepCancelled("query cancelled") from None
                raise
            except psycopg.Error as exc:
                raise StepFailed(f"{exc.sqlstate or 'error'}: {str(exc).strip().splitlines()[0]}") from None
        if columns:
            for line in _table(columns, rows[:20]):
                ctx.log(line)
            if len(rows) > 20:
                ctx.log("  (more rows not shown)")
        if params.expect is not None:
            if not rows:
                raise StepFailed(f"expected a row with {params.expect}, but the query returned none")
            first = dict(zip(columns, rows[0], strict=True))
            mismatches = []
            for column, want in params.expect.items():
                if column not in first:
                    mismatches.append(f"no column {column!r} (columns: {', '.join(columns)})")
                elif not _same(first[column], want):
                    mismatches.append(f"{column} is {first[column]!r}, expected {want!r}")
            if mismatches:
                raise StepFailed("; ".join(mismatches))
            ctx.log(f"expect holds: {params.expect}")


def _same(actual: Any, expected: Any) -> bool:
    if expected is None or actual is None:
        return actual is expected
    if isinstance(expected, bool) or isinstance(actual, bool):
        return actual is expected if isinstance(actual, bool) else str(actual).lower() == str(expected).lower()
    if isinstance(expected, int | float):
        try:
            return Decimal(str(actual)) == Decimal(str(expected))
        except InvalidOperation:
            return False
    return str(actual) == str(expected)


def _short(sql: str, limit: int = 100) -> str:
    one = " ".join(sql.split())
    return one if len(one) <= limit else one[: limit - 1] + "…"


def _table(columns: list[str], rows: list[tuple[Any, ...]]) -> list[str]:
    cells = [[("NULL" if v is None else str(v)).replace("\n", "\\n") for v in row] for row in rows]
    widths = [min(40, max([len(c)] + [len(r[i]) for r in cells])) for i, c in enumerate(columns)]

    def fmt(values: list[str]) -> str:
        return "  " + " | ".join(v[:w].ljust(w) for v, w in zip(values, widths, strict=True))

    return [fmt(columns), "  " + "-+-".join("-" * w for w in widths), *(fmt(r) for r in cells)]


class AccessParams(StepParams):
    connection: Annotated[str, ConnectionRef("postgres")]
    roles: list[str] = Field(min_length=1, description="the application's roles, e.g. authenticated, anon")


class _AccessStep(Step[AccessParams]):
    """Sets the database's default_transaction_read_only, ends the roles' sessions, proves the effect."""

    effect = Effect.MUTATE
    Params = AccessParams
    read_only = True

    def describe(self, params: AccessParams) -> str:
        mode = "read-only" if self.read_only else "read-write"
        return f"set the database of {params.connection!r} {mode} and end the sessions of {', '.join(params.roles)}"

    def run(self, ctx: StepContext[AccessParams]) -> None:
        import psycopg
        from psycopg import sql

        params = ctx.params
        setting = "on" if self.read_only else "off"
        with connect(ctx, params.connection, autocommit=True) as conn:
            # Once the database defaults to read-only, so does this session: the undo could never run.
            conn.execute("SET default_transaction_read_only = off")
            database = conn.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
            found = {
                r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (params.roles,))
            }
            missing = [r for r in params.roles if r not in found]
            if missing:
                raise StepFailed(f"no such role in {database!r}: {', '.join(missing)}")
            try:
                conn.execute(
                    sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = {}").format(
                        sql.Identifier(database), sql.SQL(setting)
                    )
                )
            except psycopg.Error as exc:
                raise StepFailed(f"cannot change {database!r}: {str(exc).strip().splitlines()[0]}") from None
            ctx.log(f"ALTER DATABASE {database} SET default_transaction_read_only = {setting}")
            ctx.raise_if_cancelled()
            ended = conn.execute(
                "SELECT usename, count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = %s AND usename = ANY(%s) AND pid <> pg_backend_pid() GROUP BY usename",
                (database, params.roles),
            ).fetchall()
            total = sum(n for _, n in ended)
            detail = ", ".join(f"{n} of {u}" for u, n in ended) or "none were open"
            ctx.log(f"ended {total} open session(s) so they reconnect with the new default: {detail}")
        ctx.progress(1, 2, "stages")
        for role in params.roles:
            ctx.raise_if_cancelled()
            self._prove(ctx, params.connection, role)
        ctx.progress(2, 2, "stages")

    def _prove(self, ctx: StepContext[AccessParams], connection: str, role: str) -> None:
        """Attempt a write as `role` in a fresh session: refused when read-only, accepted otherwise."""
        import psycopg
        from psycopg import sql

        with connect(ctx, connection) as conn:
            try:
                conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
            except psycopg.Error as exc:
                raise StepFailed(
                    f"cannot act as {role!r} to prove the change (the connection's user must be a "
                    f"member of it): {str(exc).strip().splitlines()[0]}"
                ) from None
            try:
                conn.execute("CREATE TEMP TABLE cockpit_write_probe (x int)")
                conn.execute("INSERT INTO cockpit_write_probe VALUES (1)")
                refused: psycopg.Error | None = None
            except psycopg.Error as exc:
                refused = exc
            finally:
                conn.rollback()
        if self.read_only:
            if refused is None:
                raise StepFailed(f"a write as {role!r} was accepted: the database is not read-only for it")
            if refused.sqlstate != READ_ONLY_SQL_TRANSACTION:
                raise StepFailed(
                    f"a write as {role!r} failed, but not because of read-only mode: "
                    f"{refused.sqlstate}: {str(refused).strip().splitlines()[0]}"
                )
            ctx.log(f"proved: a write as {role} is refused ({READ_ONLY_SQL_TRANSACTION} read-only transaction)")
        else:
            if refused is not None and refused.sqlstate == READ_ONLY_SQL_TRANSACTION:
                raise StepFailed(f"a write as {role!r} is still refused as read-only")
            if refused is not None:
                ctx.log(
                    f"a write as {role} is no longer refused as read-only (the probe itself failed: {refused.sqlstate})"
                )
            else:
                ctx.log(f"proved: a write as {role} is accepted")


class ReadOnlyStep(_AccessStep):
    kind = "postgres.read_only"
    read_only = True


class ReadWriteStep(_AccessStep):
    kind = "postgres.read_write"
    read_only = False
