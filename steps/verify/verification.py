"""Verification of the migrated data: `verify.counts` and `verify.refs` (`verify.sample` and
`verify.calc` are in sample.py and calc.py beside this). Every verification is a probe: it
reads v1 and v2 and changes neither.

The tables and references come from the mapping file, so what is verified is exactly what
was transformed. Each step logs a table of results, publishes metrics for the runbook's
triggers (`rows_missing` is the one the data-loss trigger watches), and fails when a check
does not hold.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, TypeVar

from pydantic import Field

from cockpit.step_api import ConnectionRef, Effect, Step, StepContext, StepFailed, StepParams
from steps.convex.client import ConvexClient, ConvexFunctionError, shares_for
from steps.convex.resolve import load_checked_mapping
from steps.manifest import read_manifest
from steps.postgres.json_rows import EXACT_SESSION
from steps.postgres.sql import CancelWatch, connect, quote_table
from steps.rows.mapping import Mapping, MappingPath

# Convex reads at most 16 MiB and scans at most 32,000 documents in one transaction.
READ_LIMIT_BYTES = 16 << 20
MAX_PAGE = 8000


class VerifyParams(StepParams):
    source: Annotated[str, ConnectionRef("postgres")] = Field(description="v1")
    target: Annotated[str, ConnectionRef("convex")] = Field(description="v2")
    mapping: MappingPath = Field(description="the mapping file: which tables and references to verify")
    tables: list[str] = Field(default_factory=list, description="source or target tables; default all")
    transformed: str | None = Field(
        default=None, description="the transform's output folder: rejected rows and document sizes"
    )
    functions: str = Field(default="cockpit", description="the module holding the functions of convex/cockpit.ts")
    parallel: int = Field(
        default=2,
        ge=1,
        le=16,
        description="shares of a large table read at once (by creation time), each a chain of pages",
    )


def chosen_tables(mapping: Mapping, tables: list[str]) -> list[str]:
    """The source tables to verify: all of the mapping's, or those named by source or target."""
    known = {source: table.target for source, table in mapping.tables.items()}
    unknown = [t for t in tables if t not in known and t not in known.values()]
    if unknown:
        raise StepFailed(f"{', '.join(unknown)}: not in the mapping {mapping.path.name}")
    return [s for s, target in known.items() if not tables or s in tables or target in tables]


def transformed_tables(ctx: StepContext[Any], params: VerifyParams) -> dict[str, Any]:
    return read_manifest(ctx.base_dir / params.transformed)["tables"] if params.transformed else {}


def page_size(entry: dict[str, Any] | None) -> int:
    """Documents per page: well under Convex's read limit for documents of this table's size."""
    if not entry or not entry.get("output_rows"):
        return 2000
    average = max(entry["bytes"] / entry["output_rows"], 1.0)
    return max(1, min(MAX_PAGE, int(READ_LIMIT_BYTES / 2 / average)))


