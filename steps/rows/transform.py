"""`transform`: exported JSON Lines -> Convex-ready JSON Lines, by the mapping file.

For each table of the export's manifest that the mapping names: every row becomes a document
(steps/rows/mapping.py) or goes to `<target>.rejects.jsonl` with its reason and its line number.
The step reconciles input = output + rejects for every table and fails when rejects pass
its limit. Large files are cut into byte ranges on line boundaries and converted by worker
processes; each range's output is written to its own part, renamed when complete, and
appended to the table's file in order as soon as the ranges before it are (`_InOrder`), so a
resumed step converts only the ranges it had not finished. Memory stays constant.
"""

from __future__ import annotations

import functools
import json
import math
import multiprocessing
import os
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field, ValidationInfo
from pydantic_core import from_json, to_json

from cockpit.step_api import Effect, Step, StepCancelled, StepContext, StepFailed, StepParams, Writeback, private_dir
from steps.postgres.export import read_manifest, write_manifest
from steps.rows.mapping import Mapping, MappingError, load_mapping
from steps.rows.transformer import RowTransformer
from steps.rows.values import MAX_SAFE_INTEGER, NeedsExactParse, RejectRow, decode_json, encode_json

MAX_DOCUMENT_BYTES = 1 << 20  # Convex's limit on one document
CHUNK_BYTES = 8 << 20
PARALLEL_FROM_BYTES = 32 << 20  # below this, worker processes cost more than they save


def _mapping_is_sound(value: str, info: ValidationInfo) -> str:
    """Check the mapping file when the runbook is loaded: its problems are the runbook's."""
    base = (info.context or {}).get("base_dir")
    if base is not None:
        try:
            load_mapping(Path(base) / value)
        except MappingError as exc:
            # Named as the runbook names it: the operator finds it from there.
            raise ValueError(
                "; ".join(f"{value}{f':{p.line}' if p.line else ''}: {p.message}" for p in exc.problems)
            ) from None
    return value


MappingPath = Annotated[str, AfterValidator(_mapping_is_sound)]


class TransformParams(StepParams):
    mapping: MappingPath = Field(description="the mapping file (TOML), relative to the runbook")
    input: str = Field(description="the export folder (with its manifest.json)")
    out: str = Field(description="folder for the documents, the rejects and the manifest")
    max_rejects: int = Field(default=0, ge=0, description="fail when more rows than this are rejected, in all")
    workers: int = Field(default=0, ge=0, description="worker processes; 0 means one per CPU")


@dataclass
class ChunkResult:
    index: int
    rows: int
    documents: int
    rejects: int
    bytes_in: int
    reasons: dict[str, int]


def _decimals_to_floats(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _decimals_to_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decimals_to_floats(v) for v in value]
    return value


def document_of(transform: RowTransformer, line: bytes) -> bytes:
    """One exported line (without its newline) as its document's JSON; RejectRow says why not.

    Lines go first through msgspec Structs (steps/rows/structs.py); what they refuse, for any
    reason, takes the dict path, which decides and says why."""
    quick = transform.struct_path
    data = quick(line) if quick is not None else None
    if data is not None and len(data) < MAX_DOCUMENT_BYTES:
        return data
    return converted(transform, line)[1]


def converted(transform: RowTransformer, line: bytes) -> tuple[dict[str, Any], bytes]:
    """One exported line as its document and that document's JSON; RejectRow says why not.

    The dict path: `document_of` takes it for every line the Struct path refuses, and for the
    lines that path converts, its JSON is this one's (held by tests/unit/test_row_struct.py).
    The document holds only JSON's types (decimals read exactly are floats again), so it
    equals its JSON read back.

    msgspec reads and writes the JSON (a third fewer instructions than pydantic's parser and
    serializer for a row). It refuses what JSON does not allow (NaN, numbers beyond float64,
    lone surrogates, nesting it cannot follow) and keeps integers of any size exact. What it
    refuses, and what it cannot write, takes `_converted_exactly`, which says why in our words.
    """
    try:
        row = decode_json(line)
    except Exception:  # noqa: BLE001 - any refusal (DecodeError, UnicodeDecodeError, RecursionError)
        return _converted_exactly(transform, line)
    try:
        document = transform(row)
    except NeedsExactParse:
        return _converted_exactly(transform, line)
    try:
        data = encode_json(document)
    except Exception:  # noqa: BLE001 - nothing decoded should fail here: if it does, the exact path says why
        return _converted_exactly(transform, line)
    if len(data) >= MAX_DOCUMENT_BYTES:
        raise RejectRow(f"the document is {len(data):,} bytes, over Convex's 1 MiB")
    return document, data


