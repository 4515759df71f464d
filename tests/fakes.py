"""Fake step kinds and helpers for engine tests: no servers, no Textual.

The fakes do real things in small: they sleep on the run's clock, log, report progress,
publish metrics, keep checkpoints and honour (or, on purpose, ignore) cancellation, and they
record every attempt in a shared ledger so tests can assert what ran and when.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import Field

from cockpit import runbook_loader
from cockpit.clock import Clock, RehearsalClock
from cockpit.engine import Engine
from cockpit.events import Event
from cockpit.journal import Journal, journal_dir
from cockpit.lock import RunLock
from cockpit.operator import Operator
from cockpit.registry import installed_kinds
from cockpit.runbook import Runbook
from cockpit.session import Session
from cockpit.step import Effect, Step, StepCancelled, StepContext, StepFailed, StepParams

T0 = datetime(2026, 12, 5, 23, 0, tzinfo=UTC)


class Ledger:
    """What the fake steps did, in order, across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[tuple[str, str, int, float]] = []  # (what, step, attempt, wall)

    def add(self, what: str, step: str, attempt: int) -> None:
        with self._lock:
            self.entries.append((what, step, attempt, time.monotonic()))

    def of(self, what: str) -> list[str]:
        with self._lock:
            return [e[1] for e in self.entries if e[0] == what]

    def count(self, what: str, step: str) -> int:
        return self.of(what).count(step)


LEDGER = Ledger()


class WorkParams(StepParams):
    seconds: float = Field(default=0.0, description="real seconds of work")
    clock_seconds: float = Field(default=0.0, description="clock seconds to wait (compressed in a rehearsal)")
    lines: int = 0
    fail_attempts: int = Field(default=0, description="fail this many first attempts")
    fail_message: str = "it broke"
    metric: str | None = None
    value: float = 0.0
    progress_total: int = 0
    log_text: str | None = None
    checkpoint_key: str | None = None


class WorkStep(Step[WorkParams]):
    """Does `seconds` of cancellable work; may fail its first attempts; logs and reports."""

    kind = "fake.work"
    effect = Effect.MUTATE
    Params = WorkParams

    def run(self, ctx: StepContext[WorkParams]) -> None:
        p = ctx.params
        LEDGER.add("start", ctx.step_id, ctx.attempt)
        if p.checkpoint_key:
            LEDGER.add(f"checkpoint-seen:{ctx.checkpoint.get(p.checkpoint_key)}", ctx.step_id, ctx.attempt)
            ctx.checkpoint[p.checkpoint_key] = ctx.attempt
        if p.log_text:
            ctx.log(p.log_text)
        if p.lines:
            batch: list[str] = []
            for n in range(1, p.lines + 1):
                batch.append(f"line {n}")
                if len(batch) == 1000:
                    ctx.log_lines(batch)
                    batch = []
            if batch:
                ctx.log_lines(batch)
        deadline = time.monotonic() + p.seconds
        done = 0
        while time.monotonic() < deadline:
            if ctx.cancel.wait(min(0.01, max(0.0, deadline - time.monotonic()))):
                LEDGER.add("cancelled", ctx.step_id, ctx.attempt)
                raise StepCancelled("stopped")
            if p.progress_total:
                done = min(p.progress_total, done + 1)
                ctx.progress(done, p.progress_total, "rows")
        if p.clock_seconds and ctx.sleep(p.clock_seconds):
            LEDGER.add("cancelled", ctx.step_id, ctx.attempt)
            raise StepCancelled("stopped")
        if p.metric:
            ctx.metric(p.metric, p.value)
        if ctx.attempt <= p.fail_attempts:
            LEDGER.add("fail", ctx.step_id, ctx.attempt)
            raise StepFailed(p.fail_message)
        LEDGER.add("end", ctx.step_id, ctx.attempt)


class ProbeStep(WorkStep):
    """The same work, declared read-only: a dry run executes it."""

    kind = "fake.probe"
    effect = Effect.PROBE


class StubbornParams(StepParams):
    seconds: float = 2.0


class StubbornStep(Step[StubbornParams]):
    """Ignores its cancellation event: the engine must abandon it after the grace period."""

    kind = "fake.stubborn"
    effect = Effect.MUTATE
    Params = StubbornParams

    def run(self, ctx: StepContext[StubbornParams]) -> None:
        p = ctx.params
        LEDGER.add("start", ctx.step_id, ctx.attempt)
        time.sleep(p.seconds)
        LEDGER.add("end", ctx.step_id, ctx.attempt)


