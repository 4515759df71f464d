"""What the run does when a trigger fires: journal the firing, then alert, pause or roll back."""

from __future__ import annotations

from cockpit.engine.live_run import LiveRun
from cockpit.engine.publisher import Publisher
from cockpit.engine.rollback import Rollback
from cockpit.engine.transitions import Transitions
from cockpit.events import RunState, TriggerFired
from cockpit.triggers import Firing


class TriggerResponse:
    def __init__(self, run: LiveRun, publisher: Publisher, transitions: Transitions, rollback: Rollback) -> None:
        self._run = run
        self._publisher = publisher
        self._transitions = transitions
        self._rollback = rollback

    def respond(self, firings: list[Firing]) -> None:
        for firing in firings:
            self._respond(firing)

    def _respond(self, firing: Firing) -> None:
        live = self._run
        trigger = firing.trigger
        now = live.clock.now()
        deadline = now + trigger.within if trigger.action == "rollback" and trigger.within else None
        self._publisher.emit(
            TriggerFired(trigger_id=trigger.id, action=trigger.action, reason=firing.reason, deadline=deadline),
            trigger=(trigger.id, firing.reason),
        )
        if trigger.action == "alert":
            self._transitions.alert("error", f"{trigger.label}: {firing.reason}")
        elif trigger.action == "pause":
            if not live.paused and not live.state.ended:
                live.paused = True
                live.persist()
                if live.state == RunState.RUNNING:
                    self._transitions.run(RunState.PAUSED, f"trigger {trigger.id!r}: {firing.reason}")
        elif trigger.action == "rollback":
            name = f"trigger {trigger.id!r}" + (f" ({trigger.title})" if trigger.title else "")
            self._rollback.begin(f"{name}: {firing.reason}", trigger.id, deadline, confirmed=False)
