"""Operator actions on a running engine; each is journaled with the operator's identity.

Every action checks that it makes sense in the step's current state and raises
`ActionRefused` with a sentence for the operator when it does not. A running attempt is never
settled from here: it is asked to stop, and the attempt records the operator's decision when
it has (`cockpit.engine.attempts`).
"""

from __future__ import annotations

from cockpit import attempt_processes
from cockpit.engine.live_run import LiveRun
from cockpit.engine.publisher import Publisher
from cockpit.engine.step_runtime import Gate, StepRuntime
from cockpit.engine.transitions import Transitions
from cockpit.events import RunState, StepState
from cockpit.operator import Operator

# The checkpoint key under which a checklist's ticked items survive a restart.
TICKED = "_ticked"


def save_ticks(run: LiveRun, step_id: str, ticked: set[int]) -> None:
    """Journal a checklist's ticked items in its checkpoint, where a restart finds them."""
    data = run.journal.checkpoint(run.run_id, step_id)
    data[TICKED] = sorted(ticked)
    run.journal.save_checkpoint(run.run_id, step_id, data)


class ActionRefused(Exception):
    """An operator action that cannot apply now; the message says why."""


REDOABLE = (StepState.FAILED, StepState.CANCELLED, StepState.INTERRUPTED)
_SETTLEABLE = (StepState.SCHEDULED, StepState.READY, StepState.WAITING, StepState.RUNNING, *REDOABLE)