# msgspec would write a non-finite float as null; none reaches it: its parser refuses NaN and
# 1e400, for rows and for JSON kept in text columns alike, and the mapping's defaults are checked
# when it is loaded.


def _not_finite(value: Any) -> bool:
    """Whether the document holds NaN or an infinity (pydantic's parser reads 1e400 as one)."""
    if type(value) is float:
        return not math.isfinite(value)
    if type(value) is dict:
        return any(_not_finite(v) for v in value.values())
    if type(value) is list:
        return any(_not_finite(v) for v in value)
    return False


def _sorted_fields(value: Any) -> Any:
    """The value with every object's fields in the order of their names, as encode_json writes."""
    if type(value) is dict:
        return {key: _sorted_fields(value[key]) for key in sorted(value)}
    if type(value) is list:
        return [_sorted_fields(item) for item in value]
    return value


def _converted_exactly(transform: RowTransformer, line: bytes) -> tuple[dict[str, Any], bytes]:
    """The reference path: pydantic's parser says why a line is not JSON, and decimals that a
    float cannot hold are read exactly. Rows come here only when the fast path refuses them."""
    try:
        # Cached keys: every row repeats the same column names, and a cached string keeps its
        # hash, so the mapping's dict lookups cost less.
        row = from_json(line, cache_strings="keys", allow_inf_nan=False)
    except ValueError as exc:
        raise RejectRow(_parse_error(line, exc)) from None
    try:
        document = transform(row)
    except NeedsExactParse:
        document = _decimals_to_floats(transform(json.loads(line, parse_float=Decimal)))
    if _not_finite(document):
        raise RejectRow("a number is NaN or beyond float64: JSON cannot carry it")
    try:
        data: bytes = to_json(_sorted_fields(document))
    except ValueError as exc:  # a lone surrogate from a JSON text column
        raise RejectRow(f"the document cannot be written as JSON: {str(exc).splitlines()[0]}") from None
    if len(data) >= MAX_DOCUMENT_BYTES:
        raise RejectRow(f"the document is {len(data):,} bytes, over Convex's 1 MiB")
    return document, data


def convert_range(
    mapping_path: str,
    source_table: str,
    input_path: str,
    start: int,
    end: int,
    out_path: str,
    rejects_path: str,
    index: int,
) -> ChunkResult:
    """Convert the lines that start within [start, end) of the input. Runs in a worker process."""
    stat = os.stat(mapping_path)
    transform = _compiled(mapping_path, stat.st_mtime_ns, stat.st_size, source_table)
    rows = documents = rejects = 0
    reasons: dict[str, int] = {}
    partial_out, partial_rej = out_path + ".partial", rejects_path + ".partial"
    # Large buffers: with the default 8 KiB, reading and writing cost a quarter of the time.
    with (
        open(input_path, "rb", buffering=1 << 20) as src,
        open(partial_out, "wb", buffering=1 << 20) as out,
        open(partial_rej, "wb") as rej,
    ):
        os.chmod(partial_out, 0o600)
        os.chmod(partial_rej, 0o600)
        src.seek(start)
        position = start
        line_number = 1  # within this range: made global when the rejects are joined
        while position < end:
            raw = src.readline()
            if not raw:
                break
            position += len(raw)
            line = raw.rstrip(b"\n")
            rows += 1
            try:
                data = document_of(transform, line)
                out.write(data)
                out.write(b"\n")
                documents += 1
            except RejectRow as exc:
                reason = str(exc)
                rejects += 1
                key = reason.split(":", 1)[0] if ":" in reason else reason
                reasons[key] = reasons.get(key, 0) + 1
                rej.write(
                    to_json({"line": line_number, "reason": reason, "row": line.decode("utf-8", "backslashreplace")})
                )
                rej.write(b"\n")
            line_number += 1
    os.replace(partial_out, out_path)
    os.replace(partial_rej, rejects_path)
    return ChunkResult(index, rows, documents, rejects, position - start, reasons)


