"""The demo's stand-in operator: answers every gate yes after a short pause.

It acts through the engine's ordinary operator actions, journaled as `<user> via demo
autopilot`, so a demo run reads like a real one; an operator at the screen may answer first.
"""

from __future__ import annotations

import threading

from cockpit.actions import ActionRefused
from cockpit.engine import Engine
from cockpit.events import Event, GateOpened
from cockpit.rollback import CONFIRM_WORD


class Autopilot:
    def __init__(self, engine: Engine, delay: float = 1.5) -> None:
        self.engine = engine
        self.delay = delay
        self.operator = engine.operator.acting_via("demo autopilot")
        self._timers: list[threading.Timer] = []

    def __call__(self, event: Event) -> None:
        if not isinstance(event, GateOpened):
            return
        if self.delay <= 0:
            # Answer at once, inside the engine's own call: a headless demo never sees an open gate.
            self._answer(event)
        else:
            timer = threading.Timer(self.delay, self._answer, args=(event,))
            timer.daemon = True
            self._timers.append(timer)
            timer.start()

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
