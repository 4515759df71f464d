"""Answers given on the command line (`--answer STEP=VALUE`), applied as the gates and
decisions they answer come up, through the same operator actions, as the operator
`... via --answer`."""

from __future__ import annotations

from cockpit.engine.live_run import LiveRun
from cockpit.engine.operator_actions import REDOABLE, OperatorActions
from cockpit.engine.step_runtime import StepRuntime
from cockpit.events import StepState


class CommandLineAnswers:
    def __init__(self, run: LiveRun, actions: OperatorActions) -> None:
        self._run = run
        self._actions = actions

    def apply(self, rt: StepRuntime) -> None:
        """If the command line answered what `rt` now waits for, answer it (once)."""
        live = self._run
        value = live.answers.get(rt.id)
        if value is None:
            return
        operator = live.operator.acting_via("--answer")
        gate = rt.gate
        if rt.state == StepState.WAITING and gate is not None and value in ("yes", "no"):
            del live.answers[rt.id]
            self._actions.answer(rt.id, value == "yes", operator, typed=gate.confirm)
        elif rt.state in REDOABLE:
            if value == "retry":
                del live.answers[rt.id]
                self._actions.retry(rt.id, operator)
            elif value.startswith(("skip:", "done:")):
                del live.answers[rt.id]
                how, _, reason = value.partition(":")
                self._actions.settle(rt.id, reason, operator, "skip" if how == "skip" else "done")

    def confirms_rollback(self) -> bool:
        """`--answer rollback=yes` confirms a trigger's rollback past a point of no return (once)."""
        return self._run.answers.pop("rollback", None) == "yes"
