"""`convex.resolve_refs`: turn every `legacy<Target>Id` into the `_id` of the document it names.

The references come from the mapping file (`references = { user_id = "users" }` makes
`legacyUserId`, resolved into `userId`). Each page is one call of the `resolveRefs` mutation
shipped in `convex/cockpit.ts`, sized as the migration research says: 100 documents when
they are small (under 1 KB), 50 up to 10 KB, 25 above. The mutation skips a document whose
id field is already set, so a page done twice (a retry after a lost answer, a resume after a
crash) writes nothing twice; the cursor after each page is checkpointed.

A large table is resolved as a few shares of its creation times at once (`parallel`), each its
own chain of pages, as the verifications read it: over a network a chain waits a round trip
per page, and 1,000,000 documents are 10,000 pages. The shares touch disjoint documents, so
their mutations do not conflict; each share's cursor is checkpointed on its own.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from cockpit.step_api import ConnectionRef, Effect, Step, StepContext, StepFailed, StepParams
from steps.convex.client import Chain, ConvexClient, ConvexFunctionError, shares_for
from steps.manifest import read_manifest
from steps.rows.mapping import Mapping, MappingError, MappingPath, Reference, load_mapping


def batch_size_for(average_document_bytes: float) -> int:
    """The research's batch sizes: small documents 100, medium (1-10 KB) 50, large 25."""
    if average_document_bytes < 1024:
        return 100
    if average_document_bytes < 10 * 1024:
        return 50
    return 25


class ResolveParams(StepParams):
    connection: Annotated[str, ConnectionRef("convex")]
    mapping: MappingPath = Field(description="the mapping file whose `references` say what to resolve")
    transformed: str | None = Field(
        default=None,
        description="the transform's output folder: document sizes and counts, for batch sizes and progress",
    )
    tables: list[str] = Field(default_factory=list, description="Convex tables to resolve; default all")
    batch_size: int | None = Field(default=None, ge=1, le=4000, description="override the size-based batch")
    functions: str = Field(default="cockpit", description="the module holding resolveRefs (convex/cockpit.ts)")
    max_missing: int = Field(default=0, ge=0, description="references whose target is not found, allowed")
    parallel: int = Field(
        default=2,
        ge=1,
        le=16,
        description="shares of a large table resolved at once (by creation "
        "time), each its own chain of pages: fewer round trips waited one after another",
    )


def load_checked_mapping(base_dir: Path, name: str) -> Mapping:
    try:
        return load_mapping(base_dir / name)
    except MappingError as exc:
        raise StepFailed(str(exc)) from None
    except OSError as exc:
        raise StepFailed(f"cannot read the mapping {name}: {exc.strerror}") from None


