"""Universal migrations: each migration applied to PostgreSQL and Convex together.

For one migration, the PostgreSQL transaction opens (its `sql.up`, its record), the Convex
mutation runs (its operations, its record), and only then does PostgreSQL commit. A failure
on either side before that leaves neither changed: the Convex mutation wrote nothing if it
threw, and the transaction rolls back. Should the commit itself fail after Convex applied, the
Convex side is rolled back again. A run that dies between the two (kill -9) leaves the
migration applied on Convex only; status says so, and the next apply completes it, since
applying on Convex again finds its record and writes nothing.

Everything that can be refused is refused before anything is written: a target that does not
exist, a file changed since it was applied, a rollback past a migration without the means to
undo it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import psycopg

from migrate.convex_side import ConvexSide
from migrate.files import MigrationFile
from migrate.postgres_side import PostgresSide, PostgresTransaction
from migrate.records import AppliedRecord
from migrate.status import MigrationState, states


class Refused(ValueError):
    """The run was refused before anything was written."""


class MigrationFailed(RuntimeError):
    """A migration failed on a side: it was rolled back on both, and the run stopped."""

    def __init__(self, message: str, outcome: Outcome) -> None:
        super().__init__(message)
        self.outcome = outcome


@dataclass
class Outcome:
    """What a run did (or, dry, would do): one entry per migration it reached."""

    action: str  # "apply" | "rollback"
    dry_run: bool
    done: list[dict[str, Any]] = field(default_factory=list)
    failed: dict[str, Any] | None = None


class _DryRun(Exception):
    """Raised at the end of a dry run's transaction: roll it back."""


