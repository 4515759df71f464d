"""`transform`: exported JSON Lines -> Convex-ready JSON Lines, by the mapping file.

For each table of the export's manifest that the mapping names: every row becomes a document
(steps/rows/documents.py, by the rules of steps/rows/rules.py) or goes to
`<target>.rejects.jsonl` with its reason and its line number. The step reconciles input =
output + rejects for every table and fails when rejects pass its limit. Large files are
converted in parallel ranges (steps/rows/ranges.py).
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import Field

from cockpit.step_api import Effect, Step, StepContext, StepFailed, StepParams, private_dir
from steps.manifest import read_manifest, write_manifest
from steps.rows.mapping import MappingError, MappingPath, load_mapping
from steps.rows.ranges import transform_table


class TransformParams(StepParams):
    mapping: MappingPath = Field(description="the mapping file (TOML), relative to the runbook")
    input: str = Field(description="the export folder (with its manifest.json)")
    out: str = Field(description="folder for the documents, the rejects and the manifest")
    max_rejects: int = Field(default=0, ge=0, description="fail when more rows than this are rejected, in all")
    workers: int = Field(default=0, ge=0, description="worker processes; 0 means one per CPU")


class TransformStep(Step[TransformParams]):
    """Converts every exported table by the mapping; a probe (it writes only local files)."""

    kind = "transform"
    effect = Effect.PROBE
    Params = TransformParams
    resumes = True

    def describe(self, params: TransformParams) -> str:
        return f"transform {params.input} by {params.mapping} into {params.out}"

    def run(self, ctx: StepContext[TransformParams]) -> None:
        params = ctx.params
        try:
            mapping = load_mapping(ctx.base_dir / params.mapping)
        except MappingError as exc:
            raise StepFailed(str(exc)) from None
        source = ctx.base_dir / params.input
        export = read_manifest(source)
        folder = private_dir(ctx.base_dir / params.out)
        missing = [t for t in mapping.tables if t not in export["tables"]]
        if missing:
            raise StepFailed(f"the mapping names {', '.join(missing)}, which the export in {params.input} has not")
        workers = params.workers or os.cpu_count() or 1
        done: dict[str, Any] = dict(ctx.checkpoint.get("tables", {}))
        manifest: dict[str, Any] = {"tables": {}, "format": "jsonLines", "mapping": params.mapping}
        total_rejects = 0
        for source_table, table in mapping.tables.items():
            entry = done.get(source_table)
            out = folder / f"{table.target}.jsonl"
            if not (entry and out.exists() and out.stat().st_size == entry["bytes"]):
                entry = transform_table(
                    ctx,
                    mapping,
                    source_table,
                    source / export["tables"][source_table]["file"],
                    export["tables"][source_table],
                    folder,
                    workers,
                )
                done[source_table] = entry
                ctx.checkpoint["tables"] = done
            else:
                ctx.log(f"{source_table}: transformed before, kept")
            manifest["tables"][table.target] = entry
            total_rejects += entry["rejects"]
            ctx.metric(f"transform.{table.target}.rejects", entry["rejects"])
        write_manifest(folder, manifest)
        ctx.metric("transform.rejects", total_rejects)
        ctx.log(f"{'table':<20} {'input':>10} {'documents':>10} {'rejects':>8}")
        for target, entry in manifest["tables"].items():
            ctx.log(f"{target:<20} {entry['input_rows']:>10,} {entry['output_rows']:>10,} {entry['rejects']:>8,}")
        if total_rejects > params.max_rejects:
            raise StepFailed(
                f"{total_rejects:,} rows rejected, over the limit of {params.max_rejects:,}: "
                f"see the *.rejects.jsonl files in {params.out}"
            )
        if total_rejects:
            ctx.log(f"{total_rejects:,} rows rejected (limit {params.max_rejects:,}): see {params.out}/*.rejects.jsonl")