class ResolveStep(Step[ResolveParams]):
    """Patches v2 documents: a mutation."""

    kind = "convex.resolve_refs"
    effect = Effect.MUTATE
    Params = ResolveParams
    resumes = True

    def describe(self, params: ResolveParams) -> str:
        return f"resolve the legacy references of {params.mapping} in {params.connection!r}"

    def run(self, ctx: StepContext[ResolveParams]) -> None:
        params = ctx.params
        mapping = load_checked_mapping(ctx.base_dir, params.mapping)
        references = [r for r in mapping.references() if not params.tables or r.table in params.tables]
        unknown = set(params.tables) - {t.target for t in mapping.tables.values()}
        if unknown:
            raise StepFailed(f"{', '.join(sorted(unknown))} not a target table of {params.mapping}")
        sizes = read_manifest(ctx.base_dir / params.transformed)["tables"] if params.transformed else {}
        connection = ctx.connection(params.connection)
        done: dict[str, Any] = dict(ctx.checkpoint.get("done", {}))
        missing_total = 0
        with ConvexClient(connection.url, connection.deploy_key, cancel=ctx.cancel, log=ctx.log) as client:
            for ref in references:
                key = f"{ref.table}.{ref.id_field}"
                if key not in done:
                    done[key] = self._resolve(ctx, client, params, ref, sizes.get(ref.table))
                    ctx.checkpoint["done"] = done
                    ctx.checkpoint.pop(f"page:{key}", None)
                else:
                    ctx.log(f"{key}: resolved before this resume, kept")
                missing_total += done[key]["missing"]
                ctx.metric(f"resolve.{key}.missing", done[key]["missing"])
        ctx.metric("resolve.missing", missing_total)
        ctx.log(f"{'reference':<34} {'documents':>10} {'resolved':>9} {'missing':>8}")
        for key, figures in done.items():
            ctx.log(f"{key:<34} {figures['processed']:>10,} {figures['resolved']:>9,} {figures['missing']:>8,}")
        if missing_total > params.max_missing:
            raise StepFailed(
                f"{missing_total:,} references name a document that is not in v2 "
                f"(max_missing is {params.max_missing:,}): see the log"
            )

    def _resolve(
        self,
        ctx: StepContext[ResolveParams],
        client: ConvexClient,
        params: ResolveParams,
        ref: Reference,
        size: dict[str, Any] | None,
    ) -> dict[str, Any]:
        key = f"{ref.table}.{ref.id_field}"
        documents = int(size["output_rows"]) if size else None
        average = size["bytes"] / size["output_rows"] if size and size["output_rows"] else 0
        batch = params.batch_size or batch_size_for(average)
        path = f"{params.functions}:resolveRefs"
        saved = ctx.checkpoint.get(f"page:{key}") or {}
        figures = dict(saved.get("figures") or {"processed": 0, "resolved": 0, "missing": 0, "skipped": 0})
        chains = saved_chains(saved)
        if chains:
            ctx.log(f"{key}: continuing after {figures['processed']:,} documents")
        else:
            # The shares are cut once and kept in the checkpoint: a resume continues each where it was.
            chains = client.share_chains(ref.table, shares_for(params.parallel, size, batch), path)
            at_once = f", {len(chains)} shares at once" if len(chains) > 1 else ""
            ctx.log(f"{key}: {ref.legacy_field} -> {ref.target}._id, {batch} documents per call{at_once}")
        args = {"table": ref.table, "legacyField": ref.legacy_field, "idField": ref.id_field, "target": ref.target}
        try:
            for index, value, cursor in client.pages_of_chains("mutation", path, args, batch, chains):
                for name in figures:
                    figures[name] += int(value.get(name, 0))
                chains[index].cursor, chains[index].done = cursor, cursor is None
                ctx.checkpoint[f"page:{key}"] = {"chains": [dataclasses.asdict(c) for c in chains], "figures": figures}
                # One label per reference, the same every time: the label names the bar (the
                # cockpit works out the rate itself).
                ctx.progress(figures["processed"], documents, "documents", key)
        except ConvexFunctionError as exc:
            if len(chains) > 1 and ("field `from`" in str(exc) or "field `before`" in str(exc)):
                raise StepFailed(
                    f"{key}: the deployed {path} resolves no shares ({exc}); deploy the current "
                    "convex/cockpit.ts, or set parallel = 1"
                ) from None
            raise StepFailed(f"{key}: {exc}") from None
        ctx.log(
            f"{key}: {figures['resolved']:,} resolved, {figures['missing']:,} not found, "
            f"{figures['skipped']:,} without a reference or resolved before"
        )
        return figures


def saved_chains(saved: dict[str, Any]) -> list[Chain]:
    """The shares a checkpoint holds, each with its cursor; [] when there is none. A checkpoint
    of a cockpit before shares holds one cursor (None after its last page): one chain."""
    if "chains" in saved:
        return [Chain(**chain) for chain in saved["chains"]]
    if "cursor" in saved:
        return [Chain(cursor=saved["cursor"], done=saved["cursor"] is None)]
    return []
