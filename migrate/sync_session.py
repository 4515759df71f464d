"""One run of `cockpit sync`: the environment and the mapping read, each table synced in
the order its references need, the run logged under migration_logs/, a line (or a JSON
document) per table.

Exit codes: 0 synced, 1 a table failed or rows were rejected, 2 bad input (nothing written),
130 Ctrl+C.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from cockpit.secrets import Redactor
from migrate import environments
from migrate.run_log import RunLog
from migrate.sync import Syncer, SyncRefused, TableSync
from migrate.sync_source import Source
from steps.convex.client import ConvexClient, ConvexError
from steps.rows.mapping import MappingError, load_mapping

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130


@dataclass(frozen=True)
class SyncRequest:
    config: Path
    environment: str | None
    tables: list[str]
    dry_run: bool = False
    limit: int | None = None
    as_json: bool = False


def run(request: SyncRequest, out: Callable[[str], None], err: Callable[[str], None]) -> int:
    redactor = Redactor()
    try:
        sides = environments.load(request.config, request.environment, os.environ, redactor)
        if sides.mapping is None:
            err(f"{request.config}: `cockpit sync` needs `mapping`, the transform's mapping file")
            return EXIT_INVALID
        mapping = load_mapping(sides.mapping)
    except (environments.EnvironmentError, MappingError) as exc:
        for problem in exc.problems:
            err(str(problem))
        return EXIT_INVALID
    if request.limit is not None and request.limit < 1:
        err(f"--limit {request.limit}: at least 1")
        return EXIT_INVALID
    log = RunLog(sides.logs, "sync", sides.name, redactor)
    say = log.teller(err if request.as_json else out)
    try:
        if sides.convex_url is None or sides.postgres_dsn is None:
            off = "; ".join(sides.disabled) or "a side is missing"
            say(f"nothing to sync: v1 and v2 must both be enabled ({off})")
            return EXIT_OK
        source = Source(sides.postgres_dsn)
        client = ConvexClient(sides.convex_url, sides.convex_key or "", log=say, attempts=4)
        syncer: Syncer | None = None
        try:
            syncer = Syncer(mapping, source, client, log=say, dry_run=request.dry_run, limit=request.limit)
            tables = syncer.tables(request.tables)
            say(f"environment {sides.name}: {'dry run of ' if request.dry_run else ''}a sync of {', '.join(tables)}")
            results = _sync(syncer, tables, say)
        finally:
            if syncer is not None:
                syncer.close()
            client.close()
            source.close()
    except SyncRefused as exc:
        say(f"refused: {exc}")
        return EXIT_INVALID
    except (psycopg.Error, ConvexError) as exc:
        say(f"failed: {str(exc).strip()}; every batch before it is in, and the next sync continues from there")
        return EXIT_FAILED
    except KeyboardInterrupt:
        say("interrupted: every batch that committed is in, and the next sync continues from there")
        return EXIT_INTERRUPTED
    finally:
        say(f"log: {log.path}")
        log.close()
    if request.as_json:
        out(json.dumps(_document(request, results), indent=2))
    return EXIT_FAILED if any(r.rejected for r in results) else EXIT_OK


def _sync(syncer: Syncer, tables: list[str], say: Callable[[str], None]) -> list[TableSync]:
    marks = syncer.watermarks()
    results = []
    for source in tables:
        started = time.monotonic()
        target = syncer.target_of(source)
        since = marks.get(target)
        result = syncer.sync_table(source, since)
        results.append(result)
        for line in _line(result, time.monotonic() - started).splitlines():
            say(line)
        for rejected in result.rejected[:10]:
            say(f"  rejected {rejected}")
        if len(result.rejected) > 10:
            say(f"  and {len(result.rejected) - 10} more rejected")
    return results


def _line(result: TableSync, seconds: float) -> str:
    return result.summary(f" in {seconds:.1f}s")


def _document(request: SyncRequest, results: list[TableSync]) -> dict[str, Any]:
    return {"dry_run": request.dry_run, "limit": request.limit, "tables": [r.as_json() for r in results]}