class CrashStep(Step[WorkParams]):
    """Raises an unexpected exception (not StepFailed)."""

    kind = "fake.crash"
    effect = Effect.MUTATE
    Params = WorkParams

    def run(self, ctx: StepContext[WorkParams]) -> None:
        raise ValueError(f"unexpected: {ctx.params.fail_message}")


FAKE_KINDS: dict[str, type[Step[Any]]] = {
    **installed_kinds(),
    "fake.work": WorkStep,
    "fake.probe": ProbeStep,
    "fake.stubborn": StubbornStep,
    "fake.crash": CrashStep,
}

HEADER = """
[runbook]
name = "Test run"
t0 = 2026-12-05T23:00:00+00:00
window = "30m"

[[phase]]
id = "prep"
at = "T-1d"

[[phase]]
id = "window"
at = "T-0"
window = true

[[phase]]
id = "rollback"
kind = "rollback"
"""


def write_runbook(folder: Path, body: str, header: str = HEADER, name: str = "runbook.toml") -> Path:
    path = folder / name
    path.write_text(header + body)
    return path


def load(path: Path, env: Mapping[str, str] | None = None) -> Runbook:
    return runbook_loader.load(path, kinds=FAKE_KINDS, env=env or {})


class Harness:
    """An engine over a runbook in a temp folder, recording every event it publishes."""

    def __init__(
        self,
        folder: Path,
        body: str,
        *,
        clock: Clock | None = None,
        rehearsal: bool = True,
        speed: float = 600.0,
        start: timedelta = timedelta(minutes=-5),
        env: Mapping[str, str] | None = None,
        header: str = HEADER,
        operator: Operator | None = None,
        grace: float = 5.0,
        **options: Any,
    ) -> None:
        self.path = write_runbook(folder, body, header) if body is not None else folder / "runbook.toml"
        self.runbook = load(self.path, env)
        self.journal = Journal.for_runbook(self.path)
        self.clock = clock or RehearsalClock(self.runbook.t0 + start, speed=speed)
        self.events: list[Event] = []
        self._events_lock = threading.Lock()
        self.engine = Engine(
            self.runbook,
            self.journal,
            clock=self.clock,
            operator=operator or Operator("tester"),
            rehearsal=rehearsal,
            env=env or {},
            grace=grace,
            **options,
        )
        self.engine.subscribe(self._record)

    def _record(self, event: Event) -> None:
        with self._events_lock:
            self.events.append(event)

    def of_type(self, cls: type[Event]) -> list[Any]:
        with self._events_lock:
            return [e for e in self.events if isinstance(e, cls)]

    def states(self, step_id: str) -> list[str]:
        from cockpit.events import StepStateChanged

        return [e.state for e in self.of_type(StepStateChanged) if e.step_id == step_id]

    def start(self) -> Harness:
        self.engine.open()
        self.engine.start()
        return self

    def settle(self, timeout: float = 30.0) -> Any:
        outcome = self.engine.wait_until_settled(timeout)
        return outcome

    def state(self, step_id: str) -> str:
        return self.engine.step_runtime(step_id).state.value

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.01)
        raise AssertionError(f"condition not met within {timeout}s")

    def wait_state(self, step_id: str, state: str, timeout: float = 10.0) -> None:
        self.wait_for(lambda: self.state(step_id) == state, timeout)

    def close(self) -> None:
        self.engine.stop()
        self.journal.close()


def make_session(
    folder: Path,
    body: str,
    *,
    clock: Clock | None = None,
    header: str = HEADER,
    env: Mapping[str, str] | None = None,
    operator: Operator | None = None,
    **options: Any,
) -> Session:
    """A Session as the command line would build it, but with the fake kinds."""
    path = write_runbook(folder, body, header)
    runbook = load(path, env)
    lock = RunLock(journal_dir(path) / "run.lock")
    lock.acquire("tester", "test")
    journal = Journal.for_runbook(path)
    clock = clock or RehearsalClock(runbook.t0 - timedelta(minutes=5), speed=600)
    engine = Engine(
        runbook,
        journal,
        clock=clock,
        operator=operator or Operator("tester"),
        rehearsal=options.pop("rehearsal", True),
        env=env or {},
        **options,
    )
    engine.open()
    return Session(runbook, journal, lock, engine, clock)
