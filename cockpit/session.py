"""Puts a run together: runbook, journal, lock, clock and engine, from command-line options.

The headless runner, the screen and the demo all start runs the same way through
`open_session`; every refusal (bad runbook, locked, unset variable, conflicting options) is a
`SessionError` carrying the lines to print, and means exit code 2.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from cockpit import runbook_loader, shutdown
from cockpit.clock import Clock, DurationError, RealClock, RehearsalClock, parse_offset
from cockpit.engine import Engine, RunConflict
from cockpit.journal import Journal, journal_dir
from cockpit.lock import RunLock, RunLocked
from cockpit.operator import Operator
from cockpit.options import UNSET_HINT, RunOptions, SessionError
from cockpit.runbook import Runbook, RunbookError

ANSWER_VALUES = "yes, no, retry, skip:REASON or done:REASON"


@dataclass
class Session:
    runbook: Runbook
    journal: Journal
    lock: RunLock
    engine: Engine
    clock: Clock
    closed: bool = False

    def __post_init__(self) -> None:
        self._unregister = shutdown.register(self.close)

    def close(self) -> None:
        """Stop the engine (running steps are journaled as interrupted) and release the run. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self._unregister()
        self.engine.stop()
        self.lock.release()
        self.journal.close()


def parse_answers(values: list[str], runbook: Runbook) -> dict[str, str]:
    answers: dict[str, str] = {}
    problems = []
    for value in values:
        step, sep, answer = value.partition("=")
        if not sep or not step or not answer:
            problems.append(f"--answer {value!r}: write STEP=VALUE, where VALUE is {ANSWER_VALUES}")
            continue
        if step != "rollback" and not runbook.has_step(step):
            problems.append(f"--answer {value!r}: no step {step!r} in {runbook.source}")
            continue
        ok = answer in ("yes", "no", "retry") or (answer.startswith(("skip:", "done:")) and answer[5:].strip())
        if not ok:
            problems.append(f"--answer {value!r}: the value must be {ANSWER_VALUES} (a reason is required)")
            continue
        answers[step] = answer
    if problems:
        raise SessionError(problems)
    return answers


def load_runbook(path: Path, env: Mapping[str, str]) -> Runbook:
    try:
        return runbook_loader.load(path, env=env)
    except RunbookError as exc:
        raise SessionError([str(p) for p in exc.problems]) from None


def _rehearsal_start(options: RunOptions, runbook: Runbook, journal: Journal) -> timedelta:
    if options.start_from:
        try:
            return parse_offset(options.start_from)
        except DurationError as exc:
            raise SessionError([f"--from: {exc}"]) from None
    last = journal.latest_run(str(runbook.source.resolve()))
    if (
        last is not None
        and last.mode == "rehearsal"
        and last.clock is not None
        and not options.new_run
        and last.state not in ("done", "rolled_back", "abandoned")
    ):
        return last.clock - runbook.t0
    offsets = [runbook.offset_of(s.id) for s in runbook.forward_steps] or [timedelta(0)]
    # A minute before the first step, so the rehearsal opens on a quiet screen.
    return min(offsets) - timedelta(minutes=1)


def open_session(options: RunOptions) -> Session:
    env = options.env if options.env is not None else os.environ
    runbook = load_runbook(options.runbook, env)
    answers = parse_answers(options.answers, runbook)
    if options.speed <= 0:
        raise SessionError([f"--speed must be positive, not {options.speed:g}"])
    operator = options.operator or Operator.current(env)
    lock = RunLock(journal_dir(runbook.source) / "run.lock")
    try:
        lock.acquire(str(operator), options.command or " ".join(sys.argv[1:]))
    except RunLocked as exc:
        raise SessionError([str(exc)]) from None
    journal = Journal.for_runbook(runbook.source)
    try:
        clock: Clock
        if options.rehearsal:
            start = runbook.t0 + _rehearsal_start(options, runbook, journal)
            clock = RehearsalClock(start, speed=options.speed, glide=options.glide)
        else:
            if options.start_from:
                raise SessionError(["--from applies to a rehearsal: add --rehearsal"])
            clock = RealClock()
        engine = Engine(
            runbook,
            journal,
            clock=clock,
            operator=operator,
            rehearsal=options.rehearsal,
            dry_run=options.dry_run,
            answers=answers,
            env=env,
            new_run=options.new_run,
            command=options.command,
        )
        try:
            engine.open()
        except RunbookError as exc:
            lines = [str(p) for p in exc.problems]
            if any("is not set in the environment" in line for line in lines):
                lines.append(UNSET_HINT)
            raise SessionError(lines) from None
        except RunConflict as exc:
            raise SessionError([str(exc)]) from None
    except BaseException:
        lock.release()
        journal.close()
        raise
    return Session(runbook, journal, lock, engine, clock)
