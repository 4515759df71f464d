"""The engine's two faces besides scheduling, split out of `cockpit.engine`.

`EventJournal`: every change is journaled, then published to subscribers (the screen, the
headless printer), with secrets redacted on the way. `StepHost`: what a running step calls
from its worker thread (log, progress, metrics, checkpoints, questions to the operator).
Both are mixins of `Engine`, sharing its lock and state.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cockpit.events import Event, GateOpened, MetricRecorded, StepLog, StepProgress, StepReport, StepState
from cockpit.logpump import LogChunk, LogPump, ProgressReport
from cockpit.runtime import Gate, ProgressState, StepRuntime
from cockpit.step import StepCancelled

if TYPE_CHECKING:
    from cockpit import secrets
    from cockpit.clock import Clock
    from cockpit.journal import Journal
    from cockpit.runbook import Runbook
    from cockpit.triggers import Firing, TriggerWatch

Subscriber = Callable[[Event], None]

# The checkpoint key under which a checklist's ticked items survive a restart.
TICKED = "_ticked"


class EventJournal:
    if TYPE_CHECKING:
        clock: Clock
        journal: Journal
        run_id: int
        redact: secrets.Redactor
        _lock: threading.RLock
        _publish_lock: threading.RLock
        _subscribers: list[Subscriber]
        _steps: dict[str, StepRuntime]

    def subscribe(self, subscriber: Subscriber) -> None:
        with self._publish_lock:
            self._subscribers.append(subscriber)

    def _publish(self, event: Event) -> None:
        with self._publish_lock:
            for subscriber in list(self._subscribers):
                try:
                    subscriber(event)
                except Exception:  # a broken reader must not stop the run
                    traceback.print_exc()

    def _redact_event(self, event: Event) -> Event:
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(event):
            value = getattr(event, f.name)
            if isinstance(value, str):
                clean = self.redact(value)
                if clean is not value:
                    changes[f.name] = clean
            elif isinstance(value, tuple) and value and isinstance(value[0], str):
                changes[f.name] = tuple(self.redact(v) for v in value)
        return dataclasses.replace(event, **changes) if changes else event

    def _emit(
        self,
        event: Event,
        *,
        step: StepRuntime | None = None,
        run: dict[str, Any] | None = None,
        action: tuple[str, str, str | None, str] | None = None,
        trigger: tuple[str, str] | None = None,
    ) -> Event:
        """Journal, then publish. Call with the engine lock held, so journal order is event order."""
        event = self._redact_event(dataclasses.replace(event, wall=time.time(), clock=self.clock.now()))
        if action is not None:
            action = (action[0], action[1], action[2], self.redact(action[3]))
        seq = self.journal.record(
            self.run_id, event, step=step.record() if step else None, run=run, action=action, trigger=trigger
        )
        event = dataclasses.replace(event, seq=seq)
        self._publish(event)
        return event

    def _write_logs(self, chunks: list[LogChunk]) -> None:
        rows: list[tuple[str, int, int, float, str]] = []
        events: list[StepLog] = []
        with self._lock:
            for chunk in chunks:
                rt = self._steps.get(chunk.step_id)
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
                        clock=self.clock.now(),
                    )
                )
        self.journal.append_logs(self.run_id, rows)
        # Log batches are not journal events (the lines table holds them): publish directly.
        for event in events:
            self._publish(event)

    def _write_progress(self, reports: list[ProgressReport]) -> None:
        self.journal.save_progress(self.run_id, [(r.step_id, r.label, r.done, r.total, r.unit) for r in reports])
        for r in reports:
            with self._lock:
                rt = self._steps.get(r.step_id)
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
                    clock=self.clock.now(),
                )
            )


class StepHost:
    if TYPE_CHECKING:
        runbook: Runbook
        journal: Journal
        clock: Clock
        run_id: int
        redact: secrets.Redactor
        _lock: threading.RLock
        _pump: LogPump
        _steps: dict[str, StepRuntime]
        _metrics: dict[str, float]
        _triggers: TriggerWatch

        def _emit(
            self,
            event: Event,
            *,
            step: StepRuntime | None = None,
            run: dict[str, Any] | None = None,
            action: tuple[str, str, str | None, str] | None = None,
            trigger: tuple[str, str] | None = None,
        ) -> Event: ...
        def _set_state(self, rt: StepRuntime, state: StepState, reason: str = "") -> None: ...
        def _apply_answer(self, rt: StepRuntime) -> None: ...
        def _fire(self, firing: Firing) -> None: ...

    # -- StepHost: called from worker threads ------------------------------------------------

    def step_log(self, step_id: str, attempt: int, lines: list[str]) -> None:
        self._pump.add(step_id, attempt, lines)

    def step_progress(
        self, step_id: str, attempt: int, done: float, total: float | None, unit: str, label: str
    ) -> None:
        wall = time.time()
        label = label or self.runbook.step(step_id).label
        with self._lock:
            rt = self._steps[step_id]
            if rt.attempt != attempt:
                return
            state = rt.progress.get(label)
            if state is None:
                state = rt.progress[label] = ProgressState(label, done, total, unit, None, wall, done, wall)
            elif wall - state.last_wall >= 0.2:
                instant = (done - state.done) / (wall - state.last_wall)
                state.rate = instant if state.rate is None else 0.7 * state.rate + 0.3 * instant
                state.last_wall = wall
                state.done = done
            else:
                state.done = done
            if state.rate is None and wall - state.first_wall > 0.05 and done > state.first_done:
                state.rate = (done - state.first_done) / (wall - state.first_wall)
            state.total, state.unit = total, unit
        self._pump.report(ProgressReport(step_id, attempt, label, done, total, unit, wall))

    def step_metric(self, step_id: str, name: str, value: float) -> None:
        with self._lock:
            self._metrics[name] = value
            self.journal.save_metric(self.run_id, name, value, step_id)
            self._emit(MetricRecorded(step_id=step_id, name=name, value=value))
            self._on_triggers(self._triggers.on_metric(name, value, self.clock.now()))

    def step_checkpoint(self, step_id: str, data: dict[str, Any]) -> None:
        self.journal.save_checkpoint(self.run_id, step_id, self.redact.deep(data))

    def step_checkpoint_of(self, step_id: str) -> dict[str, Any]:
        return self.journal.checkpoint(self.run_id, step_id)

    def step_report(self, step_id: str, attempt: int, topic: str, data: dict[str, Any]) -> None:
        text = json.dumps(self.redact.deep(data), default=str)
        with self._lock:
            rt = self._steps.get(step_id)
            if rt is None or rt.attempt != attempt:
                return
            self._emit(StepReport(step_id=step_id, attempt=attempt, topic=topic, data=text))

    def step_ask(self, step_id: str, question: str, confirm: str | None, cancel: threading.Event) -> bool:
        return self._gate(step_id, Gate("ask", question, confirm), cancel)

    def step_checklist(self, step_id: str, items: list[str], cancel: threading.Event) -> bool:
        gate = Gate("checklist", f"Tick each item of {step_id!r}", None, tuple(items))
        # Items ticked before a restart stay ticked.
        gate.ticked = {i for i in self.journal.checkpoint(self.run_id, step_id).get(TICKED, []) if i < len(items)}
        if len(gate.ticked) == len(items):
            return True
        return self._gate(step_id, gate, cancel)

    def _save_ticks(self, step_id: str, ticked: set[int]) -> None:
        data = self.journal.checkpoint(self.run_id, step_id)
        data[TICKED] = sorted(ticked)
        self.journal.save_checkpoint(self.run_id, step_id, data)

    def _gate(self, step_id: str, gate: Gate, cancel: threading.Event) -> bool:
        with self._lock:
            rt = self._steps[step_id]
            if rt.state != StepState.RUNNING:
                raise StepCancelled("no longer running")
            rt.gate = gate
            self._set_state(rt, StepState.WAITING, gate.question)
            self._emit(
                GateOpened(
                    step_id=step_id, gate=gate.kind, question=gate.question, confirm=gate.confirm, items=gate.items
                )
            )
            self._apply_answer(rt)
        while not gate.answered.wait(0.05):
            if cancel.is_set():
                raise StepCancelled("cancelled while waiting for the operator")
        with self._lock:
            if rt.gate is gate:
                rt.gate = None
                state: StepState = rt.state  # changed by the operator while this thread waited
                if state == StepState.WAITING:
                    self._set_state(rt, StepState.RUNNING, "answered " + ("yes" if gate.answer else "no"))
        return bool(gate.answer)

    # -- triggers -------------------------------------------------------------------------

    def _on_triggers(self, firings: list[Firing]) -> None:
        for firing in firings:
            self._fire(firing)
