"""`postgres.export`: each table (or query) to a JSON Lines file, with a manifest.

Rows leave PostgreSQL as `row_to_json` through psycopg's COPY API, read as
`steps.postgres.json_rows` says (a pinned session, json read as jsonb), so that a row's text
depends on the row alone and is one line. In text format COPY would escape every backslash of
the JSON (the raw bytes would not be valid JSON Lines); in CSV format with a quote and a
delimiter that JSON never contains unescaped (\\x01, \\x02), COPY leaves the JSON as it is,
so whole blocks are written straight to the file with no work per row in Python. Memory stays
constant whatever the table's size. Each connection's rows are counted twice, by PostgreSQL and
by the lines written: a table whose counts differ fails the step, named.

A large table is read by several connections at once, each a range of its pages (ctid), all
in one snapshot exported by the first (`pg_export_snapshot`, as `pg_dump -j` does): the files
agree with each other and the server's cores share the work of `row_to_json`.

A table's file is written as `<file>.partial` and renamed only when complete, so after a crash
a table exported again starts clean: never a line twice, never a truncated line. Finished
tables are kept in the step's checkpoint and not exported again.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from cockpit.step_api import (
    ConnectionRef,
    Effect,
    Step,
    StepCancelled,
    StepContext,
    StepFailed,
    StepParams,
    Writeback,
    private_dir,
)
from steps.manifest import write_manifest
from steps.postgres.json_rows import EXACT_SESSION, column_types, copy_rows_as_json
from steps.postgres.sql import CancelWatch, connect

FLUSH_BYTES = 1 << 20
FLUSH_SECONDS = 0.2
PARALLEL_FROM_BYTES = 16 << 20  # below this one connection is quicker than coordinating several


class TableSpec(StepParams):
    name: str = Field(description="schema.table, e.g. public.cases")
    query: str | None = Field(default=None, description="a SELECT to export instead of the whole table")
    file: str | None = Field(default=None, description="file name; default the table's name + .jsonl")

    @property
    def file_name(self) -> str:
        return self.file or f"{self.name.rsplit('.', 1)[-1]}.jsonl"


class ExportParams(StepParams):
    connection: Annotated[str, ConnectionRef("postgres")]
    tables: list[TableSpec] = Field(min_length=1)
    out: str = Field(description="folder for the files and the manifest, relative to the runbook")
    jobs: int = Field(
        default=1,
        ge=1,
        le=16,
        description=("connections per large table: more help when the database server has cores to spare"),
    )

    @field_validator("tables", mode="before")
    @classmethod
    def _names_as_specs(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _distinct_files(self) -> ExportParams:
        seen: dict[str, str] = {}
        for table in self.tables:
            if table.file_name in seen:
                raise ValueError(
                    f"{table.name} and {seen[table.file_name]} would both write {table.file_name}: "
                    "give one of them a file name"
                )
            seen[table.file_name] = table.name
        return self


def _quote_table(name: str) -> str:
    from psycopg import sql

    return sql.Identifier(*name.split(".")).as_string(None)


class ExportStep(Step[ExportParams]):
    """Exports tables to JSON Lines; a probe (it only reads the database)."""

    kind = "postgres.export"
    effect = Effect.PROBE
    Params = ExportParams
    resumes = True

    def describe(self, params: ExportParams) -> str:
        return f"export {', '.join(t.name for t in params.tables)} to {params.out}"

    def run(self, ctx: StepContext[ExportParams]) -> None:
        params = ctx.params
        folder = private_dir(ctx.base_dir / params.out)
        done: dict[str, Any] = dict(ctx.checkpoint.get("done", {}))
        manifest: dict[str, Any] = {"tables": {}, "format": "jsonLines"}
        import psycopg

        with connect(ctx, params.connection, options=EXACT_SESSION) as conn, CancelWatch(conn, ctx.cancel):
            # One snapshot for every table: the files agree with each other.
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            manifest["server_version"] = conn.info.server_version
            manifest["database"] = conn.info.dbname
            # Other connections join this transaction's snapshot, for the large tables.
            snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]  # type: ignore[index]
            jobs = params.jobs
            for table in params.tables:
                previous = done.get(table.name)
                path = folder / table.file_name
                if previous and path.exists() and path.stat().st_size == previous["bytes"]:
                    ctx.log(f"{table.name}: exported before ({previous['rows']:,} rows), kept")
                    ctx.progress(previous["rows"], previous["rows"], "rows", table.name)
                    manifest["tables"][table.name] = previous
                    continue
                entry = self._export(ctx, conn, table, path, jobs, snapshot, params.connection)
                done[table.name] = entry
                manifest["tables"][table.name] = entry
                ctx.checkpoint["done"] = done
                ctx.metric(f"export.{table.name}.rows", entry["rows"])
            conn.rollback()  # nothing to keep: the snapshot was only read
        manifest["exported_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write_manifest(folder, manifest)
        total = sum(t["rows"] for t in manifest["tables"].values())
        ctx.log(f"exported {total:,} rows from {len(params.tables)} tables to {params.out}")
        for name, entry in manifest["tables"].items():
            ctx.log(f"  {name:<28} {entry['rows']:>10,} rows {entry['bytes']:>14,} bytes  {entry['file']}")

    def _export(
        self,
        ctx: StepContext[ExportParams],
        conn: Any,
        table: TableSpec,
        path: Path,
        jobs: int,
        snapshot: str,
        connection: str,
    ) -> dict[str, Any]:
        source = table.query or f"SELECT * FROM {_quote_table(table.name)}"
        types = column_types(conn, source)
        estimate = _estimate_rows(conn, source)
        ranges = _page_ranges(conn, table, jobs) if table.query is None else [None]
        started = time.monotonic()
        counter = _Counter(ctx, table.name, estimate)
        partial = path.with_name(path.name + ".partial")
        # The first range streams into the file itself (hashed as it comes); the others wait in
        # pieces, appended and hashed in order once all are read.
        pieces = [partial] + [path.with_name(f"{path.name}.partial-{i}") for i in range(1, len(ranges))]
        stop = threading.Event()  # one connection failed: the others stop too
        digest = hashlib.sha256()
        try:
            if len(ranges) == 1:
                self._copy(conn, table.name, source, types, partial, counter, ctx, stop, digest)
            else:
                from psycopg import sql

                errors: list[BaseException] = []

                def work(index: int) -> None:
                    try:
                        with (
                            connect(ctx, connection, autocommit=True, options=EXACT_SESSION) as own,
                            CancelWatch(own, ctx.cancel),
                        ):
                            own.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                            own.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
                            self._copy(
                                own,
                                table.name,
                                _in_range(source, ranges[index]),
                                types,
                                pieces[index],
                                counter,
                                ctx,
                                stop,
                                digest if index == 0 else None,
                                durable=False,
                                kept=index == 0,
                            )
                            own.execute("ROLLBACK")
                    except BaseException as exc:  # reported by the caller
                        errors.append(exc)
                        stop.set()

                threads = [
                    threading.Thread(target=work, args=(i,), name=f"export-{table.name}-{i}")
                    for i in range(len(ranges))
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                if errors:
                    raise errors[0]
                _append(pieces[1:], partial, digest)
            rows, size = counter.rows, partial.stat().st_size
        except BaseException:
            for piece in pieces:
                piece.unlink(missing_ok=True)
            raise
        os.replace(partial, path)
        seconds = time.monotonic() - started
        ctx.progress(rows, rows, "rows", table.name)
        rate = rows / seconds if seconds > 0 else 0.0
        how = f" by {len(ranges)} connections" if len(ranges) > 1 else ""
        ctx.log(f"{table.name}: {rows:,} rows, {size:,} bytes in {seconds:.1f}s ({rate:,.0f} rows/s){how}")
        return {
            "file": path.name,
            "rows": rows,
            "bytes": size,
            "sha256": digest.hexdigest(),
            "source": source,
            "columns": types,
        }

    @staticmethod
    def _copy(
        conn: Any,
        name: str,
        source: str,
        types: dict[str, str],
        target: Path,
        counter: _Counter,
        ctx: StepContext[ExportParams],
        stop: threading.Event,
        digest: Any,
        durable: bool = True,
        kept: bool = True,
    ) -> None:
        """Copy the rows of `source` into `target`. `kept`: the file is (the start of) the table's
        file, so its pages go to disk as they come; `durable`: sync it at the end."""
        import psycopg

        sql = copy_rows_as_json(source, types)
        lines = 0
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb", buffering=0) as out, conn.cursor() as cur:
                with cur.copy(sql.encode()) as copy:
                    # PostgreSQL sends one message per row: gathered into blocks of up to a megabyte
                    # or a fifth of a second, the hash, the count, the write and the checks run per
                    # block, not per row (per-row work held the interpreter while the other
                    # connections waited).
                    block = bytearray()
                    flushed = time.monotonic()
                    # A piece is only read back and appended: its pages need never reach the disk.
                    writeback = Writeback(out.fileno()) if kept else None

                    def flush() -> None:
                        nonlocal flushed, lines
                        flushed = time.monotonic()
                        out.write(block)
                        if writeback is not None:
                            writeback.wrote(len(block))
                        if digest is not None:
                            digest.update(block)
                        written = block.count(b"\n")
                        lines += written
                        counter.add(written)
                        block.clear()
                        if ctx.cancelled:
                            raise StepCancelled("export cancelled")
                        if stop.is_set():
                            raise StepFailed("stopped: another connection of this table failed")

                    for row in copy:
                        block += row
                        if len(block) >= FLUSH_BYTES or time.monotonic() - flushed >= FLUSH_SECONDS:
                            flush()
                    flush()
                # Counted twice, by PostgreSQL and by the lines: a row written over two lines
                # would otherwise pass as two rows, and the transform would reject halves.
                if cur.rowcount >= 0 and cur.rowcount != lines:
                    raise StepFailed(
                        f"{name}: PostgreSQL sent {cur.rowcount:,} rows but they make {lines:,} lines: "
                        "a value was written over more than one line; nothing of this table is kept"
                    )
                if durable:  # with several connections, the joined file is synced once
                    os.fsync(out.fileno())
        except psycopg.errors.QueryCanceled:
            raise StepCancelled("export cancelled") from None
        except psycopg.Error as exc:
            ctx.raise_if_cancelled()  # the connection was cut to stop at once
            raise StepFailed(f"{exc.sqlstate or 'error'}: {str(exc).strip().splitlines()[0]}") from None


class _Counter:
    """Rows copied so far, across the connections of one table; reports progress now and then."""

    def __init__(self, ctx: StepContext[Any], label: str, estimate: int) -> None:
        self._ctx = ctx
        self._label = label
        self._estimate = estimate
        self._lock = threading.Lock()
        self._rows = 0
        self._last = 0.0

    @property
    def rows(self) -> int:
        with self._lock:
            return self._rows

    def add(self, rows: int) -> None:
        with self._lock:
            self._rows += rows
            now = time.monotonic()
            if now - self._last < 0.2:
                return
            self._last = now
            done = self._rows
        self._ctx.progress(done, max(self._estimate, done) if self._estimate else None, "rows", self._label)


def _page_ranges(conn: Any, table: TableSpec, jobs: int) -> list[tuple[int, int | None] | None]:
    """Split a large table into `jobs` ranges of pages; a small one is one range."""
    if jobs <= 1:
        return [None]
    row = conn.execute(
        "SELECT pg_relation_size(%s::regclass), current_setting('block_size')::int", (table.name,)
    ).fetchone()
    size, block = int(row[0]), int(row[1])
    if size < PARALLEL_FROM_BYTES:
        return [None]
    pages = size // block + 1
    step = pages // jobs + 1
    bounds = [i * step for i in range(jobs)]
    return [(start, bounds[i + 1] if i + 1 < len(bounds) else None) for i, start in enumerate(bounds)]


def _in_range(source: str, pages: tuple[int, int | None] | None) -> str:
    if pages is None:
        return source
    start, end = pages
    condition = f"ctid >= '({start},0)'::tid" + (f" AND ctid < '({end},0)'::tid" if end is not None else "")
    return f"{source} WHERE {condition}"


def _append(pieces: list[Path], target: Path, digest: Any) -> None:
    """Append the pieces to `target` in order, hashing them, then sync it once.

    The kernel copies (copy_file_range); Python only reads each piece back, from the page
    cache, for the hash.
    """
    fd = os.open(target, os.O_WRONLY)  # not O_APPEND: copy_file_range refuses it
    try:
        os.lseek(fd, 0, os.SEEK_END)
        writeback = Writeback(fd)
        for piece in pieces:
            with piece.open("rb") as src:
                while block := src.read(1 << 20):
                    digest.update(block)
                remaining = os.fstat(src.fileno()).st_size
                src.seek(0)
                while remaining > 0:
                    copied = os.copy_file_range(src.fileno(), fd, min(remaining, writeback.every))
                    if copied == 0:
                        raise OSError(f"{piece.name}: copy stopped with {remaining:,} bytes left")
                    remaining -= copied
                    writeback.wrote(copied)
            piece.unlink()
        os.fsync(fd)
    finally:
        os.close(fd)


def _estimate_rows(conn: Any, source: str) -> int:
    """The planner's row estimate (no scan): good enough for a progress bar and an ETA."""
    import psycopg

    try:
        with conn.transaction():  # a savepoint: a failed estimate must not abort the snapshot
            plan = conn.execute(f"EXPLAIN (FORMAT JSON) {source}").fetchone()[0]
        return int(plan[0]["Plan"]["Plan Rows"])
    except (psycopg.Error, LookupError, TypeError, ValueError):
        return 0
