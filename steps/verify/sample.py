"""`verify.sample`: a reproducible random sample of v1 rows, compared field by field with v2.

The sample is chosen by a hash of the seed and each row's primary key (`md5(seed || id)`), so
the same seed picks the same rows every time, whatever the table's physical order. Each
sampled row is read exactly as the export read it (`row_to_json` through COPY), put through
the same transform (`steps.rows.documents.document_of`), and compared with the document found in
v2 by its `legacyId`: every field must be there with the same value. Rows the transform
rejects must not be in v2. Memory stays constant: rows stream in batches. A large sample is
spread over one process per CPU (steps/verify/sample_compare.py does a batch).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from pydantic import Field

from cockpit.step_api import StepContext, StepFailed
from steps.convex.client import ConvexClient
from steps.convex.resolve import load_checked_mapping
from steps.postgres.json_rows import EXACT_SESSION, ROW, column_types, copy_rows_as_json
from steps.postgres.sql import CancelWatch, connect, quote_table
from steps.rows.mapping import Mapping
from steps.verify.sample_compare import (
    SHOWN_MISMATCHES,
    SYSTEM_FIELDS,
    BatchComparer,
    BatchResult,
    compare_in_worker,
    start_worker,
)
from steps.verify.verification import (
    Verification,
    VerifyParams,
    chosen_tables,
    log_table,
    transformed_tables,
)

FETCHES_IN_FLIGHT = 3
MAX_WORKERS = 16
# One per CPU by default, but no more than this: each asks v2 for its batches at once.
DEFAULT_MAX_WORKERS = 4
# Fewer sampled rows than this are compared in this process: a spawned worker's imports cost
# about as much as comparing a few thousand rows.
WORKERS_FROM_ROWS = 20_000


class SampleParams(VerifyParams):
    fraction: float = Field(default=0.1, gt=0, le=1, description="the share of rows compared")
    seed: str = Field(default="cutover-cockpit", description="the same seed picks the same rows")
    batch: int = Field(default=500, ge=1, le=4000, description="documents fetched per call (a lookup each)")
    max_mismatches: int = Field(default=0, ge=0)
    workers: int = Field(
        default=0,
        ge=0,
        le=MAX_WORKERS,
        description="processes comparing batches; 0: one per CPU (up to 4), one for a small sample",
    )


def sample_condition(pk: str, fraction: float, seed: str) -> str:
    """SQL keeping a row when the hash of seed and key falls under the fraction."""
    from psycopg import sql

    if fraction >= 1:
        return "true"
    threshold = f"{int(fraction * 16**8):08x}"
    return (
        sql.SQL("left(md5({} || {}.{}::text), 8) < {}")
        .format(sql.Literal(seed), sql.SQL(ROW), sql.Identifier(pk), sql.Literal(threshold))
        .as_string(None)
    )


class SampleStep(Verification[SampleParams]):
    """Compares a random sample of rows with their documents, field by field."""

    kind = "verify.sample"
    Params = SampleParams

    def describe(self, params: SampleParams) -> str:
        return (
            f"compare {params.fraction:.0%} of the rows of {params.source!r} with {params.target!r}, "
            f"field by field (seed {params.seed!r})"
        )

    def run(self, ctx: StepContext[SampleParams]) -> None:
        params = ctx.params
        mapping = load_checked_mapping(ctx.base_dir, params.mapping)
        sources = chosen_tables(mapping, params.tables)
        transformed = transformed_tables(ctx, params)
        rows, wrong_total, missing_total = [], 0, 0
        started = time.monotonic()
        with self.client(ctx, params) as client:
            for source in sources:
                figures = self._table(ctx, client, params, mapping, source, transformed.get(mapping.target_of(source)))
                wrong_total += figures.wrong
                missing_total += figures.missing
                verdict = "ok" if not figures.wrong and not figures.missing else "DIFFERS"
                rows.append(
                    [
                        f"{source} -> {mapping.target_of(source)}",
                        figures.sampled,
                        figures.rejected,
                        figures.missing,
                        figures.wrong,
                        verdict,
                    ]
                )
        log_table(ctx, ["table", "sampled", "rejected", "missing", "differ", ""], rows)
        ctx.log(f"compared in {time.monotonic() - started:.1f}s")
        ctx.metric("sample.rows_missing", missing_total)
        ctx.metric("sample.rows_differ", wrong_total)
        if missing_total + wrong_total > params.max_mismatches:
            raise StepFailed(
                f"{missing_total:,} sampled rows missing in v2 and {wrong_total:,} that differ "
                f"(max_mismatches {params.max_mismatches:,})"
            )

    def _table(
        self,
        ctx: StepContext[SampleParams],
        client: ConvexClient,
        params: SampleParams,
        mapping: Mapping,
        source: str,
        entry: dict[str, Any] | None,
    ) -> BatchResult:
        table = mapping.tables[source]
        target = table.target
        pk = table.primary_key or mapping.defaults.primary_key
        ignored = SYSTEM_FIELDS | {r.id_field for r in mapping.references() if r.source_table == source}
        types = self._column_types(ctx, params, source)
        comparer = BatchComparer(client, params.functions, target, mapping.compile(source, types), pk, ignored)
        figures = BatchResult()
        estimate = int(int(entry["input_rows"]) * params.fraction) if entry else None
        rows_by_process: dict[int, int] = {}

        def record(result: BatchResult) -> None:
            for field in ("sampled", "rejected", "missing", "wrong"):
                setattr(figures, field, getattr(figures, field) + getattr(result, field))
            rows_by_process[result.process] = rows_by_process.get(result.process, 0) + result.sampled
            for line in result.log:
                ctx.log(line)
            for problem in result.problems:
                if len(figures.problems) < SHOWN_MISMATCHES:
                    figures.problems.append(problem)
                    ctx.log(problem)
            ctx.progress(figures.sampled, max(estimate or 0, figures.sampled) or None, "rows", f"{target} sampled")

        workers = params.workers
        if not workers:  # one per CPU, for a sample worth the workers' start
            small = estimate is not None and estimate < WORKERS_FROM_ROWS
            workers = 1 if small else min(os.cpu_count() or 1, DEFAULT_MAX_WORKERS)
        batches = self._sampled_lines(ctx, params, source, pk, types)
        if workers > 1:
            self._in_workers(ctx, params, mapping, source, types, comparer, batches, workers, record)
            here = rows_by_process.get(os.getpid(), 0)
            ctx.log(
                f"{target}: {figures.sampled:,} rows compared by {workers} processes ({here:,} here, "
                f"{figures.sampled - here:,} in {workers - 1} spawned)"
            )
        else:
            self._in_process(comparer, batches, record)
        if len(figures.problems) == SHOWN_MISMATCHES and figures.missing + figures.wrong > SHOWN_MISMATCHES:
            ctx.log(f"{target}: only the first {SHOWN_MISMATCHES} differences are shown")
        return figures

    @staticmethod
    def _in_process(
        comparer: BatchComparer, batches: Iterator[list[bytes]], record: Callable[[BatchResult], None]
    ) -> None:
        # v2 is asked for a batch while the next one is read from v1 and transformed: a few
        # batches in flight, in order, so memory stays bounded and a slow network is hidden.
        in_flight: deque[tuple[BatchResult, dict[str, bytes], Future[dict[str, dict[str, Any]]]]] = deque()
        with ThreadPoolExecutor(max_workers=FETCHES_IN_FLIGHT, thread_name_prefix="sample-fetch") as pool:
            for lines in batches:
                result = BatchResult()
                expected = comparer.expect(lines, result)
                in_flight.append((result, expected, pool.submit(comparer.fetch, list(expected))))
                while len(in_flight) >= FETCHES_IN_FLIGHT:
                    waiting, wanted, future = in_flight.popleft()
                    comparer.compare(wanted, future.result(), waiting)
                    record(waiting)
            while in_flight:
                waiting, wanted, future = in_flight.popleft()
                comparer.compare(wanted, future.result(), waiting)
                record(waiting)

    @staticmethod
    def _in_workers(
        ctx: StepContext[SampleParams],
        params: SampleParams,
        mapping: Mapping,
        source: str,
        types: dict[str, str],
        comparer: BatchComparer,
        batches: Iterator[list[bytes]],
        workers: int,
        record: Callable[[BatchResult], None],
    ) -> None:
        """Batches spread over this process and `workers - 1` spawned ones, recorded in order.

        The row work (parse, transform, compare) is bound by one interpreter;
        each CPU takes a share. This thread reads v1 and compares a batch itself only when the
        spawned ones have two each waiting: so one fewer process is spawned (each pays for its
        imports), and this one, which also serves the other steps running now,
        takes only what the others cannot."""
        connection = ctx.connection(params.target)
        # Spawned, not forked: the cockpit is threaded, and a fork copies locks held by other threads.
        pool = ProcessPoolExecutor(
            max_workers=workers - 1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=start_worker,
            initargs=(
                os.getpid(),
                connection.url,
                connection.deploy_key,
                str(mapping.path),
                source,
                types,
                comparer.functions,
                comparer.target,
                comparer.pk,
                comparer.ignored,
            ),
        )
        pending: deque[Future[BatchResult] | BatchResult] = deque()
        try:
            for lines in batches:
                queued = sum(1 for item in pending if isinstance(item, Future) and not item.done())
                if queued >= 2 * (workers - 1):
                    pending.append(comparer.batch(lines))
                else:
                    pending.append(pool.submit(compare_in_worker, lines))
                while len(pending) > workers * 2 or (pending and _ready(pending[0])):
                    record(_result(pending.popleft()))
                ctx.raise_if_cancelled()
            while pending:
                record(_result(pending.popleft()))
        except BrokenProcessPool:
            raise StepFailed(
                f"{comparer.target}: a worker process of the sample stopped (killed, or out of "
                "memory?); run the step again, or set workers = 1 to compare in this process"
            ) from None
        finally:
            for item in pending:
                if isinstance(item, Future):
                    item.cancel()
            pool.shutdown(wait=not ctx.cancelled, cancel_futures=True)

    @staticmethod
    def _column_types(ctx: StepContext[SampleParams], params: SampleParams, source: str) -> dict[str, str]:
        """The table's column types, as the export read them: number columns take their rule."""
        with connect(ctx, params.source, options=EXACT_SESSION) as conn:
            return column_types(conn, f"SELECT * FROM {quote_table(source)}")

    @staticmethod
    def _sampled_lines(
        ctx: StepContext[SampleParams], params: SampleParams, source: str, pk: str, types: dict[str, str]
    ) -> Iterator[list[bytes]]:
        """The sampled rows exactly as the export writes them (steps.postgres.json_rows), in batches."""
        import psycopg

        condition = sample_condition(pk, params.fraction, params.seed)
        query = copy_rows_as_json(f"SELECT * FROM {quote_table(source)}", types, where=condition)
        with connect(ctx, params.source, options=EXACT_SESSION) as conn, CancelWatch(conn, ctx.cancel):
            conn.read_only = True
            batch: list[bytes] = []
            rest = b""
            try:
                with conn.cursor() as cur, cur.copy(query.encode()) as copy:
                    for block in copy:
                        data = rest + bytes(block)
                        *complete, rest = data.split(b"\n")
                        batch.extend(complete)
                        while len(batch) >= params.batch:
                            yield batch[: params.batch]
                            del batch[: params.batch]
            except psycopg.Error as exc:
                if ctx.cancelled:
                    ctx.raise_if_cancelled()
                raise StepFailed(f"{source}: {str(exc).strip().splitlines()[0]}") from None
            if rest:
                batch.append(rest)
            if batch:
                yield batch


def _ready(item: Future[BatchResult] | BatchResult) -> bool:
    return not isinstance(item, Future) or item.done()


def _result(item: Future[BatchResult] | BatchResult) -> BatchResult:
    return item.result() if isinstance(item, Future) else item
