"""What the run does when a trigger fires: journal the firing, then alert, pause or roll back."""

from __future__ import annotations

import threading
from typing import Any

from cockpit.alerts import Notice, deliver
from cockpit.engine.live_run import LiveRun
from cockpit.engine.publisher import Publisher
from cockpit.engine.rollback import Rollback
from cockpit.engine.transitions import Transitions
from cockpit.events import RunState, TriggerFired
from cockpit.runbook import Notify
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
        notify = live.notify.get(trigger.id)
        if notify is not None:
            reason = firing.reason
            step = getattr(trigger.when, "step", None)
            if step in live.steps and live.steps[step].reason:
                reason += f": {live.steps[step].reason}"  # what the step said, for whoever was not watching
            notice = Notice(live.runbook.name, trigger.id, trigger.label, trigger.action, reason, now.isoformat())
            connection = live.connections.get(notify.connection) if notify.connection else None
            threading.Thread(
                target=self._tell, args=(notice, notify, connection), name=f"notify-{trigger.id}", daemon=True
            ).start()
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

    def _tell(self, notice: Notice, notify: Notify, connection: Any) -> None:
        """Deliver off the run's lock; then say on screen (and in the journal) how it went."""
        outcomes = deliver(notice, notify, connection)
        with self._run.lock:
            for outcome in outcomes:
                level = "error" if outcome.startswith("could not") else "info"
                self._transitions.alert(level, f"{notice.label}: {outcome}")