@functools.lru_cache(maxsize=8)
def _compiled(mapping_path: str, mtime_ns: int, size: int, source_table: str) -> RowTransformer:
    """A worker converts range after range of one table: the mapping is read and compiled once
    per process, not per range (9 ms each, over a hundred ranges a gigabyte). The file's time
    and size are part of the key, so an edited mapping is read again."""
    return load_mapping(Path(mapping_path)).compile(source_table)


def _parse_error(line: bytes, exc: Exception) -> str:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"invalid UTF-8 at byte {bad.start}"
    return f"not valid JSON: {str(exc).splitlines()[0]}"


def split_ranges(path: Path, chunk: int) -> list[tuple[int, int]]:
    """Byte ranges of about `chunk` bytes, each ending just after a newline."""
    size = path.stat().st_size
    ranges = []
    start = 0
    with path.open("rb") as f:
        while start < size:
            end = min(start + chunk, size)
            if end < size:
                f.seek(end)
                f.readline()
                end = f.tell()
            ranges.append((start, end))
            start = end
    return ranges


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
                entry = self._table(
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

    def _table(
        self,
        ctx: StepContext[TransformParams],
        mapping: Mapping,
        source_table: str,
        input_path: Path,
        exported: dict[str, Any],
        folder: Path,
        workers: int,
    ) -> dict[str, Any]:
        target = mapping.target_of(source_table)
        if input_path.stat().st_size != exported["bytes"]:
            raise StepFailed(
                f"{input_path.name} is {input_path.stat().st_size:,} bytes, but the export's "
                f"manifest says {exported['bytes']:,}: the file changed since it was exported"
            )
        ranges = split_ranges(input_path, CHUNK_BYTES)
        parts = folder / f".{target}.parts"
        parts.mkdir(mode=0o700, exist_ok=True)
        finished: dict[int, dict[str, Any]] = {
            int(k): v for k, v in ctx.checkpoint.get(f"chunks:{source_table}", {}).items()
        }
        out, rejected = folder / f"{target}.jsonl", folder / f"{target}.rejects.jsonl"
        joined = _InOrder(ctx, f"joined:{source_table}", out, lambda i: parts / f"{i:05d}.jsonl")
        try:
            redo = [
                i
                for i in range(joined.chunks, len(ranges))
                if not (i in finished and (parts / f"{i:05d}.jsonl").exists())
            ]
            for i in redo:
                finished.pop(i, None)
            jobs = [
                (
                    str(mapping.path),
                    source_table,
                    str(input_path),
                    *ranges[i],
                    str(parts / f"{i:05d}.jsonl"),
                    str(parts / f"{i:05d}.rejects.jsonl"),
                    i,
                )
                for i in redo
            ]
            started = time.monotonic()
            total_rows = exported["rows"]

            def record(result: ChunkResult) -> None:
                finished[result.index] = {
                    "rows": result.rows,
                    "documents": result.documents,
                    "rejects": result.rejects,
                    "reasons": result.reasons,
                }
                ctx.checkpoint[f"chunks:{source_table}"] = {str(k): v for k, v in finished.items()}
                joined.append_ready(finished)
                done_rows = sum(c["rows"] for c in finished.values())
                ctx.progress(done_rows, total_rows, "rows", target)

            joined.append_ready(finished)  # ranges finished before a restart
            use_workers = workers > 1 and input_path.stat().st_size >= PARALLEL_FROM_BYTES and len(jobs) > 1
            if use_workers:
                self._in_workers(ctx, jobs, workers, record)
            else:
                for job in jobs:
                    ctx.raise_if_cancelled()
                    record(convert_range(*job))
            rows = sum(c["rows"] for c in finished.values())
            documents = sum(c["documents"] for c in finished.values())
            rejects = sum(c["rejects"] for c in finished.values())
            if rows != exported["rows"] or rows != documents + rejects or joined.chunks != len(ranges):
                raise StepFailed(
                    f"{source_table}: {rows:,} rows read, {documents:,} documents and {rejects:,} "
                    f"rejects, but the export has {exported['rows']:,} rows: they must add up"
                )
            joined.finish()
        finally:
            joined.close()
        self._join_rejects(
            [parts / f"{i:05d}.rejects.jsonl" for i in range(len(ranges))],
            [finished[i]["rows"] for i in range(len(ranges))],
            rejected,
        )
        shutil.rmtree(parts, ignore_errors=True)
        seconds = time.monotonic() - started
        reasons: dict[str, int] = {}
        for chunk in finished.values():
            for key, n in chunk["reasons"].items():
                reasons[key] = reasons.get(key, 0) + n
        ctx.log(
            f"{source_table} -> {target}: {documents:,} documents, {rejects:,} rejects in {seconds:.1f}s "
            f"({rows / seconds if seconds else 0:,.0f} rows/s)"
        )
        for key, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
            ctx.log(f"  rejected {n:,}: {key}")
        # An empty table had no range, so neither key was ever written.
        ctx.checkpoint.pop(f"chunks:{source_table}", None)
        ctx.checkpoint.pop(f"joined:{source_table}", None)
        return {
            "source": source_table,
            "file": out.name,
            "rejects_file": rejected.name,
            "input_rows": rows,
            "output_rows": documents,
            "rejects": rejects,
            "bytes": out.stat().st_size,
            "reasons": reasons,
        }

    def _in_workers(
        self, ctx: StepContext[TransformParams], jobs: list[tuple[Any, ...]], workers: int, record: Any
    ) -> None:
        # Spawned, not forked: the cockpit is threaded, and a fork copies locks held by other threads.
        pool = ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=multiprocessing.get_context("spawn"))
        pending: set[Future[ChunkResult]] = set()
        queue = list(jobs)
        try:
            while queue or pending:
                while queue and len(pending) < workers * 2:
                    pending.add(pool.submit(convert_range, *queue.pop(0)))
                finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in finished:
                    record(future.result())
                if ctx.cancelled:
                    raise StepCancelled("transform cancelled")
        finally:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=not ctx.cancelled, cancel_futures=True)

    @staticmethod
    def _join_rejects(parts: list[Path], rows: list[int], target: Path) -> None:
        """Join the rejects, turning each range's line numbers into the file's."""
        partial = target.with_name(target.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        offset = 0
        with os.fdopen(fd, "wb") as out:
            for part, count in zip(parts, rows, strict=True):
                with part.open("rb") as src:
                    for line in src:
                        entry = json.loads(line)
                        entry["line"] += offset
                        out.write(json.dumps(entry, ensure_ascii=False).encode() + b"\n")
                offset += count
        os.replace(partial, target)


__all__ = ["MAX_SAFE_INTEGER", "TransformStep", "convert_range"]


class _InOrder:
    """The table's file, made of the ranges' parts appended in order as soon as each is ready.

    The disk starts writing each part as it is appended, while the workers go on converting,
    so the final fsync waits only for the last ones (a gigabyte joined at the end and then
    synced cost 5 s). The checkpoint holds how many parts, and how many bytes, the `.partial`
    file has: a resumed step cuts the file back to that and goes on from there. A part's file
    is removed only after the checkpoint says it was appended.
    """

    def __init__(self, ctx: StepContext, key: str, target: Path, part_of: Any) -> None:
        self._ctx = ctx
        self._key = key
        self._target = target
        self._part_of = part_of
        self._partial = target.with_name(target.name + ".partial")
        state = ctx.checkpoint.get(key) or {"chunks": 0, "bytes": 0}
        self._fd: int | None = os.open(self._partial, os.O_WRONLY | os.O_CREAT, 0o600)
        if os.fstat(self._fd).st_size < state["bytes"]:
            state = {"chunks": 0, "bytes": 0}  # the file lost what the checkpoint says: start it over
        self.chunks, self.bytes = int(state["chunks"]), int(state["bytes"])
        os.ftruncate(self._fd, self.bytes)
        os.lseek(self._fd, self.bytes, os.SEEK_SET)
        self._writeback = Writeback(self._fd)

    def append_ready(self, finished: dict[int, Any]) -> None:
        assert self._fd is not None
        while self.chunks in finished:
            part = self._part_of(self.chunks)
            with part.open("rb") as src:
                remaining = os.fstat(src.fileno()).st_size
                while remaining > 0:
                    copied = os.copy_file_range(src.fileno(), self._fd, min(remaining, self._writeback.every))
                    if copied == 0:
                        raise StepFailed(f"{part.name}: the copy stopped with {remaining:,} bytes left")
                    remaining -= copied
                    self.bytes += copied
                    self._writeback.wrote(copied)
            self.chunks += 1
            self._ctx.checkpoint[self._key] = {"chunks": self.chunks, "bytes": self.bytes}
            part.unlink()

    def finish(self) -> None:
        assert self._fd is not None
        os.fsync(self._fd)
        self.close()
        os.replace(self._partial, self._target)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