def log_table(ctx: StepContext[Any], header: list[str], rows: list[list[Any]]) -> None:
    """A plain-text table in the step's log: the first column left, numbers right."""
    cells = [[f"{v:,}" if isinstance(v, int) else str(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(header)]
    ctx.log(
        "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(header, widths, strict=True)))
    )
    for row in cells:
        ctx.log(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        )


# The verifications' parameters: VerifyParams, or a model that extends it (the sample's).
VP = TypeVar("VP", bound=VerifyParams)


class Verification(Step[VP]):
    effect = Effect.PROBE

    def client(self, ctx: StepContext[VP], params: VerifyParams) -> ConvexClient:
        connection = ctx.connection(params.target)
        return ConvexClient(connection.url, connection.deploy_key, cancel=ctx.cancel, log=ctx.log)


class CountsStep(Verification[VerifyParams]):
    """Source rows against target documents, table by table."""

    kind = "verify.counts"
    Params = VerifyParams

    def describe(self, params: VerifyParams) -> str:
        return f"count the rows of {params.source!r} and the documents of {params.target!r} ({params.mapping})"

    def run(self, ctx: StepContext[VerifyParams]) -> None:
        params = ctx.params
        mapping = load_checked_mapping(ctx.base_dir, params.mapping)
        sources = chosen_tables(mapping, params.tables)
        transformed = transformed_tables(ctx, params)
        started = time.monotonic()
        source_counts = self._source_counts(ctx, params, sources)
        with self.client(ctx, params) as client, ThreadPoolExecutor(max_workers=4) as pool:
            targets = [mapping.target_of(s) for s in sources]
            futures = {
                t: pool.submit(self._target_count, ctx, client, params, t, transformed.get(t), source_counts[s])
                for s, t in zip(sources, targets, strict=True)
            }
            target_counts = {t: f.result() for t, f in futures.items()}
        rows, missing_total, extra_total = [], 0, 0
        for source in sources:
            target = mapping.target_of(source)
            rejected = int((transformed.get(target) or {}).get("rejects", 0))
            expected = source_counts[source] - rejected
            missing = max(expected - target_counts[target], 0)
            extra = max(target_counts[target] - expected, 0)
            missing_total += missing
            extra_total += extra
            ctx.metric(f"counts.{target}.missing", missing)
            verdict = "ok" if not missing and not extra else "MISSING" if missing else "EXTRA"
            rows.append(
                [
                    f"{source} -> {target}",
                    source_counts[source],
                    rejected,
                    target_counts[target],
                    missing,
                    extra,
                    verdict,
                ]
            )
        log_table(ctx, ["table", "source", "rejected", "target", "missing", "extra", ""], rows)
        ctx.log(f"counted in {time.monotonic() - started:.1f}s")
        ctx.metric("rows_missing", missing_total)
        ctx.metric("rows_extra", extra_total)
        if missing_total or extra_total:
            raise StepFailed(f"{missing_total:,} rows missing and {extra_total:,} extra documents in v2")

    @staticmethod
    def _source_counts(ctx: StepContext[VerifyParams], params: VerifyParams, sources: list[str]) -> dict[str, int]:
        import psycopg

        with connect(ctx, params.source, options=EXACT_SESSION) as conn, CancelWatch(conn, ctx.cancel):
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ  # one moment for every table
            conn.read_only = True
            counts = {}
            for source in sources:
                row = conn.execute(f"SELECT count(*) FROM {quote_table(source)}").fetchone()
                counts[source] = int(row[0]) if row else 0
            conn.rollback()
        return counts

    @staticmethod
    def _target_count(
        ctx: StepContext[VerifyParams],
        client: ConvexClient,
        params: VerifyParams,
        table: str,
        entry: dict[str, Any] | None,
        expected: int,
    ) -> int:
        count = 0
        try:
            size = page_size(entry)
            for value in client.pages_in_shares(
                "query",
                f"{params.functions}:countPage",
                {"table": table},
                size,
                shares_for(params.parallel, entry, size),
            ):
                count += int(value["count"])
                ctx.progress(count, max(expected, count), "documents", f"{table} counted")
        except ConvexFunctionError as exc:
            raise StepFailed(f"{table}: {exc}") from None
        return count


class RefsStep(Verification[VerifyParams]):
    """Every reference resolved, and every resolved id names a document that exists."""

    kind = "verify.refs"
    Params = VerifyParams

    def describe(self, params: VerifyParams) -> str:
        return f"check every reference of {params.mapping} in {params.target!r}"

    def run(self, ctx: StepContext[VerifyParams]) -> None:
        params = ctx.params
        mapping = load_checked_mapping(ctx.base_dir, params.mapping)
        targets = {mapping.target_of(s) for s in chosen_tables(mapping, params.tables)}
        references = [r for r in mapping.references() if r.table in targets]
        transformed = transformed_tables(ctx, params)
        rows, bad_total = [], 0
        with self.client(ctx, params) as client, ThreadPoolExecutor(max_workers=4) as pool:
            futures = [
                pool.submit(
                    self._check,
                    ctx,
                    client,
                    params,
                    r.table,
                    r.legacy_field,
                    r.id_field,
                    r.target,
                    transformed.get(r.table),
                )
                for r in references
            ]
            for ref, future in zip(references, futures, strict=True):
                checked, unresolved, dangling = future.result()
                bad_total += unresolved + dangling
                ctx.metric(f"refs.{ref.table}.{ref.id_field}.unresolved", unresolved + dangling)
                rows.append(
                    [
                        f"{ref.table}.{ref.legacy_field} -> {ref.target}",
                        checked,
                        unresolved,
                        dangling,
                        "ok" if not unresolved and not dangling else "BROKEN",
                    ]
                )
        log_table(ctx, ["reference", "checked", "unresolved", "dangling", ""], rows)
        ctx.metric("refs_unresolved", bad_total)
        if bad_total:
            raise StepFailed(
                f"{bad_total:,} references do not lead to a v2 document: unresolved ones still need "
                "convex.resolve_refs; dangling ones name a document that does not exist"
            )

    @staticmethod
    def _check(
        ctx: StepContext[VerifyParams],
        client: ConvexClient,
        params: VerifyParams,
        table: str,
        legacy_field: str,
        id_field: str,
        target: str,
        entry: dict[str, Any] | None,
    ) -> tuple[int, int, int]:
        checked = unresolved = dangling = 0
        total = int(entry["output_rows"]) if entry else None
        args = {"table": table, "legacyField": legacy_field, "idField": id_field, "target": target}
        # Each document costs a lookup of its target, and Convex allows 4,096 reads per call.
        size = min(page_size(entry), 2000)
        try:
            for value in client.pages_in_shares(
                "query", f"{params.functions}:checkRefs", args, size, shares_for(params.parallel, entry, size)
            ):
                checked += int(value["checked"])
                unresolved += int(value["unresolved"])
                dangling += int(value["dangling"])
                ctx.progress(checked, total, "references", f"{table}.{id_field}")
        except ConvexFunctionError as exc:
            raise StepFailed(f"{table}.{id_field}: {exc}") from None
        # The total was the table's documents; an optional reference is in fewer of them.
        ctx.progress(checked, checked, "references", f"{table}.{id_field}")
        return checked, unresolved, dangling
