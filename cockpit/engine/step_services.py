"""What a running step calls from its worker thread, behind its `StepContext`: log, progress,
metrics, checkpoints, reports, and questions to the operator. Implements `cockpit.step.StepHost`."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from typing import Any

from cockpit.engine.command_line_answers import CommandLineAnswers
from cockpit.engine.embedded_probe import run_probe
from cockpit.engine.live_run import LiveRun
from cockpit.engine.operator_actions import TICKED, save_ticks
from cockpit.engine.publisher import Publisher
from cockpit.engine.step_runtime import Gate, ProgressState
from cockpit.engine.transitions import Transitions
from cockpit.events import GateOpened, ItemChecked, MetricRecorded, StepReport, StepState
from cockpit.logpump import LogPump, ProgressReport
from cockpit.step import Check, ProbeCall, ProbeResult, StepCancelled


class StepServices:
    def __init__(
        self,
        run: LiveRun,
        publisher: Publisher,
        transitions: Transitions,
        pump: LogPump,
        answers: CommandLineAnswers,
    ) -> None:
        self._run = run
        self._publisher = publisher
        self._transitions = transitions
        self._pump = pump
        self._answers = answers

    def step_log(self, step_id: str, attempt: int, lines: list[str]) -> None:
        self._pump.add(step_id, attempt, lines)

    def step_progress(
        self, step_id: str, attempt: int, done: float, total: float | None, unit: str, label: str
    ) -> None:
        live = self._run
        wall = time.time()
        label = label or live.runbook.step(step_id).label
        with live.lock:
            rt = live.steps[step_id]
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
        live = self._run
        with live.lock:
            live.metrics[name] = value
            live.journal.save_metric(live.run_id, name, value, step_id)
            self._publisher.emit(MetricRecorded(step_id=step_id, name=name, value=value))
            self._transitions.triggers_fired(live.triggers.on_metric(name, value, live.clock.now()))

    def step_checkpoint(self, step_id: str, data: dict[str, Any]) -> None:
        live = self._run
        live.journal.save_checkpoint(live.run_id, step_id, live.redact.deep(data))

    def step_checkpoint_of(self, step_id: str) -> dict[str, Any]:
        return self._run.journal.checkpoint(self._run.run_id, step_id)

    def step_report(self, step_id: str, attempt: int, topic: str, data: dict[str, Any]) -> None:
        live = self._run
        text = json.dumps(live.redact.deep(data), default=str)
        with live.lock:
            rt = live.steps.get(step_id)
            if rt is None or rt.attempt != attempt:
                return
            self._publisher.emit(StepReport(step_id=step_id, attempt=attempt, topic=topic, data=text))

    def step_ask(self, step_id: str, question: str, confirm: str | None, cancel: threading.Event) -> bool:
        # A question a step words from its parameters may hold a secret: the screen shows what the
        # journal shows.
        return self._wait_for_operator(step_id, Gate("ask", self._run.redact(question), confirm), cancel)

    def step_checklist(
        self, step_id: str, items: list[str], cancel: threading.Event, checks: Sequence[Check | None] = ()
    ) -> bool:
        shown = tuple(self._run.redact(i) for i in items)
        while True:
            # Items ticked before a restart stay ticked; so do those ticked by a check.
            ticked = {i for i in self.step_checkpoint_of(step_id).get(TICKED, []) if i < len(items)}
            notes = self._run_checks(step_id, shown, checks, ticked)
            if len(ticked) == len(items):
                return True
            gate = Gate("checklist", f"Tick each item of {step_id!r}", None, shown, ticked, notes)
            answer = self._wait_for_operator(step_id, gate, cancel)
            if not gate.recheck:
                return answer

    def _run_checks(
        self, step_id: str, items: tuple[str, ...], checks: Sequence[Check | None], ticked: set[int]
    ) -> dict[int, str]:
        """Run the check of each item not yet ticked; tick those that pass. Returns why the others failed."""
        live = self._run
        notes: dict[int, str] = {}
        for index, check in enumerate(checks):
            if check is None or index in ticked or index >= len(items):
                continue
            result = check()
            with live.lock:
                self._publisher.emit(
                    ItemChecked(
                        step_id=step_id,
                        index=index,
                        item=items[index],
                        passed=result.passed,
                        reason=result.reason,
                        evidence=result.evidence,
                    )
                )
                rt = live.steps[step_id]
                if not result.passed:
                    notes[index] = result.reason
                    self._transitions.log(rt, f"check {index + 1} failed: {result.reason}")
                    continue
                ticked.add(index)
                save_ticks(live, step_id, ticked)
                self._transitions.log(rt, f"ticked by its check: {items[index]}")
        return notes

    def step_probe(
        self, step_id: str, attempt: int, call: ProbeCall, label: str, cancel: threading.Event
    ) -> ProbeResult:
        return run_probe(self._run, self, step_id, attempt, call, label, cancel)

    def _wait_for_operator(self, step_id: str, gate: Gate, cancel: threading.Event) -> bool:
        live = self._run
        with live.lock:
            rt = live.steps[step_id]
            if rt.state != StepState.RUNNING:
                raise StepCancelled("no longer running")
            rt.gate = gate
            self._transitions.step(rt, StepState.WAITING, gate.question)
            self._publisher.emit(
                GateOpened(
                    step_id=step_id,
                    gate=gate.kind,
                    question=gate.question,
                    confirm=gate.confirm,
                    items=gate.items,
                    notes=tuple(gate.notes.get(i, "") for i in range(len(gate.items))) if gate.notes else (),
                )
            )
            self._answers.apply(rt)
        while not gate.answered.wait(0.05):
            if cancel.is_set():
                raise StepCancelled("cancelled while waiting for the operator")
        with live.lock:
            if rt.gate is gate:
                rt.gate = None
                state: StepState = rt.state  # changed by the operator while this thread waited
                if state == StepState.WAITING:
                    said = "checks asked again" if gate.recheck else "answered " + ("yes" if gate.answer else "no")
                    self._transitions.step(rt, StepState.RUNNING, said)
        return bool(gate.answer)
