"""`sync`: the incremental sync (cockpit sync) as a runbook step, so that v2 is bulk-loaded
the day before and the window moves only the day's changes.

    [[step]]
    id = "sync"
    kind = "sync"
    with = { source = "v1", target = "v2", mapping = "migration/perm-mapping.toml" }

A retry continues after the last batch that committed (each batch carries its watermark); a
dry run says per table what would change and writes nothing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationInfo, model_validator

from cockpit.step_api import ConnectionRef, Effect, Step, StepContext, StepFailed, StepParams
from migrate.sync import Syncer, SyncRefused, TableSync
from migrate.sync_source import Source
from steps.convex.client import ConvexClient, ConvexError
from steps.rows.mapping import MappingError, MappingPath, load_mapping


class SyncParams(StepParams):
    source: Annotated[str, ConnectionRef("postgres")]
    target: Annotated[str, ConnectionRef("convex")]
    mapping: MappingPath
    tables: list[str] = Field(default_factory=list, description="v1 or Convex names; default every mapped table")
    limit: int | None = Field(default=None, ge=1, description="at most this many changed rows per table")

    @model_validator(mode="after")
    def _tables_are_mapped(self, info: ValidationInfo) -> SyncParams:
        """A table the mapping lacks is the runbook's problem, found by `cockpit check`."""
        base = (info.context or {}).get("base_dir")
        if base is None or not self.tables:
            return self
        try:
            mapping = load_mapping(Path(base) / self.mapping)
        except MappingError:
            return self  # the mapping's own check says what is wrong with it
        known = set(mapping.tables) | {table.target for table in mapping.tables.values()}
        unknown = [name for name in self.tables if name not in known]
        if unknown:
            raise ValueError(f"tables: the mapping {self.mapping} has no table {', '.join(unknown)}")
        return self


class SyncStep(Step[SyncParams]):
    kind = "sync"
    effect = Effect.MUTATE
    Params = SyncParams
    dry_runs = True
    resumes = True

    def describe(self, params: SyncParams) -> str:
        which = ", ".join(params.tables) or "every mapped table"
        return f"sync the rows of {params.source!r} changed since the last sync into {params.target!r} ({which})"

    def run(self, ctx: StepContext[SyncParams]) -> None:
        params = ctx.params
        target = ctx.connection(params.target)  # switched off, the step is skipped before it runs
        mapping = load_mapping(ctx.base_dir / params.mapping)
        source = Source(ctx.connection(params.source).dsn)
        client = ConvexClient(target.url, target.deploy_key, cancel=ctx.cancel, log=ctx.log)
        syncer: Syncer | None = None
        try:
            syncer = Syncer(
                mapping,
                source,
                client,
                log=ctx.log,
                dry_run=ctx.dry_run,
                limit=params.limit,
                progress=lambda table: _rows_bar(ctx, table),
            )
            tables = syncer.tables(params.tables)
            marks = syncer.watermarks()
            rejected = 0
            for index, table in enumerate(tables):
                ctx.raise_if_cancelled()
                ctx.progress(index, len(tables), "tables", "sync")
                started = time.monotonic()
                result = syncer.sync_table(table, marks.get(syncer.target_of(table)))
                rejected += len(result.rejected)
                for line in result.summary(f" in {time.monotonic() - started:.1f}s").splitlines():
                    ctx.log(line)
                for reason in result.rejected[:10]:
                    ctx.log(f"  rejected {reason}")
                ctx.metric(f"sync.{result.target}.changed", result.inserted + result.updated + result.deleted)
            ctx.progress(len(tables), len(tables), "tables", "sync")
        except SyncRefused as exc:
            raise StepFailed(str(exc)) from None
        except ConvexError as exc:
            raise StepFailed(f"{exc}; the batches before it are in, and a retry continues from there") from None
        finally:
            if syncer is not None:
                syncer.close()
            client.close()
            source.close()
        if rejected:
            raise StepFailed(f"{rejected} rows could not be transformed (the first named in the log)")


def _rows_bar(ctx: StepContext[SyncParams], table: TableSync) -> None:
    """A bar for a table's rows; none for a table with nothing to read (the log says so)."""
    if table.to_read:
        ctx.progress(table.processed, table.to_read, "rows", table.target)
