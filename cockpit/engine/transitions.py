"""Changes of a step's or the run's state: each is journaled and published as one event, the
triggers watching it are told, and the scheduler is woken to act on it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from cockpit.engine.live_run import LiveRun
from cockpit.engine.publisher import Publisher
from cockpit.engine.step_runtime import StepRuntime
from cockpit.events import Alert, RunState, RunStateChanged, StepState, StepStateChanged
from cockpit.logpump import LogPump
from cockpit.triggers import Firing

FiringHandler = Callable[[list[Firing]], None]


class Transitions:
    def __init__(self, run: LiveRun, publisher: Publisher, pump: LogPump) -> None:
        self._run = run
        self._publisher = publisher
        self._pump = pump
        self._on_firings: FiringHandler = _unconnected

    def respond_to_triggers_with(self, handler: FiringHandler) -> None:
        """Who acts on a trigger that a state change fired; the engine connects its trigger response."""
        self._on_firings = handler

    def triggers_fired(self, firings: list[Firing]) -> None:
        self._on_firings(firings)

    def step(self, rt: StepRuntime, state: StepState, reason: str = "") -> None:
        """Call with the run's lock held."""
        live = self._run
        previous = rt.state
        rt.state = state
        rt.reason = live.redact(reason)
        self._publisher.emit(
            StepStateChanged(
                step_id=rt.id, state=state.value, previous=previous.value, attempt=rt.attempt, reason=rt.reason
            ),
            step=rt,
            run={"clock": live.clock.now().isoformat()},
        )
        self.triggers_fired(live.triggers.on_step_state(rt.id, state.value, live.clock.now()))
        if state.satisfies_needs:
            # The last step's success and the run's end are one transition: no reader sees between.
            self.check_done()
        live.wake.notify_all()

    def succeed(self, rt: StepRuntime, reason: str) -> None:
        live = self._run
        live.completions += 1
        rt.completed_seq = live.completions
        rt.not_run = False
        self.step(rt, StepState.SUCCEEDED, reason)

    def run(self, state: RunState, reason: str = "") -> None:
        live = self._run
        if state == live.state:
            return
        live.state = state
        row: dict[str, Any] = {"state": state.value}
        if state.ended:
            row["ended_wall"] = time.time()
        self._publisher.emit(RunStateChanged(state=state.value, reason=reason), run=row)
        live.wake.notify_all()

    def check_done(self) -> None:
        live = self._run
        if live.state not in (RunState.RUNNING, RunState.PAUSED):
            return
        if all(live.steps[s.id].state.satisfies_needs for s in live.runbook.forward_steps):
            self.run(RunState.DONE, "every step succeeded or was skipped")

    def alert(self, level: str, message: str, step_id: str | None = None) -> None:
        self._publisher.emit(Alert(level=level, message=message, step_id=step_id))

    def log(self, rt: StepRuntime, line: str) -> None:
        """A line from the cockpit itself in a step's log."""
        self._pump.add(rt.id, rt.attempt, [f"[cockpit] {line}"])


def _unconnected(firings: list[Firing]) -> None:
    if firings:
        raise RuntimeError("a trigger fired before the engine connected its response")
