"""`verify.calc`: aggregates computed on v1 by SQL against the same figures computed on v2.

Each check is a SQL query on v1 and, on v2, either the shipped `aggregatePage` function over a
table (`table`, optional `group_by` and `sum`: a count and a sum per group) or a function of
the user's (`function`, `args`) returning a number or an object of numbers per group.

The SQL names its columns: `key` (optional) groups the rows, the others are the measures.
With `table`, the measures are `count` and `sum`; with a function, a single measure is
compared with the function's number (per key when the function returns an object), several
with the same-named fields of the function's objects. Money compares in integer cents, so
write the SQL as `sum(round(amount * 100))` for a field the mapping converted to cents.
"""

from __future__ import annotations

import math
import time
from decimal import Decimal
from typing import Annotated, Any

from pydantic import Field, model_validator

from cockpit.step_api import ConnectionRef, Effect, Step, StepContext, StepFailed, StepParams
from steps.convex.client import ConvexClient, ConvexFunctionError
from steps.postgres.json_rows import EXACT_SESSION
from steps.postgres.sql import CancelWatch, connect
from steps.verify.verification import log_table

Groups = dict[str, dict[str, float]]


class CalcCheck(StepParams):
    name: str
    sql: str = Field(description="on v1: a `key` column (optional) and one or more measures")
    table: str | None = Field(default=None, description="v2 table aggregated by the shipped aggregatePage")
    group_by: str | None = None
    sum: str | None = None
    function: str | None = Field(default=None, description="or a query of yours returning the figures")
    args: dict[str, Any] = Field(default_factory=dict)
    tolerance: float = Field(default=0.0, ge=0, description="allowed absolute difference")

    @model_validator(mode="after")
    def _one_target(self) -> CalcCheck:
        if (self.table is None) == (self.function is None):
            raise ValueError("give either table (with group_by and sum) or function, not both")
        if self.table is None and (self.group_by or self.sum):
            raise ValueError("group_by and sum go with table")
        return self


class CalcParams(StepParams):
    source: Annotated[str, ConnectionRef("postgres")] = Field(description="v1")
    target: Annotated[str, ConnectionRef("convex")] = Field(description="v2")
    checks: list[CalcCheck] = Field(min_length=1)
    functions: str = Field(default="cockpit", description="the module holding aggregatePage")
    page_size: int = Field(default=4000, ge=1, le=8000)
    parallel: int = Field(
        default=2, ge=1, le=16, description="shares of a table read at once (by creation time), each a chain of pages"
    )