class Migrator:
    def __init__(
        self,
        files: list[MigrationFile],
        *,
        postgres: PostgresSide | None,
        convex: ConvexSide | None,
        applied_by: str,
        log: Callable[[str], None],
    ) -> None:
        if postgres is None and convex is None:
            raise Refused("neither side is enabled: nothing to migrate")
        self._files = files
        self._postgres = postgres
        self._convex = convex
        self._applied_by = applied_by
        self._log = log

    @property
    def sides(self) -> list[str]:
        return [side.name for side in (self._postgres, self._convex) if side is not None]

    def status(self) -> list[MigrationState]:
        applied: dict[str, dict[str, AppliedRecord]] = {}
        for side in (self._postgres, self._convex):
            if side is not None:
                applied[side.name] = side.applied()
        return states(self._files, applied)

    # -- apply ------------------------------------------------------------------------------

    def _lock(self) -> None:
        if self._postgres is not None:
            self._postgres.lock()

    def apply(self, target: str | None = None, *, dry_run: bool = False) -> Outcome:
        self._lock()
        now = self.status()
        self._refuse_changed(now)
        last = self._target(target, now) if target is not None else (now[-1].version if now else None)
        todo = [s for s in now if s.file is not None and last is not None and s.version <= last]
        todo = [s for s in todo if len(s.applied_on) < len(s.records)]
        outcome = Outcome("apply", dry_run)
        if not todo:
            self._log("nothing to apply: every migration up to the target is applied")
            return outcome
        with self._dry_transaction(dry_run):
            for state in todo:
                self._apply_one(state, outcome)
        return outcome

    def _apply_one(self, state: MigrationState, outcome: Outcome) -> None:
        file = state.file
        assert file is not None  # the plan holds migrations with files only
        postgres = self._postgres if _lacks(state, "postgres") else None
        convex = self._convex if _lacks(state, "convex") else None
        sides = [s.name for s in (postgres, convex) if s is not None]
        dry = outcome.dry_run
        self._log(f"{'would apply' if dry else 'applying'} {file.label} on {' and '.join(sides)}")
        entry: dict[str, Any] = {"version": file.version, "name": file.migration.name, "sides": sides}
        try:
            with self._postgres_transaction(postgres) as transaction:
                if transaction is not None:
                    transaction.apply(file, self._applied_by)
                    entry["postgres"] = "sql applied" if file.migration.sql else "recorded"
                if convex is not None:
                    entry["convex"] = self._convex_call(lambda: convex.apply(file, self._applied_by, dry_run=dry))
        except _SideError as exc:
            self._fail(outcome, entry, exc, "applied")
        except psycopg.Error as exc:
            if "convex" in entry and convex is not None and not dry:
                self._undo_convex_apply(file, convex)
            self._fail(outcome, entry, _SideError("postgres", _pg_message(exc)), "applied")
        outcome.done.append(entry)
        self._log(f"  {file.label}: {_summary(entry)}")

    def _undo_convex_apply(self, file: MigrationFile, convex: ConvexSide) -> None:
        """PostgreSQL failed after Convex applied (at its commit, say): undo Convex's part."""
        self._log(f"  postgres failed after convex applied {file.label}; rolling it back on convex")
        try:
            convex.rollback(file.version)
        except Exception as exc:  # noqa: BLE001 - reported: the operator must know the sides differ
            self._log(f"  could not roll {file.label} back on convex: {exc}; status shows it applied there only")

    # -- rollback ---------------------------------------------------------------------------

    def rollback(self, target: str | None = None, *, dry_run: bool = False) -> Outcome:
        self._lock()
        now = self.status()
        applied = [s for s in now if s.applied_on]
        if target is None:
            # One migration, the last applied: undoing more is asked for with --target.
            floor = applied[-2].version if len(applied) >= 2 else "000"
        else:
            floor = "000" if target == "000" else self._target(target, now)
        todo = [s for s in reversed(applied) if s.version > floor]
        self._refuse_undoable(todo)
        outcome = Outcome("rollback", dry_run)
        if not todo:
            self._log(f"nothing to roll back: nothing is applied after {floor}")
            return outcome
        with self._dry_transaction(dry_run):
            for state in todo:
                self._rollback_one(state, outcome)
        return outcome

    def _rollback_one(self, state: MigrationState, outcome: Outcome) -> None:
        file = state.file
        assert file is not None  # refused before: a migration without its file cannot be undone
        postgres = self._postgres if state.records.get("postgres") is not None else None
        convex = self._convex if state.records.get("convex") is not None else None  # None: pending, or off
        sides = [s.name for s in (postgres, convex) if s is not None]
        dry = outcome.dry_run
        self._log(f"{'would roll back' if dry else 'rolling back'} {file.label} on {' and '.join(sides)}")
        entry: dict[str, Any] = {"version": file.version, "name": file.migration.name, "sides": sides}
        try:
            with self._postgres_transaction(postgres) as transaction:
                if transaction is not None:
                    transaction.rollback(file)
                    entry["postgres"] = "sql undone" if file.migration.sql else "unrecorded"
                if convex is not None:
                    entry["convex"] = self._convex_call(lambda: convex.rollback(file.version, dry_run=dry))
        except _SideError as exc:
            self._fail(outcome, entry, exc, "rolled back")
        except psycopg.Error as exc:
            if "convex" in entry and convex is not None and not dry:
                self._log(f"  postgres failed after convex rolled {file.label} back; applying it on convex again")
                self._convex_call(lambda: convex.apply(file, self._applied_by))
            self._fail(outcome, entry, _SideError("postgres", _pg_message(exc)), "rolled back")
        outcome.done.append(entry)
        self._log(f"  {file.label}: {_summary(entry)}")

    # -- shared -----------------------------------------------------------------------------

    def _target(self, target: str, now: list[MigrationState]) -> str:
        known = [s.version for s in now if s.file is not None]
        if target not in known:
            listed = f"{known[0]} to {known[-1]}" if known else "none"
            raise Refused(f"no migration {target}: the migrations are {listed}")
        return target

    def _refuse_changed(self, now: list[MigrationState]) -> None:
        problems = []
        for state in now:
            if state.file is None:
                sides = ", ".join(state.applied_on)
                problems.append(f"{state.version} ({state.name}) is applied on {sides}, but its file is gone")
            elif state.changed_on:
                side = state.changed_on[0]
                record = state.records[side]
                was = record.checksum if record is not None else "?"
                problems.append(
                    f"{state.file.path.name} changed since it was applied on {', '.join(state.changed_on)}"
                    f" (applied as {was}, now {state.file.checksum})"
                )
        if problems:
            raise Refused("; ".join(problems) + ": restore each file as it was applied")

    def _refuse_undoable(self, todo: list[MigrationState]) -> None:
        self._refuse_changed(todo)
        for state in todo:
            file = state.file
            sql = file.migration.sql if file else None
            if sql is not None and sql.down is None and state.records.get("postgres") is not None:
                name = file.path.name if file else state.version
                raise Refused(
                    f"{name} cannot be rolled back: its sql part has no `down`; "
                    f"roll back to {state.version} or later, or add the `down` that undoes its `up`"
                )

    @contextmanager
    def _dry_transaction(self, dry_run: bool) -> Iterator[None]:
        """A dry run's PostgreSQL work in one transaction, rolled back at the end: each
        migration sees what the ones before it did, and nothing stays."""
        if not dry_run or self._postgres is None:
            yield
            return
        try:
            with self._postgres.transaction():
                yield
                raise _DryRun
        except _DryRun:
            pass

    @staticmethod
    def _postgres_transaction(postgres: PostgresSide | None) -> AbstractContextManager[PostgresTransaction | None]:
        return postgres.transaction() if postgres is not None else nullcontext()

    def _convex_call(self, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - the Convex side's every failure stops the migration
            raise _SideError("convex", str(exc)) from exc

    def _fail(self, outcome: Outcome, entry: dict[str, Any], exc: _SideError, done: str) -> None:
        undone = "nothing of it was applied" if done == "applied" else "it stays applied on both sides"
        entry["error"] = {"side": exc.side, "message": exc.message}
        outcome.failed = entry
        self._log(f"  {entry['version']}_{entry['name']} failed on {exc.side}: {exc.message}")
        self._log(f"  {undone}; stopped")
        raise MigrationFailed(f"{entry['version']}_{entry['name']} failed on {exc.side}: {exc.message}", outcome)


def _lacks(state: MigrationState, side: str) -> bool:
    """Whether `side` is enabled and has not applied this migration."""
    return side in state.records and state.records[side] is None


class _SideError(Exception):
    def __init__(self, side: str, message: str) -> None:
        super().__init__(message)
        self.side = side
        self.message = message


def _pg_message(exc: psycopg.Error) -> str:
    diag = exc.diag
    where = f" ({diag.context.strip().splitlines()[0]})" if diag.context else ""
    return f"{diag.message_primary or str(exc).strip()}{where}"


def _summary(entry: dict[str, Any]) -> str:
    parts = []
    if "postgres" in entry:
        parts.append(f"postgres {entry['postgres']}")
    convex = entry.get("convex")
    if isinstance(convex, dict):
        counts = ", ".join(f"{k} {v}" for k, v in convex.items() if isinstance(v, int) and not isinstance(v, bool))
        parts.append(f"convex {counts or 'nothing to do'}")
    return "; ".join(parts)
