"""The demo's stand-in operator: answers every gate yes after a short pause, and retries a
step that a killed demo left interrupted.

It acts through the engine's ordinary operator actions, journaled as `<user> via demo
autopilot`, so a demo run reads like a real one; an operator at the screen may act first.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from cockpit.engine import CONFIRM_WORD, ActionRefused, Engine
from cockpit.events import Event, GateOpened, StepStateChanged


class Autopilot:
    def __init__(self, engine: Engine, delay: float = 1.5) -> None:
        self.engine = engine
        self.delay = delay
        self.operator = engine.operator.acting_via("demo autopilot")
        self._timers: list[threading.Timer] = []

    def __call__(self, event: Event) -> None:
        if isinstance(event, GateOpened):
            self._later(self._answer, event)
        elif isinstance(event, StepStateChanged) and event.state == "interrupted":
            self._later(self._retry, event.step_id)

    def retry_interrupted(self) -> None:
        """The steps a killed demo left interrupted (recorded before this stand-in was listening)."""
        for step in self.engine.view().steps.values():
            if step.state.value == "interrupted":
                self._later(self._retry, step.id)

    def _later(self, act: Any, argument: Any) -> None:
        if self.delay <= 0:
            # At once, inside the engine's own call: a headless demo never sees an open gate.
            act(argument)
        else:
            timer = threading.Timer(self.delay, act, args=(argument,))
            timer.daemon = True
            self._timers.append(timer)
            timer.start()

    def _retry(self, step_id: str) -> None:
        with contextlib.suppress(ActionRefused):  # the operator got there first
            self.engine.retry(step_id, self.operator)

    def _answer(self, gate: GateOpened) -> None:
        try:
            if gate.gate == "rollback":
                self.engine.rollback(self.operator, "confirmed by the demo autopilot", CONFIRM_WORD)
            elif gate.gate == "checklist":
                for index in range(len(gate.items)):
                    self.engine.tick(gate.step_id, index, self.operator)
            else:
                self.engine.answer(gate.step_id, True, self.operator, typed=gate.confirm)
        except ActionRefused:
            pass  # the operator got there first, or the step moved on

    def cancel(self) -> None:
        for timer in self._timers:
            timer.cancel()
