"""`postgres.restore`: put v1's data back from the window's backup, in one transaction.

The rollback's last resort, started by the operator only: v1 was read-only from before the
backup, so its data is the backup's, unless something wrote to it since. This step restores
`data.sql` into v1's existing schema: it checks every file against the backup's manifest,
then, in one psql transaction (`--single-transaction`, `ON_ERROR_STOP`), lets the transaction
write (v1 is still read-only), turns off triggers and foreign-key checks as Supabase's restore
does (`session_replication_role = replica`), empties the tables the backup holds data for, and
loads it. Any error rolls all of it back: v1 is left as it was. Then it counts the rows of each
table against the backup's.

For a new, empty database, apply roles.sql and schema.sql first (`psql -f`), then this step.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

from pydantic import Field

from cockpit.step_api import ConnectionRef, Effect, Step, StepContext, StepFailed, StepParams
from steps.basic import run_command
from steps.files import verify_folder
from steps.postgres.backup import find_dump_tools, libpq_environment
from steps.postgres.sql import connect

# A table's data in pg_dump's output: `COPY "public"."cases" ("id", ...) FROM stdin;`
_COPY = re.compile(rb'^COPY ((?:"(?:[^"]|"")+"|[\w$]+)\.(?:"(?:[^"]|"")+"|[\w$]+)) .* FROM stdin;$')
# What psql says after each COPY: how many rows it loaded.
_COPIED = re.compile(r"^COPY (\d+)$")


class RestoreParams(StepParams):
    connection: Annotated[str, ConnectionRef("postgres")]
    backup: str = Field(description="a postgres.backup's folder (manifest.json, data.sql), relative to the runbook")
    bin_dir: str | None = Field(default=None, description="folder of psql; default: found beside pg_dump")


class RestoreStep(Step[RestoreParams]):
    """Verifies the backup, then replaces the backed-up tables' rows with the backup's, atomically."""

    kind = "postgres.restore"
    effect = Effect.MUTATE
    Params = RestoreParams

    def describe(self, params: RestoreParams) -> str:
        return f"restore the data of {params.backup}/ into {params.connection!r} (one transaction)"

    def run(self, ctx: StepContext[RestoreParams]) -> None:
        params = ctx.params
        folder = ctx.base_dir / params.backup
        verify_folder(ctx, folder)
        data = folder / "data.sql"
        tables = tables_in(data)
        if not tables:
            raise StepFailed(f"{data} holds no table's data (no COPY statement)")
        with connect(ctx, params.connection) as conn:
            server_major = conn.info.server_version // 10000
            database = conn.info.dbname
        psql = find_dump_tools(params.bin_dir, server_major, ctx.base_dir) / "psql"
        if not psql.exists():
            raise StepFailed(f"no psql beside {psql.parent / 'pg_dump'}; set bin_dir")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(libpq_environment(ctx.connection(params.connection).dsn))
        env["PGAPPNAME"] = "cutover-cockpit-restore"
        argv = [
            str(psql),
            "--no-psqlrc",
            "--single-transaction",
            "--set",
            "ON_ERROR_STOP=1",
            "--command",
            "SET TRANSACTION READ WRITE",
            "--command",
            "SET session_replication_role = replica",
            "--command",
            f"TRUNCATE {', '.join(tables)}",
            "--file",
            str(data),
        ]
        ctx.log(f"restoring {len(tables)} tables of {database} from {data}: {', '.join(tables)}")
        loaded: list[int] = []

        def count(line: str) -> None:
            match = _COPIED.match(line.strip())
            if match:
                loaded.append(int(match.group(1)))
                ctx.progress(len(loaded), len(tables), "tables")

        run_command(ctx, argv, env, folder, watch=count)
        if len(loaded) != len(tables):
            raise StepFailed(f"psql loaded {len(loaded)} of {len(tables)} tables; see the log")
        with connect(ctx, params.connection) as conn:
            for table, rows in zip(tables, loaded, strict=True):
                found = int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]
                if found != rows:
                    raise StepFailed(f"{table} holds {found:,} rows after the restore, the backup {rows:,}")
        ctx.log(f"restored {sum(loaded):,} rows in {len(tables)} tables; each table's count matches the backup")
        ctx.metric(f"{ctx.step_id}.rows", sum(loaded))


def tables_in(data: Path) -> list[str]:
    """The tables pg_dump wrote data for, as it quoted them, in its order (read line by line: the
    file may be larger than memory)."""
    tables = []
    in_rows = False  # inside a COPY's rows, which end at a line `\.`: a row is never a header
    try:
        with data.open("rb") as f:
            for line in f:
                if in_rows:
                    in_rows = line.rstrip(b"\r\n") != b"\\."
                elif line.startswith(b"COPY "):
                    match = _COPY.match(line.rstrip(b"\n"))
                    if match:
                        tables.append(match.group(1).decode())
                        in_rows = True
    except FileNotFoundError:
        raise StepFailed(f"no {data.name} in {data.parent}") from None
    return tables
