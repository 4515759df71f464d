"""The journal-then-publish path: every change is committed to the journal before any reader
(the screen, the headless printer, the autopilot) is told of it, with secrets redacted on the
way. Log lines and progress, which arrive in batches from the log pump, take the same path."""

from __future__ import annotations

import dataclasses
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from cockpit.engine.live_run import LiveRun
from cockpit.engine.step_runtime import StepRuntime
from cockpit.events import Event, OperatorActed, StepLog, StepProgress
from cockpit.logpump import LogChunk, ProgressReport
from cockpit.operator import Operator

Subscriber = Callable[[Event], None]


class Publisher:
    def __init__(self, run: LiveRun) -> None:
        self._run = run
        # Re-entrant: a subscriber may act on the engine (the autopilot answers a gate it is told of).
        self._lock = threading.RLock()
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            self._subscribers.append(subscriber)

    def emit(
        self,
        event: Event,
        *,
        step: StepRuntime | None = None,
        run: dict[str, Any] | None = None,
        action: tuple[str, str, str | None, str] | None = None,
        trigger: tuple[str, str] | None = None,
    ) -> Event:
        """Journal, then publish. Call with the run's lock held, so journal order is event order."""
        live = self._run
        event = self._redacted(dataclasses.replace(event, wall=time.time(), clock=live.clock.now()))
        if action is not None:
            action = (action[0], action[1], action[2], live.redact(action[3]))
        seq = live.journal.record(
            live.run_id, event, step=step.record() if step else None, run=run, action=action, trigger=trigger
        )
        event = dataclasses.replace(event, seq=seq)
        self._publish(event)
        return event

    def operator_acted(self, operator: Operator, action: str, step_id: str | None = None, detail: str = "") -> None:
        self.emit(
            OperatorActed(action=action, operator=str(operator), step_id=step_id, detail=detail),
            action=(str(operator), action, step_id, detail),
        )

    def logs(self, chunks: list[LogChunk]) -> None:
        """The log pump's sink: number the lines per step, keep them, then publish them."""
        live = self._run
        rows: list[tuple[str, int, int, float, str]] = []
        events: list[StepLog] = []
        with live.lock:
            for chunk in chunks:
                rt = live.steps.get(chunk.step_id)
                if rt is None:
                    continue
                first = rt.log_count + 1
                for i, line in enumerate(chunk.lines):
                    rows.append((chunk.step_id, first + i, chunk.attempt, chunk.wall, line))
                rt.log_count += len(chunk.lines)
                events.append(
                    StepLog(
                        step_id=chunk.step_id,
                        attempt=chunk.attempt,
                        first_line=first,
                        lines=tuple(chunk.lines),
                        wall=chunk.wall,
                        clock=live.clock.now(),
                    )
                )
        live.journal.append_logs(live.run_id, rows)
        # Log batches are not journal events (the lines table holds them): publish directly.
        for event in events:
            self._publish(event)

    def progress(self, reports: list[ProgressReport]) -> None:
        """The log pump's progress sink: keep the latest of each bar, then publish it with its rate."""
        live = self._run
        live.journal.save_progress(live.run_id, [(r.step_id, r.label, r.done, r.total, r.unit) for r in reports])
        for r in reports:
            with live.lock:
                rt = live.steps.get(r.step_id)
                state = rt.progress.get(r.label) if rt else None
                rate = state.rate if state else None
            self._publish(
                StepProgress(
                    step_id=r.step_id,
                    attempt=r.attempt,
                    label=r.label,
                    done=r.done,
                    total=r.total,
                    unit=r.unit,
                    rate=rate,
                    wall=r.wall,
                    clock=live.clock.now(),
                )
            )

    def _publish(self, event: Event) -> None:
        with self._lock:
            for subscriber in list(self._subscribers):
                try:
                    subscriber(event)
                except Exception:  # a broken reader must not stop the run
                    traceback.print_exc()

    def _redacted(self, event: Event) -> Event:
        redact = self._run.redact
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(event):
            value = getattr(event, f.name)
            if isinstance(value, str):
                clean = redact(value)
                if clean is not value:
                    changes[f.name] = clean
            elif isinstance(value, tuple) and value and isinstance(value[0], str):
                changes[f.name] = tuple(redact(v) for v in value)
        return dataclasses.replace(event, **changes) if changes else event
