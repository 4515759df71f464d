"""The run journal: SQLite in WAL mode under `.cockpit/` beside the runbook.

Every event is committed here before it is published, with the step's materialised state
in the same transaction, so after a crash at any moment the journal says exactly which
steps finished, which were running (now `interrupted`), and where each step's checkpoint
stood. Log lines are stored whole (the screen keeps only a tail). One process writes; any
number may read (`cockpit status`, an observer).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cockpit.events import EVENT_TYPES, Event
from cockpit.journal_schema import create_or_upgrade


def journal_dir(runbook_path: Path) -> Path:
    """`.cockpit/` beside the runbook."""
    return runbook_path.resolve().parent / ".cockpit"


def private_dir(path: Path) -> Path:
    """Create a folder, and each missing parent, readable by its owner only."""
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)
    os.chmod(path, 0o700)
    return path


@dataclass
class RunRecord:
    id: int
    source: str
    name: str
    digest: str
    runbook_text: str
    mode: str
    dry_run: bool
    created_wall: float
    ended_wall: float | None
    state: str
    paused: bool
    clock: datetime | None
    rollback: dict[str, Any] | None
    options: dict[str, Any] = field(default_factory=dict)
    heartbeat_wall: float | None = None  # when a process driving the run last saved its clock


@dataclass
class StepRecord:
    step: str
    state: str
    attempt: int = 0
    retries_left: int = 0
    reason: str = ""
    started_clock: datetime | None = None
    ended_clock: datetime | None = None
    started_wall: float | None = None
    ended_wall: float | None = None
    completed_seq: int | None = None
    operator_started: bool = False
    not_run: bool = False


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True)
class LogEntry:
    """One line of a step's log, as journaled."""

    n: int
    attempt: int
    wall: float
    line: str