def js_key(value: Any) -> str:
    """A group key as JavaScript's String() writes it, which is how v2 names its groups."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal | float) and value == int(value):
        return str(int(value))
    return str(value)


def _number(value: Any) -> float:
    if isinstance(value, Decimal):
        return int(value) if value == int(value) else float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise StepFailed(f"{value!r} is not a number")
    return value


class CalcStep(Step[CalcParams]):
    """Compares aggregates of v1 and v2; a probe."""

    kind = "verify.calc"
    effect = Effect.PROBE
    Params = CalcParams

    def describe(self, params: CalcParams) -> str:
        return f"compare {len(params.checks)} aggregate(s) of {params.source!r} and {params.target!r}"

    def run(self, ctx: StepContext[CalcParams]) -> None:
        params = ctx.params
        started = time.monotonic()
        v1 = self._source(ctx, params)
        rows: list[list[Any]] = []
        mismatches = 0
        connection = ctx.connection(params.target)
        passes = plan_passes(params.checks)
        scanned: dict[Pass, dict[str, dict[str, float]]] = {}
        with ConvexClient(connection.url, connection.deploy_key, cancel=ctx.cancel, log=ctx.log) as client:
            for index, check in enumerate(params.checks):
                v2 = self._target(ctx, client, params, check, v1[index], passes.get(index), scanned)
                for key in sorted(v1[index].keys() | v2.keys()):
                    for measure in sorted(v1[index].get(key, {}).keys() | v2.get(key, {}).keys()):
                        left = v1[index].get(key, {}).get(measure)
                        right = v2.get(key, {}).get(measure)
                        same = left is not None and right is not None and abs(left - right) <= check.tolerance
                        mismatches += not same
                        rows.append(
                            [check.name, key or "-", measure, _shown(left), _shown(right), "ok" if same else "DIFFERS"]
                        )
                ctx.progress(index + 1, len(params.checks), "checks", check.name)
        log_table(ctx, ["check", "key", "measure", "v1", "v2", ""], rows)
        ctx.log(f"compared in {time.monotonic() - started:.1f}s")
        ctx.metric("calc.mismatches", mismatches)
        if mismatches:
            raise StepFailed(f"{mismatches:,} figures differ between v1 and v2: see the table in the log")

    @staticmethod
    def _source(ctx: StepContext[CalcParams], params: CalcParams) -> list[Groups]:
        import psycopg

        results: list[Groups] = []
        with connect(ctx, params.source, options=EXACT_SESSION) as conn, CancelWatch(conn, ctx.cancel):
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            for check in params.checks:
                try:
                    cur = conn.execute(check.sql.encode())
                except psycopg.Error as exc:
                    ctx.raise_if_cancelled()
                    raise StepFailed(f"{check.name}: {str(exc).strip().splitlines()[0]}") from None
                columns = [c.name for c in cur.description or []]
                measures = [c for c in columns if c != "key"]
                if not measures:
                    raise StepFailed(f"{check.name}: the SQL returns no measure column (only key)")
                if check.table is not None and set(measures) - {"count", "sum"}:
                    raise StepFailed(
                        f"{check.name}: with table, the SQL's measures must be named count and sum, "
                        f"not {', '.join(sorted(set(measures) - {'count', 'sum'}))}"
                    )
                groups: Groups = {}
                for row in cur:
                    values = dict(zip(columns, row, strict=True))
                    key = js_key(values["key"]) if "key" in values else ""
                    try:
                        groups[key] = {m: _number(values[m] if values[m] is not None else 0) for m in measures}
                    except StepFailed as exc:
                        raise StepFailed(f"{check.name}: {exc}") from None
                results.append(groups)
            conn.rollback()
        return results

    def _target(
        self,
        ctx: StepContext[CalcParams],
        client: ConvexClient,
        params: CalcParams,
        check: CalcCheck,
        v1: Groups,
        scan: Pass | None,
        scanned: dict[Pass, dict[str, dict[str, float]]],
    ) -> Groups:
        try:
            if check.table is not None:
                assert scan is not None
                if scan not in scanned:
                    scanned[scan] = self._aggregate(ctx, client, params, check.name, scan)
                return _derive(scanned[scan], check, v1)
            assert check.function is not None
            value = client.query(check.function, check.args)
        except ConvexFunctionError as exc:
            raise StepFailed(f"{check.name}: {exc}") from None
        return _function_groups(check.name, value, v1)

    @staticmethod
    def _aggregate(
        ctx: StepContext[CalcParams], client: ConvexClient, params: CalcParams, name: str, scan: Pass
    ) -> dict[str, dict[str, float]]:
        table, group_by, total_of = scan
        args: dict[str, Any] = {"table": table}
        if group_by:
            args["groupBy"] = group_by
        if total_of:
            args["sum"] = total_of
        counts: dict[str, int] = {}
        sums: dict[str, list[float]] = {}
        scanned = 0
        for value in client.pages_in_shares(
            "query", f"{params.functions}:aggregatePage", args, params.page_size, params.parallel
        ):
            for key, group in value["groups"].items():
                counts[key] = counts.get(key, 0) + int(group["count"])
                sums.setdefault(key, []).append(group["sum"])
                scanned += int(group["count"])
            ctx.progress(scanned, None, "documents", f"{name}: {table}")
        # Pages arrive in no fixed order: fsum's exactly rounded total does not depend on it (and
        # whole numbers add as integers, exactly).
        return {key: {"count": counts[key], "sum": _total(sums[key])} for key in counts}


def _total(parts: list[float]) -> float:
    if all(isinstance(part, int) for part in parts):
        return sum(parts)
    return math.fsum(parts)


Pass = tuple[str, str | None, str | None]  # one scan of a v2 table: (table, group_by, sum)


def plan_passes(checks: list[CalcCheck]) -> dict[int, Pass]:
    """Which scan serves each table check. Checks of one table share a scan when they can: an
    ungrouped check collapses a grouped scan, a count ignores a scan's sum. Each scan reads
    every document of its table, so this halves the time of, say, cases per status and total
    wages."""
    scans: list[Pass] = []
    served: dict[int, int] = {}
    for index, check in enumerate(checks):
        if check.table is None:
            continue
        for n, (table, group_by, total_of) in enumerate(scans):
            if (
                table == check.table
                and (group_by is None or check.group_by is None or group_by == check.group_by)
                and (total_of is None or check.sum is None or total_of == check.sum)
            ):
                scans[n] = (table, group_by or check.group_by, total_of or check.sum)
                served[index] = n
                break
        else:
            served[index] = len(scans)
            scans.append((check.table, check.group_by, check.sum))
    return {index: scans[n] for index, n in served.items()}


def _derive(totals: dict[str, dict[str, float]], check: CalcCheck, v1: Groups) -> Groups:
    """A check's figures from a scan that may be grouped more finely or sum a field it does not."""
    wanted = {m for group in v1.values() for m in group}
    if check.group_by is None:
        merged = {"count": sum(t["count"] for t in totals.values()), "sum": sum(t["sum"] for t in totals.values())}
        totals = {"": merged}  # an empty table too: count 0, as SQL's count(*) says
    if check.sum is None:
        totals = {key: {**total, "sum": 0} for key, total in totals.items()}
    return {key: {m: v for m, v in total.items() if m in wanted} for key, total in totals.items()}


def _function_groups(name: str, value: Any, v1: Groups) -> Groups:
    """A user function's value in the shape of the SQL's result."""
    measures = sorted({m for group in v1.values() for m in group}) or ["value"]
    ungrouped = set(v1) <= {""}
    if _is_number(value):
        if len(measures) != 1:
            raise StepFailed(f"{name}: the function returned one number, the SQL {len(measures)} measures")
        return {"": {measures[0]: value}}
    if not isinstance(value, dict):
        raise StepFailed(f"{name}: the function returned {str(value)[:80]}, not a number or an object")
    if ungrouped and all(_is_number(value.get(m)) for m in measures):
        return {"": {m: value[m] for m in measures}}  # the measures of one group, by name
    groups: Groups = {}
    for key, entry in value.items():
        if _is_number(entry):
            if len(measures) != 1:
                raise StepFailed(
                    f"{name}: the function returned one number per key, the SQL has {len(measures)} measures"
                )
            groups[key] = {measures[0]: entry}
        elif isinstance(entry, dict):
            groups[key] = {m: entry[m] for m in measures if _is_number(entry.get(m))}
        else:
            raise StepFailed(f"{name}: the function's {key!r} is {str(entry)[:40]}, not a number or an object")
    return groups


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _shown(value: float | None) -> str:
    if value is None:
        return "missing"
    if isinstance(value, float) and value == int(value):
        value = int(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:,.4f}"
