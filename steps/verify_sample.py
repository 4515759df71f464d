"""`verify.sample`: a reproducible random sample of v1 rows, compared field by field with v2.

The sample is chosen by a hash of the seed and each row's primary key (`md5(seed || id)`), so
the same seed picks the same rows every time, whatever the table's physical order. Each
sampled row is read exactly as the export read it (`row_to_json` through COPY), put through
the same transform (`steps.transform.converted`), and compared with the document found in
v2 by its `legacyId`: every field must be there with the same value. Rows the transform
rejects must not be in v2. Memory stays constant: rows stream in batches.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import compress
from typing import Any

from pydantic import Field
from pydantic_core import from_json

from cockpit.step import StepContext, StepFailed, StepParams
from steps.convex_client import ConvexClient, ConvexFunctionError
from steps.convex_resolve import load_checked_mapping
from steps.mapping import Mapping, RejectRow
from steps.pg_export import COPY_OPTIONS
from steps.postgres import CancelWatch, connect
from steps.transform import converted
from steps.verify import VerifyParams, _Verification, chosen_tables, log_table, quote_table, transformed_tables

SYSTEM_FIELDS = frozenset({"_id", "_creationTime"})
FETCHES_IN_FLIGHT = 3
SHOWN_MISMATCHES = 20


class SampleParams(VerifyParams):
    fraction: float = Field(default=0.1, gt=0, le=1, description="the share of rows compared")
    seed: str = Field(default="cutover-cockpit", description="the same seed picks the same rows")
    batch: int = Field(default=500, ge=1, le=4000, description="documents fetched per call (a lookup each)")
    max_mismatches: int = Field(default=0, ge=0)


def sample_condition(pk: str, fraction: float, seed: str) -> str:
    """SQL keeping a row when the hash of seed and key falls under the fraction."""
    from psycopg import sql

    if fraction >= 1:
        return "true"
    threshold = f"{int(fraction * 16**8):08x}"
    return sql.SQL("left(md5({} || r.{}::text), 8) < {}").format(
        sql.Literal(seed), sql.Identifier(pk), sql.Literal(threshold)).as_string(None)


def differences(expected: dict[str, Any], found: dict[str, Any], ignored: frozenset[str]) -> list[str]:
    """The fields that differ, each as `field: v1 x, v2 y` (values shortened)."""
    if _alike(expected, found, ignored):
        return []
    out = []
    for field, value in expected.items():
        if field not in found:
            out.append(f"{field}: missing in v2")
        elif not _same(value, found[field]):
            out.append(f"{field}: v1 {_brief(value)}, v2 {_brief(found[field])}")
    for field in found.keys() - expected.keys() - ignored:
        out.append(f"{field}: only in v2 ({_brief(found[field])})")
    return out


def _alike(expected: dict[str, Any], found: dict[str, Any], ignored: frozenset[str]) -> bool:
    """Most documents match: say so with C-level operations on the whole document (measured:
    a 32-field case in 9 us, against 20 us field by field). False means: look field by field."""
    try:
        kinds = list(map(type, expected.values()))
        # Same types at the top: `==` then means `_same` for str, int, float and bool (True == 1
        # would otherwise pass, and 5 against 5.0 is left to the careful path).
        if kinds != list(map(type, map(found.__getitem__, expected))):
            return False
    except KeyError:  # a field missing in v2
        return False
    if not expected.items() <= found.items():
        return False
    if len(found) != len(expected) + sum(1 for k in ignored if k in found and k not in expected):
        return False  # a field only in v2
    if not _CONTAINERS.isdisjoint(kinds):
        # Inside lists and objects `==` does not tell True from 1; equal reprs do (and 5 against
        # 5.0 goes to `_same`).
        for key in compress(expected, map(_CONTAINERS.__contains__, kinds)):
            if repr(expected[key]) != repr(found[key]) and not _same(expected[key], found[key]):
                return False
    return True


_CONTAINERS = frozenset({list, dict})


def _same(a: Any, b: Any) -> bool:
    # Convex numbers are float64: 5 and 5.0 are the same value; True is not 1.
    kind = type(a)
    if kind is type(b) and (kind is str or kind is int or kind is float or kind is bool):
        return bool(a == b)  # most fields: no conversions to weigh
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class SampleStep(_Verification):
    """Compares a random sample of rows with their documents, field by field."""

    kind = "verify.sample"
    Params = SampleParams

    def describe(self, params: StepParams) -> str:
        assert isinstance(params, SampleParams)
        return (f"compare {params.fraction:.0%} of the rows of {params.source!r} with {params.target!r}, "
                f"field by field (seed {params.seed!r})")

    def run(self, ctx: StepContext) -> None:
        params = ctx.params
        assert isinstance(params, SampleParams)
        mapping = load_checked_mapping(ctx.base_dir, params.mapping)
        sources = chosen_tables(mapping, params.tables)
        transformed = transformed_tables(ctx, params)
        rows, wrong_total, missing_total = [], 0, 0
        started = time.monotonic()
        with self.client(ctx, params) as client:
            for source in sources:
                figures = self._table(ctx, client, params, mapping, source, transformed.get(mapping.target_of(source)))
                wrong_total += figures["wrong"]
                missing_total += figures["missing"]
                verdict = "ok" if not figures["wrong"] and not figures["missing"] else "DIFFERS"
                rows.append([f"{source} -> {mapping.target_of(source)}", figures["sampled"], figures["rejected"],
                             figures["missing"], figures["wrong"], verdict])
        log_table(ctx, ["table", "sampled", "rejected", "missing", "differ", ""], rows)
        ctx.log(f"compared in {time.monotonic() - started:.1f}s")
        ctx.metric("sample.rows_missing", missing_total)
        ctx.metric("sample.rows_differ", wrong_total)
        if missing_total + wrong_total > params.max_mismatches:
            raise StepFailed(f"{missing_total:,} sampled rows missing in v2 and {wrong_total:,} that differ "
                             f"(max_mismatches {params.max_mismatches:,})")

    def _table(self, ctx: StepContext, client: ConvexClient, params: SampleParams, mapping: Mapping, source: str,
               entry: dict[str, Any] | None) -> dict[str, int]:
        table = mapping.tables[source]
        target = table.target
        pk = table.primary_key or mapping.defaults.primary_key
        transform = mapping.compile(source)
        ignored = SYSTEM_FIELDS | {r.id_field for r in mapping.references() if r.source_table == source}
        figures = {"sampled": 0, "rejected": 0, "missing": 0, "wrong": 0}
        estimate = int(int(entry["input_rows"]) * params.fraction) if entry else None
        shown = 0
        def compare(expected: dict[str, dict[str, Any]], found: dict[str, dict[str, Any]]) -> None:
            nonlocal shown
            for legacy_id, document in expected.items():
                problems: list[str]
                if not document:
                    problems = ["rejected by the transform, but in v2"] if legacy_id in found else []
                    figures["wrong"] += bool(problems)
                elif legacy_id not in found:
                    figures["missing"] += 1
                    problems = ["not in v2"]
                else:
                    problems = differences(document, found[legacy_id], ignored)
                    figures["wrong"] += bool(problems)
                if problems and shown < SHOWN_MISMATCHES:
                    shown += 1
                    ctx.log(f"{target} {legacy_id}: {'; '.join(problems)}")
            ctx.progress(figures["sampled"], max(estimate or 0, figures["sampled"]) or None, "rows",
                         f"{target} sampled")

        # v2 is asked for a batch while the next one is read from v1 and transformed: a few
        # batches in flight, in order, so memory stays bounded.
        in_flight: deque[tuple[dict[str, dict[str, Any]], Future[dict[str, dict[str, Any]]]]] = deque()
        with ThreadPoolExecutor(max_workers=FETCHES_IN_FLIGHT, thread_name_prefix="sample-fetch") as pool:
            for lines in self._sampled_lines(ctx, params, source, pk):
                expected: dict[str, dict[str, Any]] = {}
                for line in lines:
                    figures["sampled"] += 1
                    try:
                        document = converted(transform, line)[0]
                    except RejectRow:
                        legacy = _key_of(line, pk)
                        figures["rejected"] += 1
                        if legacy is not None:
                            expected[str(legacy)] = {}  # rejected: it must not be in v2
                        continue
                    expected[str(document["legacyId"])] = document
                in_flight.append((expected, pool.submit(self._fetch, client, params, target, list(expected))))
                while len(in_flight) >= FETCHES_IN_FLIGHT:
                    waiting, future = in_flight.popleft()
                    compare(waiting, future.result())
            while in_flight:
                waiting, future = in_flight.popleft()
                compare(waiting, future.result())
        if shown == SHOWN_MISMATCHES:
            ctx.log(f"{target}: only the first {SHOWN_MISMATCHES} differences are shown")
        return figures

    @staticmethod
    def _sampled_lines(ctx: StepContext, params: SampleParams, source: str, pk: str) -> Iterator[list[bytes]]:
        """The sampled rows as the export writes them, in batches."""
        import psycopg

        condition = sample_condition(pk, params.fraction, params.seed)
        query = (f"COPY (SELECT row_to_json(r) FROM (SELECT * FROM {quote_table(source)}) r WHERE {condition}) "
                 f"TO STDOUT WITH ({COPY_OPTIONS})")
        with connect(ctx, params.source) as conn, CancelWatch(conn, ctx.cancel):
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

    @staticmethod
    def _fetch(client: ConvexClient, params: SampleParams, table: str, legacy_ids: list[str]
               ) -> dict[str, dict[str, Any]]:
        if not legacy_ids:
            return {}
        try:
            documents = client.query(f"{params.functions}:byLegacyIds", {"table": table, "legacyIds": legacy_ids})
        except ConvexFunctionError as exc:
            raise StepFailed(f"{table}: {exc}") from None
        return {str(d.get("legacyId")): d for d in documents}


def _key_of(line: bytes, pk: str) -> Any:
    """The primary key of a row the transform rejected, if the line can be read at all."""
    try:
        row = from_json(line)
    except ValueError:
        return None
    return row.get(pk) if isinstance(row, dict) else None