class Journal:
    """One journal file. Thread-safe for one writing process; readers open their own."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        self._lock = threading.RLock()
        if readonly:
            if not path.exists():
                raise FileNotFoundError(f"no journal at {path}")
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        else:
            private_dir(path.parent)
            if not path.exists():
                # Created 0600 before SQLite opens it: the WAL and SHM files copy its mode.
                fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
                os.close(fd)
            os.chmod(path, 0o600)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives any process crash (kill -9); only an OS crash can lose
            # the last commits, and the run lock plus `interrupted` cover that case too.
            self._db.execute("PRAGMA synchronous=NORMAL")
            create_or_upgrade(self._db)
        self._db.execute("PRAGMA busy_timeout=5000")

    @classmethod
    def for_runbook(cls, runbook_path: Path, *, readonly: bool = False) -> Journal:
        return cls(journal_dir(runbook_path) / "journal.db", readonly=readonly)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- transactions ---------------------------------------------------------

    def _write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int | None]:
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                ids: list[int | None] = []
                for sql, args in statements:
                    cur.execute(sql, args)
                    ids.append(cur.lastrowid)
                cur.execute("COMMIT")
                return ids
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    # -- runs -----------------------------------------------------------------

    def create_run(
        self,
        *,
        source: str,
        name: str,
        digest: str,
        runbook_text: str,
        mode: str,
        dry_run: bool,
        options: dict[str, Any],
    ) -> int:
        (run_id,) = self._write(
            [
                (
                    "INSERT INTO runs (source, name, digest, runbook_text, mode, dry_run, created_wall, state, options)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?)",
                    (source, name, digest, runbook_text, mode, int(dry_run), time.time(), json.dumps(options)),
                )
            ]
        )
        assert run_id is not None
        return run_id

    def latest_run(self, source: str | None = None) -> RunRecord | None:
        with self._lock:
            if source is None:
                row = self._db.execute("SELECT * FROM runs ORDER BY id DESC LIMIT 1").fetchone()
            else:
                row = self._db.execute(
                    "SELECT * FROM runs WHERE source = ? ORDER BY id DESC LIMIT 1", (source,)
                ).fetchone()
        return self._run_record(row) if row else None

    def run(self, run_id: int) -> RunRecord:
        with self._lock:
            row = self._db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(run_id)
        return self._run_record(row)

    def update_run(self, run_id: int, **fields: Any) -> None:
        """Change columns of a run (paused, rollback, clock) without an event."""
        values = [json.dumps(v) if k == "rollback" and v is not None else v for k, v in fields.items()]
        columns = ", ".join(f"{k} = ?" for k in fields)
        self._write([(f"UPDATE runs SET {columns} WHERE id = ?", (*values, run_id))])

    def record_clock(self, run_id: int, clock: datetime) -> None:
        """Remember the run's clock, so a rehearsal continues where it stood, and when it was saved."""
        self.update_run(run_id, clock=clock.isoformat(), heartbeat_wall=time.time())

    def _run_record(self, row: Sequence[Any]) -> RunRecord:
        names = [d[0] for d in self._db.execute("SELECT * FROM runs LIMIT 0").description]
        r = dict(zip(names, row, strict=True))
        return RunRecord(
            id=r["id"],
            source=r["source"],
            name=r["name"],
            digest=r["digest"],
            runbook_text=r["runbook_text"],
            mode=r["mode"],
            dry_run=bool(r["dry_run"]),
            created_wall=r["created_wall"],
            ended_wall=r["ended_wall"],
            state=r["state"],
            paused=bool(r["paused"]),
            clock=_dt(r["clock"]),
            rollback=json.loads(r["rollback"]) if r["rollback"] else None,
            options=json.loads(r["options"]),
            heartbeat_wall=r.get("heartbeat_wall"),
        )

    # -- events -----------------------------------------------------------------

    def record(
        self,
        run_id: int,
        event: Event,
        *,
        step: StepRecord | None = None,
        run: dict[str, Any] | None = None,
        action: tuple[str, str, str | None, str] | None = None,
        trigger: tuple[str, str] | None = None,
    ) -> int:
        """Commit an event, with the state it changes, in one transaction; return its sequence."""
        data = event.to_dict()
        for key in ("type", "seq", "wall", "clock"):
            data.pop(key, None)
        clock = _iso(event.clock)
        statements: list[tuple[str, Sequence[Any]]] = [
            (
                "INSERT INTO events (run_id, wall, clock, type, step, data) VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, event.wall, clock, event.type, event.step, json.dumps(data, default=str)),
            )
        ]
        if step is not None:
            statements.append(
                (
                    "INSERT OR REPLACE INTO steps (run_id, step, state, attempt, retries_left, reason, started_clock,"
                    " ended_clock, started_wall, ended_wall, completed_seq, operator_started, not_run)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run_id,
                        step.step,
                        step.state,
                        step.attempt,
                        step.retries_left,
                        step.reason,
                        _iso(step.started_clock),
                        _iso(step.ended_clock),
                        step.started_wall,
                        step.ended_wall,
                        step.completed_seq,
                        int(step.operator_started),
                        int(step.not_run),
                    ),
                )
            )
        if run:
            columns = ", ".join(f"{k} = ?" for k in run)
            values = [json.dumps(v) if k == "rollback" and v is not None else v for k, v in run.items()]
            statements.append((f"UPDATE runs SET {columns} WHERE id = ?", (*values, run_id)))
        if action is not None:
            operator, name, step_id, detail = action
            statements.append(
                (
                    "INSERT INTO actions (run_id, wall, clock, operator, action, step, detail)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (run_id, event.wall, clock, operator, name, step_id, detail),
                )
            )
        if trigger is not None:
            statements.append(
                (
                    "INSERT OR REPLACE INTO triggers (run_id, trigger, fired_wall, fired_clock, reason)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (run_id, trigger[0], event.wall, clock, trigger[1]),
                )
            )
        seq = self._write(statements)[0]
        assert seq is not None
        return seq

    def events(self, run_id: int, after: int = 0, types: Sequence[str] | None = None) -> Iterator[Event]:
        sql = "SELECT seq, wall, clock, type, data FROM events WHERE run_id = ? AND seq > ?"
        args: list[Any] = [run_id, after]
        if types:
            sql += f" AND type IN ({','.join('?' * len(types))})"
            args.extend(types)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY seq", args).fetchall()
        for seq, wall, clock, type_name, data in rows:
            cls = EVENT_TYPES[type_name]
            fields = json.loads(data)
            yield _event_from(cls, fields, seq=seq, wall=wall, clock=_dt(clock))

    # -- steps, logs, checkpoints, progress, metrics ------------------------------

    def steps(self, run_id: int) -> dict[str, StepRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT step, state, attempt, retries_left, reason, started_clock, ended_clock, started_wall,"
                " ended_wall, completed_seq, operator_started, not_run FROM steps WHERE run_id = ?",
                (run_id,),
            ).fetchall()
        return {
            r[0]: StepRecord(
                step=r[0],
                state=r[1],
                attempt=r[2],
                retries_left=r[3],
                reason=r[4],
                started_clock=_dt(r[5]),
                ended_clock=_dt(r[6]),
                started_wall=r[7],
                ended_wall=r[8],
                completed_seq=r[9],
                operator_started=bool(r[10]),
                not_run=bool(r[11]),
            )
            for r in rows
        }

    def append_logs(self, run_id: int, rows: Sequence[tuple[str, int, int, float, str]]) -> None:
        """Store log lines: (step, line number, attempt, wall, text), in one transaction."""
        if not rows:
            return
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                cur.executemany(
                    "INSERT OR REPLACE INTO logs (run_id, step, n, attempt, wall, line) VALUES (?, ?, ?, ?, ?, ?)",
                    [(run_id, *row) for row in rows],
                )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    def log_lines(self, run_id: int, step: str, *, tail: int | None = None) -> list[str]:
        return [entry.line for entry in self.log_entries(run_id, step, tail=tail)]

    def log_entries(
        self, run_id: int, step: str, *, tail: int | None = None, containing: str | None = None
    ) -> list[LogEntry]:
        """A step's log lines in order, with their attempts and times: the last `tail` of them, and
        only those that contain `containing` (case-insensitive) when given."""
        where, args = "run_id = ? AND step = ?", [run_id, step]
        if containing:
            where += " AND instr(lower(line), ?) > 0"
            args.append(containing.lower())
        with self._lock:
            rows = self._db.execute(
                f"SELECT n, attempt, wall, line FROM (SELECT n, attempt, wall, line FROM logs WHERE {where}"
                " ORDER BY n DESC LIMIT ?) ORDER BY n",
                (*args, -1 if tail is None else tail),
            ).fetchall()
        return [LogEntry(*row) for row in rows]

    def log_count(self, run_id: int, step: str) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT COALESCE(MAX(n), 0) FROM logs WHERE run_id = ? AND step = ?", (run_id, step)
            ).fetchone()
        return int(row[0])

    def save_checkpoint(self, run_id: int, step: str, data: dict[str, Any]) -> None:
        self._write(
            [
                (
                    "INSERT OR REPLACE INTO checkpoints (run_id, step, data, wall) VALUES (?, ?, ?, ?)",
                    (run_id, step, json.dumps(data), time.time()),
                )
            ]
        )

    def checkpoint(self, run_id: int, step: str) -> dict[str, Any]:
        with self._lock:
            row = self._db.execute(
                "SELECT data FROM checkpoints WHERE run_id = ? AND step = ?", (run_id, step)
            ).fetchone()
        return json.loads(row[0]) if row else {}

    def save_progress(self, run_id: int, rows: Sequence[tuple[str, str, float, float | None, str]]) -> None:
        if not rows:
            return
        now = time.time()
        self._write(
            [
                (
                    "INSERT OR REPLACE INTO progress (run_id, step, label, done, total, unit, wall)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (run_id, step, label, done, total, unit, now),
                )
                for step, label, done, total, unit in rows
            ]
        )

    def progress(self, run_id: int) -> list[tuple[str, str, float, float | None, str]]:
        with self._lock:
            return [
                tuple(r)
                for r in self._db.execute(
                    "SELECT step, label, done, total, unit FROM progress WHERE run_id = ? ORDER BY step, label",
                    (run_id,),
                ).fetchall()
            ]

    def save_metric(self, run_id: int, name: str, value: float, step: str) -> None:
        self._write(
            [
                (
                    "INSERT OR REPLACE INTO metrics (run_id, name, value, step, wall) VALUES (?, ?, ?, ?, ?)",
                    (run_id, name, value, step, time.time()),
                )
            ]
        )

    def metrics(self, run_id: int) -> dict[str, float]:
        with self._lock:
            rows = self._db.execute("SELECT name, value FROM metrics WHERE run_id = ?", (run_id,)).fetchall()
        return {name: value for name, value in rows}

    def fired_triggers(self, run_id: int) -> dict[str, tuple[datetime | None, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT trigger, fired_clock, reason FROM triggers WHERE run_id = ?", (run_id,)
            ).fetchall()
        return {t: (_dt(c), r) for t, c, r in rows}

    def actions(self, run_id: int) -> list[tuple[float, str, str, str | None, str]]:
        with self._lock:
            return [
                tuple(r)
                for r in self._db.execute(
                    "SELECT wall, operator, action, step, detail FROM actions WHERE run_id = ? ORDER BY id",
                    (run_id,),
                ).fetchall()
            ]


def _event_from(cls: type[Event], fields: dict[str, Any], **common: Any) -> Event:
    import dataclasses
    import typing

    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in common or f.name not in fields:
            continue
        value = fields[f.name]
        hint = str(hints.get(f.name, ""))
        if "datetime" in hint and isinstance(value, str):
            value = datetime.fromisoformat(value)
        elif "tuple" in hint and isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs, **common)