class OperatorActions:
    def __init__(self, run: LiveRun, publisher: Publisher, transitions: Transitions) -> None:
        self._run = run
        self._publisher = publisher
        self._transitions = transitions

    def start_step(self, step_id: str, operator: Operator) -> None:
        """Start a step now: before it is due, or one that waits for an operator start."""
        live = self._run
        with live.lock:
            self._refuse_if_ended()
            rt = self._runtime(step_id)
            step = live.runbook.step(step_id)
            if live.runbook.is_rollback_step(step_id) and live.state != RunState.ROLLING_BACK:
                raise ActionRefused(f"{step_id!r} is a rollback step: it runs only during a rollback")
            startable = rt.state == StepState.SCHEDULED or (
                rt.state == StepState.WAITING and rt.gate is not None and rt.gate.kind == "start"
            )
            if not startable:
                raise ActionRefused(
                    f"{step.label!r} is {rt.state.value}; only a scheduled or waiting step can be started"
                )
            unmet = [n for n in step.needs if not live.steps[n].state.satisfies_needs]
            if unmet:
                raise ActionRefused(f"{step.label!r} needs {', '.join(unmet)} to succeed first")
            self._publisher.operator_acted(operator, "start", step_id)
            rt.operator_started = True
            # Started by hand, it starts even while the run is paused.
            rt.start_requested = True
            rt.retry_at = None
            if rt.gate is not None:
                rt.gate.answer = True
                rt.gate.answered.set()
                rt.gate = None
            self._transitions.step(rt, StepState.READY, f"started by {operator}")

    def pause(self, operator: Operator, reason: str = "") -> None:
        """No new step starts until resumed; running steps carry on."""
        live = self._run
        with live.lock:
            self._refuse_if_ended()
            if live.paused:
                raise ActionRefused("the run is already paused")
            self._publisher.operator_acted(operator, "pause", None, reason)
            live.paused = True
            live.persist()
            if live.state == RunState.RUNNING:
                self._transitions.run(RunState.PAUSED, reason or f"paused by {operator}")

    def resume(self, operator: Operator) -> None:
        live = self._run
        with live.lock:
            self._refuse_if_ended()
            if not live.paused:
                raise ActionRefused("the run is not paused")
            self._publisher.operator_acted(operator, "resume")
            live.paused = False
            live.persist()
            if live.state == RunState.PAUSED:
                self._transitions.run(RunState.RUNNING, f"resumed by {operator}")

    def retry(self, step_id: str, operator: Operator) -> None:
        """Run a failed, cancelled or interrupted step again (from its checkpoint)."""
        live = self._run
        with live.lock:
            self._refuse_if_ended()
            rt = self._runtime(step_id)
            if rt.state not in REDOABLE:
                raise ActionRefused(
                    f"{step_id!r} is {rt.state.value}; only a failed, cancelled or interrupted step can be retried"
                )
            if live.runbook.is_rollback_step(step_id) != (live.state == RunState.ROLLING_BACK):
                raise ActionRefused(
                    "during a rollback only rollback steps run"
                    if live.state == RunState.ROLLING_BACK
                    else f"{step_id!r} runs only during a rollback"
                )
            self._publisher.operator_acted(operator, "retry", step_id)
            rt.retries_left = live.runbook.step(step_id).retries
            rt.retry_at = None
            rt.operator_started = True
            self._transitions.step(rt, StepState.SCHEDULED, f"retry requested by {operator}")

    def skip(self, step_id: str, reason: str, operator: Operator) -> None:
        """Settle a step as skipped; steps that need it may go on."""
        self.settle(step_id, reason, operator, "skip")

    def mark_done(self, step_id: str, reason: str, operator: Operator) -> None:
        """Settle a step as succeeded without running it (the operator did it another way)."""
        self.settle(step_id, reason, operator, "done")

    def settle(self, step_id: str, reason: str, operator: Operator, how: str) -> None:
        """Skip (`how="skip"`) or mark done (`how="done"`) a step, with the operator's reason."""
        reason = reason.strip()
        verb = "skip" if how == "skip" else "mark done"
        if not reason:
            raise ActionRefused(f"a reason is required to {verb} a step")
        live = self._run
        self._stop_what_was_left(step_id)
        with live.lock:
            self._refuse_if_ended()
            rt = self._runtime(step_id)
            if rt.state not in _SETTLEABLE:
                raise ActionRefused(f"{step_id!r} is {rt.state.value}; nothing to {verb}")
            self._publisher.operator_acted(operator, "skip" if how == "skip" else "mark_done", step_id, reason)
            text = f"{'skipped' if how == 'skip' else 'marked done'} by {operator}: {reason}"
            if rt.cancel is not None:
                rt.request_stop(how, text)
                return
            rt.gate = None
            if how == "skip":
                self._transitions.step(rt, StepState.SKIPPED, text)
            else:
                self._transitions.succeed(rt, text)

    def _stop_what_was_left(self, step_id: str) -> None:
        """An interrupted attempt's processes still alive are stopped before the step is settled,
        so no decision is taken while its work still runs (outside the run's lock: it may take
        the keeper's grace period)."""
        live = self._run
        with live.lock:
            rt = self._runtime(step_id)
            if rt.state != StepState.INTERRUPTED:
                return
            record = live.journal.checkpoint(live.run_id, step_id).get(attempt_processes.RECORD)
        if not record:
            return
        rt.left_running = ""
        for survivor in attempt_processes.stop(record):
            with live.lock:
                self._transitions.log(rt, f"stopped pid {survivor.pid} ({survivor.program}) of the interrupted attempt")

    def cancel(self, step_id: str, operator: Operator) -> None:
        live = self._run
        with live.lock:
            self._refuse_if_ended()
            rt = self._runtime(step_id)
            if rt.state not in (StepState.SCHEDULED, StepState.READY, StepState.WAITING, StepState.RUNNING):
                raise ActionRefused(f"{step_id!r} is {rt.state.value}; nothing to cancel")
            self._publisher.operator_acted(operator, "cancel", step_id)
            if rt.cancel is not None:
                rt.request_stop("cancel", f"cancelled by {operator}")
            else:
                rt.gate = None
                self._transitions.step(rt, StepState.CANCELLED, f"cancelled by {operator}")

    def answer(self, step_id: str, yes: bool, operator: Operator, typed: str | None = None) -> None:
        """Answer a step's gate: its question, its start, or its whole checklist."""
        live = self._run
        with live.lock:
            self._refuse_if_ended()
            rt = self._runtime(step_id)
            gate = rt.gate
            if rt.state != StepState.WAITING or gate is None:
                raise ActionRefused(f"{step_id!r} is not waiting for an answer")
            if gate.kind == "start":
                if not yes:
                    raise ActionRefused("to leave it unstarted, do nothing; to drop it, skip it with a reason")
                self.start_step(step_id, operator)
                return
            if yes and gate.kind == "ask" and gate.confirm is not None and (typed or "").strip() != gate.confirm:
                raise ActionRefused(f"type exactly {gate.confirm!r} to confirm")
            self._publisher.operator_acted(operator, "answer", step_id, "yes" if yes else "no")
            self._transitions.log(rt, f"answered {'yes' if yes else 'no'} by {operator}")
            if gate.kind == "checklist" and yes:
                gate.ticked = set(range(len(gate.items)))
            gate.answer = yes
            gate.answered.set()

    def tick(self, step_id: str, item: int, operator: Operator, note: str = "") -> None:
        """Tick one item of a checklist by hand, with the operator's note; all ticked, the step succeeds."""
        live = self._run
        with live.lock:
            rt, gate = self._open_checklist(step_id)
            if not 0 <= item < len(gate.items):
                raise ActionRefused(f"{step_id!r} has no item {item + 1}")
            if item in gate.ticked:
                raise ActionRefused(f"item {item + 1} is already ticked")
            note = note.strip()
            detail = gate.items[item] + (f" (note: {note})" if note else "")
            self._publisher.operator_acted(operator, "tick", step_id, detail)
            self._transitions.log(rt, f"ticked by {operator}: {detail}")
            gate.ticked.add(item)
            save_ticks(live, step_id, gate.ticked)
            if len(gate.ticked) == len(gate.items):
                gate.answer = True
                gate.answered.set()

    def recheck(self, step_id: str, operator: Operator) -> None:
        """Run the checks of a waiting checklist's unticked items again, now."""
        live = self._run
        with live.lock:
            _, gate = self._open_checklist(step_id)
            if not gate.notes:
                raise ActionRefused(f"no unticked item of {step_id!r} has a check")
            self._publisher.operator_acted(operator, "recheck", step_id)
            gate.recheck = True
            gate.answered.set()

    def _open_checklist(self, step_id: str) -> tuple[StepRuntime, Gate]:
        self._refuse_if_ended()
        rt = self._runtime(step_id)
        if rt.gate is None or rt.gate.kind != "checklist":
            raise ActionRefused(f"{step_id!r} has no open checklist")
        return rt, rt.gate

    def _runtime(self, step_id: str) -> StepRuntime:
        rt = self._run.steps.get(step_id)
        if rt is None:
            raise ActionRefused(f"no step {step_id!r} in this runbook")
        return rt

    def _refuse_if_ended(self) -> None:
        if self._run.state.ended:
            raise ActionRefused(f"the run has ended ({self._run.state.value})")
