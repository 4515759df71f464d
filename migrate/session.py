"""One run of `cockpit migrate status|apply|rollback`: the environment resolved, the files
read, the sides connected, the run logged, and what happened printed.

Exit codes: 0 done (status: every migration in order, no schema violation), 1 a migration
failed or status found something wrong, 2 bad input (nothing was written), 130 Ctrl+C.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import psycopg

from cockpit.operator import Operator
from cockpit.secrets import Redactor
from migrate import environments
from migrate.convex_side import ConvexSide, SchemaCheck
from migrate.files import MigrationFile, MigrationsError, load_folder
from migrate.postgres_side import PostgresSide, SideBusy
from migrate.run_log import RunLog
from migrate.status import MigrationState
from migrate.universal import MigrationFailed, Migrator, Outcome, Refused
from steps.convex.client import ConvexError

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130
_VERSION = re.compile(r"^\d{3}$")


@dataclass(frozen=True)
class MigrateRequest:
    action: str  # status | apply | rollback
    config: Path
    environment: str | None
    target: str | None = None
    dry_run: bool = False
    as_json: bool = False
    check_schema: bool = True


class _Invalid(Exception):
    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def run(request: MigrateRequest, out: Callable[[str], None], err: Callable[[str], None]) -> int:
    redactor = Redactor()
    try:
        if request.target is not None and not _VERSION.match(request.target):
            raise _Invalid([f"--target {request.target!r}: a version is three digits, e.g. 003"])
        sides = environments.load(request.config, request.environment, os.environ, redactor)
        files = load_folder(sides.migrations)
    except (environments.EnvironmentError, MigrationsError) as exc:
        for problem in exc.problems:
            err(str(problem))
        return EXIT_INVALID
    except _Invalid as exc:
        for line in exc.lines:
            err(line)
        return EXIT_INVALID
    log = RunLog(sides.logs, request.action, sides.name, redactor)
    # With --json, stdout holds the one document; what the run says goes to stderr.
    say = log.teller(err if request.as_json else out)
    try:
        say(f"environment {sides.name}: {_sides_line(sides)}; {len(files)} migration files in {sides.migrations}")
        with _connected(sides, say) as (postgres, convex):
            migrator = Migrator(files, postgres=postgres, convex=convex, applied_by=str(Operator.current()), log=say)
            return _perform(request, migrator, convex, files, say, out)
    except Refused as exc:
        say(f"refused: {exc}")
        return EXIT_INVALID
    except MigrationFailed as exc:
        if request.as_json:
            out(json.dumps(_outcome_json(exc.outcome), indent=2))
        return EXIT_FAILED
    except SideBusy as exc:
        say(str(exc))
        return EXIT_FAILED
    except psycopg.Error as exc:
        say(f"postgres: {str(exc).strip()}")
        return EXIT_FAILED
    except ConvexError as exc:
        say(f"convex: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        say("interrupted: the migration under way is applied on both sides or neither (status says which)")
        return EXIT_INTERRUPTED
    finally:
        say(f"log: {log.path}")
        log.close()


def _sides_line(sides: environments.Sides) -> str:
    enabled = [name for name, on in (("postgres", sides.postgres_dsn), ("convex", sides.convex_url)) if on]
    off = f" (off: {'; '.join(sides.disabled)})" if sides.disabled else ""
    return f"{' and '.join(enabled)}{off}"


@contextmanager
def _connected(
    sides: environments.Sides, say: Callable[[str], None]
) -> Iterator[tuple[PostgresSide | None, ConvexSide | None]]:
    postgres = PostgresSide(sides.postgres_dsn) if sides.postgres_dsn else None
    convex = ConvexSide(sides.convex_url, sides.convex_key or "", log=say) if sides.convex_url else None
    try:
        yield postgres, convex
    finally:
        if postgres is not None:
            postgres.close()
        if convex is not None:
            convex.close()


def _perform(
    request: MigrateRequest,
    migrator: Migrator,
    convex: ConvexSide | None,
    files: list[MigrationFile],
    say: Callable[[str], None],
    out: Callable[[str], None],
) -> int:
    if request.action == "status":
        now = migrator.status()
        for line in _state_lines(now):
            say(line)
        checks = _schema_checks(convex, now, files, say) if request.check_schema else []
        wrong = [s for s in now if s.state not in ("applied", "pending")]
        violating = [c for c in checks if c.violating]
        if request.as_json:
            out(json.dumps(_status_json(migrator, now, checks), indent=2))
        return EXIT_FAILED if wrong or violating else EXIT_OK
    if request.action == "apply":
        outcome = migrator.apply(request.target, dry_run=request.dry_run)
    else:
        outcome = migrator.rollback(request.target, dry_run=request.dry_run)
    if request.as_json:
        out(json.dumps(_outcome_json(outcome), indent=2))
    done = len(outcome.done)
    verb = {"apply": "applied", "rollback": "rolled back"}[outcome.action]
    say(f"{'dry run: would have ' if outcome.dry_run else ''}{verb} {done} migration{'s' if done != 1 else ''}")
    if outcome.dry_run and convex is not None and done > 1:
        say("dry run: Convex tried each migration on its documents as they are now, without the ones before it")
    return EXIT_OK


def _state_lines(states: list[MigrationState]) -> list[str]:
    """One line per migration, as narrow as the names allow: version, name, state, and for an
    applied one when, by whom and its checksum (the first 8 hex digits)."""
    width = max((len(s.name) for s in states), default=0)
    lines = []
    for state in states:
        head = f"{state.version}  {state.name:<{width}}  {state.state}"
        applied = [record for record in state.records.values() if record is not None]
        if state.state == "changed since applied" and state.file is not None:
            record = state.records[state.changed_on[0]]
            was = record.checksum if record else "?"
            lines.append(f"{head}: applied as {_short(was)}, the file is now {_short(state.file.checksum)}")
        elif applied:
            when = applied[0].applied_at.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ")
            lines.append(f"{head}  {when} by {applied[0].applied_by}  {_short(applied[0].checksum)}")
        else:
            lines.append(head)
    return lines


def _short(checksum: str) -> str:
    return checksum.removeprefix("sha256:")[:8]


def _schema_checks(
    convex: ConvexSide | None, now: list[MigrationState], files: list[MigrationFile], say: Callable[[str], None]
) -> list[SchemaCheck]:
    """The documents of each table the applied migrations declare, against that schema."""
    if convex is None:
        return []
    applied = {s.version for s in now if s.records.get("convex") is not None}
    tables: dict[str, dict[str, str]] = {}
    for file in files:
        if file.version in applied:
            for table, fields in file.migration.schema_.items():
                tables.setdefault(table, {}).update(fields)
    checks = []
    for table, fields in tables.items():
        check = convex.check_schema(table, fields, progress=_every_few_seconds(table, say))
        checks.append(check)
        if not check.violating:
            say(f"schema: {table}: {_documents(check.checked)}, all as declared")
            continue
        say(f"schema: {table}: {check.violating} of {_documents(check.checked)} violate the declared schema")
        for violation in check.violations[:5]:
            say(f"  {violation.document} {violation.field}: {violation.problem}")
    return checks


def _every_few_seconds(table: str, say: Callable[[str], None]) -> Callable[[int], None]:
    """A progress line for a long schema check, at most one every 2 seconds."""
    last = time.monotonic()

    def progress(checked: int) -> None:
        nonlocal last
        if time.monotonic() - last >= 2:
            last = time.monotonic()
            say(f"schema: {table}: {_documents(checked)} checked so far ...")

    return progress


def _documents(count: int) -> str:
    return f"{count} document{'' if count == 1 else 's'}"


def _status_json(migrator: Migrator, now: list[MigrationState], checks: list[SchemaCheck]) -> dict[str, Any]:
    return {
        "sides": migrator.sides,
        "migrations": [state.as_json() for state in now],
        "schema": [
            {
                "table": c.table,
                "checked": c.checked,
                "violating": c.violating,
                "violations": [{"document": v.document, "field": v.field, "problem": v.problem} for v in c.violations],
            }
            for c in checks
        ],
    }


def _outcome_json(outcome: Outcome) -> dict[str, Any]:
    return {"action": outcome.action, "dry_run": outcome.dry_run, "done": outcome.done, "failed": outcome.failed}
