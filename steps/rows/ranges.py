"""The ranged parallel writer: one table's exported file, cut into byte ranges on line
boundaries, converted by worker processes, and joined in order.

Each range's output is written to its own part, renamed when complete, and appended to the
table's file in order as soon as the ranges before it are (`InOrder`), so a resumed step
converts only the ranges it had not finished. Memory stays constant.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic_core import to_json

from cockpit.step_api import StepCancelled, StepContext, StepFailed, Writeback, die_with_parent
from steps.rows.documents import document_of
from steps.rows.mapping import Mapping, load_mapping
from steps.rows.transformer import RowTransformer
from steps.rows.values import RejectRow

CHUNK_BYTES = 8 << 20
PARALLEL_FROM_BYTES = 32 << 20  # below this, worker processes cost more than they save


@dataclass
class ChunkResult:
    index: int
    rows: int
    documents: int
    rejects: int
    bytes_in: int
    reasons: dict[str, int]


def convert_range(
    mapping_path: str,
    source_table: str,
    column_types: str,
    input_path: str,
    start: int,
    end: int,
    out_path: str,
    rejects_path: str,
    index: int,
) -> ChunkResult:
    """Convert the lines that start within [start, end) of the input. Runs in a worker process.
    `column_types`: the export's types of the table's columns, as JSON text."""
    stat = os.stat(mapping_path)
    transform = _compiled(mapping_path, stat.st_mtime_ns, stat.st_size, source_table, column_types)
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
def _compiled(mapping_path: str, mtime_ns: int, size: int, source_table: str, column_types: str) -> RowTransformer:
    """A worker converts range after range of one table: the mapping is read and compiled once
    per process, not per range (9 ms each, over a hundred ranges a gigabyte). The file's time
    and size are part of the key, so an edited mapping is read again."""
    return load_mapping(Path(mapping_path)).compile(source_table, json.loads(column_types))


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


def transform_table(
    ctx: StepContext[Any],
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
    joined = InOrder(ctx, f"joined:{source_table}", out, lambda i: parts / f"{i:05d}.jsonl")
    try:
        redo = [
            i for i in range(joined.chunks, len(ranges)) if not (i in finished and (parts / f"{i:05d}.jsonl").exists())
        ]
        for i in redo:
            finished.pop(i, None)
        jobs = [
            (
                str(mapping.path),
                source_table,
                # An export from before the manifest kept the types: every column as plain.
                json.dumps(exported.get("columns", {})),
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
            _in_workers(ctx, jobs, workers, record)
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
    _join_rejects(
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


def _in_workers(ctx: StepContext[Any], jobs: list[tuple[Any, ...]], workers: int, record: Any) -> None:
    # Spawned, not forked: the cockpit is threaded, and a fork copies locks held by other threads.
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(jobs)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=die_with_parent,
        initargs=(os.getpid(),),
    )
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


class InOrder:
    """The table's file, made of the ranges' parts appended in order as soon as each is ready.

    The disk starts writing each part as it is appended, while the workers go on converting,
    so the final fsync waits only for the last ones (a gigabyte joined at the end and then
    synced cost 5 s). The checkpoint holds how many parts, and how many bytes, the `.partial`
    file has: a resumed step cuts the file back to that and goes on from there. A part's file
    is removed only after the checkpoint says it was appended.
    """

    def __init__(self, ctx: StepContext[Any], key: str, target: Path, part_of: Any) -> None:
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
